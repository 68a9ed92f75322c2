/* Parses Firecracker's --config-file JSON into struct vm_config, one function per section. */
#include "config.h"
#include "config_field.h"
#include "device_config.h"
#include "json_text.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define CONFIG_FILE_MAX (1024 * 1024)
#define DESCRIBE_LEN JSON_TEXT_DESCRIBE_LEN
#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* Sections of Firecracker's format that kiln refuses; lists may be present but empty. */
static const struct {
	const char *name;
	bool is_list;
} unsupported_sections[] = {
	{ "pmem", true },        { "balloon", false },        { "mmds-config", false },
	{ "cpu-config", false }, { "memory-hotplug", false },
};

static const struct {
	const char *name;
	enum log_level level;
} log_levels[] = {
	{ "Error", LOG_ERROR }, { "Warning", LOG_WARNING }, { "Info", LOG_INFO },
	{ "Debug", LOG_DEBUG }, { "Trace", LOG_TRACE },     { "Off", LOG_OFF },
};

static void boot_source_free(struct boot_source_config *bs)
{
	free(bs->kernel_image_path);
	free(bs->initrd_path);
	free(bs->boot_args);
	*bs = (struct boot_source_config){ 0 };
}

int config_parse_boot_source(struct boot_source_config *out, json_t *obj, const char *where,
			     char *err, size_t errlen)
{
	static const char *const known[] = { "kernel_image_path", "initrd_path", "boot_args",
					     NULL };
	const struct config_field_section s = { obj, where, err, errlen };
	struct boot_source_config bs = { 0 };
	int rc;

	rc = config_field_check_object(&s, known);
	if (rc)
		return rc;
	rc = config_field_string_dup(&s, "kernel_image_path",
				     CONFIG_FIELD_REQUIRED | CONFIG_FIELD_NONEMPTY,
				     &bs.kernel_image_path);
	if (rc)
		goto err_free;
	rc = config_field_string_dup(&s, "initrd_path", CONFIG_FIELD_NONEMPTY, &bs.initrd_path);
	if (rc)
		goto err_free;
	rc = config_field_string_dup(&s, "boot_args", 0, &bs.boot_args);
	if (rc)
		goto err_free;
	boot_source_free(out);
	*out = bs;
	return 0;

err_free:
	boot_source_free(&bs);
	return rc;
}

static int parse_huge_pages(const struct config_field_section *s, enum huge_pages *out)
{
	json_t *v = config_field_get(s, "huge_pages");
	char desc[DESCRIBE_LEN];
	const char *name;

	if (!v)
		return 0;
	name = json_string_value(v);
	if (name && !strcmp(name, "None")) {
		*out = HUGE_PAGES_NONE;
		return 0;
	}
	if (name && !strcmp(name, "2M")) {
		*out = HUGE_PAGES_2M;
		return 0;
	}
	if (name && !strcmp(name, "Transparent"))
		return config_field_err(s, "huge_pages",
					"\"Transparent\" is not supported by kiln yet");
	return config_field_err(s, "huge_pages", "expected \"None\" or \"2M\", got %s",
				json_text_describe(v, desc, sizeof(desc)));
}

/* kiln applies no CPU template: only "None" (Firecracker's default) is accepted. */
static int check_cpu_template(const struct config_field_section *s)
{
	static const char *const spec[] = { "C3", "T2", "T2S", "T2CL", "T2A", "V1N1" };
	json_t *v = config_field_get(s, "cpu_template");
	char desc[DESCRIBE_LEN];
	const char *name;

	if (!v)
		return 0;
	name = json_string_value(v);
	if (name && !strcmp(name, "None"))
		return 0;
	for (size_t i = 0; name && i < ARRAY_LEN(spec); i++) {
		if (!strcmp(name, spec[i]))
			return config_field_err(s, "cpu_template",
						"\"%s\" is not supported by kiln yet", name);
	}
	return config_field_err(s, "cpu_template", "expected \"None\", got %s",
				json_text_describe(v, desc, sizeof(desc)));
}

int config_parse_machine_config(struct machine_config *out, json_t *obj, const char *where,
				char *err, size_t errlen)
{
	static const char *const known[] = { "vcpu_count", "mem_size_mib",
					     "smt",        "track_dirty_pages",
					     "huge_pages", "cpu_template",
					     NULL };
	const struct config_field_section s = { obj, where, err, errlen };
	struct machine_config mc = { .huge_pages = HUGE_PAGES_NONE };
	int rc;

	rc = config_field_check_object(&s, known);
	if (!rc)
		rc = config_field_u32(&s, "vcpu_count", 1, CONFIG_MAX_VCPUS, &mc.vcpu_count);
	if (!rc)
		rc = config_field_u32(&s, "mem_size_mib", CONFIG_MIN_MEM_MIB, CONFIG_MAX_MEM_MIB,
				      &mc.mem_size_mib);
	if (!rc)
		rc = config_field_bool(&s, "smt", 0, &mc.smt);
	if (!rc)
		rc = config_field_bool(&s, "track_dirty_pages", 0, &mc.track_dirty_pages);
	if (!rc)
		rc = parse_huge_pages(&s, &mc.huge_pages);
	if (!rc)
		rc = check_cpu_template(&s);
	if (rc)
		return rc;
	if (mc.smt && mc.vcpu_count > 1 && mc.vcpu_count % 2)
		return config_field_err(&s, "vcpu_count",
					"expected 1 or an even number when smt is enabled, got "
					"%" PRIu32,
					mc.vcpu_count);
	if (mc.huge_pages == HUGE_PAGES_2M && mc.mem_size_mib % 2)
		return config_field_err(&s, "mem_size_mib",
					"expected a multiple of 2 with 2M huge pages, got %" PRIu32,
					mc.mem_size_mib);
	*out = mc;
	return 0;
}

int config_parse_logger(struct logger_config *out, json_t *obj, const char *where, char *err,
			size_t errlen)
{
	static const char *const known[] = { "level",           "log_path", "show_level",
					     "show_log_origin", "module",   NULL };
	const struct config_field_section s = { obj, where, err, errlen };
	struct logger_config lc = { .present = true, .level = LOG_INFO };
	char desc[DESCRIBE_LEN];
	json_t *level;
	int rc;

	rc = config_field_check_object(&s, known);
	if (!rc)
		rc = config_field_refuse(&s, (const char *const[]){ "module", NULL });
	if (rc)
		return rc;
	level = config_field_get(&s, "level");
	if (level &&
	    (!json_is_string(level) || config_log_level_parse(json_string_value(level), &lc.level)))
		return config_field_err(&s, "level",
					"expected one of Error, Warning, Info, Debug, Trace, Off, "
					"got %s",
					json_text_describe(level, desc, sizeof(desc)));
	rc = config_field_bool(&s, "show_level", 0, &lc.show_level);
	if (!rc)
		rc = config_field_bool(&s, "show_log_origin", 0, &lc.show_log_origin);
	if (!rc)
		rc = config_field_string_dup(&s, "log_path", CONFIG_FIELD_NONEMPTY, &lc.log_path);
	if (rc)
		return rc;
	free(out->log_path);
	*out = lc;
	return 0;
}

int config_parse_serial(struct serial_config *out, json_t *obj, const char *where, char *err,
			size_t errlen)
{
	static const char *const known[] = { "serial_out_path", "rate_limiter", NULL };
	const struct config_field_section s = { obj, where, err, errlen };
	struct serial_config sc = { 0 };
	int rc;

	rc = config_field_check_object(&s, known);
	if (!rc)
		rc = config_field_refuse(&s, (const char *const[]){ "rate_limiter", NULL });
	if (!rc)
		rc = config_field_string_dup(&s, "serial_out_path", CONFIG_FIELD_NONEMPTY,
					     &sc.serial_out_path);
	if (rc)
		return rc;
	free(out->serial_out_path);
	*out = sc;
	return 0;
}

int config_parse_metrics(struct metrics_config *out, json_t *obj, const char *where, char *err,
			 size_t errlen)
{
	static const char *const known[] = { "metrics_path", NULL };
	const struct config_field_section s = { obj, where, err, errlen };
	struct metrics_config mc = { 0 };
	int rc;

	rc = config_field_check_object(&s, known);
	if (rc == 0)
		rc = config_field_string_dup(&s, "metrics_path",
					     CONFIG_FIELD_REQUIRED | CONFIG_FIELD_NONEMPTY,
					     &mc.metrics_path);
	if (rc)
		return rc;
	free(out->metrics_path);
	*out = mc;
	return 0;
}

void config_init(struct vm_config *cfg)
{
	*cfg = (struct vm_config){
		.machine = { .vcpu_count = 1, .mem_size_mib = 128, .huge_pages = HUGE_PAGES_NONE },
		.logger = { .level = LOG_INFO },
	};
}

void config_free(struct vm_config *cfg)
{
	boot_source_free(&cfg->boot_source);
	free(cfg->logger.log_path);
	free(cfg->serial.serial_out_path);
	free(cfg->metrics.metrics_path);
	json_decref(cfg->drives);
	json_decref(cfg->network_interfaces);
	json_decref(cfg->vsock);
	json_decref(cfg->entropy);
	config_init(cfg);
}

/* Accepts a section kiln does not implement only when it asks for nothing. */
static int check_unsupported(const char *name, const char *key, json_t *v, bool *known, char *err,
			     size_t errlen)
{
	for (size_t i = 0; i < ARRAY_LEN(unsupported_sections); i++) {
		if (strcmp(key, unsupported_sections[i].name))
			continue;
		*known = true;
		if (json_is_null(v) ||
		    (unsupported_sections[i].is_list && json_is_array(v) && !json_array_size(v)))
			return 0;
		json_text_set_err(err, errlen, "%s: %s: not supported by kiln yet", name, key);
		return -EINVAL;
	}
	*known = false;
	return 0;
}

/* Parses one top-level key into tmp; has_serial records a serial section. */
static int parse_top_key(struct vm_config *tmp, bool *has_serial, const char *name, const char *key,
			 json_t *v, char *err, size_t errlen)
{
	bool present = !json_is_null(v);
	char where[PATH_MAX + 32];
	bool known;
	int rc;

	snprintf(where, sizeof(where), "%s: %s", name, key);
	if (!strcmp(key, "boot-source")) {
		tmp->has_boot_source = present;
		return present ? config_parse_boot_source(&tmp->boot_source, v, where, err, errlen)
			       : 0;
	}
	if (!strcmp(key, "machine-config")) {
		tmp->has_machine_config = present;
		return present ? config_parse_machine_config(&tmp->machine, v, where, err, errlen)
			       : 0;
	}
	if (!strcmp(key, "logger"))
		return present ? config_parse_logger(&tmp->logger, v, where, err, errlen) : 0;
	if (!strcmp(key, "metrics")) {
		free(tmp->metrics.metrics_path);
		tmp->metrics.metrics_path = NULL;
		return present ? config_parse_metrics(&tmp->metrics, v, where, err, errlen) : 0;
	}
	if (!strcmp(key, "serial")) {
		*has_serial = present;
		return present ? config_parse_serial(&tmp->serial, v, where, err, errlen) : 0;
	}
	rc = config_parse_device_section(tmp, key, v, where, &known, err, errlen);
	if (rc || known)
		return rc;
	rc = check_unsupported(name, key, v, &known, err, errlen);
	if (rc || known)
		return rc;
	json_text_set_err(err, errlen, "%s: unknown key \"%s\"", name, key);
	return -EINVAL;
}

/* Moves a device section the file had (src non-NULL) into *dst, dropping what it replaces. */
static void commit_json(json_t **dst, json_t *src)
{
	if (!src)
		return;
	json_decref(*dst);
	*dst = src;
}

/* Moves the sections present in tmp into cfg, freeing what they replace. */
static void commit(struct vm_config *cfg, const struct vm_config *tmp, bool has_serial)
{
	if (tmp->has_boot_source) {
		boot_source_free(&cfg->boot_source);
		cfg->boot_source = tmp->boot_source;
		cfg->has_boot_source = true;
	}
	if (tmp->has_machine_config) {
		cfg->machine = tmp->machine;
		cfg->has_machine_config = true;
	}
	if (tmp->logger.present) {
		free(cfg->logger.log_path);
		cfg->logger = tmp->logger;
	}
	if (has_serial) {
		free(cfg->serial.serial_out_path);
		cfg->serial = tmp->serial;
	}
	if (tmp->metrics.metrics_path) {
		free(cfg->metrics.metrics_path);
		cfg->metrics = tmp->metrics;
	}
	commit_json(&cfg->drives, tmp->drives);
	commit_json(&cfg->network_interfaces, tmp->network_interfaces);
	commit_json(&cfg->vsock, tmp->vsock);
	commit_json(&cfg->entropy, tmp->entropy);
}

/* Checks the device sections cfg would have once tmp is committed, as config_check_devices. */
static int check_devices(const struct vm_config *cfg, const struct vm_config *tmp,
			 const char *name, char *err, size_t errlen)
{
	struct vm_config view = *cfg; /* a shallow view: only its device sections are read */
	char msg[CONFIG_ERR_LEN];
	int rc;

	view.drives = tmp->drives ? tmp->drives : cfg->drives;
	view.network_interfaces = tmp->network_interfaces ? tmp->network_interfaces
							  : cfg->network_interfaces;
	view.vsock = tmp->vsock ? tmp->vsock : cfg->vsock;
	view.entropy = tmp->entropy ? tmp->entropy : cfg->entropy;
	rc = config_check_devices(&view, msg, sizeof(msg));
	if (rc)
		json_text_set_err(err, errlen, "%s: %s", name, msg);
	return rc;
}

int config_parse_text(struct vm_config *cfg, const char *name, const char *text, size_t len,
		      char *err, size_t errlen)
{
	char desc[DESCRIBE_LEN];
	struct vm_config tmp;
	bool has_serial = false;
	json_error_t jerr;
	const char *key;
	json_t *root;
	json_t *v;
	int rc = 0;

	root = json_loadb(text, len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &jerr);
	if (!root) {
		if (json_error_code(&jerr) == json_error_out_of_memory) {
			json_text_set_err(err, errlen, "%s: out of memory parsing JSON", name);
			return -ENOMEM;
		}
		json_text_set_err(err, errlen, "%s:%d:%d: invalid JSON: %s", name, jerr.line, jerr.column,
			jerr.text);
		return -EINVAL;
	}
	if (!json_is_object(root)) {
		json_text_set_err(err, errlen, "%s: expected a JSON object at the top level, got %s", name,
			json_text_describe(root, desc, sizeof(desc)));
		json_decref(root);
		return -EINVAL;
	}
	config_init(&tmp);
	json_object_foreach(root, key, v) {
		rc = parse_top_key(&tmp, &has_serial, name, key, v, err, errlen);
		if (rc)
			break;
	}
	json_decref(root);
	if (!rc)
		rc = check_devices(cfg, &tmp, name, err, errlen);
	if (rc) {
		config_free(&tmp);
		return rc;
	}
	commit(cfg, &tmp, has_serial);
	return 0;
}

/* Reads all of path into a new buffer; -EFBIG beyond CONFIG_FILE_MAX bytes. */
static int read_whole(const char *path, char **out, size_t *outlen)
{
	size_t len = 0;
	char *buf;
	ssize_t n;
	int rc;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	buf = malloc(CONFIG_FILE_MAX + 1);
	if (!buf) {
		rc = -ENOMEM;
		goto err_close;
	}
	while (len <= CONFIG_FILE_MAX) {
		n = read(fd, buf + len, CONFIG_FILE_MAX + 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = -errno;
			goto err_free;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	if (len > CONFIG_FILE_MAX) {
		rc = -EFBIG;
		goto err_free;
	}
	close(fd);
	*out = buf;
	*outlen = len;
	return 0;

err_free:
	free(buf);
err_close:
	close(fd);
	return rc;
}

int config_parse_file(struct vm_config *cfg, const char *path, char *err, size_t errlen)
{
	char *text = NULL;
	char msg[128];
	size_t len = 0;
	int rc;

	rc = read_whole(path, &text, &len);
	if (rc == -EFBIG) {
		json_text_set_err(err, errlen, "%s: larger than the %d MiB limit for a config file", path,
			CONFIG_FILE_MAX >> 20);
		return rc;
	}
	if (rc) {
		json_text_set_err(err, errlen, "%s: cannot read: %s", path,
			strerror_r(-rc, msg, sizeof(msg)));
		return rc;
	}
	rc = config_parse_text(cfg, path, text, len, err, errlen);
	free(text);
	return rc;
}

int config_check_bootable(const struct vm_config *cfg, char *err, size_t errlen)
{
	if (!cfg->has_boot_source || !cfg->boot_source.kernel_image_path) {
		json_text_set_err(err, errlen, "boot-source: required section missing");
		return -EINVAL;
	}
	return config_check_devices(cfg, err, errlen);
}

const char *config_log_level_name(enum log_level level)
{
	for (size_t i = 0; i < ARRAY_LEN(log_levels); i++)
		if (log_levels[i].level == level)
			return log_levels[i].name;
	return "Info";
}

int config_log_level_parse(const char *name, enum log_level *out)
{
	if (!name)
		return -EINVAL;
	for (size_t i = 0; i < ARRAY_LEN(log_levels); i++) {
		if (!strcasecmp(name, log_levels[i].name)) {
			*out = log_levels[i].level;
			return 0;
		}
	}
	return -EINVAL;
}
