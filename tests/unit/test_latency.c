/* host/latency.c: which bucket a request's duration lands in, at the
 * edges, and what a worker's histogram adds up to. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "latency.h"

#define US 1000ull
#define S 1000000000ull

static void test_bucket_edges(void **state)
{
    (void)state;
    assert_int_equal(lat_bucket_of(0), 0);
    assert_int_equal(lat_bucket_of(10 * US), 0); /* le is "less or equal" */
    assert_int_equal(lat_bucket_of(10 * US + 1), 1);
    assert_int_equal(lat_bucket_of(10 * S - 1), LAT_BOUNDS - 1);
    assert_int_equal(lat_bucket_of(10 * S), LAT_BOUNDS - 1);
    assert_int_equal(lat_bucket_of(10 * S + 1), LAT_BOUNDS); /* +Inf only */
    assert_int_equal(lat_bucket_of(UINT64_MAX), LAT_BOUNDS);
    assert_string_equal(lat_le[LAT_BOUNDS], "+Inf");
}

/* Every bound is its own bucket's top, and the labels say the same value
 * in seconds. */
static void test_bounds_match_labels(void **state)
{
    (void)state;
    for (unsigned b = 0; b < LAT_BOUNDS; b++) {
        assert_int_equal(lat_bucket_of(lat_bound_ns[b]), b);
        assert_int_equal(lat_bucket_of(lat_bound_ns[b] + 1), b + 1);
        if (b > 0)
            assert_true(lat_bound_ns[b] > lat_bound_ns[b - 1]);
        double le = strtod(lat_le[b], NULL);
        double ns = (double)lat_bound_ns[b] / 1e9;
        assert_true(le > ns * 0.999999 && le < ns * 1.000001);
    }
}

static void test_record_and_add(void **state)
{
    (void)state;
    struct lat_hist a = {0}, b = {0}, sum = {0};
    lat_record(&a, 0, 1);
    lat_record(&a, 30 * US, 3);       /* le=5e-05, three requests */
    lat_record(&b, 11 * S, 2);        /* +Inf */
    lat_add(&sum, &a);
    lat_add(&sum, &b);
    assert_int_equal(sum.bucket[0], 1);
    assert_int_equal(sum.bucket[2], 3);
    assert_int_equal(sum.bucket[LAT_BOUNDS], 2);
    assert_int_equal(lat_count(&sum), 6);
    assert_int_equal(sum.sum_ns, 90 * US + 22 * S);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bucket_edges),
        cmocka_unit_test(test_bounds_match_labels),
        cmocka_unit_test(test_record_and_add),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
