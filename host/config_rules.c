/* The rule engine: reading settings by a table (see config_rules.h). */
#include "config_rules.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "addr.h"

#define PATH_BUF 256

char *cfg_path_in(const char *dir, const char *path)
{
    char *out;

    if (path[0] == '/' || !dir)
        return strdup(path);
    if (asprintf(&out, "%s/%s", dir, path) < 0)
        return NULL;
    return out;
}

/* Replaces a heap string field with a copy of v (NULL allowed); the old
 * value survives a failed copy. */
static int store_string(const struct cfg_report *r, char **field, const char *v)
{
    char *copy = v ? strdup(v) : NULL;

    if (v && !copy)
        return cfg_fail(r, "out of memory");
    free(*field);
    *field = copy;
    return 0;
}

/* ---------------------------------------------------------- values */

static int read_integer(const struct cfg_report *r, const config_setting_t *s, long long min,
                        long long max, long long *out)
{
    char path[PATH_BUF];
    int type = config_setting_type(s);

    cfg_setting_path(s, path, sizeof path);
    if (type != CONFIG_TYPE_INT && type != CONFIG_TYPE_INT64)
        return cfg_fail_at(r, s, "'%s' must be an integer from %lld to %lld", path, min, max);
    long long v = config_setting_get_int64(s);
    if (v < min || v > max)
        return cfg_fail_at(r, s, "'%s' must be an integer from %lld to %lld (got %lld)", path,
                           min, max, v);
    *out = v;
    return 0;
}

static int read_bool(const struct cfg_report *r, const config_setting_t *s, int *out)
{
    char path[PATH_BUF];

    if (config_setting_type(s) != CONFIG_TYPE_BOOL) {
        cfg_setting_path(s, path, sizeof path);
        return cfg_fail_at(r, s, "'%s' must be true or false", path);
    }
    *out = config_setting_get_bool(s) != 0;
    return 0;
}

/* Durations are written in seconds (fractions allowed) and kept in ms;
 * anything under a millisecond would round to "no timeout at all". */
static int read_ms(const struct cfg_report *r, const config_setting_t *s, long long min_ms,
                   long long max_seconds, unsigned *out)
{
    char path[PATH_BUF];
    int type = config_setting_type(s);
    double v, lo = min_ms ? 0.001 : 0.0;

    cfg_setting_path(s, path, sizeof path);
    if (type == CONFIG_TYPE_FLOAT)
        v = config_setting_get_float(s);
    else if (type == CONFIG_TYPE_INT || type == CONFIG_TYPE_INT64)
        v = (double)config_setting_get_int64(s);
    else
        return cfg_fail_at(r, s, "'%s' must be a number of seconds from %g to %lld", path, lo,
                           max_seconds);
    if (!(v >= lo) || v > (double)max_seconds)
        return cfg_fail_at(r, s, "'%s' must be a number of seconds from %g to %lld (got %g)",
                           path, lo, max_seconds, v);
    *out = (unsigned)(v * 1000.0 + 0.5);
    return 0;
}

/* The string, checked against the rule's emptiness and validity tests;
 * *out is NULL for an empty value the rule takes as unset. */
static int read_string(const struct cfg_report *r, const struct cfg_rule *rule,
                       const config_setting_t *s, const char **out)
{
    char path[PATH_BUF];

    cfg_setting_path(s, path, sizeof path);
    if (config_setting_type(s) != CONFIG_TYPE_STRING)
        return cfg_fail_at(r, s, "'%s' must be a string", path);
    const char *v = config_setting_get_string(s);
    if (rule->valid && !rule->valid(v))
        return cfg_fail_at(r, s, "'%s' must be %s", path, rule->valid_says);
    if (v[0] == '\0' && rule->empty_is_unset)
        v = NULL;
    else if (v[0] == '\0' && rule->kind == CFG_RULE_PATH)
        return cfg_fail_at(r, s, "'%s' must not be empty", path);
    *out = v;
    return 0;
}

/* The index of the setting's value in `choices`, or an error that lists
 * them all and guesses the intended one. */
static int read_choice(const struct cfg_report *r, const struct cfg_rule *rule,
                       const config_setting_t *s, size_t *index)
{
    char path[PATH_BUF], list[256], hint[96];
    const char *const *choices = rule->choices;
    const char *v;
    size_t n = 0;

    if (read_string(r, rule, s, &v) < 0)
        return -1;
    for (size_t i = 0; choices[i]; i++) {
        if (strcmp(v, choices[i]) == 0) {
            *index = i;
            return 0;
        }
        n = cfg_append(list, sizeof list, n, "%s%s", i ? ", " : "", choices[i]);
    }
    cfg_setting_path(s, path, sizeof path);
    return cfg_fail_at(r, s, "'%s' must be one of %s, not '%s'%s", path, list, v,
                       cfg_did_you_mean(cfg_closest(v, choices), "", hint, sizeof hint));
}

/* ---------------------------------------------------------- rules */

/* The rule's field in cx->base, or NULL when only checking. */
static void *field_of(const struct cfg_rules_ctx *cx, size_t offset)
{
    return cx->base ? (char *)cx->base + offset : NULL;
}

static int read_numeric(struct cfg_rules_ctx *cx, const struct cfg_rule *rule,
                        const config_setting_t *s)
{
    void *field = field_of(cx, rule->offset);
    long long v;
    int b;

    if (rule->kind == CFG_RULE_BOOL) {
        if (read_bool(&cx->rep, s, &b) < 0)
            return -1;
        if (field)
            *(int *)field = b;
        return 0;
    }
    if (read_integer(&cx->rep, s, rule->min, rule->max, &v) < 0)
        return -1;
    if (!field)
        return 0;
    switch (rule->kind) {
    case CFG_RULE_INT:
        *(int *)field = (int)v;
        break;
    case CFG_RULE_UINT:
        *(unsigned *)field = (unsigned)v;
        break;
    case CFG_RULE_SIZE:
        *(size_t *)field = (size_t)v;
        break;
    default:
        *(long long *)field = v;
    }
    return 0;
}

static int read_address(struct cfg_rules_ctx *cx, const struct cfg_rule *rule,
                        const config_setting_t *s)
{
    struct sockaddr_storage ss;
    socklen_t len = 0;
    char path[PATH_BUF], msg[512];
    const char *v;

    if (read_string(&cx->rep, rule, s, &v) < 0)
        return -1;
    if (v && addr_parse(v, &ss, &len, msg, sizeof msg) < 0) {
        cfg_setting_path(s, path, sizeof path);
        return cfg_fail_at(&cx->rep, s, "%s %s", path, msg);
    }
    if (!cx->base)
        return 0;
    if (store_string(&cx->rep, field_of(cx, rule->offset), v) < 0)
        return -1;
    if (v) {
        *(struct sockaddr_storage *)field_of(cx, rule->addr_offset) = ss;
        *(socklen_t *)field_of(cx, rule->len_offset) = len;
    }
    return 0;
}

static int read_group(struct cfg_rules_ctx *cx, const struct cfg_rule *rule,
                      const config_setting_t *s)
{
    char prefix[PATH_BUF];

    cfg_setting_path(s, prefix, sizeof prefix);
    if (!config_setting_is_group(s))
        return cfg_fail_at(&cx->rep, s, "'%s' must be a group, e.g. %s", prefix, rule->example);
    size_t n = strlen(prefix);
    if (n + 1 < sizeof prefix)
        memcpy(prefix + n, ".", 2);
    return cfg_rules_read(cx, s, rule->members, prefix);
}

int cfg_rule_read(struct cfg_rules_ctx *cx, const struct cfg_rule *rule, const config_setting_t *s)
{
    char *abs;
    const char *str;
    size_t i;

    switch (rule->kind) {
    case CFG_RULE_INT:
    case CFG_RULE_UINT:
    case CFG_RULE_SIZE:
    case CFG_RULE_LLONG:
    case CFG_RULE_BOOL:
        return read_numeric(cx, rule, s);
    case CFG_RULE_MS: {
        unsigned ms;
        if (read_ms(&cx->rep, s, rule->min, rule->max, &ms) < 0)
            return -1;
        if (cx->base)
            *(unsigned *)field_of(cx, rule->offset) = ms;
        return 0;
    }
    case CFG_RULE_STRING:
        if (read_string(&cx->rep, rule, s, &str) < 0)
            return -1;
        return cx->base ? store_string(&cx->rep, field_of(cx, rule->offset), str) : 0;
    case CFG_RULE_PATH:
        /* relative paths in the file mean "next to the file", not
         * "wherever the server happened to be started" */
        if (read_string(&cx->rep, rule, s, &str) < 0)
            return -1;
        if (!cx->base)
            return 0;
        abs = str ? cfg_path_in(cx->dir, str) : NULL;
        if (str && !abs)
            return cfg_fail(&cx->rep, "out of memory");
        free(*(char **)field_of(cx, rule->offset));
        *(char **)field_of(cx, rule->offset) = abs;
        return 0;
    case CFG_RULE_CHOICE:
    case CFG_RULE_INDEX:
        if (read_choice(&cx->rep, rule, s, &i) < 0)
            return -1;
        if (!cx->base)
            return 0;
        if (rule->kind == CFG_RULE_INDEX) {
            *(int *)field_of(cx, rule->offset) = (int)i;
            return 0;
        }
        return store_string(&cx->rep, field_of(cx, rule->offset), rule->choices[i]);
    case CFG_RULE_ADDRESS:
        return read_address(cx, rule, s);
    case CFG_RULE_GROUP:
        return read_group(cx, rule, s);
    case CFG_RULE_CUSTOM:
        return rule->custom(cx, s);
    }
    return -1;
}

int cfg_rules_read(struct cfg_rules_ctx *cx, const config_setting_t *group,
                   const struct cfg_rule *rules, const char *prefix)
{
    const struct cfg_rule *rule;
    struct cfg_closest near;
    char hint[96];
    int n = config_setting_length(group);

    for (int i = 0; i < n; i++) {
        const config_setting_t *s = config_setting_get_elem(group, (unsigned)i);
        const char *name = config_setting_name(s);

        for (rule = rules; rule->name; rule++)
            if (strcmp(rule->name, name) == 0)
                break;
        if (!rule->name) {
            cfg_closest_init(&near, name);
            for (rule = rules; rule->name; rule++)
                cfg_closest_try(&near, rule->name);
            return cfg_fail_at(&cx->rep, s, "unknown setting '%s%s'%s", prefix, name,
                               cfg_did_you_mean(near.best, prefix, hint, sizeof hint));
        }
        if (cfg_rule_read(cx, rule, s) < 0)
            return -1;
    }
    return 0;
}
