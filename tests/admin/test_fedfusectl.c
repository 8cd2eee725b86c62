/*
 * test_fedfusectl.c - runs the real fedfusectl binary ($FEDFUSE_BIN) against
 * a fresh PostgreSQL database populated through the registry library, and
 * checks its tables, JSON, export, exit codes and help.
 */
#include <dirent.h>
#include <fcntl.h>
#include <setjmp.h>
#include <spawn.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cmocka.h>

#include "ff_registry.h"
#include "pg_fixture.h"
#include "ctl_run.h"


static ff_test_db g_db;        /* populated registry */
static ff_test_db g_empty;     /* a database never migrated */
static char g_ctl[4096];       /* path of fedfusectl */
static char g_dir[64];         /* scratch folder for exports */
static char g_digest[3][65];   /* digests of mnist-fused versions 1..3 */
static uint8_t *g_art[3];
static size_t g_len[3] = {2048, 30000, 65537};
static char *g_big;            /* a 10 KB hostile string */

/* ---- running fedfusectl ------------------------------------------------ */

/*
 * Runs fedfusectl with args (NULL-terminated, without argv[0]). db_env:
 * value for FEDFUSE_DB, or NULL to remove it from the environment.
 */
static ctl_run
run_ctl_env(const char *db_env, const char *const *args)
{
    return ctl_run_argv(g_ctl, db_env, args);
}

/* Runs fedfusectl --db <test db> args... */
static ctl_run
run_ctl(const char *first, ...)
{
    const char *lead[] = {"--db", g_db.conninfo};
    va_list ap;
    ctl_run r;

    va_start(ap, first);
    r = ctl_run_va(g_ctl, NULL, lead, 2, first, ap);
    va_end(ap);
    return r;
}

static void
expect_code(const ctl_run *r, int code, const char *what)
{
    if (r->code != code)
        fail_msg("%s: exit %d, expected %d\nstdout: %s\nstderr: %s", what,
                 r->code, code, r->out, r->err);
}

static json_t *
parse_json(const ctl_run *r)
{
    json_error_t jerr;
    json_t *j = json_loads(r->out, JSON_DECODE_ANY, &jerr);

    if (j == NULL)
        fail_msg("stdout is not JSON (%s): %.300s", jerr.text, r->out);
    return j;
}

/* ---- populating ---------------------------------------------------------- */

static void
must(ff_status st, const ff_error *err, const char *what)
{
    if (st != FF_OK)
        fail_msg("%s: %s", what, ff_error_text(err));
}

static void
fill_bytes(uint8_t *buf, size_t n, uint32_t seed)
{
    uint32_t x = seed * 2654435761u + 7;

    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        buf[i] = (uint8_t)x;
    }
}

static void
publish(ff_registry *r, const char *model, int round, int parent,
        const uint8_t *art, size_t len, const ff_contribution *c, size_t nc,
        json_t *metrics, char digest[65])
{
    ff_error err = {0};
    ff_version_new v = {0};
    int version = 0;

    ff_registry_digest(art, len, digest);
    v.model = model;
    v.round = round;
    v.parent = parent;
    v.contributions = c;
    v.n_contributions = nc;
    v.metrics = metrics;
    v.train_config = NULL;
    v.artifact = art;
    v.artifact_len = len;
    v.digest_hex = digest;
    must(ff_registry_version_publish(r, &v, &version, &err), &err,
         "publish");
}

static void
populate(void)
{
    ff_registry *r = NULL;
    ff_error err = {0};
    int version = 0;
    static const ff_contribution c[] = {{"hospital-a", 600, NULL, NULL},
                                        {"hospital-b", 400, NULL, NULL}};

    must(ff_registry_open(&r, g_db.conninfo, &err), &err, "open");
    must(ff_registry_migrate(r, &version, &err), &err, "migrate");
    json_t *cfg = json_pack("{s:s}", "arch", "fused");
    must(ff_registry_model_ensure(r, "mnist-fused", cfg, &err), &err,
         "model");
    must(ff_registry_model_ensure(r, "tampered", cfg, &err), &err, "model");
    must(ff_registry_model_ensure(r, "empty-model", cfg, &err), &err,
         "model");

    /* Three versions with accuracies overall and per modality. */
    for (int i = 0; i < 3; i++) {
        json_t *rc = json_pack("{s:i, s:[s,s]}", "epochs", 2, "sites",
                               "hospital-a", "hospital-b");
        must(ff_registry_round_start(r, "mnist-fused", i + 1, rc, &err),
             &err, "round");
        json_decref(rc);
        g_art[i] = malloc(g_len[i]);
        assert_non_null(g_art[i]);
        fill_bytes(g_art[i], g_len[i], 100 + (uint32_t)i);
        json_t *m = json_pack("{s:f, s:f, s:{s:f, s:f, s:f, s:f}}",
                              "accuracy", 0.7 + 0.1 * i, "loss", 0.9,
                              "alone", "image", 0.61 + 0.1 * i, "audio",
                              0.42, "pen", 0.5, "text", -1.0);
        publish(r, "mnist-fused", i + 1, i, g_art[i], g_len[i], c, 2, m,
                g_digest[i]);
        json_decref(m);
    }

    /* An aborted round, the coordinator, sites, some hostile. */
    must(ff_registry_round_start(r, "mnist-fused", 4, NULL, &err), &err,
         "round 4");
    must(ff_registry_round_abort(r, "mnist-fused", 4,
                                 "quorum lost \x1b[2J\nafter 30 s", &err),
         &err, "abort");
    must(ff_registry_coordinator_state(r, "mnist-fused", "waiting",
                                       "127.0.0.1:50051", 4, &err),
         &err, "coordinator");
    json_t *d = json_pack("{s:s, s:i}", "code", "0.1.0", "examples", 600);
    must(ff_registry_site_register(r, "hospital-a", d, &err), &err, "site");
    json_decref(d);
    d = json_pack("{s:s}", "note", g_big);
    must(ff_registry_site_register(r, "evil\x1b[31m\x07\xe2\x80\xae", d,
                                   &err),
         &err, "hostile site");
    json_decref(d);
    d = json_pack("{s:s}", "reason", g_big);
    must(ff_registry_audit(r, "coordinator", "update.rejected",
                           "evil\x1b[31m\x07\xe2\x80\xae", d, &err),
         &err, "audit");
    json_decref(d);

    /* A version whose stored bytes no longer match their digest. */
    uint8_t t[500];
    char digest[65];
    fill_bytes(t, sizeof(t), 9);
    publish(r, "tampered", 0, 0, t, sizeof(t), NULL, 0, NULL, digest);
    const char *params[1] = {"tampered"};
    assert_int_equal(ff_test_db_exec(&g_db,
                                     "UPDATE versions SET artifact = "
                                     "set_byte(artifact, 0, "
                                     "(get_byte(artifact, 0) + 1) % 256) "
                                     "WHERE model = $1",
                                     1, params), 1);
    json_decref(cfg);
    ff_registry_close(r);
}

/* ---- tests ----------------------------------------------------------- */

/* The versions table shows every version with its accuracies and digest
 * prefix. */
static void
versions_table_lists_each_version(void **state)
{
    (void)state;
    ctl_run r = run_ctl("versions", "mnist-fused", NULL);

    expect_code(&r, 0, "versions");
    print_message("%s", r.out);
    assert_non_null(strstr(r.out, "VERSION"));
    assert_non_null(strstr(r.out, "ACCURACY"));
    assert_non_null(strstr(r.out, "ALONE:image"));
    assert_non_null(strstr(r.out, "ALONE:text"));
    static const char *const acc[] = {"0.7000", "0.8000", "0.9000"};
    static const char *const img[] = {"0.6100", "0.7100", "0.8100"};
    for (int i = 0; i < 3; i++) {
        char prefix[13];
        snprintf(prefix, sizeof(prefix), "%.12s", g_digest[i]);
        const char *line = strstr(r.out, prefix);
        assert_non_null(line);
        /* The row holding this digest starts with the version number. */
        const char *start = line;
        while (start > r.out && start[-1] != '\n')
            start--;
        assert_int_equal(atoi(start), i + 1);
        char row[512];
        snprintf(row, sizeof(row), "%.*s", (int)(line - start), start);
        assert_non_null(strstr(row, acc[i]));
        assert_non_null(strstr(row, img[i]));
        assert_non_null(strstr(row, "1000"));   /* examples */
    }
    ctl_run_free(&r);

    r = run_ctl("versions", "empty-model", NULL);
    expect_code(&r, 0, "versions of a model without versions");
    assert_non_null(strstr(r.out, "no versions"));
    ctl_run_free(&r);
}

/* --json gives one JSON document with the fields, for each command. */
static void
json_output_parses(void **state)
{
    (void)state;
    ctl_run r = run_ctl("--json", "versions", "mnist-fused", NULL);
    expect_code(&r, 0, "versions --json");
    json_t *j = parse_json(&r);
    assert_int_equal(json_array_size(j), 3);
    for (size_t i = 0; i < 3; i++) {
        json_t *v = json_array_get(j, i);
        assert_int_equal(json_integer_value(json_object_get(v, "version")),
                         i + 1);
        assert_string_equal(json_string_value(json_object_get(v, "digest")),
                            g_digest[i]);
        assert_int_equal(json_integer_value(json_object_get(v, "examples")),
                         1000);
        assert_true(json_is_array(json_object_get(v, "contributions")));
        assert_true(json_is_object(json_object_get(v, "metrics")));
        assert_non_null(json_object_get(v, "parent"));
        assert_non_null(json_object_get(v, "created_at"));
    }
    json_decref(j);
    ctl_run_free(&r);

    /* --json after the command works too. */
    r = run_ctl("show", "mnist-fused", "2", "--json", NULL);
    expect_code(&r, 0, "show --json");
    j = parse_json(&r);
    assert_int_equal(json_integer_value(json_object_get(j, "artifact_len")),
                     g_len[1]);
    assert_string_equal(json_string_value(json_object_get(j, "round_state")),
                        "published");
    assert_int_equal(json_array_size(json_object_get(j, "contributions")), 2);
    json_decref(j);
    ctl_run_free(&r);

    r = run_ctl("--json", "status", NULL);
    expect_code(&r, 0, "status --json");
    j = parse_json(&r);
    assert_string_equal(json_string_value(json_object_get(
                            json_object_get(j, "coordinator"), "state")),
                        "waiting");
    assert_true(json_array_size(json_object_get(j, "sites")) >= 2);
    assert_true(json_array_size(json_object_get(j, "rounds")) >= 4);
    json_decref(j);
    ctl_run_free(&r);

    r = run_ctl("--json", "models", NULL);
    expect_code(&r, 0, "models --json");
    j = parse_json(&r);
    assert_int_equal(json_array_size(j), 3);
    json_decref(j);
    ctl_run_free(&r);

    r = run_ctl("--json", "audit", "--action", "round.*", "--limit", "0",
                NULL);
    expect_code(&r, 0, "audit --json");
    j = parse_json(&r);
    /* 4 starts, 3 finishes, 1 abort */
    assert_int_equal(json_array_size(j), 8);
    json_decref(j);
    ctl_run_free(&r);

    r = run_ctl("--json", "audit", "--limit", "2", NULL);
    expect_code(&r, 0, "audit --limit 2");
    j = parse_json(&r);
    assert_int_equal(json_array_size(j), 2);
    json_int_t a = json_integer_value(json_object_get(json_array_get(j, 0),
                                                      "id"));
    json_int_t b = json_integer_value(json_object_get(json_array_get(j, 1),
                                                      "id"));
    assert_true(a < b);
    json_decref(j);
    ctl_run_free(&r);
}

static int
count_temp_files(const char *prefix)
{
    DIR *d = opendir(g_dir);
    int n = 0;

    assert_non_null(d);
    for (struct dirent *e; (e = readdir(d)) != NULL;)
        if (strncmp(e->d_name, prefix, strlen(prefix)) == 0)
            n++;
    closedir(d);
    return n;
}

/* export writes the exact bytes, atomically, and says it verified them. */
static void
export_writes_verified_file(void **state)
{
    (void)state;
    char path[128], digest[65];

    snprintf(path, sizeof(path), "%s/v2.ffmodel", g_dir);
    ctl_run r = run_ctl("export", "mnist-fused", "2", path, NULL);
    expect_code(&r, 0, "export");
    char want[128];
    snprintf(want, sizeof(want), "verified blake2b %s", g_digest[1]);
    assert_non_null(strstr(r.out, want));
    print_message("%s", r.out);
    ctl_run_free(&r);

    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    size_t len = 0;
    char *bytes = ctl_slurp_fd(fd, &len);
    close(fd);
    assert_non_null(bytes);
    assert_int_equal(len, g_len[1]);
    assert_memory_equal(bytes, g_art[1], len);
    ff_registry_digest((const uint8_t *)bytes, len, digest);
    assert_string_equal(digest, g_digest[1]);
    free(bytes);
    assert_int_equal(count_temp_files("v2.ffmodel.tmp."), 0);

    /* Exporting again replaces the file in place. */
    r = run_ctl("--json", "export", "mnist-fused", "3", path, NULL);
    expect_code(&r, 0, "export --json");
    json_t *j = parse_json(&r);
    assert_true(json_is_true(json_object_get(j, "verified")));
    assert_string_equal(json_string_value(json_object_get(j, "digest")),
                        g_digest[2]);
    json_decref(j);
    ctl_run_free(&r);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_size, g_len[2]);
}

/* A tampered version: exit 1, no file, no temporary file. */
static void
export_tampered_fails(void **state)
{
    (void)state;
    char path[128];

    snprintf(path, sizeof(path), "%s/tampered.bin", g_dir);
    ctl_run r = run_ctl("export", "tampered", "1", path, NULL);
    expect_code(&r, 1, "export of a tampered version");
    assert_non_null(strstr(r.err, "digest mismatch"));
    print_message("stderr: %s", r.err);
    ctl_run_free(&r);
    assert_int_equal(access(path, F_OK), -1);
    assert_int_equal(count_temp_files("tampered.bin"), 0);
}

/* Unknown model or version: exit 3. */
static void
unknown_model_or_version_exits_3(void **state)
{
    (void)state;
    char path[128];
    snprintf(path, sizeof(path), "%s/none.bin", g_dir);

    ctl_run r = run_ctl("versions", "no-such-model", NULL);
    expect_code(&r, 3, "versions of an unknown model");
    assert_non_null(strstr(r.err, "no such model"));
    ctl_run_free(&r);
    r = run_ctl("show", "no-such-model", "1", NULL);
    expect_code(&r, 3, "show of an unknown model");
    ctl_run_free(&r);
    r = run_ctl("show", "mnist-fused", "42", NULL);
    expect_code(&r, 3, "show of an unknown version");
    ctl_run_free(&r);
    r = run_ctl("export", "mnist-fused", "42", path, NULL);
    expect_code(&r, 3, "export of an unknown version");
    ctl_run_free(&r);
    assert_int_equal(access(path, F_OK), -1);
}

/* Bad command lines: exit 2 with a message. */
static void
bad_usage_exits_2(void **state)
{
    (void)state;
    static const char *const cases[][6] = {
        {NULL},
        {"frobnicate", NULL},
        {"versions", NULL},
        {"versions", "a", "b", NULL},
        {"show", "mnist-fused", "two", NULL},
        {"show", "mnist-fused", "0", NULL},
        {"export", "mnist-fused", "1", NULL},
        {"audit", "--limit", "many", NULL},
        {"audit", "--limit", NULL},
        {"audit", "--since", "not-a-time", NULL},
        {"versions", "--site", "x", "mnist-fused", NULL},
        {"--bogus", "status", NULL},
    };
    size_t n = sizeof(cases) / sizeof(cases[0]);

    for (size_t i = 0; i < n; i++) {
        const char *args[10] = {"--db", g_db.conninfo};
        int k = 2;
        for (int j = 0; cases[i][j] != NULL; j++)
            args[k++] = cases[i][j];
        args[k] = NULL;
        ctl_run r = run_ctl_env(NULL, args);
        char what[64];
        snprintf(what, sizeof(what), "usage case %zu", i);
        expect_code(&r, 2, what);
        assert_true(strlen(r.err) > 0);
        ctl_run_free(&r);
    }

    /* No database anywhere. */
    const char *args[] = {"status", NULL};
    ctl_run r = run_ctl_env(NULL, args);
    expect_code(&r, 2, "status without a database");
    assert_non_null(strstr(r.err, "FEDFUSE_DB"));
    ctl_run_free(&r);
    print_message("%zu bad command lines exited 2\n", n + 1);
}

/* --help works for the program and every command, with no database. */
static void
help_exits_0(void **state)
{
    (void)state;
    static const char *const cmds[] = {"status", "models", "versions",
                                       "show", "audit", "export", "migrate"};

    const char *top[] = {"--help", NULL};
    ctl_run r = run_ctl_env(NULL, top);
    expect_code(&r, 0, "--help");
    assert_non_null(strstr(r.out, "usage:"));
    for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
        assert_non_null(strstr(r.out, cmds[i]));
    ctl_run_free(&r);
    for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
        const char *args[] = {cmds[i], "--help", NULL};
        r = run_ctl_env(NULL, args);
        expect_code(&r, 0, cmds[i]);
        assert_non_null(strstr(r.out, "usage: fedfusectl"));
        assert_non_null(strstr(r.out, cmds[i]));
        ctl_run_free(&r);
    }
}

/* Checks that text has no control byte but newline, and no line wider
 * than max columns; returns the widest line. */
static size_t
assert_inert(const char *text, size_t max)
{
    size_t widest = 0, col = 0;

    for (const unsigned char *p = (const unsigned char *)text; *p; p++) {
        if (*p == '\n') {
            col = 0;
            continue;
        }
        if (*p < 0x20 || *p == 0x7f)
            fail_msg("control byte 0x%02x in table output", *p);
        if (p[0] == 0xe2 && p[1] == 0x80 && p[2] == 0xae)
            fail_msg("bidi override in table output");
        if ((*p & 0xc0) != 0x80 && ++col > widest)
            widest = col;
    }
    assert_true(widest <= max);
    return widest;
}

/* Control characters are escaped and long cells cut with an ellipsis in
 * tables; --json keeps every byte. */
static void
hostile_strings_do_not_break_tables(void **state)
{
    (void)state;
    ctl_run r = run_ctl("status", NULL);
    expect_code(&r, 0, "status");
    size_t w1 = assert_inert(r.out, 300);
    assert_non_null(strstr(r.out, "evil\\x1b[31m\\x07\\u202e"));
    assert_non_null(strstr(r.out, "\xe2\x80\xa6"));   /* ellipsis */
    assert_non_null(strstr(r.out, "quorum lost \\x1b[2J\\nafter"));
    print_message("%s", r.out);
    ctl_run_free(&r);

    r = run_ctl("audit", "--site", "evil\x1b[31m\x07\xe2\x80\xae", NULL);
    expect_code(&r, 0, "audit --site hostile");
    size_t w2 = assert_inert(r.out, 300);
    assert_non_null(strstr(r.out, "update.rejected"));
    ctl_run_free(&r);

    r = run_ctl("--json", "audit", "--action", "update.rejected", NULL);
    expect_code(&r, 0, "audit --json");
    json_t *j = parse_json(&r);
    assert_int_equal(json_array_size(j), 1);
    const char *reason = json_string_value(json_object_get(
        json_object_get(json_array_get(j, 0), "details"), "reason"));
    assert_non_null(reason);
    assert_string_equal(reason, g_big);
    json_decref(j);
    ctl_run_free(&r);
    print_message("widest table lines: status %zu, audit %zu columns; "
                  "JSON kept all %zu bytes\n",
                  w1, w2, strlen(g_big));
}

/* Database trouble is a runtime error (1); a database without the schema
 * says to migrate, and migrate creates it, then reports it up to date. */
static void
runtime_errors_and_migrate(void **state)
{
    (void)state;
    const char *down[] = {"--db", "host=/nonexistent-ffpg dbname=x "
                                  "connect_timeout=2", "status", NULL};
    ctl_run r = run_ctl_env(NULL, down);
    expect_code(&r, 1, "status with the database down");
    assert_non_null(strstr(r.err, "database"));
    ctl_run_free(&r);

    /* FEDFUSE_DB is read when --db is absent. */
    const char *status[] = {"status", NULL};
    r = run_ctl_env(g_empty.conninfo, status);
    expect_code(&r, 1, "status of an empty database");
    assert_non_null(strstr(r.err, "fedfusectl migrate"));
    ctl_run_free(&r);

    const char *migrate[] = {"migrate", NULL};
    r = run_ctl_env(g_empty.conninfo, migrate);
    expect_code(&r, 0, "migrate");
    assert_non_null(strstr(r.out, "(was 0; applied"));
    print_message("%s", r.out);
    ctl_run_free(&r);
    const char *again[] = {"--json", "migrate", NULL};
    r = run_ctl_env(g_empty.conninfo, again);
    expect_code(&r, 0, "migrate again");
    json_t *j = parse_json(&r);
    int latest = 0;
    ff_registry *reg = NULL;
    ff_error err = {0};
    assert_int_equal(ff_registry_open(&reg, g_empty.conninfo, &err), FF_OK);
    assert_int_equal(ff_registry_schema_version(reg, NULL, &latest, &err),
                     FF_OK);
    ff_registry_close(reg);
    assert_int_equal(json_integer_value(json_object_get(j, "version")),
                     latest);
    assert_int_equal(json_integer_value(json_object_get(j, "applied")), 0);
    json_decref(j);
    ctl_run_free(&r);

    r = run_ctl_env(g_empty.conninfo, status);
    expect_code(&r, 0, "status after migrate");
    ctl_run_free(&r);
}

/* export refuses a FILE that exists and is not a regular file (here a
 * symlink and a FIFO), exit 1, and leaves it and its target alone. */
static void
export_refuses_non_regular_files(void **state)
{
    (void)state;
    char target[128], link[128], fifo[128];
    struct stat st;

    snprintf(target, sizeof(target), "%s/target.txt", g_dir);
    snprintf(link, sizeof(link), "%s/link.ffmodel", g_dir);
    snprintf(fifo, sizeof(fifo), "%s/fifo.ffmodel", g_dir);
    int fd = open(target, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "keep", 4), 4);
    close(fd);
    assert_int_equal(symlink(target, link), 0);
    assert_int_equal(mkfifo(fifo, 0600), 0);

    ctl_run r = run_ctl("export", "mnist-fused", "1", link, NULL);
    expect_code(&r, 1, "export onto a symlink");
    assert_non_null(strstr(r.err, "symbolic link"));
    print_message("stderr: %s", r.err);
    ctl_run_free(&r);
    assert_int_equal(lstat(link, &st), 0);
    assert_true(S_ISLNK(st.st_mode));
    assert_int_equal(stat(target, &st), 0);
    assert_int_equal(st.st_size, 4);

    r = run_ctl("export", "mnist-fused", "1", fifo, NULL);
    expect_code(&r, 1, "export onto a FIFO");
    assert_non_null(strstr(r.err, "FIFO"));
    print_message("stderr: %s", r.err);
    ctl_run_free(&r);
    assert_int_equal(lstat(fifo, &st), 0);
    assert_true(S_ISFIFO(st.st_mode));

    r = run_ctl("export", "mnist-fused", "1", g_dir, NULL);
    expect_code(&r, 1, "export onto a directory");
    assert_non_null(strstr(r.err, "directory"));
    ctl_run_free(&r);
    assert_int_equal(count_temp_files("link.ffmodel.tmp."), 0);
    assert_int_equal(count_temp_files("fifo.ffmodel.tmp."), 0);
}

/* A negative VERSION is a range error (exit 2), not an unknown option. */
static void
negative_version_is_range_error(void **state)
{
    (void)state;
    ctl_run r = run_ctl("show", "mnist-fused", "-1", NULL);
    expect_code(&r, 2, "show MODEL -1");
    assert_non_null(strstr(r.err, "VERSION must be 1..2147483647"));
    assert_null(strstr(r.err, "unknown option"));
    print_message("stderr: %s", r.err);
    ctl_run_free(&r);
}

/* Seconds since t0. */
static double
since(const struct timespec *t0)
{
    struct timespec t1;

    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (double)(t1.tv_sec - t0->tv_sec) +
           (double)(t1.tv_nsec - t0->tv_nsec) / 1e9;
}

/* A server that accepts TCP connections (the kernel's backlog does) but
 * never answers: fedfusectl gives up after the default connect_timeout
 * (10 s) with exit 1 and a message naming the timeout; a connect_timeout
 * in the caller's conninfo wins over the default. */
static void
unresponsive_server_times_out(void **state)
{
    (void)state;
    struct sockaddr_in addr = {0};
    socklen_t alen = sizeof(addr);
    char conninfo[128];
    struct timespec t0;

    int s = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(s >= 0);
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(s, (struct sockaddr *)&addr, sizeof(addr)), 0);
    assert_int_equal(listen(s, 8), 0);
    assert_int_equal(getsockname(s, (struct sockaddr *)&addr, &alen), 0);

    snprintf(conninfo, sizeof(conninfo),
             "host=127.0.0.1 port=%d dbname=x user=x sslmode=disable",
             ntohs(addr.sin_port));
    const char *args[] = {"--db", conninfo, "status", NULL};
    clock_gettime(CLOCK_MONOTONIC, &t0);
    ctl_run r = run_ctl_env(NULL, args);
    double took = since(&t0);
    print_message("silent server: exit %d after %.1f s (limit 15 s): %s",
                  r.code, took, r.err);
    expect_code(&r, 1, "status against a silent server");
    assert_non_null(strstr(r.err, "timeout"));
    assert_true(took >= 9.0 && took < 15.0);
    ctl_run_free(&r);

    size_t n = strlen(conninfo);
    snprintf(conninfo + n, sizeof(conninfo) - n, " connect_timeout=2");
    clock_gettime(CLOCK_MONOTONIC, &t0);
    r = run_ctl_env(NULL, args);
    took = since(&t0);
    print_message("with connect_timeout=2: exit %d after %.1f s\n", r.code,
                  took);
    expect_code(&r, 1, "status with the caller's connect_timeout");
    assert_true(took < 6.0);
    ctl_run_free(&r);
    close(s);
}

/* A coordinator that is not stopped and has not heartbeat for more than
 * 10 s shows as STALE in the table and "stale": true in --json. */
static void
status_marks_stale_coordinators(void **state)
{
    (void)state;
    assert_int_equal(ff_test_db_exec(&g_db,
                                     "INSERT INTO coordinator (model, state, "
                                     "address, round, pid, updated_at) "
                                     "VALUES ('old-run', 'training', "
                                     "'127.0.0.1:1', 2, 77, "
                                     "now() - interval '11 s'), "
                                     "('old-stop', 'stopped', '127.0.0.1:2', "
                                     "0, 78, now() - interval '1 h')",
                                     0, NULL), 2);
    /* mnist-fused's row is as old as this test run: fresh heartbeat. */
    assert_int_equal(ff_test_db_exec(&g_db,
                                     "UPDATE coordinator SET updated_at = "
                                     "now() WHERE model = 'mnist-fused'",
                                     0, NULL), 1);
    ctl_run r = run_ctl("status", NULL);
    expect_code(&r, 0, "status");
    print_message("%s", r.out);
    const char *line = strstr(r.out, "old-run");
    assert_non_null(line);
    assert_true(strstr(line, "STALE (training)") < strchr(line, '\n'));
    assert_non_null(strstr(line, "STALE"));
    line = strstr(r.out, "old-stop");
    assert_non_null(line);
    const char *eol = strchr(line, '\n');
    const char *stale = strstr(line, "STALE");
    assert_true(stale == NULL || stale > eol);
    line = strstr(r.out, "mnist-fused");
    stale = strstr(line, "STALE");
    assert_true(stale == NULL || stale > strchr(line, '\n'));
    ctl_run_free(&r);

    r = run_ctl("--json", "status", NULL);
    expect_code(&r, 0, "status --json");
    json_t *j = parse_json(&r);
    json_t *list = json_object_get(j, "coordinators");
    int seen = 0;
    for (size_t i = 0; i < json_array_size(list); i++) {
        json_t *c = json_array_get(list, i);
        const char *m = json_string_value(json_object_get(c, "model"));
        json_t *flag = json_object_get(c, "stale");
        assert_true(json_is_boolean(flag));
        assert_int_equal(json_is_true(flag), strcmp(m, "old-run") == 0);
        seen++;
    }
    assert_int_equal(seen, 3);
    assert_true(json_is_false(json_object_get(
        json_object_get(j, "coordinator"), "stale")));
    json_decref(j);
    ctl_run_free(&r);
}

static int
setup(void **state)
{
    (void)state;
    if (ctl_run_locate(g_ctl, sizeof(g_ctl)) != 0)
        return -1;
    snprintf(g_dir, sizeof(g_dir), "/tmp/ffctl-test-XXXXXX");
    if (mkdtemp(g_dir) == NULL)
        return -1;

    /* 10 KB of quotes, backslashes and control characters. */
    static const char alphabet[] = "ab'\\\"; -\x01\x1b[\t\n%";
    g_big = malloc(10 * 1024 + 1);
    if (g_big == NULL)
        return -1;
    for (size_t i = 0; i < 10 * 1024; i++)
        g_big[i] = alphabet[i % (sizeof(alphabet) - 1)];
    g_big[10 * 1024] = '\0';
    populate();
    return 0;
}

static int
teardown(void **state)
{
    (void)state;
    char cmd[128];

    snprintf(cmd, sizeof(cmd), "rm -rf %s", g_dir);
    if (strncmp(g_dir, "/tmp/ffctl-test-", 16) == 0 && system(cmd) != 0)
        fprintf(stderr, "warning: could not remove %s\n", g_dir);
    for (int i = 0; i < 3; i++)
        free(g_art[i]);
    free(g_big);
    return 0;
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(versions_table_lists_each_version),
        cmocka_unit_test(json_output_parses),
        cmocka_unit_test(export_writes_verified_file),
        cmocka_unit_test(export_tampered_fails),
        cmocka_unit_test(unknown_model_or_version_exits_3),
        cmocka_unit_test(bad_usage_exits_2),
        cmocka_unit_test(help_exits_0),
        cmocka_unit_test(hostile_strings_do_not_break_tables),
        cmocka_unit_test(runtime_errors_and_migrate),
        cmocka_unit_test(export_refuses_non_regular_files),
        cmocka_unit_test(negative_version_is_range_error),
        cmocka_unit_test(unresponsive_server_times_out),
        cmocka_unit_test(status_marks_stale_coordinators),
    };

    if (ff_test_db_create(&g_db, "admin") != 0 ||
        ff_test_db_create(&g_empty, "admin_empty") != 0) {
        ff_test_db_drop(&g_db);
        ff_test_db_drop(&g_empty);
        return 1;
    }
    int failed = cmocka_run_group_tests(tests, setup, teardown);
    ff_test_db_drop(&g_db);
    ff_test_db_drop(&g_empty);
    return failed ? 1 : 0;
}
