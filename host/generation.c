/* Generations of workers: start one, activate it once every worker is
 * ready, drain it, fail it, free it. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "addr.h"
#include "log.h"
#include "master_state.h"
#include "status.h"
#include "worker.h"

/* ---------------------------------------------------------- workers */

void describe_status(int status, char *out, size_t outlen)
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

int spawn_worker(struct master *m, struct generation *g, unsigned idx)
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
    w->started_ms = clock_now_ms();
    w->respawn_at_ms = 0;
    log_debug("generation %u: worker %u started, pid %d", g->id, idx, (int)pid);
    return 0;
}

unsigned live_workers(const struct generation *g)
{
    unsigned n = 0;
    for (unsigned i = 0; i < g->nslots; i++)
        n += g->slots[i].pid != 0;
    return n;
}

void signal_workers(struct generation *g, int sig)
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
    if (g->counters)
        munmap(g->counters, sizeof(*g->counters) * g->nslots);
    free(g->slots);
    cfg_free(g->cfg);
    free(g->cfg);
    free(g);
}

struct generation *gen_find(struct master *m, enum gen_state state)
{
    for (unsigned i = 0; i < MAX_GENERATIONS; i++)
        if (m->gens[i] && m->gens[i]->state == state)
            return m->gens[i];
    return NULL;
}

/* Starts a generation on cfg (taken over) and listen_fd (taken over): it
 * returns the generation with every worker forked, or NULL (logged) with
 * nothing left behind. */
struct generation *gen_start(struct master *m, struct ios_config *cfg,
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
    for (unsigned i = 0; g->slots && i < g->nslots; i++)
        g->slots[i].report_fd = -1; /* what gen_free closes, if this fails */
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
    g->deadline_ms = clock_now_ms() + START_TIMEOUT_MS;
    for (unsigned i = 0; i < g->nslots; i++) {
        if (spawn_worker(m, g, i) != 0) {
            /* Nothing is left behind: the workers already started are
             * killed (and reaped as strangers), the caller is told. */
            log_error(0, "generation %u: could not start worker %u of %u", g->id, i,
                      g->nslots);
            signal_workers(g, SIGKILL);
            gen_free(m, g);
            return NULL;
        }
    }
    return g;
}

void gen_drain(struct generation *g)
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
    g->deadline_ms = clock_now_ms() + g->cfg->drain_timeout_ms;
    log_info("generation %u: draining %u worker(s) (drain_timeout %u ms)", g->id,
             live_workers(g), g->cfg->drain_timeout_ms);
}

/* systemd (Type=notify): READY=1 again after every reload, failed or not,
 * with a STATUS= line a person can read in `systemctl status`. */
void notify_serving(const struct master *m, const char *note)
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

void reload_failed(struct master *m)
{
    m->stats.reloads_failed++;
    notify_serving(m, "last reload failed");
}

void gen_fail(struct master *m, struct generation *g, const char *why)
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

void gen_activate(struct master *m, struct generation *g)
{
    struct generation *old = gen_find(m, GEN_ACTIVE);
    g->state = GEN_ACTIVE;
    g->deadline_ms = 0;
    /* A configuration takes effect here, once its generation serves: a
     * reload that fails leaves the log level and the status endpoint be. */
    log_set_level(g->cfg->log_level);
    char err[256];
    if (status_configure(&m->status, g->cfg, err, sizeof(err)) != 0)
        log_error(0, "reload: %s; keeping the previous status endpoint", err);

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
