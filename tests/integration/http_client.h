/* A small HTTP/1.1 client for the scenarios that talk to handler = "http":
 * it reads responses one at a time and checks them, failing the cmocka test
 * with the reason. */
#ifndef IOSERVE_IT_HTTP_CLIENT_H
#define IOSERVE_IT_HTTP_CLIENT_H

#include <stddef.h>
#include <string.h>

/* The body and head limit the scenarios configure, and the config group
 * that sets them, with `more` settings of the group. */
#define IT_HTTP_BODY "Hello from ioserve-it!\n"
#define IT_HTTP_MAX_HEADER 8192
#define IT_HTTP_GROUP(more)                                                    \
    "http = { body = \"Hello from ioserve-it!\\n\"; max_header_bytes = 8192; " \
    more " };"

struct hconn {
    int fd;
    char buf[256 * 1024];
    size_t len;
    int eof;
    int reset; /* the eof was a reset (ECONNRESET), not a FIN */
};

struct hresp {
    int status;
    char head[IT_HTTP_MAX_HEADER];
    long content_length; /* -1 when absent */
    int conn_close;      /* "Connection: close" present */
    char body[4096];
    size_t body_len;
};

/* Why the last hread failed. */
extern char hwhy[512];

/* Reads one response.  head_only: a reply to HEAD (no body follows).
 * 0 or -1 with hwhy set. */
int hread(struct hconn *c, int head_only, struct hresp *r);
/* Connects to the group's server, or fails the test. */
struct hconn *hopen(void);
void hclose(struct hconn *c);
/* Sends the whole request, or fails the test. */
void hsend(struct hconn *c, const char *req, size_t n);
#define HSEND(c, s) hsend((c), (s), strlen(s))
/* Reads a response and checks its status (and the body for 200 GET). */
void hexpect(struct hconn *c, int head_only, int status, const char *what);
/* Nothing more arrives on c within wait_ms (and it is neither closed nor
 * reset). */
void hexpect_quiet(struct hconn *c, int wait_ms, const char *what);
/* The server closes c within 3 s, with no byte before the close: EOF, not
 * a reset (a reset may destroy a reply the client has not read yet). */
void hexpect_closed(struct hconn *c, const char *what);

#endif
