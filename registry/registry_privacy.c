/*
 * registry_privacy.c - the privacy ledger (what each round spent, or
 * refused to spend, per site and for the model) and the model budgets.
 *
 * Unbounded values travel as SQL NULL and come back as JSON null:
 * INFINITY epsilon (a site or model without differential privacy) and
 * INFINITY budget (none in force); NAN noise multiplier, clip or
 * sampling rate (not applicable). Every write is one transaction with
 * its audit row.
 */
#include "ff_registry.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "registry_pq.h"

/* ---- checking an entry ------------------------------------------------ */

/* 1 when s is one of the NULL-terminated words. */
static int
one_of(const char *s, const char *const *words)
{
    for (size_t i = 0; s != NULL && words[i] != NULL; i++)
        if (strcmp(s, words[i]) == 0)
            return 1;
    return 0;
}

/* Checks an optional quantity: NAN (not applicable), or finite and in
 * [0, hi] (hi may be HUGE_VAL: no upper end). `what` names it. */
static ff_status
check_optional(double v, const char *what, double hi, ff_error *err)
{
    if (isnan(v) || (isfinite(v) && v >= 0 && v <= hi))
        return FF_OK;
    if (isfinite(hi))
        return ff_error_set(err, FF_ERR_ARG,
                            "%s %g: must be in [0, %g], or NAN when not "
                            "applicable", what, v, hi);
    return ff_error_set(err, FF_ERR_ARG,
                        "%s %g: must be finite and >= 0, or NAN when not "
                        "applicable", what, v);
}

/* The numbers of an entry: epsilon and budget >= 0 or INFINITY; delta in
 * [0, 1]; the optional ones NAN or in range. */
static ff_status
ledger_check_numbers(const ff_ledger_entry *e, ff_error *err)
{
    if (isnan(e->epsilon) || e->epsilon < 0)
        return ff_error_set(err, FF_ERR_ARG,
                            "epsilon %g: must be >= 0, or INFINITY when "
                            "unbounded", e->epsilon);
    if (!(e->delta >= 0 && e->delta <= 1))
        return ff_error_set(err, FF_ERR_ARG, "delta %g: must be in [0, 1]",
                            e->delta);
    if (isnan(e->budget) || e->budget < 0)
        return ff_error_set(err, FF_ERR_ARG,
                            "budget %g: must be >= 0, or INFINITY when none "
                            "is set", e->budget);
    if (e->steps < 0)
        return ff_error_set(err, FF_ERR_ARG, "steps %lld: must be >= 0",
                            (long long)e->steps);
    ff_status st = check_optional(e->noise_multiplier, "noise multiplier",
                                  HUGE_VAL, err);
    if (st == FF_OK)
        st = check_optional(e->clip, "clip", HUGE_VAL, err);
    if (st == FF_OK)
        st = check_optional(e->sampling_rate, "sampling rate", 1, err);
    return st;
}

/* Checks an entry before touching the database. */
static ff_status
ledger_check(const ff_ledger_entry *e, ff_error *err)
{
    static const char *const statuses[] = {"spent", "refused", NULL};
    static const char *const mechanisms[] = {"dp-sgd", "central-gaussian",
                                             "ddgauss", "none", NULL};

    if (e == NULL)
        return ff_error_set(err, FF_ERR_ARG, "no ledger entry given");
    ff_status st = ff_pq_check_name(e->model, "model", err);
    if (st == FF_OK && e->site != NULL)
        st = ff_pq_check_name(e->site, "site", err);
    if (st != FF_OK)
        return st;
    if (e->round < 1)
        return ff_error_set(err, FF_ERR_ARG, "round %d: must be >= 1",
                            e->round);
    if (!one_of(e->status, statuses))
        return ff_error_set(err, FF_ERR_ARG,
                            "status '%.40s': must be spent or refused",
                            e->status ? e->status : "(null)");
    if (!one_of(e->mechanism, mechanisms))
        return ff_error_set(err, FF_ERR_ARG,
                            "mechanism '%.40s': must be dp-sgd, "
                            "central-gaussian, ddgauss or none",
                            e->mechanism ? e->mechanism : "(null)");
    if (e->params != NULL && !json_is_object(e->params))
        return ff_error_set(err, FF_ERR_ARG,
                            "params must be a JSON object or NULL");
    return ledger_check_numbers(e, err);
}

/* ---- writing ------------------------------------------------------------ */

/* A real for JSON: null when not finite (unbounded or not applicable). */
static json_t *
json_num(double v)
{
    return isfinite(v) ? json_real(v) : json_null();
}

/* Inserts the row. Caller holds the lock and a transaction. */
static ff_status
ledger_insert(ff_registry *r, const ff_ledger_entry *e, ff_error *err)
{
    ff_pq_args a;

    ff_pq_args_init(&a);
    ff_pq_arg_text(&a, e->model);
    ff_pq_arg_int(&a, e->round);
    ff_pq_arg_text(&a, e->site);
    ff_pq_arg_text(&a, e->status);
    ff_pq_arg_text(&a, e->mechanism);
    ff_pq_arg_double(&a, e->epsilon);
    ff_pq_arg_double(&a, e->delta);
    ff_pq_arg_double(&a, e->noise_multiplier);
    ff_pq_arg_double(&a, e->clip);
    ff_pq_arg_double(&a, e->sampling_rate);
    ff_pq_arg_int(&a, e->steps);
    ff_pq_arg_double(&a, e->budget);
    ff_pq_arg_text(&a, e->reason);
    ff_pq_arg_json(&a, e->params);
    ff_status st = ff_pq_command(
        r,
        "INSERT INTO privacy_ledger (model, round, site, status, mechanism, "
        "epsilon, delta, noise_multiplier, clip, sampling_rate, steps, "
        "budget, reason, params) VALUES ($1, $2::int, $3, $4, $5, "
        "$6::float8, $7::float8, $8::float8, $9::float8, $10::float8, "
        "$11::bigint, $12::float8, $13, $14::jsonb)",
        &a, err);
    ff_pq_args_cleanup(&a);
    return st;
}

/* The audit row of an entry: privacy.spent or privacy.refused. */
static ff_status
ledger_audit(ff_registry *r, const ff_ledger_entry *e, ff_error *err)
{
    json_t *d = json_pack("{s:s, s:i, s:s, s:o, s:o, s:o, s:I, s:s?}",
                          "model", e->model, "round", e->round, "mechanism",
                          e->mechanism, "epsilon", json_num(e->epsilon),
                          "delta", json_num(e->delta), "budget",
                          json_num(e->budget), "steps", (json_int_t)e->steps,
                          "reason", e->reason);
    if (d == NULL)
        return ff_error_set(err, FF_ERR_NOMEM, "registry: out of memory");
    const char *action = strcmp(e->status, "spent") == 0 ? "privacy.spent"
                                                         : "privacy.refused";
    ff_status st = ff_pq_audit(r, "coordinator", action, e->site, d, err);
    json_decref(d);
    return st;
}

/* The model's existence, the row and its audit row. Caller holds the
 * lock and a transaction. */
static ff_status
ledger_add_tx(ff_registry *r, const ff_ledger_entry *e, ff_error *err)
{
    ff_status st = ff_pq_model_exists(r, e->model, err);
    if (st == FF_OK)
        st = ledger_insert(r, e, err);
    if (st == FF_OK)
        st = ledger_audit(r, e, err);
    return st;
}

ff_status
ff_registry_ledger_add(ff_registry *r, const ff_ledger_entry *e,
                       ff_error *err)
{
    ff_status st = ledger_check(e, err);
    if (st != FF_OK)
        return ff_error_wrap(err, st, "privacy ledger entry");

    st = ff_pq_lock(r, err);
    if (st == FF_OK) {
        st = ff_pq_begin(r, err);
        if (st == FF_OK)
            st = ff_pq_end(r, ledger_add_tx(r, e, err), err);
    }
    ff_pq_unlock(r);
    if (st != FF_OK)
        return ff_error_wrap(err, st, "recording privacy of model %.60s "
                             "round %d", e->model, e->round);
    return FF_OK;
}

/* Upserts the budget and audits it with the previous one. Caller holds
 * the lock and a transaction. */
static ff_status
budget_set_tx(ff_registry *r, const char *model, double epsilon,
              double delta, const char *actor, ff_error *err)
{
    ff_pq_args a;
    json_t *prev = NULL;

    /* The model, locked so that concurrent setters queue, and the budget
     * it had. */
    ff_pq_args_init(&a);
    ff_pq_arg_text(&a, model);
    ff_status st = ff_pq_model_exists(r, model, err);
    if (st == FF_OK)
        st = ff_pq_fetch_json(
            r,
            "SELECT coalesce((SELECT json_build_object('epsilon', "
            "  b.epsilon, 'delta', b.delta, 'set_by', b.set_by) "
            "  FROM model_budget b WHERE b.model = m.name), 'null'::json) "
            "FROM models m WHERE m.name = $1 FOR UPDATE OF m",
            &a, &prev, err);
    ff_pq_args_cleanup(&a);

    /* The new one. */
    ff_pq_args_init(&a);
    ff_pq_arg_text(&a, model);
    ff_pq_arg_double(&a, epsilon);
    ff_pq_arg_double(&a, delta);
    ff_pq_arg_text(&a, actor);
    if (st == FF_OK)
        st = ff_pq_command(
            r,
            "INSERT INTO model_budget (model, epsilon, delta, set_by) "
            "VALUES ($1, $2::float8, $3::float8, $4) "
            "ON CONFLICT (model) DO UPDATE SET epsilon = EXCLUDED.epsilon, "
            "delta = EXCLUDED.delta, set_by = EXCLUDED.set_by, "
            "set_at = now()",
            &a, err);
    ff_pq_args_cleanup(&a);
    if (st != FF_OK) {
        json_decref(prev);
        return st;
    }

    json_t *d = json_pack("{s:s, s:f, s:f, s:o}", "model", model, "epsilon",
                          epsilon, "delta", delta, "previous",
                          prev ? prev : json_null());
    if (d == NULL)
        return ff_error_set(err, FF_ERR_NOMEM, "registry: out of memory");
    st = ff_pq_audit(r, actor, "privacy.budget_set", NULL, d, err);
    json_decref(d);
    return st;
}

ff_status
ff_registry_budget_set(ff_registry *r, const char *model, double epsilon,
                       double delta, const char *actor, ff_error *err)
{
    ff_status st = ff_pq_check_name(model, "model", err);
    if (st != FF_OK)
        return st;
    if (!(epsilon > 0) || !isfinite(epsilon))
        return ff_error_set(err, FF_ERR_ARG,
                            "budget epsilon %g: must be finite and > 0",
                            epsilon);
    if (!(delta > 0 && delta < 1))
        return ff_error_set(err, FF_ERR_ARG,
                            "budget delta %g: must be in (0, 1)", delta);
    if (actor == NULL || actor[0] == '\0')
        return ff_error_set(err, FF_ERR_ARG, "budget: actor is empty");

    st = ff_pq_lock(r, err);
    if (st == FF_OK) {
        st = ff_pq_begin(r, err);
        if (st == FF_OK)
            st = ff_pq_end(r, budget_set_tx(r, model, epsilon, delta, actor,
                                            err),
                           err);
    }
    ff_pq_unlock(r);
    if (st != FF_OK)
        return ff_error_wrap(err, st, "setting the privacy budget");
    return FF_OK;
}

/* ---- reading ------------------------------------------------------------ */

/* A float8 in text format (the session's shortest exact spelling). */
static ff_status
get_float8(const PGresult *res, int col, double *out, ff_error *err)
{
    char *end;
    const char *text = PQgetvalue(res, 0, col);

    *out = strtod(text, &end);
    if (end == text || *end != '\0')
        return ff_error_set(err, FF_ERR_INTERNAL,
                            "database: expected a number, got '%.30s'",
                            text);
    return FF_OK;
}

ff_status
ff_registry_budget_get(ff_registry *r, const char *model, double *epsilon,
                       double *delta, int *found, ff_error *err)
{
    ff_pq_args a;
    PGresult *res = NULL;
    double e = 0, d = 0;

    *found = 0;
    ff_pq_args_init(&a);
    ff_pq_arg_text(&a, model);
    ff_status st = ff_pq_lock(r, err);
    if (st == FF_OK)
        st = ff_pq_query(r,
                         "SELECT epsilon, delta FROM model_budget "
                         "WHERE model = $1",
                         &a, 0, PGRES_TUPLES_OK, &res, err);
    ff_pq_unlock(r);
    ff_pq_args_cleanup(&a);

    int have = st == FF_OK && PQntuples(res) == 1;
    if (have)
        st = get_float8(res, 0, &e, err);
    if (have && st == FF_OK)
        st = get_float8(res, 1, &d, err);
    PQclear(res);
    if (st != FF_OK)
        return ff_error_wrap(err, st, "reading the privacy budget");
    if (have) {
        *epsilon = e;
        *delta = d;
        *found = 1;
    }
    return FF_OK;
}

/* The model's budget as JSON, or null; m is the models row. */
#define LEDGER_BUDGET                                                    \
    "(SELECT json_build_object('epsilon', b.epsilon, 'delta', b.delta, " \
    "'set_by', b.set_by, 'set_at', b.set_at) FROM model_budget b "       \
    "WHERE b.model = m.name)"

/* One ledger row l as JSON, without its id. */
#define LEDGER_FIELDS                                                    \
    "'round', l.round, 'site', l.site, 'status', l.status, "             \
    "'mechanism', l.mechanism, 'epsilon', l.epsilon, 'delta', l.delta, " \
    "'noise_multiplier', l.noise_multiplier, 'clip', l.clip, "           \
    "'sampling_rate', l.sampling_rate, 'steps', l.steps, "               \
    "'budget', l.budget, 'reason', l.reason, 'params', l.params, "       \
    "'at', l.at"

/* The model's privacy audit rows (served by the partial hash index
 * audit_privacy_model of migration 6). */
#define LEDGER_AUDIT_ROWS                                                \
    "a.site IS NULL AND a.action IN ('privacy.spent', 'privacy.refused') " \
    "AND a.details->>'model' = $1"

/* Reads one JSON document about model (sql's $1) with the lock held,
 * after checking that the model exists. `what` names the read in an
 * error. */
static ff_status
ledger_read(ff_registry *r, const char *model, const char *sql,
            ff_pq_args *a, json_t **out, const char *what, ff_error *err)
{
    *out = NULL;
    ff_status st = ff_pq_check_name(model, "model", err);
    if (st != FF_OK)
        return st;
    st = ff_pq_lock(r, err);
    if (st == FF_OK)
        st = ff_pq_model_exists(r, model, err);
    if (st == FF_OK)
        st = ff_pq_fetch_json(r, sql, a, out, err);
    ff_pq_unlock(r);
    if (st != FF_OK)
        return ff_error_wrap(err, st, "%s", what);
    return FF_OK;
}

ff_status
ff_registry_ledger(ff_registry *r, const char *model, json_t **out,
                   ff_error *err)
{
    static const char sql[] =
        "SELECT json_build_object('model', m.name, 'budget', "
        LEDGER_BUDGET ", 'entries', coalesce((SELECT json_agg("
        "json_build_object(" LEDGER_FIELDS ") ORDER BY l.id) "
        "FROM privacy_ledger l WHERE l.model = m.name), '[]'::json)) "
        "FROM models m WHERE m.name = $1";
    ff_pq_args a;

    ff_pq_args_init(&a);
    ff_pq_arg_text(&a, model);
    ff_status st = ledger_read(r, model, sql, &a, out,
                               "reading the privacy ledger", err);
    ff_pq_args_cleanup(&a);
    return st;
}

/* ---- paging and summing up ---------------------------------------------- */

ff_status
ff_registry_ledger_page(ff_registry *r, const char *model,
                        const ff_ledger_page *p, json_t **out,
                        ff_error *err)
{
    /* Oldest first after an id, or the tail; both walk the index
     * privacy_ledger_model (model, id) and stop after limit rows. */
    static const char after_sql[] =
        "SELECT json_build_object('model', m.name, 'budget', "
        LEDGER_BUDGET ", 'entries', coalesce((SELECT json_agg(x.e "
        "ORDER BY x.id) FROM (SELECT l.id, json_build_object('id', l.id, "
        LEDGER_FIELDS ") AS e FROM privacy_ledger l WHERE l.model = m.name "
        "AND l.id > $2::bigint ORDER BY l.id LIMIT $3::int) x), "
        "'[]'::json)) FROM models m WHERE m.name = $1";
    static const char newest_sql[] =
        "SELECT json_build_object('model', m.name, 'budget', "
        LEDGER_BUDGET ", 'total', (SELECT count(*) FROM privacy_ledger c "
        "WHERE c.model = m.name), 'entries', coalesce((SELECT json_agg(x.e "
        "ORDER BY x.id) FROM (SELECT l.id, json_build_object('id', l.id, "
        LEDGER_FIELDS ") AS e FROM privacy_ledger l WHERE l.model = m.name "
        "ORDER BY l.id DESC LIMIT $2::int) x), '[]'::json)) "
        "FROM models m WHERE m.name = $1";
    ff_pq_args a;

    *out = NULL;
    if (p == NULL)
        return ff_error_set(err, FF_ERR_ARG, "no ledger page given");
    if (p->limit < 1 || p->limit > FF_REGISTRY_LEDGER_PAGE_MAX)
        return ff_error_set(err, FF_ERR_ARG,
                            "ledger page limit %d: must be in [1, %d]",
                            p->limit, FF_REGISTRY_LEDGER_PAGE_MAX);
    if (p->after_id < 0 || (p->newest && p->after_id != 0))
        return ff_error_set(err, FF_ERR_ARG,
                            "ledger page after id %lld: must be >= 0, and 0 "
                            "for the newest rows", (long long)p->after_id);

    ff_pq_args_init(&a);
    ff_pq_arg_text(&a, model);
    if (!p->newest)
        ff_pq_arg_int(&a, p->after_id);
    ff_pq_arg_int(&a, p->limit);
    ff_status st = ledger_read(r, model, p->newest ? newest_sql : after_sql,
                               &a, out, "reading the privacy ledger", err);
    ff_pq_args_cleanup(&a);
    return st;
}

ff_status
ff_registry_ledger_summary(ff_registry *r, const char *model, json_t **out,
                           ff_error *err)
{
    /* g: counts per site; s: the newest spent row per site; t: the sites
     * listed. '' stands for the model's NULL site in the join (a site
     * name is never empty). */
    static const char sql[] =
        "WITH g AS (SELECT site, count(*) AS n, "
        "  count(*) FILTER (WHERE status = 'spent') AS spent, "
        "  count(*) FILTER (WHERE status = 'refused') AS refused, "
        "  min(round) AS first_round, max(round) AS last_round, "
        "  max(id) AS last_id "
        "  FROM privacy_ledger WHERE model = $1 GROUP BY site), "
        "s AS (SELECT DISTINCT ON (site) site, epsilon, delta, mechanism, "
        "  at FROM privacy_ledger WHERE model = $1 AND status = 'spent' "
        "  ORDER BY site, id DESC), "
        "t AS (SELECT * FROM g ORDER BY site NULLS FIRST LIMIT $2::int) "
        "SELECT json_build_object('model', m.name, 'budget', "
        LEDGER_BUDGET ", 'total', (SELECT coalesce(sum(n), 0) FROM g), "
        "'site_count', (SELECT count(*) FROM g), 'sites', coalesce(("
        "SELECT json_agg(json_build_object('site', t.site, 'rows', t.n, "
        "'spent', t.spent, 'refused', t.refused, 'first_round', "
        "t.first_round, 'last_round', t.last_round, 'last_status', "
        "z.status, 'epsilon', s.epsilon, 'delta', s.delta, 'mechanism', "
        "s.mechanism, 'at', s.at, 'budget', z.budget) "
        "ORDER BY t.site NULLS FIRST) FROM t "
        "JOIN privacy_ledger z ON z.id = t.last_id "
        "LEFT JOIN s ON coalesce(s.site, '') = coalesce(t.site, '')), "
        "'[]'::json)) FROM models m WHERE m.name = $1";
    ff_pq_args a;

    ff_pq_args_init(&a);
    ff_pq_arg_text(&a, model);
    ff_pq_arg_int(&a, FF_REGISTRY_LEDGER_SUMMARY_MAX);
    ff_status st = ledger_read(r, model, sql, &a, out,
                               "summing up the privacy ledger", err);
    ff_pq_args_cleanup(&a);
    return st;
}

/* ---- the model's own rows, checked against the audit log ---------------- */

/* A number member of audit details d as float8; NULL when absent, null
 * or not a number. */
#define AUDIT_NUM(key)                                                   \
    "CASE WHEN jsonb_typeof(a.d->'" key "') = 'number' "                 \
    "THEN (a.d->>'" key "')::float8 END"

/* The first disagreement between the model's ledger rows (l) and its
 * privacy audit rows (a), paired by round, status and rank in id order:
 * round, status, ledger id, audit id, and what is wrong ('missing': no
 * ledger row; 'unaudited': no audit row; else the field that differs).
 * No row when they agree. */
static const char check_sql[] =
    "WITH l AS (SELECT id, round, status, mechanism, epsilon, delta, "
    "  steps, budget, row_number() OVER (PARTITION BY round, status "
    "  ORDER BY id) AS k FROM privacy_ledger "
    "  WHERE model = $1 AND site IS NULL), "
    "a0 AS (SELECT a.id, CASE WHEN a.details->>'round' ~ '^[0-9]{1,9}$' "
    "  THEN (a.details->>'round')::int END AS round, "
    "  substr(a.action, 9) AS status, a.details AS d FROM audit a "
    "  WHERE " LEDGER_AUDIT_ROWS "), "
    "a AS (SELECT *, row_number() OVER (PARTITION BY round, status "
    "  ORDER BY id) AS k FROM a0), "
    "c AS (SELECT coalesce(l.round, a.round) AS round, "
    "  coalesce(l.status, a.status) AS status, l.id AS lid, a.id AS aid, "
    "  CASE WHEN l.id IS NULL THEN 'missing' "
    "  WHEN a.id IS NULL THEN 'unaudited' "
    "  WHEN l.mechanism IS DISTINCT FROM a.d->>'mechanism' "
    "    THEN 'mechanism' "
    "  WHEN l.epsilon IS DISTINCT FROM " AUDIT_NUM("epsilon")
    "    THEN 'epsilon' "
    "  WHEN l.delta IS DISTINCT FROM " AUDIT_NUM("delta") " THEN 'delta' "
    "  WHEN l.steps::float8 IS DISTINCT FROM " AUDIT_NUM("steps")
    "    THEN 'steps' "
    "  WHEN l.budget IS DISTINCT FROM " AUDIT_NUM("budget")
    "    THEN 'budget' END AS what "
    "  FROM l FULL JOIN a ON l.round = a.round AND l.status = a.status "
    "  AND l.k = a.k) "
    "SELECT round, status, lid, aid, what FROM c WHERE what IS NOT NULL "
    "ORDER BY round NULLS FIRST, coalesce(aid, lid) LIMIT 1";

/* FF_ERR_DIGEST naming the disagreement in row 0 of res (check_sql). */
static ff_status
model_rows_mismatch(const PGresult *res, const char *model, ff_error *err)
{
    const char *round = PQgetisnull(res, 0, 0) ? "?" : PQgetvalue(res, 0, 0);
    const char *status = PQgetvalue(res, 0, 1);
    const char *lid = PQgetvalue(res, 0, 2);
    const char *aid = PQgetvalue(res, 0, 3);
    const char *what = PQgetvalue(res, 0, 4);

    if (strcmp(what, "missing") == 0)
        return ff_error_set(err, FF_ERR_DIGEST,
                            "privacy ledger of model %.60s: round %s: the "
                            "model's %s row is missing from the privacy "
                            "ledger (audit row %s records it; deleted?)",
                            model, round, status, aid);
    if (strcmp(what, "unaudited") == 0)
        return ff_error_set(err, FF_ERR_DIGEST,
                            "privacy ledger of model %.60s: round %s: the "
                            "model's %s row (ledger id %s) has no audit row "
                            "(inserted behind the registry?)",
                            model, round, status, lid);
    return ff_error_set(err, FF_ERR_DIGEST,
                        "privacy ledger of model %.60s: round %s: the "
                        "model's %s row (ledger id %s) does not match its "
                        "audit row %s: %s differs (edited?)",
                        model, round, status, lid, aid, what);
}

/* Checks the model's rows against the audit log, then reads them, in the
 * caller's snapshot. Caller holds the lock and a transaction. */
static ff_status
model_rows_tx(ff_registry *r, const char *model, json_t **out,
              ff_error *err)
{
    static const char rows_sql[] =
        "SELECT json_build_object('model', m.name, 'budget', "
        LEDGER_BUDGET ", 'audited', (SELECT count(*) FROM audit a WHERE "
        LEDGER_AUDIT_ROWS "), 'entries', coalesce((SELECT json_agg("
        "json_build_object('id', l.id, " LEDGER_FIELDS ") ORDER BY l.id) "
        "FROM privacy_ledger l WHERE l.model = m.name AND l.site IS NULL), "
        "'[]'::json)) FROM models m WHERE m.name = $1";
    PGresult *res = NULL;
    ff_pq_args a;

    ff_pq_args_init(&a);
    ff_pq_arg_text(&a, model);
    ff_status st = ff_pq_command(r, "SET TRANSACTION ISOLATION LEVEL "
                                 "REPEATABLE READ, READ ONLY", NULL, err);
    if (st == FF_OK)
        st = ff_pq_model_exists(r, model, err);
    if (st == FF_OK)
        st = ff_pq_query(r, check_sql, &a, 0, PGRES_TUPLES_OK, &res, err);
    if (st == FF_OK && PQntuples(res) > 0)
        st = model_rows_mismatch(res, model, err);
    PQclear(res);
    if (st == FF_OK)
        st = ff_pq_fetch_json(r, rows_sql, &a, out, err);
    ff_pq_args_cleanup(&a);
    return st;
}

ff_status
ff_registry_ledger_model_rows(ff_registry *r, const char *model,
                              json_t **out, ff_error *err)
{
    *out = NULL;
    ff_status st = ff_pq_check_name(model, "model", err);
    if (st != FF_OK)
        return st;

    st = ff_pq_lock(r, err);
    if (st == FF_OK) {
        st = ff_pq_begin(r, err);
        if (st == FF_OK)
            st = ff_pq_end(r, model_rows_tx(r, model, out, err), err);
    }
    ff_pq_unlock(r);
    if (st != FF_OK) {
        json_decref(*out);
        *out = NULL;
        return ff_error_wrap(err, st, "reading the model's privacy ledger "
                             "rows");
    }
    return FF_OK;
}
