/*
 * ctl_ledger.c - `fedfusectl privacy [ledger] MODEL` (the model's budget
 * and privacy ledger) and `fedfusectl privacy budget MODEL --epsilon E
 * --delta D` (sets the budget). The ledger is what each round spent, or
 * refused to spend, per site (record level) and for the model (site
 * level); docs/privacy-accounting.md says how the numbers arise.
 */
#include "ctl.h"

#include <math.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Widest cell in the ledger table, in columns (reasons run long). */
#define FF_CTL_LEDGER_CELL 48

/* ---- cells -------------------------------------------------------------- */

/* A number member with printf format fmt; `none` when null or absent. */
static void
cell_num(ff_ctl_table *t, const json_t *o, const char *key, const char *fmt,
         const char *none)
{
    const json_t *v = json_object_get(o, key);

    if (json_is_number(v))
        ff_ctl_table_cellf(t, fmt, json_number_value(v));
    else
        ff_ctl_table_cell(t, none);
}

/* An epsilon member: "inf" when null (unbounded). */
static void
cell_eps(ff_ctl_table *t, const json_t *o, const char *key)
{
    char buf[32];
    const json_t *v = json_object_get(o, key);

    ff_ctl_epsilon(v ? v : json_null(), buf, sizeof(buf));
    ff_ctl_table_cell(t, buf);
}

/* ---- privacy [ledger] MODEL --------------------------------------------- */

/* The budget line above the table. */
static void
print_budget(const json_t *b)
{
    char when[40];

    if (!json_is_object(b)) {
        printf("budget    none set (fedfusectl privacy budget MODEL "
               "--epsilon E --delta D)\n");
        return;
    }
    ff_ctl_time(json_string_value(json_object_get(b, "set_at")), when,
                sizeof(when));
    char *by = ff_ctl_escape(json_string_value(json_object_get(b, "set_by")),
                             60);
    printf("budget    epsilon %g, delta %g (set by %s at %s)\n",
           json_number_value(json_object_get(b, "epsilon")),
           json_number_value(json_object_get(b, "delta")), by ? by : "?",
           when);
    free(by);
}

/* The entries, one row each. */
static ff_status
print_entries(const json_t *entries, ff_error *err)
{
    static const char *const h[] = {"ROUND", "SITE", "STATUS", "MECHANISM",
                                    "EPSILON", "DELTA", "NOISE MULT", "CLIP",
                                    "Q", "STEPS", "BUDGET", "REASON"};
    ff_ctl_table t;

    if (json_array_size(entries) == 0) {
        printf("no ledger entries\n");
        return FF_OK;
    }
    ff_ctl_table_init(&t, 12, h, FF_CTL_LEDGER_CELL);
    t.right = 1u | 0x7f0u;   /* round, and epsilon through budget */
    for (size_t i = 0; i < json_array_size(entries); i++) {
        const json_t *e = json_array_get(entries, i);
        const char *site = json_string_value(json_object_get(e, "site"));
        cell_num(&t, e, "round", "%.0f", "-");
        ff_ctl_table_cell(&t, site ? site : "(model)");
        ff_ctl_table_cell(&t, json_string_value(json_object_get(e,
                                                                "status")));
        ff_ctl_table_cell(&t, json_string_value(json_object_get(e,
                                                                "mechanism")));
        cell_eps(&t, e, "epsilon");
        cell_num(&t, e, "delta", "%g", "-");
        cell_num(&t, e, "noise_multiplier", "%.4f", "-");
        cell_num(&t, e, "clip", "%g", "-");
        cell_num(&t, e, "sampling_rate", "%.6g", "-");
        cell_num(&t, e, "steps", "%.0f", "-");
        cell_num(&t, e, "budget", "%g", "none");
        ff_ctl_table_cell(&t, json_string_value(json_object_get(e,
                                                                "reason")));
    }
    ff_status st = ff_ctl_table_print(&t, stdout, "", err);
    ff_ctl_table_cleanup(&t);
    return st;
}

/* 1 when any flag of `privacy plan` was given. */
static int
plan_flags_given(const ff_ctl *ctl)
{
    return ctl->sampling_rate || ctl->noise_multiplier || ctl->epsilon ||
           ctl->steps || ctl->delta || ctl->order_grid;
}

ff_status
ff_ctl_privacy_ledger(ff_ctl *ctl, const char *model, ff_error *err)
{
    ff_registry *r = NULL;
    json_t *l = NULL;

    if (plan_flags_given(ctl))
        return ff_error_set(err, FF_ERR_ARG,
                            "privacy MODEL takes no flags (did you mean "
                            "'privacy budget MODEL' or 'privacy plan'?)");
    ff_status st = ff_ctl_connect(ctl, &r, err);
    if (st == FF_OK)
        st = ff_registry_ledger(r, model, &l, err);
    if (st == FF_ERR_NOT_FOUND)
        return ff_error_wrap(err, st, "%.60s", model);
    if (st != FF_OK)
        return st;
    if (ctl->json) {
        st = ff_ctl_print_json(l, err);
    } else {
        char *name = ff_ctl_escape(model, 0);
        printf("model     %s\n", name ? name : "?");
        free(name);
        print_budget(json_object_get(l, "budget"));
        st = print_entries(json_object_get(l, "entries"), err);
    }
    json_decref(l);
    return st;
}

/* ---- privacy budget MODEL --epsilon E --delta D ------------------------- */

/* "operator:USER" for the effective user, else "fedfusectl". */
static void
actor_name(char *out, size_t cap)
{
    const struct passwd *pw = getpwuid(geteuid());

    if (pw != NULL && pw->pw_name != NULL && pw->pw_name[0] != '\0')
        snprintf(out, cap, "operator:%s", pw->pw_name);
    else
        snprintf(out, cap, "fedfusectl");
}

/* Reads --epsilon and --delta, refusing the other plan flags. */
static ff_status
budget_read(const ff_ctl *ctl, double *epsilon, double *delta,
            ff_error *err)
{
    if (ctl->sampling_rate || ctl->noise_multiplier || ctl->steps ||
        ctl->order_grid)
        return ff_error_set(err, FF_ERR_ARG,
                            "privacy budget takes only --epsilon and "
                            "--delta");
    ff_status st = ff_ctl_parse_real(ctl->epsilon, "--epsilon", epsilon,
                                     err);
    if (st == FF_OK)
        st = ff_ctl_check_range(*epsilon, "--epsilon", 0, 1, INFINITY, 1,
                                err);
    if (st == FF_OK)
        st = ff_ctl_parse_real(ctl->delta, "--delta", delta, err);
    if (st == FF_OK)
        st = ff_ctl_check_range(*delta, "--delta", 0, 1, 1, 1, err);
    return st;
}

/* What was stored, read back, as text or JSON. */
static ff_status
budget_print(const ff_ctl *ctl, const char *model, double epsilon,
             double delta, const char *actor, ff_error *err)
{
    if (ctl->json) {
        json_t *j = json_pack("{s:s, s:f, s:f, s:s}", "model", model,
                              "epsilon", epsilon, "delta", delta, "set_by",
                              actor);
        if (j == NULL)
            return ff_error_set(err, FF_ERR_NOMEM,
                                "building the JSON failed");
        ff_status st = ff_ctl_print_json(j, err);
        json_decref(j);
        return st;
    }
    char *name = ff_ctl_escape(model, 0);
    printf("privacy budget of %s: epsilon %g, delta %g (set by %s)\n",
           name ? name : "?", epsilon, delta, actor);
    free(name);
    if (fflush(stdout) != 0)
        return ff_error_set(err, FF_ERR_IO, "writing to stdout failed");
    return FF_OK;
}

ff_status
ff_ctl_privacy_budget(ff_ctl *ctl, const char *model, ff_error *err)
{
    ff_registry *r = NULL;
    double epsilon = 0, delta = 0, e2 = 0, d2 = 0;
    int found = 0;
    char actor[300];

    /* Flags first: a usage error never touches the database. */
    ff_status st = budget_read(ctl, &epsilon, &delta, err);
    if (st != FF_OK)
        return st;
    actor_name(actor, sizeof(actor));

    /* Set, then read back what the registry now holds. */
    st = ff_ctl_connect(ctl, &r, err);
    if (st == FF_OK)
        st = ff_registry_budget_set(r, model, epsilon, delta, actor, err);
    if (st == FF_OK)
        st = ff_registry_budget_get(r, model, &e2, &d2, &found, err);
    if (st == FF_OK && !found)
        st = ff_error_set(err, FF_ERR_INTERNAL,
                          "the budget just set cannot be read back");
    if (st == FF_ERR_NOT_FOUND)
        return ff_error_wrap(err, st, "%.60s", model);
    if (st != FF_OK)
        return st;
    return budget_print(ctl, model, e2, d2, actor, err);
}
