/* The hand-over and upgrade scenarios' clients (ho_load.h). */
#include "ho_load.h"

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

static struct ho_load *ho_loads[HO_MAX_LOADS];

static void ho_load_free(struct ho_load *L)
{
    for (int i = 0; i < L->n; i++)
        if (L->s[i].fd >= 0)
            close(L->s[i].fd);
    free(L->s);
    free(L);
}

void ho_free_loads(void)
{
    for (int i = 0; i < HO_MAX_LOADS; i++) {
        if (ho_loads[i])
            ho_load_free(ho_loads[i]);
        ho_loads[i] = NULL;
    }
}

static uint64_t ho_mix(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

static void ho_upper_ascii(char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] >= 'a' && p[i] <= 'z')
            p[i] = (char)(p[i] - 32);
}

/* Opens n connections of `kind` to port (the test fails if one cannot). */
struct ho_load *ho_open(int port, int n, enum ho_kind kind, int period_ms)
{
    int slot = 0;
    while (slot < HO_MAX_LOADS && ho_loads[slot])
        slot++;
    IT_CHECK(slot < HO_MAX_LOADS, "more than %d client sets", HO_MAX_LOADS);
    struct ho_load *L = calloc(1, sizeof *L);
    IT_CHECK(L, "out of memory");
    ho_loads[slot] = L;
    L->s = calloc((size_t)n, sizeof *L->s);
    IT_CHECK(L->s, "out of memory");
    L->period_ms = period_ms;
    int64_t now = it_now_ms();
    for (int i = 0; i < n; i++) {
        struct ho_sess *c = &L->s[i];
        c->fd = -1;
        c->kind = kind;
        c->id = i;
        c->wait_since = -1;
        /* spread the lines over the period, not all at once */
        c->next_ms = now + (period_ms ? i % period_ms : 0);
        L->n = i + 1;
        c->fd = it_connect_timeout(port, HO_MS(5000));
        IT_CHECK(c->fd >= 0, "connection %d of %d to port %d: %s", i + 1, n, port,
                 strerror(errno));
    }
    return L;
}

static void ho_break(struct ho_sess *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void ho_break(struct ho_sess *c, const char *fmt, ...)
{
    if (c->broken)
        return;
    c->broken = 1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->why, sizeof c->why, fmt, ap);
    va_end(ap);
}

/* Queues the next line (upper) or request (http). */
static void ho_queue(struct ho_sess *c, int64_t now)
{
    if (c->kind == HO_HTTP) {
        c->out_len = (size_t)snprintf(c->out, sizeof c->out,
                                      "GET /?c=%d&n=%llu HTTP/1.1\r\nHost: it\r\n\r\n", c->id,
                                      c->sent);
    } else {
        uint64_t r = ho_mix(((uint64_t)c->id << 32) ^ c->sent);
        int len = snprintf(c->out, sizeof c->out, "s%d n%llu ", c->id, c->sent);
        size_t letters = 8 + (size_t)(r % 48);
        for (size_t i = 0; i < letters; i++)
            c->out[len++] = (char)('a' + (ho_mix(r + i) % 26));
        c->out[len++] = '\n';
        c->out_len = (size_t)len;
        if (c->exp_len + c->out_len > HO_EXP_CAP) {
            ho_break(c, "over %d reply bytes outstanding after %llu replies", HO_EXP_CAP,
                     c->done);
            return;
        }
        memcpy(c->exp + c->exp_len, c->out, c->out_len);
        ho_upper_ascii(c->exp + c->exp_len, c->out_len);
        c->exp_len += c->out_len;
    }
    c->out_off = 0;
    c->sent++;
    if (c->wait_since < 0)
        c->wait_since = now;
}

static void ho_answered(struct ho_sess *c, int64_t now, int all)
{
    c->done++;
    if (now - c->wait_since > c->max_wait)
        c->max_wait = now - c->wait_since;
    c->wait_since = all ? -1 : now;
}

/* Upper: checks n received bytes against what is expected. */
static void ho_upper_input(struct ho_sess *c, const char *p, size_t n, int64_t now)
{
    if (n > c->exp_len) {
        ho_break(c, "%zu bytes more than were sent, after %llu replies", n - c->exp_len,
                 c->done);
        return;
    }
    long d = it_first_diff(p, c->exp, n);
    if (d >= 0) {
        ho_break(c, "reply byte differs after %llu good replies: got 0x%02x, expected "
                    "0x%02x",
                 c->done, (unsigned char)p[d], (unsigned char)c->exp[d]);
        return;
    }
    for (size_t i = 0; i < n; i++)
        if (p[i] == '\n')
            ho_answered(c, now, i + 1 == c->exp_len);
    memmove(c->exp, c->exp + n, c->exp_len - n);
    c->exp_len -= n;
}

/* Http: consumes every complete response in c->in. */
static void ho_http_input(struct ho_load *L, struct ho_sess *c, int64_t now)
{
    for (;;) {
        char *end = memmem(c->in, c->in_len, "\r\n\r\n", 4);
        if (!end) {
            if (c->in_len == sizeof c->in)
                ho_break(c, "a response head over %zu bytes", sizeof c->in);
            return;
        }
        size_t head = (size_t)(end - c->in) + 4;
        if (c->done == c->sent) {
            ho_break(c, "a response nobody asked for, after %llu", c->done);
            return;
        }
        if (strncmp(c->in, "HTTP/1.1 200 ", 13) != 0) {
            ho_break(c, "response %llu: %.40s", c->done + 1, c->in);
            return;
        }
        char h[4096];
        snprintf(h, sizeof h, "%.*s", (int)head, c->in);
        const char *cl = strcasestr(h, "\r\ncontent-length:");
        if (!cl) {
            ho_break(c, "response %llu has no Content-Length", c->done + 1);
            return;
        }
        if (strcasestr(h, "\r\nconnection: close")) {
            ho_break(c, "response %llu closes the keep-alive connection", c->done + 1);
            return;
        }
        size_t blen = (size_t)strtoul(cl + 17, NULL, 10);
        if (blen > sizeof L->body) {
            ho_break(c, "response %llu: a %zu-byte body", c->done + 1, blen);
            return;
        }
        if (c->in_len < head + blen)
            return;
        if (!L->have_body) {
            memcpy(L->body, c->in + head, blen);
            L->body_len = blen;
            L->have_body = 1;
        } else if (blen != L->body_len || memcmp(L->body, c->in + head, blen) != 0) {
            ho_break(c, "response %llu: body of %zu bytes differs from the first one",
                     c->done + 1, blen);
            return;
        }
        memmove(c->in, c->in + head + blen, c->in_len - head - blen);
        c->in_len -= head + blen;
        ho_answered(c, now, 1);
    }
}

static void ho_readable(struct ho_load *L, struct ho_sess *c, int64_t now)
{
    for (;;) {
        char buf[16384];
        char *p = c->kind == HO_HTTP ? c->in + c->in_len : buf;
        size_t cap = c->kind == HO_HTTP ? sizeof c->in - c->in_len : sizeof buf;
        if (cap == 0) {
            ho_http_input(L, c, now);
            return;
        }
        ssize_t r = recv(c->fd, p, cap, MSG_DONTWAIT);
        if (r > 0) {
            if (c->kind == HO_HTTP) {
                c->in_len += (size_t)r;
                ho_http_input(L, c, now);
            } else {
                ho_upper_input(c, buf, (size_t)r, now);
            }
            if (c->broken)
                return;
            continue;
        }
        if (r == 0)
            ho_break(c, "EOF after %llu replies (%llu sent)", c->done, c->sent);
        else if (errno != EAGAIN && errno != EINTR)
            ho_break(c, "%s after %llu replies (%llu sent)", strerror(errno), c->done,
                     c->sent);
        return;
    }
}

static void ho_writable(struct ho_sess *c)
{
    while (c->out_off < c->out_len) {
        ssize_t w = send(c->fd, c->out + c->out_off, c->out_len - c->out_off,
                         MSG_DONTWAIT | MSG_NOSIGNAL);
        if (w > 0) {
            c->out_off += (size_t)w;
        } else {
            if (errno != EAGAIN && errno != EINTR)
                ho_break(c, "send: %s after %llu replies", strerror(errno), c->done);
            return;
        }
    }
}

/* 1 when every unbroken session of L has every reply it asked for. */
int ho_all_answered(const struct ho_load *L)
{
    for (int i = 0; i < L->n; i++) {
        const struct ho_sess *c = &L->s[i];
        if (!c->broken && (c->done < c->sent || c->out_off < c->out_len))
            return 0;
    }
    return 1;
}

/*
 * Runs the clients of loads[0..nl) for ms milliseconds (or until hook says
 * so): upper sessions send a line every period (when the period is not 0),
 * http clients send their next request as soon as the last one is answered.
 * A session that fails is marked broken with the reason, never retried.
 */
void ho_pump(struct ho_load **loads, int nl, int ms, ho_hook hook, void *arg)
{
    int total = 0;
    for (int k = 0; k < nl; k++)
        total += loads[k]->n;
    struct pollfd *pf = calloc((size_t)total + 1, sizeof *pf);
    struct ho_sess **who = calloc((size_t)total + 1, sizeof *who);
    struct ho_load **whose = calloc((size_t)total + 1, sizeof *whose);
    if (!pf || !who || !whose) {
        free(pf);
        free(who);
        free(whose);
        IT_FAIL("out of memory");
    }
    int64_t end = it_now_ms() + ms;
    for (;;) {
        int64_t now = it_now_ms();
        if (now >= end || (hook && hook(arg)))
            break;
        int np = 0, wait = 10;
        for (int k = 0; k < nl; k++) {
            struct ho_load *L = loads[k];
            for (int i = 0; i < L->n; i++) {
                struct ho_sess *c = &L->s[i];
                if (c->broken || c->fd < 0)
                    continue;
                if (c->out_off == c->out_len) {
                    if (c->kind == HO_HTTP && c->done == c->sent)
                        ho_queue(c, now);
                    else if (c->kind == HO_UPPER && L->period_ms && now >= c->next_ms) {
                        ho_queue(c, now);
                        c->next_ms += L->period_ms;
                        if (c->next_ms < now) /* never a burst to catch up */
                            c->next_ms = now + L->period_ms;
                    }
                }
                if (c->broken)
                    continue;
                if (c->wait_since >= 0 && now - c->wait_since > HO_STALL_MS) {
                    ho_break(c, "no reply for %d ms after %llu replies", HO_STALL_MS, c->done);
                    continue;
                }
                if (c->out_off < c->out_len)
                    ho_writable(c);
                pf[np] = (struct pollfd){c->fd, (short)(POLLIN | (c->out_off < c->out_len
                                                                       ? POLLOUT : 0)), 0};
                who[np] = c;
                whose[np] = L;
                np++;
            }
        }
        if (poll(pf, (nfds_t)np, wait) < 0 && errno != EINTR) {
            free(pf);
            free(who);
            free(whose);
            IT_FAIL("poll: %s", strerror(errno));
        }
        now = it_now_ms();
        for (int i = 0; i < np; i++) {
            if (pf[i].revents & POLLOUT)
                ho_writable(who[i]);
            if (pf[i].revents & (POLLIN | POLLHUP | POLLERR))
                ho_readable(whose[i], who[i], now);
        }
    }
    free(pf);
    free(who);
    free(whose);
}

static int ho_hook_all_answered(void *arg)
{
    return ho_all_answered(arg);
}

/* One more line on every unbroken upper session of L, all answered within
 * timeout_ms (those that are not end up broken). */
void ho_exchange_all(struct ho_load *L, int timeout_ms)
{
    int64_t now = it_now_ms();
    for (int i = 0; i < L->n; i++)
        if (!L->s[i].broken && L->s[i].out_off == L->s[i].out_len)
            ho_queue(&L->s[i], now);
    ho_pump(&L, 1, timeout_ms, ho_hook_all_answered, L);
    for (int i = 0; i < L->n; i++) {
        struct ho_sess *c = &L->s[i];
        if (!c->broken && c->done < c->sent)
            ho_break(c, "no reply within %d ms (%llu of %llu answered)", timeout_ms, c->done,
                     c->sent);
    }
}

/* Broken sessions of L; prints the first few reasons under `what`. */
int ho_broken(const struct ho_load *L, const char *what)
{
    int n = 0;
    for (int i = 0; i < L->n; i++) {
        if (!L->s[i].broken)
            continue;
        if (n < 5)
            it_log("%s %d: %s", what, i, L->s[i].why);
        n++;
    }
    if (n)
        it_log("%s: %d of %d broken", what, n, L->n);
    return n;
}

void ho_close_load(struct ho_load *L)
{
    for (int i = 0; i < L->n; i++) {
        if (L->s[i].fd >= 0)
            close(L->s[i].fd);
        L->s[i].fd = -1;
    }
}

/* ============================================================== metrics */

const char *ho_metrics(const struct it_server *s)
{
    int port = it_status_port(s);
    char *resp = port > 0 ? it_http_get(port, "/metrics") : NULL;
    const char *body = resp ? strstr(resp, "\r\n\r\n") : NULL;
    return body ? body + 4 : NULL;
}

/* ioserve_connections_active of generation `gen` (0 = every generation). */
long ho_active(const char *body, unsigned gen)
{
    char label[64];
    snprintf(label, sizeof label, "generation=\"%u\"", gen);
    return (long)it_metric_sum(body, "ioserve_connections_active", gen ? label : NULL);
}

/* Waits up to timeout_ms until generation `gen` holds `want` connections
 * and no generation holds any other.  0, or -1 with the last counts. */
int ho_wait_active(const struct it_server *s, unsigned gen, long want,
                          int timeout_ms, long *on_gen, long *total)
{
    int64_t end = it_now_ms() + timeout_ms;
    for (;;) {
        const char *body = ho_metrics(s);
        *on_gen = body ? ho_active(body, gen) : -1;
        *total = body ? ho_active(body, 0) : -1;
        if (*on_gen == want && *total == want)
            return 0;
        if (it_now_ms() >= end)
            return -1;
        it_sleep_ms(50);
    }
}

int ho_wait_holds(const struct it_server *s, unsigned gen, long want, int timeout_ms)
{
    int64_t end = it_now_ms() + timeout_ms;
    for (;;) {
        const char *body = ho_metrics(s);
        if (body && ho_active(body, gen) == want)
            return 1;
        if (it_now_ms() >= end)
            return 0;
        it_sleep_ms(50);
    }
}

/* Every connection of every reload was handed over, none finished on an
 * old model: the hand-over metrics say `moved` and 0. */
void ho_check_moved(const struct it_server *s, long moved)
{
    const char *body = ho_metrics(s);
    IT_CHECK(body, "no /metrics from %s", s->cfg);
    long handed = (long)it_metric_sum(body, "ioserve_connections_handed_over_total", NULL);
    long finished = (long)it_metric_sum(body, "ioserve_connections_finished_on_old_total", NULL);
    int has_drain = strstr(body, "\nioserve_last_drain_duration_seconds") != NULL;
    it_log("/metrics: %ld connections handed over, %ld finished on an old model", handed,
           finished);
    IT_CHECK(handed == moved && finished == 0 && has_drain,
             "/metrics: ioserve_connections_handed_over_total %ld (expected %ld), "
             "ioserve_connections_finished_on_old_total %ld (expected 0), "
             "ioserve_last_drain_duration_seconds %s",
             handed, moved, finished, has_drain ? "present" : "missing");
}

