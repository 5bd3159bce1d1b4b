/* A worker process: loads the model plugin and runs it on the listening
 * socket with the configured handler. */
#ifndef IOSERVE_WORKER_H
#define IOSERVE_WORKER_H

#include <stdbool.h>
#include <sys/types.h>

#include "config.h"
#include "ioserve/plugin.h"
#include "split.h"
#include "latency.h"

/* Exit codes.  The master logs them; what it does next depends on the
 * generation's state, not on the code. */
#define WORKER_EXIT_OK 0
#define WORKER_EXIT_FAILED 1      /* the model failed after it started */
#define WORKER_EXIT_NOT_STARTED 3 /* no configured model could start */

/* Report lines sent on report_fd: "R<model name>\t<its ABI minor>\n" once
 * the model runs (the minor says whether it adopts connections);
 * "F<model>\t<reason>\n" for each model of the list skipped before it. */
#define WORKER_READY_TAG 'R'
#define WORKER_FALLBACK_TAG 'F'
/* The longest report line, and all a worker ever writes (a fallback line
 * per model of the list, then the ready line): a reader with room for
 * WORKER_REPORT_MAX bytes never sees a line cut in two. */
#define WORKER_REPORT_LINE_MAX 256
#define WORKER_REPORT_MAX ((CFG_MAX_MODELS + 1) * WORKER_REPORT_LINE_MAX)

struct worker_args {
    const struct ios_config *cfg;
    int listen_fd;
    int stop_fd;   /* readable = drain */
    int report_fd; /* the ready report goes here; -1 = none */
    int control_fd; /* hand-over with the master (handover_wire.h); -1 = none */
    const int *handover_flag; /* the generation's, shared; NULL = never */
    bool canary;   /* runs the split's canary model (cfg->canary), which only
                      adopts what the main workers route to it */
    struct split_state *split; /* the generation's, shared, for a main
                                  worker of a split; NULL = no split */
    unsigned worker_id;
    struct ios_counters *counters;
    struct lat_hist *latency; /* this worker's histogram; NULL = none */
    /* The master that forked this worker: when it dies, the worker stops
     * accepting and ends within cfg->drain_timeout_ms (0 = no master, as
     * in the dry run). */
    pid_t master_pid;
};

/* Runs the first model of cfg->models that starts.  Returns an exit code. */
int worker_main(const struct worker_args *args);

/*
 * For -t, in a child of the master, as `user`/`group` when set and started
 * as root (as the workers will run): loads every model of cfg->models and
 * checks its ABI and knobs, printing why any is refused; then starts them
 * in a dry run (on loopback, draining at once) and prints which model
 * starts and why any before it would be skipped.  0 if all load and one
 * starts.
 */
int worker_check(const struct ios_config *cfg);

/* The dry run's limit: past it SIGALRM ends the -t child (a model that
 * does not drain when stop_fd is readable). */
#define WORKER_DRY_RUN_SECONDS 5

#endif
