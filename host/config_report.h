/* Config errors: where a setting came from ("FILE:LINE" or "-o KEY"), the
 * message written there, and the closest known name for a typo.  Nothing
 * logs: every message goes into the caller's buffer. */
#ifndef IOSERVE_CONFIG_REPORT_H
#define IOSERVE_CONFIG_REPORT_H

#include <stddef.h>

#include <libconfig.h>

#include "ioserve/plugin.h" /* IOS_PRINTF */

/* A setting name longer than this is no plausible typo of another: the
 * closest-name search skips it (and needs no allocation). */
#define CFG_NAME_MAX 128

/* Where messages go, and the file name to use when libconfig has none. */
struct cfg_report {
    const char *file;
    char *err;
    size_t errlen;
};

/* snprintf at buf + n that keeps counting past the end, so callers can
 * append several pieces and detect truncation once.  The new length. */
size_t cfg_append(char *buf, size_t len, size_t n, const char *fmt, ...) IOS_PRINTF(4, 5);

/* Writes the message; returns -1, so `return cfg_fail(...)` ends a check. */
int cfg_fail(const struct cfg_report *r, const char *fmt, ...) IOS_PRINTF(2, 3);

/* The same, prefixed with where s came from: "FILE:LINE: " for a setting
 * the parser made, "-o KEY: " for one an override made. */
int cfg_fail_at(const struct cfg_report *r, const config_setting_t *s, const char *fmt, ...)
    IOS_PRINTF(3, 4);

/* "http.max_header_bytes", "model[1]": the dotted name users write. */
size_t cfg_setting_path(const config_setting_t *s, char *buf, size_t len);

/* The closest of several candidates to a word, by edit distance, offered
 * one at a time; best stays NULL when none is close enough to be a typo. */
struct cfg_closest {
    const char *word;
    size_t word_len;
    size_t limit; /* largest distance still taken for a typo */
    size_t best_distance;
    const char *best;
};

void cfg_closest_init(struct cfg_closest *c, const char *word);
void cfg_closest_try(struct cfg_closest *c, const char *candidate);

/* The same over a NULL-terminated list. */
const char *cfg_closest(const char *word, const char *const *candidates);

/* " (did you mean 'PREFIXsuggestion'?)" in buf, or "" when suggestion is
 * NULL: for the end of a message. */
const char *cfg_did_you_mean(const char *suggestion, const char *prefix, char *buf, size_t len);

#endif
