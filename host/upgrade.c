/* Binary upgrade: both masters' side of it (upgrade.h). */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "log.h"
#include "master_state.h"
#include "pidfile.h"

/* The handshake, before any connection moves.  Its size differs from a
 * struct ho_msg's, so neither is taken for the other. */
enum { UP_READY = 0x55500001, UP_GO = 0x55500002 };
struct up_hello {
    uint32_t type;
    uint32_t protocol;  /* UPGRADE_PROTOCOL */
    uint32_t handover;  /* READY: 1 when the new master takes connections over (its
                         * `handover`, and models that adopt) */
    uint32_t pid;       /* the sender's */
    char handler[32];   /* READY: the new master's handler */
    char model[64];     /* the sender's model: what the counts name */
};

/* Descriptor numbers in the new master, as in IOSERVE_UPGRADE; and, in
 * the child until exec, where a failed exec writes its errno (it is
 * close-on-exec: a good exec closes it unwritten). */
enum { UP_LISTEN_FD = 3, UP_STATUS_FD = 4, UP_PEER_FD = 5, UP_EXEC_ERR_FD = 6 };

/* ----------------------------------------------------- the new master */

static int inherited_fd(int fd, int type_listening, char *err, size_t errlen)
{
    if (fd < 0)
        return 0;
    int type = 0, acc = 0;
    socklen_t len = sizeof(type);
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) != 0) {
        snprintf(err, errlen, "%s: descriptor %d: %s", UPGRADE_ENV, fd, strerror(errno));
        return -1;
    }
    len = sizeof(acc);
    if (type_listening && (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &acc, &len) != 0 ||
                           type != SOCK_STREAM || !acc)) {
        snprintf(err, errlen, "%s: descriptor %d is not a listening stream socket",
                 UPGRADE_ENV, fd);
        return -1;
    }
    fcntl(fd, F_SETFD, FD_CLOEXEC);
    return 0;
}

int upgrade_inherited_from_env(struct upgrade_inherited *in, char *err, size_t errlen)
{
    *in = (struct upgrade_inherited){.listen_fd = -1, .status_fd = -1, .peer_fd = -1};
    const char *v = getenv(UPGRADE_ENV);
    if (!v)
        return 0;
    int activated = 0;
    int ok = sscanf(v, "%d %d %d %d", &in->listen_fd, &in->status_fd, &in->peer_fd,
                    &activated) == 4;
    const char *l = getenv(UPGRADE_ENV_LISTEN), *s = getenv(UPGRADE_ENV_STATUS);
    snprintf(in->listen, sizeof(in->listen), "%s", l ? l : "");
    snprintf(in->status_listen, sizeof(in->status_listen), "%s", s ? s : "");
    unsetenv(UPGRADE_ENV);
    unsetenv(UPGRADE_ENV_LISTEN);
    unsetenv(UPGRADE_ENV_STATUS);
    if (!ok || in->listen_fd < 3 || in->peer_fd < 3) {
        snprintf(err, errlen, "%s=\"%s\": expected \"LISTEN STATUS PEER ACTIVATED\"",
                 UPGRADE_ENV, v);
        return -1;
    }
    in->socket_activated = activated != 0;
    if (inherited_fd(in->listen_fd, 1, err, errlen) != 0 ||
        inherited_fd(in->status_fd, 1, err, errlen) != 0 ||
        inherited_fd(in->peer_fd, 0, err, errlen) != 0)
        return -1;
    return 1;
}

void upgrade_join(struct master *m, const struct upgrade_inherited *in, const char *handler)
{
    struct upgrade *u = &m->up;
    u->role = UP_NEW_JOINING;
    u->old_pid = getppid();
    snprintf(u->own_handler, sizeof(u->own_handler), "%s", handler);
    snprintf(u->peer_model, sizeof(u->peer_model), "old master");
    /* Blocking: its acknowledgements wait for room (the old master never
     * blocks on its end, so there is room soon). */
    fcntl(in->peer_fd, F_SETFL, fcntl(in->peer_fd, F_GETFL) & ~O_NONBLOCK);
    u->peer = (struct ho_end){.fd = in->peer_fd, .model = u->peer_model,
                              .protocol = u->own_handler, .upstream = true};
    log_info("upgrade: started by master pid %d; inherited the listening socket%s",
             (int)u->old_pid, in->status_fd >= 0 ? " and the status socket" : "");
}

static int send_hello(int fd, uint32_t type, const struct generation *g, int handover)
{
    struct up_hello h = {.type = type, .protocol = UPGRADE_PROTOCOL,
                         .handover = (uint32_t)handover, .pid = (uint32_t)getpid()};
    if (g) {
        snprintf(h.handler, sizeof(h.handler), "%s", g->cfg->handler);
        snprintf(h.model, sizeof(h.model), "%s", slot_model(g, 0));
    }
    ssize_t n;
    while ((n = send(fd, &h, sizeof(h), MSG_NOSIGNAL)) < 0 && errno == EINTR)
        ;
    return n == (ssize_t)sizeof(h) ? 0 : -(n < 0 ? errno : EPROTO);
}

/* Reads one handshake message: 0, -EAGAIN, -EPIPE (end of file), or
 * -EPROTO with `why` saying what arrived instead. */
static int recv_hello(int fd, struct up_hello *h, char *why, size_t whylen)
{
    char buf[sizeof(*h) + 64];
    ssize_t n;
    while ((n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT)) < 0 && errno == EINTR)
        ;
    if (n < 0)
        return errno == EWOULDBLOCK ? -EAGAIN : -errno;
    if (n == 0)
        return -EPIPE;
    memcpy(h, buf, (size_t)n < sizeof(*h) ? (size_t)n : sizeof(*h));
    if (n != (ssize_t)sizeof(*h) || (h->type != UP_READY && h->type != UP_GO)) {
        snprintf(why, whylen, "a %zd-byte message that is no upgrade handshake", n);
        return -EPROTO;
    }
    if (h->protocol != UPGRADE_PROTOCOL) {
        snprintf(why, whylen, "upgrade protocol %u, this master speaks %u", h->protocol,
                 UPGRADE_PROTOCOL);
        return -EPROTO;
    }
    h->handler[sizeof(h->handler) - 1] = '\0';
    h->model[sizeof(h->model) - 1] = '\0';
    return 0;
}

bool upgrade_serving(struct master *m, const struct generation *g)
{
    struct upgrade *u = &m->up;
    if (u->role != UP_NEW_JOINING)
        return u->role == UP_NEW_READY;
    /* Connections come only if every worker here adopts (ABI 1.2): one
     * that does not would leave them waiting, and the old master with them. */
    int adopts = g->cfg->handover;
    for (unsigned j = 0; j < g->nslots; j++)
        if (g->slots[j].ctl.abi_minor < 2)
            adopts = 0;
    int rc = send_hello(u->peer.fd, UP_READY, g, adopts);
    if (rc != 0) {
        log_warn(-rc, "upgrade: telling the old master pid %d we are ready; serving alone",
                 (int)u->old_pid);
        return false;
    }
    u->role = UP_NEW_READY;
    log_info("upgrade: ready; waiting for the old master pid %d to hand over",
             (int)u->old_pid);
    return true;
}

/* The upgrade is over for this master: the socket to the other closes. */
static void peer_close(struct upgrade *u)
{
    close(u->peer.fd);
    u->peer.fd = -1;
    u->peer.eof = true;
    u->role = UP_IDLE;
}

/* New master: the pid file names it from now on. */
static void take_pid_file(struct master *m)
{
    char err[1024];
    if (m->pid_file && pidfile_write(m->pid_file, m->up.old_pid, err, sizeof(err)) != 0)
        log_error(0, "upgrade: %s", err);
}

/* Pid file and systemd: the new master is the server now. */
static void new_takes_over(struct master *m, const struct up_hello *go)
{
    struct upgrade *u = &m->up;
    snprintf(u->peer_model, sizeof(u->peer_model), "%s", go->model);
    u->role = UP_NEW_ADOPTING;
    u->succeeded++;
    take_pid_file(m);
    const struct generation *g = gen_find(m, GEN_ACTIVE);
    sd_notifyf(0, "MAINPID=%d\nREADY=1\nSTATUS=serving with model %s, handler %s; upgraded "
               "from master pid %d", (int)getpid(), g ? slot_model(g, 0) : "?",
               u->own_handler, (int)u->old_pid);
    log_info("upgrade: the old master pid %d hands its connections over", (int)u->old_pid);
}

/* New master: what the old one said (recv_hello's rc), before GO. */
static void new_heard(struct master *m, int rc, const struct up_hello *h, const char *why)
{
    struct upgrade *u = &m->up;
    if (rc == -EPIPE || rc == -ECONNRESET) {
        log_warn(0, "upgrade: the old master pid %d went away before the hand-over; serving "
                 "alone", (int)u->old_pid);
        peer_close(u);
        take_pid_file(m);
        return;
    }
    if (rc != 0 || u->role != UP_NEW_READY || h->type != UP_GO) {
        log_warn(0, "upgrade: the old master pid %d sent %s; serving alone", (int)u->old_pid,
                 rc == -EPROTO ? why : "an unexpected message");
        peer_close(u);
        return;
    }
    new_takes_over(m, h);
}

/* ----------------------------------------------------- the old master */

/* The child, between fork and exec: the three sockets at 3, 4 and 5, the
 * signals as a fresh process has them, and the binary run. */
static void child_exec(const struct master *m, int listen_fd, int status_fd, int peer_fd,
                       int exec_err, const char *listen, const char *status_listen)
{
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    /* As a process started afresh has them: an ignored SIGQUIT (a shell's
     * background job) would never reach the new master's signalfd. */
    const int sigs[] = {SIGPIPE, SIGHUP, SIGQUIT, SIGTERM, SIGINT, SIGUSR2, SIGCHLD};
    for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
        signal(sigs[i], SIG_DFL);
    int lfd = fcntl(listen_fd, F_DUPFD, 6);
    int sfd = status_fd >= 0 ? fcntl(status_fd, F_DUPFD, 6) : -1;
    int pfd = fcntl(peer_fd, F_DUPFD, 6);
    int efd = fcntl(exec_err, F_DUPFD, 6);
    if (lfd < 0 || pfd < 0 || efd < 0 || (status_fd >= 0 && sfd < 0) ||
        dup2(lfd, UP_LISTEN_FD) < 0 || dup2(pfd, UP_PEER_FD) < 0 ||
        dup3(efd, UP_EXEC_ERR_FD, O_CLOEXEC) < 0 ||
        (sfd >= 0 ? dup2(sfd, UP_STATUS_FD) : 0) < 0) {
        log_error(errno, "upgrade: setting up the new master's descriptors");
        _exit(127);
    }
    if (sfd < 0)
        close(UP_STATUS_FD);
    close_range(UP_EXEC_ERR_FD + 1, ~0u, 0);
    char env[64];
    snprintf(env, sizeof(env), "%d %d %d %d", UP_LISTEN_FD, sfd >= 0 ? UP_STATUS_FD : -1,
             UP_PEER_FD, m->socket_activated ? 1 : 0);
    setenv(UPGRADE_ENV, env, 1);
    setenv(UPGRADE_ENV_LISTEN, listen, 1);
    setenv(UPGRADE_ENV_STATUS, status_listen ? status_listen : "", 1);
    execv(m->opts->exe_path, m->opts->argv);
    int err = errno;
    ssize_t w = write(UP_EXEC_ERR_FD, &err, sizeof(err));
    (void)w;
    _exit(127);
}

static void fail_upgrade(struct master *m, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void fail_upgrade(struct master *m, const char *fmt, ...)
{
    struct upgrade *u = &m->up;
    char why[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    log_error(0, "upgrade failed: %s; this master (pid %d) keeps serving", why, (int)getpid());
    u->failed++;
    if (u->peer.fd >= 0)
        close(u->peer.fd);
    u->peer.fd = -1;
    u->peer.eof = true;
    if (u->child > 0) {
        /* Whatever its workers accepted meanwhile drains (SIGQUIT); what
         * does not stop in time is killed. */
        kill(u->child, SIGQUIT);
        u->role = UP_OLD_STOPPING;
        u->deadline_ms = clock_now_ms() + u->drain_ms;
    } else {
        u->role = UP_IDLE;
    }
}

void upgrade_cancel(struct master *m, const char *why)
{
    if (m->up.role == UP_OLD_WAITING)
        fail_upgrade(m, "%s", why);
}

void upgrade_begin(struct master *m)
{
    struct upgrade *u = &m->up;
    if (upgrade_refuses(m, "upgrade"))
        return;
    const struct generation *g = gen_find(m, GEN_ACTIVE);
    if (!g) {
        log_error(0, "upgrade refused: no generation is serving");
        return;
    }
    const char *exe = m->opts->exe_path;
    log_info("upgrade: starting %s", exe ? exe : "(unknown path)");
    struct stat st;
    const char *why = !exe                     ? "its path is unknown"
                      : stat(exe, &st) != 0    ? strerror(errno)
                      : !S_ISREG(st.st_mode)   ? "not a regular file"
                      : access(exe, X_OK) != 0 ? strerror(errno)
                                               : NULL;
    if (why) {
        u->failed++;
        log_error(0, "upgrade failed: %s is not an executable file (%s); this master "
                  "(pid %d) keeps serving", exe ? exe : "the binary", why, (int)getpid());
        return;
    }
    int sp[2], ep[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) != 0) {
        u->failed++;
        log_error(errno, "upgrade failed: socketpair");
        return;
    }
    if (pipe2(ep, O_CLOEXEC) != 0) {
        u->failed++;
        log_error(errno, "upgrade failed: pipe2");
        close(sp[0]);
        close(sp[1]);
        return;
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        u->failed++;
        log_error(errno, "upgrade failed: fork");
        close(sp[0]);
        close(sp[1]);
        close(ep[0]);
        close(ep[1]);
        return;
    }
    if (pid == 0)
        child_exec(m, g->listen_fd, m->status.listen_fd, sp[1], ep[1], g->cfg->listen,
                   m->status.listen);
    close(sp[1]);
    close(ep[1]);
    u->exec_err_fd = ep[0];
    fcntl(sp[0], F_SETFL, O_NONBLOCK); /* the old master never waits on the new one */
    u->child = u->new_pid = pid;
    u->peer = (struct ho_end){.fd = sp[0], .model = u->peer_model, .protocol = u->peer_handler};
    u->role = UP_OLD_WAITING;
    u->drain_ms = g->cfg->drain_timeout_ms;
    u->deadline_ms = clock_now_ms() + g->cfg->upgrade_timeout_ms;
    u->timeout_ms = g->cfg->upgrade_timeout_ms;
    log_info("upgrade: new master pid %d started; waiting up to %u ms for it to be ready",
             (int)pid, g->cfg->upgrade_timeout_ms);
}

/* READY arrived: nothing can fail it now.  systemd and the new master
 * hear GO, then every generation here drains into the new one. */
static void commit(struct master *m, const struct up_hello *ready)
{
    struct upgrade *u = &m->up;
    snprintf(u->peer_model, sizeof(u->peer_model), "%s", ready->model);
    snprintf(u->peer_handler, sizeof(u->peer_handler), "%s", ready->handler);
    u->peer.abi_minor = 2; /* the new master adopts whatever its workers do */
    const struct generation *g = gen_find(m, GEN_ACTIVE);
    sd_notifyf(0, "MAINPID=%d\nSTATUS=upgraded: new master pid %d", (int)u->child,
               (int)u->child);
    int rc = send_hello(u->peer.fd, UP_GO, g, 0);
    if (rc != 0) {
        /* It can only have died: its exit is reaped as a failure. */
        log_warn(-rc, "upgrade: answering the new master");
    }
    u->role = UP_OLD_HANDING;
    u->succeeded++;
    if (u->kept_listen_fd >= 0)
        close(u->kept_listen_fd);
    u->kept_listen_fd = g ? fcntl(g->listen_fd, F_DUPFD_CLOEXEC, 3) : -1;
    snprintf(u->kept_listen, sizeof(u->kept_listen), "%s", g ? g->cfg->listen : "");
    /* The generations here end within drain_timeout; what the new master
     * has not acknowledged upgrade_timeout after that, it never will. */
    u->deadline_ms = clock_now_ms() + u->drain_ms + u->timeout_ms;
    log_info("upgrade: new master pid %d serves (model %s, handler %s); handing over and "
             "exiting", (int)u->child, ready->model, ready->handler);
    if (!ready->handover)
        log_info("upgrade: the new master takes no connections over (handover = false, or "
                 "a model of ABI 1.1): they finish here");
    /* The new master answers on the status socket now; a copy is kept in
     * case this master has to serve again. */
    if (u->kept_status_fd >= 0)
        close(u->kept_status_fd);
    u->kept_status_fd = m->status.listen_fd >= 0
                            ? fcntl(m->status.listen_fd, F_DUPFD_CLOEXEC, 3) : -1;
    snprintf(u->kept_status, sizeof(u->kept_status), "%s",
             m->status.listen ? m->status.listen : "");
    status_fini(&m->status);
    for (unsigned i = 0; i < MAX_GENERATIONS; i++) {
        struct generation *old = m->gens[i];
        if (!old)
            continue;
        if (old->state == GEN_STARTING)
            gen_drain(m, old, NULL);
        else if (old->state == GEN_ACTIVE)
            gen_drain_to_master(m, old, ready->handover != 0, ready->handler);
    }
}

/* Old master: what the new one said (recv_hello's rc), before READY. */
static void old_heard(struct master *m, int rc, const struct up_hello *h, const char *why)
{
    struct upgrade *u = &m->up;
    if (rc == -EPIPE || rc == -ECONNRESET) {
        u->peer.eof = true; /* its exit, reaped next, says why */
        return;
    }
    if (rc == -EPROTO)
        fail_upgrade(m, "the new master (pid %d, %s) sent %s", (int)u->child,
                     m->opts->exe_path, why);
    else if (rc != 0)
        fail_upgrade(m, "reading the upgrade socket: %s", strerror(-rc));
    else if (h->type != UP_READY)
        fail_upgrade(m, "the new master (pid %d) sent GO; only READY was expected",
                     (int)u->child);
    else
        commit(m, h);
}

static void describe(int status, char *out, size_t len)
{
    if (WIFEXITED(status))
        snprintf(out, len, "exited with status %d", WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        snprintf(out, len, "was killed by signal %d (SIG%s)", WTERMSIG(status),
                 sigabbrev_np(WTERMSIG(status)) ? sigabbrev_np(WTERMSIG(status)) : "?");
    else
        snprintf(out, len, "changed state (0x%x)", status);
}

bool upgrade_reaped(struct master *m, pid_t pid, int status)
{
    struct upgrade *u = &m->up;
    if (pid != u->child || u->child <= 0)
        return false;
    u->child = 0;
    char how[160];
    describe(status, how, sizeof(how));
    int exec_errno = 0;
    if (u->exec_err_fd >= 0) {
        if (read(u->exec_err_fd, &exec_errno, sizeof(exec_errno)) != sizeof(exec_errno))
            exec_errno = 0;
        close(u->exec_err_fd);
        u->exec_err_fd = -1;
    }
    switch (u->role) {
    case UP_OLD_WAITING:
        if (exec_errno) {
            fail_upgrade(m, "%s could not be run: exec: %s", m->opts->exe_path,
                         strerror(exec_errno));
            break;
        }
        fail_upgrade(m, "the new master (pid %d, %s) %s before it was ready", (int)pid,
                     m->opts->exe_path, how);
        break;
    case UP_OLD_STOPPING:
        log_info("upgrade: the failed new master pid %d %s", (int)pid, how);
        u->role = UP_IDLE;
        break;
    case UP_OLD_HANDING:
        log_error(0, "upgrade: the new master pid %d %s during the hand-over", (int)pid, how);
        break;
    default:
        break;
    }
    return true;
}

void upgrade_tick(struct master *m, uint64_t now)
{
    struct upgrade *u = &m->up;
    if (!u->deadline_ms || now < u->deadline_ms)
        return;
    u->deadline_ms = 0;
    if (u->role == UP_OLD_WAITING)
        fail_upgrade(m, "the new master (pid %d, %s) did not report ready within "
                     "upgrade_timeout (%u ms)", (int)u->child, m->opts->exe_path,
                     u->timeout_ms);
    else if (u->role == UP_OLD_STOPPING && u->child > 0) {
        log_warn(0, "upgrade: the failed new master pid %d is still running: SIGKILL",
                 (int)u->child);
        kill(u->child, SIGKILL);
    } else if (u->role == UP_OLD_HANDING && ho_relay_in_transit(&m->relay) > 0) {
        log_error(0, "upgrade: the new master pid %d did not acknowledge %zu connection(s) "
                  "within drain_timeout + upgrade_timeout; giving up on them",
                  (int)u->new_pid, ho_relay_in_transit(&m->relay));
        u->gave_up = true;
        u->peer.eof = true; /* this master leaves: upgrade_holds_on */
    }
}

uint64_t upgrade_deadline(const struct master *m)
{
    return m->up.deadline_ms;
}

/* ------------------------------------------------------------- both */

bool upgrade_refuses(const struct master *m, const char *what)
{
    static const char *const doing[] = {
        [UP_OLD_WAITING] = "a new master is starting",
        [UP_OLD_STOPPING] = "a failed new master is stopping",
        [UP_OLD_HANDING] = "this master is handing over to a new one",
        [UP_NEW_JOINING] = "this master is joining an upgrade",
        [UP_NEW_READY] = "this master is joining an upgrade",
        [UP_NEW_ADOPTING] = "the old master is still handing over",
    };
    if (m->up.role == UP_IDLE)
        return false;
    log_warn(0, "%s refused: %s", what, doing[m->up.role]);
    return true;
}

struct ho_end *upgrade_adopter(struct master *m)
{
    return m->up.role == UP_OLD_HANDING && ho_end_adopts(&m->up.peer) ? &m->up.peer : NULL;
}

int upgrade_fd(const struct master *m)
{
    return m->up.role == UP_IDLE || m->up.role == UP_OLD_STOPPING ? -1 : m->up.peer.fd;
}

short upgrade_events(const struct master *m)
{
    const struct ho_end *e = &m->up.peer;
    if (upgrade_fd(m) < 0 || e->eof)
        return 0;
    if (m->up.role == UP_OLD_HANDING || m->up.role == UP_NEW_ADOPTING)
        return (short)((e->throttled && !m->relay.released ? 0 : POLLIN) |
                       (e->want_write ? POLLOUT : 0));
    return POLLIN;
}

void upgrade_event(struct master *m, short revents)
{
    struct upgrade *u = &m->up;
    if (u->role == UP_OLD_HANDING || u->role == UP_NEW_ADOPTING) {
        gen_control_end_event(m, &u->peer, revents); /* the relay's messages */
        if (u->role == UP_NEW_ADOPTING && u->peer.eof) {
            log_info("upgrade: complete, the old master pid %d is gone", (int)u->old_pid);
            peer_close(u);
        }
        return;
    }
    struct up_hello h;
    char why[160];
    int rc = recv_hello(u->peer.fd, &h, why, sizeof(why));
    if (rc == -EAGAIN)
        return;
    if (u->role >= UP_NEW_JOINING)
        new_heard(m, rc, &h, why);
    else
        old_heard(m, rc, &h, why);
}

bool upgrade_holds_on(const struct master *m)
{
    return m->up.role == UP_OLD_HANDING && !m->up.peer.eof &&
           ho_relay_in_transit(&m->relay) > 0;
}

bool upgrade_successor_lost(struct master *m)
{
    struct upgrade *u = &m->up;
    if (u->role != UP_OLD_HANDING || !u->peer.eof || u->gave_up)
        return false;
    log_error(0, "upgrade failed: the new master pid %d went away during the hand-over; this "
              "master (pid %d) serves again, with %zu connection(s) still in its hands",
              (int)u->new_pid, (int)getpid(), ho_relay_in_transit(&m->relay));
    char err[1024];
    if (u->kept_status_fd >= 0 &&
        status_adopt(&m->status, u->kept_status_fd, u->kept_status, err, sizeof(err)) != 0)
        log_error(0, "upgrade: %s", err);
    u->kept_status_fd = -1; /* the status server's now */
    u->succeeded--;
    u->failed++;
    const struct ho_targets none = {0};
    ho_relay_end_gone(&m->relay, &u->peer, &none); /* what it was sent waits here */
    peer_close(u);
    u->deadline_ms = 0;
    if (m->pid_file && pidfile_write(m->pid_file, 0, err, sizeof(err)) != 0)
        log_error(0, "upgrade: %s", err);
    sd_notifyf(0, "MAINPID=%d", (int)getpid());
    return true;
}

int upgrade_kept_listener(const struct master *m, const char **listen)
{
    *listen = m->up.kept_listen;
    return m->up.kept_listen_fd;
}

bool upgrade_joining(const struct master *m)
{
    return m->up.role == UP_NEW_JOINING || m->up.role == UP_NEW_READY;
}

bool upgrade_handed_over(const struct master *m)
{
    return m->up.role == UP_OLD_HANDING;
}

void upgrade_fini(struct master *m)
{
    struct upgrade *u = &m->up;
    if (u->child > 0 && u->role != UP_OLD_HANDING) {
        /* Not committed: the new master must not outlive this one. */
        kill(u->child, SIGTERM);
        u->child = 0;
    }
    if (u->peer.fd >= 0)
        close(u->peer.fd);
    u->peer.fd = -1;
    if (u->exec_err_fd >= 0)
        close(u->exec_err_fd);
    u->exec_err_fd = -1;
    if (u->kept_listen_fd >= 0)
        close(u->kept_listen_fd);
    u->kept_listen_fd = -1;
    if (u->kept_status_fd >= 0)
        close(u->kept_status_fd);
    u->kept_status_fd = -1;
}
