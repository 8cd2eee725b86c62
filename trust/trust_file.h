/*
 * trust_file.h - trust/'s internal file helpers: creating a file that must
 * not exist yet (private keys, certificates) and reading a private key file
 * whose mode keeps it to its owner. Not part of the module's interface.
 */
#ifndef FF_TRUST_FILE_H
#define FF_TRUST_FILE_H

#include <stddef.h>
#include <sys/types.h>

#include "../common/ff_status.h"

/*
 * Creates path holding the len bytes of data with the given mode (0600 for
 * private keys), never overwriting: the bytes go to a temporary file
 * created with O_CREAT|O_EXCL next to path, are synced, and the file is
 * then linked to path, which fails if path exists. So path either does not
 * exist or holds all the bytes. Errors: FF_ERR_STATE (path exists),
 * FF_ERR_IO. Thread-safe.
 */
FF_MUST_USE ff_status ff_trust_file_create(const char *path, const void *data,
                                           size_t len, mode_t mode,
                                           ff_error *err);

/*
 * As ff_trust_file_read, for a file holding a secret: refuses it when its
 * mode gives group or others any access. The caller wipes (sodium_memzero)
 * and frees *out. Errors: FF_ERR_IO, FF_ERR_TOO_LARGE, FF_ERR_FORMAT (the
 * mode). Thread-safe.
 */
FF_MUST_USE ff_status ff_trust_file_read_private(const char *path, char **out,
                                                 size_t *len, ff_error *err);

#endif
