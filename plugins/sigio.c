/*
 * sigio — signal-driven I/O: the kernel tells us which socket is ready.
 *
 * Shows: with O_ASYNC, F_SETOWN and F_SETSIG, every state change of a
 * connection (bytes arrived, room to send again, FIN, RST) queues a
 * real-time signal whose siginfo carries the descriptor (si_fd) and how it
 * is ready (si_band, POLLIN/POLLOUT/POLLHUP/POLLERR).  Nothing is scanned:
 * the signal queue is the ready list.  The signals stay blocked and are
 * taken synchronously through a signalfd, so no handler runs (a plugin may
 * not install one) and a read returns a batch of them.
 *
 * Signals are edges: one per change, none while a socket merely stays
 * ready.  The shared pump reads until EAGAIN and sends until EAGAIN, which
 * is what re-arms the next edge (POLLOUT only comes after a send that hit a
 * full buffer).  A connection gets O_ASYNC only after accept, so bytes that
 * arrived before are read at once.
 *
 * Limit: the queue of real-time signals is bounded (RLIMIT_SIGPENDING,
 * counted per user).  When a signal cannot be queued the kernel raises
 * plain SIGIO instead, which carries no descriptor: every connection is then
 * serviced in one scan, so no readiness is lost, only the O(ready)
 * property for that pass.  models.sigio.rlimit_sigpending lowers the limit
 * to make that path easy to see (tests/unit/test_sigio.c).
 *
 * The listening socket and stop_fd are shared with other workers and with
 * the next generation: O_ASYNC and the owner live on that shared open file
 * description, so setting them would steal the other processes'
 * notifications.  Those two are watched with poll(2) next to the signalfd,
 * and so is the host's adopt_fd.  A connection handed over from another
 * process is routed here like an accepted one (F_SETOWN to us: the owner
 * follows the last F_SETOWN, so the giver's lingers nowhere), and one we
 * give loses O_ASYNC in its adopter (plugins/common).
 *
 * Kernel: any Linux (F_SETSIG is Linux-specific; signalfd 2.6.22).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "ioc.h"

static const struct ios_knob sigio_knobs[] = {
    {"rlimit_sigpending", IOS_KNOB_INT, 0, NULL, 0, 1000000,
     "lower RLIMIT_SIGPENDING to this (0 = leave it): forces queue overflows"},
    IOS_KNOB_END,
};

IOS_MODEL("sigio", "signal-driven readiness: O_ASYNC + F_SETSIG, taken by signalfd",
          sigio_knobs);

#define SIGNALS_PER_READ 64
#define RESCAN_LOG_INTERVAL_MS 1000
/* Servicing a connection without a signal to go by (just accepted, or after
 * an overflow): IOC_HANGUP makes the pump read on to EAGAIN or EOF rather
 * than stop at a short read, since no signal will announce what is already
 * there (a FIN behind the bytes, say). */
#define SIGIO_CATCH_UP (IOC_READABLE | IOC_WRITABLE | IOC_HANGUP)

struct sigio_model {
    const struct ios_handler *h;
    struct ioc_loop loop;
    int listen_fd;
    int signo;        /* the real-time signal the connections raise */
    int sigfd;
    pid_t pid;
    sigset_t old_mask;
    struct rlimit old_rlimit;
    bool mask_set, rlimit_set;
    uint64_t rescans, last_log_ms; /* overflow recoveries, and their log */
};

/* Routes a new connection's state changes to our signal, then catches up
 * with what happened before it was routed. */
static void sigio_watch(struct ioc_loop *loop, struct ioc_conn *c)
{
    struct sigio_model *m = loop->model;
    if (fcntl(c->fd, F_SETSIG, m->signo) != 0 ||
        fcntl(c->fd, F_SETOWN, m->pid) != 0 ||
        fcntl(c->fd, F_SETFL, O_NONBLOCK | O_ASYNC) != 0) {
        m->h->log(m->h, IOS_LOG_WARN, errno, "fcntl(O_ASYNC)");
        ioc_close(loop, c);
        return;
    }
    ioc_service(loop, c, SIGIO_CATCH_UP);
}

/* The queue overflowed and some events are lost: ask every connection. */
static void sigio_rescan(struct sigio_model *m)
{
    struct ioc_loop *loop = &m->loop;
    uint64_t now = ioc_now_ms();
    /* Once at info level; then a count at debug level, once a second. */
    m->rescans++;
    if (m->rescans == 1 || now - m->last_log_ms >= RESCAN_LOG_INTERVAL_MS) {
        m->h->log(m->h, m->rescans == 1 ? IOS_LOG_INFO : IOS_LOG_DEBUG, 0,
                  "real-time signal queue overflowed (SIGIO): rescanned %u "
                  "connection(s)%s; %llu rescan(s) so far", loop->nconns,
                  m->rescans == 1 ? " (later ones are logged at debug level)" : "",
                  (unsigned long long)m->rescans);
        m->last_log_ms = now;
    }
    ioc_service_all(loop, SIGIO_CATCH_UP);
}

/* Takes every queued signal.  0, or -errno if the signalfd failed. */
static int sigio_signals(struct sigio_model *m)
{
    struct signalfd_siginfo si[SIGNALS_PER_READ];
    bool overflow = false;
    for (;;) {
        ssize_t n = read(m->sigfd, si, sizeof(si));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            break;
        if (n <= 0) {
            int err = n < 0 ? errno : EIO;
            m->h->log(m->h, IOS_LOG_ERROR, err, "read(signalfd)");
            return -err;
        }
        for (size_t i = 0; i < (size_t)n / sizeof(si[0]); i++) {
            if ((int)si[i].ssi_signo == SIGIO) {
                overflow = true; /* dequeued first: lowest number */
                continue;
            }
            /* A stale signal for a descriptor closed (and maybe reused)
             * since is harmless: the pump just meets EAGAIN. */
            struct ioc_conn *c = ioc_conn_of(&m->loop, si[i].ssi_fd);
            if (c && !overflow)
                ioc_service(&m->loop, c, ioc_ready_of(si[i].ssi_band));
        }
    }
    if (overflow)
        sigio_rescan(m);
    return 0;
}

/* The readiness loop, in the order all five readiness models share (see
 * docs/models.md): watch, wait, serve the connections, then stop or
 * accept, then timers. */
static int sigio_loop(struct sigio_model *m)
{
    const struct ios_handler *h = m->h;
    while (!ioc_drained(&m->loop)) {
        /* adopt_fd -1 (none): poll skips it. */
        struct pollfd p[4] = {{.fd = m->sigfd, .events = POLLIN},
                              {.fd = m->loop.adopt_fd, .events = POLLIN},
                              {.fd = h->stop_fd, .events = POLLIN},
                              {.fd = m->listen_fd, .events = POLLIN}};
        /* Draining: signals and adoptions only.  Out of descriptors: not
         * the listener. */
        nfds_t nfds = m->loop.draining ? 2 : ioc_accepting(&m->loop) ? 4 : 3;
        int n = poll(p, nfds, ioc_timeout_ms(&m->loop));
        if (n < 0) {
            if (errno == EINTR)
                continue;
            int err = errno;
            h->log(h, IOS_LOG_ERROR, err, "poll");
            return -err;
        }
        int rc = p[0].revents ? sigio_signals(m) : 0;
        if (rc != 0)
            return rc;
        if (nfds > 2 && p[2].revents)
            ioc_drain_begin(&m->loop);
        else if (nfds > 3 && p[3].revents)
            ioc_accept_next(&m->loop, m->listen_fd, sigio_watch);
        if (p[1].revents)
            ioc_adopt_pending(&m->loop, sigio_watch);
        ioc_tick(&m->loop);
    }
    return 0;
}

static int sigio_setup(struct sigio_model *m, long long sigpending)
{
    const struct ios_handler *h = m->h;
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, m->signo);
    sigaddset(&mask, SIGIO);
    /* Blocked, so they stay queued for the signalfd instead of killing
     * the process (the default action of both). */
    if (sigprocmask(SIG_BLOCK, &mask, &m->old_mask) != 0) {
        int err = errno;
        h->log(h, IOS_LOG_ERROR, err, "sigprocmask");
        return -err;
    }
    m->mask_set = true;
    m->sigfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
    if (m->sigfd < 0) {
        int err = errno;
        h->log(h, IOS_LOG_ERROR, err, "signalfd");
        return -err;
    }
    if (sigpending > 0) {
        if (getrlimit(RLIMIT_SIGPENDING, &m->old_rlimit) != 0) {
            int err = errno;
            h->log(h, IOS_LOG_ERROR, err, "getrlimit(RLIMIT_SIGPENDING)");
            return -err;
        }
        struct rlimit rl = m->old_rlimit;
        if (rl.rlim_max == RLIM_INFINITY || (rlim_t)sigpending < rl.rlim_max)
            rl.rlim_cur = (rlim_t)sigpending;
        if (setrlimit(RLIMIT_SIGPENDING, &rl) != 0) {
            int err = errno;
            h->log(h, IOS_LOG_ERROR, err, "setrlimit(RLIMIT_SIGPENDING)");
            return -err;
        }
        m->rlimit_set = true;
        h->log(h, IOS_LOG_INFO, 0, "RLIMIT_SIGPENDING lowered to %llu",
               (unsigned long long)rl.rlim_cur);
    }
    return 0;
}

/* Our own connections are closed by now, but one we gave away stays
 * routed to us (F_SETOWN lives on the shared open file) until its adopter
 * routes it to itself, and may still raise the signals: ignore them before
 * unblocking, or a late one would kill this process (their default action). */
static void sigio_teardown(struct sigio_model *m)
{
    if (m->sigfd >= 0) {
        struct signalfd_siginfo si[SIGNALS_PER_READ];
        while (read(m->sigfd, si, sizeof(si)) > 0 || errno == EINTR)
            ;
        close(m->sigfd);
    }
    if (m->mask_set) {
        signal(m->signo, SIG_IGN);
        signal(SIGIO, SIG_IGN);
    }
    if (m->rlimit_set)
        setrlimit(RLIMIT_SIGPENDING, &m->old_rlimit);
    if (m->mask_set)
        sigprocmask(SIG_SETMASK, &m->old_mask, NULL);
}

int model_run(int listen_fd, const struct ios_handler *h)
{
    struct sigio_model m = {.h = h, .listen_fd = listen_fd, .sigfd = -1,
                            .signo = SIGRTMIN + 1, .pid = getpid()};
    long long sigpending; /* knob: the host fills in the default */
    h->knob_int(h, "rlimit_sigpending", &sigpending);

    int rc = ioc_loop_init(&m.loop, h);
    if (rc != 0)
        return rc;
    m.loop.model = &m;
    rc = sigio_setup(&m, sigpending);
    if (rc == 0) {
        h->ready(h);
        rc = sigio_loop(&m);
    }
    ioc_loop_fini(&m.loop);
    sigio_teardown(&m);
    return rc;
}
