/*
 * The master: one event loop over a signalfd and the workers' ready pipes.
 *
 * Workers come in generations, one per loaded configuration.  A reload
 * starts a new generation next to the serving one and only when every new
 * worker has reported ready does the old generation drain: the master
 * closes the write end of the old generation's stop pipe, which makes
 * stop_fd readable in each of its workers.  The same pipe drains workers
 * whose master died, so no worker outlives its master for long.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <systemd/sd-daemon.h>
#include <time.h>
#include <unistd.h>

#include "addr.h"
#include "log.h"
#include "master.h"
#include "pidfile.h"
#include "privs.h"
#include "status.h"
#include "worker.h"

#define MAX_GENERATIONS 16
#define START_TIMEOUT_MS 10000   /* a new generation must be ready by then */
#define STOP_KILL_AFTER_MS 3000  /* fast stop: SIGKILL what SIGTERM left */
#define RESPAWN_BACKOFF_FIRST_MS 1000
#define RESPAWN_BACKOFF_MAX_MS 30000
#define HEALTHY_UPTIME_MS 10000  /* a worker that lived this long resets backoff */

enum gen_state { GEN_STARTING, GEN_ACTIVE, GEN_DRAINING, GEN_FAILED };

struct worker_slot {
    pid_t pid;            /* 0 when not running */
    int report_fd;        /* read end of its ready pipe, or -1 */
    bool ready;
    uint64_t started_ms;
    uint64_t respawn_at_ms; /* 0: no respawn scheduled */
    unsigned backoff_ms;
    char model[64];       /* the model it reported running */
};

struct generation {
    unsigned id;
    enum gen_state state;
    struct ios_config *cfg;
    int listen_fd;
    int stop_rd, stop_wr; /* closing stop_wr = drain */
    uint64_t deadline_ms; /* start or drain deadline; 0 = none */
    struct ios_counters *counters; /* shared with workers, one per slot */
    struct worker_slot *slots;
    unsigned nslots;
};

/* What /metrics reports beyond the live generations' counters. */
#define MAX_MODEL_TOTALS 32
#define MAX_FALLBACKS 16
struct master_stats {
    uint64_t reloads, reloads_failed, worker_restarts;
    struct model_totals { /* counters of generations that have ended */
        char model[64];
        struct ios_counters c;
    } retired[MAX_MODEL_TOTALS];
    struct fallback { /* a model skipped for the next one of the list */
        char model[64];
        char reason[160];
        uint64_t count;
    } fallbacks[MAX_FALLBACKS];
};

struct master {
    const struct master_opts *opts;
    int sigfd;
    struct generation *gens[MAX_GENERATIONS];
    unsigned next_gen_id;
    bool ever_active;
    bool reload_pending;
    bool quitting;          /* graceful: drain everything, then exit */
    bool terminating;       /* fast: kill everything, then exit */
    uint64_t kill_at_ms;
    int exit_code;
    char *pid_file;
    bool socket_activated; /* the listening socket came from systemd */
    struct status_server status;
    struct master_stats stats;
};

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* --------------------------------------------------------- the socket */

int master_bind(const struct ios_config *cfg, char *err, size_t errlen)
{
    int family = cfg->listen_addr.ss_family;
    int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "listen %s: socket: %s", cfg->listen, strerror(errno));
        return -1;
    }
    int one = 1;
    /* A restart must not wait for TIME_WAIT connections of the last run. */
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    if (bind(fd, (const struct sockaddr *)&cfg->listen_addr, cfg->listen_addrlen) != 0) {
        snprintf(err, errlen, "listen %s: bind: %s", cfg->listen, strerror(errno));
        close(fd);
        return -1;
    }
    if (listen(fd, cfg->backlog) != 0) {
        snprintf(err, errlen, "listen %s: listen: %s", cfg->listen, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

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

/* In the child: only the three descriptors a worker needs survive, at
 * fixed numbers, so no other generation's pipes or sockets leak into it. */
static void child_become_worker(struct master *m, struct generation *g,
                                unsigned idx, int report_wr)
{
    sigset_t all;
    sigemptyset(&all);
    sigprocmask(SIG_SETMASK, &all, NULL);
    signal(SIGHUP, SIG_IGN);  /* the master's signals, sent to the group */
    signal(SIGQUIT, SIG_IGN);
    signal(SIGTERM, SIG_DFL);
    signal(SIGINT, SIG_DFL);
    prctl(PR_SET_NAME, "ioserve-worker");

    /* Copies above 5 survive the dup2s onto 3..5 whatever the originals'
     * numbers; any higher floor would fail under a low RLIMIT_NOFILE. */
    int lfd = fcntl(g->listen_fd, F_DUPFD, 6);
    int sfd = fcntl(g->stop_rd, F_DUPFD, 6);
    int rfd = fcntl(report_wr, F_DUPFD, 6);
    if (lfd < 0 || sfd < 0 || rfd < 0 || dup2(lfd, 3) < 0 || dup2(sfd, 4) < 0 ||
        dup2(rfd, 5) < 0) {
        log_error(errno, "worker: setting up descriptors");
        _exit(WORKER_EXIT_FAILED);
    }
    close_range(6, ~0u, 0);
    m->sigfd = -1;

    struct worker_args args = {
        .cfg = g->cfg,
        .listen_fd = 3,
        .stop_fd = 4,
        .report_fd = 5,
        .worker_id = idx,
        .counters = &g->counters[idx],
    };
    exit(worker_main(&args));
}

static int spawn_worker(struct master *m, struct generation *g, unsigned idx)
{
    struct worker_slot *w = &g->slots[idx];
    int rp[2];
    if (pipe2(rp, O_CLOEXEC) != 0) {
        log_error(errno, "pipe2 for worker %u", idx);
        return -1;
    }
    g->counters[idx].active = 0; /* a dead worker's connections died with it */
    pid_t pid = fork();
    if (pid < 0) {
        log_error(errno, "fork");
        close(rp[0]);
        close(rp[1]);
        return -1;
    }
    if (pid == 0)
        child_become_worker(m, g, idx, rp[1]);
    close(rp[1]);
    fcntl(rp[0], F_SETFL, O_NONBLOCK);
    w->pid = pid;
    w->report_fd = rp[0];
    w->ready = false;
    w->started_ms = now_ms();
    w->respawn_at_ms = 0;
    log_debug("generation %u: worker %u started, pid %d", g->id, idx, (int)pid);
    return 0;
}

static unsigned live_workers(const struct generation *g)
{
    unsigned n = 0;
    for (unsigned i = 0; i < g->nslots; i++)
        n += g->slots[i].pid != 0;
    return n;
}

static void signal_workers(struct generation *g, int sig)
{
    for (unsigned i = 0; i < g->nslots; i++)
        if (g->slots[i].pid > 0)
            kill(g->slots[i].pid, sig);
}

/* ------------------------------------------------------- generations */

/* Keeps an ended generation's counters, so the per-model totals of
 * /metrics never go backwards. */
static void retire_counters(struct master *m, const struct generation *g)
{
    for (unsigned i = 0; g->counters && i < g->nslots; i++) {
        const char *model = g->slots[i].model[0] ? g->slots[i].model : g->cfg->models[0];
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

static void gen_free(struct master *m, struct generation *g)
{
    retire_counters(m, g);
    for (unsigned i = 0; i < MAX_GENERATIONS; i++)
        if (m->gens[i] == g)
            m->gens[i] = NULL;
    for (unsigned i = 0; i < g->nslots; i++)
        if (g->slots[i].report_fd >= 0)
            close(g->slots[i].report_fd);
    if (g->stop_wr >= 0)
        close(g->stop_wr);
    if (g->stop_rd >= 0)
        close(g->stop_rd);
    if (g->listen_fd >= 0)
        close(g->listen_fd);
    if (g->counters)
        munmap(g->counters, sizeof(*g->counters) * g->nslots);
    free(g->slots);
    cfg_free(g->cfg);
    free(g->cfg);
    free(g);
}

static struct generation *gen_find(struct master *m, enum gen_state state)
{
    for (unsigned i = 0; i < MAX_GENERATIONS; i++)
        if (m->gens[i] && m->gens[i]->state == state)
            return m->gens[i];
    return NULL;
}

/* Starts a generation on cfg (taken over) and listen_fd (taken over). */
static struct generation *gen_start(struct master *m, struct ios_config *cfg,
                                    int listen_fd)
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
    g->nslots = cfg->workers;
    g->slots = calloc(g->nslots, sizeof(*g->slots));
    g->counters = mmap(NULL, sizeof(*g->counters) * g->nslots,
                       PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (g->counters == MAP_FAILED)
        g->counters = NULL;
    int sp[2];
    m->gens[slot] = g;
    if (!g->slots || !g->counters || pipe2(sp, O_CLOEXEC) != 0) {
        log_error(errno, "generation %u: out of resources", g->id);
        gen_free(m, g);
        return NULL;
    }
    g->stop_rd = sp[0];
    g->stop_wr = sp[1];
    for (unsigned i = 0; i < g->nslots; i++)
        g->slots[i].report_fd = -1;
    g->deadline_ms = now_ms() + START_TIMEOUT_MS;
    for (unsigned i = 0; i < g->nslots; i++) {
        if (spawn_worker(m, g, i) != 0) {
            g->state = GEN_FAILED;
            signal_workers(g, SIGKILL);
            break;
        }
    }
    return g;
}

static void gen_drain(struct generation *g)
{
    if (g->state == GEN_DRAINING || g->state == GEN_FAILED)
        return;
    g->state = GEN_DRAINING;
    if (g->stop_wr >= 0) {
        close(g->stop_wr); /* every worker's stop_fd turns readable */
        g->stop_wr = -1;
    }
    for (unsigned i = 0; i < g->nslots; i++)
        g->slots[i].respawn_at_ms = 0;
    g->deadline_ms = now_ms() + g->cfg->drain_timeout_ms;
    log_info("generation %u: draining %u worker(s) (drain_timeout %u ms)", g->id,
             live_workers(g), g->cfg->drain_timeout_ms);
}

/* systemd (Type=notify): READY=1 again after every reload, failed or not,
 * with a STATUS= line a person can read in `systemctl status`. */
static void notify_serving(const struct master *m, const char *note)
{
    const struct generation *g = NULL;
    for (unsigned i = 0; i < MAX_GENERATIONS && !g; i++)
        if (m->gens[i] && m->gens[i]->state == GEN_ACTIVE)
            g = m->gens[i];
    if (!g)
        return;
    char addr[128];
    addr_format_local(g->listen_fd, addr, sizeof(addr));
    sd_notifyf(0, "READY=1\nSTATUS=%s%sserving %s with model %s, handler %s (generation %u)",
               note ? note : "", note ? "; " : "", addr, g->slots[0].model,
               g->cfg->handler, g->id);
}

static void reload_failed(struct master *m)
{
    m->stats.reloads_failed++;
    notify_serving(m, "last reload failed");
}

static void gen_fail(struct master *m, struct generation *g, const char *why)
{
    struct generation *active = gen_find(m, GEN_ACTIVE);
    if (active) {
        log_error(0, "reload failed: generation %u %s; generation %u keeps serving",
                  g->id, why, active->id);
        reload_failed(m);
    } else
        log_error(0, "generation %u %s", g->id, why);
    g->state = GEN_FAILED;
    g->deadline_ms = 0;
    signal_workers(g, SIGKILL);
    if (!m->ever_active) {
        /* Nothing is serving and nothing will: give up. */
        m->exit_code = 1;
        m->terminating = true;
    }
}

static void gen_activate(struct master *m, struct generation *g)
{
    struct generation *old = gen_find(m, GEN_ACTIVE);
    g->state = GEN_ACTIVE;
    g->deadline_ms = 0;
    log_set_level(g->cfg->log_level);

    char addr[128];
    addr_format_local(g->listen_fd, addr, sizeof(addr));
    log_info("listening on %s (model %s, handler %s, %u worker%s, generation %u)",
             addr, g->slots[0].model, g->cfg->handler, g->nslots,
             g->nslots == 1 ? "" : "s", g->id);
    m->ever_active = true;
    if (old) {
        log_info("reload: generation %u serving, generation %u draining", g->id, old->id);
        gen_drain(old);
    }
    notify_serving(m, NULL);
    if (m->quitting)
        gen_drain(g);
}

/* ------------------------------------------------------------ events */

static struct worker_slot *slot_of_pid(struct master *m, pid_t pid,
                                       struct generation **gen, unsigned *idx)
{
    for (unsigned i = 0; i < MAX_GENERATIONS; i++) {
        struct generation *g = m->gens[i];
        for (unsigned j = 0; g && j < g->nslots; j++) {
            if (g->slots[j].pid == pid) {
                *gen = g;
                *idx = j;
                return &g->slots[j];
            }
        }
    }
    return NULL;
}

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

/* A worker's report lines: "R<model>" = ready, "F<model>\t<reason>" = that
 * model was skipped for the next one of the list. */
static void read_report(struct master *m, struct generation *g, struct worker_slot *w)
{
    char buf[1024];
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
                snprintf(w->model, sizeof(w->model), "%.63s", line + 1);
                w->ready = true;
                log_debug("generation %u: worker pid %d ready (model %s)", g->id,
                          (int)w->pid, w->model);
            }
        }
    }
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
        close(w->report_fd); /* the worker is exiting; SIGCHLD follows */
        w->report_fd = -1;
    }
    if (g->state == GEN_STARTING) {
        for (unsigned i = 0; i < g->nslots; i++)
            if (!g->slots[i].ready)
                return;
        gen_activate(m, g);
    }
}

static void schedule_respawn(struct generation *g, struct worker_slot *w, uint64_t now)
{
    if (now - w->started_ms >= HEALTHY_UPTIME_MS)
        w->backoff_ms = 0;
    w->respawn_at_ms = now + w->backoff_ms;
    if (w->respawn_at_ms == 0)
        w->respawn_at_ms = 1;
    log_info("generation %u: respawning worker in %u ms", g->id, w->backoff_ms);
    w->backoff_ms = w->backoff_ms == 0 ? RESPAWN_BACKOFF_FIRST_MS
                                       : (w->backoff_ms * 2 > RESPAWN_BACKOFF_MAX_MS
                                              ? RESPAWN_BACKOFF_MAX_MS
                                              : w->backoff_ms * 2);
}

static void reap_children(struct master *m)
{
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        struct generation *g;
        unsigned idx;
        struct worker_slot *w = slot_of_pid(m, pid, &g, &idx);
        if (!w)
            continue;
        if (w->report_fd >= 0) {
            read_report(m, g, w);
            if (w->report_fd >= 0) {
                close(w->report_fd);
                w->report_fd = -1;
            }
        }
        char how[128];
        describe_status(status, how, sizeof(how));
        bool was_ready = w->ready;
        w->pid = 0;
        w->ready = false;
        g->counters[idx].active = 0;

        switch (g->state) {
        case GEN_DRAINING:
        case GEN_FAILED:
            if (g->state == GEN_DRAINING &&
                !(WIFEXITED(status) && WEXITSTATUS(status) == 0))
                log_warn(0, "generation %u: worker pid %d %s while draining", g->id,
                         (int)pid, how);
            else
                log_debug("generation %u: worker pid %d %s", g->id, (int)pid, how);
            break;
        case GEN_STARTING: {
            char why[192];
            snprintf(why, sizeof(why), "failed to start: worker pid %d %s%s", (int)pid,
                     how, was_ready ? " after reporting ready" : " before it was ready");
            log_error(0, "generation %u: worker pid %d %s", g->id, (int)pid, how);
            gen_fail(m, g, why);
            break;
        }
        case GEN_ACTIVE:
            if (m->terminating) {
                log_debug("generation %u: worker pid %d %s", g->id, (int)pid, how);
                break;
            }
            log_error(0, "generation %u: worker %u (pid %d) %s", g->id, idx, (int)pid,
                      how);
            if (!m->terminating && !m->quitting)
                schedule_respawn(g, w, now_ms());
            break;
        }
        if ((g->state == GEN_DRAINING || g->state == GEN_FAILED) && live_workers(g) == 0) {
            if (g->state == GEN_DRAINING)
                log_info("generation %u: drained", g->id);
            gen_free(m, g);
        }
    }
}

static void do_reload(struct master *m)
{
    if (gen_find(m, GEN_STARTING)) {
        m->reload_pending = true; /* after the generation now starting settles */
        return;
    }
    m->reload_pending = false;
    m->stats.reloads++;
    struct generation *active = gen_find(m, GEN_ACTIVE);
    log_info("reload: reading %s", m->opts->config_file);
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    sd_notifyf(0, "RELOADING=1\nMONOTONIC_USEC=%llu\nSTATUS=reloading %s",
               (unsigned long long)ts.tv_sec * 1000000ull + (unsigned long long)ts.tv_nsec / 1000u,
               m->opts->config_file);

    struct ios_config *cfg = calloc(1, sizeof(*cfg));
    char err[1024];
    if (!cfg || cfg_load(cfg, m->opts->config_file, m->opts->overrides,
                         m->opts->n_overrides, err, sizeof(err)) != 0) {
        log_error(0, "reload failed: %s; keeping the current configuration",
                  cfg ? err : "out of memory");
        if (cfg) {
            cfg_free(cfg);
            free(cfg);
        }
        reload_failed(m);
        return;
    }
    if (status_configure(&m->status, cfg, err, sizeof(err)) != 0)
        log_error(0, "reload: %s; keeping the previous status endpoint", err);
    int fd;
    if (active && m->socket_activated && strcmp(active->cfg->listen, cfg->listen) != 0)
        log_warn(0, "reload: 'listen' changed, but the socket comes from systemd: kept");
    if (active && (m->socket_activated || strcmp(active->cfg->listen, cfg->listen) == 0)) {
        fd = fcntl(active->listen_fd, F_DUPFD_CLOEXEC, 3);
        if (fd < 0)
            snprintf(err, sizeof(err), "dup of the listening socket: %s", strerror(errno));
    } else {
        fd = master_bind(cfg, err, sizeof(err));
    }
    if (fd < 0) {
        log_error(0, "reload failed: %s; keeping the current configuration", err);
        cfg_free(cfg);
        free(cfg);
        reload_failed(m);
        return;
    }
    gen_start(m, cfg, fd);
}

static void on_signal(struct master *m, int sig)
{
    switch (sig) {
    case SIGCHLD:
        reap_children(m);
        break;
    case SIGHUP:
        if (!m->quitting && !m->terminating)
            do_reload(m);
        break;
    case SIGQUIT:
        if (m->quitting || m->terminating)
            break;
        log_info("SIGQUIT: draining every generation, then exiting");
        sd_notify(0, "STOPPING=1\nSTATUS=draining");
        m->quitting = true;
        for (unsigned i = 0; i < MAX_GENERATIONS; i++) {
            struct generation *g = m->gens[i];
            if (g && g->state == GEN_STARTING) {
                g->state = GEN_FAILED;
                signal_workers(g, SIGKILL);
            } else if (g) {
                gen_drain(g);
            }
        }
        break;
    case SIGTERM:
    case SIGINT:
        if (m->terminating)
            break;
        log_info("SIG%s: stopping now", sigabbrev_np(sig));
        sd_notify(0, "STOPPING=1\nSTATUS=stopping");
        m->terminating = true;
        break;
    }
}

static void check_timers(struct master *m)
{
    uint64_t now = now_ms();
    for (unsigned i = 0; i < MAX_GENERATIONS; i++) {
        struct generation *g = m->gens[i];
        if (!g)
            continue;
        if (g->state == GEN_STARTING && g->deadline_ms && now >= g->deadline_ms) {
            gen_fail(m, g, "did not report ready in time");
        } else if (g->state == GEN_DRAINING && g->deadline_ms && now >= g->deadline_ms) {
            log_warn(0, "generation %u: drain_timeout passed, killing %u worker(s)", g->id,
                     live_workers(g));
            g->deadline_ms = 0;
            signal_workers(g, SIGKILL);
        }
        if (g->state != GEN_ACTIVE || m->terminating || m->quitting)
            continue;
        for (unsigned j = 0; j < g->nslots; j++) {
            struct worker_slot *w = &g->slots[j];
            if (w->pid == 0 && w->respawn_at_ms && now >= w->respawn_at_ms) {
                m->stats.worker_restarts++;
                if (spawn_worker(m, g, j) != 0)
                    w->respawn_at_ms = now + RESPAWN_BACKOFF_FIRST_MS;
            }
        }
    }
}

static int next_timeout(const struct master *m)
{
    uint64_t now = now_ms(), best = UINT64_MAX;
    for (unsigned i = 0; i < MAX_GENERATIONS; i++) {
        const struct generation *g = m->gens[i];
        if (!g)
            continue;
        if (g->deadline_ms && g->deadline_ms < best)
            best = g->deadline_ms;
        for (unsigned j = 0; j < g->nslots; j++)
            if (g->slots[j].pid == 0 && g->slots[j].respawn_at_ms &&
                g->slots[j].respawn_at_ms < best)
                best = g->slots[j].respawn_at_ms;
    }
    if (m->terminating && m->kill_at_ms && m->kill_at_ms < best)
        best = m->kill_at_ms;
    if (best == UINT64_MAX)
        return -1;
    return best <= now ? 0 : (int)(best - now > 60000 ? 60000 : best - now);
}

static bool any_generation(const struct master *m)
{
    for (unsigned i = 0; i < MAX_GENERATIONS; i++)
        if (m->gens[i])
            return true;
    return false;
}

static bool any_worker(const struct master *m)
{
    for (unsigned i = 0; i < MAX_GENERATIONS; i++)
        if (m->gens[i] && live_workers(m->gens[i]))
            return true;
    return false;
}

/* Fast stop: SIGTERM now, SIGKILL what is left after a grace period. */
static void terminate_step(struct master *m)
{
    uint64_t now = now_ms();
    if (m->kill_at_ms == 0) {
        m->kill_at_ms = now + STOP_KILL_AFTER_MS;
        for (unsigned i = 0; i < MAX_GENERATIONS; i++)
            if (m->gens[i])
                signal_workers(m->gens[i], SIGTERM);
    } else if (now >= m->kill_at_ms) {
        for (unsigned i = 0; i < MAX_GENERATIONS; i++)
            if (m->gens[i])
                signal_workers(m->gens[i], SIGKILL);
        m->kill_at_ms = now + STOP_KILL_AFTER_MS;
    }
}

/* ---------------------------------------------------------- metrics */

static void metric_head(struct ios_buf *out, const char *name, const char *type,
                        const char *help)
{
    char line[512];
    int n = snprintf(line, sizeof(line), "# HELP %s %s\n# TYPE %s %s\n", name, help,
                     name, type);
    ios_buf_append(out, line, (size_t)n);
}

/* Label values are our own model names and errno texts, but escape them
 * as the exposition format requires all the same. */
static void label_escape(char *dst, size_t len, const char *src)
{
    size_t j = 0;
    for (; *src && j + 2 < len; src++) {
        if (*src == '\\' || *src == '"') {
            dst[j++] = '\\';
            dst[j++] = *src;
        } else if (*src == '\n') {
            dst[j++] = ' ';
        } else {
            dst[j++] = *src;
        }
    }
    dst[j] = '\0';
}

static void metric_line(struct ios_buf *out, const char *name, const char *labels,
                        uint64_t value)
{
    char line[768];
    int n = snprintf(line, sizeof(line), "%s%s%s%s %llu\n", name, labels[0] ? "{" : "",
                     labels, labels[0] ? "}" : "", (unsigned long long)value);
    ios_buf_append(out, line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);
}

static const struct counter_metric {
    const char *name, *help;
    size_t offset;
} counter_metrics[] = {
    {"ioserve_connections_accepted_total", "Connections accepted and kept.",
     offsetof(struct ios_counters, accepted)},
    {"ioserve_connections_refused_total", "Connections accepted and closed at once (a limit).",
     offsetof(struct ios_counters, refused)},
    {"ioserve_connections_closed_total", "Kept connections that have closed.",
     offsetof(struct ios_counters, closed)},
    {"ioserve_received_bytes_total", "Bytes received from clients.",
     offsetof(struct ios_counters, bytes_in)},
    {"ioserve_sent_bytes_total", "Bytes sent to clients.",
     offsetof(struct ios_counters, bytes_out)},
};

static uint64_t counter_at(const struct ios_counters *c, size_t offset)
{
    return __atomic_load_n((const uint64_t *)((const char *)c + offset), __ATOMIC_RELAXED);
}

static const char *const gen_state_names[] = {"starting", "active", "draining", "failed"};

static void render_metrics(void *ctx, struct ios_buf *out)
{
    const struct master *m = ctx;
    char labels[512], model[160];

    /* Per model and generation; ended generations under generation="ended". */
    for (size_t k = 0; k < sizeof(counter_metrics) / sizeof(counter_metrics[0]); k++) {
        const struct counter_metric *cm = &counter_metrics[k];
        metric_head(out, cm->name, "counter", cm->help);
        for (unsigned i = 0; i < MAX_MODEL_TOTALS && m->stats.retired[i].model[0]; i++) {
            label_escape(model, sizeof(model), m->stats.retired[i].model);
            snprintf(labels, sizeof(labels), "model=\"%s\",generation=\"ended\"", model);
            metric_line(out, cm->name, labels, counter_at(&m->stats.retired[i].c, cm->offset));
        }
        for (unsigned i = 0; i < MAX_GENERATIONS; i++) {
            const struct generation *g = m->gens[i];
            for (unsigned j = 0; g && g->counters && j < g->nslots; j++) {
                label_escape(model, sizeof(model),
                             g->slots[j].model[0] ? g->slots[j].model : g->cfg->models[0]);
                snprintf(labels, sizeof(labels),
                         "model=\"%s\",generation=\"%u\",worker=\"%u\"", model, g->id, j);
                metric_line(out, cm->name, labels, counter_at(&g->counters[j], cm->offset));
            }
        }
    }
    /* Every sample of a family must follow its own TYPE line. */
    metric_head(out, "ioserve_connections_active", "gauge", "Connections open now.");
    for (unsigned i = 0; i < MAX_GENERATIONS; i++) {
        const struct generation *g = m->gens[i];
        for (unsigned j = 0; g && g->counters && j < g->nslots; j++) {
            label_escape(model, sizeof(model),
                         g->slots[j].model[0] ? g->slots[j].model : g->cfg->models[0]);
            snprintf(labels, sizeof(labels), "model=\"%s\",generation=\"%u\",worker=\"%u\"",
                     model, g->id, j);
            metric_line(out, "ioserve_connections_active", labels,
                        counter_at(&g->counters[j], offsetof(struct ios_counters, active)));
        }
    }
    metric_head(out, "ioserve_workers", "gauge", "Worker processes running, by generation.");
    for (unsigned i = 0; i < MAX_GENERATIONS; i++) {
        const struct generation *g = m->gens[i];
        if (!g)
            continue;
        snprintf(labels, sizeof(labels), "generation=\"%u\",state=\"%s\"", g->id,
                 gen_state_names[g->state]);
        metric_line(out, "ioserve_workers", labels, live_workers(g));
    }
    metric_head(out, "ioserve_reloads_total", "counter", "Reloads requested (SIGHUP).");
    metric_line(out, "ioserve_reloads_total", "", m->stats.reloads);
    metric_head(out, "ioserve_reloads_failed_total", "counter",
                "Reloads refused: bad config, or the new generation did not start.");
    metric_line(out, "ioserve_reloads_failed_total", "", m->stats.reloads_failed);
    metric_head(out, "ioserve_worker_restarts_total", "counter",
                "Workers respawned after dying unexpectedly.");
    metric_line(out, "ioserve_worker_restarts_total", "", m->stats.worker_restarts);
    metric_head(out, "ioserve_model_fallbacks_total", "counter",
                "Models of a model list skipped for the next one, by reason.");
    for (unsigned i = 0; i < MAX_FALLBACKS && m->stats.fallbacks[i].model[0]; i++) {
        char reason[400];
        label_escape(model, sizeof(model), m->stats.fallbacks[i].model);
        label_escape(reason, sizeof(reason), m->stats.fallbacks[i].reason);
        snprintf(labels, sizeof(labels), "model=\"%s\",reason=\"%.300s\"", model, reason);
        metric_line(out, "ioserve_model_fallbacks_total", labels, m->stats.fallbacks[i].count);
    }
}

/* --------------------------------------------------------------- run */

/* Under systemd socket activation (LISTEN_FDS) the socket is handed over
 * already bound; otherwise bind cfg->listen. */
static int open_listener(struct master *m, const struct ios_config *cfg, char *err,
                         size_t errlen)
{
    int n = sd_listen_fds(1);
    if (n < 0) {
        snprintf(err, errlen, "sd_listen_fds: %s", strerror(-n));
        return -1;
    }
    if (n == 0)
        return master_bind(cfg, err, errlen);
    int fd = SD_LISTEN_FDS_START;
    if (n > 1)
        log_warn(0, "systemd passed %d sockets; serving the first only", n);
    if (sd_is_socket(fd, AF_UNSPEC, SOCK_STREAM, 1) <= 0) {
        snprintf(err, errlen, "the socket systemd passed (fd %d) is not a listening "
                 "stream socket", fd);
        return -1;
    }
    fcntl(fd, F_SETFD, FD_CLOEXEC);
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    m->socket_activated = true;
    char addr[128];
    addr_format_local(fd, addr, sizeof(addr));
    log_info("socket activation: serving %s from systemd ('listen' is not used)", addr);
    return fd;
}

static int setup_signals(struct master *m)
{
    sigset_t mask;
    sigemptyset(&mask);
    int sigs[] = {SIGCHLD, SIGHUP, SIGQUIT, SIGTERM, SIGINT};
    for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
        sigaddset(&mask, sigs[i]);
    sigprocmask(SIG_BLOCK, &mask, NULL);
    signal(SIGPIPE, SIG_IGN);
    m->sigfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
    if (m->sigfd < 0) {
        log_error(errno, "signalfd");
        return -1;
    }
    return 0;
}

#define MAX_POLL (1 + MAX_GENERATIONS * 64 + 1 + STATUS_MAX_CONNS)

static void run_loop(struct master *m)
{
    while (any_generation(m) || (m->terminating && any_worker(m))) {
        if (m->terminating) {
            if (!any_worker(m))
                break;
            terminate_step(m);
        }
        if (m->reload_pending && !gen_find(m, GEN_STARTING) && !m->quitting &&
            !m->terminating)
            do_reload(m);

        struct pollfd pfds[MAX_POLL];
        struct worker_slot *owners[MAX_POLL];
        struct generation *owner_gen[MAX_POLL];
        nfds_t n = 0;
        pfds[n++] = (struct pollfd){.fd = m->sigfd, .events = POLLIN};
        for (unsigned i = 0; i < MAX_GENERATIONS; i++) {
            struct generation *g = m->gens[i];
            for (unsigned j = 0; g && j < g->nslots; j++) {
                if (g->slots[j].report_fd < 0)
                    continue;
                owners[n] = &g->slots[j];
                owner_gen[n] = g;
                pfds[n++] = (struct pollfd){.fd = g->slots[j].report_fd, .events = POLLIN};
            }
        }
        nfds_t status_at = n;
        n += status_pollfds(&m->status, pfds + n, MAX_POLL - n);

        int timeout = next_timeout(m);
        int st = status_timeout_ms(&m->status);
        if (st >= 0 && (timeout < 0 || st < timeout))
            timeout = st;
        int rc = poll(pfds, n, timeout);
        if (rc < 0 && errno != EINTR) {
            log_error(errno, "poll");
            break;
        }
        for (nfds_t i = 1; rc > 0 && i < status_at; i++)
            if (pfds[i].revents && owners[i]->report_fd == pfds[i].fd)
                read_report(m, owner_gen[i], owners[i]);
        status_handle(&m->status, pfds + status_at, n - status_at);
        if (rc > 0 && (pfds[0].revents & POLLIN)) {
            struct signalfd_siginfo si;
            while (read(m->sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si))
                on_signal(m, (int)si.ssi_signo);
        }
        check_timers(m);
    }
}

int master_run(const struct master_opts *opts, struct ios_config *cfg)
{
    struct master m = {.opts = opts, .sigfd = -1};
    char err[1024];
    int fd = -1;
    status_init(&m.status, render_metrics, &m);

    if ((fd = open_listener(&m, cfg, err, sizeof(err))) < 0 ||
        status_configure(&m.status, cfg, err, sizeof(err)) != 0) {
        log_error(0, "%s", err);
        goto fail;
    }
    if (setup_signals(&m) != 0)
        goto fail;
    if (cfg->pid_file) {
        m.pid_file = strdup(cfg->pid_file);
        if (!m.pid_file || pidfile_write(m.pid_file, err, sizeof(err)) != 0) {
            log_error(0, "%s", m.pid_file ? err : "out of memory");
            free(m.pid_file);
            m.pid_file = NULL;
            goto fail;
        }
    }
    /* After bind (a low port may need root) and before any worker loads
     * a plugin. */
    if (privs_drop(cfg->user, cfg->group, err, sizeof(err)) != 0) {
        log_error(0, "%s", err);
        goto fail;
    }

    struct generation *first = gen_start(&m, cfg, fd); /* takes cfg and fd */
    cfg = NULL;
    fd = -1;
    if (!first)
        m.exit_code = 1;
    run_loop(&m);
    sd_notify(0, "STOPPING=1");

    for (unsigned i = 0; i < MAX_GENERATIONS; i++)
        if (m.gens[i])
            gen_free(&m, m.gens[i]);
    log_info("exiting");
fail:
    if (m.pid_file) {
        pidfile_remove(m.pid_file);
        free(m.pid_file);
    }
    status_fini(&m.status);
    if (m.sigfd >= 0)
        close(m.sigfd);
    if (fd >= 0)
        close(fd);
    if (cfg) {
        cfg_free(cfg);
        free(cfg);
        return 1;
    }
    return m.exit_code;
}
