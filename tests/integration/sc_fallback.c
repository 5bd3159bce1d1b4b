/* Global scenarios where the kernel refuses what a start needs:
 *   uring_unavailable  with io_uring refused (as by a container's seccomp
 *       profile), a model list falls back with the reason logged, `uring`
 *       alone fails to start without a respawn loop, and -t says the same; a
 *       uring canary (an A/B split) leaves epoll serving everything;
 *   fork_refused  with no process creatable, the master cannot start its
 *       workers: it says so and exits 1 at once, leaving nothing behind. */
#include "clients.h"
#include "harness.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char g_wrapper[1024];

/* A script that runs the real ioserve under tests/tools/deny_syscall.c
 * refusing `what`; exec keeps the pid, so the harness still sees the
 * master it started.  0; 77 when it cannot be done here (the scenario is
 * skipped, with the reason); -1. */
static int use_deny_wrapper(const char *what)
{
    const char *deny = getenv("IOSERVE_DENY_SYSCALL");
    if (!deny || access(deny, X_OK) != 0) {
        it_skip_scenario("the deny-syscall wrapper was not built (IOSERVE_DENY_SYSCALL=%s)",
                         deny ? deny : "unset");
        return 77;
    }
    /* It exits 77 where no seccomp filter can be installed. */
    char *probe[] = {(char *)deny, (char *)what, "/bin/true", NULL};
    char *out = NULL;
    int st = it_run(probe, 10000, NULL, &out, NULL);
    int cannot = st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 77;
    if (cannot)
        it_skip_scenario("deny-syscall cannot refuse %s here: %s", what, out);
    free(out);
    if (cannot)
        return 77;
    snprintf(g_wrapper, sizeof g_wrapper, "%s/no-%s-ioserve.sh", it_tmpdir(), what);
    char text[3000];
    snprintf(text, sizeof text, "#!/bin/sh\nexec '%s' %s '%s' \"$@\"\n", deny, what,
             it_env.bin);
    if (it_write_file(g_wrapper, text) != 0 || chmod(g_wrapper, 0755) != 0)
        return -1;
    return 0;
}

static int use_no_uring(void)
{
    char so[1024];
    snprintf(so, sizeof so, "%s/uring.so", it_env.plugin_dir);
    if (access(so, R_OK) != 0) {
        it_skip_scenario("the uring plugin is not built (%s)", so);
        return 77;
    }
    int rc = use_deny_wrapper("uring");
    if (rc == 0)
        it_env.bin = g_wrapper;
    return rc;
}

static int fallback_setup(void **state)
{
    (void)state;
    int rc = use_no_uring();
    if (rc == 77)
        return 0; /* every test skips */
    if (rc)
        return -1;
    static const char *const lines[] = {"model = [\"uring\", \"epoll\"];",
                                        "status_listen = \"127.0.0.1:0\";", NULL};
    return it_group_start(lines);
}

static void test_list_falls_back_with_reason(void **state)
{
    (void)state;
    IT_BEGIN();
    IT_CHECK(it_log_contains(it_srv, "uring: io_uring_setup: Operation not permitted"),
             "the log does not name the cause");
    IT_CHECK(it_log_contains(it_srv, "(model epoll,"), "did not fall back to epoll");
    int fd;
    IT_CONNECT(fd);
    IT_ECHO(fd, "still served", 12);
    it_close(fd);
}

/* The fallback is counted on /metrics, by model and reason. */
static void test_fallback_counted_in_metrics(void **state)
{
    (void)state;
    IT_BEGIN();
    int port = it_status_port(it_srv);
    IT_CHECK(port > 0, "no \"metrics on\" line in the log");
    cl_wait_metric(port, "ioserve_model_fallbacks_total", NULL, 1);
    cl_wait_metric(port, "ioserve_model_fallbacks_total",
                   "model=\"uring\",reason=\"io_uring_setup: Operation not permitted", 1);
    cl_wait_metric(port, "ioserve_workers", "state=\"active\"", 1);
}

static void test_uring_alone_fails_once(void **state)
{
    (void)state;
    if (it_skip)
        skip();
    static const char *const lines[] = {"model = \"uring\";", NULL};
    char *cfg = it_write_config("uring-alone", lines);
    assert_non_null(cfg);
    char *argv[] = {g_wrapper, "-c", cfg, NULL};
    char *out = NULL;
    int64_t ms = 0;
    int st = it_run(argv, 10000, "listening on", &out, &ms);
    IT_CHECK(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) != 0,
             "expected a prompt non-zero exit, got status %d:\n%s", st, out);
    IT_CHECK(strstr(out, "io_uring_setup: Operation not permitted"), "cause not logged:\n%s",
             out);
    IT_CHECK(strstr(out, "failed to start"), "no 'failed to start':\n%s", out);
    /* One worker tried, not a respawn loop. */
    int tries = 0;
    for (const char *p = out; (p = strstr(p, "did not start")); p++)
        tries++;
    IT_CHECK(tries == 1, "the model was started %d times:\n%s", tries, out);
    it_log("uring alone: exit %d after %lld ms", WEXITSTATUS(st), (long long)ms);
    free(out);
    free(cfg);
}

/* The harness itself, under the same refusal, skips the uring model with
 * the probe's reason instead of failing on the server's error. */
static void test_harness_skips_refused_uring(void **state)
{
    (void)state;
    if (it_skip)
        skip();
    char self[1024];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    IT_CHECK(n > 0, "readlink /proc/self/exe: %s", strerror(errno));
    self[n] = 0;
    char *argv[] = {getenv("IOSERVE_DENY_SYSCALL"), "uring", self, "echo", "uring", NULL};
    char *out = NULL;
    int st = it_run(argv, 30000, NULL, &out, NULL);
    IT_CHECK(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 77,
             "`ioserve-it echo uring` with io_uring refused: expected exit 77 (skip), "
             "got status %d:\n%s",
             st, out);
    IT_CHECK(strstr(out, "SKIP: model uring cannot run on this machine: io_uring_setup: "
                         "Operation not permitted"),
             "the skip does not give the probe's reason:\n%s", out);
    free(out);
}

/* `ioserve -c cfg -t` under the refusal: its output (malloc'd), once its
 * exit status was `want` (else the test fails, naming `what`). */
static char *run_check(const char *cfg, int want, const char *what)
{
    char *argv[] = {g_wrapper, "-c", (char *)cfg, "-t", NULL};
    char *out = NULL;
    int st = it_run(argv, 10000, NULL, &out, NULL);
    IT_CHECK(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == want,
             "-t with %s: expected exit %d, got status %d:\n%s", what, want, st, out);
    return out;
}

/* -t starts each model in a dry run, so it reports the same reason. */
static void test_check_reports_the_reason(void **state)
{
    (void)state;
    if (it_skip)
        skip();
    static const char *const list[] = {"model = [\"uring\", \"epoll\"];", NULL};
    static const char *const alone[] = {"model = \"uring\";", NULL};
    char *cfg_list = it_write_config("check-list", list);
    char *cfg_alone = it_write_config("check-alone", alone);
    assert_non_null(cfg_list);
    assert_non_null(cfg_alone);

    char *out = run_check(cfg_list, 0, "a fallback");
    IT_CHECK(strstr(out, "model uring would not start: io_uring_setup: Operation not "
                         "permitted"),
             "-t does not say why uring is skipped:\n%s", out);
    IT_CHECK(strstr(out, "model epoll starts"), "-t does not name the model:\n%s", out);
    IT_CHECK(strstr(out, "configuration ok"), "no 'configuration ok':\n%s", out);
    free(out);

    out = run_check(cfg_alone, 1, "uring alone");
    IT_CHECK(strstr(out, "model uring would not start: io_uring_setup"),
             "-t does not say why uring cannot start:\n%s", out);
    IT_CHECK(strstr(out, "configuration test failed"), "no failure line:\n%s", out);
    free(out);
    free(cfg_list);
    free(cfg_alone);
}

/* A canary of uring (an A/B split) under the same refusal: epoll serves
 * every connection, the log and -t say why, the fallback is counted. */
static void test_canary_refused(void **state)
{
    (void)state;
    if (it_skip)
        skip();
    static const char *const lines[] = {"model = \"epoll\";", "status_listen = \"127.0.0.1:0\";",
                                        "canary = { model = \"uring\"; share = 50; };", NULL};
    char *cfg = it_write_config("canary-refused", lines);
    assert_non_null(cfg);
    char *out = run_check(cfg, 0, "a canary that cannot start");
    IT_CHECK(strstr(out, "canary model uring would not start: io_uring_setup: Operation not "
                         "permitted") &&
                 strstr(out, "no split: model epoll would serve every connection"),
             "-t does not say why there is no split:\n%s", out);
    free(out);

    struct it_server s = {0};
    IT_CHECK(it_server_start(&s, cfg) == 0, "the server did not start");
    free(cfg);
    IT_CHECK(it_log_contains(&s, "canary model uring did not start: model epoll serves every "
                                 "connection"),
             "the log does not say the split is off");
    for (int i = 0; i < 20; i++) {
        int fd = it_connect(s.port);
        IT_CHECK(fd >= 0, "%s", it_errbuf);
        IT_ECHO(fd, "served", 6);
        it_close(fd);
    }
    int port = it_status_port(&s);
    cl_wait_metric(port, "ioserve_connections_accepted_total", "model=\"epoll\"", 20);
    cl_wait_metric(port, "ioserve_model_fallbacks_total",
                   "model=\"uring\",reason=\"io_uring_setup: Operation not permitted", 1);
    cl_wait_metric(port, "ioserve_canary_share_percent", NULL, 0);
    it_stop_servers(&s, 1, 0);
}

int it_run_uring_unavailable(void)
{
    const struct CMUnitTest tests[] = {
        IT_TEST(test_list_falls_back_with_reason),
        IT_TEST(test_fallback_counted_in_metrics),
        cmocka_unit_test(test_uring_alone_fails_once),
        cmocka_unit_test(test_check_reports_the_reason),
        cmocka_unit_test(test_harness_skips_refused_uring),
        cmocka_unit_test(test_canary_refused),
    };
    return cmocka_run_group_tests_name("uring_unavailable", tests, fallback_setup,
                                       it_group_teardown);
}

/* Workers cannot be forked: before, the master kept a generation with no
 * worker forever and served nothing. */
static void test_no_workers_exits(void **state)
{
    (void)state;
    int rc = use_deny_wrapper("fork");
    if (rc == 77)
        skip(); /* the scenario exits 77, with the reason */
    assert_int_equal(rc, 0);
    char *cfg = it_write_config("fork-refused", NULL);
    assert_non_null(cfg);
    char *argv[] = {g_wrapper, "-c", cfg, NULL};
    char *out = NULL;
    int64_t ms = 0;
    int st = it_run(argv, 10000, "listening on", &out, &ms);
    free(cfg);
    IT_CHECK(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 1,
             "expected a prompt exit 1, got status %d:\n%s", st, out);
    IT_CHECK(strstr(out, "could not start worker 0 of 1"), "no reason given:\n%s", out);
    it_log("fork refused: exit 1 after %lld ms", (long long)ms);
    free(out);
}

int it_run_fork_refused(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_no_workers_exits),
    };
    return cmocka_run_group_tests_name("fork_refused", tests, NULL, NULL);
}
