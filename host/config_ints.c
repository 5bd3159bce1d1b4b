/* A scanner for the integer literals libconfig 1.5 silently wraps. */
#include <ctype.h>
#include <limits.h>
#include <errno.h>
#include <libconfig.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config_ints.h"
#include "config_report.h"
#include "config_rules.h"

/* Characters a setting name may hold after its first: a digit preceded by
 * one of them is part of a name ("conn-100"), not a number. */
static int is_name_char(char c)
{
    return isalnum((unsigned char)c) || c == '_' || c == '-' || c == '*';
}

/* Skips a string literal starting at its opening quote; counts lines. */
static const char *skip_string(const char *p, int *line)
{
    for (p++; *p && *p != '"'; p++) {
        if (*p == '\\' && p[1])
            p++;
        if (*p == '\n')
            (*line)++;
    }
    return *p ? p + 1 : p;
}

/* Skips a comment starting at p, if one starts there; counts lines. */
static const char *skip_comment(const char *p, int *line)
{
    if (*p == '#' || (p[0] == '/' && p[1] == '/'))
        return p + strcspn(p, "\n");
    if (p[0] == '/' && p[1] == '*') {
        for (p += 2; *p && !(p[0] == '*' && p[1] == '/'); p++)
            if (*p == '\n')
                (*line)++;
        return *p ? p + 2 : p;
    }
    return NULL;
}

/* Reads the number at p (sign included).  Returns its end; *wraps says
 * whether libconfig 1.5 would read it as a wrapped 32-bit integer. */
static const char *scan_number(const char *p, int *wraps)
{
    int negative = *p == '-';
    if (*p == '-' || *p == '+')
        p++;
    int hex = p[0] == '0' && (p[1] == 'x' || p[1] == 'X');
    const char *digits = hex ? p + 2 : p;
    const char *end = digits;
    while (hex ? isxdigit((unsigned char)*end) : isdigit((unsigned char)*end))
        end++;
    *wraps = 0;
    if (!hex && (*end == '.' || *end == 'e' || *end == 'E')) {
        /* a float: its digits are no integer of their own */
        while (isalnum((unsigned char)*end) || *end == '.' ||
               ((*end == '-' || *end == '+') && (end[-1] == 'e' || end[-1] == 'E')))
            end++;
        return end;
    }
    if (*end == 'L' || *end == 'l')
        return end + 1 + (end[1] == 'L' || end[1] == 'l');
    errno = 0;
    unsigned long long v = strtoull(digits, NULL, hex ? 16 : 10);
    unsigned long long max = negative && !hex ? (unsigned long long)INT32_MAX + 1 : INT32_MAX;
    *wraps = errno == ERANGE || v > max;
    return end;
}

int cfg_find_wrapping_int(const char *text, char *lit, size_t litlen)
{
    int line = 1;
    const char *p = text;
    while (*p) {
        const char *after;
        if (*p == '\n') {
            line++;
            p++;
        } else if (*p == '"') {
            p = skip_string(p, &line);
        } else if ((after = skip_comment(p, &line)) != NULL) {
            p = after;
        } else if ((isdigit((unsigned char)*p) ||
                    ((*p == '-' || *p == '+') && isdigit((unsigned char)p[1]))) &&
                   (p == text || !is_name_char(p[-1]))) {
            int wraps;
            const char *end = scan_number(p, &wraps);
            if (wraps) {
                snprintf(lit, litlen, "%.*s", (int)(end - p), p);
                return line;
            }
            p = end;
        } else if (is_name_char(*p)) {
            while (is_name_char(*p))
                p++; /* a name, digits and dashes included */
        } else {
            p++;
        }
    }
    return 0;
}

int cfg_libconfig_wraps_ints(void)
{
    static int wraps = -1;
    if (wraps < 0) {
        config_t probe;
        long long v = 0;
        config_init(&probe);
        wraps = !config_read_string(&probe, "v = 5000000000;") ||
                !config_lookup_int64(&probe, "v", &v) || v != 5000000000LL;
        config_destroy(&probe);
    }
    return wraps;
}

static int wrapping_int_error(const struct cfg_report *r, const char *where, const char *lit)
{
    return cfg_fail(r, "%s: integer %s does not fit in 32 bits, and libconfig would "
                       "silently wrap it: write %sL for a 64-bit integer",
                    where, lit, lit);
}

int cfg_refuse_wrapping_int_in(const struct cfg_report *r, const char *where, const char *text)
{
    char lit[64];

    if (cfg_libconfig_wraps_ints() && cfg_find_wrapping_int(text, lit, sizeof lit))
        return wrapping_int_error(r, where, lit);
    return 0;
}

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

/* Adds to files[] each file the settings below s were read from (what the
 * config @includes), once.  Returns the new count. */
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

int cfg_refuse_wrapping_ints(const config_t *lc, const char *file, const char *dir,
                             const struct cfg_report *r)
{
    if (!cfg_libconfig_wraps_ints())
        return 0;
    /* the config itself has no name in the tree (it is read from a stream) */
    const char *files[MAX_SOURCE_FILES] = {file};
    size_t n = source_files(config_root_setting(lc), files, 1);
    for (size_t i = 0; i < n; i++) {
        char *path = i == 0 ? strdup(files[i]) : cfg_path_in(dir, files[i]);
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
