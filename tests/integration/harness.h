/*
 * ioserve-it: integration tests that run the real ioserve binary.
 *
 *   ioserve-it SCENARIO MODEL
 *
 * Environment: IOSERVE_BIN, IOSERVE_PLUGIN_DIR, IOSERVE_BAD_PLUGIN_DIR,
 * IOSERVE_SOURCE_DIR.  Exit 0 = pass, 1 = fail, 77 = skip (the model cannot
 * run on this machine).
 *
 * Every server or command the harness starts is registered by pid; it is
 * stopped and reaped by the group teardown, by an atexit handler and, as a
 * last resort, by the SIGALRM watchdog.  Nothing else is ever signalled.
 */
#ifndef IOSERVE_IT_HARNESS_H
#define IOSERVE_IT_HARNESS_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <netinet/in.h>
#include <sys/types.h>

#include <cmocka.h>

/* ------------------------------------------------------------ environment */

struct it_env {
    const char *bin;            /* IOSERVE_BIN */
    const char *plugin_dir;     /* IOSERVE_PLUGIN_DIR */
    const char *bad_plugin_dir; /* IOSERVE_BAD_PLUGIN_DIR */
    const char *source_dir;     /* IOSERVE_SOURCE_DIR */
    const char *scenario;
    const char *model;
};
extern struct it_env it_env;

/* Set when the scenario cannot run here (exit 77, the reason printed). */
extern int it_skip;
extern char it_skip_reason[1024];
/* Marks the scenario skipped with its reason.  Returns 0 (for a group
 * setup: every test then skips). */
int it_skip_scenario(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/*
 * Whether `model` (a name in IOSERVE_PLUGIN_DIR, or a path to a .so) can
 * run on this machine, decided by probing the machine, never from what a
 * server logged: 0 = it can; 1 = it cannot, with the reason in why: its
 * plugin is not built, or the kernel refuses what it needs (io_uring_setup
 * failing with ENOSYS or EPERM, as with kernel.io_uring_disabled or a
 * seccomp filter).  Anything else that keeps a model from starting is a
 * failure of the test.
 */
int it_model_unavailable(const char *model, char *why, size_t len);
/* Set by harness checks that cmocka cannot see (teardown problems...). */
extern int it_failed;

/* Prints a diagnostic line prefixed with "ioserve-it: " to stderr. */
void it_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Like it_log, and marks the run failed. */
void it_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Milliseconds on CLOCK_MONOTONIC. */
int64_t it_now_ms(void);
void it_sleep_ms(int ms);

/* Arms the watchdog: after `seconds`, every registered process is killed
 * and the program exits 1. */
void it_watchdog(unsigned seconds);

/* -------------------------------------------------------------- processes */

/* Temp dir (mkdtemp under /tmp), removed at exit unless IT_KEEP is set. */
const char *it_tmpdir(void);

/* Reads a whole file (NUL-terminated).  NULL on error.  Caller frees. */
char *it_read_file(const char *path, size_t *len);
int it_write_file(const char *path, const char *text);

/*
 * Writes a config file for the current model: defaults (listen 127.0.0.1:0,
 * model, plugin_dir, handler echo, workers 1, ...) with every `lines` entry
 * ("key = value;" or a group) replacing the default of the same key.
 * `lines` is NULL-terminated (may be NULL).  Returns a malloc'd path.
 */
char *it_write_config(const char *name, const char *const *lines);

struct it_server {
    pid_t pid;          /* master; 0 once reaped */
    int port;
    char cfg[512];
    char log[512];
    pid_t workers[64];  /* children of the master when it became ready */
    int nworkers;
    int status;         /* wait status once reaped */
    int stop_ok;        /* exited on SIGTERM within the limit */
    int64_t launched_ms;
};

/*
 * Starts `ioserve -c cfg` with stdout+stderr to a log file, and waits up to
 * 10 s for "listening on HOST:PORT".  0 = listening; -1 = failed (reason
 * printed, log dumped): a model this machine cannot run was skipped before
 * (it_model_unavailable), so a server that does not start is a failure.
 */
int it_server_start(struct it_server *s, const char *cfg_path);
/* The two halves of it_server_start, for a test that looks at the server
 * before it serves: starts it (0, or -1), then waits as it_server_start
 * does for its "listening on" line. */
int it_server_launch(struct it_server *s, const char *cfg_path);
int it_server_wait_listening(struct it_server *s);
/* After a binary upgrade: s follows the new master `pid`, which became our
 * child when the old one exited (the test process is a child subreaper):
 * it is registered, and its workers recorded, as it_server_start does. */
void it_server_follow(struct it_server *s, pid_t pid);
/* SIGTERM, waitpid up to 5 s, then SIGKILL.  Also waits for the workers
 * known at start to disappear.  0 = clean stop, -1 = had to force. */
int it_server_stop(struct it_server *s);
/* 1 while the master is running (not exited). */
int it_server_alive(struct it_server *s);
/* Waits up to timeout_ms for the master to exit; 1 = exited (reaped). */
int it_wait_exit(struct it_server *s, int timeout_ms);
/* Current children of the master.  Count, or -1. */
int it_children(pid_t master, pid_t *out, int max);
/* VmRSS of pid in kB, or -1. */
long it_rss_kb(pid_t pid);
/* Prints the server log to stderr (the last `max` bytes). */
void it_dump_log(const struct it_server *s);
/* 1 if the log contains `needle`. */
int it_log_contains(const struct it_server *s, const char *needle);
/* The log's size now: an offset for it_wait_log. */
size_t it_log_size(const struct it_server *s);
/* Waits up to timeout_ms for a complete line holding `needle` after byte
 * `off` of the log.  1 = found, 0 = not found. */
int it_wait_log(const struct it_server *s, size_t off, const char *needle,
                int timeout_ms);
/* The log from byte `off` on (malloc'd; "" when unreadable). */
char *it_log_since(const struct it_server *s, size_t off);
/* A test's teardown of the n servers it started: stops and reaps each
 * (it_failed when one had to be forced), after printing its log when
 * dump_logs (the test did not reach its end). */
void it_stop_servers(struct it_server *srv, int n, int dump_logs);
/* The master's only child once there is exactly one and it is not `not`;
 * 0 if there is none such within timeout_ms. */
pid_t it_wait_new_worker(const struct it_server *s, pid_t not, int timeout_ms);
/* workers = 1: kills the worker until its respawn is `delay` away ("2000
 * ms": the backoff goes 0, 1000, 2000 ms), so the serving generation has
 * no live worker for that long; fails the test if it never is. */
void it_kill_until_respawn_waits(struct it_server *s, const char *delay);

/*
 * Runs argv (argv[0] a path) with stdout+stderr to a file, waiting up to
 * timeout_ms for it to exit, or until its output contains `stop_on` (may be
 * NULL); then it is stopped.  Returns the wait status, or -1 when it was
 * still running at the deadline or stopped because of stop_on (it has been
 * killed and reaped then).  *out: its output (malloc'd, caller frees).
 */
int it_run(char *const argv[], int timeout_ms, const char *stop_on,
           char **out, int64_t *elapsed_ms);
/* A listening socket on 127.0.0.1, port 0, as systemd would pass one (for
 * it_run_activated): tracked, its port in *port.  -1 on error (errno). */
int it_passed_socket(int backlog, int *port);
/* Like it_run, handing listen_fd (a listening socket the caller holds, so
 * no other program can take its port meanwhile) to the command as systemd
 * does: as fd 3, with LISTEN_FDS=1 and LISTEN_PID set to its pid. */
int it_run_activated(char *const argv[], int listen_fd, int timeout_ms,
                     const char *stop_on, char **out, int64_t *elapsed_ms);

/* -------------------------------------------------- the scenario's server */

/* The server of the current cmocka group (NULL when none). */
extern struct it_server *it_srv;

/* Dumps the log of the group's server (if one was started). */
void it_dump_group_log(void);

/* Built with a sanitizer (the server is built with the same flags). */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define IT_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define IT_SANITIZED 1
#endif
#endif
#ifndef IT_SANITIZED
#define IT_SANITIZED 0
#endif
/* ThreadSanitizer in particular: the slowest of them with threads. */
#if defined(__SANITIZE_THREAD__)
#define IT_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define IT_TSAN 1
#endif
#endif
#ifndef IT_TSAN
#define IT_TSAN 0
#endif
/* What a deadline waiting on the server is multiplied by in a sanitizer
 * build: ThreadSanitizer alone makes each thread the blocking model starts
 * cost ~10 ms (its ~900 KiB of thread-local state zeroed and faulted in),
 * so 1,000 connections take it 10 s where they take 0.1 s otherwise. */
#define IT_SLOWDOWN (IT_SANITIZED ? 10 : 1)

/* Group setup: writes a config with `lines`, starts the server. */
int it_group_start(const char *const *lines);
/* Starts a server of a test's own in *s, from a config `name` (one per
 * test: its log is named after it) with `lines`, and makes it it_srv, so
 * that it_group_teardown as the test's teardown stops it even when the
 * test fails.  Fails the test if it does not start. */
void it_own_start(struct it_server *s, const char *name, const char *const *lines);
/* Group teardown: closes clients, stops and reaps the server. */
int it_group_teardown(void **state);
/* Per-test fixtures: the teardown closes the sockets a failed test left
 * open and checks the server (and its workers) survived the test. */
int it_test_setup(void **state);
int it_test_teardown(void **state);

/* A test of a scenario group: per-test fixtures close leftovers. */
#define IT_TEST(f) \
    cmocka_unit_test_setup_teardown(f, it_test_setup, it_test_teardown)

/* Skips the test when the group setup skipped the scenario. */
#define IT_BEGIN()              \
    do {                        \
        if (it_skip)            \
            skip();             \
        assert_non_null(it_srv); \
    } while (0)

/* Fails the test with a printf-style message.  fail() longjmps out of the
 * test; abort() only tells the compiler that control ends here. */
#define IT_FAIL(...)                  \
    do {                              \
        print_error(__VA_ARGS__);     \
        print_error("\n");            \
        fail();                       \
        abort();                      \
    } while (0)

#define IT_CHECK(cond, ...)           \
    do {                              \
        if (!(cond))                  \
            IT_FAIL(__VA_ARGS__);     \
    } while (0)

/* Echo round trip on fd; fails the test with the reason. */
#define IT_ECHO(fd, msg, len)                                              \
    IT_CHECK(it_roundtrip((fd), (msg), (len), (msg), (len), 10000) == 0,   \
             "%s:%d: echo round trip of %zu bytes: %s", __FILE__, __LINE__, \
             (size_t)(len), it_errbuf)

/* Connects to the group's server or fails the test. */
#define IT_CONNECT(fd)                                                     \
    do {                                                                   \
        (fd) = it_connect(it_srv->port);                                   \
        IT_CHECK((fd) >= 0, "%s:%d: %s", __FILE__, __LINE__, it_errbuf);  \
    } while (0)

/* ---------------------------------------------------------------- sockets */

/* Connects (blocking, with timeout) to 127.0.0.1:port.  The fd is tracked:
 * the test teardown closes it if the test did not.  -1 on error. */
int it_connect(int port);
/* Like it_connect, to another IPv4 address (e.g. "127.0.0.2"). */
int it_connect_to(const char *ip, int port);
/* Connects to 127.0.0.1:port within timeout_ms; a non-blocking, untracked
 * fd with TCP_NODELAY, or -1 with errno (ETIMEDOUT at the deadline).
 * Thread-safe: touches no harness state. */
int it_connect_timeout(int port, int timeout_ms);

/* An IPv4 TCP socket, as /proc/net/tcp lists it.  The inode names that
 * very socket: a port can be bound again by anyone once it is closed. */
struct it_sock {
    struct sockaddr_in local;
    int listening;
    unsigned long inode;
};
/* The IPv4 TCP sockets process `pid` holds.  The count (at most `max`
 * stored), or -1. */
int it_tcp_sockets(pid_t pid, struct it_sock *out, int max);
/* 1 if process `pid` has the socket `inode` open. */
int it_holds_socket(pid_t pid, unsigned long inode);
/* Non-blocking connect: returns the fd at once (connect in progress). */
int it_connect_nb(int port);
/* Closes a tracked fd.  With rst, SO_LINGER {1,0} first (sends RST). */
void it_close(int fd);
void it_close_rst(int fd);
void it_track(int fd);
void it_close_all(void);

/* All socket I/O uses MSG_DONTWAIT|MSG_NOSIGNAL and poll with deadlines,
 * so the fd may be blocking or not. */

/* Sends all n bytes.  0, or -1 (errno; ETIMEDOUT at the deadline). */
int it_send_all(int fd, const void *buf, size_t n, int timeout_ms);
/* Receives exactly n bytes.  Returns n, or the count got before EOF
 * (errno = 0), or -1 on error/timeout (errno; ETIMEDOUT).  *got is set
 * in every case when non-NULL. */
ssize_t it_recv_exact(int fd, void *buf, size_t n, int timeout_ms,
                      size_t *got);
/* Reads until EOF into buf (at most cap bytes; beyond cap => error
 * EMSGSIZE).  0 = EOF seen, -1 = error/timeout (errno).  *got set. */
int it_recv_until_eof(int fd, void *buf, size_t cap, int timeout_ms,
                      size_t *got);
/* Waits for the peer to close: reads (and discards) until EOF or
 * ECONNRESET.  1 = closed (EOF/RST), 0 = still open at the deadline,
 * -1 = other error.  *discarded = bytes read meanwhile. */
int it_wait_closed(int fd, int timeout_ms, size_t *discarded);
/* 1 if fd shows EOF or an error right now (within wait_ms), 0 if it is
 * open and quiet. */
int it_peer_closed(int fd, int wait_ms);

/*
 * Full-duplex transfer: sends out[0..out_len) while receiving, so neither
 * side blocks on full buffers.  If shut_wr, shutdown(SHUT_WR) after the last
 * byte.  Receives until `want` bytes (into in, cap >= want) or, if
 * until_eof, until EOF (then want is the capacity).  Returns 0 on success,
 * -1 on error/timeout with errno and *got set.
 */
struct it_xfer {
    const void *out;
    size_t out_len;
    int shut_wr;
    void *in;
    size_t want;
    int until_eof;
    int timeout_ms;
    /* results */
    size_t sent;
    size_t got;
    int eof;
};
int it_transfer(int fd, struct it_xfer *x);

/* Sends msg and expects exactly `expect` (expect_len bytes) back. 0 or -1
 * with a description in it_errbuf. */
int it_roundtrip(int fd, const void *msg, size_t len, const void *expect,
                 size_t expect_len, int timeout_ms);
extern char it_errbuf[512];

/* ----------------------------------------------------------------- data */

/* Deterministic, non-periodic pattern: byte i of stream `seed`. */
void it_pattern(uint64_t seed, uint64_t offset, void *buf, size_t n);
/* Offset of the first difference of a and b, or -1 if equal. */
long it_first_diff(const void *a, const void *b, size_t n);
/* Whole-word search for a decimal number token in s. */
int it_has_number_token(const char *s, const char *num);

/* ---------------------------------------------------- the status endpoint */

/* The port of the server's "metrics on http://127.0.0.1:PORT" line, or 0. */
int it_status_port(const struct it_server *s);
/* GET path from the status endpoint: the whole response (a static buffer,
 * valid until the next call), or NULL. */
char *it_http_get(int port, const char *path);
/* Sum of every sample of `family` in a /metrics body (only those whose
 * labels contain `label`, when not NULL). */
unsigned long long it_metric_sum(const char *body, const char *family, const char *label);

/* sc_reload.c: the models of IOSERVE_MODELS (";" or "," separated, from
 * CMake) that this machine can run (it_model_unavailable); falls back to
 * the scenario's model alone. */
int it_runnable_models(char names[][64], int max);

/* ------------------------------------------------------------- scenarios */

int it_run_echo(void);
int it_run_upper(void);
int it_run_concurrent(void);
int it_run_slow_reader(void);
int it_run_half_close(void);
int it_run_reset(void);
int it_run_http(void);
int it_run_max_conn(void);
int it_run_idle(void);
int it_run_bad_config(void);
int it_run_bad_plugin(void);
int it_run_check_ok(void);

#endif
