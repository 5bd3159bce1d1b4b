/* The worker's end of the hand-over: what ios_handler's handover_requested,
 * give and adopt do, on the control socket (handover_wire.h). */
#ifndef IOSERVE_WORKER_HANDOVER_H
#define IOSERVE_WORKER_HANDOVER_H

#include <stddef.h>

#include "ioserve/plugin.h"

struct worker_ho {
    int ctl_fd;               /* the control socket; -1 = none (dry run) */
    const int *handover_flag; /* the generation's, in shared memory; NULL = never */
};

/* Sets up the worker's end: sends block for a second at most, so a burst
 * of gives waits for the master rather than failing, and a stuck master
 * cannot hold a drain.  0 or -errno (then w->ctl_fd is -1). */
int wh_init(struct worker_ho *w, int ctl_fd, const int *handover_flag);

/* 1 when the master asked this generation to give its connections. */
int wh_requested(const struct worker_ho *w);

/* Gives fd (and `in`, the unconsumed input, through a memfd) to the
 * master.  0 once sent: the master holds its own copy; -errno otherwise,
 * nothing happened. */
int wh_give(const struct worker_ho *w, int fd, const char *in, size_t len);

/* Gives a connection just accepted to the master for the canary side of
 * the generation's A/B split.  0 once sent, -errno otherwise. */
int wh_route(const struct worker_ho *w, int fd);

/* Takes one connection the master relays: *fd non-blocking and
 * close-on-exec, its input appended to *in, acknowledged before it
 * returns.  0, -EAGAIN when none waits, other -errno (logged). */
int wh_adopt(const struct worker_ho *w, int *fd, struct ios_buf *in);

#endif
