/*
 * baseline_uring — the hand-written io_uring server ioserve's uring model is
 * measured against: the practical limit of the completion-based pattern, no
 * plugin, no handler indirection.
 *
 * Techniques (after liburing's examples):
 *   - one multishot accept (Linux 5.19) for every connection;
 *   - one multishot recv per connection (6.0) drawing from a provided-buffer
 *     ring (5.19) registered with io_uring_register_buf_ring (liburing 2.3:
 *     the ring memory is ours, page-aligned); a buffer goes back to the ring
 *     as soon as its bytes are handled;
 *   - at most one send in flight per connection: replies produced meanwhile
 *     collect in a second buffer and go in the next send;
 *   - IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN (6.1), falling
 *     back to COOP_TASKRUN (5.19) and then to no flags on -EINVAL;
 *   - completions drained in batches; a multishot request re-armed when a
 *     completion comes without IORING_CQE_F_MORE.
 *
 *   echo  reply = input
 *   http  every request head gets the bytes of ioserve's http 200 (see
 *         bench_common.h); keep-alive and pipelining; no request bodies
 *
 * usage: baseline_uring [-m echo|http] [-l 127.0.0.1:PORT]
 * Prints "listening on 127.0.0.1:PORT" on stderr; SIGTERM/SIGINT end it
 * (within a second).
 * Exits 77 when the kernel refuses io_uring (e.g. io_uring_disabled).
 */
#include <errno.h>
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bench_common.h"

#define ENTRIES 1024
#define BGID 1
#define NBUFS 4096     /* power of two */
#define BUF_SIZE 4096

#define OP_ACCEPT 1u
#define OP_RECV 2u
#define OP_SEND 3u
#define OP_MASK 7u

struct obuf {
    char *p;
    size_t off, len, cap;
};

struct conn {
    int fd;
    bool recv_armed;  /* a multishot recv is outstanding */
    bool sending;     /* a send is in flight (from `send`) */
    bool dead;        /* EOF or error: free once nothing is in flight */
    struct obuf send; /* the bytes of the send in flight */
    struct obuf next; /* replies produced while it flies */
    char *part;       /* an http head split across reads */
    size_t part_len, part_cap;
};

static volatile sig_atomic_t stop_requested;

static void on_stop(int sig)
{
    (void)sig;
    stop_requested = 1;
}

struct srv {
    struct io_uring ring;
    int lfd;
    bool http;
    struct io_uring_buf_ring *br;
    char *bufs;
    struct bench_http_ok ok;
};

static struct io_uring_sqe *sqe_get(struct srv *s)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&s->ring);
    while (!sqe) { /* the submission queue is full: hand it to the kernel */
        io_uring_submit(&s->ring);
        sqe = io_uring_get_sqe(&s->ring);
    }
    return sqe;
}

static void arm_accept(struct srv *s)
{
    struct io_uring_sqe *sqe = sqe_get(s);
    io_uring_prep_multishot_accept(sqe, s->lfd, NULL, NULL, SOCK_CLOEXEC);
    io_uring_sqe_set_data64(sqe, OP_ACCEPT);
}

static void arm_recv(struct srv *s, struct conn *c)
{
    struct io_uring_sqe *sqe = sqe_get(s);
    io_uring_prep_recv_multishot(sqe, c->fd, NULL, 0, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = BGID;
    io_uring_sqe_set_data64(sqe, (uint64_t)(uintptr_t)c | OP_RECV);
    c->recv_armed = true;
}

static void arm_send(struct srv *s, struct conn *c)
{
    struct io_uring_sqe *sqe = sqe_get(s);
    io_uring_prep_send(sqe, c->fd, c->send.p + c->send.off, c->send.len - c->send.off,
                       MSG_NOSIGNAL);
    io_uring_sqe_set_data64(sqe, (uint64_t)(uintptr_t)c | OP_SEND);
    c->sending = true;
}

static int obuf_append(struct obuf *b, const char *p, size_t n)
{
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n)
            cap *= 2;
        char *q = realloc(b->p, cap);
        if (!q)
            return -1;
        b->p = q;
        b->cap = cap;
    }
    memcpy(b->p + b->len, p, n);
    b->len += n;
    return 0;
}

static void conn_maybe_free(struct conn *c)
{
    if (!c->dead || c->sending || c->recv_armed)
        return;
    close(c->fd);
    free(c->send.p);
    free(c->next.p);
    free(c->part);
    free(c);
}

/* Starts a send of whatever is queued, unless one is in flight. */
static void kick_send(struct srv *s, struct conn *c)
{
    if (c->sending || c->dead || c->next.len == 0)
        return;
    struct obuf t = c->send;
    c->send = c->next;
    c->next = t;
    c->next.off = c->next.len = 0;
    arm_send(s, c);
}

/* Appends the replies to every complete request head of p[0, n) to
 * c->next; returns the bytes consumed, or -1 when out of memory. */
static ssize_t http_answer(struct srv *s, struct conn *c, const char *p, size_t n)
{
    size_t pos = 0;
    const char *date = bench_http_date(&s->ok);
    while (pos < n) {
        const char *e = bench_head_end(p + pos, n - pos);
        if (!e)
            break;
        pos = (size_t)(e - p);
        if (obuf_append(&c->next, s->ok.bytes, s->ok.len) != 0)
            return -1;
        memcpy(c->next.p + c->next.len - s->ok.len + s->ok.date_off, date,
               BENCH_DATE_LEN);
    }
    return (ssize_t)pos;
}

static int on_data(struct srv *s, struct conn *c, const char *p, size_t n)
{
    if (!s->http)
        return obuf_append(&c->next, p, n);
    if (c->part_len == 0) {
        ssize_t used = http_answer(s, c, p, n);
        if (used < 0)
            return -1;
        if ((size_t)used < n) {
            struct obuf part = {c->part, 0, 0, c->part_cap};
            if (obuf_append(&part, p + used, n - (size_t)used) != 0)
                return -1;
            c->part = part.p;
            c->part_cap = part.cap;
            c->part_len = part.len;
        }
        return 0;
    }
    struct obuf part = {c->part, 0, c->part_len, c->part_cap};
    if (obuf_append(&part, p, n) != 0)
        return -1;
    c->part = part.p;
    c->part_cap = part.cap;
    c->part_len = part.len;
    ssize_t used = http_answer(s, c, c->part, c->part_len);
    if (used < 0)
        return -1;
    memmove(c->part, c->part + used, c->part_len - (size_t)used);
    c->part_len -= (size_t)used;
    return c->part_len > 65536 ? -1 : 0;
}

static void on_accept(struct srv *s, struct io_uring_cqe *cqe)
{
    if (!(cqe->flags & IORING_CQE_F_MORE))
        arm_accept(s);
    if (cqe->res < 0)
        return;
    int fd = cqe->res;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct conn *c = calloc(1, sizeof *c);
    if (!c) {
        close(fd);
        return;
    }
    c->fd = fd;
    arm_recv(s, c);
}

static void on_recv(struct srv *s, struct conn *c, struct io_uring_cqe *cqe)
{
    bool more = cqe->flags & IORING_CQE_F_MORE;
    if (cqe->flags & IORING_CQE_F_BUFFER) {
        unsigned bid = cqe->flags >> IORING_CQE_BUFFER_SHIFT;
        char *buf = s->bufs + (size_t)bid * BUF_SIZE;
        if (cqe->res > 0 && !c->dead && on_data(s, c, buf, (size_t)cqe->res) != 0)
            c->dead = true;
        io_uring_buf_ring_add(s->br, buf, BUF_SIZE, (unsigned short)bid,
                              io_uring_buf_ring_mask(NBUFS), 0);
        io_uring_buf_ring_advance(s->br, 1);
    }
    if (!more) {
        c->recv_armed = false;
        if (cqe->res == -ENOBUFS && !c->dead)
            arm_recv(s, c); /* the ring ran dry for a moment */
        else
            c->dead = true; /* EOF or error */
    }
    kick_send(s, c);
    conn_maybe_free(c);
}

static void on_send(struct srv *s, struct conn *c, struct io_uring_cqe *cqe)
{
    c->sending = false;
    if (cqe->res < 0) {
        c->dead = true;
    } else {
        c->send.off += (size_t)cqe->res;
        if (c->send.off < c->send.len) {
            if (!c->dead)
                arm_send(s, c); /* a short send: the rest */
        } else {
            c->send.off = c->send.len = 0;
            kick_send(s, c);
        }
    }
    conn_maybe_free(c);
}

static int setup_ring(struct srv *s)
{
    static const unsigned tries[] = {
        IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
        IORING_SETUP_COOP_TASKRUN,
        0,
    };
    int rc = -EINVAL;
    for (size_t i = 0; i < sizeof tries / sizeof *tries; i++) {
        struct io_uring_params p = {.flags = tries[i] | IORING_SETUP_CQSIZE,
                                    .cq_entries = ENTRIES * 8};
        rc = io_uring_queue_init_params(ENTRIES, &s->ring, &p);
        if (rc != -EINVAL) {
            if (rc == 0)
                fprintf(stderr, "baseline_uring: setup flags %#x\n", tries[i]);
            break;
        }
    }
    if (rc < 0) {
        fprintf(stderr, "baseline_uring: io_uring_queue_init: %s\n", strerror(-rc));
        return rc;
    }
    size_t ring_bytes = NBUFS * sizeof(struct io_uring_buf);
    if (posix_memalign((void **)&s->br, 4096, ring_bytes) != 0 ||
        !(s->bufs = malloc((size_t)NBUFS * BUF_SIZE)))
        return -ENOMEM;
    io_uring_buf_ring_init(s->br);
    struct io_uring_buf_reg reg = {.ring_addr = (uint64_t)(uintptr_t)s->br,
                                   .ring_entries = NBUFS, .bgid = BGID};
    rc = io_uring_register_buf_ring(&s->ring, &reg, 0);
    if (rc < 0) {
        fprintf(stderr, "baseline_uring: io_uring_register_buf_ring: %s\n",
                strerror(-rc));
        return rc;
    }
    for (unsigned i = 0; i < NBUFS; i++)
        io_uring_buf_ring_add(s->br, s->bufs + (size_t)i * BUF_SIZE, BUF_SIZE,
                              (unsigned short)i, io_uring_buf_ring_mask(NBUFS), (int)i);
    io_uring_buf_ring_advance(s->br, NBUFS);
    return 0;
}

int main(int argc, char **argv)
{
    static struct srv s;
    const char *listen_on = "127.0.0.1:0";
    if (bench_parse_args(argc, argv, "baseline_uring", &s.http, &listen_on) != 0)
        return 1;
    signal(SIGPIPE, SIG_IGN);
    /* A clean exit on SIGTERM (profilers write their data then); the wait
     * below wakes once a second to notice it. */
    struct sigaction sa = {.sa_handler = on_stop};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    bench_raise_nofile();
    if (bench_http_ok_init(&s.ok) != 0)
        return 1;
    int rc = setup_ring(&s);
    if (rc < 0)
        return rc == -ENOSYS || rc == -EPERM ? 77 : 1;
    s.lfd = bench_listen(listen_on);
    if (s.lfd < 0)
        return 1;
    arm_accept(&s);
    bench_announce(s.lfd);

    while (!stop_requested) {
        struct __kernel_timespec ts = {.tv_sec = 1};
        struct io_uring_cqe *first;
        rc = io_uring_submit_and_wait_timeout(&s.ring, &first, 1, &ts, NULL);
        if (rc < 0 && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY && rc != -ETIME) {
            fprintf(stderr, "baseline_uring: io_uring_submit_and_wait: %s\n",
                    strerror(-rc));
            return 1;
        }
        struct io_uring_cqe *cqe;
        unsigned head, seen = 0;
        io_uring_for_each_cqe(&s.ring, head, cqe) {
            uint64_t ud = cqe->user_data;
            struct conn *c = (struct conn *)(uintptr_t)(ud & ~(uint64_t)OP_MASK);
            switch (ud & OP_MASK) {
            case OP_ACCEPT: on_accept(&s, cqe); break;
            case OP_RECV: on_recv(&s, c, cqe); break;
            case OP_SEND: on_send(&s, c, cqe); break;
            }
            seen++;
        }
        io_uring_cq_advance(&s.ring, seen);
    }
    io_uring_queue_exit(&s.ring);
    return 0;
}
