/*
 * Scenario memcheck: the server (master and workers) under valgrind's
 * memcheck, once with the echo handler and once with http: a little of
 * everything a connection can do, then a graceful stop (SIGQUIT), so every
 * process exits normally and valgrind checks its leaks.  Every process's
 * report must say "ERROR SUMMARY: 0 errors" (invalid accesses, uses of
 * uninitialised memory and definite leaks are all errors here).
 *
 * Run by `make valgrind` (ctest label memcheck).  IOSERVE_VALGRIND names the
 * valgrind program; without one the scenario is skipped.
 */
#include "harness.h"
#include "hostile.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char g_real_bin[1024];
static char g_wrapper[1024];
static int g_checked_logs;

/* Writes a script that runs the real ioserve under valgrind; exec keeps
 * the pid, so the harness sees the master it started. */
static int write_wrapper(void)
{
    const char *vg = getenv("IOSERVE_VALGRIND");
    if (!vg || !*vg)
        vg = "/usr/bin/valgrind";
    if (access(vg, X_OK) != 0) {
        it_skip_scenario("valgrind not found (%s; set IOSERVE_VALGRIND)", vg);
        return 77;
    }
    if (!g_real_bin[0])
        snprintf(g_real_bin, sizeof g_real_bin, "%s", it_env.bin);
    const char *dir = it_tmpdir();
    snprintf(g_wrapper, sizeof g_wrapper, "%s/valgrind-ioserve.sh", dir);
    /* tests/valgrind.supp: what valgrind cannot see (io_uring's writes) */
    char supp[1024] = "";
    if (it_env.source_dir)
        snprintf(supp, sizeof supp, "--suppressions='%s/tests/valgrind.supp' ",
                 it_env.source_dir);
    char text[4096];
    snprintf(text, sizeof text,
             "#!/bin/sh\n"
             "exec '%s' --tool=memcheck --error-exitcode=99 --leak-check=full "
             "--errors-for-leak-kinds=definite --show-leak-kinds=definite "
             "--num-callers=30 %s--log-file='%s/vg.%%p.log' '%s' \"$@\"\n",
             vg, supp, dir, g_real_bin);
    if (it_write_file(g_wrapper, text) != 0 || chmod(g_wrapper, 0755) != 0) {
        it_fail("cannot write %s: %s", g_wrapper, strerror(errno));
        return -1;
    }
    it_env.bin = g_wrapper;
    return 0;
}

static int start_under_valgrind(const char *handler)
{
    int rc = write_wrapper();
    if (rc == 77)
        return 0; /* every test skips */
    if (rc)
        return -1;
    char hline[64];
    snprintf(hline, sizeof hline, "handler = \"%s\";", handler);
    const char *lines[] = {hline, "http = { body = \"vg\\n\"; };",
                           "drain_timeout = 20;", NULL};
    return it_group_start(lines);
}

static int echo_setup(void **state)
{
    (void)state;
    return start_under_valgrind("echo");
}

static int http_setup(void **state)
{
    (void)state;
    return start_under_valgrind("http");
}

static void echo_traffic(void **state)
{
    (void)state;
    IT_BEGIN();
    int fd[4];
    for (int i = 0; i < 4; i++)
        IT_CONNECT(fd[i]);
    for (int round = 0; round < 10; round++)
        for (int i = 0; i < 4; i++)
            IT_ECHO(fd[i], "memcheck round trip", 19);

    /* a transfer larger than every buffer, full duplex */
    size_t n = 512 * 1024;
    char *out = malloc(n), *in = malloc(n);
    IT_CHECK(out && in, "out of memory");
    it_pattern(7, 0, out, n);
    struct it_xfer x = {.out = out, .out_len = n, .in = in, .want = n,
                        .timeout_ms = 30000};
    int rc = it_transfer(fd[0], &x);
    int same = rc == 0 && it_first_diff(in, out, n) < 0;
    free(out);
    free(in);
    IT_CHECK(same, "512 kB echo: %s", rc ? it_errbuf : "bytes differ");

    /* half-close, reset, connect-and-leave */
    IT_CHECK(it_send_all(fd[1], "bye", 3, 5000) == 0, "send: %s", it_errbuf);
    shutdown(fd[1], SHUT_WR);
    char buf[8];
    size_t got = 0;
    IT_CHECK(it_recv_until_eof(fd[1], buf, sizeof buf, 10000, &got) == 0 &&
                 got == 3,
             "half-close: %s", it_errbuf);
    it_send_all(fd[2], "partial", 7, 5000);
    it_close_rst(fd[2]);
    for (int i = 0; i < 4; i++)
        if (i != 2)
            it_close(fd[i]);
    int f;
    IT_CONNECT(f);
    it_close(f);
}

static void http_traffic(void **state)
{
    (void)state;
    IT_BEGIN();
    static struct hx_reader r;
    memset(&r, 0, sizeof r);
    IT_CONNECT(r.fd);
    static const char reqs[] =
        "GET / HTTP/1.1\r\nHost: vg\r\n\r\n"
        "HEAD /h HTTP/1.1\r\nHost: vg\r\n\r\n"
        "GET /b HTTP/1.1\r\nHost: vg\r\nContent-Length: 5\r\n\r\nhello"
        "GET /c HTTP/1.0\r\nConnection: keep-alive\r\n\r\n";
    IT_CHECK(it_send_all(r.fd, reqs, sizeof reqs - 1, 10000) == 0, "send: %s",
             it_errbuf);
    for (int i = 0; i < 4; i++) {
        struct hx_resp resp;
        char why[256];
        IT_CHECK(hx_read_response(&r, i == 1, it_now_ms() + 10000, &resp, why,
                                  sizeof why) == 0,
                 "response %d: %s", i + 1, why);
        IT_CHECK(resp.status == 200, "response %d: status %d", i + 1,
                 resp.status);
    }
    /* split head, then a malformed request: 400 and close */
    IT_CHECK(it_send_all(r.fd, "GET /split HT", 13, 5000) == 0, "send");
    it_sleep_ms(100);
    static const char rest[] = "TP/1.1\r\nHost: vg\r\n\r\nBAD\x01 / HTTP/1.1\r\n\r\n";
    IT_CHECK(it_send_all(r.fd, rest, sizeof rest - 1, 5000) == 0, "send");
    struct hx_resp resp;
    char why[256] = "";
    IT_CHECK(hx_read_response(&r, 0, it_now_ms() + 10000, &resp, why,
                              sizeof why) == 0 && resp.status == 200,
             "split request: status %d %s", resp.status, why);
    IT_CHECK(hx_read_response(&r, 0, it_now_ms() + 10000, &resp, why,
                              sizeof why) == 0 && resp.status == 400,
             "malformed request: status %d %s", resp.status, why);
    it_close(r.fd);

    /* an oversized head and a reset mid-request */
    int fd;
    IT_CONNECT(fd);
    char *big = malloc(10000);
    IT_CHECK(big != NULL, "out of memory");
    memcpy(big, "GET / HTTP/1.1\r\nX: ", 19);
    memset(big + 19, 'a', 10000 - 19);
    it_send_all(fd, big, 10000, 10000);
    free(big);
    size_t junk = 0;
    IT_CHECK(it_wait_closed(fd, 10000, &junk) == 1 && junk > 0,
             "oversized head: no 431 and close");
    it_close(fd);
    IT_CONNECT(fd);
    it_send_all(fd, "GET / HTTP/1.1\r\nHo", 18, 5000);
    it_close_rst(fd);
}

/* 1 once no worker holds a TCP socket but its listening one: it has seen
 * every client close.  0 at the deadline. */
static int workers_idle(int timeout_ms)
{
    int64_t end = it_now_ms() + timeout_ms;
    for (;;) {
        int busy = 0;
        for (int i = 0; i < it_srv->nworkers; i++) {
            struct it_sock socks[64];
            int n = it_tcp_sockets(it_srv->workers[i], socks, 64);
            for (int k = 0; k < n && k < 64; k++)
                busy += !socks[k].listening;
        }
        if (!busy)
            return 1;
        if (it_now_ms() >= end)
            return 0;
        it_sleep_ms(20);
    }
}

/* Graceful stop, then every valgrind report must be clean. */
static void quit_and_check(void **state)
{
    (void)state;
    IT_BEGIN();
    it_close_all();
    /* the connections end as clients ended them, not by the stop */
    int64_t t0 = it_now_ms();
    IT_CHECK(workers_idle(10000), "the workers still hold client connections 10 s after "
                                  "the clients closed them");
    it_log("the workers closed every client connection within %lld ms",
           (long long)(it_now_ms() - t0));
    pid_t master = it_srv->pid;
    IT_CHECK(kill(master, SIGQUIT) == 0, "kill(SIGQUIT): %s", strerror(errno));
    int64_t end = it_now_ms() + 60000;
    while (it_server_alive(it_srv) && it_now_ms() < end)
        it_sleep_ms(50);
    IT_CHECK(it_srv->pid == 0, "the master did not exit within 60 s of SIGQUIT");

    const char *dir = it_tmpdir();
    DIR *d = opendir(dir);
    IT_CHECK(d != NULL, "opendir %s", dir);
    int reports = 0, bad = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (strncmp(e->d_name, "vg.", 3) != 0)
            continue;
        char path[1024], done[1100];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        char *text = it_read_file(path, NULL);
        reports++;
        if (!text || !strstr(text, "ERROR SUMMARY: 0 errors")) {
            bad++;
            fprintf(stderr, "----- %s -----\n%s\n", path,
                    text ? text : "(unreadable)");
        }
        free(text);
        snprintf(done, sizeof done, "%s/checked-%s", dir, e->d_name);
        rename(path, done);
    }
    closedir(d);
    g_checked_logs += reports;
    it_log("%d valgrind report(s), %d with errors or incomplete", reports, bad);
    IT_CHECK(reports >= 2, "expected a valgrind report from the master and "
                           "its worker, found %d",
             reports);
    IT_CHECK(bad == 0, "%d valgrind report(s) show errors (printed above)",
             bad);
    int st = it_srv->status;
    IT_CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0,
             "the master did not exit 0 after SIGQUIT (status 0x%x; 99 = "
             "valgrind found errors)",
             st);
    IT_CHECK(!it_log_contains(it_srv, "while draining"),
             "a worker did not exit cleanly while draining (see the log)");
}

int it_run_memcheck(void)
{
    const struct CMUnitTest echo_tests[] = {
        IT_TEST(echo_traffic),
        IT_TEST(quit_and_check),
    };
    const struct CMUnitTest http_tests[] = {
        IT_TEST(http_traffic),
        IT_TEST(quit_and_check),
    };
    int failed = cmocka_run_group_tests_name("memcheck-echo", echo_tests,
                                             echo_setup, it_group_teardown);
    if (it_skip || failed || it_failed)
        return failed;
    /* its own config and log file: the first server's log still says
     * "listening on" */
    it_env.scenario = "memcheck-http";
    return cmocka_run_group_tests_name("memcheck-http", http_tests, http_setup,
                                       it_group_teardown);
}
