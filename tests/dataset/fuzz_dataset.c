/*
 * fuzz_dataset.c - libFuzzer target over the dataset decoders. The first
 * byte picks the decoder (see dsfuzz.h), the rest is its input. Build with
 * clang: cmake -DCMAKE_C_COMPILER=clang -DFF_DATASET_FUZZ=ON, then run
 * bin/fuzz_dataset -max_total_time=60.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "dsfuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char dir[64];

    if (dir[0] == '\0') {
        snprintf(dir, sizeof(dir), "/tmp/ff-dataset-fuzz-XXXXXX");
        if (mkdtemp(dir) == NULL)
            abort();
    }
    if (size == 0)
        return 0;
    dsfuzz_one(data[0] % DSFUZZ_KINDS, data + 1, size - 1, dir);
    return 0;
}
