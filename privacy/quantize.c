/*
 * quantize.c - float vectors into Z_(2^b) words for secure aggregation, and
 * the sum back into floats (error bounds in ff_secagg.h).
 */
#include "ff_secagg.h"

#include <math.h>
#include <sodium.h>

#define RAND_BLOCK 1024 /* random words drawn at a time */

static ff_privacy_status check_scale(float clip, uint32_t max_value,
                                     ff_privacy_error *err)
{
    if (!(clip > 0) || !isfinite(clip) || max_value == 0)
        return ff_privacy_error_set(err, FF_PRIVACY_ERR_ARG,
            "quantize: clip %g must be positive and finite, max_value %u "
            "positive", (double)clip, max_value);
    return FF_PRIVACY_OK;
}

ff_privacy_status ff_secagg_quantize(const float *x, size_t m, float clip,
                                     uint32_t max_value, bool stochastic,
                                     uint32_t *out, ff_privacy_error *err)
{
    ff_privacy_status st = check_scale(clip, max_value, err);
    if (st != FF_PRIVACY_OK)
        return st;
    double scale = (double)max_value / (2.0 * clip);
    uint32_t rnd[RAND_BLOCK];

    for (size_t i = 0; i < m; i++) {
        /* clip, then shift and scale onto [0, max_value] */
        if (!isfinite(x[i])) {
            sodium_memzero(rnd, sizeof rnd);
            return ff_privacy_error_set(err, FF_PRIVACY_ERR_ARG,
                "quantize: value %zu is %g, not finite", i, (double)x[i]);
        }
        double v = x[i] < -clip ? -clip : x[i] > clip ? clip : x[i];
        double q = (v + clip) * scale;
        double lo = floor(q);

        /* nearest, or up with probability frac(q) from the CSPRNG */
        if (stochastic) {
            if (i % RAND_BLOCK == 0)
                randombytes_buf(rnd, sizeof rnd);
            lo += (double)rnd[i % RAND_BLOCK] < (q - lo) * 4294967296.0;
        } else {
            lo = floor(q + 0.5);
        }
        out[i] = lo > max_value ? max_value : (uint32_t)lo;
    }
    sodium_memzero(rnd, sizeof rnd);
    return FF_PRIVACY_OK;
}

ff_privacy_status ff_secagg_dequantize_sum(const uint32_t *sum, size_t m,
                                           uint32_t inputs, float clip,
                                           uint32_t max_value, float *out,
                                           ff_privacy_error *err)
{
    ff_privacy_status st = check_scale(clip, max_value, err);
    if (st != FF_PRIVACY_OK)
        return st;
    double step = 2.0 * clip / max_value;
    double shift = (double)inputs * clip;
    for (size_t i = 0; i < m; i++)
        out[i] = (float)(sum[i] * step - shift);
    return FF_PRIVACY_OK;
}
