/* echo and upper: stateless, every byte answered as soon as it arrives. */
#include "handler_protocol.h"

static int echo_open(const struct ios_handler *h, void *state)
{
    (void)h;
    (void)state;
    return 0;
}

static void echo_close(const struct ios_handler *h, void *state)
{
    (void)h;
    (void)state;
}

static ssize_t echo_data(const struct ios_handler *h, void *state,
                         const char *in, size_t len, struct ios_buf *out)
{
    (void)h;
    (void)state;
    if (ios_buf_append(out, in, len))
        return IOS_DATA_CLOSE_NOW;
    return (ssize_t)len;
}

static ssize_t upper_data(const struct ios_handler *h, void *state,
                          const char *in, size_t len, struct ios_buf *out)
{
    (void)h;
    (void)state;
    /* Transform straight into out's spare room: no bounce buffer. */
    if (ios_buf_reserve(out, len))
        return IOS_DATA_CLOSE_NOW;
    unsigned char *dst = (unsigned char *)out->data + out->len;
    const unsigned char *src = (const unsigned char *)in;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = src[i];
        /* ASCII only, locale-free: toupper() may change bytes >= 0x80
         * under some locales. */
        dst[i] = (c >= 'a' && c <= 'z') ? (unsigned char)(c - 32) : c;
    }
    out->len += len;
    return (ssize_t)len;
}

/* Every byte is answered as it arrives: between any two, a session may
 * move to another worker. */
static int always_at_boundary(const struct ios_handler *h, void *state)
{
    (void)h;
    (void)state;
    return 1;
}

static void stateless_setup(struct ios_handler *h)
{
    h->conn_state_size = 0;
    h->open = echo_open;
    h->close = echo_close;
}

static int echo_setup(struct ios_handler *h)
{
    stateless_setup(h);
    h->data = echo_data;
    return 0;
}

static int upper_setup(struct ios_handler *h)
{
    stateless_setup(h);
    h->data = upper_data;
    return 0;
}

/* An idle session may be about to type: a drain lets it finish (0). */
/* requests_answered NULL: a read is a request. */
const struct hnd_protocol hnd_echo = {"echo", echo_setup, NULL, always_at_boundary, 0, NULL};
const struct hnd_protocol hnd_upper = {"upper", upper_setup, NULL, always_at_boundary, 0, NULL};
