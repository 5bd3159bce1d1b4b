/*
 * Promises of the README no other scenario reads.
 *
 * Scenario refused_reset (every model): what a client refused past
 * max_connections sees (README, Limits): the connection opens, then EOF
 * with no reply — or a reset if it had already sent bytes (they were never
 * read, and the kernel answers their loss with RST).
 */
#include "clients.h"
#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static int refused_setup(void **state)
{
    (void)state;
    static const char *const lines[] = {"handler = \"echo\";", "max_connections = 1;", NULL};
    return it_group_start(lines);
}

/* What a refused client reads once the server got to it: 0 = EOF,
 * ECONNRESET = reset, -1 = nothing within 3 s or another error. */
static int refused_outcome(int fd)
{
    char b[64];
    size_t got = 0;
    errno = 0;
    ssize_t r = it_recv_exact(fd, b, sizeof b, 3000, &got);
    if (got > 0)
        return -1; /* a refused client gets no reply */
    if (r == 0 && errno == 0)
        return 0;
    return errno == ECONNRESET ? ECONNRESET : -1;
}

static void refused_client(int sends_first)
{
    /* The one connection allowed (the server may not have seen the last
     * test's close yet: retry briefly). */
    int kept = -1;
    int64_t end = it_now_ms() + 3000;
    while (kept < 0 && it_now_ms() < end) {
        kept = it_connect(it_srv->port);
        if (kept >= 0 && it_roundtrip(kept, "the one allowed", 15, "the one allowed", 15,
                                      1000) != 0) {
            it_close(kept);
            kept = -1;
            it_sleep_ms(50);
        }
    }
    IT_CHECK(kept >= 0, "no connection served within 3 s: %s", it_errbuf);
    pid_t w = it_srv->workers[0];
    /* The worker is held while the client connects (the kernel completes
     * the handshake on its own) and sends: so its bytes are queued before
     * the refusal, whatever the model's timing. */
    IT_CHECK(kill(w, SIGSTOP) == 0, "SIGSTOP %d: %s", (int)w, strerror(errno));
    int fd = it_connect(it_srv->port);
    int sent = fd >= 0 && (!sends_first || it_send_all(fd, "early bytes", 11, 1000) == 0);
    kill(w, SIGCONT);
    IT_CHECK(fd >= 0 && sent, "connecting (and sending) to a held worker: %s", it_errbuf);
    int outcome = refused_outcome(fd);
    if (sends_first)
        IT_CHECK(outcome == ECONNRESET,
                 "a refused client that had sent bytes saw %s, not a reset",
                 outcome == 0 ? "EOF" : "no close within 3 s (or a reply)");
    else
        IT_CHECK(outcome == 0, "a refused client that sent nothing saw %s, not EOF",
                 outcome == ECONNRESET ? "a reset" : "no close within 3 s (or a reply)");
    it_close(fd);
    IT_ECHO(kept, "still served", 12);
    it_close(kept);
}

static void refused_after_sending_sees_reset(void **state)
{
    (void)state;
    IT_BEGIN();
    refused_client(1);
}

static void refused_silent_sees_eof(void **state)
{
    (void)state;
    IT_BEGIN();
    refused_client(0);
}

int it_run_refused_reset(void)
{
    const struct CMUnitTest tests[] = {
        IT_TEST(refused_after_sending_sees_reset),
        IT_TEST(refused_silent_sees_eof),
    };
    return cmocka_run_group_tests_name("refused_reset", tests, refused_setup,
                                       it_group_teardown);
}

/* ================================================================
 * Scenario reload_promises (global): what a reload promises beyond the
 * swap itself (README, Hot swap).
 */

static struct it_server own;

static void own_start(const char *name, const char *const *lines)
{
    it_own_start(&own, name, lines);
}

/* Sends SIGHUP and waits for generation `gen`'s "listening on" line;
 * returns that line (static), or fails the test. */
static const char *reload_to(unsigned gen)
{
    static char line[512];
    char needle[64];
    snprintf(needle, sizeof needle, "generation %u)", gen);
    IT_CHECK(kill(it_srv->pid, SIGHUP) == 0, "SIGHUP: %s", strerror(errno));
    for (int i = 0; i < 500; i++) {
        char *log = it_read_file(it_srv->log, NULL);
        const char *hit = log ? strstr(log, needle) : NULL;
        if (hit) {
            const char *start = hit;
            while (start > log && start[-1] != '\n')
                start--;
            snprintf(line, sizeof line, "%.*s", (int)(hit - start) + (int)strlen(needle),
                     start);
            free(log);
            return line;
        }
        free(log);
        it_sleep_ms(20);
    }
    IT_FAIL("no generation %u within 10 s of SIGHUP", gen);
}

/* A client served by the current generation: `in` comes back as `out`. */
static void expect_reply(const char *in, const char *out, const char *when)
{
    int fd;
    IT_CONNECT(fd);
    size_t n = strlen(in);
    IT_CHECK(it_roundtrip(fd, in, n, out, n, 5000) == 0, "%s: %s", when, it_errbuf);
    it_close(fd);
}

static void overrides_survive_reload(void **state)
{
    (void)state;
    /* The file says echo; -o handler=upper (how the harness passes -o). */
    static const char *const lines[] = {"handler = \"echo\";", NULL};
    setenv("IOSERVE_IT_SET", "handler=upper", 1);
    own_start("overrides", lines);
    unsetenv("IOSERVE_IT_SET");
    expect_reply("abc", "ABC", "before the reload, with -o handler=upper");
    const char *line = reload_to(2);
    IT_CHECK(strstr(line, "handler upper"), "after the reload: %s", line);
    expect_reply("abc", "ABC", "after the reload, -o handler=upper still applies");
}

/* Copies a file by writing a temporary one and renaming it over `to`, the
 * way the README says to replace a plugin. */
static int install_file(const char *from, const char *to)
{
    size_t len;
    char *data = it_read_file(from, &len);
    if (!data)
        return -1;
    char tmp[1100];
    snprintf(tmp, sizeof tmp, "%s.new", to);
    FILE *f = fopen(tmp, "we");
    int ok = f && fwrite(data, 1, len, f) == len;
    if (f && fclose(f) != 0)
        ok = 0;
    free(data);
    return ok && chmod(tmp, 0755) == 0 && rename(tmp, to) == 0 ? 0 : -1;
}

static void rebuilt_plugin_picked_up(void **state)
{
    (void)state;
    char so[1024], src[1024], model[1200];
    snprintf(so, sizeof so, "%s/model.so", it_tmpdir());
    snprintf(src, sizeof src, "%s/poll.so", it_env.plugin_dir);
    IT_CHECK(install_file(src, so) == 0, "copying %s: %s", src, strerror(errno));
    snprintf(model, sizeof model, "model = \"%s\";", so);
    const char *const lines[] = {model, NULL};
    own_start("rebuilt", lines);
    IT_CHECK(it_log_contains(it_srv, "(model poll,"), "the plugin at %s is not poll", so);
    expect_reply("before", "before", "the first build of the plugin");

    /* "rebuilt": another plugin installed at the same path */
    snprintf(src, sizeof src, "%s/epoll.so", it_env.plugin_dir);
    IT_CHECK(install_file(src, so) == 0, "replacing %s: %s", so, strerror(errno));
    const char *line = reload_to(2);
    IT_CHECK(strstr(line, "(model epoll,"),
             "the reload did not pick up the plugin rebuilt at %s: %s", so, line);
    expect_reply("after", "after", "the rebuilt plugin");
}

/* A FIFO would block dlopen for ever, a directory cannot be loaded: both
 * are refused, by name, before any loading is tried. */
static void plugin_not_a_regular_file(void **state)
{
    (void)state;
    char fifo[1024], dir[1024];
    snprintf(fifo, sizeof fifo, "%s/fifo.so", it_tmpdir());
    snprintf(dir, sizeof dir, "%s/dir.so", it_tmpdir());
    IT_CHECK(mkfifo(fifo, 0644) == 0 || errno == EEXIST, "mkfifo: %s", strerror(errno));
    IT_CHECK(mkdir(dir, 0755) == 0 || errno == EEXIST, "mkdir: %s", strerror(errno));
    const char *paths[] = {fifo, dir};
    for (int i = 0; i < 2; i++) {
        char model[1200];
        snprintf(model, sizeof model, "model = \"%s\";", paths[i]);
        const char *const lines[] = {model, NULL};
        char *cfg = it_write_config(i ? "dir" : "fifo", lines);
        assert_non_null(cfg);
        char *argv[] = {(char *)it_env.bin, "-t", "-c", cfg, NULL};
        char *out = NULL;
        int64_t ms = 0;
        int st = it_run(argv, 5000, NULL, &out, &ms);
        free(cfg);
        /* Had it been opened after all, a writer's open-and-close releases
         * the reader blocked in it, leaving no process behind. */
        int w = open(fifo, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
        if (w >= 0)
            close(w);
        int refused = st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 1 && out &&
                      strstr(out, "not a regular file");
        char shown[600];
        snprintf(shown, sizeof shown, "%.500s", out ? out : "");
        free(out);
        IT_CHECK(refused, "-t with model = %s: status %d after %lld ms, expected exit 1 and "
                          "\"not a regular file\":\n%s",
                 paths[i], st, (long long)ms, shown);
    }
}

int it_run_reload_promises(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(overrides_survive_reload, it_group_teardown),
        cmocka_unit_test_teardown(rebuilt_plugin_picked_up, it_group_teardown),
        cmocka_unit_test(plugin_not_a_regular_file),
    };
    return cmocka_run_group_tests_name("reload_promises", tests, NULL, NULL);
}

/* ================================================================
 * Scenario exclusive_wakeup (global, epoll): with several workers on one
 * socket, epoll registers it with EPOLLEXCLUSIVE so each new connection
 * wakes one worker (README, Workers).  Seen from outside as context
 * switches: one connection at a time, a herd would wake every worker for
 * each, while with EPOLLEXCLUSIVE the workers that accept nothing sleep on.
 */

#define EXCL_WORKERS 4
#define EXCL_CONNS 40

static int exclusive_setup(void **state)
{
    (void)state;
    static const char *const lines[] = {"model = \"epoll\";", "workers = 4;", NULL};
    return it_group_start(lines);
}

/* voluntary_ctxt_switches of pid (one thread: an epoll worker), or -1. */
static long wakeups(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    char *text = it_read_file(path, NULL);
    const char *p = text ? strstr(text, "voluntary_ctxt_switches:") : NULL;
    long n = p ? strtol(p + strlen("voluntary_ctxt_switches:"), NULL, 10) : -1;
    free(text);
    return n;
}

static void one_worker_woken_per_connection(void **state)
{
    (void)state;
    IT_BEGIN();
    pid_t w[EXCL_WORKERS];
    int n = 0;
    for (int i = 0; i < 100 && n != EXCL_WORKERS; i++) {
        n = it_children(it_srv->pid, w, EXCL_WORKERS);
        it_sleep_ms(20);
    }
    IT_CHECK(n == EXCL_WORKERS, "%d workers, expected %d", n, EXCL_WORKERS);
    it_sleep_ms(200); /* every worker asleep in epoll_wait */
    long before[EXCL_WORKERS];
    for (int i = 0; i < n; i++)
        before[i] = wakeups(w[i]);
    for (int c = 0; c < EXCL_CONNS; c++) {
        int fd;
        IT_CONNECT(fd);
        IT_ECHO(fd, "one", 3);
        it_close(fd);
        it_sleep_ms(20); /* the connection is over before the next */
    }
    int asleep = 0;
    char deltas[256] = "";
    for (int i = 0; i < n; i++) {
        long d = wakeups(w[i]) - before[i];
        IT_CHECK(before[i] >= 0 && d >= 0, "cannot read the context switches of %d",
                 (int)w[i]);
        if (d < EXCL_CONNS / 4)
            asleep++;
        snprintf(deltas + strlen(deltas), sizeof deltas - strlen(deltas), " %ld", d);
    }
    it_log("wake-ups per worker over %d connections:%s", EXCL_CONNS, deltas);
    IT_CHECK(asleep > 0,
             "every one of %d workers woke for most of %d connections made one at a time "
             "(wake-ups:%s): a thundering herd",
             n, EXCL_CONNS, deltas);
}

int it_run_exclusive_wakeup(void)
{
    const struct CMUnitTest tests[] = {
        IT_TEST(one_worker_woken_per_connection),
    };
    return cmocka_run_group_tests_name("exclusive_wakeup", tests, exclusive_setup,
                                       it_group_teardown);
}

/* ================================================================
 * Scenario generation_start (global): a reload's new generation, two
 * workers of the test plugin late_ready (tests/bad_plugins), over a serving
 * generation of two epoll workers (README, Hot swap):
 *  - the old generation drains only once EVERY new worker is ready;
 *  - a new generation whose worker crashes before it is ready, or is not
 *    ready within 10 s, is refused, and the old one keeps serving.
 */

static int gs_port; /* the status endpoint */

static int gs_setup(void **state)
{
    (void)state;
    static const char *const lines[] = {"model = \"epoll\";", "workers = 2;",
                                        "status_listen = \"127.0.0.1:0\";", NULL};
    int rc = it_group_start(lines);
    if (rc == 0 && it_srv)
        gs_port = it_status_port(it_srv);
    return rc;
}

/* Rewrites the group's config (same path) for late_ready with `knob`
 * ("crash = true;"...) and sends SIGHUP. */
static void reload_to_late_ready(const char *knob)
{
    char model[1200], models[300];
    snprintf(model, sizeof model, "model = \"%s/late_ready.so\";", it_env.bad_plugin_dir);
    snprintf(models, sizeof models, "models = { late_ready = { %s }; };", knob);
    const char *const lines[] = {model, models, "workers = 2;",
                                 "status_listen = \"127.0.0.1:0\";", NULL};
    char *cfg = it_write_config(it_env.scenario, lines);
    IT_CHECK(cfg && strcmp(cfg, it_srv->cfg) == 0, "cannot rewrite %s", it_srv->cfg);
    free(cfg);
    IT_CHECK(kill(it_srv->pid, SIGHUP) == 0, "SIGHUP: %s", strerror(errno));
}

static int log_count(const char *needle)
{
    char *log = it_read_file(it_srv->log, NULL);
    int n = 0;
    for (const char *p = log; p && (p = strstr(p, needle)); p++)
        n++;
    free(log);
    return n;
}

/* Waits up to limit_ms for one more "reload failed" line than `before`;
 * the milliseconds it took, or -1. */
static long wait_reload_failed(int before, int limit_ms)
{
    int64_t t0 = it_now_ms();
    while (it_now_ms() - t0 < limit_ms) {
        if (log_count("reload failed") > before)
            return (long)(it_now_ms() - t0);
        it_sleep_ms(20);
    }
    return -1;
}

/* The serving generation is still `gen` with both its workers, and serves. */
static void still_serving(unsigned gen, long failed)
{
    char label[64];
    snprintf(label, sizeof label, "generation=\"%u\",state=\"active\"", gen);
    cl_wait_metric(gs_port, "ioserve_workers", label, 2);
    cl_wait_metric(gs_port, "ioserve_workers", NULL, 2); /* no worker of the refused one */
    cl_wait_metric(gs_port, "ioserve_reloads_failed_total", NULL, (unsigned long long)failed);
    expect_reply("served", "served", "after the refused reload");
}

static void crashing_generation_refused(void **state)
{
    (void)state;
    IT_BEGIN();
    IT_CHECK(gs_port > 0, "no \"metrics on\" line in the log");
    int before = log_count("reload failed");
    reload_to_late_ready("crash = true;");
    /* at once: not left to the 10 s start timeout */
    long took = wait_reload_failed(before, 5000);
    IT_CHECK(took >= 0, "a new generation whose worker crashes was not refused within 5 s");
    it_log("generation with a crashing worker refused after %ld ms", took);
    still_serving(1, 1);
}

static void late_generation_refused_after_10s(void **state)
{
    (void)state;
    IT_BEGIN();
    IT_CHECK(gs_port > 0, "no \"metrics on\" line in the log");
    int before = log_count("reload failed");
    reload_to_late_ready("ready_delay_ms = 30000;");
    long took = wait_reload_failed(before, 14000);
    IT_CHECK(took >= 0, "a new generation not ready within 10 s was not refused by 14 s");
    it_log("generation not ready refused after %ld ms", took);
    IT_CHECK(took >= 9500, "a new generation was refused after %ld ms, before its 10 s", took);
    still_serving(1, 2);
}

static void old_drains_after_every_new_worker_ready(void **state)
{
    (void)state;
    IT_BEGIN();
    IT_CHECK(gs_port > 0, "no \"metrics on\" line in the log");
    int64_t t0 = it_now_ms();
    reload_to_late_ready("ready_delay_ms = 2000;");
    /* generation 4: 2 and 3 were refused */
    long drained_at = -1;
    int seen_starting = 0;
    while (it_now_ms() - t0 < 6000 && drained_at < 0) {
        long long active_old = cl_scrape(gs_port, "ioserve_workers",
                                         "generation=\"1\",state=\"active\"");
        long long starting = cl_scrape(gs_port, "ioserve_workers",
                                       "generation=\"4\",state=\"starting\"");
        if (starting > 0)
            seen_starting = 1;
        if (active_old == 0)
            drained_at = (long)(it_now_ms() - t0);
        else
            it_sleep_ms(20);
    }
    IT_CHECK(seen_starting, "generation 4 was never seen starting");
    IT_CHECK(drained_at >= 0, "generation 1 still active 6 s after the reload");
    it_log("generation 1 stopped being active %ld ms after the reload (late worker: 2 s)",
           drained_at);
    IT_CHECK(drained_at >= 1800,
             "generation 1 drained %ld ms after the reload, before the new generation's "
             "second worker was ready (2 s)",
             drained_at);
    cl_wait_metric(gs_port, "ioserve_workers", "generation=\"4\",state=\"active\"", 2);
}

int it_run_generation_start(void)
{
    /* Not IT_TEST: the workers change on purpose. */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(crashing_generation_refused),
        cmocka_unit_test(late_generation_refused_after_10s),
        cmocka_unit_test(old_drains_after_every_new_worker_ready),
    };
    return cmocka_run_group_tests_name("generation_start", tests, gs_setup,
                                       it_group_teardown);
}
