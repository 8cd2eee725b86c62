/*
 * ff_config.h - what every fedfuse program's configuration shares: option
 * values parsed with their range checked, an INI file read through
 * libinih, and command-line flags. Each program keeps its own option
 * table as one ff_config_set_fn.
 *
 * The order is the same everywhere: defaults (the caller's), then the INI
 * file of --config FILE, then every other flag, each overriding the one
 * before. INI keys are the flag names without the leading dashes, with '_'
 * read as '-'.
 *
 * Errors are FF_ERR_CONFIG with a message that names the option (or
 * file:line), unless a function says otherwise. Not thread-safe: the
 * parsers set errno (they are meant for a program's start).
 */
#ifndef FF_CONFIG_H
#define FF_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "ff_status.h"

/*
 * Sets option key (a flag name without its dashes) to value, both
 * borrowed for the call; ctx is the caller's configuration. Returns FF_OK,
 * or an error that names the option (FF_ERR_CONFIG for an unknown key or
 * a bad value).
 */
typedef ff_status (*ff_config_set_fn)(void *ctx, const char *key,
                                      const char *value, ff_error *err);

/* A program's options: where the INI file holds them and how to set one.
 * Borrowed by the functions below. */
typedef struct ff_config_options {
    const char *const *sections; /* INI sections that hold options, NULL
                                    ended; a key elsewhere is an error */
    ff_config_set_fn set;
    void *ctx;                   /* passed to set */
} ff_config_options;

/* Parses v as a whole decimal integer in lo..hi into *out; key names the
 * option in the error. */
FF_MUST_USE ff_status ff_config_parse_int(const char *v, int lo, int hi,
                                          int *out, const char *key,
                                          ff_error *err);

/* Parses v as a finite number in lo..hi into *out. */
FF_MUST_USE ff_status ff_config_parse_double(const char *v, double lo,
                                             double hi, double *out,
                                             const char *key, ff_error *err);

/* Parses v as an unsigned decimal integer (no sign) into *out. */
FF_MUST_USE ff_status ff_config_parse_u64(const char *v, uint64_t *out,
                                          const char *key, ff_error *err);

/* Copies v into dst of cap bytes; an error when it does not fit. */
FF_MUST_USE ff_status ff_config_copy_str(char *dst, size_t cap,
                                         const char *v, const char *key,
                                         ff_error *err);

/* Largest INI file ff_config_ini_load reads (1 MiB). */
#define FF_CONFIG_MAX_BYTES (1024 * 1024)

/*
 * Reads the INI file at path and sets every key of o->sections through
 * o->set. Only a regular file of at most FF_CONFIG_MAX_BYTES is read;
 * anything else (a directory, /dev/zero, a FIFO) is refused before a byte
 * is read. Errors: FF_ERR_IO (cannot open or read), FF_ERR_NOMEM,
 * FF_ERR_CONFIG (not a regular file, over the size cap, a NUL byte, an
 * unknown section, a key over 63 bytes, a syntax error, or what o->set
 * returned, prefixed with path:line).
 */
FF_MUST_USE ff_status ff_config_ini_load(const ff_config_options *o,
                                         const char *path, ff_error *err);

/*
 * Parses argv (argv[0] is the program; "--key value" or "--key=value"):
 * first --help and --config FILE (read with ff_config_ini_load, wherever
 * it appears), then every other flag in order through o->set. Sets *help
 * (else clears it) when --help is given, and then returns without setting
 * any other flag (a --config before it has been read). Errors: those
 * of ff_config_ini_load, FF_ERR_CONFIG (an argument that is not a flag,
 * a flag without its value, or what o->set returned, prefixed with
 * "command line").
 */
/*
 * Checks that addr reads HOST:PORT with a non-empty host and a decimal port
 * in 1..65535 (0 too when allow_zero, meaning "pick a free port"). what
 * names the option in the message. Errors: FF_ERR_CONFIG.
 */
FF_MUST_USE ff_status ff_config_check_address(const char *what,
                                              const char *addr,
                                              int allow_zero, ff_error *err);

FF_MUST_USE ff_status ff_config_args_parse(const ff_config_options *o,
                                           int argc, char **argv, int *help,
                                           ff_error *err);

#endif
