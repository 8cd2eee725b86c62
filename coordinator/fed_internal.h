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
#include "../privacy/ff_accountant.h"
#include "../privacy/ff_dp.h"
#include "../privacy/ff_secagg.h"
#include "../registry/ff_registry.h"
#include "../trust/ff_trust.h"
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

/* Stages of a securely summed round (secagg.c); changed by the main
 * thread under the lock. */
typedef enum ff_fed_sa_stage {
    FF_FED_SA_NONE = 0,   /* no secure aggregation in progress */
    FF_FED_SA_ADVERT,     /* sites train, then advertise keys */
    FF_FED_SA_SHARING,    /* the key list is out; sealed shares come in */
    FF_FED_SA_MASKING,    /* shares forwarded; masked vectors come in */
    FF_FED_SA_UNMASKING,  /* unmask requests out; answers come in */
    FF_FED_SA_DONE,       /* the sum is known */
    FF_FED_SA_FAILED      /* aborted: sa_reason says why */
} ff_fed_sa_stage;

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
    int busy_noted;            /* round + 1 when a busy answer was logged */
    int contributed;
    uint64_t examples;         /* head-group examples of its update */
    int has_key;               /* identity key pinned (trust on first use) */
    uint8_t identity[FF_WIRE_IDENTITY_BYTES];
    char key_serial[FF_TRUST_SERIAL_HEX + 1]; /* certificate the key is
                                                 pinned to ("" TLS off) */
    char code_version[FF_WIRE_TEXT_MAX + 1];  /* as registered */
    char manifest_digest[FF_WIRE_DIGEST_HEX + 1];
    int revoked;               /* its certificate was refused as revoked
                                  during this round: dropped from it
                                  (cleared when the next round opens) */
    int sa_index;              /* number in the secagg round, or -1 */
    int refused;               /* declined the round (its DP budget) */
    int reported;              /* report holds this round's header */
    ff_wire_update_header report; /* its refusal or DP report */
} ff_fed_site;

/* Site-level DP of the open round (privacy.c). Set by the main thread
 * before the round's state becomes training; the sums are guarded by
 * lock. */
typedef struct ff_fed_dp_round {
    int active;                /* site_dp is central or distributed */
    int n_planned;             /* sites selected when the round opened */
    double clip;               /* clip in force this round */
    double z;                  /* configured noise multiplier */
    double z_u;                /* z, or z_Delta with adaptive clipping */
    double count_std;          /* adaptive clipping: std of the count */
    double sigma_eff;          /* central: accounted multiplier */
    double slack;              /* central: L2 slack of grid + quantising */
    ff_ddgauss_params dd;      /* distributed: the round's parameters */
    double *sum;               /* central, secagg off: running sum */
    double unclipped;          /* sum of the sites' unclipped bits */
    int arrived;               /* updates (or noise shares) in the sum */
    double count_noised;       /* adaptive: the released noised count */
    double clip_next;          /* the clip of the next round */
    size_t wrapped;            /* distributed: coordinates near the edge */
    double budget;             /* model budget's epsilon; INFINITY: none */
    double delta;              /* its delta, or 1e-5 when none is set */
    double round_eps;          /* this round alone (NAN before close) */
    int sites_recorded;        /* the sites' ledger rows are written */
    int model_recorded;        /* the model's ledger row is written */
} ff_fed_dp_round;

struct ff_upload {
    int site;                  /* index into sites */
    ff_wire_update_header header;
    uint8_t *bytes;            /* expected bytes, filled in order */
    size_t expected;
    size_t received;
};

/* One answer of the registry's revocation check, kept for at most
 * FF_FED_CERT_CACHE_S seconds (federation.c). */
typedef struct ff_fed_cert_seen {
    char serial[FF_TRUST_SERIAL_HEX + 1];
    char holder[FF_WIRE_ID_MAX + 1];
    int ok;
    char why[FF_WIRE_TEXT_MAX / 2];
    double at;                 /* monotonic seconds; 0: empty slot */
} ff_fed_cert_seen;

struct ff_federation {
    ff_coord_config cfg;
    char address[FF_COORD_STR_MAX];
    ff_registry *reg;
    ff_sample_set test;

    /* trust (federation.c): read-only once created, except the cache */
    char *ca_pem;              /* the consortium CA (TLS on), or NULL */
    size_t ca_len;
    uint8_t sign_sk[FF_TRUST_SIGN_SK]; /* model and audit signing key */
    uint8_t sign_pk[FF_TRUST_SIGN_PK];
    pthread_mutex_t cert_lock; /* guards cert_seen */
    ff_fed_cert_seen cert_seen[FF_COORD_MAX_SITES];

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
    int uploads_in_flight;     /* buffers held, at most secagg_max_uploads */

    /* secure aggregation of the open round (guarded by lock) */
    ff_secagg_server *sa;
    ff_secagg_config sa_cfg;
    ff_fed_sa_stage sa_stage;
    uint8_t *sa_pks;           /* n x 32 identity keys, in sa order */
    int sa_site[FF_COORD_MAX_SITES]; /* secagg number -> site index */
    ff_secagg_msg sa_keys;     /* the signed key list */
    ff_secagg_msg sa_forward[FF_COORD_MAX_SITES];
    ff_secagg_msg sa_unmask[FF_COORD_MAX_SITES];
    char sa_reason[FF_WIRE_TEXT_MAX + 1];
    json_t *sa_record;         /* main thread: the round's protocol record */
    double sa_clip;            /* per-coordinate clip sent with the task */

    /* privacy (privacy.c): the model's accountant, rebuilt from the
     * registry ledger at start; main thread only except dp sums */
    ff_fed_dp_round dp;
    ff_accountant acct;        /* site-level RDP of every released round */
    int acct_unbounded;        /* a round was released without site DP */
    double clip_now;           /* clip in force for the next round */
    double model_eps;          /* the model's epsilon so far */
};

/* ---- privacy.c: site-level DP, the model's accountant and the ledger */

/* At start: sets the model budget from --model-epsilon when none is
 * stored, or lowers a stored one (never raises it: a WARN), rebuilds the
 * accountant and the adaptive clip from the model's ledger rows (checked
 * against the hash-chained audit log) and allocates the central sum.
 * Errors: FF_ERR_DB, FF_ERR_DIGEST (a model ledger row is missing or
 * differs from its audit row: the ledger was tampered with),
 * FF_ERR_FORMAT (a ledger row the accountant cannot read), FF_ERR_NOMEM. */
FF_MUST_USE ff_status ff_fed_privacy_restore(ff_federation *f,
                                             ff_error *err);

/* Prepares the site-level DP of round r for the selected sites (clip,
 * noise, DDGauss parameters) and checks the model budget: *refused is 1
 * when the round must not run (logged as WARN and written to the ledger
 * as a "refused" model row). Main thread, lock not held. Errors: FF_ERR_DB
 * (budget or ledger unreadable / unwritable). */
FF_MUST_USE ff_status ff_fed_privacy_round_open(ff_federation *f, int r,
                                                int n_selected, int *refused,
                                                ff_error *err);

/* Fills the site-DP task of a TRAIN reply (mode NONE when off). Lock
 * held. */
void ff_fed_site_dp_task(const ff_federation *f, ff_wire_site_dp_task *t);

/* The secure aggregation layout under site DP: length, bits, max_value,
 * wrap and the per-coordinate clip for n sites. Returns 0 when site DP is
 * off (the caller keeps its own layout). Lock held. */
int ff_fed_dp_secagg_layout(const ff_federation *f, uint32_t n,
                            ff_secagg_config *c, double *clip);

/* Round r aborts (why: the reason, borrowed). When its distributed-DP sum
 * was already unmasked, the coordinator has seen it: accounts the round
 * with the noise shares that arrived (unless already done at unmasking)
 * and writes the model's "spent" ledger row with a reason naming the
 * abort, so that a restarted coordinator replays it. Does nothing for any
 * other round. Main thread, lock not held. Errors: FF_ERR_DB (the row was
 * not written: logged as an ERROR by the caller), FF_ERR_INTERNAL (the
 * accountant refused the round's numbers). */
FF_MUST_USE ff_status ff_fed_privacy_abort_record(ff_federation *f, int r,
                                                  const char *why,
                                                  ff_error *err);

/* Right after a distributed-DP sum is unmasked: accounts the round with
 * the noise shares that arrived and writes the model's "spent" ledger row
 * at once, so that a crash before publication cannot lose it (publication
 * and abort then skip the row). Does nothing in any other mode. Main
 * thread, lock not held. Errors: FF_ERR_DB, FF_ERR_INTERNAL, FF_ERR_NOMEM. */
FF_MUST_USE ff_status ff_fed_privacy_unmask_record(ff_federation *f, int r,
                                                   ff_error *err);

/* Central site DP with plain uploads: checks ||delta|| <= clip (within a
 * relative 1e-4, and then clips to exactly clip) and adds the delta and its
 * unclipped bit to the round's sum. Lock held. Errors: FF_ERR_REJECTED
 * with the norm and the clip. */
FF_MUST_USE ff_status ff_fed_dp_plain_add(ff_federation *f,
                                          const float *delta, int unclipped,
                                          ff_error *err);

/* Closes the sum of a site-DP round: sum[0..p) is S (plain: taken from
 * the running sum when NULL), arrived the inputs in it, unclipped the sum
 * of their bits. Adds the central noise, updates the adaptive clip and
 * adds S / n_planned to the aggregate. Lock held. Errors: FF_ERR_NOMEM,
 * FF_ERR_NONFINITE, FF_ERR_ARG (noise failed). */
FF_MUST_USE ff_status ff_fed_dp_close(ff_federation *f, float *sum,
                                      int arrived, double unclipped,
                                      ff_error *err);

/* Secure sum of a site-DP round (words of the layout above): decodes S
 * and closes the round with ff_fed_dp_close. Lock held. Errors as
 * ff_fed_dp_close, FF_ERR_FORMAT (decoding failed). */
FF_MUST_USE ff_status ff_fed_dp_secagg_sum(ff_federation *f,
                                           const uint32_t *words,
                                           uint32_t inputs, ff_error *err);

/* After round r closed: writes one ledger row per site that reported or
 * refused (aborted rounds too). Main thread. Errors: FF_ERR_DB. */
FF_MUST_USE ff_status ff_fed_privacy_sites_record(ff_federation *f, int r,
                                                  ff_error *err);

/* Before publishing round r: adds the round to the accountant, writes the
 * model's ledger row and returns the version's privacy JSON in *privacy
 * (new reference). Main thread. Errors: FF_ERR_DB, FF_ERR_NOMEM,
 * FF_ERR_INTERNAL (the accountant refused the round's numbers). */
FF_MUST_USE ff_status ff_fed_privacy_model_record(ff_federation *f, int r,
                                                  json_t **privacy,
                                                  ff_error *err);

/* Frees what privacy.c allocated. */
void ff_fed_privacy_cleanup(ff_federation *f);

/* Runs the secure aggregation stages of round r, which is open (state
 * training, sites selected): on success the round's aggregate holds the
 * unmasked sum and *aborted is 0; otherwise *aborted is 1 and why holds the
 * reason (logged and audited by the caller). Drops and audits the sites
 * that miss a stage. Main thread. Errors: none beyond an abort. */
void ff_fed_secagg_round(ff_federation *f, int r, int *aborted, char *why,
                         size_t cap);

/* Fills the secagg task of site i for a TRAIN reply (task->identity_keys
 * malloc'd: the caller frees it). Returns 0 when there is none (or no
 * memory). Lock held. */
int ff_fed_secagg_task(ff_federation *f, int i, ff_wire_secagg_task *task);

/* Checks a masked upload's header and returns the bytes it must bring
 * (lock held); FF_ERR_REJECTED with the reason in err. */
FF_MUST_USE ff_status ff_fed_secagg_upload_check(ff_federation *f, int i,
                                                 size_t *expected,
                                                 ff_error *err);

/* Checks that site i may still refuse the secure round: it has not
 * advertised keys. Lock held. Errors: FF_ERR_REJECTED with the reason. */
FF_MUST_USE ff_status ff_fed_secagg_refusal_check(ff_federation *f, int i,
                                                  ff_error *err);

/* Adds a complete masked vector (little-endian words) of site i to the
 * secure sum. Lock held. Errors: FF_ERR_REJECTED with the reason. */
FF_MUST_USE ff_status ff_fed_secagg_upload_add(ff_federation *f, int i,
                                               uint8_t *bytes, size_t len,
                                               ff_error *err);

/* Frees the secure aggregation state of a round. Lock held. */
void ff_fed_secagg_clear(ff_federation *f);

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

/* Waits, heartbeating, until done(f, arg) says so, the stop flag is set
 * or `until` (monotonic seconds) passes. Lock held on entry and exit. */
void ff_fed_wait_until(ff_federation *f, double until,
                       int (*done)(const ff_federation *, void *),
                       void *arg);

/* Signs blob (the model's version blob->version) over its digest, parent
 * and metadata_json (copied into blob->metadata) with the coordinator's
 * key. Errors: FF_ERR_NOMEM, FF_ERR_ARG. */
FF_MUST_USE ff_status ff_fed_blob_sign(ff_federation *f, ff_model_blob *b,
                                       int parent, const char *metadata_json,
                                       ff_error *err);

/* Signs the audit chain's head with the coordinator's key; when (after
 * a start, a round, at shutdown) names the moment in the log. A failure
 * is logged as an ERROR naming the row, never returned. */
void ff_fed_audit_sign(ff_federation *f, const char *when);

/* Name of a state ("waiting", "training", ...). */
const char *ff_fed_state_name(ff_fed_state s);

/* Hex form of a digest; out holds 2 * n + 1 bytes. */
void ff_fed_hex(const uint8_t *digest, size_t n, char *out);

#endif
