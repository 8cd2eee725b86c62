/*
 * ff_wire.h - the fedfuse wire protocol as plain C: method paths, limits
 * and the structs that the two conversion modules (coordinator/wire.c and
 * client/wire.c) fill from, or turn into, the protobuf messages of
 * proto/fedfuse.proto. Nothing but those two modules (and the helpers
 * they share, proto/ff_wire_codec.h) sees protobuf.
 *
 * Header only; depends on the C library alone.
 */
#ifndef FF_WIRE_H
#define FF_WIRE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* gRPC method paths of the fedfuse.Federation service (federation.proto). */
#define FF_WIRE_METHOD_REGISTER "/fedfuse.Federation/Register"
#define FF_WIRE_METHOD_POLL "/fedfuse.Federation/Poll"
#define FF_WIRE_METHOD_DOWNLOAD "/fedfuse.Federation/DownloadModel"
#define FF_WIRE_METHOD_UPLOAD "/fedfuse.Federation/UploadUpdate"
#define FF_WIRE_METHOD_SECAGG "/fedfuse.Federation/SecAgg"

/* Most data bytes one ModelChunk or UpdateChunk carries. */
#define FF_WIRE_CHUNK_MAX (1024u * 1024u)
/* Most bytes of one serialised message: a full chunk plus its fields. Both
 * sides set it as their gRPC receive limit, and decoders check it again. */
#define FF_WIRE_MESSAGE_MAX (FF_WIRE_CHUNK_MAX + 4096u)
/* Most bytes of a site id (letters, digits, '.', '_', '-'). */
#define FF_WIRE_ID_MAX 64
/* Most bytes of free text: reasons, code versions. */
#define FF_WIRE_TEXT_MAX 256
/* BLAKE2b-256 digests: raw bytes and hex characters. */
#define FF_WIRE_DIGEST_BYTES 32
#define FF_WIRE_DIGEST_HEX 64
/* Most parameter groups an update may describe. */
#define FF_WIRE_MAX_GROUPS 16
/* Most modality names a registration may list, and their length. */
#define FF_WIRE_MAX_MODALITIES 8
#define FF_WIRE_MODALITY_MAX 16
/* Most parameters an update may carry (256 MiB of float32). */
#define FF_WIRE_MAX_PARAMS (64u * 1024u * 1024u)
/* Most bytes a model artifact may have (the registry's cap). */
#define FF_WIRE_MAX_ARTIFACT (256u * 1024u * 1024u)
/* Most bytes of an optimizer name. */
#define FF_WIRE_OPTIMIZER_MAX 15

/* Ed25519 public identity key of a site, bytes. */
#define FF_WIRE_IDENTITY_BYTES 32
/* Most sites in one secure aggregation round (n x 32 key bytes must fit a
 * message with room to spare). */
#define FF_WIRE_SECAGG_MAX_SITES 4096u
/* Most bytes of one SecAgg stage message. */
#define FF_WIRE_SECAGG_DATA_MAX FF_WIRE_CHUNK_MAX

/* Model signatures (trust/ff_trust.h): Ed25519 signature and public key
 * bytes, and the most bytes of the signed lineage metadata (JSON) that
 * the first ModelChunk carries; that chunk's data is shorter by the
 * metadata's length, so the message stays within FF_WIRE_MESSAGE_MAX. */
#define FF_WIRE_SIG_BYTES 64
#define FF_WIRE_SIGNER_BYTES 32
#define FF_WIRE_METADATA_MAX (64u * 1024u)
/* The initial model of a federation (version 0, drawn from a seed, never
 * published) is signed as version 1, parent 0, of the pseudo-model
 * "NAME" FF_WIRE_INITIAL_SUFFIX, since a signed claim's version is >= 1
 * (trust/ff_trust.h). No real model has that name ('/' is not allowed in
 * names), so such a signature can never pass for a published version. */
#define FF_WIRE_INITIAL_SUFFIX "/initial"

/* Bytes produced by an encoder: malloc'd, owned by the caller (free()). */
typedef struct ff_wire_bytes {
    uint8_t *data;
    size_t len;
} ff_wire_bytes;

/* Register request. */
typedef struct ff_wire_register {
    char site_id[FF_WIRE_ID_MAX + 1];
    char code_version[FF_WIRE_TEXT_MAX + 1];
    uint32_t modalities;                 /* bit m set: modality m present */
    uint64_t example_count;
    char manifest_digest[FF_WIRE_DIGEST_HEX + 1];
    int has_identity;                    /* identity_key was sent */
    uint8_t identity_key[FF_WIRE_IDENTITY_BYTES];
} ff_wire_register;

typedef struct ff_wire_register_reply {
    int accepted;
    char reason[FF_WIRE_TEXT_MAX + 1];
    uint32_t poll_interval_ms;
} ff_wire_register_reply;

typedef struct ff_wire_poll {
    char site_id[FF_WIRE_ID_MAX + 1];
} ff_wire_poll;

typedef enum ff_wire_action {
    FF_WIRE_WAIT = 0,
    FF_WIRE_TRAIN = 1,
    FF_WIRE_FINISHED = 2
} ff_wire_action;

/* The local training configuration of a round (mirrors ff_train_config;
 * proto/ may not include model/). */
typedef struct ff_wire_train_config {
    uint32_t epochs;
    uint32_t batch_size;
    float lr;
    char optimizer[FF_WIRE_OPTIMIZER_MAX + 1]; /* "sgd" or "adam" */
    char lr_schedule[FF_WIRE_OPTIMIZER_MAX + 1]; /* "constant", "cosine" */
    float momentum;
    float modality_dropout;
    float weight_decay;
    uint64_t seed;
} ff_wire_train_config;

/* The secure aggregation parameters of a round, sent with TRAIN. The
 * identity keys are malloc'd by the site's decoder (freed by
 * ff_site_wire_poll_reply_cleanup) and borrowed by the encoder. */
typedef struct ff_wire_secagg_task {
    uint32_t site_index;
    uint32_t n_sites;
    uint32_t degree;
    uint32_t threshold;
    uint32_t bits;
    uint64_t length;
    uint32_t max_value;
    uint8_t graph_seed[32];
    float clip;
    uint8_t *identity_keys;              /* n_sites x 32 bytes */
} ff_wire_secagg_task;

/* Site-level DP of a round (docs/privacy-accounting.md, "Site level"),
 * sent with TRAIN. Mode none leaves the update as before. */
typedef enum ff_wire_site_dp_mode {
    FF_WIRE_SITE_DP_NONE = 0,
    FF_WIRE_SITE_DP_CENTRAL = 1,     /* site clips; coordinator noises */
    FF_WIRE_SITE_DP_DISTRIBUTED = 2  /* site clips and noises (DDGauss,
                                        secure aggregation required) */
} ff_wire_site_dp_mode;

typedef struct ff_wire_site_dp_task {
    ff_wire_site_dp_mode mode;
    double clip;                         /* L2 clip of the whole update */
    int report_unclipped;                /* adaptive clipping: send the
                                            bit ||delta|| <= clip */
    /* distributed mode only (the public ff_ddgauss_params): */
    uint32_t bits;
    uint64_t padded;
    double scale;
    double beta;
    double local_sigma2;
    uint32_t sites;
    uint8_t rotation_seed[32];
} ff_wire_site_dp_task;

typedef struct ff_wire_poll_reply {
    ff_wire_action action;
    int32_t round;
    int32_t model_version;
    ff_wire_train_config config;         /* meaningful for FF_WIRE_TRAIN */
    uint32_t poll_interval_ms;
    int secagg;                          /* TRAIN with secure aggregation */
    ff_wire_secagg_task task;            /* when secagg is set */
    ff_wire_site_dp_task site_dp;        /* mode NONE when absent */
} ff_wire_poll_reply;

/* Stages of the SecAgg call (fedfuse.proto SecAggStage). */
typedef enum ff_wire_secagg_stage {
    FF_WIRE_SA_ADVERT = 1,
    FF_WIRE_SA_KEYS = 2,
    FF_WIRE_SA_SHARES = 3,
    FF_WIRE_SA_FORWARD = 4,
    FF_WIRE_SA_UNMASK_REQUEST = 5,
    FF_WIRE_SA_UNMASK = 6
} ff_wire_secagg_stage;

/* Answers of the SecAgg call (fedfuse.proto SecAggStatus). */
typedef enum ff_wire_secagg_status {
    FF_WIRE_SA_OK = 0,
    FF_WIRE_SA_WAIT = 1,
    FF_WIRE_SA_ABORTED = 2
} ff_wire_secagg_status;

/* A SecAgg request or reply; data is borrowed by encoders, and decoders
 * make it point into storage held by owner (cleanup functions free it). */
typedef struct ff_wire_secagg_msg {
    char site_id[FF_WIRE_ID_MAX + 1];
    int32_t round;
    ff_wire_secagg_stage stage;
    ff_wire_secagg_status status;
    char reason[FF_WIRE_TEXT_MAX + 1];
    const uint8_t *data;
    size_t len;
    void *owner;
} ff_wire_secagg_msg;

typedef struct ff_wire_download {
    char site_id[FF_WIRE_ID_MAX + 1];
    int32_t round;                       /* >= 1; 0 with production */
    int production;                      /* the production version
                                            (fedfuse-site deploy) */
} ff_wire_download;

/* One piece of the model artifact. After decoding, data (and metadata)
 * point into storage that `owner` keeps alive until the chunk's cleanup
 * call. The signature fields travel in the first chunk (offset 0) only. */
typedef struct ff_wire_model_chunk {
    uint64_t offset;
    uint64_t total_length;
    uint8_t digest[FF_WIRE_DIGEST_BYTES];
    int32_t model_version;
    const uint8_t *data;
    size_t len;
    void *owner;
    /* first chunk only */
    int is_signed;                       /* signature and signer_key set */
    uint8_t signature[FF_WIRE_SIG_BYTES];
    uint8_t signer_key[FF_WIRE_SIGNER_BYTES];
    const char *metadata;                /* signed JSON; "" when none */
    size_t metadata_len;                 /* <= FF_WIRE_METADATA_MAX */
    char model[FF_WIRE_ID_MAX + 1];      /* the model's name */
    int32_t parent;                      /* parent version, 0: none */
} ff_wire_model_chunk;

/* First message of an upload. */
typedef struct ff_wire_update_header {
    char site_id[FF_WIRE_ID_MAX + 1];
    int32_t round;
    uint64_t param_count;
    uint32_t n_groups;
    uint64_t group_examples[FF_WIRE_MAX_GROUPS];
    double train_loss;
    double train_accuracy;
    int masked;                          /* SecAgg masked uint32 words */
    /* The site declines this round (its privacy budget would be
     * exceeded): no chunks follow; refusal says why. */
    int refused;
    char refusal[FF_WIRE_TEXT_MAX + 1];
    /* Record-level DP the site applied (dp_mechanism "" = none), its
     * cumulative epsilon after this round, and this round's parameters. */
    char dp_mechanism[FF_WIRE_OPTIMIZER_MAX + 1]; /* "", "dp-sgd" */
    double dp_epsilon;
    double dp_delta;
    double dp_epsilon_budget;
    double dp_noise_multiplier;
    double dp_clip;
    double dp_sampling_rate;
    uint64_t dp_steps;
    /* Site-level DP, plain uploads only: 1 when ||delta|| <= clip. */
    int unclipped;
} ff_wire_update_header;

/* A piece of the update (float32 little-endian); data as in model chunks. */
typedef struct ff_wire_update_chunk {
    uint64_t offset;                     /* in bytes */
    const uint8_t *data;
    size_t len;
    void *owner;
} ff_wire_update_chunk;

typedef enum ff_wire_update_kind {
    FF_WIRE_UPDATE_HEADER = 1,
    FF_WIRE_UPDATE_CHUNK = 2
} ff_wire_update_kind;

/* One message of the upload stream: a header or a chunk. */
typedef struct ff_wire_update_msg {
    ff_wire_update_kind kind;
    ff_wire_update_header header;        /* when kind is HEADER */
    ff_wire_update_chunk chunk;          /* when kind is CHUNK */
} ff_wire_update_msg;

typedef struct ff_wire_upload_reply {
    int accepted;
    char reason[FF_WIRE_TEXT_MAX + 1];
    uint32_t retry_after_ms;   /* > 0: busy, not refused: send again later */
} ff_wire_upload_reply;

/* Returns 1 when s is a valid site id: 1..FF_WIRE_ID_MAX bytes of
 * [A-Za-z0-9._-]; 0 otherwise (NULL included). */
static inline int ff_wire_id_valid(const char *s)
{
    size_t n = 0;

    if (s == NULL)
        return 0;
    for (; s[n] != '\0'; n++) {
        char c = s[n];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                 (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
        if (!ok || n >= FF_WIRE_ID_MAX)
            return 0;
    }
    return n > 0;
}

/* Returns 1 when s names an optimizer a training config may carry ("sgd",
 * "adam"); 0 otherwise (NULL included). */
static inline int ff_wire_optimizer_valid(const char *s)
{
    return s != NULL && (strcmp(s, "sgd") == 0 || strcmp(s, "adam") == 0);
}

/* Returns 1 when s names a learning-rate schedule a training config may
 * carry ("constant", "cosine"); 0 otherwise (NULL included). */
static inline int ff_wire_lr_schedule_valid(const char *s)
{
    return s != NULL &&
           (strcmp(s, "constant") == 0 || strcmp(s, "cosine") == 0);
}

#endif
