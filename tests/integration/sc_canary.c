/*
 * The A/B split (issue 13 item 1): `canary = { model; share; }` serves
 * `share` % of new connections with the canary model.
 *
 * Per pair of models MAIN:CANARY (scenarios.cmake: the scenario's model is
 * MAIN, IOSERVE_CANARY names CANARY):
 *   canary_split    10,000 connections, each an echo round trip, with
 *                   workers = 1 and with workers = 3 (canary.workers = 2):
 *                   the canary model accepted `share` % of them within 2
 *                   points (/metrics ioserve_connections_accepted_total by
 *                   model: a routed connection counts for the model that
 *                   serves it, never for the one that routed it)
 *   canary_promote  long-lived upper sessions on both sides, talking all
 *                   along: promotion (model = CANARY, no canary, reload)
 *                   and rollback (back to MAIN with the split, then MAIN
 *                   alone) lose no session and no byte, and afterwards every
 *                   session is open on the last generation
 * Global (model epoll):
 *   canary_off      -t and --list-models show a split; a canary that cannot
 *                   serve (its plugin refused, or of ABI 1.1: cannot adopt)
 *                   leaves the main model serving everything, counted as a
 *                   fallback; -t says so; a canary worker that crashes or is
 *                   late to start is given up, not the generation
 *   canary_bad      a bad `canary` is refused with FILE:LINE and a reason,
 *                   by -t and on reload (the old generation keeps serving)
 *   canary_systemd  the split on a socket passed as systemd does (20 % of
 *                   1,000 connections +- 2 points), and STATUS= shows it
 * Every server is stopped and reaped by the teardown, every client closed.
 */
#include "clients.h"
#include "harness.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#define CN_CONNECTIONS 10000
#define CN_BATCH 50    /* connections open at once */
#define CN_SLACK 200   /* 2 points of 10,000 */
#define CN_SESSIONS 40

static struct it_server cn_srv[2];
static int cn_nsrv;
static int cn_passed;

/* The canary model of the pair (IOSERVE_CANARY). */
static const char *cn_canary(void)
{
    const char *c = getenv("IOSERVE_CANARY");
    return c && *c ? c : "poll";
}

static int cn_setup(void **state)
{
    (void)state;
    char why[1024];
    if (strcmp(cn_canary(), it_env.model) == 0)
        return it_skip_scenario("the canary model is the main model (%s)", it_env.model);
    if (it_model_unavailable(cn_canary(), why, sizeof why))
        return it_skip_scenario("canary %s", why);
    return 0;
}

static int cn_teardown(void **state)
{
    (void)state;
    it_close_all();
    it_stop_servers(cn_srv, cn_nsrv, !cn_passed);
    cn_nsrv = 0;
    cn_passed = 0;
    return 0;
}

/* Config `name`: the main model, `handler`, `workers`, and `canary` (a
 * whole "canary = {...};" line, or NULL for none). */
static char *cn_write(const char *name, const char *model, const char *handler, int workers,
                      const char *canary)
{
    char m[1200], h[64], w[64];
    snprintf(m, sizeof m, "model = \"%s\";", model);
    snprintf(h, sizeof h, "handler = \"%s\";", handler);
    snprintf(w, sizeof w, "workers = %d;", workers);
    const char *const lines[] = {m,
                                 h,
                                 w,
                                 "max_connections = 4096;",
                                 "drain_timeout = 5;",
                                 "status_listen = \"127.0.0.1:0\";",
                                 canary,
                                 NULL};
    return it_write_config(name, lines);
}

static struct it_server *cn_start(const char *name, const char *model, const char *handler,
                                  int workers, const char *canary)
{
    IT_CHECK(cn_nsrv < 2, "more than 2 servers in one test");
    char *cfg = cn_write(name, model, handler, workers, canary);
    IT_CHECK(cfg, "cannot write config %s", name);
    struct it_server *s = &cn_srv[cn_nsrv++];
    int rc = it_server_start(s, cfg);
    free(cfg);
    IT_CHECK(rc == 0, "server %s did not start (see its log above)", name);
    return s;
}

static long long cn_metric(const struct it_server *s, const char *family, const char *label)
{
    int port = it_status_port(s);
    IT_CHECK(port > 0, "no \"metrics on\" line in the log");
    return cl_scrape(port, family, label);
}

/* Connections accepted for `model` (by every generation). */
static long long cn_accepted(const struct it_server *s, const char *model)
{
    char label[96];
    snprintf(label, sizeof label, "model=\"%s\"", model);
    return cn_metric(s, "ioserve_connections_accepted_total", label);
}

/* ============================================================ the split */

/* n connections to `port`, CN_BATCH at a time, each an echo round trip
 * then closed.  0, or -1 with why in err (the first not served).  Touches
 * no harness state: a thread may run it. */
static int cn_try_connections(int port, int n, char *err, size_t errlen)
{
    int fds[CN_BATCH];
    int64_t end = it_now_ms() + 60000;
    for (int done = 0; done < n;) {
        int k = n - done < CN_BATCH ? n - done : CN_BATCH, bad = -1;
        for (int i = 0; i < k; i++) {
            fds[i] = it_connect_timeout(port, 5000);
            if (fds[i] < 0 || it_send_all(fds[i], "ping\n", 5, 5000) != 0) {
                snprintf(err, errlen, "connection %d: %s: %s", done + i,
                         fds[i] < 0 ? "connect" : "send", strerror(errno));
                for (int j = 0; j <= i; j++)
                    if (fds[j] >= 0)
                        close(fds[j]);
                return -1;
            }
        }
        for (int i = 0; i < k; i++) {
            char buf[5];
            ssize_t got = it_recv_exact(fds[i], buf, 5, 5000, NULL);
            if (bad < 0 && !(got == 5 && memcmp(buf, "ping\n", 5) == 0)) {
                bad = done + i;
                snprintf(err, errlen, "connection %d: no echo (got %zd bytes: %s)", bad, got,
                         strerror(errno));
            }
            close(fds[i]);
        }
        if (bad >= 0)
            return -1;
        done += k;
        if (it_now_ms() >= end) {
            snprintf(err, errlen, "%d connections took over 60 s", done);
            return -1;
        }
    }
    return 0;
}

/* The same, failing the test. */
static void cn_connections(const struct it_server *s, int n)
{
    char err[256];
    IT_CHECK(cn_try_connections(s->port, n, err, sizeof err) == 0, "%s", err);
}

/* One server, `workers` main workers, a canary of `share` %: the canary
 * serves share % of CN_CONNECTIONS, within 2 points. */
static void cn_split(const char *name, int workers, unsigned share, int canary_workers)
{
    char canary[256];
    snprintf(canary, sizeof canary, "canary = { model = \"%s\"; share = %u; workers = %d; };",
             cn_canary(), share, canary_workers);
    struct it_server *s = cn_start(name, it_env.model, "echo", workers, canary);
    char says[192];
    snprintf(says, sizeof says, "canary %s for %u%% of new connections (%d worker", cn_canary(),
             share, canary_workers);
    IT_CHECK(it_log_contains(s, says), "the startup line does not show the split (\"%s\")",
             says);
    IT_CHECK(cn_metric(s, "ioserve_canary_share_percent", NULL) == share,
             "ioserve_canary_share_percent is not %u", share);

    int64_t t0 = it_now_ms();
    cn_connections(s, CN_CONNECTIONS);
    long long on_main = cn_accepted(s, it_env.model), on_canary = cn_accepted(s, cn_canary());
    long long want = (long long)CN_CONNECTIONS * share / 100;
    it_log("%s: %d connections in %lld ms: %lld on %s, %lld on %s (want %lld +- %d)", name,
           CN_CONNECTIONS, (long long)(it_now_ms() - t0), on_main, it_env.model, on_canary,
           cn_canary(), want, CN_SLACK);
    IT_CHECK(on_main + on_canary == CN_CONNECTIONS,
             "%lld + %lld connections accepted, not %d", on_main, on_canary, CN_CONNECTIONS);
    IT_CHECK(on_canary >= want - CN_SLACK && on_canary <= want + CN_SLACK,
             "the canary %s served %lld of %d connections: not %u %% +- 2 points", cn_canary(),
             on_canary, CN_CONNECTIONS, share);
    IT_CHECK(cn_metric(s, "ioserve_connections_refused_total", NULL) == 0,
             "connections were refused");
    /* Routed connections are not hand-overs. */
    IT_CHECK(cn_metric(s, "ioserve_connections_handed_over_total", NULL) == 0,
             "routed connections counted as handed over");
}

static void test_split_one_worker(void **state)
{
    (void)state;
    cn_split("split-1", 1, 10, 1);
    cn_passed = 1;
}

static void test_split_workers(void **state)
{
    (void)state;
    cn_split("split-3", 3, 25, 2);
    cn_passed = 1;
}

int it_run_canary_split(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_split_one_worker, cn_teardown),
        cmocka_unit_test_teardown(test_split_workers, cn_teardown),
    };
    return cmocka_run_group_tests_name("canary_split", tests, cn_setup, NULL);
}

/* ====================================================== promote, roll back */

struct cn_session {
    int fd;
    unsigned seq;
};

/* Every session sends one line and reads its reply, upper-cased.  Fails
 * the test on the first broken one. */
static void cn_round(struct cn_session *ss, int n)
{
    char line[CN_SESSIONS][64];
    int len[CN_SESSIONS];
    IT_CHECK(n <= CN_SESSIONS, "cn_round: %d sessions", n);
    for (int i = 0; i < n; i++) {
        len[i] = snprintf(line[i], sizeof line[i], "session %d line %u\n", i, ss[i].seq++);
        IT_CHECK(it_send_all(ss[i].fd, line[i], (size_t)len[i], 5000) == 0,
                 "session %d: send: %s", i, strerror(errno));
    }
    for (int i = 0; i < n; i++) {
        char want[64], got[64];
        for (int j = 0; j < len[i]; j++)
            want[j] = (char)((line[i][j] >= 'a' && line[i][j] <= 'z') ? line[i][j] - 32
                                                                     : line[i][j]);
        ssize_t r = it_recv_exact(ss[i].fd, got, (size_t)len[i], 5000, NULL);
        IT_CHECK(r == len[i] && memcmp(got, want, (size_t)len[i]) == 0,
                 "session %d, line %u: broken (got %zd of %d bytes: %s)", i, ss[i].seq - 1, r,
                 len[i], r < 0 ? strerror(errno) : "wrong bytes");
    }
}

/* Open connections of generation `gen`. */
static long long cn_active(const struct it_server *s, unsigned gen)
{
    char label[64];
    snprintf(label, sizeof label, "generation=\"%u\"", gen);
    return cn_metric(s, "ioserve_connections_active", label);
}

/* Reloads s to config `name` (written as given) while the sessions keep
 * talking; returns once generation `gen` serves and holds every session,
 * the older ones gone.  A connection opened meanwhile is served too. */
static void cn_reload(struct it_server *s, const char *name, const char *model,
                      const char *canary, unsigned gen, struct cn_session *ss, int n)
{
    char *cfg = cn_write(name, model, "upper", 2, canary);
    IT_CHECK(cfg, "cannot write config %s", name);
    free(cfg);
    size_t off = it_log_size(s);
    IT_CHECK(kill(s->pid, SIGHUP) == 0, "SIGHUP: %s", strerror(errno));
    char serving[64];
    snprintf(serving, sizeof serving, "generation %u serving", gen);
    int64_t end = it_now_ms() + 15000;
    while (!it_wait_log(s, off, serving, 1))
        cn_round(ss, n);
    for (;;) {
        cn_round(ss, n);
        int fd = it_connect(s->port);
        IT_CHECK(fd >= 0, "a new connection during the reload: %s", it_errbuf);
        IT_CHECK(it_roundtrip(fd, "new\n", 4, "NEW\n", 4, 5000) == 0,
                 "a new connection during the reload: %s", it_errbuf);
        it_close(fd);
        if (cn_active(s, gen) == n && cn_metric(s, "ioserve_connections_active", NULL) == n &&
            cn_metric(s, "ioserve_workers", "state=\"draining\"") == 0)
            break;
        IT_CHECK(it_now_ms() < end, "generation %u does not hold the %d sessions (%lld) "
                 "within 15 s", gen, n, cn_active(s, gen));
    }
}

static void test_promote_and_roll_back(void **state)
{
    (void)state;
    const char *a = it_env.model, *b = cn_canary();
    char split[256];
    snprintf(split, sizeof split, "canary = { model = \"%s\"; share = 50; workers = 2; };", b);
    struct it_server *s = cn_start("promote", a, "upper", 2, split);

    struct cn_session ss[CN_SESSIONS];
    for (int i = 0; i < CN_SESSIONS; i++) {
        ss[i].fd = it_connect(s->port);
        ss[i].seq = 0;
        IT_CHECK(ss[i].fd >= 0, "session %d: %s", i, it_errbuf);
        cn_round(&ss[i], 1); /* accepted and served before the next one */
    }
    char label[96];
    snprintf(label, sizeof label, "model=\"%s\"", b);
    long long on_b = cn_metric(s, "ioserve_connections_active", label);
    IT_CHECK(on_b == CN_SESSIONS / 2, "%lld of %d sessions on the canary %s, not half", on_b,
             CN_SESSIONS, b);

    /* Promotion: the canary's model serves everything. */
    cn_reload(s, "promote", b, NULL, 2, ss, CN_SESSIONS);
    snprintf(label, sizeof label, "model=\"%s\",generation=\"2\"", b);
    IT_CHECK(cn_metric(s, "ioserve_connections_active", label) == CN_SESSIONS,
             "after the promotion not every session is on %s", b);
    IT_CHECK(cn_metric(s, "ioserve_canary_share_percent", NULL) == 0,
             "a share is still exported without a canary");
    /* Split again, then roll back to the main model alone. */
    cn_reload(s, "promote", a, split, 3, ss, CN_SESSIONS);
    cn_reload(s, "promote", a, NULL, 4, ss, CN_SESSIONS);
    snprintf(label, sizeof label, "model=\"%s\",generation=\"4\"", a);
    IT_CHECK(cn_metric(s, "ioserve_connections_active", label) == CN_SESSIONS,
             "after the rollback not every session is on %s", a);
    for (int r = 0; r < 5; r++)
        cn_round(ss, CN_SESSIONS);
    it_log("%d sessions, %u lines each, through promotion and rollback", CN_SESSIONS,
           ss[0].seq);
    for (int i = 0; i < CN_SESSIONS; i++)
        it_close(ss[i].fd);
    cn_passed = 1;
}

int it_run_canary_promote(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_promote_and_roll_back, cn_teardown),
    };
    return cmocka_run_group_tests_name("canary_promote", tests, cn_setup, NULL);
}

/* ======================================================= a canary that is off */

/* -t on config `cfg`: its exit status and output (malloc'd). */
static int cn_check(const char *cfg, char **out)
{
    char *argv[] = {(char *)it_env.bin, "-c", (char *)cfg, "-t", NULL};
    return it_run(argv, 15000, NULL, out, NULL);
}

/* A canary of model `canary` that cannot serve: epoll serves all of 200
 * connections, the fallback is counted for `model_label` (NULL: for some
 * model), -t says it. */
static void cn_off(const char *name, const char *canary, const char *model_label,
                   const char *check_says)
{
    char line[1400];
    snprintf(line, sizeof line, "canary = { model = \"%s\"; share = 30; };", canary);
    char *cfg = cn_write(name, "epoll", "echo", 2, line);
    IT_CHECK(cfg, "cannot write config %s", name);
    char *out = NULL;
    int st = cn_check(cfg, &out);
    IT_CHECK(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0,
             "-t with a canary that cannot serve: expected exit 0, got %d:\n%s", st, out);
    IT_CHECK(strstr(out, check_says), "-t does not say \"%s\":\n%s", check_says, out);
    IT_CHECK(strstr(out, "no split: model epoll would serve every connection"),
             "-t does not say the main model serves everything:\n%s", out);
    free(out);
    free(cfg);

    struct it_server *s = cn_start(name, "epoll", "echo", 2, line);
    IT_CHECK(it_log_contains(s, "(model epoll for every connection (canary"),
             "the startup line does not say the split is off");
    IT_CHECK(it_log_contains(s, "epoll serves every connection"), "the log does not say why");
    cn_connections(s, 200);
    IT_CHECK(cn_accepted(s, "epoll") == 200, "epoll accepted %lld of 200",
             cn_accepted(s, "epoll"));
    char label[256];
    snprintf(label, sizeof label, "model=\"%s\"", model_label ? model_label : "");
    IT_CHECK(cn_metric(s, "ioserve_model_fallbacks_total", model_label ? label : NULL) >= 1,
             "the canary's failure is not counted as a fallback (of %s)",
             model_label ? model_label : "any model");
    IT_CHECK(cn_metric(s, "ioserve_canary_share_percent", NULL) == 0,
             "the share of a canary that is off is not 0");
    /* a canary worker that is off does not stay */
    cl_wait_metric(it_status_port(s), "ioserve_workers", "state=\"active\"", 2);
}

static void test_off_plugin_refused(void **state)
{
    (void)state;
    char so[1024];
    snprintf(so, sizeof so, "%s/bad_abi.so", it_env.bad_plugin_dir ? it_env.bad_plugin_dir : "");
    IT_CHECK(access(so, R_OK) == 0, "%s is not built", so);
    /* (the fallback's model label is the path, cut to 63 bytes: any) */
    cn_off("off-refused", so, NULL, "would not start");
    cn_passed = 1;
}

static void test_off_cannot_adopt(void **state)
{
    (void)state;
    const char *so = getenv("IOSERVE_ABI11_PLUGIN");
    IT_CHECK(so && access(so, R_OK) == 0, "IOSERVE_ABI11_PLUGIN is not built");
    cn_off("off-abi11", so, "ppoll11", "cannot adopt connections");
    cn_passed = 1;
}

/* -t and --list-models show a split that works. */
static void test_check_and_list_show_split(void **state)
{
    (void)state;
    char *cfg = cn_write("shown", "epoll", "echo", 4,
                         "canary = { model = \"poll\"; share = 30; };");
    IT_CHECK(cfg, "cannot write the config");
    char *out = NULL;
    int st = cn_check(cfg, &out);
    IT_CHECK(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0 &&
                 strstr(out, "canary model poll starts") &&
                 strstr(out, "split: model epoll, canary poll for 30% of new connections "
                             "(2 workers)"),
             "-t does not show the split (status %d):\n%s", st, out);
    free(out);
    char *argv[] = {(char *)it_env.bin, "-c", cfg, "--list-models", NULL};
    st = it_run(argv, 15000, NULL, &out, NULL);
    IT_CHECK(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0 &&
                 strstr(out, ": model epoll, canary poll for 30% of new connections (2 workers)"),
             "--list-models does not show the split (status %d):\n%s", st, out);
    free(out);
    free(cfg);
    cn_passed = 1;
}

/* A canary worker that crashes before it is ready, or is not ready when
 * the generation's start deadline (10 s) passes, is given up: the
 * generation serves all the same, with the canary workers that are. */
static void test_late_or_crashing_canary(void **state)
{
    (void)state;
    char canary[1400];
    snprintf(canary, sizeof canary,
             "canary = { model = \"%s/late_ready.so\"; share = 10; workers = 2; };",
             it_env.bad_plugin_dir ? it_env.bad_plugin_dir : "");
    static const char *const knob[] = {"models = { late_ready = { crash = true; }; };",
                                       "models = { late_ready = { ready_delay_ms = 60000; }; };"};
    static const char *const says[] = {"a canary worker of model ",
                                       "did not report ready in time"};
    for (int i = 0; i < 2; i++) {
        const char *const lines[] = {"model = \"epoll\";", canary, knob[i], NULL};
        char *cfg = it_write_config("late", lines);
        IT_CHECK(cfg, "cannot write the config");
        char *argv[] = {(char *)it_env.bin, "-c", cfg, NULL};
        char *out = NULL;
        int st = it_run(argv, 20000, "listening on", &out, NULL);
        free(cfg);
        int ok = st == -1 && strstr(out, "listening on") && strstr(out, says[i]) &&
                 strstr(out, "canary") && !strstr(out, "failed to start");
        IT_CHECK(ok, "with %s the generation did not start without the canary worker "
                     "(status %d):\n%s", knob[i], st, out);
        free(out);
    }
    cn_passed = 1;
}

int it_run_canary_off(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_check_and_list_show_split, cn_teardown),
        cmocka_unit_test_teardown(test_off_plugin_refused, cn_teardown),
        cmocka_unit_test_teardown(test_off_cannot_adopt, cn_teardown),
        cmocka_unit_test_teardown(test_late_or_crashing_canary, cn_teardown),
    };
    return cmocka_run_group_tests_name("canary_off", tests, NULL, NULL);
}

/* ============================================================ bad configs */

static const struct {
    const char *canary, *says;
} cn_bad[] = {
    {"canary = { model = \"nosuchmodel\"; share = 10; };", "unknown model 'nosuchmodel'"},
    {"canary = { model = \"poll\"; share = 0; };", "'canary.share' must be an integer from 1 to 99"},
    {"canary = { model = \"poll\"; share = 100; };", "'canary.share' must be an integer from 1 to 99"},
    {"canary = { model = \"epoll\"; share = 10; };", "which 'model' already names"},
    {"canary = { model = \"poll\"; };", "'canary' needs 'share'"},
    {"canary = { share = 10; };", "'canary' needs 'model'"},
    {"canary = \"poll\";", "'canary' must be a group"},
};

/* "PATH:LINE: " + says, in text. */
static int cn_refused_at(const char *text, const char *path, const char *says)
{
    for (const char *p = strstr(text, path); p; p = strstr(p + 1, path)) {
        const char *q = p + strlen(path);
        if (*q++ != ':' || *q < '1' || *q > '9')
            continue;
        while (*q >= '0' && *q <= '9')
            q++;
        if (strncmp(q, ": ", 2) == 0 && strstr(q, says) && strchr(q, '\n') > strstr(q, says))
            return 1;
    }
    return 0;
}

static void test_bad_refused_by_check(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof cn_bad / sizeof cn_bad[0]; i++) {
        char *cfg = cn_write("bad-check", "epoll", "echo", 1, cn_bad[i].canary);
        IT_CHECK(cfg, "cannot write the config");
        char *out = NULL;
        int st = cn_check(cfg, &out);
        int ok = st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 1 &&
                 cn_refused_at(out, cfg, cn_bad[i].says);
        IT_CHECK(ok, "-t on `%s`: expected exit 1 and \"%s:LINE: ...%s\", got status %d:\n%s",
                 cn_bad[i].canary, cfg, cn_bad[i].says, st, out);
        free(out);
        free(cfg);
    }
    cn_passed = 1;
}

static void test_bad_refused_on_reload(void **state)
{
    (void)state;
    struct it_server *s = cn_start("bad-reload", "epoll", "echo", 1, NULL);
    int fd = it_connect(s->port);
    IT_CHECK(fd >= 0, "%s", it_errbuf);
    for (size_t i = 0; i < sizeof cn_bad / sizeof cn_bad[0]; i++) {
        char *cfg = cn_write("bad-reload", "epoll", "echo", 1, cn_bad[i].canary);
        IT_CHECK(cfg, "cannot write the config");
        size_t off = it_log_size(s);
        IT_CHECK(kill(s->pid, SIGHUP) == 0, "SIGHUP: %s", strerror(errno));
        IT_CHECK(it_wait_log(s, off, "keeping the current configuration", 5000),
                 "a reload to `%s` was not refused", cn_bad[i].canary);
        char *log = it_log_since(s, off);
        int at = cn_refused_at(log, cfg, cn_bad[i].says);
        free(log);
        free(cfg);
        IT_CHECK(at, "the refused reload to `%s` does not say \"FILE:LINE: ...%s\"",
                 cn_bad[i].canary, cn_bad[i].says);
        IT_ECHO(fd, "still here", 10); /* the old generation keeps serving */
    }
    IT_CHECK(cn_metric(s, "ioserve_workers", "generation=\"1\",state=\"active\"") == 1,
             "generation 1 is not serving any more");
    it_close(fd);
    cn_passed = 1;
}

int it_run_canary_bad(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_bad_refused_by_check, cn_teardown),
        cmocka_unit_test_teardown(test_bad_refused_on_reload, cn_teardown),
    };
    return cmocka_run_group_tests_name("canary_bad", tests, NULL, NULL);
}

/* ============================================= a socket passed by systemd */

struct cn_activated {
    int port;        /* the passed socket's */
    const char *dir; /* where it_run_activated writes the server's output */
    long long on_main, on_canary;
    int ok;
    char err[512];
    atomic_bool done; /* the test is finished with the server */
};

/* The status port of the server whose output is in a cmd*.out of dir. */
static int cn_find_status_port(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int port = 0;
    while (d && !port && (e = readdir(d))) {
        if (strncmp(e->d_name, "cmd", 3) != 0)
            continue;
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        char *text = it_read_file(path, NULL);
        const char *p = text ? strstr(text, "metrics on http://127.0.0.1:") : NULL;
        if (p && text && strstr(text, "listening on"))
            port = atoi(p + strlen("metrics on http://127.0.0.1:"));
        free(text);
    }
    if (d)
        closedir(d);
    return port;
}

/* Waits for the server, makes 1,000 connections, reads the counts; then
 * stays connected and silent, so that the server's "idle for" line tells
 * the test it is over. */
static void *cn_activated_client(void *arg)
{
    struct cn_activated *a = arg;
    int status = 0, fd = -1;
    for (int64_t end = it_now_ms() + 10000; !status && it_now_ms() < end; it_sleep_ms(10))
        status = cn_find_status_port(a->dir);
    if (!status)
        snprintf(a->err, sizeof a->err, "the server did not start within 10 s");
    else if (cn_try_connections(a->port, 1000, a->err, sizeof a->err) == 0) {
        a->on_main = cl_scrape(status, "ioserve_connections_accepted_total", "model=\"epoll\"");
        a->on_canary = cl_scrape(status, "ioserve_connections_accepted_total", "model=\"poll\"");
        a->ok = 1;
    }
    if (a->ok)
        fd = it_connect_timeout(a->port, 5000);
    while (!atomic_load(&a->done))
        it_sleep_ms(10);
    if (fd >= 0)
        close(fd);
    return NULL;
}

static void test_split_on_passed_socket(void **state)
{
    (void)state;
    static const char *const lines[] = {"model = \"epoll\";", "workers = 2;",
                                        "idle_timeout = 1;", "log_level = \"debug\";",
                                        "status_listen = \"127.0.0.1:0\";",
                                        "canary = { model = \"poll\"; share = 20; };", NULL};
    char *cfg = it_write_config("activated", lines);
    assert_non_null(cfg);
    struct cn_activated a = {.dir = it_tmpdir()};
    int lfd = it_passed_socket(128, &a.port);
    IT_CHECK(lfd >= 0, "the socket to pass: %s", strerror(errno));
    /* systemd's notify socket too: STATUS= shows the split */
    int nfd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un un = {.sun_family = AF_UNIX};
    snprintf(un.sun_path, sizeof un.sun_path, "%.80s/notify.sock", it_tmpdir());
    IT_CHECK(nfd >= 0 && bind(nfd, (struct sockaddr *)&un, sizeof un) == 0,
             "the notify socket: %s", strerror(errno));
    it_track(nfd);

    char *argv[] = {(char *)it_env.bin, "-c", cfg, NULL};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, cn_activated_client, &a), 0);
    char *out = NULL;
    setenv("NOTIFY_SOCKET", un.sun_path, 1);
    it_run_activated(argv, lfd, 30000, "idle for", &out, NULL);
    unsetenv("NOTIFY_SOCKET");
    atomic_store(&a.done, true);
    pthread_join(t, NULL);
    char notes[4096] = "";
    size_t len = 0;
    ssize_t n;
    while (len + 1 < sizeof notes &&
           (n = recv(nfd, notes + len, sizeof notes - 1 - len, MSG_DONTWAIT)) > 0)
        len += (size_t)n;
    notes[len] = '\0';
    it_close(nfd);
    it_close(lfd);
    free(cfg);
    static char log[16384];
    snprintf(log, sizeof log, "%s", out ? out : "");
    free(out);
    IT_CHECK(a.ok, "through the passed socket: %s\n%s", a.err, log);
    it_log("passed socket: 1000 connections: %lld on epoll, %lld on poll", a.on_main,
           a.on_canary);
    IT_CHECK(a.on_main + a.on_canary == 1000 && a.on_canary >= 180 && a.on_canary <= 220,
             "1000 connections: %lld on epoll, %lld on the canary poll: not 20 %% +- 2 points",
             a.on_main, a.on_canary);
    IT_CHECK(strstr(notes, "with model epoll, canary poll for 20% of new connections"),
             "STATUS= does not show the split:\n%s", notes);
}

int it_run_canary_systemd(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_split_on_passed_socket),
    };
    return cmocka_run_group_tests_name("canary_systemd", tests, NULL, NULL);
}
