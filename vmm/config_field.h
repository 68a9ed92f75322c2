/* Reading the fields of one JSON object of the configuration, with one-line messages. */
#ifndef KILN_CONFIG_FIELD_H
#define KILN_CONFIG_FIELD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

enum config_field_flags {
	CONFIG_FIELD_REQUIRED = 1 << 0, /* absent is an error, and null is a wrong type */
	CONFIG_FIELD_NONEMPTY = 1 << 1, /* for strings: "" is an error */
};

/* One JSON object being parsed, and where its problems are reported. */
struct config_field_section {
	json_t *obj;
	const char *where; /* message prefix: "vm.json: drives[1]" */
	char *err;         /* errlen bytes for the one-line message; may be NULL */
	size_t errlen;
};

/* Puts "<where>.<key>: <message>" in s's err; always returns -EINVAL. */
int config_field_err(const struct config_field_section *s, const char *key, const char *fmt, ...)
	__attribute__((format(printf, 3, 4), warn_unused_result));

/* The value of key in s's object, or NULL when it is absent or null. */
json_t *config_field_get(const struct config_field_section *s, const char *key);

/*
 * 0 when s's object is an object whose keys all appear in known (NULL-terminated); else
 * -EINVAL with "<where>: expected an object, got ..." or "<where>: unknown field "k"".
 */
int config_field_check_object(const struct config_field_section *s, const char *const *known)
	__attribute__((warn_unused_result));

/* Refuses (-EINVAL, "not supported by kiln yet") the first key of the NULL-terminated list
 * that is present and not null; 0 when none is. */
int config_field_refuse(const struct config_field_section *s, const char *const *keys)
	__attribute__((warn_unused_result));

/*
 * Sets *out to the string at key, borrowed from s's object, or to NULL when it is absent or
 * null and flags lacks CONFIG_FIELD_REQUIRED. -EINVAL (and *out NULL) when required and absent,
 * not a string (null included when required), or empty with CONFIG_FIELD_NONEMPTY.
 */
int config_field_string(const struct config_field_section *s, const char *key, unsigned flags,
			const char **out) __attribute__((warn_unused_result));

/* Sets *out to a copy of str, or to NULL when str is NULL; -ENOMEM when out of memory. */
int config_field_dup(const char *str, char **out) __attribute__((warn_unused_result));

/* config_field_string, then config_field_dup of what it found: *out is NULL on failure. */
int config_field_string_dup(const struct config_field_section *s, const char *key,
			    unsigned flags, char **out) __attribute__((warn_unused_result));

/*
 * Sets *out to the boolean at key; leaves it alone when the key is absent or null, unless flags
 * has CONFIG_FIELD_REQUIRED (absent: "required field missing"; null is a wrong type). -EINVAL
 * on a wrong type.
 */
int config_field_bool(const struct config_field_section *s, const char *key, unsigned flags,
		      bool *out) __attribute__((warn_unused_result));

/* Sets *out to the required integer at key, which must lie in lo..hi; else -EINVAL, *out kept. */
int config_field_u32(const struct config_field_section *s, const char *key, uint32_t lo,
		     uint32_t hi, uint32_t *out) __attribute__((warn_unused_result));

#endif
