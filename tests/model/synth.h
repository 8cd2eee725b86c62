/*
 * synth.h - synthetic, class-dependent samples for the model tests and the
 * benchmark: each class has a random template per modality and a record is
 * its class's template plus noise, so the set is separable. Values stay
 * in the ranges the real loaders produce.
 */
#ifndef FF_TEST_SYNTH_H
#define FF_TEST_SYNTH_H

#include <stddef.h>
#include <stdint.h>

#include "ff_input.h"

/* Fills items[0..count) with labels i % 10 and every modality present;
 * noise scales the noise (1 = as strong as the templates). */
void synth_fill(ff_sample *items, size_t count, uint64_t seed, double noise);

/* Fills v[0..n) with normal draws of standard deviation sd. */
void synth_normal(float *v, size_t n, uint64_t seed, double sd);

#endif
