/* The plugin loader refuses, with a clear message, what must not run. */
#include <dlfcn.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "plugin_load.h"

#define BAD_DIR TEST_BINARY_DIR "/tests/bad_plugins"
#define GOOD_PLUGIN TEST_BINARY_DIR "/plugins/epoll.so"

static char err[1024];

static void test_good_plugin_loads(void **state)
{
    (void)state;
    struct plugin p;
    assert_int_equal(plugin_open(&p, GOOD_PLUGIN, err, sizeof(err)), 0);
    assert_string_equal(p.desc->name, "epoll");
    assert_non_null(p.run);
    plugin_close(&p);
}

static void test_missing_file(void **state)
{
    (void)state;
    struct plugin p;
    assert_int_equal(plugin_open(&p, BAD_DIR "/nosuch.so", err, sizeof(err)), -1);
    assert_non_null(strstr(err, "nosuch.so"));
    assert_non_null(strstr(err, "No such file"));
}

static void test_no_model_run(void **state)
{
    (void)state;
    struct plugin p;
    assert_int_equal(plugin_open(&p, BAD_DIR "/bad_no_run.so", err, sizeof(err)), -1);
    assert_non_null(strstr(err, "model_run"));
}

static void test_wrong_abi_names_both_versions(void **state)
{
    (void)state;
    struct plugin p;
    char expect_plugin[32], expect_host[32];
    snprintf(expect_plugin, sizeof(expect_plugin), "ABI %d.0", IOS_ABI_MAJOR + 1);
    snprintf(expect_host, sizeof(expect_host), "ABI %d.%d", IOS_ABI_MAJOR, IOS_ABI_MINOR);
    assert_int_equal(plugin_open(&p, BAD_DIR "/bad_abi.so", err, sizeof(err)), -1);
    assert_non_null(strstr(err, expect_plugin));
    assert_non_null(strstr(err, expect_host));
}

/* The ABI's version policy (plugin.h's change log): a host loads a plugin
 * of its major whose required minor is not newer than its own. */
static void test_older_minor_loads(void **state)
{
    (void)state;
    struct plugin p;
    if (plugin_open(&p, BAD_DIR "/older_minor.so", err, sizeof(err)) != 0)
        fail_msg("%s", err);
    assert_int_equal(p.desc->abi_major, IOS_ABI_MAJOR);
    assert_int_equal(p.desc->abi_minor, 0);
    assert_true(p.desc->abi_minor < IOS_ABI_MINOR);
    plugin_close(&p);
}

static void test_newer_minor_refused_names_both_versions(void **state)
{
    (void)state;
    struct plugin p;
    char expect_plugin[32], expect_host[32];
    snprintf(expect_plugin, sizeof(expect_plugin), "ABI %d.%d", IOS_ABI_MAJOR, IOS_ABI_MINOR + 1);
    snprintf(expect_host, sizeof(expect_host), "ABI %d.%d", IOS_ABI_MAJOR, IOS_ABI_MINOR);
    assert_int_equal(plugin_open(&p, BAD_DIR "/bad_newer_minor.so", err, sizeof(err)), -1);
    if (!strstr(err, expect_plugin) || !strstr(err, expect_host))
        fail_msg("\"%s\" does not name %s and %s", err, expect_plugin, expect_host);
    assert_null(p.desc);
}

/* A field is there only when the host's struct holds all of it. */
static void test_handler_has(void **state)
{
    (void)state;
    struct ios_handler h = {.struct_size = sizeof(h)};
    const size_t end = offsetof(struct ios_handler, request_timeout_ms) +
                       sizeof(h.request_timeout_ms);
    assert_true(IOS_HANDLER_HAS(&h, request_timeout_ms));
    assert_true(IOS_HANDLER_HAS(&h, struct_size));
    h.struct_size = end;
    assert_true(IOS_HANDLER_HAS(&h, request_timeout_ms));
    h.struct_size = end - 1; /* a host whose struct ends inside the field */
    assert_false(IOS_HANDLER_HAS(&h, request_timeout_ms));
    h.struct_size = offsetof(struct ios_handler, request_timeout_ms); /* a 1.0 host */
    assert_false(IOS_HANDLER_HAS(&h, request_timeout_ms));
    assert_true(IOS_HANDLER_HAS(&h, host));
}

static void test_not_a_plugin(void **state)
{
    (void)state;
    struct plugin p;
    /* A real shared object without the descriptor: the C library this
     * test runs on, wherever this system keeps it. */
    Dl_info libc;
    assert_true(dladdr((void *)printf, &libc) && libc.dli_fname);
    assert_int_equal(plugin_open(&p, libc.dli_fname, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "ios_model"));
}

/* Copies the good plugin into a fresh folder with the given modes. */
static void copy_plugin(char *dir, char *path, size_t len, mode_t dir_mode, mode_t file_mode)
{
    strcpy(dir, "/tmp/ioserve-plugin-test-XXXXXX");
    assert_non_null(mkdtemp(dir));
    snprintf(path, len, "%s/copy.so", dir);
    char cmd[2048];
    snprintf(cmd, sizeof(cmd), "cp '%s' '%s'", GOOD_PLUGIN, path);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(chmod(path, file_mode), 0);
    assert_int_equal(chmod(dir, dir_mode), 0);
}

static void remove_copy(const char *dir, const char *path)
{
    unlink(path);
    rmdir(dir);
}

static void test_world_writable_file_refused(void **state)
{
    (void)state;
    char dir[64], path[128];
    copy_plugin(dir, path, sizeof(path), 0755, 0666);
    struct plugin p;
    assert_int_equal(plugin_open(&p, path, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "writable by others"));
    remove_copy(dir, path);
}

static void test_world_writable_dir_refused(void **state)
{
    (void)state;
    char dir[64], path[128];
    copy_plugin(dir, path, sizeof(path), 0777, 0755);
    struct plugin p;
    assert_int_equal(plugin_open(&p, path, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "directory"));
    assert_non_null(strstr(err, "writable by others"));
    remove_copy(dir, path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good_plugin_loads),
        cmocka_unit_test(test_missing_file),
        cmocka_unit_test(test_no_model_run),
        cmocka_unit_test(test_wrong_abi_names_both_versions),
        cmocka_unit_test(test_older_minor_loads),
        cmocka_unit_test(test_newer_minor_refused_names_both_versions),
        cmocka_unit_test(test_handler_has),
        cmocka_unit_test(test_not_a_plugin),
        cmocka_unit_test(test_world_writable_file_refused),
        cmocka_unit_test(test_world_writable_dir_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
