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
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <systemd/sd-daemon.h>
#include <time.h>
#include <unistd.h>

#include "addr.h"
#include "log.h"
#include "master.h"
#include "master_state.h"
#include "pidfile.h"
#include "privs.h"
#include "status.h"
#include "worker.h"

/* --------------------------------------------------------- the socket */

/* Opens, binds and listens on cfg->listen_addr (non-blocking, CLOEXEC).
 * fd, or -1 with a message in err. */
static int master_bind(const struct ios_config *cfg, char *err, size_t errlen)
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
                schedule_respawn(g, w, clock_now_ms());
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
    if (!gen_start(m, cfg, fd))
        reload_failed(m);
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
    uint64_t now = clock_now_ms();
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
    uint64_t now = clock_now_ms(), best = UINT64_MAX;
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
    uint64_t now = clock_now_ms();
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
    status_init(&m.status, metrics_render, &m);

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
