/* The control socket between the master and each worker (host-private):
 * a SOCK_SEQPACKET socketpair, so each message keeps its boundaries and
 * carries the connection's descriptors with SCM_RIGHTS.  Only descriptors
 * and this fixed header travel: the master never sees a connection's
 * bytes (unconsumed input rides in a memfd beside the connection). */
#ifndef IOSERVE_HANDOVER_WIRE_H
#define IOSERVE_HANDOVER_WIRE_H

#include <stdint.h>

/* The worker's end, beside listen 3, stop 4 and report 5. */
#define HO_CONTROL_FD 6

enum ho_type {
    HO_GIVE = 1,  /* worker -> master: fds [conn] or [conn, memfd]; id 0 */
    HO_ADOPT = 2, /* master -> worker: fds as GIVE; id = the master's */
    HO_ACK = 3,   /* worker -> master: no fds; the ADOPT's id echoed */
    HO_ROUTE = 4, /* worker -> master: fds [conn]; a new connection for its
                     generation's canary side (split.h); id 0 */
};

struct ho_msg {
    uint32_t type;
    uint32_t input_len; /* bytes in the memfd; 0 = no memfd */
    uint64_t id;
};

#define HO_MAX_FDS 2

/* Sends m with nfds (0..2) descriptors.  flags: MSG_DONTWAIT or 0.
 * 0 or -errno (-EAGAIN when a non-blocking end is full). */
int ho_send(int sock, const struct ho_msg *m, const int *fds, int nfds, int flags);

/*
 * Receives one message; its descriptors (O_CLOEXEC) go to fds, their count
 * to *nfds.  0, -EAGAIN when none waits, -EPIPE at end of file, -EPROTO for
 * a message of the wrong size or with descriptors cut off (MSG_CTRUNC: the
 * kernel dropped what did not fit; whatever did arrive is closed), other
 * -errno.  Descriptors are handed out only with 0.
 */
int ho_recv(int sock, struct ho_msg *m, int fds[HO_MAX_FDS], int *nfds, int flags);

#endif
