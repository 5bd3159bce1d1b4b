/* The listening socket. */
#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "addr.h"
#include "listener.h"
#include "log.h"

static int fail(int err, char *msg, size_t msglen, const char *listen, const char *what)
{
    snprintf(msg, msglen, "listen %s: %s: %s", listen, what, strerror(err));
    return -err;
}

int listener_bind(const struct ios_config *cfg, char *err, size_t errlen)
{
    int family = cfg->listen_addr.ss_family;
    int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return fail(errno, err, errlen, cfg->listen, "socket");
    int one = 1;
    /* A restart must not wait for TIME_WAIT connections of the last run. */
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    const char *step = NULL;
    if (bind(fd, (const struct sockaddr *)&cfg->listen_addr, cfg->listen_addrlen) != 0)
        step = "bind";
    else if (listen(fd, cfg->backlog) != 0)
        step = "listen";
    if (step) {
        int e = errno;
        close(fd);
        return fail(e, err, errlen, cfg->listen, step);
    }
    return fd;
}

int listener_open(const struct ios_config *cfg, bool *socket_activated, char *err,
                  size_t errlen)
{
    *socket_activated = false;
    int n = sd_listen_fds(1);
    if (n < 0) {
        snprintf(err, errlen, "sd_listen_fds: %s", strerror(-n));
        return n;
    }
    if (n == 0)
        return listener_bind(cfg, err, errlen);
    int fd = SD_LISTEN_FDS_START;
    if (n > 1)
        log_warn(0, "systemd passed %d sockets; serving the first only", n);
    if (sd_is_socket(fd, AF_UNSPEC, SOCK_STREAM, 1) <= 0) {
        snprintf(err, errlen, "the socket systemd passed (fd %d) is not a listening "
                 "stream socket", fd);
        return -ENOTSOCK;
    }
    fcntl(fd, F_SETFD, FD_CLOEXEC);
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    *socket_activated = true;
    char addr[128];
    addr_format_local(fd, addr, sizeof(addr));
    log_info("socket activation: serving %s from systemd ('listen' is not used)", addr);
    return fd;
}

/* Whether `fd` is bound to `want` itself: "localhost:8080" for a socket
 * on 127.0.0.1:8080, or the port a "...:0" got, written into the config.
 * A port 0 in `want` names no bound address. */
static bool bound_to(int fd, const struct sockaddr_storage *want)
{
    struct sockaddr_storage have;
    socklen_t len = sizeof(have);
    if (getsockname(fd, (struct sockaddr *)&have, &len) != 0 ||
        have.ss_family != want->ss_family)
        return false;
    if (want->ss_family == AF_INET) {
        const struct sockaddr_in *h = (const struct sockaddr_in *)&have,
                                 *w = (const struct sockaddr_in *)want;
        return w->sin_port != 0 && h->sin_port == w->sin_port &&
               h->sin_addr.s_addr == w->sin_addr.s_addr;
    }
    if (want->ss_family == AF_INET6) {
        const struct sockaddr_in6 *h = (const struct sockaddr_in6 *)&have,
                                  *w = (const struct sockaddr_in6 *)want;
        return w->sin6_port != 0 && h->sin6_port == w->sin6_port &&
               memcmp(&h->sin6_addr, &w->sin6_addr, sizeof(w->sin6_addr)) == 0 &&
               h->sin6_scope_id == w->sin6_scope_id;
    }
    return false;
}

int listener_for_reload(int fd, const char *serving, const struct ios_config *cfg,
                        bool socket_activated, char *err, size_t errlen)
{
    bool same = strcmp(serving, cfg->listen) == 0;
    if (!same && !socket_activated && bound_to(fd, &cfg->listen_addr)) {
        /* Binding it again would fail: the serving socket holds it. */
        log_info("reload: 'listen' %s is the address the socket is bound to: kept",
                 cfg->listen);
        same = true;
    }
    if (!same && !socket_activated)
        return listener_bind(cfg, err, errlen);
    if (!same)
        log_warn(0, "reload: 'listen' changed, but the socket comes from systemd: kept");
    int copy = fcntl(fd, F_DUPFD_CLOEXEC, 3);
    if (copy < 0) {
        int e = errno;
        snprintf(err, errlen, "dup of the listening socket: %s", strerror(e));
        return -e;
    }
    return copy;
}

void listener_apply_backlog(int fd, int was, int backlog, bool socket_activated)
{
    if (was == backlog)
        return;
    if (socket_activated) {
        log_warn(0, "reload: 'backlog' changed, but the socket comes from systemd: "
                 "set Backlog= in its .socket unit");
        return;
    }
    /* Linux takes a new backlog from a second listen() on a listening
     * socket. */
    if (listen(fd, backlog) != 0)
        log_warn(errno, "reload: backlog %d not applied, the socket keeps %d", backlog,
                 was);
    else
        log_info("reload: backlog %d (was %d)", backlog, was);
}

/*
 * A socket filter sees a TCP segment from its TCP header on: byte 13
 * holds the flags.  A SYN without ACK opens a handshake: dropped, the
 * client hears nothing and sends its SYN again later (to whoever listens
 * then), where a closing socket would have reset a queued connection.
 * Every other segment passes, so handshakes under way complete and
 * established connections are untouched.
 */
int listener_refuse_handshakes(int fd)
{
    struct sock_filter drop_syn[] = {
        BPF_STMT(BPF_LD | BPF_B | BPF_ABS, 13),
        BPF_STMT(BPF_ALU | BPF_AND | BPF_K, 0x12), /* SYN | ACK */
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0x02, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, 0),
        BPF_STMT(BPF_RET | BPF_K, 0xffffffffu),
    };
    struct sock_fprog prog = {.len = sizeof(drop_syn) / sizeof(drop_syn[0]), .filter = drop_syn};
    return setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof(prog)) == 0 ? 0 : -errno;
}

int listener_queued(int fd)
{
    /* On a listening socket TCP_INFO's tcpi_unacked is its accept queue. */
    struct tcp_info ti;
    socklen_t len = sizeof(ti);
    if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) != 0)
        return -errno;
    return (int)ti.tcpi_unacked;
}

/*
 * The canary workers' listen_fd.  A model waits on its listen_fd, and every
 * model (io_uring's accept, the blocking acceptor) needs a real listening
 * socket there; but a canary worker must accept nothing itself, or it
 * would take more than its share (split.h).  So: a loopback socket that
 * listens, with a socket filter that drops every packet — no handshake
 * ever completes, so it is never readable, and no local program can reach
 * the canary around the split.
 */
int listener_unreachable(char *err, size_t errlen)
{
    struct sock_filter drop_all[] = {BPF_STMT(BPF_RET | BPF_K, 0)};
    struct sock_fprog prog = {.len = 1, .filter = drop_all};
    struct sockaddr_in v4 = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    struct sockaddr_in6 v6 = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
    const struct sockaddr *addrs[] = {(struct sockaddr *)&v4, (struct sockaddr *)&v6};
    const socklen_t lens[] = {sizeof(v4), sizeof(v6)};
    int e = 0;
    for (int i = 0; i < 2; i++) {
        int fd = socket(addrs[i]->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd >= 0 &&
            setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof(prog)) == 0 &&
            bind(fd, addrs[i], lens[i]) == 0 && listen(fd, 1) == 0)
            return fd;
        e = errno;
        if (fd >= 0)
            close(fd);
    }
    snprintf(err, errlen, "the canary workers' listening socket: %s", strerror(e));
    return -e;
}
