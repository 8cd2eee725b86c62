/* Tests for the shared configuration helpers: values, INI files, flags. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "ff_config.h"

/* A small option table: two strings and a number, with a log of keys. */
typedef struct opts {
    char name[8];
    char path[32];
    int count;
    char seen[256];
} opts;

static ff_status opts_set(void *ctx, const char *key, const char *value,
                          ff_error *err)
{
    opts *o = ctx;

    strncat(o->seen, key, sizeof o->seen - strlen(o->seen) - 2);
    strcat(o->seen, ",");
    if (strcmp(key, "name") == 0)
        return ff_config_copy_str(o->name, sizeof o->name, value, key, err);
    if (strcmp(key, "the-path") == 0)
        return ff_config_copy_str(o->path, sizeof o->path, value, key, err);
    if (strcmp(key, "count") == 0)
        return ff_config_parse_int(value, 1, 10, &o->count, key, err);
    return ff_error_set(err, FF_ERR_CONFIG, "unknown option '%s'", key);
}

static const char *const sections[] = {"main", "extra", NULL};

/* Writes text to a fresh temporary file; returns its path (static). */
static const char *ini_write(const char *text)
{
    static char path[64];
    FILE *f;
    int fd;

    strcpy(path, "/tmp/ff_test_config_XXXXXX");
    fd = mkstemp(path);
    assert_true(fd >= 0);
    f = fdopen(fd, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    return path;
}

/* Numbers: ranges, trailing junk, non-finite values, signs. */
static void values_are_range_checked(void **state)
{
    ff_error err = {0};
    double d = 0.0;
    uint64_t u = 0;
    int i = 0;

    (void)state;
    assert_int_equal(ff_config_parse_int("7", 1, 10, &i, "k", &err), FF_OK);
    assert_int_equal(i, 7);
    assert_int_equal(ff_config_parse_int("11", 1, 10, &i, "k", &err),
                     FF_ERR_CONFIG);
    assert_string_equal(err.msg, "k: '11' is not an integer in 1..10");
    assert_int_equal(ff_config_parse_int("3x", 1, 10, &i, "k", &err),
                     FF_ERR_CONFIG);
    assert_int_equal(ff_config_parse_int("", 1, 10, &i, "k", &err),
                     FF_ERR_CONFIG);
    assert_int_equal(i, 7);

    assert_int_equal(ff_config_parse_double("0.25", 0, 1, &d, "x", &err),
                     FF_OK);
    assert_true(d == 0.25);
    assert_int_equal(ff_config_parse_double("nan", 0, 1, &d, "x", &err),
                     FF_ERR_CONFIG);
    assert_int_equal(ff_config_parse_double("1e400", 0, 1e308, &d, "x",
                                            &err), FF_ERR_CONFIG);
    assert_int_equal(ff_config_parse_double("1.5", 0, 1, &d, "x", &err),
                     FF_ERR_CONFIG);
    assert_string_equal(err.msg, "x: '1.5' is not a number in 0..1");

    assert_int_equal(ff_config_parse_u64("18446744073709551615", &u, "s",
                                         &err), FF_OK);
    assert_true(u == UINT64_MAX);
    assert_int_equal(ff_config_parse_u64("18446744073709551616", &u, "s",
                                         &err), FF_ERR_CONFIG);
    assert_int_equal(ff_config_parse_u64("-1", &u, "s", &err),
                     FF_ERR_CONFIG);
    assert_string_equal(err.msg, "s: '-1' is not an unsigned integer");
}

/* Strings must fit, terminator included. */
static void strings_must_fit(void **state)
{
    ff_error err = {0};
    char buf[4] = "old";

    (void)state;
    assert_int_equal(ff_config_copy_str(buf, sizeof buf, "abc", "k", &err),
                     FF_OK);
    assert_string_equal(buf, "abc");
    assert_int_equal(ff_config_copy_str(buf, sizeof buf, "abcd", "k", &err),
                     FF_ERR_CONFIG);
    assert_string_equal(err.msg, "k: value longer than 3 bytes");
    assert_string_equal(buf, "abc");
}

/* An INI file sets keys of its sections ('_' read as '-') and names the
 * line of a bad value, an unknown section or a syntax error. */
static void ini_files_set_options(void **state)
{
    opts o;
    ff_config_options co = {sections, opts_set, &o};
    ff_error err = {0};
    const char *p;

    (void)state;
    memset(&o, 0, sizeof o);
    p = ini_write("[main]\nname = abc\n[extra]\nthe_path = /x/y\ncount=3\n");
    assert_int_equal(ff_config_ini_load(&co, p, &err), FF_OK);
    unlink(p);
    assert_string_equal(o.name, "abc");
    assert_string_equal(o.path, "/x/y");
    assert_int_equal(o.count, 3);
    assert_string_equal(o.seen, "name,the-path,count,");

    p = ini_write("[main]\nname = abc\ncount = 99\n");
    assert_int_equal(ff_config_ini_load(&co, p, &err), FF_ERR_CONFIG);
    assert_non_null(strstr(err.msg, ":3: count: '99' is not an integer"));
    unlink(p);

    p = ini_write("[other]\nname = abc\n");
    assert_int_equal(ff_config_ini_load(&co, p, &err), FF_ERR_CONFIG);
    assert_non_null(strstr(err.msg, ":2: unknown section [other]"));
    unlink(p);

    p = ini_write("[main]\nthis line has no equals sign\n");
    assert_int_equal(ff_config_ini_load(&co, p, &err), FF_ERR_CONFIG);
    assert_non_null(strstr(err.msg, ":2: syntax error"));
    unlink(p);

    assert_int_equal(ff_config_ini_load(&co, "/nonexistent/ff.ini", &err),
                     FF_ERR_IO);
}

/* Flags: --config is read first wherever it stands, then the other
 * flags in order; both "--k v" and "--k=v" work. */
static void flags_override_the_file(void **state)
{
    opts o;
    ff_config_options co = {sections, opts_set, &o};
    ff_error err = {0};
    const char *p = ini_write("[main]\nname = file\ncount = 2\n");
    char cfg[80];
    char *argv[] = {"prog", "--name", "flag", "--count=5", cfg, NULL};
    int help = -1;

    (void)state;
    memset(&o, 0, sizeof o);
    snprintf(cfg, sizeof cfg, "--config=%s", p);
    assert_int_equal(ff_config_args_parse(&co, 5, argv, &help, &err), FF_OK);
    unlink(p);
    assert_int_equal(help, 0);
    assert_string_equal(o.name, "flag");
    assert_int_equal(o.count, 5);
    assert_string_equal(o.seen, "name,count,name,count,");
}

/* --help stops parsing; bad flags are named. */
static void flags_help_and_errors(void **state)
{
    opts o;
    ff_config_options co = {sections, opts_set, &o};
    ff_error err = {0};
    char *help_argv[] = {"prog", "--help", "--count", "99", NULL};
    char *pos_argv[] = {"prog", "stray", NULL};
    char *novalue_argv[] = {"prog", "--name", NULL};
    char *bad_argv[] = {"prog", "--count", "0", NULL};
    char *unknown_argv[] = {"prog", "--colour=red", NULL};
    int help = -1;

    (void)state;
    memset(&o, 0, sizeof o);
    assert_int_equal(ff_config_args_parse(&co, 4, help_argv, &help, &err),
                     FF_OK);
    assert_int_equal(help, 1);
    assert_string_equal(o.seen, "");

    assert_int_equal(ff_config_args_parse(&co, 2, pos_argv, &help, &err),
                     FF_ERR_CONFIG);
    assert_string_equal(err.msg, "unexpected argument 'stray'");
    assert_int_equal(help, 0);
    assert_int_equal(ff_config_args_parse(&co, 2, novalue_argv, &help,
                                          &err), FF_ERR_CONFIG);
    assert_string_equal(err.msg, "--name needs a value");
    assert_int_equal(ff_config_args_parse(&co, 3, bad_argv, &help, &err),
                     FF_ERR_CONFIG);
    assert_string_equal(err.msg, "command line: count: '0' is not an "
                                 "integer in 1..10");
    assert_int_equal(ff_config_args_parse(&co, 2, unknown_argv, &help,
                                          &err), FF_ERR_CONFIG);
    assert_string_equal(err.msg, "command line: unknown option 'colour'");
}

/* Only regular files up to 1 MiB are read: a directory, /dev/zero and a
 * FIFO are refused at once (an alarm turns a hang into a failure), and a
 * file over the cap is refused. */
static void ini_files_must_be_small_regular_files(void **state)
{
    opts o;
    ff_config_options co = {sections, opts_set, &o};
    ff_error err = {0};
    char fifo[64];

    (void)state;
    memset(&o, 0, sizeof o);
    alarm(10);
    assert_int_equal(ff_config_ini_load(&co, "/tmp", &err), FF_ERR_CONFIG);
    assert_non_null(strstr(err.msg, "not a regular file"));
    print_message("directory: %s\n", err.msg);
    assert_int_equal(ff_config_ini_load(&co, "/dev/zero", &err),
                     FF_ERR_CONFIG);
    assert_non_null(strstr(err.msg, "not a regular file"));
    print_message("/dev/zero: %s\n", err.msg);
    snprintf(fifo, sizeof fifo, "/tmp/ff_test_fifo_%d", (int)getpid());
    assert_int_equal(mkfifo(fifo, 0600), 0);
    assert_int_equal(ff_config_ini_load(&co, fifo, &err), FF_ERR_CONFIG);
    unlink(fifo);
    assert_non_null(strstr(err.msg, "not a regular file"));
    alarm(0);

    /* Exactly at the cap is read; one byte more is not. */
    char *big = malloc(FF_CONFIG_MAX_BYTES + 2);
    assert_non_null(big);
    memset(big, ';', FF_CONFIG_MAX_BYTES);
    for (size_t i = 99; i < FF_CONFIG_MAX_BYTES; i += 100)
        big[i] = '\n';
    big[FF_CONFIG_MAX_BYTES] = '\0';
    const char *p = ini_write(big);
    assert_int_equal(ff_config_ini_load(&co, p, &err), FF_OK);
    unlink(p);
    big[FF_CONFIG_MAX_BYTES] = '\n';
    big[FF_CONFIG_MAX_BYTES + 1] = '\0';
    p = ini_write(big);
    assert_int_equal(ff_config_ini_load(&co, p, &err), FF_ERR_CONFIG);
    assert_non_null(strstr(err.msg, "larger than 1048576 bytes"));
    print_message("1 MiB + 1: %s\n", err.msg);
    unlink(p);
    free(big);
}

/* HOST:PORT: the port is decimal, 1..65535 (0 only where allowed). */
static void addresses_need_a_port_in_range(void **state)
{
    ff_error err = {0};

    (void)state;
    assert_int_equal(ff_config_check_address("listen", "127.0.0.1:0", 1,
                                             &err), FF_OK);
    assert_int_equal(ff_config_check_address("c", "[::1]:65535", 0, &err),
                     FF_OK);
    assert_int_equal(ff_config_check_address("c", "127.0.0.1:0", 0, &err),
                     FF_ERR_CONFIG);
    assert_int_equal(ff_config_check_address("c", "127.0.0.1:99999", 1,
                                             &err), FF_ERR_CONFIG);
    assert_non_null(strstr(err.msg, "port 99999 is outside"));
    assert_int_equal(ff_config_check_address("c", "127.0.0.1:65536", 1,
                                             &err), FF_ERR_CONFIG);
    assert_int_equal(ff_config_check_address("c", "host", 1, &err),
                     FF_ERR_CONFIG);
    assert_int_equal(ff_config_check_address("c", ":80", 1, &err),
                     FF_ERR_CONFIG);
    assert_int_equal(ff_config_check_address("c", "h:8x", 1, &err),
                     FF_ERR_CONFIG);
    assert_int_equal(ff_config_check_address("c", "h:", 1, &err),
                     FF_ERR_CONFIG);
    assert_non_null(strstr(err.msg, "no decimal port"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(values_are_range_checked),
        cmocka_unit_test(addresses_need_a_port_in_range),
        cmocka_unit_test(strings_must_fit),
        cmocka_unit_test(ini_files_set_options),
        cmocka_unit_test(flags_override_the_file),
        cmocka_unit_test(flags_help_and_errors),
        cmocka_unit_test(ini_files_must_be_small_regular_files),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
