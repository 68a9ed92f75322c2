/* A migration peer's address: "unix:PATH" or "tcp:ADDR:PORT", numeric addresses only (no name
 * lookups: the seccomp filters allow no DNS). */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "migrate.h"

static int uri_fail(char *err, size_t errlen, const char *uri, const char *why)
{
	snprintf(err, errlen, "uri \"%s\": %s (expected unix:PATH or tcp:ADDR:PORT)", uri, why);
	return -EINVAL;
}

int mig_uri_parse(struct mig_uri *u, const char *uri, char *err, size_t errlen)
{
	*u = (struct mig_uri){ 0 };
	if (!uri || strlen(uri) >= sizeof(u->text))
		return uri_fail(err, errlen, uri ? "(too long)" : "", "missing or too long");
	strcpy(u->text, uri);
	if (!strncmp(uri, "unix:", 5)) {
		struct sockaddr_un *sun = (struct sockaddr_un *)&u->addr;
		size_t n = strlen(uri + 5);

		if (n == 0 || n >= sizeof(sun->sun_path))
			return uri_fail(err, errlen, uri, "the socket path is empty or too long");
		sun->sun_family = AF_UNIX;
		memcpy(sun->sun_path, uri + 5, n + 1);
		u->family = AF_UNIX;
		u->addr_len = (socklen_t)sizeof(*sun);
		return 0;
	}
	if (!strncmp(uri, "tcp:", 4)) {
		const char *host = uri + 4, *colon = strrchr(host, ':');
		char addr[INET6_ADDRSTRLEN + 2], *end;
		unsigned long port;
		size_t hl;

		if (!colon)
			return uri_fail(err, errlen, uri, "no port");
		port = strtoul(colon + 1, &end, 10);
		if (!colon[1] || *end || port == 0 || port > 65535)
			return uri_fail(err, errlen, uri, "the port is not 1-65535");
		hl = (size_t)(colon - host);
		if (hl >= 2 && host[0] == '[' && host[hl - 1] == ']')
			host++, hl -= 2;
		if (hl == 0 || hl >= sizeof(addr))
			return uri_fail(err, errlen, uri, "no address");
		memcpy(addr, host, hl);
		addr[hl] = '\0';
		struct sockaddr_in *sin = (struct sockaddr_in *)&u->addr;
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&u->addr;

		if (inet_pton(AF_INET, addr, &sin->sin_addr) == 1) {
			sin->sin_family = AF_INET;
			sin->sin_port = htons((uint16_t)port);
			u->family = AF_INET;
			u->addr_len = (socklen_t)sizeof(*sin);
			return 0;
		}
		if (inet_pton(AF_INET6, addr, &sin6->sin6_addr) == 1) {
			sin6->sin6_family = AF_INET6;
			sin6->sin6_port = htons((uint16_t)port);
			u->family = AF_INET6;
			u->addr_len = (socklen_t)sizeof(*sin6);
			return 0;
		}
		return uri_fail(err, errlen, uri, "the address is not a numeric IPv4 or [IPv6] address");
	}
	return uri_fail(err, errlen, uri, "unknown scheme");
}
