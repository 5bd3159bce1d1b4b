/*
 * A generation's life, in one place.  The master reports events (a worker
 * exited, a report arrived, time passed) and requests (start, drain); this
 * file decides what each means in each state:
 *
 *   starting --every worker ready--> active --drain--> draining
 *      |                               |                  |
 *      +--a worker died, too slow, ----+ (respawns)       |
 *         or stopped --> failed                           |
 *                          +------ no live worker --------+--> freed
 *
 * A draining or failed generation is freed as soon as it has no live
 * worker, whether its last worker just exited or none was alive when it
 * began to drain (all of them waiting out a respawn delay).
 *
 * A drain hands the generation's connections over to its successor when
 * both allow it (see hand_over_allowed): the workers give each one at its
 * next boundary through their control sockets, and the relay
 * (handover.c) passes it to the newest active generation's workers.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "handover_wire.h"
#include "listener.h"
#include "log.h"
#include "master_state.h"
#include "worker.h"

/* ---------------------------------------------------------- workers */

static void describe_status(int status, char *out, size_t outlen)
{
    if (WIFEXITED(status))
        snprintf(out, outlen, "exited with status %d", WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        snprintf(out, outlen, "was killed by signal %d (SIG%s)%s", WTERMSIG(status),
                 sigabbrev_np(WTERMSIG(status)) ? sigabbrev_np(WTERMSIG(status)) : "?",
                 WCOREDUMP(status) ? ", core dumped" : "");
    else
        snprintf(out, outlen, "changed state (status 0x%x)", status);
}

/* In the child: only the four descriptors a worker needs survive, at
 * fixed numbers, so no other generation's pipes or sockets leak into it. */
static void child_become_worker(const struct master *m, struct generation *g, unsigned idx,
                                int report_wr, int control, pid_t master_pid)
{
    sigset_t all;
    sigemptyset(&all);
    sigprocmask(SIG_SETMASK, &all, NULL);
    signal(SIGHUP, SIG_IGN);  /* the master's signals, sent to the group */
    signal(SIGQUIT, SIG_IGN);
    signal(SIGTERM, SIG_DFL);
    signal(SIGINT, SIG_DFL);
    prctl(PR_SET_NAME, "ioserve-worker");
    /* The master raised its own limit for the hand-over; a worker runs
     * under the one ioserve was started with. */
    struct rlimit nofile;
    if (m->worker_nofile && getrlimit(RLIMIT_NOFILE, &nofile) == 0 &&
        nofile.rlim_cur != m->worker_nofile) {
        nofile.rlim_cur = m->worker_nofile;
        setrlimit(RLIMIT_NOFILE, &nofile);
    }

    /* Copies above 6 survive the dup2s onto 3..6 whatever the originals'
     * numbers; any higher floor would fail under a low RLIMIT_NOFILE. */
    /* A canary worker accepts nothing itself (split.h). */
    int lfd = fcntl(slot_is_canary(g, idx) ? g->canary_listen_fd : g->listen_fd, F_DUPFD, 7);
    int sfd = fcntl(g->stop_rd, F_DUPFD, 7);
    int rfd = fcntl(report_wr, F_DUPFD, 7);
    int cfd = fcntl(control, F_DUPFD, 7);
    if (lfd < 0 || sfd < 0 || rfd < 0 || cfd < 0 || dup2(lfd, 3) < 0 ||
        dup2(sfd, 4) < 0 || dup2(rfd, 5) < 0 || dup2(cfd, HO_CONTROL_FD) < 0) {
        log_error(errno, "worker: setting up descriptors");
        _exit(WORKER_EXIT_FAILED);
    }
    close_range(HO_CONTROL_FD + 1, ~0u, 0);

    struct worker_args args = {
        .cfg = g->cfg,
        .listen_fd = 3,
        .stop_fd = 4,
        .report_fd = 5,
        .control_fd = HO_CONTROL_FD,
        .handover_flag = g->handover,
        .canary = slot_is_canary(g, idx),
        .split = g->cfg->canary.model && !slot_is_canary(g, idx) ? g->split : NULL,
        .worker_id = slot_is_canary(g, idx) ? idx - g->nmain : idx,
        .counters = &g->counters[idx],
        .latency = &g->latency[idx],
        .master_pid = master_pid,
    };
    exit(worker_main(&args));
}

static int spawn_worker(const struct master *m, struct generation *g, unsigned idx)
{
    struct worker_slot *w = &g->slots[idx];
    int rp[2], cp[2];
    if (pipe2(rp, O_CLOEXEC) != 0) {
        log_error(errno, "pipe2 for worker %u", idx);
        return -errno;
    }
    /* SEQPACKET: each hand-over message arrives whole, with its fds. */
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, cp) != 0) {
        int err = errno;
        log_error(err, "socketpair for worker %u", idx);
        close(rp[0]);
        close(rp[1]);
        return -err;
    }
    g->counters[idx].active = 0; /* a dead worker's connections died with it */
    pid_t master_pid = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        int err = errno;
        log_error(err, "fork");
        close(rp[0]);
        close(rp[1]);
        close(cp[0]);
        close(cp[1]);
        return -err;
    }
    if (pid == 0)
        child_become_worker(m, g, idx, rp[1], cp[1], master_pid);
    close(rp[1]);
    close(cp[1]);
    fcntl(rp[0], F_SETFL, O_NONBLOCK);
    fcntl(cp[0], F_SETFL, O_NONBLOCK); /* the master never waits on a worker */
    w->pid = pid;
    w->report_fd = rp[0];
    w->ctl = (struct ho_end){
        .fd = cp[0], .model = w->model, .protocol = g->cfg->handler, .gen_id = g->id};
    w->ready = false;
    w->started_ms = clock_now_ms();
    w->respawn_at_ms = 0;
    log_debug("generation %u: worker %u started, pid %d", g->id, idx, (int)pid);
    return 0;
}

unsigned gen_live_workers(const struct generation *g)
{
    unsigned n = 0;
    for (unsigned i = 0; i < g->nslots; i++)
        n += g->slots[i].pid != 0;
    return n;
}

void gen_signal_workers(struct generation *g, int sig)
{
    for (unsigned i = 0; i < g->nslots; i++)
        if (g->slots[i].pid > 0)
            kill(g->slots[i].pid, sig);
}

static void schedule_respawn(struct generation *g, struct worker_slot *w, uint64_t now)
{
    if (now - w->started_ms >= HEALTHY_UPTIME_MS)
        w->backoff_ms = 0;
    w->respawn_at_ms = now + w->backoff_ms;
    if (w->respawn_at_ms == 0)
        w->respawn_at_ms = 1;
    log_info("generation %u: respawning worker in %u ms", g->id, w->backoff_ms);
    w->backoff_ms = respawn_backoff_next(w->backoff_ms);
}

/* ------------------------------------------------------- generations */

/* What the workers share with the master: their counters, one per slot,
 * their latency histograms, one per slot (both arrays start on a cache
 * line: 64-byte counters), then the generation's A/B split and hand-over
 * flag. */
struct gen_shared {
    struct split_state split;
    int handover;
};

static size_t shared_size(unsigned nslots)
{
    return (sizeof(struct ios_counters) + sizeof(struct lat_hist)) * nslots +
           sizeof(struct gen_shared);
}

/* Keeps an ended generation's counters, so the per-model totals of
 * /metrics never go backwards. */
static void retire_counters(struct master *m, const struct generation *g)
{
    for (unsigned i = 0; g->counters && g->slots && i < g->nslots; i++) {
        const char *model = slot_model(g, i);
        struct model_totals *t = NULL;
        for (unsigned j = 0; j < MAX_MODEL_TOTALS && !t; j++) {
            struct model_totals *e = &m->stats.retired[j];
            if (e->model[0] == '\0' || strcmp(e->model, model) == 0)
                t = e;
        }
        if (!t)
            return; /* more distinct models than slots: keep what we have */
        snprintf(t->model, sizeof(t->model), "%.63s", model);
        const struct ios_counters *c = &g->counters[i];
        t->c.accepted += c->accepted;
        t->c.refused += c->refused;
        t->c.closed += c->closed;
        t->c.bytes_in += c->bytes_in;
        t->c.bytes_out += c->bytes_out;
    }
}

void gen_free(struct master *m, struct generation *g)
{
    for (unsigned i = 0; g->slots && i < g->nslots; i++)
        g->slots[i].ctl.eof = true; /* none of them adopts any more */
    for (unsigned i = 0; g->slots && i < g->nslots; i++)
        gen_control_close(m, &g->slots[i]);
    retire_counters(m, g);
    for (unsigned i = 0; i < MAX_GENERATIONS; i++)
        if (m->gens[i] == g)
            m->gens[i] = NULL;
    for (unsigned i = 0; g->slots && i < g->nslots; i++)
        if (g->slots[i].report_fd >= 0)
            close(g->slots[i].report_fd);
    if (g->stop_wr >= 0)
        close(g->stop_wr);
    if (g->stop_rd >= 0)
        close(g->stop_rd);
    if (g->listen_fd >= 0)
        close(g->listen_fd);
    if (g->canary_listen_fd >= 0)
        close(g->canary_listen_fd);
    if (g->counters)
        munmap(g->counters, shared_size(g->nslots));
    free(g->slots);
    cfg_free(g->cfg);
    free(g->cfg);
    free(g);
}

uint64_t gen_open_connections(const struct generation *g)
{
    uint64_t n = 0;
    for (unsigned i = 0; g->counters && i < g->nslots; i++)
        n += __atomic_load_n(&g->counters[i].active, __ATOMIC_RELAXED);
    return n;
}

uint64_t gen_finished_while_draining(const struct generation *g, unsigned idx)
{
    if (g->state != GEN_DRAINING || !g->counters)
        return 0;
    uint64_t closed = __atomic_load_n(&g->counters[idx].closed, __ATOMIC_RELAXED);
    return closed - g->slots[idx].closed_at_drain;
}

/* A drained generation's account: the log line, the last drain's
 * duration and the connections that finished on its model. */
static void account_drain(struct master *m, const struct generation *g)
{
    uint64_t given = 0, finished = 0;
    for (unsigned i = 0; i < g->nslots; i++) {
        uint64_t f = gen_finished_while_draining(g, i);
        given += __atomic_load_n(&g->counters[i].given, __ATOMIC_RELAXED);
        finished += f;
        const char *model = slot_model(g, i);
        for (unsigned j = 0; j < MAX_MODEL_TOTALS; j++) {
            struct finished_on_old *e = &m->stats.finished[j];
            if (e->model[0] && strcmp(e->model, model) != 0)
                continue;
            snprintf(e->model, sizeof(e->model), "%.63s", model);
            e->n += f;
            break;
        }
    }
    m->stats.last_drain_ms = clock_now_ms() - g->drain_started_ms;
    log_info("generation %u drained in %llu ms: %llu handed over, %llu finished on model %s",
             g->id, (unsigned long long)m->stats.last_drain_ms, (unsigned long long)given,
             (unsigned long long)finished, slot_model(g, 0));
}

/* The one rule that ends a generation: draining or failed, and no live
 * worker left (a respawn pending does not count: leaving `active` cancels
 * it).  True when g was freed. */
static bool end_if_done(struct master *m, struct generation *g)
{
    if ((g->state != GEN_DRAINING && g->state != GEN_FAILED) || gen_live_workers(g) > 0)
        return false;
    if (g->state == GEN_DRAINING)
        account_drain(m, g);
    else
        log_info("generation %u: ended", g->id);
    gen_free(m, g);
    return true;
}

struct generation *gen_start(struct master *m, struct ios_config *cfg, int listen_fd)
{
    unsigned slot;
    for (slot = 0; slot < MAX_GENERATIONS && m->gens[slot]; slot++)
        ;
    struct generation *g = calloc(1, sizeof(*g));
    if (slot == MAX_GENERATIONS || !g) {
        log_error(0, "too many generations still draining; reload refused");
        free(g);
        close(listen_fd);
        cfg_free(cfg);
        free(cfg);
        return NULL;
    }
    g->id = ++m->next_gen_id;
    g->state = GEN_STARTING;
    g->cfg = cfg;
    g->listen_fd = listen_fd;
    g->stop_rd = g->stop_wr = -1;
    g->canary_listen_fd = -1;
    g->nmain = g->nslots = cfg->workers;
    if (cfg->canary.model) {
        char err[256];
        g->canary_listen_fd = listener_unreachable(err, sizeof(err));
        if (g->canary_listen_fd >= 0)
            g->nslots += cfg->canary.workers;
        else
            log_error(0, "generation %u: %s; model %s serves every connection", g->id, err,
                      cfg->models[0]);
    }
    g->slots = calloc(g->nslots, sizeof(*g->slots));
    for (unsigned i = 0; g->slots && i < g->nslots; i++) {
        g->slots[i].report_fd = -1; /* what gen_free closes, if this fails */
        g->slots[i].ctl.fd = -1;
    }
    g->counters = mmap(NULL, shared_size(g->nslots), PROT_READ | PROT_WRITE,
                       MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (g->counters == MAP_FAILED) {
        g->counters = NULL;
    } else {
        g->latency = (struct lat_hist *)(g->counters + g->nslots);
        struct gen_shared *shared = (struct gen_shared *)(g->latency + g->nslots);
        g->split = &shared->split;
        g->handover = &shared->handover;
    }
    int sp[2];
    m->gens[slot] = g;
    if (!g->slots || !g->counters || pipe2(sp, O_CLOEXEC) != 0) {
        log_error(errno, "generation %u: out of resources", g->id);
        gen_free(m, g);
        return NULL;
    }
    g->stop_rd = sp[0];
    g->stop_wr = sp[1];
    g->deadline_ms = clock_now_ms() + START_TIMEOUT_MS;
    for (unsigned i = 0; i < g->nslots; i++) {
        if (spawn_worker(m, g, i) != 0) {
            /* Nothing is left behind: the workers already started are
             * killed (and reaped as strangers), the caller is told. */
            log_error(0, "generation %u: could not start worker %u of %u", g->id, i,
                      g->nslots);
            gen_signal_workers(g, SIGKILL);
            gen_free(m, g);
            return NULL;
        }
    }
    return g;
}

/* starting -> failed: its workers are killed; freed once none is left. */
static void fail(struct master *m, struct generation *g, const char *why)
{
    struct generation *active = gen_find(m, GEN_ACTIVE);
    if (active)
        log_error(0, "reload failed: generation %u %s; generation %u keeps serving",
                  g->id, why, active->id);
    else
        log_error(0, "generation %u %s", g->id, why);
    g->state = GEN_FAILED;
    g->deadline_ms = 0;
    gen_signal_workers(g, SIGKILL);
    end_if_done(m, g);
}

/* Whether `from`'s connections may move to workers whose configuration
 * has `wanted` (its `handover`) and `handler`: the new configuration wants
 * it, the protocol is the same (a session cannot continue under another),
 * and both sides' models know the hand-over (ABI 1.2): `to`'s workers, or,
 * with `to` NULL, a new master's, which adopts with its own.  Says why not. */
static bool hand_over_allowed_to(const struct generation *from, bool wanted,
                                 const char *handler, const struct generation *to)
{
    if (!wanted) {
        log_info("generation %u: handover = false: draining, not handing over", from->id);
        return false;
    }
    if (strcmp(from->cfg->handler, handler) != 0) {
        log_info("generation %u: handler changed %s -> %s: draining, not handing over",
                 from->id, from->cfg->handler, handler);
        return false;
    }
    const struct generation *sides[] = {to, from};
    const char *verb[] = {"adopt", "give"};
    for (unsigned k = 0; k < 2; k++)
        for (unsigned j = 0; sides[k] && j < sides[k]->nslots; j++) {
            const struct worker_slot *w = &sides[k]->slots[j];
            if (w->pid > 0 && w->ready && !w->given_up && w->ctl.abi_minor < 2) {
                log_info("generation %u: model %s (ABI %u.%u) does not %s: draining, not "
                         "handing over", from->id, w->model, IOS_ABI_MAJOR, w->ctl.abi_minor,
                         verb[k]);
                return false;
            }
        }
    return true;
}

static bool hand_over_allowed(const struct generation *from, const struct generation *to)
{
    return to && hand_over_allowed_to(from, to->cfg->handover, to->cfg->handler, to);
}

void gen_offer_hand_over(struct master *m, const struct generation *successor)
{
    for (unsigned i = 0; i < MAX_GENERATIONS; i++) {
        struct generation *d = m->gens[i];
        if (!d || d == successor || d->state != GEN_DRAINING ||
            __atomic_load_n(d->handover, __ATOMIC_RELAXED))
            continue;
        if (!hand_over_allowed(d, successor))
            continue;
        __atomic_store_n(d->handover, 1, __ATOMIC_RELEASE);
        log_info("generation %u: handing its %llu open connection(s) over to generation %u",
                 d->id, (unsigned long long)gen_open_connections(d), successor->id);
    }
}

/* active -> draining, handing over or not. */
static void drain(struct master *m, struct generation *g, bool hand_over)
{
    g->state = GEN_DRAINING;
    if (g->split)
        split_set(g->split, 0); /* its main workers accept no more anyway */
    /* Before stop_fd turns readable: a worker reads the flag then. */
    __atomic_store_n(g->handover, hand_over ? 1 : 0, __ATOMIC_RELEASE);
    g->drain_started_ms = clock_now_ms();
    for (unsigned i = 0; i < g->nslots; i++)
        g->slots[i].closed_at_drain =
            __atomic_load_n(&g->counters[i].closed, __ATOMIC_RELAXED);
    /* Logged first: the workers' own drain lines follow it. */
    log_info("generation %u: draining %u worker(s) (drain_timeout %u ms)%s", g->id,
             gen_live_workers(g), g->cfg->drain_timeout_ms,
             hand_over ? ", handing connections over" : "");
    close(g->stop_wr); /* every worker's stop_fd turns readable */
    g->stop_wr = -1;
    for (unsigned i = 0; i < g->nslots; i++)
        g->slots[i].respawn_at_ms = 0;
    g->deadline_ms = clock_now_ms() + g->cfg->drain_timeout_ms;
    end_if_done(m, g);
}

void gen_drain(struct master *m, struct generation *g, const struct generation *successor)
{
    if (g->state == GEN_STARTING) {
        /* Not serving yet: nothing to finish. */
        g->state = GEN_FAILED;
        g->deadline_ms = 0;
        gen_signal_workers(g, SIGKILL);
        end_if_done(m, g);
        return;
    }
    if (g->state == GEN_ACTIVE)
        drain(m, g, hand_over_allowed(g, successor));
}

void gen_drain_to_master(struct master *m, struct generation *g, bool handover,
                         const char *handler)
{
    /* !handover: the new master said why (upgrade.c) */
    if (g->state == GEN_ACTIVE)
        drain(m, g, handover && hand_over_allowed_to(g, true, handler, NULL));
}

/* ------------------------------------------------------------ events */

static void note_fallback(struct master *m, const char *line)
{
    char model[64], reason[160];
    const char *tab = strchr(line, '\t');
    if (!tab)
        return;
    snprintf(model, sizeof(model), "%.*s", (int)(tab - line < 63 ? tab - line : 63), line);
    snprintf(reason, sizeof(reason), "%.159s", tab + 1);
    for (unsigned i = 0; i < MAX_FALLBACKS; i++) {
        struct fallback *f = &m->stats.fallbacks[i];
        if (f->model[0] == '\0') {
            memcpy(f->model, model, sizeof(model));
            memcpy(f->reason, reason, sizeof(reason));
        }
        if (strcmp(f->model, model) == 0 && strcmp(f->reason, reason) == 0) {
            f->count++;
            return;
        }
    }
}

/* ------------------------------------------------------- the split */

/* The share the main workers route (split.h): the configured one while
 * the generation serves and a canary worker adopts; else 0, and every
 * connection stays with the main model. */
static void update_split(struct generation *g)
{
    if (!g->split)
        return;
    bool adopts = false;
    for (unsigned j = g->nmain; j < g->nslots; j++) {
        const struct worker_slot *w = &g->slots[j];
        adopts |= w->pid > 0 && w->ready && !w->given_up && w->ctl.abi_minor >= 2;
    }
    split_set(g->split, g->state == GEN_ACTIVE && adopts ? g->cfg->canary.share : 0);
}

bool gen_canary_serves(const struct generation *g)
{
    for (unsigned j = g->nmain; j < g->nslots; j++)
        if (!g->slots[j].given_up)
            return true;
    return false;
}

/* Canary worker w will not serve (it could not start, or cannot adopt):
 * not respawned, not waited for; once none is left the main model serves
 * every connection, as after a fallback. */
static void give_up_canary(struct generation *g, struct worker_slot *w, const char *why)
{
    w->given_up = true;
    if (gen_canary_serves(g))
        log_warn(0, "generation %u: a canary worker of model %s %s", g->id,
                 g->cfg->canary.model, why);
    else
        log_warn(0, "generation %u: canary model %s %s: model %s serves every connection",
                 g->id, g->cfg->canary.model, why, g->cfg->models[0]);
}

/* The start deadline passed with every main worker ready: the canary
 * workers still not ready are given up (killed), and the generation serves
 * without them rather than failing.  False when a main worker is late. */
static bool give_up_late_canary(struct generation *g)
{
    for (unsigned j = 0; j < g->nmain; j++)
        if (!g->slots[j].ready)
            return false;
    for (unsigned j = g->nmain; j < g->nslots; j++) {
        struct worker_slot *w = &g->slots[j];
        if (w->ready || w->given_up)
            continue;
        give_up_canary(g, w, "did not report ready in time");
        if (w->pid > 0)
            kill(w->pid, SIGKILL);
    }
    return true;
}

/* A worker's report lines: "R<model>" = ready, "F<model>\t<reason>" = that
 * model was skipped for the next one of the list. */
static void read_report(struct master *m, struct generation *g, struct worker_slot *w)
{
    char buf[WORKER_REPORT_MAX + 1]; /* whole lines, however many wait */
    ssize_t n;
    while ((n = read(w->report_fd, buf, sizeof(buf) - 1)) > 0) {
        buf[n] = '\0';
        for (char *line = buf, *nl; *line; line = nl + 1) {
            nl = strchr(line, '\n');
            if (!nl)
                break; /* the worker writes whole lines at once */
            *nl = '\0';
            if (line[0] == WORKER_FALLBACK_TAG) {
                note_fallback(m, line + 1);
            } else if (line[0] == WORKER_READY_TAG && !w->ready) {
                char *tab = strchr(line, '\t');
                if (tab)
                    *tab++ = '\0';
                snprintf(w->model, sizeof(w->model), "%.63s", line + 1);
                w->ctl.abi_minor = tab ? (unsigned)strtoul(tab, NULL, 10) : 0;
                w->ready = true;
                if (slot_is_canary(g, (unsigned)(w - g->slots)) && w->ctl.abi_minor < 2) {
                    /* A model of ABI 1.1 cannot adopt what it is routed. */
                    char why[WORKER_REPORT_LINE_MAX];
                    snprintf(why, sizeof(why), "%.63s\tABI %d.%u: cannot adopt connections",
                             w->model, IOS_ABI_MAJOR, w->ctl.abi_minor);
                    note_fallback(m, why);
                    give_up_canary(g, w, strchr(why, '\t') + 1);
                    kill(w->pid, SIGTERM);
                }
                log_debug("generation %u: worker pid %d ready (model %s)", g->id,
                          (int)w->pid, w->model);
            }
        }
    }
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
        close(w->report_fd); /* the worker is exiting; SIGCHLD follows */
        w->report_fd = -1;
    }
}

/* starting -> active once every worker reported ready. */
static enum gen_change activate_if_ready(struct generation *g)
{
    if (g->state != GEN_STARTING)
        return GEN_UNCHANGED;
    for (unsigned i = 0; i < g->nslots; i++)
        if (!g->slots[i].ready && !g->slots[i].given_up)
            return GEN_UNCHANGED;
    g->state = GEN_ACTIVE;
    g->deadline_ms = 0;
    update_split(g);
    return GEN_NOW_ACTIVE;
}

enum gen_change gen_report_arrived(struct master *m, struct generation *g, unsigned idx)
{
    read_report(m, g, &g->slots[idx]);
    enum gen_change change = activate_if_ready(g);
    update_split(g); /* a canary worker ready again after a respawn */
    return change;
}

enum gen_change gen_worker_exited(struct master *m, pid_t pid, int status)
{
    struct generation *g = NULL;
    unsigned idx = 0;
    for (unsigned i = 0; i < MAX_GENERATIONS && !g; i++)
        for (unsigned j = 0; m->gens[i] && j < m->gens[i]->nslots && !g; j++)
            if (m->gens[i]->slots[j].pid == pid) {
                g = m->gens[i];
                idx = j;
            }
    if (!g)
        return GEN_UNCHANGED; /* not ours, or of a generation already freed */
    struct worker_slot *w = &g->slots[idx];
    enum gen_change change = GEN_UNCHANGED;
    if (w->report_fd >= 0) {
        read_report(m, g, w); /* what it said before it went */
        change = activate_if_ready(g);
        if (w->report_fd >= 0) {
            close(w->report_fd);
            w->report_fd = -1;
        }
    }
    gen_control_close(m, w);
    char how[128];
    describe_status(status, how, sizeof(how));
    bool was_ready = w->ready;
    w->pid = 0;
    w->ready = false;
    g->counters[idx].active = 0;
    update_split(g);

    /* A canary worker that did not get to serve leaves the split, never
     * the generation: the main model serves everything then. */
    if (slot_is_canary(g, idx) && !w->given_up && !m->terminating &&
        (g->state == GEN_STARTING || (g->state == GEN_ACTIVE && !was_ready)))
        give_up_canary(g, w, was_ready ? "ended before its generation served"
                                       : "did not start");
    if (w->given_up && (g->state == GEN_STARTING || g->state == GEN_ACTIVE)) {
        log_debug("generation %u: canary worker pid %d %s", g->id, (int)pid, how);
        return change != GEN_UNCHANGED ? change : activate_if_ready(g);
    }

    switch (g->state) {
    case GEN_STARTING: {
        char why[192];
        snprintf(why, sizeof(why), "failed to start: worker pid %d %s%s", (int)pid, how,
                 was_ready ? " after reporting ready" : " before it was ready");
        log_error(0, "generation %u: worker pid %d %s", g->id, (int)pid, how);
        fail(m, g, why);
        return GEN_NOW_FAILED;
    }
    case GEN_ACTIVE:
        if (m->terminating) {
            log_debug("generation %u: worker pid %d %s", g->id, (int)pid, how);
            break;
        }
        log_error(0, "generation %u: worker %u (pid %d) %s", g->id, idx, (int)pid, how);
        schedule_respawn(g, w, clock_now_ms());
        break;
    case GEN_DRAINING:
        if (!(WIFEXITED(status) && WEXITSTATUS(status) == 0))
            log_warn(0, "generation %u: worker pid %d %s while draining", g->id,
                     (int)pid, how);
        else
            log_debug("generation %u: worker pid %d %s", g->id, (int)pid, how);
        break;
    case GEN_FAILED:
        log_debug("generation %u: worker pid %d %s", g->id, (int)pid, how);
        break;
    }
    end_if_done(m, g);
    return change;
}

enum gen_change gen_tick(struct master *m, struct generation *g, uint64_t now)
{
    switch (g->state) {
    case GEN_STARTING:
        if (now >= g->deadline_ms) {
            if (give_up_late_canary(g))
                return activate_if_ready(g);
            fail(m, g, "did not report ready in time");
            return GEN_NOW_FAILED;
        }
        break;
    case GEN_DRAINING:
        if (g->deadline_ms && now >= g->deadline_ms) {
            log_warn(0, "generation %u: drain_timeout passed, killing %u worker(s)",
                     g->id, gen_live_workers(g));
            g->deadline_ms = 0;
            gen_signal_workers(g, SIGKILL);
        }
        break;
    case GEN_ACTIVE:
        if (m->terminating)
            break;
        for (unsigned j = 0; j < g->nslots; j++) {
            struct worker_slot *w = &g->slots[j];
            if (w->pid == 0 && w->respawn_at_ms && now >= w->respawn_at_ms) {
                m->stats.worker_restarts++;
                if (spawn_worker(m, g, j) != 0)
                    w->respawn_at_ms = now + RESPAWN_BACKOFF_FIRST_MS;
            }
        }
        break;
    case GEN_FAILED:
        break;
    }
    return GEN_UNCHANGED;
}

uint64_t gen_next_deadline(const struct generation *g)
{
    uint64_t best = g->deadline_ms ? g->deadline_ms : UINT64_MAX;
    for (unsigned j = 0; j < g->nslots; j++)
        if (g->slots[j].pid == 0 && g->slots[j].respawn_at_ms &&
            g->slots[j].respawn_at_ms < best)
            best = g->slots[j].respawn_at_ms;
    return best == UINT64_MAX ? 0 : best;
}
