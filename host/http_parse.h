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

/*
 * Looks in p[0, len) for the empty line (CRLF or bare LF) ending a head
 * that starts at p[0] with a non-empty line.  Returns the head's length,
 * empty line included, or 0 when it is not complete yet.
 * *resume: 0 for a head not searched yet; after an incomplete search it
 * holds where the next search of the same (longer) input may start, so
 * a head that trickles in byte by byte is not rescanned from its start.
 */
size_t http_head_end(const char *p, size_t len, size_t *resume);

/*
 * Parses a complete head p[0, len) as returned by http_head_end.
 * 0 and *r filled, or the status to answer with: 400 (malformed request
 * line, header line or Content-Length) or 505 (a well-formed version
 * other than HTTP/1.0 and HTTP/1.1).
 */
int http_parse_head(const char *p, size_t len, struct http_req *r);

/* IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT"), not NUL-terminated. */
#define HTTP_DATE_LEN 29
void http_format_date(time_t t, char out[HTTP_DATE_LEN]);

#endif
