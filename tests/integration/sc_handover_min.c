/*
 * Global scenario handover_host: the host's half of the live hand-over,
 * proven with tests/plugins/handover_min.c (the smallest model that gives
 * and adopts) whatever the real models do.  A reload to the same model:
 *   echo     a session opened on generation 1 keeps talking, on the same
 *            TCP connection, after generation 1 has handed it over and
 *            exited; /metrics counts it;
 *   input    an http keep-alive connection holding half a request head at
 *            the reload: the half travels with it (memfd) and the new
 *            worker answers the completed request;
 *   spread   workers = 3: 30 sessions handed over, each still served, ten
 *            on each new worker;
 * and the reloads that must not hand over, each saying why:
 *   handler  echo -> upper: drains, the session stays on generation 1;
 *   off      handover = false: likewise;
 *   abi      to a model of ABI 1.1: likewise;
 *   later    a generation draining after a handler change hands its
 *            session over to a later generation with its handler again.
 */
#include "harness.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static struct it_server ho_srv;
static int ho_started;
static const char *ho_name; /* each test's own config (and log) */

/* "model = ..." naming one of the test plugins. */
static void ho_model_line(char *model, size_t len, const char *so)
{
    snprintf(model, len, "model = \"%s/%s\";", it_env.bad_plugin_dir, so);
}

/* Writes the config (handover_min, drain_timeout 30 s so that only a
 * hand-over or a close ends a drain soon) plus `extra`. */
static char *ho_write(const char *const *extra)
{
    char model[1200];
    ho_model_line(model, sizeof model, "handover_min.so");
    const char *lines[16] = {"drain_timeout = 30;", "status_listen = \"127.0.0.1:0\";"};
    size_t n = 2;
    int own_model = 0;
    for (size_t i = 0; extra && extra[i]; i++)
        own_model |= strncmp(extra[i], "model =", 7) == 0;
    if (!own_model)
        lines[n++] = model;
    for (size_t i = 0; extra && extra[i] && n < 15; i++)
        lines[n++] = extra[i];
    lines[n] = NULL;
    char *cfg = it_write_config(ho_name, lines);
    IT_CHECK(cfg, "cannot write the config");
    return cfg;
}

static struct it_server *ho_start(const char *name, const char *const *extra)
{
    ho_name = name;
    IT_CHECK(it_env.bad_plugin_dir, "IOSERVE_BAD_PLUGIN_DIR is not set");
    char *cfg = ho_write(extra);
    int rc = it_server_start(&ho_srv, cfg);
    free(cfg);
    IT_CHECK(rc == 0, "the server did not start (see its log above)");
    ho_started = 1;
    return &ho_srv;
}

/* Rewrites the config with `extra` and reloads; waits for generation
 * `gen` to serve.  Returns the log offset before the reload. */
static size_t ho_reload(struct it_server *s, const char *const *extra, unsigned gen)
{
    free(ho_write(extra));
    size_t off = it_log_size(s);
    IT_CHECK(kill(s->pid, SIGHUP) == 0, "kill(SIGHUP): %s", strerror(errno));
    char want[64];
    snprintf(want, sizeof want, "reload: generation %u serving", gen);
    IT_CHECK(it_wait_log(s, off, want, 10000), "no \"%s\" within 10 s", want);
    return off;
}

/* A tracked client of s (IT_CONNECT knows only a group's server). */
#define HO_CONNECT(s, fd)                                                  \
    do {                                                                   \
        (fd) = it_connect((s)->port);                                      \
        IT_CHECK((fd) >= 0, "%s:%d: %s", __FILE__, __LINE__, it_errbuf);  \
    } while (0)

static int ho_teardown(void **state)
{
    (void)state;
    it_close_all();
    if (ho_started && it_server_stop(&ho_srv) != 0)
        it_failed = 1;
    ho_started = 0;
    return 0;
}

/* The sum of `family` samples holding `label` on s's /metrics. */
static unsigned long long ho_metric(const struct it_server *s, const char *family,
                                    const char *label)
{
    int port = it_status_port(s);
    IT_CHECK(port > 0, "no status endpoint in the log");
    char *resp = it_http_get(port, "/metrics");
    IT_CHECK(resp, "GET /metrics failed");
    const char *body = strstr(resp, "\r\n\r\n");
    IT_CHECK(body, "no /metrics body");
    IT_CHECK(strstr(body, family), "/metrics lacks %s", family);
    return it_metric_sum(body + 4, family, label);
}

static void echo_session_moves(void **state)
{
    (void)state;
    struct it_server *s = ho_start("echo_moves", NULL);
    int fd;
    HO_CONNECT(s, fd);
    IT_ECHO(fd, "before the reload\n", 18);
    size_t off = ho_reload(s, NULL, 2);
    IT_CHECK(it_wait_log(s, off, "generation 1 drained in", 2000),
             "generation 1 still runs 2 s after the reload (its session was not "
             "handed over)");
    IT_CHECK(it_wait_log(s, off, "1 handed over, 0 finished on model handover_min", 0),
             "the drain's account is not \"1 handed over, 0 finished\"");
    IT_ECHO(fd, "after the reload\n", 17);
    off = ho_reload(s, NULL, 3); /* and once more, from the adopted side */
    IT_CHECK(it_wait_log(s, off, "generation 2 drained in", 2000),
             "generation 2 still runs 2 s after the second reload");
    IT_ECHO(fd, "after two reloads\n", 18);
    unsigned long long moved =
        ho_metric(s, "ioserve_connections_handed_over_total",
                  "from_model=\"handover_min\",to_model=\"handover_min\"");
    IT_CHECK(moved == 2, "ioserve_connections_handed_over_total = %llu, expected 2", moved);
    unsigned long long finished =
        ho_metric(s, "ioserve_connections_finished_on_old_total", NULL);
    IT_CHECK(finished == 0, "ioserve_connections_finished_on_old_total = %llu, expected 0",
             finished);
    ho_metric(s, "ioserve_last_drain_duration_seconds", NULL); /* present */
    it_close(fd);
}

static void http_half_head_travels(void **state)
{
    (void)state;
    static const char *const http[] = {"handler = \"http\";", NULL};
    struct it_server *s = ho_start("http_half_head", http);
    int fd;
    HO_CONNECT(s, fd);
    static const char req[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    char resp[512];
    size_t got;
    IT_CHECK(it_send_all(fd, req, sizeof req - 1, 2000) == 0, "send: %s", strerror(errno));
    IT_CHECK(it_recv_exact(fd, resp, 12, 2000, &got) == 12 &&
                 memcmp(resp, "HTTP/1.1 200", 12) == 0,
             "no 200 before the reload");
    /* The rest of the first response, then half of the next request. */
    it_recv_exact(fd, resp, sizeof resp, 300, &got);
    IT_CHECK(it_send_all(fd, "GET / HTTP/1.1\r\nHo", 18, 2000) == 0, "send: %s",
             strerror(errno));
    it_sleep_ms(100); /* received by generation 1, unconsumed */
    size_t off = ho_reload(s, http, 2);
    IT_CHECK(it_wait_log(s, off, "generation 1 drained in", 2000),
             "generation 1 still runs 2 s after the reload");
    IT_CHECK(it_wait_log(s, off, "1 handed over", 0), "the connection was not handed over");
    IT_CHECK(it_send_all(fd, "st: x\r\n\r\n", 9, 2000) == 0, "send: %s", strerror(errno));
    IT_CHECK(it_recv_exact(fd, resp, 12, 2000, &got) == 12 &&
                 memcmp(resp, "HTTP/1.1 200", 12) == 0,
             "the request completed after the hand-over got no 200 (got %zu bytes: %.12s)",
             got, resp);
    it_close(fd);
}

#define SPREAD_SESSIONS 30

static void sessions_spread(void **state)
{
    (void)state;
    static const char *const three[] = {"workers = 3;", NULL};
    struct it_server *s = ho_start("spread", three);
    int fds[SPREAD_SESSIONS];
    for (int i = 0; i < SPREAD_SESSIONS; i++) {
        HO_CONNECT(s, fds[i]);
        IT_ECHO(fds[i], "hello\n", 6);
    }
    size_t off = ho_reload(s, three, 2);
    IT_CHECK(it_wait_log(s, off, "generation 1 drained in", 3000),
             "generation 1 still runs 3 s after the reload");
    for (int i = 0; i < SPREAD_SESSIONS; i++)
        IT_ECHO(fds[i], "still here\n", 11);
    /* Round-robin: each of the three new workers holds a third. */
    for (int w = 0; w < 3; w++) {
        char label[64];
        snprintf(label, sizeof label, "generation=\"2\",worker=\"%d\"", w);
        unsigned long long active = ho_metric(s, "ioserve_connections_active", label);
        IT_CHECK(active == SPREAD_SESSIONS / 3,
                 "worker %d of generation 2 holds %llu sessions, expected %d", w, active,
                 SPREAD_SESSIONS / 3);
    }
    for (int i = 0; i < SPREAD_SESSIONS; i++)
        it_close(fds[i]);
}

/* A reload that must drain as before: the session stays on generation 1,
 * which ends only when it closes. */
static void no_hand_over(const char *name, const char *const *second, const char *why)
{
    struct it_server *s = ho_start(name, NULL);
    int fd;
    HO_CONNECT(s, fd);
    IT_ECHO(fd, "before\n", 7);
    size_t off = ho_reload(s, second, 2);
    IT_CHECK(it_wait_log(s, off, why, 0), "the log does not say \"%s\"", why);
    IT_CHECK(!it_wait_log(s, off, "generation 1 drained in", 500),
             "generation 1 ended with its session open");
    IT_ECHO(fd, "still generation 1\n", 19); /* echo, not upper */
    off = it_log_size(s);
    it_close(fd);
    IT_CHECK(it_wait_log(s, off, "0 handed over, 1 finished on model handover_min", 3000),
             "generation 1 did not end with \"0 handed over, 1 finished\" once its "
             "session closed");
    unsigned long long finished = ho_metric(s, "ioserve_connections_finished_on_old_total",
                                            "model=\"handover_min\"");
    IT_CHECK(finished == 1, "ioserve_connections_finished_on_old_total = %llu, expected 1",
             finished);
}

static void handler_change_drains(void **state)
{
    (void)state;
    static const char *const upper[] = {"handler = \"upper\";", NULL};
    no_hand_over("handler_change", upper, "handler changed echo -> upper: draining, not handing over");
}

static void handover_false_drains(void **state)
{
    (void)state;
    static const char *const off[] = {"handover = false;", NULL};
    no_hand_over("handover_false", off, "handover = false: draining, not handing over");
}

static void old_abi_drains(void **state)
{
    (void)state;
    char model[1200];
    ho_model_line(model, sizeof model, "handover_min_11.so");
    const char *const old[] = {model, NULL};
    no_hand_over("old_abi", old,
                 "model handover_min (ABI 1.1) does not adopt: draining, not handing over");
}

static void later_successor_takes_over(void **state)
{
    (void)state;
    static const char *const upper[] = {"handler = \"upper\";", NULL};
    struct it_server *s = ho_start("later", NULL);
    int fd;
    HO_CONNECT(s, fd);
    IT_ECHO(fd, "echo\n", 5);
    ho_reload(s, upper, 2); /* generation 1 drains and keeps the session */
    IT_ECHO(fd, "still echo\n", 11);
    size_t off = ho_reload(s, NULL, 3);
    IT_CHECK(it_wait_log(s, off, "generation 1: handing its 1 open connection(s) over to "
                                 "generation 3", 0),
             "generation 1 was not asked to hand over to generation 3");
    IT_CHECK(it_wait_log(s, off, "generation 1 drained in", 2000),
             "generation 1 still runs 2 s after generation 3 took over");
    IT_CHECK(it_wait_log(s, off, "1 handed over", 0), "generation 1 handed nothing over");
    IT_ECHO(fd, "on generation 3\n", 16);
    it_close(fd);
}

#define HO_TEST(f) cmocka_unit_test_teardown(f, ho_teardown)

int it_run_handover_host(void)
{
    const struct CMUnitTest tests[] = {
        HO_TEST(echo_session_moves),
        HO_TEST(http_half_head_travels),
        HO_TEST(sessions_spread),
        HO_TEST(handler_change_drains),
        HO_TEST(handover_false_drains),
        HO_TEST(old_abi_drains),
        HO_TEST(later_successor_takes_over),
    };
    return cmocka_run_group_tests_name("handover_host", tests, NULL, NULL);
}
