/* Global scenarios metrics, socket_activation, sd_notify: what the master
 * tells the outside world (Prometheus, systemd). */
#include "clients.h"
#include "harness.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

/* ================================================================ metrics */

static int name_char(char c, int first)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' ||
           (!first && c >= '0' && c <= '9');
}

/*
 * Checks the Prometheus text exposition format the way a scraper parses it:
 * every sample is NAME{LABEL="VALUE",...} NUMBER, every family has HELP and
 * TYPE before its samples, and a family's samples are not split (those of
 * a histogram are named NAME_bucket, NAME_sum and NAME_count, and each
 * bucket has an le label).
 */
static void check_exposition(const char *body)
{
    char families[64][96];
    int nfam = 0;
    char current[96] = "";
    int histogram = 0;
    const char *line = body;
    while (*line) {
        const char *end = strchr(line, '\n');
        IT_CHECK(end, "metrics: last line lacks a newline");
        char l[1024];
        size_t len = (size_t)(end - line);
        IT_CHECK(len < sizeof l, "metrics: line too long");
        memcpy(l, line, len);
        l[len] = '\0';
        line = end + 1;
        if (strncmp(l, "# HELP ", 7) == 0)
            continue;
        if (strncmp(l, "# TYPE ", 7) == 0) {
            char name[96], type[32];
            IT_CHECK(sscanf(l + 7, "%95s %31s", name, type) == 2, "bad TYPE line: %s", l);
            histogram = strcmp(type, "histogram") == 0;
            IT_CHECK(strcmp(type, "counter") == 0 || strcmp(type, "gauge") == 0 || histogram,
                     "unexpected type in: %s", l);
            for (int i = 0; i < nfam; i++)
                IT_CHECK(strcmp(families[i], name) != 0, "family %s declared twice", name);
            IT_CHECK(nfam < 64, "too many families");
            snprintf(families[nfam++], sizeof families[0], "%s", name);
            snprintf(current, sizeof current, "%s", name);
            continue;
        }
        IT_CHECK(l[0] != '#', "unexpected comment: %s", l);
        /* name */
        size_t i = 0;
        IT_CHECK(name_char(l[0], 1), "bad metric name in: %s", l);
        while (name_char(l[i], 0))
            i++;
        size_t flen = strlen(current);
        const char *suffix = l + flen;
        int in_family = i >= flen && strncmp(l, current, flen) == 0;
        int bucket = histogram && in_family && i == flen + 7 && strncmp(suffix, "_bucket", 7) == 0;
        if (histogram)
            in_family = in_family && (bucket || (i == flen + 4 && strncmp(suffix, "_sum", 4) == 0) ||
                                      (i == flen + 6 && strncmp(suffix, "_count", 6) == 0));
        else
            in_family = in_family && i == flen;
        IT_CHECK(in_family, "sample outside its family (after TYPE %s): %s", current, l);
        IT_CHECK(!bucket || strstr(l, ",le=\"") || strstr(l, "{le=\""), "bucket without le: %s", l);
        if (l[i] == '{') {
            i++;
            while (l[i] != '}') {
                IT_CHECK(name_char(l[i], 1), "bad label name in: %s", l);
                while (name_char(l[i], 0))
                    i++;
                IT_CHECK(l[i] == '=' && l[i + 1] == '"', "bad label in: %s", l);
                i += 2;
                while (l[i] && l[i] != '"')
                    i += l[i] == '\\' ? 2 : 1;
                IT_CHECK(l[i] == '"', "unterminated label value in: %s", l);
                i++;
                if (l[i] == ',')
                    i++;
            }
            i++;
        }
        IT_CHECK(l[i] == ' ', "no space before the value in: %s", l);
        char *num_end;
        strtod(l + i + 1, &num_end);
        IT_CHECK(num_end != l + i + 1 && *num_end == '\0', "bad value in: %s", l);
    }
}

static int metrics_setup(void **state)
{
    (void)state;
    static const char *const lines[] = {"status_listen = \"127.0.0.1:0\";", NULL};
    return it_group_start(lines);
}

static void wait_metric(int port, const char *family, unsigned long long want)
{
    unsigned long long got = 0;
    for (int i = 0; i < 200; i++) {
        char *body = it_http_get(port, "/metrics");
        const char *b = body ? strstr(body, "\r\n\r\n") : NULL;
        got = b ? it_metric_sum(b + 4, family, NULL) : 0;
        if (got == want)
            return;
        it_sleep_ms(20);
    }
    IT_FAIL("%s = %llu, expected %llu", family, got, want);
}

static void test_metrics_counts_a_known_load(void **state)
{
    (void)state;
    IT_BEGIN();
    int port = it_status_port(it_srv);
    IT_CHECK(port > 0, "no \"metrics on\" line in the log");

    char msg[100];
    memset(msg, 'm', sizeof msg);
    for (int i = 0; i < 5; i++) {
        int fd;
        IT_CONNECT(fd);
        IT_ECHO(fd, msg, sizeof msg);
        it_close(fd);
    }
    wait_metric(port, "ioserve_connections_closed_total", 5);

    char *resp = it_http_get(port, "/metrics");
    IT_CHECK(resp && strncmp(resp, "HTTP/1.1 200", 12) == 0, "GET /metrics: %s",
             resp ? resp : "no answer");
    IT_CHECK(strstr(resp, "Content-Type: text/plain; version=0.0.4"), "content type: %s", resp);
    const char *body = strstr(resp, "\r\n\r\n") + 4;
    check_exposition(body);
    assert_int_equal(it_metric_sum(body, "ioserve_connections_accepted_total", NULL), 5);
    assert_int_equal(it_metric_sum(body, "ioserve_received_bytes_total", NULL), 500);
    assert_int_equal(it_metric_sum(body, "ioserve_sent_bytes_total", NULL), 500);
    assert_int_equal(it_metric_sum(body, "ioserve_connections_active", NULL), 0);
    assert_int_equal(it_metric_sum(body, "ioserve_workers", "state=\"active\""), 1);
    assert_int_equal(it_metric_sum(body, "ioserve_reloads_total", NULL), 0);
    IT_CHECK(strstr(body, "model=\"" ) && strstr(body, it_env.model), "no model label");

    resp = it_http_get(port, "/nothing");
    IT_CHECK(resp && strncmp(resp, "HTTP/1.1 404", 12) == 0, "GET /nothing: %s",
             resp ? resp : "no answer");
}

/* Totals survive a reload (the ended generation's counters are kept), and
 * reloads and failed reloads are counted. */
static void test_metrics_across_reloads(void **state)
{
    (void)state;
    IT_BEGIN();
    int port = it_status_port(it_srv);
    char *argv[] = {(char *)it_env.bin, "-c", it_srv->cfg, "-s", "reload", NULL};
    char *out = NULL;
    int st = it_run(argv, 5000, NULL, &out, NULL);
    free(out);
    IT_CHECK(st == 0, "ioserve -s reload failed");
    wait_metric(port, "ioserve_reloads_total", 1);
    for (int i = 0; i < 200 && !it_log_contains(it_srv, "generation 2 serving"); i++)
        it_sleep_ms(20);
    IT_CHECK(it_log_contains(it_srv, "generation 2 serving"), "reload did not complete");
    /* Once generation 1 has ended (its own samples are gone), its
     * connections are still counted, under generation="ended". */
    cl_wait_metric(port, "ioserve_connections_accepted_total", "generation=\"1\"", 0);
    cl_wait_metric(port, "ioserve_connections_accepted_total", "generation=\"ended\"", 5);
    cl_wait_metric(port, "ioserve_connections_accepted_total", NULL, 5);

    /* A broken config: counted as a failed reload. */
    char *text = it_read_file(it_srv->cfg, NULL);
    assert_non_null(text);
    char *broken = malloc(strlen(text) + 32);
    sprintf(broken, "%s\nworkers = ;\n", text);
    assert_int_equal(it_write_file(it_srv->cfg, broken), 0);
    /* `-s reload` would refuse the broken file itself: signal directly. */
    kill(it_srv->pid, SIGHUP);
    wait_metric(port, "ioserve_reloads_failed_total", 1);

    /* A config that parses but whose `listen` cannot be bound (TEST-NET
     * is no address of this machine), with status_listen moved to another
     * loopback address: the reload fails, so the status endpoint must stay
     * where it is, and the master must listen nowhere new. */
    const char *listen_line = strstr(text, "\nlisten = \"127.0.0.1:0\";");
    const char *status_line = strstr(text, "status_listen = \"127.0.0.1:0\";");
    IT_CHECK(listen_line && status_line, "unexpected config:\n%s", text);
    char *moved = malloc(strlen(text) + 64);
    snprintf(moved, strlen(text) + 64, "%.*s\nlisten = \"192.0.2.1:1\";%.*s"
             "status_listen = \"127.0.0.2:0\";%s",
             (int)(listen_line - text), text,
             (int)(status_line - listen_line - strlen("\nlisten = \"127.0.0.1:0\";")),
             listen_line + strlen("\nlisten = \"127.0.0.1:0\";"),
             status_line + strlen("status_listen = \"127.0.0.1:0\";"));
    assert_int_equal(it_write_file(it_srv->cfg, moved), 0);
    kill(it_srv->pid, SIGHUP);
    wait_metric(port, "ioserve_reloads_failed_total", 2); /* still on the old port */
    struct it_sock socks[16];
    int n = it_tcp_sockets(it_srv->pid, socks, 16);
    IT_CHECK(n >= 0, "cannot read /proc/net/tcp");
    for (int i = 0; i < n && i < 16; i++)
        IT_CHECK(!socks[i].listening || socks[i].local.sin_addr.s_addr == htonl(INADDR_LOOPBACK),
                 "a failed reload opened a listening socket on %s:%d", inet_ntoa(socks[i].local.sin_addr),
                 ntohs(socks[i].local.sin_port));

    assert_int_equal(it_write_file(it_srv->cfg, text), 0);
    free(moved);
    free(broken);
    free(text);
}

int it_run_metrics(void)
{
    const struct CMUnitTest tests[] = {
        IT_TEST(test_metrics_counts_a_known_load),
        /* Reloading replaces the workers, which IT_TEST's teardown forbids. */
        cmocka_unit_test(test_metrics_across_reloads),
    };
    return cmocka_run_group_tests_name("metrics", tests, metrics_setup, it_group_teardown);
}

/* ====================================================== socket_activation */

struct activation_client {
    int port;
    int ok;
    atomic_bool done; /* the test is finished with the server */
    char err[600];
};

/*
 * After its echo the client stays connected but silent, so the server's
 * "idle for" line (idle_timeout = 1) tells the test the exchange is over;
 * it closes once the test has stopped the server.
 */
static void *activation_client(void *arg)
{
    struct activation_client *a = arg;
    int fd = -1;
    for (int i = 0; i < 200 && !a->ok; i++) {
        fd = it_connect_timeout(a->port, 5000);
        if (fd < 0) {
            it_sleep_ms(20);
            continue;
        }
        const char msg[] = "socket activated";
        if (it_roundtrip(fd, msg, sizeof msg - 1, msg, sizeof msg - 1, 10000) == 0) {
            a->ok = 1;
            break;
        }
        snprintf(a->err, sizeof a->err, "%s", it_errbuf);
        close(fd);
        fd = -1;
    }
    while (!atomic_load(&a->done))
        it_sleep_ms(10);
    if (fd >= 0)
        close(fd);
    return NULL;
}

static void test_socket_activation(void **state)
{
    (void)state;
    /* `listen` names another address: the passed socket must win. */
    static const char *const lines[] = {"listen = \"127.0.0.2:0\";", "log_level = \"debug\";",
                                        "idle_timeout = 1;", NULL};
    char *cfg = it_write_config("activated", lines);
    assert_non_null(cfg);
    /* The test binds the socket and holds it until ioserve has it, as
     * systemd does: its port cannot be taken by anyone meanwhile. */
    struct activation_client a = {0};
    int lfd = it_passed_socket(16, &a.port);
    IT_CHECK(lfd >= 0, "the socket to pass: %s", strerror(errno));
    char *argv[] = {(char *)it_env.bin, "-c", cfg, NULL};

    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, activation_client, &a), 0);
    char *out = NULL;
    /* Runs until the client's connection idles out; then it is stopped. */
    it_run_activated(argv, lfd, 10000, "idle for", &out, NULL);
    atomic_store(&a.done, true);
    pthread_join(t, NULL);
    it_close(lfd);
    free(cfg);
    static char log[8192];
    snprintf(log, sizeof log, "%s", out);
    free(out);
    char want[64];
    snprintf(want, sizeof want, "socket activation: serving 127.0.0.1:%d ", a.port);
    IT_CHECK(a.ok, "no echo through the activated socket: %s\n%s", a.err, log);
    IT_CHECK(strstr(log, want), "no \"%s\" in the log: %s", want, log);
}

/* Once ioserve serves on the passed socket, SIGQUIT to it (its pid from
 * the pid file). */
struct quitter {
    int port;
    char pid_file[600];
    int quit_sent;
};

static void *quit_when_serving(void *arg)
{
    struct quitter *q = arg;
    for (int i = 0; i < 200 && !q->quit_sent; i++) {
        int fd = it_connect_timeout(q->port, 2000);
        char *pid = NULL;
        if (fd >= 0 && it_roundtrip(fd, "up?", 3, "up?", 3, 5000) == 0)
            pid = it_read_file(q->pid_file, NULL);
        if (fd >= 0)
            close(fd);
        if (pid && atoi(pid) > 0 && kill(atoi(pid), SIGQUIT) == 0)
            q->quit_sent = 1;
        free(pid);
        if (!q->quit_sent)
            it_sleep_ms(20);
    }
    return NULL;
}

/*
 * -s quit with a socket from systemd: ioserve leaves the socket as it is
 * (no filter against new handshakes, ioserve(8)), so once it exited the
 * socket systemd (here, the test) holds still completes handshakes: what
 * arrives waits in its backlog for the next ioserve.
 */
static void test_socket_activation_quit(void **state)
{
    (void)state;
    static const char *const lines[] = {"workers = 1;", NULL};
    char *cfg = it_write_config("activated_quit", lines);
    assert_non_null(cfg);
    struct quitter q = {0};
    int lfd = it_passed_socket(16, &q.port);
    IT_CHECK(lfd >= 0, "the socket to pass: %s", strerror(errno));
    snprintf(q.pid_file, sizeof q.pid_file, "%s/activated_quit.pid", it_tmpdir());
    char *argv[] = {(char *)it_env.bin, "-c", cfg, NULL};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, quit_when_serving, &q), 0);
    char *out = NULL;
    int status = it_run_activated(argv, lfd, 10000, NULL, &out, NULL);
    pthread_join(t, NULL);
    free(cfg);
    static char log[8192];
    snprintf(log, sizeof log, "%s", out ? out : "");
    free(out);
    IT_CHECK(q.quit_sent, "ioserve never served on the passed socket: %s", log);
    IT_CHECK(status >= 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0,
             "ioserve did not exit 0 on SIGQUIT (status 0x%x): %s", status, log);
    int fd = it_connect_timeout(q.port, 1000);
    IT_CHECK(fd >= 0, "no handshake on the socket ioserve was passed, after its -s quit "
             "(%s): a filter left on it would make the next ioserve miss connections\n%s",
             strerror(errno), log);
    close(fd);
    it_close(lfd);
}

int it_run_socket_activation(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_socket_activation),
        cmocka_unit_test(test_socket_activation_quit),
    };
    return cmocka_run_group_tests_name("socket_activation", tests, NULL, NULL);
}

/* ============================================================== sd_notify */

static int notify_fd = -1;
static char notify_path[100]; /* fits sockaddr_un.sun_path */

/* Collects the datagrams the master sent to NOTIFY_SOCKET until one holds
 * `want`; returns them all (static buffer). */
static const char *notify_wait(const char *want)
{
    static char all[8192];
    size_t len = strlen(all);
    for (int64_t end = it_now_ms() + 10000; it_now_ms() < end;) {
        if (strstr(all, want))
            return all;
        char buf[1024];
        ssize_t n = recv(notify_fd, buf, sizeof buf - 1, MSG_DONTWAIT);
        if (n > 0 && len + (size_t)n + 2 < sizeof all) {
            memcpy(all + len, buf, (size_t)n);
            len += (size_t)n;
            all[len++] = '\n';
            all[len] = '\0';
        } else {
            it_sleep_ms(10);
        }
    }
    return all;
}

static int notify_setup(void **state)
{
    notify_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    snprintf(notify_path, sizeof notify_path, "%.80s/notify.sock", it_tmpdir());
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    memcpy(sa.sun_path, notify_path, strlen(notify_path) + 1);
    if (notify_fd < 0 || bind(notify_fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        it_log("notify socket: %s", strerror(errno));
        return -1;
    }
    setenv("NOTIFY_SOCKET", notify_path, 1); /* the server inherits it */
    int rc = it_group_start(NULL);
    unsetenv("NOTIFY_SOCKET");
    (void)state;
    return rc;
}

static int notify_teardown(void **state)
{
    int rc = it_group_teardown(state);
    if (notify_fd >= 0)
        close(notify_fd);
    unlink(notify_path);
    return rc;
}

static void test_notify_ready_reload_stop(void **state)
{
    (void)state;
    IT_BEGIN();
    const char *got = notify_wait("READY=1");
    IT_CHECK(strstr(got, "READY=1"), "no READY=1; got:\n%s", got);
    IT_CHECK(strstr(got, "STATUS=serving 127.0.0.1:"), "no STATUS line; got:\n%s", got);

    char *argv[] = {(char *)it_env.bin, "-c", it_srv->cfg, "-s", "reload", NULL};
    char *out = NULL;
    IT_CHECK(it_run(argv, 5000, NULL, &out, NULL) == 0, "-s reload failed: %s", out);
    free(out);
    got = notify_wait("RELOADING=1");
    IT_CHECK(strstr(got, "RELOADING=1"), "no RELOADING=1; got:\n%s", got);
    IT_CHECK(strstr(got, "MONOTONIC_USEC="), "no MONOTONIC_USEC; got:\n%s", got);
    got = notify_wait("(generation 2)");
    IT_CHECK(strstr(strstr(got, "RELOADING=1"), "READY=1"), "no READY=1 after the reload:\n%s",
             got);

    kill(it_srv->pid, SIGQUIT);
    got = notify_wait("STOPPING=1");
    IT_CHECK(strstr(got, "STOPPING=1"), "no STOPPING=1; got:\n%s", got);
    for (int i = 0; i < 500 && it_server_alive(it_srv); i++)
        it_sleep_ms(10);
    IT_CHECK(!it_server_alive(it_srv), "the master did not exit after SIGQUIT");
    IT_CHECK(WIFEXITED(it_srv->status) && WEXITSTATUS(it_srv->status) == 0,
             "SIGQUIT: exit status 0x%x", it_srv->status);
}

int it_run_sd_notify(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_notify_ready_reload_stop),
    };
    return cmocka_run_group_tests_name("sd_notify", tests, notify_setup, notify_teardown);
}
