/* What each API route does, on the event loop thread: Firecracker's semantics over kiln's state. */
#include "api.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "device_config.h"
#include "json_text.h"
#include "log.h"
#include "migrate.h"
#include "poison_log.h"
#include "vmm.h"

#define PAUSE_TIMEOUT_MS 5000

enum when { ANY_TIME, PRE_BOOT, POST_BOOT };

struct route_handler {
	const char *method, *path;
	enum when when;
	void (*fn)(struct vmm *m, struct api *a, struct api_call *c);
};

static bool booted(const struct vmm *m)
{
	return m->vm != NULL;
}

/* Refuses, with Firecracker's messages, a request made at the wrong time; true if refused. */
static bool refuse_when(const struct vmm *m, struct api_call *c, enum when when)
{
	if (when == PRE_BOOT && booted(m)) {
		api_reply_fault(&c->reply, "The requested operation is not supported after "
					   "starting the microVM.");
		return true;
	}
	if (when == POST_BOOT && !booted(m)) {
		api_reply_fault(&c->reply, "The requested operation is not supported before "
					   "starting the microVM.");
		return true;
	}
	return false;
}

static const char *state_name(const struct vmm *m)
{
	if (!m->vm)
		return "Not started";
	return m->vm->state == VM_PAUSED ? "Paused" : "Running";
}

static void ok(struct api_call *c)
{
	api_reply_json(&c->reply, 204, NULL);
}

/* --- GET /, /version, /vm/config --- */

static void get_instance_info(struct vmm *m, struct api *a, struct api_call *c)
{
	(void)a;
	api_reply_json(&c->reply, 200,
		       json_pack("{s:s, s:s, s:s, s:s}", "app_name", "kiln", "id", m->id, "state",
				 state_name(m), "vmm_version", KILN_VERSION));
}

static void get_version(struct vmm *m, struct api *a, struct api_call *c)
{
	(void)m;
	/* The Firecracker API version kiln speaks: what SDKs check before using a feature. */
	api_reply_json(&c->reply, 200, json_pack("{s:s}", "firecracker_version",
						 api_schema_version(&a->schema)));
}

static void get_vm_config(struct vmm *m, struct api *a, struct api_call *c)
{
	(void)a;
	api_reply_json(&c->reply, 200, config_to_json(&m->cfg));
}

/* --- sections kept in the configuration --- */

static void put_boot_source(struct vmm *m, struct api *a, struct api_call *c)
{
	char err[CONFIG_ERR_LEN];

	(void)a;
	if (config_parse_boot_source(&m->cfg.boot_source, c->body, "boot-source", err,
				     sizeof(err)) < 0) {
		api_reply_fault(&c->reply, "%s", err);
		return;
	}
	m->cfg.has_boot_source = true;
	ok(c);
}

static void get_machine_config(struct vmm *m, struct api *a, struct api_call *c)
{
	(void)a;
	api_reply_json(&c->reply, 200, config_machine_config_json(&m->cfg.machine));
}

static void set_machine_config(struct vmm *m, struct api_call *c, json_t *body)
{
	char err[CONFIG_ERR_LEN];

	if (config_parse_machine_config(&m->cfg.machine, body, "machine-config", err,
					sizeof(err)) < 0) {
		api_reply_fault(&c->reply, "%s", err);
		return;
	}
	m->cfg.has_machine_config = true;
	ok(c);
}

static void put_machine_config(struct vmm *m, struct api *a, struct api_call *c)
{
	(void)a;
	set_machine_config(m, c, c->body);
}

/* A PATCH changes the fields it names; the result must be a valid whole. */
static void patch_machine_config(struct vmm *m, struct api *a, struct api_call *c)
{
	char err[API_SCHEMA_ERR_LEN];
	json_t *merged;

	if (!json_is_object(c->body)) {
		api_reply_fault(&c->reply, "machine-config: expected a JSON object");
		return;
	}
	merged = config_machine_config_json(&m->cfg.machine);
	if (!merged || json_object_update(merged, c->body) < 0) {
		json_decref(merged);
		api_reply_fault(&c->reply, "out of memory");
		return;
	}
	if (api_schema_validate(&a->schema, c->route->body, merged, err, sizeof(err)) < 0)
		api_reply_fault(&c->reply, "%s", err);
	else
		set_machine_config(m, c, merged);
	json_decref(merged);
}

/*
 * Puts candidate (a new reference) in the device section *slot if the configuration with it
 * passes config_check_devices (ids, TAP names and MACs unique, one root device, room for it);
 * else the section keeps its old value and the reply is a 400 naming the entry and field.
 */
static void set_device_section(struct vmm *m, struct api_call *c, json_t **slot,
			       json_t *candidate)
{
	char err[CONFIG_ERR_LEN];
	json_t *old = *slot;

	if (!candidate) {
		api_reply_fault(&c->reply, "out of memory");
		return;
	}
	*slot = candidate;
	if (config_check_devices(&m->cfg, err, sizeof(err)) < 0) {
		*slot = old;
		json_decref(candidate);
		api_reply_fault(&c->reply, "%s", err);
		return;
	}
	json_decref(old);
	ok(c);
}

/*
 * PUT /drives/{drive_id} and /network-interfaces/{iface_id}, with a body its parser accepted:
 * the body's id must be the path's; the entry replaces the one with the same id or is appended.
 */
static void put_device_entry(struct vmm *m, struct api_call *c, json_t **list,
			     const char *id_field)
{
	const char *id = json_string_value(json_object_get(c->body, id_field));
	json_t *candidate;
	size_t i;
	json_t *e;

	/* Firecracker's rule for ids: letters, digits and '_'. */
	if (!c->param[0] || strspn(c->param, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
					    "0123456789_") != strlen(c->param)) {
		api_reply_fault(&c->reply, "%s: use letters, digits and '_' only", id_field);
		return;
	}
	if (!id || strcmp(id, c->param) != 0) {
		api_reply_fault(&c->reply, "%s \"%s\" in the body does not match \"%s\" in the path",
				id_field, id ? id : "", c->param);
		return;
	}
	candidate = *list ? json_copy(*list) : json_array(); /* the entries are shared */
	json_array_foreach(candidate, i, e) {
		if (!strcmp(json_string_value(json_object_get(e, id_field)), id))
			break;
	}
	if (candidate && (i < json_array_size(candidate)
				  ? json_array_set(candidate, i, c->body)
				  : json_array_append(candidate, c->body)) < 0) {
		json_decref(candidate);
		candidate = NULL;
	}
	set_device_section(m, c, list, candidate);
}

static void put_drive(struct vmm *m, struct api *a, struct api_call *c)
{
	struct drive_config d = { 0 };
	char err[CONFIG_ERR_LEN];

	(void)a;
	if (config_parse_drive(&d, c->body, "drives", err, sizeof(err)) < 0) {
		api_reply_fault(&c->reply, "%s", err);
		return;
	}
	config_drive_free(&d);
	put_device_entry(m, c, &m->cfg.drives, "drive_id");
}

static void put_network_interface(struct vmm *m, struct api *a, struct api_call *c)
{
	struct net_config n = { 0 };
	char err[CONFIG_ERR_LEN];

	(void)a;
	if (config_parse_net(&n, c->body, "network-interfaces", err, sizeof(err)) < 0) {
		api_reply_fault(&c->reply, "%s", err);
		return;
	}
	config_net_free(&n);
	put_device_entry(m, c, &m->cfg.network_interfaces, "iface_id");
}

/* PUT /vsock and /entropy: set_device_section's config_check_devices parses the body. */
static void put_vsock(struct vmm *m, struct api *a, struct api_call *c)
{
	(void)a;
	set_device_section(m, c, &m->cfg.vsock, json_incref(c->body));
}

static void put_entropy(struct vmm *m, struct api *a, struct api_call *c)
{
	(void)a;
	set_device_section(m, c, &m->cfg.entropy, json_incref(c->body));
}

/* Post-boot device updates (a new backing file, rate limiters): none implemented yet. */
static void patch_device(struct vmm *m, struct api *a, struct api_call *c)
{
	(void)m;
	(void)a;
	api_reply_fault(&c->reply,
			"%s \"%s\": updating a device after boot is not supported by kiln yet",
			strstr(c->route->path, "drives") ? "drive" : "network interface", c->param);
}

static void put_serial(struct vmm *m, struct api *a, struct api_call *c)
{
	char err[CONFIG_ERR_LEN];

	(void)a;
	if (config_parse_serial(&m->cfg.serial, c->body, "serial", err, sizeof(err)) < 0)
		api_reply_fault(&c->reply, "%s", err);
	else
		ok(c);
}

static void put_logger(struct vmm *m, struct api *a, struct api_call *c)
{
	struct logger_config l = { 0 };
	char err[CONFIG_ERR_LEN];
	int ret;

	(void)a;
	if (config_parse_logger(&l, c->body, "logger", err, sizeof(err)) < 0) {
		api_reply_fault(&c->reply, "%s", err);
		return;
	}
	ret = log_setup(l.log_path, l.level, l.show_level, l.show_log_origin);
	if (ret < 0) {
		api_reply_fault(&c->reply, "logger.log_path %s: %s", l.log_path, strerror(-ret));
		free(l.log_path);
		return;
	}
	free(m->cfg.logger.log_path);
	m->cfg.logger = l;
	log_info("logger configured: level %s", config_log_level_name(l.level));
	ok(c);
}

static void put_metrics(struct vmm *m, struct api *a, struct api_call *c)
{
	struct metrics_config mc = { 0 };
	char err[CONFIG_ERR_LEN];

	(void)a;
	if (config_parse_metrics(&mc, c->body, "metrics", err, sizeof(err)) < 0 ||
	    vmm_set_metrics_path(m, mc.metrics_path, err, sizeof(err)) < 0)
		api_reply_fault(&c->reply, "%s", err);
	else
		ok(c);
	free(mc.metrics_path);
}

/* --- actions and VM state --- */

static uint64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static void put_actions(struct vmm *m, struct api *a, struct api_call *c)
{
	const char *action = json_string_value(json_object_get(c->body, "action_type"));
	char err[CONFIG_ERR_LEN];
	int ret;

	(void)a;
	if (!strcmp(action, "InstanceStart")) {
		if (refuse_when(m, c, PRE_BOOT))
			return;
		if (vmm_start_vm(m, err, sizeof(err)) < 0) {
			log_error("InstanceStart: %s", err);
			api_reply_fault(&c->reply, "InstanceStart: %s", err);
			return;
		}
		ok(c);
	} else if (!strcmp(action, "SendCtrlAltDel")) {
		if (refuse_when(m, c, POST_BOOT))
			return;
		ret = vm_send_ctrl_alt_del(m->vm);
		if (ret < 0)
			api_reply_fault(&c->reply, "SendCtrlAltDel: the guest's keyboard buffer is "
						   "full");
		else
			ok(c);
	} else {
		ret = vmm_flush_metrics(m);
		if (ret == -ENODATA)
			api_reply_fault(&c->reply, "FlushMetrics: metrics are not configured (PUT "
						   "/metrics first)");
		else if (ret < 0)
			api_reply_fault(&c->reply, "FlushMetrics: %s", strerror(-ret));
		else
			ok(c);
	}
}

static void patch_vm(struct vmm *m, struct api *a, struct api_call *c)
{
	const char *state = json_string_value(json_object_get(c->body, "state"));
	uint64_t t0 = now_us();
	int ret;

	(void)a;
	if (!strcmp(state, "Paused")) {
		ret = vm_pause(m->vm, PAUSE_TIMEOUT_MS);
		if (ret < 0) {
			api_reply_fault(&c->reply, "cannot pause the microVM: %s",
					ret == -ETIMEDOUT ? "the vCPUs did not stop in time"
							  : strerror(-ret));
			return;
		}
		metrics_set(&m->metrics.latencies_us.vmm_pause_vm, now_us() - t0);
		log_info("microVM paused");
	} else {
		if (migration_holds_vm(m)) {
			api_reply_fault(&c->reply, "the microVM is migrating (GET /migration): it "
					"cannot resume here");
			return;
		}
		vm_resume(m->vm);
		metrics_set(&m->metrics.latencies_us.vmm_resume_vm, now_us() - t0);
		log_info("microVM resumed");
	}
	ok(c);
}

/* --- kiln's own: /memory/poison --- */

/* The body of PUT /memory/poison: {"guest_phys_addr": N, "length": N}; false with a 400. */
static bool parse_poison_body(const char *text, size_t len, uint64_t *gpa, uint64_t *n,
			      struct api_reply *reply)
{
	static const char *const fields[] = { "guest_phys_addr", "length" };
	uint64_t *out[] = { gpa, n };
	char err[API_SCHEMA_ERR_LEN], desc[JSON_TEXT_DESCRIBE_LEN];
	json_error_t jerr;
	const char *key;
	json_t *body, *v;

	if (!text || len == 0) {
		api_reply_fault(reply, "PUT /memory/poison needs a JSON body (guest_phys_addr, "
				       "length)");
		return false;
	}
	body = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!body) {
		api_reply_fault(reply, "invalid JSON body at line %d, column %d: %s", jerr.line,
				jerr.column, jerr.text);
		return false;
	}
	err[0] = '\0';
	if (!json_is_object(body))
		json_text_set_err(err, sizeof(err), "expected an object, got %s",
				  json_text_describe(body, desc, sizeof(desc)));
	json_object_foreach(body, key, v) {
		if (!err[0] && strcmp(key, fields[0]) != 0 && strcmp(key, fields[1]) != 0)
			json_text_set_err(err, sizeof(err), "unknown field \"%s\"", key);
	}
	for (size_t i = 0; i < 2 && !err[0]; i++) {
		v = json_object_get(body, fields[i]);
		if (!v)
			json_text_set_err(err, sizeof(err), "missing required field \"%s\"",
					  fields[i]);
		else if (!json_is_integer(v) || json_integer_value(v) < 0)
			json_text_set_err(err, sizeof(err), "%s: expected an unsigned integer, got %s",
					  fields[i], json_text_describe(v, desc, sizeof(desc)));
		else
			*out[i] = (uint64_t)json_integer_value(v);
	}
	if (!err[0] && *n == 0)
		json_text_set_err(err, sizeof(err), "length: expected more than 0, got 0");
	json_decref(body);
	if (err[0]) {
		api_reply_fault(reply, "%s", err);
		return false;
	}
	return true;
}

void api_routes_memory_poison(struct vmm *m, const struct api_request *req,
			      struct api_reply *reply)
{
	char err[CONFIG_ERR_LEN] = "";
	uint64_t gpa, len;
	json_t *j;
	int ret;

	if (!strcmp(req->method, "GET")) {
		/* Before boot, and for a VM without a log: nothing is poisoned. */
		if (m->vm && m->vm->mem.poison)
			j = poison_log_json(m->vm->mem.poison);
		else
			j = json_pack("{s:[]}", "pages");
		if (!j) {
			api_reply_fault(reply, "out of memory");
			reply->status = 500;
			return;
		}
		api_reply_json(reply, 200, j);
		return;
	}
	if (strcmp(req->method, "PUT") != 0) {
		api_reply_fault(reply, "Invalid request method and/or path: %s %s.", req->method,
				req->url);
		return;
	}
	if (!parse_poison_body(req->body, req->body_len, &gpa, &len, reply))
		return;
	if (!booted(m)) {
		api_reply_fault(reply, "The requested operation is not supported before starting "
				       "the microVM.");
		return;
	}
	ret = vmm_poison_inject(m, gpa, len, err, sizeof(err));
	if (ret < 0) {
		api_reply_fault(reply, "%s", err[0] ? err : strerror(-ret));
		return;
	}
	api_reply_json(reply, 204, NULL);
}

static const struct route_handler handlers[] = {
	{ "GET", "/", ANY_TIME, get_instance_info },
	{ "GET", "/version", ANY_TIME, get_version },
	{ "GET", "/vm/config", ANY_TIME, get_vm_config },
	{ "PUT", "/actions", ANY_TIME, put_actions },
	{ "PATCH", "/vm", POST_BOOT, patch_vm },
	{ "PUT", "/snapshot/create", POST_BOOT, api_snapshot_create },
	{ "PUT", "/snapshot/load", PRE_BOOT, api_snapshot_load },
	{ "PUT", "/boot-source", PRE_BOOT, put_boot_source },
	{ "GET", "/machine-config", ANY_TIME, get_machine_config },
	{ "PUT", "/machine-config", PRE_BOOT, put_machine_config },
	{ "PATCH", "/machine-config", PRE_BOOT, patch_machine_config },
	{ "PUT", "/drives/{drive_id}", PRE_BOOT, put_drive },
	{ "PATCH", "/drives/{drive_id}", POST_BOOT, patch_device },
	{ "PUT", "/network-interfaces/{iface_id}", PRE_BOOT, put_network_interface },
	{ "PATCH", "/network-interfaces/{iface_id}", POST_BOOT, patch_device },
	{ "PUT", "/vsock", PRE_BOOT, put_vsock },
	{ "PUT", "/entropy", PRE_BOOT, put_entropy },
	{ "PUT", "/serial", PRE_BOOT, put_serial },
	{ "PUT", "/logger", ANY_TIME, put_logger },
	{ "PUT", "/metrics", ANY_TIME, put_metrics },
};

/* What a route kiln does not implement would have given, for its 400. */
static const struct {
	const char *prefix, *what;
} unsupported[] = {
	{ "/balloon", "the balloon device is" },
	{ "/cpu-config", "custom CPU templates are" },
	{ "/pmem", "virtio-pmem devices are" },
	{ "/mmds", "the microVM metadata service (MMDS) is" },
	{ "/hotplug", "memory hotplug is" },
};

/* Firecracker's request counters, per route: a count of calls and of failed ones. */
#define M(field) offsetof(struct metrics, field)
static const struct {
	const char *method, *path;
	size_t count, fails; /* offsets in struct metrics; fails 0: not counted */
} counters[] = {
	{ "GET", "/", M(get_api_requests.instance_info_count), 0 },
	{ "GET", "/version", M(get_api_requests.vmm_version_count), 0 },
	{ "GET", "/vm/config", M(get_api_requests.vm_config_count), 0 },
	{ "GET", "/machine-config", M(get_api_requests.machine_cfg_count), 0 },
	{ "GET", "/mmds", M(get_api_requests.mmds_count), 0 },
	{ "GET", "/hotplug/memory", M(get_api_requests.hotplug_memory_count), 0 },
	{ "PUT", "/actions", M(put_api_requests.actions_count), M(put_api_requests.actions_fails) },
	{ "PUT", "/boot-source", M(put_api_requests.boot_source_count),
	  M(put_api_requests.boot_source_fails) },
	{ "PUT", "/drives/{drive_id}", M(put_api_requests.drive_count),
	  M(put_api_requests.drive_fails) },
	{ "PUT", "/logger", M(put_api_requests.logger_count), M(put_api_requests.logger_fails) },
	{ "PUT", "/machine-config", M(put_api_requests.machine_cfg_count),
	  M(put_api_requests.machine_cfg_fails) },
	{ "PUT", "/cpu-config", M(put_api_requests.cpu_cfg_count),
	  M(put_api_requests.cpu_cfg_fails) },
	{ "PUT", "/metrics", M(put_api_requests.metrics_count), M(put_api_requests.metrics_fails) },
	{ "PUT", "/network-interfaces/{iface_id}", M(put_api_requests.network_count),
	  M(put_api_requests.network_fails) },
	{ "PUT", "/mmds", M(put_api_requests.mmds_count), M(put_api_requests.mmds_fails) },
	{ "PUT", "/vsock", M(put_api_requests.vsock_count), M(put_api_requests.vsock_fails) },
	{ "PUT", "/pmem/{id}", M(put_api_requests.pmem_count), M(put_api_requests.pmem_fails) },
	{ "PUT", "/serial", M(put_api_requests.serial_count), M(put_api_requests.serial_fails) },
	{ "PUT", "/hotplug/memory", M(put_api_requests.hotplug_memory_count),
	  M(put_api_requests.hotplug_memory_fails) },
	{ "PATCH", "/drives/{drive_id}", M(patch_api_requests.drive_count),
	  M(patch_api_requests.drive_fails) },
	{ "PATCH", "/network-interfaces/{iface_id}", M(patch_api_requests.network_count),
	  M(patch_api_requests.network_fails) },
	{ "PATCH", "/machine-config", M(patch_api_requests.machine_cfg_count),
	  M(patch_api_requests.machine_cfg_fails) },
	{ "PATCH", "/mmds", M(patch_api_requests.mmds_count), M(patch_api_requests.mmds_fails) },
	{ "PATCH", "/hotplug/memory", M(patch_api_requests.hotplug_memory_count),
	  M(patch_api_requests.hotplug_memory_fails) },
};
#undef M

void api_routes_count(struct metrics *metrics, const struct api_route *r, bool failed)
{
	char *base = (char *)metrics;

	for (size_t i = 0; i < sizeof(counters) / sizeof(counters[0]); i++) {
		if (strcmp(counters[i].method, r->method) != 0 || strcmp(counters[i].path, r->path))
			continue;
		metrics_inc((_Atomic uint64_t *)(base + counters[i].count));
		if (failed && counters[i].fails)
			metrics_inc((_Atomic uint64_t *)(base + counters[i].fails));
		return;
	}
}

static void dispatch(struct vmm *m, struct api *a, struct api_call *c)
{
	const struct api_route *r = c->route;

	for (size_t i = 0; i < sizeof(handlers) / sizeof(handlers[0]); i++) {
		const struct route_handler *h = &handlers[i];

		if (strcmp(h->method, r->method) != 0 || strcmp(h->path, r->path) != 0)
			continue;
		if (!refuse_when(m, c, h->when))
			h->fn(m, a, c);
		return;
	}
	for (size_t i = 0; i < sizeof(unsupported) / sizeof(unsupported[0]); i++) {
		if (!strncmp(r->path, unsupported[i].prefix, strlen(unsupported[i].prefix))) {
			api_reply_fault(&c->reply, "%s %s: %s not supported by kiln yet", r->method,
					r->path, unsupported[i].what);
			return;
		}
	}
	api_reply_fault(&c->reply, "%s %s is not supported by kiln yet", r->method, r->path);
}

void api_routes_handle(struct vmm *m, struct api *a, struct api_call *c)
{
	dispatch(m, a, c);
	api_routes_count(&m->metrics, c->route, c->reply.status >= 400);
}
