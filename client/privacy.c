/*
 * privacy.c - the site's record-level privacy: its ledger file (JSON,
 * written atomically), the noise plan, the budget check and the DP-SGD
 * callbacks (docs/site-privacy.md).
 */
#include "ff_site_privacy.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../common/ff_log.h"
#include "../privacy/ff_accountant.h"
#include "../privacy/ff_dp.h"

/* Fixed-point passes of the plan before it gives up on the grid slack. */
#define FF_PLAN_SLACK_PASSES 16

void ff_site_privacy_config_default(ff_site_privacy_config *c)
{
    memset(c, 0, sizeof *c);
    c->dp = 1;
    c->epsilon_budget = 8.0;
    c->delta = 1e-5;
    c->clip = 1.0;
    c->noise_multiplier = 0.0;
    c->planned_rounds = 10;
    c->batch = 64;
}

/* ---- arithmetic ---- */

double ff_site_dp_sigma_eff(double sigma, double clip, uint64_t param_count)
{
    double gamma = ff_dp_grid_step(sigma * clip);

    if (!(sigma > 0.0) || !(clip > 0.0) || gamma <= 0.0)
        return 0.0;
    return sigma * clip /
           (clip + ff_dp_grid_l2_slack(gamma, (size_t)param_count));
}

double ff_site_dp_rate(int batch, size_t records)
{
    double q;

    if (records == 0 || batch < 1)
        return 0.0;
    q = (double)batch / (double)records;
    return q < 1.0 ? q : 1.0;
}

int64_t ff_site_dp_steps(double q, int epochs)
{
    if (!(q > 0.0) || epochs < 1)
        return 0;
    return (int64_t)epochs * (int64_t)llround(1.0 / q);
}

/* ---- the ledger file: reading ---- */

/* Sets a corrupt-ledger error naming the file and what is wrong. */
static ff_status corrupt(ff_error *err, const char *path, const char *what,
                         const char *detail)
{
    return ff_error_set(err, FF_ERR_FORMAT,
                        "privacy ledger %s is corrupt (%s%s%s); the site "
                        "never resets it: restore it from a backup (see "
                        "docs/site-privacy.md)", path, what,
                        detail[0] ? ": " : "", detail);
}

/* A finite number field of o (integers accepted) in [lo, hi]. */
static int num_get(const json_t *o, const char *key, double lo, double hi,
                   double *out)
{
    const json_t *v = json_object_get(o, key);

    if (!json_is_number(v))
        return 0;
    *out = json_number_value(v);
    return isfinite(*out) && *out >= lo && *out <= hi;
}

/* An integer field of o in [lo, hi]. */
static int int_get(const json_t *o, const char *key, json_int_t lo,
                   json_int_t hi, json_int_t *out)
{
    const json_t *v = json_object_get(o, key);

    if (!json_is_integer(v))
        return 0;
    *out = json_integer_value(v);
    return *out >= lo && *out <= hi;
}

/* Reads the plan object; 0 and the bad key in *bad when malformed. */
static int plan_read(const json_t *o, ff_site_dp_plan *p, const char **bad)
{
    json_int_t steps = 0, rounds = 0, params = 0;

    memset(p, 0, sizeof *p);
    if (!json_is_object(o))
        return *bad = "plan", 0;
    if (!num_get(o, "sigma", 1e-300, 1e300, &p->sigma))
        return *bad = "plan.sigma", 0;
    if (!num_get(o, "sigma_eff", 1e-300, p->sigma, &p->sigma_eff))
        return *bad = "plan.sigma_eff", 0;
    if (!num_get(o, "q", 1e-300, 1.0, &p->q))
        return *bad = "plan.q", 0;
    if (!int_get(o, "steps_per_round", 1, INT64_MAX, &steps))
        return *bad = "plan.steps_per_round", 0;
    if (!int_get(o, "planned_rounds", 1, 1000000, &rounds))
        return *bad = "plan.planned_rounds", 0;
    if (!num_get(o, "epsilon_budget", 1e-300, 1e300, &p->epsilon_budget))
        return *bad = "plan.epsilon_budget", 0;
    if (!num_get(o, "delta", 1e-300, 1.0 - 1e-16, &p->delta))
        return *bad = "plan.delta", 0;
    if (!num_get(o, "clip", 1e-300, 1e300, &p->clip))
        return *bad = "plan.clip", 0;
    if (!int_get(o, "param_count", 1, FF_WIRE_MAX_PARAMS, &params))
        return *bad = "plan.param_count", 0;
    p->steps_per_round = (int64_t)steps;
    p->planned_rounds = (int)rounds;
    p->param_count = (uint64_t)params;
    p->set = 1;
    return 1;
}

/* Reads one round entry; 0 and the bad key in *bad when malformed. */
static int round_read(const json_t *o, ff_site_ledger_round *r,
                      const char **bad)
{
    json_int_t round = 0, steps = 0;
    const char *at;

    memset(r, 0, sizeof *r);
    if (!json_is_object(o))
        return *bad = "rounds[]", 0;
    if (!int_get(o, "round", 1, INT32_MAX, &round))
        return *bad = "round", 0;
    if (!num_get(o, "q", 1e-300, 1.0, &r->q))
        return *bad = "q", 0;
    if (!num_get(o, "noise_multiplier", 1e-300, 1e300, &r->noise_multiplier))
        return *bad = "noise_multiplier", 0;
    if (!num_get(o, "sigma_eff", 1e-300, r->noise_multiplier, &r->sigma_eff))
        return *bad = "sigma_eff", 0;
    if (!num_get(o, "clip", 1e-300, 1e300, &r->clip))
        return *bad = "clip", 0;
    if (!int_get(o, "steps", 1, INT64_MAX, &steps))
        return *bad = "steps", 0;
    if (!num_get(o, "epsilon", 0.0, 1e300, &r->epsilon))
        return *bad = "epsilon", 0;
    if (!num_get(o, "delta", 1e-300, 1.0 - 1e-16, &r->delta))
        return *bad = "delta", 0;
    at = json_string_value(json_object_get(o, "at"));
    if (at == NULL || strlen(at) >= sizeof r->at)
        return *bad = "at", 0;
    strcpy(r->at, at);
    r->round = (int)round;
    r->steps = (int64_t)steps;
    return 1;
}

/* Checks the top of the document and fills l from it. */
static ff_status ledger_from_json(ff_site_ledger *l, const json_t *root,
                                  ff_error *err)
{
    const json_t *rounds, *plan, *site;
    const char *fmt, *bad = "";
    json_int_t version = 0;
    size_t i, n;
    char where[64];

    fmt = json_string_value(json_object_get(root, "format"));
    if (!json_is_object(root) || fmt == NULL ||
        strcmp(fmt, FF_SITE_LEDGER_FORMAT) != 0)
        return corrupt(err, l->path, "not a fedfuse site privacy ledger",
                       "");
    if (!int_get(root, "version", FF_SITE_LEDGER_VERSION,
                 FF_SITE_LEDGER_VERSION, &version))
        return corrupt(err, l->path, "unknown version", "");

    /* Whose ledger it is: another site's is never spent from here. An
     * empty id (a ledger saved without one) takes the caller's. */
    site = json_object_get(root, "site");
    if (!json_is_string(site))
        return corrupt(err, l->path, "no site field", "");
    if (json_string_length(site) > 0 &&
        !ff_wire_id_valid(json_string_value(site)))
        return corrupt(err, l->path, "bad field", "site");
    if (json_string_length(site) > 0 && l->site[0] != '\0' &&
        strcmp(json_string_value(site), l->site) != 0)
        return ff_error_set(err, FF_ERR_CONFIG, "privacy ledger %s belongs "
                            "to site '%s', not to this site '%s': give "
                            "this site its own ledger (--ledger) or the "
                            "right --id", l->path, json_string_value(site),
                            l->site);
    if (json_string_length(site) > 0)
        snprintf(l->site, sizeof l->site, "%s", json_string_value(site));

    /* The plan, when one was made. */
    plan = json_object_get(root, "plan");
    if (plan == NULL)
        return corrupt(err, l->path, "no plan field", "");
    if (!json_is_null(plan) && !plan_read(plan, &l->plan, &bad))
        return corrupt(err, l->path, "bad field", bad);

    /* Every round spent, oldest first. */
    rounds = json_object_get(root, "rounds");
    if (!json_is_array(rounds))
        return corrupt(err, l->path, "no rounds array", "");
    n = json_array_size(rounds);
    if (n > FF_SITE_LEDGER_MAX_ROUNDS)
        return corrupt(err, l->path, "too many rounds", "");
    l->rounds = calloc(n > 0 ? n : 1, sizeof *l->rounds);
    if (l->rounds == NULL)
        return ff_error_set(err, FF_ERR_NOMEM, "out of memory for the "
                            "privacy ledger %s", l->path);
    l->cap = n > 0 ? n : 1;
    for (i = 0; i < n; i++) {
        if (!round_read(json_array_get(rounds, i), &l->rounds[i], &bad)) {
            snprintf(where, sizeof where, "rounds[%zu].%s", i, bad);
            return corrupt(err, l->path, "bad field", where);
        }
    }
    l->n = n;
    return FF_OK;
}

/* The stamp of the file fstat or lstat described. */
static void stamp_of(const struct stat *sb, ff_site_ledger_stamp *out)
{
    memset(out, 0, sizeof *out);
    out->exists = 1;
    out->dev = (uint64_t)sb->st_dev;
    out->ino = (uint64_t)sb->st_ino;
    out->size = (int64_t)sb->st_size;
    out->mtime_ns = (int64_t)sb->st_mtim.tv_sec * 1000000000 +
                    (int64_t)sb->st_mtim.tv_nsec;
}

/* What kind of file sb describes, for messages. */
static const char *file_kind(const struct stat *sb)
{
    if (S_ISLNK(sb->st_mode))
        return "a symbolic link";
    if (S_ISFIFO(sb->st_mode))
        return "a FIFO";
    if (S_ISDIR(sb->st_mode))
        return "a directory";
    if (S_ISSOCK(sb->st_mode))
        return "a socket";
    if (S_ISCHR(sb->st_mode) || S_ISBLK(sb->st_mode))
        return "a device";
    return "not a regular file";
}

/* Takes the exclusive lock <path>.lock for the life of l (flock, never
 * waiting): one process, one ledger. */
static ff_status lock_take(ff_site_ledger *l, ff_error *err)
{
    char lock[FF_SITE_PRIVACY_PATH_MAX + 16];
    struct stat sb;
    int fd;

    /* The lock file: created private, never through a link. */
    snprintf(lock, sizeof lock, "%s.lock", l->path);
    fd = open(lock, O_RDWR | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC,
              0600);
    if (fd < 0)
        return ff_error_set(err, FF_ERR_IO, "privacy ledger %s: cannot "
                            "open its lock file %s: %s", l->path, lock,
                            errno == ELOOP ? "it is a symbolic link"
                                           : strerror(errno));
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return ff_error_set(err, FF_ERR_IO, "privacy ledger %s: its lock "
                            "file %s is not a regular file", l->path, lock);
    }

    /* Held by someone else: refuse rather than lose their rounds. */
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        close(fd);
        if (e == EWOULDBLOCK)
            return ff_error_set(err, FF_ERR_STATE, "privacy ledger %s is "
                                "in use: another fedfuse-site process holds "
                                "its lock %s (only one site process may use "
                                "a ledger)", l->path, lock);
        return ff_error_set(err, FF_ERR_IO, "privacy ledger %s: cannot "
                            "lock %s: %s", l->path, lock, strerror(e));
    }
    l->lock_fd = fd;
    l->locked = 1;
    return FF_OK;
}

/* Whether nothing at all exists at path (not even a dangling link). */
static int path_absent(const char *path)
{
    struct stat sb;

    return lstat(path, &sb) != 0 && errno == ENOENT;
}

/* Opens l->path for reading, refusing anything but a bounded regular
 * file; never follows a link and never waits (a FIFO is refused, not
 * read). *f is NULL with FF_OK only when nothing exists at the path.
 * Fills l->stamp. */
static ff_status ledger_open(ff_site_ledger *l, FILE **f, ff_error *err)
{
    const char *path = l->path;
    struct stat sb;
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);

    /* Missing means nothing at the path: a dangling link is refused. */
    *f = NULL;
    if (fd < 0 && errno == ENOENT && path_absent(path))
        return FF_OK;
    if (fd < 0 && errno == ELOOP)
        return ff_error_set(err, FF_ERR_IO, "privacy ledger %s is a "
                            "symbolic link: the site does not follow links "
                            "for its ledger; set ledger to the real file",
                            path);
    if (fd < 0)
        return ff_error_set(err, FF_ERR_IO, "privacy ledger %s: %s", path,
                            strerror(errno));

    /* A bounded regular file only. */
    if (fstat(fd, &sb) != 0) {
        int e = errno;
        close(fd);
        return ff_error_set(err, FF_ERR_IO, "privacy ledger %s: %s", path,
                            strerror(e));
    }
    if (!S_ISREG(sb.st_mode)) {
        close(fd);
        return ff_error_set(err, FF_ERR_IO, "privacy ledger %s is %s, not "
                            "a regular file: the site refuses it", path,
                            file_kind(&sb));
    }
    if (sb.st_size > FF_SITE_LEDGER_MAX_BYTES) {
        close(fd);
        return corrupt(err, path, "larger than 64 MiB", "");
    }
    stamp_of(&sb, &l->stamp);
    *f = fdopen(fd, "rb");
    if (*f == NULL) {
        close(fd);
        return ff_error_set(err, FF_ERR_IO, "privacy ledger %s: %s", path,
                            strerror(errno));
    }
    return FF_OK;
}

/* Parses the open ledger file f (closing it) into l. */
static ff_status ledger_parse(ff_site_ledger *l, FILE *f, ff_error *err)
{
    json_error_t jerr;
    json_t *root = json_loadf(f, JSON_REJECT_DUPLICATES, &jerr);
    ff_status st;

    fclose(f);
    if (root == NULL) {
        char detail[200];
        snprintf(detail, sizeof detail, "line %d: %s", jerr.line, jerr.text);
        return corrupt(err, l->path, "not valid JSON", detail);
    }
    st = ledger_from_json(l, root, err);
    json_decref(root);
    return st;
}

ff_status ff_site_ledger_load(ff_site_ledger *l, const char *path,
                              const char *site, ff_error *err)
{
    FILE *f = NULL;
    ff_status st;

    memset(l, 0, sizeof *l);
    if (strlen(path) >= sizeof l->path - 16 || path[0] == '\0')
        return ff_error_set(err, FF_ERR_ARG, "privacy ledger path '%s' is "
                            "empty or too long", path);
    strcpy(l->path, path);
    snprintf(l->site, sizeof l->site, "%s", site != NULL ? site : "");

    /* Locked first, so that no other site process writes while we read;
     * then open strictly and parse. */
    st = lock_take(l, err);
    if (st == FF_OK)
        st = ledger_open(l, &f, err);
    if (st == FF_OK && f != NULL)
        st = ledger_parse(l, f, err);
    else if (st == FF_OK)
        FF_WARN("privacy: starting a new privacy ledger at %s: no spend "
                "recorded", l->path);
    if (st != FF_OK)
        ff_site_ledger_cleanup(l);
    return st;
}

void ff_site_ledger_cleanup(ff_site_ledger *l)
{
    if (l == NULL)
        return;
    free(l->rounds);
    if (l->locked)
        close(l->lock_fd); /* releases the flock */
    memset(l, 0, sizeof *l);
}

ff_status ff_site_ledger_unchanged(const ff_site_ledger *l, ff_error *err)
{
    ff_site_ledger_stamp now;
    const char *what = NULL;
    struct stat sb;

    /* What is at the path now, compared with what we last saw. */
    int absent = lstat(l->path, &sb) != 0;

    if (absent && errno != ENOENT)
        return ff_error_set(err, FF_ERR_IO, "privacy ledger %s: %s",
                            l->path, strerror(errno));
    if (absent) {
        if (l->stamp.exists)
            what = "it was removed";
    } else if (!l->stamp.exists) {
        what = "a file appeared where the site started a new ledger";
    } else if (!S_ISREG(sb.st_mode)) {
        what = S_ISLNK(sb.st_mode) ? "it became a symbolic link"
                                   : "it is no longer a regular file";
    } else {
        stamp_of(&sb, &now);
        if (now.dev != l->stamp.dev || now.ino != l->stamp.ino)
            what = "it was replaced by another file";
        else if (now.size != l->stamp.size ||
                 now.mtime_ns != l->stamp.mtime_ns)
            what = "it was modified";
    }
    if (what == NULL)
        return FF_OK;
    return ff_error_set(err, FF_ERR_STATE, "privacy ledger %s changed on "
                        "disk since this site read or wrote it (%s); it was "
                        "not overwritten and no round is trained: stop the "
                        "site, decide which ledger is right (only one "
                        "fedfuse-site may use a ledger) and restart",
                        l->path, what);
}

/* ---- the ledger file: writing ---- */

/* Builds the plan object (or null). */
static json_t *plan_json(const ff_site_dp_plan *p)
{
    if (!p->set)
        return json_null();
    return json_pack("{s:f, s:f, s:f, s:I, s:i, s:f, s:f, s:f, s:I}",
                     "sigma", p->sigma, "sigma_eff", p->sigma_eff, "q", p->q,
                     "steps_per_round", (json_int_t)p->steps_per_round,
                     "planned_rounds", p->planned_rounds, "epsilon_budget",
                     p->epsilon_budget, "delta", p->delta, "clip", p->clip,
                     "param_count", (json_int_t)p->param_count);
}

/* Builds the whole document; NULL when out of memory. */
static json_t *ledger_json(const ff_site_ledger *l)
{
    json_t *root, *rounds;
    size_t i;

    rounds = json_array();
    root = json_pack("{s:s, s:i, s:s, s:o, s:o}", "format",
                     FF_SITE_LEDGER_FORMAT, "version", FF_SITE_LEDGER_VERSION,
                     "site", l->site, "plan", plan_json(&l->plan), "rounds",
                     rounds);
    if (root == NULL)
        return NULL;
    for (i = 0; i < l->n; i++) {
        const ff_site_ledger_round *r = &l->rounds[i];
        json_t *o = json_pack(
            "{s:i, s:s, s:f, s:f, s:f, s:f, s:I, s:f, s:f, s:s}", "round",
            r->round, "mechanism", "dp-sgd", "q", r->q, "noise_multiplier",
            r->noise_multiplier, "sigma_eff", r->sigma_eff, "clip", r->clip,
            "steps", (json_int_t)r->steps, "epsilon", r->epsilon, "delta",
            r->delta, "at", r->at);
        if (o == NULL || json_array_append_new(rounds, o) != 0) {
            json_decref(root);
            return NULL;
        }
    }
    return root;
}

/* Writes all of text to fd and flushes it to the disk. */
static int write_synced(int fd, const char *text)
{
    size_t len = strlen(text), off = 0;

    while (off < len) {
        ssize_t w = write(fd, text + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        off += (size_t)w;
    }
    return fsync(fd);
}

/* Flushes the directory that holds path, so that the rename lasts; a
 * failure is logged (the new ledger is in place either way). */
static void dir_sync(const char *path)
{
    char dir[FF_SITE_PRIVACY_PATH_MAX];
    const char *slash = strrchr(path, '/');
    int fd;

    if (slash == NULL)
        snprintf(dir, sizeof dir, ".");
    else if (slash == path)
        snprintf(dir, sizeof dir, "/");
    else
        snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
    fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0 || fsync(fd) != 0)
        FF_WARN("privacy: cannot flush directory %s after writing the "
                "ledger: %s", dir, strerror(errno));
    if (fd >= 0)
        close(fd);
}

/* Writes text to a new temporary file beside l->path (name in tmp,
 * which holds the mkstemp template): created exclusively with mode 0600,
 * written, synced and closed; its stamp in *stamp. */
static ff_status tmp_write(const ff_site_ledger *l, const char *text,
                           char *tmp, ff_site_ledger_stamp *stamp,
                           ff_error *err)
{
    ff_status st = FF_OK;
    struct stat sb;
    int fd = mkstemp(tmp);

    if (fd < 0)
        return ff_error_set(err, FF_ERR_IO, "privacy ledger %s: cannot "
                            "create a temporary file %s: %s", l->path, tmp,
                            strerror(errno));
    (void)fcntl(fd, F_SETFD, FD_CLOEXEC);
    if (fchmod(fd, 0600) != 0 || write_synced(fd, text) != 0 ||
        fstat(fd, &sb) != 0)
        st = ff_error_set(err, FF_ERR_IO, "privacy ledger %s: cannot "
                          "write %s: %s", l->path, tmp, strerror(errno));
    if (close(fd) != 0 && st == FF_OK)
        st = ff_error_set(err, FF_ERR_IO, "privacy ledger %s: cannot "
                          "close %s: %s", l->path, tmp, strerror(errno));
    if (st == FF_OK)
        stamp_of(&sb, stamp);
    else
        unlink(tmp);
    return st;
}

ff_status ff_site_ledger_save(ff_site_ledger *l, ff_error *err)
{
    char tmp[FF_SITE_PRIVACY_PATH_MAX + 16];
    ff_site_ledger_stamp stamp;
    json_t *root;
    char *text = NULL;
    ff_status st;

    /* Never over a ledger someone else changed since we saw it. */
    st = ff_site_ledger_unchanged(l, err);
    if (st != FF_OK)
        return st;

    /* The document, then a new temporary file beside the ledger. */
    root = ledger_json(l);
    if (root != NULL)
        text = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(root);
    if (text == NULL)
        return ff_error_set(err, FF_ERR_NOMEM, "out of memory writing the "
                            "privacy ledger %s", l->path);
    snprintf(tmp, sizeof tmp, "%s.tmp.XXXXXX", l->path);
    st = tmp_write(l, text, tmp, &stamp, err);
    free(text);

    /* Renamed over the old ledger, and the directory flushed. */
    if (st == FF_OK && rename(tmp, l->path) != 0) {
        st = ff_error_set(err, FF_ERR_IO, "privacy ledger %s: cannot "
                          "rename %s over it: %s", l->path, tmp,
                          strerror(errno));
        unlink(tmp);
    }
    if (st == FF_OK) {
        dir_sync(l->path);
        l->stamp = stamp;
    }
    return st;
}

ff_status ff_site_ledger_append(ff_site_ledger *l,
                                const ff_site_ledger_round *r, ff_error *err)
{
    ff_status st;

    if (l->n >= FF_SITE_LEDGER_MAX_ROUNDS)
        return ff_error_set(err, FF_ERR_TOO_LARGE, "privacy ledger %s "
                            "holds %d rounds, the most it may",
                            l->path, FF_SITE_LEDGER_MAX_ROUNDS);
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 16;
        ff_site_ledger_round *grown = realloc(l->rounds, cap * sizeof *grown);
        if (grown == NULL)
            return ff_error_set(err, FF_ERR_NOMEM, "out of memory");
        l->rounds = grown;
        l->cap = cap;
    }
    l->rounds[l->n++] = *r;
    st = ff_site_ledger_save(l, err);
    if (st != FF_OK)
        l->n--;
    return st;
}

/* ---- accounting ---- */

/* Rounds of one setting: RDP composes additively, so rounds with equal
 * (q, sigma_eff) are one Gaussian of their summed steps. */
typedef struct acct_group {
    double q, sigma_eff;
    int64_t steps;
    int round;               /* the first round of the setting, for errors */
} acct_group;

/* Orders groups by (q, sigma_eff). */
static int group_cmp(const void *pa, const void *pb)
{
    const acct_group *a = pa, *b = pb;

    if (a->q != b->q)
        return a->q < b->q ? -1 : 1;
    if (a->sigma_eff != b->sigma_eff)
        return a->sigma_eff < b->sigma_eff ? -1 : 1;
    return 0;
}

/* Sorts g[0..n) and merges equal settings in place (steps add, capped at
 * INT64_MAX, where epsilon is unbounded anyway); returns the count. */
static size_t groups_merge(acct_group *g, size_t n)
{
    size_t out = 0, i;

    if (n == 0)
        return 0;
    qsort(g, n, sizeof *g, group_cmp);
    for (i = 1; i < n; i++) {
        if (group_cmp(&g[out], &g[i]) != 0) {
            g[++out] = g[i];
            continue;
        }
        g[out].steps = g[i].steps > INT64_MAX - g[out].steps
                           ? INT64_MAX
                           : g[out].steps + g[i].steps;
        if (g[i].round < g[out].round)
            g[out].round = g[i].round;
    }
    return out + 1;
}

/* Adds one group to acct. */
static ff_status acct_add(ff_accountant *acct, const acct_group *g,
                          ff_error *err)
{
    ff_privacy_error pe = {0};

    if (ff_accountant_add_gaussian(acct, g->q, g->sigma_eff, g->steps, &pe) !=
        FF_PRIVACY_OK)
        return ff_error_set(err, FF_ERR_ARG, "accounting q %g, sigma_eff "
                            "%g (from round %d): %s", g->q, g->sigma_eff,
                            g->round, ff_privacy_error_text(&pe));
    return FF_OK;
}

/* One group per round of l, plus next (malloc'd; *n entries). */
static acct_group *groups_of(const ff_site_ledger *l,
                             const ff_site_ledger_round *next, size_t *n)
{
    acct_group *g = malloc((l->n + 1) * sizeof *g);
    size_t i;

    *n = 0;
    if (g == NULL)
        return NULL;
    for (i = 0; i <= l->n; i++) {
        const ff_site_ledger_round *r = i < l->n ? &l->rounds[i] : next;
        if (r == NULL)
            continue;
        g[*n].q = r->q;
        g[*n].sigma_eff = r->sigma_eff;
        g[*n].steps = r->steps;
        g[*n].round = r->round;
        (*n)++;
    }
    *n = groups_merge(g, *n);
    return g;
}

ff_status ff_site_ledger_epsilon(const ff_site_ledger *l,
                                 const ff_site_ledger_round *next,
                                 double delta, double *eps, ff_error *err)
{
    ff_privacy_error pe = {0};
    ff_accountant acct;
    acct_group *g = NULL;
    ff_status st = FF_OK;
    size_t i, n = 0;

    *eps = 0.0;
    if (l->n == 0 && next == NULL)
        return FF_OK;
    if (ff_accountant_init_grid(&acct, FF_ACCT_GRID_DEFAULT, &pe) !=
        FF_PRIVACY_OK)
        return ff_error_set(err, FF_ERR_INTERNAL, "accountant: %s",
                            ff_privacy_error_text(&pe));

    /* Each distinct setting once, with the steps of all its rounds. */
    g = groups_of(l, next, &n);
    if (g == NULL)
        return ff_error_set(err, FF_ERR_NOMEM, "out of memory accounting "
                            "the privacy ledger %s", l->path);
    for (i = 0; i < n && st == FF_OK; i++)
        st = acct_add(&acct, &g[i], err);
    free(g);
    if (st != FF_OK)
        return st;
    if (ff_accountant_epsilon(&acct, delta, FF_ACCT_CONV_NEW, eps, NULL,
                              &pe) != FF_PRIVACY_OK)
        return ff_error_set(err, FF_ERR_ARG, "epsilon at delta %g: %s",
                            delta, ff_privacy_error_text(&pe));
    return FF_OK;
}

/* ---- planning ---- */

/* The epsilon of `rounds` rounds of (q, sigma_eff, steps). */
static ff_status plan_epsilon(double q, double sigma_eff, int64_t steps,
                              int rounds, double delta, double *eps,
                              ff_error *err)
{
    ff_privacy_error pe = {0};
    ff_accountant acct;

    if (ff_accountant_init_grid(&acct, FF_ACCT_GRID_DEFAULT, &pe) !=
            FF_PRIVACY_OK ||
        ff_accountant_add_gaussian(&acct, q, sigma_eff, steps * rounds,
                                   &pe) != FF_PRIVACY_OK ||
        ff_accountant_epsilon(&acct, delta, FF_ACCT_CONV_NEW, eps, NULL,
                              &pe) != FF_PRIVACY_OK)
        return ff_error_set(err, FF_ERR_ARG, "checking the plan: %s",
                            ff_privacy_error_text(&pe));
    return FF_OK;
}

ff_status ff_site_dp_plan_make(const ff_site_privacy_config *c, double q,
                               int64_t steps_per_round, uint64_t param_count,
                               ff_site_dp_plan *plan, ff_error *err)
{
    double orders[FF_ACCT_MAX_ORDERS], target = 0.0, sigma, eps = 0.0;
    ff_privacy_error pe = {0};
    size_t n = 0;
    int pass;
    ff_status st;

    memset(plan, 0, sizeof *plan);
    if (!(q > 0.0 && q <= 1.0) || steps_per_round < 1 ||
        c->planned_rounds < 1 || param_count == 0)
        return ff_error_set(err, FF_ERR_ARG, "cannot plan: q %g, %lld "
                            "steps per round, %d rounds", q,
                            (long long)steps_per_round, c->planned_rounds);

    /* The accounted multiplier that spends the budget over the plan. */
    if (ff_acct_grid_fill(FF_ACCT_GRID_DEFAULT, orders, FF_ACCT_MAX_ORDERS,
                          &n, &pe) != FF_PRIVACY_OK ||
        ff_acct_plan_sigma(q, steps_per_round * c->planned_rounds,
                           c->epsilon_budget, c->delta, orders, n,
                           FF_ACCT_CONV_NEW, &target, &pe) != FF_PRIVACY_OK)
        return ff_error_set(err, FF_ERR_ARG, "cannot plan the noise for "
                            "epsilon %g over %d rounds: %s",
                            c->epsilon_budget, c->planned_rounds,
                            ff_privacy_error_text(&pe));

    /* The model's sigma must carry the grid slack on top: raise it until
     * its accounted multiplier reaches the target (the slack is a step
     * function of sigma, so this settles in a few passes). */
    sigma = target;
    for (pass = 0; pass < FF_PLAN_SLACK_PASSES; pass++) {
        double eff = ff_site_dp_sigma_eff(sigma, c->clip, param_count);
        if (eff >= target)
            break;
        sigma = pass < FF_PLAN_SLACK_PASSES / 2
                    ? sigma * target / eff
                    : sigma * (1.0 + 1e-9) * target / eff;
    }
    if (pass == FF_PLAN_SLACK_PASSES)
        return ff_error_set(err, FF_ERR_ARG, "cannot plan: the noise grid "
                            "slack over %llu parameters does not settle",
                            (unsigned long long)param_count);

    /* Checked once more the way the budget check will see it. */
    plan->sigma_eff = ff_site_dp_sigma_eff(sigma, c->clip, param_count);
    st = plan_epsilon(q, plan->sigma_eff, steps_per_round, c->planned_rounds,
                      c->delta, &eps, err);
    if (st != FF_OK)
        return st;
    if (eps > c->epsilon_budget)
        return ff_error_set(err, FF_ERR_ARG, "cannot plan: sigma %g spends "
                            "epsilon %g, above %g", sigma, eps,
                            c->epsilon_budget);
    plan->set = 1;
    plan->sigma = sigma;
    plan->q = q;
    plan->steps_per_round = steps_per_round;
    plan->planned_rounds = c->planned_rounds;
    plan->epsilon_budget = c->epsilon_budget;
    plan->delta = c->delta;
    plan->clip = c->clip;
    plan->param_count = param_count;
    return FF_OK;
}

/* ---- the budget check ---- */

ff_status ff_site_privacy_delta_check(const ff_site_privacy_config *c,
                                      size_t records, ff_error *err)
{
    if (!(c->delta > 0.0) || c->delta > FF_SITE_DELTA_MAX)
        return ff_error_set(err, FF_ERR_CONFIG, "delta %g is outside "
                            "(0, %g]", c->delta, FF_SITE_DELTA_MAX);
    if (records > 0 && c->delta >= 1.0 / (double)records)
        return ff_error_set(err, FF_ERR_CONFIG, "delta %g is not below 1 / "
                            "records = %g for this site's %zu records: such "
                            "a delta allows releasing a whole record; set "
                            "delta below %g", c->delta,
                            1.0 / (double)records, records,
                            1.0 / (double)records);
    return FF_OK;
}

/* The multiplier of this round: configured, planned, or newly planned
 * (saved and logged). An infeasible plan refuses the round. */
static ff_status sigma_choose(ff_site_ledger *l,
                              const ff_site_privacy_config *c,
                              ff_site_dp_round *out, uint64_t param_count,
                              ff_error *err)
{
    ff_site_dp_plan plan;
    ff_error pe = {0};
    ff_status st;

    if (c->noise_multiplier > 0.0) {
        out->sigma = c->noise_multiplier;
        return FF_OK;
    }
    if (l->plan.set) {
        out->sigma = l->plan.sigma;
        return FF_OK;
    }

    /* No plan yet: make it, and keep it before anything is trained. */
    if (ff_site_dp_plan_make(c, out->q, out->steps, param_count, &plan,
                             &pe) != FF_OK) {
        out->refuse = 1;
        snprintf(out->reason, sizeof out->reason,
                 "no usable noise plan (budget %g): %s", c->epsilon_budget,
                 ff_error_text(&pe));
        out->epsilon_after = out->epsilon_before;
        return FF_OK;
    }
    l->plan = plan;
    st = ff_site_ledger_save(l, err);
    if (st != FF_OK) {
        memset(&l->plan, 0, sizeof l->plan);
        return st;
    }
    out->sigma = plan.sigma;
    FF_INFO("privacy: planned noise multiplier %.4g (accounted %.4g) so "
            "that %d rounds of %lld steps at q %.4g spend epsilon %g "
            "(delta %g); kept in %s", plan.sigma, plan.sigma_eff,
            plan.planned_rounds, (long long)plan.steps_per_round, plan.q,
            plan.epsilon_budget, plan.delta, l->path);
    return FF_OK;
}

ff_status ff_site_dp_check(ff_site_ledger *l, const ff_site_privacy_config *c,
                           int round, int epochs, size_t records,
                           uint64_t param_count, ff_site_dp_round *out,
                           ff_error *err)
{
    ff_site_ledger_round next;
    ff_error derr = {0};
    ff_status st;

    /* This round's sampling and length. */
    memset(out, 0, sizeof *out);
    if (epochs < 1 || records == 0 || param_count == 0 || round < 1)
        return ff_error_set(err, FF_ERR_ARG, "privacy check: round %d, %d "
                            "epochs, %zu records, %llu parameters", round,
                            epochs, records,
                            (unsigned long long)param_count);
    out->round = round;
    out->q = ff_site_dp_rate(c->batch, records);
    out->steps = ff_site_dp_steps(out->q, epochs);
    out->clip = c->clip;
    out->delta = c->delta;
    out->budget = c->epsilon_budget;

    /* The ledger must still be the file we read; then what is spent so
     * far. A delta too large for these records refuses the round. */
    st = ff_site_ledger_unchanged(l, err);
    if (st == FF_OK)
        st = ff_site_ledger_epsilon(l, NULL, c->delta, &out->epsilon_before,
                                    err);
    if (st != FF_OK)
        return st;
    if (ff_site_privacy_delta_check(c, records, &derr) != FF_OK) {
        out->refuse = 1;
        out->epsilon_after = out->epsilon_before;
        snprintf(out->reason, sizeof out->reason, "%s", ff_error_text(&derr));
        return FF_OK;
    }

    /* This round's noise, then what the ledger would say with it. */
    st = sigma_choose(l, c, out, param_count, err);
    if (st != FF_OK || out->refuse)
        return st;
    out->sigma_eff = ff_site_dp_sigma_eff(out->sigma, c->clip, param_count);
    memset(&next, 0, sizeof next);
    next.round = round;
    next.q = out->q;
    next.noise_multiplier = out->sigma;
    next.sigma_eff = out->sigma_eff;
    next.clip = c->clip;
    next.steps = out->steps;
    st = ff_site_ledger_epsilon(l, &next, c->delta, &out->epsilon_after, err);
    if (st != FF_OK)
        return st;
    if (out->epsilon_after > c->epsilon_budget) {
        out->refuse = 1;
        snprintf(out->reason, sizeof out->reason,
                 "privacy budget exhausted: round %d would bring epsilon to "
                 "%.4g, above the site's budget %g (delta %g; %.4g spent "
                 "so far)", round, out->epsilon_after, c->epsilon_budget,
                 c->delta, out->epsilon_before);
    }
    return FF_OK;
}

/* The current UTC time as ISO 8601. */
static void utc_now(char *buf, size_t cap)
{
    time_t t = time(NULL);
    struct tm tm;

    gmtime_r(&t, &tm);
    strftime(buf, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

ff_status ff_site_dp_record(ff_site_ledger *l, ff_site_dp_round *r,
                            long steps_taken, ff_error *err)
{
    ff_site_ledger_round e;
    ff_status st;

    /* More steps than planned (should not happen) are accounted too. */
    if (steps_taken > r->steps)
        r->steps = steps_taken;
    memset(&e, 0, sizeof e);
    e.round = r->round;
    e.q = r->q;
    e.noise_multiplier = r->sigma;
    e.sigma_eff = r->sigma_eff;
    e.clip = r->clip;
    e.steps = r->steps;
    e.delta = r->delta;
    utc_now(e.at, sizeof e.at);
    st = ff_site_ledger_epsilon(l, &e, r->delta, &r->epsilon_after, err);
    if (st != FF_OK)
        return st;
    e.epsilon = r->epsilon_after;
    return ff_site_ledger_append(l, &e, err);
}

void ff_site_dp_header_fill(ff_wire_update_header *h,
                            const ff_site_dp_round *r)
{
    snprintf(h->dp_mechanism, sizeof h->dp_mechanism, "dp-sgd");
    h->dp_epsilon = isfinite(r->epsilon_after) ? r->epsilon_after
                                               : FF_SITE_DP_EPSILON_WIRE_MAX;
    h->dp_delta = r->delta;
    h->dp_epsilon_budget = r->budget;
    h->dp_noise_multiplier = r->sigma_eff;
    h->dp_clip = r->clip;
    h->dp_sampling_rate = r->q;
    h->dp_steps = r->steps > 0 ? (uint64_t)r->steps : 0;
    h->refused = r->refuse;
    if (r->refuse)
        snprintf(h->refusal, sizeof h->refusal, "%s", r->reason);
}

/* ---- DP-SGD callbacks ---- */

/* ff_dp_sgd_ops.sample: Poisson sampling from libsodium's CSPRNG. */
static ff_status dp_sample(void *ctx, double q, size_t count, size_t *idx,
                           size_t *n, ff_error *err)
{
    ff_privacy_error pe = {0};

    (void)ctx;
    if (ff_dp_poisson_sample(q, count, idx, n, &pe) != FF_PRIVACY_OK)
        return ff_error_set(err, FF_ERR_ARG, "dp-sgd sampling: %s",
                            ff_privacy_error_text(&pe));
    return FF_OK;
}

/* ff_dp_sgd_ops.noise: discretised Gaussian noise on the grid. */
static ff_status dp_noise(void *ctx, float *v, size_t n, double std,
                          ff_error *err)
{
    ff_privacy_error pe = {0};

    (void)ctx;
    if (ff_dp_noise_add(v, n, std, NULL, &pe) != FF_PRIVACY_OK)
        return ff_error_set(err, FF_ERR_ARG, "dp-sgd noise: %s",
                            ff_privacy_error_text(&pe));
    return FF_OK;
}

void ff_site_dp_sgd_init(ff_dp_sgd *dp, const ff_site_dp_round *r)
{
    memset(dp, 0, sizeof *dp);
    dp->clip = r->clip;
    dp->noise_multiplier = r->sigma;
    dp->sampling_rate = r->q;
    dp->ops.sample = dp_sample;
    dp->ops.noise = dp_noise;
    dp->ops.ctx = NULL;
}
