/* Reads the fields of one JSON object of the configuration (config_field.h). */
#include "config_field.h"
#include "config.h"
#include "json_text.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DESCRIBE_LEN JSON_TEXT_DESCRIBE_LEN

int config_field_err(const struct config_field_section *s, const char *key, const char *fmt, ...)
{
	char msg[CONFIG_ERR_LEN];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	json_text_set_err(s->err, s->errlen, "%s.%s: %s", s->where, key, msg);
	return -EINVAL;
}

json_t *config_field_get(const struct config_field_section *s, const char *key)
{
	json_t *v = json_object_get(s->obj, key);

	return json_is_null(v) ? NULL : v;
}

int config_field_check_object(const struct config_field_section *s, const char *const *known)
{
	char desc[DESCRIBE_LEN];
	const char *key;
	json_t *v;

	if (!json_is_object(s->obj)) {
		json_text_set_err(s->err, s->errlen, "%s: expected an object, got %s", s->where,
				  json_text_describe(s->obj, desc, sizeof(desc)));
		return -EINVAL;
	}
	json_object_foreach(s->obj, key, v) {
		const char *const *k = known;

		while (*k && strcmp(*k, key))
			k++;
		if (!*k) {
			json_text_set_err(s->err, s->errlen, "%s: unknown field \"%s\"", s->where,
					  key);
			return -EINVAL;
		}
	}
	return 0;
}

int config_field_refuse(const struct config_field_section *s, const char *const *keys)
{
	for (; *keys; keys++)
		if (config_field_get(s, *keys))
			return config_field_err(s, *keys, "not supported by kiln yet");
	return 0;
}

/*
 * The value at key for a getter, or NULL: then *rc is 0 when the key is absent or null and
 * optional, -EINVAL when it is absent and required (null stays a value when required).
 */
static json_t *value(const struct config_field_section *s, const char *key, unsigned flags,
		     int *rc)
{
	json_t *v = json_object_get(s->obj, key);
	bool required = flags & CONFIG_FIELD_REQUIRED;

	*rc = 0;
	if (!v && required)
		*rc = config_field_err(s, key, "required field missing");
	if (!v || (json_is_null(v) && !required))
		return NULL;
	return v;
}

int config_field_string(const struct config_field_section *s, const char *key, unsigned flags,
			const char **out)
{
	char desc[DESCRIBE_LEN];
	json_t *v;
	int rc;

	*out = NULL;
	v = value(s, key, flags, &rc);
	if (!v)
		return rc;
	if (!json_is_string(v))
		return config_field_err(s, key, "expected a string, got %s",
					json_text_describe(v, desc, sizeof(desc)));
	if ((flags & CONFIG_FIELD_NONEMPTY) && json_string_length(v) == 0)
		return config_field_err(s, key, "expected a non-empty string");
	*out = json_string_value(v);
	return 0;
}

int config_field_dup(const char *str, char **out)
{
	*out = NULL;
	if (!str)
		return 0;
	*out = strdup(str);
	return *out ? 0 : -ENOMEM;
}

int config_field_string_dup(const struct config_field_section *s, const char *key,
			    unsigned flags, char **out)
{
	const char *str;
	int rc;

	*out = NULL;
	rc = config_field_string(s, key, flags, &str);
	return rc ? rc : config_field_dup(str, out);
}

int config_field_bool(const struct config_field_section *s, const char *key, unsigned flags,
		      bool *out)
{
	char desc[DESCRIBE_LEN];
	json_t *v;
	int rc;

	v = value(s, key, flags, &rc);
	if (!v)
		return rc;
	if (!json_is_boolean(v))
		return config_field_err(s, key, "expected true or false, got %s",
					json_text_describe(v, desc, sizeof(desc)));
	*out = json_is_true(v);
	return 0;
}

int config_field_u32(const struct config_field_section *s, const char *key, uint32_t lo,
		     uint32_t hi, uint32_t *out)
{
	char desc[DESCRIBE_LEN];
	json_int_t n;
	json_t *v;
	int rc;

	v = value(s, key, CONFIG_FIELD_REQUIRED, &rc);
	if (!v)
		return rc;
	n = json_integer_value(v);
	if (!json_is_integer(v) || n < lo || n > hi)
		return config_field_err(s, key,
					"expected an integer from %" PRIu32 " to %" PRIu32
					", got %s",
					lo, hi, json_text_describe(v, desc, sizeof(desc)));
	*out = (uint32_t)n;
	return 0;
}
