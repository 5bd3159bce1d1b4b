/*
 * The master: one event loop over a signalfd and the workers' ready pipes.
 *
 * Workers come in generations, one per loaded configuration.  A reload
 * starts a new generation next to the serving one and only when every new
 * worker has reported ready does the old generation drain: the master
 * closes the write end of the old generation's stop pipe, which makes
 * stop_fd readable in each of its workers; unless the reload changed the
 * protocol, the old workers first give their connections, through their
 * control sockets, to the new ones (handover.c relays them).  A generation's life (start,
 * serve, drain, fail, end) is generation.c's; what serving means for the
 * whole server (log level, status endpoint, systemd) is decided here.
 * Workers whose master died drain on their own (see worker.c).
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
#include <sys/resource.h>
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
#include "listener.h"
#include "pidfile.h"
#include "privs.h"
#include "status.h"
#include "worker.h"

/* ------------------------------------------------------ what serves */

/* The models g serves with, for the startup line and STATUS=: "model
 * epoll", its A/B split, or why the split is off. */
static void describe_models(const struct generation *g, char *out, size_t len)
{
    int n = snprintf(out, len, "model %s", g->slots[0].model);
    if (!g->cfg->canary.model || n < 0 || (size_t)n >= len)
        return;
    char split[192];
    if (gen_canary_serves(g)) {
        split_describe(g->cfg->canary.model, g->cfg->canary.share, g->nslots - g->nmain, split,
                       sizeof(split));
        snprintf(out + n, len - (size_t)n, ", %s", split);
    } else {
        snprintf(out + n, len - (size_t)n, " for every connection (canary %s is off)",
                 g->cfg->canary.model);
    }
}

/* systemd (Type=notify): READY=1 again after every reload, failed or not,
 * with a STATUS= line a person can read in `systemctl status`. */
static void notify_serving(struct master *m, const char *note)
{
    const struct generation *g = gen_find(m, GEN_ACTIVE);
    if (!g)
        return;
    char addr[128], models[320];
    addr_format_local(g->listen_fd, addr, sizeof(addr));
    describe_models(g, models, sizeof(models));
    sd_notifyf(0, "READY=1\nSTATUS=%s%sserving %s with %s, handler %s (generation %u)",
               note ? note : "", note ? "; " : "", addr, models, g->cfg->handler, g->id);
}

static void reload_failed(struct master *m)
{
    m->stats.reloads_failed++;
    notify_serving(m, "last reload failed");
}

static bool same_string(const char *a, const char *b)
{
    return a == b || (a && b && strcmp(a, b) == 0);
}

/* 'value', or unset: for a log line. */
static const char *quoted(const char *value, char *buf, size_t len)
{
    if (!value)
        return "unset";
    snprintf(buf, len, "'%s'", value);
    return buf;
}

/* Settings only a restart applies: the master took them when it started. */
static void warn_restart_settings(const struct master *m, const struct ios_config *cfg)
{
    static const char why_account[] =
        "the master dropped privileges once, when it started";
    const struct {
        const char *name, *running, *wanted, *why;
    } fixed[] = {
        {"user", m->user, cfg->user, why_account},
        {"group", m->group, cfg->group, why_account},
        {"pid_file", m->pid_file, cfg->pid_file,
         "the master writes it when it starts and removes it when it exits"},
    };
    for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++) {
        if (same_string(fixed[i].running, fixed[i].wanted))
            continue;
        char now[300], was[300];
        log_warn(0, "reload: '%s' changed to %s but needs a restart (still %s): %s",
                 fixed[i].name, quoted(fixed[i].wanted, now, sizeof(now)),
                 quoted(fixed[i].running, was, sizeof(was)), fixed[i].why);
    }
}

/* The newest active generation serves; any older one drains.  A
 * configuration takes effect here, once its generation serves: a reload
 * that fails leaves the log level and the status endpoint be. */
static void serve_newest(struct master *m)
{
    struct generation *g = gen_find(m, GEN_ACTIVE);
    log_set_level(g->cfg->log_level);
    char err[256];
    if (status_configure(&m->status, g->cfg, err, sizeof(err)) != 0)
        log_error(0, "reload: %s; keeping the previous status endpoint", err);

    char addr[128], models[320];
    addr_format_local(g->listen_fd, addr, sizeof(addr));
    describe_models(g, models, sizeof(models));
    log_info("listening on %s (%s, handler %s, %u worker%s, generation %u)", addr, models,
             g->cfg->handler, g->nmain, g->nmain == 1 ? "" : "s", g->id);
    m->ever_active = true;
    gen_offer_hand_over(m, g); /* before the drains below: those decide at once */
    for (unsigned i = 0; i < MAX_GENERATIONS; i++) {
        struct generation *old = m->gens[i];
        if (!old || old == g || old->state != GEN_ACTIVE)
            continue;
        listener_apply_backlog(g->listen_fd, old->cfg->backlog, g->cfg->backlog,
                               m->socket_activated);
        warn_restart_settings(m, g->cfg);
        log_info("reload: generation %u serving, generation %u draining", g->id, old->id);
        gen_drain(m, old, g);
    }
    if (!upgrade_serving(m, g)) /* a new master speaks once the old one lets it */
        notify_serving(m, NULL);
}

static void on_gen_change(struct master *m, enum gen_change change)
{
    switch (change) {
    case GEN_UNCHANGED:
        break;
    case GEN_NOW_ACTIVE:
        serve_newest(m);
        break;
    case GEN_NOW_FAILED:
        if (gen_find(m, GEN_ACTIVE))
            reload_failed(m);
        if (!m->ever_active) {
            /* Nothing is serving and nothing will: give up. */
            m->exit_code = 1;
            m->terminating = true;
        }
        break;
    }
}

/* ------------------------------------------------------------ events */

static void reap_children(struct master *m)
{
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0)
        if (!upgrade_reaped(m, pid, status))
            on_gen_change(m, gen_worker_exited(m, pid, status));
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
    /* None serves after a binary upgrade whose new master died: the
     * socket is the one kept for that. */
    const char *bound_for = active ? active->cfg->listen : NULL;
    int bound_fd = active ? active->listen_fd : upgrade_kept_listener(m, &bound_for);
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
    int fd = bound_fd >= 0 ? listener_for_reload(bound_fd, bound_for, cfg,
                                                 m->socket_activated, err, sizeof(err))
                           : listener_bind(cfg, err, sizeof(err));
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

/* ------------------------------------------------------------ -s quit */

static void quit_drain(struct master *m)
{
    m->quit_phase = QUIT_DRAIN;
    log_info("SIGQUIT: draining every generation, then exiting");
    sd_notify(0, "STOPPING=1\nSTATUS=draining");
    for (unsigned i = 0; i < MAX_GENERATIONS; i++)
        if (m->gens[i])
            gen_drain(m, m->gens[i], NULL);
}

/* The workers stop accepting when they drain, and the listening socket
 * closes with the master: a connection still in its backlog then would
 * be reset after its client saw the handshake complete.  So new
 * handshakes stop first and the workers, still accepting, empty the
 * backlog; the drain begins once it is empty (quit_tick).  A socket from
 * systemd is left alone: systemd keeps it open, so what its backlog holds
 * waits for the next ioserve instead of being reset (and a filter would
 * stay on it for that next ioserve). */
static void quit_flush(struct master *m)
{
    m->quit_phase = QUIT_FLUSH;
    m->quit_phase_at_ms = m->quit_shrunk_at_ms = clock_now_ms();
    m->quit_queued = -1;
    const struct generation *g = gen_find(m, GEN_ACTIVE);
    if (!g || m->socket_activated) {
        quit_drain(m);
        return;
    }
    int rc = listener_refuse_handshakes(g->listen_fd);
    if (rc != 0) {
        log_warn(-rc, "SIGQUIT: cannot stop new handshakes on the listening socket: "
                 "connections in its backlog at exit will be reset");
        quit_drain(m);
        return;
    }
    log_info("SIGQUIT: no new handshakes; accepting what the backlog holds, then draining");
}

static void quit_begin(struct master *m)
{
    m->quitting = true;
    const struct generation *g = gen_find(m, GEN_ACTIVE);
    unsigned delay = g ? g->cfg->quit_delay_ms : 0;
    if (delay == 0) {
        quit_flush(m);
        return;
    }
    sd_notifyf(0, "STOPPING=1\nSTATUS=quitting: accepting for %u ms more (quit_delay)", delay);
    log_info("SIGQUIT: /readyz now answers 503; accepting for %u ms more (quit_delay) so that "
             "balancers take this instance out, then draining", delay);
    m->quit_phase = QUIT_DELAY;
    m->quit_phase_at_ms = clock_now_ms() + delay;
}

static void quit_tick(struct master *m, uint64_t now)
{
    if (m->terminating)
        return;
    if (m->quit_phase == QUIT_DELAY && now >= m->quit_phase_at_ms)
        quit_flush(m);
    if (m->quit_phase != QUIT_FLUSH)
        return;
    const struct generation *g = gen_find(m, GEN_ACTIVE);
    int queued = g ? listener_queued(g->listen_fd) : 0;
    uint64_t waited = now - m->quit_phase_at_ms;
    if (m->quit_queued < 0 || queued < m->quit_queued) {
        m->quit_queued = queued;
        m->quit_shrunk_at_ms = now;
    }
    bool stalled = now - m->quit_shrunk_at_ms >= QUIT_FLUSH_STALL_MS ||
                   (g && waited >= g->cfg->drain_timeout_ms);
    if (waited < QUIT_FLUSH_SETTLE_MS || (queued > 0 && !stalled))
        return;
    if (queued > 0)
        log_warn(0, "SIGQUIT: %d connection(s) still queued after %llu ms of not being "
                 "accepted: they will be reset", queued, (unsigned long long)waited);
    quit_drain(m);
}

/* When quit_tick has work next; 0 = none. */
static uint64_t quit_next_ms(const struct master *m)
{
    switch (m->quit_phase) {
    case QUIT_DELAY:
        return m->quit_phase_at_ms;
    case QUIT_FLUSH:
        return clock_now_ms() + 10; /* the backlog is watched, not waited on */
    default:
        return 0;
    }
}

static void on_signal(struct master *m, int sig)
{
    switch (sig) {
    case SIGCHLD:
        reap_children(m);
        break;
    case SIGHUP:
        if (!m->quitting && !m->terminating && !upgrade_refuses(m, "reload"))
            do_reload(m);
        break;
    case SIGUSR2:
        if (!m->quitting && !m->terminating)
            upgrade_begin(m);
        break;
    case SIGQUIT:
        if (m->terminating)
            break;
        upgrade_cancel(m, "this master was asked to quit");
        if (!m->quitting)
            quit_begin(m);
        else if (m->quit_phase == QUIT_DELAY) {
            log_info("SIGQUIT again: skipping the rest of quit_delay");
            quit_flush(m);
        }
        break;
    case SIGTERM:
    case SIGINT:
        if (m->terminating)
            break;
        log_info("SIG%s: stopping now", sigabbrev_np(sig));
        upgrade_cancel(m, "this master was asked to stop");
        sd_notify(0, "STOPPING=1\nSTATUS=stopping");
        m->terminating = true;
        break;
    }
}

static void check_timers(struct master *m)
{
    uint64_t now = clock_now_ms();
    for (unsigned i = 0; i < MAX_GENERATIONS; i++)
        if (m->gens[i])
            on_gen_change(m, gen_tick(m, m->gens[i], now));
    upgrade_tick(m, now);
    quit_tick(m, now);
}

static int next_timeout(const struct master *m)
{
    uint64_t now = clock_now_ms(), best = UINT64_MAX;
    for (unsigned i = 0; i < MAX_GENERATIONS; i++) {
        uint64_t at = m->gens[i] ? gen_next_deadline(m->gens[i]) : 0;
        if (at && at < best)
            best = at;
    }
    if (m->terminating && m->kill_at_ms && m->kill_at_ms < best)
        best = m->kill_at_ms;
    uint64_t up = upgrade_deadline(m);
    if (up && up < best)
        best = up;
    uint64_t quit_at = m->terminating ? 0 : quit_next_ms(m);
    if (quit_at && quit_at < best)
        best = quit_at;
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
        if (m->gens[i] && gen_live_workers(m->gens[i]))
            return true;
    return false;
}

/* ------------------------------------------------------ status pages */

static int metrics_page(void *ctx, struct ios_buf *out)
{
    metrics_render(ctx, out);
    return 200;
}

static const struct status_page status_pages[] = {
    {"/metrics", "text/plain; version=0.0.4; charset=utf-8", metrics_page},
    {"/healthz", "text/plain; charset=utf-8", health_live},
    {"/readyz", "text/plain; charset=utf-8", health_ready},
};

/* Fast stop: SIGTERM now, SIGKILL what is left after a grace period. */
static void terminate_step(struct master *m)
{
    uint64_t now = clock_now_ms();
    if (m->kill_at_ms == 0) {
        m->kill_at_ms = now + STOP_KILL_AFTER_MS;
        for (unsigned i = 0; i < MAX_GENERATIONS; i++)
            if (m->gens[i])
                gen_signal_workers(m->gens[i], SIGTERM);
    } else if (now >= m->kill_at_ms) {
        for (unsigned i = 0; i < MAX_GENERATIONS; i++)
            if (m->gens[i])
                gen_signal_workers(m->gens[i], SIGKILL);
        m->kill_at_ms = now + STOP_KILL_AFTER_MS;
    }
}

/* --------------------------------------------------------------- run */

static int setup_signals(struct master *m)
{
    sigset_t mask;
    sigemptyset(&mask);
    int sigs[] = {SIGCHLD, SIGHUP, SIGQUIT, SIGTERM, SIGINT, SIGUSR2};
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

/* Each worker: its report pipe and its control socket; the upgrade socket. */
#define MAX_POLL (1 + MAX_GENERATIONS * CFG_MAX_WORKERS * 2 + 1 + STATUS_MAX_CONNS + 1)

static void run_loop(struct master *m)
{
    while (any_generation(m) || upgrade_holds_on(m) || (m->terminating && any_worker(m))) {
        if (m->terminating) {
            if (!any_worker(m))
                break;
            terminate_step(m);
        }
        if (m->reload_pending && !gen_find(m, GEN_STARTING) && !m->quitting &&
            !m->terminating)
            do_reload(m);

        gen_place_in_transit(m);

        struct pollfd pfds[MAX_POLL];
        struct generation *owner_gen[MAX_POLL];
        unsigned owner_slot[MAX_POLL];
        nfds_t n = 0;
        pfds[n++] = (struct pollfd){.fd = m->sigfd, .events = POLLIN};
        /* Control sockets first: their events never free a generation. */
        for (unsigned i = 0; i < MAX_GENERATIONS; i++) {
            struct generation *g = m->gens[i];
            for (unsigned j = 0; g && j < g->nslots; j++) {
                short events = gen_control_events(m, g, j);
                if (!events)
                    continue;
                owner_gen[n] = g;
                owner_slot[n] = j;
                pfds[n++] = (struct pollfd){.fd = g->slots[j].ctl.fd, .events = events};
            }
        }
        m->relay.released = false; /* throttled ends were given their chance */
        nfds_t reports_at = n;
        for (unsigned i = 0; i < MAX_GENERATIONS; i++) {
            struct generation *g = m->gens[i];
            for (unsigned j = 0; g && j < g->nslots; j++) {
                if (g->slots[j].report_fd < 0)
                    continue;
                owner_gen[n] = g;
                owner_slot[n] = j;
                pfds[n++] = (struct pollfd){.fd = g->slots[j].report_fd, .events = POLLIN};
            }
        }
        nfds_t status_at = n;
        if (!upgrade_joining(m)) /* the old master answers until it lets this one */
            n += status_pollfds(&m->status, pfds + n, MAX_POLL - n);
        nfds_t upgrade_at = n;
        if (upgrade_events(m))
            pfds[n++] = (struct pollfd){.fd = upgrade_fd(m), .events = upgrade_events(m)};

        int timeout = next_timeout(m);
        int st = status_timeout_ms(&m->status);
        if (st >= 0 && (timeout < 0 || st < timeout))
            timeout = st;
        int rc = poll(pfds, n, timeout);
        if (rc < 0 && errno != EINTR) {
            log_error(errno, "poll");
            break;
        }
        /* A change may free generations the rest of pfds points into:
         * the others wait for the next round (poll is level-triggered). */
        for (nfds_t i = 1; rc > 0 && i < reports_at; i++)
            if (pfds[i].revents)
                gen_control_event(m, owner_gen[i], owner_slot[i], pfds[i].revents);
        for (nfds_t i = reports_at; rc > 0 && i < status_at; i++) {
            if (!pfds[i].revents)
                continue;
            enum gen_change change = gen_report_arrived(m, owner_gen[i], owner_slot[i]);
            on_gen_change(m, change);
            if (change != GEN_UNCHANGED)
                break;
        }
        status_handle(&m->status, pfds + status_at, upgrade_at - status_at);
        if (rc > 0 && upgrade_at < n && pfds[upgrade_at].revents)
            upgrade_event(m, pfds[upgrade_at].revents);
        if (rc > 0 && (pfds[0].revents & POLLIN)) {
            struct signalfd_siginfo si;
            while (read(m->sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si))
                on_signal(m, (int)si.ssi_signo);
        }
        check_timers(m);
        if (upgrade_successor_lost(m))
            do_reload(m); /* serve again */
    }
}

/* In a hand-over the master holds up to two descriptors per connection
 * in transit: as many as the hard limit allows (its workers keep the
 * limit it was started with). */
static void raise_nofile(struct master *m)
{
    struct rlimit r;
    if (getrlimit(RLIMIT_NOFILE, &r) != 0)
        return;
    m->worker_nofile = r.rlim_cur;
    if (r.rlim_cur < r.rlim_max) {
        r.rlim_cur = r.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &r) != 0)
            log_warn(errno, "setrlimit RLIMIT_NOFILE");
    }
}

/* A new master's sockets, from the old one: its listening socket while
 * `listen` is what it was bound for (or systemd's), else one bound anew;
 * its status socket likewise (status_configure binds a changed one).  The
 * listening socket, or a negative errno with err set. */
static int inherit_sockets(struct master *m, const struct upgrade_inherited *in,
                           const struct ios_config *cfg, char *err, size_t errlen)
{
    if (in->status_fd >= 0) {
        if (cfg->status_listen && strcmp(cfg->status_listen, in->status_listen) == 0) {
            if (status_adopt(&m->status, in->status_fd, in->status_listen, err, errlen) != 0)
                return -ENOMEM;
        } else {
            close(in->status_fd);
        }
    }
    m->socket_activated = in->socket_activated;
    if (strcmp(cfg->listen, in->listen) == 0 || in->socket_activated) {
        if (strcmp(cfg->listen, in->listen) != 0)
            log_warn(0, "upgrade: 'listen' changed, but the socket comes from systemd: kept");
        fcntl(in->listen_fd, F_SETFL, fcntl(in->listen_fd, F_GETFL) | O_NONBLOCK);
        return in->listen_fd;
    }
    log_info("upgrade: 'listen' changed from %s to %s: binding it", in->listen, cfg->listen);
    close(in->listen_fd);
    return listener_bind(cfg, err, errlen);
}

int master_run(const struct master_opts *opts, struct ios_config *cfg)
{
    struct master m = {.opts = opts, .sigfd = -1, .up = {.peer = {.fd = -1}, .exec_err_fd = -1, .kept_listen_fd = -1, .kept_status_fd = -1}};
    char err[1024];
    int fd = -1;
    status_init(&m.status, status_pages, sizeof(status_pages) / sizeof(status_pages[0]), &m);
    ho_relay_init(&m.relay);
    raise_nofile(&m);

    const struct upgrade_inherited *in = opts->inherited;
    if (in)
        upgrade_join(&m, in, cfg->handler);
    if ((fd = in ? inherit_sockets(&m, in, cfg, err, sizeof(err))
                 : listener_open(cfg, &m.socket_activated, err, sizeof(err))) < 0 ||
        status_configure(&m.status, cfg, err, sizeof(err)) != 0) {
        log_error(0, "%s", err);
        goto fail;
    }
    if (setup_signals(&m) != 0)
        goto fail;
    if (cfg->pid_file) {
        m.pid_file = strdup(cfg->pid_file);
        /* A new master takes the pid file over once the old one lets it. */
        if (!m.pid_file || (!in && pidfile_write(m.pid_file, 0, err, sizeof(err)) != 0)) {
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
    m.user = cfg->user ? strdup(cfg->user) : NULL;
    m.group = cfg->group ? strdup(cfg->group) : NULL;
    if ((cfg->user && !m.user) || (cfg->group && !m.group)) {
        log_error(ENOMEM, "master");
        goto fail;
    }

    struct generation *first = gen_start(&m, cfg, fd); /* takes cfg and fd */
    cfg = NULL;
    fd = -1;
    if (!first)
        m.exit_code = 1;
    run_loop(&m);
    if (upgrade_handed_over(&m))
        log_info("handed over to the new master pid %d", (int)m.up.new_pid);
    else
        sd_notify(0, "STOPPING=1");

    for (unsigned i = 0; i < MAX_GENERATIONS; i++)
        if (m.gens[i])
            gen_free(&m, m.gens[i]);
    ho_relay_fini(&m.relay);
    log_info("exiting");
fail:
    upgrade_fini(&m);
    if (m.pid_file) {
        pidfile_remove(m.pid_file);
        free(m.pid_file);
    }
    free(m.user);
    free(m.group);
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
