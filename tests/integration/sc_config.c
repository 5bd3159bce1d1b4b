/* Global scenarios bad_config, bad_plugin, check_ok: the server refuses
 * what it cannot run, with a message that names the problem. */
#include "harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

/* Runs the server (or -t) on cfg with optional overrides; returns the wait
 * status (-1 = was still running / printed "listening on"). */
static int run_ioserve(int check_only, const char *cfg,
                       const char *const *overrides, char **out,
                       int64_t *elapsed)
{
    char *argv[32];
    int n = 0;
    argv[n++] = (char *)it_env.bin;
    if (check_only)
        argv[n++] = "-t";
    argv[n++] = "-c";
    argv[n++] = (char *)cfg;
    for (size_t i = 0; overrides && overrides[i] && n < 28; i++) {
        argv[n++] = "-o";
        argv[n++] = (char *)overrides[i];
    }
    argv[n] = NULL;
    return it_run(argv, 10000, "listening on", out, elapsed);
}

static void describe(int st, char *buf, size_t len)
{
    if (st == -1)
        snprintf(buf, len, "still running (stopped by the test)");
    else if (WIFEXITED(st))
        snprintf(buf, len, "exit %d", WEXITSTATUS(st));
    else if (WIFSIGNALED(st))
        snprintf(buf, len, "signal %d", WTERMSIG(st));
    else
        snprintf(buf, len, "status 0x%x", st);
}

/* Prints the command's output when a check fails. */
#define OUT_CHECK(cond, out, ...)                                        \
    do {                                                                 \
        if (!(cond)) {                                                   \
            fprintf(stderr, "----- output -----\n%s\n------------------\n", \
                    (out));                                              \
            IT_FAIL(__VA_ARGS__);                                        \
        }                                                                \
    } while (0)

/* ============================================================ bad_config */

struct bad_case {
    const char *name;
    const char *const *lines;     /* config lines (override defaults) */
    const char *const *overrides; /* -o KEY=VALUE */
    const char *expect[3];        /* substrings the message must hold */
    const char *syntax_line;      /* the line whose FILE:LINE is expected */
};

static const char *const syntax_lines[] = {"workers = = 2;", NULL};
static const char *const unknown_lines[] = {"wokers = 2;", NULL};
static const char *const zero_lines[] = {"workers = 0;", NULL};
static const char *const type_lines[] = {"workers = \"two\";", NULL};
static const char *const listen_lines[] = {"listen = \"not-an-address\";",
                                           NULL};
static const char *const port_lines[] = {"listen = \"127.0.0.1:99999\";",
                                         NULL};
static const char *const handler_lines[] = {"handler = \"nosuchhandler\";",
                                            NULL};
static const char *const model_lines[] = {"model = \"nosuchmodel\";", NULL};
static const char *const zero_override[] = {"workers=0", NULL};
static const char *const knob_group_lines[] = {
    "models = {", "  epol = { edge_triggered = true; };", "};", NULL};

static const struct bad_case bad_cases[] = {
    {"syntax error", syntax_lines, NULL, {NULL}, "workers = = 2;"},
    {"unknown setting", unknown_lines, NULL, {"wokers", "workers", NULL},
     NULL},
    {"workers = 0", zero_lines, NULL, {"workers", NULL}, NULL},
    {"workers of the wrong type", type_lines, NULL, {"workers", NULL}, NULL},
    {"bad listen address", listen_lines, NULL, {"listen", NULL}, NULL},
    {"listen port out of range", port_lines, NULL, {"listen", NULL}, NULL},
    {"unknown handler", handler_lines, NULL, {"handler", NULL}, NULL},
    {"missing plugin", model_lines, NULL, {"nosuchmodel", NULL}, NULL},
    {"-o workers=0", NULL, zero_override, {"workers", NULL}, NULL},
    {"typo in a model's knob group", knob_group_lines, NULL,
     {"unknown model 'epol'", "did you mean 'epoll'?", NULL},
     "  epol = { edge_triggered = true; };"},
};

/* 1-based number of the line of `text` that equals `line`, or 0. */
static int line_number(const char *text, const char *line)
{
    int no = 1;
    size_t ll = strlen(line);
    for (const char *p = text; *p; no++) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        if (len == ll && strncmp(p, line, ll) == 0)
            return no;
        if (!nl)
            break;
        p = nl + 1;
    }
    return 0;
}

static void bad_config_case(void **state)
{
    const struct bad_case *bc = *state;
    static int seq;
    char name[64];
    snprintf(name, sizeof name, "bad%d", ++seq);
    char *cfg = it_write_config(name, bc->lines);
    assert_non_null(cfg);
    char expect_loc[700] = "";
    if (bc->syntax_line) {
        char *text = it_read_file(cfg, NULL);
        assert_non_null(text);
        int no = line_number(text, bc->syntax_line);
        free(text);
        assert_true(no > 0);
        snprintf(expect_loc, sizeof expect_loc, "%s:%d:", cfg, no);
    }

    for (int check_only = 1; check_only >= 0; check_only--) {
        const char *how = check_only ? "ioserve -t -c" : "ioserve -c";
        char *out = NULL;
        int64_t ms = 0;
        int st = run_ioserve(check_only, cfg, bc->overrides, &out, &ms);
        char sts[128];
        describe(st, sts, sizeof sts);
        it_log("%s: %s: %s in %lld ms", bc->name, how, sts, (long long)ms);
        OUT_CHECK(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 1, out,
                  "%s: `%s %s` should exit 1, got: %s", bc->name, how, cfg,
                  sts);
        OUT_CHECK(ms < 5000, out, "%s: `%s` took %lld ms to fail", bc->name,
                  how, (long long)ms);
        OUT_CHECK(!strstr(out, "listening on"), out,
                  "%s: `%s` printed \"listening on\"", bc->name, how);
        OUT_CHECK(!strstr(out, "configuration ok"), out,
                  "%s: `%s` printed \"configuration ok\"", bc->name, how);
        if (expect_loc[0])
            OUT_CHECK(strstr(out, expect_loc), out,
                      "%s: `%s`: the message does not contain \"%s\" (the "
                      "file and line of the error)",
                      bc->name, how, expect_loc);
        for (int i = 0; i < 3 && bc->expect[i]; i++)
            OUT_CHECK(strstr(out, bc->expect[i]), out,
                      "%s: `%s`: the message does not mention '%s'",
                      bc->name, how, bc->expect[i]);
        free(out);
    }
    free(cfg);
}

int it_run_bad_config(void)
{
    enum { N = sizeof bad_cases / sizeof bad_cases[0] };
    struct CMUnitTest tests[N];
    for (size_t i = 0; i < N; i++) {
        memset(&tests[i], 0, sizeof tests[i]);
        tests[i].name = bad_cases[i].name;
        tests[i].test_func = bad_config_case;
        tests[i].initial_state = (void *)&bad_cases[i];
    }
    return cmocka_run_group_tests_name("bad_config", tests, NULL, NULL);
}

/* ============================================================ bad_plugin */

/* The message lines of out that contain `word`, with the log prefix
 * ("... [pid N] "), the temp dir and the plugin path removed. */
static int abi_line_ok(const char *out, const char *plugin)
{
    const char *p = out;
    while (*p) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        char *line = strndup(p, len);
        if (line && strstr(line, "ABI")) {
            char *msg = line;
            char *pid = strstr(msg, "[pid ");
            if (pid) {
                char *close = strstr(pid, "] ");
                if (close)
                    msg = close + 2;
            }
            const char *cut[] = {plugin, it_tmpdir()};
            for (int k = 0; k < 2; k++) {
                char *q;
                size_t cl = strlen(cut[k]);
                while (cl && (q = strstr(msg, cut[k])))
                    memmove(q, q + cl, strlen(q + cl) + 1);
            }
            int ok = it_has_number_token(msg, "2") &&
                     it_has_number_token(msg, "1");
            if (ok) {
                free(line);
                return 1;
            }
        }
        free(line);
        if (!nl)
            break;
        p = nl + 1;
    }
    return 0;
}

static void bad_plugin_check(const char *file, const char *must_mention,
                             int abi)
{
    IT_CHECK(it_env.bad_plugin_dir, "IOSERVE_BAD_PLUGIN_DIR is not set");
    char plugin[1024], line[1200], name[64];
    snprintf(plugin, sizeof plugin, "%s/%s", it_env.bad_plugin_dir, file);
    snprintf(line, sizeof line, "model = \"%s\";", plugin);
    snprintf(name, sizeof name, "plugin_%s", file);
    const char *const lines[] = {line, NULL};
    char *cfg = it_write_config(name, lines);
    assert_non_null(cfg);

    for (int check_only = 1; check_only >= 0; check_only--) {
        const char *how = check_only ? "ioserve -t -c" : "ioserve -c";
        char *out = NULL;
        int64_t ms = 0;
        int st = run_ioserve(check_only, cfg, NULL, &out, &ms);
        char sts[128];
        describe(st, sts, sizeof sts);
        it_log("%s: %s: %s in %lld ms", file, how, sts, (long long)ms);
        OUT_CHECK(!strstr(out, "listening on"), out,
                  "%s: `%s` printed \"listening on\" with a plugin that must "
                  "be refused",
                  file, how);
        OUT_CHECK(st != -1, out,
                  "%s: `%s` was still running after 10 s", file, how);
        if (check_only)
            OUT_CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 1, out,
                      "%s: `%s` should exit 1, got: %s", file, how, sts);
        else
            OUT_CHECK(!(WIFEXITED(st) && WEXITSTATUS(st) == 0), out,
                      "%s: `%s` should fail, got: %s", file, how, sts);
        OUT_CHECK(!strstr(out, "configuration ok"), out,
                  "%s: `%s` printed \"configuration ok\"", file, how);
        OUT_CHECK(strstr(out, must_mention), out,
                  "%s: `%s`: the message does not mention %s", file, how,
                  must_mention);
        if (abi)
            OUT_CHECK(abi_line_ok(out, plugin), out,
                      "%s: `%s`: no line names the ABI with both versions "
                      "(the plugin's 2.x and the host's 1.x)",
                      file, how);
        free(out);
    }
    free(cfg);
}

static void bad_plugin_no_run(void **state)
{
    (void)state;
    bad_plugin_check("bad_no_run.so", "model_run", 0);
}

static void bad_plugin_abi(void **state)
{
    (void)state;
    bad_plugin_check("bad_abi.so", "ABI", 1);
}

/* A model that starts but ignores stop_fd: -t's dry run gives up on it
 * after its limit instead of hanging. */
static void bad_plugin_no_drain(void **state)
{
    (void)state;
    IT_CHECK(it_env.bad_plugin_dir, "IOSERVE_BAD_PLUGIN_DIR is not set");
    char line[1200];
    snprintf(line, sizeof line, "model = \"%s/bad_no_drain.so\";", it_env.bad_plugin_dir);
    const char *const lines[] = {line, NULL};
    char *cfg = it_write_config("plugin_no_drain", lines);
    assert_non_null(cfg);
    char *out = NULL;
    int64_t ms = 0;
    int st = run_ioserve(1, cfg, NULL, &out, &ms);
    free(cfg);
    OUT_CHECK(st != -1, out, "`ioserve -t` was still running after 10 s");
    OUT_CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 1, out, "`ioserve -t` should exit 1");
    OUT_CHECK(strstr(out, "did not drain"), out, "the message does not say why");
    OUT_CHECK(!strstr(out, "configuration ok"), out, "printed \"configuration ok\"");
    it_log("no_drain: -t gave up after %lld ms", (long long)ms);
    free(out);
}

int it_run_bad_plugin(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(bad_plugin_no_run),
        cmocka_unit_test(bad_plugin_abi),
        cmocka_unit_test(bad_plugin_no_drain),
    };
    return cmocka_run_group_tests_name("bad_plugin", tests, NULL, NULL);
}

/* ============================================================== check_ok */

static void check_ok_case(const char *name, const char *const *lines,
                          const char *const *overrides)
{
    char *cfg = it_write_config(name, lines);
    assert_non_null(cfg);
    char *out = NULL;
    int64_t ms = 0;
    int st = run_ioserve(1, cfg, overrides, &out, &ms);
    char sts[128];
    describe(st, sts, sizeof sts);
    it_log("%s: ioserve -t -c: %s in %lld ms", name, sts, (long long)ms);
    OUT_CHECK(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0, out,
              "%s: `ioserve -t -c %s` should exit 0, got: %s", name, cfg,
              sts);
    OUT_CHECK(strstr(out, "configuration ok"), out,
              "%s: `ioserve -t` did not print \"configuration ok\"", name);
    OUT_CHECK(!strstr(out, "listening on"), out,
              "%s: `ioserve -t` printed \"listening on\"", name);
    free(out);
    free(cfg);
}

static void check_ok_default(void **state)
{
    (void)state;
    check_ok_case("ok_default", NULL, NULL);
}

static void check_ok_http(void **state)
{
    (void)state;
    static const char *const lines[] = {
        "handler = \"http\";", "workers = 2;",
        "http = { body = \"ok\\n\"; max_header_bytes = 4096; };", NULL};
    check_ok_case("ok_http", lines, NULL);
}

static void check_ok_overrides(void **state)
{
    (void)state;
    static const char *const overrides[] = {"handler=upper", "workers=3",
                                            NULL};
    check_ok_case("ok_overrides", NULL, overrides);
}

int it_run_check_ok(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(check_ok_default),
        cmocka_unit_test(check_ok_http),
        cmocka_unit_test(check_ok_overrides),
    };
    return cmocka_run_group_tests_name("check_ok", tests, NULL, NULL);
}
