/* Firecracker's API spec as data: request-body validation and the route table. */
#ifndef KILN_API_SCHEMA_H
#define KILN_API_SCHEMA_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

/* Room for an error message from this unit. */
#define API_SCHEMA_ERR_LEN 256
/* Room for a path parameter and its NUL; longer values match no route and no known path. */
#define API_SCHEMA_PARAM_LEN 128

/* The spec's facts as compact JSON, generated into api_spec_data.c by scripts/gen-api-spec. */
extern const char api_spec_data[];

/* One path x method of the spec. Strings point into the loaded schema. */
struct api_route {
	const char *path;   /* template, e.g. "/drives/{drive_id}" */
	const char *method; /* "GET", "PUT" or "PATCH" */
	const char *param;  /* name of the template's path parameter, or NULL */
	const char *body;   /* definition of the request body, or NULL when there is none */
	int status;         /* status of a successful answer: 200 or 204 */
	size_t index;       /* position in the table, 0 to nr_routes - 1; stable for one spec */
};

/* The loaded spec; owned by the caller, filled by api_schema_load, emptied by api_schema_free. */
struct api_schema {
	json_t *root;
	json_t *definitions;
	const char *version;
	struct api_route *routes;
	size_t nr_routes;
};

/*
 * Parses the embedded spec into *s and builds the route table (routes sorted by path, then
 * method). Returns 0, -ENOMEM, or -EINVAL with a message in err when the embedded data is
 * malformed (a bad generator run). Pair with api_schema_free.
 */
int api_schema_load(struct api_schema *s, char *err, size_t errlen)
	__attribute__((warn_unused_result));

/* Releases what api_schema_load took and zeroes *s; safe on a zeroed or freed schema. */
void api_schema_free(struct api_schema *s);

/* The Firecracker version the spec describes, e.g. "1.17.0-dev". */
const char *api_schema_version(const struct api_schema *s);

/* The named definition's schema (borrowed), or NULL when the spec has none by that name. */
const json_t *api_schema_definition(const struct api_schema *s, const char *name);

/*
 * Checks value, a parsed request body, against the named definition as Firecracker's parser
 * would: types (an integer is never a real), required fields (readOnly ones are not required),
 * no unknown fields unless the schema allows extra ones, enums, minimum/maximum, array items,
 * nested objects and $ref. null stands for an absent optional field. Returns 0; -EINVAL with
 * one line in err naming the field path ("rate_limiter.bandwidth.size: expected an integer,
 * got true"); -ENOENT when the spec has no such definition. err may be NULL.
 */
int api_schema_validate(const struct api_schema *s, const char *definition, json_t *value,
			char *err, size_t errlen) __attribute__((warn_unused_result));

/*
 * The route for method ("GET", "PUT", "PATCH"; case-sensitive) on a request path, or NULL.
 * A query string ("?...") is ignored and so is one trailing slash, as Firecracker does
 * ("/machine-config/" is "/machine-config"). A path parameter takes one non-empty segment with
 * no '/' ("/drives/" matches nothing); its value is copied into param (paramlen bytes; a value
 * that does not fit matches nothing), or "" for a route without one. Checking the value's
 * characters (Firecracker allows alphanumerics and '_') is the caller's job.
 */
const struct api_route *api_schema_route(const struct api_schema *s, const char *method,
					 const char *path, char *param, size_t paramlen);

/*
 * Whether some route, with any method, matches path (same rules as api_schema_route with a
 * param buffer of API_SCHEMA_PARAM_LEN): tells "no such path" from "wrong method".
 */
bool api_schema_path_known(const struct api_schema *s, const char *path);

/* The number of routes, and route i of them (NULL when i is out of range). */
size_t api_schema_nr_routes(const struct api_schema *s);
const struct api_route *api_schema_route_at(const struct api_schema *s, size_t i);

#endif
