/* migration/mig_uri.c: the migration peer's address, unix:PATH or tcp:ADDR:PORT with numeric
 * addresses; everything else refused with a line that names the URI and what is wrong. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <string.h>
#include <sys/un.h>

#include "migrate.h"

static void unix_path_parsed(void **state)
{
	struct mig_uri u;
	char err[256] = "";

	(void)state;
	assert_int_equal(mig_uri_parse(&u, "unix:/run/kiln/mig.sock", err, sizeof(err)), 0);
	assert_int_equal(u.family, AF_UNIX);
	assert_string_equal(((struct sockaddr_un *)&u.addr)->sun_path, "/run/kiln/mig.sock");
	assert_string_equal(u.text, "unix:/run/kiln/mig.sock");
}

static void tcp_ipv4_parsed(void **state)
{
	struct mig_uri u;
	struct sockaddr_in *sin = (struct sockaddr_in *)&u.addr;
	char err[256] = "", addr[32];

	(void)state;
	assert_int_equal(mig_uri_parse(&u, "tcp:10.77.0.2:4444", err, sizeof(err)), 0);
	assert_int_equal(u.family, AF_INET);
	assert_int_equal(ntohs(sin->sin_port), 4444);
	inet_ntop(AF_INET, &sin->sin_addr, addr, sizeof(addr));
	assert_string_equal(addr, "10.77.0.2");
	assert_int_equal(u.addr_len, sizeof(struct sockaddr_in));
}

static void tcp_ipv6_in_brackets_parsed(void **state)
{
	struct mig_uri u;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&u.addr;
	char err[256] = "", addr[64];

	(void)state;
	assert_int_equal(mig_uri_parse(&u, "tcp:[::1]:65535", err, sizeof(err)), 0);
	assert_int_equal(u.family, AF_INET6);
	assert_int_equal(ntohs(sin6->sin6_port), 65535);
	inet_ntop(AF_INET6, &sin6->sin6_addr, addr, sizeof(addr));
	assert_string_equal(addr, "::1");
}

/* Each bad URI is refused, and the message names it and says what is wrong. */
static void bad_uris_refused(void **state)
{
	static const struct {
		const char *uri, *why;
	} bad[] = {
		{ "", "unknown scheme" },
		{ "http://x", "unknown scheme" },
		{ "unix:", "empty or too long" },
		{ "tcp:10.0.0.1", "port" },
		{ "tcp:10.0.0.1:", "port" },
		{ "tcp:10.0.0.1:0", "port" },
		{ "tcp:10.0.0.1:65536", "port" },
		{ "tcp:10.0.0.1:44x", "port" },
		{ "tcp::4444", "no address" },
		{ "tcp:localhost:4444", "numeric" },
		{ "tcp:[::1:4444", "numeric" },
		{ "tcp:300.1.1.1:4444", "numeric" },
	};
	char err[256], longpath[200];
	struct mig_uri u;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		assert_int_equal(mig_uri_parse(&u, bad[i].uri, err, sizeof(err)), -EINVAL);
		if (!strstr(err, bad[i].why) || !strstr(err, bad[i].uri))
			fail_msg("\"%s\": %s", bad[i].uri, err);
	}
	memset(longpath, 'a', sizeof(longpath) - 1);
	memcpy(longpath, "unix:/", 6);
	longpath[sizeof(longpath) - 1] = '\0';
	assert_int_equal(mig_uri_parse(&u, longpath, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "too long"));
	assert_int_equal(mig_uri_parse(&u, NULL, err, sizeof(err)), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(unix_path_parsed),
		cmocka_unit_test(tcp_ipv4_parsed),
		cmocka_unit_test(tcp_ipv6_in_brackets_parsed),
		cmocka_unit_test(bad_uris_refused),
	};

	return cmocka_run_group_tests_name("mig_uri.c", tests, NULL, NULL);
}
