#include "ctl_run.h"

#include <setjmp.h>
#include <spawn.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

extern char **environ;

char *
ctl_slurp_fd(int fd, size_t *len)
{
    struct stat st;
    char *buf;

    if (fstat(fd, &st) != 0)
        return NULL;
    buf = malloc((size_t)st.st_size + 1);
    if (buf == NULL)
        return NULL;
    if (pread(fd, buf, (size_t)st.st_size, 0) != st.st_size) {
        free(buf);
        return NULL;
    }
    buf[st.st_size] = '\0';
    if (len != NULL)
        *len = (size_t)st.st_size;
    return buf;
}

ctl_run
ctl_run_argv(const char *ctl, const char *db_env, const char *const *args)
{
    ctl_run r = {0};
    char *argv[32], *envp[512];
    char dbvar[1024];
    int n = 0, e = 0;

    /* argv, and the environment with FEDFUSE_DB replaced or removed. */
    argv[n++] = (char *)ctl;
    for (int i = 0; args[i] != NULL && n < 31; i++)
        argv[n++] = (char *)args[i];
    argv[n] = NULL;
    for (char **p = environ; *p && e < 510; p++)
        if (strncmp(*p, "FEDFUSE_DB=", 11) != 0)
            envp[e++] = *p;
    if (db_env != NULL) {
        snprintf(dbvar, sizeof(dbvar), "FEDFUSE_DB=%s", db_env);
        envp[e++] = dbvar;
    }
    envp[e] = NULL;

    /* stdout and stderr into unlinked temporary files. */
    char o[] = "/tmp/ffctl-out-XXXXXX", x[] = "/tmp/ffctl-err-XXXXXX";
    int fo = mkstemp(o), fe = mkstemp(x);
    assert_true(fo >= 0 && fe >= 0);
    unlink(o);
    unlink(x);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fo, 1);
    posix_spawn_file_actions_adddup2(&fa, fe, 2);
    pid_t pid;
    int rc = posix_spawn(&pid, ctl, &fa, NULL, argv, envp);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0)
        fail_msg("cannot run %s: %s", ctl, strerror(rc));

    /* Wait, then collect. */
    int status = 0;
    waitpid(pid, &status, 0);
    r.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128;
    r.out = ctl_slurp_fd(fo, &r.out_len);
    r.err = ctl_slurp_fd(fe, NULL);
    close(fo);
    close(fe);
    assert_non_null(r.out);
    assert_non_null(r.err);
    return r;
}

void
ctl_run_free(ctl_run *r)
{
    free(r->out);
    free(r->err);
}

ctl_run
ctl_run_va(const char *ctl, const char *db_env, const char *const *lead,
           int n_lead, const char *first, va_list ap)
{
    const char *args[CTL_RUN_MAX_ARGS + 1];
    int n = 0;

    for (int i = 0; i < n_lead && n < CTL_RUN_MAX_ARGS; i++)
        args[n++] = lead[i];
    for (const char *a = first; a != NULL && n < CTL_RUN_MAX_ARGS;
         a = va_arg(ap, const char *))
        args[n++] = a;
    args[n] = NULL;
    return ctl_run_argv(ctl, db_env, args);
}

int
ctl_run_locate(char *ctl, size_t cap)
{
    const char *bin = getenv("FEDFUSE_BIN");

    if (bin == NULL || bin[0] == '\0') {
        fprintf(stderr, "FAIL: FEDFUSE_BIN is not set (the folder holding "
                        "fedfusectl; ctest sets it)\n");
        return -1;
    }
    snprintf(ctl, cap, "%s/fedfusectl", bin);
    if (access(ctl, X_OK) != 0) {
        fprintf(stderr, "FAIL: %s is not an executable\n", ctl);
        return -1;
    }
    return 0;
}
