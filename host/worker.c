/* The worker: plugin code runs here and only here. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "handler.h"
#include "log.h"
#include "plugin_load.h"
#include "privs.h"
#include "worker.h"
#include "worker_handover.h"

/* What h->host points to: the handlers' part must come first. */
struct worker_ctx {
    struct hnd_host hnd;
    const struct ios_config *cfg;
    const struct ios_model_descriptor *desc;
    int report_fd;
    struct worker_ho ho;
    struct split_state *split;
    struct lat_hist *latency;
    int ready;
    /* The model's last error before ready(): the reason a fallback names. */
    char start_error[256];
};

static struct worker_ctx *ctx_of(const struct ios_handler *h)
{
    return (struct worker_ctx *)h->host;
}

static void host_log(const struct ios_handler *h, enum ios_log_level level,
                     int err, const char *fmt, ...)
{
    if (level > log_get_level())
        return;
    char msg[1536];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    struct worker_ctx *ctx = ctx_of(h);
    log_msg(level, err, "%s: %s", ctx->desc->name, msg);
    if (level == IOS_LOG_ERROR && !ctx->ready)
        snprintf(ctx->start_error, sizeof(ctx->start_error), "%.190s%s%.60s", msg,
                 err ? ": " : "", err ? strerror(err) : "");
}

static void host_ready(const struct ios_handler *h)
{
    struct worker_ctx *ctx = ctx_of(h);
    if (ctx->ready)
        return;
    ctx->ready = 1;
    if (ctx->report_fd < 0)
        return;
    char line[WORKER_REPORT_LINE_MAX];
    /* The minor tells the master whether this worker adopts connections. */
    int n = snprintf(line, sizeof(line), "%c%.200s\t%u\n", WORKER_READY_TAG,
                     ctx->desc->name, (unsigned)ctx->desc->abi_minor);
    /* A full pipe cannot happen (one short line); a dead master is
     * noticed through stop_fd. */
    while (write(ctx->report_fd, line, (size_t)n) < 0 && errno == EINTR)
        ;
}

static int host_knob_int(const struct ios_handler *h, const char *name, long long *v)
{
    struct worker_ctx *c = ctx_of(h);
    return cfg_knob_int(c->cfg, c->desc->name, c->desc->knobs, name, v);
}

static int host_knob_bool(const struct ios_handler *h, const char *name, int *v)
{
    struct worker_ctx *c = ctx_of(h);
    return cfg_knob_bool(c->cfg, c->desc->name, c->desc->knobs, name, v);
}

static int host_knob_string(const struct ios_handler *h, const char *name,
                            const char **v)
{
    struct worker_ctx *c = ctx_of(h);
    return cfg_knob_string(c->cfg, c->desc->name, c->desc->knobs, name, v);
}

static int host_handover_requested(const struct ios_handler *h)
{
    return wh_requested(&ctx_of(h)->ho);
}

static int host_give(const struct ios_handler *h, int fd, const char *in, size_t len)
{
    return wh_give(&ctx_of(h)->ho, fd, in, len);
}

static int host_adopt(const struct ios_handler *h, int *fd, struct ios_buf *in)
{
    return wh_adopt(&ctx_of(h)->ho, fd, in);
}

/* Main worker of a split: a new connection goes to the canary side when
 * the shared counter says it is one of the canary's (split.h).  One that
 * cannot be given is served here (counted to the canary all the same). */
static int host_route_accepted(const struct ios_handler *h, int fd)
{
    struct worker_ctx *ctx = ctx_of(h);
    if (!split_take(ctx->split))
        return 0;
    int rc = wh_route(&ctx->ho, fd);
    if (rc != 0) {
        log_warn(-rc, "worker: could not route a connection to the canary; serving it here");
        return 0;
    }
    return 1;
}

static void host_request_done(const struct ios_handler *h, uint64_t duration_ns,
                              unsigned count)
{
    lat_record(ctx_of(h)->latency, duration_ns, count);
}

/* Opens one model of the list and checks its knobs.  0 or -1 (logged). */
static int load_model(const struct ios_config *cfg, const char *model,
                      struct plugin *p, char *err, size_t errlen)
{
    char path[4096];
    if (cfg_model_path(cfg, model, path, sizeof(path)) != 0) {
        snprintf(err, errlen, "model '%s': path too long", model);
        return -1;
    }
    if (plugin_open(p, path, err, errlen) != 0)
        return -1;
    if (cfg_check_knobs(cfg, p->desc->name, p->desc->knobs, err, errlen) != 0) {
        plugin_close(p);
        return -1;
    }
    return 0;
}

/* Loads every model of the list (printing why any is refused).  0 if all do. */
static int check_models_load(const struct ios_config *cfg)
{
    int failures = 0;
    for (size_t i = 0; i < cfg->n_models; i++) {
        struct plugin p;
        char err[1024];
        if (load_model(cfg, cfg->models[i], &p, err, sizeof(err)) != 0) {
            fprintf(stderr, "ioserve: %s\n", err);
            failures++;
            continue;
        }
        plugin_close(&p);
    }
    return failures ? -1 : 0;
}

/* A listening socket on loopback, port 0: the dry run must not touch the
 * configured address, which a running server may hold. */
static int loopback_listener(void)
{
    struct sockaddr_in v4 = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    struct sockaddr_in6 v6 = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
    const struct sockaddr *addrs[] = {(struct sockaddr *)&v4, (struct sockaddr *)&v6};
    const socklen_t lens[] = {sizeof(v4), sizeof(v6)};
    for (int i = 0; i < 2; i++) {
        int fd = socket(addrs[i]->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
            continue;
        if (bind(fd, addrs[i], lens[i]) == 0 && listen(fd, 1) == 0)
            return fd;
        close(fd);
    }
    return -1;
}

/* Prints what the report pipe of a dry run says: the model that started
 * and why each one before it was skipped.  `side`: "model", or "canary
 * model".  The started model's ABI minor, or -1 if none started. */
static int print_dry_run(int report_fd, const char *side)
{
    char buf[WORKER_REPORT_MAX + 1];
    ssize_t n = read(report_fd, buf, sizeof(buf) - 1);
    buf[n > 0 ? n : 0] = '\0';
    int started = -1;
    for (char *line = buf, *next; *line; line = next) {
        next = strchr(line, '\n');
        next = next ? (*next = '\0', next + 1) : line + strlen(line);
        if (line[0] == WORKER_FALLBACK_TAG) {
            char *tab = strchr(line, '\t');
            if (tab)
                *tab++ = '\0';
            printf("ioserve: %s %s would not start: %s\n", side, line + 1, tab ? tab : "");
        } else if (line[0] == WORKER_READY_TAG) {
            char *tab = strchr(line, '\t');
            if (tab)
                *tab++ = '\0';
            printf("ioserve: %s %s starts\n", side, line + 1);
            started = tab ? atoi(tab) : 0;
        }
    }
    return started;
}

/*
 * The dry run: the worker's own code starts each model of the list in
 * turn, exactly as a worker would, on a loopback socket and with stop_fd
 * readable from the start, so the first model that starts drains at once.
 * A model that loads but cannot start (io_uring refused by the kernel or a
 * seccomp filter, a missing capability) is found here, with its reason.
 */
static int check_models_start(const struct ios_config *cfg, bool canary)
{
    int stop[2] = {-1, -1}, report[2] = {-1, -1};
    int listen_fd = loopback_listener();
    int rc = -1;
    if (listen_fd < 0 || pipe2(stop, O_CLOEXEC) != 0 ||
        pipe2(report, O_CLOEXEC | O_NONBLOCK) != 0 || write(stop[1], "q", 1) != 1) {
        fprintf(stderr, "ioserve: dry run: no loopback socket or pipe: %s\n",
                strerror(errno));
        goto out;
    }
    struct ios_counters counters = {0};
    struct worker_args a = {.cfg = cfg,
                            .listen_fd = listen_fd,
                            .stop_fd = stop[0],
                            .report_fd = report[1],
                            .control_fd = -1,
                            .canary = canary,
                            .counters = &counters};
    /* Errors say why a model did not start; info would be the drain. */
    enum ios_log_level saved = log_get_level();
    log_set_level(IOS_LOG_WARN);
    alarm(WORKER_DRY_RUN_SECONDS); /* a model that never drains must not hang -t */
    worker_main(&a);
    alarm(0);
    log_set_level(saved);
    fflush(stderr);
    rc = print_dry_run(report[0], canary ? "canary model" : "model");
out:
    for (int i = 0; i < 2; i++) {
        if (stop[i] >= 0)
            close(stop[i]);
        if (report[i] >= 0)
            close(report[i]);
    }
    if (listen_fd >= 0)
        close(listen_fd);
    return rc;
}

/* The canary's part of -t: like a fallback, a canary that cannot serve
 * is reported but fails nothing — the main model then serves everything. */
static void check_canary(const struct ios_config *cfg)
{
    struct plugin p;
    char err[1024], split[192];
    if (load_model(cfg, cfg->canary.model, &p, err, sizeof(err)) != 0) {
        printf("ioserve: canary model %s would not start: %s\n", cfg->canary.model, err);
    } else {
        plugin_close(&p);
        int minor = check_models_start(cfg, true);
        if (minor >= 2) {
            split_describe(cfg->canary.model, cfg->canary.share, cfg->canary.workers, split,
                           sizeof(split));
            printf("ioserve: split: model %s, %s\n", cfg->models[0], split);
            return;
        }
        if (minor >= 0)
            printf("ioserve: canary model %s (ABI %d.%d) cannot adopt connections\n",
                   cfg->canary.model, IOS_ABI_MAJOR, minor);
    }
    printf("ioserve: no split: model %s would serve every connection\n", cfg->models[0]);
}

int worker_check(const struct ios_config *cfg)
{
    /* Workers run as `user`/`group` (the master drops privileges before
     * starting any): load and start the models as they will. */
    char err[512];
    if (privs_drop(cfg->user, cfg->group, err, sizeof(err)) != 0) {
        fprintf(stderr, "ioserve: %s\n", err);
        return -1;
    }
    if (check_models_load(cfg) != 0)
        return -1;
    if (check_models_start(cfg, false) < 0)
        return -1;
    if (cfg->canary.model)
        check_canary(cfg);
    return 0;
}

/* ------------------------------------------------- the master's death */

/*
 * A dead master closes its end of the stop pipe, so the model drains as
 * it would on a reload; what the master would have done besides is done
 * here, by a thread that waits for the master to go:
 *  - the port: every worker holds a copy of the listening socket, so the
 *    socket (and its backlog of connections no one will accept) would live
 *    as long as the slowest drain, and no new master could bind the port.
 *    Each worker's copy is replaced by /dev/null (dup2, so the number the
 *    model holds never names another file), and once the last copy goes
 *    the kernel refuses the backlog and frees the port;
 *  - the bound: the master kills a drain still running after
 *    drain_timeout; the thread ends the worker then.
 */
struct orphan_watch {
    pid_t master_pid;
    int listen_fd;
    int placeholder_fd; /* /dev/null, opened while descriptors are plentiful */
    unsigned drain_timeout_ms;
    const struct ios_counters *counters;
};

/* Blocks until the master is gone: a pidfd turns readable when it exits;
 * without pidfd_open (before Linux 5.3) the parent is checked twice a
 * second. */
static void wait_master_gone(pid_t master_pid)
{
    int pidfd = (int)syscall(SYS_pidfd_open, master_pid, 0);
    while (getppid() == master_pid) {
        struct pollfd p = {.fd = pidfd, .events = POLLIN};
        if (poll(&p, pidfd >= 0 ? 1 : 0, pidfd >= 0 ? -1 : 500) > 0)
            break;
    }
    if (pidfd >= 0)
        close(pidfd);
}

static void *orphan_watch_main(void *arg)
{
    const struct orphan_watch *w = arg;
    wait_master_gone(w->master_pid);
    log_warn(0, "master pid %d is gone: no longer accepting, ending within "
             "drain_timeout (%u ms)", (int)w->master_pid, w->drain_timeout_ms);
    dup2(w->placeholder_fd, w->listen_fd);
    struct timespec t = {.tv_sec = w->drain_timeout_ms / 1000,
                         .tv_nsec = (long)(w->drain_timeout_ms % 1000) * 1000000};
    while (nanosleep(&t, &t) != 0 && errno == EINTR)
        ;
    log_warn(0, "drain_timeout passed without a master: exiting with %llu "
             "connection(s) open",
             (unsigned long long)__atomic_load_n(&w->counters->active, __ATOMIC_RELAXED));
    _exit(WORKER_EXIT_FAILED);
    return NULL;
}

/* Starts the watch (it lives as long as the worker).  0 or a negative
 * errno (logged): a worker that cannot watch its master still serves. */
static int watch_master(const struct worker_args *a, struct orphan_watch *w)
{
    *w = (struct orphan_watch){.master_pid = a->master_pid,
                               .listen_fd = a->listen_fd,
                               .placeholder_fd = open("/dev/null", O_RDONLY | O_CLOEXEC),
                               .drain_timeout_ms = a->cfg->drain_timeout_ms,
                               .counters = a->counters};
    if (w->placeholder_fd < 0) {
        int err = errno;
        log_error(err, "worker: no watch for the master's death: /dev/null");
        return -err;
    }
    /* The thread takes no signal: the model's (SIGIO, real-time signals)
     * and the master's (SIGTERM) are the main thread's business. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_t t;
    int rc = pthread_create(&t, &attr, orphan_watch_main, w);
    pthread_attr_destroy(&attr);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        log_error(rc, "worker: no watch for the master's death: pthread_create");
        close(w->placeholder_fd);
        return -rc;
    }
    return 0;
}

/* Tells the master why a model of the list was skipped (for /metrics). */
static void report_fallback(int report_fd, const char *model, const char *reason)
{
    if (report_fd < 0)
        return;
    char line[WORKER_REPORT_LINE_MAX];
    int n = snprintf(line, sizeof(line), "%c%.63s\t%.150s\n", WORKER_FALLBACK_TAG, model,
                     reason);
    for (char *p = line + 1; p < line + n - 1; p++)
        if (*p == '\n')
            *p = ' ';
    while (write(report_fd, line, (size_t)n) < 0 && errno == EINTR)
        ;
}

int worker_main(const struct worker_args *a)
{
    const struct ios_config *cfg = a->cfg;
    static struct orphan_watch watch; /* read by the watch thread till exit */
    if (a->master_pid > 0)
        watch_master(a, &watch);
    struct worker_ho ho;
    wh_init(&ho, a->control_fd, a->handover_flag);

    /* A canary worker runs the canary's model, with nothing to fall back
     * to: without it the main model serves every connection. */
    char *const *models = a->canary ? &cfg->canary.model : cfg->models;
    size_t n_models = a->canary ? 1 : cfg->n_models;
    for (size_t i = 0; i < n_models; i++) {
        struct plugin p;
        char err[1024];
        if (load_model(cfg, models[i], &p, err, sizeof(err)) != 0) {
            log_error(0, "%s%s", err, i + 1 < n_models ? "; trying the next model" : "");
            report_fallback(a->report_fd, models[i], err);
            continue;
        }

        struct worker_ctx ctx = {.cfg = cfg,
                                 .desc = p.desc,
                                 .report_fd = a->report_fd,
                                 .ho = ho,
                                 .split = a->split,
                                 .latency = a->latency};
        struct ios_handler h = {
            .struct_size = sizeof(h),
            .stop_fd = a->stop_fd,
            .ready = host_ready,
            .max_connections = cfg->max_connections,
            .idle_timeout_ms = cfg->idle_timeout_ms,
            .read_chunk = cfg->read_chunk,
            .max_input = cfg->max_input,
            .output_high_water = cfg->output_high_water,
            .log = host_log,
            .knob_int = host_knob_int,
            .knob_bool = host_knob_bool,
            .knob_string = host_knob_string,
            .counters = a->counters,
            .worker_id = a->worker_id,
            .host = &ctx,
            .handover_requested = host_handover_requested,
            .give = host_give,
            .adopt_fd = ho.ctl_fd,
            .adopt = host_adopt,
            .request_done =
                cfg->latency_histogram && a->latency ? host_request_done : NULL,
            .route_accepted = a->split ? host_route_accepted : NULL,
            .adopts_routed = a->canary,
        };
        if (hnd_setup(&h, cfg) != 0) {
            log_error(0, "handler '%s' could not be set up", cfg->handler);
            plugin_close(&p);
            return WORKER_EXIT_FAILED;
        }

        log_debug("worker %u: running model %s (%s)", a->worker_id, p.desc->name,
                  p.path);
        int rc = p.run(a->listen_fd, &h);
        hnd_teardown(&h);
        if (ctx.ready) {
            if (rc != 0)
                log_error(rc < 0 ? -rc : 0, "model %s failed", p.desc->name);
            else
                log_debug("model %s drained", p.desc->name);
            plugin_close(&p);
            return rc == 0 ? WORKER_EXIT_OK : WORKER_EXIT_FAILED;
        }
        log_error(rc < 0 ? -rc : 0, "model %s did not start%s", p.desc->name,
                  i + 1 < n_models ? "; trying the next model" : "");
        report_fallback(a->report_fd, p.desc->name,
                        ctx.start_error[0] ? ctx.start_error
                        : rc < 0           ? strerror(-rc)
                                           : "returned before it was ready");
        plugin_close(&p);
    }
    return WORKER_EXIT_NOT_STARTED;
}
