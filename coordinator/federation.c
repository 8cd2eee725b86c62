/*
 * federation.c - setting up the federation from the registry, and the
 * Register, Poll and Download handlers.
 */
#include "fed_internal.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../common/ff_log.h"

/* Seconds between stores of a polling site's last_seen in the registry. */
#define FF_FED_SEEN_STORE 10.0

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
        free(blob->data);
        free(blob);
    }
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
        const char *hex = json_string_value(json_object_get(
            json_object_get(site, "details"), "identity_key"));
        int i = name != NULL ? ff_fed_site_find(f, name) : -1;
        size_t len = 0;
        if (i < 0 || hex == NULL)
            continue;
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

    /* Registry, test set, models, then the state they were left in. */
    st = registry_open(f, err);
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
    if (st != FF_OK) {
        ff_federation_destroy(f);
        return st;
    }
    audit_started(f);
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
 * identity key) may be NULL. */
static json_t *register_details(const ff_wire_register *req,
                                const char *key_hex)
{
    json_t *mods = json_array();
    int m;

    for (m = 0; mods != NULL && m < FF_MOD_COUNT; m++)
        if (req->modalities & (1u << m))
            json_array_append_new(
                mods, json_string(ff_modality_name((ff_modality)m)));
    return json_pack("{s:o?, s:I, s:s, s:s, s:s?}", "modalities", mods,
                     "examples", (json_int_t)req->example_count,
                     "code_version", req->code_version, "manifest_digest",
                     req->manifest_digest, "identity_key", key_hex);
}

/* Trust on first use: pins a new site's identity key, refuses a key that
 * differs from the pinned one (and no key when rounds need one). Writes
 * the pinned key's hex into key_hex ("" for none). Returns NULL or the
 * reason to refuse. Takes the lock. */
static const char *identity_pin(ff_federation *f, int i,
                                const ff_wire_register *req, char *key_hex)
{
    const char *why = NULL;
    ff_fed_site *s = &f->sites[i];

    key_hex[0] = '\0';
    pthread_mutex_lock(&f->lock);
    if (!req->has_identity && f->cfg.secagg)
        why = "no identity key (secure aggregation needs one)";
    else if (req->has_identity && s->has_key &&
             sodium_memcmp(s->identity, req->identity_key,
                           FF_WIRE_IDENTITY_BYTES) != 0)
        why = "identity key differs from the key pinned at the site's "
              "first registration";
    else if (req->has_identity && !s->has_key) {
        memcpy(s->identity, req->identity_key, FF_WIRE_IDENTITY_BYTES);
        s->has_key = 1;
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

ff_status ff_federation_register(ff_federation *f,
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

    why = identity_pin(f, i, req, key_hex);
    if (why != NULL) {
        register_refuse(f, req, reply, why);
        return FF_OK;
    }

    /* Recorded in the registry first: a site is registered once stored. */
    details = register_details(req, key_hex[0] ? key_hex : NULL);
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

ff_status ff_federation_download(ff_federation *f,
                                 const ff_wire_download *req,
                                 ff_model_blob **blob, ff_error *err)
{
    ff_status st;
    int i;

    *blob = NULL;
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
