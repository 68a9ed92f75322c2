/* kiln's migration endpoints, on the event loop thread: GET /migration, PUT /migration/start
 * (source), PUT /migration/incoming (destination) and PUT /migration/recover (either). Bodies are checked field by field here;
 * the work is migration/migrate_out.c's and migrate_in.c's. */
#include <errno.h>
#include <string.h>

#include "api.h"
#include "api_schema.h"
#include "json_text.h"
#include "log.h"
#include "migrate.h"
#include "vmm.h"

#define DEFAULT_DOWNTIME_MS 300

/* The body as an object of known fields, or NULL with a 400 in reply. */
static json_t *parse_body(const struct api_request *req, const char *const *fields, size_t n,
			  struct api_reply *reply)
{
	char err[256], desc[JSON_TEXT_DESCRIBE_LEN];
	json_error_t jerr;
	const char *key;
	json_t *body, *v;

	if (!req->body || req->body_len == 0) {
		api_reply_fault(reply, "PUT %s needs a JSON body", req->url);
		return NULL;
	}
	body = json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES, &jerr);
	if (!body) {
		api_reply_fault(reply, "invalid JSON body at line %d, column %d: %s", jerr.line,
				jerr.column, jerr.text);
		return NULL;
	}
	err[0] = '\0';
	if (!json_is_object(body))
		json_text_set_err(err, sizeof(err), "expected an object, got %s",
				  json_text_describe(body, desc, sizeof(desc)));
	json_object_foreach(body, key, v) {
		bool known = false;

		for (size_t i = 0; i < n; i++)
			known |= !strcmp(key, fields[i]);
		if (!err[0] && !known)
			json_text_set_err(err, sizeof(err), "unknown field \"%s\"", key);
	}
	v = json_object_get(body, "uri");
	if (!err[0] && !json_is_string(v))
		json_text_set_err(err, sizeof(err), v ? "uri: expected a string, got %s" :
				  "missing required field \"uri\"%s",
				  v ? json_text_describe(v, desc, sizeof(desc)) : "");
	if (err[0]) {
		json_decref(body);
		api_reply_fault(reply, "%s", err);
		return NULL;
	}
	return body;
}

static void start(struct vmm *m, const struct api_request *req, struct api_reply *reply)
{
	static const char *const fields[] = { "uri", "mode", "max_downtime_ms" };
	json_t *body = parse_body(req, fields, 3, reply), *mode, *down;
	enum mig_mode mm = MIG_MODE_PRECOPY;
	unsigned downtime = DEFAULT_DOWNTIME_MS;
	char err[512];

	if (!body)
		return;
	mode = json_object_get(body, "mode");
	down = json_object_get(body, "max_downtime_ms");
	if (mode && (!json_is_string(mode) || (strcmp(json_string_value(mode), "precopy") &&
					       strcmp(json_string_value(mode), "postcopy")))) {
		api_reply_fault(reply, "mode: expected \"precopy\" or \"postcopy\"");
		goto out;
	}
	if (mode && !strcmp(json_string_value(mode), "postcopy"))
		mm = MIG_MODE_POSTCOPY;
	if (down && (!json_is_integer(down) || json_integer_value(down) < 1 ||
		     json_integer_value(down) > 60000)) {
		api_reply_fault(reply, "max_downtime_ms: expected an integer from 1 to 60000");
		goto out;
	}
	if (down)
		downtime = (unsigned)json_integer_value(down);
	if (migration_start(m, json_string_value(json_object_get(body, "uri")), mm, downtime, err,
			    sizeof(err)) < 0) {
		log_error("PUT /migration/start: %s", err);
		api_reply_fault(reply, "%s", err);
		goto out;
	}
	api_reply_json(reply, 204, NULL);
out:
	json_decref(body);
}

/* network_overrides and vsock_override, checked against Firecracker's definitions (as in PUT
 * /snapshot/load); false with a 400. */
static bool check_overrides(struct vmm *m, json_t *body, struct api_reply *reply)
{
	json_t *nets = json_object_get(body, "network_overrides"), *vs, *o;
	char err[API_SCHEMA_ERR_LEN];
	size_t i;

	if (nets && !json_is_array(nets)) {
		api_reply_fault(reply, "network_overrides: expected an array");
		return false;
	}
	json_array_foreach(nets, i, o) {
		if (api_schema_validate(&m->api->schema, "NetworkOverride", o, err, sizeof(err)) < 0) {
			api_reply_fault(reply, "network_overrides[%zu]: %s", i, err);
			return false;
		}
	}
	vs = json_object_get(body, "vsock_override");
	if (vs && api_schema_validate(&m->api->schema, "VsockOverride", vs, err, sizeof(err)) < 0) {
		api_reply_fault(reply, "vsock_override: %s", err);
		return false;
	}
	return true;
}

static void incoming(struct vmm *m, const struct api_request *req, struct api_reply *reply)
{
	static const char *const fields[] = { "uri", "recover_timeout_ms", "network_overrides",
					      "vsock_override" };
	json_t *body = parse_body(req, fields, 4, reply), *t;
	unsigned timeout = MIG_RECOVER_TIMEOUT_MS;
	char err[512];

	if (!body)
		return;
	if (!check_overrides(m, body, reply)) {
		json_decref(body);
		return;
	}
	t = json_object_get(body, "recover_timeout_ms");
	if (t && (!json_is_integer(t) || json_integer_value(t) < 0 ||
		  json_integer_value(t) > 3600000)) {
		api_reply_fault(reply, "recover_timeout_ms: expected an integer from 0 to 3600000");
		json_decref(body);
		return;
	}
	if (t)
		timeout = (unsigned)json_integer_value(t);
	if (migration_incoming(m, json_string_value(json_object_get(body, "uri")), timeout, body, err,
			       sizeof(err)) < 0) {
		log_error("PUT /migration/incoming: %s", err);
		api_reply_fault(reply, "%s", err);
	} else {
		api_reply_json(reply, 204, NULL);
	}
	json_decref(body);
}

static void recover(struct vmm *m, const struct api_request *req, struct api_reply *reply)
{
	static const char *const fields[] = { "uri" };
	json_t *body = parse_body(req, fields, 1, reply);
	char err[512];

	if (!body)
		return;
	if (migration_recover(m, json_string_value(json_object_get(body, "uri")), err,
			      sizeof(err)) < 0) {
		log_error("PUT /migration/recover: %s", err);
		api_reply_fault(reply, "%s", err);
	} else {
		api_reply_json(reply, 204, NULL);
	}
	json_decref(body);
}

void api_routes_migration(struct vmm *m, const struct api_request *req, struct api_reply *reply)
{
	bool get = !strcmp(req->method, "GET"), put = !strcmp(req->method, "PUT");

	if (get && !strcmp(req->url, "/migration")) {
		json_t *j = migration_status(m);

		if (!j) {
			api_reply_fault(reply, "out of memory");
			reply->status = 500;
			return;
		}
		api_reply_json(reply, 200, j);
	} else if (put && !strcmp(req->url, "/migration/start")) {
		start(m, req, reply);
	} else if (put && !strcmp(req->url, "/migration/incoming")) {
		incoming(m, req, reply);
	} else if (put && !strcmp(req->url, "/migration/recover")) {
		recover(m, req, reply);
	} else {
		api_reply_fault(reply, "Invalid request method and/or path: %s %s.", req->method,
				req->url);
	}
}
