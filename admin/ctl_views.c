/*
 * ctl_views.c - the read-only commands: status, models, versions, show,
 * audit. Each asks the registry for one JSON view and prints it either as
 * is (--json) or as aligned tables.
 */
#include "ctl.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

/* Widest cell in tables, in columns. */
#define FF_CTL_CELL 40

/* ---- small JSON readers ---- */

static const char *
jstr(const json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

/* Appends an integer member as a cell; "-" when absent or null. */
static void
cell_int(ff_ctl_table *t, const json_t *o, const char *key)
{
    const json_t *v = json_object_get(o, key);

    if (json_is_integer(v))
        ff_ctl_table_cellf(t, "%lld", (long long)json_integer_value(v));
    else
        ff_ctl_table_cell(t, "-");
}

static void
cell_time(ff_ctl_table *t, const json_t *o, const char *key)
{
    char buf[40];

    ff_ctl_time(jstr(o, key), buf, sizeof(buf));
    ff_ctl_table_cell(t, buf);
}

/* Appends a JSON member rendered compactly (the table escapes and cuts
 * it). */
static void
cell_json(ff_ctl_table *t, const json_t *o, const char *key)
{
    const json_t *v = json_object_get(o, key);
    char *text = v ? json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;

    ff_ctl_table_cell(t, text ? text : "-");
    free(text);
}

/* An accuracy cell: 4 decimals, "-" when absent or negative (the model
 * reports -1 when no test record had the modality). */
static void
cell_accuracy(ff_ctl_table *t, const json_t *v)
{
    if (json_is_object(v))
        v = json_object_get(v, "accuracy");
    if (json_is_number(v) && json_number_value(v) >= 0.0)
        ff_ctl_table_cellf(t, "%.4f", json_number_value(v));
    else
        ff_ctl_table_cell(t, "-");
}

/* Prints a section title, then the table or "(none)". */
static ff_status
print_section(const char *title, const ff_ctl_table *t, size_t rows,
              ff_error *err)
{
    printf("%s\n", title);
    if (rows == 0) {
        printf("  (none)\n");
        return FF_OK;
    }
    return ff_ctl_table_print(t, stdout, "  ", err);
}

/* ---- status ---- */

/* A coordinator heartbeats every 2 s; one silent for more than this many
 * seconds (3 missed intervals plus slack) and not stopped is stale. */
#define CTL_STALE_AFTER_S 10.0

/* 1 when coordinator c is not stopped and its heartbeat is too old. */
static int
coordinator_stale(const json_t *c)
{
    const char *state = jstr(c, "state");
    double age = json_number_value(json_object_get(c, "heartbeat_age_s"));

    return age > CTL_STALE_AFTER_S && state != NULL &&
           strcmp(state, "stopped") != 0;
}

/* Adds "stale": true/false to every coordinator object in status s. */
static ff_status
mark_stale(json_t *s, ff_error *err)
{
    json_t *list = json_object_get(s, "coordinators");
    json_t *one = json_object_get(s, "coordinator");
    int bad = 0;

    for (size_t i = 0; i < json_array_size(list); i++) {
        json_t *c = json_array_get(list, i);
        bad |= json_object_set_new(c, "stale",
                                   json_boolean(coordinator_stale(c)));
    }
    if (json_is_object(one))
        bad |= json_object_set_new(one, "stale",
                                   json_boolean(coordinator_stale(one)));
    if (bad)
        return ff_error_set(err, FF_ERR_NOMEM, "out of memory");
    return FF_OK;
}

static ff_status
status_coordinators(const json_t *list, ff_error *err)
{
    static const char *const h[] = {"MODEL", "STATE", "ADDRESS", "ROUND",
                                    "PID", "HEARTBEAT"};
    ff_ctl_table t;
    char age[48], state[96];

    ff_ctl_table_init(&t, 6, h, FF_CTL_CELL);
    t.right = 1u << 3 | 1u << 4;
    for (size_t i = 0; i < json_array_size(list); i++) {
        const json_t *c = json_array_get(list, i);
        double s = json_number_value(json_object_get(c, "heartbeat_age_s"));
        int stale = coordinator_stale(c);
        ff_ctl_age(s, age, sizeof(age));
        size_t n = strlen(age);
        snprintf(age + n, sizeof(age) - n, " ago");
        if (stale)
            snprintf(state, sizeof(state), "STALE (%.60s)", jstr(c, "state"));
        ff_ctl_table_cell(&t, jstr(c, "model"));
        ff_ctl_table_cell(&t, stale ? state : jstr(c, "state"));
        ff_ctl_table_cell(&t, jstr(c, "address"));
        cell_int(&t, c, "round");
        cell_int(&t, c, "pid");
        ff_ctl_table_cell(&t, age);
    }
    ff_status st = print_section("coordinator", &t, json_array_size(list),
                                 err);
    ff_ctl_table_cleanup(&t);
    return st;
}

static ff_status
status_sites(const json_t *list, ff_error *err)
{
    static const char *const h[] = {"SITE", "FIRST SEEN", "LAST SEEN", "AGO",
                                    "DETAILS"};
    ff_ctl_table t;
    char age[32];
    char title[48];

    ff_ctl_table_init(&t, 5, h, FF_CTL_CELL);
    t.right = 1u << 3;
    for (size_t i = 0; i < json_array_size(list); i++) {
        const json_t *s = json_array_get(list, i);
        ff_ctl_age(json_number_value(json_object_get(s, "last_seen_age_s")),
                   age, sizeof(age));
        ff_ctl_table_cell(&t, jstr(s, "name"));
        cell_time(&t, s, "first_seen");
        cell_time(&t, s, "last_seen");
        ff_ctl_table_cell(&t, age);
        cell_json(&t, s, "details");
    }
    snprintf(title, sizeof(title), "sites (%zu)", json_array_size(list));
    ff_status st = print_section(title, &t, json_array_size(list), err);
    ff_ctl_table_cleanup(&t);
    return st;
}

static ff_status
status_rounds(const json_t *current, const json_t *recent, ff_error *err)
{
    static const char *const hc[] = {"MODEL", "ROUND", "STARTED",
                                     "RUNNING FOR"};
    static const char *const hr[] = {"MODEL", "ROUND", "STATE", "STARTED",
                                     "FINISHED", "REASON"};
    ff_ctl_table t;
    char age[32];

    ff_ctl_table_init(&t, 4, hc, FF_CTL_CELL);
    t.right = 1u << 1;
    for (size_t i = 0; i < json_array_size(current); i++) {
        const json_t *r = json_array_get(current, i);
        ff_ctl_age(json_number_value(json_object_get(r, "age_s")), age,
                   sizeof(age));
        ff_ctl_table_cell(&t, jstr(r, "model"));
        cell_int(&t, r, "number");
        cell_time(&t, r, "started_at");
        ff_ctl_table_cell(&t, age);
    }
    ff_status st = print_section("rounds running", &t,
                                 json_array_size(current), err);
    ff_ctl_table_cleanup(&t);
    if (st != FF_OK)
        return st;

    ff_ctl_table_init(&t, 6, hr, FF_CTL_CELL);
    t.right = 1u << 1;
    for (size_t i = 0; i < json_array_size(recent); i++) {
        const json_t *r = json_array_get(recent, i);
        ff_ctl_table_cell(&t, jstr(r, "model"));
        cell_int(&t, r, "number");
        ff_ctl_table_cell(&t, jstr(r, "state"));
        cell_time(&t, r, "started_at");
        cell_time(&t, r, "finished_at");
        ff_ctl_table_cell(&t, jstr(r, "reason"));
    }
    st = print_section("recent rounds", &t, json_array_size(recent), err);
    ff_ctl_table_cleanup(&t);
    return st;
}

ff_status
ff_ctl_status(ff_ctl *ctl, ff_error *err)
{
    ff_registry *r = NULL;
    json_t *s = NULL;

    ff_status st = ff_ctl_connect(ctl, &r, err);
    if (st == FF_OK)
        st = ff_registry_status(r, &s, err);
    if (st == FF_OK)
        st = mark_stale(s, err);
    if (st != FF_OK) {
        json_decref(s);
        return st;
    }
    if (ctl->json) {
        st = ff_ctl_print_json(s, err);
    } else {
        st = status_coordinators(json_object_get(s, "coordinators"), err);
        if (st == FF_OK)
            st = status_sites(json_object_get(s, "sites"), err);
        if (st == FF_OK)
            st = status_rounds(json_object_get(s, "current_rounds"),
                               json_object_get(s, "rounds"), err);
    }
    json_decref(s);
    return st;
}

/* ---- models ---- */

ff_status
ff_ctl_models(ff_ctl *ctl, ff_error *err)
{
    static const char *const h[] = {"MODEL", "VERSIONS", "LATEST",
                                    "CREATED"};
    ff_registry *r = NULL;
    json_t *list = NULL;
    ff_ctl_table t;

    ff_status st = ff_ctl_connect(ctl, &r, err);
    if (st == FF_OK)
        st = ff_registry_models(r, &list, err);
    if (st != FF_OK)
        return st;
    if (ctl->json) {
        st = ff_ctl_print_json(list, err);
        json_decref(list);
        return st;
    }

    ff_ctl_table_init(&t, 4, h, FF_CTL_CELL);
    t.right = 1u << 1 | 1u << 2;
    for (size_t i = 0; i < json_array_size(list); i++) {
        const json_t *m = json_array_get(list, i);
        ff_ctl_table_cell(&t, jstr(m, "name"));
        cell_int(&t, m, "versions");
        cell_int(&t, m, "latest");
        cell_time(&t, m, "created_at");
    }
    if (json_array_size(list) == 0)
        printf("no models\n");
    else
        st = ff_ctl_table_print(&t, stdout, "", err);
    ff_ctl_table_cleanup(&t);
    json_decref(list);
    return st;
}

/* ---- versions ---- */

/* Most per-modality accuracy columns shown. */
#define FF_CTL_MAX_ALONE 8

/* Collects the keys of metrics.alone over all versions (the first
 * FF_CTL_MAX_ALONE seen), sorted, into keys (borrowed from list). */
static size_t
alone_keys(const json_t *list, const char **keys)
{
    size_t n = 0;

    for (size_t i = 0; i < json_array_size(list); i++) {
        const json_t *alone = json_object_get(
            json_object_get(json_array_get(list, i), "metrics"), "alone");
        const char *k;
        const json_t *v;
        json_object_foreach((json_t *)alone, k, v) {
            size_t j = 0;
            while (j < n && strcmp(keys[j], k) != 0)
                j++;
            if (j == n && n < FF_CTL_MAX_ALONE)
                keys[n++] = k;
        }
    }

    /* Alphabetical, whatever order the database keeps them in. */
    for (size_t i = 1; i < n; i++)
        for (size_t j = i; j > 0 && strcmp(keys[j - 1], keys[j]) > 0; j--) {
            const char *tmp = keys[j];
            keys[j] = keys[j - 1];
            keys[j - 1] = tmp;
        }
    return n;
}

/* The two epsilon cells of a version: its privacy summary's
 * record_epsilon and site_epsilon; "-" when it has none (published
 * without one) or lacks the key, "inf" when recorded as unbounded. */
static void
cell_privacy(ff_ctl_table *t, const json_t *v)
{
    static const char *const keys[] = {"record_epsilon", "site_epsilon"};
    const json_t *p = json_object_get(v, "privacy");
    char buf[32];

    for (size_t i = 0; i < 2; i++) {
        ff_ctl_epsilon(json_is_object(p) ? json_object_get(p, keys[i])
                                         : NULL,
                       buf, sizeof(buf));
        ff_ctl_table_cell(t, buf);
    }
}

static ff_status
versions_table(const json_t *list, ff_error *err)
{
    const char *h[11 + FF_CTL_MAX_ALONE] = {"VERSION", "STAGE", "PARENT",
                                            "ROUND", "CREATED", "SITES",
                                            "EXAMPLES", "ACCURACY"};
    char names[FF_CTL_MAX_ALONE][40];
    const char *keys[FF_CTL_MAX_ALONE];
    ff_ctl_table t;

    /* Header: fixed columns, one per modality seen, the two epsilons,
     * the digest; numbers right-aligned. */
    size_t nk = alone_keys(list, keys);
    for (size_t k = 0; k < nk; k++) {
        char *safe = ff_ctl_escape(keys[k], 16);
        snprintf(names[k], sizeof(names[k]), "ALONE:%s", safe ? safe : "?");
        free(safe);
        h[8 + k] = names[k];
    }
    h[8 + nk] = "EPS(RECORD)";
    h[9 + nk] = "EPS(SITE)";
    h[10 + nk] = "DIGEST";
    ff_ctl_table_init(&t, 11 + nk, h, FF_CTL_CELL);
    t.right = ((1u << (10 + nk)) - 1u) & ~(1u << 1) & ~(1u << 4);

    for (size_t i = 0; i < json_array_size(list); i++) {
        const json_t *v = json_array_get(list, i);
        const json_t *metrics = json_object_get(v, "metrics");
        const char *digest = jstr(v, "digest");
        cell_int(&t, v, "version");
        ff_ctl_table_cell(&t, jstr(v, "stage"));
        cell_int(&t, v, "parent");
        cell_int(&t, v, "round");
        cell_time(&t, v, "created_at");
        cell_int(&t, v, "sites");
        cell_int(&t, v, "examples");
        cell_accuracy(&t, json_object_get(metrics, "accuracy"));
        for (size_t k = 0; k < nk; k++)
            cell_accuracy(&t, json_object_get(json_object_get(metrics,
                                                              "alone"),
                                              keys[k]));
        cell_privacy(&t, v);
        ff_ctl_table_cellf(&t, "%.12s", digest ? digest : "-");
    }
    if (json_array_size(list) == 0) {
        printf("no versions\n");
        ff_ctl_table_cleanup(&t);
        return FF_OK;
    }
    ff_status st = ff_ctl_table_print(&t, stdout, "", err);
    ff_ctl_table_cleanup(&t);
    return st;
}

ff_status
ff_ctl_versions(ff_ctl *ctl, ff_error *err)
{
    ff_registry *r = NULL;
    json_t *list = NULL;

    ff_status st = ff_ctl_connect(ctl, &r, err);
    if (st == FF_OK)
        st = ff_registry_versions(r, ctl->pos[0], &list, err);
    if (st == FF_ERR_NOT_FOUND)
        return ff_error_wrap(err, st, "%.60s", ctl->pos[0]);
    if (st != FF_OK)
        return st;
    st = ctl->json ? ff_ctl_print_json(list, err)
                   : versions_table(list, err);
    json_decref(list);
    return st;
}

/* ---- show ---- */

/* Prints "label  value" with the value escaped but never cut. */
static void
kv(const char *label, const char *value)
{
    char *safe = ff_ctl_escape(value, 0);

    printf("%-16s%s\n", label, safe ? safe : "?");
    free(safe);
}

/* Prints a JSON member indented under its label; every non-ASCII and
 * control character is \u-escaped by jansson, so the text is inert. */
static void
kv_json(const char *label, const json_t *v)
{
    char *text = json_dumps(v ? v : json_null(),
                            JSON_INDENT(2) | JSON_ENSURE_ASCII |
                                JSON_REAL_PRECISION(9) |
                                JSON_ENCODE_ANY | JSON_SORT_KEYS);
    printf("%s\n", label);
    for (char *line = text, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        if (next != NULL)
            *next++ = '\0';
        printf("  %s\n", line);
        if (next == NULL)
            break;
    }
    free(text);
}

/* The signature lines: the signer's key, or "unsigned". */
static void
show_signature(const json_t *v)
{
    char buf[160];

    if (!json_is_true(json_object_get(v, "signed"))) {
        kv("signature", "- (unsigned)");
        return;
    }
    snprintf(buf, sizeof(buf), "Ed25519 %.24s... by key %s",
             jstr(v, "signature") ? jstr(v, "signature") : "?",
             jstr(v, "signer_key") ? jstr(v, "signer_key") : "?");
    kv("signature", buf);

    /* The metadata as the JSON it is, or as the text it is. */
    const char *meta = jstr(v, "signed_metadata");
    json_t *parsed = meta ? json_loads(meta, 0, NULL) : NULL;
    if (parsed != NULL)
        kv_json("signed metadata", parsed);
    else
        kv("signed metadata", meta ? meta : "-");
    json_decref(parsed);
}

/* The contributions with their lineage: manifest digest, code version. */
static ff_status
show_contributions(const json_t *v, ff_error *err)
{
    static const char *const h[] = {"SITE", "EXAMPLES", "MANIFEST",
                                    "CODE VERSION"};
    const json_t *list = json_object_get(v, "contributions");
    ff_ctl_table t;

    ff_ctl_table_init(&t, 4, h, 0);
    t.right = 1u << 1;
    for (size_t i = 0; i < json_array_size(list); i++) {
        const json_t *c = json_array_get(list, i);
        const char *md = jstr(c, "manifest_digest");
        ff_ctl_table_cell(&t, jstr(c, "site"));
        cell_int(&t, c, "examples");
        if (md != NULL)
            ff_ctl_table_cellf(&t, "%.16s...", md);
        else
            ff_ctl_table_cell(&t, "-");
        ff_ctl_table_cell(&t, jstr(c, "code_version"));
    }
    ff_status st = FF_OK;
    if (json_array_size(list) > 0)
        st = ff_ctl_table_print(&t, stdout, "  ", err);
    ff_ctl_table_cleanup(&t);
    return st;
}

static ff_status
show_text(const json_t *v, ff_error *err)
{
    char buf[128], t1[40], t2[40];

    kv("model", jstr(v, "model"));
    snprintf(buf, sizeof(buf), "%lld",
             (long long)json_integer_value(json_object_get(v, "version")));
    kv("version", buf);
    kv("stage", jstr(v, "stage"));
    const json_t *parent = json_object_get(v, "parent");
    snprintf(buf, sizeof(buf), "%lld", (long long)json_integer_value(parent));
    kv("parent", json_is_integer(parent) ? buf : "- (first version)");
    const json_t *round = json_object_get(v, "round");
    ff_ctl_time(jstr(v, "round_started_at"), t1, sizeof(t1));
    ff_ctl_time(jstr(v, "round_finished_at"), t2, sizeof(t2));
    snprintf(buf, sizeof(buf), "%lld (%s, started %s, finished %s)",
             (long long)json_integer_value(round),
             jstr(v, "round_state") ? jstr(v, "round_state") : "-", t1, t2);
    kv("round", json_is_integer(round) ? buf : "- (no round)");
    ff_ctl_time(jstr(v, "created_at"), t1, sizeof(t1));
    kv("created", t1);
    snprintf(buf, sizeof(buf), "blake2b %s",
             jstr(v, "digest") ? jstr(v, "digest") : "-");
    kv("digest", buf);
    snprintf(buf, sizeof(buf), "%lld bytes",
             (long long)json_integer_value(json_object_get(v,
                                                           "artifact_len")));
    kv("size", buf);
    snprintf(buf, sizeof(buf), "%lld sites, %lld examples",
             (long long)json_integer_value(json_object_get(v, "sites")),
             (long long)json_integer_value(json_object_get(v, "examples")));
    kv("contributions", buf);
    ff_status st = show_contributions(v, err);

    show_signature(v);
    kv_json("privacy", json_object_get(v, "privacy"));
    kv_json("metrics", json_object_get(v, "metrics"));
    kv_json("train config", json_object_get(v, "train_config"));
    kv_json("round config", json_object_get(v, "round_config"));
    kv_json("model config", json_object_get(v, "model_config"));
    return st;
}

ff_status
ff_ctl_show(ff_ctl *ctl, ff_error *err)
{
    ff_registry *r = NULL;
    json_t *v = NULL;
    long version;

    ff_status st = ff_ctl_parse_int(ctl->pos[1], "VERSION", 1, INT_MAX,
                                    &version, err);
    if (st == FF_OK)
        st = ff_ctl_connect(ctl, &r, err);
    if (st == FF_OK)
        st = ff_registry_version_show(r, ctl->pos[0], (int)version, &v, err);
    if (st == FF_ERR_NOT_FOUND)
        return ff_error_wrap(err, st, "%.60s", ctl->pos[0]);
    if (st != FF_OK)
        return st;
    st = ctl->json ? ff_ctl_print_json(v, err) : show_text(v, err);
    json_decref(v);
    return st;
}

/* ---- audit ---- */

/* Rows shown when --limit is not given. */
#define FF_CTL_AUDIT_DEFAULT_LIMIT 100

static ff_status
audit_table(const json_t *rows, ff_error *err)
{
    static const char *const h[] = {"ID", "TIME", "ACTOR", "ACTION", "SITE",
                                    "DETAILS"};
    ff_ctl_table t;

    if (json_array_size(rows) == 0) {
        printf("no audit rows match\n");
        return FF_OK;
    }
    ff_ctl_table_init(&t, 6, h, FF_CTL_CELL);
    t.right = 1u;
    for (size_t i = 0; i < json_array_size(rows); i++) {
        const json_t *a = json_array_get(rows, i);
        cell_int(&t, a, "id");
        cell_time(&t, a, "time");
        ff_ctl_table_cell(&t, jstr(a, "actor"));
        ff_ctl_table_cell(&t, jstr(a, "action"));
        ff_ctl_table_cell(&t, jstr(a, "site"));
        cell_json(&t, a, "details");
    }
    ff_status st = ff_ctl_table_print(&t, stdout, "", err);
    ff_ctl_table_cleanup(&t);
    return st;
}

ff_status
ff_ctl_audit(ff_ctl *ctl, ff_error *err)
{
    ff_registry *r = NULL;
    json_t *rows = NULL;
    long limit = FF_CTL_AUDIT_DEFAULT_LIMIT;

    /* verify and export are subcommands; the listing takes filters. */
    if (ctl->npos == 1 && strcmp(ctl->pos[0], "verify") == 0)
        return ff_ctl_audit_verify(ctl, err);
    if (ctl->npos == 1 && strcmp(ctl->pos[0], "export") == 0)
        return ff_ctl_audit_export(ctl, err);
    if (ctl->npos == 1)
        return ff_error_set(err, FF_ERR_ARG,
                            "unknown audit subcommand '%.40s' (verify or "
                            "export)",
                            ctl->pos[0]);
    if (ctl->key != NULL || ctl->out != NULL)
        return ff_error_set(err, FF_ERR_ARG, "%s belongs to audit %s",
                            ctl->key ? "--key" : "--out",
                            ctl->key ? "verify" : "export");

    ff_status st = FF_OK;
    if (ctl->limit != NULL)
        st = ff_ctl_parse_int(ctl->limit, "--limit", 0, 1000000000L, &limit,
                              err);
    if (st == FF_OK)
        st = ff_ctl_connect(ctl, &r, err);
    ff_audit_filter f = {ctl->site, ctl->action, ctl->since, ctl->until,
                         limit, ctl->actor, ctl->model, ctl->version};
    if (st == FF_OK)
        st = ff_registry_audit_query(r, &f, &rows, err);
    if (st != FF_OK)
        return st;

    if (ctl->json) {
        st = ff_ctl_print_json(rows, err);
    } else {
        st = audit_table(rows, err);
        if (limit > 0 && json_array_size(rows) == (size_t)limit)
            fprintf(stderr,
                    "fedfusectl: showing the newest %ld rows; --limit 0 "
                    "shows all\n",
                    limit);
    }
    json_decref(rows);
    return st;
}
