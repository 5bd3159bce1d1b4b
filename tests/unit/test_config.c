/*
 * Unit tests for host/config.c: defaults, every validation error and its
 * wording, -o overrides, path resolution, model paths, plugin knobs and the
 * typo suggestions.  Each test writes its config to a mkstemp file in /tmp
 * and removes it in the teardown.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "addr.h"
#include "config.h"
#include "config_ints.h"
#include "config_report.h"

#ifndef TEST_SOURCE_DIR
#error "TEST_SOURCE_DIR must name the tests/ directory"
#endif

#define CONFIGS TEST_SOURCE_DIR "/unit/configs"

struct fx {
    char path[64];
    int have_file;
    struct ios_config cfg;
    char err[1024];
};

static int fx_setup(void **state)
{
    struct fx *fx = calloc(1, sizeof *fx);

    assert_non_null(fx);
    *state = fx;
    return 0;
}

static int fx_teardown(void **state)
{
    struct fx *fx = *state;

    cfg_free(&fx->cfg);
    if (fx->have_file)
        unlink(fx->path);
    free(fx);
    return 0;
}

#define assert_contains(hay, needle)                                          \
    do {                                                                      \
        const char *h_ = (hay), *n_ = (needle);                               \
        if (!strstr(h_, n_))                                                  \
            fail_msg("\"%s\" does not contain \"%s\"", h_, n_);              \
    } while (0)

#define assert_prefix(str, pre)                                               \
    do {                                                                      \
        const char *s_ = (str), *p_ = (pre);                                  \
        if (strncmp(s_, p_, strlen(p_)) != 0)                                 \
            fail_msg("\"%s\" does not start with \"%s\"", s_, p_);           \
    } while (0)

static void write_file(struct fx *fx, const char *text)
{
    int fd;
    size_t len = strlen(text);

    if (fx->have_file)
        unlink(fx->path);
    strcpy(fx->path, "/tmp/ioserve-cfg-XXXXXX");
    fd = mkstemp(fx->path);
    assert_true(fd >= 0);
    fx->have_file = 1;
    assert_int_equal(write(fd, text, len), (ssize_t)len);
    close(fd);
}

/* Loads `text` with the NULL-terminated overrides that follow. */
static int load(struct fx *fx, const char *text, ...)
{
    char *ov[16];
    size_t n = 0;
    va_list ap;

    va_start(ap, text);
    while (n < 16 && (ov[n] = va_arg(ap, char *)))
        n++;
    va_end(ap);
    cfg_free(&fx->cfg);
    write_file(fx, text);
    fx->err[0] = '\0';
    return cfg_load(&fx->cfg, fx->path, ov, n, fx->err, sizeof fx->err);
}

static void load_ok(struct fx *fx, const char *text)
{
    if (load(fx, text, (char *)NULL) != 0)
        fail_msg("unexpected error: %s", fx->err);
}

/* The load fails with "FILE:LINE: " followed by something containing msg. */
static void load_fails_at(struct fx *fx, const char *text, int line,
                          const char *msg)
{
    char prefix[128];

    assert_int_equal(load(fx, text, (char *)NULL), -1);
    snprintf(prefix, sizeof prefix, "%s:%d: ", fx->path, line);
    assert_prefix(fx->err, prefix);
    assert_contains(fx->err, msg);
}

/* The load fails with exactly "FILE:LINE: msg". */
static void load_fails_exactly(struct fx *fx, const char *text, int line,
                               const char *msg)
{
    char want[256];

    assert_int_equal(load(fx, text, (char *)NULL), -1);
    snprintf(want, sizeof want, "%s:%d: %s", fx->path, line, msg);
    assert_string_equal(fx->err, want);
}

/* A failed load leaves the struct zeroed (safe to free again). */
static void assert_reset(const struct ios_config *cfg)
{
    assert_null(cfg->file);
    assert_null(cfg->listen);
    assert_null(cfg->models[0]);
    assert_null(cfg->plugin_dir);
    assert_int_equal(cfg->lc_valid, 0);
}

static char *exe_dir(char *buf, size_t len)
{
    ssize_t n = readlink("/proc/self/exe", buf, len - 1);

    assert_true(n > 0);
    buf[n] = '\0';
    *strrchr(buf, '/') = '\0';
    return buf;
}

static int ends_with(const char *s, const char *suffix)
{
    size_t ls = strlen(s), lx = strlen(suffix);

    return ls >= lx && strcmp(s + ls - lx, suffix) == 0;
}

/* ------------------------------------------------------------ defaults */

static void check_default_values(const struct ios_config *cfg)
{
    const struct sockaddr_in *sin =
        (const struct sockaddr_in *)&cfg->listen_addr;

    assert_string_equal(cfg->listen, "127.0.0.1:8080");
    assert_int_equal(sin->sin_family, AF_INET);
    assert_int_equal(ntohs(sin->sin_port), 8080);
    assert_int_equal(ntohl(sin->sin_addr.s_addr), INADDR_LOOPBACK);
    assert_int_equal(cfg->listen_addrlen, sizeof(struct sockaddr_in));
    assert_int_equal(cfg->backlog, 511);
    assert_int_equal(cfg->n_models, 1);
    assert_string_equal(cfg->models[0], "epoll");
    assert_null(cfg->models[1]);
    assert_non_null(cfg->plugin_dir);
    assert_int_equal(cfg->plugin_dir[0], '/');
    assert_string_equal(cfg->handler, "echo");
    assert_int_equal(cfg->workers, 1);
    assert_int_equal(cfg->max_connections, 10000);
    assert_int_equal(cfg->idle_timeout_ms, 60000);
    assert_int_equal(cfg->drain_timeout_ms, 30000);
    assert_int_equal(cfg->log_level, IOS_LOG_INFO);
    assert_null(cfg->pid_file);
    assert_null(cfg->user);
    assert_null(cfg->group);
    assert_int_equal(cfg->read_chunk, 16384);
    assert_int_equal(cfg->max_input, 65536);
    assert_int_equal(cfg->output_high_water, 262144);
    assert_string_equal(cfg->http.body, "Hello from ioserve\n");
    assert_string_equal(cfg->http.content_type, "text/plain");
    assert_int_equal(cfg->http.max_header_bytes, 8192);
    assert_int_equal(cfg->http.max_body_bytes, 1048576);
    assert_int_equal(cfg->http.header_timeout_ms, 10000);
}

static void test_defaults(void **state)
{
    struct fx *fx = *state;

    cfg_defaults(&fx->cfg);
    check_default_values(&fx->cfg);
    assert_null(fx->cfg.file);
    assert_int_equal(fx->cfg.lc_valid, 0);
    cfg_free(&fx->cfg);
    cfg_free(&fx->cfg); /* freeing twice is harmless */
}

static void test_empty_file_gives_defaults(void **state)
{
    struct fx *fx = *state;

    load_ok(fx, "# nothing set\n");
    check_default_values(&fx->cfg);
    assert_string_equal(fx->cfg.file, fx->path);
    assert_non_null(fx->cfg.dir);
    assert_int_equal(fx->cfg.dir[0], '/');
    assert_int_equal(fx->cfg.lc_valid, 1);
}

/* Why a test could not run here: main then exits 77, a skip for ctest. */
static char skipped_because[PATH_MAX + 128];

/* Next to the binary when that directory exists, else the installed one. */
static void test_default_plugin_dir(void **state)
{
    struct fx *fx = *state;
    char dir[PATH_MAX], want[PATH_MAX + 16];
    struct stat st;
    int made = 0;

    snprintf(want, sizeof want, "%s/plugins", exe_dir(dir, sizeof dir));
    if (stat(want, &st) != 0) {
        cfg_defaults(&fx->cfg);
        assert_true(ends_with(fx->cfg.plugin_dir, "/ioserve/plugins"));
        cfg_free(&fx->cfg);
        if (mkdir(want, 0755) != 0) {
            /* a read-only build tree: only the fallback was checked */
            snprintf(skipped_because, sizeof skipped_because,
                     "test_default_plugin_dir: cannot create %s (%s)", want, strerror(errno));
            skip();
        }
        made = 1;
    }
    cfg_defaults(&fx->cfg);
    assert_string_equal(fx->cfg.plugin_dir, want);
    cfg_free(&fx->cfg);
    if (made)
        rmdir(want);
}

static void test_real_config_loads(void **state)
{
    static const struct ios_knob blocking[] = {
        {"threads", IOS_KNOB_BOOL, 1, NULL, 0, 1, "thread per connection"},
        {"max_threads", IOS_KNOB_INT, 1024, NULL, 1, 100000, "thread cap"},
        IOS_KNOB_END,
    };
    static const struct ios_knob epoll[] = {
        {"edge_triggered", IOS_KNOB_BOOL, 0, NULL, 0, 1, "EPOLLET"},
        {"events_per_wait", IOS_KNOB_INT, 256, NULL, 1, 4096, "batch"},
        IOS_KNOB_END,
    };
    struct fx *fx = *state;
    const char *file = TEST_SOURCE_DIR "/../etc/ioserve.cfg";
    long long v;
    int b;

    if (cfg_load(&fx->cfg, file, NULL, 0, fx->err, sizeof fx->err) != 0)
        fail_msg("%s", fx->err);
    assert_string_equal(fx->cfg.listen, "127.0.0.1:8080");
    assert_int_equal(fx->cfg.n_models, 1);
    assert_string_equal(fx->cfg.models[0], "epoll");
    assert_string_equal(fx->cfg.handler, "echo");
    assert_non_null(fx->cfg.pid_file);
    assert_int_equal(fx->cfg.pid_file[0], '/');
    assert_true(ends_with(fx->cfg.pid_file, "/etc/../build/ioserve.pid"));
    assert_int_equal(cfg_check_knobs(&fx->cfg, "blocking", blocking,
                                     fx->err, sizeof fx->err), 0);
    assert_int_equal(cfg_check_knobs(&fx->cfg, "select", NULL, fx->err,
                                     sizeof fx->err), 0);
    assert_int_equal(cfg_check_knobs(&fx->cfg, "epoll", epoll, fx->err,
                                     sizeof fx->err), 0);
    assert_int_equal(cfg_knob_int(&fx->cfg, "epoll", epoll, "events_per_wait",
                                  &v), 0);
    assert_int_equal(v, 256);
    assert_int_equal(cfg_knob_bool(&fx->cfg, "blocking", blocking, "threads",
                                   &b), 0);
    assert_int_equal(b, 1);
}

/* ------------------------------------------------------ file-level errors */

static void test_missing_file(void **state)
{
    struct fx *fx = *state;
    const char *file = "/tmp/ioserve-does-not-exist.cfg";

    assert_int_equal(cfg_load(&fx->cfg, file, NULL, 0, fx->err,
                              sizeof fx->err), -1);
    assert_string_equal(fx->err, "/tmp/ioserve-does-not-exist.cfg: No such "
                                 "file or directory");
    assert_reset(&fx->cfg);
}

static void test_syntax_error(void **state)
{
    struct fx *fx = *state;

    load_fails_at(fx, "workers = 4;\nlisten = ;\n", 2, "syntax error");
    assert_reset(&fx->cfg);
    cfg_free(&fx->cfg); /* again: still harmless */
}

static void test_duplicate_setting(void **state)
{
    struct fx *fx = *state;

    load_fails_at(fx, "workers = 4;\nworkers = 5;\n", 2, "duplicate");
}

static void test_unknown_setting(void **state)
{
    struct fx *fx = *state;

    load_fails_exactly(fx, "workers = 2;\n\nwokers = 4;\n", 3,
                       "unknown setting 'wokers' (did you mean 'workers'?)");
    assert_reset(&fx->cfg);

    /* nothing close: no guess */
    load_fails_at(fx, "frobnicate = 1;\n", 1, "unknown setting 'frobnicate'");
    assert_null(strstr(fx->err, "did you mean"));
}

static void test_unknown_http_setting(void **state)
{
    struct fx *fx = *state;

    load_fails_exactly(fx, "http = {\n  bdy = \"x\";\n};\n", 2,
                       "unknown setting 'http.bdy' (did you mean 'http.body'?)");
}

static void test_include_relative_to_config(void **state)
{
    struct fx *fx = *state;
    char cwd[PATH_MAX];

    /* run from elsewhere: @include must still be found next to the file */
    assert_non_null(getcwd(cwd, sizeof cwd));
    assert_int_equal(chdir("/"), 0);
    assert_int_equal(cfg_load(&fx->cfg, CONFIGS "/include_main.cfg", NULL, 0,
                              fx->err, sizeof fx->err), 0);
    assert_int_equal(chdir(cwd), 0);
    assert_int_equal(fx->cfg.workers, 2);
    assert_int_equal(fx->cfg.max_connections, 123);
    cfg_free(&fx->cfg);

    assert_int_equal(cfg_load(&fx->cfg, CONFIGS "/include_bad.cfg", NULL, 0,
                              fx->err, sizeof fx->err), -1);
    assert_contains(fx->err, "include_bad_part.cfg:2: unknown setting "
                             "'wokers' (did you mean 'workers'?)");
}

/* An absolute @include is that file, not one below the config's folder;
 * its errors (wrapping integers included) are reported in it. */
static void test_include_absolute_path(void **state)
{
    struct fx *fx = *state;
    char part[] = "/tmp/ioserve-abs-XXXXXX", text[128], want[128], cwd[PATH_MAX];
    int fd = mkstemp(part);
    assert_true(fd >= 0);
    static const char body[] = "workers = 3;\nmax_connections = 77;\n";
    assert_int_equal(write(fd, body, strlen(body)), (ssize_t)strlen(body));
    close(fd);
    snprintf(text, sizeof text, "backlog = 9;\n@include \"%s\"\n", part);
    assert_non_null(getcwd(cwd, sizeof cwd));
    assert_int_equal(chdir("/"), 0);
    int rc = load(fx, text, (char *)NULL);
    assert_int_equal(chdir(cwd), 0);
    if (rc != 0)
        fail_msg("unexpected error: %s", fx->err);
    assert_int_equal(fx->cfg.backlog, 9);
    assert_int_equal(fx->cfg.workers, 3);
    assert_int_equal(fx->cfg.max_connections, 77);

    fd = open(part, O_WRONLY | O_TRUNC);
    assert_true(fd >= 0);
    static const char bad[] = "workers = 3;\nwokers = 4;\n";
    assert_int_equal(write(fd, bad, strlen(bad)), (ssize_t)strlen(bad));
    close(fd);
    assert_int_equal(load(fx, text, (char *)NULL), -1);
    unlink(part);
    snprintf(want, sizeof want, "%s:2: unknown setting 'wokers'", part);
    assert_prefix(fx->err, want);
    /* and the working directory is where it was */
    char after[PATH_MAX];
    assert_non_null(getcwd(after, sizeof after));
    assert_string_equal(after, cwd);
}

/* --------------------------------------------------------- integer ranges */

struct int_case {
    const char *path; /* "workers" or "http.max_header_bytes" */
    long long min, max;
    const char *extra; /* whatever the bounds need to pass cross-checks */
};

static const struct int_case int_cases[] = {
    {"backlog", 1, 65535, ""},
    {"workers", 1, 64, ""},
    {"max_connections", 1, 1000000, ""},
    {"read_chunk", 512, 1048576, ""},
    {"max_input", 1024, 67108864, "http = { max_header_bytes = 256; };\n"},
    {"output_high_water", 4096, 268435456, ""},
    {"http.max_header_bytes", 256, 1048576, "max_input = 67108864;\n"},
    {"http.max_body_bytes", 0, 1073741824, ""},
};

/* "NAME = VALUE;" at line 1, inside http = { } when the path says so. */
static void int_text(const struct int_case *c, const char *value, char *buf,
                     size_t len)
{
    if (strncmp(c->path, "http.", 5) == 0)
        snprintf(buf, len, "http = { %s = %s; };\n%s", c->path + 5, value,
                 c->extra);
    else
        snprintf(buf, len, "%s = %s;\n%s", c->path, value, c->extra);
}

static long long int_field(const struct ios_config *cfg, const char *path)
{
    if (!strcmp(path, "backlog")) return cfg->backlog;
    if (!strcmp(path, "workers")) return cfg->workers;
    if (!strcmp(path, "max_connections")) return cfg->max_connections;
    if (!strcmp(path, "read_chunk")) return (long long)cfg->read_chunk;
    if (!strcmp(path, "max_input")) return (long long)cfg->max_input;
    if (!strcmp(path, "output_high_water"))
        return (long long)cfg->output_high_water;
    if (!strcmp(path, "http.max_header_bytes"))
        return (long long)cfg->http.max_header_bytes;
    if (!strcmp(path, "http.max_body_bytes"))
        return (long long)cfg->http.max_body_bytes;
    fail_msg("no field for %s", path);
    return -1;
}

static void test_integer_settings(void **state)
{
    struct fx *fx = *state;
    char text[256], value[32], msg[160];
    size_t i;
    int j;

    for (i = 0; i < sizeof int_cases / sizeof int_cases[0]; i++) {
        const struct int_case *c = &int_cases[i];
        const long long ok[] = {c->min, c->max};
        const long long bad[] = {c->min - 1, c->max + 1};
        const char *wrong_type[] = {"\"4\"", "1.5", "true", "[1]"};

        snprintf(msg, sizeof msg, "'%s' must be an integer from %lld to %lld",
                 c->path, c->min, c->max);
        for (j = 0; j < 2; j++) {
            snprintf(value, sizeof value, "%lld", ok[j]);
            int_text(c, value, text, sizeof text);
            if (load(fx, text, (char *)NULL) != 0)
                fail_msg("%s: %s", text, fx->err);
            assert_int_equal(int_field(&fx->cfg, c->path), ok[j]);

            snprintf(value, sizeof value, "%lld", bad[j]);
            int_text(c, value, text, sizeof text);
            load_fails_at(fx, text, 1, msg);
            assert_contains(fx->err, value); /* "(got N)" */
        }
        for (j = 0; j < 4; j++) {
            int_text(c, wrong_type[j], text, sizeof text);
            load_fails_at(fx, text, 1, msg);
        }
    }
}

static void test_exact_type_message(void **state)
{
    struct fx *fx = *state;

    load_fails_exactly(fx, "\nworkers = \"4\";\n", 2,
                       "'workers' must be an integer from 1 to 64");
}

static void test_int64_values(void **state)
{
    struct fx *fx = *state;

    load_ok(fx, "http = { max_body_bytes = 1073741824L; };\n");
    assert_int_equal(fx->cfg.http.max_body_bytes, 1073741824);
    load_fails_at(fx, "http = { max_body_bytes = 5000000000L; };\n", 1,
                  "'http.max_body_bytes' must be an integer from 0 to "
                  "1073741824 (got 5000000000)");
}

/* Integers past 32 bits without L: libconfig 1.5 wraps them silently
 * (5000000000 -> 705032704), so they are refused with the fix. */
static void test_wrapping_int_literals(void **state)
{
    struct fx *fx = *state;
    if (!cfg_libconfig_wraps_ints()) {
        /* a libconfig that reads them right needs no refusal */
        load_ok(fx, "http = { max_body_bytes = 1000000000000; };\n");
        return;
    }
    load_fails_at(fx, "# 9999999999 in a comment\nhttp = {\n  body = \"9999999999\";\n"
                      "  max_body_bytes = 5000000000; };\n",
                  4, "integer 5000000000 does not fit in 32 bits");
    assert_contains(fx->err, "write 5000000000L");
    load_fails_at(fx, "workers = -2147483649;\n", 1, "integer -2147483649");

    /* in a file the config @includes, reported there */
    char part[] = "/tmp/ioserve-part-XXXXXX", text[128];
    int fd = mkstemp(part);
    assert_true(fd >= 0);
    static const char body[] = "workers = 2;\nhttp = { max_body_bytes = 4294967296; };\n";
    assert_int_equal(write(fd, body, strlen(body)), (ssize_t)strlen(body));
    close(fd);
    snprintf(text, sizeof text, "@include \"%s\"\n", strrchr(part, '/') + 1);
    assert_int_equal(load(fx, text, (char *)NULL), -1);
    unlink(part);
    char want[128];
    /* named as the @include wrote it, like libconfig's own errors there */
    snprintf(want, sizeof want, "%s:2: integer 4294967296 does not fit", strrchr(part, '/') + 1);
    assert_prefix(fx->err, want);

    assert_int_equal(load(fx, "", "http.max_body_bytes=3000000000", (char *)NULL), -1);
    assert_string_equal(fx->err, "-o http.max_body_bytes: integer 3000000000 does not "
                                 "fit in 32 bits, and libconfig would silently wrap "
                                 "it: write 3000000000L for a 64-bit integer");
    /* a bare word is text, whatever digits it holds */
    assert_int_equal(load(fx, "", "http.body=x:5000000000", (char *)NULL), 0);

    /* a config named relative to the working directory, in a folder of
     * its own: checked where it is, not below that folder again */
    write_file(fx, "workers = 5000000000;\n");
    char cwd[PATH_MAX];
    assert_non_null(getcwd(cwd, sizeof cwd));
    assert_int_equal(chdir("/"), 0);
    cfg_free(&fx->cfg);
    int rc = cfg_load(&fx->cfg, fx->path + 1, NULL, 0, fx->err, sizeof fx->err);
    assert_int_equal(chdir(cwd), 0);
    assert_int_equal(rc, -1);
    assert_contains(fx->err, "integer 5000000000 does not fit");
}

static void test_find_wrapping_int(void **state)
{
    (void)state;
    char lit[64];
    /* fits, or is no integer literal at all */
    assert_int_equal(cfg_find_wrapping_int("a = 2147483647; b = -2147483648;", lit,
                                           sizeof lit), 0);
    assert_int_equal(cfg_find_wrapping_int("a = 5000000000L; b = 9999999999LL;", lit,
                                           sizeof lit), 0);
    assert_int_equal(cfg_find_wrapping_int("a = 5000000000.5; b = 1e300; c = 3.0e+12;",
                                           lit, sizeof lit), 0);
    assert_int_equal(cfg_find_wrapping_int("s = \"5000000000 \\\" 6000000000\";", lit,
                                           sizeof lit), 0);
    assert_int_equal(cfg_find_wrapping_int("# 5000000000\n// 5000000000\n/* 5000000000\n*/",
                                           lit, sizeof lit), 0);
    assert_int_equal(cfg_find_wrapping_int("conn-5000000000 = 1; x_9999999999 = 2;", lit,
                                           sizeof lit), 0);
    /* wraps: line numbers count every kind of line break above */
    assert_int_equal(cfg_find_wrapping_int("a = 2147483648;", lit, sizeof lit), 1);
    assert_string_equal(lit, "2147483648");
    assert_int_equal(cfg_find_wrapping_int("/*\n\n*/ s = \"\n\";\nb = -2147483649;", lit,
                                           sizeof lit), 5);
    assert_string_equal(lit, "-2147483649");
    assert_int_equal(cfg_find_wrapping_int("h = 0x80000000;", lit, sizeof lit), 1);
    assert_string_equal(lit, "0x80000000");
    assert_int_equal(cfg_find_wrapping_int("x = 99999999999999999999999;", lit,
                                           sizeof lit), 1);
}

/* ------------------------------------------------------------- durations */

static void test_durations(void **state)
{
    static const char *const names[] = {"idle_timeout", "drain_timeout",
                                        "http.header_timeout"};
    struct fx *fx = *state;
    char text[128], msg[128];
    size_t i, j;

    for (i = 0; i < 3; i++) {
        const char *n = names[i];
        int in_http = strncmp(n, "http.", 5) == 0;
        const char *leaf = in_http ? n + 5 : n;
        struct {
            const char *value;
            unsigned ms; /* 0: must be refused */
        } cases[] = {
            {"5", 5000},  {"0.5", 500}, {"86400", 86400000},
            {"0.001", 1}, {"1.25", 1250},
            {"0", 0},     {"-1", 0},    {"0.0001", 0},
            {"86400.5", 0}, {"86401", 0}, {"\"5\"", 0}, {"true", 0},
        };

        snprintf(msg, sizeof msg, "'%s' must be a number of seconds from "
                 "0.001 to 86400", n);
        for (j = 0; j < sizeof cases / sizeof cases[0]; j++) {
            if (in_http)
                snprintf(text, sizeof text, "http = { %s = %s; };\n", leaf,
                         cases[j].value);
            else
                snprintf(text, sizeof text, "%s = %s;\n", leaf,
                         cases[j].value);
            if (!cases[j].ms) {
                load_fails_at(fx, text, 1, msg);
                continue;
            }
            if (load(fx, text, (char *)NULL) != 0)
                fail_msg("%s: %s", text, fx->err);
            assert_int_equal(i == 0   ? fx->cfg.idle_timeout_ms
                             : i == 1 ? fx->cfg.drain_timeout_ms
                                      : fx->cfg.http.header_timeout_ms,
                             cases[j].ms);
        }
    }
}

/* quit_delay: a duration where 0 (the default) means none, up to 600 s. */
static void test_quit_delay(void **state)
{
    struct fx *fx = *state;
    load_ok(fx, "workers = 1;\n");
    assert_int_equal(fx->cfg.quit_delay_ms, 0);
    load_ok(fx, "quit_delay = 0;\n");
    assert_int_equal(fx->cfg.quit_delay_ms, 0);
    load_ok(fx, "quit_delay = 6;\n");
    assert_int_equal(fx->cfg.quit_delay_ms, 6000);
    load_ok(fx, "quit_delay = 0.25;\n");
    assert_int_equal(fx->cfg.quit_delay_ms, 250);
    load_ok(fx, "quit_delay = 600;\n");
    assert_int_equal(fx->cfg.quit_delay_ms, 600000);
    static const char *const refused[] = {"-1", "600.5", "\"5\"", "true"};
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        char text[64];
        snprintf(text, sizeof text, "quit_delay = %s;\n", refused[i]);
        load_fails_at(fx, text, 1, "'quit_delay' must be a number of seconds from 0 to 600");
    }
}

/* -------------------------------------------------------- string choices */

static void test_handler(void **state)
{
    struct fx *fx = *state;

    load_ok(fx, "handler = \"http\";\n");
    assert_string_equal(fx->cfg.handler, "http");
    load_ok(fx, "handler = \"upper\";\n");
    assert_string_equal(fx->cfg.handler, "upper");

    load_fails_exactly(fx, "handler = \"ecko\";\n", 1,
                       "'handler' must be one of echo, upper, http, not 'ecko' "
                       "(did you mean 'echo'?)");

    load_fails_at(fx, "handler = \"websocket\";\n", 1,
                  "'handler' must be one of echo, upper, http, not "
                  "'websocket'");
    assert_null(strstr(fx->err, "did you mean"));
    load_fails_at(fx, "handler = 1;\n", 1, "'handler' must be a string");
}

static void test_log_level(void **state)
{
    static const struct {
        const char *name;
        enum ios_log_level level;
    } levels[] = {{"error", IOS_LOG_ERROR}, {"warn", IOS_LOG_WARN},
                  {"info", IOS_LOG_INFO}, {"debug", IOS_LOG_DEBUG}};
    struct fx *fx = *state;
    char text[64];
    size_t i;

    for (i = 0; i < 4; i++) {
        snprintf(text, sizeof text, "log_level = \"%s\";\n", levels[i].name);
        load_ok(fx, text);
        assert_int_equal(fx->cfg.log_level, levels[i].level);
    }
    load_fails_at(fx, "log_level = \"debgu\";\n", 1,
                  "'log_level' must be one of error, warn, info, debug, not "
                  "'debgu' (did you mean 'debug'?)");
    load_fails_at(fx, "log_level = 3;\n", 1, "'log_level' must be a string");
}

static void test_model(void **state)
{
    struct fx *fx = *state;
    const char *msg = "'model' must be a model name or a list of 1 to 8";

    load_ok(fx, "model = \"select\";\n");
    assert_int_equal(fx->cfg.n_models, 1);
    assert_string_equal(fx->cfg.models[0], "select");
    assert_null(fx->cfg.models[1]);

    load_ok(fx, "model = [\"uring\", \"epoll\"];\n");
    assert_int_equal(fx->cfg.n_models, 2);
    assert_string_equal(fx->cfg.models[0], "uring");
    assert_string_equal(fx->cfg.models[1], "epoll");

    load_ok(fx, "model = (\"a\", \"b\", \"c\", \"d\", \"e\", \"f\", \"g\", "
                "\"h\");\n");
    assert_int_equal(fx->cfg.n_models, CFG_MAX_MODELS);
    assert_string_equal(fx->cfg.models[7], "h");

    load_fails_at(fx, "model = [\"a\", \"b\", \"c\", \"d\", \"e\", \"f\", "
                      "\"g\", \"h\", \"i\"];\n", 1, msg);
    load_fails_at(fx, "model = [];\n", 1, msg);
    load_fails_at(fx, "model = \"\";\n", 1, msg);
    load_fails_at(fx, "model = [\"epoll\", \"\"];\n", 1, msg);
    load_fails_at(fx, "model = (\"epoll\", 3);\n", 1, msg);
    load_fails_at(fx, "model = 3;\n", 1, msg);
    load_fails_at(fx, "model = { epoll = 1; };\n", 1, msg);
}

/* ---------------------------------------------------------------- listen */

static void test_parse_listen_good(void **state)
{
    struct sockaddr_storage ss;
    socklen_t len;
    char err[256];
    const struct sockaddr_in *sin = (const struct sockaddr_in *)&ss;
    const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&ss;
    struct in6_addr any6 = IN6ADDR_ANY_INIT;

    (void)state;
    assert_int_equal(addr_parse("10.1.2.3:8080", &ss, &len, err,
                                      sizeof err), 0);
    assert_int_equal(sin->sin_family, AF_INET);
    assert_int_equal(len, sizeof *sin);
    assert_int_equal(ntohs(sin->sin_port), 8080);
    assert_int_equal(ntohl(sin->sin_addr.s_addr), 0x0a010203);

    assert_int_equal(addr_parse("*:80", &ss, &len, err, sizeof err), 0);
    assert_int_equal(ntohl(sin->sin_addr.s_addr), INADDR_ANY);
    assert_int_equal(ntohs(sin->sin_port), 80);

    assert_int_equal(addr_parse("localhost:0", &ss, &len, err,
                                      sizeof err), 0);
    assert_int_equal(ntohl(sin->sin_addr.s_addr), INADDR_LOOPBACK);
    assert_int_equal(ntohs(sin->sin_port), 0);

    assert_int_equal(addr_parse("0.0.0.0:65535", &ss, &len, err,
                                      sizeof err), 0);
    assert_int_equal(ntohs(sin->sin_port), 65535);

    assert_int_equal(addr_parse("[::1]:8443", &ss, &len, err,
                                      sizeof err), 0);
    assert_int_equal(sin6->sin6_family, AF_INET6);
    assert_int_equal(len, sizeof *sin6);
    assert_int_equal(ntohs(sin6->sin6_port), 8443);
    assert_true(IN6_IS_ADDR_LOOPBACK(&sin6->sin6_addr));

    assert_int_equal(addr_parse("[::]:0", &ss, &len, err, sizeof err),
                     0);
    assert_memory_equal(&sin6->sin6_addr, &any6, sizeof any6);
}

static void test_parse_listen_bad(void **state)
{
    static const struct {
        const char *text, *msg;
    } cases[] = {
        {"example.com:80", "host 'example.com' is not an IPv4 address"},
        {"256.1.1.1:80", "host '256.1.1.1'"},
        {":80", "host ''"},
        {"1.2.3.4:65536", "port '65536' is not a number from 0 to 65535"},
        {"1.2.3.4:99999999", "port '99999999'"},
        {"1.2.3.4:", "port ''"},
        {"1.2.3.4:8o", "port '8o'"},
        {"1.2.3.4:-1", "port '-1'"},
        {"1.2.3.4", "missing ':PORT'"},
        {"::1:80", "an IPv6 address goes in brackets"},
        {"[::1]80", "missing ':PORT' after ']'"},
        {"[::1:80", "missing ']'"},
        {"[1.2.3.4]:80", "host '1.2.3.4' is not an IPv6 address"},
        {"[::1]:70000", "port '70000'"},
    };
    struct sockaddr_storage ss;
    socklen_t len;
    char err[256];
    size_t i;

    (void)state;
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        err[0] = '\0';
        if (addr_parse(cases[i].text, &ss, &len, err, sizeof err) != -EINVAL)
            fail_msg("'%s' was accepted", cases[i].text);
        assert_contains(err, cases[i].msg);
        assert_contains(err, cases[i].text); /* the whole value is quoted */
    }
}

static void test_listen_setting(void **state)
{
    struct fx *fx = *state;
    const struct sockaddr_in6 *sin6 =
        (const struct sockaddr_in6 *)&fx->cfg.listen_addr;

    load_ok(fx, "listen = \"[::1]:0\";\n");
    assert_string_equal(fx->cfg.listen, "[::1]:0");
    assert_int_equal(sin6->sin6_family, AF_INET6);
    assert_int_equal(fx->cfg.listen_addrlen, sizeof *sin6);

    load_fails_at(fx, "\nlisten = \"nowhere:80\";\n", 2,
                  "listen 'nowhere:80': host 'nowhere'");
    load_fails_at(fx, "listen = \"127.0.0.1:80000\";\n", 1,
                  "port '80000' is not a number from 0 to 65535");
    load_fails_at(fx, "listen = 8080;\n", 1, "'listen' must be a string");
}

/* ----------------------------------------------------------------- paths */

static void test_paths_relative_to_config(void **state)
{
    struct fx *fx = *state;
    char dir[PATH_MAX], want[PATH_MAX + 64], cwd[PATH_MAX];

    assert_non_null(realpath(CONFIGS, dir));
    /* a relative config file name, from another working directory */
    assert_non_null(getcwd(cwd, sizeof cwd));
    assert_int_equal(chdir(TEST_SOURCE_DIR), 0);
    assert_int_equal(cfg_load(&fx->cfg, "unit/configs/relative.cfg", NULL, 0,
                              fx->err, sizeof fx->err), 0);
    assert_int_equal(chdir(cwd), 0);

    assert_string_equal(fx->cfg.file, "unit/configs/relative.cfg");
    assert_string_equal(fx->cfg.dir, dir);
    snprintf(want, sizeof want, "%s/plugins", dir);
    assert_string_equal(fx->cfg.plugin_dir, want);
    snprintf(want, sizeof want, "%s/../run/ioserve.pid", dir);
    assert_string_equal(fx->cfg.pid_file, want);

    /* model entries with a '/' are paths next to the config */
    char path[PATH_MAX];
    assert_int_equal(cfg_model_path(&fx->cfg, fx->cfg.models[1], path,
                                    sizeof path), 0);
    snprintf(want, sizeof want, "%s/./custom/my.so", dir);
    assert_string_equal(path, want);
    assert_int_equal(cfg_model_path(&fx->cfg, fx->cfg.models[0], path,
                                    sizeof path), 0);
    snprintf(want, sizeof want, "%s/plugins/epoll.so", dir);
    assert_string_equal(path, want);
}

static void test_absolute_and_empty_paths(void **state)
{
    struct fx *fx = *state;

    load_ok(fx, "plugin_dir = \"/opt/p\";\npid_file = \"/run/x.pid\";\n");
    assert_string_equal(fx->cfg.plugin_dir, "/opt/p");
    assert_string_equal(fx->cfg.pid_file, "/run/x.pid");

    load_ok(fx, "pid_file = \"\";\n");
    assert_null(fx->cfg.pid_file);

    load_ok(fx, "pid_file = \"x.pid\";\n"); /* mkstemp puts us in /tmp */
    assert_true(ends_with(fx->cfg.pid_file, "/x.pid"));
    assert_int_equal(fx->cfg.pid_file[0], '/');

    load_fails_at(fx, "plugin_dir = \"\";\n", 1,
                  "'plugin_dir' must not be empty");
    load_fails_at(fx, "plugin_dir = 1;\n", 1, "'plugin_dir' must be a string");
    load_fails_at(fx, "pid_file = false;\n", 1, "'pid_file' must be a string");
}

static void test_model_path(void **state)
{
    struct fx *fx = *state;
    char out[64];

    load_ok(fx, "plugin_dir = \"/opt/p\";\n");
    assert_int_equal(cfg_model_path(&fx->cfg, "epoll", out, sizeof out), 0);
    assert_string_equal(out, "/opt/p/epoll.so");
    assert_int_equal(cfg_model_path(&fx->cfg, "/abs/m.so", out, sizeof out),
                     0);
    assert_string_equal(out, "/abs/m.so");
    assert_int_equal(cfg_model_path(&fx->cfg, "sub/m.so", out, sizeof out),
                     0);
    assert_true(ends_with(out, "/sub/m.so"));
    assert_int_equal(out[0], '/');

    /* "/opt/p/epoll.so" is 15 bytes: 16 fit, 15 do not */
    assert_int_equal(cfg_model_path(&fx->cfg, "epoll", out, 16), 0);
    assert_int_equal(cfg_model_path(&fx->cfg, "epoll", out, 15), -1);
    assert_int_equal(cfg_model_path(&fx->cfg, "/abs/m.so", out, 9), -1);
}

static void test_user_group(void **state)
{
    struct fx *fx = *state;

    load_ok(fx, "user = \"nobody\";\ngroup = \"nogroup\";\n");
    assert_string_equal(fx->cfg.user, "nobody");
    assert_string_equal(fx->cfg.group, "nogroup");
    load_ok(fx, "user = \"\";\n");
    assert_null(fx->cfg.user);
    load_fails_at(fx, "group = 0;\n", 1, "'group' must be a string");
}

/* ------------------------------------------------------------ http group */

static void test_http_group(void **state)
{
    struct fx *fx = *state;

    load_ok(fx, "http = {\n body = \"\";\n content_type = \"text/html; "
                "charset=utf-8\";\n header_timeout = 2.5;\n};\n");
    assert_string_equal(fx->cfg.http.body, "");
    assert_string_equal(fx->cfg.http.content_type,
                        "text/html; charset=utf-8");
    assert_int_equal(fx->cfg.http.header_timeout_ms, 2500);

    load_ok(fx, "http = { };\n");
    assert_string_equal(fx->cfg.http.body, "Hello from ioserve\n");

    load_fails_at(fx, "http = 5;\n", 1, "'http' must be a group");
    load_fails_at(fx, "http = {\n body = 5;\n};\n", 2,
                  "'http.body' must be a string");
    load_fails_at(fx, "http = { content_type = \"text/plain\\r\\nX-Evil: "
                      "1\"; };\n", 1,
                  "'http.content_type' must be a non-empty string without "
                  "control characters");
    load_fails_at(fx, "http = { content_type = \"\"; };\n", 1,
                  "'http.content_type'");
}

static void test_max_input_cross_check(void **state)
{
    struct fx *fx = *state;

    load_fails_at(fx, "max_input = 4096;\n", 1,
                  "'max_input' (4096) must be >= 'http.max_header_bytes' "
                  "(8192)");
    load_fails_at(fx, "http = {\n max_header_bytes = 100000;\n};\n", 2,
                  "'max_input' (65536) must be >= 'http.max_header_bytes' "
                  "(100000)");
    load_ok(fx, "max_input = 4096;\nhttp = { max_header_bytes = 4096; };\n");
    assert_int_equal(fx->cfg.max_input, 4096);
}

/* ---------------------------------------------------------------- canary */

static void test_canary(void **state)
{
    struct fx *fx = *state;

    load_ok(fx, "model = \"epoll\";\n");
    assert_null(fx->cfg.canary.model); /* no split unless asked */

    load_ok(fx, "workers = 4;\ncanary = { model = \"uring\"; share = 10; };\n");
    assert_string_equal(fx->cfg.canary.model, "uring");
    assert_int_equal(fx->cfg.canary.share, 10);
    assert_int_equal(fx->cfg.canary.workers, 1); /* its share of 4, rounded up */
    load_ok(fx, "workers = 8;\ncanary = { model = \"uring\"; share = 50; };\n");
    assert_int_equal(fx->cfg.canary.workers, 4);
    load_ok(fx, "canary = { model = \"poll\"; share = 99; workers = 3; };\n");
    assert_int_equal(fx->cfg.canary.workers, 3);
    assert_int_equal(fx->cfg.canary.share, 99);
    load_ok(fx, "canary = { model = \"poll\"; share = 1; };\n");
    assert_int_equal(fx->cfg.canary.share, 1);

    load_fails_exactly(fx, "canary = {\n model = \"poll\";\n share = 0;\n};\n", 3,
                       "'canary.share' must be an integer from 1 to 99 (got 0)");
    load_fails_at(fx, "canary = { model = \"poll\"; share = 100; };\n", 1,
                  "'canary.share' must be an integer from 1 to 99 (got 100)");
    load_fails_at(fx, "\ncanary = { model = \"poll\"; };\n", 2, "'canary' needs 'share'");
    load_fails_at(fx, "canary = { share = 5; };\n", 1, "'canary' needs 'model'");
    load_fails_at(fx, "canary = { };\n", 1, "'canary' needs 'model'");
    load_fails_at(fx, "model = \"epoll\";\ncanary = {\n model = \"epoll\"; share = 5; };\n", 3,
                  "'canary.model' is 'epoll', which 'model' already names");
    load_fails_at(fx, "model = [\"uring\", \"epoll\"];\ncanary = { model = \"epoll\"; share = 5; };\n",
                  2, "which 'model' already names");
    load_fails_exactly(fx, "canary = { model = \"epol\"; share = 5; };\n", 1,
                       "unknown model 'epol' (did you mean 'epoll'?)");
    load_fails_at(fx, "canary = { model = \"./nowhere/x.so\"; share = 5; };\n", 1,
                  "unknown model './nowhere/x.so': no such plugin file");
    load_fails_at(fx, "canary = { model = \"\"; share = 5; };\n", 1,
                  "'canary.model' must be a model name or a plugin path");
    load_fails_at(fx, "canary = \"uring\";\n", 1, "'canary' must be a group");
    load_fails_at(fx, "canary = { model = \"uring\"; share = 5; size = 3; };\n", 1,
                  "unknown setting 'canary.size'");
    load_fails_at(fx, "workers = 64;\ncanary = { model = \"uring\"; share = 5; };\n", 2,
                  "add up to more than 64 workers");
    /* -o reaches it as any setting */
    assert_int_equal(load(fx, "canary = { model = \"uring\"; share = 5; };\n",
                          "canary.share=20", (char *)NULL), 0);
    assert_int_equal(fx->cfg.canary.share, 20);
}

/* ----------------------------------------------------------- models group */

static void test_models_group_shape(void **state)
{
    struct fx *fx = *state;

    /* contents are the plugins' business: not checked by cfg_load */
    load_ok(fx, "models = { epoll = { anything = \"x\"; n = 1.5; }; poll = { }; "
                "};\n");
    load_ok(fx, "models = { };\n");
    load_fails_at(fx, "models = 5;\n", 1, "'models' must be a group");
    load_fails_at(fx, "models = {\n  epoll = 5;\n};\n", 2,
                  "'models.epoll' must be a group");
}

/* A group under `models` names a model: a built-in one, a plugin in
 * plugin_dir, or one `model` loads by path.  Anything else is a typo whose
 * knobs would go unused. */
static void test_models_group_names(void **state)
{
    struct fx *fx = *state;
    char dir[] = "/tmp/ioserve-plugins-XXXXXX", so[64], text[512];

    load_fails_exactly(fx, "workers = 1;\nmodels = {\n  epol = { edge_triggered = true; };\n};\n",
                       3, "unknown model 'epol' under 'models' (did you mean 'epoll'?)");
    load_fails_at(fx, "models = { turbo = { }; };\n", 1, "unknown model 'turbo' under 'models'");
    assert_int_equal(load(fx, "", "models.epol.edge_triggered=true", (char *)NULL), -1);
    assert_string_equal(fx->err, "-o models.epol: unknown model 'epol' under 'models' "
                                 "(did you mean 'epoll'?)");

    /* every built-in model, whether or not this machine built it */
    load_ok(fx, "models = { blocking = { }; nonblocking = { }; select = { }; poll = { };\n"
                "  epoll = { }; sigio = { }; uring = { }; };\n");

    /* an out-of-tree model in plugin_dir, and one loaded by path */
    assert_non_null(mkdtemp(dir));
    snprintf(so, sizeof so, "%s/mine.so", dir);
    int fd = open(so, O_WRONLY | O_CREAT | O_EXCL, 0644);
    assert_true(fd >= 0);
    close(fd);
    snprintf(text, sizeof text, "plugin_dir = \"%s\";\nmodels = { mine = { x = 1; }; };\n", dir);
    load_ok(fx, text);
    snprintf(text, sizeof text, "models = {\n  mien = { x = 1; };\n};\nplugin_dir = \"%s\";\n",
             dir);
    load_fails_exactly(fx, text, 2, "unknown model 'mien' under 'models' (did you mean 'mine'?)");
    unlink(so);
    rmdir(dir);
    load_ok(fx, "model = [\"/opt/ioserve/custom.so\", \"epoll\"];\n"
                "models = { custom = { x = 1; }; };\n");
}

/* ------------------------------------------------------------- overrides */

static void test_overrides_basic(void **state)
{
    struct fx *fx = *state;
    const struct sockaddr_in *sin =
        (const struct sockaddr_in *)&fx->cfg.listen_addr;

    assert_int_equal(load(fx, "workers = 2;\nmodel = \"epoll\";\n",
                          "workers=4", "listen=127.0.0.1:0", "model=select",
                          "idle_timeout=1.5", "log_level=\"debug\"",
                          "pid_file=", (char *)NULL), 0);
    assert_int_equal(fx->cfg.workers, 4);
    assert_string_equal(fx->cfg.listen, "127.0.0.1:0");
    assert_int_equal(ntohs(sin->sin_port), 0);
    assert_int_equal(fx->cfg.n_models, 1);
    assert_string_equal(fx->cfg.models[0], "select");
    assert_int_equal(fx->cfg.idle_timeout_ms, 1500);
    assert_int_equal(fx->cfg.log_level, IOS_LOG_DEBUG);
    assert_null(fx->cfg.pid_file);
}

static void test_overrides_list_and_order(void **state)
{
    struct fx *fx = *state;

    assert_int_equal(load(fx, "", "model=[\"uring\",\"epoll\"]", "workers=2",
                          "workers=5", (char *)NULL), 0);
    assert_int_equal(fx->cfg.n_models, 2);
    assert_string_equal(fx->cfg.models[0], "uring");
    assert_string_equal(fx->cfg.models[1], "epoll");
    assert_int_equal(fx->cfg.workers, 5); /* the last one wins */

    assert_int_equal(load(fx, "", "model=(\"poll\", \"select\")",
                          (char *)NULL), 0);
    assert_int_equal(fx->cfg.n_models, 2);
    assert_string_equal(fx->cfg.models[1], "select");
}

static void test_overrides_nested(void **state)
{
    static const struct ios_knob epoll[] = {
        {"edge_triggered", IOS_KNOB_BOOL, 0, NULL, 0, 1, "EPOLLET"},
        IOS_KNOB_END,
    };
    struct fx *fx = *state;
    int b = 0;

    /* no http or models group in the file: the overrides create them */
    assert_int_equal(load(fx, "workers = 1;\n", "http.body=hi there",
                          "http.content_type=\"text/html\"",
                          "models.epoll.edge_triggered=true", (char *)NULL),
                     0);
    assert_string_equal(fx->cfg.http.body, "hi there");
    assert_string_equal(fx->cfg.http.content_type, "text/html");
    assert_int_equal(cfg_check_knobs(&fx->cfg, "epoll", epoll, fx->err,
                                     sizeof fx->err), 0);
    assert_int_equal(cfg_knob_bool(&fx->cfg, "epoll", epoll, "edge_triggered",
                                   &b), 0);
    assert_int_equal(b, 1);

    /* into groups the file has, replacing one member only */
    assert_int_equal(load(fx, "http = { body = \"a\"; max_body_bytes = 7; };\n"
                          "models = { epoll = { edge_triggered = true; }; };\n",
                          "http.body=\"b\"",
                          "models.epoll.edge_triggered=false", (char *)NULL),
                     0);
    assert_string_equal(fx->cfg.http.body, "b");
    assert_int_equal(fx->cfg.http.max_body_bytes, 7);
    assert_int_equal(cfg_knob_bool(&fx->cfg, "epoll", epoll, "edge_triggered",
                                   &b), 0);
    assert_int_equal(b, 0);

    /* a whole group as the value */
    assert_int_equal(load(fx, "", "http={ body = \"g\"; }", (char *)NULL), 0);
    assert_string_equal(fx->cfg.http.body, "g");
}

static void test_overrides_bare_strings(void **state)
{
    struct fx *fx = *state;

    /* not one libconfig value: kept as text, newlines and all */
    assert_int_equal(load(fx, "", "http.body=a;b", "http.content_type=x/y",
                          (char *)NULL), 0);
    assert_string_equal(fx->cfg.http.body, "a;b");
    assert_int_equal(load(fx, "", "http.body=line1\nline2", (char *)NULL), 0);
    assert_string_equal(fx->cfg.http.body, "line1\nline2");
    assert_int_equal(load(fx, "", "http.body=", (char *)NULL), 0);
    assert_string_equal(fx->cfg.http.body, "");
    assert_int_equal(load(fx, "", "http.body=4; x = 5", (char *)NULL), 0);
    assert_string_equal(fx->cfg.http.body, "4; x = 5");
}

static void test_override_errors(void **state)
{
    struct fx *fx = *state;

    assert_int_equal(load(fx, "", "workers", (char *)NULL), -1);
    assert_contains(fx->err, "bad override 'workers'");
    assert_contains(fx->err, "KEY=VALUE");
    assert_reset(&fx->cfg);

    assert_int_equal(load(fx, "", "=4", (char *)NULL), -1);
    assert_contains(fx->err, "bad override '=4'");

    assert_int_equal(load(fx, "", "9lives=1", (char *)NULL), -1);
    assert_contains(fx->err, "'9lives' is not a setting name");
    assert_int_equal(load(fx, "", "http..body=1", (char *)NULL), -1);
    assert_contains(fx->err, "'http..body' is not a setting name");
    assert_int_equal(load(fx, "", "http.=1", (char *)NULL), -1);
    assert_contains(fx->err, "is not a setting name");

    assert_int_equal(load(fx, "workers = 2;\n", "workers.x=1", (char *)NULL),
                     -1);
    assert_string_equal(fx->err, "-o workers.x: 'workers' is not a group");
    assert_int_equal(load(fx, "http = { body = \"\"; };\n", "http.body.x.y=1",
                          (char *)NULL), -1);
    assert_string_equal(fx->err, "-o http.body.x.y: 'http.body' is not a "
                                 "group");
}

/* A bad value that came from -o is blamed on -o, not on the file. */
static void test_override_validation_names_option(void **state)
{
    struct fx *fx = *state;

    assert_int_equal(load(fx, "workers = 2;\n", "workers=100", (char *)NULL),
                     -1);
    assert_string_equal(fx->err, "-o workers: 'workers' must be an integer "
                                 "from 1 to 64 (got 100)");

    assert_int_equal(load(fx, "", "wokers=4", (char *)NULL), -1);
    assert_string_equal(fx->err, "-o wokers: unknown setting 'wokers' (did "
                                 "you mean 'workers'?)");

    assert_int_equal(load(fx, "http = { body = \"x\"; };\n", "http.bdy=y",
                          (char *)NULL), -1);
    assert_string_equal(fx->err, "-o http.bdy: unknown setting 'http.bdy' "
                                 "(did you mean 'http.body'?)");

    assert_int_equal(load(fx, "", "model=(\"epoll\", 1)", (char *)NULL), -1);
    assert_prefix(fx->err, "-o model: 'model' must be");

    assert_int_equal(load(fx, "", "listen=localhost:http", (char *)NULL), -1);
    assert_prefix(fx->err, "-o listen: listen 'localhost:http': port 'http'");

    assert_int_equal(load(fx, "", "handler=htp", (char *)NULL), -1);
    assert_contains(fx->err, "(did you mean 'http'?)");
}

/* ---------------------------------------------------------------- reload */

static void test_two_configs(void **state)
{
    static const struct ios_knob epoll[] = {
        {"events_per_wait", IOS_KNOB_INT, 256, NULL, 1, 4096, "batch"},
        IOS_KNOB_END,
    };
    struct fx *fx = *state;
    struct ios_config next;
    char err[256];
    long long v = 0;

    load_ok(fx, "workers = 2;\nmodels = { epoll = { events_per_wait = 8; }; "
                "};\n");
    /* the next generation's config, loaded while the current one lives,
     * outlives it */
    write_file(fx, "workers = 3;\nmodels = { epoll = { events_per_wait = 9; }; };\n");
    assert_int_equal(cfg_load(&next, fx->path, NULL, 0, err, sizeof err), 0);
    assert_int_equal(fx->cfg.workers, 2);
    cfg_free(&fx->cfg);
    assert_int_equal(next.workers, 3);
    assert_int_equal(cfg_check_knobs(&next, "epoll", epoll, err, sizeof err), 0);
    assert_int_equal(cfg_knob_int(&next, "epoll", epoll, "events_per_wait", &v), 0);
    assert_int_equal(v, 9);

    /* a failed reload leaves its struct reset, the old one untouched */
    write_file(fx, "workers = 0;\n");
    assert_int_equal(cfg_load(&fx->cfg, fx->path, NULL, 0, err, sizeof err), -1);
    assert_reset(&fx->cfg);
    assert_int_equal(next.workers, 3);
    cfg_free(&next);
}

static void test_null_error_buffer(void **state)
{
    struct fx *fx = *state;

    write_file(fx, "workers = 0;\n");
    assert_int_equal(cfg_load(&fx->cfg, fx->path, NULL, 0, NULL, 0), -1);
    write_file(fx, "workers = 0;\n");
    assert_int_equal(cfg_load(&fx->cfg, fx->path, NULL, 0, fx->err, 8), -1);
    assert_int_equal(strlen(fx->err), 7); /* truncated, terminated */
}

/* ----------------------------------------------------------------- knobs */

static const struct ios_knob test_knobs[] = {
    {"edge_triggered", IOS_KNOB_BOOL, 0, NULL, 0, 1, "EPOLLET"},
    {"events_per_wait", IOS_KNOB_INT, 256, NULL, 1, 4096, "batch size"},
    {"label", IOS_KNOB_STRING, 0, "none", 0, 0, "a name"},
    IOS_KNOB_END,
};

static void test_knob_defaults(void **state)
{
    struct fx *fx = *state;
    long long v = 0;
    int b = -1;
    const char *s = NULL;

    /* no models group at all, and a defaults-only config */
    load_ok(fx, "models = { select = { x = 1; }; };\n");
    for (int round = 0; round < 2; round++) {
        assert_int_equal(cfg_check_knobs(&fx->cfg, "epoll", test_knobs,
                                         fx->err, sizeof fx->err), 0);
        assert_int_equal(cfg_knob_int(&fx->cfg, "epoll", test_knobs,
                                      "events_per_wait", &v), 0);
        assert_int_equal(v, 256);
        assert_int_equal(cfg_knob_bool(&fx->cfg, "epoll", test_knobs,
                                       "edge_triggered", &b), 0);
        assert_int_equal(b, 0);
        assert_int_equal(cfg_knob_string(&fx->cfg, "epoll", test_knobs,
                                         "label", &s), 0);
        assert_string_equal(s, "none");
        cfg_free(&fx->cfg);
        cfg_defaults(&fx->cfg);
    }
}

static void test_knob_values(void **state)
{
    struct fx *fx = *state;
    long long v = 0;
    int b = 0;
    const char *s = NULL;

    load_ok(fx, "models = { epoll = { edge_triggered = true; "
                "events_per_wait = 4096; label = \"x\"; }; };\n");
    assert_int_equal(cfg_check_knobs(&fx->cfg, "epoll", test_knobs, fx->err,
                                     sizeof fx->err), 0);
    assert_int_equal(cfg_knob_int(&fx->cfg, "epoll", test_knobs,
                                  "events_per_wait", &v), 0);
    assert_int_equal(v, 4096);
    assert_int_equal(cfg_knob_bool(&fx->cfg, "epoll", test_knobs,
                                   "edge_triggered", &b), 0);
    assert_int_equal(b, 1);
    assert_int_equal(cfg_knob_string(&fx->cfg, "epoll", test_knobs, "label",
                                     &s), 0);
    assert_string_equal(s, "x");

    /* undeclared, or declared with another type */
    assert_int_equal(cfg_knob_int(&fx->cfg, "epoll", test_knobs, "nope", &v),
                     -ENOENT);
    assert_int_equal(cfg_knob_int(&fx->cfg, "epoll", test_knobs,
                                  "edge_triggered", &v), -ENOENT);
    assert_int_equal(cfg_knob_bool(&fx->cfg, "epoll", test_knobs, "label",
                                   &b), -ENOENT);
    assert_int_equal(cfg_knob_string(&fx->cfg, "epoll", test_knobs,
                                     "events_per_wait", &s), -ENOENT);
    assert_int_equal(cfg_knob_int(&fx->cfg, "epoll", NULL, "x", &v), -ENOENT);
}

static void test_knob_errors(void **state)
{
    static const struct {
        const char *knob, *msg;
    } cases[] = {
        {"edge_trigered = true;", "unknown setting 'models.epoll.edge_trigered' "
                                  "(did you mean 'models.epoll.edge_triggered'?)"},
        {"turbo = true;", "unknown setting 'models.epoll.turbo'"},
        {"events_per_wait = 0;", "'models.epoll.events_per_wait' must be an "
                                 "integer from 1 to 4096"},
        {"events_per_wait = 4097;", "'models.epoll.events_per_wait' must be "
                                    "an integer from 1 to 4096"},
        {"events_per_wait = 2.0;", "'models.epoll.events_per_wait' must be "
                                   "an integer"},
        {"events_per_wait = \"9\";", "'models.epoll.events_per_wait' must be "
                                     "an integer"},
        {"edge_triggered = 1;", "'models.epoll.edge_triggered' must be true "
                                "or false"},
        {"edge_triggered = \"yes\";", "must be true or false"},
        {"label = 5;", "'models.epoll.label' must be a string"},
    };
    struct fx *fx = *state;
    char text[160], prefix[96];
    long long v;
    size_t i;

    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(text, sizeof text, "models = {\n  epoll = {\n    %s\n  };\n"
                 "};\n", cases[i].knob);
        load_ok(fx, text);
        assert_int_equal(cfg_check_knobs(&fx->cfg, "epoll", test_knobs,
                                         fx->err, sizeof fx->err), -1);
        snprintf(prefix, sizeof prefix, "%s:3: ", fx->path);
        assert_prefix(fx->err, prefix);
        assert_contains(fx->err, cases[i].msg);
    }

    /* a model without knobs refuses any */
    load_ok(fx, "models = { select = { fast = true; }; };\n");
    assert_int_equal(cfg_check_knobs(&fx->cfg, "select", NULL, fx->err,
                                     sizeof fx->err), -1);
    assert_contains(fx->err, "unknown setting 'models.select.fast' (model "
                             "'select' has no knobs)");

    /* unchecked bad values are not handed out */
    load_ok(fx, "models = { epoll = { events_per_wait = 0; }; };\n");
    assert_int_equal(cfg_knob_int(&fx->cfg, "epoll", test_knobs,
                                  "events_per_wait", &v), -EINVAL);

    /* a knob from -o is blamed on -o */
    assert_int_equal(load(fx, "", "models.epoll.events_per_wait=5000",
                          (char *)NULL), 0);
    assert_int_equal(cfg_check_knobs(&fx->cfg, "epoll", test_knobs, fx->err,
                                     sizeof fx->err), -1);
    assert_string_equal(fx->err, "-o models.epoll.events_per_wait: "
                                 "'models.epoll.events_per_wait' must be an "
                                 "integer from 1 to 4096 (got 5000)");
}

/* --------------------------------------------------------------- closest */

static void test_closest(void **state)
{
    static const char *const names[] = {"workers", "backlog", "listen",
                                        "max_connections", "model", NULL};
    static const char *const none[] = {NULL};
    static const char *const tie[] = {"abcx", "abcy", NULL};
    static const char *const longer[] = {"abcdefghWXYZ", NULL};
    static const char *const further[] = {"abcdeVWXYZ", NULL};

    (void)state;
    assert_string_equal(cfg_closest("wokers", names), "workers");
    assert_string_equal(cfg_closest("Workers", names), "workers");
    assert_string_equal(cfg_closest("listne", names), "listen");
    assert_string_equal(cfg_closest("max_conections", names),
                        "max_connections");
    assert_string_equal(cfg_closest("models", names), "model");
    assert_string_equal(cfg_closest("workers", names), "workers");
    assert_null(cfg_closest("threads", names));
    assert_null(cfg_closest("x", none));
    assert_null(cfg_closest("x", NULL));
    assert_string_equal(cfg_closest("abc", tie), "abcx"); /* first wins */
    /* 12 letters: up to 4 edits count as a typo, 5 do not */
    assert_string_equal(cfg_closest("abcdefghijkl", longer), "abcdefghWXYZ");
    assert_null(cfg_closest("abcdefghij", further));
    /* two edits in a short word still count */
    assert_string_equal(cfg_closest("hndlr", (const char *const[]){
                                                  "echo", "handler", NULL}),
                        "handler");
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, fx_setup, fx_teardown)
    const struct CMUnitTest tests[] = {
        T(test_defaults),
        T(test_empty_file_gives_defaults),
        T(test_default_plugin_dir),
        T(test_real_config_loads),
        T(test_missing_file),
        T(test_syntax_error),
        T(test_duplicate_setting),
        T(test_unknown_setting),
        T(test_unknown_http_setting),
        T(test_include_relative_to_config),
        T(test_include_absolute_path),
        T(test_integer_settings),
        T(test_exact_type_message),
        T(test_int64_values),
        T(test_wrapping_int_literals),
        cmocka_unit_test(test_find_wrapping_int),
        T(test_durations),
        T(test_quit_delay),
        T(test_handler),
        T(test_log_level),
        T(test_model),
        T(test_parse_listen_good),
        T(test_parse_listen_bad),
        T(test_listen_setting),
        T(test_paths_relative_to_config),
        T(test_absolute_and_empty_paths),
        T(test_model_path),
        T(test_user_group),
        T(test_http_group),
        T(test_max_input_cross_check),
        T(test_canary),
        T(test_models_group_shape),
        T(test_models_group_names),
        T(test_overrides_basic),
        T(test_overrides_list_and_order),
        T(test_overrides_nested),
        T(test_overrides_bare_strings),
        T(test_override_errors),
        T(test_override_validation_names_option),
        T(test_two_configs),
        T(test_null_error_buffer),
        T(test_knob_defaults),
        T(test_knob_values),
        T(test_knob_errors),
        T(test_closest),
    };
#undef T
    int failed = cmocka_run_group_tests_name("config", tests, NULL, NULL);
    if (!failed && skipped_because[0]) {
        printf("SKIP: %s\n", skipped_because);
        return 77;
    }
    return failed;
}
