/* The API's transport: HTTP/1.1 on a listening unix socket, served by libmicrohttpd's thread. */
#ifndef KILN_API_SERVER_H
#define KILN_API_SERVER_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

#define API_SERVER_DEFAULT_MAX_PAYLOAD 51200 /* Firecracker's default */
#define API_SERVER_MAX_CONNECTIONS 64
#define API_SERVER_IDLE_TIMEOUT_S 10
#define API_SERVER_FLUSH_MS 1000

struct MHD_Daemon;

/* One complete request. body is NUL-terminated (body_len excludes the NUL). */
struct api_request {
	const char *method;
	const char *url;
	const char *body;
	size_t body_len;
};

/* The handler's answer: status, and a malloc'd JSON text (NULL: no body, as for 204). */
struct api_reply {
	unsigned status;
	char *body;
};

/* Called on the server's thread, one request at a time. */
typedef void (*api_server_fn)(void *opaque, const struct api_request *req,
			      struct api_reply *reply);

/* Run once on the server's thread before it reads its first connection; 0 or -errno. */
typedef int (*api_server_thread_fn)(void);

struct api_server {
	struct MHD_Daemon *daemon;
	api_server_fn fn;
	void *opaque;
	size_t max_payload;
	api_server_thread_fn thread_init; /* NULL: none */
	bool thread_ready;                /* thread_init ran (touched by the server's thread only) */
	pthread_mutex_t lock;
	pthread_cond_t sent;
	unsigned unsent; /* requests given to fn whose replies are not yet written (under lock) */
};

/*
 * Serves listen_fd (a bound, listening socket; the server closes it on stop) on a new thread.
 * Bodies over max_payload bytes get 400 and the connection is closed; at most
 * API_SERVER_MAX_CONNECTIONS connections are served at once (more wait in the listen queue),
 * and a connection idle for API_SERVER_IDLE_TIMEOUT_S is dropped. thread_init, unless NULL, runs
 * on the server's thread (kiln: its seccomp filter) when it accepts its first connection,
 * before reading a byte of it; while it fails, every connection is closed unread. Returns 0 or
 * -errno.
 */
int api_server_start(struct api_server *s, int listen_fd, size_t max_payload, api_server_fn fn,
		     void *opaque, api_server_thread_fn thread_init) __attribute__((warn_unused_result));

/* Stops the thread and closes every connection and the listening socket. Replies already
 * given are written out first, for at most API_SERVER_FLUSH_MS: a request that made kiln exit
 * still gets its answer. */
void api_server_stop(struct api_server *s);

/* A malloc'd {"fault_message": msg} body, or NULL if out of memory. */
char *api_fault_body(const char *msg);

#endif
