/*
 * ctl_stages.c - a version's way to production and back
 * (docs/governance.md): `promote`, `approve` (the second operator),
 * `rollback` and `history`. The rules live in the registry
 * (registry_stages.c); this file reads the command line, requires an
 * operator certificate for the changes and prints what happened.
 */
#include "ctl.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

/* Widest cell in the history tables. */
#define FF_CTL_HISTORY_CELL 48

/* MODEL VERSION from the positional arguments. */
static ff_status
model_version(const ff_ctl *ctl, long *version, ff_error *err)
{
    return ff_ctl_parse_int(ctl->pos[1], "VERSION", 1, INT_MAX, version,
                            err);
}

/* A one-line result as text, or a JSON object. */
static ff_status
result_print(const ff_ctl *ctl, json_t *j, const char *text, ff_error *err)
{
    ff_status st = FF_OK;

    if (j == NULL)
        return ff_error_set(err, FF_ERR_NOMEM, "out of memory");
    if (ctl->json)
        st = ff_ctl_print_json(j, err);
    else
        printf("%s\n", text);
    json_decref(j);
    return st;
}

ff_status
ff_ctl_promote(ff_ctl *ctl, ff_error *err)
{
    ff_registry *r = NULL;
    const char *actor = NULL;
    ff_promotion_result res = 0;
    long version = 0;
    char text[512];

    ff_status st = model_version(ctl, &version, err);
    if (st == FF_OK && ctl->to == NULL)
        st = ff_error_set(err, FF_ERR_ARG,
                          "promote needs --to staged|production|archived");
    if (st == FF_OK)
        st = ff_ctl_operator(ctl, "promote", &r, &actor, err);
    ff_promotion p = {ctl->pos[0], (int)version, ctl->to, actor,
                      ctl->reason, ctl->allow_regression};
    if (st == FF_OK)
        st = ff_registry_version_promote(r, &p, &res, err);
    if (st != FF_OK)
        return st;

    char *model = ff_ctl_escape(p.model, 0);
    if (res == FF_PROMOTION_PENDING)
        snprintf(text, sizeof(text),
                 "version %ld of %s: production requested by %s; waiting "
                 "for a second operator (fedfusectl approve %s %ld)",
                 version, model ? model : "?", actor, model ? model : "?",
                 version);
    else
        snprintf(text, sizeof(text), "version %ld of %s is now %s (%s)",
                 version, model ? model : "?", p.to_stage, actor);
    free(model);
    return result_print(ctl,
                        json_pack("{s:s, s:i, s:s, s:s, s:s, s:b}", "model",
                                  p.model, "version", p.version, "to_stage",
                                  p.to_stage, "result",
                                  res == FF_PROMOTION_PENDING ? "pending"
                                                              : "done",
                                  "actor", actor, "allow_regression",
                                  p.allow_regression),
                        text, err);
}

ff_status
ff_ctl_approve(ff_ctl *ctl, ff_error *err)
{
    ff_registry *r = NULL;
    const char *actor = NULL;
    long version = 0;
    char text[512];

    ff_status st = model_version(ctl, &version, err);
    if (st == FF_OK)
        st = ff_ctl_operator(ctl, "approve", &r, &actor, err);
    if (st == FF_OK)
        st = ff_registry_version_approve(r, ctl->pos[0], (int)version, actor,
                                         ctl->allow_regression, err);
    if (st != FF_OK)
        return st;

    char *model = ff_ctl_escape(ctl->pos[0], 0);
    snprintf(text, sizeof(text),
             "version %ld of %s is now production (approved by %s)", version,
             model ? model : "?", actor);
    free(model);
    return result_print(ctl,
                        json_pack("{s:s, s:i, s:s, s:s, s:s}", "model",
                                  ctl->pos[0], "version", (int)version,
                                  "to_stage", "production", "result", "done",
                                  "approved_by", actor),
                        text, err);
}

ff_status
ff_ctl_rollback(ff_ctl *ctl, ff_error *err)
{
    ff_registry *r = NULL;
    const char *actor = NULL;
    long target = 0;
    int restored = 0;
    char text[512];

    ff_status st = FF_OK;
    if (ctl->to != NULL)
        st = ff_ctl_parse_int(ctl->to, "--to", 1, INT_MAX, &target, err);
    if (st == FF_OK && (ctl->reason == NULL || ctl->reason[0] == '\0'))
        st = ff_error_set(err, FF_ERR_ARG, "rollback needs --reason R");
    if (st == FF_OK)
        st = ff_ctl_operator(ctl, "rollback", &r, &actor, err);
    if (st == FF_OK)
        st = ff_registry_rollback(r, ctl->pos[0], (int)target, actor,
                                  ctl->reason, &restored, err);
    if (st != FF_OK)
        return st;

    char *model = ff_ctl_escape(ctl->pos[0], 0);
    snprintf(text, sizeof(text),
             "%s rolled back: version %d is production again (by %s)",
             model ? model : "?", restored, actor);
    free(model);
    return result_print(ctl,
                        json_pack("{s:s, s:i, s:s, s:s}", "model",
                                  ctl->pos[0], "version", restored,
                                  "rolled_back_by", actor, "reason",
                                  ctl->reason),
                        text, err);
}

/* ---- history ------------------------------------------------------------ */

static const char *
jstr(const json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

static void
cell_time(ff_ctl_table *t, const json_t *o, const char *key)
{
    char buf[40];
    const char *v = jstr(o, key);

    ff_ctl_time(v, buf, sizeof(buf));
    ff_ctl_table_cell(t, v ? buf : "-");
}

/* The production periods: who put each version there, and when. */
static ff_status
history_periods(const json_t *list, ff_error *err)
{
    static const char *const h[] = {"VERSION", "FROM", "UNTIL", "HOW",
                                    "REQUESTED BY", "APPROVED BY",
                                    "REASON"};
    ff_ctl_table t;

    ff_ctl_table_init(&t, 7, h, FF_CTL_HISTORY_CELL);
    t.right = 1u;
    for (size_t i = 0; i < json_array_size(list); i++) {
        const json_t *p = json_array_get(list, i);
        int rollback = jstr(p, "how") && strcmp(jstr(p, "how"),
                                                "rollback") == 0;
        int allow = json_is_true(json_object_get(p, "allow_regression"));
        ff_ctl_table_cellf(&t, "%lld", (long long)json_integer_value(
                                           json_object_get(p, "version")));
        cell_time(&t, p, "from");
        if (jstr(p, "until") != NULL)
            cell_time(&t, p, "until");
        else
            ff_ctl_table_cell(&t, "(current)");
        ff_ctl_table_cellf(&t, "%s%s", jstr(p, "how"),
                           allow ? " (regression allowed)" : "");
        ff_ctl_table_cellf(&t, "%s%s", rollback ? "rollback by " : "",
                           jstr(p, "promoted_by"));
        ff_ctl_table_cell(&t, jstr(p, "approved_by"));
        ff_ctl_table_cell(&t, jstr(p, "reason"));
    }
    printf("production periods\n");
    ff_status st = FF_OK;
    if (json_array_size(list) == 0)
        printf("  (none)\n");
    else
        st = ff_ctl_table_print(&t, stdout, "  ", err);
    ff_ctl_table_cleanup(&t);
    return st;
}

/* The promotion requests, oldest first, with their outcome. */
static ff_status
history_requests(const json_t *list, ff_error *err)
{
    static const char *const h[] = {"VERSION", "TO", "STATE", "AT",
                                    "REQUESTED BY", "APPROVED BY",
                                    "REASON"};
    ff_ctl_table t;

    ff_ctl_table_init(&t, 7, h, FF_CTL_HISTORY_CELL);
    t.right = 1u;
    for (size_t i = 0; i < json_array_size(list); i++) {
        const json_t *p = json_array_get(list, i);
        int allow = json_is_true(json_object_get(p, "allow_regression"));
        ff_ctl_table_cellf(&t, "%lld", (long long)json_integer_value(
                                           json_object_get(p, "version")));
        ff_ctl_table_cell(&t, jstr(p, "to_stage"));
        ff_ctl_table_cellf(&t, "%s%s", jstr(p, "state"),
                           allow ? " (regression allowed)" : "");
        cell_time(&t, p, "at");
        ff_ctl_table_cell(&t, jstr(p, "requested_by"));
        ff_ctl_table_cell(&t, jstr(p, "approved_by"));
        ff_ctl_table_cell(&t, jstr(p, "reason"));
    }
    printf("promotion requests\n");
    ff_status st = FF_OK;
    if (json_array_size(list) == 0)
        printf("  (none)\n");
    else
        st = ff_ctl_table_print(&t, stdout, "  ", err);
    ff_ctl_table_cleanup(&t);
    return st;
}

ff_status
ff_ctl_history(ff_ctl *ctl, ff_error *err)
{
    ff_registry *r = NULL;
    json_t *h = NULL;

    ff_status st = ff_ctl_connect(ctl, &r, err);
    if (st == FF_OK)
        st = ff_registry_history(r, ctl->pos[0], &h, err);
    if (st == FF_ERR_NOT_FOUND)
        return ff_error_wrap(err, st, "%.60s", ctl->pos[0]);
    if (st != FF_OK)
        return st;
    if (ctl->json) {
        st = ff_ctl_print_json(h, err);
    } else {
        const json_t *prod = json_object_get(h, "production");
        char *model = ff_ctl_escape(ctl->pos[0], 0);
        if (json_is_integer(prod))
            printf("%s: production version %lld\n", model ? model : "?",
                   (long long)json_integer_value(prod));
        else
            printf("%s: no production version\n", model ? model : "?");
        free(model);
        st = history_periods(json_object_get(h, "periods"), err);
        if (st == FF_OK)
            st = history_requests(json_object_get(h, "requests"), err);
    }
    json_decref(h);
    return st;
}
