/*
 * The configuration: libconfig parses etc/ioserve.cfg into a tree, -o
 * overrides are grafted onto that tree (config_override.c), and only then
 * is the tree read by the rule tables below (config_rules.c) into struct
 * ios_config.  Reading the merged tree (rather than file and overrides
 * separately) means one set of rules and one set of messages for both.
 *
 * Nothing here logs: every error is written into the caller's buffer with
 * the place it came from ("FILE:LINE" or "-o KEY", config_report.c), so the
 * master can show it on stderr at start-up and in the log on reload alike.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "addr.h"
#include "config_ints.h"
#include "config_models.h"
#include "config_override.h"
#include "config_report.h"
#include "config_rules.h"
#include "handler.h"
#include "http_parse.h"
#include "log.h"

#ifndef IOSERVE_INSTALLED_PLUGIN_DIR
#define IOSERVE_INSTALLED_PLUGIN_DIR "/usr/local/lib/ioserve/plugins"
#endif
/* The same directory relative to the installed binary's, so a tree
 * installed with `cmake --install --prefix DIR` finds its own plugins. */
#ifndef IOSERVE_PLUGIN_DIR_FROM_BIN
#define IOSERVE_PLUGIN_DIR_FROM_BIN "../lib/ioserve/plugins"
#endif

/* ----------------------------------------------------------- defaults */

/* Next to the binary when run from the build tree, so an uninstalled build
 * finds its own plugins; then the plugin directory of the prefix the binary
 * was installed into (wherever that prefix was moved); else the installed
 * directory compiled in. */
static char *default_plugin_dir(void)
{
    static const char *const beside[] = {"plugins", IOSERVE_PLUGIN_DIR_FROM_BIN};
    char exe[PATH_MAX], *slash, *dir;
    struct stat st;
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    size_t i;

    if (n > 0) {
        exe[n] = '\0';
        slash = strrchr(exe, '/');
        if (slash) {
            *slash = '\0';
            for (i = 0; i < sizeof beside / sizeof beside[0]; i++) {
                if (asprintf(&dir, "%s/%s", exe, beside[i]) < 0)
                    break;
                if (stat(dir, &st) == 0 && S_ISDIR(st.st_mode)) {
                    char *real = i > 0 ? realpath(dir, NULL) : NULL;
                    if (real) { /* no "bin/../" in messages */
                        free(dir);
                        return real;
                    }
                    return dir;
                }
                free(dir);
            }
        }
    }
    return strdup(IOSERVE_INSTALLED_PLUGIN_DIR);
}

void cfg_defaults(struct ios_config *cfg)
{
    char ignored[16];

    memset(cfg, 0, sizeof *cfg);
    cfg->listen = strdup("127.0.0.1:8080");
    if (cfg->listen)
        addr_parse(cfg->listen, &cfg->listen_addr, &cfg->listen_addrlen, ignored,
                   sizeof ignored);
    cfg->backlog = 511;
    cfg->models[0] = strdup("epoll");
    cfg->n_models = 1;
    cfg->plugin_dir = default_plugin_dir();
    cfg->handler = strdup("echo");
    cfg->workers = 1;
    cfg->max_connections = 10000;
    cfg->idle_timeout_ms = 60 * 1000;
    cfg->drain_timeout_ms = 30 * 1000;
    cfg->handover = 1;
    cfg->upgrade_timeout_ms = 20 * 1000;
    cfg->latency_histogram = 1;
    cfg->log_level = IOS_LOG_INFO;
    cfg->read_chunk = 16384;
    cfg->max_input = 65536;
    cfg->output_high_water = 262144;
    cfg->http.body = strdup("Hello from ioserve\n");
    cfg->http.content_type = strdup("text/plain");
    cfg->http.max_header_bytes = 8192;
    cfg->http.max_body_bytes = 1048576;
    cfg->http.header_timeout_ms = 10 * 1000;
}

/* cfg_defaults cannot report a failed strdup; cfg_load checks here. */
static int defaults_complete(const struct ios_config *cfg)
{
    return cfg->listen && cfg->models[0] && cfg->plugin_dir && cfg->handler &&
           cfg->http.body && cfg->http.content_type;
}

void cfg_free(struct ios_config *cfg)
{
    size_t i;

    free(cfg->file);
    free(cfg->dir);
    free(cfg->listen);
    for (i = 0; i < CFG_MAX_MODELS; i++)
        free(cfg->models[i]);
    free(cfg->plugin_dir);
    free(cfg->handler);
    free(cfg->pid_file);
    free(cfg->status_listen);
    free(cfg->user);
    free(cfg->group);
    free(cfg->http.body);
    free(cfg->http.content_type);
    free(cfg->canary.model);
    if (cfg->lc_valid)
        config_destroy(&cfg->lc);
    memset(cfg, 0, sizeof *cfg);
}

/* -------------------------------------------------------------- paths */

/* The file's directory made absolute, without resolving the file itself:
 * a symlinked config still finds paths relative to where it is linked. */
static char *config_dir(const char *file)
{
    char *copy = strdup(file), *dir;

    if (!copy)
        return NULL;
    dir = realpath(dirname(copy), NULL);
    free(copy);
    return dir;
}

int cfg_model_path(const struct ios_config *cfg, const char *model,
                   char *out, size_t outlen)
{
    int n;

    if (!model || !out || outlen == 0)
        return -1;
    if (strchr(model, '/')) {
        if (model[0] == '/' || !cfg->dir)
            n = snprintf(out, outlen, "%s", model);
        else
            n = snprintf(out, outlen, "%s/%s", cfg->dir, model);
    } else {
        if (!cfg->plugin_dir)
            return -1;
        n = snprintf(out, outlen, "%s/%s.so", cfg->plugin_dir, model);
    }
    return n < 0 || (size_t)n >= outlen ? -1 : 0;
}

/* ---------------------------------------------------------- the tables */

/* `model`: one non-empty name, or a list of 1 to CFG_MAX_MODELS of them. */
static int models_valid(const config_setting_t *s, int single, int n)
{
    if (n < 1 || n > CFG_MAX_MODELS)
        return 0;
    for (int i = 0; i < n; i++) {
        const config_setting_t *e = single ? s : config_setting_get_elem(s, (unsigned)i);
        if (config_setting_type(e) != CONFIG_TYPE_STRING || !config_setting_get_string(e)[0])
            return 0;
    }
    return 1;
}

/* `model` is one name or a list of them, tried in order: the first that
 * starts wins, so a machine without io_uring can fall back to epoll. */
static int store_models(struct cfg_rules_ctx *cx, const config_setting_t *s)
{
    struct ios_config *cfg = cx->base;
    char *names[CFG_MAX_MODELS] = {NULL};
    int single = config_setting_type(s) == CONFIG_TYPE_STRING;
    int n = single ? 1 : -1;

    if (config_setting_is_list(s) || config_setting_is_array(s))
        n = config_setting_length(s);
    if (!models_valid(s, single, n))
        return cfg_fail_at(&cx->rep, s, "'model' must be a model name or a list of 1 to %d "
                                         "names tried in order, e.g. [\"uring\", \"epoll\"]",
                           CFG_MAX_MODELS);
    for (int i = 0; i < n; i++) {
        const config_setting_t *e = single ? s : config_setting_get_elem(s, (unsigned)i);
        names[i] = strdup(config_setting_get_string(e));
        if (!names[i]) {
            while (i-- > 0)
                free(names[i]);
            return cfg_fail(&cx->rep, "out of memory");
        }
    }
    for (int i = 0; i < CFG_MAX_MODELS; i++) {
        free(cfg->models[i]);
        cfg->models[i] = names[i];
    }
    cfg->n_models = (size_t)n;
    return 0;
}

static int content_type_ok(const char *v)
{
    return v[0] != '\0' && http_header_value_ok(v);
}

#define FIELD(f) offsetof(struct ios_config, f)
#define R_NUM(k, n, f, lo, hi) {.name = n, .kind = k, .offset = FIELD(f), .min = lo, .max = hi}
#define R_INT(n, f, lo, hi) R_NUM(CFG_RULE_INT, n, f, lo, hi)
#define R_UINT(n, f, lo, hi) R_NUM(CFG_RULE_UINT, n, f, lo, hi)
#define R_SIZE(n, f, lo, hi) R_NUM(CFG_RULE_SIZE, n, f, lo, hi)
#define R_BOOL(n, f) {.name = n, .kind = CFG_RULE_BOOL, .offset = FIELD(f)}
#define R_MS(n, f, max_s) R_NUM(CFG_RULE_MS, n, f, 1, max_s)
/* a duration where 0 means "none" */
#define R_MS_OR_0(n, f, max_s) R_NUM(CFG_RULE_MS, n, f, 0, max_s)
/* unset: "" leaves the field NULL instead of being an error */
#define R_STRING(n, f, unset) {.name = n, .kind = CFG_RULE_STRING, .offset = FIELD(f), \
                               .empty_is_unset = unset}
#define R_STRING_IF(n, f, test, says) {.name = n, .kind = CFG_RULE_STRING, .offset = FIELD(f), \
                                       .valid = test, .valid_says = says}
#define R_PATH(n, f, unset) {.name = n, .kind = CFG_RULE_PATH, .offset = FIELD(f), \
                             .empty_is_unset = unset}
#define R_CHOICE(n, f, list) {.name = n, .kind = CFG_RULE_CHOICE, .offset = FIELD(f), \
                              .choices = list}
#define R_INDEX(n, f, list) {.name = n, .kind = CFG_RULE_INDEX, .offset = FIELD(f), \
                             .choices = list}
#define R_ADDRESS(n, f, addr, len, unset)                                               \
    {.name = n, .kind = CFG_RULE_ADDRESS, .offset = FIELD(f), .addr_offset = FIELD(addr), \
     .len_offset = FIELD(len), .empty_is_unset = unset}
#define R_GROUP(n, rules, eg) {.name = n, .kind = CFG_RULE_GROUP, .members = rules, .example = eg}
#define R_CUSTOM(n, fn) {.name = n, .kind = CFG_RULE_CUSTOM, .custom = fn}
#define R_END {.name = NULL}

static const struct cfg_rule http_rules[] = {
    R_STRING("body", http.body, 0),
    R_STRING_IF("content_type", http.content_type, content_type_ok,
                "a non-empty string without control characters"),
    R_SIZE("max_header_bytes", http.max_header_bytes, 256, 1048576),
    R_SIZE("max_body_bytes", http.max_body_bytes, 0, 1073741824),
    R_MS("header_timeout", http.header_timeout_ms, 86400),
    R_END,
};

static int nonempty(const char *v)
{
    return v[0] != '\0';
}

static const struct cfg_rule canary_rules[] = {
    R_STRING_IF("model", canary.model, nonempty, "a model name or a plugin path"),
    R_UINT("share", canary.share, 1, 99),
    R_UINT("workers", canary.workers, 1, CFG_MAX_WORKERS),
    R_END,
};

static const struct cfg_rule top_rules[] = {
    R_ADDRESS("listen", listen, listen_addr, listen_addrlen, 0),
    R_INT("backlog", backlog, 1, 65535),
    R_CUSTOM("model", store_models),
    R_PATH("plugin_dir", plugin_dir, 0),
    R_CHOICE("handler", handler, hnd_names),
    R_UINT("workers", workers, 1, CFG_MAX_WORKERS),
    R_UINT("max_connections", max_connections, 1, 1000000),
    R_MS("idle_timeout", idle_timeout_ms, 86400),
    R_MS("drain_timeout", drain_timeout_ms, 86400),
    R_MS_OR_0("quit_delay", quit_delay_ms, 600),
    R_BOOL("handover", handover),
    R_MS("upgrade_timeout", upgrade_timeout_ms, 3600),
    R_INDEX("log_level", log_level, log_level_names),
    R_PATH("pid_file", pid_file, 1),
    /* the master's /metrics: off unless set */
    R_ADDRESS("status_listen", status_listen, status_addr, status_addrlen, 1),
    R_BOOL("latency_histogram", latency_histogram),
    R_STRING("user", user, 1), /* user/group: "" is the same as leaving them out */
    R_STRING("group", group, 1),
    R_SIZE("read_chunk", read_chunk, 512, 1048576),
    R_SIZE("max_input", max_input, 1024, 67108864),
    R_SIZE("output_high_water", output_high_water, 4096, 268435456),
    R_GROUP("http", http_rules, "http = { body = \"hi\\n\"; }"),
    R_GROUP("canary", canary_rules, "canary = { model = \"uring\"; share = 10; }"),
    /* models.<name>: its knobs are checked against the plugin's table when
     * the plugin is loaded; here the shape, and the names after reading */
    R_CUSTOM("models", cfg_check_models_shape),
    R_END,
};

/* The canary side's workers when canary.workers is unset: its share of
 * `workers`, rounded up, so each side has about as many connections per
 * worker. */
static unsigned canary_default_workers(unsigned workers, unsigned share)
{
    return (workers * share + 99) / 100;
}

/* `canary`, once read: complete, a model other than `model`'s, and one
 * that exists.  0, or -1 naming the place. */
static int check_canary(struct ios_config *cfg, const struct cfg_report *r)
{
    const config_setting_t *g = config_lookup(&cfg->lc, "canary");
    const config_setting_t *s;
    if (!g)
        return 0;
    if (!cfg->canary.model)
        return cfg_fail_at(r, g, "'canary' needs 'model', the model serving its share, e.g. "
                                 "canary = { model = \"uring\"; share = 10; }");
    if (cfg->canary.share == 0)
        return cfg_fail_at(r, g, "'canary' needs 'share', the percent of new connections "
                                 "model '%s' serves (1 to 99)", cfg->canary.model);
    s = config_lookup(&cfg->lc, "canary.model");
    for (size_t i = 0; i < cfg->n_models; i++)
        if (strcmp(cfg->models[i], cfg->canary.model) == 0)
            return cfg_fail_at(r, s, "'canary.model' is '%s', which 'model' already names: a "
                                     "split compares two different models",
                               cfg->canary.model);
    if (cfg_check_model_known(cfg, r, s, cfg->canary.model) < 0)
        return -1;
    if (cfg->canary.workers == 0)
        cfg->canary.workers = canary_default_workers(cfg->workers, cfg->canary.share);
    if (cfg->workers + cfg->canary.workers > CFG_MAX_WORKERS) {
        s = config_lookup(&cfg->lc, "canary.workers");
        return cfg_fail_at(r, s ? s : g, "'workers' (%u) and 'canary.workers' (%u) add up to "
                                         "more than %d workers",
                           cfg->workers, cfg->canary.workers, CFG_MAX_WORKERS);
    }
    return 0;
}

/* Settings that are each valid but contradict one another. */
static int check_cross(struct ios_config *cfg, const struct cfg_report *r)
{
    const config_setting_t *s;

    if (check_canary(cfg, r) < 0)
        return -1;

    if (cfg->max_input >= cfg->http.max_header_bytes)
        return 0;
    s = config_lookup(&cfg->lc, "max_input");
    if (!s)
        s = config_lookup(&cfg->lc, "http.max_header_bytes");
    if (!s)
        s = config_root_setting(&cfg->lc);
    return cfg_fail_at(r, s, "'max_input' (%zu) must be >= 'http.max_header_bytes' (%zu): a "
                             "request head has to fit in the unconsumed input",
                       cfg->max_input, cfg->http.max_header_bytes);
}

/* ---------------------------------------------------------------- load */

/*
 * libconfig 1.5 puts its include_dir before every @include path, absolute
 * ones too ("/etc/x.cfg" becomes "DIR//etc/x.cfg"); only from 1.7 can the
 * include function be replaced.  So the file is parsed without an
 * include_dir from inside its own folder: a relative @include is found next
 * to the config, an absolute one where it says.  The stream is opened by the
 * caller, before the move, so a relative config name keeps its meaning; the
 * working directory is restored before returning.  0 or -errno.
 */
static int parse_in_config_dir(struct ios_config *cfg, FILE *f, int *parsed)
{
    int here = open(".", O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (here < 0)
        return -errno;
    if (chdir(cfg->dir) != 0) {
        int e = errno;
        close(here);
        return -e;
    }
    *parsed = config_read(&cfg->lc, f);
    int rc = fchdir(here) == 0 ? 0 : -errno;
    close(here);
    return rc;
}

static int read_tree(struct ios_config *cfg, const struct cfg_report *r)
{
    const char *file;
    int parsed = 0;

    /* libconfig only says "file I/O error"; errno says which. */
    FILE *f = fopen(cfg->file, "re");
    if (!f)
        return cfg_fail(r, "%s: %s", cfg->file, strerror(errno));
    cfg->dir = config_dir(cfg->file);
    if (!cfg->dir) {
        fclose(f);
        return cfg_fail(r, "%s: %s", cfg->file, strerror(errno));
    }
    config_init(&cfg->lc);
    cfg->lc_valid = 1;
    int rc = parse_in_config_dir(cfg, f, &parsed);
    fclose(f);
    if (rc < 0)
        return cfg_fail(r, "%s: reading it from %s: %s", cfg->file, cfg->dir, strerror(-rc));
    if (parsed)
        return cfg_refuse_wrapping_ints(&cfg->lc, cfg->file, cfg->dir, r);
    if (config_error_type(&cfg->lc) == CONFIG_ERR_FILE_IO)
        return cfg_fail(r, "%s: %s", cfg->file, config_error_text(&cfg->lc));
    file = config_error_file(&cfg->lc);
    return cfg_fail(r, "%s:%d: %s", file ? file : cfg->file,
                config_error_line(&cfg->lc), config_error_text(&cfg->lc));
}

static int load(struct ios_config *cfg, const char *file, char *const *overrides,
                size_t n_overrides, const struct cfg_report *r)
{
    if (!defaults_complete(cfg))
        return cfg_fail(r, "out of memory");
    cfg->file = strdup(file);
    if (!cfg->file)
        return cfg_fail(r, "out of memory");
    if (read_tree(cfg, r) < 0)
        return -1;
    for (size_t i = 0; i < n_overrides; i++)
        if (cfg_override(&cfg->lc, r, overrides[i]) < 0)
            return -1;
    struct cfg_rules_ctx cx = {*r, cfg, cfg->dir};
    if (cfg_rules_read(&cx, config_root_setting(&cfg->lc), top_rules, "") < 0 ||
        cfg_check_model_names(cfg, r) < 0)
        return -1;
    return check_cross(cfg, r);
}

int cfg_load(struct ios_config *cfg, const char *file, char *const *overrides,
             size_t n_overrides, char *err, size_t errlen)
{
    const struct cfg_report r = {file, err, errlen};

    if (err && errlen > 0)
        err[0] = '\0';
    cfg_defaults(cfg);
    if (load(cfg, file, overrides, n_overrides, &r) == 0)
        return 0;
    cfg_free(cfg);
    return -1;
}
