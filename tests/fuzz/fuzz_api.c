/*
 * libFuzzer target for the REST API: HTTP through libmicrohttpd (api_server.c), routing and
 * body checks (api.c, api_schema.c) and the routes' effects (api_routes.c, config.c) on a VMM
 * that never has a VM. The first byte of an input picks the mode:
 *   'H'   the rest goes, byte for byte, down one connection to the API server (so it may hold
 *         any number of pipelined requests), and the reply is read back until EOF;
 *   other the rest is requests separated by NUL bytes, each "METHOD PATH\nBODY", given to
 *         api_check_request and api_routes_handle directly: no HTTP, many more runs a second.
 * The configuration is reset before each input, so every input replays on its own.
 * Traps on a reply kiln must never give: a status other than 200, 204, 400 or 500 (500 only
 * for "out of memory"), a 200 or 204 other than the route's, a 400 or 500 without a JSON
 * fault_message, a 200 without a JSON body, a 204 with one. In HTTP mode, also on what comes
 * back on the wire: each reply must be the one the handler made, in order, and a JSON reply
 * the handler did not make (api_server.c's 400 for a body over the limit) must be the last.
 * libmicrohttpd's own error pages (a request it cannot parse) are not kiln's and not checked.
 * KILN_FUZZ_LOG=1 in the environment prints each request, reply and the log on stderr.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <linux/sockios.h>
#include <microhttpd.h>

#include "api.h"
#include "log.h"
#include "vmm.h"
#include "fuzz_fail.h"

/* Smaller than Firecracker's 51200, so that bodies over the limit fit in -max_len=8192. */
#define FUZZ_MAX_PAYLOAD 4096
/* An exchange not over by then is a hang: the server sees every byte and EOF at once. */
#define FUZZ_REPLY_TIMEOUT_MS 3000
/* Silence, with every byte taken by the server: it waits for the rest of a request. */
#define FUZZ_QUIET_MS 1

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int __real_log_setup(const char *path, enum log_level level, bool show_level, bool show_origin);
int __wrap_log_setup(const char *path, enum log_level level, bool show_level, bool show_origin);
int __real_metrics_set_output(struct metrics *m, const char *path, char *err, size_t errlen);
int __wrap_metrics_set_output(struct metrics *m, const char *path, char *err, size_t errlen);

/* One reply the handler made in HTTP mode, to find again on the wire. */
struct fuzz_reply {
	unsigned status;
	bool head; /* HEAD: the reply goes out without its body */
	char *body;
};

struct fuzz {
	struct vmm vmm;
	struct api api;          /* its schema and vmm; api.server is the HTTP daemon */
	pthread_mutex_t lock;    /* the server thread's handler against the fuzzer thread */
	struct sockaddr_un addr; /* the API socket, in the abstract namespace */
	socklen_t addrlen;
	bool log_stderr;         /* KILN_FUZZ_LOG set: replies and the log on stderr, for replays */
	struct fuzz_reply *replies;
	size_t nr_replies, cap_replies;
};

/* libFuzzer's entry points take no context: the harness's one state, set up once. */
static struct fuzz fz;

/*
 * PUT /logger and PUT /metrics open the path they are given, creating the file. A fuzzed path
 * must never create or append to a file, so they get /dev/null instead (-Wl,--wrap: the calls
 * cross from api_routes.c to log.c and from vmm.c to metrics.c).
 */
int __wrap_log_setup(const char *path, enum log_level level, bool show_level, bool show_origin)
{
	(void)path;
	if (fz.log_stderr)
		return __real_log_setup(NULL, LOG_DEBUG, show_level, show_origin);
	return __real_log_setup("/dev/null", level, show_level, show_origin);
}

int __wrap_metrics_set_output(struct metrics *m, const char *path, char *err, size_t errlen)
{
	return __real_metrics_set_output(m, path && *path ? "/dev/null" : path, err, errlen);
}

/*
 * Checks one reply against the API's promises. route_status: the spec's success status when
 * api_check_request let the call through, else 0. what names the request for messages.
 */
static void check_reply(const struct api_reply *r, int route_status, const char *what)
{
	const char *fault;
	json_error_t jerr;
	json_t *body;

	switch (r->status) {
	case 204:
		if (r->body)
			fail("%s: 204 with a body: %s", what, r->body);
		if (route_status && route_status != 204)
			fail("%s: 204, the spec says %d", what, route_status);
		return;
	case 200:
		if (route_status && route_status != 200)
			fail("%s: 200, the spec says %d", what, route_status);
		break;
	case 400:
	case 500:
		break;
	default:
		fail("%s: status %u", what, r->status);
	}
	if (!r->body)
		fail("%s: %u without a body", what, r->status);
	body = json_loads(r->body, JSON_DECODE_ANY, &jerr);
	if (!body)
		fail("%s: %u body is not JSON (%s): %s", what, r->status, jerr.text, r->body);
	if (r->status != 200) {
		fault = json_string_value(json_object_get(body, "fault_message"));
		if (!fault)
			fail("%s: %u body has no string fault_message: %s", what, r->status, r->body);
		if (r->status == 500 && strcmp(fault, "out of memory") != 0)
			fail("%s: 500 not for lack of memory: %s", what, r->body);
	}
	json_decref(body);
}

/* What the API thread and the event loop thread do with req, minus the hand-over between. */
static void serve(const struct api_request *req, struct api_reply *reply)
{
	char what[96];
	struct api_call call;
	int route_status = 0;

	snprintf(what, sizeof(what), "%.20s %.60s", req->method, req->url);
	for (char *q = what; *q; q++) {
		if ((unsigned char)*q < 0x20 || (unsigned char)*q >= 0x7f)
			*q = '?'; /* messages stay one readable line; the input has the bytes */
	}
	if (api_check_request(&fz.api, req, &call)) {
		if (!call.route)
			fail("%s: accepted without a route", what);
		if (!call.route->body != !call.body)
			fail("%s: accepted with%s a body, the route takes %s", what,
			     call.body ? "" : "out", call.route->body ? call.route->body : "none");
		route_status = call.route->status;
		api_routes_handle(&fz.vmm, &fz.api, &call);
		json_decref(call.body);
		call.body = NULL;
	} else if (call.body) {
		fail("%s: refused but left a body", what);
	}
	if (fz.log_stderr)
		fprintf(stderr, "fuzz_api: %s -> %u %s\n", what, call.reply.status,
			call.reply.body ? call.reply.body : "");
	check_reply(&call.reply, route_status, what);
	if (fz.vmm.vm)
		fail("%s: a VM appeared", what);
	*reply = call.reply;
}

static void forget_replies(void)
{
	for (size_t i = 0; i < fz.nr_replies; i++)
		free(fz.replies[i].body);
	fz.nr_replies = 0;
}

/* api_server_fn, on libmicrohttpd's thread: serves the request and notes the reply. */
static void on_http_request(void *opaque, const struct api_request *req, struct api_reply *reply)
{
	struct fuzz_reply *fr;

	(void)opaque;
	pthread_mutex_lock(&fz.lock);
	serve(req, reply);
	if (fz.nr_replies == fz.cap_replies) {
		size_t cap = fz.cap_replies ? 2 * fz.cap_replies : 16;

		fr = realloc(fz.replies, cap * sizeof(*fr));
		if (!fr)
			fail("out of memory");
		fz.replies = fr;
		fz.cap_replies = cap;
	}
	fr = &fz.replies[fz.nr_replies++];
	*fr = (struct fuzz_reply){ .status = reply->status, .head = !strcmp(req->method, "HEAD"),
				   .body = reply->body ? strdup(reply->body) : NULL };
	if (reply->body && !fr->body)
		fail("out of memory");
	pthread_mutex_unlock(&fz.lock);
}

/* Sets the configuration, the metrics and the log back to how LLVMFuzzerInitialize left them. */
static void reset(void)
{
	pthread_mutex_lock(&fz.lock);
	config_free(&fz.vmm.cfg); /* and initialises it again */
	metrics_destroy(&fz.vmm.metrics); /* PUT /metrics takes once only */
	if (metrics_init(&fz.vmm.metrics) < 0)
		fail("metrics_init");
	if (__real_log_setup(NULL, fz.log_stderr ? LOG_DEBUG : LOG_OFF, false, false) < 0)
		fail("log_setup");
	forget_replies();
	pthread_mutex_unlock(&fz.lock);
}

/* --- direct mode --- */

/* One "METHOD PATH\nBODY" record (n bytes, no NUL inside). */
static void direct_request(const char *p, size_t n)
{
	const char *nl = memchr(p, '\n', n);
	size_t line = nl ? (size_t)(nl - p) : n;
	const char *sp = memchr(p, ' ', line);
	size_t body_len = nl ? n - line - 1 : 0;
	struct api_reply reply;
	struct api_request req;
	char *method, *url, *body;

	method = strndup(p, sp ? (size_t)(sp - p) : line);
	url = sp ? strndup(sp + 1, line - (size_t)(sp - p) - 1) : strdup("");
	body = malloc(body_len + 1); /* exactly the body and its NUL, so ASan sees an overread */
	if (!method || !url || !body)
		fail("out of memory");
	if (body_len)
		memcpy(body, nl + 1, body_len);
	body[body_len] = '\0';
	req = (struct api_request){ .method = method, .url = url, .body = body,
				    .body_len = body_len };
	pthread_mutex_lock(&fz.lock);
	serve(&req, &reply);
	pthread_mutex_unlock(&fz.lock);
	free(reply.body);
	free(body);
	free(url);
	free(method);
}

static void direct_requests(const char *p, size_t n)
{
	while (n > 0) {
		const char *end = memchr(p, '\0', n);
		size_t len = end ? (size_t)(end - p) : n;

		direct_request(p, len);
		if (!end)
			break;
		p += len + 1;
		n -= len + 1;
	}
}

/* --- HTTP mode --- */

struct buf {
	char *p;
	size_t len, cap;
};

static void buf_append(struct buf *b, const char *data, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;

		while (cap < b->len + n + 1)
			cap *= 2;
		b->p = realloc(b->p, cap);
		if (!b->p)
			fail("out of memory");
		b->cap = cap;
	}
	memcpy(b->p + b->len, data, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * Sends data on a new connection, half-closes it, and reads everything back until EOF; returns
 * true then. libmicrohttpd does not close on EOF in the middle of a request line or a body: it
 * waits for the idle timeout. So once the server has taken every byte and said nothing for
 * FUZZ_QUIET_MS, the connection is closed from here and false returned: the last request was
 * incomplete (or, on a very slow run, its reply is lost, which check_wire then allows).
 * Either way, returns only once the server has dropped the connection, so that no handler call
 * of this input can come later.
 */
static bool http_exchange(const char *data, size_t len, struct buf *in)
{
	int64_t deadline = now_ms() + FUZZ_REPLY_TIMEOUT_MS;
	const union MHD_DaemonInfo *info;
	bool eof = false;
	size_t sent = 0;
	int fd, unread;

	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&fz.addr, fz.addrlen) < 0)
		fail("connecting to the API socket: %s", strerror(errno));
	if (len == 0)
		shutdown(fd, SHUT_WR);
	while (!eof) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN | (sent < len ? POLLOUT : 0) };
		int64_t left = deadline - now_ms();
		char chunk[4096];
		ssize_t n;
		int ready;

		if (left <= 0)
			fail("no end to the reply after %d ms (%zu of %zu bytes sent, %zu received)",
			     FUZZ_REPLY_TIMEOUT_MS, sent, len, in->len);
		ready = poll(&pfd, 1, sent < len ? (int)left : FUZZ_QUIET_MS);
		/* For a unix socket: bytes sent that the server has not read yet. */
		if (ready == 0 && sent == len && ioctl(fd, SIOCOUTQ, &unread) == 0 && unread == 0)
			break;
		if (sent < len && (pfd.revents & (POLLOUT | POLLERR | POLLHUP))) {
			n = send(fd, data + sent, len - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
			if (n < 0 && errno != EAGAIN && errno != EINTR)
				sent = len; /* the server closed: read what it said */
			else if (n > 0)
				sent += (size_t)n;
			if (sent == len)
				shutdown(fd, SHUT_WR);
		}
		if (pfd.revents & (POLLIN | POLLERR | POLLHUP)) {
			n = recv(fd, chunk, sizeof(chunk), MSG_DONTWAIT);
			if (n > 0)
				buf_append(in, chunk, (size_t)n);
			else if (n == 0 || (errno != EAGAIN && errno != EINTR))
				eof = true; /* ECONNRESET: closed with our bytes unread */
		}
	}
	close(fd);
	for (;;) {
		info = MHD_get_daemon_info(fz.api.server.daemon,
					   MHD_DAEMON_INFO_CURRENT_CONNECTIONS);
		if (!info)
			fail("MHD_get_daemon_info");
		if (info->num_connections == 0)
			break;
		if (now_ms() > deadline)
			fail("the server kept the connection %d ms after it closed",
			     FUZZ_REPLY_TIMEOUT_MS);
		usleep(20);
	}
	return eof;
}

/* One reply parsed off the wire. */
struct wire_reply {
	unsigned status;
	bool json;            /* Content-Type: application/json */
	bool has_length;
	size_t length;        /* Content-Length */
	size_t header_len;    /* through the blank line */
};

/* Parses a status line and headers at p (n bytes); false if they are not all there. */
static bool parse_head(const char *p, size_t n, struct wire_reply *w)
{
	const char *end = memmem(p, n, "\r\n\r\n", 4);
	const char *line = p;

	*w = (struct wire_reply){ 0 };
	if (!end || n < 13 || memcmp(p, "HTTP/1.", 7) != 0 || p[8] != ' ')
		return false;
	if (sscanf(p + 9, "%3u", &w->status) != 1)
		return false;
	w->header_len = (size_t)(end - p) + 4;
	/* Each header starts after a '\n' before the blank line; the text is NUL-terminated. */
	while ((line = memchr(line, '\n', (size_t)(end - line)))) {
		line++;
		if (!strncasecmp(line, "Content-Length:", 15)) {
			w->has_length = true;
			w->length = strtoul(line + 15, NULL, 10);
		} else if (!strncasecmp(line, "Content-Type:", 13)) {
			const char *v = line + 13;

			while (*v == ' ')
				v++;
			w->json = !strncasecmp(v, "application/json", 16);
		}
	}
	return true;
}

/*
 * Matches what came back against the replies the handler made, in order. complete: the server
 * closed the connection itself, so every reply it made must be there.
 */
static void check_wire(const struct buf *in, bool complete)
{
	const char *p = in->p ? in->p : "";
	size_t n = in->len, next = 0;
	bool continued = false;

	while (n > 0) {
		struct wire_reply w;
		size_t body_len;

		if (!parse_head(p, n, &w))
			fail("HTTP: unreadable reply: %.*s", (int)(n < 200 ? n : 200), p);
		p += w.header_len;
		n -= w.header_len;
		continued = w.status >= 100 && w.status < 200;
		if (continued)
			continue; /* 100 Continue */
		if (next < fz.nr_replies) {
			const struct fuzz_reply *fr = &fz.replies[next++];
			size_t want = fr->body ? strlen(fr->body) : 0;

			if (w.status != fr->status)
				fail("HTTP: reply %zu has status %u, the handler gave %u", next,
				     w.status, fr->status);
			body_len = want;
			/*
			 * A reply to HEAD has no body; but libmicrohttpd takes "HEAD\0..." for
			 * another method (it sends the body) while the handler reads "HEAD".
			 */
			if (fr->head && want && (want > n || memcmp(p, fr->body, want) != 0))
				body_len = 0;
			if (body_len > n || (body_len && memcmp(p, fr->body, body_len) != 0) ||
			    (fr->body && !w.json) || (w.has_length && w.length != want))
				fail("HTTP: reply %zu is not the handler's %u %s", next, fr->status,
				     fr->body ? fr->body : "(no body)");
		} else if (!w.json) {
			/*
			 * libmicrohttpd's own error page for a request it could not parse, before
			 * closing. Not kiln's words, and not always well formed: 0.9.75 sends the
			 * head of its 400 for a bad Content-Length twice.
			 */
			if (w.status < 400)
				fail("HTTP: status %u not from the handler", w.status);
			break;
		} else {
			/* api_server.c's 400 for a body over the limit, before closing. */
			body_len = w.has_length ? w.length : n;
			if (n == 0)
				body_len = 0; /* an answer to HEAD: headers only */
			if (body_len > n)
				fail("HTTP: reply cut short: %zu of %zu body bytes", n, body_len);
			if (body_len) {
				struct api_reply r = { .status = w.status, .body = strndup(p, body_len) };

				check_reply(&r, 0, "HTTP: reply not from the handler");
				free(r.body);
			}
			if (body_len != n)
				fail("HTTP: more after the connection's last reply: %.*s",
				     (int)(n - body_len < 200 ? n - body_len : 200), p + body_len);
		}
		p += body_len;
		n -= body_len;
	}
	/*
	 * libmicrohttpd 0.9.75 refuses the reply to a request with "Expect: 100-continue" and no
	 * body when more bytes follow it, and closes after its 100 Continue: not kiln's doing.
	 */
	if (complete && next != fz.nr_replies && !continued)
		fail("HTTP: %zu replies on the wire, the handler made %zu", next, fz.nr_replies);
}

static void http_requests(const char *data, size_t len)
{
	struct buf in = { 0 };
	bool complete;

	complete = http_exchange(data, len, &in);
	if (fz.log_stderr)
		fprintf(stderr, "fuzz_api: on the wire:\n%.*s\n", (int)in.len, in.p ? in.p : "");
	pthread_mutex_lock(&fz.lock);
	check_wire(&in, complete);
	pthread_mutex_unlock(&fz.lock);
	free(in.p);
}

/* --- libFuzzer --- */

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char err[API_SCHEMA_ERR_LEN];
	sigset_t mask;
	int fd, ret;

	(void)argc;
	(void)argv;
	fz.log_stderr = getenv("KILN_FUZZ_LOG") != NULL;
	if (__real_log_setup(NULL, fz.log_stderr ? LOG_DEBUG : LOG_OFF, false, false) < 0)
		fail("log_setup");
	/* vmm_init blocks SIGINT and SIGTERM for its signalfd; libFuzzer needs them delivered. */
	pthread_sigmask(SIG_SETMASK, NULL, &mask);
	if (vmm_init(&fz.vmm, "fuzz", false) < 0)
		fail("vmm_init");
	pthread_sigmask(SIG_SETMASK, &mask, NULL);
	pthread_mutex_init(&fz.lock, NULL);
	fz.api = (struct api){ .vmm = &fz.vmm, .call_fd = -1 };
	fz.vmm.api = &fz.api;
	if (api_schema_load(&fz.api.schema, err, sizeof(err)) < 0)
		fail("api_schema_load: %s", err);

	/* An abstract socket: nothing in the file system to clean up, one name per process. */
	fz.addr.sun_family = AF_UNIX;
	ret = snprintf(fz.addr.sun_path + 1, sizeof(fz.addr.sun_path) - 1, "kiln-fuzz-api-%d",
		       (int)getpid());
	fz.addrlen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)ret);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&fz.addr, fz.addrlen) < 0 || listen(fd, 128) < 0)
		fail("API socket: %s", strerror(errno));
	if (api_server_start(&fz.api.server, fd, FUZZ_MAX_PAYLOAD, on_http_request, NULL, NULL) < 0)
		fail("api_server_start");
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	reset();
	if (data[0] == 'H')
		http_requests((const char *)data + 1, size - 1);
	else
		direct_requests((const char *)data + 1, size - 1);
	return 0;
}
