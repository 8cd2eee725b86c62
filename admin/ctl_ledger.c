/*
 * ctl_ledger.c - `fedfusectl privacy [ledger] MODEL` (the model's budget
 * and privacy ledger) and `fedfusectl privacy budget MODEL --epsilon E
 * --delta D` (sets the budget). The ledger is what each round spent, or
 * refused to spend, per site (record level) and for the model (site
 * level); docs/privacy-accounting.md says how the numbers arise. It is
 * read a page at a time (ff_registry_ledger_page) or summed up in the
 * database (ff_registry_ledger_summary), never whole.
 */
#include "ctl.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Widest cell in the ledger table, in columns (reasons run long). */
#define FF_CTL_LEDGER_CELL 48

/* Rows `privacy MODEL` shows without --limit: the newest. */
#define FF_CTL_LEDGER_DEFAULT 200

/* Rows per page when the whole ledger is printed (--limit 0). */
#define FF_CTL_LEDGER_PAGE 2000

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
        printf("model budget  none set (site level; set it with "
               "fedfusectl privacy budget MODEL --epsilon E --delta D;\n"
               "              each site keeps its own record-level "
               "budget, the BUDGET column)\n");
        return;
    }
    ff_ctl_time(json_string_value(json_object_get(b, "set_at")), when,
                sizeof(when));
    char *by = ff_ctl_escape(json_string_value(json_object_get(b, "set_by")),
                             60);
    printf("model budget  epsilon %g, delta %g, site level (set by %s at "
           "%s)\n",
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

/* Reads --limit: the newest N rows (default FF_CTL_LEDGER_DEFAULT), 0 for
 * all; refuses the plan flags and --limit with --summary. */
static ff_status
ledger_flags(const ff_ctl *ctl, long *limit, ff_error *err)
{
    *limit = FF_CTL_LEDGER_DEFAULT;
    if (plan_flags_given(ctl))
        return ff_error_set(err, FF_ERR_ARG,
                            "privacy MODEL takes only --limit or --summary "
                            "(did you mean 'privacy budget MODEL' or "
                            "'privacy plan'?)");
    if (ctl->limit == NULL)
        return FF_OK;
    if (ctl->summary)
        return ff_error_set(err, FF_ERR_ARG,
                            "--limit and --summary exclude each other");
    return ff_ctl_parse_int(ctl->limit, "--limit (0: all)", 0,
                            FF_REGISTRY_LEDGER_PAGE_MAX, limit, err);
}

/* The lines above the table: the model and its budget. */
static void
print_head(const char *model, const json_t *doc)
{
    char *name = ff_ctl_escape(model, 0);

    printf("model     %s\n", name ? name : "?");
    free(name);
    print_budget(json_object_get(doc, "budget"));
}

/* The newest `limit` rows, oldest first, with how many there are. */
static ff_status
ledger_tail(ff_ctl *ctl, ff_registry *r, const char *model, long limit,
            ff_error *err)
{
    ff_ledger_page p = {0, 1, (int)limit};
    json_t *doc = NULL;

    ff_status st = ff_registry_ledger_page(r, model, &p, &doc, err);
    if (st != FF_OK)
        return st;
    if (ctl->json) {
        st = ff_ctl_print_json(doc, err);
        json_decref(doc);
        return st;
    }

    const json_t *entries = json_object_get(doc, "entries");
    json_int_t total = json_integer_value(json_object_get(doc, "total"));
    print_head(model, doc);
    if ((size_t)total > json_array_size(entries))
        printf("entries   %lld, the newest %zu below (--limit N; 0 for "
               "all; --summary for one line per site)\n",
               (long long)total, json_array_size(entries));
    st = print_entries(entries, err);
    json_decref(doc);
    return st;
}

/* Prints one page of the streamed ledger: a table, or the entries as
 * members of the JSON array opened by ledger_all (*first: none yet). */
static ff_status
print_page(const ff_ctl *ctl, const json_t *entries, int *first,
           ff_error *err)
{
    size_t i;
    const json_t *e;

    if (!ctl->json)
        return json_array_size(entries) ? print_entries(entries, err)
                                         : FF_OK;
    json_array_foreach(entries, i, e) {
        printf("%s\n    ", *first ? "" : ",");
        if (json_dumpf(e, stdout, JSON_COMPACT | JSON_ENCODE_ANY) != 0)
            return ff_error_set(err, FF_ERR_IO, "writing to stdout failed");
        *first = 0;
    }
    return FF_OK;
}

/* The opening of the streamed JSON document: model and budget. */
static ff_status
print_json_head(const json_t *doc, ff_error *err)
{
    printf("{\n  \"model\": ");
    if (json_dumpf(json_object_get(doc, "model"), stdout,
                   JSON_ENCODE_ANY) != 0)
        return ff_error_set(err, FF_ERR_IO, "writing to stdout failed");
    printf(",\n  \"budget\": ");
    if (json_dumpf(json_object_get(doc, "budget"), stdout,
                   JSON_COMPACT | JSON_ENCODE_ANY) != 0)
        return ff_error_set(err, FF_ERR_IO, "writing to stdout failed");
    printf(",\n  \"entries\": [");
    return FF_OK;
}

/* Every row, read and printed FF_CTL_LEDGER_PAGE at a time (keyset
 * paging on the row id), so memory stays bounded whatever the length. */
static ff_status
ledger_all(ff_ctl *ctl, ff_registry *r, const char *model, ff_error *err)
{
    ff_ledger_page p = {0, 0, FF_CTL_LEDGER_PAGE};
    json_t *doc = NULL;
    long long shown = 0;
    int first = 1;
    size_t n;
    ff_status st;

    do {
        /* One page, after the last row printed. */
        st = ff_registry_ledger_page(r, model, &p, &doc, err);
        if (st != FF_OK)
            return st;
        const json_t *entries = json_object_get(doc, "entries");
        n = json_array_size(entries);

        /* The head comes with the first page. */
        if (shown == 0 && p.after_id == 0) {
            if (ctl->json)
                st = print_json_head(doc, err);
            else
                print_head(model, doc);
        }
        if (st == FF_OK)
            st = print_page(ctl, entries, &first, err);
        if (n > 0)
            p.after_id = (int64_t)json_integer_value(
                json_object_get(json_array_get(entries, n - 1), "id"));
        shown += (long long)n;
        json_decref(doc);
        doc = NULL;
        if (st == FF_OK && fflush(stdout) != 0)
            st = ff_error_set(err, FF_ERR_IO, "writing to stdout failed");
    } while (st == FF_OK && n == (size_t)p.limit);
    if (st != FF_OK)
        return st;

    if (ctl->json)
        printf("\n  ],\n  \"total\": %lld\n}\n", shown);
    else if (shown == 0)
        printf("no ledger entries\n");
    else
        printf("entries   %lld\n", shown);
    if (fflush(stdout) != 0)
        return ff_error_set(err, FF_ERR_IO, "writing to stdout failed");
    return FF_OK;
}

/* The summary table: one row per site, the model's first. */
static ff_status
print_summary_sites(const json_t *sites, ff_error *err)
{
    static const char *const h[] = {"SITE", "ROWS", "SPENT", "REFUSED",
                                    "ROUNDS", "LAST", "EPSILON", "DELTA",
                                    "MECHANISM", "BUDGET"};
    ff_ctl_table t;
    size_t i;
    const json_t *s;

    ff_ctl_table_init(&t, 10, h, FF_CTL_LEDGER_CELL);
    t.right = 0x2deu;   /* the numbers: rows to rounds, epsilon, delta,
                           budget */
    json_array_foreach(sites, i, s) {
        const char *site = json_string_value(json_object_get(s, "site"));
        int spent = json_integer_value(json_object_get(s, "spent")) > 0;
        char eps[32];

        ff_ctl_table_cell(&t, site ? site : "(model)");
        cell_num(&t, s, "rows", "%.0f", "-");
        cell_num(&t, s, "spent", "%.0f", "-");
        cell_num(&t, s, "refused", "%.0f", "-");
        ff_ctl_table_cellf(&t, "%.0f-%.0f",
                           json_number_value(json_object_get(s,
                                                             "first_round")),
                           json_number_value(json_object_get(s,
                                                             "last_round")));
        ff_ctl_table_cell(&t, json_string_value(json_object_get(
                                  s, "last_status")));
        ff_ctl_epsilon(spent ? json_object_get(s, "epsilon") : NULL, eps,
                       sizeof(eps));
        ff_ctl_table_cell(&t, eps);
        cell_num(&t, s, "delta", "%g", "-");
        ff_ctl_table_cell(&t, spent ? json_string_value(json_object_get(
                                          s, "mechanism"))
                                    : "-");
        cell_num(&t, s, "budget", "%g", "none");
    }
    ff_status st = ff_ctl_table_print(&t, stdout, "", err);
    ff_ctl_table_cleanup(&t);
    return st;
}

/* --summary: the latest epsilon of each site and of the model. */
static ff_status
ledger_summary(ff_ctl *ctl, ff_registry *r, const char *model,
               ff_error *err)
{
    json_t *doc = NULL;

    ff_status st = ff_registry_ledger_summary(r, model, &doc, err);
    if (st != FF_OK)
        return st;
    if (ctl->json) {
        st = ff_ctl_print_json(doc, err);
        json_decref(doc);
        return st;
    }

    const json_t *sites = json_object_get(doc, "sites");
    json_int_t count = json_integer_value(json_object_get(doc,
                                                          "site_count"));
    print_head(model, doc);
    printf("entries   %lld in %lld lines below (the model's own, then one "
           "per site)\n",
           (long long)json_integer_value(json_object_get(doc, "total")),
           (long long)count);
    if (json_array_size(sites) == 0)
        printf("no ledger entries\n");
    else
        st = print_summary_sites(sites, err);
    if (st == FF_OK && (size_t)count > json_array_size(sites))
        printf("(the first %zu of %lld listed)\n", json_array_size(sites),
               (long long)count);
    json_decref(doc);
    return st;
}

ff_status
ff_ctl_privacy_ledger(ff_ctl *ctl, const char *model, ff_error *err)
{
    ff_registry *r = NULL;
    long limit = 0;

    ff_status st = ledger_flags(ctl, &limit, err);
    if (st != FF_OK)
        return st;
    st = ff_ctl_connect(ctl, &r, err);
    if (st == FF_OK) {
        if (ctl->summary)
            st = ledger_summary(ctl, r, model, err);
        else if (limit == 0)
            st = ledger_all(ctl, r, model, err);
        else
            st = ledger_tail(ctl, r, model, limit, err);
    }
    if (st == FF_ERR_NOT_FOUND)
        return ff_error_wrap(err, st, "%.60s", model);
    return st;
}

/* ---- privacy budget MODEL --epsilon E --delta D ------------------------- */

/* Reads --epsilon and --delta, refusing the other plan flags. */
static ff_status
budget_read(const ff_ctl *ctl, double *epsilon, double *delta,
            ff_error *err)
{
    if (ctl->sampling_rate || ctl->noise_multiplier || ctl->steps ||
        ctl->order_grid || ctl->limit || ctl->summary)
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
    const char *actor = NULL;

    /* Flags first: a usage error never touches the database. */
    ff_status st = budget_read(ctl, &epsilon, &delta, err);
    if (st != FF_OK)
        return st;

    /* An operator sets it, then we read back what the registry holds. */
    st = ff_ctl_operator(ctl, "privacy budget", &r, &actor, err);
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
