/*
 * Hostile clients and hard limits (issue 6): scenarios and the helpers they
 * share.  The scenarios live in sc_hostile.c (slowloris, emfile,
 * many_conns, privdrop, refusals), sc_soak.c (soak) and sc_memcheck.c (memcheck).
 */
#ifndef IOSERVE_IT_HOSTILE_H
#define IOSERVE_IT_HOSTILE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/types.h>

int it_run_slowloris(void);
int it_run_emfile(void);
int it_run_many_conns(void);
int it_run_privdrop(void);
int it_run_soak(void);
int it_run_memcheck(void);
int it_run_refusals(void);

/* ---------------------------------------------------- process probes */

/* utime + stime of pid (all its threads) in ms, or -1. */
long hx_cpu_ms(pid_t pid);
/* Open descriptors of pid (entries of /proc/pid/fd), or -1. */
int hx_fd_count(pid_t pid);
/* The first worker of the group's server (re-read from /proc), or 0. */
pid_t hx_worker(void);

/* Raises this process's RLIMIT_NOFILE soft limit to at least `want`
 * (and the hard limit too when root).  Returns the soft limit now. */
rlim_t hx_raise_nofile(rlim_t want);

/* ---------------------------------------------------------- sockets */

/* close() with SO_LINGER {1, 0}: the peer sees a reset. */
void hx_close_rst(int fd);
/* Sends all n bytes by the deadline (it_now_ms() clock).  0 or -1. */
int hx_send_all(int fd, const void *p, size_t n, int64_t deadline);
/* 1 when the peer closed (EOF or reset) by the deadline, 0 if still open;
 * bytes read meanwhile are discarded and counted in *junk. */
int hx_wait_closed(int fd, int64_t deadline, size_t *junk);

/* A buffered reader of HTTP responses (one per connection). */
struct hx_reader {
    int fd;
    int eof;
    size_t len;
    char buf[32768];
};

struct hx_resp {
    int status;
    long content_length; /* -1 when absent */
    int conn_close;
    size_t body_len;
    char body[512]; /* the first bytes of the body */
};

/* Reads one whole response (head_only: the answer to a HEAD).  0, or -1
 * with a reason in why (EOF before a response: errno = 0). */
int hx_read_response(struct hx_reader *r, int head_only, int64_t deadline,
                     struct hx_resp *resp, char *why, size_t whylen);

#endif
