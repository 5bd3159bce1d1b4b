/* HTTP/1.x request heads, RFC 9112 grammar with the leniencies load tools
 * and old clients need (bare LF line ends, empty lines before a request). */
#include <string.h>

#include "http_parse.h"

/* RFC 9110 §5.6.2 tchar: what method tokens and header names are made of. */
static const unsigned char tchar[256] = {
    ['0' ... '9'] = 1, ['A' ... 'Z'] = 1, ['a' ... 'z'] = 1,
    ['!'] = 1, ['#'] = 1, ['$'] = 1, ['%'] = 1, ['&'] = 1, ['\''] = 1,
    ['*'] = 1, ['+'] = 1, ['-'] = 1, ['.'] = 1, ['^'] = 1, ['_'] = 1,
    ['`'] = 1, ['|'] = 1, ['~'] = 1,
};

static inline int is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

/* Field values may hold HTAB, visible ASCII and obs-text (>= 0x80); any
 * other control byte (a stray CR above all) is a smuggling vector. */
static inline int is_value_byte(unsigned char c)
{
    return c == '\t' || (c >= 0x20 && c != 0x7f);
}

/* Value bytes eight at a time: a word with no byte below 0x20 and none
 * equal to 0x7f is all value bytes, which is the usual case (the tests are
 * exact for "is there such a byte", the carries notwithstanding); a word
 * with one goes byte by byte, since HTAB is allowed. */
#define BYTES(x) (0x0101010101010101ull * (x))

static int word_ok(const char *p)
{
    uint64_t w, del;
    memcpy(&w, p, 8);
    del = w ^ BYTES(0x7f);
    if (((w - BYTES(0x20)) & ~w & BYTES(0x80)) == 0 &&
        ((del - BYTES(0x01)) & ~del & BYTES(0x80)) == 0)
        return 1;
    for (int k = 0; k < 8; k++)
        if (!is_value_byte((unsigned char)p[k]))
            return 0;
    return 1;
}

static int values_ok(const char *p, size_t n)
{
    if (n < 8) {
        for (size_t i = 0; i < n; i++)
            if (!is_value_byte((unsigned char)p[i]))
                return 0;
        return 1;
    }
    for (size_t i = 0; i + 8 <= n; i += 8)
        if (!word_ok(p + i))
            return 0;
    /* The last partial word: the last eight bytes, overlapping. */
    return n % 8 == 0 || word_ok(p + n - 8);
}

/* RFC 3986 unreserved and sub-delims: a reg-name's bytes besides "%XX",
 * and (with ':') an IP-literal's between its brackets. */
static const unsigned char host_char[256] = {
    ['0' ... '9'] = 1, ['A' ... 'Z'] = 1, ['a' ... 'z'] = 1,
    ['-'] = 1, ['.'] = 1, ['_'] = 1, ['~'] = 1,
    ['!'] = 1, ['$'] = 1, ['&'] = 1, ['\''] = 1, ['('] = 1, [')'] = 1,
    ['*'] = 1, ['+'] = 1, [','] = 1, [';'] = 1, ['='] = 1,
};

static inline int is_hex(unsigned char c)
{
    return is_digit(c) || ((c | 0x20) >= 'a' && (c | 0x20) <= 'f');
}

static inline int is_ows(unsigned char c)
{
    return c == ' ' || c == '\t';
}

/* s[0, n) equals the lower-case literal `lit` ignoring ASCII case.  Only
 * used on tchar or field-value bytes, where c | 0x20 cannot alias a
 * letter or '-' with some other allowed byte. */
static int ieq(const char *s, size_t n, const char *lit, size_t litlen)
{
    if (n != litlen)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (((unsigned char)s[i] | 0x20) != (unsigned char)lit[i])
            return 0;
    return 1;
}

#define IEQ(s, n, lit) ieq((s), (n), lit, sizeof(lit) - 1)

ssize_t http_skip_empty_lines(const char *p, size_t len)
{
    size_t i = 0;
    for (int lines = 0;; lines++) {
        size_t next = i;
        if (next < len && p[next] == '\r')
            next++;
        if (next == len || p[next] != '\n')
            return (ssize_t)i;
        if (lines == HTTP_MAX_EMPTY_LINES)
            return -1;
        i = next + 1;
    }
}

static enum http_method method_of(const char *m, size_t n)
{
#define IS(lit) (n == sizeof(lit) - 1 && memcmp(m, lit, n) == 0)
    if (IS("GET"))
        return HTTP_M_GET;
    if (IS("HEAD"))
        return HTTP_M_HEAD;
    if (IS("POST") || IS("PUT") || IS("DELETE") || IS("PATCH") ||
        IS("OPTIONS") || IS("TRACE") || IS("CONNECT"))
        return HTTP_M_REFUSED;
    return HTTP_M_UNKNOWN;
#undef IS
}

/* "HTTP/" DIGIT "." DIGIT is RFC 9112's grammar; other majors are told
 * apart from garbage so that HTTP/2.0 or HTTP/3 get 505, not 400. */
static int parse_version(const char *v, size_t n, int *minor)
{
    if (n < 5 || memcmp(v, "HTTP/", 5) != 0)
        return 400;
    v += 5;
    n -= 5;
    if (n == 3 && is_digit(v[0]) && v[1] == '.' && is_digit(v[2])) {
        if (v[0] == '1' && (v[2] == '0' || v[2] == '1')) {
            *minor = v[2] - '0';
            return 0;
        }
        return 505;
    }
    size_t i = 0;
    while (i < n && is_digit(v[i]))
        i++;
    size_t major_len = i;
    if (major_len == 0 || (major_len == 1 && v[0] == '1'))
        return 400; /* HTTP/1 with a minor we cannot read */
    if (i < n) {
        if (v[i++] != '.')
            return 400;
        size_t minor_start = i;
        while (i < n && is_digit(v[i]))
            i++;
        if (i == minor_start || i != n)
            return 400;
    }
    return 505;
}

/* Length of the method token that starts l[0, n). */
static size_t method_len(const char *l, size_t n)
{
    size_t i = 0;
    while (i < n && tchar[(unsigned char)l[i]])
        i++;
    return i;
}

/* Length of the request-target that starts l[0, n): visible ASCII. */
static size_t target_len(const char *l, size_t n)
{
    size_t i = 0;
    while (i < n && (unsigned char)l[i] > ' ' && l[i] != 0x7f)
        i++;
    return i;
}

static int parse_request_line(const char *l, size_t n, struct http_req *r)
{
    size_t i = method_len(l, n);
    if (i == 0 || i == n || l[i] != ' ')
        return 400;
    r->method = method_of(l, i);

    size_t t = ++i;
    i += target_len(l + i, n - i);
    if (i == t || i == n || l[i] != ' ')
        return 400;

    i++;
    return parse_version(l + i, n - i, &r->minor);
}

int http_head_overflow(struct http_head_parse *st, const char *p, size_t len)
{
    if (st->next_line > 0)
        return 431;
    size_t i = method_len(p, len);
    if (i == 0 || i == len || p[i] != ' ')
        return 400;
    st->req.method = method_of(p, i);
    size_t t = ++i;
    i += target_len(p + i, len - i);
    return i > t && i == len ? 414 : 400;
}

static int parse_connection(const char *v, size_t n, struct http_req *r)
{
    size_t i = 0;
    while (i < n) {
        size_t s = i;
        while (i < n && v[i] != ',')
            i++;
        size_t e = i;
        while (s < e && is_ows((unsigned char)v[s]))
            s++;
        while (e > s && is_ows((unsigned char)v[e - 1]))
            e--;
        if (IEQ(v + s, e - s, "close"))
            r->conn_close = 1;
        else if (IEQ(v + s, e - s, "keep-alive"))
            r->conn_keep_alive = 1;
        i++; /* past the comma */
    }
    return 0;
}

/* 1*DIGIT, or a list of equal ones ("5, 5", RFC 9110 §8.6); saturates at
 * UINT64_MAX so that a huge length is "too large", not "malformed". */
static int parse_content_length(const char *v, size_t n, struct http_req *r)
{
    size_t i = 0;
    do {
        while (i < n && is_ows((unsigned char)v[i]))
            i++;
        if (i == n || !is_digit((unsigned char)v[i]))
            return 400;
        uint64_t x = 0;
        while (i < n && is_digit((unsigned char)v[i])) {
            unsigned d = (unsigned)(v[i++] - '0');
            x = x > (UINT64_MAX - d) / 10 ? UINT64_MAX : x * 10 + d;
        }
        while (i < n && is_ows((unsigned char)v[i]))
            i++;
        if (i < n && v[i] != ',')
            return 400;
        if (r->has_length && r->content_length != x)
            return 400;
        r->has_length = 1;
        r->content_length = x;
    } while (i++ < n);
    return 0;
}

/* Host = uri-host [ ":" port ] (RFC 9110 §7.2), empty allowed. */
static int host_ok(const char *v, size_t n)
{
    size_t i = 0;
    if (n > 0 && v[0] == '[') {
        for (i = 1; i < n && v[i] != ']'; i++)
            if (!host_char[(unsigned char)v[i]] && v[i] != ':')
                return 0;
        if (i == n || i == 1)
            return 0;
        i++;
    } else {
        while (i < n && v[i] != ':') {
            if (v[i] == '%') {
                if (n - i < 3 || !is_hex((unsigned char)v[i + 1]) ||
                    !is_hex((unsigned char)v[i + 2]))
                    return 0;
                i += 3;
            } else if (host_char[(unsigned char)v[i]]) {
                i++;
            } else {
                return 0;
            }
        }
    }
    if (i < n && v[i++] != ':')
        return 0;
    while (i < n && is_digit((unsigned char)v[i]))
        i++;
    return i == n;
}

static int parse_host(const char *v, size_t n, struct http_req *r)
{
    if (r->has_host || !host_ok(v, n))
        return 400;
    r->has_host = 1;
    return 0;
}

static int parse_header(const char *l, size_t n, struct http_req *r)
{
    size_t i = 0;
    while (i < n && tchar[(unsigned char)l[i]])
        i++;
    /* An empty name also catches obs-fold continuation lines, which
     * RFC 9112 §5.2 lets a server reject. */
    if (i == 0 || i == n || l[i] != ':')
        return 400;
    const char *name = l;
    size_t name_len = i;

    i++;
    while (i < n && is_ows((unsigned char)l[i]))
        i++;
    size_t vs = i;
    if (!values_ok(l + i, n - i))
        return 400;
    size_t ve = n;
    while (ve > vs && is_ows((unsigned char)l[ve - 1]))
        ve--;
    const char *v = l + vs;
    size_t vn = ve - vs;

    switch (name_len) {
    case 4:
        if (IEQ(name, name_len, "host"))
            return parse_host(v, vn, r);
        break;
    case 10:
        if (IEQ(name, name_len, "connection"))
            return parse_connection(v, vn, r);
        break;
    case 14:
        if (IEQ(name, name_len, "content-length"))
            return parse_content_length(v, vn, r);
        break;
    case 17:
        if (IEQ(name, name_len, "transfer-encoding"))
            r->has_te = 1;
        break;
    }
    return 0;
}

int http_head_parse(struct http_head_parse *st, const char *p, size_t len,
                    size_t *head_len)
{
    size_t pos = st->next_line;
    if (pos == 0)
        memset(&st->req, 0, sizeof st->req);
    for (;;) {
        const char *lf = memchr(p + pos, '\n', len - pos);
        if (!lf) {
            st->next_line = pos;
            return HTTP_HEAD_INCOMPLETE;
        }
        size_t at = (size_t)(lf - p);
        const char *line = p + pos;
        size_t n = at - pos;
        if (n > 0 && line[n - 1] == '\r')
            n--;
        int rc;
        if (pos == 0) {
            rc = parse_request_line(line, n, &st->req);
        } else if (n > 0) {
            rc = parse_header(line, n, &st->req);
        } else if (st->req.minor == 1 && !st->req.has_host) {
            rc = 400;
        } else {
            *head_len = at + 1;
            st->next_line = 0;
            return 0;
        }
        if (rc) {
            st->next_line = 0;
            return rc;
        }
        pos = at + 1;
    }
}

int http_parse_head(const char *p, size_t len, struct http_req *r)
{
    struct http_head_parse st = {.next_line = 0};
    size_t head_len;
    int rc = http_head_parse(&st, p, len, &head_len);
    *r = st.req;
    return rc == HTTP_HEAD_INCOMPLETE || (rc == 0 && head_len != len) ? 400 : rc;
}

void http_format_date(time_t t, char out[HTTP_DATE_LEN])
{
    static const char days[] = "SunMonTueWedThuFriSat";
    static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
    struct tm tm;
    gmtime_r(&t, &tm);
    unsigned year = (unsigned)(tm.tm_year + 1900) % 10000;

    memcpy(out, days + 3 * tm.tm_wday, 3);
    out[3] = ',';
    out[4] = ' ';
    out[5] = (char)('0' + tm.tm_mday / 10);
    out[6] = (char)('0' + tm.tm_mday % 10);
    out[7] = ' ';
    memcpy(out + 8, months + 3 * tm.tm_mon, 3);
    out[11] = ' ';
    out[12] = (char)('0' + year / 1000);
    out[13] = (char)('0' + year / 100 % 10);
    out[14] = (char)('0' + year / 10 % 10);
    out[15] = (char)('0' + year % 10);
    out[16] = ' ';
    out[17] = (char)('0' + tm.tm_hour / 10);
    out[18] = (char)('0' + tm.tm_hour % 10);
    out[19] = ':';
    out[20] = (char)('0' + tm.tm_min / 10);
    out[21] = (char)('0' + tm.tm_min % 10);
    out[22] = ':';
    out[23] = (char)('0' + tm.tm_sec / 10);
    out[24] = (char)('0' + tm.tm_sec % 10);
    memcpy(out + 25, " GMT", 4);
}

int http_header_value_ok(const char *s)
{
    for (; s && *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return 0;
    return 1;
}
