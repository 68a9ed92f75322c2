/* Unit tests for vmm/api_schema.c: bodies generated from the spec, hand-written cases, routing. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "api_schema.h"

#define BOGUS "kiln_bogus"
#define MAX_DEPTH 16
#define PATH_LEN 256
#define LONG_STRING_40 "0123456789012345678901234567890123456789"
#define LONG_STRING LONG_STRING_40 "0123456789"

/* Macros rather than functions, so that a failure reports the caller's line. */
#define assert_valid(s, def, json)                                                   \
	do {                                                                         \
		char err_[API_SCHEMA_ERR_LEN] = "";                                  \
		json_t *v_ = parse(json);                                            \
		int r_ = api_schema_validate((s), (def), v_, err_, sizeof(err_));    \
		if (r_)                                                              \
			print_message("unexpected error: %s\n", err_);               \
		assert_int_equal(r_, 0);                                             \
		json_decref(v_);                                                     \
	} while (0)

#define assert_invalid(s, def, json, msg)                                            \
	do {                                                                         \
		char err_[API_SCHEMA_ERR_LEN] = "";                                  \
		json_t *v_ = parse(json);                                            \
		assert_int_equal(api_schema_validate((s), (def), v_, err_, sizeof(err_)), \
				 -EINVAL);                                           \
		assert_string_equal(err_, (msg));                                    \
		json_decref(v_);                                                     \
	} while (0)

static json_t *parse(const char *json)
{
	json_error_t jerr;
	json_t *v = json_loads(json, JSON_DECODE_ANY, &jerr);

	if (!v)
		print_message("bad test JSON: %s: %s\n", json, jerr.text);
	assert_non_null(v);
	return v;
}

static int schema_setup(void **state)
{
	struct api_schema *s = calloc(1, sizeof(*s));
	char err[API_SCHEMA_ERR_LEN] = "";

	if (!s)
		return -1;
	if (api_schema_load(s, err, sizeof(err))) {
		print_message("api_schema_load: %s\n", err);
		free(s);
		return -1;
	}
	*state = s;
	return 0;
}

static int schema_teardown(void **state)
{
	api_schema_free(*state);
	free(*state);
	return 0;
}

/* ---- Bodies generated from the spec ---- */

/* The schema a $ref chain ends at. */
static const json_t *resolve(const struct api_schema *s, const json_t *schema)
{
	const char *ref;

	while ((ref = json_string_value(json_object_get(schema, "$ref")))) {
		schema = api_schema_definition(s, ref);
		assert_non_null(schema);
	}
	return schema;
}

static const char *schema_type(const json_t *schema)
{
	return json_string_value(json_object_get(schema, "type"));
}

static bool has_type(const json_t *schema, const char *type)
{
	const char *t = schema_type(schema);

	return t && !strcmp(t, type);
}

/* A valid value for schema: required fields only, or every field (arrays get one item). */
static json_t *sample_value(const struct api_schema *s, const json_t *schema, bool full,
			    int depth)
{
	const json_t *enums, *min, *max, *props, *prop, *extra;
	const char *key;
	json_t *obj;

	assert_true(depth < MAX_DEPTH);
	schema = resolve(s, schema);
	enums = json_object_get(schema, "enum");
	min = json_object_get(schema, "minimum");
	max = json_object_get(schema, "maximum");
	if (json_array_size(enums))
		return json_deep_copy(json_array_get(enums, 0));
	if (has_type(schema, "string"))
		return json_string("x");
	if (has_type(schema, "integer"))
		return json_integer(min ? json_integer_value(min) :
				    max && json_integer_value(max) < 1 ? json_integer_value(max) : 1);
	if (has_type(schema, "number"))
		return json_real(min ? json_number_value(min) : 1.5);
	if (has_type(schema, "boolean"))
		return json_true();
	if (has_type(schema, "array")) {
		obj = json_array();
		if (full)
			json_array_append_new(obj, sample_value(s, json_object_get(schema, "items"),
								full, depth + 1));
		return obj;
	}
	obj = json_object();
	props = json_object_get(schema, "properties");
	json_object_foreach((json_t *)props, key, prop) {
		json_t *req = json_object_get(schema, "required");
		bool required = false;
		size_t i;
		json_t *n;

		json_array_foreach(req, i, n)
			required |= !strcmp(json_string_value(n), key);
		if (required || full)
			json_object_set_new(obj, key, sample_value(s, prop, full, depth + 1));
	}
	extra = json_object_get(schema, "additionalProperties");
	if (full && json_is_object(extra))
		json_object_set_new(obj, "extra_key", sample_value(s, extra, full, depth + 1));
	return obj;
}

/* One walk over a generated body: mutates it in place, one change at a time. */
struct walk {
	const struct api_schema *s;
	const char *route;
	const char *def;
	json_t *body;
	unsigned missing, wrong_type, unknown, bad_enum, out_of_range;
};

static void walk_expect(struct walk *w, const char *want, bool prefix_only)
{
	char err[API_SCHEMA_ERR_LEN] = "";
	int r = api_schema_validate(w->s, w->def, w->body, err, sizeof(err));
	bool ok = r == -EINVAL &&
		  (prefix_only ? !strncmp(err, want, strlen(want)) : !strcmp(err, want));

	if (!ok) {
		char *dump = json_dumps(w->body, JSON_COMPACT | JSON_SORT_KEYS);

		print_message("%s (%s): body %s\n  got %d \"%s\"\n  want \"%s\"%s\n", w->route,
			      w->def, dump, r, err, want, prefix_only ? "..." : "");
		free(dump);
		fail();
	}
}

static void walk_expect_valid(struct walk *w)
{
	char err[API_SCHEMA_ERR_LEN] = "";

	if (api_schema_validate(w->s, w->def, w->body, err, sizeof(err))) {
		print_message("%s (%s): %s\n", w->route, w->def, err);
		fail();
	}
}

static const char *type_phrase(const char *type)
{
	static const char *const phrases[][2] = {
		{ "object", "an object" },   { "array", "an array" },   { "string", "a string" },
		{ "integer", "an integer" }, { "number", "a number" }, { "boolean", "a boolean" },
	};

	for (size_t i = 0; i < sizeof(phrases) / sizeof(phrases[0]); i++) {
		if (!strcmp(phrases[i][0], type))
			return phrases[i][1];
	}
	fail_msg("type %s has no phrase", type);
	return NULL;
}

/* Replaces *slot (a field or item) with bad values and checks each message names sub. */
static void walk_slot(struct walk *w, json_t *parent, const char *key, size_t idx,
		      const json_t *schema, const char *sub)
{
	json_t *old = json_incref(key ? json_object_get(parent, key) : json_array_get(parent, idx));
	const char *type = schema_type(schema);
	const json_t *min = json_object_get(schema, "minimum");
	char want[2 * PATH_LEN];
	bool is_string = type && !strcmp(type, "string");

#define PUT(v) (key ? json_object_set_new(parent, key, (v)) : json_array_set_new(parent, idx, (v)))
	if (type) {
		PUT(is_string ? json_integer(12345) : json_string("wrong"));
		snprintf(want, sizeof(want), "%s: expected %s, got %s", sub, type_phrase(type),
			 is_string ? "12345" : "\"wrong\"");
		walk_expect(w, want, false);
		w->wrong_type++;
	}
	if (is_string && json_array_size(json_object_get(schema, "enum"))) {
		PUT(json_string(BOGUS));
		snprintf(want, sizeof(want), "%s: \"%s\" is not one of ", sub, BOGUS);
		walk_expect(w, want, true);
		w->bad_enum++;
	}
	if (type && !strcmp(type, "integer") && json_is_integer(min)) {
		PUT(json_integer(json_integer_value(min) - 1));
		snprintf(want, sizeof(want), "%s: expected an integer ", sub);
		walk_expect(w, want, true);
		w->out_of_range++;
	}
	PUT(old);
#undef PUT
}

static void walk_node(struct walk *w, json_t *node, const json_t *schema, const char *path,
		      int depth);

static void walk_object(struct walk *w, json_t *node, const json_t *schema, const char *path,
			int depth)
{
	const json_t *props = json_object_get(schema, "properties");
	const json_t *extra = json_object_get(schema, "additionalProperties");
	char want[2 * PATH_LEN], sub[PATH_LEN];
	const char *key;
	json_t *n, *v, *tmp;
	size_t i;

	json_array_foreach(json_object_get(schema, "required"), i, n) {
		const char *name = json_string_value(n);

		v = json_incref(json_object_get(node, name));
		assert_non_null(v);
		json_object_del(node, name);
		snprintf(want, sizeof(want), "%s%smissing required field \"%s\"", path,
			 path[0] ? ": " : "", name);
		walk_expect(w, want, false);
		json_object_set_new(node, name, v);
		w->missing++;
	}
	json_object_set_new(node, BOGUS, json_integer(1));
	if (json_is_true(extra)) {
		walk_expect_valid(w);
	} else if (!json_is_object(extra)) {
		snprintf(want, sizeof(want), "%s%sunknown field \"%s\"", path, path[0] ? ": " : "",
			 BOGUS);
		walk_expect(w, want, false);
		w->unknown++;
	}
	json_object_del(node, BOGUS);
	json_object_foreach_safe(node, tmp, key, v) {
		const json_t *prop = json_object_get(props, key);

		if (!prop)
			prop = extra;
		assert_true(json_is_object(prop));
		snprintf(sub, sizeof(sub), "%s%s%s", path, path[0] ? "." : "", key);
		walk_slot(w, node, key, 0, resolve(w->s, prop), sub);
		walk_node(w, json_object_get(node, key), prop, sub, depth + 1);
	}
}

/* Checks every field under node: missing, wrong type, unknown, bad enum, below minimum. */
static void walk_node(struct walk *w, json_t *node, const json_t *schema, const char *path,
		      int depth)
{
	char sub[PATH_LEN];

	assert_true(depth < MAX_DEPTH);
	schema = resolve(w->s, schema);
	if (json_is_object(node) && has_type(schema, "object")) {
		walk_object(w, node, schema, path, depth);
	} else if (json_is_array(node) && json_array_size(node)) {
		const json_t *items = json_object_get(schema, "items");

		snprintf(sub, sizeof(sub), "%s[0]", path);
		walk_slot(w, node, NULL, 0, resolve(w->s, items), sub);
		walk_node(w, json_array_get(node, 0), items, sub, depth + 1);
	}
}

/* For each route with a body: a generated body passes, and each mutation of it fails. */
static void walk_all_routes(const struct api_schema *s, bool full, struct walk *total)
{
	for (size_t i = 0; i < api_schema_nr_routes(s); i++) {
		const struct api_route *r = api_schema_route_at(s, i);
		char name[PATH_LEN];
		struct walk w = { .s = s, .route = name, .def = r->body };

		if (!r->body)
			continue;
		snprintf(name, sizeof(name), "%s %s", r->method, r->path);
		w.body = sample_value(s, api_schema_definition(s, r->body), full, 0);
		walk_expect_valid(&w);
		walk_node(&w, w.body, api_schema_definition(s, r->body), "", 0);
		walk_expect_valid(&w);
		json_decref(w.body);
		w.body = json_array();
		if (has_type(api_schema_definition(s, r->body), "object"))
			walk_expect(&w, "expected an object, got an array", false);
		json_decref(w.body);
		total->missing += w.missing;
		total->wrong_type += w.wrong_type;
		total->unknown += w.unknown;
		total->bad_enum += w.bad_enum;
		total->out_of_range += w.out_of_range;
	}
}

static void api_schema_validate_every_route_minimal_body_mutations_fail(void **state)
{
	struct walk total = { 0 };

	walk_all_routes(*state, false, &total);
	print_message("minimal bodies: %u missing, %u wrong-type, %u unknown, %u enum, %u range\n",
		      total.missing, total.wrong_type, total.unknown, total.bad_enum,
		      total.out_of_range);
	assert_true(total.missing > 20);
	assert_true(total.wrong_type > 20);
	assert_true(total.unknown > 20);
	assert_true(total.bad_enum >= 2);
}

static void api_schema_validate_every_route_full_body_mutations_fail(void **state)
{
	struct walk total = { 0 };

	walk_all_routes(*state, true, &total);
	print_message("full bodies: %u missing, %u wrong-type, %u unknown, %u enum, %u range\n",
		      total.missing, total.wrong_type, total.unknown, total.bad_enum,
		      total.out_of_range);
	assert_true(total.missing > total.unknown);
	assert_true(total.wrong_type > 100);
	assert_true(total.bad_enum > 10);
	assert_true(total.out_of_range > 10);
}

/* ---- The route table ---- */

static void api_schema_load_embedded_has_version_and_routes(void **state)
{
	const struct api_schema *s = *state;

	assert_string_equal(api_schema_version(s), "1.17.0-dev");
	assert_true(api_schema_nr_routes(s) >= 30);
	assert_null(api_schema_route_at(s, api_schema_nr_routes(s)));
	assert_non_null(api_schema_definition(s, "Drive"));
	assert_null(api_schema_definition(s, "NoSuchThing"));
	assert_null(api_schema_definition(s, NULL));
}

static void api_schema_route_at_every_route_is_consistent(void **state)
{
	const struct api_schema *s = *state;

	for (size_t i = 0; i < api_schema_nr_routes(s); i++) {
		const struct api_route *r = api_schema_route_at(s, i);
		char concrete[PATH_LEN], param[API_SCHEMA_PARAM_LEN];
		const char *open = strchr(r->path, '{');

		assert_int_equal(r->index, i);
		assert_int_equal(r->status, strcmp(r->method, "GET") ? 204 : 200);
		if (r->body)
			assert_non_null(api_schema_definition(s, r->body));
		if (open) {
			assert_non_null(r->param);
			assert_int_equal(strlen(r->param), strcspn(open + 1, "}"));
			snprintf(concrete, sizeof(concrete), "%.*sid_7%s", (int)(open - r->path),
				 r->path, strchr(open, '}') + 1);
		} else {
			assert_null(r->param);
			snprintf(concrete, sizeof(concrete), "%s", r->path);
		}
		assert_ptr_equal(api_schema_route(s, r->method, concrete, param, sizeof(param)), r);
		assert_string_equal(param, open ? "id_7" : "");
		assert_true(api_schema_path_known(s, concrete));
	}
}

static void api_schema_route_documented_routes_are_present(void **state)
{
	static const char *const documented[][2] = {
		{ "GET", "/" },
		{ "PUT", "/actions" },
		{ "GET", "/machine-config" },
		{ "PUT", "/machine-config" },
		{ "PATCH", "/machine-config" },
		{ "PUT", "/boot-source" },
		{ "PUT", "/drives/{drive_id}" },
		{ "PATCH", "/drives/{drive_id}" },
		{ "PATCH", "/vm" },
		{ "GET", "/vm/config" },
		{ "GET", "/version" },
		{ "PUT", "/logger" },
		{ "PUT", "/metrics" },
		{ "PUT", "/network-interfaces/{iface_id}" },
		{ "PATCH", "/network-interfaces/{iface_id}" },
		{ "PUT", "/vsock" },
	};
	const struct api_schema *s = *state;

	for (size_t d = 0; d < sizeof(documented) / sizeof(documented[0]); d++) {
		bool found = false;

		for (size_t i = 0; i < api_schema_nr_routes(s); i++) {
			const struct api_route *r = api_schema_route_at(s, i);

			found |= !strcmp(r->method, documented[d][0]) &&
				 !strcmp(r->path, documented[d][1]);
		}
		if (!found)
			fail_msg("%s %s is not in the spec", documented[d][0], documented[d][1]);
	}
}

static void api_schema_route_drive_id_copies_param(void **state)
{
	char param[API_SCHEMA_PARAM_LEN];
	const struct api_route *r =
		api_schema_route(*state, "PUT", "/drives/rootfs", param, sizeof(param));

	assert_non_null(r);
	assert_string_equal(r->path, "/drives/{drive_id}");
	assert_string_equal(r->method, "PUT");
	assert_string_equal(r->param, "drive_id");
	assert_string_equal(r->body, "Drive");
	assert_int_equal(r->status, 204);
	assert_string_equal(param, "rootfs");
	r = api_schema_route(*state, "PATCH", "/drives/rootfs", param, sizeof(param));
	assert_non_null(r);
	assert_string_equal(r->body, "PartialDrive");
}

static void api_schema_route_empty_or_nested_param_no_match(void **state)
{
	const struct api_schema *s = *state;
	char param[API_SCHEMA_PARAM_LEN];

	assert_null(api_schema_route(s, "PUT", "/drives/", param, sizeof(param)));
	assert_string_equal(param, "");
	assert_null(api_schema_route(s, "PUT", "/drives", param, sizeof(param)));
	assert_null(api_schema_route(s, "PUT", "/drives//", param, sizeof(param)));
	assert_null(api_schema_route(s, "PUT", "/drives/a/b", param, sizeof(param)));
	assert_false(api_schema_path_known(s, "/drives/"));
	assert_false(api_schema_path_known(s, "/drives/a/b"));
}

static void api_schema_route_param_too_long_no_match(void **state)
{
	char param[8], path[64];

	assert_non_null(api_schema_route(*state, "PUT", "/drives/1234567", param, sizeof(param)));
	assert_string_equal(param, "1234567");
	assert_null(api_schema_route(*state, "PUT", "/drives/12345678", param, sizeof(param)));
	assert_null(api_schema_route(*state, "PUT", "/drives/x", param, 0));
	assert_non_null(api_schema_route(*state, "PUT", "/drives/x", NULL, 0));
	memset(path, 'a', sizeof(path));
	memcpy(path, "/drives/", 8);
	path[sizeof(path) - 1] = '\0';
	assert_true(api_schema_path_known(*state, path));
}

static void api_schema_route_wrong_method_path_known(void **state)
{
	const struct api_schema *s = *state;
	char param[API_SCHEMA_PARAM_LEN];

	assert_null(api_schema_route(s, "DELETE", "/machine-config", param, sizeof(param)));
	assert_true(api_schema_path_known(s, "/machine-config"));
	assert_null(api_schema_route(s, "get", "/machine-config", param, sizeof(param)));
	assert_null(api_schema_route(s, "GET", "/actions", param, sizeof(param)));
	assert_true(api_schema_path_known(s, "/actions"));
}

static void api_schema_route_unknown_path_not_known(void **state)
{
	const struct api_schema *s = *state;
	char param[API_SCHEMA_PARAM_LEN];

	assert_null(api_schema_route(s, "GET", "/nope", param, sizeof(param)));
	assert_false(api_schema_path_known(s, "/nope"));
	assert_false(api_schema_path_known(s, ""));
	assert_false(api_schema_path_known(s, "machine-config"));
	assert_false(api_schema_path_known(s, "/machine-configs"));
	assert_false(api_schema_path_known(s, NULL));
	assert_null(api_schema_route(s, NULL, "/", param, sizeof(param)));
	assert_null(api_schema_route(s, "GET", NULL, param, sizeof(param)));
}

static void api_schema_route_query_and_trailing_slash_ignored(void **state)
{
	const struct api_schema *s = *state;
	char param[API_SCHEMA_PARAM_LEN];
	const struct api_route *r;

	r = api_schema_route(s, "GET", "/machine-config?pretty=1", param, sizeof(param));
	assert_non_null(r);
	assert_string_equal(r->path, "/machine-config");
	assert_ptr_equal(api_schema_route(s, "GET", "/machine-config/", param, sizeof(param)), r);
	assert_ptr_equal(api_schema_route(s, "GET", "/machine-config/?a", param, sizeof(param)),
			 r);
	assert_null(api_schema_route(s, "GET", "/machine-config//", param, sizeof(param)));
	assert_non_null(api_schema_route(s, "PUT", "/drives/rootfs?x=/y", param, sizeof(param)));
	assert_string_equal(param, "rootfs");
	assert_non_null(api_schema_route(s, "PUT", "/drives/rootfs/", param, sizeof(param)));
	assert_string_equal(param, "rootfs");
	assert_null(api_schema_route(s, "PUT", "/drives/?id=rootfs", param, sizeof(param)));
	r = api_schema_route(s, "GET", "/?x", param, sizeof(param));
	assert_non_null(r);
	assert_string_equal(r->path, "/");
	assert_int_equal(r->status, 200);
	assert_null(r->body);
}

/* ---- Hand-written bodies ---- */

static void api_schema_validate_machine_config_cases_report_field(void **state)
{
	const struct api_schema *s = *state;
	const char *mc = "MachineConfiguration";

	assert_valid(s, mc, "{\"vcpu_count\": 2, \"mem_size_mib\": 256, \"smt\": true}");
	assert_valid(s, mc, "{\"vcpu_count\": 2, \"mem_size_mib\": 256, \"huge_pages\": \"2M\","
			    " \"cpu_template\": null, \"track_dirty_pages\": false}");
	assert_invalid(s, mc, "{\"vcpu_count\": \"two\", \"mem_size_mib\": 256}",
		       "vcpu_count: expected an integer, got \"two\"");
	assert_invalid(s, mc, "{\"vcpu_count\": 2.0, \"mem_size_mib\": 256}",
		       "vcpu_count: expected an integer, got 2.0");
	assert_invalid(s, mc, "{\"vcpu_count\": \"" LONG_STRING "\", \"mem_size_mib\": 256}",
		       "vcpu_count: expected an integer, got \"" LONG_STRING_40 "...\"");
	assert_invalid(s, mc, "{\"vcpu_count\": 0, \"mem_size_mib\": 256}",
		       "vcpu_count: expected an integer from 1 to 32, got 0");
	assert_invalid(s, mc, "{\"vcpu_count\": 33, \"mem_size_mib\": 256}",
		       "vcpu_count: expected an integer from 1 to 32, got 33");
	assert_invalid(s, mc, "{\"vcpu_count\": 2, \"mem_size_mib\": 256, \"huge_pages\": \"1G\"}",
		       "huge_pages: \"1G\" is not one of None, Transparent, 2M");
	assert_invalid(s, mc, "{\"vcpu_count\": 2, \"mem_size_mib\": 256, \"smt\": \"yes\"}",
		       "smt: expected a boolean, got \"yes\"");
	assert_invalid(s, mc, "{\"vcpu_count\": 2, \"mem_size_mib\": 256, \"cpus\": 2}",
		       "unknown field \"cpus\"");
	assert_invalid(s, mc, "{\"vcpu_count\": 2, \"mem_size_mib\": null}",
		       "mem_size_mib: expected an integer, got null");
	assert_invalid(s, mc, "{\"vcpu_count\": 2, \"mem_size_mib\": 256, \"cpu_template\": \"T3\"}",
		       "cpu_template: \"T3\" is not one of C3, T2, T2S, T2CL, T2A, V1N1, None");
	assert_invalid(s, mc, "{\"vcpu_count\": 2}", "missing required field \"mem_size_mib\"");
	assert_invalid(s, mc, "[]", "expected an object, got an array");
}

static void api_schema_validate_boot_source_cases_report_field(void **state)
{
	const struct api_schema *s = *state;

	assert_valid(s, "BootSource", "{\"kernel_image_path\": \"vmlinux\"}");
	assert_valid(s, "BootSource", "{\"kernel_image_path\": \"vmlinux\", \"boot_args\": null,"
				      " \"initrd_path\": \"initrd\"}");
	assert_invalid(s, "BootSource", "{\"boot_args\": \"console=ttyS0\"}",
		       "missing required field \"kernel_image_path\"");
	assert_invalid(s, "BootSource", "{\"kernel_image_path\": null}",
		       "kernel_image_path: expected a string, got null");
	assert_invalid(s, "BootSource", "{\"kernel_image_path\": [\"a\"]}",
		       "kernel_image_path: expected a string, got an array");
	assert_invalid(s, "BootSource", "\"vmlinux\"", "expected an object, got \"vmlinux\"");
}

static void api_schema_validate_drive_rate_limiter_reports_nested_path(void **state)
{
	const struct api_schema *s = *state;
#define DRIVE "{\"drive_id\": \"rootfs\", \"is_root_device\": true, \"rate_limiter\": "

	assert_valid(s, "Drive", DRIVE "{\"bandwidth\": {\"size\": 1000, \"refill_time\": 100},"
				       " \"ops\": {\"size\": 0, \"refill_time\": 0,"
				       " \"one_time_burst\": 10}}}");
	assert_valid(s, "Drive", DRIVE "null}");
	assert_invalid(s, "Drive", DRIVE "{\"bandwidth\": {\"size\": true, \"refill_time\": 1}}}",
		       "rate_limiter.bandwidth.size: expected an integer, got true");
	assert_invalid(s, "Drive", DRIVE "{\"bandwidth\": {\"size\": 1}}}",
		       "rate_limiter.bandwidth: missing required field \"refill_time\"");
	assert_invalid(s, "Drive", DRIVE "{\"ops\": {\"size\": 1, \"refill_time\": 1, \"x\": 1}}}",
		       "rate_limiter.ops: unknown field \"x\"");
	assert_invalid(s, "Drive", DRIVE "{\"ops\": {\"size\": -1, \"refill_time\": 1}}}",
		       "rate_limiter.ops.size: expected an integer of at least 0, got -1");
	assert_invalid(s, "Drive", DRIVE "7}", "rate_limiter: expected an object, got 7");
	assert_invalid(s, "Drive", "{\"drive_id\": \"rootfs\", \"is_root_device\": 1}",
		       "is_root_device: expected a boolean, got 1");
	assert_invalid(s, "Drive", DRIVE "{}, \"io_engine\": \"Uring\"}",
		       "io_engine: \"Uring\" is not one of Sync, Async");
#undef DRIVE
}

static void api_schema_validate_instance_action_enum_checked(void **state)
{
	const struct api_schema *s = *state;

	assert_valid(s, "InstanceActionInfo", "{\"action_type\": \"InstanceStart\"}");
	assert_valid(s, "InstanceActionInfo", "{\"action_type\": \"SendCtrlAltDel\"}");
	assert_valid(s, "InstanceActionInfo", "{\"action_type\": \"FlushMetrics\"}");
	assert_invalid(s, "InstanceActionInfo", "{\"action_type\": \"Reboot\"}",
		       "action_type: \"Reboot\" is not one of FlushMetrics, InstanceStart, "
		       "SendCtrlAltDel");
	assert_invalid(s, "InstanceActionInfo", "{\"action_type\": \"instancestart\"}",
		       "action_type: \"instancestart\" is not one of FlushMetrics, InstanceStart, "
		       "SendCtrlAltDel");
	assert_invalid(s, "InstanceActionInfo", "{\"action_type\": 1}",
		       "action_type: expected a string, got 1");
	assert_invalid(s, "InstanceActionInfo", "{}", "missing required field \"action_type\"");
}

/* The spec writes Off unquoted (a YAML 1.1 boolean) and calls the levels case-insensitive. */
static void api_schema_validate_logger_level_enum_ignores_case(void **state)
{
	const struct api_schema *s = *state;

	assert_valid(s, "Logger", "{}");
	assert_valid(s, "Logger", "{\"level\": \"Off\"}");
	assert_valid(s, "Logger", "{\"level\": \"debug\", \"log_path\": \"/tmp/log\","
				  " \"show_level\": true}");
	assert_invalid(s, "Logger", "{\"level\": \"Verbose\"}",
		       "level: \"Verbose\" is not one of Error, Warning, Info, Debug, Trace, Off");
	assert_invalid(s, "Logger", "{\"level\": false}", "level: expected a string, got false");
	assert_invalid(s, "Logger", "{\"level\": \"Infoo\"}",
		       "level: \"Infoo\" is not one of Error, Warning, Info, Debug, Trace, Off");
}

static void api_schema_validate_array_items_report_index(void **state)
{
	const struct api_schema *s = *state;

	assert_invalid(s, "MmdsConfig", "{\"network_interfaces\": [\"eth0\", 5]}",
		       "network_interfaces[1]: expected a string, got 5");
	assert_invalid(s, "MmdsConfig", "{\"network_interfaces\": \"eth0\"}",
		       "network_interfaces: expected an array, got \"eth0\"");
	assert_invalid(s, "SnapshotLoadParams",
		       "{\"snapshot_path\": \"s\", \"network_overrides\": [{\"iface_id\": \"a\","
		       " \"host_dev_name\": \"t\"}, {}, {\"host_dev_name\": \"t\"}]}",
		       "network_overrides[1]: missing required field \"iface_id\"");
	assert_invalid(s, "CpuConfig",
		       "{\"cpuid_modifiers\": [{\"leaf\": \"0x1\", \"subleaf\": \"0x0\","
		       " \"flags\": 0, \"modifiers\": [{\"register\": \"eax\", \"bitmap\": \"0b1\"},"
		       " {\"register\": \"eex\", \"bitmap\": \"0b1\"}]}]}",
		       "cpuid_modifiers[0].modifiers[1].register: \"eex\" is not one of eax, ebx, "
		       "ecx, edx");
	assert_invalid(s, "CpuConfig", "{\"kvm_capabilities\": [\"1\", null]}",
		       "kvm_capabilities[1]: expected a string, got null");
	assert_valid(s, "CpuConfig", "{\"kvm_capabilities\": [], \"msr_modifiers\": []}");
}

static void api_schema_validate_additional_properties_follow_schema(void **state)
{
	const struct api_schema *s = *state;

	assert_valid(s, "Metrics", "{\"metrics_path\": \"m\", \"properties\": {\"a\": \"b\"}}");
	assert_invalid(s, "Metrics", "{\"metrics_path\": \"m\", \"properties\": {\"a\": 1}}",
		       "properties.a: expected a string, got 1");
	assert_valid(s, "MmdsContentsObject", "{\"latest\": {\"meta-data\": [1, null]}}");
	assert_invalid(s, "MmdsContentsObject", "[1]", "expected an object, got an array");
}

static void api_schema_validate_bad_arguments_fail(void **state)
{
	const struct api_schema *s = *state;
	char err[API_SCHEMA_ERR_LEN] = "";
	json_t *v = parse("{}");

	assert_int_equal(api_schema_validate(s, "NoSuchThing", v, err, sizeof(err)), -ENOENT);
	assert_string_equal(err, "the spec has no definition \"NoSuchThing\"");
	assert_int_equal(api_schema_validate(s, NULL, v, err, sizeof(err)), -ENOENT);
	assert_int_equal(api_schema_validate(s, "Vm", NULL, err, sizeof(err)), -EINVAL);
	assert_int_equal(api_schema_validate(s, "Vm", v, NULL, 0), -EINVAL);
	json_decref(v);
}

static void api_schema_validate_small_err_buffer_truncates(void **state)
{
	char err[8];
	json_t *v = parse("{\"state\": \"Stopped\"}");

	memset(err, 'z', sizeof(err));
	assert_int_equal(api_schema_validate(*state, "Vm", v, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "state: ");
	json_decref(v);
	v = parse("{\"vsock_id\": \"v\", \"guest_cid\": 2, \"uds_path\": \"\\u0001\"}");
	assert_int_equal(api_schema_validate(*state, "Vsock", v, NULL, 0), -EINVAL);
	json_decref(v);
}

static void api_schema_validate_control_chars_in_key_replaced(void **state)
{
	assert_invalid(*state, "Vm", "{\"state\": \"Paused\", \"a\\nb\": 1}",
		       "unknown field \"a?b\"");
}

static void api_schema_free_twice_is_safe(void **state)
{
	struct api_schema s;

	assert_int_equal(api_schema_load(&s, NULL, 0), 0);
	api_schema_free(&s);
	api_schema_free(&s);
	assert_null(s.root);
	assert_int_equal(api_schema_nr_routes(&s), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(api_schema_load_embedded_has_version_and_routes),
		cmocka_unit_test(api_schema_route_at_every_route_is_consistent),
		cmocka_unit_test(api_schema_route_documented_routes_are_present),
		cmocka_unit_test(api_schema_validate_every_route_minimal_body_mutations_fail),
		cmocka_unit_test(api_schema_validate_every_route_full_body_mutations_fail),
		cmocka_unit_test(api_schema_route_drive_id_copies_param),
		cmocka_unit_test(api_schema_route_empty_or_nested_param_no_match),
		cmocka_unit_test(api_schema_route_param_too_long_no_match),
		cmocka_unit_test(api_schema_route_wrong_method_path_known),
		cmocka_unit_test(api_schema_route_unknown_path_not_known),
		cmocka_unit_test(api_schema_route_query_and_trailing_slash_ignored),
		cmocka_unit_test(api_schema_validate_machine_config_cases_report_field),
		cmocka_unit_test(api_schema_validate_boot_source_cases_report_field),
		cmocka_unit_test(api_schema_validate_drive_rate_limiter_reports_nested_path),
		cmocka_unit_test(api_schema_validate_instance_action_enum_checked),
		cmocka_unit_test(api_schema_validate_logger_level_enum_ignores_case),
		cmocka_unit_test(api_schema_validate_array_items_report_index),
		cmocka_unit_test(api_schema_validate_additional_properties_follow_schema),
		cmocka_unit_test(api_schema_validate_bad_arguments_fail),
		cmocka_unit_test(api_schema_validate_small_err_buffer_truncates),
		cmocka_unit_test(api_schema_validate_control_chars_in_key_replaced),
		cmocka_unit_test(api_schema_free_twice_is_safe),
	};

	return cmocka_run_group_tests_name("api_schema.c", tests, schema_setup, schema_teardown);
}
