/* Config errors: locations, messages, typo suggestions. */
#include "config_report.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

size_t cfg_append(char *buf, size_t len, size_t n, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    int k = vsnprintf(n < len ? buf + n : NULL, n < len ? len - n : 0, fmt, ap);
    va_end(ap);
    return k < 0 ? n : n + (size_t)k;
}

int cfg_fail(const struct cfg_report *r, const char *fmt, ...)
{
    va_list ap;

    if (r->err && r->errlen > 0) {
        va_start(ap, fmt);
        vsnprintf(r->err, r->errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

size_t cfg_setting_path(const config_setting_t *s, char *buf, size_t len)
{
    const config_setting_t *parent = config_setting_parent(s);
    size_t n = 0;

    if (len > 0)
        buf[0] = '\0';
    if (parent && !config_setting_is_root(parent))
        n = cfg_setting_path(parent, buf, len);
    if (config_setting_name(s))
        return cfg_append(buf, len, n, "%s%s", n ? "." : "", config_setting_name(s));
    return cfg_append(buf, len, n, "[%d]", config_setting_index(s));
}

/*
 * "FILE:LINE" for a setting the parser made; "-o KEY" for one an override
 * made, which libconfig leaves at line 0.  List elements are reported at
 * their list, the thing the user actually named.
 */
static void setting_where(const struct cfg_report *r, const config_setting_t *s, char *buf,
                          size_t len)
{
    if (config_setting_is_root(s)) {
        snprintf(buf, len, "%s", r->file);
        return;
    }
    if (config_setting_source_line(s) > 0) {
        const char *file = config_setting_source_file(s);
        snprintf(buf, len, "%s:%u", file ? file : r->file,
                 (unsigned)config_setting_source_line(s));
        return;
    }
    while (!config_setting_name(s) && config_setting_parent(s))
        s = config_setting_parent(s);
    size_t n = cfg_append(buf, len, 0, "-o ");
    cfg_setting_path(s, n < len ? buf + n : buf, n < len ? len - n : len);
}

int cfg_fail_at(const struct cfg_report *r, const config_setting_t *s, const char *fmt, ...)
{
    char where[PATH_MAX + 64];
    va_list ap;

    if (!r->err || r->errlen == 0)
        return -1;
    setting_where(r, s, where, sizeof where);
    size_t n = cfg_append(r->err, r->errlen, 0, "%s: ", where);
    if (n < r->errlen) {
        va_start(ap, fmt);
        vsnprintf(r->err + n, r->errlen - n, fmt, ap);
        va_end(ap);
    }
    return -1;
}

/* ------------------------------------------------------ closest match */

void cfg_closest_init(struct cfg_closest *c, const char *word)
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
    size_t row[CFG_NAME_MAX + 1];

    for (size_t j = 0; j <= lb; j++)
        row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j];
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

void cfg_closest_try(struct cfg_closest *c, const char *candidate)
{
    size_t len = strlen(candidate);
    size_t gap = len > c->word_len ? len - c->word_len : c->word_len - len;

    /* The length difference is a lower bound of the distance: it rules
     * out most candidates, and every over-long one, without measuring. */
    if (len > CFG_NAME_MAX || gap > c->limit || gap >= c->best_distance)
        return;
    size_t d = edit_distance(c->word, c->word_len, candidate, len);
    if (d <= c->limit && d < c->best_distance) {
        c->best_distance = d;
        c->best = candidate;
    }
}

const char *cfg_closest(const char *word, const char *const *candidates)
{
    struct cfg_closest c;

    if (!word || !candidates)
        return NULL;
    cfg_closest_init(&c, word);
    for (; *candidates; candidates++)
        cfg_closest_try(&c, *candidates);
    return c.best;
}

const char *cfg_did_you_mean(const char *suggestion, const char *prefix, char *buf, size_t len)
{
    if (!suggestion)
        return "";
    snprintf(buf, len, " (did you mean '%s%s'?)", prefix, suggestion);
    return buf;
}
