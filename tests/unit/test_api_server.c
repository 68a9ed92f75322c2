/* Unit tests for vmm/api_server.c: replies, the size limit, and the flush on stop. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "api_server.h"

struct fixture {
	struct api_server server;
	char path[108];
	int answered;      /* eventfd: the handler has its answer */
	unsigned delay_ms; /* how long the handler then takes to return */
};

static void handler(void *opaque, const struct api_request *req, struct api_reply *reply)
{
	struct fixture *f = opaque;
	uint64_t one = 1;
	struct timespec ts = { f->delay_ms / 1000, (long)(f->delay_ms % 1000) * 1000000L };
	char body[256];

	snprintf(body, sizeof(body), "{\"method\":\"%s\",\"url\":\"%s\",\"len\":%zu}", req->method,
		 req->url, req->body_len);
	reply->status = 200;
	reply->body = strdup(body);
	assert_int_equal(write(f->answered, &one, sizeof(one)), sizeof(one));
	nanosleep(&ts, NULL);
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	int fd;

	assert_non_null(f);
	snprintf(f->path, sizeof(f->path), "/tmp/kiln-test-api.%d.sock", (int)getpid());
	unlink(f->path);
	memcpy(addr.sun_path, f->path, strlen(f->path) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
	assert_int_equal(listen(fd, 16), 0);
	f->answered = eventfd(0, EFD_CLOEXEC);
	assert_true(f->answered >= 0);
	assert_int_equal(api_server_start(&f->server, fd, 1024, handler, f, NULL), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	api_server_stop(&f->server);
	unlink(f->path);
	close(f->answered);
	free(f);
	return 0;
}

static int connect_to(const struct fixture *f)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	memcpy(addr.sun_path, f->path, strlen(f->path) + 1);
	assert_int_equal(connect(fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
	return fd;
}

static void send_text(int fd, const char *text)
{
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
}

/* Everything the server writes until it closes the connection or has sent want bytes. */
static size_t read_reply(int fd, char *buf, size_t size, const char *until)
{
	size_t len = 0;

	while (len + 1 < size) {
		ssize_t n = read(fd, buf + len, size - 1 - len);

		if (n <= 0)
			break;
		len += (size_t)n;
		buf[len] = '\0';
		if (until && strstr(buf, until))
			break;
	}
	buf[len] = '\0';
	return len;
}

static void reply_reaches_client(void **state)
{
	struct fixture *f = *state;
	char buf[1024];
	int fd = connect_to(f);

	send_text(fd, "PUT /machine-config HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}");
	read_reply(fd, buf, sizeof(buf), "\"len\":2}");
	assert_non_null(strstr(buf, "HTTP/1.1 200"));
	assert_non_null(strstr(buf, "{\"method\":\"PUT\",\"url\":\"/machine-config\",\"len\":2}"));
	close(fd);
}

static void body_over_limit_refused(void **state)
{
	struct fixture *f = *state;
	char buf[1024];
	int fd = connect_to(f);

	send_text(fd, "PUT /x HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n");
	read_reply(fd, buf, sizeof(buf), NULL);
	assert_non_null(strstr(buf, "HTTP/1.1 400"));
	assert_non_null(strstr(buf, "5000 bytes is larger than the limit of 1024 bytes"));
	close(fd);
}

/* The server is stopped the moment the handler has its answer (as when the request made kiln
 * exit), while the handler still takes 200 ms to return: the client still gets the answer. */
static void stop_flushes_given_reply(void **state)
{
	struct fixture *f = *state;
	char buf[1024];
	uint64_t n;
	int fd = connect_to(f);

	f->delay_ms = 200;
	send_text(fd, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
	assert_int_equal(read(f->answered, &n, sizeof(n)), sizeof(n));
	api_server_stop(&f->server);
	read_reply(fd, buf, sizeof(buf), NULL);
	assert_non_null(strstr(buf, "HTTP/1.1 200"));
	assert_non_null(strstr(buf, "{\"method\":\"GET\",\"url\":\"/\",\"len\":0}"));
	close(fd);
}

/* A connection that sent half a request holds nothing up: stop returns at once. */
static void stop_does_not_wait_for_unfinished_request(void **state)
{
	struct fixture *f = *state;
	struct timespec t0, t1;
	char buf[64];
	int fd = connect_to(f);

	send_text(fd, "PUT /x HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n{\"a\"");
	usleep(50 * 1000);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	api_server_stop(&f->server);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	assert_true((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000 < 500);
	assert_int_equal(read_reply(fd, buf, sizeof(buf), NULL), 0);
	close(fd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(reply_reaches_client, setup, teardown),
		cmocka_unit_test_setup_teardown(body_over_limit_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(stop_flushes_given_reply, setup, teardown),
		cmocka_unit_test_setup_teardown(stop_does_not_wait_for_unfinished_request, setup,
						teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
