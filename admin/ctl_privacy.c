/*
 * ctl_privacy.c - `fedfusectl privacy plan`: the privacy budget of T steps
 * of the Poisson-subsampled Gaussian (DP-SGD, DP-FedAvg with central noise),
 * or the noise multiplier a target epsilon needs. The arithmetic is the RDP
 * accountant of privacy/ff_accountant.h (docs/privacy-accounting.md); this
 * file reads the flags, calls it and prints. It needs no database. Also the
 * dispatch of `privacy budget` and `privacy [ledger] MODEL` (ctl_ledger.c).
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "../privacy/ff_accountant.h"

/* Most steps accepted: far beyond any training run, and a readable bound
 * in the error message. */
#define FF_CTL_MAX_STEPS 1000000000000000L

/* Significant digits of a planned noise multiplier, rounded up. */
#define FF_CTL_SIGMA_DIGITS 7

/* The order grids a plan may use (--order-grid). */
static const struct {
    const char *name;
    ff_acct_grid grid;
    const char *origin;
} grids[] = {
    {"default", FF_ACCT_GRID_DEFAULT, "dp_accounting's default"},
    {"dpsgd", FF_ACCT_GRID_DPSGD, "TF-Privacy compute_dp_sgd_privacy"},
    {"ddgauss", FF_ACCT_GRID_DDGAUSS, "Kairouz-Liu-Steinke 2021"},
};

#define NGRIDS (sizeof(grids) / sizeof(grids[0]))

/* A plan: the inputs as parsed, and what the accountant answered. */
typedef struct plan {
    double q;            /* --sampling-rate */
    double sigma;        /* --noise-multiplier, or the planned one */
    double target;       /* --epsilon; 0 when sigma was given */
    double delta;        /* --delta */
    long steps;          /* --steps */
    size_t grid;         /* index into grids */
    size_t n;            /* orders in use */
    double orders[FF_ACCT_MAX_ORDERS];
    double eps, order;   /* tight conversion and its order */
    double eps_old, order_old; /* Mironov 2017, for reference */
} plan;

/* ---- reading the flags -------------------------------------------------- */

ff_status
ff_ctl_parse_real(const char *text, const char *flag, double *out,
                  ff_error *err)
{
    char *end;

    if (text == NULL)
        return ff_error_set(err, FF_ERR_ARG, "%s is required", flag);
    errno = 0;
    double v = strtod(text, &end);
    if (end != text && *end == '\0' && errno == ERANGE)
        return ff_error_set(err, FF_ERR_ARG,
                            "%s '%.40s' is out of a double's range", flag,
                            text);
    if (end == text || *end != '\0' || !isfinite(v))
        return ff_error_set(err, FF_ERR_ARG,
                            "%s must be a finite number, not '%.40s'", flag,
                            text);
    *out = v;
    return FF_OK;
}

ff_status
ff_ctl_check_range(double v, const char *flag, double lo, int lo_open,
                   double hi, int hi_open, ff_error *err)
{
    int low_ok = lo_open ? v > lo : v >= lo;
    int high_ok = hi_open ? v < hi : v <= hi;

    if (low_ok && high_ok)
        return FF_OK;
    return ff_error_set(err, FF_ERR_ARG, "%s must be in %c%g, %g%c, not %g",
                        flag, lo_open ? '(' : '[', lo, hi, hi_open ? ')' : ']',
                        v);
}

/* Finds the grid named by --order-grid (default: "default"). */
static ff_status
parse_grid(const char *text, size_t *out, ff_error *err)
{
    if (text == NULL) {
        *out = 0;
        return FF_OK;
    }
    for (size_t i = 0; i < NGRIDS; i++) {
        if (strcmp(text, grids[i].name) == 0) {
            *out = i;
            return FF_OK;
        }
    }
    return ff_error_set(err, FF_ERR_ARG,
                        "--order-grid must be default, dpsgd or ddgauss, "
                        "not '%.40s'", text);
}

/* Reads and checks every flag of `privacy plan` into p. Errors:
 * FF_ERR_ARG naming the flag. */
static ff_status
plan_read(const ff_ctl *ctl, plan *p, ff_error *err)
{
    ff_status st;

    /* Exactly one of the two ways to ask. */
    if ((ctl->noise_multiplier == NULL) == (ctl->epsilon == NULL))
        return ff_error_set(err, FF_ERR_ARG,
                            "give exactly one of --noise-multiplier (to get "
                            "epsilon) and --epsilon (to get the noise "
                            "multiplier)");

    /* The numbers, each in its range. */
    st = ff_ctl_parse_real(ctl->sampling_rate, "--sampling-rate", &p->q,
                           err);
    if (st == FF_OK)
        st = ff_ctl_check_range(p->q, "--sampling-rate", 0, 0, 1, 0, err);
    if (st == FF_OK)
        st = ff_ctl_parse_real(ctl->delta, "--delta", &p->delta, err);
    if (st == FF_OK)
        st = ff_ctl_check_range(p->delta, "--delta", 0, 1, 1, 1, err);
    if (st == FF_OK && ctl->steps == NULL)
        st = ff_error_set(err, FF_ERR_ARG, "--steps is required");
    if (st == FF_OK)
        st = ff_ctl_parse_int(ctl->steps, "--steps", 1, FF_CTL_MAX_STEPS,
                              &p->steps, err);
    if (st == FF_OK && ctl->noise_multiplier != NULL) {
        st = ff_ctl_parse_real(ctl->noise_multiplier, "--noise-multiplier",
                               &p->sigma, err);
        if (st == FF_OK)
            st = ff_ctl_check_range(p->sigma, "--noise-multiplier", 0, 1,
                                    INFINITY, 1, err);
    }
    if (st == FF_OK && ctl->epsilon != NULL) {
        st = ff_ctl_parse_real(ctl->epsilon, "--epsilon", &p->target, err);
        if (st == FF_OK)
            st = ff_ctl_check_range(p->target, "--epsilon", 0, 1, INFINITY,
                                    1, err);
    }
    if (st == FF_OK)
        st = parse_grid(ctl->order_grid, &p->grid, err);
    return st;
}

/* ---- asking the accountant ---------------------------------------------- */

/* Maps an accountant error onto ff_status: an unreachable target is a
 * runtime error; anything else means our own checks missed a case. */
static ff_status
privacy_fail(const ff_privacy_error *perr, ff_error *err)
{
    ff_status st = perr->status == FF_PRIVACY_ERR_INFEASIBLE
                       ? FF_ERR_CONFIG
                       : FF_ERR_INTERNAL;
    return ff_error_set(err, st, "accountant: %s",
                        ff_privacy_error_text(perr));
}

/* Fills p->orders from the chosen grid. */
static ff_status
plan_orders(plan *p, ff_error *err)
{
    ff_privacy_error perr = {0};

    if (ff_acct_grid_fill(grids[p->grid].grid, p->orders, FF_ACCT_MAX_ORDERS,
                          &p->n, &perr) != FF_PRIVACY_OK)
        return privacy_fail(&perr, err);
    return FF_OK;
}

/* epsilon at p->sigma by both conversions, with their orders. sigma 0
 * only comes from planning at q = 0, where nothing is released and the
 * curve is all zeros. */
static ff_status
plan_epsilon(plan *p, ff_error *err)
{
    ff_privacy_error perr = {0};
    double rdp[FF_ACCT_MAX_ORDERS] = {0};
    ff_privacy_status ps = FF_PRIVACY_OK;

    /* The curve of T steps. */
    if (p->sigma > 0)
        ps = ff_acct_rdp_sampled_gaussian(p->q, p->sigma, p->orders, p->n,
                                          rdp, &perr);
    if (ps == FF_PRIVACY_OK)
        ps = ff_acct_rdp_compose(rdp, p->n, (int64_t)p->steps, &perr);

    /* Both conversions to (epsilon, delta). */
    if (ps == FF_PRIVACY_OK)
        ps = ff_acct_epsilon(p->orders, rdp, p->n, p->delta, FF_ACCT_CONV_NEW,
                             &p->eps, &p->order, &perr);
    if (ps == FF_PRIVACY_OK)
        ps = ff_acct_epsilon(p->orders, rdp, p->n, p->delta, FF_ACCT_CONV_OLD,
                             &p->eps_old, &p->order_old, &perr);
    return ps == FF_PRIVACY_OK ? FF_OK : privacy_fail(&perr, err);
}

/* x rounded up to `digits` significant decimal digits (x > 0). */
static double
round_up_sig(double x, int digits)
{
    double scale = pow(10.0, digits - 1 - (int)floor(log10(x)));
    double r = ceil(x * scale) / scale;

    return r >= x ? r : x;
}

/*
 * The noise multiplier for p->target under the tight conversion, rounded
 * up to FF_CTL_SIGMA_DIGITS significant digits so that the printed value
 * itself meets the target; then its epsilon. Errors: FF_ERR_CONFIG when the
 * target cannot be reached on the grid.
 */
static ff_status
plan_sigma(plan *p, ff_error *err)
{
    ff_privacy_error perr = {0};
    double exact = 0;

    /* Bisection in the library; its answer never overshoots the target. */
    if (ff_acct_plan_sigma(p->q, (int64_t)p->steps, p->target, p->delta,
                           p->orders, p->n, FF_ACCT_CONV_NEW, &exact,
                           &perr) != FF_PRIVACY_OK) {
        ff_status st = privacy_fail(&perr, err);
        return ff_error_wrap(err, st, "no noise multiplier reaches "
                             "--epsilon %g on the %s order grid", p->target,
                             grids[p->grid].name);
    }
    if (exact == 0) {
        p->sigma = 0;
        return plan_epsilon(p, err);
    }

    /* More noise cannot raise epsilon; keep the exact value should
     * rounding ever say otherwise. */
    p->sigma = round_up_sig(exact, FF_CTL_SIGMA_DIGITS);
    ff_status st = plan_epsilon(p, err);
    if (st == FF_OK && p->eps > p->target) {
        p->sigma = exact;
        st = plan_epsilon(p, err);
    }
    return st;
}

/* ---- printing ----------------------------------------------------------- */

/* The shortest %g spelling of v that reads back as v, with every digit
 * of the integer part (100, not 1e+02). */
static void
fmt_exact(double v, char *out, size_t cap)
{
    int first = v != 0 ? (int)floor(log10(fabs(v))) + 1 : 1;

    for (int prec = first < 1 ? 1 : first; prec <= 17; prec++) {
        snprintf(out, cap, "%.*g", prec, v);
        if (strtod(out, NULL) == v)
            return;
    }
}

/* An epsilon for people: four decimals, or four digits when tiny. */
static void
fmt_eps(double eps, char *out, size_t cap)
{
    if (isinf(eps))
        snprintf(out, cap, "inf (no finite bound)");
    else if (eps == 0 || eps >= 1e-3)
        snprintf(out, cap, "%.4f", eps);
    else
        snprintf(out, cap, "%.4g", eps);
}

/* One epsilon line; the order only when the bound is finite. */
static void
print_eps(const char *label, const char *text, double eps, double order,
          const char *how)
{
    if (isinf(eps))
        printf("  %s   %s  (%s)\n", label, text, how);
    else
        printf("  %s   %s at order %g  (%s)\n", label, text, order, how);
}

static void
print_text(const plan *p)
{
    char q[32], d[32], z[32], t[32], e[48], eo[48];

    fmt_exact(p->q, q, sizeof(q));
    fmt_exact(p->delta, d, sizeof(d));
    fmt_exact(p->sigma, z, sizeof(z));
    fmt_eps(p->eps, e, sizeof(e));
    fmt_eps(p->eps_old, eo, sizeof(eo));

    printf("Poisson-subsampled Gaussian, RDP accounting\n");
    printf("  sampling rate     %s\n", q);
    if (p->target > 0) {
        fmt_exact(p->target, t, sizeof(t));
        printf("  target epsilon    %s\n", t);
        printf("  noise multiplier  %s  (needed: the smallest found, rounded "
               "up)\n", z);
    } else {
        printf("  noise multiplier  %s\n", z);
    }
    printf("  steps             %ld\n", p->steps);
    printf("  delta             %s\n", d);
    printf("  order grid        %s (%zu orders, %s)\n", grids[p->grid].name,
           p->n, grids[p->grid].origin);
    print_eps("epsilon        ", e, p->eps, p->order,
              "tight conversion, Balle et al. 2020");
    print_eps("epsilon (old)  ", eo, p->eps_old, p->order_old,
              "Mironov 2017 Prop. 3, for reference");
}

/* A real for JSON: null when not finite (an unbounded epsilon). */
static json_t *
json_num(double v)
{
    return isfinite(v) ? json_real(v) : json_null();
}

static ff_status
print_json(const plan *p, ff_error *err)
{
    int unbounded = isinf(p->eps), unbounded_old = isinf(p->eps_old);
    json_t *j = json_pack(
        "{s:s, s:o, s:o, s:I, s:o, s:o, s:o, s:o, s:o, s:s, s:I}",
        "mode", p->target > 0 ? "noise_multiplier" : "epsilon",
        "sampling_rate", json_num(p->q),
        "noise_multiplier", json_num(p->sigma),
        "steps", (json_int_t)p->steps,
        "delta", json_num(p->delta),
        "epsilon", json_num(p->eps),
        "order", unbounded ? json_null() : json_num(p->order),
        "epsilon_old", json_num(p->eps_old),
        "order_old", unbounded_old ? json_null() : json_num(p->order_old),
        "order_grid", grids[p->grid].name,
        "orders", (json_int_t)p->n);

    if (j == NULL)
        return ff_error_set(err, FF_ERR_NOMEM, "building the JSON failed");
    if (p->target > 0 &&
        json_object_set_new(j, "target_epsilon", json_real(p->target)) != 0) {
        json_decref(j);
        return ff_error_set(err, FF_ERR_NOMEM, "building the JSON failed");
    }
    ff_status st = ff_ctl_print_json(j, err);
    json_decref(j);
    return st;
}

/* ---- the command -------------------------------------------------------- */

/* `privacy plan`: reads the flags, asks the accountant, prints. */
static ff_status
privacy_plan(ff_ctl *ctl, ff_error *err)
{
    plan p = {0};

    if (ctl->npos > 1)
        return ff_error_set(err, FF_ERR_ARG,
                            "plan takes no arguments, only flags");

    /* Inputs, orders, then one of the two questions. */
    ff_status st = plan_read(ctl, &p, err);
    if (st == FF_OK)
        st = plan_orders(&p, err);
    if (st == FF_OK)
        st = p.target > 0 ? plan_sigma(&p, err) : plan_epsilon(&p, err);
    if (st != FF_OK)
        return st;

    if (ctl->json)
        return print_json(&p, err);
    print_text(&p);
    if (fflush(stdout) != 0)
        return ff_error_set(err, FF_ERR_IO, "writing to stdout failed");
    return FF_OK;
}

ff_status
ff_ctl_privacy(ff_ctl *ctl, ff_error *err)
{
    const char *sub = ctl->npos > 0 ? ctl->pos[0] : NULL;

    /* plan, budget MODEL, ledger MODEL, or a model name alone. */
    if (sub == NULL)
        return ff_error_set(err, FF_ERR_ARG,
                            "missing subcommand: plan, budget MODEL or "
                            "[ledger] MODEL");
    if (strcmp(sub, "plan") == 0)
        return privacy_plan(ctl, err);
    if (strcmp(sub, "budget") == 0 || strcmp(sub, "ledger") == 0) {
        if (ctl->npos != 2)
            return ff_error_set(err, FF_ERR_ARG,
                                "privacy %s takes exactly one MODEL", sub);
        if (sub[0] == 'b')
            return ff_ctl_privacy_budget(ctl, ctl->pos[1], err);
        return ff_ctl_privacy_ledger(ctl, ctl->pos[1], err);
    }
    if (ctl->npos != 1)
        return ff_error_set(err, FF_ERR_ARG,
                            "unknown subcommand '%.40s' (plan, budget, "
                            "ledger, or a MODEL alone)", sub);
    return ff_ctl_privacy_ledger(ctl, sub, err);
}
