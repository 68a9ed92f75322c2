/* The API socket, request checking on the API thread, and the hand-over to the event loop. */
#include "api.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "capabilities.h"
#include "log.h"
#include "vmm.h"

void api_reply_fault(struct api_reply *reply, const char *fmt, ...)
{
	char msg[API_SCHEMA_ERR_LEN + 256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	free(reply->body);
	reply->status = 400;
	reply->body = api_fault_body(msg);
}

void api_reply_json(struct api_reply *reply, unsigned status, json_t *body)
{
	free(reply->body);
	reply->status = status;
	reply->body = NULL;
	if (body) {
		reply->body = json_dumps(body, JSON_COMPACT);
		json_decref(body);
		if (!reply->body) {
			reply->status = 500;
			reply->body = api_fault_body("out of memory");
		}
	}
}

static bool is_kiln_route(const char *path)
{
	return !strcmp(path, "/capabilities") || !strcmp(path, "/memory/poison") ||
	       !strcmp(path, "/migration") || !strncmp(path, "/migration/", 11);
}

/* kiln's own endpoints, outside Firecracker's spec. Served through the API socket they run on
 * the event loop thread (on_request): /capabilities' probe needs what the API thread's seccomp
 * filter refuses, /memory/poison reads the VM. api_check_request answers them on the spot for
 * callers that have no event loop. */
static bool handle_kiln_route(struct vmm *m, const struct api_request *req,
			      struct api_reply *reply)
{
	json_t *caps;

	if (!is_kiln_route(req->url))
		return false;
	if (!strcmp(req->url, "/memory/poison")) {
		api_routes_memory_poison(m, req, reply);
		return true;
	}
	if (strncmp(req->url, "/migration", 10) == 0) {
		api_routes_migration(m, req, reply);
		return true;
	}
	if (strcmp(req->method, "GET") != 0) {
		api_reply_fault(reply, "Invalid request method and/or path: %s %s.", req->method,
				req->url);
		return true;
	}
	caps = capabilities_probe(NULL);
	if (!caps) {
		reply->status = 500;
		reply->body = api_fault_body("out of memory");
		return true;
	}
	api_reply_json(reply, 200, caps);
	return true;
}

/* Parses and checks the body against the route's definition; false with a reply on error. */
static bool parse_body(struct api *a, const struct api_request *req, struct api_call *call)
{
	const struct api_route *r = call->route;
	char err[API_SCHEMA_ERR_LEN];
	json_error_t jerr;

	if (!r->body)
		return true;
	if (req->body_len == 0) {
		api_reply_fault(&call->reply, "%s %s needs a JSON body (%s)", r->method, r->path,
				r->body);
		return false;
	}
	call->body = json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES, &jerr);
	if (!call->body) {
		api_reply_fault(&call->reply, "invalid JSON body at line %d, column %d: %s",
				jerr.line, jerr.column, jerr.text);
		return false;
	}
	/* A PATCH of machine-config is partial: checked once merged, on the loop thread. */
	if (!strcmp(r->method, "PATCH") && !strcmp(r->path, "/machine-config"))
		return true;
	if (api_schema_validate(&a->schema, r->body, call->body, err, sizeof(err)) < 0) {
		api_reply_fault(&call->reply, "%s", err);
		return false;
	}
	return true;
}

bool api_check_request(struct api *a, const struct api_request *req, struct api_call *call)
{
	*call = (struct api_call){ .reply = { .status = 500 } };
	if (handle_kiln_route(a->vmm, req, &call->reply))
		return false;
	call->route = api_schema_route(&a->schema, req->method, req->url, call->param,
				       sizeof(call->param));
	if (!call->route) {
		api_reply_fault(&call->reply, "Invalid request method and/or path: %s %s.",
				req->method, req->url);
		return false;
	}
	if (!parse_body(a, req, call)) {
		json_decref(call->body);
		call->body = NULL;
		api_routes_count(&a->vmm->metrics, call->route, true);
		return false;
	}
	return true;
}

/* Runs on the API thread: checks the request, then waits for the event loop to carry it out. */
static void on_request(void *opaque, const struct api_request *req, struct api_reply *reply)
{
	struct api *a = opaque;
	struct api_call call;
	uint64_t one = 1;

	if (is_kiln_route(req->url)) {
		/* GET /capabilities' probe opens /dev/kvm and userfaultfds, which the API thread's
		 * seccomp filter allows neither; /memory/poison reads and changes the VM, which the
		 * event loop thread owns. */
		call = (struct api_call){ .kiln = req, .reply = { .status = 500 } };
	} else if (!api_check_request(a, req, &call)) {
		*reply = call.reply;
		return;
	}
	pthread_mutex_lock(&a->lock);
	if (a->closing) {
		api_reply_fault(&call.reply, "kiln is shutting down");
		call.done = true;
	} else {
		a->call = &call;
		if (write(a->call_fd, &one, sizeof(one)) < 0)
			log_warn("API: signalling the event loop: %s", strerror(errno));
	}
	while (!call.done)
		pthread_cond_wait(&a->cond, &a->lock);
	pthread_mutex_unlock(&a->lock);
	json_decref(call.body);
	*reply = call.reply;
}

/* Runs on the event loop thread when a call is waiting. */
static void on_call(void *opaque, int fd, uint32_t events)
{
	struct api *a = opaque;
	struct api_call *call;
	uint64_t n;

	(void)events;
	if (read(fd, &n, sizeof(n)) < 0 && errno != EAGAIN)
		log_warn("API: reading the call eventfd: %s", strerror(errno));
	pthread_mutex_lock(&a->lock);
	call = a->call;
	a->call = NULL;
	pthread_mutex_unlock(&a->lock);
	if (!call)
		return;
	if (call->kiln)
		handle_kiln_route(a->vmm, call->kiln, &call->reply);
	else
		api_routes_handle(a->vmm, a, call);
	pthread_mutex_lock(&a->lock);
	call->done = true;
	pthread_cond_broadcast(&a->cond);
	pthread_mutex_unlock(&a->lock);
}

static int open_socket(const char *path, char *err, size_t errlen)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	int fd, ret;

	if (strlen(path) >= sizeof(addr.sun_path)) {
		snprintf(err, errlen, "--api-sock %s: longer than %zu bytes", path,
			 sizeof(addr.sun_path) - 1);
		return -ENAMETOOLONG;
	}
	memcpy(addr.sun_path, path, strlen(path) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		ret = -errno;
		snprintf(err, errlen, "API socket: %s", strerror(errno));
		return ret;
	}
	if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 || listen(fd, 128) < 0) {
		ret = -errno;
		snprintf(err, errlen, "--api-sock %s: %s%s", path, strerror(errno),
			 errno == EADDRINUSE ? " (remove the old socket first)" : "");
		close(fd);
		return ret;
	}
	return fd;
}

int api_open(struct api *a, struct vmm *m, const char *sock_path, size_t max_payload,
	     api_server_thread_fn thread_init, char *err, size_t errlen)
{
	int fd, ret;

	*a = (struct api){ .vmm = m, .call_fd = -1 };
	pthread_mutex_init(&a->lock, NULL);
	pthread_cond_init(&a->cond, NULL);
	ret = api_schema_load(&a->schema, err, errlen);
	if (ret < 0)
		return ret;
	a->call_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (a->call_fd < 0) {
		ret = -errno;
		snprintf(err, errlen, "eventfd: %s", strerror(errno));
		goto err;
	}
	ret = event_loop_add(&m->loop, a->call_fd, EPOLLIN, on_call, a);
	if (ret < 0) {
		snprintf(err, errlen, "event loop: %s", strerror(-ret));
		goto err;
	}
	fd = open_socket(sock_path, err, errlen);
	if (fd < 0) {
		ret = fd;
		goto err;
	}
	a->sock_path = strdup(sock_path);
	ret = api_server_start(&a->server, fd, max_payload, on_request, a, thread_init);
	if (ret < 0 || !a->sock_path) {
		if (ret == 0)
			api_server_stop(&a->server);
		else
			close(fd);
		unlink(sock_path);
		snprintf(err, errlen, "cannot serve the API socket %s", sock_path);
		ret = ret < 0 ? ret : -ENOMEM;
		goto err;
	}
	a->server_running = true;
	return 0;
err:
	api_close(a);
	return ret;
}

void api_close(struct api *a)
{
	pthread_mutex_lock(&a->lock);
	a->closing = true;
	if (a->call) {
		/* The event loop is gone: answer the waiting request here. */
		api_reply_fault(&a->call->reply, "kiln is shutting down");
		a->call->done = true;
		a->call = NULL;
		pthread_cond_broadcast(&a->cond);
	}
	pthread_mutex_unlock(&a->lock);
	if (a->server_running)
		api_server_stop(&a->server);
	a->server_running = false;
	if (a->sock_path)
		unlink(a->sock_path);
	free(a->sock_path);
	a->sock_path = NULL;
	if (a->call_fd >= 0) {
		event_loop_del(&a->vmm->loop, a->call_fd);
		close(a->call_fd);
	}
	a->call_fd = -1;
	api_schema_free(&a->schema);
}
