/*
 * compare_models.c - test helper for fed_secagg.sh: loads two model
 * artifacts and compares their parameters. Prints the largest absolute
 * difference; exits 0 when it is within the tolerance, 1 when not, 2 on
 * bad input.
 * Usage: test_fed_compare A.bin B.bin TOLERANCE
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "../../model/ff_model.h"

/* Reads a whole file (at most 256 MiB) into *buf; returns its length or
 * 0 on failure. */
static size_t file_read(const char *path, unsigned char **buf)
{
    FILE *fp = fopen(path, "rb");
    long n;

    *buf = NULL;
    if (fp == NULL || fseek(fp, 0, SEEK_END) != 0 || (n = ftell(fp)) <= 0 ||
        n > (256L << 20) || fseek(fp, 0, SEEK_SET) != 0) {
        if (fp != NULL)
            fclose(fp);
        return 0;
    }
    *buf = malloc((size_t)n);
    if (*buf == NULL || fread(*buf, 1, (size_t)n, fp) != (size_t)n) {
        free(*buf);
        *buf = NULL;
        n = 0;
    }
    fclose(fp);
    return (size_t)n;
}

/* Loads an artifact into a new model; NULL on failure (printed). */
static ff_model *model_load(const char *path)
{
    unsigned char *buf;
    size_t len = file_read(path, &buf);
    ff_model *m = NULL;
    ff_error err = {0};

    if (len == 0 || ff_model_create(&m, 1, &err) != FF_OK ||
        ff_model_artifact_read(m, buf, len, &err) != FF_OK) {
        fprintf(stderr, "compare: %s: %s\n", path,
                len == 0 ? "unreadable" : ff_error_text(&err));
        ff_model_destroy(m);
        m = NULL;
    }
    free(buf);
    return m;
}

int main(int argc, char **argv)
{
    ff_model *a, *b;
    double tol, max = 0.0;
    size_t i, n, at = 0;
    int rc = 2;

    if (argc != 4 || (tol = atof(argv[3])) <= 0.0) {
        fprintf(stderr, "usage: test_fed_compare A.bin B.bin TOLERANCE\n");
        return 2;
    }
    a = model_load(argv[1]);
    b = model_load(argv[2]);
    if (a != NULL && b != NULL) {
        const float *pa = ff_model_params_const(a);
        const float *pb = ff_model_params_const(b);
        n = ff_model_param_count(a);
        for (i = 0; i < n; i++) {
            double d = fabs((double)pa[i] - (double)pb[i]);
            if (d > max) {
                max = d;
                at = i;
            }
        }
        printf("compared %zu parameters: largest difference %.3g at %zu "
               "(tolerance %.3g)\n", n, max, at, tol);
        rc = max <= tol ? 0 : 1;
    }
    ff_model_destroy(a);
    ff_model_destroy(b);
    return rc;
}
