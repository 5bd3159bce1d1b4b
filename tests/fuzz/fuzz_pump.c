/*
 * Fuzz target: the byte-stream pump of plugins/common (ioc_service,
 * ioc_feed and friends) over a socketpair, with a handler that consumes
 * and produces arbitrary amounts.
 *
 * Input: 4 parameter bytes (read_chunk, max_input, output_high_water,
 * the peer's send buffer), then a script: each byte is one step of the
 * peer (write, read, shut down its write side) or of the model (service
 * the connection with some readiness, feed it through ioc_feed as the
 * blocking and io_uring models do, tick), and the handler takes its next
 * decision (how much to consume, how much to reply, whether to close)
 * from the script too.
 *
 * Checked throughout: the handler sees the client's bytes in order, none
 * lost or repeated, and with every unconsumed byte handed back; the peer
 * receives exactly the replies, in order; a connection is closed only for
 * a reason (EOF, the handler, max_input) and, unless the handler dropped
 * it, only once its replies were all sent.  Latency (ABI 1.3): every
 * handler call that replied is one request, reported to request_done no
 * more than once, and all of them once no output is left unsent.  Leaks
 * are ASan's business.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ioc.h"

#define CHECK(c)                                                           \
    do {                                                                   \
        if (!(c)) {                                                        \
            fprintf(stderr, "fuzz_pump: %s:%d: check failed: %s\n",        \
                    __FILE__, __LINE__, #c);                               \
            abort();                                                       \
        }                                                                  \
    } while (0)

/* The two streams are patterns with a long prime period, kept twice in a
 * table so that any window is one memcpy/memcmp away (per-byte loops would
 * spend the fuzzer's time in coverage callbacks). */
#define PERIOD 65521u
static unsigned char in_tab[2 * PERIOD], out_tab[2 * PERIOD];

static void tabs_init(void)
{
    static int done;
    if (done)
        return;
    for (uint64_t i = 0; i < 2 * PERIOD; i++) {
        uint64_t k = i % PERIOD;
        in_tab[i] = (unsigned char)(k * 131 + (k >> 7) + 5);
        out_tab[i] = (unsigned char)(k * 167 + (k >> 9) + 11);
    }
    done = 1;
}

/* n bytes of a stream from offset off: compared with p, or copied to p. */
static int stream_equal(const unsigned char *tab, uint64_t off, const void *p, size_t n)
{
    const unsigned char *q = p;
    while (n) {
        size_t k = n < PERIOD ? n : PERIOD;
        if (memcmp(q, tab + off % PERIOD, k) != 0)
            return 0;
        q += k;
        off += k;
        n -= k;
    }
    return 1;
}

static void stream_copy(const unsigned char *tab, uint64_t off, void *p, size_t n)
{
    unsigned char *q = p;
    while (n) {
        size_t k = n < PERIOD ? n : PERIOD;
        memcpy(q, tab + off % PERIOD, k);
        q += k;
        off += k;
        n -= k;
    }
}

struct fz {
    const uint8_t *script;
    size_t len, pos;

    uint64_t written;   /* client bytes the peer wrote */
    uint64_t consumed;  /* client bytes the handler consumed */
    uint64_t produced;  /* reply bytes the handler appended */
    uint64_t received;  /* reply bytes the peer read */
    int peer_shut;      /* the peer shut its write side */
    int dropped;        /* the handler asked to close at once (or erred) */
    int closing;        /* ... to close after writing */
    int closed;         /* the pump closed the connection */
    int handler_open;
    uint64_t replied_calls; /* handler calls that replied: requests */
    uint64_t reported;      /* requests request_done was told of */
};

static struct fz g;

static uint8_t next_byte(void)
{
    return g.pos < g.len ? g.script[g.pos++] : 0;
}

static int t_open(const struct ios_handler *h, void *state)
{
    (void)h;
    memset(state, 0, 16);
    g.handler_open = 1;
    return 0;
}

static ssize_t t_data(const struct ios_handler *h, void *state, const char *in,
                      size_t len, struct ios_buf *out)
{
    (void)h;
    (void)state;
    CHECK(g.handler_open && !g.closing && !g.dropped);
    CHECK(len > 0);
    /* every unconsumed byte, in order */
    CHECK(g.consumed + len <= g.written);
    CHECK(stream_equal(in_tab, g.consumed, in, len));

    uint8_t d = next_byte();
    size_t use;
    switch (d & 7) {
    case 0: use = 0; break;
    case 1: use = 1 < len ? 1 : len; break;
    case 2: use = len / 2; break;
    case 3: use = len - 1; break;
    default: use = len; break;
    }
    size_t reply = (size_t)(d >> 3) * (d & 0x80 ? 997 : 13);
    for (size_t done = 0; done < reply;) {
        unsigned char b[4096];
        size_t n = reply - done < sizeof b ? reply - done : sizeof b;
        stream_copy(out_tab, g.produced + done, b, n);
        if (ios_buf_append(out, b, n) != 0)
            return IOS_DATA_CLOSE_NOW;
        done += n;
    }
    g.produced += reply;
    uint8_t e = d == 0xff ? next_byte() : 0;
    if (reply > 0 && e != 2)
        g.replied_calls++;
    if (e == 1) {
        g.closing = 1;
        return IOS_DATA_CLOSE_AFTER_WRITE;
    }
    if (e == 2) {
        g.dropped = 1;
        return IOS_DATA_CLOSE_NOW;
    }
    if (e == 3) {
        g.dropped = 1;
        return (ssize_t)len + 1; /* a broken handler: the pump must cope */
    }
    g.consumed += use;
    return (ssize_t)use;
}

static void t_request_done(const struct ios_handler *h, uint64_t duration_ns, unsigned count)
{
    (void)h;
    CHECK(duration_ns < 3600ull * 1000000000u);
    g.reported += count;
    CHECK(g.reported <= g.replied_calls);
}

static void t_close(const struct ios_handler *h, void *state)
{
    (void)h;
    (void)state;
    CHECK(g.handler_open);
    g.handler_open = 0;
}

static void t_log(const struct ios_handler *h, enum ios_log_level level, int err,
                  const char *fmt, ...)
{
    (void)h;
    (void)level;
    (void)err;
    (void)fmt;
}

static void peer_write(int fd, size_t n)
{
    unsigned char buf[8192];
    if (n > sizeof buf)
        n = sizeof buf;
    stream_copy(in_tab, g.written, buf, n);
    ssize_t w = send(fd, buf, n, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (w > 0)
        g.written += (uint64_t)w;
}

/* Reads what is there; 0 when the pump's side is closed (EOF seen). */
static int peer_read(int fd, size_t n)
{
    unsigned char buf[8192];
    if (n > sizeof buf)
        n = sizeof buf;
    ssize_t r = recv(fd, buf, n, MSG_DONTWAIT);
    /* closed with client bytes unread: a reset, after the replies */
    if (r == 0 || (r < 0 && errno == ECONNRESET))
        return 0;
    if (r < 0) {
        CHECK(errno == EAGAIN || errno == EWOULDBLOCK);
        return 1;
    }
    CHECK(stream_equal(out_tab, g.received, buf, (size_t)r));
    g.received += (uint64_t)r;
    CHECK(g.received <= g.produced);
    return 1;
}

/* What the blocking and io_uring models do instead of ioc_service. */
static unsigned feed_path(struct ioc_loop *loop, struct ioc_conn *c)
{
    ssize_t n = recv(c->fd, loop->rbuf, loop->h->read_chunk, MSG_DONTWAIT);
    if (n > 0) {
        ioc_received(loop, c, (size_t)n);
        if (ioc_feed(loop, c, loop->rbuf, (size_t)n) < 0) {
            ioc_close(loop, c);
            return IOC_CLOSED;
        }
    } else if (n == 0) {
        ioc_eof(loop, c);
    }
    if (ioc_finished(c))
        return ioc_end(loop, c);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 4)
        return 0;
    static struct ios_counters counters;
    tabs_init();
    memset(&g, 0, sizeof g);
    memset(&counters, 0, sizeof counters);
    struct ios_handler h = {
        .struct_size = sizeof h,
        .protocol = "fuzz",
        .conn_state_size = 16,
        .open = t_open,
        .data = t_data,
        .close = t_close,
        .stop_fd = -1,
        .max_connections = 10,
        .idle_timeout_ms = 3600 * 1000,
        .read_chunk = 1 + (size_t)data[0] * 37,
        .max_input = 1024 + (size_t)data[1] * 256,
        .output_high_water = 4096 + (size_t)data[2] * 1024,
        .log = t_log,
        .counters = &counters,
        .request_timeout_ms = 3600 * 1000,
        .request_done = t_request_done,
    };
    int sndbuf = 4096 + data[3] * 512;
    g.script = data + 4;
    g.len = size - 4;

    struct ioc_loop loop;
    CHECK(ioc_loop_init(&loop, &h) == 0);
    int sv[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) == 0);
    setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
    setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
    int peer = sv[1];

    struct ioc_conn *c = calloc(1, sizeof(*c) + h.conn_state_size);
    CHECK(c != NULL);
    c->fd = sv[0];
    CHECK(h.open(&h, c->state) == 0);
    CHECK(ioc_adopt(&loop, c) == 0);
    counters.active = 1;

    for (int steps = 0; g.pos < g.len && steps < 4096; steps++) {
        uint8_t op = next_byte();
        size_t amount = ((size_t)(op >> 3) + 1) * 97;
        unsigned got = 0;
        switch (op & 7) {
        case 0:
        case 1:
            if (!g.peer_shut)
                peer_write(peer, amount * (op & 1 ? 17 : 1));
            break;
        case 2:
            peer_read(peer, amount * 11);
            break;
        case 3:
            if (!g.peer_shut && (op & 0x40)) {
                shutdown(peer, SHUT_WR);
                g.peer_shut = 1;
            }
            break;
        case 4:
            if (!g.closed)
                got = ioc_service(&loop, c, IOC_READABLE);
            break;
        case 5:
            if (!g.closed)
                got = ioc_service(&loop, c, IOC_WRITABLE | (op & 0x80 ? IOC_HANGUP : 0));
            break;
        case 6:
            if (!g.closed)
                got = feed_path(&loop, c);
            break;
        case 7:
            if (!g.closed)
                ioc_tick(&loop);
            break;
        }
        if (got == IOC_CLOSED) {
            g.closed = 1;
            c = NULL;
        }
        if (!g.closed)
            CHECK(ios_buf_pending(&c->in) <= h.max_input);
    }

    /* Let it settle: the peer reads everything, the pump runs until it
     * has nothing left to do. */
    for (int i = 0; i < 2000 && !g.closed; i++) {
        int open = peer_read(peer, 8192);
        unsigned got = ioc_service(&loop, c, IOC_READABLE | IOC_WRITABLE);
        if (got == IOC_CLOSED) {
            g.closed = 1;
            c = NULL;
            break;
        }
        if (!open || (!(got & IOC_WRITABLE) && !(got & IOC_READABLE)))
            break;
        if (!(got & IOC_WRITABLE) && !g.peer_shut)
            break; /* nothing to send, waiting for the client: idle */
    }
    if (!g.closed && ioc_output_pending(c) == 0)
        CHECK(g.reported == g.replied_calls);
    if (g.closed) {
        CHECK(!g.handler_open);
        CHECK(loop.nconns == 0);
        for (int i = 0; i < 100000 && peer_read(peer, 8192); i++)
            ;
        /* unless dropped, a connection ends only after its replies */
        if (!g.dropped)
            CHECK(g.received == g.produced);
    } else {
        /* still open: it must have a reason to be */
        /* closing: replies left to send, or (a lingering close) only
         * the client's last bytes to drain */
        CHECK(!g.closing || ios_buf_pending(&c->out) > 0 ||
              ioc_interest(&loop, c) == IOC_READABLE);
    }
    ioc_loop_fini(&loop); /* closes what is still open */
    CHECK(!g.handler_open);
    close(peer);
    return 0;
}
