/* Messages about JSON input: UTF-8-safe truncation and value descriptions. */
#include "json_text.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define DESCRIBE_STRING_MAX 40

/* Cuts a UTF-8 sequence left incomplete at the end of s (len bytes) by a truncation. */
static void trim_partial_utf8(char *s, size_t len)
{
	size_t start = len;
	size_t need;
	unsigned char lead;

	while (start > 0 && ((unsigned char)s[start - 1] & 0xc0) == 0x80 && len - start < 3)
		start--;
	if (start == 0)
		return;
	lead = (unsigned char)s[start - 1];
	if (lead < 0xc0)
		return;
	need = lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : 2;
	if (len - (start - 1) < need)
		s[start - 1] = '\0';
}

void json_text_set_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (!err || errlen == 0)
		return;
	va_start(ap, fmt);
	n = vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	if (n < 0) {
		err[0] = '\0';
		return;
	}
	if ((size_t)n >= errlen)
		trim_partial_utf8(err, errlen - 1);
	for (char *p = err; *p; p++) {
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = '?';
	}
}

/* A short description of v for messages: the value of a scalar, the type of a container. */
const char *json_text_describe(const json_t *v, char *buf, size_t len)
{
	const char *s;
	size_t slen;

	switch (json_typeof(v)) {
	case JSON_OBJECT:
		return "an object";
	case JSON_ARRAY:
		return "an array";
	case JSON_TRUE:
		return "true";
	case JSON_FALSE:
		return "false";
	case JSON_NULL:
		return "null";
	case JSON_INTEGER:
		snprintf(buf, len, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
		return buf;
	case JSON_REAL:
		snprintf(buf, len, "%g", json_real_value(v));
		if (!strpbrk(buf, ".eEn"))
			strncat(buf, ".0", len - strlen(buf) - 1);
		return buf;
	case JSON_STRING:
		s = json_string_value(v);
		slen = json_string_length(v);
		if (slen <= DESCRIBE_STRING_MAX) {
			snprintf(buf, len, "\"%s\"", s);
		} else {
			snprintf(buf, len, "\"%.*s", DESCRIBE_STRING_MAX, s);
			trim_partial_utf8(buf, strlen(buf));
			strncat(buf, "...\"", len - strlen(buf) - 1);
		}
		return buf;
	}
	return "an unknown JSON value";
}
