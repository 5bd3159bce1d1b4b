/* A scanner for the integer literals libconfig 1.5 silently wraps. */
#include <ctype.h>
#include <errno.h>
#include <libconfig.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config_ints.h"

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
