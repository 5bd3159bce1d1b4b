/* The handler registry and the two stateless protocols, echo and upper.
 * (http has its own test_http.) */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "handler.h"

struct fx {
    struct ios_config cfg;
    struct hnd_host host;
    struct ios_handler h;
    void *state;
    struct ios_buf out;
};

/* A handler set up from the default config with cfg.handler = name. */
static int fx_init(struct fx *f, const char *name)
{
    memset(f, 0, sizeof *f);
    cfg_defaults(&f->cfg);
    free(f->cfg.handler);
    f->cfg.handler = name ? strdup(name) : NULL;
    f->h.struct_size = sizeof f->h;
    f->h.host = &f->host;
    /* prove hnd_setup sets every hnd_host field itself */
    memset(&f->host, 0xa5, sizeof f->host);
    return hnd_setup(&f->h, &f->cfg);
}

static void fx_open(struct fx *f)
{
    /* a model may hand over a NULL or garbage state when the size is 0 */
    f->state = f->h.conn_state_size ? malloc(f->h.conn_state_size) : NULL;
    if (f->h.conn_state_size) {
        assert_non_null(f->state);
        memset(f->state, 0xa5, f->h.conn_state_size);
    }
    assert_int_equal(f->h.open(&f->h, f->state), 0);
}

static void fx_done(struct fx *f)
{
    if (f->h.close)
        f->h.close(&f->h, f->state);
    free(f->state);
    ios_buf_free(&f->out);
    hnd_teardown(&f->h);
    cfg_free(&f->cfg);
}

static ssize_t send_bytes(struct fx *f, const void *p, size_t n)
{
    return f->h.data(&f->h, f->state, p, n, &f->out);
}

/* ----------------------------------------------------------- registry */

static void test_names(void **st)
{
    (void)st;
    size_t n = 0;
    while (hnd_names[n])
        n++;
    assert_int_equal(n, 3);
    assert_string_equal(hnd_names[0], "echo");
    assert_string_equal(hnd_names[1], "upper");
    assert_string_equal(hnd_names[2], "http");
}

static void test_setup_each(void **st)
{
    (void)st;
    for (size_t i = 0; hnd_names[i]; i++) {
        struct fx f;
        assert_int_equal(fx_init(&f, hnd_names[i]), 0);
        assert_string_equal(f.h.protocol, hnd_names[i]);
        assert_non_null(f.h.open);
        assert_non_null(f.h.data);
        assert_non_null(f.h.close);
        assert_ptr_equal(hnd_config(&f.h), &f.cfg);
        assert_ptr_equal(hnd_host(&f.h), &f.host);
        assert_string_equal(f.host.protocol->name, hnd_names[i]);
        if (strcmp(hnd_names[i], "http") == 0)
            assert_non_null(f.host.protocol_data);
        else
            assert_null(f.host.protocol_data);
        fx_open(&f);
        fx_done(&f);
    }
}

static void test_setup_unknown(void **st)
{
    (void)st;
    struct fx f;
    /* names match exactly */
    static const char *const unknown[] = {"gopher", "", "ECHO", "echo ", "htt", NULL};
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
        assert_int_equal(fx_init(&f, unknown[i]), -EINVAL);
        assert_null(f.host.protocol);
        fx_done(&f);
    }

    /* without somewhere to keep its state, set-up must refuse */
    memset(&f, 0, sizeof f);
    cfg_defaults(&f.cfg);
    assert_int_equal(hnd_setup(&f.h, &f.cfg), -EINVAL);
    hnd_teardown(&f.h);
    cfg_free(&f.cfg);
}

static void test_teardown_twice(void **st)
{
    (void)st;
    struct fx f;
    assert_int_equal(fx_init(&f, "http"), 0);
    hnd_teardown(&f.h);
    assert_null(f.host.protocol_data);
    hnd_teardown(&f.h);
    /* set up again on the same handler, as a reload might */
    assert_int_equal(hnd_setup(&f.h, &f.cfg), 0);
    assert_non_null(f.host.protocol_data);
    fx_done(&f);
}

/* ------------------------------------------------------- echo / upper */

static void all_bytes(unsigned char b[256])
{
    for (int i = 0; i < 256; i++)
        b[i] = (unsigned char)i;
}

static void test_echo_all_bytes(void **st)
{
    (void)st;
    struct fx f;
    assert_int_equal(fx_init(&f, "echo"), 0);
    assert_int_equal(f.h.conn_state_size, 0);
    fx_open(&f);
    unsigned char b[256];
    all_bytes(b);
    assert_int_equal(send_bytes(&f, b, sizeof b), 256);
    assert_int_equal(ios_buf_pending(&f.out), 256);
    assert_memory_equal(f.out.data + f.out.off, b, 256);
    fx_done(&f);
}

static void test_echo_appends(void **st)
{
    (void)st;
    struct fx f;
    assert_int_equal(fx_init(&f, "echo"), 0);
    fx_open(&f);
    assert_int_equal(send_bytes(&f, "", 0), 0);
    assert_int_equal(ios_buf_pending(&f.out), 0);
    assert_int_equal(send_bytes(&f, "abc", 3), 3);
    assert_int_equal(send_bytes(&f, "de\0f", 4), 4);
    /* output already partly sent: new bytes go after what is pending */
    ios_buf_consume(&f.out, 2);
    assert_int_equal(send_bytes(&f, "g", 1), 1);
    assert_int_equal(ios_buf_pending(&f.out), 6);
    assert_memory_equal(f.out.data + f.out.off, "cde\0fg", 6);

    /* larger than any initial buffer, forcing growth */
    size_t n = 1 << 20;
    char *big = malloc(n);
    assert_non_null(big);
    for (size_t i = 0; i < n; i++)
        big[i] = (char)(i * 7 + 3);
    ios_buf_free(&f.out);
    assert_int_equal(send_bytes(&f, big, n), (ssize_t)n);
    assert_int_equal(ios_buf_pending(&f.out), n);
    assert_memory_equal(f.out.data, big, n);
    free(big);
    fx_done(&f);
}

static unsigned char upper_of(unsigned char c)
{
    static const char lower[] = "abcdefghijklmnopqrstuvwxyz";
    static const char upper[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ";
    for (int i = 0; i < 26; i++)
        if (c == (unsigned char)lower[i])
            return (unsigned char)upper[i];
    return c;
}

static void test_upper_all_bytes(void **st)
{
    (void)st;
    struct fx f;
    assert_int_equal(fx_init(&f, "upper"), 0);
    assert_int_equal(f.h.conn_state_size, 0);
    fx_open(&f);
    unsigned char b[256], want[256];
    all_bytes(b);
    for (int i = 0; i < 256; i++)
        want[i] = upper_of(b[i]);
    assert_int_equal(send_bytes(&f, b, sizeof b), 256);
    assert_int_equal(ios_buf_pending(&f.out), 256);
    assert_memory_equal(f.out.data + f.out.off, want, 256);
    /* the input is left alone */
    for (int i = 0; i < 256; i++)
        assert_int_equal(b[i], i);
    fx_done(&f);
}

static void test_upper_appends(void **st)
{
    (void)st;
    struct fx f;
    assert_int_equal(fx_init(&f, "upper"), 0);
    fx_open(&f);
    assert_int_equal(send_bytes(&f, "", 0), 0);
    assert_int_equal(send_bytes(&f, "Hello, ", 7), 7);
    ios_buf_consume(&f.out, 3);
    assert_int_equal(send_bytes(&f, "w\xc3\xa9rld{z}`a@\n", 13), 13);
    assert_int_equal(ios_buf_pending(&f.out), 17);
    assert_memory_equal(f.out.data + f.out.off,
                        "LO, W\xc3\xa9RLD{Z}`A@\n", 17);
    fx_done(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_setup_each),
        cmocka_unit_test(test_setup_unknown),
        cmocka_unit_test(test_teardown_twice),
        cmocka_unit_test(test_echo_all_bytes),
        cmocka_unit_test(test_echo_appends),
        cmocka_unit_test(test_upper_all_bytes),
        cmocka_unit_test(test_upper_appends),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
