/* -o overrides (see config_override.h). */
#include "config_override.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config_ints.h"

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

/* A scalar's value into a setting of the same type.  libconfig's 0/1. */
static int copy_value(config_setting_t *dst, const config_setting_t *src)
{
    switch (config_setting_type(src)) {
    case CONFIG_TYPE_INT: /* an int's value fits the int64 calls */
    case CONFIG_TYPE_INT64: return config_setting_set_int64(dst, config_setting_get_int64(src));
    case CONFIG_TYPE_FLOAT: return config_setting_set_float(dst, config_setting_get_float(src));
    case CONFIG_TYPE_BOOL: return config_setting_set_bool(dst, config_setting_get_bool(src));
    case CONFIG_TYPE_STRING: return config_setting_set_string(dst, config_setting_get_string(src));
    }
    return 0;
}

/* Deep copy: libconfig has none, and the value must outlive the scratch
 * config it was parsed into. */
static config_setting_t *copy_setting(config_setting_t *parent, const char *name,
                                      const config_setting_t *src)
{
    config_setting_t *dst = config_setting_add(parent, name, config_setting_type(src));
    int ok = dst != NULL;

    if (ok && !config_setting_is_aggregate(src))
        ok = copy_value(dst, src);
    for (int i = 0; ok && config_setting_is_aggregate(src) && i < config_setting_length(src);
         i++) {
        const config_setting_t *e = config_setting_get_elem(src, (unsigned)i);
        ok = copy_setting(dst, config_setting_name(e), e) != NULL;
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
static config_setting_t *override_parent(const struct cfg_report *r,
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
            cfg_fail(r, "out of memory");
            return NULL;
        }
        if (!config_setting_is_group(next)) {
            /* `full` ends at this component: the path walked so far */
            cfg_fail(r, "'%s' is not a group", full);
            return NULL;
        }
        *dot = '.';
        group = next;
        key = dot + 1;
    }
    *leaf = key;
    return group;
}

int cfg_override(config_t *lc, const struct cfg_report *r, const char *override)
{
    const char *eq = strchr(override, '='), *leaf;
    const config_setting_t *value;
    config_setting_t *parent, *made;
    config_t scratch;
    char *key;
    char msg[256];
    struct cfg_report sub = {r->file, msg, sizeof msg};
    int rc = -1;

    if (!eq || eq == override)
        return cfg_fail(r, "bad override '%s': expected -o KEY=VALUE, e.g. "
                    "-o workers=4", override);
    key = strndup(override, (size_t)(eq - override));
    if (!key)
        return cfg_fail(r, "out of memory");
    if (!valid_key(key)) {
        cfg_fail(r, "bad override '%s': '%s' is not a setting name", override,
             key);
        goto out_key;
    }
    config_init(&scratch);
    value = parse_value(&scratch, eq + 1);
    snprintf(msg, sizeof(msg), "-o %s", key);
    if (value && cfg_refuse_wrapping_int_in(r, msg, eq + 1) < 0)
        goto out;
    msg[0] = '\0';
    parent = override_parent(&sub, config_root_setting(lc), key, &leaf);
    if (!parent) {
        cfg_fail(r, "-o %.*s: %s", (int)(eq - override), override, msg);
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
        cfg_fail(r, "-o %s: out of memory", key);
        goto out;
    }
    rc = 0;
out:
    config_destroy(&scratch);
out_key:
    free(key);
    return rc;
}
