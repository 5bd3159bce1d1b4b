/*
 * Fuzz target: the config loader (host/config.c): cfg_load on a file with
 * the fuzz input, plus -o overrides.
 *
 * Input: the file's text, then optionally a NUL and NUL-separated
 * overrides ("KEY=VALUE", as given to -o; at most 8).  A loaded config is
 * then asked what the host asks of it: model paths, and knobs checked
 * against a table with every knob type.  A refused one must come with a
 * message.
 *
 * Inputs whose text holds "@include" are skipped: a config file is trusted
 * and may include any file (/dev/zero, a FIFO...), so following them only
 * fuzzes the file system.  Overrides are fuzzed with includes and all: the
 * loader must treat them as values.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"

#define MAX_OVERRIDES 8

static const struct ios_knob knobs[] = {
    {"flag", IOS_KNOB_BOOL, 1, NULL, 0, 1, "a bool"},
    {"count", IOS_KNOB_INT, 10, NULL, 1, 1000, "an int"},
    {"name", IOS_KNOB_STRING, 0, "x", 0, 0, "a string"},
    IOS_KNOB_END,
};

static char g_path[64];

static void remove_file(void)
{
    unlink(g_path);
}

static int write_file(const uint8_t *data, size_t size)
{
    if (!g_path[0]) {
        snprintf(g_path, sizeof g_path, "/tmp/ioserve-fuzz-cfg.XXXXXX");
        int fd = mkstemp(g_path);
        if (fd < 0)
            abort();
        close(fd);
        atexit(remove_file);
    }
    FILE *f = fopen(g_path, "w");
    if (!f)
        abort();
    if (size && fwrite(data, 1, size, f) != size)
        abort();
    fclose(f);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nul = memchr(data, 0, size);
    size_t text_len = nul ? (size_t)(nul - data) : size;
    if (memmem(data, text_len, "@include", 8))
        return 0;
    write_file(data, text_len);

    /* the overrides, as NUL-terminated copies */
    char *copy = NULL;
    char *ovr[MAX_OVERRIDES];
    size_t n_ovr = 0;
    if (nul) {
        size_t rest = size - text_len - 1;
        copy = malloc(rest + 1);
        if (!copy)
            abort();
        memcpy(copy, nul + 1, rest);
        copy[rest] = 0;
        for (char *p = copy; p < copy + rest && n_ovr < MAX_OVERRIDES;
             p += strlen(p) + 1)
            if (*p)
                ovr[n_ovr++] = p;
    }

    struct ios_config cfg;
    char err[1024];
    memset(err, 0x5a, sizeof err);
    int rc = cfg_load(&cfg, g_path, ovr, n_ovr, err, sizeof err);
    if (rc == 0) {
        char path[4096];
        for (size_t i = 0; i < cfg.n_models; i++)
            cfg_model_path(&cfg, cfg.models[i], path, sizeof path);
        char kerr[1024];
        for (size_t i = 0; i < cfg.n_models; i++) {
            if (cfg_check_knobs(&cfg, cfg.models[i], knobs, kerr, sizeof kerr) != 0) {
                if (!memchr(kerr, 0, sizeof kerr) || !kerr[0])
                    abort();
                continue;
            }
            long long v;
            int b;
            const char *s;
            if (cfg_knob_int(&cfg, cfg.models[i], knobs, "count", &v) != 0 ||
                v < 1 || v > 1000)
                abort(); /* checked knobs must read back in range */
            if (cfg_knob_bool(&cfg, cfg.models[i], knobs, "flag", &b) != 0)
                abort();
            if (cfg_knob_string(&cfg, cfg.models[i], knobs, "name", &s) != 0 ||
                !s)
                abort();
        }
        /* the loader's own promises */
        if (!cfg.listen || !cfg.handler || cfg.n_models == 0 || cfg.workers < 1 ||
            cfg.max_input < cfg.http.max_header_bytes)
            abort();
    } else if (rc == -1) {
        if (!memchr(err, 0, sizeof err) || !err[0])
            abort(); /* refused without a message */
    } else {
        abort();
    }
    cfg_free(&cfg);
    cfg_free(&cfg); /* documented as harmless */
    free(copy);
    return 0;
}
