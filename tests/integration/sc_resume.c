/*
 * Scenario resume (every model): reading resumes after backpressure.
 * A client sends far more than output_high_water without reading, so the
 * server stops reading it with input still waiting in the socket; then the
 * client reads everything.  Every byte must come back within a few seconds:
 * a server that never reads again once the queue drains (no new readiness
 * edge announces bytes that arrived while it was not reading) stalls here,
 * and this test says so at once instead of at a scenario timeout.
 */
#include "harness.h"
#include "clients.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HIGH_WATER 4096
#define MAX_SENT (16u << 20)
/* Reading back at most 16 MB on loopback takes well under a second. */
#define READ_BACK_MS 5000

static int resume_setup(void **state)
{
    (void)state;
    static const char *const lines[] = {"handler = \"echo\";", "output_high_water = 4096;",
                                        NULL};
    return it_group_start(lines);
}

static void resume_after_backpressure(void **state)
{
    (void)state;
    IT_BEGIN();
    for (int round = 0; round < 3; round++) {
        int fd;
        IT_CONNECT(fd);
        IT_ECHO(fd, "warm-up", 7);
        long sent = cl_send_until_stalled(fd, 40 + (uint64_t)round, MAX_SENT, 300, 5000);
        IT_CHECK(sent > 0, "sending: %s", it_errbuf);
        IT_CHECK(sent > 4 * HIGH_WATER,
                 "the server took only %ld bytes: no backpressure to lift", sent);
        char *in = malloc((size_t)sent), *expect = malloc((size_t)sent);
        assert_non_null(in);
        assert_non_null(expect);
        size_t got = 0;
        int64_t t0 = it_now_ms();
        ssize_t r = it_recv_exact(fd, in, (size_t)sent, READ_BACK_MS, &got);
        long took = (long)(it_now_ms() - t0);
        it_pattern(40 + (uint64_t)round, 0, expect, (size_t)sent);
        long diff = r == sent ? it_first_diff(in, expect, (size_t)sent) : -1;
        free(in);
        free(expect);
        IT_CHECK(r == sent,
                 "round %d: %ld bytes sent without reading, then only %zu came back "
                 "within %d ms: reading did not resume after backpressure",
                 round, sent, got, READ_BACK_MS);
        IT_CHECK(diff < 0, "round %d: the echo differs at byte %ld", round, diff);
        IT_ECHO(fd, "after", 5);
        it_log("round %d: %ld bytes queued behind backpressure, all back in %ld ms", round,
               sent, took);
        it_close(fd);
    }
}

int it_run_resume(void)
{
    const struct CMUnitTest tests[] = {
        IT_TEST(resume_after_backpressure),
    };
    return cmocka_run_group_tests_name("resume", tests, resume_setup, it_group_teardown);
}
