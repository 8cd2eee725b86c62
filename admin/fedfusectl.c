/*
 * fedfusectl - the operator's and auditor's view of the fedfuse registry.
 *
 *   fedfusectl [--db CONNINFO] [--cert F --key F --ca F] [--json] COMMAND
 *
 * Reads the PostgreSQL registry and governs it: enrolment (the consortium
 * CA, certificates for sites, operators, auditors and the coordinator,
 * revocation) and the stages of model versions (four-eyes promotion,
 * rollback, history); `privacy plan` and `keygen` need no database.
 * Commands that change the registry need an operator certificate
 * (ctl_identity.c). Output is an aligned table for people or, with
 * --json, one JSON document for scripts. Exit codes: 0 ok, 1 refused or
 * failed, 2 usage error, 3 unknown model or version.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "../common/ff_log.h"

/* Options a command accepts beyond --db, --json and --help. */
enum {
    OPT_SITE = 1u << 0,
    OPT_ACTION = 1u << 1,
    OPT_SINCE = 1u << 2,
    OPT_UNTIL = 1u << 3,
    OPT_LIMIT = 1u << 4,
    OPT_PLAN = 1u << 5,    /* the flags of privacy plan */
    OPT_AUDIT = 1u << 6,   /* audit's --actor, --model, --version, --key */
    OPT_OUT = 1u << 7,     /* --out */
    OPT_IDENT = 1u << 8,   /* --cert, --key, --ca: who runs fedfusectl */
    OPT_KEYGEN = 1u << 9,  /* keygen's --id, --role, --key, --csr */
    OPT_CA = 1u << 10,     /* ca init's --dir, --name, --operator */
    OPT_DAYS = 1u << 11,   /* --days */
    OPT_ISSUE = 1u << 12,  /* --ca-dir */
    OPT_ROLE = 1u << 13,   /* operators add --role */
    OPT_HOSTS = 1u << 14,  /* coordinator cert's --hosts, --id */
    OPT_REASON = 1u << 15, /* --reason */
    OPT_TO = 1u << 16,     /* --to */
    OPT_SERIAL = 1u << 17, /* sites revoke --serial */
    OPT_ALLOW = 1u << 18,  /* --allow-regression (no value) */
    OPT_SUMMARY = 1u << 19 /* privacy MODEL --summary (no value) */
};

/* The options of the commands that issue certificates. */
#define OPT_ISSUING (OPT_IDENT | OPT_ISSUE | OPT_OUT | OPT_DAYS)

typedef struct command {
    const char *name;
    int min_pos, max_pos;
    unsigned opts;
    ff_status (*run)(ff_ctl *ctl, ff_error *err);
    const char *synopsis;
    const char *help;
} command;

static const command commands[] = {
    {"status", 0, 0, OPT_IDENT, ff_ctl_status, "status",
     "Shows each model's coordinator (state, address, round, and the age of\n"
     "its heartbeat), the registered sites with when they were last seen,\n"
     "the rounds running now and the five most recently started rounds.\n"},
    {"models", 0, 0, OPT_IDENT, ff_ctl_models, "models",
     "Lists the models with their number of versions and latest version.\n"},
    {"versions", 1, 1, OPT_IDENT, ff_ctl_versions, "versions MODEL",
     "Lists the versions of MODEL, oldest first: stage (candidate, staged,\n"
     "production, archived), parent, round, creation\n"
     "time, contributing sites and examples, test accuracy (metrics.accuracy)\n"
     "and accuracy per modality alone (metrics.alone.*), the version's\n"
     "privacy: EPS(RECORD), the largest record-level epsilon of its sites,\n"
     "and EPS(SITE), the model's site-level epsilon (\"inf\": recorded as\n"
     "unbounded; \"-\": no privacy recorded), and the digest prefix.\n"},
    {"show", 2, 2, OPT_IDENT, ff_ctl_show, "show MODEL VERSION",
     "Shows one version in full: stage, lineage, round, contributions (with\n"
     "each site's manifest digest and code version), privacy, metrics,\n"
     "training config, BLAKE2b digest, artifact size, and the coordinator's\n"
     "signature: signer key and the signed metadata.\n"},
    {"audit", 0, 1,
     OPT_SITE | OPT_ACTION | OPT_SINCE | OPT_UNTIL | OPT_LIMIT | OPT_AUDIT |
         OPT_OUT | OPT_IDENT,
     ff_ctl_audit,
     "audit [--site S] [--actor A|PREFIX*] [--action A|PREFIX*] "
     "[--model M] [--version V] [--since T] [--until T] [--limit N]\n"
     "audit verify [--key HEX_PUBKEY]\n"
     "audit export --out FILE [the filters of audit, without --limit]",
     "Lists audit rows, oldest first. --actor and --action take an exact\n"
     "value or a prefix ending in '*' (quote it: 'round.*', 'operator:*').\n"
     "--model and --version match details.model and details.version. T is\n"
     "a time PostgreSQL reads, UTC unless it names a zone ('2026-12-03\n"
     "15:00', '2026-12-03T15:00+01'); --since is inclusive, --until\n"
     "exclusive. --limit N keeps the newest N rows (default 100; 0 for all).\n"
     "\n"
     "audit verify: recomputes the audit hash chain row by row and checks\n"
     "every signed head (its Ed25519 signature, and that its row still has\n"
     "the signed hash). With --key, every head must be signed by that\n"
     "public key (64 hex characters) and there must be at least one. Prints\n"
     "\"audit chain verified: N rows, H signed heads, last row ID\", or names\n"
     "the first row that does not verify and why, with exit code 1.\n"
     "\n"
     "audit export --out FILE: writes the matching rows as JSON Lines, one\n"
     "row per line with prev_hash and row_hash in hex and details_text, the\n"
     "exact text that was hashed; atomically (a temporary file beside FILE,\n"
     "renamed into place). FILE may be new or a regular file; anything else\n"
     "(a symbolic link, a directory, a FIFO) is refused, never followed.\n"},
    {"export", 3, 3, OPT_IDENT, ff_ctl_export, "export MODEL VERSION FILE",
     "Writes the artifact of MODEL VERSION to FILE atomically (a temporary\n"
     "file in the same folder, renamed into place), after checking that the\n"
     "bytes written hash to the stored BLAKE2b digest. On a mismatch nothing\n"
     "is left behind and the exit code is 1.\n"},
    {"migrate", 0, 0, 0, ff_ctl_migrate, "migrate",
     "Applies the schema migrations the database lacks and prints the\n"
     "schema version. Safe to run concurrently and repeatedly. Needs no\n"
     "certificate: deploy scripts run it before any exists.\n"},
    {"privacy", 0, 2, OPT_PLAN | OPT_IDENT | OPT_LIMIT | OPT_SUMMARY,
     ff_ctl_privacy,
     "privacy plan --sampling-rate Q (--noise-multiplier Z | --epsilon E) "
     "--steps T --delta D\n"
     "privacy [ledger] MODEL [--limit N | --summary]\n"
     "privacy budget MODEL --epsilon E --delta D",
     "privacy plan: the privacy budget of T steps of the Poisson-subsampled\n"
     "Gaussian (DP-SGD, DP-FedAvg with central noise) by Renyi-DP\n"
     "accounting; needs no database. With --noise-multiplier Z it prints\n"
     "epsilon at --delta D by the tight conversion (Balle et al. 2020), the\n"
     "old one (Mironov 2017) beside it, and the order that gave each. With\n"
     "--epsilon E it prints the noise multiplier that reaches E by the tight\n"
     "conversion (rounded up to 7 digits) and the epsilon it gives.\n"
     "  --sampling-rate Q     Poisson sampling rate in [0, 1] (batch/records)\n"
     "  --noise-multiplier Z  noise std / L2 clip, > 0\n"
     "  --epsilon E           target epsilon, > 0 (instead of Z)\n"
     "  --steps T             compositions (steps or rounds), >= 1\n"
     "  --delta D             target delta in (0, 1)\n"
     "  --order-grid G        Renyi orders: default (dp_accounting, 156),\n"
     "                        dpsgd (TF-Privacy compute_dp_sgd_privacy, 72)\n"
     "                        or ddgauss (2..128, 256)\n"
     "Exit code 1 when no noise multiplier reaches E on the grid.\n"
     "\n"
     "privacy [ledger] MODEL: the model's site-level budget, then its\n"
     "privacy ledger, oldest first: one row per round and site that spent\n"
     "or refused (record level, as the site reported it) and one per round\n"
     "for the model itself, SITE \"(model)\" (site level, as the coordinator\n"
     "accounted it). Columns: round, site, status (spent, refused),\n"
     "mechanism (dp-sgd, central-gaussian, ddgauss, none), cumulative\n"
     "epsilon (\"inf\": unbounded, no DP), delta, noise multiplier, clip,\n"
     "sampling rate q, steps, the epsilon budget in force (\"none\"), and\n"
     "the reason of a refusal. --limit N shows the newest N rows (default\n"
     "200, at most 10000; 0: all, read and printed in pages of 2000 rows,\n"
     "each page its own table). --summary prints one line per site and one\n"
     "for the model: rows, spent, refused, rounds, and the epsilon of the\n"
     "newest spent row (the cumulative epsilon so far). 'ledger' is needed\n"
     "only for a model named plan, budget or ledger. Exit code 3 for an\n"
     "unknown model.\n"
     "\n"
     "privacy budget MODEL --epsilon E --delta D: sets the model's\n"
     "site-level budget (E > 0 finite, D in (0, 1)); the coordinator reads\n"
     "it before each round and refuses a round that would exceed it.\n"
     "Needs an operator certificate; audited as privacy.budget_set by\n"
     "operator:NAME (the certificate's name).\n"},
    {"ca", 1, 1, OPT_CA | OPT_DAYS, ff_ctl_ca,
     "ca init --dir DIR --name NAME --operator OPERATOR [--days N]",
     "Creates the consortium CA in DIR (ca.key 0600, ca.crt; DIR made 0700;\n"
     "an existing CA is never overwritten) valid for N days (default\n"
     "3650), and the first operator's key and certificate in\n"
     "DIR/operators/OPERATOR.key, .csr, .crt. The registry records the CA\n"
     "(the BLAKE2b digest of ca.crt: every --ca given later must be this\n"
     "file) and the certificate, audited as ca.created and cert.issued by\n"
     "operator:OPERATOR. Refused when the registry has a CA already. Needs\n"
     "no certificate (none exists yet); keep ca.key offline after this.\n"},
    {"keygen", 0, 0, OPT_KEYGEN, ff_ctl_keygen,
     "keygen --id ID --role site|operator|auditor|coordinator --key KEY "
     "--csr CSR",
     "Makes a new P-256 key in KEY (mode 0600; an existing file is never\n"
     "overwritten) and a certificate signing request in CSR with subject\n"
     "CN=ID, OU=ROLE. Nothing leaves this machine and no database is\n"
     "needed: hand CSR to an operator (operators add, sites approve).\n"},
    {"operators", 1, 2, OPT_ISSUING | OPT_ROLE, ff_ctl_operators,
     "operators add CSR --role operator|auditor --ca-dir DIR --out CERT "
     "[--days N]\n"
     "operators list",
     "operators add: signs the request CSR (its OU must be the role asked\n"
     "for) with the CA in DIR, which must be the registry's, writes CERT\n"
     "(valid N days, default 365) and records it, audited as cert.issued\n"
     "by the operator running it. Needs an operator certificate.\n"
     "operators list: operator and auditor certificates with their state\n"
     "(active, revoked, expired), newest first.\n"},
    {"sites", 1, 2, OPT_ISSUING | OPT_REASON | OPT_SERIAL, ff_ctl_sites,
     "sites approve CSR --ca-dir DIR --out CERT [--days N]\n"
     "sites revoke SITE [--serial HEX] --reason R\n"
     "sites list",
     "sites approve: issues a site certificate for the request CSR that the\n"
     "site made with 'fedfuse-site enroll' (its key never leaves the site)\n"
     "and records it; hand CERT back to the site.\n"
     "sites revoke: revokes every certificate of SITE (or only --serial),\n"
     "recording who and why; the coordinator refuses the site from its\n"
     "next call. Works for any holder (an operator or auditor who left).\n"
     "Both need an operator certificate and are audited (cert.issued,\n"
     "cert.revoked).\n"
     "sites list: site certificates with their state, newest first.\n"},
    {"coordinator", 1, 1, OPT_ISSUING | OPT_HOSTS, ff_ctl_coordinator,
     "coordinator cert --ca-dir DIR --hosts H[,H...] --out PREFIX "
     "[--id ID] [--days N]",
     "Makes the coordinator's key PREFIX.key (0600), request PREFIX.csr\n"
     "and certificate PREFIX.crt (CN ID, default coordinator; serverAuth;\n"
     "the hosts, DNS names or IP addresses, as subjectAltNames) and records\n"
     "it. Needs an operator certificate.\n"},
    {"promote", 2, 2, OPT_IDENT | OPT_TO | OPT_REASON | OPT_ALLOW,
     ff_ctl_promote,
     "promote MODEL VERSION --to staged|production|archived [--reason R] "
     "[--allow-regression]",
     "Moves a version to a stage (candidate -> staged -> production ->\n"
     "archived). staged and archived: at once (the production version\n"
     "cannot be moved this way: promote another one or roll back).\n"
     "production takes two different operators: the first call records a\n"
     "pending request, a second call or 'approve' by another operator\n"
     "completes it; the previous production version becomes archived.\n"
     "The accuracy gate refuses a version whose test accuracy\n"
     "(metrics.accuracy) is below the production version's, when the\n"
     "request is made and when it is approved; --allow-regression passes\n"
     "it and is recorded. Needs an operator certificate; audited\n"
     "(promotion.requested, promotion.refused, version.promoted).\n"},
    {"approve", 2, 2, OPT_IDENT | OPT_ALLOW, ff_ctl_approve,
     "approve MODEL VERSION [--allow-regression]",
     "Approves the pending request to put VERSION into production. The\n"
     "operator who requested it cannot approve it. Needs an operator\n"
     "certificate; audited as version.promoted with both operators.\n"},
    {"rollback", 1, 1, OPT_IDENT | OPT_TO | OPT_REASON, ff_ctl_rollback,
     "rollback MODEL [--to VERSION] --reason R",
     "Puts back the version that was in production before the current one\n"
     "(or VERSION, which must have been in production before), in one step\n"
     "by one operator; the current one becomes archived. Needs an operator\n"
     "certificate; audited as version.rolled_back.\n"},
    {"history", 1, 1, OPT_IDENT, ff_ctl_history, "history MODEL",
     "Every production period of MODEL: version, from, until, how\n"
     "(promote or rollback), who requested and who approved it (or\n"
     "\"rollback by\"), the reason; then every promotion request with its\n"
     "outcome (pending, done, refused).\n"},
};

#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

/* Prints a synopsis, one line per form: the first after `first`, the
 * others after `next`. */
static void
print_synopsis(FILE *out, const char *first, const char *next,
               const char *synopsis)
{
    for (const char *p = synopsis; *p != '\0';) {
        size_t n = strcspn(p, "\n");
        fprintf(out, "%s%.*s\n", p == synopsis ? first : next, (int)n, p);
        p += n;
        if (*p == '\n')
            p++;
    }
}

static void
print_usage(FILE *out)
{
    fprintf(out,
            "usage: fedfusectl [--db CONNINFO] [--cert F --key F --ca F] "
            "[--json]\n"
            "                  COMMAND [ARGS...]\n"
            "\n"
            "Reads and governs the fedfuse registry in PostgreSQL (privacy\n"
            "plan and keygen need no database).\n"
            "\n"
            "options:\n"
            "  --db CONNINFO  libpq conninfo or URI of the registry (default:\n"
            "                 environment variable FEDFUSE_DB)\n"
            "  --cert FILE    your certificate from the consortium CA\n"
            "  --key FILE     its private key\n"
            "  --ca FILE      the consortium CA's certificate (defaults:\n"
            "                 FEDFUSE_CERT, FEDFUSE_KEY, FEDFUSE_CA). Commands\n"
            "                 that change the registry need an operator's;\n"
            "                 reading needs none (the database's own access\n"
            "                 control is the outer gate). For audit and\n"
            "                 keygen, --key after the command means theirs.\n"
            "  --json         print one JSON document instead of tables\n"
            "  --help         this text; COMMAND --help for a command's\n"
            "  --version      print the version\n"
            "\n"
            "commands:\n");
    for (size_t i = 0; i < NCOMMANDS; i++)
        print_synopsis(out, "  ", "  ", commands[i].synopsis);
    fprintf(out, "\nexit codes: 0 ok, 1 refused or failed, 2 usage error, "
                 "3 unknown model or version\n");
}

static void
print_command_help(const command *c)
{
    print_synopsis(stdout, "usage: fedfusectl [--db CONNINFO] [--json] ",
                   "       fedfusectl [--db CONNINFO] [--json] ",
                   c->synopsis);
    printf("\n%s", c->help);
    if (c->opts & OPT_IDENT)
        printf("\nidentity: --cert FILE --key FILE --ca FILE (or "
               "FEDFUSE_CERT, FEDFUSE_KEY,\nFEDFUSE_CA), verified against "
               "the consortium CA and the registry when given.\n");
}

static const command *
find_command(const char *name)
{
    for (size_t i = 0; i < NCOMMANDS; i++)
        if (strcmp(commands[i].name, name) == 0)
            return &commands[i];
    return NULL;
}

/* Prints an error naming the command, with hostile bytes escaped. */
static void
print_error(const char *cmd, const char *msg)
{
    char *safe = ff_ctl_escape(msg, 0);

    fprintf(stderr, "fedfusectl: %s%s%s\n", cmd ? cmd : "", cmd ? ": " : "",
            safe ? safe : "out of memory");
    free(safe);
}

static int
usage_error(const char *cmd, const char *msg)
{
    print_error(cmd, msg);
    if (cmd != NULL)
        fprintf(stderr, "see 'fedfusectl %s --help'\n", cmd);
    else
        fprintf(stderr, "see 'fedfusectl --help'\n");
    return FF_CTL_EXIT_USAGE;
}

/* Where the value of an option is kept, or NULL when c does not take it.
 * Before the command (c NULL) only --db and the identity are taken. The
 * first entry whose bit c has wins: --key is audit's or keygen's own for
 * those commands. */
static const char **
option_slot(ff_ctl *ctl, const command *c, const char *name)
{
    static const struct {
        const char *name;
        unsigned bit;
        size_t offset;
    } table[] = {
        {"--site", OPT_SITE, offsetof(ff_ctl, site)},
        {"--action", OPT_ACTION, offsetof(ff_ctl, action)},
        {"--since", OPT_SINCE, offsetof(ff_ctl, since)},
        {"--until", OPT_UNTIL, offsetof(ff_ctl, until)},
        {"--limit", OPT_LIMIT, offsetof(ff_ctl, limit)},
        {"--actor", OPT_AUDIT, offsetof(ff_ctl, actor)},
        {"--model", OPT_AUDIT, offsetof(ff_ctl, model)},
        {"--version", OPT_AUDIT, offsetof(ff_ctl, version)},
        {"--key", OPT_AUDIT, offsetof(ff_ctl, key)},
        {"--key", OPT_KEYGEN, offsetof(ff_ctl, new_key)},
        {"--key", OPT_IDENT, offsetof(ff_ctl, id_key)},
        {"--cert", OPT_IDENT, offsetof(ff_ctl, cert)},
        {"--ca", OPT_IDENT, offsetof(ff_ctl, ca)},
        {"--out", OPT_OUT, offsetof(ff_ctl, out)},
        {"--id", OPT_KEYGEN | OPT_HOSTS, offsetof(ff_ctl, id)},
        {"--role", OPT_KEYGEN | OPT_ROLE, offsetof(ff_ctl, role)},
        {"--csr", OPT_KEYGEN, offsetof(ff_ctl, csr)},
        {"--dir", OPT_CA, offsetof(ff_ctl, dir)},
        {"--name", OPT_CA, offsetof(ff_ctl, name)},
        {"--operator", OPT_CA, offsetof(ff_ctl, operator_name)},
        {"--days", OPT_DAYS, offsetof(ff_ctl, days)},
        {"--ca-dir", OPT_ISSUE, offsetof(ff_ctl, ca_dir)},
        {"--hosts", OPT_HOSTS, offsetof(ff_ctl, hosts)},
        {"--reason", OPT_REASON, offsetof(ff_ctl, reason)},
        {"--to", OPT_TO, offsetof(ff_ctl, to)},
        {"--serial", OPT_SERIAL, offsetof(ff_ctl, serial)},
        {"--sampling-rate", OPT_PLAN, offsetof(ff_ctl, sampling_rate)},
        {"--noise-multiplier", OPT_PLAN, offsetof(ff_ctl, noise_multiplier)},
        {"--epsilon", OPT_PLAN, offsetof(ff_ctl, epsilon)},
        {"--steps", OPT_PLAN, offsetof(ff_ctl, steps)},
        {"--delta", OPT_PLAN, offsetof(ff_ctl, delta)},
        {"--order-grid", OPT_PLAN, offsetof(ff_ctl, order_grid)},
    };
    unsigned opts = c != NULL ? c->opts : OPT_IDENT;

    if (strcmp(name, "--db") == 0)
        return &ctl->db;
    for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++)
        if ((opts & table[i].bit) && strcmp(name, table[i].name) == 0)
            return (const char **)((char *)ctl + table[i].offset);
    return NULL;
}

/*
 * Parses argv[*i..] : options (--name VALUE or --name=VALUE), --json,
 * --help, and, when c is not NULL, positional arguments. Stops at the
 * first positional when c is NULL (the global part). Returns -1 after
 * printing a usage error, 1 for --help, 0 otherwise.
 */
static int
parse_args(ff_ctl *ctl, const command *c, int argc, char **argv, int *i)
{
    int only_pos = 0;

    for (; *i < argc; (*i)++) {
        const char *a = argv[*i];
        /* "-1" in a command's arguments is a (negative) number, which
         * the command then refuses as out of range. */
        int negative = c != NULL && a[0] == '-' && a[1] >= '0' && a[1] <= '9';
        if (only_pos || negative || a[0] != '-' || strcmp(a, "-") == 0) {
            if (c == NULL)
                return 0;
            if (ctl->npos == FF_CTL_MAX_POS || ctl->npos >= c->max_pos) {
                usage_error(c->name, "too many arguments");
                return -1;
            }
            ctl->pos[ctl->npos++] = a;
            continue;
        }
        if (strcmp(a, "--") == 0) {
            only_pos = 1;
            continue;
        }
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0)
            return 1;
        if (strcmp(a, "--json") == 0) {
            ctl->json = 1;
            continue;
        }
        if (c != NULL && (c->opts & OPT_ALLOW) &&
            strcmp(a, "--allow-regression") == 0) {
            ctl->allow_regression = 1;
            continue;
        }
        if (c != NULL && (c->opts & OPT_SUMMARY) &&
            strcmp(a, "--summary") == 0) {
            ctl->summary = 1;
            continue;
        }

        /* An option with a value, in either spelling. */
        char name[32];
        const char *eq = strchr(a, '=');
        size_t n = eq ? (size_t)(eq - a) : strlen(a);
        snprintf(name, sizeof(name), "%.*s", (int)(n < 31 ? n : 31), a);
        const char **slot = option_slot(ctl, c, name);
        if (slot == NULL) {
            char msg[96];
            snprintf(msg, sizeof(msg), "unknown option %.60s", a);
            usage_error(c ? c->name : NULL, msg);
            return -1;
        }
        if (eq == NULL && *i + 1 >= argc) {
            char msg[96];
            snprintf(msg, sizeof(msg), "option %s needs a value", name);
            usage_error(c ? c->name : NULL, msg);
            return -1;
        }
        *slot = eq ? eq + 1 : argv[++*i];
    }
    return 0;
}

/* Maps a command's status to the exit code. */
static int
exit_code(ff_status st)
{
    switch (st) {
    case FF_OK:
        return FF_CTL_EXIT_OK;
    case FF_ERR_ARG:
        return FF_CTL_EXIT_USAGE;
    case FF_ERR_NOT_FOUND:
        return FF_CTL_EXIT_NOT_FOUND;
    default:
        return FF_CTL_EXIT_RUNTIME;
    }
}

int
main(int argc, char **argv)
{
    ff_ctl ctl = {0};
    ff_error err = {0};
    int i = 1;

    ff_log_set_role("fedfusectl");
    if (getenv("FEDFUSE_LOG") == NULL)
        ff_log_set_level(FF_LOG_WARN);

    /* Global options, then the command name. */
    if (argc >= 2 && strcmp(argv[1], "--version") == 0) {
        printf("fedfusectl %s\n", FF_CODE_VERSION);
        return FF_CTL_EXIT_OK;
    }
    int r = parse_args(&ctl, NULL, argc, argv, &i);
    if (r < 0)
        return FF_CTL_EXIT_USAGE;
    if (r > 0) {
        print_usage(stdout);
        return FF_CTL_EXIT_OK;
    }
    if (i >= argc) {
        print_usage(stderr);
        return FF_CTL_EXIT_USAGE;
    }
    const command *c = find_command(argv[i]);
    if (c == NULL) {
        char msg[96];
        snprintf(msg, sizeof(msg), "unknown command %.40s", argv[i]);
        return usage_error(NULL, msg);
    }

    /* The command's own arguments; options may also come after them. */
    i++;
    r = parse_args(&ctl, c, argc, argv, &i);
    if (r < 0)
        return FF_CTL_EXIT_USAGE;
    if (r > 0) {
        print_command_help(c);
        return FF_CTL_EXIT_OK;
    }
    if (ctl.npos < c->min_pos)
        return usage_error(c->name, "missing arguments");
    if (ctl.db == NULL)
        ctl.db = getenv("FEDFUSE_DB");

    ff_status st = c->run(&ctl, &err);
    ff_registry_close(ctl.reg);
    if (st != FF_OK) {
        if (st == FF_ERR_ARG)
            return usage_error(c->name, ff_error_text(&err));
        print_error(c->name, ff_error_text(&err));
    }
    return exit_code(st);
}
