/*
 * Tests for the site's record-level privacy (client/privacy.c): the ledger
 * file survives a save and a load bit for bit; a corrupt ledger is refused
 * with a message naming the file, and left as it was; the budget check
 * refuses exactly the first round whose epsilon, computed here
 * independently with ff_accountant, would exceed the budget; a planned
 * sigma spends the budget (within 1%) after planned_rounds rounds and
 * stays the same after a restart; the DP-SGD callbacks sample and noise.
 * The ledger file is never written through a planted link, a linked,
 * dangling, FIFO or directory ledger is refused at once, a second holder
 * is locked out, a ledger changed on disk is never overwritten, another
 * site's ledger is refused, delta must stay below 1 / records, and a
 * 5000-round ledger is accounted in well under a second.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <sodium.h>

#include "../../client/ff_site_privacy.h"
#include "../../privacy/ff_accountant.h"
#include "../../privacy/ff_dp.h"

#define PARAMS 100000u   /* parameter count the noise is added over */

static char dir[64];

static int setup(void **state)
{
    (void)state;
    strcpy(dir, "/tmp/ff-site-privacy-XXXXXX");
    return mkdtemp(dir) == NULL ? -1 : 0;
}

static int teardown(void **state)
{
    char cmd[128];

    (void)state;
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* A fresh ledger path in the test folder. */
static void ledger_path(char *out, size_t cap, const char *name)
{
    snprintf(out, cap, "%s/%s", dir, name);
    unlink(out);
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");

    assert_non_null(f);
    fputs(text, f);
    assert_int_equal(fclose(f), 0);
}

/* Reads a whole small file (malloc'd). */
static char *read_file(const char *path)
{
    FILE *f = fopen(path, "r");
    char *buf = calloc(1, 1 << 20);
    size_t n;

    assert_non_null(f);
    assert_non_null(buf);
    n = fread(buf, 1, (1 << 20) - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

/* How many entries of the test folder start with prefix. */
static int leftovers(const char *prefix)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int n = 0;

    assert_non_null(d);
    while ((e = readdir(d)) != NULL)
        n += strncmp(e->d_name, prefix, strlen(prefix)) == 0;
    closedir(d);
    return n;
}

/* The sigma the accountant must be fed, from the definitions. */
static double sigma_eff_indep(double sigma, double clip, size_t p)
{
    double gamma = ff_dp_grid_step(sigma * clip);

    return sigma * clip / (clip + gamma * sqrt((double)p));
}

/* Epsilon of `rounds` rounds of (q, sigma_eff, steps), independently. */
static double eps_indep(double q, double sigma_eff, int64_t steps,
                        int rounds, double delta)
{
    ff_privacy_error pe = {0};
    ff_accountant a;
    double eps = 0.0;
    int r;

    assert_int_equal(ff_accountant_init_grid(&a, FF_ACCT_GRID_DEFAULT, &pe),
                     FF_PRIVACY_OK);
    for (r = 0; r < rounds; r++)
        assert_int_equal(ff_accountant_add_gaussian(&a, q, sigma_eff, steps,
                                                    &pe), FF_PRIVACY_OK);
    assert_int_equal(ff_accountant_epsilon(&a, delta, FF_ACCT_CONV_NEW, &eps,
                                           NULL, &pe), FF_PRIVACY_OK);
    return eps;
}

/* ---- the ledger file ---- */

/* What is saved is what is loaded, to the last bit, and the file is
 * private and written without leftovers. */
static void ledger_round_trip(void **state)
{
    char path[128], tmp[140];
    ff_site_ledger a, b;
    ff_site_ledger_round keep[3];
    ff_site_dp_plan keep_plan;
    ff_error err = {0};
    struct stat sb;
    size_t i;
    double maxdiff = 0.0;

    (void)state;
    ledger_path(path, sizeof path, "round-trip.json");
    assert_int_equal(ff_site_ledger_load(&a, path, "site-a", &err), FF_OK);
    assert_int_equal(a.n, 0);
    assert_false(a.plan.set);
    a.plan.set = 1;
    a.plan.sigma = 1.0 / 3.0;
    a.plan.sigma_eff = 0.1 * 3.2999999999;
    a.plan.q = 0.01;
    a.plan.steps_per_round = 100;
    a.plan.planned_rounds = 10;
    a.plan.epsilon_budget = 8.0;
    a.plan.delta = 1e-5;
    a.plan.clip = 0.7;
    a.plan.param_count = PARAMS;
    for (i = 0; i < 3; i++) {
        ff_site_ledger_round r;
        memset(&r, 0, sizeof r);
        r.round = (int)i + 2;
        r.q = 0.01 * (1.0 + (double)i / 7.0);
        r.noise_multiplier = M_PI / (double)(i + 1);
        r.sigma_eff = r.noise_multiplier * 0.999;
        r.clip = 0.7;
        r.steps = 100 + (int64_t)i;
        r.epsilon = exp(-(double)i) * 1.2345678901234567;
        r.delta = 1e-5;
        strcpy(r.at, "2026-01-02T03:04:05Z");
        assert_int_equal(ff_site_ledger_append(&a, &r, &err), FF_OK);
    }
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    assert_int_not_equal(access(tmp, F_OK), 0);
    assert_int_equal(leftovers("round-trip.json.tmp"), 0);
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 077, 0);

    /* Load it again (a's lock released first: one holder at a time) and
     * compare every field. */
    keep_plan = a.plan;
    memcpy(keep, a.rounds, sizeof keep);
    ff_site_ledger_cleanup(&a);
    assert_int_equal(ff_site_ledger_load(&b, path, "site-a", &err), FF_OK);
    assert_int_equal(b.n, 3);
    assert_string_equal(b.site, "site-a");
    assert_memory_equal(&keep_plan, &b.plan, sizeof keep_plan);
    for (i = 0; i < 3; i++) {
        const ff_site_ledger_round *x = &keep[i], *y = &b.rounds[i];
        double d = fabs(x->q - y->q) + fabs(x->sigma_eff - y->sigma_eff) +
                   fabs(x->noise_multiplier - y->noise_multiplier) +
                   fabs(x->epsilon - y->epsilon) + fabs(x->delta - y->delta) +
                   fabs(x->clip - y->clip);
        if (d > maxdiff)
            maxdiff = d;
        assert_int_equal(x->round, y->round);
        assert_int_equal(x->steps, y->steps);
        assert_string_equal(x->at, y->at);
    }
    printf("ledger round trip: largest difference %g (tolerance 0)\n",
           maxdiff);
    assert_true(maxdiff == 0.0);
    ff_site_ledger_cleanup(&b);
}

/* A valid ledger text with one round, where `round` replaces the round
 * object's contents. */
static void ledger_text(char *out, size_t cap, const char *plan,
                        const char *round)
{
    snprintf(out, cap,
             "{\"format\": \"fedfuse-site-privacy-ledger\", \"version\": 1,"
             " \"site\": \"s\", \"plan\": %s, \"rounds\": [{%s}]}",
             plan, round);
}

#define GOOD_ROUND                                                         \
    "\"round\": 1, \"q\": 0.01, \"noise_multiplier\": 1.1, "               \
    "\"sigma_eff\": 1.09, \"clip\": 1.0, \"steps\": 100, "                 \
    "\"epsilon\": 0.5, \"delta\": 1e-5, \"at\": \"2026-01-01T00:00:00Z\""

/* Expects the ledger text to be refused as corrupt and left untouched. */
static void expect_corrupt(const char *text, const char *what)
{
    char path[128], *after;
    ff_site_ledger l;
    ff_error err = {0};

    ledger_path(path, sizeof path, "corrupt.json");
    write_file(path, text);
    assert_int_equal(ff_site_ledger_load(&l, path, "s", &err),
                     FF_ERR_FORMAT);
    printf("refused (%s): %s\n", what, ff_error_text(&err));
    assert_non_null(strstr(ff_error_text(&err), "corrupt"));
    assert_non_null(strstr(ff_error_text(&err), path));
    assert_null(l.rounds);
    after = read_file(path);
    assert_string_equal(after, text);
    free(after);
}

/* Every way a ledger can be damaged stops the site, with the reason. */
static void corrupt_ledger_refused(void **state)
{
    char text[2048], good[2048], half[1024];

    (void)state;
    ledger_text(good, sizeof good, "null", GOOD_ROUND);
    {
        char path[128];
        ff_site_ledger l;
        ff_error err = {0};
        ledger_path(path, sizeof path, "good.json");
        write_file(path, good);
        assert_int_equal(ff_site_ledger_load(&l, path, "s", &err), FF_OK);
        assert_int_equal(l.n, 1);
        ff_site_ledger_cleanup(&l);
    }
    expect_corrupt("", "empty file");
    snprintf(half, sizeof half, "%.*s", (int)strlen(good) / 2, good);
    expect_corrupt(half, "truncated");
    expect_corrupt("[1, 2, 3]", "an array");
    expect_corrupt("{\"format\": \"something else\", \"version\": 1}",
                   "wrong format");
    ledger_text(text, sizeof text, "null", GOOD_ROUND);
    text[strlen("{\"format\": \"fedfuse-site-privacy-ledger\", "
                "\"version\": ")] = '2';
    expect_corrupt(text, "version 2");
    ledger_text(text, sizeof text, "{\"sigma\": 1}", GOOD_ROUND);
    expect_corrupt(text, "partial plan");
    ledger_text(text, sizeof text, "null",
                "\"round\": 1, \"q\": 2.0, \"noise_multiplier\": 1.1, "
                "\"sigma_eff\": 1.09, \"clip\": 1.0, \"steps\": 100, "
                "\"epsilon\": 0.5, \"delta\": 1e-5, \"at\": \"x\"");
    expect_corrupt(text, "q above 1");
    ledger_text(text, sizeof text, "null",
                "\"round\": 1, \"q\": 0.01, \"noise_multiplier\": 1.1, "
                "\"sigma_eff\": 1.09, \"clip\": 1.0, \"steps\": -5, "
                "\"epsilon\": 0.5, \"delta\": 1e-5, \"at\": \"x\"");
    expect_corrupt(text, "negative steps");
    ledger_text(text, sizeof text, "null",
                "\"round\": 1, \"q\": 0.01, \"noise_multiplier\": 1.1, "
                "\"sigma_eff\": 2.5, \"clip\": 1.0, \"steps\": 5, "
                "\"epsilon\": 0.5, \"delta\": 1e-5, \"at\": \"x\"");
    expect_corrupt(text, "sigma_eff above sigma");
    ledger_text(text, sizeof text, "null", GOOD_ROUND ", \"q\": 0.02");
    expect_corrupt(text, "duplicate key");
    ledger_text(text, sizeof text, "null",
                "\"round\": 1, \"q\": 0.01, \"noise_multiplier\": 1.1, "
                "\"sigma_eff\": 1.09, \"clip\": 1.0, \"steps\": 100, "
                "\"epsilon\": \"0.5\", \"delta\": 1e-5, \"at\": \"x\"");
    expect_corrupt(text, "epsilon as text");
    expect_corrupt("{\"format\": \"fedfuse-site-privacy-ledger\", "
                   "\"version\": 1, \"plan\": null}", "no rounds");
}

/* Thousands of damaged copies of a valid ledger: each loads as a valid
 * ledger or is refused as corrupt; none crashes or loads bad values. */
static void mutated_ledgers_are_safe(void **state)
{
    char path[128], good[2048], text[2048];
    uint32_t x = 777;
    size_t ok = 0, n, i;
    int k;

    (void)state;
    ledger_text(good, sizeof good,
                "{\"sigma\": 1.2, \"sigma_eff\": 1.1, \"q\": 0.01, "
                "\"steps_per_round\": 100, \"planned_rounds\": 10, "
                "\"epsilon_budget\": 8, \"delta\": 1e-5, \"clip\": 1, "
                "\"param_count\": 1000}", GOOD_ROUND);
    n = strlen(good);
    ledger_path(path, sizeof path, "mutated.json");
    for (k = 0; k < 3000; k++) {
        ff_site_ledger l;
        ff_error err = {0};
        ff_status st;
        memcpy(text, good, n + 1);
        for (i = 0; i < 1 + (size_t)(k % 3); i++) {
            x = x * 1103515245u + 12345u;
            text[(x >> 8) % n] = (char)(' ' + (x >> 16) % 95);
        }
        write_file(path, text);
        st = ff_site_ledger_load(&l, path, "s", &err);
        assert_true(st == FF_OK || st == FF_ERR_FORMAT ||
                    (st == FF_ERR_CONFIG &&
                     strstr(ff_error_text(&err), "belongs to site")));
        if (st == FF_OK) {
            ok++;
            for (i = 0; i < l.n; i++)
                assert_true(l.rounds[i].q > 0.0 && l.rounds[i].q <= 1.0 &&
                            l.rounds[i].steps >= 1 &&
                            l.rounds[i].sigma_eff > 0.0 &&
                            l.rounds[i].sigma_eff <=
                                l.rounds[i].noise_multiplier);
            ff_site_ledger_cleanup(&l);
        }
    }
    printf("mutated ledgers: %zu of 3000 loaded, all within limits\n", ok);
}

/* ---- the ledger file against other processes and planted files ---- */

/* The defaults with a fixed noise multiplier. */
static ff_site_privacy_config config_default_fixed(void)
{
    ff_site_privacy_config c;

    ff_site_privacy_config_default(&c);
    c.noise_multiplier = 1.1;
    return c;
}

/* A valid one-round ledger of site "s" at path. */
static void write_good(const char *path)
{
    char text[2048];

    ledger_text(text, sizeof text, "null", GOOD_ROUND);
    write_file(path, text);
}

/* One round to append. */
static ff_site_ledger_round round_make(int round)
{
    ff_site_ledger_round r;

    memset(&r, 0, sizeof r);
    r.round = round;
    r.q = 0.01;
    r.noise_multiplier = 1.1;
    r.sigma_eff = 1.09;
    r.clip = 1.0;
    r.steps = 100;
    r.epsilon = 0.5;
    r.delta = 1e-5;
    strcpy(r.at, "2026-01-01T00:00:00Z");
    return r;
}

static double now_s(void)
{
    struct timespec t;

    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* Loads path as site "s" in a child process that must finish within
 * 5 seconds (SIGALRM otherwise); returns the status it got, or -1 when
 * it was killed. The seconds it took go to *secs. */
static int load_in_child(const char *path, double *secs)
{
    double t0 = now_s();
    int ws = 0;
    pid_t pid;

    fflush(stdout);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        ff_site_ledger l;
        ff_error err = {0};
        ff_status st;
        alarm(5);
        st = ff_site_ledger_load(&l, path, "s", &err);
        if (st != FF_OK)
            printf("  child: %s\n", ff_error_text(&err));
        fflush(stdout);
        ff_site_ledger_cleanup(&l);
        _exit((int)st);
    }
    assert_int_equal(waitpid(pid, &ws, 0), pid);
    *secs = now_s() - t0;
    return WIFEXITED(ws) ? WEXITSTATUS(ws) : -1;
}

/* A symbolic link planted where the old code put its temporary file (or
 * at the lock file) is never written through: the victim it points at
 * stays as it was, and the ledger is written only to its own path. */
static void planted_links_not_followed(void **state)
{
    char path[128], tmp[160], lock[160], victim[128], *after;
    ff_site_ledger l;
    ff_site_ledger_round r = round_make(1);
    ff_error err = {0};
    struct stat sb;

    (void)state;
    ledger_path(path, sizeof path, "planted.json");
    snprintf(victim, sizeof victim, "%s/victim.txt", dir);
    write_file(victim, "precious\n");
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    unlink(tmp);
    assert_int_equal(symlink(victim, tmp), 0);

    /* Saving with a link at <ledger>.tmp: the victim is untouched. */
    assert_int_equal(ff_site_ledger_load(&l, path, "s", &err), FF_OK);
    assert_int_equal(ff_site_ledger_append(&l, &r, &err), FF_OK);
    ff_site_ledger_cleanup(&l);
    after = read_file(victim);
    printf("link at %s.tmp: victim now '%.8s' (expected 'precious')\n",
           "planted.json", after);
    assert_string_equal(after, "precious\n");
    free(after);
    assert_int_equal(lstat(tmp, &sb), 0);
    assert_true(S_ISLNK(sb.st_mode));
    assert_int_equal(lstat(path, &sb), 0);
    assert_true(S_ISREG(sb.st_mode));
    assert_int_equal(sb.st_mode & 077, 0);

    /* A link at the lock file: refused at load, victim untouched. */
    snprintf(lock, sizeof lock, "%s.lock", path);
    assert_int_equal(unlink(lock), 0);
    assert_int_equal(symlink(victim, lock), 0);
    assert_int_equal(ff_site_ledger_load(&l, path, "s", &err), FF_ERR_IO);
    printf("link at the lock file: %s\n", ff_error_text(&err));
    assert_non_null(strstr(ff_error_text(&err), "symbolic link"));
    after = read_file(victim);
    assert_string_equal(after, "precious\n");
    free(after);
    assert_int_equal(unlink(lock), 0);
}

/* A ledger path that is a symbolic link is refused at load, whether it
 * points at a valid ledger or nowhere; neither counts as "missing". */
static void linked_ledger_refused(void **state)
{
    char path[128], real[128], *before, *after;
    ff_site_ledger l;
    ff_error err = {0};
    struct stat sb;

    (void)state;

    /* A link to a valid ledger. */
    ledger_path(real, sizeof real, "real.json");
    write_good(real);
    before = read_file(real);
    ledger_path(path, sizeof path, "link.json");
    assert_int_equal(symlink(real, path), 0);
    assert_int_equal(ff_site_ledger_load(&l, path, "s", &err), FF_ERR_IO);
    printf("link to a ledger: %s\n", ff_error_text(&err));
    assert_non_null(strstr(ff_error_text(&err), "symbolic link"));
    assert_non_null(strstr(ff_error_text(&err), path));
    assert_null(l.rounds);
    after = read_file(real);
    assert_string_equal(after, before);
    free(after);
    free(before);
    assert_int_equal(lstat(path, &sb), 0);
    assert_true(S_ISLNK(sb.st_mode));

    /* A dangling link: an error, not a new ledger; nothing is created. */
    ledger_path(path, sizeof path, "dangling.json");
    ledger_path(real, sizeof real, "nowhere.json");
    assert_int_equal(symlink(real, path), 0);
    assert_int_equal(ff_site_ledger_load(&l, path, "s", &err), FF_ERR_IO);
    printf("dangling link: %s\n", ff_error_text(&err));
    assert_non_null(strstr(ff_error_text(&err), "symbolic link"));
    assert_int_not_equal(access(real, F_OK), 0);
}

/* A FIFO (or a directory) at the ledger path is refused at once: the load
 * runs in a child with a 5 s alarm and must return well before it. */
static void fifo_ledger_refused_quickly(void **state)
{
    char path[128];
    ff_site_ledger l;
    ff_error err = {0};
    double secs = 0.0;
    int st;

    (void)state;
    ledger_path(path, sizeof path, "fifo.json");
    assert_int_equal(mkfifo(path, 0600), 0);
    st = load_in_child(path, &secs);
    printf("FIFO ledger: child status %d (FF_ERR_IO = %d) after %.3f s "
           "(bound 5 s)\n", st, FF_ERR_IO, secs);
    assert_int_equal(st, FF_ERR_IO);
    assert_true(secs < 5.0);
    assert_int_equal(ff_site_ledger_load(&l, path, "s", &err), FF_ERR_IO);
    assert_non_null(strstr(ff_error_text(&err), "FIFO"));

    ledger_path(path, sizeof path, "dir.json");
    assert_int_equal(mkdir(path, 0700), 0);
    assert_int_equal(ff_site_ledger_load(&l, path, "s", &err), FF_ERR_IO);
    printf("directory ledger: %s\n", ff_error_text(&err));
    assert_non_null(strstr(ff_error_text(&err), "not a regular file"));
}

/* While one ledger holds the lock, a second process (and a second load in
 * this one) is refused; after cleanup the next load succeeds. */
static void second_holder_refused(void **state)
{
    char path[128];
    ff_site_ledger l, other;
    ff_error err = {0};
    double secs = 0.0;
    int st;

    (void)state;
    ledger_path(path, sizeof path, "locked.json");
    write_good(path);
    assert_int_equal(ff_site_ledger_load(&l, path, "s", &err), FF_OK);
    st = load_in_child(path, &secs);
    printf("second process: status %d (FF_ERR_STATE = %d) in %.3f s\n", st,
           FF_ERR_STATE, secs);
    assert_int_equal(st, FF_ERR_STATE);
    assert_int_equal(ff_site_ledger_load(&other, path, "s", &err),
                     FF_ERR_STATE);
    printf("second load here: %s\n", ff_error_text(&err));
    assert_non_null(strstr(ff_error_text(&err), "in use"));
    ff_site_ledger_cleanup(&l);

    /* Released: another process may now take it. */
    st = load_in_child(path, &secs);
    assert_int_equal(st, FF_OK);
}

/* Replaces path with text through a rename (a new inode). */
static void replace_file(const char *path, const char *text)
{
    char tmp[160];

    snprintf(tmp, sizeof tmp, "%s.other", path);
    write_file(tmp, text);
    assert_int_equal(rename(tmp, path), 0);
}

/* Expects saving l to be refused as changed, leaving the file as it is,
 * and the budget check to refuse to go on. */
static void expect_changed(ff_site_ledger *l, const char *how)
{
    ff_site_ledger_round r = round_make(9);
    ff_site_privacy_config c = config_default_fixed();
    ff_site_dp_round d;
    ff_error err = {0};
    char *before = access(l->path, F_OK) == 0 ? read_file(l->path) : NULL;
    size_t n = l->n;

    assert_int_equal(ff_site_ledger_append(l, &r, &err), FF_ERR_STATE);
    printf("ledger %s: %s\n", how, ff_error_text(&err));
    assert_non_null(strstr(ff_error_text(&err), "changed on disk"));
    assert_int_equal(l->n, n);
    assert_int_equal(ff_site_dp_check(l, &c, 9, 1, 6400, PARAMS, &d, &err),
                     FF_ERR_STATE);
    if (before != NULL) {
        char *after = read_file(l->path);
        assert_string_equal(after, before);
        free(after);
        free(before);
    } else {
        assert_int_not_equal(access(l->path, F_OK), 0);
    }
}

/* A ledger replaced, edited or removed behind the site's back is never
 * overwritten from memory; nor is a file that appeared where the site
 * started a new one. */
static void changed_on_disk_refused(void **state)
{
    char path[128], text[2048], *cur;
    ff_site_ledger l;
    ff_site_ledger_round r = round_make(1);
    ff_error err = {0};
    FILE *f;

    (void)state;

    /* Replaced through a rename after our last save. */
    ledger_path(path, sizeof path, "changed.json");
    write_good(path);
    assert_int_equal(ff_site_ledger_load(&l, path, "s", &err), FF_OK);
    r.round = 2;
    assert_int_equal(ff_site_ledger_append(&l, &r, &err), FF_OK);
    ledger_text(text, sizeof text, "null", GOOD_ROUND);
    replace_file(path, text);
    expect_changed(&l, "replaced");
    ff_site_ledger_cleanup(&l);

    /* Edited in place (same inode, longer). */
    assert_int_equal(ff_site_ledger_load(&l, path, "s", &err), FF_OK);
    f = fopen(path, "a");
    assert_non_null(f);
    fputs("\n", f);
    assert_int_equal(fclose(f), 0);
    expect_changed(&l, "edited");
    ff_site_ledger_cleanup(&l);

    /* Removed. */
    assert_int_equal(ff_site_ledger_load(&l, path, "s", &err), FF_OK);
    cur = read_file(path);
    assert_int_equal(unlink(path), 0);
    expect_changed(&l, "removed");
    ff_site_ledger_cleanup(&l);
    write_file(path, cur);
    free(cur);

    /* Started new, then a file appeared there. */
    ledger_path(path, sizeof path, "appeared.json");
    assert_int_equal(ff_site_ledger_load(&l, path, "s", &err), FF_OK);
    write_good(path);
    expect_changed(&l, "appeared");
    ff_site_ledger_cleanup(&l);
}

/* A ledger of another site is refused, naming both ids; an empty id in
 * the file takes the caller's. */
static void wrong_site_refused(void **state)
{
    char path[128], text[2048], *before, *after;
    ff_site_ledger l;
    ff_error err = {0};

    (void)state;
    ledger_path(path, sizeof path, "other-site.json");
    write_good(path);
    before = read_file(path);
    assert_int_equal(ff_site_ledger_load(&l, path, "hospital-b", &err),
                     FF_ERR_CONFIG);
    printf("wrong site: %s\n", ff_error_text(&err));
    assert_non_null(strstr(ff_error_text(&err), "'s'"));
    assert_non_null(strstr(ff_error_text(&err), "'hospital-b'"));
    assert_null(l.rounds);
    after = read_file(path);
    assert_string_equal(after, before);
    free(after);
    free(before);

    /* No site recorded yet: adopted. */
    ledger_text(text, sizeof text, "null", GOOD_ROUND);
    memcpy(strstr(text, "\"site\": \"s\""), "\"site\": \"\" ", 11);
    write_file(path, text);
    assert_int_equal(ff_site_ledger_load(&l, path, "hospital-b", &err),
                     FF_OK);
    assert_string_equal(l.site, "hospital-b");
    ff_site_ledger_cleanup(&l);
}

/* ---- delta ---- */

/* delta must stay below 1 / records (and at most 1e-3): the check names
 * both, and the budget check refuses the round without training. The
 * site program refuses delta 0.5 on its command line. */
static void large_delta_refused(void **state)
{
    char path[128], cmd[1200];
    const char *bin = getenv("FEDFUSE_BIN");
    ff_site_privacy_config c;
    ff_site_ledger l;
    ff_site_dp_round r;
    ff_error err = {0};

    (void)state;
    ff_site_privacy_config_default(&c);
    c.noise_multiplier = 1.1;

    /* At and above 1 / records: refused; just below: accepted. */
    c.delta = 1.0 / 2000.0;
    assert_int_equal(ff_site_privacy_delta_check(&c, 2000, &err),
                     FF_ERR_CONFIG);
    printf("delta 1/2000 for 2000 records: %s\n", ff_error_text(&err));
    assert_non_null(strstr(ff_error_text(&err), "delta 0.0005"));
    assert_non_null(strstr(ff_error_text(&err), "2000 records"));
    c.delta = nextafter(1.0 / 2000.0, 0.0);
    assert_int_equal(ff_site_privacy_delta_check(&c, 2000, &err), FF_OK);
    c.delta = 2e-3;
    assert_int_equal(ff_site_privacy_delta_check(&c, 10, &err),
                     FF_ERR_CONFIG);
    printf("delta 2e-3 for 10 records: %s\n", ff_error_text(&err));

    /* The budget check refuses, spends nothing and names both. */
    c.delta = 1e-3;
    ledger_path(path, sizeof path, "delta.json");
    assert_int_equal(ff_site_ledger_load(&l, path, "s", &err), FF_OK);
    assert_int_equal(ff_site_dp_check(&l, &c, 1, 1, 6400, PARAMS, &r, &err),
                     FF_OK);
    printf("round refused: %s\n", r.reason);
    assert_true(r.refuse);
    assert_non_null(strstr(r.reason, "delta 0.001"));
    assert_non_null(strstr(r.reason, "6400 records"));
    assert_int_equal(l.n, 0);
    c.delta = 1e-5;
    assert_int_equal(ff_site_dp_check(&l, &c, 1, 1, 6400, PARAMS, &r, &err),
                     FF_OK);
    assert_false(r.refuse);
    ff_site_ledger_cleanup(&l);

    /* fedfuse-site itself, when built: exit 2 naming delta. */
    if (bin == NULL)
        return;
    snprintf(cmd, sizeof cmd, "%s/fedfuse-site --delta 0.5 2>&1 | grep -q "
             "\"delta: '0.5' is not a number in 1e-300..0.001\"", bin);
    assert_int_equal(system(cmd), 0);
    printf("fedfuse-site --delta 0.5: refused by the command line\n");
}

/* ---- accounting cost ---- */

/* A 5000-round ledger over three settings loads and evaluates in well
 * under a second, and its epsilon equals an independent accountant fed
 * each setting's total steps; a 40-round ledger equals an independent
 * round-by-round accountant. */
static void long_ledger_is_fast(void **state)
{
    static const double qs[3] = {0.01, 0.01, 0.02};
    static const double ses[3] = {1.09, 0.95, 1.09};
    enum { ROUNDS = 5000 };
    char path[128];
    size_t cap = (size_t)ROUNDS * 260 + 1024, len = 0;
    char *text = malloc(cap);
    int64_t total[3] = {0, 0, 0};
    ff_privacy_error pe = {0};
    ff_accountant a;
    ff_site_ledger l;
    ff_error err = {0};
    double eps = 0.0, want = 0.0, t0, secs, d;
    int k, g;

    (void)state;
    assert_non_null(text);
    len += (size_t)snprintf(text + len, cap - len,
                            "{\"format\": \"fedfuse-site-privacy-ledger\", "
                            "\"version\": 1, \"site\": \"s\", \"plan\": "
                            "null, \"rounds\": [");
    for (k = 0; k < ROUNDS; k++) {
        int64_t steps = 50 + k % 7;
        g = k % 11 == 0 ? 2 : k % 2;
        total[g] += steps;
        len += (size_t)snprintf(
            text + len, cap - len,
            "%s{\"round\": %d, \"q\": %.17g, \"noise_multiplier\": 1.2, "
            "\"sigma_eff\": %.17g, \"clip\": 1, \"steps\": %lld, "
            "\"epsilon\": 1, \"delta\": 1e-5, \"at\": "
            "\"2026-01-01T00:00:00Z\"}", k ? ", " : "", k + 1, qs[g],
            ses[g], (long long)steps);
        assert_true(len < cap);
    }
    snprintf(text + len, cap - len, "]}");
    ledger_path(path, sizeof path, "long.json");
    write_file(path, text);
    free(text);

    /* Load and evaluate, timed. */
    t0 = now_s();
    assert_int_equal(ff_site_ledger_load(&l, path, "s", &err), FF_OK);
    assert_int_equal(ff_site_ledger_epsilon(&l, NULL, 1e-5, &eps, &err),
                     FF_OK);
    secs = now_s() - t0;
    assert_int_equal(l.n, ROUNDS);

    /* Independently: each setting once with its total steps. */
    assert_int_equal(ff_accountant_init_grid(&a, FF_ACCT_GRID_DEFAULT, &pe),
                     FF_PRIVACY_OK);
    for (g = 0; g < 3; g++)
        assert_int_equal(ff_accountant_add_gaussian(&a, qs[g], ses[g],
                                                    total[g], &pe),
                         FF_PRIVACY_OK);
    assert_int_equal(ff_accountant_epsilon(&a, 1e-5, FF_ACCT_CONV_NEW, &want,
                                           NULL, &pe), FF_PRIVACY_OK);
    d = fabs(eps - want) / want;
    printf("%d-round ledger: loaded and evaluated in %.4f s (bound 0.5 s); "
           "epsilon %.6g, relative difference %g (tolerance 1e-12)\n",
           ROUNDS, secs, eps, d);
    assert_true(secs < 0.5);
    assert_true(d <= 1e-12);

    /* Grouping equals composing round by round (first 40 rounds). */
    l.n = 40;
    assert_int_equal(ff_site_ledger_epsilon(&l, NULL, 1e-5, &eps, &err),
                     FF_OK);
    assert_int_equal(ff_accountant_init_grid(&a, FF_ACCT_GRID_DEFAULT, &pe),
                     FF_PRIVACY_OK);
    for (k = 0; k < 40; k++)
        assert_int_equal(ff_accountant_add_gaussian(&a, l.rounds[k].q,
                                                    l.rounds[k].sigma_eff,
                                                    l.rounds[k].steps, &pe),
                         FF_PRIVACY_OK);
    assert_int_equal(ff_accountant_epsilon(&a, 1e-5, FF_ACCT_CONV_NEW, &want,
                                           NULL, &pe), FF_PRIVACY_OK);
    d = fabs(eps - want) / want;
    printf("40 rounds grouped vs round by round: epsilon %.9g vs %.9g, "
           "relative difference %g (tolerance 1e-12)\n", eps, want, d);
    assert_true(d <= 1e-12);
    ff_site_ledger_cleanup(&l);
}

/* ---- the budget check ---- */

static ff_site_privacy_config config_fixed(double budget)
{
    ff_site_privacy_config c;

    ff_site_privacy_config_default(&c);
    c.epsilon_budget = budget;
    c.noise_multiplier = 1.1;
    c.batch = 64;
    return c;
}

/* Runs checks and records until a refusal; returns the rounds spent. */
static int spend_until_refused(const ff_site_privacy_config *c,
                               const char *name, int max_rounds,
                               ff_site_ledger *l)
{
    char path[128];
    ff_site_dp_round r;
    ff_error err = {0};
    int k;

    ledger_path(path, sizeof path, name);
    assert_int_equal(ff_site_ledger_load(l, path, "s", &err), FF_OK);
    for (k = 1; k <= max_rounds; k++) {
        assert_int_equal(ff_site_dp_check(l, c, k, 2, 6400, PARAMS, &r,
                                          &err), FF_OK);
        if (r.refuse)
            break;
        assert_int_equal(ff_site_dp_record(l, &r, (long)r.steps, &err),
                         FF_OK);
    }
    return k - 1;
}

/* The check refuses exactly when the next round would exceed the budget,
 * as an independent accountant computes it; at a budget equal to the
 * epsilon of K rounds, K rounds pass and round K + 1 is refused. */
static void budget_check_is_exact(void **state)
{
    const double q = 64.0 / 6400.0;
    const int64_t steps = 2 * 100;
    double se = sigma_eff_indep(1.1, 1.0, PARAMS), eps5, worst = 0.0;
    ff_site_privacy_config c;
    ff_site_ledger l;
    ff_site_dp_round r;
    ff_error err = {0};
    int k, spent;

    (void)state;
    eps5 = eps_indep(q, se, steps, 5, 1e-5);

    /* Budget exactly the 5-round epsilon: 5 rounds, then refusals. */
    c = config_fixed(eps5);
    spent = spend_until_refused(&c, "exact.json", 20, &l);
    printf("budget %.17g: %d rounds spent (expected 5)\n", eps5, spent);
    assert_int_equal(spent, 5);
    for (k = 0; k < (int)l.n; k++) {
        double want = eps_indep(q, se, steps, k + 1, 1e-5);
        double d = fabs(l.rounds[k].epsilon - want);
        if (d > worst)
            worst = d;
    }
    printf("recorded epsilon vs independent accountant: largest "
           "difference %g (tolerance 1e-12)\n", worst);
    assert_true(worst <= 1e-12);

    /* The refused round names round, would-be epsilon, budget, delta;
     * asking again refuses again and spends nothing. */
    assert_int_equal(ff_site_dp_check(&l, &c, 6, 2, 6400, PARAMS, &r, &err),
                     FF_OK);
    assert_true(r.refuse);
    printf("refusal: %s\n", r.reason);
    assert_non_null(strstr(r.reason, "round 6"));
    assert_non_null(strstr(r.reason, "budget"));
    assert_non_null(strstr(r.reason, "delta 1e-05"));
    assert_true(fabs(r.epsilon_after - eps_indep(q, se, steps, 6, 1e-5)) <=
                1e-12);
    assert_int_equal(ff_site_dp_check(&l, &c, 7, 2, 6400, PARAMS, &r, &err),
                     FF_OK);
    assert_true(r.refuse);
    assert_int_equal(l.n, 5);
    ff_site_ledger_cleanup(&l);

    /* A hair below: the fifth round is refused. */
    c = config_fixed(eps5 * (1.0 - 1e-9));
    spent = spend_until_refused(&c, "below.json", 20, &l);
    printf("budget %.17g: %d rounds spent (expected 4)\n", c.epsilon_budget,
           spent);
    assert_int_equal(spent, 4);
    ff_site_ledger_cleanup(&l);
}

/* ---- planning ---- */

/* With noise_multiplier 0 the plan spends the budget after planned_rounds
 * rounds (within 1%, never above), round planned_rounds + 1 is refused,
 * and a restarted site keeps the same sigma. */
static void planned_sigma_spends_budget(void **state)
{
    char path[128];
    ff_site_privacy_config c;
    ff_site_ledger l, again;
    ff_site_dp_round r;
    ff_error err = {0};
    double sigma, eps;
    int spent;

    (void)state;
    ff_site_privacy_config_default(&c);
    c.planned_rounds = 10;
    spent = spend_until_refused(&c, "plan.json", 30, &l);
    assert_true(l.plan.set);
    sigma = l.plan.sigma;
    eps = l.rounds[l.n - 1].epsilon;
    printf("planned sigma %.6g (accounted %.6g): %d rounds spent epsilon "
           "%.6g of %g (ratio %.6f, tolerance [0.99, 1])\n", sigma,
           l.plan.sigma_eff, spent, eps, c.epsilon_budget,
           eps / c.epsilon_budget);
    assert_int_equal(spent, 10);
    assert_true(eps <= c.epsilon_budget);
    assert_true(eps >= 0.99 * c.epsilon_budget);
    assert_true(fabs(eps - eps_indep(l.plan.q, sigma_eff_indep(sigma, 1.0,
                                                               PARAMS),
                                     l.plan.steps_per_round, 10, 1e-5)) <=
                1e-12);
    ff_site_ledger_cleanup(&l);

    /* A restart reads the same plan and refuses the same way. */
    snprintf(path, sizeof path, "%s/plan.json", dir);
    assert_int_equal(ff_site_ledger_load(&again, path, "s", &err), FF_OK);
    assert_true(again.plan.sigma == sigma);
    assert_int_equal(again.n, 10);
    assert_int_equal(ff_site_dp_check(&again, &c, 11, 2, 6400, PARAMS, &r,
                                      &err), FF_OK);
    assert_true(r.refuse);
    assert_true(r.sigma == sigma);
    ff_site_ledger_cleanup(&again);

    /* A budget no sigma can meet is a refusal with the reason. */
    c.epsilon_budget = 1e-4;
    ledger_path(path, sizeof path, "tiny.json");
    assert_int_equal(ff_site_ledger_load(&l, path, "s", &err), FF_OK);
    assert_int_equal(ff_site_dp_check(&l, &c, 1, 1, 6400, PARAMS, &r, &err),
                     FF_OK);
    printf("tiny budget: %s\n", r.reason);
    assert_true(r.refuse);
    assert_non_null(strstr(r.reason, "plan"));
    assert_false(l.plan.set);
    ff_site_ledger_cleanup(&l);
}

/* ---- DP-SGD callbacks ---- */

/* The callbacks draw increasing Poisson samples and noise of the std
 * asked for. */
static void dp_sgd_ops_work(void **state)
{
    enum { COUNT = 20000 };
    ff_site_dp_round r;
    ff_dp_sgd dp;
    ff_error err = {0};
    static size_t idx[COUNT];
    static float v[COUNT];
    size_t n = 0, i;
    double sum2 = 0.0, sd;

    (void)state;
    memset(&r, 0, sizeof r);
    r.clip = 0.5;
    r.sigma = 1.3;
    r.q = 0.1;
    ff_site_dp_sgd_init(&dp, &r);
    assert_true(dp.clip == 0.5 && dp.noise_multiplier == 1.3 &&
                dp.sampling_rate == 0.1);
    assert_int_equal(dp.ops.sample(dp.ops.ctx, 0.1, COUNT, idx, &n, &err),
                     FF_OK);
    printf("poisson sample: %zu of %d at q 0.1 (expected 2000 +- 190)\n", n,
           COUNT);
    assert_true(n > 1810 && n < 2190);
    for (i = 1; i < n; i++)
        assert_true(idx[i] > idx[i - 1]);
    assert_int_equal(dp.ops.noise(dp.ops.ctx, v, COUNT, 0.65, &err), FF_OK);
    for (i = 0; i < COUNT; i++)
        sum2 += (double)v[i] * v[i];
    sd = sqrt(sum2 / COUNT);
    printf("noise std %.4f for 0.65 (tolerance 3%%)\n", sd);
    assert_true(fabs(sd - 0.65) < 0.03 * 0.65);
    assert_int_equal(dp.ops.noise(dp.ops.ctx, v, COUNT, NAN, &err),
                     FF_ERR_ARG);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(ledger_round_trip),
        cmocka_unit_test(corrupt_ledger_refused),
        cmocka_unit_test(mutated_ledgers_are_safe),
        cmocka_unit_test(planted_links_not_followed),
        cmocka_unit_test(linked_ledger_refused),
        cmocka_unit_test(fifo_ledger_refused_quickly),
        cmocka_unit_test(second_holder_refused),
        cmocka_unit_test(changed_on_disk_refused),
        cmocka_unit_test(wrong_site_refused),
        cmocka_unit_test(large_delta_refused),
        cmocka_unit_test(long_ledger_is_fast),
        cmocka_unit_test(budget_check_is_exact),
        cmocka_unit_test(planned_sigma_spends_budget),
        cmocka_unit_test(dp_sgd_ops_work),
    };

    if (sodium_init() < 0)
        return 1;
    return cmocka_run_group_tests(tests, setup, teardown);
}
