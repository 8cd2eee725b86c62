/*
 * registry_stages.c - the stages of a version and the production history
 * (docs/governance.md): promotions (two operators for production, an
 * accuracy gate), rollback and the history view.
 *
 * Every call is one transaction that first locks the model's row, so
 * promotions and rollbacks of one model queue; each writes its audit row
 * in the same transaction. A refusal by the accuracy gate is a decision
 * worth keeping: its transaction commits (the request marked "refused",
 * audited) and only then is the refusal returned.
 */
#include "ff_registry.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "registry_pq.h"

/* What one transaction found and decided. */
typedef struct stage_tx {
    const ff_promotion *p;
    json_t *snap;              /* {"target", "production", "pending"} */
    ff_promotion_result result;
    int refused;               /* the gate said no; why holds the reason */
    char why[320];
} stage_tx;

/* ---- reading the model's state ------------------------------------------ */

/* Locks model's row; FF_ERR_NOT_FOUND when it does not exist. */
static ff_status
model_lock(ff_registry *r, const char *model, ff_error *err)
{
    ff_pq_args a;
    int64_t one = 0;
    int found = 0;

    ff_pq_args_init(&a);
    ff_pq_arg_text(&a, model);
    ff_status st = ff_pq_fetch_int(
        r, "SELECT 1 FROM models WHERE name = $1 FOR UPDATE", &a, &one,
        &found, err);
    ff_pq_args_cleanup(&a);
    if (st == FF_OK && !found)
        st = ff_error_set(err, FF_ERR_NOT_FOUND, "no such model");
    return st;
}

/* The version (stage, accuracy), the current production version (number,
 * accuracy) and the pending production request of the version, each null
 * when absent. Caller holds the lock and a transaction. */
static ff_status
snapshot(ff_registry *r, const char *model, int version, json_t **out,
         ff_error *err)
{
    ff_pq_args a;

    ff_pq_args_init(&a);
    ff_pq_arg_text(&a, model);
    ff_pq_arg_int(&a, version);
    ff_status st = ff_pq_fetch_json(
        r,
        "SELECT json_build_object("
        "  'target', (SELECT json_build_object('stage', v.stage,"
        "    'accuracy', v.metrics->'accuracy') FROM versions v"
        "    WHERE v.model = $1 AND v.number = $2::int),"
        "  'production', (SELECT json_build_object('version', v.number,"
        "    'accuracy', v.metrics->'accuracy') FROM versions v"
        "    WHERE v.model = $1 AND v.stage = 'production'),"
        "  'pending', (SELECT json_build_object('id', p.id,"
        "    'requested_by', p.requested_by, 'reason', p.reason,"
        "    'allow_regression', p.allow_regression) FROM promotions p"
        "    WHERE p.model = $1 AND p.version = $2::int"
        "    AND p.to_stage = 'production' AND p.state = 'pending'))",
        &a, out, err);
    ff_pq_args_cleanup(&a);
    return st;
}

/* A member of the snapshot: snap[part][key]. */
static const json_t *
snap_get(const json_t *snap, const char *part, const char *key)
{
    return json_object_get(json_object_get(snap, part), key);
}

/* An accuracy from the snapshot, NAN when absent or not a number. */
static double
snap_accuracy(const json_t *snap, const char *part)
{
    const json_t *v = snap_get(snap, part, "accuracy");

    return json_is_number(v) ? json_number_value(v) : NAN;
}

/* ---- the accuracy gate -------------------------------------------------- */

/*
 * 1 when the version may go into production: no production version, one
 * without an accuracy, or the version's accuracy at least as high. Else 0
 * with the reason in why. `allow` is not looked at here.
 */
static int
gate_passes(const stage_tx *t, char *why, size_t cap)
{
    const json_t *prod = json_object_get(t->snap, "production");
    double now = snap_accuracy(t->snap, "production");
    double acc = snap_accuracy(t->snap, "target");
    int pv = (int)json_integer_value(json_object_get(prod, "version"));

    if (!json_is_object(prod) || isnan(now))
        return 1;
    if (isnan(acc)) {
        snprintf(why, cap,
                 "version %d has no test accuracy (metrics.accuracy) to "
                 "compare with production version %d's %.4f",
                 t->p->version, pv, now);
        return 0;
    }
    if (acc < now) {
        snprintf(why, cap,
                 "version %d's test accuracy %.4f is below production "
                 "version %d's %.4f",
                 t->p->version, acc, pv, now);
        return 0;
    }
    return 1;
}

/* An accuracy for an audit row: a number, or null. */
static json_t *
json_accuracy(double v)
{
    return isnan(v) ? json_null() : json_real(v);
}

/* ---- audit rows --------------------------------------------------------- */

/* Audits action by actor with the promotion's common details plus extra
 * (an object, stolen; may be NULL). */
static ff_status
stage_audit(ff_registry *r, const stage_tx *t, const char *action,
            const char *actor, json_t *extra, ff_error *err)
{
    const ff_promotion *p = t->p;
    const json_t *prod = json_object_get(t->snap, "production");
    json_t *d = json_pack(
        "{s:s, s:i, s:s?, s:s, s:s?, s:b, s:o, s:O, s:o}", "model", p->model,
        "version", p->version, "from_stage",
        json_string_value(snap_get(t->snap, "target", "stage")), "to_stage",
        p->to_stage, "reason", p->reason, "allow_regression",
        p->allow_regression,
        "accuracy", json_accuracy(snap_accuracy(t->snap, "target")),
        "production_version",
        json_is_object(prod) ? json_object_get(prod, "version") : json_null(),
        "production_accuracy",
        json_accuracy(snap_accuracy(t->snap, "production")));
    if (d == NULL || (extra != NULL && json_object_update(d, extra) != 0)) {
        json_decref(d);
        json_decref(extra);
        return ff_error_set(err, FF_ERR_NOMEM, "registry: out of memory");
    }
    json_decref(extra);
    ff_status st = ff_pq_audit(r, actor, action, NULL, d, err);
    json_decref(d);
    return st;
}

/* ---- staged and archived: one operator ---------------------------------- */

/* Moves a version that is not in production to staged or archived and
 * records the (immediately done) request. */
static ff_status
move_simple(ff_registry *r, stage_tx *t, ff_error *err)
{
    const ff_promotion *p = t->p;
    const char *stage = json_string_value(snap_get(t->snap, "target",
                                                   "stage"));
    ff_pq_args a;

    if (stage != NULL && strcmp(stage, "production") == 0)
        return ff_error_set(err, FF_ERR_STATE,
                            "version %d is in production; promote another "
                            "version to production or roll back",
                            p->version);
    if (stage != NULL && strcmp(stage, p->to_stage) == 0)
        return ff_error_set(err, FF_ERR_STATE, "version %d is already %s",
                            p->version, stage);

    ff_pq_args_init(&a);
    ff_pq_arg_text(&a, p->model);
    ff_pq_arg_int(&a, p->version);
    ff_pq_arg_text(&a, p->to_stage);
    ff_status st = ff_pq_command(r,
                                 "UPDATE versions SET stage = $3 "
                                 "WHERE model = $1 AND number = $2::int",
                                 &a, err);
    ff_pq_arg_text(&a, p->actor);
    ff_pq_arg_text(&a, p->reason);
    if (st == FF_OK)
        st = ff_pq_command(r,
                           "INSERT INTO promotions (model, version, "
                           "to_stage, requested_by, reason, state, "
                           "decided_at) VALUES ($1, $2::int, $3, $4, $5, "
                           "'done', now())",
                           &a, err);
    ff_pq_args_cleanup(&a);
    if (st == FF_OK)
        st = stage_audit(r, t, "version.promoted", p->actor,
                         json_pack("{s:s}", "requested_by", p->actor), err);
    t->result = FF_PROMOTION_DONE;
    return st;
}

/* ---- production: request, approve, apply -------------------------------- */

/* Records a new production request: pending, or refused by the gate. */
static ff_status
request_new(ff_registry *r, stage_tx *t, ff_error *err)
{
    const ff_promotion *p = t->p;
    ff_pq_args a;

    t->refused = !gate_passes(t, t->why, sizeof(t->why)) &&
                 !p->allow_regression;
    ff_pq_args_init(&a);
    ff_pq_arg_text(&a, p->model);
    ff_pq_arg_int(&a, p->version);
    ff_pq_arg_text(&a, p->actor);
    ff_pq_arg_text(&a, p->reason);
    ff_pq_arg_text(&a, p->allow_regression ? "true" : "false");
    ff_pq_arg_text(&a, t->refused ? "refused" : "pending");
    ff_status st = ff_pq_command(
        r,
        "INSERT INTO promotions (model, version, to_stage, requested_by, "
        "reason, allow_regression, state, decided_at) VALUES ($1, $2::int, "
        "'production', $3, $4, $5::boolean, $6, "
        "CASE WHEN $6 = 'refused' THEN now() END)",
        &a, err);
    ff_pq_args_cleanup(&a);
    if (st != FF_OK)
        return st;
    t->result = FF_PROMOTION_PENDING;
    if (t->refused)
        return stage_audit(r, t, "promotion.refused", p->actor,
                           json_pack("{s:s, s:s}", "requested_by", p->actor,
                                     "refusal", t->why),
                           err);
    return stage_audit(r, t, "promotion.requested", p->actor,
                       json_pack("{s:s}", "requested_by", p->actor), err);
}

/* Archives the current production version, ends its period, puts the
 * version into production with a new period. how: "promote" or
 * "rollback"; approved_by NULL for a rollback. */
static ff_status
production_swap(ff_registry *r, const char *model, int version,
                const char *how, const char *promoted_by,
                const char *approved_by, const char *reason, int allow,
                ff_error *err)
{
    ff_pq_args a;

    /* The old one out, then the new one in (one production version per
     * model: an index says so). */
    ff_pq_args_init(&a);
    ff_pq_arg_text(&a, model);
    ff_status st = ff_pq_command(r,
                                 "UPDATE versions SET stage = 'archived' "
                                 "WHERE model = $1 AND stage = 'production'",
                                 &a, err);
    if (st == FF_OK)
        st = ff_pq_command(r,
                           "UPDATE production_history SET until_at = now() "
                           "WHERE model = $1 AND until_at IS NULL",
                           &a, err);
    ff_pq_arg_int(&a, version);
    if (st == FF_OK)
        st = ff_pq_command(r,
                           "UPDATE versions SET stage = 'production' "
                           "WHERE model = $1 AND number = $2::int",
                           &a, err);
    ff_pq_args_cleanup(&a);
    if (st != FF_OK)
        return st;

    /* The new period. */
    ff_pq_args_init(&a);
    ff_pq_arg_text(&a, model);
    ff_pq_arg_int(&a, version);
    ff_pq_arg_text(&a, how);
    ff_pq_arg_text(&a, promoted_by);
    ff_pq_arg_text(&a, approved_by);
    ff_pq_arg_text(&a, reason);
    ff_pq_arg_text(&a, allow ? "true" : "false");
    st = ff_pq_command(r,
                       "INSERT INTO production_history (model, version, "
                       "from_at, how, promoted_by, approved_by, reason, "
                       "allow_regression) VALUES ($1, $2::int, now(), "
                       "$3, $4, $5, $6, $7::boolean)",
                       &a, err);
    ff_pq_args_cleanup(&a);
    return st;
}

/* Approves the pending request in t->snap as actor: the second-operator
 * rule, the gate again, then the swap. */
static ff_status
request_approve(ff_registry *r, stage_tx *t, const char *actor, int allow,
                ff_error *err)
{
    const json_t *pend = json_object_get(t->snap, "pending");
    const char *by = json_string_value(json_object_get(pend,
                                                       "requested_by"));
    json_int_t id = json_integer_value(json_object_get(pend, "id"));
    ff_pq_args a;

    if (by == NULL || strcmp(by, actor) == 0)
        return ff_error_set(err, FF_ERR_STATE,
                            "the promotion of version %d was requested by "
                            "%.80s; a second, different operator must "
                            "approve it",
                            t->p->version, by ? by : "?");
    allow = allow ||
            json_is_true(json_object_get(pend, "allow_regression"));
    t->refused = !gate_passes(t, t->why, sizeof(t->why)) && !allow;

    ff_pq_args_init(&a);
    ff_pq_arg_int(&a, id);
    ff_pq_arg_text(&a, actor);
    ff_pq_arg_text(&a, t->refused ? "refused" : "done");
    ff_pq_arg_text(&a, allow ? "true" : "false");
    ff_status st = ff_pq_command(
        r,
        "UPDATE promotions SET state = $3, decided_at = now(), "
        "approved_by = CASE WHEN $3 = 'done' THEN $2 END, "
        "allow_regression = $4::boolean WHERE id = $1::bigint",
        &a, err);
    ff_pq_args_cleanup(&a);
    if (st == FF_OK && !t->refused)
        st = production_swap(r, t->p->model, t->p->version, "promote", by,
                             actor, json_string_value(json_object_get(
                                        pend, "reason")),
                             allow, err);
    if (st != FF_OK)
        return st;

    /* The request's reason, not the approver's (who gives none). */
    t->result = FF_PROMOTION_DONE;
    json_t *extra = json_pack("{s:s, s:s, s:b, s:O?}", "requested_by", by,
                              "approved_by", actor, "allow_regression",
                              allow, "reason",
                              json_object_get(pend, "reason"));
    if (extra != NULL && t->refused &&
        json_object_set_new(extra, "refusal", json_string(t->why)) != 0) {
        json_decref(extra);
        extra = NULL;
    }
    if (extra == NULL)
        return ff_error_set(err, FF_ERR_NOMEM, "registry: out of memory");
    return stage_audit(r, t, t->refused ? "promotion.refused"
                                        : "version.promoted",
                       actor, extra, err);
}

/* The production branch of a promotion: request or approve. */
static ff_status
move_production(ff_registry *r, stage_tx *t, ff_error *err)
{
    const char *stage = json_string_value(snap_get(t->snap, "target",
                                                   "stage"));

    if (stage != NULL && strcmp(stage, "production") == 0)
        return ff_error_set(err, FF_ERR_STATE,
                            "version %d is already in production",
                            t->p->version);
    if (json_is_object(json_object_get(t->snap, "pending")))
        return request_approve(r, t, t->p->actor, t->p->allow_regression,
                               err);
    return request_new(r, t, err);
}

/* ---- the public calls --------------------------------------------------- */

/* Checks a promotion before touching the database. */
static ff_status
promotion_check(const ff_promotion *p, ff_error *err)
{
    static const char *const stages[] = {"staged", "production",
                                         "archived"};

    if (p == NULL)
        return ff_error_set(err, FF_ERR_ARG, "no promotion given");
    ff_status st = ff_pq_check_name(p->model, "model", err);
    if (st != FF_OK)
        return st;
    if (p->version < 1)
        return ff_error_set(err, FF_ERR_ARG, "version %d: must be >= 1",
                            p->version);
    if (p->actor == NULL || p->actor[0] == '\0')
        return ff_error_set(err, FF_ERR_ARG, "promotion: actor is empty");
    for (size_t i = 0; p->to_stage != NULL && i < 3; i++)
        if (strcmp(p->to_stage, stages[i]) == 0)
            return FF_OK;
    return ff_error_set(err, FF_ERR_ARG,
                        "stage '%.40s': must be staged, production or "
                        "archived",
                        p->to_stage ? p->to_stage : "(null)");
}

/* The lock, the snapshot and the version's existence, for t->p. */
static ff_status
stage_begin(ff_registry *r, stage_tx *t, ff_error *err)
{
    ff_status st = model_lock(r, t->p->model, err);
    if (st == FF_OK)
        st = snapshot(r, t->p->model, t->p->version, &t->snap, err);
    if (st == FF_OK && !json_is_object(json_object_get(t->snap, "target")))
        st = ff_error_set(err, FF_ERR_NOT_FOUND, "no version %d",
                          t->p->version);
    return st;
}

static ff_status
promote_tx(ff_registry *r, stage_tx *t, ff_error *err)
{
    ff_status st = stage_begin(r, t, err);
    if (st != FF_OK)
        return st;
    if (strcmp(t->p->to_stage, "production") == 0)
        return move_production(r, t, err);
    return move_simple(r, t, err);
}

static ff_status
approve_tx(ff_registry *r, stage_tx *t, ff_error *err)
{
    ff_status st = stage_begin(r, t, err);
    if (st != FF_OK)
        return st;
    if (!json_is_object(json_object_get(t->snap, "pending")))
        return ff_error_set(err, FF_ERR_NOT_FOUND,
                            "no pending request to put version %d into "
                            "production",
                            t->p->version);
    return request_approve(r, t, t->p->actor, t->p->allow_regression, err);
}

/* Runs fn in one transaction; a gate refusal, committed, comes back as
 * FF_ERR_STATE. */
static ff_status
stage_run(ff_registry *r, stage_tx *t,
          ff_status (*fn)(ff_registry *, stage_tx *, ff_error *),
          ff_error *err)
{
    ff_status st = ff_pq_lock(r, err);
    if (st == FF_OK) {
        st = ff_pq_begin(r, err);
        if (st == FF_OK)
            st = ff_pq_end(r, fn(r, t, err), err);
    }
    ff_pq_unlock(r);
    json_decref(t->snap);
    t->snap = NULL;
    if (st == FF_OK && t->refused)
        st = ff_error_set(err, FF_ERR_STATE,
                          "refused by the accuracy gate: %s (pass "
                          "--allow-regression to promote it anyway)",
                          t->why);
    return st;
}

ff_status
ff_registry_version_promote(ff_registry *r, const ff_promotion *p,
                            ff_promotion_result *result, ff_error *err)
{
    stage_tx t = {.p = p};

    if (result != NULL)
        *result = 0;
    ff_status st = promotion_check(p, err);
    if (st == FF_OK)
        st = stage_run(r, &t, promote_tx, err);
    if (st != FF_OK)
        return ff_error_wrap(err, st, "promoting version %d of %.60s",
                             p ? p->version : 0, p ? p->model : "?");
    if (result != NULL)
        *result = t.result;
    return FF_OK;
}

ff_status
ff_registry_version_approve(ff_registry *r, const char *model, int version,
                            const char *actor, int allow_regression,
                            ff_error *err)
{
    ff_promotion p = {model, version, "production", actor, NULL,
                      allow_regression};
    stage_tx t = {.p = &p};

    ff_status st = promotion_check(&p, err);
    if (st == FF_OK)
        st = stage_run(r, &t, approve_tx, err);
    if (st != FF_OK)
        return ff_error_wrap(err, st, "approving version %d of %.60s",
                             version, model ? model : "?");
    return FF_OK;
}

/* ---- rollback ----------------------------------------------------------- */

/* Runs a one-integer query on model and, when version >= 0, version;
 * *found as ff_pq_fetch_int. Caller holds the lock. */
static ff_status
fetch_mv(ff_registry *r, const char *sql, const char *model, int version,
         int64_t *value, int *found, ff_error *err)
{
    ff_pq_args a;

    ff_pq_args_init(&a);
    ff_pq_arg_text(&a, model);
    if (version >= 0)
        ff_pq_arg_int(&a, version);
    ff_status st = ff_pq_fetch_int(r, sql, &a, value, found, err);
    ff_pq_args_cleanup(&a);
    return st;
}

/* Checks an explicit rollback target against the current version. */
static ff_status
rollback_check(ff_registry *r, const char *model, int current, int target,
               ff_error *err)
{
    int64_t v = 0;
    int exists = 0, served = 0;

    ff_status st = fetch_mv(r,
                            "SELECT 1 FROM versions WHERE model = $1 AND "
                            "number = $2::int",
                            model, target, &v, &exists, err);
    if (st == FF_OK)
        st = fetch_mv(r,
                      "SELECT 1 FROM production_history WHERE model = $1 "
                      "AND version = $2::int LIMIT 1",
                      model, target, &v, &served, err);
    if (st != FF_OK)
        return st;
    if (!exists)
        return ff_error_set(err, FF_ERR_NOT_FOUND, "no version %d", target);
    if (target == current)
        return ff_error_set(err, FF_ERR_STATE,
                            "version %d is the production version already",
                            target);
    if (!served)
        return ff_error_set(err, FF_ERR_STATE,
                            "version %d was never in production; promote "
                            "it instead (that needs a second operator)",
                            target);
    return FF_OK;
}

/* The current production version and the rollback's target: the given
 * one (checked) or the version whose period ended last, which is the one
 * in production before the current one. */
static ff_status
rollback_target(ff_registry *r, const char *model, int *current,
                int *target, ff_error *err)
{
    int64_t cur = 0, tgt = 0;
    int found = 0;

    ff_status st = fetch_mv(r,
                            "SELECT number FROM versions WHERE model = $1 "
                            "AND stage = 'production'",
                            model, -1, &cur, &found, err);
    if (st == FF_OK && !found)
        st = ff_error_set(err, FF_ERR_STATE,
                          "no production version to roll back");
    if (st != FF_OK)
        return st;
    *current = (int)cur;
    if (*target != 0)
        return rollback_check(r, model, *current, *target, err);

    st = fetch_mv(r,
                  "SELECT version FROM production_history WHERE model = $1 "
                  "AND until_at IS NOT NULL ORDER BY id DESC LIMIT 1",
                  model, -1, &tgt, &found, err);
    if (st == FF_OK && !found)
        st = ff_error_set(err, FF_ERR_STATE,
                          "version %d is the first production version; "
                          "there is nothing earlier to roll back to",
                          *current);
    if (st == FF_OK)
        *target = (int)tgt;
    return st;
}

typedef struct rollback_args {
    const char *model;
    int target;
    const char *actor;
    const char *reason;
} rollback_args;

static ff_status
rollback_tx(ff_registry *r, rollback_args *rb, ff_error *err)
{
    int current = 0;

    ff_status st = model_lock(r, rb->model, err);
    if (st == FF_OK)
        st = rollback_target(r, rb->model, &current, &rb->target, err);
    if (st == FF_OK)
        st = production_swap(r, rb->model, rb->target, "rollback",
                             rb->actor, NULL, rb->reason, 0, err);
    if (st != FF_OK)
        return st;

    json_t *d = json_pack("{s:s, s:i, s:i, s:s, s:s}", "model", rb->model,
                          "version", rb->target, "from_version", current,
                          "reason", rb->reason, "rolled_back_by",
                          rb->actor);
    if (d == NULL)
        return ff_error_set(err, FF_ERR_NOMEM, "registry: out of memory");
    st = ff_pq_audit(r, rb->actor, "version.rolled_back", NULL, d, err);
    json_decref(d);
    return st;
}

ff_status
ff_registry_rollback(ff_registry *r, const char *model, int target,
                     const char *actor, const char *reason, int *restored,
                     ff_error *err)
{
    rollback_args rb = {model, target, actor, reason};

    if (restored != NULL)
        *restored = 0;
    ff_status st = ff_pq_check_name(model, "model", err);
    if (st == FF_OK && target < 0)
        st = ff_error_set(err, FF_ERR_ARG, "version %d: must be >= 1",
                          target);
    if (st == FF_OK && (reason == NULL || reason[0] == '\0'))
        st = ff_error_set(err, FF_ERR_ARG, "a rollback needs a reason");
    if (st == FF_OK && (actor == NULL || actor[0] == '\0'))
        st = ff_error_set(err, FF_ERR_ARG, "rollback: actor is empty");
    if (st != FF_OK)
        return ff_error_wrap(err, st, "rolling back");

    st = ff_pq_lock(r, err);
    if (st == FF_OK) {
        st = ff_pq_begin(r, err);
        if (st == FF_OK)
            st = ff_pq_end(r, rollback_tx(r, &rb, err), err);
    }
    ff_pq_unlock(r);
    if (st != FF_OK)
        return ff_error_wrap(err, st, "rolling back %.60s", model);
    if (restored != NULL)
        *restored = rb.target;
    return FF_OK;
}

/* ---- history ------------------------------------------------------------ */

ff_status
ff_registry_history(ff_registry *r, const char *model, json_t **out,
                    ff_error *err)
{
    ff_pq_args a;

    *out = NULL;
    ff_pq_args_init(&a);
    ff_pq_arg_text(&a, model);
    ff_status st = ff_pq_lock(r, err);
    if (st == FF_OK)
        st = ff_pq_model_exists(r, model, err);
    if (st == FF_OK)
        st = ff_pq_fetch_json(
            r,
            "SELECT json_build_object('model', $1::text,"
            "  'production', (SELECT number FROM versions"
            "    WHERE model = $1 AND stage = 'production'),"
            "  'periods', coalesce((SELECT json_agg(json_build_object("
            "    'version', h.version, 'from', h.from_at,"
            "    'until', h.until_at, 'how', h.how,"
            "    'promoted_by', h.promoted_by,"
            "    'approved_by', h.approved_by, 'reason', h.reason,"
            "    'allow_regression', h.allow_regression) ORDER BY h.id)"
            "    FROM production_history h WHERE h.model = $1),"
            "    '[]'::json),"
            "  'requests', coalesce((SELECT json_agg(json_build_object("
            "    'version', p.version, 'to_stage', p.to_stage,"
            "    'requested_by', p.requested_by,"
            "    'approved_by', p.approved_by, 'reason', p.reason,"
            "    'allow_regression', p.allow_regression,"
            "    'state', p.state, 'at', p.at,"
            "    'decided_at', p.decided_at) ORDER BY p.id)"
            "    FROM promotions p WHERE p.model = $1), '[]'::json))",
            &a, out, err);
    ff_pq_unlock(r);
    ff_pq_args_cleanup(&a);
    if (st != FF_OK)
        return ff_error_wrap(err, st, "reading the history of %.60s", model);
    return FF_OK;
}
