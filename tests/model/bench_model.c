/*
 * bench_model - times training epochs of the model on synthetic records
 * with every modality present (one OpenBLAS thread unless told).
 * Usage: bench_model [records] [epochs] [threads]
 */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>

#include "ff_model.h"
#include "synth.h"

int
main(int argc, char **argv)
{
    size_t count = argc > 1 ? (size_t)atol(argv[1]) : 1500;
    int epochs = argc > 2 ? atoi(argv[2]) : 2;
    int threads = argc > 3 ? atoi(argv[3]) : 1;
    ff_sample_set set = {calloc(count, sizeof(ff_sample)), count};
    ff_model *m = NULL;
    ff_train_config cfg;
    ff_train_stats st;
    ff_error err = {0};

    openblas_set_num_threads(threads);
    if (set.items == NULL || ff_model_create(&m, 1, &err) != FF_OK)
        return 1;
    synth_fill(set.items, count, 7, 1.0);
    ff_train_config_default(&cfg);
    cfg.epochs = epochs;
    if (ff_model_train(m, &set, &cfg, &st, &err) != FF_OK) {
        fprintf(stderr, "train: %s\n", ff_error_text(&err));
        return 1;
    }
    printf("records=%zu epochs=%d threads=%d params=%zu seconds=%.3f "
           "per_epoch=%.3f loss=%.4f acc=%.4f\n", count, epochs, threads,
           ff_model_param_count(m), st.seconds, st.seconds / epochs, st.loss,
           st.accuracy);
    ff_model_destroy(m);
    free(set.items);
    return 0;
}
