/*
 * ioserve model plugin ABI — the only header a model plugin needs.
 *
 * A model plugin is a shared object that exports exactly two symbols:
 *
 *   IOS_MODEL("name", "one-line summary", knobs);        the descriptor
 *   int model_run(int listen_fd, const struct ios_handler *h);
 *
 * The host (the worker process) dlopen()s the plugin, checks the descriptor's
 * magic and ABI version before touching anything else, validates the knobs of
 * `models.<name>` in the config against the descriptor's knob table, and then
 * calls model_run().  model_run() waits for connections on listen_fd (a
 * non-blocking, already listening socket shared with other workers), serves
 * them with the protocol in `h`, and returns:
 *
 *   0        after a clean drain (h->stop_fd became readable, every open
 *            connection has been closed),
 *   -errno   on failure.  If it fails before calling h->ready(), the host
 *            treats the model as "did not start" and may fall back to the
 *            next model of the configured list.
 *
 * Rules for plugin authors:
 *   - no mutable file-scope state: create your state in model_run, free it
 *     before returning;
 *   - never exit(), abort() or install signal handlers; SIGPIPE is ignored by
 *     the host, so send() may return EPIPE;
 *   - log only through h->log;
 *   - a per-connection error closes that connection only;
 *   - join every thread you start before returning: the host may dlclose
 *     the plugin as soon as model_run returns, and a detached thread still
 *     on its way out would run unmapped code.
 *
 * Self-contained: C11 and libc only; usable from C++.
 *
 * ABI versions (as httpd's module magic numbers): a major change breaks
 * plugins; a minor one only appends fields to the end of a struct.  The
 * descriptor's abi_minor is the oldest host minor the plugin works with:
 * IOS_MODEL records the minor of the header it was built with, unless the
 * plugin defines IOS_REQUIRE_MINOR lower before including this header.
 * A host loads a plugin of its own major whose abi_minor is not newer than
 * its own minor, and refuses any other, naming both versions: a plugin that
 * needs a newer minor would read fields this host does not have.  So a
 * plugin reads the fields up to its abi_minor freely, and asks
 * IOS_HANDLER_HAS(h, field) before reading one added after it.
 *
 * ABI change log
 *   1.0  first version: descriptor with knob table, ios_handler, ios_buf,
 *        ios_counters.
 *   1.1  ios_handler.request_timeout_ms appended.
 *        The version policy above written down (no layout change; hosts
 *        since 1.0 apply it), with IOS_REQUIRE_MINOR and IOS_HANDLER_HAS.
 *   1.2  hand-over: ios_handler.handover_requested, give, adopt_fd, adopt,
 *        at_boundary, close_idle_on_drain appended; ios_counters.adopted,
 *        given appended (active = accepted + adopted - closed - given).
 *        A 1.1 plugin is never asked to give or adopt: it drains as before.
 *   1.3  latency histogram: ios_handler.requests_answered (the protocol's
 *        count of requests a data() call answered) and request_done (the
 *        host records how long requests took) appended.  A plugin built
 *        against 1.2 or older records no latency.
 *        A/B split (canary): ios_handler.route_accepted, adopts_routed
 *        appended.  A 1.2 plugin serves everything it accepts (no split);
 *        as a canary it adopts, counting its connections as adopted.
 */
#ifndef IOSERVE_PLUGIN_H
#define IOSERVE_PLUGIN_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/* "IOSV": the first field of the descriptor, so a random .so is rejected. */
#define IOS_ABI_MAGIC 0x494f5356u
/* Major changes break plugins; minor ones only append fields. */
#define IOS_ABI_MAJOR 1
#define IOS_ABI_MINOR 3

#if defined(__GNUC__)
#define IOS_EXPORT __attribute__((visibility("default")))
#define IOS_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#else
#define IOS_EXPORT
#define IOS_PRINTF(fmt, args)
#endif

/* ---------------------------------------------------------------- knobs */

enum ios_knob_type {
    IOS_KNOB_BOOL = 1,
    IOS_KNOB_INT = 2,
    IOS_KNOB_STRING = 3,
};

/*
 * One setting of `models.<name>` in the config.  The host rejects unknown
 * names, wrong types and integers outside [min, max] before the model runs,
 * so model_run can trust what knob_int/knob_bool/knob_string return.
 */
struct ios_knob {
    const char *name;
    enum ios_knob_type type;
    long long default_int;      /* BOOL (0/1) and INT */
    const char *default_string; /* STRING */
    long long min, max;         /* INT only */
    const char *help;           /* one line, shown by --list-models */
};

#define IOS_KNOB_END { NULL, (enum ios_knob_type)0, 0, NULL, 0, 0, NULL }

/* ----------------------------------------------------------- descriptor */

struct ios_model_descriptor {
    uint32_t magic;     /* IOS_ABI_MAGIC */
    uint16_t abi_major; /* IOS_ABI_MAJOR the plugin was built with */
    uint16_t abi_minor; /* the oldest host minor it works with */
    const char *name;    /* e.g. "epoll"; also the config group models.<name> */
    const char *summary; /* one line for --list-models */
    const struct ios_knob *knobs; /* terminated by IOS_KNOB_END; may be NULL */
};

/* The symbol name the host looks up. */
#define IOS_DESCRIPTOR_SYMBOL "ios_model"
#define IOS_RUN_SYMBOL "model_run"

/* The oldest host minor this plugin works with (see the top of the file):
 * define it lower before including this header only if every field added
 * after that minor is read behind IOS_HANDLER_HAS. */
#ifndef IOS_REQUIRE_MINOR
#define IOS_REQUIRE_MINOR IOS_ABI_MINOR
#endif
#if IOS_REQUIRE_MINOR > IOS_ABI_MINOR
#error "IOS_REQUIRE_MINOR is newer than this plugin.h"
#endif

/* Declares the descriptor.  Use once per plugin, at file scope. */
#define IOS_MODEL(name_, summary_, knobs_)                                   \
    IOS_EXPORT extern const struct ios_model_descriptor ios_model;          \
    const struct ios_model_descriptor ios_model = {                         \
        IOS_ABI_MAGIC, IOS_ABI_MAJOR, IOS_REQUIRE_MINOR, (name_), (summary_), \
        (knobs_)}

/* --------------------------------------------------------------- buffers */

/*
 * A growable byte buffer.  Pending bytes are data[off, len).  Memory comes
 * from the C library's malloc, which host and plugin share, so either side
 * may grow or free it.
 */
struct ios_buf {
    char *data;
    size_t off;
    size_t len;
    size_t cap;
};

static inline size_t ios_buf_pending(const struct ios_buf *b)
{
    return b->len - b->off;
}

/* Makes room for `more` bytes after len.  0, or -ENOMEM. */
static inline int ios_buf_reserve(struct ios_buf *b, size_t more)
{
    if (b->cap - b->len >= more)
        return 0;
    if (b->off > 0) { /* reclaim the consumed prefix before growing */
        memmove(b->data, b->data + b->off, b->len - b->off);
        b->len -= b->off;
        b->off = 0;
        if (b->cap - b->len >= more)
            return 0;
    }
    size_t need = b->len + more;
    if (need < more)
        return -ENOMEM;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need) {
        if (cap > SIZE_MAX / 2)
            return -ENOMEM;
        cap *= 2;
    }
    char *p = (char *)realloc(b->data, cap);
    if (!p)
        return -ENOMEM;
    b->data = p;
    b->cap = cap;
    return 0;
}

static inline int ios_buf_append(struct ios_buf *b, const void *p, size_t n)
{
    int rc = ios_buf_reserve(b, n);
    if (rc)
        return rc;
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}

/* Marks n pending bytes as consumed; an emptied buffer rewinds to 0. */
static inline void ios_buf_consume(struct ios_buf *b, size_t n)
{
    b->off += n;
    if (b->off >= b->len)
        b->off = b->len = 0;
}

static inline void ios_buf_free(struct ios_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->off = b->len = b->cap = 0;
}

/* -------------------------------------------------------------- counters */

/*
 * This worker's counters, in memory shared with the master (which sums all
 * workers for stats).  Several threads of one worker may update them: use
 * __atomic_fetch_add(&c->x, n, __ATOMIC_RELAXED) and friends.
 */
struct ios_counters {
    uint64_t accepted;  /* connections accepted and kept */
    uint64_t refused;   /* accepted then closed at once (a limit was hit) */
    uint64_t closed;    /* kept connections that have since closed */
    uint64_t bytes_in;
    uint64_t bytes_out;
    uint64_t active;    /* currently open: accepted + adopted - closed - given */
    /* ---- since 1.2 ---- */
    uint64_t adopted;   /* connections adopted from an older generation */
    uint64_t given;     /* connections given to a newer generation */
};

/* --------------------------------------------------------------- handler */

enum ios_log_level {
    IOS_LOG_ERROR = 0,
    IOS_LOG_WARN = 1,
    IOS_LOG_INFO = 2,
    IOS_LOG_DEBUG = 3,
};

/* data() results besides "bytes consumed" (>= 0). */
#define IOS_DATA_CLOSE_AFTER_WRITE ((ssize_t)-1) /* send `out`, then close */
#define IOS_DATA_CLOSE_NOW ((ssize_t)-2)         /* drop the connection */

/*
 * Everything the host lends a model.  Constant for the whole model_run call
 * and safe to read from any thread; the callbacks are thread-safe as long as
 * each connection's state is used by one thread at a time.
 */
struct ios_handler {
    /* sizeof(struct ios_handler) as the host built it: fields appended by
     * later minor versions exist only if they fit below this size. */
    size_t struct_size;

    /* ---- the protocol -------------------------------------------------- */
    const char *protocol;   /* "echo", "upper", "http" — for logs */
    size_t conn_state_size; /* bytes of per-connection state the model
                               allocates (aligned for any type) */
    /* Initialises a new connection's state.  0, or -errno (then close it). */
    int (*open)(const struct ios_handler *h, void *state);
    /*
     * Bytes arrived.  `in` holds every byte not yet consumed, in order.  The
     * handler appends its replies to `out` and returns how many bytes of `in`
     * it consumed (the rest is handed back, with more, next time), or one of
     * IOS_DATA_CLOSE_AFTER_WRITE / IOS_DATA_CLOSE_NOW.
     */
    ssize_t (*data)(const struct ios_handler *h, void *state, const char *in,
                    size_t len, struct ios_buf *out);
    /* The connection is gone; release what open() and data() acquired. */
    void (*close)(const struct ios_handler *h, void *state);

    /* ---- control ------------------------------------------------------- */
    /* Becomes readable (and stays so) when the model must stop accepting,
     * finish the open connections and return 0.  Never read or close it. */
    int stop_fd;
    /* Call once, after set-up succeeded and before serving: the host then
     * reports this worker ready.  A model that returns before calling it
     * "did not start". */
    void (*ready)(const struct ios_handler *h);

    /* ---- limits (all > 0) ---------------------------------------------- */
    unsigned max_connections;  /* per worker; past it accept-and-close */
    unsigned idle_timeout_ms;  /* close a connection silent for this long */
    size_t read_chunk;         /* bytes per recv */
    size_t max_input;          /* unconsumed input bytes before closing */
    size_t output_high_water;  /* stop reading while more output is queued */

    /* ---- services ------------------------------------------------------ */
    /* Logs one line.  err: an errno value whose text is appended, or 0. */
    void (*log)(const struct ios_handler *h, enum ios_log_level level, int err,
                const char *fmt, ...) IOS_PRINTF(4, 5);
    /* Values of this model's knobs (models.<name>.<knob>), defaults filled
     * in.  0, or -ENOENT for a name the descriptor does not declare. */
    int (*knob_int)(const struct ios_handler *h, const char *name,
                    long long *value);
    int (*knob_bool)(const struct ios_handler *h, const char *name, int *value);
    int (*knob_string)(const struct ios_handler *h, const char *name,
                       const char **value);
    struct ios_counters *counters;
    unsigned worker_id; /* 0..workers-1 within the generation */

    void *host; /* the host's own; plugins leave it alone */

    /* ---- since 1.1 ----------------------------------------------------- */
    /* A connection holding an unfinished request (input the handler has not
     * consumed yet) for this long is closed: slow-header (slowloris) defence.
     * 0 = no limit beyond idle_timeout_ms. */
    unsigned request_timeout_ms;

    /* ---- since 1.2: hand-over ------------------------------------------ */
    /* After stop_fd became readable: 1 = give every connection to the next
     * generation at its next boundary (give()), 0 = drain as before.  May
     * turn 1 later in the drain (a later reload found a successor that
     * adopts): ask again now and then while draining without giving. */
    int (*handover_requested)(const struct ios_handler *h);
    /* Gives one connection at a boundary (no output queued, at_boundary()
     * true).  `in`/`len`: input received but not consumed by the handler
     * (len <= max_input), fed first to the adopter's handler.  0: the host
     * has taken its own reference; the model then releases the connection
     * as a hand-over (handler close(), close(fd) — never shutdown(), which
     * would end the adopter's connection too; and undo first what lives on
     * the open file rather than the descriptor: an epoll registration).
     * Nothing of the model's may still be in flight on the socket (an
     * io_uring recv: cancel it and wait for its completion first).
     * -errno: nothing happened; keep serving it (drain as before). */
    int (*give)(const struct ios_handler *h, int fd, const char *in, size_t len);
    /* Readable while connections handed to this worker wait; -1 when none
     * will ever come.  Watch it while serving and while draining. */
    int adopt_fd;
    /* Takes one waiting connection: *fd (non-blocking, O_CLOEXEC, now the
     * model's) and its unconsumed input appended to *in, to be fed to the
     * handler before anything else.  A signal-driven giver's O_ASYNC may
     * still be set on it: clear it, or route it with F_SETOWN.  0, -EAGAIN
     * when none waits, other -errno (logged by the host). */
    int (*adopt)(const struct ios_handler *h, int *fd, struct ios_buf *in);
    /* The protocol: 1 when the connection's state is between requests, so
     * it may be given (echo/upper: always; http: not inside a body). */
    int (*at_boundary)(const struct ios_handler *h, void *state);
    /* The protocol: 1 when a connection idle at a boundary may be closed at
     * once on a drain without hand-over (http keep-alive: 1; echo: 0). */
    int close_idle_on_drain;

    /* ---- since 1.3: latency histogram ----------------------------------- */
    /* The protocol: how many requests its last data() call on this
     * connection answered (their replies are the newest bytes of `out`);
     * the count starts again from 0.  A protocol answers every whole
     * request it is given, so unconsumed input holds at most the start of
     * one request.  NULL: each data() call that appends a reply answered
     * one request (echo, upper: a read is a request). */
    unsigned (*requests_answered)(const struct ios_handler *h, void *state);
    /* The host: `count` requests took `duration_ns` each, from the first
     * byte of the request received to the last byte of its reply accepted
     * by the kernel (CLOCK_MONOTONIC).  Called by any thread, without
     * locks.  NULL: the host keeps no latency (latency_histogram = false):
     * read no clock for it. */
    void (*request_done)(const struct ios_handler *h, uint64_t duration_ns,
                         unsigned count);

    /* ---- since 1.3: A/B split (canary) ---------------------------------- */
    /* Call with every connection just accepted from listen_fd, before
     * anything else is done with it (not with adopted ones): 1 = the host
     * took it for the other side of an A/B split (`canary`) — close(fd),
     * never shutdown(), and count nothing; 0 = serve it.  NULL: no split. */
    int (*route_accepted)(const struct ios_handler *h, int fd);
    /* 1 on a worker of the split's canary side: no connection ever arrives
     * on its listen_fd (a listening socket no client can reach); all come
     * through adopt(), new ones, counted as accepted rather than adopted. */
    int adopts_routed;
};

/* 1 when the host's struct ios_handler holds all of `field`: ask before
 * reading a field added after the plugin's IOS_REQUIRE_MINOR. */
#define IOS_HANDLER_HAS(h, field)                                            \
    ((h)->struct_size >= offsetof(struct ios_handler, field) + sizeof((h)->field))

/* The entry point every plugin exports. */
IOS_EXPORT int model_run(int listen_fd, const struct ios_handler *h);

#ifdef __cplusplus
}
#endif

#endif /* IOSERVE_PLUGIN_H */
