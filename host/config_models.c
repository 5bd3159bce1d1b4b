/*
 * The `models` group: one group per model, holding that model's knobs.
 * Which names a group may have is known when the config is read; the knobs
 * only when the model's plugin is loaded (in the worker), since they are
 * declared by its descriptor.  Both are read by the rule engine.
 */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "config_models.h"
#include "config_report.h"
#include "config_rules.h"

#ifndef IOSERVE_BUILTIN_MODELS
#error "IOSERVE_BUILTIN_MODELS must list the built-in models, comma-separated"
#endif

int cfg_check_models_shape(struct cfg_rules_ctx *cx, const config_setting_t *s)
{
    char path[256];

    if (!config_setting_is_group(s))
        return cfg_fail_at(&cx->rep, s, "'models' must be a group of per-model groups, "
                                         "e.g. models = { epoll = { ... }; }");
    int n = config_setting_length(s);
    for (int i = 0; i < n; i++) {
        const config_setting_t *m = config_setting_get_elem(s, (unsigned)i);
        if (!config_setting_is_group(m)) {
            cfg_setting_path(m, path, sizeof path);
            return cfg_fail_at(&cx->rep, m, "'%s' must be a group of that model's knobs, "
                                             "e.g. %s = { ... }",
                               path, config_setting_name(m));
        }
    }
    return 0;
}

/* ------------------------------------------------------- group names */

/* The known model names looked through for one word: whether it is among
 * them, and which is closest when it is not. */
struct name_search {
    const char *word;
    int found;
    struct cfg_closest near;
    char best[CFG_NAME_MAX + 1];
};

static void name_search_try(struct name_search *ns, const char *name, size_t len)
{
    char buf[CFG_NAME_MAX + 1];

    if (len == 0 || len > CFG_NAME_MAX)
        return;
    memcpy(buf, name, len);
    buf[len] = '\0';
    if (strcmp(buf, ns->word) == 0)
        ns->found = 1;
    cfg_closest_try(&ns->near, buf);
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

/* The built-in models, the plugins in plugin_dir and those `model` or
 * `canary.model` load by path: the names a models.<name> group may have. */
static void search_model_names(const struct ios_config *cfg, struct name_search *ns)
{
    const char *p = IOSERVE_BUILTIN_MODELS;
    while (*p) {
        size_t len = strcspn(p, ",");
        name_search_try(ns, p, len);
        p += len + (p[len] == ',');
    }
    for (size_t i = 0; i <= cfg->n_models; i++) {
        const char *model = i < cfg->n_models ? cfg->models[i] : cfg->canary.model;
        const char *slash = model ? strrchr(model, '/') : NULL;
        if (slash)
            name_search_try(ns, slash + 1, plugin_name_len(slash + 1));
    }
    DIR *dir = cfg->plugin_dir ? opendir(cfg->plugin_dir) : NULL;
    struct dirent *e;
    while (dir && (e = readdir(dir)) != NULL)
        name_search_try(ns, e->d_name, plugin_name_len(e->d_name));
    if (dir)
        closedir(dir);
}

/* " (did you mean ...)" or why nothing is near, for an unknown `name`. */
static void unknown_model_hint(const struct ios_config *cfg, const struct name_search *ns,
                               char *hint, size_t len)
{
    if (ns->near.best)
        cfg_did_you_mean(ns->near.best, "", hint, len);
    else
        snprintf(hint, len, " (not built in, and plugin_dir %s has no %s.so)", cfg->plugin_dir,
                 ns->word);
}

int cfg_check_model_known(const struct ios_config *cfg, const struct cfg_report *r,
                          const config_setting_t *s, const char *name)
{
    char hint[PATH_MAX + 96], path[PATH_MAX];
    if (strchr(name, '/')) { /* a path, as `model` may name one */
        if (cfg_model_path(cfg, name, path, sizeof path) == 0 && access(path, R_OK) == 0)
            return 0;
        return cfg_fail_at(r, s, "unknown model '%s': no such plugin file", name);
    }
    struct name_search ns = {.word = name};
    cfg_closest_init(&ns.near, ns.word);
    search_model_names(cfg, &ns);
    if (ns.found)
        return 0;
    unknown_model_hint(cfg, &ns, hint, sizeof hint);
    return cfg_fail_at(r, s, "unknown model '%s'%s", name, hint);
}

int cfg_check_model_names(const struct ios_config *cfg, const struct cfg_report *r)
{
    const config_setting_t *models =
        config_setting_get_member(config_root_setting(&cfg->lc), "models");
    int n = models ? config_setting_length(models) : 0;
    char hint[PATH_MAX + 96];

    for (int i = 0; i < n; i++) {
        const config_setting_t *m = config_setting_get_elem(models, (unsigned)i);
        struct name_search ns = {.word = config_setting_name(m)};
        cfg_closest_init(&ns.near, ns.word);
        search_model_names(cfg, &ns);
        if (ns.found)
            continue;
        unknown_model_hint(cfg, &ns, hint, sizeof hint);
        return cfg_fail_at(r, m, "unknown model '%s' under 'models'%s", ns.word, hint);
    }
    return 0;
}

/* ------------------------------------------------------------- knobs */

static const config_setting_t *knob_group(const struct ios_config *cfg, const char *model_name)
{
    if (!cfg->lc_valid || !config_root_setting(&cfg->lc))
        return NULL;
    const config_setting_t *models =
        config_setting_get_member(config_root_setting(&cfg->lc), "models");
    if (!models || !config_setting_is_group(models))
        return NULL;
    return config_setting_get_member(models, model_name);
}

/* A knob of no type this host knows refuses any value. */
static int bad_knob_type(struct cfg_rules_ctx *cx, const config_setting_t *s)
{
    char path[256];
    cfg_setting_path(s, path, sizeof path);
    return cfg_fail_at(&cx->rep, s, "'%s': the plugin declares it with an unknown type", path);
}

/* The rule that checks a knob: nothing is stored (the model asks for the
 * values later), so no offset. */
static struct cfg_rule knob_rule(const struct ios_knob *k)
{
    struct cfg_rule rule = {.name = k->name, .min = k->min, .max = k->max};
    switch (k->type) {
    case IOS_KNOB_BOOL:
        rule.kind = CFG_RULE_BOOL;
        break;
    case IOS_KNOB_INT:
        rule.kind = CFG_RULE_LLONG;
        break;
    case IOS_KNOB_STRING:
        rule.kind = CFG_RULE_STRING;
        break;
    default:
        rule.kind = CFG_RULE_CUSTOM;
        rule.custom = bad_knob_type;
    }
    return rule;
}

int cfg_check_knobs(const struct ios_config *cfg, const char *model_name,
                    const struct ios_knob *knobs, char *err, size_t errlen)
{
    struct cfg_rules_ctx cx = {{cfg->file ? cfg->file : "config", err, errlen}, NULL, NULL};
    const config_setting_t *group = knob_group(cfg, model_name);
    char prefix[CFG_NAME_MAX + 16];
    size_t n = 0;

    if (!group)
        return 0;
    if (!config_setting_is_group(group))
        return cfg_fail_at(&cx.rep, group, "'models.%s' must be a group", model_name);
    if ((!knobs || !knobs->name) && config_setting_length(group) > 0) {
        const config_setting_t *s = config_setting_get_elem(group, 0);
        return cfg_fail_at(&cx.rep, s, "unknown setting 'models.%s.%s' (model '%s' has no knobs)",
                           model_name, config_setting_name(s), model_name);
    }
    while (knobs && knobs[n].name)
        n++;
    struct cfg_rule *rules = calloc(n + 1, sizeof *rules);
    if (!rules)
        return cfg_fail(&cx.rep, "out of memory");
    for (size_t i = 0; i < n; i++)
        rules[i] = knob_rule(&knobs[i]);
    snprintf(prefix, sizeof prefix, "models.%s.", model_name);
    int rc = cfg_rules_read(&cx, group, rules, prefix);
    free(rules);
    return rc;
}

/* A knob's value (its default when unset) into *out: a long long for
 * INT, an int for BOOL, a const char * for STRING.  -ENOENT when `knobs`
 * does not declare it with that type, -EINVAL when set to a value
 * cfg_check_knobs would have refused. */
static int knob_value(const struct ios_config *cfg, const char *model_name,
                      const struct ios_knob *knobs, const char *name, enum ios_knob_type type,
                      void *out)
{
    const config_setting_t *group = knob_group(cfg, model_name), *s = NULL;
    const struct ios_knob *k = knobs;

    while (k && k->name && strcmp(k->name, name) != 0)
        k++;
    if (!k || !k->name || k->type != type)
        return -ENOENT;
    if (group && config_setting_is_group(group))
        s = config_setting_get_member(group, name);
    if (s) {
        struct cfg_rules_ctx quiet = {{"", NULL, 0}, NULL, NULL};
        struct cfg_rule rule = knob_rule(k);
        if (cfg_rule_read(&quiet, &rule, s) < 0)
            return -EINVAL;
    }
    if (type == IOS_KNOB_INT)
        *(long long *)out = s ? config_setting_get_int64(s) : k->default_int;
    else if (type == IOS_KNOB_BOOL)
        *(int *)out = s ? config_setting_get_bool(s) != 0 : k->default_int != 0;
    else
        *(const char **)out = s ? config_setting_get_string(s) : k->default_string;
    return 0;
}

int cfg_knob_int(const struct ios_config *cfg, const char *model_name,
                 const struct ios_knob *knobs, const char *name, long long *v)
{
    return knob_value(cfg, model_name, knobs, name, IOS_KNOB_INT, v);
}

int cfg_knob_bool(const struct ios_config *cfg, const char *model_name,
                  const struct ios_knob *knobs, const char *name, int *v)
{
    return knob_value(cfg, model_name, knobs, name, IOS_KNOB_BOOL, v);
}

int cfg_knob_string(const struct ios_config *cfg, const char *model_name,
                    const struct ios_knob *knobs, const char *name, const char **v)
{
    return knob_value(cfg, model_name, knobs, name, IOS_KNOB_STRING, v);
}
