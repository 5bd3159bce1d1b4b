/*
 * The configuration: libconfig parses etc/ioserve.cfg into a tree, -o
 * overrides are grafted onto that tree, and only then is the tree checked
 * against the tables below and copied into struct ios_config.  Validating
 * the merged tree (rather than file and overrides separately) means one set
 * of rules and one set of messages for both.
 *
 * Nothing here logs: every error is written into the caller's buffer with
 * the place it came from ("FILE:LINE" or "-o KEY"), so the master can show
 * it on stderr at start-up and in the log on reload alike.
 */
#include "config.h"
#include "config_ints.h"
#include "handler.h"
#include "http_parse.h"
#include "log.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef IOSERVE_INSTALLED_PLUGIN_DIR
#define IOSERVE_INSTALLED_PLUGIN_DIR "/usr/local/lib/ioserve/plugins"
#endif
/* The same directory relative to the installed binary's, so a tree
 * installed with `cmake --install --prefix DIR` finds its own plugins. */
#ifndef IOSERVE_PLUGIN_DIR_FROM_BIN
#define IOSERVE_PLUGIN_DIR_FROM_BIN "../lib/ioserve/plugins"
#endif

/* A config setting larger than this is not a plausible setting name, so
 * cfg_closest does not bother measuring it (and needs no allocation). */
#define NAME_MAX_LEN 128


/* ------------------------------------------------------------ messages */

/* Where messages go, and the file name to use when libconfig has none. */
struct report {
    const char *file;
    char *err;
    size_t errlen;
};

/* snprintf that keeps counting past the end, so callers can append
 * several pieces and detect truncation once. */
static size_t append(char *buf, size_t len, size_t n, const char *fmt, ...)
    IOS_PRINTF(4, 5);
static size_t append(char *buf, size_t len, size_t n, const char *fmt, ...)
{
    va_list ap;
    int k;

    va_start(ap, fmt);
    k = vsnprintf(n < len ? buf + n : NULL, n < len ? len - n : 0, fmt, ap);
    va_end(ap);
    return k < 0 ? n : n + (size_t)k;
}

static int fail(const struct report *r, const char *fmt, ...) IOS_PRINTF(2, 3);
static int fail(const struct report *r, const char *fmt, ...)
{
    va_list ap;

    if (r->err && r->errlen > 0) {
        va_start(ap, fmt);
        vsnprintf(r->err, r->errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

/* "http.max_header_bytes", "model[1]": the dotted name users write. */
static size_t setting_path(const config_setting_t *s, char *buf, size_t len)
{
    const config_setting_t *parent = config_setting_parent(s);
    size_t n = 0;

    if (len > 0)
        buf[0] = '\0';
    if (parent && !config_setting_is_root(parent))
        n = setting_path(parent, buf, len);
    if (config_setting_name(s))
        return append(buf, len, n, "%s%s", n ? "." : "",
                      config_setting_name(s));
    return append(buf, len, n, "[%d]", config_setting_index(s));
}

/* For what libconfig 1.5 reads without a word: see config_ints.h. */
static int wrapping_int_error(const struct report *r, const char *where,
                              const char *lit)
{
    return fail(r, "%s: integer %s does not fit in 32 bits, and libconfig would "
                   "silently wrap it: write %sL for a 64-bit integer",
                where, lit, lit);
}

/*
 * "FILE:LINE" for a setting the parser made; "-o KEY" for one an override
 * made, which libconfig leaves at line 0.  List elements are reported at
 * their list, the thing the user actually named.
 */
static void setting_where(const struct report *r, const config_setting_t *s,
                          char *buf, size_t len)
{
    const char *file;

    if (config_setting_is_root(s)) {
        snprintf(buf, len, "%s", r->file);
        return;
    }
    if (config_setting_source_line(s) > 0) {
        file = config_setting_source_file(s);
        snprintf(buf, len, "%s:%u", file ? file : r->file,
                 (unsigned)config_setting_source_line(s));
        return;
    }
    while (!config_setting_name(s) && config_setting_parent(s))
        s = config_setting_parent(s);
    setting_path(s, buf, len);
    size_t n = strlen(buf);
    if (n + 4 < len) { /* prefix "-o " in place */
        memmove(buf + 3, buf, n + 1);
        memcpy(buf, "-o ", 3);
    }
}

static int fail_at(const struct report *r, const config_setting_t *s,
                   const char *fmt, ...) IOS_PRINTF(3, 4);
static int fail_at(const struct report *r, const config_setting_t *s,
                   const char *fmt, ...)
{
    char where[PATH_MAX + 64];
    va_list ap;
    size_t n;

    if (!r->err || r->errlen == 0)
        return -1;
    setting_where(r, s, where, sizeof where);
    n = append(r->err, r->errlen, 0, "%s: ", where);
    if (n < r->errlen) {
        va_start(ap, fmt);
        vsnprintf(r->err + n, r->errlen - n, fmt, ap);
        va_end(ap);
    }
    return -1;
}

/* ------------------------------------------------------ closest match */

struct closest {
    const char *word;
    size_t word_len;
    size_t limit; /* largest distance still taken for a typo */
    size_t best_distance;
    const char *best;
};

static void closest_init(struct closest *c, const char *word)
{
    c->word = word;
    c->word_len = strlen(word);
    c->limit = c->word_len / 3 > 2 ? c->word_len / 3 : 2;
    c->best_distance = (size_t)-1;
    c->best = NULL;
}

/* Levenshtein distance, one row at a time over the (short) candidate. */
static size_t edit_distance(const char *a, size_t la, const char *b, size_t lb)
{
    size_t row[NAME_MAX_LEN + 1];
    size_t i, j, diag, up;

    for (j = 0; j <= lb; j++)
        row[j] = j;
    for (i = 1; i <= la; i++) {
        diag = row[0];
        row[0] = i;
        for (j = 1; j <= lb; j++) {
            up = row[j];
            size_t best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best)
                best = up + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

static void closest_try(struct closest *c, const char *candidate)
{
    size_t len = strlen(candidate), d;
    size_t gap = len > c->word_len ? len - c->word_len : c->word_len - len;

    /* The length difference is a lower bound of the distance: it rules
     * out most candidates, and every over-long one, without measuring. */
    if (len > NAME_MAX_LEN || gap > c->limit || gap >= c->best_distance)
        return;
    d = edit_distance(c->word, c->word_len, candidate, len);
    if (d <= c->limit && d < c->best_distance) {
        c->best_distance = d;
        c->best = candidate;
    }
}

const char *cfg_closest(const char *word, const char *const *candidates)
{
    struct closest c;

    if (!word || !candidates)
        return NULL;
    closest_init(&c, word);
    for (; *candidates; candidates++)
        closest_try(&c, *candidates);
    return c.best;
}

/* " (did you mean 'X'?)" or "", for the end of a message. */
static const char *did_you_mean(const char *suggestion, const char *prefix,
                                char *buf, size_t len)
{
    if (!suggestion)
        return "";
    snprintf(buf, len, " (did you mean '%s%s'?)", prefix, suggestion);
    return buf;
}

/* ------------------------------------------------------------- listen */

/* 0..65535, decimal digits only: "80x" or "" is a typo, not port 80/0. */
static int parse_port(const char *text, unsigned *port)
{
    unsigned long v = 0;
    size_t i;

    if (text[0] == '\0' || strlen(text) > 5)
        return -1;
    for (i = 0; text[i]; i++) {
        if (text[i] < '0' || text[i] > '9')
            return -1;
        v = v * 10 + (unsigned long)(text[i] - '0');
    }
    if (v > 65535)
        return -1;
    *port = (unsigned)v;
    return 0;
}

static int listen_v4(const char *host, unsigned port,
                     struct sockaddr_storage *ss, socklen_t *len)
{
    struct sockaddr_in *sin = (struct sockaddr_in *)ss;

    memset(ss, 0, sizeof *ss);
    sin->sin_family = AF_INET;
    sin->sin_port = htons((uint16_t)port);
    if (strcmp(host, "*") == 0)
        sin->sin_addr.s_addr = htonl(INADDR_ANY);
    else if (strcmp(host, "localhost") == 0)
        sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    else if (inet_pton(AF_INET, host, &sin->sin_addr) != 1)
        return -1;
    *len = sizeof *sin;
    return 0;
}

static int listen_v6(const char *host, unsigned port,
                     struct sockaddr_storage *ss, socklen_t *len)
{
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

    memset(ss, 0, sizeof *ss);
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons((uint16_t)port);
    if (inet_pton(AF_INET6, host, &sin6->sin6_addr) != 1)
        return -1;
    *len = sizeof *sin6;
    return 0;
}

int cfg_parse_listen(const char *text, struct sockaddr_storage *ss,
                     socklen_t *len, char *err, size_t errlen)
{
    const struct report r = {NULL, err, errlen};
    const char *host, *host_end, *port_text, *colon;
    char host_buf[INET6_ADDRSTRLEN + 16];
    unsigned port;
    int v6 = text[0] == '[';

    if (v6) {
        host = text + 1;
        host_end = strchr(host, ']');
        if (!host_end)
            return fail(&r, "listen '%s': missing ']' after the IPv6 address",
                        text);
        if (host_end[1] != ':')
            return fail(&r, "listen '%s': missing ':PORT' after ']', e.g. "
                        "[::1]:8080", text);
        port_text = host_end + 2;
    } else {
        host = text;
        colon = strrchr(text, ':');
        if (!colon)
            return fail(&r, "listen '%s': missing ':PORT', e.g. "
                        "127.0.0.1:8080", text);
        if (memchr(text, ':', (size_t)(colon - text)))
            return fail(&r, "listen '%s': an IPv6 address goes in brackets, "
                        "e.g. [::1]:8080", text);
        host_end = colon;
        port_text = colon + 1;
    }
    if (parse_port(port_text, &port) < 0)
        return fail(&r, "listen '%s': port '%s' is not a number from 0 to "
                    "65535", text, port_text);
    if ((size_t)(host_end - host) >= sizeof host_buf)
        goto bad_host;
    memcpy(host_buf, host, (size_t)(host_end - host));
    host_buf[host_end - host] = '\0';
    if ((v6 ? listen_v6 : listen_v4)(host_buf, port, ss, len) == 0)
        return 0;
bad_host:
    return fail(&r, "listen '%s': host '%.*s' is not %s", text,
                (int)(host_end - host), host,
                v6 ? "an IPv6 address"
                   : "an IPv4 address, '*', 'localhost' or [an IPv6 address]");
}

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
        cfg_parse_listen(cfg->listen, &cfg->listen_addr, &cfg->listen_addrlen,
                         ignored, sizeof ignored);
    cfg->backlog = 511;
    cfg->models[0] = strdup("epoll");
    cfg->n_models = 1;
    cfg->plugin_dir = default_plugin_dir();
    cfg->handler = strdup("echo");
    cfg->workers = 1;
    cfg->max_connections = 10000;
    cfg->idle_timeout_ms = 60 * 1000;
    cfg->drain_timeout_ms = 30 * 1000;
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
    if (cfg->lc_valid)
        config_destroy(&cfg->lc);
    memset(cfg, 0, sizeof *cfg);
}

/* Every setting points back at its config_t, so a moved config_t must take
 * its tree along. */
static void repoint_tree(config_setting_t *s, config_t *lc)
{
    int i, n;

    s->config = lc;
    if (!config_setting_is_aggregate(s))
        return;
    n = config_setting_length(s);
    for (i = 0; i < n; i++)
        repoint_tree(config_setting_get_elem(s, (unsigned)i), lc);
}

void cfg_move(struct ios_config *dst, struct ios_config *src)
{
    *dst = *src;
    if (dst->lc_valid && config_root_setting(&dst->lc))
        repoint_tree(config_root_setting(&dst->lc), &dst->lc);
    memset(src, 0, sizeof *src);
}

/* -------------------------------------------------------------- paths */

static char *resolve_path(const char *dir, const char *path)
{
    char *out;

    if (path[0] == '/' || !dir)
        return strdup(path);
    if (asprintf(&out, "%s/%s", dir, path) < 0)
        return NULL;
    return out;
}

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

/* ---------------------------------------------------- value accessors */

struct load_ctx {
    struct ios_config *cfg;
    struct report rep;
};

#define PATH_BUF 256

static int get_integer(const struct report *r, const config_setting_t *s,
                       long long min, long long max, long long *out)
{
    char path[PATH_BUF];
    int type = config_setting_type(s);
    long long v;

    *out = 0;
    setting_path(s, path, sizeof path);
    if (type != CONFIG_TYPE_INT && type != CONFIG_TYPE_INT64)
        return fail_at(r, s, "'%s' must be an integer from %lld to %lld",
                       path, min, max);
    v = config_setting_get_int64(s);
    if (v < min || v > max)
        return fail_at(r, s, "'%s' must be an integer from %lld to %lld "
                       "(got %lld)", path, min, max, v);
    *out = v;
    return 0;
}

/* Durations are written in seconds (fractions allowed) and kept in ms;
 * anything under a millisecond would round to "no timeout at all". */
static int get_ms(const struct report *r, const config_setting_t *s,
                  long long max_seconds, unsigned *out)
{
    char path[PATH_BUF];
    int type = config_setting_type(s);
    double v;

    setting_path(s, path, sizeof path);
    if (type == CONFIG_TYPE_FLOAT)
        v = config_setting_get_float(s);
    else if (type == CONFIG_TYPE_INT || type == CONFIG_TYPE_INT64)
        v = (double)config_setting_get_int64(s);
    else
        return fail_at(r, s, "'%s' must be a number of seconds from 0.001 "
                       "to %lld", path, max_seconds);
    if (!(v >= 0.001) || v > (double)max_seconds)
        return fail_at(r, s, "'%s' must be a number of seconds from 0.001 "
                       "to %lld (got %g)", path, max_seconds, v);
    *out = (unsigned)(v * 1000.0 + 0.5);
    return 0;
}

static int get_string(const struct report *r, const config_setting_t *s,
                      const char **out)
{
    char path[PATH_BUF];

    *out = "";
    if (config_setting_type(s) != CONFIG_TYPE_STRING) {
        setting_path(s, path, sizeof path);
        return fail_at(r, s, "'%s' must be a string", path);
    }
    *out = config_setting_get_string(s);
    return 0;
}

/* Replaces a heap string field; the old value survives a failed copy. */
static int set_string(const struct report *r, char **field, const char *v)
{
    char *copy = v ? strdup(v) : NULL;

    if (v && !copy)
        return fail(r, "out of memory");
    free(*field);
    *field = copy;
    return 0;
}

/* The index of the setting's value in `choices`, or an error that lists
 * them all and guesses the intended one. */
static int get_choice(const struct report *r, const config_setting_t *s,
                      const char *const *choices, size_t *index)
{
    char path[PATH_BUF], list[256], hint[96];
    const char *v;
    size_t i, n = 0;

    if (get_string(r, s, &v) < 0)
        return -1;
    for (i = 0; choices[i]; i++) {
        if (strcmp(v, choices[i]) == 0) {
            *index = i;
            return 0;
        }
        n = append(list, sizeof list, n, "%s%s", i ? ", " : "", choices[i]);
    }
    setting_path(s, path, sizeof path);
    return fail_at(r, s, "'%s' must be one of %s, not '%s'%s", path, list, v,
                   did_you_mean(cfg_closest(v, choices), "", hint,
                                sizeof hint));
}

/* --------------------------------------------------- setting handlers */

static int check_listen(struct load_ctx *cx, const config_setting_t *s)
{
    struct ios_config *cfg = cx->cfg;
    struct sockaddr_storage ss;
    socklen_t len;
    const char *v;
    char msg[512];

    if (get_string(&cx->rep, s, &v) < 0)
        return -1;
    if (cfg_parse_listen(v, &ss, &len, msg, sizeof msg) < 0)
        return fail_at(&cx->rep, s, "%s", msg); /* names listen already */
    if (set_string(&cx->rep, &cfg->listen, v) < 0)
        return -1;
    cfg->listen_addr = ss;
    cfg->listen_addrlen = len;
    return 0;
}

/* The master's metrics endpoint: off unless set. */
static int check_status_listen(struct load_ctx *cx, const config_setting_t *s)
{
    struct ios_config *cfg = cx->cfg;
    const char *v;
    char msg[512];

    if (get_string(&cx->rep, s, &v) < 0)
        return -1;
    free(cfg->status_listen);
    cfg->status_listen = NULL;
    if (v[0] == '\0')
        return 0;
    if (cfg_parse_listen(v, &cfg->status_addr, &cfg->status_addrlen, msg, sizeof msg) < 0)
        return fail_at(&cx->rep, s, "'status_listen': %s", msg);
    return set_string(&cx->rep, &cfg->status_listen, v);
}

static int model_name_ok(const config_setting_t *e)
{
    return config_setting_type(e) == CONFIG_TYPE_STRING &&
           config_setting_get_string(e)[0] != '\0';
}

/* `model` is one name or a list of them, tried in order: the first that
 * starts wins, so a machine without io_uring can fall back to epoll. */
static int check_model(struct load_ctx *cx, const config_setting_t *s)
{
    struct ios_config *cfg = cx->cfg;
    char *names[CFG_MAX_MODELS] = {NULL};
    int single = config_setting_type(s) == CONFIG_TYPE_STRING;
    int n = single ? 1 : -1, i;

    if (config_setting_is_list(s) || config_setting_is_array(s))
        n = config_setting_length(s);
    if (n < 1 || n > CFG_MAX_MODELS)
        goto bad;
    for (i = 0; i < n; i++) {
        const config_setting_t *e =
            single ? s : config_setting_get_elem(s, (unsigned)i);
        if (!model_name_ok(e))
            goto bad;
    }
    for (i = 0; i < n; i++) {
        const config_setting_t *e =
            single ? s : config_setting_get_elem(s, (unsigned)i);
        names[i] = strdup(config_setting_get_string(e));
        if (!names[i]) {
            while (i-- > 0)
                free(names[i]);
            return fail(&cx->rep, "out of memory");
        }
    }
    for (i = 0; i < CFG_MAX_MODELS; i++) {
        free(cfg->models[i]);
        cfg->models[i] = names[i];
    }
    cfg->n_models = (size_t)n;
    return 0;
bad:
    return fail_at(&cx->rep, s, "'model' must be a model name or a list of "
                   "1 to %d names tried in order, e.g. [\"uring\", \"epoll\"]",
                   CFG_MAX_MODELS);
}

/* Relative paths in the file mean "next to the file", not "wherever the
 * server happened to be started". */
static int check_path(const struct report *r, const config_setting_t *s,
                      const char *dir, int empty_ok, char **field)
{
    char path[PATH_BUF], *abs;
    const char *v;

    if (get_string(r, s, &v) < 0)
        return -1;
    if (v[0] == '\0') {
        if (!empty_ok) {
            setting_path(s, path, sizeof path);
            return fail_at(r, s, "'%s' must not be empty", path);
        }
        free(*field);
        *field = NULL;
        return 0;
    }
    abs = resolve_path(dir, v);
    if (!abs)
        return fail(r, "out of memory");
    free(*field);
    *field = abs;
    return 0;
}

static int check_plugin_dir(struct load_ctx *cx, const config_setting_t *s)
{
    return check_path(&cx->rep, s, cx->cfg->dir, 0, &cx->cfg->plugin_dir);
}

static int check_pid_file(struct load_ctx *cx, const config_setting_t *s)
{
    return check_path(&cx->rep, s, cx->cfg->dir, 1, &cx->cfg->pid_file);
}

static int check_handler(struct load_ctx *cx, const config_setting_t *s)
{
    size_t i;

    if (get_choice(&cx->rep, s, hnd_names, &i) < 0)
        return -1;
    return set_string(&cx->rep, &cx->cfg->handler, hnd_names[i]);
}

static int check_log_level(struct load_ctx *cx, const config_setting_t *s)
{
    size_t i;

    if (get_choice(&cx->rep, s, log_level_names, &i) < 0)
        return -1;
    cx->cfg->log_level = (enum ios_log_level)i;
    return 0;
}

/* user/group: "" is the same as leaving them out. */
static int check_account(const struct report *r, const config_setting_t *s,
                         char **field)
{
    const char *v;

    if (get_string(r, s, &v) < 0)
        return -1;
    return set_string(r, field, v[0] ? v : NULL);
}

static int check_user(struct load_ctx *cx, const config_setting_t *s)
{
    return check_account(&cx->rep, s, &cx->cfg->user);
}

static int check_group(struct load_ctx *cx, const config_setting_t *s)
{
    return check_account(&cx->rep, s, &cx->cfg->group);
}

static int check_content_type(struct load_ctx *cx, const config_setting_t *s)
{
    const char *v;

    if (get_string(&cx->rep, s, &v) < 0)
        return -1;
    if (v[0] == '\0' || !http_header_value_ok(v))
        return fail_at(&cx->rep, s, "'http.content_type' must be a non-empty "
                       "string without control characters");
    return set_string(&cx->rep, &cx->cfg->http.content_type, v);
}

/* models.<name> is checked against the plugin's knob table later, when the
 * plugin is loaded; here only its shape. */
static int check_models(struct load_ctx *cx, const config_setting_t *s)
{
    char path[PATH_BUF];
    int i, n;

    if (!config_setting_is_group(s))
        return fail_at(&cx->rep, s, "'models' must be a group of per-model "
                       "groups, e.g. models = { epoll = { ... }; }");
    n = config_setting_length(s);
    for (i = 0; i < n; i++) {
        const config_setting_t *m = config_setting_get_elem(s, (unsigned)i);
        if (!config_setting_is_group(m)) {
            setting_path(m, path, sizeof path);
            return fail_at(&cx->rep, m, "'%s' must be a group of that "
                           "model's knobs, e.g. %s = { ... }", path,
                           config_setting_name(m));
        }
    }
    return 0;
}

/* ------------------------------------------------- model group names */

/* The known model names looked through for one word: whether it is among
 * them, and which is closest when it is not. */
struct name_search {
    const char *word;
    int found;
    struct closest near;
    char best[NAME_MAX_LEN + 1];
};

static void name_search_try(struct name_search *ns, const char *name, size_t len)
{
    char buf[NAME_MAX_LEN + 1];

    if (len == 0 || len > NAME_MAX_LEN)
        return;
    memcpy(buf, name, len);
    buf[len] = '\0';
    if (strcmp(buf, ns->word) == 0)
        ns->found = 1;
    closest_try(&ns->near, buf);
    if (ns->near.best == buf) { /* keep it past this call */
        memcpy(ns->best, buf, len + 1);
        ns->near.best = ns->best;
    }
}

/* NAME of NAME.so, or 0 for another file. */
static size_t plugin_name_len(const char *file)
{
    size_t len = strlen(file);
    return len > 3 && strcmp(file + len - 3, ".so") == 0 ? len - 3 : 0;
}

/* The built-in models, the plugins in plugin_dir and those `model` loads by
 * path: the names a models.<name> group may have. */
static void search_model_names(const struct ios_config *cfg, struct name_search *ns)
{
    const char *p = IOSERVE_BUILTIN_MODELS;
    while (*p) {
        size_t len = strcspn(p, ",");
        name_search_try(ns, p, len);
        p += len + (p[len] == ',');
    }
    for (size_t i = 0; i < cfg->n_models; i++) {
        const char *slash = strrchr(cfg->models[i], '/');
        if (slash)
            name_search_try(ns, slash + 1, plugin_name_len(slash + 1));
    }
    DIR *dir = opendir(cfg->plugin_dir);
    struct dirent *e;
    while (dir && (e = readdir(dir)) != NULL)
        name_search_try(ns, e->d_name, plugin_name_len(e->d_name));
    if (dir)
        closedir(dir);
}

/* A group under `models` that names no model holds knobs nothing reads: a
 * typo ("epol") would pass unnoticed. */
static int check_model_group_names(struct load_ctx *cx)
{
    const config_setting_t *models =
        config_setting_get_member(config_root_setting(&cx->cfg->lc), "models");
    int n = models ? config_setting_length(models) : 0;
    char hint[PATH_MAX + 96];

    for (int i = 0; i < n; i++) {
        const config_setting_t *m = config_setting_get_elem(models, (unsigned)i);
        struct name_search ns = {.word = config_setting_name(m)};
        closest_init(&ns.near, ns.word);
        search_model_names(cx->cfg, &ns);
        if (ns.found)
            continue;
        if (ns.near.best)
            did_you_mean(ns.near.best, "", hint, sizeof hint);
        else
            snprintf(hint, sizeof hint, " (not built in, and plugin_dir %s has no %s.so)",
                     cx->cfg->plugin_dir, ns.word);
        return fail_at(&cx->rep, m, "unknown model '%s' under 'models'%s", ns.word, hint);
    }
    return 0;
}

/* ---------------------------------------------------------- the tables */

enum rule_kind {
    RULE_INT,    /* int field */
    RULE_UINT,   /* unsigned field */
    RULE_SIZE,   /* size_t field */
    RULE_MS,     /* unsigned ms field, written in seconds; max in seconds */
    RULE_STRING, /* char * field, any string */
    RULE_CUSTOM,
};

struct rule {
    const char *name;
    enum rule_kind kind;
    size_t offset;
    long long min, max;
    int (*custom)(struct load_ctx *cx, const config_setting_t *s);
};

#define FIELD(f) offsetof(struct ios_config, f)
#define R_INT(n, f, lo, hi) {n, RULE_INT, FIELD(f), lo, hi, NULL}
#define R_UINT(n, f, lo, hi) {n, RULE_UINT, FIELD(f), lo, hi, NULL}
#define R_SIZE(n, f, lo, hi) {n, RULE_SIZE, FIELD(f), lo, hi, NULL}
#define R_MS(n, f, max_s) {n, RULE_MS, FIELD(f), 0, max_s, NULL}
#define R_STRING(n, f) {n, RULE_STRING, FIELD(f), 0, 0, NULL}
#define R_CUSTOM(n, fn) {n, RULE_CUSTOM, 0, 0, 0, fn}
#define R_END {NULL, RULE_CUSTOM, 0, 0, 0, NULL}

static int check_http(struct load_ctx *cx, const config_setting_t *s);

static const struct rule top_rules[] = {
    R_CUSTOM("listen", check_listen),
    R_INT("backlog", backlog, 1, 65535),
    R_CUSTOM("model", check_model),
    R_CUSTOM("plugin_dir", check_plugin_dir),
    R_CUSTOM("handler", check_handler),
    R_UINT("workers", workers, 1, 64),
    R_UINT("max_connections", max_connections, 1, 1000000),
    R_MS("idle_timeout", idle_timeout_ms, 86400),
    R_MS("drain_timeout", drain_timeout_ms, 86400),
    R_CUSTOM("log_level", check_log_level),
    R_CUSTOM("pid_file", check_pid_file),
    R_CUSTOM("status_listen", check_status_listen),
    R_CUSTOM("user", check_user),
    R_CUSTOM("group", check_group),
    R_SIZE("read_chunk", read_chunk, 512, 1048576),
    R_SIZE("max_input", max_input, 1024, 67108864),
    R_SIZE("output_high_water", output_high_water, 4096, 268435456),
    R_CUSTOM("http", check_http),
    R_CUSTOM("models", check_models),
    R_END,
};

static const struct rule http_rules[] = {
    R_STRING("body", http.body),
    R_CUSTOM("content_type", check_content_type),
    R_SIZE("max_header_bytes", http.max_header_bytes, 256, 1048576),
    R_SIZE("max_body_bytes", http.max_body_bytes, 0, 1073741824),
    R_MS("header_timeout", http.header_timeout_ms, 86400),
    R_END,
};

static int apply_rule(struct load_ctx *cx, const struct rule *rule,
                      const config_setting_t *s)
{
    char *field = (char *)cx->cfg + rule->offset;
    const char *str;
    long long v;

    switch (rule->kind) {
    case RULE_INT:
    case RULE_UINT:
    case RULE_SIZE:
        if (get_integer(&cx->rep, s, rule->min, rule->max, &v) < 0)
            return -1;
        if (rule->kind == RULE_INT)
            *(int *)(void *)field = (int)v;
        else if (rule->kind == RULE_UINT)
            *(unsigned *)(void *)field = (unsigned)v;
        else
            *(size_t *)(void *)field = (size_t)v;
        return 0;
    case RULE_MS:
        return get_ms(&cx->rep, s, rule->max, (unsigned *)(void *)field);
    case RULE_STRING:
        if (get_string(&cx->rep, s, &str) < 0)
            return -1;
        return set_string(&cx->rep, (char **)(void *)field, str);
    case RULE_CUSTOM:
        return rule->custom(cx, s);
    }
    return -1;
}

/* Checks every member of `group` against `rules`; `prefix` ("http.") is
 * how the group's members are named in messages. */
static int apply_rules(struct load_ctx *cx, const config_setting_t *group,
                       const struct rule *rules, const char *prefix)
{
    const struct rule *rule;
    struct closest near;
    char hint[96];
    int i, n = config_setting_length(group);

    for (i = 0; i < n; i++) {
        const config_setting_t *s = config_setting_get_elem(group, (unsigned)i);
        const char *name = config_setting_name(s);

        for (rule = rules; rule->name; rule++)
            if (strcmp(rule->name, name) == 0)
                break;
        if (!rule->name) {
            closest_init(&near, name);
            for (rule = rules; rule->name; rule++)
                closest_try(&near, rule->name);
            return fail_at(&cx->rep, s, "unknown setting '%s%s'%s", prefix,
                           name, did_you_mean(near.best, prefix, hint,
                                              sizeof hint));
        }
        if (apply_rule(cx, rule, s) < 0)
            return -1;
    }
    return 0;
}

static int check_http(struct load_ctx *cx, const config_setting_t *s)
{
    if (!config_setting_is_group(s))
        return fail_at(&cx->rep, s, "'http' must be a group, e.g. "
                       "http = { body = \"hi\\n\"; }");
    return apply_rules(cx, s, http_rules, "http.");
}

/* Settings that are each valid but contradict one another. */
static int cross_check(struct load_ctx *cx)
{
    const struct ios_config *cfg = cx->cfg;
    const config_setting_t *s;

    if (cfg->max_input >= cfg->http.max_header_bytes)
        return 0;
    s = config_lookup(&cx->cfg->lc, "max_input");
    if (!s)
        s = config_lookup(&cx->cfg->lc, "http.max_header_bytes");
    if (!s)
        s = config_root_setting(&cx->cfg->lc);
    return fail_at(&cx->rep, s, "'max_input' (%zu) must be >= "
                   "'http.max_header_bytes' (%zu): a request head has to fit "
                   "in the unconsumed input", cfg->max_input,
                   cfg->http.max_header_bytes);
}

/* ---------------------------------------------------------- overrides */

/* libconfig's own name rule, applied per dotted component, so an override
 * cannot create a setting the file syntax could not. */
static int valid_key(const char *key)
{
    int start = 1;

    for (; *key; key++) {
        char c = *key;
        if (c == '.') {
            if (start)
                return 0;
            start = 1;
            continue;
        }
        if (start && !((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                       c == '*'))
            return 0;
        if (!start && !((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                        (c >= '0' && c <= '9') || c == '-' || c == '_' ||
                        c == '*'))
            return 0;
        start = 0;
    }
    return !start;
}

/* Deep copy: libconfig has none, and the value must outlive the scratch
 * config it was parsed into. */
static config_setting_t *copy_setting(config_setting_t *parent,
                                      const char *name,
                                      const config_setting_t *src)
{
    config_setting_t *dst = config_setting_add(parent, name,
                                               config_setting_type(src));
    int i, n, ok = 1;

    if (!dst)
        return NULL;
    switch (config_setting_type(src)) {
    case CONFIG_TYPE_INT:
        ok = config_setting_set_int(dst, config_setting_get_int(src));
        break;
    case CONFIG_TYPE_INT64:
        ok = config_setting_set_int64(dst, config_setting_get_int64(src));
        break;
    case CONFIG_TYPE_FLOAT:
        ok = config_setting_set_float(dst, config_setting_get_float(src));
        break;
    case CONFIG_TYPE_BOOL:
        ok = config_setting_set_bool(dst, config_setting_get_bool(src));
        break;
    case CONFIG_TYPE_STRING:
        ok = config_setting_set_string(dst, config_setting_get_string(src));
        break;
    default:
        n = config_setting_length(src);
        for (i = 0; ok && i < n; i++) {
            const config_setting_t *e =
                config_setting_get_elem(src, (unsigned)i);
            ok = copy_setting(dst, config_setting_name(e), e) != NULL;
        }
    }
    return ok ? dst : NULL;
}

/* VALUE in libconfig syntax if it parses as exactly one value, else the
 * bare text: "-o listen=127.0.0.1:0" and "-o model=select" need no quotes. */
static const config_setting_t *parse_value(config_t *scratch,
                                           const char *value)
{
    config_setting_t *root, *v;
    char *text;
    int ok;

    /* A newline could start an @include line; such a value is text. */
    if (strchr(value, '\n') || asprintf(&text, "v = %s\n;", value) < 0)
        return NULL;
    ok = config_read_string(scratch, text);
    free(text);
    if (!ok)
        return NULL;
    root = config_root_setting(scratch);
    v = config_setting_get_member(root, "v");
    return v && config_setting_length(root) == 1 ? v : NULL;
}

/* Finds (or creates) the group that holds the last component of `key`,
 * and leaves that component in *leaf. */
static config_setting_t *override_parent(const struct report *r,
                                         config_setting_t *root, char *key,
                                         const char **leaf)
{
    config_setting_t *group = root, *next;
    char *dot, *full = key;

    while ((dot = strchr(key, '.'))) {
        *dot = '\0';
        next = config_setting_get_member(group, key);
        if (!next)
            next = config_setting_add(group, key, CONFIG_TYPE_GROUP);
        if (!next) {
            fail(r, "out of memory");
            return NULL;
        }
        if (!config_setting_is_group(next)) {
            /* `full` ends at this component: the path walked so far */
            fail(r, "'%s' is not a group", full);
            return NULL;
        }
        *dot = '.';
        group = next;
        key = dot + 1;
    }
    *leaf = key;
    return group;
}

static int apply_override(struct ios_config *cfg, const struct report *r,
                          const char *override)
{
    const char *eq = strchr(override, '='), *leaf;
    const config_setting_t *value;
    config_setting_t *parent, *made;
    config_t scratch;
    char *key;
    char msg[256];
    struct report sub = {r->file, msg, sizeof msg};
    int rc = -1;

    if (!eq || eq == override)
        return fail(r, "bad override '%s': expected -o KEY=VALUE, e.g. "
                    "-o workers=4", override);
    key = strndup(override, (size_t)(eq - override));
    if (!key)
        return fail(r, "out of memory");
    if (!valid_key(key)) {
        fail(r, "bad override '%s': '%s' is not a setting name", override,
             key);
        goto out_key;
    }
    config_init(&scratch);
    value = parse_value(&scratch, eq + 1);
    char lit[64];
    if (value && cfg_libconfig_wraps_ints() &&
        cfg_find_wrapping_int(eq + 1, lit, sizeof(lit))) {
        snprintf(msg, sizeof(msg), "-o %s", key);
        wrapping_int_error(r, msg, lit);
        goto out;
    }
    msg[0] = '\0';
    parent = override_parent(&sub, config_root_setting(&cfg->lc), key, &leaf);
    if (!parent) {
        fail(r, "-o %.*s: %s", (int)(eq - override), override, msg);
        goto out;
    }
    config_setting_remove(parent, leaf); /* absent is fine */
    if (value) {
        made = copy_setting(parent, leaf, value);
    } else {
        made = config_setting_add(parent, leaf, CONFIG_TYPE_STRING);
        if (made && !config_setting_set_string(made, eq + 1))
            made = NULL;
    }
    if (!made) {
        fail(r, "-o %s: out of memory", key);
        goto out;
    }
    rc = 0;
out:
    config_destroy(&scratch);
out_key:
    free(key);
    return rc;
}

/* ---------------------------------------------------------------- load */

/* The text of a config file, or NULL (unreadable, out of memory, or
 * larger than any config: such a file is parsed but not checked). */
static char *read_text(const char *file)
{
    enum { MAX_CONFIG_TEXT = 1 << 20 };
    FILE *f = fopen(file, "re");
    char *text = f ? malloc(MAX_CONFIG_TEXT + 1) : NULL;
    size_t n = text ? fread(text, 1, MAX_CONFIG_TEXT + 1, f) : 0;
    if (f)
        fclose(f);
    if (!text || n > MAX_CONFIG_TEXT) {
        free(text);
        return NULL;
    }
    text[n] = '\0';
    return text;
}

#define MAX_SOURCE_FILES 64

/* Adds to files[] each file the settings below s were read from (the
 * config and what it @includes), once.  Returns the new count. */
static size_t source_files(const config_setting_t *s, const char **files, size_t n)
{
    const char *file = config_setting_source_file(s);
    size_t i = 0;
    while (file && i < n && strcmp(files[i], file) != 0)
        i++;
    if (file && i == n && n < MAX_SOURCE_FILES)
        files[n++] = file;
    if (!config_setting_is_aggregate(s))
        return n;
    int len = config_setting_length(s);
    for (int k = 0; k < len; k++)
        n = source_files(config_setting_get_elem(s, (unsigned)k), files, n);
    return n;
}

/* Refuses what libconfig 1.5 read without a word (see config_ints.h), in
 * the config file and every file it includes. */
static int check_int_literals(const struct ios_config *cfg, const struct report *r)
{
    if (!cfg_libconfig_wraps_ints())
        return 0;
    /* the config itself has no name in the tree (read from a stream) */
    const char *files[MAX_SOURCE_FILES] = {cfg->file};
    size_t n = source_files(config_root_setting(&cfg->lc), files, 1);
    for (size_t i = 0; i < n; i++) {
        /* libconfig names an included file as the @include wrote it,
         * relative to the config's folder; the config is named as given */
        char *path = i == 0 ? strdup(files[i]) : resolve_path(cfg->dir, files[i]);
        char *text = path ? read_text(path) : NULL;
        free(path);
        char lit[64], where[PATH_MAX + 16];
        int line = text ? cfg_find_wrapping_int(text, lit, sizeof(lit)) : 0;
        free(text);
        if (line) {
            snprintf(where, sizeof(where), "%s:%d", files[i], line);
            return wrapping_int_error(r, where, lit);
        }
    }
    return 0;
}

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

static int read_tree(struct ios_config *cfg, const struct report *r)
{
    const char *file;
    int parsed = 0;

    /* libconfig only says "file I/O error"; errno says which. */
    FILE *f = fopen(cfg->file, "re");
    if (!f)
        return fail(r, "%s: %s", cfg->file, strerror(errno));
    cfg->dir = config_dir(cfg->file);
    if (!cfg->dir) {
        fclose(f);
        return fail(r, "%s: %s", cfg->file, strerror(errno));
    }
    config_init(&cfg->lc);
    cfg->lc_valid = 1;
    int rc = parse_in_config_dir(cfg, f, &parsed);
    fclose(f);
    if (rc < 0)
        return fail(r, "%s: reading it from %s: %s", cfg->file, cfg->dir, strerror(-rc));
    if (parsed)
        return check_int_literals(cfg, r);
    if (config_error_type(&cfg->lc) == CONFIG_ERR_FILE_IO)
        return fail(r, "%s: %s", cfg->file, config_error_text(&cfg->lc));
    file = config_error_file(&cfg->lc);
    return fail(r, "%s:%d: %s", file ? file : cfg->file,
                config_error_line(&cfg->lc), config_error_text(&cfg->lc));
}

static int load(struct ios_config *cfg, const char *file,
                char *const *overrides, size_t n_overrides,
                const struct report *r)
{
    struct load_ctx cx = {cfg, *r};
    size_t i;

    if (!defaults_complete(cfg))
        return fail(r, "out of memory");
    cfg->file = strdup(file);
    if (!cfg->file)
        return fail(r, "out of memory");
    if (read_tree(cfg, r) < 0)
        return -1;
    for (i = 0; i < n_overrides; i++)
        if (apply_override(cfg, r, overrides[i]) < 0)
            return -1;
    if (apply_rules(&cx, config_root_setting(&cfg->lc), top_rules, "") < 0)
        return -1;
    if (check_model_group_names(&cx) < 0)
        return -1;
    return cross_check(&cx);
}

int cfg_load(struct ios_config *cfg, const char *file,
             char *const *overrides, size_t n_overrides,
             char *err, size_t errlen)
{
    const struct report r = {file, err, errlen};

    if (err && errlen > 0)
        err[0] = '\0';
    cfg_defaults(cfg);
    if (load(cfg, file, overrides, n_overrides, &r) == 0)
        return 0;
    cfg_free(cfg);
    return -1;
}

/* --------------------------------------------------------------- knobs */

static const config_setting_t *knob_group(const struct ios_config *cfg,
                                          const char *model_name)
{
    const config_setting_t *models;

    if (!cfg->lc_valid || !config_root_setting(&cfg->lc))
        return NULL;
    models = config_setting_get_member(config_root_setting(&cfg->lc),
                                       "models");
    if (!models || !config_setting_is_group(models))
        return NULL;
    return config_setting_get_member(models, model_name);
}

static const struct ios_knob *find_knob(const struct ios_knob *knobs,
                                        const char *name)
{
    for (; knobs && knobs->name; knobs++)
        if (strcmp(knobs->name, name) == 0)
            return knobs;
    return NULL;
}

static int knob_value_ok(const struct ios_knob *k, const config_setting_t *s)
{
    int type = config_setting_type(s);
    long long v;

    switch (k->type) {
    case IOS_KNOB_BOOL:
        return type == CONFIG_TYPE_BOOL;
    case IOS_KNOB_STRING:
        return type == CONFIG_TYPE_STRING;
    case IOS_KNOB_INT:
        if (type != CONFIG_TYPE_INT && type != CONFIG_TYPE_INT64)
            return 0;
        v = config_setting_get_int64(s);
        return v >= k->min && v <= k->max;
    }
    return 0;
}

static int knob_error(const struct report *r, const struct ios_knob *k,
                      const config_setting_t *s)
{
    char path[PATH_BUF];

    setting_path(s, path, sizeof path);
    switch (k->type) {
    case IOS_KNOB_BOOL:
        return fail_at(r, s, "'%s' must be true or false", path);
    case IOS_KNOB_STRING:
        return fail_at(r, s, "'%s' must be a string", path);
    case IOS_KNOB_INT:
        break;
    }
    return fail_at(r, s, "'%s' must be an integer from %lld to %lld", path,
                   k->min, k->max);
}

static int unknown_knob(const struct report *r, const char *model_name,
                        const struct ios_knob *knobs,
                        const config_setting_t *s)
{
    const char *name = config_setting_name(s);
    struct closest near;
    char hint[96];

    if (!knobs || !knobs->name)
        return fail_at(r, s, "models.%s: unknown setting '%s' (model '%s' "
                       "has no knobs)", model_name, name, model_name);
    closest_init(&near, name);
    for (; knobs->name; knobs++)
        closest_try(&near, knobs->name);
    return fail_at(r, s, "models.%s: unknown setting '%s'%s", model_name,
                   name, did_you_mean(near.best, "", hint, sizeof hint));
}

int cfg_check_knobs(const struct ios_config *cfg, const char *model_name,
                    const struct ios_knob *knobs, char *err, size_t errlen)
{
    const struct report r = {cfg->file ? cfg->file : "config", err, errlen};
    const config_setting_t *group = knob_group(cfg, model_name);
    const struct ios_knob *k;
    int i, n;

    if (!group)
        return 0;
    if (!config_setting_is_group(group))
        return fail_at(&r, group, "'models.%s' must be a group", model_name);
    n = config_setting_length(group);
    for (i = 0; i < n; i++) {
        const config_setting_t *s = config_setting_get_elem(group, (unsigned)i);
        k = find_knob(knobs, config_setting_name(s));
        if (!k)
            return unknown_knob(&r, model_name, knobs, s);
        if (!knob_value_ok(k, s))
            return knob_error(&r, k, s);
    }
    return 0;
}

/* The declared knob of that type and its setting (NULL = use the default).
 * -ENOENT when undeclared, -EINVAL when set to a value cfg_check_knobs
 * would have refused. */
static int knob_lookup(const struct ios_config *cfg, const char *model_name,
                       const struct ios_knob *knobs, const char *name,
                       enum ios_knob_type type, const struct ios_knob **k,
                       const config_setting_t **s)
{
    const config_setting_t *group = knob_group(cfg, model_name);

    *k = find_knob(knobs, name);
    if (!*k || (*k)->type != type)
        return -ENOENT;
    *s = group && config_setting_is_group(group)
             ? config_setting_get_member(group, name)
             : NULL;
    if (*s && !knob_value_ok(*k, *s))
        return -EINVAL;
    return 0;
}

int cfg_knob_int(const struct ios_config *cfg, const char *model_name,
                 const struct ios_knob *knobs, const char *name, long long *v)
{
    const struct ios_knob *k;
    const config_setting_t *s;
    int rc = knob_lookup(cfg, model_name, knobs, name, IOS_KNOB_INT, &k, &s);

    if (rc == 0)
        *v = s ? config_setting_get_int64(s) : k->default_int;
    return rc;
}

int cfg_knob_bool(const struct ios_config *cfg, const char *model_name,
                  const struct ios_knob *knobs, const char *name, int *v)
{
    const struct ios_knob *k;
    const config_setting_t *s;
    int rc = knob_lookup(cfg, model_name, knobs, name, IOS_KNOB_BOOL, &k, &s);

    if (rc == 0)
        *v = s ? config_setting_get_bool(s) != 0 : k->default_int != 0;
    return rc;
}

int cfg_knob_string(const struct ios_config *cfg, const char *model_name,
                    const struct ios_knob *knobs, const char *name,
                    const char **v)
{
    const struct ios_knob *k;
    const config_setting_t *s;
    int rc = knob_lookup(cfg, model_name, knobs, name, IOS_KNOB_STRING, &k,
                         &s);

    if (rc == 0)
        *v = s ? config_setting_get_string(s) : k->default_string;
    return rc;
}
