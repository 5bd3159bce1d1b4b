/* The HTTP/1.x request-head parser behind the http handler: no allocation,
 * no state beyond what the caller keeps, so it can be tested on its own. */
#ifndef IOSERVE_HTTP_PARSE_H
#define IOSERVE_HTTP_PARSE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

enum http_method {
    HTTP_M_NONE,    /* the request line did not get as far as its method */
    HTTP_M_GET,
    HTTP_M_HEAD,
    HTTP_M_REFUSED, /* a standard method this server does not allow: 405 */
    HTTP_M_UNKNOWN, /* a valid token naming no method we know: 501 */
};

struct http_req {
    enum http_method method;
    int minor;               /* HTTP/1.<minor>: 0 or 1 */
    int conn_close;          /* Connection lists "close" */
    int conn_keep_alive;     /* Connection lists "keep-alive" */
    int has_te;              /* Transfer-Encoding present, whatever its value */
    int has_length;          /* Content-Length present */
    int has_host;            /* a (valid) Host line was seen */
    uint64_t content_length; /* UINT64_MAX when it does not fit */
};

/* RFC 9112 §2.2 asks a server to ignore at least one empty line received
 * before a request line (a client's leftover after a body); more than this
 * many are no leftover but a way to hold a connection: 400. */
#define HTTP_MAX_EMPTY_LINES 8

/* Bytes of the empty lines (CRLF or a bare LF) at the start of p, or -1
 * once there are more than HTTP_MAX_EMPTY_LINES of them.  A CR that ends p
 * is not counted: its LF may still come. */
ssize_t http_skip_empty_lines(const char *p, size_t len);

/* A head being parsed as it arrives: the caller keeps one per connection,
 * zeroed at first (next_line 0 = a new head). */
struct http_head_parse {
    struct http_req req; /* what the lines parsed so far said */
    size_t next_line;    /* offset of the first line not parsed yet */
};

#define HTTP_HEAD_INCOMPLETE (-1)

/*
 * Parses the head that starts at p[0] with its request line, a complete
 * line at a time and in one pass: each line is validated as soon as its
 * LF is in p[0, len), and a head that trickles in is never rescanned, since
 * the parse resumes at st->next_line.  Call again with the same head start
 * and more bytes after HTTP_HEAD_INCOMPLETE.  Returns
 *   0      the head is complete: st->req says what it asked, *head_len is
 *          its length, empty line included; st is ready for the next head;
 *   HTTP_HEAD_INCOMPLETE  no empty line yet (nothing wrong so far);
 *   400 or 505  the status to answer with: a malformed request line,
 *          header line or Content-Length, a missing, repeated or invalid
 *          Host (RFC 9112 §3.2: HTTP/1.1 needs exactly one), or a
 *          well-formed version other than HTTP/1.0 and HTTP/1.1.  st is
 *          reset for the next head, but st->req.method still tells the
 *          method, if the request line got that far (a HEAD's error reply
 *          has no body).
 */
int http_head_parse(struct http_head_parse *st, const char *p, size_t len,
                    size_t *head_len);

/* The status for a head that reached the size limit unfinished, where
 * p[0, len) is what arrived of it and st what http_head_parse made of it:
 * 414 while the request line is unfinished and its target is the long part
 * (RFC 9112 §3), 431 once the request line is whole (the header fields are
 * too large), 400 when what arrived is no request line.  Sets
 * st->req.method when the method is whole. */
int http_head_overflow(struct http_head_parse *st, const char *p, size_t len);

/* The same for a head known to be whole: p[0, len) is exactly one head,
 * empty line included (400 otherwise).  For tests and tools. */
int http_parse_head(const char *p, size_t len, struct http_req *r);

/* IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT"), not NUL-terminated. */
#define HTTP_DATE_LEN 29
void http_format_date(time_t t, char out[HTTP_DATE_LEN]);

/* 1 when s (NULL counts as empty) may be copied into a response header:
 * no control character, so a CR or LF cannot inject headers or split the
 * response (http.content_type). */
int http_header_value_ok(const char *s);

#endif
