/* Integer literals libconfig 1.5 would silently wrap. */
#ifndef IOSERVE_CONFIG_INTS_H
#define IOSERVE_CONFIG_INTS_H

#include <stddef.h>

#include <libconfig.h>

/*
 * libconfig 1.5 (Debian 12) reads an integer literal that does not fit in
 * 32 bits and has no L suffix by wrapping it: 5000000000 becomes 705032704
 * and 3000000000 a negative number, with no error.  Finds the first such
 * literal in libconfig text, outside strings and comments.  Returns its
 * line (1-based) and copies it into lit, or returns 0 when there is none.
 */
int cfg_find_wrapping_int(const char *text, char *lit, size_t litlen);

/* 1 when the libconfig this program runs with wraps such literals (1.5
 * does; later versions read them as 64-bit integers), found by asking it
 * once.  The check above is only needed, and only made, then. */
int cfg_libconfig_wraps_ints(void);

struct cfg_report;

/* Refuses, with "WHERE: integer ... write NL", a wrapping literal in text
 * (an -o value, WHERE "-o KEY") when this libconfig wraps them.  0 or -1. */
int cfg_refuse_wrapping_int_in(const struct cfg_report *r, const char *where, const char *text);

/* The same for a parsed config: the file `file` (named as given) and every
 * file it @includes (named as the @include wrote them, relative to dir),
 * reported at FILE:LINE.  0 or -1. */
int cfg_refuse_wrapping_ints(const config_t *lc, const char *file, const char *dir,
                             const struct cfg_report *r);

#endif
