/*
 * Live hand-over (issue 12): a reload moves every open connection to the
 * new generation at its next boundary.  Per-model scenarios, the model
 * under test (X) being the scenario's model; where a scenario rotates, it
 * goes X -> m -> X for every other built model m, so X both gives to and
 * adopts from each of them.
 *
 *   handover_rotation  200 upper sessions (a line every 50 ms each) and 20
 *                      http keep-alive clients (back to back) through the
 *                      rotation, lasting over 5 x drain_timeout (1 s): no
 *                      session broken, every byte right and in order, all
 *                      open on the last generation afterwards (/metrics)
 *   handover_stream    32 MB through upper, pipelined, while reloads happen
 *   handover_idle      1,000 idle connections: the old generation hands all
 *                      over and ends within 100 ms of the new one serving
 *   handover_spread    workers 4 -> 2 -> 4: no worker > 10 % off an even
 *                      share of 1,000 connections, nothing lost
 *   handover_kill      kill -9 of an adopting worker in the middle of a
 *                      hand-over of 1,000 connections: only what it had
 *                      adopted may be lost
 *   handover_abi11     a plugin built against ABI 1.1 still drains, and a
 *                      rotation X -> 1.1 -> X -> X works: nothing breaks, the
 *                      1.1 generation drains as before, and what waited on X
 *                      behind it moves on once X follows again
 *   handover_quit      -s quit: an idle http keep-alive connection is closed
 *                      at once; an upper session stays until drain_timeout
 *   handover_off       handover = false drains as before; so does a reload
 *                      that changes the handler, and the log says why
 *
 * The clients run in one poll loop over non-blocking sockets (ho_pump), and
 * reloads are asked with SIGHUP while that loop keeps every client going.
 * Every server is stopped and reaped by the test teardown, and every client
 * socket closed, even when an assertion failed.
 */
#include "harness.h"
#include "ho_load.h"
#include "hostile.h" /* hx_raise_nofile */

#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define HO_MAX_MODELS 16
#define HO_MAX_SERVERS 3

/* ============================================================== servers */

static struct it_server ho_srv[HO_MAX_SERVERS];
static char ho_name[HO_MAX_SERVERS][64];
static int ho_nsrv;
static int ho_passed; /* the test reached its end: no log dump */

/* A count of connections, a fifth under ThreadSanitizer: each costs the
 * blocking model a thread there, ~10 ms to start (harness.h), so 1,000
 * would take the four heavy scenarios minutes; the code paths, and the
 * races TSan looks for in them, are the same with fewer. */
#define HO_CONNS(n) (IT_TSAN ? (n) / 5 : (n))

/* A config: the model under test unless `model` says otherwise. */
struct ho_cfg {
    const char *model;   /* a name, or a path to a .so; NULL = it_env.model */
    const char *handler; /* NULL = upper */
    int workers;         /* 0 = 1 */
    int drain_timeout;   /* seconds; 0 = 1 */
    const char *extra;   /* one more "key = value;" line, or NULL */
};

/* Writes config `name` from c (same name = same path, for reloads). */
static char *ho_write(const char *name, const struct ho_cfg *c)
{
    char model[1200], handler[96], workers[64], drain[64];
    snprintf(model, sizeof model, "model = \"%s\";", c->model ? c->model : it_env.model);
    snprintf(handler, sizeof handler, "handler = \"%s\";", c->handler ? c->handler : "upper");
    snprintf(workers, sizeof workers, "workers = %d;", c->workers ? c->workers : 1);
    snprintf(drain, sizeof drain, "drain_timeout = %d;", c->drain_timeout ? c->drain_timeout : 1);
    const char *const lines[] = {model,
                                 handler,
                                 workers,
                                 drain,
                                 "max_connections = 4096;",
                                 "status_listen = \"127.0.0.1:0\";",
                                 c->extra,
                                 NULL};
    return it_write_config(name, lines);
}

/* Starts a server on config `name` (main.c skipped the scenario before if
 * the model cannot run here: a server that does not start is a failure). */
static struct it_server *ho_start(const char *name, const struct ho_cfg *c)
{
    if (ho_nsrv == HO_MAX_SERVERS)
        IT_FAIL("ho_start: more than %d servers in one test", HO_MAX_SERVERS);
    char *cfg = ho_write(name, c);
    IT_CHECK(cfg, "cannot write config %s", name);
    struct it_server *s = &ho_srv[ho_nsrv];
    snprintf(ho_name[ho_nsrv], sizeof ho_name[0], "%s", name);
    ho_nsrv++; /* counted first: the teardown stops what was started */
    int rc = it_server_start(s, cfg);
    free(cfg);
    IT_CHECK(rc == 0, "server %s did not start (see its log above)", name);
    return s;
}

static int ho_index(const struct it_server *s)
{
    return (int)(s - ho_srv);
}

/* The other built models, and the path of the ABI 1.1 fixture. */
static int ho_others(char names[][64], int max)
{
    char all[HO_MAX_MODELS][64];
    int n = it_runnable_models(all, HO_MAX_MODELS), k = 0;
    for (int i = 0; i < n && k < max; i++)
        if (strcmp(all[i], it_env.model) != 0)
            snprintf(names[k++], 64, "%.63s", all[i]);
    return k;
}

/* ======================================================= log and metrics */

/* The start of the complete line of `text` holding `needle`, or NULL. */
static const char *ho_line(const char *text, const char *needle)
{
    const char *p = strstr(text, needle);
    if (!p || !strchr(p, '\n'))
        return NULL;
    while (p > text && p[-1] != '\n')
        p--;
    return p;
}

/* Milliseconds since midnight of a log line ("2026-12-01T15:26:20.870Z
 * [info] ..."), or -1. */
static long ho_line_ms(const char *line)
{
    int h, m, sec, ms;
    if (!line || sscanf(line, "%*4d-%*2d-%*2dT%2d:%2d:%2d.%3dZ", &h, &m, &sec, &ms) != 4)
        return -1;
    return ((h * 60L + m) * 60L + sec) * 1000L + ms;
}

/* The line that says generation `gen` ended (its last worker gone): today's
 * "generation N: drained" or the hand-over's "generation N drained in ...". */
static const char *ho_drained_line(const char *text, unsigned gen)
{
    char a[64], b[64];
    snprintf(a, sizeof a, "generation %u: drained", gen);
    snprintf(b, sizeof b, "generation %u drained", gen);
    const char *l = ho_line(text, a);
    return l ? l : ho_line(text, b);
}

/* Waits up to timeout_ms for generation `gen` to end (after log byte off):
 * its "drained" line's time of day in ms, or -1. */
static long ho_wait_drained(const struct it_server *s, size_t off, unsigned gen,
                            int timeout_ms)
{
    int64_t end = it_now_ms() + timeout_ms;
    for (;;) {
        char *seg = it_log_since(s, off);
        long t = ho_line_ms(ho_drained_line(seg, gen));
        int found = ho_drained_line(seg, gen) != NULL;
        free(seg);
        if (found)
            return t < 0 ? 0 : t;
        if (it_now_ms() >= end)
            return -1;
        it_sleep_ms(5);
    }
}

/* Waits up to timeout_ms for a complete log line holding `needle` (after
 * log byte off).  1 when it came, 0 if not. */
static int ho_wait_line(const struct it_server *s, size_t off, const char *needle,
                        int timeout_ms)
{
    int64_t end = it_now_ms() + timeout_ms;
    for (;;) {
        char *seg = it_log_since(s, off);
        int found = ho_line(seg, needle) != NULL;
        free(seg);
        if (found || it_now_ms() >= end)
            return found;
        it_sleep_ms(5);
    }
}

/* Per-worker ioserve_connections_active of generation `gen` into out[j]
 * (worker="j"); the number of workers seen. */
static int ho_worker_active(const char *body, unsigned gen, long *out, int max)
{
    static const char fam[] = "ioserve_connections_active{";
    char glabel[64];
    snprintf(glabel, sizeof glabel, "generation=\"%u\"", gen);
    int n = 0;
    for (const char *l = body; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
        const char *end = strchr(l, '\n');
        if (!end || strncmp(l, fam, sizeof fam - 1) != 0)
            continue;
        char line[512];
        snprintf(line, sizeof line, "%.*s", (int)(end - l), l);
        const char *w = strstr(line, "worker=\"");
        const char *sp = strrchr(line, ' ');
        if (!strstr(line, glabel) || !w || !sp)
            continue;
        int j = atoi(w + 8);
        if (j >= 0 && j < max) {
            out[j] = strtol(sp + 1, NULL, 10);
            if (j + 1 > n)
                n = j + 1;
        }
    }
    return n;
}

/* =============================================================== reloads */

/* A reload in flight, asked with SIGHUP while the clients keep going. */
struct ho_rl {
    int srv;
    size_t off;     /* log size when it was asked */
    int64_t t0;
    int busy;
    unsigned gen;   /* the generation serving once it completed */
    char model[1024];
};

/* Rewrites server i's config with c and sends SIGHUP to its master. */
static void ho_reload_begin(struct ho_rl *r, int i, const struct ho_cfg *c)
{
    struct it_server *s = &ho_srv[i];
    r->srv = i;
    r->off = it_log_size(s);
    r->t0 = it_now_ms();
    r->busy = 1;
    snprintf(r->model, sizeof r->model, "%s", c->model ? c->model : it_env.model);
    char *cfg = ho_write(ho_name[i], c);
    IT_CHECK(cfg && strcmp(cfg, s->cfg) == 0, "rewriting %s failed", s->cfg);
    free(cfg);
    IT_CHECK(kill(s->pid, SIGHUP) == 0, "SIGHUP to %d: %s", (int)s->pid, strerror(errno));
}

/* 1 = completed (r->gen serving), 0 = not yet; fails the test when the
 * reload failed or took over HO_MS(10000). */
static int ho_reload_done(struct ho_rl *r)
{
    if (!r->busy)
        return 1;
    struct it_server *s = &ho_srv[r->srv];
    char *seg = it_log_since(s, r->off);
    const char *l = ho_line(seg, "reload: generation ");
    const char *bad = ho_line(seg, "reload failed");
    if (!bad)
        bad = ho_line(seg, "reload refused");
    unsigned g = 0;
    if (l && sscanf(strstr(l, "reload: generation "), "reload: generation %u serving", &g) == 1) {
        free(seg);
        r->gen = g;
        r->busy = 0;
        return 1;
    }
    if (bad || !it_server_alive(s) || it_now_ms() - r->t0 > HO_MS(10000)) {
        fprintf(stderr, "----- %s log since the reload to %s -----\n%s\n----- end -----\n",
                ho_name[r->srv], r->model, seg);
        free(seg);
        IT_FAIL("reload of %s to model %s: %s%d ms", ho_name[r->srv], r->model,
                bad ? "failed (log above), after "
                    : !it_server_alive(s) ? "the master exited, after "
                                          : "no outcome within ",
                (int)(it_now_ms() - r->t0));
    }
    free(seg);
    return 0;
}

/* A whole reload; the generation now serving. */
static unsigned ho_reload(int i, const struct ho_cfg *c)
{
    struct ho_rl r;
    ho_reload_begin(&r, i, c);
    while (!ho_reload_done(&r))
        it_sleep_ms(2);
    return r.gen;
}

/* =============================================================== fixtures */

static int ho_group_setup(void **state)
{
    (void)state;
    hx_raise_nofile(8192); /* 1,000 connections and more */
    return 0;
}

static int ho_test_setup(void **state)
{
    (void)state;
    ho_passed = 0;
    return 0;
}

static int ho_test_teardown(void **state)
{
    (void)state;
    ho_free_loads();
    it_close_all();
    it_stop_servers(ho_srv, ho_nsrv, !ho_passed);
    ho_nsrv = 0;
    return 0;
}

#define HO_TEST(f) cmocka_unit_test_setup_teardown(f, ho_test_setup, ho_test_teardown)

/* ============================================================= rotation */

#define ROT_UPPER HO_CONNS(200)
#define ROT_HTTP 20
#define ROT_MIN_MS 5500 /* > 5 x the drain_timeout, 1 s */
/* drain_timeout, seconds.  A sanitizer build's drain takes longer than
 * 1 s alone (a ThreadSanitizer process needs ~1.5 s just to exit), and
 * what a drain_timeout kill cuts would count as broken sessions. */
#define ROT_DRAIN_S (1 * IT_SLOWDOWN)

/* The rotation X -> m1 -> X -> m2 -> X ... over every other built model
 * (X -> X -> X ... when X is the only one), at least `min` steps. */
static int ho_rotation(char steps[][64], int max, int min)
{
    char others[HO_MAX_MODELS][64];
    int no = ho_others(others, HO_MAX_MODELS), n = 0;
    for (int i = 0; i < no && n + 2 <= max; i++) {
        snprintf(steps[n++], 64, "%.63s", others[i]);
        snprintf(steps[n++], 64, "%.63s", it_env.model);
    }
    while (n < min && n < max)
        snprintf(steps[n++], 64, "%.63s", it_env.model);
    return n;
}

struct rot_state {
    struct ho_rl rl;
    char (*steps)[64];
    int nsteps;
    int nsrv;          /* servers reloaded in turn at every step */
    int next;          /* reloads begun: step next / nsrv, server next % nsrv */
    int pace_ms;
    int64_t next_at;
    unsigned gen[HO_MAX_SERVERS];
    struct ho_cfg cfg[HO_MAX_SERVERS];
    long conns[HO_MAX_SERVERS]; /* each server's sessions */
    int settling;               /* waiting for the last reload's hand-over */
    int64_t settle_check_at;
};

/* A sanitizer build takes seconds for a hand-over the others do in
 * milliseconds; reloads paced for the latter would come while the last
 * one's connections are still on their way, so a connection would skip a
 * generation and the count of hand-overs not add up.  There, the next
 * reload waits until the new generation holds every connection.  1 once
 * it does; fails the test after HO_MS(10000). */
static int rot_settled(struct rot_state *r)
{
    if (!IT_SANITIZED)
        return 1;
    int64_t now = it_now_ms();
    if (now < r->settle_check_at)
        return 0;
    r->settle_check_at = now + 50;
    struct it_server *s = &ho_srv[r->rl.srv];
    const char *body = ho_metrics(s);
    long on_gen = body ? ho_active(body, r->rl.gen) : -1;
    long total = body ? ho_active(body, 0) : -1;
    long want = r->conns[r->rl.srv];
    if (on_gen == want && total == want)
        return 1;
    IT_CHECK(now - r->rl.t0 <= HO_MS(10000),
             "%s: %ld connections on generation %u, %ld on all, %lld ms after the reload "
             "(expected %ld on it alone)",
             ho_name[r->rl.srv], on_gen, r->rl.gen, total, (long long)(now - r->rl.t0), want);
    return 0;
}

/* Begins the next reload once the previous one completed and its pace
 * passed; ends the loop after the last one. */
static int rot_hook(void *arg)
{
    struct rot_state *r = arg;
    if (r->rl.busy) {
        if (!ho_reload_done(&r->rl))
            return 0;
        r->gen[r->rl.srv] = r->rl.gen;
        r->settling = 1;
    }
    if (r->settling) {
        if (!rot_settled(r))
            return 0;
        r->settling = 0;
    }
    if (r->next == r->nsteps * r->nsrv)
        return 1;
    if (it_now_ms() < r->next_at)
        return 0;
    int srv = r->next % r->nsrv;
    struct ho_cfg c = r->cfg[srv];
    c.model = r->steps[r->next / r->nsrv];
    ho_reload_begin(&r->rl, srv, &c);
    r->next++;
    r->next_at = it_now_ms() + r->pace_ms;
    return 0;
}

static void rotation(void **state)
{
    (void)state;
    struct rot_state r;
    memset(&r, 0, sizeof r);
    r.nsrv = 2;
    r.cfg[0] = (struct ho_cfg){.handler = "upper", .drain_timeout = ROT_DRAIN_S};
    r.cfg[1] = (struct ho_cfg){.handler = "http", .drain_timeout = ROT_DRAIN_S};
    struct it_server *su = ho_start("rot_upper", &r.cfg[0]);
    struct it_server *sh = ho_start("rot_http", &r.cfg[1]);
    char steps[2 * HO_MAX_MODELS][64];
    r.steps = steps;
    r.nsteps = ho_rotation(steps, 2 * HO_MAX_MODELS, 6);
    r.pace_ms = ROT_MIN_MS / (r.nsteps * r.nsrv);
    if (r.pace_ms < 100)
        r.pace_ms = 100;

    struct ho_load *loads[2];
    r.conns[0] = ROT_UPPER;
    r.conns[1] = ROT_HTTP;
    loads[0] = ho_open(su->port, ROT_UPPER, HO_UPPER, 50);
    loads[1] = ho_open(sh->port, ROT_HTTP, HO_HTTP, 0);
    ho_pump(loads, 2, 500, NULL, NULL);
    IT_CHECK(ho_broken(loads[0], "upper session") == 0 &&
                 ho_broken(loads[1], "http client") == 0,
             "sessions broke before any reload");
    /* Every session on the first generation, or the count of hand-overs
     * would miss those a later one accepts (a sanitizer build is slow to
     * start the blocking model's threads). */
    for (int i = 0; i < r.nsrv; i++) {
        struct it_server *srv = i ? sh : su;
        long on_gen, total;
        IT_CHECK(ho_wait_active(srv, 1, r.conns[i], HO_MS(3000), &on_gen, &total) == 0,
                 "%s: %ld connections on generation 1, %ld on all (expected %ld)",
                 ho_name[ho_index(srv)], on_gen, total, r.conns[i]);
    }

    int64_t t0 = it_now_ms();
    r.next_at = t0;
    ho_pump(loads, 2, HO_MS(60000), rot_hook, &r);
    int64_t took = it_now_ms() - t0;
    IT_CHECK(r.next == r.nsteps * r.nsrv && !r.rl.busy && !r.settling,
             "%d of %d reloads done in %lld ms",
             r.next, r.nsteps * r.nsrv, (long long)took);
    it_log("rotation: %d reloads of each server over %lld ms (%d ms apart), upper now "
           "generation %u, http generation %u",
           r.nsteps, (long long)took, r.pace_ms, r.gen[0], r.gen[1]);
    /* past drain_timeout: whatever was left on an old generation is cut */
    ho_pump(loads, 2, ROT_DRAIN_S * 1000 + 500, NULL, NULL);

    unsigned long long lines = 0, reqs = 0;
    int64_t worst = 0;
    for (int i = 0; i < loads[0]->n; i++) {
        lines += loads[0]->s[i].done;
        if (loads[0]->s[i].max_wait > worst)
            worst = loads[0]->s[i].max_wait;
    }
    for (int i = 0; i < loads[1]->n; i++) {
        reqs += loads[1]->s[i].done;
        if (loads[1]->s[i].max_wait > worst)
            worst = loads[1]->s[i].max_wait;
    }
    it_log("%llu lines and %llu http responses verified; the longest wait for a reply "
           "%lld ms",
           lines, reqs, (long long)worst);
    int bu = ho_broken(loads[0], "upper session");
    int bh = ho_broken(loads[1], "http client");
    IT_CHECK(bu == 0 && bh == 0,
             "%d of %d upper sessions and %d of %d http clients broke during the "
             "rotation (reasons above)",
             bu, ROT_UPPER, bh, ROT_HTTP);
    IT_CHECK(took >= 5000, "the rotation lasted %lld ms, less than 5 x 1 s", (long long)took);

    long on_gen, total;
    IT_CHECK(ho_wait_active(su, r.gen[0], ROT_UPPER, HO_MS(3000), &on_gen, &total) == 0,
             "upper: %ld connections on the last generation %u, %ld on all (expected %d "
             "on the last only)",
             on_gen, r.gen[0], total, ROT_UPPER);
    IT_CHECK(ho_wait_active(sh, r.gen[1], ROT_HTTP, HO_MS(3000), &on_gen, &total) == 0,
             "http: %ld connections on the last generation %u, %ld on all (expected %d "
             "on the last only)",
             on_gen, r.gen[1], total, ROT_HTTP);
    ho_exchange_all(loads[0], HO_MS(5000));
    IT_CHECK(ho_broken(loads[0], "upper session") == 0,
             "upper sessions failed their last exchange");
    ho_check_moved(su, (long)ROT_UPPER * r.nsteps);
    ho_check_moved(sh, (long)ROT_HTTP * r.nsteps);
    ho_passed = 1;
}

int it_run_handover_rotation(void)
{
    const struct CMUnitTest tests[] = {HO_TEST(rotation)};
    return cmocka_run_group_tests_name("handover_rotation", tests, ho_group_setup, NULL);
}

/* =============================================================== stream */

#define ST_TOTAL (32u << 20)
#define ST_CHUNK (64u << 10)
#define ST_WINDOW (1u << 20)  /* bytes in flight at most */
#define ST_RATE_KB_MS 8       /* ~8 MB/s: about 4 s, reloads all along */
#define ST_PACE_MS 300
#define ST_SEED 0x32u

static void stream(void **state)
{
    (void)state;
    struct ho_cfg cfg = {.handler = "upper", .drain_timeout = 1};
    struct it_server *s = ho_start("stream", &cfg);
    char steps[2 * HO_MAX_MODELS][64];
    int nsteps = ho_rotation(steps, 2 * HO_MAX_MODELS, 10);

    int fd = it_connect(s->port);
    IT_CHECK(fd >= 0, "connect: %s", it_errbuf);
    char *out = malloc(ST_CHUNK), *in = malloc(ST_CHUNK), *want = malloc(ST_CHUNK);
    IT_CHECK(out && in && want, "out of memory");

    struct ho_rl rl = {.busy = 0};
    int reloads = 0, step = 0;
    size_t sent = 0, got = 0, out_len = 0, out_off = 0;
    int64_t t0 = it_now_ms(), next_reload = t0 + ST_PACE_MS, end = t0 + 40000;
    char problem[300] = "";
    while (got < ST_TOTAL && !problem[0]) {
        int64_t now = it_now_ms();
        if (now > end) {
            snprintf(problem, sizeof problem, "%zu of %u bytes back after 40 s", got,
                     ST_TOTAL);
            break;
        }
        if (ho_reload_done(&rl) && now >= next_reload && sent < ST_TOTAL) {
            struct ho_cfg c = cfg;
            c.model = steps[step++ % nsteps];
            ho_reload_begin(&rl, 0, &c);
            reloads++;
            next_reload = now + ST_PACE_MS;
        }
        /* pipelined: the next chunk goes out whatever the replies do, up to
         * the window and the pace */
        if (out_off == out_len && sent < ST_TOTAL && sent - got < ST_WINDOW &&
            sent < (size_t)(now - t0) * ST_RATE_KB_MS * 1024) {
            out_len = ST_TOTAL - sent < ST_CHUNK ? ST_TOTAL - sent : ST_CHUNK;
            it_pattern(ST_SEED, sent, out, out_len);
            for (size_t i = 0; i < out_len; i++) /* letters, so upper changes them */
                out[i] = (char)('a' + (unsigned char)out[i] % 26);
            out_off = 0;
        }
        while (out_off < out_len) {
            ssize_t w = send(fd, out + out_off, out_len - out_off, MSG_DONTWAIT | MSG_NOSIGNAL);
            if (w <= 0) {
                if (w < 0 && errno != EAGAIN && errno != EINTR)
                    snprintf(problem, sizeof problem, "send after %zu bytes: %s", sent,
                             strerror(errno));
                break;
            }
            out_off += (size_t)w;
            sent += (size_t)w;
        }
        ssize_t r = recv(fd, in, ST_CHUNK, MSG_DONTWAIT);
        if (r > 0) {
            it_pattern(ST_SEED, got, want, (size_t)r);
            for (ssize_t i = 0; i < r; i++)
                want[i] = (char)('A' + (unsigned char)want[i] % 26);
            long d = it_first_diff(in, want, (size_t)r);
            if (d >= 0)
                snprintf(problem, sizeof problem,
                         "byte %zu of the stream differs (got 0x%02x, expected 0x%02x), "
                         "after %d reloads",
                         got + (size_t)d, (unsigned char)in[d], (unsigned char)want[d],
                         reloads);
            got += (size_t)r;
            continue;
        }
        if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
            snprintf(problem, sizeof problem, "%s after %zu of %u bytes back (%zu sent), %d "
                     "reloads",
                     r == 0 ? "EOF" : strerror(errno), got, ST_TOTAL, sent, reloads);
            break;
        }
        struct pollfd p = {fd, (short)(POLLIN | (out_off < out_len ? POLLOUT : 0)), 0};
        poll(&p, 1, 5);
    }
    while (!problem[0] && !ho_reload_done(&rl))
        it_sleep_ms(2);
    free(out);
    free(in);
    free(want);
    it_log("stream: %zu bytes back of %u in %lld ms through %d reloads", got, ST_TOTAL,
           (long long)(it_now_ms() - t0), reloads);
    IT_CHECK(!problem[0], "%s", problem);
    IT_CHECK(reloads >= 5, "only %d reloads happened during the stream", reloads);
    IT_CHECK(it_roundtrip(fd, "after", 5, "AFTER", 5, 3000) == 0, "after the stream: %s",
             it_errbuf);
    ho_passed = 1;
}

int it_run_handover_stream(void)
{
    const struct CMUnitTest tests[] = {HO_TEST(stream)};
    return cmocka_run_group_tests_name("handover_stream", tests, ho_group_setup, NULL);
}

/* ================================================================= idle */

#define IDLE_CONNS HO_CONNS(1000)
/*
 * The bound, for every model.  The blocking model's 1,000
 * connection threads must all end within it: on glibc's own stacks,
 * unmapped one by one at each join, that alone took 130-600 ms (see
 * ioc_stacks.h).  A sanitizer build measures memory, not speed.
 */
#define IDLE_LIMIT_MS 100

static void idle_thousand(void **state)
{
    (void)state;
    struct ho_cfg cfg = {.handler = "upper", .drain_timeout = 5};
    struct it_server *s = ho_start("idle", &cfg);
    struct ho_load *L = ho_open(s->port, IDLE_CONNS, HO_UPPER, 0);
    ho_exchange_all(L, HO_MS(10000));
    IT_CHECK(ho_broken(L, "connection") == 0, "connections failed before the reload");

    size_t off = it_log_size(s);
    unsigned g = ho_reload(ho_index(s), &cfg);
    char *seg = it_log_since(s, off);
    char needle[64];
    snprintf(needle, sizeof needle, "reload: generation %u serving", g);
    long ready = ho_line_ms(ho_line(seg, needle));
    free(seg);
    long drained = ho_wait_drained(s, off, g - 1, cfg.drain_timeout * 1000 + HO_MS(3000));
    IT_CHECK(ready >= 0, "no timestamped \"%s\" line", needle);
    IT_CHECK(drained >= 0, "generation %u did not end within drain_timeout + 3 s", g - 1);
    long took = drained - ready;
    /* A sanitizer's own work when 1,000 threads end outlasts any bound on
     * ours (measured on the blocking model: ASan's joins 2.4 s, a TSan
     * worker's exit 1.4 s): what is checked there is that the hand-over
     * ended the generation, not drain_timeout. */
    int limit = IT_SANITIZED ? cfg.drain_timeout * 1000 : IDLE_LIMIT_MS;
    it_log("generation %u ended %ld ms after generation %u was serving (%d connections)",
           g - 1, took, g, IDLE_CONNS);
    IT_CHECK(took <= limit,
             "generation %u ended %ld ms after generation %u was serving, over %d ms "
             "(drain_timeout %d s)",
             g - 1, took, g, limit, cfg.drain_timeout);
    ho_exchange_all(L, HO_MS(10000));
    int lost = ho_broken(L, "connection");
    IT_CHECK(lost == 0, "%d of %d connections lost in the hand-over", lost, IDLE_CONNS);
    long on_gen, total;
    IT_CHECK(ho_wait_active(s, g, IDLE_CONNS, HO_MS(3000), &on_gen, &total) == 0,
             "%ld connections on generation %u, %ld on all (expected %d)", on_gen, g, total,
             IDLE_CONNS);
    ho_check_moved(s, IDLE_CONNS);
    ho_passed = 1;
}

int it_run_handover_idle(void)
{
    const struct CMUnitTest tests[] = {HO_TEST(idle_thousand)};
    return cmocka_run_group_tests_name("handover_idle", tests, ho_group_setup, NULL);
}

/* =============================================================== spread */

#define SPREAD_CONNS HO_CONNS(1000)

/* Reloads s to `workers` workers, then checks every connection moved, the
 * spread over the new workers, and that each connection still answers. */
static void spread_to(struct it_server *s, struct ho_load *L, int workers)
{
    struct ho_cfg cfg = {.handler = "upper", .drain_timeout = 5, .workers = workers};
    size_t off = it_log_size(s);
    unsigned g = ho_reload(ho_index(s), &cfg);
    IT_CHECK(ho_wait_drained(s, off, g - 1, HO_MS(3000)) >= 0,
             "generation %u still runs %d ms after generation %u (%d workers) was serving "
             "(drain_timeout 5 s): its connections were not handed over",
             g - 1, HO_MS(3000), g, workers);
    long on_gen, total;
    IT_CHECK(ho_wait_active(s, g, SPREAD_CONNS, HO_MS(3000), &on_gen, &total) == 0,
             "%ld connections on generation %u, %ld on all (expected %d)", on_gen, g, total,
             SPREAD_CONNS);
    long per[16] = {0};
    const char *body = ho_metrics(s);
    int n = body ? ho_worker_active(body, g, per, 16) : 0;
    IT_CHECK(n == workers, "/metrics shows %d workers of generation %u, expected %d", n, g,
             workers);
    double share = (double)SPREAD_CONNS / workers;
    char list[256] = "";
    int worst = 0;
    for (int j = 0; j < n; j++) {
        size_t l = strlen(list);
        snprintf(list + l, sizeof list - l, "%s%ld", j ? " " : "", per[j]);
        if (per[j] < share * 0.9 || per[j] > share * 1.1)
            worst = 1;
    }
    it_log("workers = %d: connections per worker %s (even share %.0f)", workers, list, share);
    IT_CHECK(!worst, "workers = %d: connections per worker %s, some more than 10 %% off %.0f",
             workers, list, share);
    ho_exchange_all(L, HO_MS(10000));
    int lost = ho_broken(L, "connection");
    IT_CHECK(lost == 0, "%d of %d connections lost moving to %d workers", lost, SPREAD_CONNS,
             workers);
}

static void spread(void **state)
{
    (void)state;
    struct ho_cfg cfg = {.handler = "upper", .drain_timeout = 5, .workers = 4};
    struct it_server *s = ho_start("spread", &cfg);
    struct ho_load *L = ho_open(s->port, SPREAD_CONNS, HO_UPPER, 0);
    ho_exchange_all(L, HO_MS(10000));
    IT_CHECK(ho_broken(L, "connection") == 0, "connections failed before any reload");
    spread_to(s, L, 2);
    spread_to(s, L, 4);
    ho_passed = 1;
}

int it_run_handover_spread(void)
{
    const struct CMUnitTest tests[] = {HO_TEST(spread)};
    return cmocka_run_group_tests_name("handover_spread", tests, ho_group_setup, NULL);
}

/* ================================================================= kill */

#define KILL_CONNS HO_CONNS(1000)

/* Connections to local port `port` that process pid holds a descriptor
 * of, or -1. */
static int ho_tcp_held(pid_t pid, int port)
{
    static struct it_sock socks[8192];
    int n = it_tcp_sockets(pid, socks, 8192);
    int held = 0;
    for (int i = 0; i < n && i < 8192; i++)
        held += !socks[i].listening && ntohs(socks[i].local.sin_port) == port;
    return n < 0 ? -1 : held;
}

static void kill_adopter(void **state)
{
    (void)state;
    struct ho_cfg cfg = {.handler = "upper", .drain_timeout = 3, .workers = 1};
    struct it_server *s = ho_start("kill", &cfg);
    struct ho_load *L = ho_open(s->port, KILL_CONNS, HO_UPPER, 0);
    ho_exchange_all(L, HO_MS(10000));
    IT_CHECK(ho_broken(L, "connection") == 0, "connections failed before the reload");
    pid_t before[64];
    int nb = it_children(s->pid, before, 64);
    IT_CHECK(nb == 1, "the master has %d children before the reload, expected 1", nb);

    /* reload to two workers and stop one of them the moment the new
     * generation serves: the hand-over of 1,000 connections is under way */
    struct ho_cfg two = cfg;
    two.workers = 2;
    size_t off = it_log_size(s);
    struct ho_rl rl;
    ho_reload_begin(&rl, ho_index(s), &two);
    while (!ho_reload_done(&rl))
        it_sleep_ms(1);
    pid_t now[64], victim = 0;
    int nn = it_children(s->pid, now, 64);
    for (int i = 0; i < nn && !victim; i++)
        if (now[i] != before[0])
            victim = now[i];
    IT_CHECK(victim > 0, "no new worker among the master's %d children", nn);
    IT_CHECK(kill(victim, SIGSTOP) == 0, "SIGSTOP %d: %s", (int)victim, strerror(errno));
    /* stopped, it adopts nothing more: what it holds now is all it can lose.
     * Stopped at once, it usually holds none yet: its share of the 1,000
     * is in transit (the master's or its own socket's queue), and must
     * reach the other worker when it dies.  Stopping it later, once it
     * holds some, would not catch the middle: scanning /proc takes longer
     * than the whole hand-over. */
    it_sleep_ms(20);
    int held = ho_tcp_held(victim, s->port);
    IT_CHECK(held >= 0, "cannot read the descriptors of worker %d", (int)victim);
    IT_CHECK(kill(victim, SIGKILL) == 0, "SIGKILL %d: %s", (int)victim, strerror(errno));
    it_log("killed new worker %d holding %d of the %d connections", (int)victim, held,
           KILL_CONNS);

    long drained = ho_wait_drained(s, off, rl.gen - 1, cfg.drain_timeout * 1000 + HO_MS(3000));
    IT_CHECK(drained >= 0, "generation %u did not end within drain_timeout + 3 s",
             rl.gen - 1);
    ho_exchange_all(L, HO_MS(10000));
    int lost = 0, wrong = 0;
    for (int i = 0; i < L->n; i++) {
        if (!L->s[i].broken)
            continue;
        lost++;
        if (!strstr(L->s[i].why, "EOF") && !strstr(L->s[i].why, "reset"))
            wrong++;
    }
    ho_broken(L, "connection");
    it_log("%d connections lost, the killed worker held %d", lost, held);
    IT_CHECK(wrong == 0, "%d connections failed otherwise than by a close (reasons above)",
             wrong);
    IT_CHECK(lost <= held,
             "%d connections lost, but the killed worker had adopted only %d: %d of those "
             "not yet adopted were lost",
             lost, held, lost - held);
    ho_passed = 1;
}

int it_run_handover_kill(void)
{
    const struct CMUnitTest tests[] = {HO_TEST(kill_adopter)};
    return cmocka_run_group_tests_name("handover_kill", tests, ho_group_setup, NULL);
}

/* ================================================================ abi11 */

#define ABI_SESSIONS 20

/*
 * X (gen 1) -> the 1.1 model (gen 2) -> X (gen 3) -> X (gen 4), with
 * sessions A, B, C opened on each of the first three.  The 1.1 model
 * neither adopts nor gives: A waits on gen 1 (draining) and B drains on
 * gen 2 as before; once X follows again, A moves on to gen 3 and gen 1
 * ends; at the last reload A and C move to gen 4.  Nothing breaks.
 */
static void abi11_mix(void **state)
{
    (void)state;
    const char *v11 = getenv("IOSERVE_ABI11_PLUGIN");
    IT_CHECK(v11 && access(v11, R_OK) == 0,
             "IOSERVE_ABI11_PLUGIN (the ppoll11 fixture built with the tests) is not set "
             "or not readable: %s",
             v11 ? v11 : "(unset)");
    struct ho_cfg cfg = {.handler = "upper", .drain_timeout = 10};
    struct it_server *s = ho_start("abi11", &cfg);
    struct ho_load *loads[3];
    loads[0] = ho_open(s->port, ABI_SESSIONS, HO_UPPER, 50);
    ho_pump(loads, 1, 300, NULL, NULL);
    /* Each set on its generation before the next reload: one still in the
     * listen queue would be accepted by the next (a sanitizer build is
     * slow to start the blocking model's threads). */
    IT_CHECK(ho_wait_holds(s, 1, ABI_SESSIONS, HO_MS(3000)),
             "A: not all %d sessions on generation 1", ABI_SESSIONS);

    /* X -> 1.1: the 1.1 model cannot adopt, X's connections wait on X */
    struct ho_cfg old = cfg;
    old.model = v11;
    size_t off = it_log_size(s);
    unsigned g2 = ho_reload(ho_index(s), &old);
    unsigned g1 = g2 - 1;
    ho_pump(loads, 1, 500, NULL, NULL);
    char *seg = it_log_since(s, off);
    int says = strstr(seg, "does not adopt") != NULL;
    free(seg);
    IT_CHECK(says, "the reload to a 1.1 model did not log that it \"does not adopt\"");
    IT_CHECK(ho_wait_drained(s, off, g1, 0) < 0,
             "generation %u ended, though the 1.1 model could not adopt its connections", g1);

    /* 1.1 -> X: the 1.1 model cannot give, its connections drain on it;
     * those waiting on generation 1 move to the new X */
    loads[1] = ho_open(s->port, ABI_SESSIONS, HO_UPPER, 50);
    ho_pump(loads, 2, 300, NULL, NULL);
    IT_CHECK(ho_wait_holds(s, g2, ABI_SESSIONS, HO_MS(3000)),
             "B: not all %d sessions on generation %u (1.1)", ABI_SESSIONS, g2);
    off = it_log_size(s);
    unsigned g3 = ho_reload(ho_index(s), &cfg);
    /* C must reach generation 3: the 1.1 model accepts until it notices
     * its drain, which a loaded or sanitizer build may take a while to */
    IT_CHECK(ho_wait_line(s, off, "ppoll11: draining: no longer accepting", HO_MS(2000)),
             "the 1.1 model (generation %u) did not log that it stopped accepting", g2);
    long ended1 = ho_wait_drained(s, off, g1, 2000);
    loads[2] = ho_open(s->port, ABI_SESSIONS, HO_UPPER, 50);
    ho_pump(loads, 3, 500, NULL, NULL);
    IT_CHECK(ho_wait_holds(s, g3, 2 * ABI_SESSIONS, HO_MS(3000)),
             "A and C: not all %d sessions on generation %u", 2 * ABI_SESSIONS, g3);
    IT_CHECK(ended1 >= 0,
             "generation %u (%s) did not end within 2 s of generation %u (%s again) "
             "serving (drain_timeout 10 s): its connections were not handed over",
             g1, it_env.model, g3, it_env.model);

    /* X -> X: everything X serves moves on */
    off = it_log_size(s);
    unsigned g4 = ho_reload(ho_index(s), &cfg);
    long ended3 = ho_wait_drained(s, off, g3, 2000);
    ho_pump(loads, 3, 500, NULL, NULL);
    int b0 = ho_broken(loads[0], "session opened on X before the 1.1 model");
    int b1 = ho_broken(loads[1], "session on the 1.1 model");
    int b2 = ho_broken(loads[2], "session opened on X after the 1.1 model");
    IT_CHECK(b0 == 0 && b1 == 0 && b2 == 0,
             "sessions broke: %d opened on generation %u (%s), %d on generation %u (1.1), "
             "%d on generation %u (%s)",
             b0, g1, it_env.model, b1, g2, b2, g3, it_env.model);
    IT_CHECK(ended3 >= 0,
             "generation %u (%s) did not end within 2 s of generation %u (%s) serving "
             "(drain_timeout 10 s): its connections were not handed over",
             g3, it_env.model, g4, it_env.model);
    long on2, on4, total;
    const char *body = ho_metrics(s);
    on2 = body ? ho_active(body, g2) : -1;
    on4 = body ? ho_active(body, g4) : -1;
    total = body ? ho_active(body, 0) : -1;
    IT_CHECK(on2 == ABI_SESSIONS && on4 == 2 * ABI_SESSIONS && total == 3 * ABI_SESSIONS,
             "connections: %ld on generation %u (1.1), %ld on generation %u, %ld in all; "
             "expected %d, %d, %d",
             on2, g2, on4, g4, total, ABI_SESSIONS, 2 * ABI_SESSIONS, 3 * ABI_SESSIONS);

    /* the 1.1 generation ends as before: when its connections close */
    off = it_log_size(s);
    ho_close_load(loads[1]);
    IT_CHECK(ho_wait_drained(s, off, g2, 3000) >= 0,
             "the 1.1 generation %u did not end within 3 s of its last connection closing",
             g2);
    ho_exchange_all(loads[0], HO_MS(5000));
    ho_exchange_all(loads[2], HO_MS(5000));
    IT_CHECK(ho_broken(loads[0], "session A") == 0 && ho_broken(loads[2], "session C") == 0,
             "sessions handed to generation %u broke at the end", g4);
    ho_passed = 1;
}

int it_run_handover_abi11(void)
{
    const struct CMUnitTest tests[] = {HO_TEST(abi11_mix)};
    return cmocka_run_group_tests_name("handover_abi11", tests, ho_group_setup, NULL);
}

/* ================================================================= quit */

/* `ioserve -c cfg -s quit` succeeds. */
static void ho_quit(const struct it_server *s)
{
    char *argv[] = {(char *)it_env.bin, "-c", (char *)s->cfg, "-s", "quit", NULL};
    char *out = NULL;
    int st = it_run(argv, 5000, NULL, &out, NULL);
    int ok = st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0;
    if (!ok)
        fprintf(stderr, "----- ioserve -s quit -----\n%s\n", out ? out : "");
    free(out);
    IT_CHECK(ok, "`ioserve -s quit` failed (output above)");
}

static void quit_closes_idle_keepalive(void **state)
{
    (void)state;
    struct ho_cfg cfg = {.handler = "http", .drain_timeout = 5};
    struct it_server *s = ho_start("quit_http", &cfg);
    int fd = it_connect(s->port);
    IT_CHECK(fd >= 0, "connect: %s", it_errbuf);
    static const char req[] = "GET / HTTP/1.1\r\nHost: it\r\n\r\n";
    char buf[4096];
    IT_CHECK(it_send_all(fd, req, sizeof req - 1, 3000) == 0, "send: %s", it_errbuf);
    size_t got = 0;
    int64_t end = it_now_ms() + 3000;
    while (!memmem(buf, got, "\r\n\r\n", 4) && it_now_ms() < end) {
        ssize_t r = it_recv_exact(fd, buf + got, 1, 3000, NULL);
        if (r != 1)
            break;
        got++;
    }
    IT_CHECK(got >= 12 && strncmp(buf, "HTTP/1.1 200", 12) == 0, "no 200 response: %.*s",
             (int)got, buf);
    /* the body follows; then the connection is idle between requests */
    it_sleep_ms(100);
    size_t junk = 0;
    it_wait_closed(fd, 50, &junk);

    int64_t t0 = it_now_ms();
    ho_quit(s);
    int closed = it_wait_closed(fd, 3000, &junk);
    int64_t took = it_now_ms() - t0;
    it_log("-s quit: the idle keep-alive connection %s after %lld ms",
           closed == 1 ? "was closed" : "was still open", (long long)took);
    IT_CHECK(closed == 1 && took <= 1000,
             "an idle http keep-alive connection was %s %lld ms after -s quit "
             "(drain_timeout 5 s): expected closed at once",
             closed == 1 ? "closed only" : "still open", (long long)took);
    it_close(fd);
    IT_CHECK(it_wait_exit(s, 2000), "the master still runs 2 s after its last connection closed");
    ho_passed = 1;
}

static void quit_keeps_upper_session(void **state)
{
    (void)state;
    struct ho_cfg cfg = {.handler = "upper", .drain_timeout = 2};
    struct it_server *s = ho_start("quit_upper", &cfg);
    int fd = it_connect(s->port);
    IT_CHECK(fd >= 0, "connect: %s", it_errbuf);
    IT_CHECK(it_roundtrip(fd, "abc", 3, "ABC", 3, 3000) == 0, "before quit: %s", it_errbuf);
    int64_t t0 = it_now_ms();
    ho_quit(s);
    for (int i = 0; i < 4; i++) {
        it_sleep_ms(200);
        IT_CHECK(it_roundtrip(fd, "still", 5, "STILL", 5, 2000) == 0,
                 "round trip %d, %lld ms after -s quit: %s", i,
                 (long long)(it_now_ms() - t0), it_errbuf);
    }
    size_t junk = 0;
    int closed = it_wait_closed(fd, 4000, &junk);
    int64_t took = it_now_ms() - t0;
    it_log("-s quit: the upper session closed after %lld ms (drain_timeout 2 s)",
           (long long)took);
    IT_CHECK(closed == 1 && took >= 1500 && took <= 4500,
             "the upper session was %s %lld ms after -s quit; expected closed at "
             "drain_timeout (2 s)",
             closed == 1 ? "closed" : "still open", (long long)took);
    it_close(fd);
    IT_CHECK(it_wait_exit(s, 3000), "the master still runs 3 s after the drain");
    ho_passed = 1;
}

int it_run_handover_quit(void)
{
    const struct CMUnitTest tests[] = {HO_TEST(quit_closes_idle_keepalive),
                                       HO_TEST(quit_keeps_upper_session)};
    return cmocka_run_group_tests_name("handover_quit", tests, ho_group_setup, NULL);
}

/* ================================================================== off */

/* A session on the old generation keeps answering (`reply` to "drain"),
 * then is cut at drain_timeout (1 s) after the reload completed at t0. */
static void ho_expect_drained(int fd, int64_t t0, const char *reply, const char *why)
{
    for (int i = 0; i < 3; i++) {
        it_sleep_ms(150);
        IT_CHECK(it_roundtrip(fd, "drain", 5, reply, 5, 2000) == 0,
                 "%s: round trip %d, %lld ms after the reload: %s", why, i,
                 (long long)(it_now_ms() - t0), it_errbuf);
    }
    size_t junk = 0;
    int closed = it_wait_closed(fd, 4000, &junk);
    int64_t took = it_now_ms() - t0;
    it_log("%s: the session was cut %lld ms after the reload", why, (long long)took);
    IT_CHECK(closed == 1 && took >= 700 && took <= 4000,
             "%s: the session was %s %lld ms after the reload; expected cut at "
             "drain_timeout (1 s)",
             why, closed == 1 ? "closed" : "still open", (long long)took);
}

static void off_keeps_drain(void **state)
{
    (void)state;
    struct ho_cfg cfg = {.handler = "upper", .drain_timeout = 1, .extra = "handover = false;"};
    struct it_server *s = ho_start("off", &cfg);
    int fd = it_connect(s->port);
    IT_CHECK(fd >= 0, "connect: %s", it_errbuf);
    IT_CHECK(it_roundtrip(fd, "abc", 3, "ABC", 3, 3000) == 0, "before the reload: %s",
             it_errbuf);
    ho_reload(ho_index(s), &cfg);
    ho_expect_drained(fd, it_now_ms(), "DRAIN", "handover = false");
    it_close(fd);
    ho_passed = 1;
}

static void handler_change_drains(void **state)
{
    (void)state;
    struct ho_cfg cfg = {.handler = "echo", .drain_timeout = 1};
    struct it_server *s = ho_start("handler_change", &cfg);
    int fd = it_connect(s->port);
    IT_CHECK(fd >= 0, "connect: %s", it_errbuf);
    IT_ECHO(fd, "abc", 3);
    struct ho_cfg http = cfg;
    http.handler = "http";
    size_t off = it_log_size(s);
    ho_reload(ho_index(s), &http);
    int64_t t0 = it_now_ms();
    ho_expect_drained(fd, t0, "drain", "echo -> http");
    /* read once the drain is over: the line may come after the reload's */
    char *seg = it_log_since(s, off);
    int says = strstr(seg, "handler changed echo -> http") != NULL;
    free(seg);
    IT_CHECK(says, "the reload from echo to http did not log \"handler changed echo -> "
                   "http\" (draining, not handing over)");
    it_close(fd);
    ho_passed = 1;
}

int it_run_handover_off(void)
{
    const struct CMUnitTest tests[] = {HO_TEST(off_keeps_drain), HO_TEST(handler_change_drains)};
    return cmocka_run_group_tests_name("handover_off", tests, ho_group_setup, NULL);
}
