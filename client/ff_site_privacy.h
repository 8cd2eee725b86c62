/*
 * ff_site_privacy.h - record-level differential privacy of one site
 * (docs/site-privacy.md): the site's own privacy ledger file, the noise
 * plan kept in it, the budget check made before every round, and the
 * DP-SGD callbacks the model trains with.
 *
 * Every round is DP-SGD (model/ff_model.h, ff_dp_sgd) with Poisson rate
 * q = min(1, batch / records) and steps = epochs * round(1 / q). Noise is
 * discretised (ff_dp_noise_add), so the accountant is fed the effective
 * multiplier sigma_eff = sigma clip / (clip + grid slack). Epsilon is
 * computed over every round in the ledger plus the next one (RDP,
 * FF_ACCT_GRID_DEFAULT, new conversion, the configured delta); a round
 * that would bring it above the budget is refused. The budget comes from
 * the site's configuration only.
 *
 * Not thread-safe: one site, one thread, one ledger.
 */
#ifndef FF_SITE_PRIVACY_H
#define FF_SITE_PRIVACY_H

#include <stddef.h>
#include <stdint.h>

#include "../common/ff_status.h"
#include "../model/ff_model.h"
#include "../proto/ff_wire.h"

#define FF_SITE_PRIVACY_PATH_MAX 1024
#define FF_SITE_LEDGER_MAX_BYTES (64 * 1024 * 1024) /* largest file read */
#define FF_SITE_LEDGER_MAX_ROUNDS 1000000           /* entries accepted */
#define FF_SITE_LEDGER_FORMAT "fedfuse-site-privacy-ledger"
#define FF_SITE_LEDGER_VERSION 1

/* The [privacy] section of site.ini (each key also a flag). */
typedef struct ff_site_privacy_config {
    int dp;                  /* 1: DP-SGD (default); 0: no record-level DP */
    double epsilon_budget;   /* total epsilon this site's records may
                                spend, > 0 (default 8) */
    double delta;            /* in (0, 1) (default 1e-5) */
    double clip;             /* per-record L2 clip, > 0 (default 1) */
    double noise_multiplier; /* sigma; 0 = plan it (default) */
    int planned_rounds;      /* rounds the plan spreads the budget over */
    int batch;               /* expected Poisson batch size (default 64) */
    char ledger[FF_SITE_PRIVACY_PATH_MAX]; /* "" = <manifest dir>/
                                              privacy-ledger.json */
} ff_site_privacy_config;

/* Sets c to the defaults above. */
void ff_site_privacy_config_default(ff_site_privacy_config *c);

/* The noise plan made on the first DP round when noise_multiplier is 0,
 * with the inputs it was made for. */
typedef struct ff_site_dp_plan {
    int set;                 /* 0: no plan yet */
    double sigma;            /* multiplier the model trains with */
    double sigma_eff;        /* what the accountant is fed per step */
    double q;
    int64_t steps_per_round;
    int planned_rounds;
    double epsilon_budget;
    double delta;
    double clip;
    uint64_t param_count;
} ff_site_dp_plan;

/* One round the site spent, as recorded in its ledger. */
typedef struct ff_site_ledger_round {
    int round;
    double q;                /* Poisson rate, (0, 1] */
    double noise_multiplier; /* sigma the model trained with, > 0 */
    double sigma_eff;        /* accounted multiplier, (0, sigma] */
    double clip;
    int64_t steps;           /* >= 1 */
    double epsilon;          /* cumulative after the round (at delta) */
    double delta;
    char at[32];             /* UTC time, ISO 8601 */
} ff_site_ledger_round;

/* What identifies the ledger file as last read or written: a save
 * refuses to replace a file whose stamp has changed since. */
typedef struct ff_site_ledger_stamp {
    int exists;              /* 0: there was no file at the path */
    uint64_t dev, ino;
    int64_t size;
    int64_t mtime_ns;        /* modification time, ns since the epoch */
} ff_site_ledger_stamp;

/* The site's privacy ledger: the file and what it holds. Caller storage:
 * ff_site_ledger_load, then ff_site_ledger_cleanup. A loaded ledger holds
 * an exclusive flock(2) on <path>.lock until its cleanup, so a second
 * process (or a second load in this one) on the same ledger is refused.
 * Do not copy a loaded ledger: the copy would share the lock. */
typedef struct ff_site_ledger {
    char path[FF_SITE_PRIVACY_PATH_MAX];
    char site[FF_WIRE_ID_MAX + 1];
    ff_site_dp_plan plan;
    ff_site_ledger_round *rounds;  /* malloc'd */
    size_t n, cap;
    int locked;                    /* 1: lock_fd holds the lock */
    int lock_fd;
    ff_site_ledger_stamp stamp;    /* the file as last read or written */
} ff_site_ledger;

/*
 * Reads the ledger file at path into l (zeroed first) and locks it for
 * this process: an exclusive, non-blocking flock on <path>.lock (created
 * mode 0600 when missing, never through a symbolic link), held until
 * ff_site_ledger_cleanup. The ledger is opened with O_NOFOLLOW and
 * O_NONBLOCK, so a symbolic link (dangling or not), a FIFO, a device or a
 * directory at path is refused at once and never read or waited on. Only
 * a path where nothing exists at all is a new, empty ledger for site (a
 * WARN says so; the file is written on the first save). Anything else
 * that is not a well-formed ledger (over FF_SITE_LEDGER_MAX_BYTES, bad
 * JSON, a wrong format tag or version, a missing or out-of-range field)
 * is an error: the file is never reset. The ledger's "site" must equal
 * site when both are non-empty. path and site borrowed. Errors:
 * FF_ERR_FORMAT (corrupt: the message names the file and what is wrong),
 * FF_ERR_IO (a symbolic link or not a regular file, or unreadable),
 * FF_ERR_STATE (another process, or another ff_site_ledger here, holds
 * the lock), FF_ERR_CONFIG (the ledger belongs to another site: the
 * message names both ids), FF_ERR_NOMEM, FF_ERR_ARG (path too long).
 */
FF_MUST_USE ff_status ff_site_ledger_load(ff_site_ledger *l,
                                          const char *path, const char *site,
                                          ff_error *err);

/*
 * Checks that the ledger file is still the one l last read or wrote
 * (device, inode, size and modification time; or still absent when l
 * began empty). Errors: FF_ERR_STATE (replaced, edited, removed or
 * turned into a symbolic link: the message names the file and says that
 * nothing was overwritten), FF_ERR_IO.
 */
FF_MUST_USE ff_status ff_site_ledger_unchanged(const ff_site_ledger *l,
                                               ff_error *err);

/*
 * Writes l to its file atomically: a new temporary file beside it
 * (mkstemp: created exclusively, mode 0600, never through a symbolic
 * link), fsync, rename over the old one, fsync of the directory. It first
 * checks ff_site_ledger_unchanged and refuses to overwrite a ledger that
 * changed on disk. The old file stays intact on any failure. On success
 * l->stamp describes the new file (l is const but for that stamp).
 * Errors: those of ff_site_ledger_unchanged, FF_ERR_IO, FF_ERR_NOMEM.
 */
FF_MUST_USE ff_status ff_site_ledger_save(ff_site_ledger *l, ff_error *err);

/* Appends r (copied) and saves; on a failed save the entry is dropped
 * again, so memory and file agree. Errors: those of ff_site_ledger_save,
 * FF_ERR_NOMEM, FF_ERR_TOO_LARGE (FF_SITE_LEDGER_MAX_ROUNDS reached). */
FF_MUST_USE ff_status ff_site_ledger_append(ff_site_ledger *l,
                                            const ff_site_ledger_round *r,
                                            ff_error *err);

/* Frees what l holds, releases its lock and zeroes it. Accepts NULL and
 * a zeroed ledger that was never loaded. */
void ff_site_ledger_cleanup(ff_site_ledger *l);

/*
 * The cumulative epsilon at delta of every round in l, plus `next` when
 * not NULL: Poisson-subsampled Gaussian (q, sigma_eff, steps) per round,
 * RDP over FF_ACCT_GRID_DEFAULT, new conversion. May be +INFINITY.
 * Rounds with equal (q, sigma_eff) are composed at once (their steps
 * add), so the cost grows with the number of distinct settings, not of
 * rounds. Errors: FF_ERR_ARG (a value the accountant refuses; the
 * message names it), FF_ERR_NOMEM.
 */
FF_MUST_USE ff_status ff_site_ledger_epsilon(const ff_site_ledger *l,
                                             const ff_site_ledger_round *next,
                                             double delta, double *eps,
                                             ff_error *err);

/* The multiplier the accountant is fed for noise sigma * clip added on
 * the grid of ff_dp_grid_step over param_count values:
 * sigma clip / (clip + ff_dp_grid_l2_slack(gamma, param_count)). */
double ff_site_dp_sigma_eff(double sigma, double clip, uint64_t param_count);

/* Poisson rate for an expected batch over records: min(1, batch /
 * records); 0 when records is 0. */
double ff_site_dp_rate(int batch, size_t records);

/* Noised steps of a round: epochs * round(1 / q). */
int64_t ff_site_dp_steps(double q, int epochs);

/*
 * Plans the noise: the multiplier sigma whose sigma_eff makes
 * planned_rounds rounds of steps_per_round steps at rate q spend at most
 * (and, within the planner's tolerance, exactly) c->epsilon_budget at
 * c->delta. Fills plan (set = 1). Errors: FF_ERR_ARG (bad inputs or
 * infeasible: the budget cannot be met even with the largest sigma; the
 * message says so).
 */
FF_MUST_USE ff_status ff_site_dp_plan_make(const ff_site_privacy_config *c,
                                           double q, int64_t steps_per_round,
                                           uint64_t param_count,
                                           ff_site_dp_plan *plan,
                                           ff_error *err);

/* The largest delta the configuration accepts (docs/site-privacy.md). */
#define FF_SITE_DELTA_MAX 1e-3

/*
 * Checks c->delta against the site's record count: delta must be below
 * 1 / records (a larger delta allows a mechanism that publishes a whole
 * record) and at most FF_SITE_DELTA_MAX. Errors: FF_ERR_CONFIG (the
 * message names delta, the record count and 1 / records).
 */
FF_MUST_USE ff_status ff_site_privacy_delta_check(
    const ff_site_privacy_config *c, size_t records, ff_error *err);

/* What the budget check decided for one round. */
typedef struct ff_site_dp_round {
    int round;
    double q;
    int64_t steps;
    double sigma;            /* multiplier the model trains with */
    double sigma_eff;
    double clip;
    double delta;
    double budget;
    double epsilon_before;   /* over the ledger as it stands */
    double epsilon_after;    /* with this round */
    int refuse;              /* 1: the round would exceed the budget */
    char reason[FF_WIRE_TEXT_MAX + 1]; /* when refuse */
} ff_site_dp_round;

/*
 * The budget check of round `round`: chooses sigma (the configured
 * noise_multiplier, or the ledger's plan, which it makes and saves first
 * when there is none), computes epsilon with this round and sets
 * out->refuse (with the reason) when it would exceed c->epsilon_budget.
 * Infeasible planning is a refusal too, and so is a delta that
 * ff_site_privacy_delta_check refuses for these records. l, c borrowed;
 * out caller storage. Errors: FF_ERR_ARG (epochs, records or param_count
 * out of range), those of ff_site_ledger_unchanged (the ledger changed on
 * disk since it was read: the round must not be trained), those of
 * ff_site_ledger_save (the plan could not be written: likewise).
 */
FF_MUST_USE ff_status ff_site_dp_check(ff_site_ledger *l,
                                       const ff_site_privacy_config *c,
                                       int round, int epochs, size_t records,
                                       uint64_t param_count,
                                       ff_site_dp_round *out, ff_error *err);

/*
 * Records a checked, trained round in the ledger (before its update is
 * sent). steps_taken is what the model reported (the larger of it and the
 * planned steps is recorded). Errors: those of ff_site_ledger_append.
 */
FF_MUST_USE ff_status ff_site_dp_record(ff_site_ledger *l,
                                        ff_site_dp_round *r,
                                        long steps_taken, ff_error *err);

/* Fills the DP report fields of an update header from r (refused and
 * refusal too, when r->refuse). The wire carries finite numbers only: an
 * unbounded would-be epsilon is reported as FF_SITE_DP_EPSILON_WIRE_MAX. */
#define FF_SITE_DP_EPSILON_WIRE_MAX 1e12
void ff_site_dp_header_fill(ff_wire_update_header *h,
                            const ff_site_dp_round *r);

/* Sets dp to train round r: clip, sigma, q and callbacks backed by
 * ff_dp_poisson_sample and ff_dp_noise_add. dp is caller storage. */
void ff_site_dp_sgd_init(ff_dp_sgd *dp, const ff_site_dp_round *r);

#endif
