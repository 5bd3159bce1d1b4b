/*
 * /healthz and /readyz of the status endpoint in each state of the server
 * (ioserve(8), HEALTH ENDPOINTS).
 *
 * Per-model scenario health (it.<model>.health), workers = 1:
 *   serving      both 200, naming the generation and the model;
 *   no worker up the worker killed until its respawn waits 2 s: /readyz
 *                503 "no worker up", /healthz 200 "respawning", then both
 *                200 again once the new worker is ready, and it serves;
 *   quitting     -s quit with a connection held open (the drain in
 *                progress): /readyz 503 "stopping", /healthz 200 while the
 *                held connection is still served; the master exits once
 *                it closes.
 * Global scenario health_master (it.health_master):
 *   start-up     a generation whose second worker is slow to report ready
 *                (the test plugin late_ready): both 503 "starting" before
 *                the server serves, 200 once every worker is ready;
 *   load and garbage  the probes keep answering at once while clients
 *                load the workers and others send the status port
 *                garbage, half requests and idle connections.
 */
#include "clients.h"
#include "harness.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>

/* ============================================================ health */

static int port; /* the status endpoint */

static int health_setup(void **state)
{
    (void)state;
    static const char *const lines[] = {"status_listen = \"127.0.0.1:0\";", "workers = 1;",
                                        "drain_timeout = 30;", NULL};
    int rc = it_group_start(lines);
    if (rc == 0 && it_srv)
        port = it_status_port(it_srv);
    return rc;
}

static void serving(void **state)
{
    (void)state;
    IT_BEGIN();
    IT_CHECK(port > 0, "no \"metrics on\" line in the log");
    char want[128];
    snprintf(want, sizeof want, "ready: generation 1 serving with model %s, 1 of 1",
             it_env.model);
    cl_wait_probe(port, "/readyz", 200, want, 3000, NULL, 0);
    cl_wait_probe(port, "/healthz", 200, "ok: generation 1 serving, 1 of 1", 3000, NULL, 0);
    int fd;
    IT_CONNECT(fd);
    IT_ECHO(fd, "ready and serving", 17);
}

static void no_worker_up(void **state)
{
    (void)state;
    IT_BEGIN();
    IT_CHECK(port > 0, "no \"metrics on\" line in the log");
    it_kill_until_respawn_waits(it_srv, "2000 ms");
    char body[512];
    cl_wait_probe(port, "/readyz", 503, "no worker up: generation 1 lost its 1 worker(s)", 1000,
                  body, sizeof body);
    it_log("/readyz while the worker waits out its respawn: %s", body);
    cl_wait_probe(port, "/healthz", 200, "ok: generation 1 serving, 0 of 1 worker(s) up, "
                  "respawning", 1000, NULL, 0);
    cl_wait_probe(port, "/readyz", 200, "ready: generation 1 serving", 5000, NULL, 0);
    cl_wait_probe(port, "/healthz", 200, "1 of 1 worker(s) up", 1000, NULL, 0);
    int fd;
    IT_CONNECT(fd);
    IT_ECHO(fd, "served by the respawned worker", 30);
}

static void quitting(void **state)
{
    (void)state;
    IT_BEGIN();
    IT_CHECK(port > 0, "no \"metrics on\" line in the log");
    int fd;
    IT_CONNECT(fd);
    IT_ECHO(fd, "held open", 9);
    cl_wait_probe(port, "/readyz", 200, "ready", 3000, NULL, 0);
    IT_CHECK(kill(it_srv->pid, SIGQUIT) == 0, "SIGQUIT: %s", strerror(errno));
    char body[512];
    cl_wait_probe(port, "/readyz", 503, "stopping: draining for -s quit, 1 connection(s) open",
                  3000, body, sizeof body);
    it_log("/readyz during -s quit: %s", body);
    cl_wait_probe(port, "/healthz", 200, "ok: generation 1 draining for -s quit", 1000, NULL, 0);
    IT_ECHO(fd, "still served while draining", 27);
    cl_wait_probe(port, "/readyz", 503, "stopping", 1000, NULL, 0); /* and still not ready */
    it_close(fd);
    IT_CHECK(it_wait_exit(it_srv, 5000), "the master still runs 5 s after its last "
             "connection closed in -s quit");
    IT_CHECK(WIFEXITED(it_srv->status) && WEXITSTATUS(it_srv->status) == 0,
             "the master ended with status 0x%x after -s quit", it_srv->status);
}

/* Not it_test_teardown: the worker changes on purpose, the server ends. */
static int close_clients(void **state)
{
    (void)state;
    it_close_all();
    return 0;
}

int it_run_health(void)
{
    const struct CMUnitTest tests[] = {
        IT_TEST(serving),
        cmocka_unit_test_teardown(no_worker_up, close_clients),
        cmocka_unit_test_teardown(quitting, close_clients),
    };
    return cmocka_run_group_tests_name("health", tests, health_setup, it_group_teardown);
}

/* ===================================================== health_master */

static struct it_server hm_srv;

static int hm_teardown(void **state)
{
    (void)state;
    it_close_all();
    if (it_server_stop(&hm_srv) != 0)
        it_failed = 1;
    return 0;
}

/* Starts the test's server on `lines` (config `name`); with wait, once it listens. */
static int hm_start(const char *name, const char *const *lines, int wait)
{
    char *cfg = it_write_config(name, lines);
    IT_CHECK(cfg, "cannot write the config");
    int rc = it_server_launch(&hm_srv, cfg);
    free(cfg);
    IT_CHECK(rc == 0, "the server did not start");
    if (wait)
        IT_CHECK(it_server_wait_listening(&hm_srv) == 0, "the server does not listen");
    IT_CHECK(it_wait_log(&hm_srv, 0, "metrics on http://", 5000),
             "no \"metrics on\" line within 5 s");
    int p = it_status_port(&hm_srv);
    IT_CHECK(p > 0, "cannot read the status port");
    return p;
}

static void start_up(void **state)
{
    (void)state;
    char model[1200];
    snprintf(model, sizeof model, "model = \"%s/late_ready.so\";", it_env.bad_plugin_dir);
    const char *const lines[] = {model, "models = { late_ready = { ready_delay_ms = 3000; }; };",
                                 "workers = 2;", "status_listen = \"127.0.0.1:0\";", NULL};
    int p = hm_start("health_start", lines, 0);
    char body[512];
    cl_wait_probe(p, "/readyz", 503, "starting: generation 1 has 1 of 2 worker(s) ready", 2500,
                  body, sizeof body);
    it_log("/readyz during start-up: %s", body);
    cl_wait_probe(p, "/healthz", 503, "starting: generation 1", 500, NULL, 0);
    IT_CHECK(!it_log_contains(&hm_srv, "listening on "),
             "the server said it serves before its second worker was ready");
    IT_CHECK(it_server_wait_listening(&hm_srv) == 0, "the server does not listen");
    cl_wait_probe(p, "/readyz", 200, "ready: generation 1 serving with model late_ready, 2 of 2",
                  2000, NULL, 0);
    cl_wait_probe(p, "/healthz", 200, "ok: generation 1 serving, 2 of 2", 1000, NULL, 0);
}

/* Echo clients that load the workers: bounded by rounds and time. */
#define LOAD_THREADS 2
#define LOAD_ROUNDS 200000
#define LOAD_MS 8000

struct loader {
    pthread_t tid;
    int port;
    volatile int *stop;
    long rounds;
    char err[256];
};

static void *load(void *arg)
{
    struct loader *l = arg;
    char msg[1024], back[1024];
    memset(msg, 'x', sizeof msg);
    int fd = it_connect_timeout(l->port, 3000);
    if (fd < 0) {
        snprintf(l->err, sizeof l->err, "connect: %s", strerror(errno));
        return NULL;
    }
    int64_t end = it_now_ms() + LOAD_MS;
    while (!*l->stop && l->rounds < LOAD_ROUNDS && it_now_ms() < end) {
        if (it_send_all(fd, msg, sizeof msg, 3000) != 0 ||
            it_recv_exact(fd, back, sizeof back, 3000, NULL) != (ssize_t)sizeof back ||
            memcmp(msg, back, sizeof msg) != 0) {
            snprintf(l->err, sizeof l->err, "round %ld: %s", l->rounds + 1, strerror(errno));
            break;
        }
        l->rounds++;
    }
    close(fd);
    return NULL;
}

/* What a confused or hostile client sends the status port. */
static const struct garbage {
    const char *bytes;
    size_t len;
} garbage[] = {
    {"\r\n\r\n", 4},
    {"BREW /readyz HTTP/1.1\r\n\r\n", 25},
    {"GET\0/readyz HTTP/1.1\r\n\r\n", 24},
    {"GET /readyz HTTP/1.1\r\nHost:", 27}, /* and nothing more */
    {"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 11}, /* a TLS hello */
    {NULL, 3000},                                       /* 3000 bytes of noise */
};

static void under_load_and_garbage(void **state)
{
    (void)state;
    const char *const lines[] = {"workers = 2;", "status_listen = \"127.0.0.1:0\";", NULL};
    int p = hm_start("health_load", lines, 1);
    volatile int stop = 0;
    struct loader loaders[LOAD_THREADS];
    memset(loaders, 0, sizeof loaders);
    int started = 0;
    for (; started < LOAD_THREADS; started++) {
        loaders[started].port = hm_srv.port;
        loaders[started].stop = &stop;
        if (pthread_create(&loaders[started].tid, NULL, load, &loaders[started]) != 0)
            break;
    }
    /* Idle connections in every slot, then garbage before each probe. */
    for (int i = 0; i < 16; i++)
        it_connect(p);
    char noise[3000];
    it_pattern(13, 0, noise, sizeof noise);
    long worst = 0, probes = 0;
    char body[512];
    int code = 200;
    for (int round = 0; round < 60 && code == 200; round++) {
        const struct garbage *g = &garbage[round % (sizeof garbage / sizeof garbage[0])];
        int fd = it_connect(p);
        if (fd >= 0)
            it_send_all(fd, g->bytes ? g->bytes : noise, g->len, 1000);
        int64_t t0 = it_now_ms();
        code = cl_probe(p, "/readyz", body, sizeof body);
        long took = (long)(it_now_ms() - t0);
        worst = took > worst ? took : worst;
        probes++;
        if (round % 2)
            it_close(fd); /* half of them stay open */
    }
    stop = 1;
    long rounds = 0;
    for (int i = 0; i < started; i++) {
        pthread_join(loaders[i].tid, NULL);
        rounds += loaders[i].rounds;
        IT_CHECK(!loaders[i].err[0], "load client %d: %s", i, loaders[i].err);
    }
    it_log("%ld probes of /readyz under load (%ld echo rounds) and garbage: slowest %ld ms",
           probes, rounds, worst);
    IT_CHECK(started == LOAD_THREADS, "could not start the load threads");
    IT_CHECK(code == 200 && strstr(body, "ready: generation 1"),
             "/readyz under load and garbage, probe %ld: %d %s", probes, code, body);
    IT_CHECK(rounds > 0, "the load clients were never served");
    /* Answered at once, not after a stalled client's 5 s timeout. */
    IT_CHECK(worst < 3000, "a probe took %ld ms under load and garbage", worst);
    cl_wait_probe(p, "/healthz", 200, "ok: generation 1 serving, 2 of 2", 1000, NULL, 0);
}

int it_run_health_master(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(start_up, hm_teardown),
        cmocka_unit_test_teardown(under_load_and_garbage, hm_teardown),
    };
    return cmocka_run_group_tests_name("health_master", tests, NULL, NULL);
}
