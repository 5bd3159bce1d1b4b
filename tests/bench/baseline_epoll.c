/*
 * baseline_epoll — the hand-written epoll server ioserve's epoll model is
 * measured against: no plugin, no handler indirection, no idle timers, no
 * counters.  What is left is the system-call pattern itself, so the
 * difference in the benchmark table is what ioserve's architecture costs.
 *
 *   echo  reply = input
 *   http  every request head (up to the empty line) gets the very bytes of
 *         ioserve's http 200 (host/handler_http.c: Server, Date, Content-Type,
 *         Content-Length, body "Hello from ioserve\n"), Date patched once a
 *         second; keep-alive and pipelining; request bodies are not supported
 *
 * Level-triggered epoll, one thread, accept4 until EAGAIN, one recv per
 * readiness (a short read means the socket is empty), one send for the
 * replies of that read; a connection that cannot take all its output waits
 * for EPOLLOUT and is not read meanwhile.  TCP_NODELAY like ioserve.
 *
 * usage: baseline_epoll [-m echo|http] [-l 127.0.0.1:PORT]
 * Prints "listening on 127.0.0.1:PORT" on stderr once bound (port 0 = any);
 * SIGTERM/SIGINT end it.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "bench_common.h"

#define RBUF 16384
#define MAX_EVENTS 256

struct conn {
    int fd;
    bool want_out;
    char *out;            /* unsent output (only after a short send) */
    size_t out_off, out_len, out_cap;
    char *part;           /* an http head split across reads */
    size_t part_len, part_cap;
};

struct srv {
    int ep, lfd;
    bool http;
    struct conn **by_fd;
    size_t by_fd_cap;
    char rbuf[RBUF];
    char *wbuf;           /* replies of one read */
    size_t wcap;
    struct bench_http_ok ok;
};

static void conn_close(struct srv *s, struct conn *c)
{
    s->by_fd[c->fd] = NULL;
    close(c->fd);
    free(c->out);
    free(c->part);
    free(c);
}

static int track(struct srv *s, struct conn *c)
{
    if ((size_t)c->fd >= s->by_fd_cap) {
        size_t cap = s->by_fd_cap ? s->by_fd_cap : 1024;
        while (cap <= (size_t)c->fd)
            cap *= 2;
        struct conn **t = realloc(s->by_fd, cap * sizeof *t);
        if (!t)
            return -1;
        memset(t + s->by_fd_cap, 0, (cap - s->by_fd_cap) * sizeof *t);
        s->by_fd = t;
        s->by_fd_cap = cap;
    }
    s->by_fd[c->fd] = c;
    return 0;
}

static void on_accept(struct srv *s)
{
    for (;;) {
        int fd = accept4(s->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            return; /* EAGAIN, or out of fds: the next readiness retries */
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        struct conn *c = calloc(1, sizeof *c);
        if (!c || track(s, (c->fd = fd, c)) != 0) {
            free(c);
            close(fd);
            continue;
        }
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
        if (epoll_ctl(s->ep, EPOLL_CTL_ADD, fd, &ev) != 0)
            conn_close(s, c);
    }
}

/* Makes room for n more bytes in the reply buffer of this read. */
static char *wbuf_room(struct srv *s, size_t used, size_t n)
{
    if (used + n > s->wcap) {
        size_t cap = s->wcap * 2;
        while (cap < used + n)
            cap *= 2;
        char *p = realloc(s->wbuf, cap);
        if (!p)
            return NULL;
        s->wbuf = p;
        s->wcap = cap;
    }
    return s->wbuf + used;
}

/*
 * Answers every complete request head in p[0, n) into s->wbuf.  Returns the
 * bytes of p consumed; *wlen the bytes of replies.
 */
static size_t http_answer(struct srv *s, const char *p, size_t n, size_t *wlen)
{
    size_t pos = 0;
    const char *date = bench_http_date(&s->ok);
    while (pos < n) {
        const char *e = bench_head_end(p + pos, n - pos);
        if (!e)
            break;
        pos = (size_t)(e - p);
        char *w = wbuf_room(s, *wlen, s->ok.len);
        if (!w)
            break;
        memcpy(w, s->ok.bytes, s->ok.len);
        memcpy(w + s->ok.date_off, date, BENCH_DATE_LEN);
        *wlen += s->ok.len;
    }
    return pos;
}

static int append(char **buf, size_t *len, size_t *cap, const char *p, size_t n)
{
    if (*len + n > *cap) {
        size_t c = *cap ? *cap : 4096;
        while (c < *len + n)
            c *= 2;
        char *q = realloc(*buf, c);
        if (!q)
            return -1;
        *buf = q;
        *cap = c;
    }
    memcpy(*buf + *len, p, n);
    *len += n;
    return 0;
}

/* Sends out[off, len); 1 when all went, 0 when the socket is full, -1 on error. */
static int flush(struct conn *c, const char *p, size_t n, size_t *sent)
{
    *sent = 0;
    while (*sent < n) {
        ssize_t k = send(c->fd, p + *sent, n - *sent, MSG_NOSIGNAL);
        if (k > 0)
            *sent += (size_t)k;
        else if (k < 0 && errno == EINTR)
            continue;
        else if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0;
        else
            return -1;
    }
    return 1;
}

static void set_out(struct srv *s, struct conn *c, bool want)
{
    if (c->want_out == want)
        return;
    c->want_out = want;
    struct epoll_event ev = {.events = want ? EPOLLOUT : EPOLLIN, .data.ptr = c};
    epoll_ctl(s->ep, EPOLL_CTL_MOD, c->fd, &ev);
}

static void on_writable(struct srv *s, struct conn *c)
{
    size_t sent;
    int rc = flush(c, c->out + c->out_off, c->out_len - c->out_off, &sent);
    if (rc < 0)
        return conn_close(s, c);
    c->out_off += sent;
    if (rc == 1) {
        c->out_off = c->out_len = 0;
        set_out(s, c, false);
    }
}

static void on_readable(struct srv *s, struct conn *c)
{
    ssize_t n = recv(c->fd, s->rbuf, RBUF, 0);
    if (n <= 0) {
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return;
        return conn_close(s, c);
    }
    const char *reply = s->rbuf;
    size_t rlen = (size_t)n;
    if (s->http) {
        rlen = 0;
        if (c->part_len == 0) {
            size_t used = http_answer(s, s->rbuf, (size_t)n, &rlen);
            if ((size_t)n > used &&
                append(&c->part, &c->part_len, &c->part_cap, s->rbuf + used,
                       (size_t)n - used) != 0)
                return conn_close(s, c);
        } else {
            if (append(&c->part, &c->part_len, &c->part_cap, s->rbuf, (size_t)n) != 0)
                return conn_close(s, c);
            size_t used = http_answer(s, c->part, c->part_len, &rlen);
            memmove(c->part, c->part + used, c->part_len - used);
            c->part_len -= used;
        }
        if (c->part_len > 65536)
            return conn_close(s, c);
        reply = s->wbuf;
    }
    if (!rlen)
        return;
    size_t sent;
    int rc = flush(c, reply, rlen, &sent);
    if (rc < 0)
        return conn_close(s, c);
    if (rc == 0) {
        if (append(&c->out, &c->out_len, &c->out_cap, reply + sent, rlen - sent) != 0)
            return conn_close(s, c);
        set_out(s, c, true);
    }
}

int main(int argc, char **argv)
{
    static struct srv s;
    const char *listen_on = "127.0.0.1:0";
    if (bench_parse_args(argc, argv, "baseline_epoll", &s.http, &listen_on) != 0)
        return 1;
    signal(SIGPIPE, SIG_IGN);
    bench_raise_nofile();
    s.lfd = bench_listen(listen_on);
    if (s.lfd < 0)
        return 1;
    s.wcap = 65536;
    s.wbuf = malloc(s.wcap);
    s.ep = epoll_create1(EPOLL_CLOEXEC);
    if (!s.wbuf || s.ep < 0 || bench_http_ok_init(&s.ok) != 0) {
        perror("baseline_epoll: setup");
        return 1;
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    if (epoll_ctl(s.ep, EPOLL_CTL_ADD, s.lfd, &ev) != 0) {
        perror("baseline_epoll: epoll_ctl");
        return 1;
    }
    bench_announce(s.lfd);

    struct epoll_event evs[MAX_EVENTS];
    for (;;) {
        int n = epoll_wait(s.ep, evs, MAX_EVENTS, -1);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            perror("baseline_epoll: epoll_wait");
            return 1;
        }
        for (int i = 0; i < n; i++) {
            struct conn *c = evs[i].data.ptr;
            if (!c)
                on_accept(&s);
            else if (c->want_out)
                on_writable(&s, c);
            else
                on_readable(&s, c);
        }
    }
}
