/* Tests for the status type and the error record. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "ff_status.h"

/* Every status has its own non-empty name; out-of-range values too. */
static void
status_names_are_distinct(void **state)
{
    for (int i = 0; i < FF_STATUS_COUNT; i++) {
        const char *a = ff_status_name((ff_status)i);
        assert_non_null(a);
        assert_true(strlen(a) > 0);
        for (int j = 0; j < i; j++)
            assert_string_not_equal(a, ff_status_name((ff_status)j));
    }
    assert_string_equal(ff_status_name((ff_status)999), "unknown status");
}

/* set records status and reason; wrap prefixes context; NULL is allowed. */
static void
error_set_and_wrap(void **state)
{
    ff_error err = {0};

    assert_int_equal(ff_error_set(&err, FF_ERR_FORMAT, "line %d", 7),
                     FF_ERR_FORMAT);
    assert_string_equal(ff_error_text(&err), "line 7");
    assert_int_equal(ff_error_wrap(&err, FF_ERR_IO, "reading %s", "m.jsonl"),
                     FF_ERR_FORMAT);
    assert_string_equal(err.msg, "reading m.jsonl: line 7");
    assert_int_equal(ff_error_set(NULL, FF_ERR_IO, "x"), FF_ERR_IO);
    assert_int_equal(ff_error_wrap(NULL, FF_ERR_DB, "x"), FF_ERR_DB);
}

/* A reason longer than the buffer is cut, never overflowed. */
static void
error_long_reason_is_truncated(void **state)
{
    char big[2000];
    ff_error err = {0};

    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    ff_error_set(&err, FF_ERR_ARG, "%s", big);
    assert_int_equal(strlen(err.msg), sizeof(err.msg) - 1);
    ff_error_wrap(&err, FF_ERR_ARG, "%s", big);
    assert_int_equal(strlen(err.msg), sizeof(err.msg) - 1);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(status_names_are_distinct),
        cmocka_unit_test(error_set_and_wrap),
        cmocka_unit_test(error_long_reason_is_truncated),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
