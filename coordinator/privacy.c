/*
 * privacy.c - the coordinator's side of differential privacy
 * (docs/privacy-accounting.md): site-level DP of each round (central
 * discretised Gaussian noise, or the distributed discrete Gaussian under
 * secure aggregation, with optional adaptive clipping), the model's RDP
 * accountant, rebuilt from the registry ledger at start, the model budget
 * check before each round, and the ledger rows and privacy JSON after it.
 *
 * The accountant and the round's parameters belong to the main thread;
 * the running sums are filled by upload handlers under f->lock.
 */
#include "fed_internal.h"

#include <math.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "../common/ff_log.h"

/* Adaptive clipping (Andrew et al. 2021): target quantile and step. */
#define FED_DP_TARGET_QUANTILE 0.5
#define FED_DP_CLIP_ETA 0.2
/* The noised count's std is n_planned / this. */
#define FED_DP_COUNT_STD_DIV FF_COORD_DP_COUNT_STD_DIV
/* Relative slack of the plain clip check (float rounding at the site);
 * an update within it is clipped here, so the sensitivity stays clip. */
#define FED_DP_CLIP_RTOL 1e-4
/* The model's delta when no budget names one. */
#define FED_DP_DEFAULT_DELTA 1e-5

/* ---- small helpers ---- */

/* The ledger's name of the model's mechanism. */
static const char *model_mechanism(const ff_coord_config *c)
{
    if (c->site_dp == FF_WIRE_SITE_DP_CENTRAL)
        return "central-gaussian";
    if (c->site_dp == FF_WIRE_SITE_DP_DISTRIBUTED)
        return "ddgauss";
    return "none";
}

/* A finite number as JSON, anything else as null. */
static json_t *num_or_null(double v)
{
    return isfinite(v) ? json_real(v) : json_null();
}

/* Reads params[key] as a finite number; 0 when absent or not finite. */
static int param_num(const json_t *params, const char *key, double *v)
{
    json_t *x = json_object_get(params, key);

    if (!json_is_number(x) || !isfinite(json_number_value(x)))
        return 0;
    *v = json_number_value(x);
    return 1;
}

/* Epsilon of acct at delta (new conversion); INFINITY when unbounded or
 * when the accountant cannot say. */
static double acct_epsilon(const ff_accountant *a, int unbounded,
                           double delta)
{
    ff_privacy_error pe = {0};
    double eps = INFINITY;

    if (unbounded)
        return INFINITY;
    if (ff_accountant_epsilon(a, delta, FF_ACCT_CONV_NEW, &eps, NULL,
                              &pe) != FF_PRIVACY_OK)
        return INFINITY;
    return eps;
}

/* The grid the model's accountant uses. */
static ff_acct_grid model_grid(const ff_coord_config *c)
{
    return c->site_dp == FF_WIRE_SITE_DP_DISTRIBUTED ? FF_ACCT_GRID_DDGAUSS
                                                     : FF_ACCT_GRID_DEFAULT;
}

/* The accounting inputs of a DDGauss round with `clients` noise shares. */
static ff_acct_ddgauss ddgauss_mechanism(const ff_ddgauss_params *dd,
                                         int clients)
{
    ff_acct_ddgauss m;

    ff_ddgauss_sensitivity(dd, &m.l2_sensitivity, &m.l1_sensitivity);
    m.sigma = sqrt(dd->local_sigma2);
    m.clients = (uint64_t)(clients > 0 ? clients : 1);
    m.dim = dd->padded;
    m.q = 1.0;
    return m;
}

/* Adds one round of the open round's mechanism, with `clients` noise
 * shares for distributed DP, to a. */
static ff_privacy_status round_add(const ff_federation *f, ff_accountant *a,
                                   int clients, ff_privacy_error *pe)
{
    const ff_fed_dp_round *dp = &f->dp;
    ff_acct_ddgauss m;

    if (f->cfg.site_dp == FF_WIRE_SITE_DP_CENTRAL)
        return ff_accountant_add_gaussian(a, 1.0, dp->sigma_eff, 1, pe);
    m = ddgauss_mechanism(&dp->dd, clients);
    return ff_accountant_add_ddgauss(a, &m, 1, pe);
}

/* ---- restart: the accountant from the ledger ---- */

/* Adds one "spent" model row of the ledger to the accountant. Errors:
 * FF_ERR_FORMAT naming the round and what was wrong. */
static ff_status ledger_replay(ff_federation *f, const json_t *e,
                               ff_error *err)
{
    const char *mech = json_string_value(json_object_get(e, "mechanism"));
    const json_t *params = json_object_get(e, "params");
    int round = (int)json_integer_value(json_object_get(e, "round"));
    ff_privacy_error pe = {0};
    ff_privacy_status ps = FF_PRIVACY_OK;
    ff_acct_ddgauss m;
    double q, sigma, steps, clients, dim, clip;

    if (mech == NULL)
        return ff_error_set(err, FF_ERR_FORMAT, "ledger row of round %d "
                            "has no mechanism", round);
    if (strcmp(mech, "none") == 0) {
        f->acct_unbounded = 1;
        return FF_OK;
    }
    if (strcmp(mech, "central-gaussian") == 0) {
        if (!param_num(params, "q", &q) || !param_num(params, "sigma",
                                                      &sigma) ||
            !param_num(params, "steps", &steps))
            return ff_error_set(err, FF_ERR_FORMAT, "ledger row of round "
                                "%d lacks q, sigma or steps", round);
        ps = ff_accountant_add_gaussian(&f->acct, q, sigma, (int64_t)steps,
                                        &pe);
    } else if (strcmp(mech, "ddgauss") == 0) {
        if (!param_num(params, "l2", &m.l2_sensitivity) ||
            !param_num(params, "l1", &m.l1_sensitivity) ||
            !param_num(params, "sigma", &m.sigma) ||
            !param_num(params, "clients", &clients) ||
            !param_num(params, "dim", &dim) || !param_num(params, "q", &q))
            return ff_error_set(err, FF_ERR_FORMAT, "ledger row of round "
                                "%d lacks a DDGauss parameter", round);
        m.clients = (uint64_t)clients;
        m.dim = (uint64_t)dim;
        m.q = q;
        ps = ff_accountant_add_ddgauss(&f->acct, &m, 1, &pe);
    } else {
        return ff_error_set(err, FF_ERR_FORMAT, "ledger row of round %d: "
                            "unknown model mechanism '%s'", round, mech);
    }
    if (ps != FF_PRIVACY_OK)
        return ff_error_set(err, FF_ERR_FORMAT, "ledger row of round %d: "
                            "%s", round, ff_privacy_error_text(&pe));

    /* The adaptive clip continues from where the last round left it. */
    if (param_num(params, "clip_next", &clip) && clip > 0.0 &&
        f->cfg.site_dp_adaptive)
        f->clip_now = clip;
    return FF_OK;
}

/* Rebuilds the accountant from every "spent" model row of the ledger. */
static ff_status accountant_rebuild(ff_federation *f, ff_error *err)
{
    ff_privacy_error pe = {0};
    json_t *ledger = NULL, *e;
    ff_status st;
    size_t k;
    int rows = 0;

    if (ff_accountant_init_grid(&f->acct, model_grid(&f->cfg), &pe) !=
        FF_PRIVACY_OK)
        return ff_error_set(err, FF_ERR_INTERNAL, "accountant: %s",
                            ff_privacy_error_text(&pe));
    st = ff_registry_ledger_model_rows(f->reg, f->cfg.model, &ledger, err);
    if (st != FF_OK)
        return ff_error_wrap(err, st, "reading the privacy ledger");
    json_array_foreach(json_object_get(ledger, "entries"), k, e) {
        const char *status = json_string_value(json_object_get(e,
                                                               "status"));
        if (!json_is_null(json_object_get(e, "site")) || status == NULL ||
            strcmp(status, "spent") != 0)
            continue;
        st = ledger_replay(f, e, err);
        if (st != FF_OK)
            break;
        rows++;
    }
    json_decref(ledger);
    if (st != FF_OK)
        return st;
    FF_INFO("model accountant rebuilt from %d ledger rows%s", rows,
            f->acct_unbounded ? " (a round ran without site-level DP: "
                                "the model's epsilon is unbounded)"
                              : "");
    return FF_OK;
}

/* Writes the model budget (eps, delta), audited with the previous one. */
static ff_status budget_write(ff_federation *f, double eps, double delta,
                              ff_error *err)
{
    ff_status st = ff_registry_budget_set(f->reg, f->cfg.model, eps, delta,
                                          "coordinator", err);

    if (st != FF_OK)
        return ff_error_wrap(err, st, "setting the model budget");
    return FF_OK;
}

/* The budget of --model-epsilon / --model-delta: set when none is stored;
 * a stored one (fedfusectl, or an earlier start) is lowered to the flags
 * where they are lower, and never raised: a higher flag is a WARN and the
 * stored value stays. An omitted --model-delta keeps the stored delta. */
static ff_status budget_from_flags(ff_federation *f, ff_error *err)
{
    const ff_coord_config *c = &f->cfg;
    double eps = 0.0, delta = 0.0, new_eps, new_delta;
    char given[64] = "";
    int found = 0;
    ff_status st;

    if (!(c->model_epsilon > 0.0))
        return FF_OK;
    st = ff_registry_budget_get(f->reg, c->model, &eps, &delta, &found,
                                err);
    if (st != FF_OK)
        return ff_error_wrap(err, st, "reading the model budget");

    /* None stored: the flags set it. */
    if (!found) {
        new_delta = c->model_delta > 0.0 ? c->model_delta
                                         : FED_DP_DEFAULT_DELTA;
        st = budget_write(f, c->model_epsilon, new_delta, err);
        if (st == FF_OK)
            FF_INFO("model budget set: epsilon %g, delta %g",
                    c->model_epsilon, new_delta);
        return st;
    }

    /* Stored: each part may only go down. */
    new_eps = c->model_epsilon < eps ? c->model_epsilon : eps;
    new_delta = c->model_delta > 0.0 && c->model_delta < delta
                    ? c->model_delta : delta;
    if (c->model_delta > 0.0)
        snprintf(given, sizeof given, " / --model-delta %g", c->model_delta);
    if (c->model_epsilon > eps || c->model_delta > delta)
        FF_WARN("--model-epsilon %g%s would raise the stored model budget "
                "(epsilon %g, delta %g): a start never raises a budget "
                "(fedfusectl privacy budget does); keeping epsilon %g, "
                "delta %g", c->model_epsilon, given, eps, delta, new_eps,
                new_delta);
    if (new_eps == eps && new_delta == delta)
        return FF_OK;
    st = budget_write(f, new_eps, new_delta, err);
    if (st == FF_OK)
        FF_WARN("model budget lowered by --model-epsilon/--model-delta: "
                "epsilon %g -> %g, delta %g -> %g", eps, new_eps, delta,
                new_delta);
    return st;
}

ff_status ff_fed_privacy_restore(ff_federation *f, ff_error *err)
{
    const ff_coord_config *c = &f->cfg;
    double eps = 0.0, delta = FED_DP_DEFAULT_DELTA;
    int found = 0;
    ff_status st;

    /* The operator's budget from the flags, before anything reads it. */
    st = budget_from_flags(f, err);
    if (st != FF_OK)
        return st;

    /* The accountant and the clip in force. */
    f->clip_now = c->site_dp_clip;
    st = accountant_rebuild(f, err);
    if (st == FF_OK)
        st = ff_registry_budget_get(f->reg, c->model, &eps, &delta, &found,
                                    err);
    if (st != FF_OK)
        return st;
    f->model_eps = acct_epsilon(&f->acct, f->acct_unbounded,
                                found ? delta : FED_DP_DEFAULT_DELTA);
    FF_INFO("site-level DP %s; model epsilon so far %g (delta %g), budget "
            "%s%g; clip %g", model_mechanism(c), f->model_eps,
            found ? delta : FED_DP_DEFAULT_DELTA, found ? "" : "none, ",
            found ? eps : 0.0, f->clip_now);

    /* Central DP with plain uploads sums in double precision here. */
    if (c->site_dp == FF_WIRE_SITE_DP_CENTRAL && !c->secagg) {
        f->dp.sum = calloc(f->n_params, sizeof *f->dp.sum);
        if (f->dp.sum == NULL)
            return ff_error_set(err, FF_ERR_NOMEM, "out of memory for the "
                                "site-DP sum of %zu parameters",
                                f->n_params);
    }
    return FF_OK;
}

void ff_fed_privacy_cleanup(ff_federation *f)
{
    free(f->dp.sum);
    f->dp.sum = NULL;
}

/* ---- opening a round ---- */

/* The L2 slack of the noised count's grid (adaptive clipping); 0 without
 * a count. */
static double count_slack(const ff_fed_dp_round *dp)
{
    if (!(dp->count_std > 0.0))
        return 0.0;
    return ff_dp_grid_l2_slack(ff_dp_grid_step(dp->count_std), 1);
}

/* Central: the multiplier the round is accounted with. The update (std
 * z_u c, sensitivity c + slack) and, with adaptive clipping, the count
 * (std count_std, sensitivity 1/2 + its grid slack) are two Gaussians on
 * the same data; together they are one Gaussian whose squared inverse
 * multiplier is the sum of theirs. Without slack that is exactly z, the
 * combined guarantee (docs/privacy-accounting.md, sec. 11). */
static double central_sigma(const ff_fed_dp_round *dp)
{
    double ru = (dp->clip + dp->slack) / (dp->z_u * dp->clip);
    double rc = dp->count_std > 0.0
                    ? (0.5 + count_slack(dp)) / dp->count_std : 0.0;

    return 1.0 / sqrt(ru * ru + rc * rc);
}

/* Chooses the noise of the open round: z_u (adaptive clipping takes the
 * count's share), then central slack and multiplier, or the DDGauss
 * parameters. Returns 0, or -1 with why (the round cannot run). */
static int round_prepare(ff_federation *f, char *why, size_t cap)
{
    ff_fed_dp_round *dp = &f->dp;
    const ff_coord_config *c = &f->cfg;
    ff_privacy_error pe = {0};
    uint8_t seed[32];
    double gamma, max_value;

    /* Config check refuses it; never noise a count the sites sum. */
    if (c->site_dp_adaptive && c->site_dp == FF_WIRE_SITE_DP_DISTRIBUTED) {
        snprintf(why, cap, "adaptive clipping needs central mode: under "
                 "distributed DP the count would reach the coordinator "
                 "unnoised");
        return -1;
    }

    /* The update's own multiplier. */
    dp->count_std = c->site_dp_adaptive
                        ? dp->n_planned / FED_DP_COUNT_STD_DIV : 0.0;
    dp->z_u = c->site_dp_adaptive
                  ? ff_dp_adaptive_effective_z(dp->z, dp->count_std)
                  : dp->z;
    if (!isfinite(dp->z_u)) {
        snprintf(why, cap, "adaptive clipping with %d sites: the count's "
                 "noise (std %g = sites / %g) leaves no noise budget for the "
                 "update at z = %g (needs more than %g sites)", dp->n_planned,
                 dp->count_std, FED_DP_COUNT_STD_DIV, dp->z,
                 FED_DP_COUNT_STD_DIV / 2.0 * dp->z);
        return -1;
    }

    /* Central: the grid (and quantisation) slack lowers the multiplier. */
    if (c->site_dp == FF_WIRE_SITE_DP_CENTRAL) {
        gamma = ff_dp_grid_step(dp->z_u * dp->clip);
        dp->slack = ff_dp_grid_l2_slack(gamma, f->n_params);
        if (c->secagg) {
            max_value = (double)(0xffffffffu / (uint32_t)dp->n_planned);
            dp->slack += sqrt((double)f->n_params) * 2.0 * dp->clip /
                         max_value;
        }
        dp->sigma_eff = central_sigma(dp);
        return 0;
    }

    /* Distributed: the public parameters, a fresh rotation each round. */
    randombytes_buf(seed, sizeof seed);
    if (ff_ddgauss_params_choose(f->n_params, (uint32_t)dp->n_planned,
                                 dp->clip, dp->z_u, c->site_dp_bits, seed,
                                 &dp->dd, &pe) != FF_PRIVACY_OK) {
        snprintf(why, cap, "DDGauss parameters for %d sites, %u bits: %s",
                 dp->n_planned, c->site_dp_bits, ff_privacy_error_text(&pe));
        return -1;
    }
    return 0;
}

/* The model's epsilon if the round runs: the worst case is that only
 * min-sites noise shares arrive (fewer and the round aborts). */
static double round_predict(const ff_federation *f)
{
    ff_privacy_error pe = {0};
    ff_accountant a = f->acct;
    int clients = f->cfg.min_sites < f->dp.n_planned ? f->cfg.min_sites
                                                     : f->dp.n_planned;

    if (f->acct_unbounded || round_add(f, &a, clients, &pe) !=
                                 FF_PRIVACY_OK)
        return INFINITY;
    return acct_epsilon(&a, 0, f->dp.delta);
}

/* Writes the model's "refused" row for round r. */
static ff_status round_refuse(ff_federation *f, int r, double would,
                              const char *why, ff_error *err)
{
    ff_ledger_entry e;
    ff_status st;

    FF_WARN("round %d refused: %s", r, why);
    ff_metric("privacy", "round=%d status=refused would_epsilon=%g "
              "budget=%g delta=%g", r, would, f->dp.budget, f->dp.delta);
    memset(&e, 0, sizeof e);
    e.model = f->cfg.model;
    e.round = r;
    e.status = "refused";
    e.mechanism = model_mechanism(&f->cfg);
    e.epsilon = isnan(would) ? INFINITY : would;
    e.delta = f->dp.delta;
    e.noise_multiplier = NAN;
    e.clip = f->dp.active ? f->dp.clip : NAN;
    e.sampling_rate = 1.0;
    e.steps = 0;
    e.budget = f->dp.budget;
    e.reason = why;
    st = ff_registry_ledger_add(f->reg, &e, err);
    if (st != FF_OK)
        FF_ERROR("round %d refusal not written to the ledger: %s", r,
                 ff_error_text(err));
    return st;
}

ff_status ff_fed_privacy_round_open(ff_federation *f, int r, int n_selected,
                                    int *refused, ff_error *err)
{
    ff_fed_dp_round *dp = &f->dp;
    double beps = 0.0, bdelta = FED_DP_DEFAULT_DELTA, would = NAN;
    char why[FF_WIRE_TEXT_MAX];
    int found = 0, bad;
    ff_status st;

    /* A clean slate; the plain sum is kept, emptied. */
    *refused = 0;
    why[0] = '\0';
    if (dp->sum != NULL)
        memset(dp->sum, 0, f->n_params * sizeof *dp->sum);
    dp->active = f->cfg.site_dp != FF_WIRE_SITE_DP_NONE;
    dp->n_planned = n_selected;
    dp->clip = f->clip_now;
    dp->clip_next = f->clip_now;
    dp->z = f->cfg.site_dp_noise;
    dp->unclipped = 0.0;
    dp->arrived = 0;
    dp->count_noised = NAN;
    dp->wrapped = 0;
    dp->round_eps = NAN;
    dp->sites_recorded = 0;
    dp->model_recorded = 0;

    /* The budget in force now: the operator may have changed it. */
    st = ff_registry_budget_get(f->reg, f->cfg.model, &beps, &bdelta,
                                &found, err);
    if (st != FF_OK)
        return ff_error_wrap(err, st, "reading the model budget");
    dp->budget = found ? beps : INFINITY;
    dp->delta = found ? bdelta : FED_DP_DEFAULT_DELTA;

    /* Noise, then what the round would cost against the budget. */
    bad = dp->active && round_prepare(f, why, sizeof why) != 0;
    if (!bad && dp->active)
        would = round_predict(f);
    if (!bad && found && !dp->active) {
        would = INFINITY;
        snprintf(why, sizeof why, "the model has a privacy budget (epsilon "
                 "%g) but site-level DP is off (--site-dp off): its epsilon "
                 "would be unbounded", beps);
    } else if (!bad && found && !(would <= beps)) {
        snprintf(why, sizeof why, "the model's epsilon would reach %.4f, "
                 "above its budget %g (delta %g; %.4f spent so far)", would,
                 beps, bdelta, f->model_eps);
    }
    if (why[0] == '\0')
        return FF_OK;
    *refused = 1;
    return round_refuse(f, r, would, why, err);
}

void ff_fed_site_dp_task(const ff_federation *f, ff_wire_site_dp_task *t)
{
    const ff_fed_dp_round *dp = &f->dp;

    memset(t, 0, sizeof *t);
    if (!dp->active)
        return;
    t->mode = f->cfg.site_dp;
    t->clip = dp->clip;
    t->report_unclipped = f->cfg.site_dp_adaptive;
    if (t->mode != FF_WIRE_SITE_DP_DISTRIBUTED)
        return;
    t->bits = dp->dd.bits;
    t->padded = dp->dd.padded;
    t->scale = dp->dd.scale;
    t->beta = dp->dd.beta;
    t->local_sigma2 = dp->dd.local_sigma2;
    t->sites = dp->dd.sites;
    memcpy(t->rotation_seed, dp->dd.rotation_seed, sizeof t->rotation_seed);
}

int ff_fed_dp_secagg_layout(const ff_federation *f, uint32_t n,
                            ff_secagg_config *c, double *clip)
{
    const ff_fed_dp_round *dp = &f->dp;

    if (!dp->active)
        return 0;
    *clip = dp->clip;
    if (f->cfg.site_dp == FF_WIRE_SITE_DP_CENTRAL) {
        /* p quantised words, the raw unclipped bit, G raw 1s. */
        c->bits = 32;
        c->length = (uint64_t)f->n_params + 1 + FF_GROUP_COUNT;
        c->max_value = 0xffffffffu / n;
        return 1;
    }

    /* DDGauss words and the raw bit, summed modulo 2^bits. */
    c->bits = dp->dd.bits;
    c->length = dp->dd.padded + 1;
    c->max_value = dp->dd.bits == 32 ? 0xffffffffu
                                     : (1u << dp->dd.bits) - 1u;
    c->wrap = 1;
    return 1;
}

/* ---- accounting ---- */

/* Adds the round to the accountant, once (dp.round_eps, its epsilon
 * alone, is NAN until then): at unmasking for distributed DP, before the
 * ledger row otherwise. Errors: FF_ERR_INTERNAL. */
static ff_status round_account(ff_federation *f, ff_error *err)
{
    ff_privacy_error pe = {0};
    ff_accountant one;

    if (!isnan(f->dp.round_eps))
        return FF_OK;
    if (!f->dp.active) {
        f->acct_unbounded = 1;
        f->model_eps = INFINITY;
        return FF_OK;
    }
    if (ff_accountant_init_grid(&one, model_grid(&f->cfg), &pe) !=
            FF_PRIVACY_OK ||
        round_add(f, &one, f->dp.arrived, &pe) != FF_PRIVACY_OK ||
        round_add(f, &f->acct, f->dp.arrived, &pe) != FF_PRIVACY_OK)
        return ff_error_set(err, FF_ERR_INTERNAL, "accounting round: %s",
                            ff_privacy_error_text(&pe));
    f->dp.round_eps = acct_epsilon(&one, 0, f->dp.delta);
    f->model_eps = acct_epsilon(&f->acct, f->acct_unbounded, f->dp.delta);
    return FF_OK;
}

/* ---- summing ---- */

ff_status ff_fed_dp_plain_add(ff_federation *f, const float *delta,
                              int unclipped, ff_error *err)
{
    ff_fed_dp_round *dp = &f->dp;
    double norm2 = 0.0, norm, scale = 1.0;
    size_t i;

    if (dp->sum == NULL)
        return ff_error_set(err, FF_ERR_REJECTED, "plain update, but site "
                            "DP sums this round securely");
    for (i = 0; i < f->n_params; i++)
        norm2 += (double)delta[i] * (double)delta[i];
    norm = sqrt(norm2);
    if (!isfinite(norm))
        return ff_error_set(err, FF_ERR_REJECTED, "the update holds a value "
                            "that is not finite");
    if (norm > dp->clip * (1.0 + FED_DP_CLIP_RTOL))
        return ff_error_set(err, FF_ERR_REJECTED, "update norm %.6g exceeds "
                            "the site-DP clip %.6g", norm, dp->clip);

    /* Within the tolerance but above the clip: clipped here, so that the
     * accounted sensitivity (clip) holds. */
    if (norm > dp->clip)
        scale = dp->clip / norm;
    for (i = 0; i < f->n_params; i++)
        dp->sum[i] += (double)delta[i] * scale;
    dp->unclipped += unclipped ? 1.0 : 0.0;
    dp->arrived++;
    return FF_OK;
}

/* Adaptive clipping: the noised count of unclipped updates gives the next
 * clip. What is noised is sum(b - 1/2) over the `arrived` updates, whose
 * sensitivity is 1/2 (one site more or less moves it by 1/2), as the
 * accounting assumes; n_planned / 2 is added back afterwards
 * (post-processing: n_planned is fixed before the round). Errors:
 * FF_ERR_ARG (the noise failed). */
static ff_status clip_adapt(ff_federation *f, double unclipped,
                            int arrived, ff_error *err)
{
    ff_fed_dp_round *dp = &f->dp;
    ff_privacy_error pe = {0};
    float centred = (float)(unclipped - 0.5 * arrived);
    double count, frac;

    if (ff_dp_noise_add(&centred, 1, dp->count_std, NULL, &pe) !=
        FF_PRIVACY_OK)
        return ff_error_set(err, FF_ERR_ARG, "noise of the unclipped "
                            "count: %s", ff_privacy_error_text(&pe));
    count = (double)centred + 0.5 * dp->n_planned;
    dp->count_noised = count;
    frac = count / (double)dp->n_planned;
    dp->clip_next = ff_dp_adaptive_clip_next(dp->clip, frac,
                                             FED_DP_TARGET_QUANTILE,
                                             FED_DP_CLIP_ETA);
    f->clip_now = dp->clip_next;
    FF_INFO("adaptive clipping: noised unclipped count %.2f of %d, clip "
            "%g -> %g", count, dp->n_planned, dp->clip, dp->clip_next);
    return FF_OK;
}

ff_status ff_fed_dp_close(ff_federation *f, float *sum, int arrived,
                          double unclipped, ff_error *err)
{
    ff_fed_dp_round *dp = &f->dp;
    uint64_t examples[FF_GROUP_COUNT];
    ff_privacy_error pe = {0};
    float *own = NULL;
    ff_status st = FF_OK;
    size_t i;
    int g;

    /* S as floats: the plain running sum, or what the caller decoded. */
    if (sum == NULL) {
        own = malloc(f->n_params * sizeof *own);
        if (own == NULL)
            return ff_error_set(err, FF_ERR_NOMEM, "out of memory for the "
                                "site-DP sum");
        for (i = 0; i < f->n_params; i++)
            own[i] = (float)dp->sum[i];
        sum = own;
    }

    /* Central noise on the grid; distributed noise came with the sum. */
    if (f->cfg.site_dp == FF_WIRE_SITE_DP_CENTRAL &&
        ff_dp_noise_add(sum, f->n_params, dp->z_u * dp->clip, NULL, &pe) !=
            FF_PRIVACY_OK)
        st = ff_error_set(err, FF_ERR_ARG, "central noise: %s",
                          ff_privacy_error_text(&pe));
    if (st == FF_OK && f->cfg.site_dp_adaptive)
        st = clip_adapt(f, unclipped, arrived, err);

    /* The global step is S / n_planned for every group. */
    for (g = 0; g < FF_GROUP_COUNT; g++)
        examples[g] = (uint64_t)dp->n_planned;
    if (st == FF_OK)
        st = ff_aggregate_add_sum(f->agg, sum, f->n_params, examples,
                                  FF_GROUP_COUNT, (size_t)arrived, err);
    if (st == FF_OK)
        dp->arrived = arrived;
    free(own);
    return st;
}

/* Distributed: the coordinator holds the noised sum from here on, so the
 * round is accounted at once with the noise shares that arrived
 * (`inputs`), whatever happens to it later; then S is decoded into s.
 * Errors: FF_ERR_INTERNAL (accountant), FF_ERR_FORMAT (decoding). */
static ff_status ddgauss_reveal(ff_federation *f, const uint32_t *words,
                                uint32_t inputs, float *s, ff_error *err)
{
    ff_fed_dp_round *dp = &f->dp;
    ff_privacy_error pe = {0};
    ff_status st;

    dp->arrived = (int)inputs;
    st = round_account(f, err);
    if (st != FF_OK)
        return st;
    if (ff_ddgauss_decode(&dp->dd, words, s, &dp->wrapped, &pe) !=
        FF_PRIVACY_OK)
        return ff_error_set(err, FF_ERR_FORMAT, "DDGauss decoding: %s",
                            ff_privacy_error_text(&pe));
    if (dp->wrapped > 0)
        FF_WARN("DDGauss sum: %zu coordinates lie near the edge of the "
                "field (2^%u); the modular clip may have cut some",
                dp->wrapped, (unsigned)dp->dd.bits);
    return FF_OK;
}

ff_status ff_fed_dp_secagg_sum(ff_federation *f, const uint32_t *words,
                               uint32_t inputs, ff_error *err)
{
    ff_fed_dp_round *dp = &f->dp;
    ff_privacy_error pe = {0};
    float *s = malloc(f->n_params * sizeof *s);
    double unclipped;
    ff_status st = FF_OK;

    if (s == NULL)
        return ff_error_set(err, FF_ERR_NOMEM, "out of memory for the "
                            "site-DP sum");

    /* Central: dequantise the clipped deltas (word p: the unclipped
     * bits); distributed: account and decode (the word after the encoding
     * is ignored: adaptive clipping is central only). */
    if (f->cfg.site_dp == FF_WIRE_SITE_DP_CENTRAL) {
        unclipped = words[f->n_params];
        if (ff_secagg_dequantize_sum(words, f->n_params, inputs,
                                     (float)dp->clip, f->sa_cfg.max_value,
                                     s, &pe) != FF_PRIVACY_OK)
            st = ff_error_set(err, FF_ERR_FORMAT, "dequantising: %s",
                              ff_privacy_error_text(&pe));
    } else {
        unclipped = 0.0;
        st = ddgauss_reveal(f, words, inputs, s, err);
    }
    if (st == FF_OK)
        st = ff_fed_dp_close(f, s, (int)inputs, unclipped, err);
    free(s);
    return st;
}

/* ---- the ledger ---- */

/* One site's ledger row from its report. */
static void site_entry(const ff_federation *f, int r, const ff_fed_site *s,
                       ff_ledger_entry *e)
{
    const ff_wire_update_header *h = &s->report;
    int dp = h->dp_mechanism[0] != '\0';

    memset(e, 0, sizeof *e);
    e->model = f->cfg.model;
    e->round = r;
    e->site = s->id;
    e->status = s->refused ? "refused" : "spent";
    e->mechanism = dp || s->refused ? "dp-sgd" : "none";
    e->epsilon = dp || s->refused ? h->dp_epsilon : INFINITY;
    e->delta = h->dp_delta;
    e->noise_multiplier = dp ? h->dp_noise_multiplier : NAN;
    e->clip = dp ? h->dp_clip : NAN;
    e->sampling_rate = dp ? h->dp_sampling_rate : NAN;
    e->steps = (int64_t)h->dp_steps;
    e->budget = h->dp_epsilon_budget > 0.0 ? h->dp_epsilon_budget
                                           : INFINITY;
    e->reason = s->refused ? h->refusal : NULL;
}

ff_status ff_fed_privacy_sites_record(ff_federation *f, int r,
                                      ff_error *err)
{
    ff_ledger_entry *rows = calloc(FF_COORD_MAX_SITES, sizeof *rows);
    ff_fed_site *copy = calloc(FF_COORD_MAX_SITES, sizeof *copy);
    ff_status st = FF_OK;
    int i, n = 0;

    if (rows == NULL || copy == NULL) {
        st = ff_error_set(err, FF_ERR_NOMEM, "out of memory");
        goto done;
    }

    /* The reports, copied under the lock; written without it. */
    pthread_mutex_lock(&f->lock);
    for (i = 0; i < f->n_sites; i++) {
        const ff_fed_site *s = &f->sites[i];
        if (s->selected && s->reported && (s->contributed || s->refused))
            copy[n++] = *s;
    }
    pthread_mutex_unlock(&f->lock);
    for (i = 0; i < n && st == FF_OK; i++) {
        site_entry(f, r, &copy[i], &rows[i]);
        st = ff_registry_ledger_add(f->reg, &rows[i], err);
    }
    if (st == FF_OK)
        f->dp.sites_recorded = 1;

done:
    free(copy);
    free(rows);
    return st;
}

/* The parameters that let a restarted coordinator recompute the round. */
static json_t *model_params(const ff_federation *f)
{
    const ff_fed_dp_round *dp = &f->dp;
    ff_acct_ddgauss m;
    json_t *p;

    if (!dp->active)
        return json_pack("{s:s}", "mode", "off");
    p = json_pack("{s:s, s:f, s:f, s:f, s:f, s:i, s:i, s:o, s:o, s:b}",
                  "mode", model_mechanism(&f->cfg), "z", dp->z, "z_u",
                  dp->z_u, "clip", dp->clip, "clip_next", dp->clip_next,
                  "n_planned", dp->n_planned, "arrived", dp->arrived,
                  "round_epsilon", num_or_null(dp->round_eps),
                  "unclipped_count_noised", num_or_null(dp->count_noised),
                  "secagg", f->cfg.secagg);
    if (p == NULL)
        return NULL;
    if (f->cfg.site_dp == FF_WIRE_SITE_DP_CENTRAL) {
        json_object_update_new(
            p, json_pack("{s:f, s:f, s:i, s:f, s:I, s:f, s:f}", "q", 1.0,
                         "sigma", dp->sigma_eff, "steps", 1, "slack",
                         dp->slack, "dim", (json_int_t)f->n_params,
                         "count_std", dp->count_std, "count_slack",
                         count_slack(dp)));
        return p;
    }
    m = ddgauss_mechanism(&dp->dd, dp->arrived);
    json_object_update_new(
        p, json_pack("{s:f, s:f, s:f, s:I, s:I, s:f, s:i, s:f, s:f, s:f, "
                     "s:I}", "l2", m.l2_sensitivity, "l1", m.l1_sensitivity,
                     "sigma", m.sigma, "clients", (json_int_t)m.clients,
                     "dim", (json_int_t)m.dim, "q", m.q, "bits",
                     (int)dp->dd.bits, "scale", dp->dd.scale, "beta",
                     dp->dd.beta, "local_sigma2", dp->dd.local_sigma2,
                     "wrapped", (json_int_t)dp->wrapped));
    return p;
}

/* The version's privacy JSON (lock taken inside). */
static json_t *privacy_json(ff_federation *f)
{
    double rec = 0.0, rec_delta = 0.0;
    int i, any = 0, none = 0;

    pthread_mutex_lock(&f->lock);
    for (i = 0; i < f->n_sites; i++) {
        const ff_fed_site *s = &f->sites[i];
        if (!s->contributed)
            continue;
        any = 1;
        if (!s->reported || s->report.dp_mechanism[0] == '\0') {
            none = 1;
            continue;
        }
        if (s->report.dp_epsilon > rec)
            rec = s->report.dp_epsilon;
        if (s->report.dp_delta > rec_delta)
            rec_delta = s->report.dp_delta;
    }
    pthread_mutex_unlock(&f->lock);
    return json_pack("{s:o, s:o, s:o, s:o, s:f, s:s}", "record_epsilon",
                     any && !none ? json_real(rec) : json_null(),
                     "record_delta",
                     any && !none ? json_real(rec_delta) : json_null(),
                     "site_epsilon",
                     f->dp.active ? num_or_null(f->model_eps) : json_null(),
                     "site_round_epsilon", num_or_null(f->dp.round_eps),
                     "delta", f->dp.delta, "site_mechanism",
                     model_mechanism(&f->cfg));
}

/* The noise multiplier of the model's row: the accounted one (central),
 * or the arrived noise over the scaled sensitivity (distributed). */
static double model_multiplier(const ff_federation *f)
{
    ff_acct_ddgauss m;

    if (f->cfg.site_dp == FF_WIRE_SITE_DP_CENTRAL)
        return f->dp.sigma_eff;
    if (f->cfg.site_dp == FF_WIRE_SITE_DP_NONE)
        return NAN;
    m = ddgauss_mechanism(&f->dp.dd, f->dp.arrived);
    return sqrt((double)m.clients) * m.sigma / m.l2_sensitivity;
}

/* Writes the model's "spent" row of round r (reason: NULL, or why a
 * round that was not published is accounted), then its metric and log
 * line. Errors: FF_ERR_DB, FF_ERR_NOMEM. */
static ff_status model_row_add(ff_federation *f, int r, const char *reason,
                               ff_error *err)
{
    ff_ledger_entry e;
    ff_status st;

    memset(&e, 0, sizeof e);
    e.model = f->cfg.model;
    e.round = r;
    e.status = "spent";
    e.mechanism = model_mechanism(&f->cfg);
    e.epsilon = f->model_eps;
    e.delta = f->dp.delta;
    e.noise_multiplier = model_multiplier(f);
    e.clip = f->dp.active ? f->dp.clip : NAN;
    e.sampling_rate = 1.0;
    e.steps = 1;
    e.budget = f->dp.budget;
    e.reason = reason;
    e.params = model_params(f);
    if (e.params == NULL)
        return ff_error_set(err, FF_ERR_NOMEM, "out of memory for the "
                            "model's ledger parameters");
    st = ff_registry_ledger_add(f->reg, &e, err);
    json_decref(e.params);
    if (st != FF_OK)
        return ff_error_wrap(err, st, "model ledger row");
    ff_metric("privacy", "round=%d mechanism=%s epsilon=%g round_epsilon=%g "
              "delta=%g arrived=%d planned=%d clip=%g published=%d", r,
              e.mechanism, f->model_eps, f->dp.round_eps, f->dp.delta,
              f->dp.arrived, f->dp.n_planned,
              f->dp.active ? f->dp.clip : 0.0, reason == NULL);
    if (f->dp.active)
        FF_INFO("round %d privacy: model epsilon %g (this round %g) at "
                "delta %g, mechanism %s, %d of %d planned sites in the sum",
                r, f->model_eps, f->dp.round_eps, f->dp.delta, e.mechanism,
                f->dp.arrived, f->dp.n_planned);
    else
        FF_INFO("round %d privacy: site-level DP is off, the model's "
                "epsilon is unbounded", r);
    return FF_OK;
}

ff_status ff_fed_privacy_model_record(ff_federation *f, int r,
                                      json_t **privacy, ff_error *err)
{
    ff_status st;

    /* Account (unless done at unmasking), then write the row before
     * anything is released. */
    *privacy = NULL;
    st = round_account(f, err);
    if (st == FF_OK && !f->dp.model_recorded)
        st = model_row_add(f, r, NULL, err);
    if (st != FF_OK)
        return st;
    f->dp.model_recorded = 1;
    *privacy = privacy_json(f);
    if (*privacy == NULL)
        return ff_error_set(err, FF_ERR_NOMEM, "out of memory");
    return FF_OK;
}

ff_status ff_fed_privacy_abort_record(ff_federation *f, int r,
                                      const char *why, ff_error *err)
{
    char reason[FF_WIRE_TEXT_MAX];
    ff_status st;

    /* Only a distributed sum that was unmasked (arrived is set there) and
     * not yet recorded at unmasking. */
    if (!f->dp.active || f->cfg.site_dp != FF_WIRE_SITE_DP_DISTRIBUTED ||
        f->dp.arrived <= 0 || f->dp.model_recorded)
        return FF_OK;
    snprintf(reason, sizeof reason, "round aborted after its noised sum "
             "was unmasked (%d noise shares): %s", f->dp.arrived, why);
    st = round_account(f, err);
    if (st == FF_OK)
        st = model_row_add(f, r, reason, err);
    if (st != FF_OK)
        return st;
    f->dp.model_recorded = 1;
    FF_WARN("round %d accounted although not published: %s; the model's "
            "epsilon is now %g", r, reason, f->model_eps);
    return FF_OK;
}

ff_status ff_fed_privacy_unmask_record(ff_federation *f, int r,
                                       ff_error *err)
{
    ff_status st;

    if (!f->dp.active || f->cfg.site_dp != FF_WIRE_SITE_DP_DISTRIBUTED ||
        f->dp.arrived <= 0 || f->dp.model_recorded)
        return FF_OK;
    st = round_account(f, err);
    if (st == FF_OK)
        st = model_row_add(f, r, NULL, err);
    if (st != FF_OK)
        return st;
    f->dp.model_recorded = 1;
    return FF_OK;
}
