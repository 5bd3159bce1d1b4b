/*
 * http: a minimal HTTP/1.1 origin server for load tools and correctness
 * tests.  GET and HEAD get the configured body; everything else gets a
 * clean 4xx/5xx and a close.
 *
 * The hot path is one memchr-driven pass over the head, each line parsed
 * as its LF is found, and one append of a 200 response precomputed at
 * set-up, with only the Date value patched in afterwards.  An incomplete
 * head is left unconsumed (the model hands it back with more bytes) and
 * its parse resumes at its first unparsed line; request bodies are
 * skipped as they arrive, never buffered.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "handler_protocol.h"
#include "http_parse.h"

/* Which Connection header a 200 carries. */
enum http_persist {
    PERSIST_DEFAULT,    /* HTTP/1.1 keep-alive: no header needed */
    PERSIST_KEEP_ALIVE, /* HTTP/1.0 that asked for keep-alive */
    PERSIST_CLOSE,
    PERSIST_COUNT,
};

struct http_resp {
    char *bytes;
    size_t head_len; /* what HEAD gets */
    size_t len;      /* what GET gets: head and body */
};

/* Per-config, read-only after set-up: hnd_host(h)->protocol_data. */
struct http_cache {
    struct http_resp ok[PERSIST_COUNT];
};

struct http_conn {
    uint64_t body_left; /* request body bytes still to discard */
    unsigned answered;  /* requests answered since the pump last asked */
    struct http_head_parse head; /* the pending head, parsed so far */
    time_t date_sec;    /* second that `date` shows */
    char date[HTTP_DATE_LEN];
};

/* Every response starts this way, so the Date value sits at a fixed
 * offset and can be patched into a precomputed response. */
#define RESP_PREFIX_TAIL "Server: ioserve\r\nDate: "
#define OK_PREFIX "HTTP/1.1 200 OK\r\n" RESP_PREFIX_TAIL
#define OK_DATE_OFF (sizeof(OK_PREFIX) - 1)

static const char *const persist_header[PERSIST_COUNT] = {
    "",
    "Connection: keep-alive\r\n",
    "Connection: close\r\n",
};

/* ------------------------------------------------------------ set-up */

static int build_ok(struct http_resp *r, const struct cfg_http *cfg,
                    enum http_persist persist)
{
    const char *body = cfg->body ? cfg->body : "";
    size_t body_len = strlen(body);
    const char *ctype = cfg->content_type;
    char head[1024];
    int n = snprintf(head, sizeof head,
                     "%s%*s\r\n%s%s%sContent-Length: %zu\r\n%s\r\n",
                     OK_PREFIX, HTTP_DATE_LEN, "",
                     ctype && *ctype ? "Content-Type: " : "",
                     ctype && *ctype ? ctype : "",
                     ctype && *ctype ? "\r\n" : "", body_len,
                     persist_header[persist]);
    if (n < 0 || (size_t)n >= sizeof head)
        return -EINVAL; /* a content type longer than any real one */
    r->head_len = (size_t)n;
    r->len = r->head_len + body_len;
    r->bytes = malloc(r->len);
    if (!r->bytes)
        return -ENOMEM;
    memcpy(r->bytes, head, r->head_len);
    memcpy(r->bytes + r->head_len, body, body_len);
    return 0;
}

static void http_teardown(struct ios_handler *h)
{
    struct hnd_host *hh = hnd_host(h);
    struct http_cache *c = hh->protocol_data;
    if (!c)
        return;
    for (int i = 0; i < PERSIST_COUNT; i++)
        free(c->ok[i].bytes);
    free(c);
    hh->protocol_data = NULL;
}

/* ------------------------------------------------------- connections */

static int http_open(const struct ios_handler *h, void *state)
{
    (void)h;
    struct http_conn *c = state;
    c->body_left = 0;
    c->answered = 0;
    c->head.next_line = 0;
    c->date_sec = (time_t)-1;
    return 0;
}

static void http_close(const struct ios_handler *h, void *state)
{
    (void)h;
    (void)state;
}

/* The coarse clock is a vDSO read; formatting happens once a second per
 * connection at most. */
static const char *conn_date(struct http_conn *c)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME_COARSE, &ts);
    if (ts.tv_sec != c->date_sec) {
        http_format_date(ts.tv_sec, c->date);
        c->date_sec = ts.tv_sec;
    }
    return c->date;
}

static const char *reason_of(int status)
{
    switch (status) {
    case 400: return "Bad Request";
    case 405: return "Method Not Allowed";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 431: return "Request Header Fields Too Large";
    case 501: return "Not Implemented";
    case 505: return "HTTP Version Not Supported";
    default: return "Error";
    }
}

static char *put(char *p, const char *s, size_t n)
{
    memcpy(p, s, n);
    return p + n;
}

#define PUT_LIT(p, lit) put((p), lit, sizeof(lit) - 1)

/* "NNN" of a 3-digit status. */
static char *put_status(char *p, int status)
{
    p[0] = (char)('0' + status / 100);
    p[1] = (char)('0' + status / 10 % 10);
    p[2] = (char)('0' + status % 10);
    return p + 3;
}

/* Errors end the connection: whatever follows in `in` is never read,
 * which is why a request we refuse never needs its body skipped. */
static ssize_t send_error(struct http_conn *c, struct ios_buf *out,
                          int status, int is_head)
{
    const char *reason = reason_of(status);
    size_t reason_len = strlen(reason);
    size_t body_len = 3 + 1 + reason_len + 1; /* "NNN Reason\n" */
    char buf[512];
    char *p = buf;

    p = PUT_LIT(p, "HTTP/1.1 ");
    p = put_status(p, status);
    *p++ = ' ';
    p = put(p, reason, reason_len);
    p = PUT_LIT(p, "\r\n" RESP_PREFIX_TAIL);
    p = put(p, conn_date(c), HTTP_DATE_LEN);
    p = PUT_LIT(p, "\r\nContent-Type: text/plain\r\nContent-Length: ");
    /* body_len is two digits for every reason above */
    *p++ = (char)('0' + body_len / 10);
    *p++ = (char)('0' + body_len % 10);
    p = PUT_LIT(p, "\r\nConnection: close\r\n");
    if (status == 405)
        p = PUT_LIT(p, "Allow: GET, HEAD\r\n");
    p = PUT_LIT(p, "\r\n");
    if (!is_head) {
        p = put_status(p, status);
        *p++ = ' ';
        p = put(p, reason, reason_len);
        *p++ = '\n';
    }
    if (ios_buf_append(out, buf, (size_t)(p - buf)))
        return IOS_DATA_CLOSE_NOW;
    c->answered++;
    return IOS_DATA_CLOSE_AFTER_WRITE;
}

/* What a well-formed request gets, by this server's policy: 0 for 200. */
static int refusal(const struct http_req *r, const struct cfg_http *cfg)
{
    if (r->method == HTTP_M_REFUSED)
        return 405;
    if (r->method == HTTP_M_UNKNOWN)
        return 501;
    if (r->has_te)
        return 501; /* chunked bodies are not supported */
    if (r->has_length && r->content_length > cfg->max_body_bytes)
        return 413;
    return 0;
}

static enum http_persist persistence(const struct http_req *r)
{
    if (r->conn_close)
        return PERSIST_CLOSE;
    if (r->minor == 0)
        return r->conn_keep_alive ? PERSIST_KEEP_ALIVE : PERSIST_CLOSE;
    return PERSIST_DEFAULT;
}

static int send_ok(const struct http_cache *hc, struct http_conn *c,
                   struct ios_buf *out, enum http_persist persist,
                   int is_head)
{
    const struct http_resp *r = &hc->ok[persist];
    size_t n = is_head ? r->head_len : r->len;
    if (ios_buf_append(out, r->bytes, n))
        return -ENOMEM;
    memcpy(out->data + out->len - n + OK_DATE_OFF, conn_date(c),
           HTTP_DATE_LEN);
    c->answered++;
    return 0;
}

/* Consumes what is left of a request body from in[pos, len). */
static size_t skip_body(struct http_conn *c, size_t pos, size_t len)
{
    size_t avail = len - pos;
    size_t take = c->body_left < avail ? (size_t)c->body_left : avail;
    c->body_left -= take;
    return pos + take;
}

static ssize_t http_data(const struct ios_handler *h, void *state,
                         const char *in, size_t len, struct ios_buf *out)
{
    struct http_conn *c = state;
    const struct http_cache *hc = hnd_host(h)->protocol_data;
    const struct cfg_http *cfg = &hnd_config(h)->http;
    size_t pos = skip_body(c, 0, len);

    while (pos < len) {
        /* The empty lines before a request line belong to the request: they
         * count toward its size, and stay unconsumed until it is whole, so
         * that the pump times them as an unfinished request
         * (http.header_timeout) instead of seeing a connection at rest.
         * No head may grow past the limit, so never look beyond it. */
        size_t avail = len - pos;
        size_t window = avail < cfg->max_header_bytes ? avail
                                                      : cfg->max_header_bytes;
        ssize_t empty = http_skip_empty_lines(in + pos, window);
        if (empty < 0)
            return send_error(c, out, 400, 0);
        const char *start = in + pos + empty;
        size_t head_window = window - (size_t)empty;
        size_t head;
        int status = http_head_parse(&c->head, start, head_window, &head);
        if (status == HTTP_HEAD_INCOMPLETE) {
            if (avail < cfg->max_header_bytes)
                return (ssize_t)pos; /* wait for the rest of this head */
            status = http_head_overflow(&c->head, start, head_window);
        }
        const struct http_req *r = &c->head.req; /* until the next parse */
        int is_head = r->method == HTTP_M_HEAD;
        if (!status)
            status = refusal(r, cfg);
        if (status)
            return send_error(c, out, status, is_head);

        enum http_persist persist = persistence(r);
        if (send_ok(hc, c, out, persist, is_head))
            return IOS_DATA_CLOSE_NOW;
        if (persist == PERSIST_CLOSE)
            return IOS_DATA_CLOSE_AFTER_WRITE;
        c->body_left = r->content_length;
        pos = skip_body(c, pos + (size_t)empty + head, len);
    }
    return (ssize_t)pos;
}

/* ios_handler.requests_answered: one per response appended. */
static unsigned http_requests_answered(const struct ios_handler *h, void *state)
{
    (void)h;
    struct http_conn *c = state;
    unsigned n = c->answered;
    c->answered = 0;
    return n;
}

/* Inside a body, the bytes still to come are this request's, which the
 * adopter's handler could not tell from a next head.  A head partly
 * received is not consumed: it travels with the connection as input. */
static int http_at_boundary(const struct ios_handler *h, void *state)
{
    (void)h;
    const struct http_conn *c = state;
    return c->body_left == 0;
}

static int http_setup(struct ios_handler *h)
{
    struct hnd_host *hh = hnd_host(h);
    const struct cfg_http *cfg = &hh->cfg->http;
    if (!http_header_value_ok(cfg->content_type)) /* a config not from cfg_load */
        return -EINVAL;

    struct http_cache *hc = calloc(1, sizeof *hc);
    if (!hc)
        return -ENOMEM;
    hh->protocol_data = hc;
    for (int i = 0; i < PERSIST_COUNT; i++) {
        int rc = build_ok(&hc->ok[i], cfg, (enum http_persist)i);
        if (rc) {
            http_teardown(h);
            return rc;
        }
    }
    /* A half-received head is the slowloris' weapon: its time is bounded. */
    h->request_timeout_ms = cfg->header_timeout_ms;
    h->conn_state_size = sizeof(struct http_conn);
    h->open = http_open;
    h->data = http_data;
    h->close = http_close;
    return 0;
}

/* A keep-alive connection idle between requests loses nothing when a
 * drain closes it: the client retries on a new one (as nginx's graceful
 * shutdown does). */
const struct hnd_protocol hnd_http = {"http",           http_setup, http_teardown,
                                      http_at_boundary, 1,          http_requests_answered};
