/*
 * Binary upgrade (ioserve -s upgrade, SIGUSR2), as nginx does it: the
 * master starts the binary now found at the path it was started from as a
 * new master, which inherits the listening socket, the status socket and
 * one end of a unix socket to the old master.  The new master reads the
 * configuration and starts its workers; once they serve it says READY,
 * the old master answers GO (and tells systemd MAINPID=), and from then on
 * the old master's generations drain, handing their connections over
 * through that socket with the relay's messages (handover_wire.h): the old
 * master sends each as an ADOPT and keeps its copy until the new master
 * acknowledges it, which it does once one of its workers has adopted it.
 * Until GO nothing of the old master changed, so a new binary that fails
 * (exits, crashes, is not ioserve, never gets ready within
 * upgrade_timeout, speaks another upgrade protocol) is stopped, logged and
 * counted, and the old master serves on.
 */
#ifndef IOSERVE_UPGRADE_H
#define IOSERVE_UPGRADE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "handover.h"

/* The handshake's version: a new binary that speaks another is refused. */
#define UPGRADE_PROTOCOL 1

/* The environment a new master finds, like systemd's LISTEN_FDS:
 * IOSERVE_UPGRADE="LISTEN STATUS PEER ACTIVATED" (descriptor numbers,
 * STATUS -1 when there is no status endpoint, ACTIVATED 1 when the
 * listening socket came from systemd), and the old master's `listen` and
 * `status_listen` as configured, to tell whether the sockets still fit the
 * configuration the new master reads. */
#define UPGRADE_ENV "IOSERVE_UPGRADE"
#define UPGRADE_ENV_LISTEN "IOSERVE_UPGRADE_LISTEN"
#define UPGRADE_ENV_STATUS "IOSERVE_UPGRADE_STATUS"

enum upgrade_role {
    UP_IDLE,
    UP_OLD_WAITING,  /* old master: the new one runs, not ready yet */
    UP_OLD_STOPPING, /* old master: the new one failed; waiting for it to go */
    UP_OLD_HANDING,  /* old master: GO sent; draining into the new one */
    UP_NEW_JOINING,  /* new master: starting its first generation */
    UP_NEW_READY,    /* new master: READY sent, waiting for GO */
    UP_NEW_ADOPTING, /* new master: GO received; adopting until the old one exits */
};

struct upgrade {
    enum upgrade_role role;
    pid_t child;            /* old master: the new master, until reaped */
    pid_t new_pid;          /* old master: the new master's pid, for the log */
    int exec_err_fd;        /* old master: the child's exec errno, if exec failed; or -1 */
    pid_t old_pid;          /* new master: the old one */
    struct ho_end peer;     /* the other master's end of the upgrade socket */
    uint64_t deadline_ms;   /* READY due (waiting), or SIGKILL due (stopping) */
    unsigned timeout_ms;    /* upgrade_timeout, as the upgrade began */
    unsigned drain_ms;      /* drain_timeout then: a failed new master's grace */
    char peer_model[64];    /* what the other master serves, for the counts */
    char peer_handler[32];
    char own_handler[32];   /* new master: the protocol it adopts */
    uint64_t succeeded, failed; /* ioserve_upgrades_total */
    bool gave_up;           /* old master: the new one never acknowledged: leave */
    int kept_listen_fd;     /* old master, from GO: its listening socket, to serve
                             * again if the new master dies; or -1 */
    char kept_listen[256];  /* the `listen` it was bound for */
    int kept_status_fd;     /* likewise its status socket (it stops serving there) */
    char kept_status[256];
};

/* What a new master inherited from the old one (main.c). */
struct upgrade_inherited {
    int listen_fd, status_fd, peer_fd; /* -1: none */
    bool socket_activated;
    char listen[256], status_listen[256];
};

/* Reads and unsets the environment above: 1 with *in filled (the
 * descriptors checked and made close-on-exec), 0 when this is no upgrade,
 * -1 with err set when the environment is malformed. */
int upgrade_inherited_from_env(struct upgrade_inherited *in, char *err, size_t errlen);

struct master;
struct generation;

/* New master: joins the old one through in->peer_fd (taken over). */
void upgrade_join(struct master *m, const struct upgrade_inherited *in, const char *handler);
/* SIGUSR2: starts the new binary, or says why not. */
void upgrade_begin(struct master *m);
/* The old master is asked to stop: a new master not ready yet is stopped. */
void upgrade_cancel(struct master *m, const char *why);
/* A child exited: true when it was the new master (handled here). */
bool upgrade_reaped(struct master *m, pid_t pid, int status);
/* New master, its generation now serving: true while systemd and the pid
 * file must not hear of it yet (READY sent, GO awaited). */
bool upgrade_serving(struct master *m, const struct generation *g);
/* Reloads and another upgrade wait while one is under way: true (and a
 * log line naming what) when `what` is refused now. */
bool upgrade_refuses(const struct master *m, const char *what);
/* The old master's adopter while it hands over: the new master's end. */
struct ho_end *upgrade_adopter(struct master *m);
/* The upgrade socket: what poll should wait for (0: skip it), and its event. */
int upgrade_fd(const struct master *m);
short upgrade_events(const struct master *m);
void upgrade_event(struct master *m, short revents);
/* When the upgrade next needs a tick (0: never), and the tick. */
uint64_t upgrade_deadline(const struct master *m);
void upgrade_tick(struct master *m, uint64_t now);
/* Old master: true while it must stay for the new master's
 * acknowledgements (connections in transit to it). */
bool upgrade_holds_on(const struct master *m);
/* Old master: the new one went away while this one handed over (it died,
 * or its socket broke).  True once (logged, counted, the pid file taken
 * back): the master then serves again, starting a generation from its
 * configuration, and what is in transit goes to it. */
bool upgrade_successor_lost(struct master *m);
/* The listening socket kept for upgrade_successor_lost's generation (and
 * *listen, what it was bound for), or -1. */
int upgrade_kept_listener(const struct master *m, const char **listen);
/* New master: true until the old one lets it serve (GO): the status
 * endpoint it inherited is still the old master's to answer. */
bool upgrade_joining(const struct master *m);
/* True once this master has handed over to a new one (it exits quietly:
 * the pid file and systemd belong to the new master). */
bool upgrade_handed_over(const struct master *m);
/* Master exit: stops a new master that is not committed, closes the socket. */
void upgrade_fini(struct master *m);

#endif
