/* One-line messages about JSON input: safe truncation and short descriptions of values. */
#ifndef KILN_JSON_TEXT_H
#define KILN_JSON_TEXT_H

#include <stddef.h>

#include <jansson.h>

#define JSON_TEXT_DESCRIBE_LEN 64 /* room for json_text_describe's buffer */

/*
 * Formats one line into err (errlen bytes; err may be NULL): cut on a UTF-8 boundary when too
 * long, control characters replaced by '?', so a message quoting input stays one clean line.
 */
void json_text_set_err(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/*
 * A short description of v for messages: the value of a scalar (strings quoted, cut after 40
 * bytes with "..."), the type of a container ("an object"). Uses buf (len bytes) when needed.
 */
const char *json_text_describe(const json_t *v, char *buf, size_t len);

#endif
