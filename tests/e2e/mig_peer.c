/* A hostile or foreign migration source for the end-to-end tests: connects to a kiln waiting
 * with --migrate-in or PUT /migration/incoming and sends what a real source would not, then
 * prints the destination's answer.
 *   mig_peer SOCKET version N   HELLO claiming protocol version N
 *   mig_peer SOCKET checksum    a good HELLO, then a CONFIG whose checksum is wrong
 *   mig_peer SOCKET config      a good HELLO, then a CONFIG whose JSON is not a configuration
 *   mig_peer SOCKET state       HELLO, a good CONFIG (CONFIG_JSON in the environment), then a
 *                               STATE that is no state image
 * Prints "answer TYPE: TEXT" for each frame received until the destination closes, and
 * "closed"; exits 0 when it closed, 1 otherwise. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "le.h"
#include "mig_wire.h"

static uint8_t frame[1 << 16];

static void send_frame(int fd, uint32_t type, const void *payload, size_t len, bool corrupt)
{
	size_t n = mig_frame_put(frame, type, payload, len);

	if (corrupt)
		frame[n - 1] ^= 1;
	if (write(fd, frame, n) != (ssize_t)n) {
		perror("mig_peer: write");
		exit(1);
	}
}

static void send_hello(int fd, uint32_t version)
{
	uint8_t hello[MIG_HELLO_LEN];

	mig_hello_encode(hello, MIG_ROLE_SOURCE);
	put_le(hello + 8, version, 4);
	send_frame(fd, MIG_HELLO, hello, sizeof(hello), false);
}

/* Prints every frame until the peer closes; 0 when it did. */
static int answers(int fd)
{
	static uint8_t buf[1 << 20];
	size_t len = 0;

	for (;;) {
		struct mig_frame f;
		char err[256], text[MIG_MAX_ERROR + 1];
		long n = mig_frame_parse(buf, len, &f, NULL, err, sizeof(err));
		ssize_t r;

		if (n < 0) {
			printf("bad frame: %s\n", err);
			return 1;
		}
		if (n > 0) {
			if (f.type == MIG_ERROR)
				mig_error_text(f.payload, f.len, text, sizeof(text));
			else
				snprintf(text, sizeof(text), "%zu bytes", f.len);
			printf("answer %s: %s\n", mig_type_name(f.type), text);
			memmove(buf, buf + n, len - (size_t)n);
			len -= (size_t)n;
			continue;
		}
		r = read(fd, buf + len, sizeof(buf) - len);
		if (r == 0 || (r < 0 && errno == ECONNRESET)) {
			printf("closed\n");
			return 0;
		}
		if (r < 0) {
			printf("read: %s\n", strerror(errno));
			return 1;
		}
		len += (size_t)r;
	}
}

int main(int argc, char **argv)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	struct timeval tv = { .tv_sec = 10 };
	const char *json = getenv("CONFIG_JSON");
	uint8_t payload[4096];
	int fd;

	if (argc < 3 || strlen(argv[1]) >= sizeof(a.sun_path)) {
		fprintf(stderr, "usage: mig_peer SOCKET version N | checksum | config | state\n");
		return 2;
	}
	strcpy(a.sun_path, argv[1]);
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		perror("mig_peer: connect");
		return 1;
	}
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (!strcmp(argv[2], "version") && argc == 4) {
		send_hello(fd, (uint32_t)strtoul(argv[3], NULL, 10));
	} else if (!strcmp(argv[2], "checksum") || !strcmp(argv[2], "config")) {
		const char *bad = "{\"machine-config\": {\"vcpu_count\": 0}}";

		send_hello(fd, MIG_VERSION);
		send_frame(fd, MIG_CONFIG, payload,
			   mig_config_encode(payload, 128u << 20, 4096, bad, strlen(bad)),
			   !strcmp(argv[2], "checksum"));
	} else if (!strcmp(argv[2], "state") && json && strlen(json) < sizeof(payload) - 16) {
		send_hello(fd, MIG_VERSION);
		send_frame(fd, MIG_CONFIG, payload,
			   mig_config_encode(payload, 64u << 20, 4096, json, strlen(json)), false);
		send_frame(fd, MIG_STATE, "not a state image", 17, false);
	} else {
		fprintf(stderr, "mig_peer: unknown mode %s\n", argv[2]);
		return 2;
	}
	return answers(fd);
}
