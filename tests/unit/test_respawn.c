/* The respawn delay of a worker that keeps crashing (master_state.h): at
 * once, then 1 s doubling up to 30 s and staying there.  The first waits
 * are also measured against the real server (it.metrics_counts). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "master_state.h"

static void test_backoff_doubles_to_the_cap(void **state)
{
    (void)state;
    static const unsigned expect[] = {1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000};
    unsigned ms = 0;
    for (size_t i = 0; i < sizeof expect / sizeof expect[0]; i++) {
        ms = respawn_backoff_next(ms);
        assert_int_equal(ms, expect[i]);
    }
}

static void test_backoff_never_overflows(void **state)
{
    (void)state;
    unsigned ms = 0;
    for (int i = 0; i < 100; i++) {
        ms = respawn_backoff_next(ms);
        assert_in_range(ms, RESPAWN_BACKOFF_FIRST_MS, RESPAWN_BACKOFF_MAX_MS);
    }
    assert_int_equal(respawn_backoff_next(RESPAWN_BACKOFF_MAX_MS), RESPAWN_BACKOFF_MAX_MS);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_backoff_doubles_to_the_cap),
        cmocka_unit_test(test_backoff_never_overflows),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
