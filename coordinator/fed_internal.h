/*
 * fed_internal.h - the federation's shared state, for the files that
 * implement it (federation.c: setup and the Register / Poll / Download
 * handlers; upload.c: the UploadUpdate handlers; rounds.c: the round state
 * machine, aggregation and publication). Nothing else includes it.
 */
#ifndef FF_FED_INTERNAL_H
#define FF_FED_INTERNAL_H

#include <jansson.h>
#include <pthread.h>

#include "../dataset/ff_dataset.h"
#include "../model/ff_model.h"
#include "../registry/ff_registry.h"
#include "aggregate.h"
#include "federation.h"

/* Round states; changed only by ff_fed_set_state (rounds.c), which logs
 * every transition. */
typedef enum ff_fed_state {
    FF_FED_STARTING = 0, /* restoring from the registry */
    FF_FED_WAITING,      /* between rounds: waiting for sites */
    FF_FED_TRAINING,     /* a round is open: sites train and upload */
    FF_FED_AGGREGATING,  /* the round is closed: average, score, publish */
    FF_FED_FINISHING,    /* every round done: telling sites FINISHED */
    FF_FED_STOPPED       /* over */
} ff_fed_state;

/* What the coordinator knows of one configured site. */
typedef struct ff_fed_site {
    char id[FF_WIRE_ID_MAX + 1];
    int registered;
    double last_seen;          /* monotonic seconds of the last request */
    double db_seen;            /* when last_seen was last stored */
    int dropped;               /* dropped from a round, not heard since */
    uint64_t example_count;    /* as registered */
    uint32_t modalities;
    int told_finished;
    /* the current round */
    int selected;
    int uploading;
    int contributed;
    uint64_t examples;         /* head-group examples of its update */
} ff_fed_site;

struct ff_upload {
    int site;                  /* index into sites */
    ff_wire_update_header header;
    uint8_t *bytes;            /* expected bytes, filled in order */
    size_t expected;
    size_t received;
};

struct ff_federation {
    ff_coord_config cfg;
    char address[FF_COORD_STR_MAX];
    ff_registry *reg;
    ff_sample_set test;

    /* main thread only */
    ff_model *global;          /* the current global model */
    ff_model *candidate;       /* the next one, before it is published */
    size_t n_params;
    size_t group_offset[FF_GROUP_COUNT];
    size_t group_length[FF_GROUP_COUNT];

    /* guarded by lock */
    pthread_mutex_t lock;
    pthread_cond_t cond;       /* state, uploads, polls or stop changed */
    ff_fed_state state;
    int round;                 /* current (or last) round number */
    int version;               /* version of the global model; 0 = initial */
    ff_model_blob *blob;       /* the global model as served */
    ff_aggregate *agg;         /* the open round's running sum */
    double loss_sum;           /* sum of head examples * train loss */
    ff_fed_site sites[FF_COORD_MAX_SITES];
    int n_sites;
    int finished;              /* every round is done: sites may stop */
    int stop;
    char stop_reason[128];
    double deadline_at;        /* monotonic time the open round closes */
};

/* Monotonic clock in seconds. */
double ff_fed_now(void);

/* Appends an audit row by the coordinator; steals details (may be NULL).
 * A failure is logged, not returned: the action it records stands.
 * Call without holding f->lock. */
void ff_fed_audit(ff_federation *f, const char *action, const char *site,
                  json_t *details);

/* Index of the configured site id, or -1. Lock held. */
int ff_fed_site_find(const ff_federation *f, const char *id);

/* Sleeps on f->cond until signalled or `until` (monotonic seconds), at
 * most one second. Lock held. */
void ff_fed_wait(ff_federation *f, double until);

/* Serialises model m as the blob of version `version` (refs = 1; *out
 * owned by the caller). Errors: FF_ERR_NOMEM, FF_ERR_TOO_LARGE. */
FF_MUST_USE ff_status ff_fed_blob_make(const ff_model *m, int version,
                                       ff_model_blob **out, ff_error *err);

/* Name of a state ("waiting", "training", ...). */
const char *ff_fed_state_name(ff_fed_state s);

/* Hex form of a digest; out holds 2 * n + 1 bytes. */
void ff_fed_hex(const uint8_t *digest, size_t n, char *out);

#endif
