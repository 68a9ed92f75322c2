/* HTTP on the API socket with libmicrohttpd: body collection, the size limit, replies. */
#include "api_server.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <microhttpd.h>

#include "log.h"

/* What one connection's current request has gathered so far. */
struct request_body {
	char *buf;
	size_t len, cap;
	bool too_large;
	bool answered; /* passed to fn: counted in the server's unsent until completed */
	uint64_t seen; /* every body byte received, kept or not */
};

char *api_fault_body(const char *msg)
{
	json_t *o = json_pack("{s:s}", "fault_message", msg);
	char *text;

	if (!o) {
		/* The message quotes input that is not UTF-8: keep its ASCII, '?' for the rest. */
		char *ascii = strdup(msg);

		if (!ascii)
			return NULL;
		for (char *p = ascii; *p; p++)
			if ((unsigned char)*p >= 0x80)
				*p = '?';
		o = json_pack("{s:s}", "fault_message", ascii);
		free(ascii);
		if (!o)
			return NULL;
	}
	text = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	return text;
}

static enum MHD_Result send_reply(struct MHD_Connection *c, unsigned status, char *body,
				  bool close_after)
{
	struct MHD_Response *r;
	enum MHD_Result ret;

	if (body)
		r = MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
	else
		r = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
	if (!r) {
		free(body);
		return MHD_NO;
	}
	if (body)
		MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
	if (close_after)
		MHD_add_response_header(r, MHD_HTTP_HEADER_CONNECTION, "close");
	ret = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result send_too_large(struct MHD_Connection *c, const struct api_server *s,
				      uint64_t size)
{
	char msg[160];

	snprintf(msg, sizeof(msg),
		 "request body of %" PRIu64 " bytes is larger than the limit of %zu bytes "
		 "(--http-api-max-payload-size)",
		 size, s->max_payload);
	log_warn("API: %s", msg);
	return send_reply(c, 400, api_fault_body(msg), true);
}

static int append(struct request_body *b, const char *data, size_t n, size_t limit)
{
	b->seen += n;
	if (b->too_large || b->len + n > limit) {
		b->too_large = true;
		return 0;
	}
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 1024;
		char *p;

		while (cap < b->len + n + 1)
			cap *= 2;
		p = realloc(b->buf, cap);
		if (!p)
			return -ENOMEM;
		b->buf = p;
		b->cap = cap;
	}
	memcpy(b->buf + b->len, data, n);
	b->len += n;
	b->buf[b->len] = '\0';
	return 0;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
				  const char *method, const char *version, const char *upload_data,
				  size_t *upload_data_size, void **con_cls)
{
	struct api_server *s = cls;
	struct request_body *b = *con_cls;
	struct api_request req;
	struct api_reply reply = { 0 };

	(void)version;
	if (!b) {
		const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
							     MHD_HTTP_HEADER_CONTENT_LENGTH);

		b = calloc(1, sizeof(*b));
		if (!b)
			return MHD_NO;
		*con_cls = b;
		/* A declared length over the limit is refused before a byte of the body is read. */
		if (cl) {
			char *end;
			unsigned long long n;

			errno = 0;
			n = strtoull(cl, &end, 10);
			if (errno == 0 && *end == '\0' && n > s->max_payload)
				return send_too_large(c, s, n);
		}
		return MHD_YES;
	}
	if (*upload_data_size > 0) {
		if (append(b, upload_data, *upload_data_size, s->max_payload) < 0)
			return MHD_NO;
		*upload_data_size = 0;
		return MHD_YES;
	}
	if (b->too_large)
		return send_too_large(c, s, b->seen);

	req = (struct api_request){ .method = method, .url = url,
				    .body = b->buf ? b->buf : "", .body_len = b->len };
	/* Counted from before fn runs: the handler may make kiln exit right after answering. */
	pthread_mutex_lock(&s->lock);
	s->unsent++;
	pthread_mutex_unlock(&s->lock);
	b->answered = true;
	s->fn(s->opaque, &req, &reply);
	return send_reply(c, reply.status, reply.body, false);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
			 enum MHD_RequestTerminationCode toe)
{
	struct api_server *s = cls;
	struct request_body *b = *con_cls;

	(void)c;
	if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK)
		log_debug("API: request ended early (libmicrohttpd code %d)", (int)toe);
	if (b && b->answered) {
		pthread_mutex_lock(&s->lock);
		s->unsent--;
		pthread_cond_broadcast(&s->sent);
		pthread_mutex_unlock(&s->lock);
	}
	if (b) {
		free(b->buf);
		free(b);
	}
	*con_cls = NULL;
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
	char line[256];
	size_t n;

	(void)cls;
	vsnprintf(line, sizeof(line), fmt, ap);
	n = strlen(line);
	while (n > 0 && line[n - 1] == '\n')
		line[--n] = '\0';
	log_debug("API: libmicrohttpd: %s", line);
}

/*
 * libmicrohttpd's accept policy, called on its thread for each new connection before anything
 * is read from it: the first one runs thread_init there (libmicrohttpd creates the thread, so
 * this is kiln's first chance to run code on it).
 */
static enum MHD_Result on_accept(void *cls, const struct sockaddr *addr, socklen_t addrlen)
{
	struct api_server *s = cls;
	int ret;

	(void)addr;
	(void)addrlen;
	if (!s->thread_init || s->thread_ready)
		return MHD_YES;
	ret = s->thread_init();
	if (ret < 0) {
		log_error("API: setting up the server's thread: %s; connection refused",
			  strerror(-ret));
		return MHD_NO;
	}
	s->thread_ready = true;
	return MHD_YES;
}

int api_server_start(struct api_server *s, int listen_fd, size_t max_payload, api_server_fn fn,
		     void *opaque, api_server_thread_fn thread_init)
{
	pthread_condattr_t attr;

	*s = (struct api_server){ .fn = fn, .opaque = opaque, .max_payload = max_payload,
				  .thread_init = thread_init };
	pthread_mutex_init(&s->lock, NULL);
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&s->sent, &attr);
	pthread_condattr_destroy(&attr);
	s->daemon = MHD_start_daemon(
		MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ERROR_LOG, 0, on_accept, s,
		on_request, s, MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, s, MHD_OPTION_LISTEN_SOCKET,
		listen_fd, MHD_OPTION_CONNECTION_LIMIT, (unsigned)API_SERVER_MAX_CONNECTIONS,
		MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)API_SERVER_IDLE_TIMEOUT_S,
		MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(64 * 1024), MHD_OPTION_NOTIFY_COMPLETED,
		on_completed, s, MHD_OPTION_END);
	if (!s->daemon) {
		log_error("API: libmicrohttpd could not start on the socket");
		return -EIO;
	}
	return 0;
}

void api_server_stop(struct api_server *s)
{
	struct timespec end;

	if (!s->daemon)
		return;
	clock_gettime(CLOCK_MONOTONIC, &end);
	end.tv_sec += API_SERVER_FLUSH_MS / 1000;
	end.tv_nsec += (API_SERVER_FLUSH_MS % 1000) * 1000000L;
	if (end.tv_nsec >= 1000000000L)
		end.tv_sec++, end.tv_nsec -= 1000000000L;
	pthread_mutex_lock(&s->lock);
	while (s->unsent > 0 && pthread_cond_timedwait(&s->sent, &s->lock, &end) != ETIMEDOUT)
		;
	if (s->unsent > 0)
		log_warn("API: %u repl%s not written out before the server stopped", s->unsent,
			 s->unsent == 1 ? "y was" : "ies were");
	pthread_mutex_unlock(&s->lock);
	MHD_stop_daemon(s->daemon); /* joins the thread, closes connections and the socket */
	s->daemon = NULL;
	pthread_cond_destroy(&s->sent);
	pthread_mutex_destroy(&s->lock);
}
