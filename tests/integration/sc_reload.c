/*
 * Hot swap: generations, drain, crash respawn, several workers, -s.
 *
 * Global scenarios (run once, as it.<scenario>):
 *   reload_swap    clients loop while the model is swapped through every
 *                  model of IOSERVE_MODELS and back; nothing is dropped
 *   reload_bad     syntax error, missing plugin, wrong ABI: the serving
 *                  generation keeps serving; a good reload still works
 *   drain          with handover = false (the drain that setting keeps),
 *                  an open connection survives a reload on the old
 *                  generation; an idle one is closed once drain_timeout
 *                  passes
 *   listen_change  a reload with a new listen address; one that writes
 *                  the port bound for port 0 into the config keeps the socket
 *   signals        -s quit / stop / reload, missing and stale pid files
 * Per-model scenarios (it.<model>.<scenario>):
 *   kill9          a worker killed by SIGKILL is replaced within 2 s
 *   workers        workers = 2: 100 concurrent clients, reload swaps both
 *
 * Every test starts its own server(s) through rs_start(); the test
 * teardown stops the client threads and stops and reaps those servers even
 * when an assertion failed (the master waits for the workers of every
 * generation before it exits, so stopping it ends them all).  Only our own
 * children and the workers of our own masters are ever signalled.
 * The client threads use their own socket helpers: the harness's keep
 * global state.
 */
#include "harness.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* =============================================================== models */

#define RS_MAX_MODELS 16

/* The models of IOSERVE_MODELS (";" or "," separated, from CMake) that
 * this machine can run (it_model_unavailable).  Falls back to the
 * scenario's model alone. */
int it_runnable_models(char names[][64], int max)
{
    const char *env = getenv("IOSERVE_MODELS");
    int n = 0;
    if (!env || !*env) {
        it_log("IOSERVE_MODELS is not set: using model %s only",
               it_env.model);
        env = it_env.model;
    }
    const char *p = env;
    while (*p && n < max) {
        size_t len = strcspn(p, ";, ");
        if (len > 0 && len < 64) {
            char name[64], why[1024];
            memcpy(name, p, len);
            name[len] = 0;
            if (!it_model_unavailable(name, why, sizeof why))
                snprintf(names[n++], 64, "%s", name);
            else
                it_log("left out: %s", why);
        }
        p += len;
        while (*p == ';' || *p == ',' || *p == ' ')
            p++;
    }
    return n;
}

/* ============================================================== servers */

#define RS_MAX_SERVERS 4
static struct it_server rs_srv[RS_MAX_SERVERS];
static char rs_name[RS_MAX_SERVERS][64];
static int rs_nsrv;
static int rs_passed; /* the test reached its end: no log dump */

static void rs_stop_load(void);

/* Writes config `name` with `lines` and starts a server on it; a server
 * that does not start fails the test (the models this machine cannot run
 * were skipped before, by probing it). */
static struct it_server *rs_start(const char *name, const char *const *lines)
{
    if (rs_nsrv == RS_MAX_SERVERS)
        IT_FAIL("rs_start: more than %d servers in one test", RS_MAX_SERVERS);
    char *cfg = it_write_config(name, lines);
    if (!cfg)
        IT_FAIL("cannot write config %s", name);
    struct it_server *s = &rs_srv[rs_nsrv];
    snprintf(rs_name[rs_nsrv], sizeof rs_name[0], "%s", name);
    rs_nsrv++; /* counted first: the teardown stops what was started */
    int rc = it_server_start(s, cfg);
    free(cfg);
    if (rc != 0)
        IT_FAIL("server %s did not start (see its log above)", name);
    return s;
}

static int rs_test_setup(void **state)
{
    (void)state;
    rs_passed = 0;
    return 0;
}

/* A process a test forked that is not a server (signals_pid_of_another_
 * program's decoy): ended here even when an assertion cut the test short. */
static pid_t rs_decoy;

static void rs_end_decoy(void)
{
    if (rs_decoy <= 0)
        return;
    int st;
    kill(rs_decoy, SIGKILL);
    while (waitpid(rs_decoy, &st, 0) < 0 && errno == EINTR)
        ;
    rs_decoy = 0;
}

static int rs_test_teardown(void **state)
{
    (void)state;
    rs_end_decoy();
    rs_stop_load();
    it_close_all();
    it_stop_servers(rs_srv, rs_nsrv, !rs_passed);
    rs_nsrv = 0;
    return 0;
}

#define RS_TEST(f) cmocka_unit_test_setup_teardown(f, rs_test_setup, rs_test_teardown)

/* ---------------------------------------------------------------- logs */

/* The complete line of `seg` holding `needle`, or NULL. */
static const char *rs_find_line(const char *seg, const char *needle)
{
    const char *p = strstr(seg, needle);
    return p && strchr(p, '\n') ? p : NULL;
}

static void rs_print_segment(const char *what, const char *seg)
{
    fprintf(stderr, "----- server log since %s -----\n%s%s----- end -----\n",
            what, seg, seg[0] && seg[strlen(seg) - 1] != '\n' ? "\n" : "");
}

/* ----------------------------------------------------------- -s SIGNAL */

static void rs_describe(int st, char *buf, size_t len)
{
    if (st == -1)
        snprintf(buf, len, "still running after the limit (stopped)");
    else if (WIFEXITED(st))
        snprintf(buf, len, "exit %d", WEXITSTATUS(st));
    else if (WIFSIGNALED(st))
        snprintf(buf, len, "killed by signal %d", WTERMSIG(st));
    else
        snprintf(buf, len, "status 0x%x", st);
}

/* Runs `ioserve -c cfg -s what`: its wait status; *out its output. */
static int rs_signal_cmd(const char *cfg, const char *what, char **out)
{
    char *argv[] = {(char *)it_env.bin, "-c", (char *)cfg, "-s", (char *)what,
                    NULL};
    return it_run(argv, 5000, NULL, out, NULL);
}

/* --------------------------------------------------------------- reload */

enum { RL_OK, RL_FAILED, RL_TIMEOUT, RL_DIED, RL_CMD };

struct rl_result {
    int outcome;
    unsigned gen;       /* RL_OK: the generation now serving */
    unsigned keeps;     /* RL_FAILED: "generation N keeps serving", or 0 */
    char *seg;          /* the log since the reload was asked (malloc'd) */
    char cmd_out[512];  /* RL_CMD: what `-s reload` printed */
};

static void rl_free(struct rl_result *r)
{
    free(r->seg);
    r->seg = NULL;
}

static const char *rl_name(int outcome)
{
    switch (outcome) {
    case RL_OK: return "completed";
    case RL_FAILED: return "failed";
    case RL_TIMEOUT: return "no outcome in the log in time";
    case RL_DIED: return "the master exited";
    default: return "`ioserve -s reload` failed";
    }
}

/* Waits for the outcome of a reload asked when the log was `off` bytes. */
static void rs_wait_reload(struct it_server *s, size_t off, int timeout_ms,
                           struct rl_result *r)
{
    int64_t end = it_now_ms() + timeout_ms;
    for (;;) {
        char *seg = it_log_since(s, off);
        const char *p;
        if ((p = rs_find_line(seg, "reload: generation ")) &&
            sscanf(p, "reload: generation %u serving", &r->gen) == 1) {
            r->outcome = RL_OK;
            r->seg = seg;
            break;
        }
        if ((p = rs_find_line(seg, "reload failed")) ||
            (p = rs_find_line(seg, "reload refused"))) {
            r->outcome = RL_FAILED;
            const char *k = strstr(p, "keeps serving");
            const char *nl = strchr(p, '\n');
            if (k && k < nl) {
                const char *g = k;
                while (g > p && g[-1] == ' ')
                    g--;
                while (g > p && g[-1] >= '0' && g[-1] <= '9')
                    g--;
                r->keeps = (unsigned)strtoul(g, NULL, 10);
            }
            r->seg = seg;
            break;
        }
        if (!it_server_alive(s)) {
            r->outcome = RL_DIED;
            r->seg = seg;
            break;
        }
        if (it_now_ms() >= end) {
            r->outcome = RL_TIMEOUT;
            r->seg = seg;
            break;
        }
        free(seg);
        it_sleep_ms(10);
    }
}

/*
 * Rewrites server i's config with `lines` (NULL: leave it) and asks for a
 * reload with the real `ioserve -c CFG -s reload`, then waits (at most
 * timeout_ms) for the master to log the outcome.
 */
static void rs_reload(int i, const char *const *lines, int timeout_ms,
                      struct rl_result *r)
{
    struct it_server *s = &rs_srv[i];
    memset(r, 0, sizeof *r);
    size_t off = it_log_size(s);
    if (lines) {
        char *cfg = it_write_config(rs_name[i], lines);
        if (!cfg || strcmp(cfg, s->cfg) != 0)
            it_log("rewriting %s: unexpected path %s", s->cfg, cfg ? cfg : "-");
        free(cfg);
    }
    char *out = NULL;
    int st = rs_signal_cmd(s->cfg, "reload", &out);
    if (st == -1 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        char how[128];
        rs_describe(st, how, sizeof how);
        snprintf(r->cmd_out, sizeof r->cmd_out, "%s: %s", how, out ? out : "");
        free(out);
        r->outcome = RL_CMD;
        r->seg = it_log_since(s, off);
        return;
    }
    free(out);
    rs_wait_reload(s, off, timeout_ms, r);
}

/* The index of server s in rs_srv. */
static int rs_index(const struct it_server *s)
{
    return (int)(s - rs_srv);
}

/* ============================================================== clients */

/* Thread-safe socket helpers (the harness's use globals). */

static int cl_connect(int port, int timeout_ms, int *err)
{
    int fd = it_connect_timeout(port, timeout_ms);
    if (fd < 0)
        *err = errno;
    return fd;
}

/* Sends out[0..len) while reading the same count into in.  0, or -1 with
 * *err (0 = EOF, ETIMEDOUT, or the socket error) and *got. */
static int cl_exchange(int fd, const char *out, char *in, size_t len,
                       int timeout_ms, int *err, size_t *got)
{
    int64_t end = it_now_ms() + timeout_ms;
    size_t sent = 0;
    *got = 0;
    while (*got < len) {
        int progress = 0;
        if (sent < len) {
            ssize_t w = send(fd, out + sent, len - sent, MSG_DONTWAIT | MSG_NOSIGNAL);
            if (w > 0) {
                sent += (size_t)w;
                progress = 1;
            } else if (w < 0 && errno != EAGAIN && errno != EINTR) {
                *err = errno;
                return -1;
            }
        }
        ssize_t r = recv(fd, in + *got, len - *got, MSG_DONTWAIT);
        if (r > 0) {
            *got += (size_t)r;
            progress = 1;
        } else if (r == 0) {
            *err = 0;
            return -1;
        } else if (errno != EAGAIN && errno != EINTR) {
            *err = errno;
            return -1;
        }
        if (progress)
            continue;
        int64_t left = end - it_now_ms();
        if (left <= 0) {
            *err = ETIMEDOUT;
            return -1;
        }
        struct pollfd p = {fd, (short)(POLLIN | (sent < len ? POLLOUT : 0)), 0};
        if (poll(&p, 1, (int)left) < 0 && errno != EINTR) {
            *err = errno;
            return -1;
        }
    }
    return 0;
}

/* ------------------------------------------------------- client threads */

#define LOAD_MAX 8
#define LOAD_PAYLOAD_MAX 4096
#define LOAD_ERRS_KEPT 4

struct load_client {
    pthread_t th;
    int started;
    int id;
    int reconnect; /* 1: a new connection per exchange */
    long rotate;   /* long-lived: a new connection after this many
                    * exchanges (0 = one connection for the whole run) */
    int port;
    int64_t t0;
    _Atomic long exchanges;
    _Atomic long connects;
    _Atomic long errors;
    long refused, conn_other, resets, eofs, timeouts, mismatches, other;
    int nerr;
    char err[LOAD_ERRS_KEPT][200];
};

static struct {
    struct load_client c[LOAD_MAX];
    int n;
    _Atomic int stop;
    int running;
} g_load;

static uint64_t mix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

static void lc_error(struct load_client *c, long seq, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void lc_error(struct load_client *c, long seq, const char *fmt, ...)
{
    atomic_fetch_add(&c->errors, 1);
    if (c->nerr >= LOAD_ERRS_KEPT)
        return;
    char msg[160];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    snprintf(c->err[c->nerr++], sizeof c->err[0], "t=+%lld ms exchange %ld: %s",
             (long long)(it_now_ms() - c->t0), seq, msg);
}

static void *lc_main(void *arg)
{
    struct load_client *c = arg;
    char *out = malloc(LOAD_PAYLOAD_MAX), *in = malloc(LOAD_PAYLOAD_MAX);
    int fd = -1;
    long seq = 0;
    if (!out || !in) {
        lc_error(c, 0, "out of memory");
        free(out);
        free(in);
        return NULL;
    }
    while (!atomic_load(&g_load.stop)) {
        int err = 0;
        if (fd < 0) {
            fd = cl_connect(c->port, 3000, &err);
            if (fd < 0) {
                if (err == ECONNREFUSED)
                    c->refused++;
                else
                    c->conn_other++;
                lc_error(c, seq, "connect: %s", strerror(err));
                it_sleep_ms(20);
                continue;
            }
            atomic_fetch_add(&c->connects, 1);
        }
        /* a distinct payload for every exchange of every client */
        uint64_t seed = ((uint64_t)(c->id + 1) << 40) | (uint64_t)seq;
        size_t len = 1 + (size_t)(mix64(seed) % LOAD_PAYLOAD_MAX);
        it_pattern(seed, 0, out, len);
        size_t got = 0;
        if (cl_exchange(fd, out, in, len, 5000, &err, &got) != 0) {
            if (err == 0)
                c->eofs++;
            else if (err == ECONNRESET || err == EPIPE)
                c->resets++;
            else if (err == ETIMEDOUT)
                c->timeouts++;
            else
                c->other++;
            lc_error(c, seq, "%s after %zu of %zu reply bytes (%s connection)",
                     err == 0 ? "EOF" : strerror(err), got, len,
                     c->reconnect ? "fresh" : "long-lived");
            close(fd);
            fd = -1;
        } else if (memcmp(in, out, len) != 0) {
            long d = it_first_diff(in, out, len);
            c->mismatches++;
            lc_error(c, seq, "reply differs at byte %ld of %zu", d, len);
            close(fd);
            fd = -1;
        } else {
            long done = atomic_fetch_add(&c->exchanges, 1) + 1;
            if (c->reconnect || (c->rotate && done % c->rotate == 0)) {
                close(fd);
                fd = -1;
            }
        }
        seq++;
        it_sleep_ms(c->reconnect ? 4 : 2); /* bounds TIME_WAIT sockets */
    }
    if (fd >= 0)
        close(fd);
    free(out);
    free(in);
    return NULL;
}

/* Starts n clients on port: the first half reconnect for every exchange,
 * the others keep their connection across reloads: the last one for the
 * whole run, the others move to a new connection every few hundred
 * exchanges (so open connections are left on every generation, not only on
 * the first).  0, or -1 (threads that started run). */
static int rs_start_load(int port, int n)
{
    memset(&g_load, 0, sizeof g_load);
    g_load.n = n;
    g_load.running = 1;
    int64_t t0 = it_now_ms();
    for (int i = 0; i < n; i++) {
        struct load_client *c = &g_load.c[i];
        c->id = i;
        c->reconnect = i < n / 2;
        static const long rotate[] = {150, 400, 1000};
        int li = i - n / 2; /* index among the long-lived ones */
        c->rotate = c->reconnect || i == n - 1 || li >= 3 ? 0 : rotate[li];
        c->port = port;
        c->t0 = t0;
        if (pthread_create(&c->th, NULL, lc_main, c) != 0) {
            it_log("pthread_create: %s", strerror(errno));
            return -1;
        }
        c->started = 1;
    }
    return 0;
}

static void rs_stop_load(void)
{
    if (!g_load.running)
        return;
    atomic_store(&g_load.stop, 1);
    for (int i = 0; i < g_load.n; i++)
        if (g_load.c[i].started)
            pthread_join(g_load.c[i].th, NULL);
    g_load.running = 0;
}

static void rs_load_snapshot(long *snap)
{
    for (int i = 0; i < g_load.n; i++)
        snap[i] = atomic_load(&g_load.c[i].exchanges);
}

static long rs_load_errors(void)
{
    long e = 0;
    for (int i = 0; i < g_load.n; i++)
        e += atomic_load(&g_load.c[i].errors);
    return e;
}

/* Waits until every client completed `min` more exchanges than in snap.
 * Returns the number of clients that did not (0 = all progressed). */
static int rs_load_progress(const long *snap, long min, int timeout_ms)
{
    int64_t end = it_now_ms() + timeout_ms;
    for (;;) {
        int behind = 0;
        for (int i = 0; i < g_load.n; i++)
            if (atomic_load(&g_load.c[i].exchanges) - snap[i] < min)
                behind++;
        if (!behind || it_now_ms() >= end)
            return behind;
        it_sleep_ms(10);
    }
}

/* After rs_stop_load: prints per-client counts and errors; the count of
 * failed exchanges and connects. */
static long rs_load_report(void)
{
    long total = 0, bad = 0;
    for (int i = 0; i < g_load.n; i++) {
        struct load_client *c = &g_load.c[i];
        long e = atomic_load(&c->errors);
        total += atomic_load(&c->exchanges);
        bad += e;
        if (e)
            it_log("client %d (%s): %ld exchanges, %ld errors: %ld refused, %ld "
                   "other connect errors, %ld resets, %ld EOF, %ld timeouts, %ld "
                   "wrong replies, %ld other",
                   i, c->reconnect ? "reconnecting" : "long-lived",
                   atomic_load(&c->exchanges), e, c->refused, c->conn_other,
                   c->resets, c->eofs, c->timeouts, c->mismatches, c->other);
        for (int k = 0; k < c->nerr; k++)
            it_log("  client %d: %s", i, c->err[k]);
    }
    long conns = 0;
    for (int i = 0; i < g_load.n; i++)
        conns += atomic_load(&g_load.c[i].connects);
    it_log("%d clients: %ld exchanges verified over %ld connections, %ld errors",
           g_load.n, total, conns, bad);
    return bad;
}

/* ============================================================ reload_swap */

#define SWAP_BUDGET_MS 20000
#define SWAP_DWELL_MS 400 /* each model serves this long under load */

static void swap_through_models(void **state)
{
    (void)state;
    char models[RS_MAX_MODELS][64];
    int nm = it_runnable_models(models, RS_MAX_MODELS);
    if (nm == 0)
        IT_FAIL("no model of IOSERVE_MODELS can run here");

    /* the first model serves first */
    int64_t t_begin = it_now_ms();
    const int first = 0;
    char mline[128];
    snprintf(mline, sizeof mline, "model = \"%.63s\";", models[first]);
    const char *const start_lines[] = {mline, "drain_timeout = 60;", NULL};
    struct it_server *s = rs_start("swap", start_lines);
    int idx = rs_index(s);

    /* the order: every other model, then back to the first */
    int order[RS_MAX_MODELS + 1], no = 0;
    for (int i = first + 1; i < nm; i++)
        order[no++] = i;
    order[no++] = first;

    if (rs_start_load(s->port, 8) != 0)
        IT_FAIL("could not start the client threads");
    long snap[LOAD_MAX];
    memset(snap, 0, sizeof snap);
    int behind = rs_load_progress(snap, 3, 3000);
    char problem[4096] = "";
    if (behind)
        snprintf(problem, sizeof problem,
                 "%d of 8 clients made no 3 exchanges in 3 s before any reload",
                 behind);

    unsigned gen = 1;
    unsigned served[RS_MAX_MODELS + 2];
    int nserved = 0;
    served[nserved++] = 1;
    int done = 0;
    for (int k = 0; k < no && !problem[0]; k++) {
        const char *m = models[order[k]];
        int64_t left = SWAP_BUDGET_MS - (it_now_ms() - t_begin);
        if (left < 1000) {
            snprintf(problem, sizeof problem,
                     "out of the %d ms budget before the reload to %s", SWAP_BUDGET_MS,
                     m);
            break;
        }
        snprintf(mline, sizeof mline, "model = \"%s\";", m);
        const char *const lines[] = {mline, "drain_timeout = 60;", NULL};
        rs_load_snapshot(snap);
        int64_t t0 = it_now_ms();
        struct rl_result r;
        rs_reload(idx, lines, (int)(left < 10000 ? left : 10000), &r);
        int64_t took = it_now_ms() - t0;
        if (r.outcome != RL_OK) {
            rs_print_segment("the reload", r.seg);
            snprintf(problem, sizeof problem, "reload %d to model %s: %s %s", k + 1,
                     m, rl_name(r.outcome), r.cmd_out);
            rl_free(&r);
            break;
        }
        char want[128];
        snprintf(want, sizeof want, "(model %s, ", m);
        const char *ln = rs_find_line(r.seg, "listening on");
        if (!ln || !strstr(r.seg, want) || r.gen <= gen) {
            rs_print_segment("the reload", r.seg);
            snprintf(problem, sizeof problem,
                     "reload %d to model %s: generation %u serving (previous %u), "
                     "but no \"listening on ... %s\" line",
                     k + 1, m, r.gen, gen, want);
            rl_free(&r);
            break;
        }
        gen = r.gen;
        served[nserved++] = gen;
        done++;
        rl_free(&r);
        /* every client, fresh and long-lived, is served after the swap,
         * and the new generation serves a while before the next one */
        behind = rs_load_progress(snap, 3, 3000);
        if (!behind)
            it_sleep_ms(SWAP_DWELL_MS);
        it_log("reload to %s: generation %u serving after %lld ms; %s", m, gen,
               (long long)took,
               behind ? "some clients stalled" : "every client progressed");
        if (behind)
            snprintf(problem, sizeof problem,
                     "after the reload to %s (generation %u), %d of 8 clients made "
                     "no 3 exchanges within 3 s",
                     m, gen, behind);
        if (rs_load_errors())
            break; /* reported below */
    }
    rs_stop_load();
    long bad = rs_load_report();
    it_log("reload_swap: %d reloads completed in %lld ms", done,
           (long long)(it_now_ms() - t_begin));
    /* with every client gone, each replaced generation finishes draining
     * (drain_timeout is 60 s: only closed connections can end them) */
    for (int i = 0; !problem[0] && i + 1 < nserved; i++) {
        char want[64];
        snprintf(want, sizeof want, "generation %u drained in", served[i]);
        if (!it_wait_log(s, 0, want, 3000))
            snprintf(problem, sizeof problem,
                     "no \"%s\" within 3 s of its last client closing", want);
    }
    IT_CHECK(bad == 0,
             "%ld client exchanges or connects failed during the swaps (see the "
             "client errors above; the first is the one that matters)",
             bad);
    IT_CHECK(!problem[0], "%s", problem);
    IT_CHECK(done == no, "%d of %d reloads completed", done, no);
    IT_CHECK(it_now_ms() - t_begin <= SWAP_BUDGET_MS + 6000,
             "reload_swap took %lld ms", (long long)(it_now_ms() - t_begin));
    rs_passed = 1;
}

int it_run_reload_swap(void)
{
    const struct CMUnitTest tests[] = {
        RS_TEST(swap_through_models),
    };
    return cmocka_run_group_tests_name("reload_swap", tests, NULL, NULL);
}

/* ============================================================= reload_bad */

/* The children of the master, sorted, as a comparable set. */
static int rs_kids(const struct it_server *s, pid_t *out, int max)
{
    int n = it_children(s->pid, out, max);
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && out[j - 1] > out[j]; j--) {
            pid_t t = out[j];
            out[j] = out[j - 1];
            out[j - 1] = t;
        }
    return n;
}

/* Waits until the master's children are exactly `want` (n of them). */
static int rs_wait_kids(const struct it_server *s, const pid_t *want, int n,
                        int timeout_ms)
{
    int64_t end = it_now_ms() + timeout_ms;
    for (;;) {
        pid_t k[64];
        int m = rs_kids(s, k, 64);
        if (m == n && memcmp(k, want, sizeof(pid_t) * (size_t)n) == 0)
            return 1;
        if (it_now_ms() >= end)
            return 0;
        it_sleep_ms(10);
    }
}

/* The line number (1-based) of the first line of file holding needle. */
static int rs_line_of(const char *path, const char *needle)
{
    char *text = it_read_file(path, NULL);
    if (!text)
        return 0;
    const char *p = strstr(text, needle);
    int line = 0;
    if (p) {
        line = 1;
        for (const char *q = text; q < p; q++)
            line += *q == '\n';
    }
    free(text);
    return line;
}

struct bad_reload {
    const char *what;
    const char *model_line; /* NULL: the syntax error case */
};

static void bad_reloads_keep_serving(void **state)
{
    (void)state;
    char mline[128];
    snprintf(mline, sizeof mline, "model = \"%s\";", it_env.model);
    const char *const good[] = {mline, "drain_timeout = 60;", NULL};
    struct it_server *s = rs_start("bad", good);
    int idx = rs_index(s);
    pid_t kids0[64];
    int nk0 = rs_kids(s, kids0, 64);
    IT_CHECK(nk0 == 1, "expected 1 worker, the master has %d children", nk0);

    if (rs_start_load(s->port, 8) != 0)
        IT_FAIL("could not start the client threads");
    long snap[LOAD_MAX];
    memset(snap, 0, sizeof snap);
    char problem[4096] = "";
    if (rs_load_progress(snap, 3, 3000))
        snprintf(problem, sizeof problem, "clients stalled before any reload");

    char abi[1024], norun[1024];
    snprintf(abi, sizeof abi, "model = \"%s/bad_abi.so\";",
             it_env.bad_plugin_dir ? it_env.bad_plugin_dir : "/nonexistent");
    snprintf(norun, sizeof norun, "model = \"%s/bad_no_run.so\";",
             it_env.bad_plugin_dir ? it_env.bad_plugin_dir : "/nonexistent");
    const struct bad_reload cases[] = {
        {"syntax error", NULL},
        {"missing plugin (model nosuchmodel)", "model = \"nosuchmodel\";"},
        {"wrong ABI (bad_abi.so)", abi},
        {"plugin without model_run (bad_no_run.so)", norun},
    };
    unsigned serving = 1;
    for (size_t c = 0; c < sizeof cases / sizeof cases[0] && !problem[0]; c++) {
        const struct bad_reload *b = &cases[c];
        struct rl_result r;
        memset(&r, 0, sizeof r);
        rs_load_snapshot(snap);
        char fileline[700] = "";
        if (!b->model_line) {
            /* libconfig cannot parse "workers = = 2;" */
            const char *const lines[] = {mline, "drain_timeout = 60;",
                                         "workers = = 2;", NULL};
            free(it_write_config(rs_name[idx], lines));
            int ln = rs_line_of(s->cfg, "workers = = 2;");
            snprintf(fileline, sizeof fileline, "%s:%d", s->cfg, ln);
            /* `-s reload` reads the config too: it must refuse, naming
             * the line, and signal nothing */
            char *out = NULL;
            int st = rs_signal_cmd(s->cfg, "reload", &out);
            int ok = st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 1 && out &&
                     strstr(out, fileline);
            if (!ok) {
                char how[128];
                rs_describe(st, how, sizeof how);
                snprintf(problem, sizeof problem,
                         "`ioserve -s reload` with a syntax error at %s: %s, "
                         "output: %.1000s (expected exit 1 naming %s)",
                         fileline, how, out ? out : "", fileline);
            }
            free(out);
            if (problem[0])
                break;
            /* a SIGHUP from elsewhere (e.g. kill -HUP): the master must
             * refuse the file and keep serving */
            size_t off = it_log_size(s);
            if (kill(s->pid, SIGHUP) != 0) {
                snprintf(problem, sizeof problem, "kill(master, SIGHUP): %s",
                         strerror(errno));
                break;
            }
            rs_wait_reload(s, off, 5000, &r);
        } else {
            const char *const lines[] = {b->model_line, "drain_timeout = 60;",
                                         NULL};
            rs_reload(idx, lines, 5000, &r);
        }
        if (r.outcome != RL_FAILED) {
            rs_print_segment(b->what, r.seg);
            snprintf(problem, sizeof problem,
                     "reload with %s: %s (expected \"reload failed\") %s", b->what,
                     rl_name(r.outcome), r.cmd_out);
        } else if (fileline[0] && !strstr(r.seg, fileline)) {
            rs_print_segment(b->what, r.seg);
            snprintf(problem, sizeof problem,
                     "reload with %s: the error does not name %s", b->what,
                     fileline);
        } else if (b->model_line && r.keeps != serving) {
            rs_print_segment(b->what, r.seg);
            snprintf(problem, sizeof problem,
                     "reload with %s: expected \"generation %u keeps serving\", "
                     "found generation %u",
                     b->what, serving, r.keeps);
        } else if (rs_find_line(r.seg, "reload: generation ")) {
            rs_print_segment(b->what, r.seg);
            snprintf(problem, sizeof problem,
                     "reload with %s: a new generation took over", b->what);
        } else if (!rs_wait_kids(s, kids0, nk0, 3000)) {
            snprintf(problem, sizeof problem,
                     "reload with %s: the serving worker (pid %d) is not the only "
                     "child of the master 3 s later",
                     b->what, (int)kids0[0]);
        } else if (rs_load_progress(snap, 3, 3000)) {
            snprintf(problem, sizeof problem,
                     "after the reload with %s, clients stalled", b->what);
        } else {
            it_log("reload with %s: refused, generation %u keeps serving", b->what,
                   serving);
        }
        rl_free(&r);
        if (rs_load_errors())
            break;
    }

    /* the good configuration still reloads afterwards */
    if (!problem[0] && !rs_load_errors()) {
        char models[RS_MAX_MODELS][64];
        int nm = it_runnable_models(models, RS_MAX_MODELS);
        const char *other = it_env.model;
        for (int i = 0; i < nm; i++)
            if (strcmp(models[i], it_env.model) != 0 &&
                strcmp(models[i], "uring") != 0) {
                other = models[i];
                break;
            }
        char oline[128];
        snprintf(oline, sizeof oline, "model = \"%.63s\";", other);
        const char *const lines[] = {oline, "drain_timeout = 60;", NULL};
        rs_load_snapshot(snap);
        struct rl_result r;
        rs_reload(idx, lines, 5000, &r);
        if (r.outcome != RL_OK) {
            rs_print_segment("the good reload", r.seg);
            snprintf(problem, sizeof problem,
                     "a good reload (model %s) after the bad ones: %s %.400s", other,
                     rl_name(r.outcome), r.cmd_out);
        } else if (rs_load_progress(snap, 3, 3000)) {
            snprintf(problem, sizeof problem,
                     "after the good reload, clients stalled");
        } else {
            it_log("good reload to %s: generation %u serving", other, r.gen);
        }
        rl_free(&r);
    }
    rs_stop_load();
    long bad = rs_load_report();
    IT_CHECK(bad == 0, "%ld client exchanges or connects failed (see above)", bad);
    IT_CHECK(!problem[0], "%s", problem);
    rs_passed = 1;
}

int it_run_reload_bad(void)
{
    const struct CMUnitTest tests[] = {
        RS_TEST(bad_reloads_keep_serving),
    };
    return cmocka_run_group_tests_name("reload_bad", tests, NULL, NULL);
}

/* ================================================================== drain */

/* Asks for a reload of server i (config unchanged) and requires it to
 * complete; returns the generation now serving. */
static unsigned rs_must_reload(int i, const char *const *lines)
{
    struct rl_result r;
    rs_reload(i, lines, 5000, &r);
    if (r.outcome != RL_OK) {
        rs_print_segment("the reload", r.seg);
        char msg[600];
        snprintf(msg, sizeof msg, "reload: %s %s", rl_name(r.outcome), r.cmd_out);
        rl_free(&r);
        IT_FAIL("%s", msg);
    }
    unsigned g = r.gen;
    rl_free(&r);
    return g;
}

static void drain_open_connection_survives(void **state)
{
    (void)state;
    const char *const lines[] = {"drain_timeout = 30;", "handover = false;", NULL};
    struct it_server *s = rs_start("drain_open", lines);
    int a;
    a = it_connect(s->port);
    IT_CHECK(a >= 0, "connect: %s", it_errbuf);
    IT_ECHO(a, "before the reload", 17);

    unsigned g = rs_must_reload(rs_index(s), NULL);
    IT_CHECK(g == 2, "expected generation 2 serving, got %u", g);
    size_t off = it_log_size(s);

    /* the old connection keeps working, several round trips */
    char buf[3000];
    for (int i = 0; i < 6; i++) {
        size_t n = 100 + (size_t)i * 500;
        it_pattern(0xd0 + (uint64_t)i, 0, buf, n);
        IT_CHECK(it_roundtrip(a, buf, n, buf, n, 3000) == 0,
                 "round trip %d on the connection opened before the reload: %s", i,
                 it_errbuf);
        it_sleep_ms(100);
    }
    /* a new connection is served (by generation 2) meanwhile */
    int b;
    b = it_connect(s->port);
    IT_CHECK(b >= 0, "connect after the reload: %s", it_errbuf);
    IT_ECHO(b, "new connection", 14);
    it_close(b);
    IT_CHECK(!it_wait_log(s, 0, "generation 1 drained in", 0),
             "generation 1 drained while a connection of it was open");
    IT_ECHO(a, "last one", 8);

    /* closing the client lets generation 1 finish */
    it_close(a);
    IT_CHECK(it_wait_log(s, off, "generation 1 drained in", 3000),
             "generation 1 did not drain within 3 s of its last connection "
             "closing");
    rs_passed = 1;
}

static void drain_idle_connection_closed(void **state)
{
    (void)state;
    const char *const lines[] = {"drain_timeout = 1;", "handover = false;", NULL};
    struct it_server *s = rs_start("drain_idle", lines);
    int idle;
    idle = it_connect(s->port);
    IT_CHECK(idle >= 0, "connect: %s", it_errbuf);
    IT_ECHO(idle, "then idle", 9);

    unsigned g = rs_must_reload(rs_index(s), NULL);
    int64_t t0 = it_now_ms();
    IT_CHECK(g == 2, "expected generation 2 serving, got %u", g);

    int64_t closed_at = -1;
    int fresh = 0;
    while (it_now_ms() - t0 < 3500 && closed_at < 0) {
        if (it_peer_closed(idle, 150)) {
            closed_at = it_now_ms();
            break;
        }
        /* new connections are served by the new generation meanwhile */
        int f = it_connect(s->port);
        IT_CHECK(f >= 0, "connect %lld ms after the reload: %s",
                 (long long)(it_now_ms() - t0), it_errbuf);
        char msg[64];
        int len = snprintf(msg, sizeof msg, "fresh %d", fresh++);
        IT_CHECK(it_roundtrip(f, msg, (size_t)len, msg, (size_t)len, 2000) == 0,
                 "a new connection %lld ms after the reload: %s",
                 (long long)(it_now_ms() - t0), it_errbuf);
        it_close(f);
    }
    IT_CHECK(closed_at >= 0,
             "the idle connection was still open 3.5 s after the reload "
             "(drain_timeout = 1)");
    size_t junk = 0;
    int w = it_wait_closed(idle, 500, &junk);
    IT_CHECK(w == 1, "the idle connection signalled a close but did not read as "
                     "closed (EOF/reset)");
    IT_CHECK(junk == 0, "the idle connection received %zu unexpected bytes", junk);
    it_log("idle connection closed %lld ms after the reload completed (%d new "
           "connections served meanwhile)",
           (long long)(closed_at - t0), fresh);
    it_close(idle);
    int f = it_connect(s->port);
    IT_CHECK(f >= 0, "connect after the drain: %s", it_errbuf);
    IT_ECHO(f, "after the drain", 15);
    it_close(f);
    rs_passed = 1;
}

int it_run_drain(void)
{
    const struct CMUnitTest tests[] = {
        RS_TEST(drain_open_connection_survives),
        RS_TEST(drain_idle_connection_closed),
    };
    return cmocka_run_group_tests_name("drain", tests, NULL, NULL);
}

/* ========================================================== listen_change */

/* A port that was free a moment ago (bind port 0, read it, close). */
/* Connects to port expecting a refusal within timeout_ms (a listening
 * socket that closes).  1 = refused. */
/* The inode of the listening socket `pid` holds on 127.0.0.1:port, or 0.
 * Asked again for a while: /proc/net/tcp, read while other tests open and
 * close sockets, may miss an entry. */
static unsigned long rs_listener(pid_t pid, int port)
{
    for (int64_t end = it_now_ms() + 2000;; it_sleep_ms(10)) {
        struct it_sock socks[64];
        int n = it_tcp_sockets(pid, socks, 64);
        for (int i = 0; i < n && i < 64; i++)
            if (socks[i].listening && ntohs(socks[i].local.sin_port) == port &&
                socks[i].local.sin_addr.s_addr == htonl(INADDR_LOOPBACK))
                return socks[i].inode;
        if (it_now_ms() >= end)
            return 0;
    }
}

/* Waits up to timeout_ms for the socket `inode` to be closed by the master
 * and every worker (only they ever have it).  1 = closed.  Asked of that
 * very socket: its port, once free, may be anyone's. */
static int rs_wait_socket_closed(const struct it_server *s, unsigned long inode,
                                 int timeout_ms)
{
    int64_t end = it_now_ms() + timeout_ms;
    for (;;) {
        pid_t kids[64];
        int n = it_children(s->pid, kids, 64);
        int open = it_holds_socket(s->pid, inode);
        for (int i = 0; !open && i < n; i++)
            open = it_holds_socket(kids[i], inode);
        if (!open)
            return 1;
        if (it_now_ms() >= end)
            return 0;
        it_sleep_ms(20);
    }
}

/* Starts server `name` and connects a client: the server, its listening
 * socket's inode in *listener, the client in *client. */
static struct it_server *rs_start_with_client(const char *name, const char *const *lines,
                                              unsigned long *listener, int *client)
{
    struct it_server *s = rs_start(name, lines);
    *listener = rs_listener(s->pid, s->port);
    IT_CHECK(*listener != 0, "the master holds no listening socket on port %d", s->port);
    *client = it_connect(s->port);
    IT_CHECK(*client >= 0, "connect to %d: %s", s->port, it_errbuf);
    return s;
}

static void listen_moves_to_new_port(void **state)
{
    (void)state;
    /* handover = false: the old port's connection stays on generation 1,
     * whose end then closes the old listener */
    const char *const lines[] = {"drain_timeout = 30;", "handover = false;", NULL};
    unsigned long old_listener;
    int a;
    struct it_server *s = rs_start_with_client("listen", lines, &old_listener, &a);
    int p1 = s->port;
    IT_ECHO(a, "old port", 8);

    /* another loopback address, port 0: the server picks a port nobody
     * holds (a port probed free here could be taken before it binds) */
    const char *const moved[] = {"listen = \"127.0.0.2:0\";", "drain_timeout = 30;",
                                 "handover = false;", NULL};
    struct rl_result r;
    rs_reload(rs_index(s), moved, 5000, &r);
    const char *ln = r.outcome == RL_OK ? rs_find_line(r.seg, "listening on 127.0.0.2:") : NULL;
    int p2 = ln ? atoi(ln + strlen("listening on 127.0.0.2:")) : 0;
    if (p2 <= 0)
        rs_print_segment("the reload", r.seg);
    int outcome = r.outcome;
    rl_free(&r);
    IT_CHECK(outcome == RL_OK, "reload to listen 127.0.0.2:0: %s", rl_name(outcome));
    IT_CHECK(p2 > 0, "no \"listening on 127.0.0.2:PORT\" line after the reload");

    int b = it_connect_to("127.0.0.2", p2);
    IT_CHECK(b >= 0, "connect to the new address: %s", it_errbuf);
    IT_ECHO(b, "new port", 8);
    /* the connection to the old port is still served by generation 1 */
    IT_ECHO(a, "old port, after the reload", 26);
    size_t off = it_log_size(s);
    it_close(a);
    IT_CHECK(it_wait_log(s, off, "generation 1 drained in", 3000),
             "generation 1 did not drain within 3 s of its last connection "
             "closing");
    IT_CHECK(rs_wait_socket_closed(s, old_listener, 2000),
             "the listening socket on the old port %d is still open 2 s after its "
             "generation drained",
             p1);
    IT_ECHO(b, "new port still", 14);
    it_close(b);
    int c = it_connect_to("127.0.0.2", p2);
    IT_CHECK(c >= 0, "connect to the new address: %s", it_errbuf);
    IT_ECHO(c, "again", 5);
    it_close(c);
    rs_passed = 1;
}

static void listen_on_busy_port_fails(void **state)
{
    (void)state;
    const char *const lines[] = {"drain_timeout = 30;", NULL};
    struct it_server *s = rs_start("listen_busy", lines);
    /* a port someone else listens on */
    int busy = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    IT_CHECK(busy >= 0, "socket: %s", strerror(errno));
    it_track(busy);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t al = sizeof a;
    IT_CHECK(bind(busy, (struct sockaddr *)&a, sizeof a) == 0 && listen(busy, 4) == 0 &&
                 getsockname(busy, (struct sockaddr *)&a, &al) == 0,
             "bind/listen: %s", strerror(errno));
    int p = ntohs(a.sin_port);

    char lline[128];
    snprintf(lline, sizeof lline, "listen = \"127.0.0.1:%d\";", p);
    const char *const moved[] = {lline, "drain_timeout = 30;", NULL};
    struct rl_result r;
    rs_reload(rs_index(s), moved, 5000, &r);
    int outcome = r.outcome;
    if (outcome != RL_FAILED)
        rs_print_segment("the reload", r.seg);
    rl_free(&r);
    IT_CHECK(outcome == RL_FAILED,
             "reload to a port in use (%d): %s (expected \"reload failed\")", p,
             rl_name(outcome));
    int c = it_connect(s->port);
    IT_CHECK(c >= 0, "the old port after the failed reload: %s", it_errbuf);
    IT_ECHO(c, "still here", 10);
    it_close(c);
    it_close(busy);
    rs_passed = 1;
}

/* Started on port 0, the port read from the log and written into the
 * config (then spelt "localhost"): each reload keeps the very socket,
 * rather than binding a second one on the port the first holds. */
static void listen_port_zero_written_back(void **state)
{
    (void)state;
    unsigned long listener;
    int a;
    struct it_server *s = rs_start_with_client("listen_zero", NULL, &listener, &a);
    int p = s->port;
    IT_ECHO(a, "before", 6);

    const char *spellings[] = {"127.0.0.1", "localhost"};
    for (int i = 0; i < 2; i++) {
        char lline[128];
        snprintf(lline, sizeof lline, "listen = \"%s:%d\";", spellings[i], p);
        const char *const bound[] = {lline, NULL};
        struct rl_result r;
        rs_reload(rs_index(s), bound, 5000, &r);
        int outcome = r.outcome;
        if (outcome != RL_OK)
            rs_print_segment("the reload", r.seg);
        rl_free(&r);
        IT_CHECK(outcome == RL_OK, "reload to %s:%d, the port bound for port 0: %s",
                 spellings[i], p, rl_name(outcome));
        IT_CHECK(rs_listener(s->pid, p) == listener,
                 "after the reload to %s:%d the master holds another socket on port %d",
                 spellings[i], p, p);
        IT_ECHO(a, "open across the reload", 22);
        int b = it_connect(p);
        IT_CHECK(b >= 0, "connect to %d after the reload: %s", p, it_errbuf);
        IT_ECHO(b, "new", 3);
        it_close(b);
    }
    it_close(a);
    rs_passed = 1;
}

int it_run_listen_change(void)
{
    const struct CMUnitTest tests[] = {
        RS_TEST(listen_moves_to_new_port),
        RS_TEST(listen_on_busy_port_fails),
        RS_TEST(listen_port_zero_written_back),
    };
    return cmocka_run_group_tests_name("listen_change", tests, NULL, NULL);
}

/* ================================================================== kill9 */

/* Kills the worker, then measures until a request is served.  Returns
 * the milliseconds from the kill to the first reply, or -1. */
static long rs_kill_and_serve(struct it_server *s, pid_t w, int limit_ms,
                              pid_t *new_worker, char *why, size_t whylen)
{
    int64_t t0 = it_now_ms();
    if (kill(w, SIGKILL) != 0) {
        snprintf(why, whylen, "kill(%d, SIGKILL): %s", (int)w, strerror(errno));
        return -1;
    }
    int64_t end = t0 + limit_ms;
    int tries = 0;
    why[0] = 0;
    while (it_now_ms() < end) {
        int left = (int)(end - it_now_ms());
        int fd = it_connect(s->port);
        if (fd < 0) {
            snprintf(why, whylen, "connect: %s", it_errbuf);
            it_sleep_ms(20);
            continue;
        }
        char msg[64];
        int len = snprintf(msg, sizeof msg, "after kill -9 of %d, try %d", (int)w,
                           ++tries);
        int rc = it_roundtrip(fd, msg, (size_t)len, msg, (size_t)len,
                              left > 0 ? left : 1);
        it_close(fd);
        if (rc == 0) {
            long took = (long)(it_now_ms() - t0);
            *new_worker = it_wait_new_worker(s, w, 1000);
            return took;
        }
        snprintf(why, whylen, "round trip: %s", it_errbuf);
        it_sleep_ms(10);
    }
    return -1;
}

static void kill9_replaced(void **state)
{
    (void)state;
    struct it_server *s = rs_start("kill9", NULL);
    IT_CHECK(s->nworkers == 1, "expected 1 worker, found %d", s->nworkers);
    pid_t w = s->workers[0];
    int fd = it_connect(s->port);
    IT_CHECK(fd >= 0, "connect: %s", it_errbuf);
    IT_ECHO(fd, "before", 6);
    it_close(fd);

    size_t off = it_log_size(s);
    char why[600];
    pid_t nw = 0;
    long took = rs_kill_and_serve(s, w, 2000, &nw, why, sizeof why);
    IT_CHECK(took >= 0, "no request served within 2 s of kill -9 of worker %d (%s)",
             (int)w, why);
    IT_CHECK(nw > 0 && nw != w,
             "the request was served but the master has no single new worker");
    it_log("worker %d killed: replacement pid %d served after %ld ms", (int)w,
           (int)nw, took);
    IT_CHECK(it_wait_log(s, off, "was killed by signal 9 (SIGKILL)", 1000),
             "the log does not say the worker \"was killed by signal 9 "
             "(SIGKILL)\"");
    IT_CHECK(it_server_alive(s), "the master exited");
    rs_passed = 1;
}

static void kill9_backoff(void **state)
{
    (void)state;
    struct it_server *s = rs_start("kill9_backoff", NULL);
    pid_t w = s->workers[0];
    char why[600];
    pid_t w2 = 0, w3 = 0;
    long t1 = rs_kill_and_serve(s, w, 2000, &w2, why, sizeof why);
    IT_CHECK(t1 >= 0 && w2 > 0, "first kill -9: no replacement served in 2 s (%s)",
             why);
    /* a second crash right after: the respawn backs off (1 s), then the
     * replacement serves */
    int64_t t0 = it_now_ms();
    long t2 = rs_kill_and_serve(s, w2, 4000, &w3, why, sizeof why);
    IT_CHECK(t2 >= 0 && w3 > 0,
             "second kill -9: no replacement served within 4 s (%s)", why);
    it_log("first respawn served after %ld ms, second after %ld ms", t1, t2);
    IT_CHECK(t2 >= 700,
             "the second crash in a row was respawned after %ld ms: no backoff "
             "(expected about 1 s)",
             t2);
    (void)t0;
    rs_passed = 1;
}

int it_run_kill9(void)
{
    const struct CMUnitTest tests[] = {
        RS_TEST(kill9_replaced),
        RS_TEST(kill9_backoff),
    };
    return cmocka_run_group_tests_name("kill9", tests, NULL, NULL);
}

/* ================================================================ workers */

#define WK_CLIENTS 100

/* Opens n connections, sends each a distinct payload, then reads and
 * checks every reply.  Fails the test on any error. */
static void rs_many_clients(int port, int n, uint64_t tag)
{
    int fd[WK_CLIENTS];
    char out[2048], in[2048];
    for (int i = 0; i < n; i++) {
        fd[i] = it_connect(port);
        IT_CHECK(fd[i] >= 0, "client %d of %d: connect: %s", i + 1, n, it_errbuf);
    }
    for (int i = 0; i < n; i++) {
        size_t len = 64 + (size_t)(mix64(tag + (uint64_t)i) % (sizeof out - 64));
        it_pattern(tag + (uint64_t)i, 0, out, len);
        IT_CHECK(it_send_all(fd[i], out, len, 5000) == 0,
                 "client %d of %d: send: %s", i + 1, n, it_errbuf);
    }
    for (int i = 0; i < n; i++) {
        size_t len = 64 + (size_t)(mix64(tag + (uint64_t)i) % (sizeof out - 64));
        it_pattern(tag + (uint64_t)i, 0, out, len);
        size_t got = 0;
        ssize_t r = it_recv_exact(fd[i], in, len, 5000, &got);
        IT_CHECK(r == (ssize_t)len, "client %d of %d: %s", i + 1, n, it_errbuf);
        long d = it_first_diff(in, out, len);
        IT_CHECK(d < 0, "client %d of %d: reply differs at byte %ld of %zu", i + 1,
                 n, d, len);
    }
    for (int i = 0; i < n; i++)
        it_close(fd[i]);
}

static void workers_two(void **state)
{
    (void)state;
    const char *const lines[] = {"workers = 2;", "drain_timeout = 10;", NULL};
    struct it_server *s = rs_start("workers", lines);
    pid_t k0[64];
    int n0 = rs_kids(s, k0, 64);
    IT_CHECK(n0 == 2 && k0[0] != k0[1], "workers = 2: the master has %d children",
             n0);
    IT_CHECK(it_log_contains(s, "2 workers, generation 1"),
             "no \"2 workers, generation 1\" in the listening line");

    rs_many_clients(s->port, WK_CLIENTS, 1000);

    unsigned g = rs_must_reload(rs_index(s), NULL);
    IT_CHECK(g == 2, "expected generation 2 serving, got %u", g);
    IT_CHECK(it_log_contains(s, "2 workers, generation 2"),
             "no \"2 workers, generation 2\" in the listening line");
    /* generation 1 had no open connection: it drains at once, and two
     * new workers remain */
    int64_t end = it_now_ms() + 3000;
    pid_t k1[64];
    int n1;
    for (;;) {
        n1 = rs_kids(s, k1, 64);
        int disjoint = n1 == 2;
        for (int i = 0; disjoint && i < n1; i++)
            disjoint = k1[i] != k0[0] && k1[i] != k0[1];
        if (disjoint || it_now_ms() >= end)
            break;
        it_sleep_ms(10);
    }
    IT_CHECK(n1 == 2 && k1[0] != k0[0] && k1[0] != k0[1] && k1[1] != k0[0] &&
                 k1[1] != k0[1],
             "3 s after the reload the master's children are %d (%d %d), not two "
             "new workers replacing %d and %d",
             n1, n1 > 0 ? (int)k1[0] : 0, n1 > 1 ? (int)k1[1] : 0, (int)k0[0],
             (int)k0[1]);
    it_log("workers %d %d replaced by %d %d", (int)k0[0], (int)k0[1], (int)k1[0],
           (int)k1[1]);
    rs_many_clients(s->port, WK_CLIENTS, 2000);
    rs_passed = 1;
}

int it_run_workers(void)
{
    const struct CMUnitTest tests[] = {
        RS_TEST(workers_two),
    };
    return cmocka_run_group_tests_name("workers", tests, NULL, NULL);
}

/* ================================================================ signals */

static void signals_quit_drains(void **state)
{
    (void)state;
    const char *const lines[] = {"drain_timeout = 10;", NULL};
    struct it_server *s = rs_start("quit", lines);
    char pidfile[600];
    snprintf(pidfile, sizeof pidfile, "%s/quit.pid", it_tmpdir());
    IT_CHECK(access(pidfile, F_OK) == 0, "no pid file %s", pidfile);
    int a = it_connect(s->port);
    IT_CHECK(a >= 0, "connect: %s", it_errbuf);
    IT_ECHO(a, "before quit", 11);

    char *out = NULL;
    int st = rs_signal_cmd(s->cfg, "quit", &out);
    char how[128];
    rs_describe(st, how, sizeof how);
    int ok = st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0;
    if (!ok)
        fprintf(stderr, "----- output -----\n%s\n", out ? out : "");
    free(out);
    IT_CHECK(ok, "`ioserve -s quit`: %s", how);
    int64_t t0 = it_now_ms();

    /* the open connection is served until it closes */
    for (int i = 0; i < 4; i++) {
        it_sleep_ms(100);
        char msg[32];
        int len = snprintf(msg, sizeof msg, "draining %d", i);
        IT_CHECK(it_roundtrip(a, msg, (size_t)len, msg, (size_t)len, 2000) == 0,
                 "round trip %d on the open connection after -s quit: %s", i,
                 it_errbuf);
    }
    IT_CHECK(it_server_alive(s), "the master exited while a connection was open");
    it_close(a);
    IT_CHECK(it_wait_exit(s, 3000),
             "the master still runs 3 s after its last connection closed");
    rs_describe(s->status, how, sizeof how);
    IT_CHECK(WIFEXITED(s->status) && WEXITSTATUS(s->status) == 0,
             "after -s quit the master ended with %s (expected exit 0)", how);
    it_log("-s quit: the master exited 0, %lld ms after -s quit",
           (long long)(it_now_ms() - t0));
    IT_CHECK(access(pidfile, F_OK) != 0, "the pid file %s is left behind", pidfile);
    rs_passed = 1;
}

static void signals_stop_now(void **state)
{
    (void)state;
    const char *const lines[] = {"drain_timeout = 30;", NULL};
    struct it_server *s = rs_start("stop", lines);
    int a = it_connect(s->port);
    IT_CHECK(a >= 0, "connect: %s", it_errbuf);
    IT_ECHO(a, "before stop", 11);
    char *out = NULL;
    int64_t t0 = it_now_ms();
    int st = rs_signal_cmd(s->cfg, "stop", &out);
    char how[128];
    rs_describe(st, how, sizeof how);
    int ok = st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0;
    if (!ok)
        fprintf(stderr, "----- output -----\n%s\n", out ? out : "");
    free(out);
    IT_CHECK(ok, "`ioserve -s stop`: %s", how);
    IT_CHECK(it_wait_exit(s, 2000),
             "the master still runs 2 s after -s stop (with an open connection)");
    long took = (long)(it_now_ms() - t0);
    rs_describe(s->status, how, sizeof how);
    it_log("-s stop: the master ended (%s) after %ld ms", how, took);
    IT_CHECK(WIFEXITED(s->status) && WEXITSTATUS(s->status) == 0,
             "after -s stop the master ended with %s (expected exit 0)", how);
    size_t junk = 0;
    IT_CHECK(it_wait_closed(a, 2000, &junk) == 1,
             "the open connection was not closed by the stop");
    it_close(a);
    rs_passed = 1;
}

/* Runs `-s what` on cfg expecting exit 1 and `needle` in the output. */
static void rs_expect_refusal(const char *cfg, const char *what, const char *needle)
{
    char *out = NULL;
    int st = rs_signal_cmd(cfg, what, &out);
    char how[128];
    rs_describe(st, how, sizeof how);
    int ok = st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 1 && out &&
             strstr(out, needle);
    if (!ok)
        fprintf(stderr, "----- output of -s %s -----\n%s\n", what, out ? out : "");
    else
        it_log("-s %s: exit 1, \"%.*s\"", what,
               (int)strcspn(out, "\n"), out);
    free(out);
    IT_CHECK(ok, "`ioserve -c %s -s %s`: %s; expected exit 1 with \"%s\"", cfg,
             what, how, needle);
}

static void signals_missing_pid_file(void **state)
{
    (void)state;
    char *cfg = it_write_config("nopid", NULL);
    IT_CHECK(cfg != NULL, "cannot write config");
    char pidfile[600];
    snprintf(pidfile, sizeof pidfile, "%s/nopid.pid", it_tmpdir());
    unlink(pidfile);
    rs_expect_refusal(cfg, "reload", "pid file");
    rs_expect_refusal(cfg, "reload", pidfile);
    rs_expect_refusal(cfg, "quit", "pid file");
    rs_expect_refusal(cfg, "stop", "pid file");
    rs_expect_refusal(cfg, "bogus", "reload, quit, stop or upgrade");
    free(cfg);
    const char *const nopid[] = {"pid_file = \"\";", NULL};
    cfg = it_write_config("nopidfile", nopid);
    IT_CHECK(cfg != NULL, "cannot write config");
    rs_expect_refusal(cfg, "reload", "pid_file");
    free(cfg);
    rs_passed = 1;
}

static void signals_stale_pid_file(void **state)
{
    (void)state;
    char *cfg = it_write_config("stale", NULL);
    IT_CHECK(cfg != NULL, "cannot write config");
    /* a pid that can never be running: the kernel hands out pids below
     * pid_max (a reaped child's pid could be reused at once) */
    char *pid_max = it_read_file("/proc/sys/kernel/pid_max", NULL);
    IT_CHECK(pid_max != NULL, "cannot read /proc/sys/kernel/pid_max");
    long p = strtol(pid_max, NULL, 10);
    free(pid_max);
    IT_CHECK(p > 1 && kill((pid_t)p, 0) != 0 && errno == ESRCH,
             "pid_max %ld names a running process", p);
    char pidfile[600], line[32];
    snprintf(pidfile, sizeof pidfile, "%s/stale.pid", it_tmpdir());
    snprintf(line, sizeof line, "%ld\n", p);
    IT_CHECK(it_write_file(pidfile, line) == 0, "cannot write %s", pidfile);
    rs_expect_refusal(cfg, "reload", "stale");
    rs_expect_refusal(cfg, "stop", "stale");
    free(cfg);
    rs_passed = 1;
}

/* A pid file naming a live process that is not ioserve (its pid reused
 * since the file was left behind): refused, and that process untouched. */
static void signals_pid_of_another_program(void **state)
{
    (void)state;
    pid_t p = fork(); /* named like this harness, not like ioserve */
    IT_CHECK(p >= 0, "fork: %s", strerror(errno));
    if (p == 0) {
        /* Not the harness's handlers (its watchdog, its cleanup): the
         * defaults, so a signal from -s would end it, as it must not. */
        signal(SIGALRM, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        signal(SIGINT, SIG_DFL);
        signal(SIGHUP, SIG_DFL);
        alarm(30); /* never outlives the test */
        for (;;)
            pause();
    }
    rs_decoy = p; /* ended by rs_test_teardown whatever happens here */
    char pidfile[600], line[32];
    snprintf(pidfile, sizeof pidfile, "%s/reused.pid", it_tmpdir());
    snprintf(line, sizeof line, "%d\n", (int)p);
    IT_CHECK(it_write_file(pidfile, line) == 0, "cannot write %s", pidfile);
    char *cfg = it_write_config("reused", NULL);
    IT_CHECK(cfg != NULL, "cannot write config");
    rs_expect_refusal(cfg, "stop", "not ioserve");
    rs_expect_refusal(cfg, "reload", "not ioserve");
    free(cfg);
    int st;
    IT_CHECK(waitpid(p, &st, WNOHANG) == 0,
             "the process named in the pid file was signalled");
    rs_passed = 1;
}

int it_run_signals(void)
{
    const struct CMUnitTest tests[] = {
        RS_TEST(signals_quit_drains),
        RS_TEST(signals_stop_now),
        RS_TEST(signals_missing_pid_file),
        RS_TEST(signals_stale_pid_file),
        RS_TEST(signals_pid_of_another_program),
    };
    return cmocka_run_group_tests_name("signals", tests, NULL, NULL);
}
