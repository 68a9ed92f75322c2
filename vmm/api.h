/*
 * The REST API: requests are parsed and checked against Firecracker's spec on the API thread,
 * then carried out one at a time on the event loop thread, which owns the VMM's state.
 */
#ifndef KILN_API_H
#define KILN_API_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "api_schema.h"
#include "api_server.h"

struct vmm;

/* One request on its way from the API thread to the event loop thread. */
struct api_call {
	const struct api_request *kiln; /* one of kiln's own endpoints, or NULL */
	const struct api_route *route;
	char param[API_SCHEMA_PARAM_LEN];
	json_t *body;             /* the parsed, validated body, or NULL */
	struct api_reply reply;
	bool done;
};

struct api {
	struct vmm *vmm;
	struct api_schema schema;
	struct api_server server;
	char *sock_path;
	int call_fd;              /* eventfd: a call waits for the event loop thread */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct api_call *call;    /* the call in flight, if any (the server has one thread) */
	bool closing;
	bool server_running;
};

/*
 * Creates the unix socket at sock_path (refusing a path that exists), starts the API thread on
 * it and hooks the call eventfd into m's event loop. The API thread runs thread_init (unless
 * NULL) before it reads its first request: kiln loads its seccomp filter there. Returns 0 or
 * -errno with one line in err.
 */
int api_open(struct api *a, struct vmm *m, const char *sock_path, size_t max_payload,
	     api_server_thread_fn thread_init, char *err, size_t errlen)
	__attribute__((warn_unused_result));

/* Answers a call still waiting, stops the API thread, removes the socket. */
void api_close(struct api *a);

/*
 * On the API thread: resolves the route and parses and checks the body. Returns true with
 * call ready for api_routes_handle (the caller then owns call->body), or false with the answer
 * (400, or a kiln endpoint's reply) in call->reply.
 */
bool api_check_request(struct api *a, const struct api_request *req, struct api_call *call);

/*
 * Carries out one validated call on the event loop thread (api_routes.c): fills call->reply
 * with the spec's success status and body, or 400 and a fault_message.
 */
void api_routes_handle(struct vmm *m, struct api *a, struct api_call *call);

/*
 * kiln's own /memory/poison, on the event loop thread. GET: 200 with the VM's poison log
 * ({"pages": []} before boot). PUT {"guest_phys_addr": N, "length": N}: after boot, poisons
 * that range on purpose (vmm_poison_inject); 204, or 400 with a fault_message. Other methods:
 * 400.
 */
/* GET /migration, PUT /migration/start and PUT /migration/incoming (vmm/migration_api.c). */
void api_routes_migration(struct vmm *m, const struct api_request *req, struct api_reply *reply);

void api_routes_memory_poison(struct vmm *m, const struct api_request *req,
			      struct api_reply *reply);

/* PUT /snapshot/create (VM paused) and PUT /snapshot/load (no VM yet): vmm/snapshot_api.c. */
void api_snapshot_create(struct vmm *m, struct api *a, struct api_call *c);
void api_snapshot_load(struct vmm *m, struct api *a, struct api_call *c);

struct metrics;

/* Counts a request to route in Firecracker's per-route counters (any thread). */
void api_routes_count(struct metrics *metrics, const struct api_route *r, bool failed);

/* Sets reply to status 400 with {"fault_message": <formatted>}. */
void api_reply_fault(struct api_reply *reply, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Sets reply to status with body's JSON text (NULL: no body); steals the reference. */
void api_reply_json(struct api_reply *reply, unsigned status, json_t *body);

#endif
