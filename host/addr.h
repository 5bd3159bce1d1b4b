/* Socket addresses the way the config writes them: "HOST:PORT". */
#ifndef IOSERVE_ADDR_H
#define IOSERVE_ADDR_H

#include <stddef.h>
#include <sys/socket.h>

/* Parses "HOST:PORT", "[V6]:PORT" or "*:PORT" (HOST an IPv4 address, '*'
 * or 'localhost'; PORT 0..65535) into a sockaddr.  0, or -EINVAL with a
 * message in err that quotes the text: "'TEXT': what is wrong". */
int addr_parse(const char *text, struct sockaddr_storage *ss, socklen_t *len, char *err,
               size_t errlen);

/* The local address of a bound socket: "127.0.0.1:8080" or "[::1]:8080". */
void addr_format_local(int fd, char *out, size_t outlen);

#endif
