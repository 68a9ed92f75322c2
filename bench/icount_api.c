/* icount_api: kiln's API request handling for callgrind's instruction counts (bench/icount.sh),
 * on a VMM that never has a VM (tests/fuzz/stubs.c stands in for vm.c). Not a timing benchmark.
 *
 *   icount_api N         below HTTP: api_check_request, api_routes_handle and the frees, as
 *                        kiln's API thread and event loop do them, minus the hand-over between
 *                        (run with --collect-atstart=no --toggle-collect='icount_*')
 *   icount_api --http N  the same requests through libmicrohttpd (api_server.c) on a unix socket,
 *                        one keep-alive connection (run with collection on and
 *                        --toggle-collect=icount_client_request: the client is not counted)
 *
 * Each figure: a dump named "-" (what came before, discarded), N requests, a dump named
 * "FIGURE N". Below HTTP the figures are PUT /machine-config and GET /, and the floor: jansson
 * alone parsing and freeing the same body. jansson's hash seed is fixed (kiln leaves it random),
 * so that object lookups take the same path every run. Exit 0, or 1 when a reply is not the one
 * expected. */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <jansson.h>
#include <valgrind/callgrind.h>

#include "api.h"
#include "log.h"
#include "vmm.h"

#define WARM 20
#define MACHINE_CONFIG "{\"vcpu_count\": 1, \"mem_size_mib\": 128}"

struct icount_api {
	struct vmm vmm;
	struct api api;
	bool bad;        /* a reply was not the one expected */
};

/* One request below HTTP, as kiln serves it (api.c's on_request and on_call, one thread). */
__attribute__((noinline)) void icount_request(struct icount_api *x, const struct api_request *req,
					      unsigned want)
{
	struct api_call call;

	if (api_check_request(&x->api, req, &call)) {
		api_routes_handle(&x->vmm, &x->api, &call);
		json_decref(call.body);
	}
	x->bad |= call.reply.status != want;
	free(call.reply.body);
}

/* The floor: jansson parsing the body, as api.c asks it to, and freeing it. */
__attribute__((noinline)) void icount_json_floor(struct icount_api *x, const char *body,
						 size_t len)
{
	json_error_t jerr;
	json_t *j = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);

	x->bad |= j == NULL;
	json_decref(j);
}

static void dump(const char *figure, unsigned long n)
{
	char name[96];

	snprintf(name, sizeof(name), "%s %lu", figure, n);
	CALLGRIND_DUMP_STATS_AT(name);
}

static const struct api_request put_req = { .method = "PUT", .url = "/machine-config",
					    .body = MACHINE_CONFIG,
					    .body_len = sizeof(MACHINE_CONFIG) - 1 };
static const struct api_request get_req = { .method = "GET", .url = "/", .body = "" };

static void direct(struct icount_api *x, unsigned long n)
{
	for (unsigned long i = 0; i < WARM; i++) {
		icount_request(x, &put_req, 204);
		icount_request(x, &get_req, 200);
		icount_json_floor(x, put_req.body, put_req.body_len);
	}
	CALLGRIND_DUMP_STATS_AT("-");
	for (unsigned long i = 0; i < n; i++)
		icount_request(x, &put_req, 204);
	dump("api_put_machine_config", n);
	for (unsigned long i = 0; i < n; i++)
		icount_request(x, &get_req, 200);
	dump("api_get_root", n);
	for (unsigned long i = 0; i < n; i++)
		icount_json_floor(x, put_req.body, put_req.body_len);
	dump("json_loadb_machine_config", n);
}

/* --- through libmicrohttpd --- */

/* api_server_fn, on libmicrohttpd's thread: the same handling as below HTTP. */
static void on_http_request(void *opaque, const struct api_request *req, struct api_reply *reply)
{
	struct icount_api *x = opaque;
	struct api_call call;

	if (api_check_request(&x->api, req, &call)) {
		api_routes_handle(&x->vmm, &x->api, &call);
		json_decref(call.body);
	}
	*reply = call.reply;
}

/* Sends one request and reads its whole reply; false unless the status is want. Not counted. */
__attribute__((noinline)) bool icount_client_request(int fd, const char *req, unsigned want)
{
	size_t len = strlen(req), got = 0, need = 0;
	char buf[4096], *end, *cl;
	unsigned status;
	ssize_t r;

	if (send(fd, req, len, MSG_NOSIGNAL) != (ssize_t)len)
		return false;
	for (;;) {
		r = recv(fd, buf + got, sizeof(buf) - 1 - got, 0);
		if (r <= 0)
			return false;
		got += (size_t)r;
		buf[got] = '\0';
		end = strstr(buf, "\r\n\r\n");
		if (!end)
			continue;
		cl = strcasestr(buf, "\r\nContent-Length:");
		need = (size_t)(end - buf) + 4 + (cl && cl < end ? strtoul(cl + 17, NULL, 10) : 0);
		if (got >= need)
			break;
	}
	return got == need && sscanf(buf, "HTTP/1.1 %u", &status) == 1 && status == want;
}

/* Lets the server's thread finish the last reply and go back to waiting, so that a dump cuts
 * no request in two. */
static void settle(void)
{
	usleep(200 * 1000);
}

static int http(struct icount_api *x, unsigned long n)
{
	static const char put[] = "PUT /machine-config HTTP/1.1\r\nHost: localhost\r\n"
				  "Accept: application/json\r\nContent-Type: application/json\r\n"
				  "Content-Length: 38\r\n\r\n" MACHINE_CONFIG;
	static const char get[] = "GET / HTTP/1.1\r\nHost: localhost\r\n"
				  "Accept: application/json\r\n\r\n";
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	socklen_t salen;
	int lfd, fd;

	_Static_assert(sizeof(MACHINE_CONFIG) - 1 == 38, "Content-Length");
	/* An abstract socket: nothing to clean up. */
	salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 +
			    (size_t)snprintf(sa.sun_path + 1, sizeof(sa.sun_path) - 1,
					     "kiln-icount-%d", (int)getpid()));
	lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, salen) < 0 || listen(lfd, 8) < 0 ||
	    api_server_start(&x->api.server, lfd, API_SERVER_DEFAULT_MAX_PAYLOAD, on_http_request,
			     x, NULL) < 0) {
		fprintf(stderr, "icount_api: API socket: %s\n", strerror(errno));
		return 1;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, salen) < 0) {
		fprintf(stderr, "icount_api: connect: %s\n", strerror(errno));
		return 1;
	}
	for (unsigned long i = 0; i < WARM; i++)
		x->bad |= !icount_client_request(fd, put, 204) || !icount_client_request(fd, get, 200);
	settle();
	CALLGRIND_DUMP_STATS_AT("-");
	for (unsigned long i = 0; i < n; i++)
		x->bad |= !icount_client_request(fd, put, 204);
	settle();
	dump("http_put_machine_config", n);
	for (unsigned long i = 0; i < n; i++)
		x->bad |= !icount_client_request(fd, get, 200);
	settle();
	dump("http_get_root", n);
	close(fd);
	api_server_stop(&x->api.server);
	return 0;
}

int main(int argc, char **argv)
{
	static struct icount_api x;
	bool over_http = argc > 1 && !strcmp(argv[1], "--http");
	unsigned long n = argc > 1 + over_http ? strtoul(argv[1 + over_http], NULL, 10) : 200;
	char err[API_SCHEMA_ERR_LEN];
	int ret;

	json_object_seed(1);
	/* kiln's default level; nothing on these paths logs. */
	if (log_setup(NULL, LOG_INFO, false, false) < 0 || vmm_init(&x.vmm, "icount", false) < 0)
		return 1;
	x.api = (struct api){ .vmm = &x.vmm, .call_fd = -1 };
	x.vmm.api = &x.api;
	if (api_schema_load(&x.api.schema, err, sizeof(err)) < 0) {
		fprintf(stderr, "icount_api: api_schema_load: %s\n", err);
		return 1;
	}
	ret = 0;
	if (over_http)
		ret = http(&x, n);
	else
		direct(&x, n);
	api_schema_free(&x.api.schema);
	if (x.bad) {
		fprintf(stderr, "icount_api: a reply was not the one expected\n");
		return 1;
	}
	return ret;
}
