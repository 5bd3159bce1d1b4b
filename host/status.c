#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "addr.h"
#include "clock.h"
#include "log.h"
#include "status.h"

#define STATUS_CONN_TIMEOUT_MS 5000

void status_init(struct status_server *s, const struct status_page *pages, size_t npages,
                 void *ctx)
{
    memset(s, 0, sizeof(*s));
    s->listen_fd = -1;
    s->pages = pages;
    s->npages = npages;
    s->ctx = ctx;
    for (int i = 0; i < STATUS_MAX_CONNS; i++)
        s->conns[i].fd = -1;
}

static void conn_close(struct status_conn *c)
{
    close(c->fd);
    c->fd = -1;
    c->inlen = 0;
    ios_buf_free(&c->out);
}

void status_fini(struct status_server *s)
{
    for (int i = 0; i < STATUS_MAX_CONNS; i++)
        if (s->conns[i].fd >= 0)
            conn_close(&s->conns[i]);
    if (s->listen_fd >= 0)
        close(s->listen_fd);
    s->listen_fd = -1;
    free(s->listen);
    s->listen = NULL;
}

int status_configure(struct status_server *s, const struct ios_config *cfg, char *err,
                     size_t errlen)
{
    if (!cfg->status_listen) {
        if (s->listen_fd >= 0)
            log_info("status: endpoint closed");
        status_fini(s);
        return 0;
    }
    if (s->listen && strcmp(s->listen, cfg->status_listen) == 0)
        return 0;

    int fd = socket(cfg->status_addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        bind(fd, (const struct sockaddr *)&cfg->status_addr, cfg->status_addrlen) != 0 ||
        listen(fd, 16) != 0) {
        snprintf(err, errlen, "status_listen %s: %s", cfg->status_listen, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    char *name = strdup(cfg->status_listen);
    if (!name) {
        close(fd);
        snprintf(err, errlen, "status_listen: out of memory");
        return -1;
    }
    status_fini(s);
    s->listen_fd = fd;
    s->listen = name;
    char addr[128];
    addr_format_local(fd, addr, sizeof(addr));
    log_info("status: metrics on http://%s/metrics, probes on /healthz and /readyz", addr);
    return 0;
}

int status_adopt(struct status_server *s, int fd, const char *listen, char *err,
                 size_t errlen)
{
    char *name = strdup(listen);
    if (!name) {
        close(fd);
        snprintf(err, errlen, "status_listen: out of memory");
        return -1;
    }
    status_fini(s);
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    s->listen_fd = fd;
    s->listen = name;
    return 0;
}

size_t status_pollfds(const struct status_server *s, struct pollfd *pfds, size_t max)
{
    size_t n = 0;
    if (s->listen_fd < 0 || max == 0)
        return 0;
    pfds[n++] = (struct pollfd){.fd = s->listen_fd, .events = POLLIN};
    for (int i = 0; i < STATUS_MAX_CONNS && n < max; i++) {
        const struct status_conn *c = &s->conns[i];
        if (c->fd >= 0)
            pfds[n++] = (struct pollfd){
                .fd = c->fd, .events = ios_buf_pending(&c->out) ? POLLOUT : POLLIN};
    }
    return n;
}

int status_timeout_ms(const struct status_server *s)
{
    uint64_t now = clock_now_ms(), best = UINT64_MAX;
    for (int i = 0; i < STATUS_MAX_CONNS; i++)
        if (s->conns[i].fd >= 0 && s->conns[i].deadline_ms < best)
            best = s->conns[i].deadline_ms;
    if (best == UINT64_MAX)
        return -1;
    return best <= now ? 0 : (int)(best - now);
}

static const char *reason_phrase(int code)
{
    switch (code) {
    case 200: return "OK";
    case 503: return "Service Unavailable";
    default: return "Internal Server Error"; /* a page returned a code we do not send */
    }
}

/* Queues a whole response; with send_body false (HEAD) the same head, whose
 * Content-Length still describes the body. */
static void respond(struct status_conn *c, int code, const char *reason, const char *type,
                    const struct ios_buf *body, bool send_body)
{
    char head[256];
    int n = snprintf(head, sizeof(head),
                     "HTTP/1.1 %d %s\r\nServer: ioserve\r\nContent-Type: %s\r\n"
                     "Content-Length: %zu\r\nConnection: close\r\n\r\n",
                     code, reason, type, body ? ios_buf_pending(body) : 0);
    if (ios_buf_append(&c->out, head, (size_t)n) != 0 ||
        (body && send_body &&
         ios_buf_append(&c->out, body->data + body->off, ios_buf_pending(body)) != 0))
        conn_close(c);
}

/* A request head is complete: answer it. */
static void answer(struct status_server *s, struct status_conn *c)
{
    bool get = strncmp(c->in, "GET ", 4) == 0;
    bool head = strncmp(c->in, "HEAD ", 5) == 0;
    const char *target = c->in + (get ? 4 : 5);
    if (!get && !head) {
        respond(c, 405, "Method Not Allowed", "text/plain", NULL, false);
        return;
    }
    const struct status_page *page = NULL;
    for (size_t i = 0; i < s->npages && !page; i++) {
        size_t len = strlen(s->pages[i].path);
        if (strncmp(target, s->pages[i].path, len) == 0 &&
            (target[len] == ' ' || target[len] == '?'))
            page = &s->pages[i];
    }
    if (!page) {
        respond(c, 404, "Not Found", "text/plain", NULL, false);
        return;
    }
    struct ios_buf body = {0};
    int code = page->render(s->ctx, &body);
    respond(c, code, reason_phrase(code), page->content_type, &body, !head);
    ios_buf_free(&body);
}

static void conn_read(struct status_server *s, struct status_conn *c)
{
    ssize_t n = recv(c->fd, c->in + c->inlen, sizeof(c->in) - 1 - c->inlen, 0);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0) {
        conn_close(c);
        return;
    }
    c->inlen += (size_t)n;
    c->in[c->inlen] = '\0';
    if (strstr(c->in, "\r\n\r\n") || strstr(c->in, "\n\n"))
        answer(s, c);
    else if (c->inlen == sizeof(c->in) - 1 && !memchr(c->in, '\n', c->inlen))
        respond(c, 414, "URI Too Long", "text/plain", NULL, false);
    else if (c->inlen == sizeof(c->in) - 1)
        respond(c, 431, "Request Header Fields Too Large", "text/plain", NULL, false);
}

static void conn_write(struct status_conn *c)
{
    ssize_t n = send(c->fd, c->out.data + c->out.off, ios_buf_pending(&c->out), MSG_NOSIGNAL);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0) {
        conn_close(c);
        return;
    }
    ios_buf_consume(&c->out, (size_t)n);
    if (ios_buf_pending(&c->out) == 0)
        conn_close(c);
}

/* A free slot; else the slot of the oldest connection not being answered,
 * closed: a scraper must not be locked out by connections that hold a
 * slot and say nothing.  NULL when every slot is sending an answer. */
static struct status_conn *free_slot(struct status_server *s)
{
    struct status_conn *oldest_idle = NULL;
    for (int i = 0; i < STATUS_MAX_CONNS; i++) {
        struct status_conn *c = &s->conns[i];
        if (c->fd < 0)
            return c;
        if (!ios_buf_pending(&c->out) &&
            (!oldest_idle || c->accepted < oldest_idle->accepted))
            oldest_idle = c;
    }
    if (oldest_idle) {
        log_debug("status: %d connections open, closing the oldest idle one",
                  STATUS_MAX_CONNS);
        conn_close(oldest_idle);
    }
    return oldest_idle;
}

static void accept_all(struct status_server *s)
{
    for (;;) {
        int fd = accept4(s->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return;
        struct status_conn *slot = free_slot(s);
        if (!slot) { /* every slot is being answered: come back later */
            close(fd);
            continue;
        }
        slot->fd = fd;
        slot->accepted = s->accepts++;
        slot->inlen = 0;
        slot->deadline_ms = clock_now_ms() + STATUS_CONN_TIMEOUT_MS;
    }
}

void status_handle(struct status_server *s, const struct pollfd *pfds, size_t n)
{
    uint64_t now = clock_now_ms();
    for (size_t i = 1; i < n; i++) {
        for (int j = 0; j < STATUS_MAX_CONNS; j++) {
            struct status_conn *c = &s->conns[j];
            if (c->fd != pfds[i].fd || !pfds[i].revents)
                continue;
            if (ios_buf_pending(&c->out))
                conn_write(c);
            else
                conn_read(s, c);
            if (c->fd >= 0 && ios_buf_pending(&c->out))
                conn_write(c);
        }
    }
    for (int j = 0; j < STATUS_MAX_CONNS; j++)
        if (s->conns[j].fd >= 0 && now >= s->conns[j].deadline_ms)
            conn_close(&s->conns[j]);
    if (n > 0 && pfds[0].revents)
        accept_all(s);
}
