/* Socket addresses: parsing the config's "HOST:PORT", printing a bound one. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "addr.h"

/* 0..65535, decimal digits only: "80x" or "" is a typo, not port 80/0. */
static int parse_port(const char *text, unsigned *port)
{
    unsigned long v = 0;

    if (text[0] == '\0' || strlen(text) > 5)
        return -EINVAL;
    for (size_t i = 0; text[i]; i++) {
        if (text[i] < '0' || text[i] > '9')
            return -EINVAL;
        v = v * 10 + (unsigned long)(text[i] - '0');
    }
    if (v > 65535)
        return -EINVAL;
    *port = (unsigned)v;
    return 0;
}

/* The host part: an IPv6 address when it was in brackets, else an IPv4
 * one, '*' (any) or 'localhost'. */
static int parse_host(const char *host, int v6, unsigned port, struct sockaddr_storage *ss,
                      socklen_t *len)
{
    memset(ss, 0, sizeof *ss);
    if (v6) {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons((uint16_t)port);
        *len = sizeof *sin6;
        return inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1 ? 0 : -EINVAL;
    }
    struct sockaddr_in *sin = (struct sockaddr_in *)ss;
    sin->sin_family = AF_INET;
    sin->sin_port = htons((uint16_t)port);
    *len = sizeof *sin;
    if (strcmp(host, "*") == 0)
        sin->sin_addr.s_addr = htonl(INADDR_ANY);
    else if (strcmp(host, "localhost") == 0)
        sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    else if (inet_pton(AF_INET, host, &sin->sin_addr) != 1)
        return -EINVAL;
    return 0;
}

int addr_parse(const char *text, struct sockaddr_storage *ss, socklen_t *len, char *err,
               size_t errlen)
{
    const char *host, *host_end, *port_text;
    char host_buf[INET6_ADDRSTRLEN + 16];
    unsigned port;
    int v6 = text[0] == '[';

    if (v6) {
        host = text + 1;
        host_end = strchr(host, ']');
        if (!host_end) {
            snprintf(err, errlen, "'%s': missing ']' after the IPv6 address", text);
            return -EINVAL;
        }
        if (host_end[1] != ':') {
            snprintf(err, errlen, "'%s': missing ':PORT' after ']', e.g. [::1]:8080", text);
            return -EINVAL;
        }
        port_text = host_end + 2;
    } else {
        host = text;
        host_end = strrchr(text, ':');
        if (!host_end) {
            snprintf(err, errlen, "'%s': missing ':PORT', e.g. 127.0.0.1:8080", text);
            return -EINVAL;
        }
        if (memchr(text, ':', (size_t)(host_end - text))) {
            snprintf(err, errlen, "'%s': an IPv6 address goes in brackets, e.g. [::1]:8080",
                     text);
            return -EINVAL;
        }
        port_text = host_end + 1;
    }
    if (parse_port(port_text, &port) < 0) {
        snprintf(err, errlen, "'%s': port '%s' is not a number from 0 to 65535", text,
                 port_text);
        return -EINVAL;
    }
    size_t host_len = (size_t)(host_end - host);
    if (host_len < sizeof host_buf) {
        memcpy(host_buf, host, host_len);
        host_buf[host_len] = '\0';
        if (parse_host(host_buf, v6, port, ss, len) == 0)
            return 0;
    }
    snprintf(err, errlen, "'%s': host '%.*s' is not %s", text, (int)host_len, host,
             v6 ? "an IPv6 address" : "an IPv4 address, '*', 'localhost' or [an IPv6 address]");
    return -EINVAL;
}

void addr_format_local(int fd, char *out, size_t outlen)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    char host[INET6_ADDRSTRLEN] = "?";
    if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0) {
        snprintf(out, outlen, "?");
    } else if (ss.ss_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)&ss;
        inet_ntop(AF_INET6, &s6->sin6_addr, host, sizeof(host));
        snprintf(out, outlen, "[%s]:%u", host, ntohs(s6->sin6_port));
    } else {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)&ss;
        inet_ntop(AF_INET, &s4->sin_addr, host, sizeof(host));
        snprintf(out, outlen, "%s:%u", host, ntohs(s4->sin_port));
    }
}
