/*
 * ctl.h - internal to admin/: what the parts of fedfusectl share. The
 * command line and dispatch live in fedfusectl.c, table rendering in
 * ctl_table.c, the read-only views in ctl_views.c, export and migrate in
 * ctl_ops.c, the privacy planner and the `privacy` dispatch in
 * ctl_privacy.c, the privacy ledger and budgets in ctl_ledger.c, audit
 * verify and audit export in ctl_audit.c, the operator's identity in
 * ctl_identity.c, enrolment (ca, keygen, operators, sites, coordinator
 * cert) in ctl_enrol.c, stages (promote, approve, rollback, history) in
 * ctl_stages.c.
 */
#ifndef FF_CTL_H
#define FF_CTL_H

#include <stddef.h>
#include <stdio.h>

#include <jansson.h>

#include "../common/ff_status.h"
#include "../registry/ff_registry.h"
#include "../trust/ff_trust.h"

/* Exit codes of fedfusectl. */
enum {
    FF_CTL_EXIT_OK = 0,
    FF_CTL_EXIT_RUNTIME = 1,   /* refused (certificate, role, a rule of
                                  the registry), database down, digest
                                  mismatch, I/O */
    FF_CTL_EXIT_USAGE = 2,     /* bad command line */
    FF_CTL_EXIT_NOT_FOUND = 3  /* unknown model or version */
};

/* Most bytes of an actor ("operator:" and a certificate's CN). */
#define FF_CTL_ACTOR_MAX (16 + FF_TRUST_ID_MAX)

/* Who runs fedfusectl, as its certificate proves (ff_ctl_identify). */
typedef struct ff_ctl_identity {
    int checked;               /* 1 once ff_ctl_identify ran */
    int present;               /* 1: a certificate was given and verified */
    ff_trust_cert_info info;   /* what it says, when present */
    char actor[FF_CTL_ACTOR_MAX]; /* "operator:NAME" ("auditor:NAME" ...) */
} ff_ctl_identity;

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
    const char *cert;      /* identity: --cert, --key, --ca (else env */
    const char *id_key;    /* FEDFUSE_CERT, FEDFUSE_KEY, FEDFUSE_CA) */
    const char *ca;
    const char *new_key;   /* keygen --key: the key file to create */
    const char *csr;       /* keygen --csr */
    const char *id;        /* keygen, coordinator cert: --id */
    const char *role;      /* keygen, operators add: --role */
    const char *dir;       /* ca init --dir */
    const char *name;      /* ca init --name */
    const char *operator_name; /* ca init --operator */
    const char *ca_dir;    /* --ca-dir: the folder holding ca.key */
    const char *hosts;     /* coordinator cert --hosts */
    const char *days;      /* certificate validity */
    const char *reason;    /* promote, rollback, sites revoke */
    const char *to;        /* promote: a stage; rollback: a version */
    const char *serial;    /* sites revoke --serial */
    int allow_regression;  /* promote, approve: --allow-regression */
    int summary;           /* privacy MODEL --summary (no value) */
    int no_identity;       /* ca init: connect without an identity */
    ff_ctl_identity ident;
    const char *pos[FF_CTL_MAX_POS];
    int npos;
    ff_registry *reg;      /* owned; NULL until ff_ctl_connect */
} ff_ctl;

/*
 * Opens the registry named by ctl->db (once) and checks its schema:
 * refuses a database never migrated, warns on stderr about one older or
 * newer than this program. Then, unless ctl->no_identity, verifies the
 * identity given (ff_ctl_identify). *out is borrowed from ctl.
 * Errors: FF_ERR_ARG (no conninfo, half an identity), FF_ERR_DB,
 * FF_ERR_STATE (no schema), FF_ERR_AUTH and FF_ERR_IO (the identity).
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

/* `privacy [ledger] MODEL [--limit N] [--summary]` (ctl_ledger.c): the
 * model's budget and the newest N entries of its privacy ledger (default
 * 200; 0: all, read and printed page by page), oldest first; or, with
 * --summary, one line per site and for the model (latest epsilon, row
 * counts); as a table or --json. Errors: FF_ERR_ARG (a plan flag given,
 * a bad --limit, --limit with --summary), FF_ERR_NOT_FOUND (no such
 * model), FF_ERR_DB, FF_ERR_IO. */
FF_MUST_USE ff_status ff_ctl_privacy_ledger(ff_ctl *ctl, const char *model,
                                            ff_error *err);

/* `privacy budget MODEL --epsilon E --delta D` (ctl_ledger.c): sets the
 * model's site-level budget, audited with actor "operator:NAME" from the
 * operator certificate it needs (ff_ctl_operator). Errors: FF_ERR_ARG (a
 * flag missing, malformed or out of range: E > 0 finite, D in (0, 1)),
 * FF_ERR_AUTH (no operator certificate), FF_ERR_NOT_FOUND, FF_ERR_DB,
 * FF_ERR_IO. */
FF_MUST_USE ff_status ff_ctl_privacy_budget(ff_ctl *ctl, const char *model,
                                            ff_error *err);

/* ---- identity (ctl_identity.c) ---- */

/*
 * Verifies who runs fedfusectl, once per run: the certificate, key and CA
 * files from --cert/--key/--ca or env FEDFUSE_CERT/FEDFUSE_KEY/FEDFUSE_CA
 * (all three or none). The CA file must be the consortium CA the registry
 * recorded (ff_registry_ca_get: the digest of its bytes), the certificate
 * must verify against it (ff_trust_cert_verify), the key must match it
 * (ff_trust_key_matches), and the registry must know it and not have
 * revoked it (ff_registry_cert_check). Fills ctl->ident; none given leaves
 * ident.present = 0. r is the open registry. Errors: FF_ERR_ARG (only
 * some of the three), FF_ERR_AUTH (each refusal, saying why), FF_ERR_IO,
 * FF_ERR_FORMAT, FF_ERR_TOO_LARGE, FF_ERR_STATE (the registry has no CA
 * yet), FF_ERR_DB.
 */
FF_MUST_USE ff_status ff_ctl_identify(ff_ctl *ctl, ff_registry *r,
                                      ff_error *err);

/*
 * Connects (ff_ctl_connect, which verifies the identity) and requires an
 * operator certificate for `what` (a command name, for the message):
 * FF_ERR_AUTH "WHAT needs an operator certificate (--cert/--key/--ca);
 * you have none" or "...; you are auditor 'x'". *actor (may be NULL)
 * receives ctl->ident.actor. *out is borrowed from ctl.
 */
FF_MUST_USE ff_status ff_ctl_operator(ff_ctl *ctl, const char *what,
                                      ff_registry **out, const char **actor,
                                      ff_error *err);

/* Checks that the CA certificate file ca_path is the consortium CA the
 * registry recorded. Errors: FF_ERR_AUTH (another CA, naming both
 * digests' prefixes), FF_ERR_STATE (none recorded), FF_ERR_IO, FF_ERR_DB,
 * FF_ERR_TOO_LARGE. */
FF_MUST_USE ff_status ff_ctl_ca_matches(ff_registry *r, const char *ca_path,
                                        ff_error *err);

/* ---- enrolment (ctl_enrol.c) ---- */

/* `ca init --dir DIR --name NAME --operator OP [--days N]`: the
 * consortium CA in DIR, the first operator's key and certificate in
 * DIR/operators/OP.{key,csr,crt}, both recorded in the registry and
 * audited by operator:OP; refused when the registry has a CA already.
 * Needs no certificate (there is none yet). Errors: FF_ERR_ARG,
 * FF_ERR_STATE, FF_ERR_IO, FF_ERR_DB, FF_ERR_INTERNAL. */
FF_MUST_USE ff_status ff_ctl_ca(ff_ctl *ctl, ff_error *err);

/* `keygen --id ID --role ROLE --key KEY --csr CSR`: a new P-256 key
 * (0600) and its CSR, locally; no database. Errors: FF_ERR_ARG,
 * FF_ERR_STATE (KEY exists), FF_ERR_IO, FF_ERR_INTERNAL. */
FF_MUST_USE ff_status ff_ctl_keygen(ff_ctl *ctl, ff_error *err);

/* `operators add CSR --role operator|auditor --ca-dir DIR --out CERT`
 * and `operators list`: an operator signs a CSR for another operator
 * or an auditor and records it; the list shows operator and auditor
 * certificates. Errors: those of ff_ctl_operator, FF_ERR_ARG,
 * FF_ERR_FORMAT (the CSR), FF_ERR_STATE, FF_ERR_IO, FF_ERR_DB. */
FF_MUST_USE ff_status ff_ctl_operators(ff_ctl *ctl, ff_error *err);

/* `sites approve CSR --ca-dir DIR --out CERT`, `sites revoke HOLDER
 * [--serial S] --reason R` and `sites list`. Errors: as
 * ff_ctl_operators, FF_ERR_NOT_FOUND (revoking an unknown holder). */
FF_MUST_USE ff_status ff_ctl_sites(ff_ctl *ctl, ff_error *err);

/* `coordinator cert --ca-dir DIR --hosts H,... --out PREFIX [--id ID]`:
 * PREFIX.key, PREFIX.csr and PREFIX.crt (serverAuth, the hosts as
 * subjectAltNames), recorded. Errors: as ff_ctl_operators. */
FF_MUST_USE ff_status ff_ctl_coordinator(ff_ctl *ctl, ff_error *err);

/* ---- stages (ctl_stages.c) ---- */

/* `promote MODEL VERSION --to STAGE [--reason R] [--allow-regression]`
 * (ff_registry_version_promote). Errors: those of ff_ctl_operator,
 * FF_ERR_ARG, FF_ERR_NOT_FOUND, FF_ERR_STATE (refused), FF_ERR_DB. */
FF_MUST_USE ff_status ff_ctl_promote(ff_ctl *ctl, ff_error *err);

/* `approve MODEL VERSION [--allow-regression]`
 * (ff_registry_version_approve). Errors: as ff_ctl_promote. */
FF_MUST_USE ff_status ff_ctl_approve(ff_ctl *ctl, ff_error *err);

/* `rollback MODEL [--to VERSION] --reason R` (ff_registry_rollback).
 * Errors: as ff_ctl_promote. */
FF_MUST_USE ff_status ff_ctl_rollback(ff_ctl *ctl, ff_error *err);

/* `history MODEL`: the production periods and the promotion requests
 * (ff_registry_history), as tables or --json. Errors: FF_ERR_NOT_FOUND,
 * FF_ERR_DB, FF_ERR_IO. */
FF_MUST_USE ff_status ff_ctl_history(ff_ctl *ctl, ff_error *err);

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
