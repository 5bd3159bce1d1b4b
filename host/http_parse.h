/* The HTTP/1.x request-head parser behind the http handler: no allocation,
 * no state beyond what the caller keeps, so it can be tested on its own. */
#ifndef IOSERVE_HTTP_PARSE_H
#define IOSERVE_HTTP_PARSE_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

enum http_method {
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
    uint64_t content_length; /* UINT64_MAX when it does not fit */
};

/* Bytes of CR and LF at the start of p: RFC 9112 §2.2 asks servers to
 * ignore empty lines received before a request line. */
size_t http_skip_empty_lines(const char *p, size_t len);

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
 *          header line or Content-Length, or a well-formed version other
 *          than HTTP/1.0 and HTTP/1.1.  st is reset.
 */
int http_head_parse(struct http_head_parse *st, const char *p, size_t len,
                    size_t *head_len);

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
