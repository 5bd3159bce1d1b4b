/*
 * Scenario metrics_counts (global): the /metrics families that only count
 * when something goes wrong, read after causing it.
 *  - refusals past max_connections: ioserve_connections_refused_total, and
 *    refused connections are neither accepted nor active;
 *  - kill -9 of the worker, four times in a row: the respawns wait 0, 1, 2
 *    and 4 s (the delay doubles) and ioserve_worker_restarts_total counts
 *    each;
 *  - a reload with a connection still open on the old generation:
 *    ioserve_workers by state shows it draining beside the new active one,
 *    then only the new one once the connection closes.
 * (ioserve_model_fallbacks_total is read by uring_unavailable, whose
 * server falls back.)
 */
#include "clients.h"
#include "harness.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>

#define MAX_CONN 2

static int port; /* the status endpoint */

static int counts_setup(void **state)
{
    (void)state;
    /* handover = false: the reload test needs a generation that stays
     * draining while its connection is open (a hand-over would end it) */
    static const char *const lines[] = {"status_listen = \"127.0.0.1:0\";",
                                        "max_connections = 2;", "workers = 1;",
                                        "handover = false;", NULL};
    int rc = it_group_start(lines);
    if (rc == 0 && it_srv)
        port = it_status_port(it_srv);
    return rc;
}

static void refusals_counted(void **state)
{
    (void)state;
    IT_BEGIN();
    IT_CHECK(port > 0, "no \"metrics on\" line in the log");
    int fd[MAX_CONN];
    for (int i = 0; i < MAX_CONN; i++) {
        IT_CONNECT(fd[i]);
        IT_ECHO(fd[i], "kept", 4);
    }
    for (int i = 0; i < 3; i++) {
        int extra;
        IT_CONNECT(extra);
        size_t junk = 0;
        IT_CHECK(it_wait_closed(extra, 3000, &junk) == 1,
                 "connection %d over max_connections = %d was not closed", i + 1, MAX_CONN);
        it_close(extra);
    }
    cl_wait_metric(port, "ioserve_connections_refused_total", NULL, 3);
    cl_wait_metric(port, "ioserve_connections_accepted_total", NULL, MAX_CONN);
    cl_wait_metric(port, "ioserve_connections_active", NULL, MAX_CONN);
    for (int i = 0; i < MAX_CONN; i++)
        it_close(fd[i]);
    cl_wait_metric(port, "ioserve_connections_active", NULL, 0);
    cl_wait_metric(port, "ioserve_connections_closed_total", NULL, MAX_CONN);
    cl_wait_metric(port, "ioserve_connections_refused_total", NULL, 3);
}

/* The master's only child, once it is not `not`; 0 after timeout_ms. */
static pid_t new_worker(pid_t not, int timeout_ms)
{
    int64_t end = it_now_ms() + timeout_ms;
    for (;;) {
        pid_t k[8];
        if (it_children(it_srv->pid, k, 8) == 1 && k[0] != not)
            return k[0];
        if (it_now_ms() >= end)
            return 0;
        it_sleep_ms(5);
    }
}

/* Crashes in a row: respawned after 0, 1, 2, 4 s (README: "the first
 * replacement starts at once; if it keeps failing, the delay doubles from
 * 1 s up to 30 s"; the cap: unit.test_respawn). */
static void restarts_counted_and_backed_off(void **state)
{
    (void)state;
    IT_BEGIN();
    IT_CHECK(port > 0, "no \"metrics on\" line in the log");
    static const long expect_ms[] = {0, 1000, 2000, 4000};
    pid_t w = new_worker(0, 2000);
    IT_CHECK(w > 0, "no worker");
    for (unsigned i = 0; i < sizeof expect_ms / sizeof expect_ms[0]; i++) {
        int64_t t0 = it_now_ms();
        IT_CHECK(kill(w, SIGKILL) == 0, "kill(%d, SIGKILL): %s", (int)w, strerror(errno));
        pid_t nw = new_worker(w, (int)expect_ms[i] + 1500);
        long took = (long)(it_now_ms() - t0);
        IT_CHECK(nw > 0, "crash %u: no new worker within %ld ms (expected after %ld ms)",
                 i + 1, took, expect_ms[i]);
        it_log("crash %u: respawned after %ld ms (expected %ld)", i + 1, took, expect_ms[i]);
        IT_CHECK(took >= expect_ms[i] - 100 && took <= expect_ms[i] + 1000,
                 "crash %u in a row: respawned after %ld ms, expected %ld ms", i + 1, took,
                 expect_ms[i]);
        cl_wait_metric(port, "ioserve_worker_restarts_total", NULL, i + 1);
        w = nw;
    }
    /* served again, and the same generation is active */
    int64_t end = it_now_ms() + 3000;
    int served = 0;
    while (!served && it_now_ms() < end) {
        int fd = it_connect(it_srv->port);
        served = fd >= 0 && it_roundtrip(fd, "back", 4, "back", 4, 1000) == 0;
        it_close(fd);
        if (!served)
            it_sleep_ms(50);
    }
    IT_CHECK(served, "no reply within 3 s of the last respawn");
    cl_wait_metric(port, "ioserve_workers", "state=\"active\"", 1);
}

static void workers_by_state_through_reload(void **state)
{
    (void)state;
    IT_BEGIN();
    IT_CHECK(port > 0, "no \"metrics on\" line in the log");
    int old;
    IT_CONNECT(old);
    IT_ECHO(old, "old generation", 14);
    cl_wait_metric(port, "ioserve_workers", "generation=\"1\",state=\"active\"", 1);
    IT_CHECK(kill(it_srv->pid, SIGHUP) == 0, "SIGHUP: %s", strerror(errno));
    /* the open connection keeps generation 1 draining (drain_timeout 5 s) */
    cl_wait_metric(port, "ioserve_workers", "generation=\"2\",state=\"active\"", 1);
    cl_wait_metric(port, "ioserve_workers", "generation=\"1\",state=\"draining\"", 1);
    cl_wait_metric(port, "ioserve_workers", "state=\"active\"", 1);
    cl_wait_metric(port, "ioserve_workers", "state=\"starting\"", 0);
    IT_ECHO(old, "still served while draining", 27);
    it_close(old);
    cl_wait_metric(port, "ioserve_workers", "state=\"draining\"", 0);
    cl_wait_metric(port, "ioserve_workers", "generation=\"1\"", 0);
    cl_wait_metric(port, "ioserve_workers", "generation=\"2\",state=\"active\"", 1);
}

int it_run_metrics_counts(void)
{
    /* Not IT_TEST: the workers change on purpose (kill -9, reload). */
    const struct CMUnitTest tests[] = {
        IT_TEST(refusals_counted),
        cmocka_unit_test(restarts_counted_and_backed_off),
        cmocka_unit_test(workers_by_state_through_reload),
    };
    return cmocka_run_group_tests_name("metrics_counts", tests, counts_setup,
                                       it_group_teardown);
}
