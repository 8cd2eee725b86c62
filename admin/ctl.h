/*
 * ctl.h - internal to admin/: what the parts of fedfusectl share. The
 * command line and dispatch live in fedfusectl.c, table rendering in
 * ctl_table.c, the read-only views in ctl_views.c, export and migrate in
 * ctl_ops.c, the privacy planner and the `privacy` dispatch in
 * ctl_privacy.c, the privacy ledger and budgets in ctl_ledger.c, audit
 * verify and audit export in ctl_audit.c.
 */
#ifndef FF_CTL_H
#define FF_CTL_H

#include <stddef.h>
#include <stdio.h>

#include <jansson.h>

#include "../common/ff_status.h"
#include "../registry/ff_registry.h"

/* Exit codes of fedfusectl. */
enum {
    FF_CTL_EXIT_OK = 0,
    FF_CTL_EXIT_RUNTIME = 1,   /* database down, digest mismatch, I/O */
    FF_CTL_EXIT_USAGE = 2,     /* bad command line */
    FF_CTL_EXIT_NOT_FOUND = 3  /* unknown model or version */
};

/* Most positional arguments any command takes. */
#define FF_CTL_MAX_POS 4

/* The parsed command line, and the connection opened on first use. */
typedef struct ff_ctl {
    const char *db;        /* conninfo: --db, else env FEDFUSE_DB */
    int json;              /* --json: one JSON document on stdout */
    const char *site;      /* audit filters, as given */
    const char *action;
    const char *since;
    const char *until;
    const char *limit;
    const char *actor;     /* audit filters added with the chain */
    const char *model;
    const char *version;
    const char *key;       /* audit verify: signer's public key, hex */
    const char *out;       /* audit export: the file to write */
    const char *sampling_rate;    /* privacy plan inputs, as given */
    const char *noise_multiplier;
    const char *epsilon;          /* also privacy budget's */
    const char *steps;
    const char *delta;            /* also privacy budget's */
    const char *order_grid;
    const char *pos[FF_CTL_MAX_POS];
    int npos;
    ff_registry *reg;      /* owned; NULL until ff_ctl_connect */
} ff_ctl;

/*
 * Opens the registry named by ctl->db (once) and checks its schema:
 * refuses a database never migrated, warns on stderr about one older or
 * newer than this program. *out is borrowed from ctl.
 * Errors: FF_ERR_ARG (no conninfo), FF_ERR_DB, FF_ERR_STATE (no schema).
 */
FF_MUST_USE ff_status ff_ctl_connect(ff_ctl *ctl, ff_registry **out,
                                     ff_error *err);

/* Parses a decimal integer in [min, max] from a command-line argument
 * named `what`. Errors: FF_ERR_ARG naming the argument. */
FF_MUST_USE ff_status ff_ctl_parse_int(const char *text, const char *what,
                                       long min, long max, long *out,
                                       ff_error *err);

/* Parses a finite real number given to flag (or argument) `what`.
 * Errors: FF_ERR_ARG naming it (missing, malformed, NaN, infinite, out
 * of double's range). */
FF_MUST_USE ff_status ff_ctl_parse_real(const char *text, const char *what,
                                        double *out, ff_error *err);

/* Checks lo <= v <= hi, with either end open (lo_open, hi_open); names
 * `what` and the interval in the message. Errors: FF_ERR_ARG. */
FF_MUST_USE ff_status ff_ctl_check_range(double v, const char *what,
                                         double lo, int lo_open, double hi,
                                         int hi_open, ff_error *err);

/* Export writes only over regular files: FF_OK when path does not exist
 * or is one; FF_ERR_IO naming what it is otherwise (symbolic link,
 * directory, FIFO, device, socket), which is never followed or
 * replaced. Checked with lstat. */
FF_MUST_USE ff_status ff_ctl_target_check(const char *path, ff_error *err);

/* Writes j to stdout as indented JSON followed by a newline. Errors:
 * FF_ERR_IO. */
FF_MUST_USE ff_status ff_ctl_print_json(const json_t *j, ff_error *err);

/* The commands. Each validates its arguments before connecting and
 * returns FF_ERR_ARG for usage errors, FF_ERR_NOT_FOUND for an unknown
 * model or version. */
FF_MUST_USE ff_status ff_ctl_status(ff_ctl *ctl, ff_error *err);
FF_MUST_USE ff_status ff_ctl_models(ff_ctl *ctl, ff_error *err);
FF_MUST_USE ff_status ff_ctl_versions(ff_ctl *ctl, ff_error *err);
FF_MUST_USE ff_status ff_ctl_show(ff_ctl *ctl, ff_error *err);
FF_MUST_USE ff_status ff_ctl_audit(ff_ctl *ctl, ff_error *err);

/* `audit verify [--key HEX]` (ctl_audit.c): recomputes the audit chain
 * and checks the signed heads (ff_registry_audit_verify); prints "audit
 * chain verified: N rows, H signed heads, last row ID" or returns
 * FF_ERR_DIGEST with the first row that fails and why. Errors:
 * FF_ERR_ARG (a malformed key, a filter given), FF_ERR_DIGEST, FF_ERR_DB,
 * FF_ERR_IO. */
FF_MUST_USE ff_status ff_ctl_audit_verify(ff_ctl *ctl, ff_error *err);

/* `audit export --out FILE [filters]` (ctl_audit.c): writes the matching
 * rows as JSON Lines with their hashes in hex, streamed, to a temporary
 * file beside FILE renamed into place; FILE, when it exists, must be a
 * regular file. Errors: FF_ERR_ARG (no --out, --limit given), FF_ERR_IO,
 * FF_ERR_DB, FF_ERR_NOMEM. */
FF_MUST_USE ff_status ff_ctl_audit_export(ff_ctl *ctl, ff_error *err);
FF_MUST_USE ff_status ff_ctl_export(ff_ctl *ctl, ff_error *err);
FF_MUST_USE ff_status ff_ctl_migrate(ff_ctl *ctl, ff_error *err);

/* `privacy` (ctl_privacy.c): dispatches on the first argument. `plan`:
 * epsilon of the Poisson-subsampled Gaussian, or the noise multiplier
 * for a target epsilon, from the flags alone; never connects. `budget
 * MODEL` and `[ledger] MODEL`: ff_ctl_privacy_budget and
 * ff_ctl_privacy_ledger. Errors: FF_ERR_ARG naming the flag or argument,
 * FF_ERR_CONFIG for a target no noise multiplier reaches, and those of
 * the two below. */
FF_MUST_USE ff_status ff_ctl_privacy(ff_ctl *ctl, ff_error *err);

/* `privacy [ledger] MODEL` (ctl_ledger.c): the model's budget and its
 * privacy ledger, oldest entry first, as a table or --json. Errors:
 * FF_ERR_ARG (a plan flag given), FF_ERR_NOT_FOUND (no such model),
 * FF_ERR_DB, FF_ERR_IO. */
FF_MUST_USE ff_status ff_ctl_privacy_ledger(ff_ctl *ctl, const char *model,
                                            ff_error *err);

/* `privacy budget MODEL --epsilon E --delta D` (ctl_ledger.c): sets the
 * model's site-level budget, audited with actor "operator:USER" (the OS
 * user; "fedfusectl" when it cannot be named). Errors: FF_ERR_ARG (a flag
 * missing, malformed or out of range: E > 0 finite, D in (0, 1)),
 * FF_ERR_NOT_FOUND, FF_ERR_DB, FF_ERR_IO. */
FF_MUST_USE ff_status ff_ctl_privacy_budget(ff_ctl *ctl, const char *model,
                                            ff_error *err);

/* ---- text rendering (ctl_table.c) ---- */

/*
 * Returns a printable copy of s (malloc'd, caller frees; NULL when out of
 * memory): backslash, control characters, C1 controls and bidirectional
 * overrides are escaped (\n, \t, \\, \x1b, \u202e), invalid UTF-8 bytes
 * shown as \xHH. When max_cols > 0 and the result is wider, it is cut to
 * max_cols columns ending in an ellipsis. NULL s gives "-".
 */
char *ff_ctl_escape(const char *s, size_t max_cols);

/* Display columns of an escaped string (one per code point). */
size_t ff_ctl_width(const char *s);

/* An ISO 8601 time from the registry as "YYYY-MM-DDTHH:MM:SSZ" (UTC);
 * "-" for NULL. out holds at least 32 bytes. */
void ff_ctl_time(const char *iso, char *out, size_t cap);

/* An epsilon from the registry's JSON for a table cell: a number with 4
 * decimals (4 significant digits below 1e-3); "inf" for JSON null
 * (recorded as unbounded); "-" when v is NULL (nothing recorded). */
void ff_ctl_epsilon(const json_t *v, char *out, size_t cap);

/* A duration in seconds as "42s", "3m05s", "2h10m" or "4d03h". */
void ff_ctl_age(double seconds, char *out, size_t cap);

/* An aligned text table: cells escaped and cut to the column's width. */
typedef struct ff_ctl_table {
    size_t ncols;
    const char *const *headers;  /* borrowed */
    size_t max_cols;             /* widest a cell may be (columns) */
    unsigned right;              /* bit c: right-align column c */
    char **cells;                /* owned, row-major */
    size_t ncells, cap;
    int failed;                  /* out of memory while adding */
} ff_ctl_table;

/* Prepares an empty table in caller storage; headers is borrowed. */
void ff_ctl_table_init(ff_ctl_table *t, size_t ncols,
                       const char *const *headers, size_t max_cols);

/* Frees the cells. Accepts a table never used. */
void ff_ctl_table_cleanup(ff_ctl_table *t);

/* Appends the next cell (row by row, left to right); NULL shows "-". */
void ff_ctl_table_cell(ff_ctl_table *t, const char *text);

/* Appends a formatted cell. */
void ff_ctl_table_cellf(ff_ctl_table *t, const char *fmt, ...)
    FF_PRINTF(2, 3);

/* Prints the header line and the rows, two spaces between columns,
 * prefixed by indent. Errors: FF_ERR_NOMEM (a cell could not be added),
 * FF_ERR_IO. */
FF_MUST_USE ff_status ff_ctl_table_print(const ff_ctl_table *t, FILE *out,
                                         const char *indent, ff_error *err);

#endif
