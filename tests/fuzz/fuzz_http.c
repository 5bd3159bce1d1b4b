/*
 * Fuzz target: the http handler (host/handler_http.c, host/http_parse.c),
 * fed the way the pump feeds it.
 *
 * Input: 4 parameter bytes, then the bytes a client sends.
 *   p[0]  http.max_header_bytes = 256 + p[0] * 16
 *   p[1]  http.max_body_bytes, one of 0, 7, 1000, 1 MiB
 *   p[2..3]  seed of the split: how the client bytes are cut into reads
 *
 * The bytes are delivered in reads of pseudo-random sizes; after each one
 * data() sees every byte it has not consumed yet, as the pump hands them
 * back (and the pump's max_input rule applies).  The same bytes are then
 * fed in one read, and the two runs must answer with the same bytes (Date
 * values masked) and end the same way: how a request is cut by the network
 * must never change what the server says.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "handler.h"
#include "http_parse.h"

struct run {
    struct ios_buf out;
    ssize_t end; /* 0 = still open, IOS_DATA_CLOSE_*, or -3 = max_input */
    size_t consumed;
};

static struct ios_config g_cfg;
static struct hnd_host g_host;
static struct ios_handler g_h;
static int g_ready;

static void setup_once(void)
{
    if (g_ready)
        return;
    cfg_defaults(&g_cfg);
    free(g_cfg.handler);
    g_cfg.handler = strdup("http");
    free(g_cfg.http.body);
    g_cfg.http.body = strdup("fuzz body\n");
    g_h.struct_size = sizeof g_h;
    g_h.host = &g_host;
    if (!g_cfg.handler || !g_cfg.http.body || hnd_setup(&g_h, &g_cfg) != 0)
        abort();
    g_ready = 1;
}

static uint32_t next_rand(uint32_t *s)
{
    *s = *s * 1103515245u + 12345u;
    return *s >> 8;
}

static void feed(const uint8_t *data, size_t size, uint32_t seed, int split,
                 struct run *r)
{
    memset(r, 0, sizeof *r);
    void *state = malloc(g_h.conn_state_size);
    struct ios_buf in = {0};
    if (!state || g_h.open(&g_h, state) != 0)
        abort();
    size_t pos = 0;
    while (pos < size) {
        size_t n = size - pos;
        if (split) {
            uint32_t x = next_rand(&seed);
            /* mostly small reads, now and then a large one */
            size_t cap = (x & 3) == 0 ? 4096 : (x & 3) == 1 ? 64 : 8;
            size_t want = 1 + (x >> 2) % cap;
            if (want < n)
                n = want;
        }
        if (ios_buf_append(&in, data + pos, n) != 0)
            abort();
        pos += n;
        size_t len = ios_buf_pending(&in);
        ssize_t used = g_h.data(&g_h, state, in.data + in.off, len, &r->out);
        if (used == IOS_DATA_CLOSE_AFTER_WRITE || used == IOS_DATA_CLOSE_NOW) {
            r->end = used;
            break;
        }
        if (used < 0 || (size_t)used > len)
            abort(); /* the handler broke its contract */
        ios_buf_consume(&in, (size_t)used);
        r->consumed += (size_t)used;
        if (ios_buf_pending(&in) > g_cfg.max_input) {
            r->end = -3;
            break;
        }
    }
    g_h.close(&g_h, state);
    free(state);
    ios_buf_free(&in);
}

/* Date values differ from one second to the next: blank them. */
static void mask_dates(struct ios_buf *b)
{
    static const char key[] = "\r\nDate: ";
    if (!b->data)
        return;
    char *p = b->data + b->off, *end = b->data + b->len;
    while (p && p < end) {
        p = memmem(p, (size_t)(end - p), key, sizeof key - 1);
        if (!p)
            break;
        p += sizeof key - 1;
        for (int i = 0; i < HTTP_DATE_LEN && p < end; i++)
            *p++ = '#';
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 4)
        return 0;
    setup_once();
    static const size_t bodies[] = {0, 7, 1000, 1048576};
    g_cfg.http.max_header_bytes = 256 + (size_t)data[0] * 16;
    g_cfg.http.max_body_bytes = bodies[data[1] & 3];
    uint32_t seed = (uint32_t)data[2] << 8 | data[3];
    data += 4;
    size -= 4;

    struct run split, whole;
    feed(data, size, seed, 1, &split);
    feed(data, size, 0, 0, &whole);
    mask_dates(&split.out);
    mask_dates(&whole.out);
    size_t a = ios_buf_pending(&split.out), b = ios_buf_pending(&whole.out);
    if (a != b || (a && memcmp(split.out.data + split.out.off,
                               whole.out.data + whole.out.off, a) != 0)) {
        fprintf(stderr, "fuzz_http: split and whole input answered "
                        "differently (%zu vs %zu bytes)\n", a, b);
        abort();
    }
    if (split.end != whole.end) {
        fprintf(stderr, "fuzz_http: split input ended %zd, whole input %zd\n",
                split.end, whole.end);
        abort();
    }
    if (a && memcmp(split.out.data + split.out.off, "HTTP/1.1 ", 9) != 0)
        abort(); /* every answer is a status line first */
    ios_buf_free(&split.out);
    ios_buf_free(&whole.out);
    return 0;
}
