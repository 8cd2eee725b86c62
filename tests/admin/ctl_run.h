/*
 * ctl_run.h - runs the real fedfusectl binary for the admin tests and
 * captures its exit status, stdout and stderr.
 */
#ifndef FF_TEST_CTL_RUN_H
#define FF_TEST_CTL_RUN_H

#include <stdarg.h>
#include <stddef.h>

typedef struct ctl_run {
    int code;       /* exit status; 128 when killed by a signal */
    char *out;      /* stdout, NUL-terminated, malloc'd */
    size_t out_len;
    char *err;      /* stderr, NUL-terminated, malloc'd */
} ctl_run;

/* Reads the whole file behind fd (from offset 0) into a NUL-terminated
 * malloc'd buffer; *len (when not NULL) gets its size. NULL on failure. */
char *ctl_slurp_fd(int fd, size_t *len);

/*
 * Runs ctl with args (NULL-terminated, without argv[0]) in this process's
 * environment, except FEDFUSE_DB: set to db_env, or removed when db_env is
 * NULL. Fails the current cmocka test when the program cannot be run.
 * Free the result with ctl_run_free.
 */
ctl_run ctl_run_argv(const char *ctl, const char *db_env,
                     const char *const *args);

/* Most arguments ctl_run_va passes; later ones are dropped. */
#define CTL_RUN_MAX_ARGS 39

/*
 * Runs ctl (as ctl_run_argv, db_env likewise) with the n_lead arguments of
 * lead (the --db and identity options a test always passes; lead may be
 * NULL when n_lead is 0), then first and the rest of ap up to NULL.
 */
ctl_run ctl_run_va(const char *ctl, const char *db_env,
                   const char *const *lead, int n_lead, const char *first,
                   va_list ap);

/*
 * Writes $FEDFUSE_BIN/fedfusectl into ctl (cap bytes) and checks that it
 * is executable. Returns 0, or -1 after printing why to stderr (for a
 * cmocka group setup).
 */
int ctl_run_locate(char *ctl, size_t cap);

/* Frees what ctl_run_argv allocated. */
void ctl_run_free(ctl_run *r);

#endif
