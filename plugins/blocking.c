/*
 * blocking — the classic blocking model.
 *
 * Shows: every recv and send blocks the calling thread, so concurrency needs
 * one thread per connection (models.blocking.threads = true, the default),
 * bounded by models.blocking.max_threads; past it new connections are
 * refused.  With threads = false it is the textbook iterative server: one
 * client at a time, the next waits in the backlog.
 *
 * The acceptor waits in poll(2) on the listening socket, stop_fd and the
 * host's adopt_fd, since a thread blocked in accept(2) could not notice a
 * drain.  A connection thread waits in poll(2) on its socket before each
 * recv, with the deadline of its idle or request timeout, next to a wake
 * descriptor: on a hand-over every thread must give its connection back
 * within milliseconds, and a thread asleep in recv would only see it at
 * its next byte.  Why not the other ways to wake it: SO_RCVTIMEO slices
 * wake each idle thread every slice for nothing and still answer late;
 * pthread_kill needs a signal handler (else the signal kills the process)
 * and a plugin must not install one — the host owns the process's
 * signals.  The wake descriptor is an eventfd the acceptor writes once
 * when the drain begins and nobody reads: it stays readable, so it is a
 * flag every thread sees, including one started later.  (Iterative: the
 * acceptor serves the client itself, and watches stop_fd instead.)  The
 * output is sent by the pump's own ioc_flush, on a blocking socket, within
 * SO_SNDTIMEO.  The threads run on stacks of one reserved mapping
 * (ioc_stacks.h): a hand-over ends every thread at once, and glibc's own
 * stacks, unmapped one by one, made that take hundreds of milliseconds.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ioc.h"
#include "ioc_stacks.h"

static const struct ios_knob blocking_knobs[] = {
    {"threads", IOS_KNOB_BOOL, 1, NULL, 0, 1,
     "a thread per connection; false = serve one client at a time"},
    {"max_threads", IOS_KNOB_INT, 1024, NULL, 1, 100000,
     "connection threads at most; further connections are refused"},
    IOS_KNOB_END,
};

IOS_MODEL("blocking", "blocking sockets, a thread per connection (or iterative)",
          blocking_knobs);

#define THREAD_STACK_SIZE (256 * 1024)

struct blocking_model {
    const struct ios_handler *h;
    struct ioc_loop acceptor;
    pthread_mutex_t lock;
    pthread_cond_t idle;  /* signalled when the last thread ends */
    unsigned threads;     /* connection threads running */
    /* Threads that have ended but not been joined.  They are joined, not
     * detached: model_run must not return (and the host dlclose this code)
     * while a thread still executes its last instructions in it. */
    struct blocking_job *ended;
    unsigned max_threads;
    bool threaded;
    pthread_attr_t attr;      /* for a thread on a default stack */
    struct ioc_stacks stacks; /* the threads' stacks; the acceptor's alone */
    int wake_fd; /* readable once the drain began (threaded), or -1 */
};

struct blocking_job {
    struct blocking_model *m;
    struct ioc_conn *conn;
    struct ioc_loop loop; /* the connection thread's, set up by the acceptor */
    pthread_t thread;
    int stack_slot; /* in m->stacks, or -1: a default stack */
    struct blocking_job *next_ended;
};

/* A socket timeout is changed only when it is off by more than this: most
 * calls find it right, and a setsockopt per request would cost a system
 * call for nothing. */
#define TIMEOUT_SLACK_MS 50

/* Sets the socket timeout `opt` to ms unless *now is already close to it. */
static void blocking_timeout(int fd, int opt, unsigned *now, unsigned ms)
{
    if (*now && ms <= *now && *now - ms <= TIMEOUT_SLACK_MS)
        return;
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
    setsockopt(fd, SOL_SOCKET, opt, &tv, sizeof(tv));
    *now = ms;
}

/* Milliseconds until the connection is due to close — idle_timeout after
 * its last activity, or request_timeout_ms after its unfinished request
 * began, whichever is first: no ioc_tick runs on a connection thread, so
 * its own waits enforce both.  0 = due now; *why says which. */
static unsigned blocking_left_ms(const struct ioc_loop *loop, const struct ioc_conn *c,
                                 const char **why)
{
    uint64_t due = c->last_active_ms + loop->h->idle_timeout_ms;
    *why = "idle timeout";
    if (ioc_request_pending(c) && c->request_started_ms + loop->request_timeout_ms < due) {
        due = c->request_started_ms + loop->request_timeout_ms;
        *why = "request unfinished at request_timeout";
    }
    uint64_t now = ioc_now_ms();
    return due > now ? (unsigned)(due - now) : 0;
}

/*
 * Sends everything queued, blocking.  Bytes that move are activity, as in
 * the other models, so a peer that stops reading is cut idle_timeout after
 * the last bytes went.  A blocking send that returns short after waiting
 * does not say when its bytes went, so each send waits at most an eighth of
 * idle_timeout: the cut comes within that much of the deadline.
 * 0, -ETIMEDOUT, or -errno of a failed send.
 */
static int blocking_flush(struct ioc_loop *loop, struct ioc_conn *c, unsigned *snd_ms)
{
    unsigned idle = loop->h->idle_timeout_ms;
    unsigned slice = idle / 8 ? idle / 8 : 1;
    while (ios_buf_pending(&c->out)) {
        uint64_t now = ioc_now_ms(), due = c->last_active_ms + idle;
        if (now >= due)
            return -ETIMEDOUT;
        blocking_timeout(c->fd, SO_SNDTIMEO, snd_ms,
                         due - now < slice ? (unsigned)(due - now) : slice);
        bool moved = false;
        int rc = ioc_flush(loop, c, &moved);
        if (rc < 0)
            return rc;
        if (moved)
            ioc_touch(loop, c);
    }
    return 0;
}

/* Waits until the connection is readable (1), `wake_fd` is (2: the drain
 * began), or ms pass (0).  -errno when poll fails. */
static int blocking_wait(const struct ioc_loop *loop, const struct ioc_conn *c,
                         int wake_fd, unsigned ms)
{
    struct pollfd p[2] = {{.fd = c->fd, .events = POLLIN},
                          {.fd = loop->draining ? -1 : wake_fd, .events = POLLIN}};
    int n = poll(p, 2, (int)ms);
    if (n < 0)
        return errno == EINTR ? 0 : -errno;
    return p[1].revents ? 2 : n > 0 ? 1 : 0;
}

/* Serves one connection to its end — closed here, or given to the next
 * generation at a boundary once `wake_fd` says the drain began. */
static void blocking_serve(struct ioc_loop *loop, struct ioc_conn *c, int wake_fd)
{
    const struct ios_handler *h = loop->h;
    unsigned snd_ms = 0;
    for (;;) {
        const char *why;
        unsigned left = blocking_left_ms(loop, c, &why);
        if (left == 0) {
            h->log(h, IOS_LOG_DEBUG, 0, "fd %d: %s, closing", c->fd, why);
            break;
        }
        /* A drain that hands nothing over asks the host again now and
         * then (ioc_drain_recheck). */
        bool recheck = loop->draining && !loop->handing_over && !loop->handover_failed;
        int ready = blocking_wait(loop, c, wake_fd,
                                  recheck && left > IOC_HANDOVER_RECHECK_MS
                                      ? IOC_HANDOVER_RECHECK_MS : left);
        if (ready == 2 || (recheck && ready == 0)) {
            /* Gives the connection now if it is at a boundary (the loop
             * holds this one connection: none left means it went). */
            if (ready == 2)
                ioc_drain_begin(loop);
            else
                ioc_drain_recheck(loop);
            if (loop->nconns == 0)
                return;
            continue;
        }
        if (ready < 0) {
            ioc_log_conn_error(loop, "poll", -ready);
            break;
        }
        if (ready == 0)
            continue; /* the deadline above decides */
        ssize_t n = recv(c->fd, loop->rbuf, h->read_chunk, 0);
        if (n > 0) {
            ioc_received(loop, c, (size_t)n);
            if (ioc_feed(loop, c, loop->rbuf, (size_t)n) < 0)
                break;
        } else if (n == 0) {
            ioc_eof(loop, c);
        } else if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK) {
            continue;
        } else {
            ioc_log_conn_error(loop, "recv", errno);
            break;
        }
        int rc = blocking_flush(loop, c, &snd_ms);
        if (rc == -ETIMEDOUT) {
            /* a reader that stopped reading, like an idle one: routine */
            h->log(h, IOS_LOG_DEBUG, 0, "fd %d: send timeout, closing", c->fd);
            break;
        }
        if (rc < 0) {
            ioc_log_conn_error(loop, "send", -rc);
            break;
        }
        if (ioc_finished(c) && ioc_end(loop, c) == IOC_CLOSED)
            return;
        if (loop->draining && ioc_drain_release(loop, c) == IOC_CLOSED)
            return;
    }
    ioc_close(loop, c);
}

static void *blocking_thread(void *arg)
{
    struct blocking_job *job = arg;
    struct blocking_model *m = job->m;
    blocking_serve(&job->loop, job->conn, m->wake_fd);
    ioc_loop_fini(&job->loop);
    pthread_mutex_lock(&m->lock);
    job->next_ended = m->ended;
    m->ended = job;
    /* Only the drain waits, and only for the last one: a wake-up per
     * thread would cost the acceptor a thousand at the end of a drain. */
    if (--m->threads == 0)
        pthread_cond_signal(&m->idle);
    pthread_mutex_unlock(&m->lock);
    return NULL;
}

/* Joins the threads that have ended and frees their jobs. */
static void blocking_reap(struct blocking_model *m)
{
    pthread_mutex_lock(&m->lock);
    struct blocking_job *job = m->ended;
    m->ended = NULL;
    pthread_mutex_unlock(&m->lock);
    while (job) {
        struct blocking_job *next = job->next_ended;
        pthread_join(job->thread, NULL);
        ioc_stacks_put(&m->stacks, job->stack_slot);
        free(job);
        job = next;
    }
}

/* Sets up a thread's loop and moves the connection into it, all on the
 * acceptor's thread, so that a failure is handled where the acceptor's
 * loop may be touched.  0 or -ENOMEM. */
static int blocking_job_new(struct blocking_model *m, struct ioc_conn *c,
                            struct blocking_job **out)
{
    struct blocking_job *job = malloc(sizeof(*job));
    if (!job)
        return -ENOMEM;
    if (ioc_loop_init_serving(&job->loop, m->h) != 0) {
        free(job);
        return -ENOMEM;
    }
    ioc_detach(&m->acceptor, c);
    if (ioc_adopt(&job->loop, c) != 0) {
        ioc_adopt(&m->acceptor, c); /* its slot there is still allocated */
        ioc_loop_fini(&job->loop);
        free(job);
        return -ENOMEM;
    }
    job->m = m;
    job->conn = c;
    job->stack_slot = -1;
    *out = job;
    return 0;
}

/* Starts job's thread, on a stack of the pool when one is free.  0 or
 * -errno. */
static int blocking_thread_start(struct blocking_model *m, struct blocking_job *job)
{
    void *stack;
    job->stack_slot = ioc_stacks_take(&m->stacks, &stack);
    if (job->stack_slot < 0)
        return -pthread_create(&job->thread, &m->attr, blocking_thread, job);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstack(&attr, stack, m->stacks.size);
    int rc = -pthread_create(&job->thread, &attr, blocking_thread, job);
    pthread_attr_destroy(&attr);
    if (rc != 0)
        ioc_stacks_put(&m->stacks, job->stack_slot);
    return rc;
}

static void blocking_dispatch(struct blocking_model *m, struct ioc_conn *c)
{
    pthread_mutex_lock(&m->lock);
    bool room = m->threads < m->max_threads;
    if (room)
        m->threads++;
    pthread_mutex_unlock(&m->lock);
    /* Joined after the count was read: every thread not counted then is
     * joined now, so fewer than max_threads stacks are taken. */
    blocking_reap(m);

    struct blocking_job *job = NULL;
    int rc = room ? blocking_job_new(m, c, &job) : -EAGAIN;
    if (rc == 0) {
        rc = blocking_thread_start(m, job);
        if (rc != 0) {
            ioc_detach(&job->loop, c);
            ioc_adopt(&m->acceptor, c);
            ioc_loop_fini(&job->loop);
            free(job);
        }
    }
    if (rc != 0) {
        /* Only the backstop: a thread that has closed its connection but
         * not yet ended, or pthread_create failing. */
        if (room)
            m->h->log(m->h, IOS_LOG_WARN, -rc,
                      "starting a connection thread: refusing a connection");
        else
            ioc_log_refusal(&m->acceptor, "max_threads reached");
        __atomic_fetch_add(&m->h->counters->refused, 1, __ATOMIC_RELAXED);
        ioc_close(&m->acceptor, c);
        if (room) {
            pthread_mutex_lock(&m->lock);
            m->threads--;
            pthread_mutex_unlock(&m->lock);
        }
    }
}

/* A connection accepted or adopted: to a thread of its own, or served
 * here while the next client waits. */
static void blocking_start(struct ioc_loop *loop, struct ioc_conn *c)
{
    struct blocking_model *m = loop->model;
    if (m->threaded)
        blocking_dispatch(m, c);
    else
        blocking_serve(loop, c, m->h->stop_fd);
}

/* The drain began: every connection thread is told (the eventfd stays
 * readable), and what the host handed us meanwhile is taken, so that it
 * is given on or served here rather than left to the host's re-sending
 * when we exit. */
static void blocking_drain(struct blocking_model *m)
{
    ioc_drain_begin(&m->acceptor);
    uint64_t one = 1;
    if (m->wake_fd >= 0 && write(m->wake_fd, &one, sizeof(one)) != sizeof(one))
        m->h->log(m->h, IOS_LOG_WARN, errno, "blocking: waking the connection threads");
    ioc_adopt_pending(&m->acceptor, blocking_start);
}

int model_run(int listen_fd, const struct ios_handler *h)
{
    struct blocking_model m = {.h = h, .wake_fd = -1};
    int threaded; /* knob values: the host fills in the defaults */
    long long max_threads;
    h->knob_bool(h, "threads", &threaded);
    h->knob_int(h, "max_threads", &max_threads);
    m.max_threads = (unsigned)max_threads;
    m.threaded = threaded;

    int rc = ioc_loop_init(&m.acceptor, h);
    if (rc != 0)
        return rc;
    m.acceptor.model = &m;
    m.acceptor.blocking_fds = true;
    if (threaded) {
        /* Refused at accept, like max_connections: never counted as an
         * accepted connection. */
        m.acceptor.conn_limit = m.max_threads;
        m.acceptor.conn_limit_why = "max_threads reached";
        m.wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (m.wake_fd < 0) {
            rc = -errno;
            h->log(h, IOS_LOG_ERROR, -rc, "eventfd");
            ioc_loop_fini(&m.acceptor);
            return rc;
        }
        rc = ioc_stacks_init(&m.stacks, m.max_threads, THREAD_STACK_SIZE);
        if (rc != 0)
            h->log(h, IOS_LOG_WARN, -rc,
                   "blocking: no pool of thread stacks, using the default ones "
                   "(ending many threads will be slower)");
        rc = 0;
    }
    pthread_attr_init(&m.attr);
    pthread_attr_setstacksize(&m.attr, THREAD_STACK_SIZE);
    pthread_mutex_init(&m.lock, NULL);
    pthread_cond_init(&m.idle, NULL);
    h->ready(h);

    while (!m.acceptor.draining) {
        /* adopt_fd -1 (none): poll skips it. */
        struct pollfd p[3] = {{.fd = h->stop_fd, .events = POLLIN},
                              {.fd = m.acceptor.adopt_fd, .events = POLLIN},
                              {.fd = listen_fd, .events = POLLIN}};
        bool accepting = ioc_accepting(&m.acceptor);
        int n = poll(p, accepting ? 3 : 2, accepting ? -1 : ioc_timeout_ms(&m.acceptor));
        if (n < 0 && errno != EINTR) {
            rc = -errno;
            h->log(h, IOS_LOG_ERROR, -rc, "poll");
            break;
        }
        if (n > 0 && p[0].revents) {
            blocking_drain(&m);
            break;
        }
        if (n > 0 && p[1].revents)
            ioc_adopt_pending(&m.acceptor, blocking_start);
        if (n > 0 && !p[2].revents)
            continue;
        /* One per wake-up, as ioc_accept_next explains; back to poll
         * after it, where a drain is noticed between clients. */
        struct ioc_conn *c;
        int got;
        while ((got = ioc_accept(&m.acceptor, listen_fd, true, &c)) == 0 && !c)
            ; /* refused: the next one */
        if (got == 0)
            blocking_start(&m.acceptor, c);
    }

    /* Drain: the open connections finish on their threads, or go. */
    pthread_mutex_lock(&m.lock);
    while (m.threads > 0)
        pthread_cond_wait(&m.idle, &m.lock);
    pthread_mutex_unlock(&m.lock);
    blocking_reap(&m);
    ioc_stacks_fini(&m.stacks);
    pthread_cond_destroy(&m.idle);
    pthread_mutex_destroy(&m.lock);
    pthread_attr_destroy(&m.attr);
    ioc_loop_fini(&m.acceptor);
    if (m.wake_fd >= 0)
        close(m.wake_fd);
    return rc;
}
