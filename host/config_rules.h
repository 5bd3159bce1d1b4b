/*
 * The rule engine: a table of rules, one per setting name, says what each
 * setting of a group may hold and where in a struct its value goes (nginx's
 * directive tables in miniature).  Reading a group against its table checks
 * every member (an unknown name gets the closest known one) and stores each
 * value; with no struct to store into it only checks (a plugin's knobs).
 */
#ifndef IOSERVE_CONFIG_RULES_H
#define IOSERVE_CONFIG_RULES_H

#include <stddef.h>

#include <libconfig.h>

#include "config_report.h"

struct cfg_rules_ctx {
    struct cfg_report rep;
    void *base;      /* the struct rule offsets point into; NULL = check only */
    const char *dir; /* what a relative path is relative to */
};

enum cfg_rule_kind {
    CFG_RULE_INT,      /* int, in [min, max] */
    CFG_RULE_UINT,     /* unsigned, in [min, max] */
    CFG_RULE_SIZE,     /* size_t, in [min, max] */
    CFG_RULE_LLONG,    /* long long, in [min, max] */
    CFG_RULE_BOOL,     /* int 0/1, written true or false */
    CFG_RULE_MS,       /* unsigned ms, written in seconds from min ms (1 or 0) up to max s */
    CFG_RULE_STRING,   /* char *, a copy */
    CFG_RULE_PATH,     /* char *, made absolute against the ctx's dir */
    CFG_RULE_CHOICE,   /* char *, one of `choices` */
    CFG_RULE_INDEX,    /* int, the index of the value in `choices` */
    CFG_RULE_ADDRESS,  /* char * "HOST:PORT", and its sockaddr and length */
    CFG_RULE_GROUP,    /* a group whose members follow `members` */
    CFG_RULE_CUSTOM,   /* `custom` does it all */
};

struct cfg_rule {
    const char *name;
    enum cfg_rule_kind kind;
    size_t offset;
    long long min, max;
    /* STRING, PATH, ADDRESS: "" means unset (NULL; an address is off)
     * rather than an error */
    int empty_is_unset;
    /* STRING: a further test, and what the value must be when it fails */
    int (*valid)(const char *value);
    const char *valid_says;
    const char *const *choices;      /* CHOICE, INDEX: NULL-terminated */
    size_t addr_offset, len_offset;  /* ADDRESS: sockaddr_storage, socklen_t */
    const struct cfg_rule *members;  /* GROUP: ends with a NULL name */
    const char *example;             /* GROUP: shown when it is no group */
    int (*custom)(struct cfg_rules_ctx *cx, const config_setting_t *s);
};

/*
 * Reads every member of `group` by `rules` (ended by a rule with a NULL
 * name), stopping at the first error; `prefix` ("http.") is how the group's
 * members are named in messages.  0 or -1 with the message in cx->rep.
 */
int cfg_rules_read(struct cfg_rules_ctx *cx, const config_setting_t *group,
                   const struct cfg_rule *rules, const char *prefix);

/* One setting by one rule.  0 or -1. */
int cfg_rule_read(struct cfg_rules_ctx *cx, const struct cfg_rule *rule, const config_setting_t *s);

/* path itself when absolute (or dir is NULL), else dir/path: malloc'd,
 * NULL when out of memory. */
char *cfg_path_in(const char *dir, const char *path);

#endif
