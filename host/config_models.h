/* The `models` group: which names it may hold (checked with the config)
 * and their knobs (checked, and read, with a plugin's knob table: those
 * functions are declared in config.h). */
#ifndef IOSERVE_CONFIG_MODELS_H
#define IOSERVE_CONFIG_MODELS_H

#include "config.h"
#include "config_rules.h"

/* The rule for `models`: a group of groups.  0 or -1. */
int cfg_check_models_shape(struct cfg_rules_ctx *cx, const config_setting_t *s);

/* Each group under `models` names a built-in model, a NAME.so in
 * plugin_dir, or a plugin `model` loads by path: another name is a typo
 * whose knobs nothing would read.  0, or -1 with the closest name. */
int cfg_check_model_names(const struct ios_config *cfg, const struct cfg_report *r);

/* `name` (of setting s) is a built-in model, a NAME.so in plugin_dir, or a
 * path to a readable plugin file.  0, or -1 with the closest name. */
int cfg_check_model_known(const struct ios_config *cfg, const struct cfg_report *r,
                          const config_setting_t *s, const char *name);

#endif
