/* Printing socket addresses the way the config writes them. */
#ifndef IOSERVE_ADDR_H
#define IOSERVE_ADDR_H

#include <stddef.h>

/* The local address of a bound socket: "127.0.0.1:8080" or "[::1]:8080". */
void addr_format_local(int fd, char *out, size_t outlen);

#endif
