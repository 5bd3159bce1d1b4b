/* The configuration: etc/ioserve.cfg (libconfig syntax) plus -o overrides,
 * parsed and validated into one struct.  Every limit has its default in
 * cfg_defaults() (config.c), and nowhere else.  The parts: config.c (the
 * struct's rule tables, loading), config_rules.c (the rule engine),
 * config_report.c (error locations, typo suggestions), config_override.c
 * (-o), config_ints.c (libconfig 1.5's wrapping integers), config_models.c
 * (the `models` group and plugin knobs), addr.c (HOST:PORT). */
#ifndef IOSERVE_CONFIG_H
#define IOSERVE_CONFIG_H

#include <stddef.h>
#include <sys/socket.h>

#include <libconfig.h>

#include "ioserve/plugin.h"

#define CFG_MAX_MODELS 8
/* The most workers a generation may have (`workers`). */
#define CFG_MAX_WORKERS 64

struct cfg_http {
    char *body;                  /* http.body: the 200 response body */
    char *content_type;          /* http.content_type */
    size_t max_header_bytes;     /* http.max_header_bytes: past it, 431 */
    size_t max_body_bytes;       /* http.max_body_bytes: larger Content-Length, 413 */
    unsigned header_timeout_ms;  /* http.header_timeout (s): time for a whole head */
};

/* `canary`: an A/B split of new connections between `model` and another
 * model (host/split.h).  model NULL = no split. */
struct cfg_canary {
    char *model;       /* canary.model: a name or a path, like `model` */
    unsigned share;    /* canary.share: percent of new connections, 1..99 */
    unsigned workers;  /* canary.workers: the canary side's own workers */
};

struct ios_config {
    char *file;        /* the config file as given */
    char *dir;         /* its directory, absolute: base of relative paths */

    char *listen;      /* "HOST:PORT" as written; [v6]:port allowed */
    struct sockaddr_storage listen_addr;
    socklen_t listen_addrlen;
    int backlog;

    char *models[CFG_MAX_MODELS]; /* `model`: a name or a list to try in order */
    size_t n_models;
    char *plugin_dir;  /* absolute */
    char *handler;     /* "echo", "upper", "http" */

    unsigned workers;
    unsigned max_connections;    /* per worker */
    unsigned idle_timeout_ms;    /* idle_timeout (s) */
    unsigned drain_timeout_ms;   /* drain_timeout (s) */
    unsigned quit_delay_ms;      /* quit_delay (s): -s quit keeps accepting this long */
    int handover;      /* a reload moves open connections to the new workers */
    unsigned upgrade_timeout_ms; /* upgrade_timeout (s): a new binary's wait to be ready */
    enum ios_log_level log_level;
    char *pid_file;    /* absolute, or NULL when unset/empty */
    char *status_listen; /* "HOST:PORT" of the master's /metrics, or NULL = off */
    int latency_histogram; /* workers time each request for /metrics */
    struct sockaddr_storage status_addr;
    socklen_t status_addrlen;
    char *user;        /* drop privileges to these when started as root; NULL = don't */
    char *group;

    size_t read_chunk;           /* read_chunk: bytes per recv */
    size_t max_input;            /* max_input: unconsumed request bytes */
    size_t output_high_water;    /* output_high_water: backpressure threshold */

    struct cfg_http http;
    struct cfg_canary canary;

    config_t lc;       /* the parsed tree, kept for models.<name> knobs */
    int lc_valid;
};

/* Fills every field with its default (no file read). */
void cfg_defaults(struct ios_config *cfg);

/*
 * Reads FILE, applies overrides ("KEY=VALUE", KEY a setting path such as
 * "model", "workers" or "models.epoll.edge_triggered"; VALUE in libconfig
 * syntax, or a bare word taken as a string), validates everything except
 * the knobs in models.<name> (the plugin's knob table is needed for that;
 * the group's name is checked: a built-in model, a NAME.so in plugin_dir,
 * or a plugin `model` loads by path).
 * 0, or -1 with a message in err: "FILE:LINE: message" for syntax errors,
 * the setting's name and what is allowed for the others.
 */
int cfg_load(struct ios_config *cfg, const char *file,
             char *const *overrides, size_t n_overrides,
             char *err, size_t errlen);
/* (cfg_load starts from cfg_defaults: *cfg is overwritten, not freed, so
 * pass a fresh struct or one already cfg_free'd.  On failure *cfg is left
 * freed and zeroed; cfg_free on it again is harmless.  Several configs may
 * be loaded side by side, e.g. the next one during a reload.  Never copy
 * the struct: every libconfig setting points back at its config_t.) */
void cfg_free(struct ios_config *cfg);

/* Path of the .so for a model entry: NAME -> plugin_dir/NAME.so; a string
 * containing '/' is a path (relative to the config's directory). */
int cfg_model_path(const struct ios_config *cfg, const char *model,
                   char *out, size_t outlen);

/* Validates models.<name> against a plugin's knob table (unknown knob with
 * the closest known one suggested, wrong type, out of range).  0 or -1. */
int cfg_check_knobs(const struct ios_config *cfg, const char *model_name,
                    const struct ios_knob *knobs, char *err, size_t errlen);

/* A knob's value, its default when unset.  0, or -ENOENT when `knobs`
 * does not declare it (or declares it with another type).
 * (Also -EINVAL when the value is one cfg_check_knobs would refuse, which
 * only happens if it was not called.  Strings live as long as cfg.) */
int cfg_knob_int(const struct ios_config *cfg, const char *model_name,
                 const struct ios_knob *knobs, const char *name, long long *v);
int cfg_knob_bool(const struct ios_config *cfg, const char *model_name,
                  const struct ios_knob *knobs, const char *name, int *v);
int cfg_knob_string(const struct ios_config *cfg, const char *model_name,
                    const struct ios_knob *knobs, const char *name,
                    const char **v);

#endif
