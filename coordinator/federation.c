/*
 * federation.c - setting up the federation from the registry, and the
 * Register, Poll and Download handlers.
 */
#include "fed_internal.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../common/ff_log.h"

/* Seconds between stores of a polling site's last_seen in the registry. */
#define FF_FED_SEEN_STORE 10.0
/* Seconds an answer of the registry's revocation check is reused. */
#define FF_FED_CERT_CACHE_S 1.0

/* ---- small shared helpers ---- */

double ff_fed_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void ff_fed_audit(ff_federation *f, const char *action, const char *site,
                  json_t *details)
{
    ff_error err = {0};

    if (ff_registry_audit(f->reg, "coordinator", action, site, details,
                          &err) != FF_OK)
        FF_ERROR("audit '%s' could not be recorded: %s", action,
                 ff_error_text(&err));
    json_decref(details);
}

int ff_fed_site_find(const ff_federation *f, const char *id)
{
    int i;

    for (i = 0; i < f->n_sites; i++)
        if (strcmp(f->sites[i].id, id) == 0)
            return i;
    return -1;
}

void ff_fed_wait(ff_federation *f, double until)
{
    double now = ff_fed_now();
    double t = until < now + 1.0 ? until : now + 1.0;
    struct timespec ts;

    if (t <= now)
        return;
    ts.tv_sec = (time_t)t;
    ts.tv_nsec = (long)((t - (double)ts.tv_sec) * 1e9);
    pthread_cond_timedwait(&f->cond, &f->lock, &ts);
}

void ff_fed_hex(const uint8_t *digest, size_t n, char *out)
{
    sodium_bin2hex(out, 2 * n + 1, digest, n);
}

ff_status ff_fed_blob_make(const ff_model *m, int version,
                           ff_model_blob **out, ff_error *err)
{
    size_t len = ff_model_artifact_size(m);
    ff_model_blob *b;
    ff_status st;

    *out = NULL;
    if (len == 0 || len > FF_WIRE_MAX_ARTIFACT)
        return ff_error_set(err, FF_ERR_TOO_LARGE,
                            "model artifact of %zu bytes exceeds %u", len,
                            (unsigned)FF_WIRE_MAX_ARTIFACT);

    /* Serialise, then hash what will be served. */
    b = calloc(1, sizeof *b);
    if (b != NULL)
        b->data = malloc(len);
    if (b == NULL || b->data == NULL) {
        st = ff_error_set(err, FF_ERR_NOMEM,
                          "out of memory for the model artifact");
        goto fail;
    }
    st = ff_model_artifact_write(m, b->data, len, err);
    if (st != FF_OK)
        goto fail;
    b->len = len;
    crypto_generichash(b->digest, sizeof b->digest, b->data, len, NULL, 0);
    b->version = version;
    b->refs = 1;
    *out = b;
    return FF_OK;

fail:
    if (b != NULL)
        free(b->data);
    free(b);
    return st;
}

void ff_federation_blob_release(ff_federation *f, ff_model_blob *blob)
{
    int last;

    if (blob == NULL)
        return;
    pthread_mutex_lock(&f->lock);
    last = --blob->refs == 0;
    pthread_mutex_unlock(&f->lock);
    if (last) {
        free(blob->metadata);
        free(blob->data);
        free(blob);
    }
}

const char *ff_federation_model(const ff_federation *f)
{
    return f->cfg.model;
}

/* ---- signatures ---- */

ff_status ff_fed_blob_sign(ff_federation *f, ff_model_blob *b, int parent,
                           const char *metadata_json, ff_error *err)
{
    char initial[FF_WIRE_ID_MAX + sizeof FF_WIRE_INITIAL_SUFFIX];
    ff_trust_model_claim claim;
    char *meta = strdup(metadata_json);
    ff_status st;

    if (meta == NULL)
        return ff_error_set(err, FF_ERR_NOMEM, "out of memory");
    memset(&claim, 0, sizeof claim);
    claim.model = f->cfg.model;
    claim.version = b->version;
    claim.parent = parent;
    if (b->version == 0) {      /* the initial model: see ff_wire.h */
        snprintf(initial, sizeof initial, "%s%s", f->cfg.model,
                 FF_WIRE_INITIAL_SUFFIX);
        claim.model = initial;
        claim.version = 1;
        claim.parent = 0;
    }
    memcpy(claim.digest, b->digest, sizeof claim.digest);
    claim.metadata_json = meta;
    st = ff_trust_model_sign(&claim, f->sign_sk, b->signature, err);
    if (st != FF_OK) {
        free(meta);
        return st;
    }
    free(b->metadata);
    b->metadata = meta;
    b->parent = parent;
    memcpy(b->signer_key, f->sign_pk, sizeof b->signer_key);
    b->is_signed = 1;
    return FF_OK;
}

void ff_fed_audit_sign(ff_federation *f, const char *when)
{
    ff_error err = {0};

    if (ff_registry_audit_sign_head(f->reg, f->sign_sk, &err) != FF_OK)
        FF_ERROR("the audit chain head was not signed %s: %s", when,
                 ff_error_text(&err));
    else
        FF_INFO("audit chain head signed %s", when);
}

/* ---- setup ---- */

/* Opens the registry and brings its schema up to date. */
static ff_status registry_open(ff_federation *f, ff_error *err)
{
    int version = 0;
    ff_status st = ff_registry_open(&f->reg, f->cfg.db, err);

    if (st == FF_OK)
        st = ff_registry_migrate(f->reg, &version, err);

    /* One coordinator per model and database: a second one would start the
     * same rounds and race the first to publish. */
    if (st == FF_OK)
        st = ff_registry_model_claim(f->reg, f->cfg.model, err);
    if (st != FF_OK)
        return ff_error_wrap(err, st, "registry");
    FF_INFO("registry ready (schema version %d)", version);
    return FF_OK;
}

/* Loads the global test set and logs what it holds. */
static ff_status test_load(ff_federation *f, ff_error *err)
{
    ff_load_report rep;
    ff_status st;
    int m;

    st = ff_dataset_load(f->cfg.test_manifest, &f->test, &rep, err);
    if (st != FF_OK)
        return ff_error_wrap(err, st, "test set %s", f->cfg.test_manifest);
    if (f->test.count == 0)
        return ff_error_set(err, FF_ERR_FORMAT, "test set %s is empty",
                            f->cfg.test_manifest);
    for (m = 0; m < FF_MOD_COUNT; m++)
        FF_INFO("test set: %s present in %zu of %zu records (%zu "
                "unreadable)", ff_modality_name((ff_modality)m),
                rep.present[m], rep.records, rep.unreadable[m]);
    return FF_OK;
}

/* Creates the global and candidate models and the aggregate over their
 * parameter groups. */
static ff_status models_create(ff_federation *f, ff_error *err)
{
    ff_status st;
    int g;

    st = ff_model_create(&f->global, f->cfg.init_seed, err);
    if (st == FF_OK)
        st = ff_model_create(&f->candidate, f->cfg.init_seed, err);
    if (st != FF_OK)
        return st;
    f->n_params = ff_model_param_count(f->global);
    for (g = 0; g < FF_GROUP_COUNT; g++)
        ff_model_group_range(f->global, g, &f->group_offset[g],
                             &f->group_length[g]);
    return ff_aggregate_create(&f->agg, f->n_params, FF_GROUP_COUNT,
                               f->group_offset, f->group_length, err);
}

/* Records the model and its architecture in the registry. */
static ff_status model_record(ff_federation *f, ff_error *err)
{
    json_t *groups = json_object();
    json_t *arch;
    ff_status st;
    int g;

    for (g = 0; groups != NULL && g < FF_GROUP_COUNT; g++)
        json_object_set_new(groups, ff_model_group_name(g),
                            json_integer((json_int_t)f->group_length[g]));
    arch = json_pack("{s:s, s:I, s:i, s:o?}", "architecture",
                     "ff_model multimodal encoder", "parameters",
                     (json_int_t)f->n_params, "classes", FF_NUM_CLASSES,
                     "groups", groups);
    if (arch == NULL)
        return ff_error_set(err, FF_ERR_NOMEM, "out of memory");
    st = ff_registry_model_ensure(f->reg, f->cfg.model, arch, err);
    json_decref(arch);
    return st;
}

/* Continues from the latest published version; marks a round that a
 * previous coordinator left running as aborted. */
static ff_status restore(ff_federation *f, ff_error *err)
{
    uint8_t *art = NULL;
    size_t len = 0;
    int version = 0, vround = 0, last = 0;
    ff_status st;

    st = ff_registry_version_latest(f->reg, f->cfg.model, &version, &vround,
                                     &art, &len, err);
    if (st == FF_OK && version > 0)
        st = ff_model_artifact_read(f->global, art, len, err);
    free(art);
    if (st != FF_OK)
        return ff_error_wrap(err, st, "restoring version %d", version);
    st = ff_registry_round_last(f->reg, f->cfg.model, &last, err);
    if (st != FF_OK)
        return st;

    /* A round after the latest version was aborted or never finished. */
    if (last > vround) {
        ff_error e2 = {0};
        st = ff_registry_round_abort(f->reg, f->cfg.model, last,
                                     "coordinator restarted", &e2);
        if (st == FF_OK)
            FF_WARN("round %d was left unfinished by an earlier "
                    "coordinator: marked aborted", last);
        else if (st != FF_ERR_STATE)
            return ff_error_set(err, st, "%s", ff_error_text(&e2));
    }
    f->version = version;
    f->round = last;
    if (version > 0)
        FF_INFO("continuing from version %d (round %d); next round %d",
                version, vround, last + 1);
    else
        FF_INFO("no published version: starting from the model drawn "
                "from seed %llu", (unsigned long long)f->cfg.init_seed);
    return FF_OK;
}

/* Pins the identity keys stored with earlier registrations (trust on
 * first use survives restarts). */
static ff_status identities_restore(ff_federation *f, ff_error *err)
{
    json_t *status = NULL, *sites, *site;
    ff_status st = ff_registry_status(f->reg, &status, err);
    size_t k;
    int n = 0;

    if (st != FF_OK)
        return ff_error_wrap(err, st, "reading pinned identity keys");
    sites = json_object_get(status, "sites");
    json_array_foreach(sites, k, site) {
        const char *name = json_string_value(json_object_get(site, "name"));
        json_t *details = json_object_get(site, "details");
        const char *hex = json_string_value(json_object_get(details,
                                                            "identity_key"));
        const char *serial = json_string_value(
            json_object_get(details, "identity_serial"));
        int i = name != NULL ? ff_fed_site_find(f, name) : -1;
        size_t len = 0;
        if (i < 0 || hex == NULL)
            continue;
        snprintf(f->sites[i].key_serial, sizeof f->sites[i].key_serial,
                 "%s", serial != NULL ? serial : "");
        if (sodium_hex2bin(f->sites[i].identity, FF_WIRE_IDENTITY_BYTES, hex,
                           strlen(hex), NULL, &len, NULL) != 0 ||
            len != FF_WIRE_IDENTITY_BYTES) {
            FF_WARN("site=%s: stored identity key is malformed; ignored",
                    name);
            continue;
        }
        f->sites[i].has_key = 1;
        n++;
    }
    json_decref(status);
    FF_INFO("%d pinned site identity keys restored", n);
    return FF_OK;
}

/* Writes text to path atomically: a fresh temp file (mkstemp: a planted
 * link is never followed), then rename; mode 0644. Returns 0 or -1. */
static int text_file_write(const char *path, const char *text)
{
    char tmp[FF_COORD_STR_MAX + 16];
    FILE *fp;
    int fd;

    snprintf(tmp, sizeof tmp, "%s.XXXXXX", path);
    fd = mkstemp(tmp);
    if (fd < 0)
        return -1;
    fp = fdopen(fd, "w");
    if (fp == NULL) {
        close(fd);
        remove(tmp);
        return -1;
    }
    fputs(text, fp);
    if (fflush(fp) != 0 || fsync(fd) != 0 || fclose(fp) != 0) {
        remove(tmp);
        return -1;
    }
    if (chmod(tmp, 0644) != 0 || rename(tmp, path) != 0) {
        remove(tmp);
        return -1;
    }
    return 0;
}

/* Loads (or creates) the signing key, prints its public half and writes
 * it beside the key as PATH.pub; reads the CA when TLS is on. */
static ff_status trust_open(ff_federation *f, ff_error *err)
{
    char path[FF_COORD_STR_MAX], pub[FF_COORD_STR_MAX + 8];
    char hex[2 * FF_TRUST_SIGN_PK + 2];
    ff_status st;

    if (f->cfg.tls) {
        st = ff_trust_file_read(f->cfg.ca, &f->ca_pem, &f->ca_len, err);
        if (st != FF_OK)
            return ff_error_wrap(err, st, "consortium CA");
    }
    st = ff_coord_config_signing_path(&f->cfg, path, sizeof path, err);
    if (st == FF_OK)
        st = ff_trust_sign_key_load(path, f->sign_sk, f->sign_pk, err);
    if (st != FF_OK)
        return ff_error_wrap(err, st, "model signing key");
    ff_fed_hex(f->sign_pk, FF_TRUST_SIGN_PK, hex);
    FF_INFO("model signing key %s: public key %s (sites pin it as "
            "coordinator_key)", path, hex);
    strcat(hex, "\n");
    snprintf(pub, sizeof pub, "%s.pub", path);
    if (text_file_write(pub, hex) != 0)
        return ff_error_set(err, FF_ERR_IO, "cannot write the public "
                            "signing key to %s", pub);
    return FF_OK;
}

/* The initial model's metadata: nothing trained it. */
static char *initial_metadata(const ff_federation *f)
{
    json_t *j = json_pack("{s:b, s:I, s:s}", "initial", 1, "seed",
                          (json_int_t)f->cfg.init_seed,
                          "coordinator_code_version", FF_CODE_VERSION);
    char *text = j != NULL ? json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS)
                           : NULL;

    json_decref(j);
    return text;
}

/* Takes the restored version's stored signature as it is ("signature",
 * "signer_key" as hex and "signed_metadata" of version_show); returns 1
 * when the version has one. */
static int blob_stored_signature(ff_model_blob *b, json_t *shown)
{
    const char *sig = json_string_value(json_object_get(shown, "signature"));
    const char *key = json_string_value(json_object_get(shown,
                                                        "signer_key"));
    const char *meta = json_string_value(json_object_get(shown,
                                                         "signed_metadata"));
    size_t n1 = 0, n2 = 0;

    if (sig == NULL || key == NULL || meta == NULL ||
        sodium_hex2bin(b->signature, sizeof b->signature, sig, strlen(sig),
                       NULL, &n1, NULL) != 0 || n1 != sizeof b->signature ||
        sodium_hex2bin(b->signer_key, sizeof b->signer_key, key,
                       strlen(key), NULL, &n2, NULL) != 0 ||
        n2 != sizeof b->signer_key)
        return 0;
    b->metadata = strdup(meta);
    b->is_signed = b->metadata != NULL;
    return b->is_signed;
}

/* Checks the restored version's stored signature with this coordinator's
 * key and logs what sites will make of it. It is served as stored either
 * way: never signed anew, which would vouch for whatever the database
 * now holds; the sites refuse what does not verify. */
static void blob_stored_check(ff_federation *f, const ff_model_blob *b)
{
    ff_trust_model_claim claim;
    ff_error e = {0};

    if (!b->is_signed) {
        FF_WARN("version %d is stored without a signature: sites will "
                "refuse it until a signed version is published",
                b->version);
        return;
    }
    memset(&claim, 0, sizeof claim);
    claim.model = f->cfg.model;
    claim.version = b->version;
    claim.parent = b->parent;
    memcpy(claim.digest, b->digest, sizeof claim.digest);
    claim.metadata_json = b->metadata;
    if (ff_trust_model_verify(&claim, b->data, b->len, b->signature,
                              f->sign_pk, &e) != FF_OK)
        FF_ERROR("version %d as stored in the registry does not verify "
                 "with this coordinator's signing key: %s; sites will "
                 "refuse it", b->version, ff_error_text(&e));
}

/* Signs the model served at start: the initial one; a restored version
 * keeps the signature stored with it. */
static ff_status blob_sign_start(ff_federation *f, ff_error *err)
{
    json_t *shown = NULL;
    char *meta;
    ff_status st;

    if (f->version == 0) {
        meta = initial_metadata(f);
        if (meta == NULL)
            return ff_error_set(err, FF_ERR_NOMEM, "out of memory");
        st = ff_fed_blob_sign(f, f->blob, 0, meta, err);
        free(meta);
        return st;
    }
    st = ff_registry_version_show(f->reg, f->cfg.model, f->version, &shown,
                                  err);
    if (st != FF_OK)
        return ff_error_wrap(err, st, "version %d", f->version);
    f->blob->parent = (int)json_integer_value(json_object_get(shown,
                                                              "parent"));
    (void)blob_stored_signature(f->blob, shown);
    json_decref(shown);
    blob_stored_check(f, f->blob);
    return FF_OK;
}

/* Audits the start with what this coordinator will do. */
static void audit_started(ff_federation *f)
{
    json_t *sites = json_array();
    int i;

    for (i = 0; sites != NULL && i < f->n_sites; i++)
        json_array_append_new(sites, json_string(f->sites[i].id));
    ff_fed_audit(f, "coordinator.started", NULL,
                 json_pack("{s:s, s:s, s:i, s:i, s:i, s:o?, s:s}", "model",
                           f->cfg.model, "address", f->address, "version",
                           f->version, "next_round", f->round + 1,
                           "rounds", f->cfg.rounds, "sites", sites,
                           "code_version", FF_CODE_VERSION));
}

ff_status ff_federation_create(ff_federation **out,
                               const ff_coord_config *cfg,
                               const char *address, ff_error *err)
{
    ff_federation *f;
    pthread_condattr_t ca;
    ff_status st;
    int i;

    *out = NULL;
    f = calloc(1, sizeof *f);
    if (f == NULL)
        return ff_error_set(err, FF_ERR_NOMEM, "out of memory");
    f->cfg = *cfg;
    snprintf(f->address, sizeof f->address, "%s", address);
    pthread_mutex_init(&f->lock, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&f->cond, &ca);
    pthread_condattr_destroy(&ca);
    for (i = 0; i < cfg->n_sites; i++) {
        strcpy(f->sites[i].id, cfg->sites[i]);
        f->sites[i].sa_index = -1;
    }
    f->n_sites = cfg->n_sites;
    pthread_mutex_init(&f->cert_lock, NULL);

    /* Registry, keys, test set, models, then the state they were left
     * in. */
    st = registry_open(f, err);
    if (st == FF_OK)
        st = trust_open(f, err);
    if (st == FF_OK)
        st = test_load(f, err);
    if (st == FF_OK)
        st = models_create(f, err);
    if (st == FF_OK)
        st = model_record(f, err);
    if (st == FF_OK)
        st = restore(f, err);
    if (st == FF_OK)
        st = identities_restore(f, err);
    if (st == FF_OK)
        st = ff_fed_privacy_restore(f, err);
    if (st == FF_OK)
        st = ff_fed_blob_make(f->global, f->version, &f->blob, err);
    if (st == FF_OK)
        st = blob_sign_start(f, err);
    if (st != FF_OK) {
        ff_federation_destroy(f);
        return st;
    }
    audit_started(f);
    ff_fed_audit_sign(f, "at start");
    *out = f;
    return FF_OK;
}

void ff_federation_destroy(ff_federation *f)
{
    if (f == NULL)
        return;
    ff_federation_blob_release(f, f->blob);
    ff_fed_secagg_clear(f);
    ff_fed_privacy_cleanup(f);
    json_decref(f->sa_record);
    ff_aggregate_destroy(f->agg);
    ff_model_destroy(f->candidate);
    ff_model_destroy(f->global);
    ff_dataset_cleanup(&f->test);
    ff_registry_close(f->reg);
    sodium_memzero(f->sign_sk, sizeof f->sign_sk);
    free(f->ca_pem);
    pthread_mutex_destroy(&f->cert_lock);
    pthread_cond_destroy(&f->cond);
    pthread_mutex_destroy(&f->lock);
    free(f);
}

void ff_federation_stop(ff_federation *f, const char *why)
{
    pthread_mutex_lock(&f->lock);
    if (!f->stop) {
        f->stop = 1;
        snprintf(f->stop_reason, sizeof f->stop_reason, "%s", why);
    }
    pthread_cond_broadcast(&f->cond);
    pthread_mutex_unlock(&f->lock);
}

/* ---- Register ---- */

/* The registration details stored with the site; key_hex (the pinned
 * identity key) may be NULL, serial the certificate it is pinned to. */
static json_t *register_details(const ff_wire_register *req,
                                const char *key_hex, const char *serial)
{
    json_t *mods = json_array();
    int m;

    for (m = 0; mods != NULL && m < FF_MOD_COUNT; m++)
        if (req->modalities & (1u << m))
            json_array_append_new(
                mods, json_string(ff_modality_name((ff_modality)m)));
    return json_pack("{s:o?, s:I, s:s, s:s, s:s?, s:s?}", "modalities",
                     mods, "examples", (json_int_t)req->example_count,
                     "code_version", req->code_version, "manifest_digest",
                     req->manifest_digest, "identity_key", key_hex,
                     "identity_serial",
                     key_hex != NULL && serial[0] ? serial : NULL);
}

/* Pins a site's identity key to the certificate it came over (serial;
 * "" with TLS off, which makes it trust on first use): the first key
 * seen with a certificate is pinned, a different key with the same
 * certificate is refused, and a new certificate (re-enrolment) may bring
 * a new key. No key is refused when rounds need one. Writes the pinned
 * key's hex into key_hex ("" for none). Returns NULL or the reason to
 * refuse. Takes the lock. */
static const char *identity_pin(ff_federation *f, int i, const char *serial,
                                const ff_wire_register *req, char *key_hex)
{
    const char *why = NULL;
    ff_fed_site *s = &f->sites[i];
    int same_cert;

    key_hex[0] = '\0';
    pthread_mutex_lock(&f->lock);
    same_cert = strcmp(s->key_serial, serial) == 0;
    if (!req->has_identity && f->cfg.secagg)
        why = "no identity key (secure aggregation needs one)";
    else if (req->has_identity && s->has_key && same_cert &&
             sodium_memcmp(s->identity, req->identity_key,
                           FF_WIRE_IDENTITY_BYTES) != 0)
        why = serial[0] ? "identity key differs from the key pinned to the "
                          "site's certificate"
                        : "identity key differs from the key pinned at the "
                          "site's first registration";
    else if (req->has_identity && (!s->has_key || !same_cert)) {
        memcpy(s->identity, req->identity_key, FF_WIRE_IDENTITY_BYTES);
        s->has_key = 1;
        snprintf(s->key_serial, sizeof s->key_serial, "%s", serial);
        if (serial[0])
            FF_INFO("site=%s: identity key pinned to certificate serial %s",
                    req->site_id, serial);
        else
            FF_INFO("site=%s: identity key pinned (trust on first use)",
                    req->site_id);
    }
    if (why == NULL && s->has_key)
        ff_fed_hex(s->identity, FF_WIRE_IDENTITY_BYTES, key_hex);
    pthread_mutex_unlock(&f->lock);
    return why;
}

/* Refuses a registration: reply, one WARN line, one audit row. */
static void register_refuse(ff_federation *f, const ff_wire_register *req,
                            ff_wire_register_reply *reply, const char *why)
{
    reply->accepted = 0;
    snprintf(reply->reason, sizeof reply->reason, "%s", why);
    FF_WARN("refused registration of site=%s: %s", req->site_id, why);
    ff_fed_audit(f, "site.refused", req->site_id,
                 json_pack("{s:s, s:s}", "reason", why, "code_version",
                           req->code_version));
}

ff_status ff_federation_register(ff_federation *f, const char *serial,
                                 const ff_wire_register *req,
                                 ff_wire_register_reply *reply,
                                 ff_error *err)
{
    char key_hex[2 * FF_WIRE_IDENTITY_BYTES + 1];
    const char *why;
    json_t *details;
    ff_status st;
    int i;

    memset(reply, 0, sizeof *reply);
    reply->poll_interval_ms = f->cfg.poll_interval_ms;
    pthread_mutex_lock(&f->lock);
    i = ff_fed_site_find(f, req->site_id);
    pthread_mutex_unlock(&f->lock);
    if (i < 0) {
        register_refuse(f, req, reply, "unknown site id");
        return FF_OK;
    }
    if (req->example_count == 0) {
        register_refuse(f, req, reply, "the site has no records");
        return FF_OK;
    }

    why = identity_pin(f, i, serial, req, key_hex);
    if (why != NULL) {
        register_refuse(f, req, reply, why);
        return FF_OK;
    }

    /* Recorded in the registry first: a site is registered once stored. */
    details = register_details(req, key_hex[0] ? key_hex : NULL, serial);
    st = ff_registry_site_register(f->reg, req->site_id, details, err);
    json_decref(details);
    if (st != FF_OK) {
        FF_ERROR("registration of site=%s not recorded: %s", req->site_id,
                 ff_error_text(err));
        return st;
    }
    pthread_mutex_lock(&f->lock);
    f->sites[i].registered = 1;
    f->sites[i].last_seen = ff_fed_now();
    f->sites[i].db_seen = f->sites[i].last_seen;
    f->sites[i].dropped = 0;
    f->sites[i].example_count = req->example_count;
    f->sites[i].modalities = req->modalities;
    snprintf(f->sites[i].code_version, sizeof f->sites[i].code_version,
             "%s", req->code_version);
    snprintf(f->sites[i].manifest_digest,
             sizeof f->sites[i].manifest_digest, "%s", req->manifest_digest);
    pthread_cond_broadcast(&f->cond);
    pthread_mutex_unlock(&f->lock);

    if (strcmp(req->code_version, FF_CODE_VERSION) != 0)
        FF_WARN("site=%s runs code version %s, the coordinator %s",
                req->site_id, req->code_version, FF_CODE_VERSION);
    FF_INFO("site=%s registered: %llu records, modalities 0x%x",
            req->site_id, (unsigned long long)req->example_count,
            (unsigned)req->modalities);
    reply->accepted = 1;
    return FF_OK;
}

/* ---- authentication of every call (mTLS) ---- */

/* The registry's verdict on a certificate, at most FF_FED_CERT_CACHE_S
 * old: from the cache, or asked now (without holding any lock). */
static ff_status cert_check_cached(ff_federation *f,
                                   const ff_trust_cert_info *info, int *ok,
                                   char *why, size_t cap, ff_error *err)
{
    double now = ff_fed_now();
    ff_fed_cert_seen *slot = &f->cert_seen[0];
    ff_status st;
    int k;

    /* A fresh answer for this serial and holder. */
    pthread_mutex_lock(&f->cert_lock);
    for (k = 0; k < FF_COORD_MAX_SITES; k++) {
        ff_fed_cert_seen *c = &f->cert_seen[k];
        if (c->at > 0.0 && now - c->at <= FF_FED_CERT_CACHE_S &&
            strcmp(c->serial, info->serial) == 0 &&
            strcmp(c->holder, info->id) == 0) {
            *ok = c->ok;
            snprintf(why, cap, "%s", c->why);
            pthread_mutex_unlock(&f->cert_lock);
            return FF_OK;
        }
    }
    pthread_mutex_unlock(&f->cert_lock);

    /* Ask the registry, then keep the answer in the oldest slot. */
    why[0] = '\0';
    st = ff_registry_cert_check(f->reg, info->id, info->serial, ok, why,
                                cap, err);
    if (st != FF_OK)
        return st;
    pthread_mutex_lock(&f->cert_lock);
    for (k = 1; k < FF_COORD_MAX_SITES; k++)
        if (f->cert_seen[k].at < slot->at)
            slot = &f->cert_seen[k];
    snprintf(slot->serial, sizeof slot->serial, "%s", info->serial);
    snprintf(slot->holder, sizeof slot->holder, "%s", info->id);
    slot->ok = *ok;
    snprintf(slot->why, sizeof slot->why, "%s", why);
    slot->at = now;
    pthread_mutex_unlock(&f->cert_lock);
    return FF_OK;
}

/* A site whose certificate the registry refuses (revoked) leaves the
 * round in flight at once: its pending upload is refused, and under
 * secure aggregation it becomes a dropout. Logged and audited once. */
static void site_revoked_drop(ff_federation *f, const char *id,
                              const char *why)
{
    int i, r = 0, dropped = 0;

    pthread_mutex_lock(&f->lock);
    i = ff_fed_site_find(f, id);
    if (i >= 0 && !f->sites[i].revoked) {
        ff_fed_site *s = &f->sites[i];
        dropped = f->state == FF_FED_TRAINING && s->selected &&
                  !s->contributed && !s->refused;
        s->revoked = 1;
        s->dropped = 1;
        r = f->round;
        pthread_cond_broadcast(&f->cond);
    }
    pthread_mutex_unlock(&f->lock);
    if (!dropped)
        return;
    FF_WARN("site=%s dropped from round %d: %s", id, r, why);
    ff_fed_audit(f, "site.dropped", id,
                 json_pack("{s:i, s:s, s:s}", "round", r, "reason",
                           "certificate revoked", "detail", why));
}

/* Refuses a call: one WARN line, the reason in err; an audit row for a
 * refused registration. */
static ff_status auth_refuse(ff_federation *f, const char *claimed,
                             const char *method, const char *why,
                             ff_error *err)
{
    FF_WARN("refused %s call from site=%s: %s", method, claimed, why);
    if (strcmp(method, "Register") == 0)
        ff_fed_audit(f, "site.refused",
                     ff_fed_site_find(f, claimed) >= 0 ? claimed : NULL,
                     json_pack("{s:s, s:s}", "reason", why, "claimed_site",
                               claimed));
    return ff_error_set(err, FF_ERR_REJECTED, "%s", why);
}

ff_status ff_federation_authorize(ff_federation *f, const char *peer_pem,
                                  size_t len, const char *claimed,
                                  const char *method, char *serial,
                                  ff_error *err)
{
    char why[FF_WIRE_TEXT_MAX], reg_why[FF_WIRE_TEXT_MAX / 2];
    ff_trust_cert_info info;
    ff_error e = {0};
    ff_status st;
    int ok = 0;

    if (serial != NULL)
        serial[0] = '\0';
    if (!f->cfg.tls)
        return FF_OK;         /* the claimed name is the identity */

    /* A site certificate of the consortium, for the site it claims. */
    if (peer_pem == NULL || len == 0)
        return auth_refuse(f, claimed, method, "no client certificate",
                           err);
    if (ff_trust_cert_verify(f->ca_pem, f->ca_len, peer_pem, len, &info,
                             &e) != FF_OK) {
        snprintf(why, sizeof why, "%s", ff_error_text(&e));
        return auth_refuse(f, claimed, method, why, err);
    }
    if (info.role != FF_TRUST_ROLE_SITE) {
        snprintf(why, sizeof why, "certificate of %s has role %s, not site",
                 info.id, ff_trust_role_name(info.role));
        return auth_refuse(f, claimed, method, why, err);
    }
    if (strcmp(info.id, claimed) != 0) {
        snprintf(why, sizeof why, "certificate is for %s, message claims %s",
                 info.id, claimed);
        return auth_refuse(f, claimed, method, why, err);
    }

    /* Known to the registry and not revoked, checked on every call. */
    st = cert_check_cached(f, &info, &ok, reg_why, sizeof reg_why, &e);
    if (st != FF_OK) {
        FF_WARN("refused %s call from site=%s: the revocation check "
                "failed: %s", method, claimed, ff_error_text(&e));
        return ff_error_set(err, FF_ERR_DB, "the coordinator cannot check "
                            "certificates now; try again");
    }
    if (!ok) {
        snprintf(why, sizeof why, "certificate %s: %s", info.serial,
                 reg_why);
        site_revoked_drop(f, claimed, why);
        return auth_refuse(f, claimed, method, why, err);
    }
    if (serial != NULL)
        snprintf(serial, FF_TRUST_SERIAL_HEX + 1, "%s", info.serial);
    return FF_OK;
}

/* ---- Poll ---- */

/* Converts the training config to its wire form. */
static void train_config_wire(const ff_train_config *t,
                              ff_wire_train_config *w)
{
    memset(w, 0, sizeof *w);
    w->epochs = (uint32_t)t->epochs;
    w->batch_size = (uint32_t)t->batch_size;
    w->lr = t->lr;
    strcpy(w->optimizer, t->optimizer == FF_OPT_ADAM ? "adam" : "sgd");
    strcpy(w->lr_schedule,
           t->lr_schedule == FF_LR_COSINE ? "cosine" : "constant");
    w->momentum = t->momentum;
    w->modality_dropout = t->modality_dropout;
    w->weight_decay = t->weight_decay;
    w->seed = t->seed;
}

/* Finds a registered site and refreshes its liveness. Lock held. */
static ff_status site_contact(ff_federation *f, const char *id, int *idx,
                              ff_error *err)
{
    int i = ff_fed_site_find(f, id);

    if (i < 0)
        return ff_error_set(err, FF_ERR_REJECTED, "unknown site '%s'", id);
    if (!f->sites[i].registered)
        return ff_error_set(err, FF_ERR_STATE,
                            "site '%s' is not registered", id);
    f->sites[i].last_seen = ff_fed_now();
    f->sites[i].dropped = 0;
    *idx = i;
    return FF_OK;
}

ff_status ff_federation_poll(ff_federation *f, const ff_wire_poll *req,
                             ff_wire_poll_reply *reply, ff_error *err)
{
    ff_error e2 = {0};
    ff_fed_site *s;
    ff_status st;
    int i, store_seen;

    memset(reply, 0, sizeof *reply);
    reply->poll_interval_ms = f->cfg.poll_interval_ms;
    train_config_wire(&f->cfg.train, &reply->config);
    pthread_mutex_lock(&f->lock);
    st = site_contact(f, req->site_id, &i, err);
    if (st != FF_OK) {
        pthread_mutex_unlock(&f->lock);
        return st;
    }

    /* FINISHED once every round is over (not when stopped early); TRAIN
     * while the site owes an update to the open round; WAIT otherwise. */
    s = &f->sites[i];
    reply->round = f->round;
    reply->model_version = f->version;
    if (f->finished) {
        reply->action = FF_WIRE_FINISHED;
        s->told_finished = 1;
        pthread_cond_broadcast(&f->cond);
    } else if (f->state == FF_FED_TRAINING && s->selected &&
               !s->contributed) {
        reply->action = FF_WIRE_TRAIN;
        reply->config.seed = f->cfg.train.seed + (uint64_t)f->round * 7919u +
                             (uint64_t)i;
        reply->secagg = ff_fed_secagg_task(f, i, &reply->task);
        ff_fed_site_dp_task(f, &reply->site_dp);
        if (f->cfg.secagg && !reply->secagg)
            reply->action = FF_WIRE_WAIT;   /* stages not set up (yet) */
    } else {
        reply->action = FF_WIRE_WAIT;
    }
    store_seen = s->last_seen - s->db_seen >= FF_FED_SEEN_STORE;
    if (store_seen)
        s->db_seen = s->last_seen;
    pthread_mutex_unlock(&f->lock);

    /* The registry's last_seen, refreshed now and then, not every poll. */
    if (store_seen && ff_registry_site_seen(f->reg, req->site_id, &e2) !=
                          FF_OK)
        FF_WARN("site=%s: last_seen not stored: %s", req->site_id,
                ff_error_text(&e2));
    return FF_OK;
}

/* ---- DownloadModel ---- */

/* The registry's production version as a blob of its own (refs 1, never
 * shared), with the signature stored with it. Any known site may fetch
 * it (fedfuse-site deploy); it need not be registered. */
static ff_status production_blob(ff_federation *f, const char *site,
                                 ff_model_blob **out, ff_error *err)
{
    ff_model_blob *b;
    json_t *shown = NULL;
    ff_status st;
    int known;

    pthread_mutex_lock(&f->lock);
    known = ff_fed_site_find(f, site) >= 0;
    pthread_mutex_unlock(&f->lock);
    if (!known)
        return ff_error_set(err, FF_ERR_REJECTED, "unknown site '%s'",
                            site);
    b = calloc(1, sizeof *b);
    if (b == NULL)
        return ff_error_set(err, FF_ERR_NOMEM, "out of memory");
    b->refs = 1;
    st = ff_registry_version_production(f->reg, f->cfg.model, &b->version,
                                        &b->data, &b->len, b->signature,
                                        b->signer_key, &b->metadata,
                                        &b->is_signed, err);
    if (st == FF_OK && b->version == 0)
        st = ff_error_set(err, FF_ERR_NOT_FOUND, "model %s has no "
                          "production version", f->cfg.model);
    if (st == FF_OK)
        st = ff_registry_version_show(f->reg, f->cfg.model, b->version,
                                      &shown, err);
    if (st != FF_OK) {
        ff_federation_blob_release(f, b);
        return st;
    }
    b->parent = (int)json_integer_value(json_object_get(shown, "parent"));
    json_decref(shown);
    crypto_generichash(b->digest, sizeof b->digest, b->data, b->len, NULL,
                       0);
    FF_INFO("site=%s downloads production version %d (%zu bytes, %s)",
            site, b->version, b->len, b->is_signed ? "signed" : "UNSIGNED");
    *out = b;
    return FF_OK;
}


ff_status ff_federation_download(ff_federation *f,
                                 const ff_wire_download *req,
                                 ff_model_blob **blob, ff_error *err)
{
    ff_status st;
    int i;

    *blob = NULL;
    if (req->production)
        return production_blob(f, req->site_id, blob, err);
    pthread_mutex_lock(&f->lock);
    st = site_contact(f, req->site_id, &i, err);
    if (st == FF_OK && (f->state != FF_FED_TRAINING ||
                        req->round != f->round || !f->sites[i].selected))
        st = ff_error_set(err, FF_ERR_STATE,
                          "site '%s' is not training round %d",
                          req->site_id, (int)req->round);
    if (st == FF_OK) {
        f->blob->refs++;
        *blob = f->blob;
    }
    pthread_mutex_unlock(&f->lock);
    if (st == FF_OK)
        FF_INFO("site=%s downloads version %d (%zu bytes) for round %d",
                req->site_id, (*blob)->version, (*blob)->len,
                (int)req->round);
    return st;
}
