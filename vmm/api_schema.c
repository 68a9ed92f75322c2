/* Loads the embedded Firecracker API spec, validates request bodies against it, routes paths. */
#include "api_schema.h"
#include "json_text.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define DESCRIBE_LEN JSON_TEXT_DESCRIBE_LEN
#define PATH_LEN 256
#define ENUM_LIST_LEN 160
/* Deeper than any chain of $ref/items/properties in the spec; stops a $ref cycle. */
#define MAX_DEPTH 32

/* One validation: the schema it runs against and where its message goes. */
struct check {
	const struct api_schema *s;
	char *err;
	size_t errlen;
};

/* JSON types of the spec, the jansson types each accepts, and how messages name them. */
static const struct {
	const char *name;
	const char *phrase;
	unsigned types;
} json_types[] = {
	{ "object", "an object", 1u << JSON_OBJECT },
	{ "array", "an array", 1u << JSON_ARRAY },
	{ "string", "a string", 1u << JSON_STRING },
	{ "integer", "an integer", 1u << JSON_INTEGER },
	{ "number", "a number", 1u << JSON_INTEGER | 1u << JSON_REAL },
	{ "boolean", "a boolean", 1u << JSON_TRUE | 1u << JSON_FALSE },
};

/* Reports a problem at path (the body itself when empty) as "<path>: <message>"; -EINVAL. */
static int __attribute__((format(printf, 3, 4)))
check_err(const struct check *c, const char *path, const char *fmt, ...)
{
	char msg[API_SCHEMA_ERR_LEN];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	json_text_set_err(c->err, c->errlen, "%s%s%s", path, path[0] ? ": " : "", msg);
	return -EINVAL;
}

static const char *schema_string(const json_t *schema, const char *key)
{
	return json_string_value(json_object_get(schema, key));
}

static int validate_value(const struct check *c, const json_t *schema, json_t *value,
			  const char *path, int depth);

/* Checks value's JSON type against the schema's "type"; no type accepts anything. */
static int check_type(const struct check *c, const char *type, const json_t *value,
		      const char *path)
{
	char desc[DESCRIBE_LEN];

	for (size_t i = 0; i < sizeof(json_types) / sizeof(json_types[0]); i++) {
		if (strcmp(json_types[i].name, type))
			continue;
		if (json_types[i].types & 1u << json_typeof(value))
			return 0;
		return check_err(c, path, "expected %s, got %s", json_types[i].phrase,
				 json_text_describe(value, desc, sizeof(desc)));
	}
	return check_err(c, path, "the spec's type \"%s\" is not supported", type);
}

static bool enum_value_matches(const json_t *want, const json_t *value, bool nocase)
{
	if (nocase && json_is_string(want) && json_is_string(value))
		return json_string_length(want) == json_string_length(value) &&
		       !strcasecmp(json_string_value(want), json_string_value(value));
	return json_equal((json_t *)want, (json_t *)value);
}

/* Checks value against the schema's "enum" list, naming the allowed values on failure. */
static int check_enum(const struct check *c, const json_t *schema, const json_t *value,
		      const char *path)
{
	const json_t *list = json_object_get(schema, "enum");
	bool nocase = json_is_true(json_object_get(schema, "x-enum-nocase"));
	char desc[DESCRIBE_LEN], allowed[ENUM_LIST_LEN] = "";
	size_t i, used = 0;
	json_t *want;

	if (!json_is_array(list))
		return 0;
	json_array_foreach(list, i, want) {
		if (enum_value_matches(want, value, nocase))
			return 0;
	}
	json_array_foreach(list, i, want) {
		const char *name = json_is_string(want) ? json_string_value(want) :
							  json_text_describe(want, desc, sizeof(desc));
		int n = snprintf(allowed + used, sizeof(allowed) - used, "%s%s", i ? ", " : "",
				 name);

		if (n < 0 || (size_t)n >= sizeof(allowed) - used)
			break;
		used += (size_t)n;
	}
	return check_err(c, path, "%s is not one of %s", json_text_describe(value, desc, sizeof(desc)),
			 allowed);
}

/* Whether value is below (sign < 0) or above (sign > 0) the bound; integers compare exactly. */
static bool out_of_bound(const json_t *value, const json_t *bound, int sign)
{
	int cmp;

	if (json_is_integer(value) && json_is_integer(bound))
		cmp = (json_integer_value(value) > json_integer_value(bound)) -
		      (json_integer_value(value) < json_integer_value(bound));
	else
		cmp = (json_number_value(value) > json_number_value(bound)) -
		      (json_number_value(value) < json_number_value(bound));
	return cmp == sign;
}

/* Checks a number against the schema's "minimum" and "maximum", both inclusive. */
static int check_bounds(const struct check *c, const json_t *schema, const char *phrase,
			const json_t *value, const char *path)
{
	const json_t *min = json_object_get(schema, "minimum");
	const json_t *max = json_object_get(schema, "maximum");
	char d_min[DESCRIBE_LEN], d_max[DESCRIBE_LEN], d_val[DESCRIBE_LEN];

	min = json_is_number(min) ? min : NULL;
	max = json_is_number(max) ? max : NULL;
	if (!(min && out_of_bound(value, min, -1)) && !(max && out_of_bound(value, max, 1)))
		return 0;
	if (min)
		json_text_describe(min, d_min, sizeof(d_min));
	if (max)
		json_text_describe(max, d_max, sizeof(d_max));
	return check_err(c, path, "expected %s %s%s%s%s, got %s", phrase,
			 min ? (max ? "from " : "of at least ") : "of at most ", min ? d_min : "",
			 min && max ? " to " : "", max ? d_max : "",
			 json_text_describe(value, d_val, sizeof(d_val)));
}

static bool is_required(const json_t *schema, const char *key)
{
	const json_t *req = json_object_get(schema, "required");
	const json_t *name;
	size_t i;

	json_array_foreach(req, i, name) {
		if (json_is_string(name) && !strcmp(json_string_value(name), key))
			return true;
	}
	return false;
}

/* Checks an object's fields: known or allowed extra, each valid, required ones present. */
static int check_object(const struct check *c, const json_t *schema, json_t *value,
			const char *path, int depth)
{
	const json_t *props = json_object_get(schema, "properties");
	const json_t *extra = json_object_get(schema, "additionalProperties");
	const json_t *name;
	char sub[PATH_LEN];
	const char *key;
	json_t *v;
	size_t i;
	int r;

	json_object_foreach(value, key, v) {
		const json_t *prop = json_object_get(props, key);

		snprintf(sub, sizeof(sub), "%s%s%s", path, path[0] ? "." : "", key);
		if (!prop && json_is_true(extra))
			continue;
		if (!prop && !json_is_object(extra))
			return check_err(c, path, "unknown field \"%s\"", key);
		if (prop && json_is_null(v) && !is_required(schema, key))
			continue;
		r = validate_value(c, prop ? prop : extra, v, sub, depth + 1);
		if (r)
			return r;
	}
	json_array_foreach(json_object_get(schema, "required"), i, name) {
		const char *n = json_string_value(name);
		const json_t *prop = json_object_get(props, n ? n : "");

		if (n && !json_is_true(json_object_get(prop, "readOnly")) &&
		    !json_object_get(value, n))
			return check_err(c, path, "missing required field \"%s\"", n);
	}
	return 0;
}

static int check_array(const struct check *c, const json_t *schema, json_t *value,
		       const char *path, int depth)
{
	const json_t *items = json_object_get(schema, "items");
	char sub[PATH_LEN];
	json_t *v;
	size_t i;
	int r;

	if (!json_is_object(items))
		return 0;
	json_array_foreach(value, i, v) {
		snprintf(sub, sizeof(sub), "%s[%zu]", path, i);
		r = validate_value(c, items, v, sub, depth + 1);
		if (r)
			return r;
	}
	return 0;
}

/* Checks value against one schema node, following $ref to the named definition. */
static int validate_value(const struct check *c, const json_t *schema, json_t *value,
			  const char *path, int depth)
{
	const char *ref = schema_string(schema, "$ref");
	const char *type;
	int r;

	if (depth > MAX_DEPTH)
		return check_err(c, path, "the spec nests deeper than %d levels", MAX_DEPTH);
	if (ref) {
		schema = api_schema_definition(c->s, ref);
		if (!schema)
			return check_err(c, path, "the spec has no definition \"%s\"", ref);
		return validate_value(c, schema, value, path, depth + 1);
	}
	type = schema_string(schema, "type");
	if (type) {
		r = check_type(c, type, value, path);
		if (r)
			return r;
	}
	r = check_enum(c, schema, value, path);
	if (r)
		return r;
	if (json_is_number(value) && type)
		return check_bounds(c, schema, strcmp(type, "integer") ? "a number" : "an integer",
				    value, path);
	if (json_is_array(value))
		return check_array(c, schema, value, path, depth);
	if (json_is_object(value))
		return check_object(c, schema, value, path, depth);
	return 0;
}

int api_schema_validate(const struct api_schema *s, const char *definition, json_t *value,
			char *err, size_t errlen)
{
	const struct check c = { .s = s, .err = err, .errlen = errlen };
	const json_t *schema = api_schema_definition(s, definition);

	if (!schema) {
		json_text_set_err(err, errlen, "the spec has no definition \"%s\"",
			definition ? definition : "(null)");
		return -ENOENT;
	}
	if (!value) {
		json_text_set_err(err, errlen, "missing request body");
		return -EINVAL;
	}
	return validate_value(&c, schema, value, "", 0);
}

const json_t *api_schema_definition(const struct api_schema *s, const char *name)
{
	const json_t *def = name ? json_object_get(s->definitions, name) : NULL;

	return json_is_object(def) ? def : NULL;
}

const char *api_schema_version(const struct api_schema *s)
{
	return s->version;
}

/* Fills route i from its JSON object; the parameter name is stored back into obj. */
static int load_route(struct api_schema *s, size_t i, json_t *obj)
{
	struct api_route *r = &s->routes[i];
	const json_t *body = json_object_get(obj, "body");
	const json_t *status = json_object_get(obj, "status");
	const char *open, *close;
	json_t *name;

	r->index = i;
	r->path = schema_string(obj, "path");
	r->method = schema_string(obj, "method");
	r->body = json_string_value(body);
	if (!r->path || r->path[0] != '/' || !r->method || !json_is_integer(status) ||
	    !(json_is_null(body) || api_schema_definition(s, r->body)))
		return -EINVAL;
	r->status = (int)json_integer_value(status);
	if (r->status < 200 || r->status > 299)
		return -EINVAL;
	open = strchr(r->path, '{');
	if (!open)
		return strchr(r->path, '}') ? -EINVAL : 0;
	close = strchr(open, '}');
	if (!close || close == open + 1 || strchr(close + 1, '{'))
		return -EINVAL;
	name = json_stringn(open + 1, close - open - 1);
	if (!name || json_object_set_new(obj, "param", name))
		return -ENOMEM;
	r->param = json_string_value(name);
	return 0;
}

int api_schema_load(struct api_schema *s, char *err, size_t errlen)
{
	json_error_t jerr;
	json_t *routes, *obj;
	size_t i;
	int r;

	memset(s, 0, sizeof(*s));
	s->root = json_loads(api_spec_data, JSON_REJECT_DUPLICATES, &jerr);
	if (!s->root) {
		json_text_set_err(err, errlen, "api spec: line %d: %s", jerr.line, jerr.text);
		return -EINVAL;
	}
	s->version = schema_string(s->root, "version");
	s->definitions = json_object_get(s->root, "definitions");
	routes = json_object_get(s->root, "routes");
	if (!s->version || !json_is_object(s->definitions) || !json_is_array(routes)) {
		json_text_set_err(err, errlen, "api spec: expected version, definitions and routes");
		r = -EINVAL;
		goto err_free;
	}
	s->routes = calloc(json_array_size(routes) + 1, sizeof(*s->routes));
	if (!s->routes) {
		json_text_set_err(err, errlen, "api spec: out of memory");
		r = -ENOMEM;
		goto err_free;
	}
	json_array_foreach(routes, i, obj) {
		r = load_route(s, i, obj);
		if (r) {
			json_text_set_err(err, errlen, "api spec: route %zu is malformed", i);
			goto err_free;
		}
	}
	s->nr_routes = json_array_size(routes);
	return 0;

err_free:
	api_schema_free(s);
	return r;
}

void api_schema_free(struct api_schema *s)
{
	free(s->routes);
	json_decref(s->root);
	memset(s, 0, sizeof(*s));
}

/* The length of path that routing looks at: no query string, no single trailing slash. */
static size_t route_len(const char *path)
{
	size_t len = strcspn(path, "?");

	if (len > 1 && path[len - 1] == '/')
		len--;
	return len;
}

/*
 * Matches path[0..len) against a template; copies the parameter into param when it is not
 * NULL. A parameter must be one non-empty segment shorter than paramlen.
 */
static bool match_template(const char *tmpl, const char *path, size_t len, char *param,
			   size_t paramlen)
{
	size_t i = 0, start = 0, n = 0;

	while (*tmpl) {
		if (*tmpl == '{') {
			start = i;
			while (i < len && path[i] != '/')
				i++;
			n = i - start;
			if (n == 0 || n >= paramlen)
				return false;
			tmpl = strchr(tmpl, '}') + 1;
			continue;
		}
		if (i >= len || path[i] != *tmpl)
			return false;
		i++;
		tmpl++;
	}
	if (i != len)
		return false;
	if (param) {
		memcpy(param, path + start, n);
		param[n] = '\0';
	}
	return true;
}

/* The first route with method (any when NULL) matching path; see api_schema_route. */
static const struct api_route *find_route(const struct api_schema *s, const char *method,
					  const char *path, char *param, size_t paramlen)
{
	size_t len;

	if (!path)
		return NULL;
	len = route_len(path);
	for (size_t i = 0; i < s->nr_routes; i++) {
		const struct api_route *r = &s->routes[i];

		if ((!method || !strcmp(r->method, method)) &&
		    match_template(r->path, path, len, param, paramlen))
			return r;
	}
	return NULL;
}

const struct api_route *api_schema_route(const struct api_schema *s, const char *method,
					 const char *path, char *param, size_t paramlen)
{
	if (param && paramlen)
		param[0] = '\0';
	if (!method)
		return NULL;
	if (!param)
		paramlen = API_SCHEMA_PARAM_LEN;
	return find_route(s, method, path, paramlen ? param : NULL, paramlen);
}

bool api_schema_path_known(const struct api_schema *s, const char *path)
{
	return find_route(s, NULL, path, NULL, API_SCHEMA_PARAM_LEN) != NULL;
}

size_t api_schema_nr_routes(const struct api_schema *s)
{
	return s->nr_routes;
}

const struct api_route *api_schema_route_at(const struct api_schema *s, size_t i)
{
	return i < s->nr_routes ? &s->routes[i] : NULL;
}
