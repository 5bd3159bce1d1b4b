/* The listening socket: bound from the configuration, handed over by
 * systemd, or kept across a reload. */
#ifndef IOSERVE_LISTENER_H
#define IOSERVE_LISTENER_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"

/* Opens, binds and listens on cfg->listen_addr (non-blocking, CLOEXEC).
 * The descriptor, or a negative errno with a message in err. */
int listener_bind(const struct ios_config *cfg, char *err, size_t errlen);

/* At start: the socket systemd passed (LISTEN_FDS; *socket_activated is
 * set), else listener_bind().  The descriptor, or a negative errno with a
 * message in err. */
int listener_open(const struct ios_config *cfg, bool *socket_activated, char *err,
                  size_t errlen);

/* For a reload to cfg: a copy of the serving socket `fd` (bound for the
 * `listen` setting `serving`) when the address is unchanged or the socket
 * is systemd's, else a new socket.  The descriptor, or a negative errno
 * with a message in err. */
int listener_for_reload(int fd, const char *serving, const struct ios_config *cfg,
                        bool socket_activated, char *err, size_t errlen);

/* A reload kept the socket: give it the new generation's backlog (or say
 * why it keeps `was`). */
void listener_apply_backlog(int fd, int was, int backlog, bool socket_activated);

/* -s quit: the socket answers no new SYN from now on (a socket filter
 * drops them; handshakes already under way complete), so that what its
 * backlog holds can be accepted before the last descriptor closes.  0 or
 * a negative errno. */
int listener_refuse_handshakes(int fd);
/* Connections waiting in fd's accept queue, or a negative errno. */
int listener_queued(int fd);

/* A listening socket no client can reach (a loopback one whose filter
 * drops every packet): the canary workers' listen_fd.  The descriptor, or
 * a negative errno with a message in err. */
int listener_unreachable(char *err, size_t errlen);

#endif
