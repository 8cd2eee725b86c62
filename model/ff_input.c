#include "ff_input.h"

#include <string.h>

static const char *const modality_names[FF_MOD_COUNT] = {
    [FF_MOD_IMAGE] = "image",
    [FF_MOD_AUDIO] = "audio",
    [FF_MOD_PEN] = "pen",
    [FF_MOD_TEXT] = "text",
};

const char *
ff_modality_name(ff_modality m)
{
    if ((int)m < 0 || m >= FF_MOD_COUNT)
        return NULL;
    return modality_names[m];
}

int
ff_modality_parse(const char *name)
{
    if (name == NULL)
        return -1;
    for (int m = 0; m < FF_MOD_COUNT; m++)
        if (strcmp(name, modality_names[m]) == 0)
            return m;
    return -1;
}
