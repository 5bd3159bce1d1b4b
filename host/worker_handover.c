/*
 * The worker's end of the hand-over.  A given connection leaves as its
 * descriptor plus, when the handler left input unconsumed, a memfd holding
 * those bytes: the master relays descriptors only.  An adopted one is
 * acknowledged before the model sees it, so until the ack nothing of it
 * has been read here, and the master may re-send it to another worker if
 * this one dies first.
 */
#include <errno.h>
#include <fcntl.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "handover_wire.h"
#include "log.h"
#include "worker_handover.h"

/* The most input a connection may carry: max_input's own limit. */
#define WH_INPUT_MAX (64u << 20)

int wh_init(struct worker_ho *w, int ctl_fd, const int *handover_flag)
{
    w->ctl_fd = -1;
    w->handover_flag = handover_flag;
    if (ctl_fd < 0)
        return 0;
    struct timeval one_second = {.tv_sec = 1};
    if (setsockopt(ctl_fd, SOL_SOCKET, SO_SNDTIMEO, &one_second, sizeof(one_second)) != 0) {
        int err = errno;
        log_error(err, "worker: control socket: setsockopt SO_SNDTIMEO; no hand-over");
        return -err;
    }
    w->ctl_fd = ctl_fd;
    return 0;
}

int wh_requested(const struct worker_ho *w)
{
    return w->handover_flag && w->ctl_fd >= 0 &&
           __atomic_load_n(w->handover_flag, __ATOMIC_ACQUIRE) != 0;
}

/* A memfd holding in[0, len), or -errno. */
static int input_memfd(const char *in, size_t len)
{
    int fd = memfd_create("ioserve-input", MFD_CLOEXEC);
    if (fd < 0)
        return -errno;
    for (size_t done = 0; done < len;) {
        ssize_t n = write(fd, in + done, len - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            int err = n < 0 ? errno : EIO;
            close(fd);
            return -err;
        }
        done += (size_t)n;
    }
    return fd;
}

/* Sends fd (and its input) to the master as a message of `type`. */
static int send_conn(const struct worker_ho *w, enum ho_type type, int fd, const char *in,
                     size_t len)
{
    if (w->ctl_fd < 0)
        return -ENOTCONN;
    if (len > WH_INPUT_MAX)
        return -EMSGSIZE;
    int fds[2] = {fd, -1};
    if (len > 0 && (fds[1] = input_memfd(in, len)) < 0)
        return fds[1];
    struct ho_msg m = {.type = type, .input_len = (uint32_t)len};
    int rc = ho_send(w->ctl_fd, &m, fds, len > 0 ? 2 : 1, 0);
    if (fds[1] >= 0)
        close(fds[1]);
    return rc;
}

int wh_give(const struct worker_ho *w, int fd, const char *in, size_t len)
{
    return send_conn(w, HO_GIVE, fd, in, len);
}

int wh_route(const struct worker_ho *w, int fd)
{
    return send_conn(w, HO_ROUTE, fd, NULL, 0);
}

/* Appends the memfd's `len` bytes to *in.  0 or -errno. */
static int read_input(int memfd, size_t len, struct ios_buf *in)
{
    int rc = ios_buf_reserve(in, len);
    if (rc)
        return rc;
    for (size_t done = 0; done < len;) {
        ssize_t n = pread(memfd, in->data + in->len + done, len - done, (off_t)done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return n < 0 ? -errno : -EIO;
        done += (size_t)n;
    }
    in->len += len;
    return 0;
}

/* The master is gone: no connection will come.  The control socket's
 * number now names an eventfd that never turns readable, so a model
 * watching adopt_fd does not spin on its end of file, and a give fails
 * (the connection drains here). */
static void control_gone(const struct worker_ho *w)
{
    int quiet = eventfd(0, EFD_CLOEXEC);
    if (quiet >= 0) {
        dup2(quiet, w->ctl_fd);
        close(quiet);
    }
}

int wh_adopt(const struct worker_ho *w, int *fd, struct ios_buf *in)
{
    if (w->ctl_fd < 0)
        return -EAGAIN;
    struct ho_msg m;
    int fds[HO_MAX_FDS], nfds;
    int rc = ho_recv(w->ctl_fd, &m, fds, &nfds, MSG_DONTWAIT);
    if (rc == -EAGAIN)
        return rc;
    if (rc == -EPIPE) {
        control_gone(w);
        return -EAGAIN;
    }
    if (rc == 0 && (m.type != HO_ADOPT || nfds != (m.input_len ? 2 : 1) ||
                    m.input_len > WH_INPUT_MAX)) {
        for (int i = 0; i < nfds; i++)
            close(fds[i]);
        rc = -EPROTO;
    }
    if (rc != 0) {
        log_error(-rc, "worker: hand-over: receiving a connection");
        return rc;
    }
    size_t before = in->len;
    rc = m.input_len ? read_input(fds[1], m.input_len, in) : 0;
    if (nfds == 2)
        close(fds[1]);
    int fl = fcntl(fds[0], F_GETFL);
    if (rc == 0 && (fl < 0 || fcntl(fds[0], F_SETFL, fl | O_NONBLOCK) != 0))
        rc = -errno;
    /* Acknowledged even when it failed here: the master's copy is then
     * released and the connection closes, rather than being re-sent to a
     * worker that would fail alike. */
    struct ho_msg ack = {.type = HO_ACK, .id = m.id};
    /* An ack that cannot go within the send timeout (a master stuck for a
     * second) is logged and the connection served all the same: dropping it
     * would cut a client for certain, while the master keeps its copy (the
     * connection stays open after this worker closes it) and re-sends it
     * when this worker exits. */
    int arc = ho_send(w->ctl_fd, &ack, NULL, 0, 0);
    if (arc != 0 && arc != -EPIPE)
        log_warn(-arc, "worker: hand-over: acknowledging connection %llu",
                 (unsigned long long)m.id);
    if (rc != 0) {
        in->len = before;
        close(fds[0]);
        log_error(-rc, "worker: hand-over: adopting connection %llu",
                  (unsigned long long)m.id);
        return rc;
    }
    *fd = fds[0];
    return 0;
}
