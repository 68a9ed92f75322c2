/* The VM configuration: Firecracker's --config-file format parsed into one plain struct. */
#ifndef KILN_CONFIG_H
#define KILN_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#define CONFIG_MAX_VCPUS 32
#define CONFIG_MIN_MEM_MIB 16
#define CONFIG_MAX_MEM_MIB (1024u * 1024u) /* 1 TiB: the guest layout's ceiling */
#define CONFIG_ERR_LEN 512

/* Firecracker's default when boot_args is absent. */
#define CONFIG_DEFAULT_BOOT_ARGS                                                     \
	"reboot=k panic=1 pci=off nomodule 8250.nr_uarts=0 i8042.noaux i8042.nomux " \
	"i8042.nopnp i8042.dumbkbd"

enum huge_pages { HUGE_PAGES_NONE, HUGE_PAGES_2M };

enum log_level { LOG_OFF, LOG_ERROR, LOG_WARNING, LOG_INFO, LOG_DEBUG, LOG_TRACE };

struct boot_source_config {
	char *kernel_image_path; /* required */
	char *initrd_path;       /* NULL when absent */
	char *boot_args;         /* NULL when absent: CONFIG_DEFAULT_BOOT_ARGS applies */
};

struct machine_config {
	uint32_t vcpu_count;   /* 1..CONFIG_MAX_VCPUS */
	uint32_t mem_size_mib; /* CONFIG_MIN_MEM_MIB..CONFIG_MAX_MEM_MIB */
	bool smt;
	bool track_dirty_pages;
	enum huge_pages huge_pages;
};

struct logger_config {
	bool present;
	char *log_path; /* NULL: stderr */
	enum log_level level;
	bool show_level;
	bool show_log_origin;
};

struct serial_config {
	char *serial_out_path; /* NULL: stdout */
};

struct metrics_config {
	char *metrics_path; /* NULL: no metrics output */
};

struct vm_config {
	bool has_boot_source;
	bool has_machine_config;
	struct boot_source_config boot_source;
	struct machine_config machine;
	struct logger_config logger;
	struct serial_config serial;
	struct metrics_config metrics;
	/*
	 * Virtio device sections, kept as the bodies the config file or the API gave (arrays of
	 * Drive and NetworkInterface objects, one Vsock and one EntropyDevice object), NULL when
	 * none. Every entry has passed its device_config.h parser and config_check_devices, which
	 * parse them into structs for the VM build.
	 */
	json_t *drives;
	json_t *network_interfaces;
	json_t *vsock;
	json_t *entropy;
};

/*
 * Section parsers, shared by the config file and the REST API's request bodies. Each parses one
 * section's JSON object (a Firecracker API body) and replaces *out with it entirely: absent or
 * null optional fields take their defaults, strings are copied, the strings *out held before are
 * freed. `where` prefixes messages, e.g. "vm.json: machine-config" gives
 * "vm.json: machine-config.vcpu_count: expected ...". On failure returns -EINVAL (or -ENOMEM),
 * leaves *out unchanged and one line in err. Unknown fields and fields kiln does not implement
 * yet are errors. config_parse_logger also sets out->present.
 */
int config_parse_boot_source(struct boot_source_config *out, json_t *obj, const char *where,
			     char *err, size_t errlen) __attribute__((warn_unused_result));
int config_parse_machine_config(struct machine_config *out, json_t *obj, const char *where,
				char *err, size_t errlen) __attribute__((warn_unused_result));
int config_parse_logger(struct logger_config *out, json_t *obj, const char *where, char *err,
			size_t errlen) __attribute__((warn_unused_result));
int config_parse_serial(struct serial_config *out, json_t *obj, const char *where, char *err,
			size_t errlen) __attribute__((warn_unused_result));
int config_parse_metrics(struct metrics_config *out, json_t *obj, const char *where, char *err,
			 size_t errlen) __attribute__((warn_unused_result));

/* Fills cfg with defaults (1 vCPU, 128 MiB, no huge pages, logger at Info). */
void config_init(struct vm_config *cfg);

/* Frees every string cfg owns and re-initialises it. */
void config_free(struct vm_config *cfg);

/*
 * Parses a --config-file document from text (len bytes, not necessarily NUL-terminated).
 * `name` labels error messages (the file's path). On success returns 0 and fills cfg, which
 * must have been initialised with config_init(). On failure returns -EINVAL (or -ENOMEM),
 * leaves one human-readable line in err (no trailing newline) naming `name`, the field path
 * (e.g. "machine-config.vcpu_count") and, for JSON syntax errors, line and column.
 * Unknown keys and sections kiln does not implement yet are errors. Each section present replaces
 * the one in cfg; on failure cfg is left unchanged. Device sections are checked entry by entry
 * (device_config.h) and then together with config_check_devices, the message prefixed by name.
 */
int config_parse_text(struct vm_config *cfg, const char *name, const char *text, size_t len,
		      char *err, size_t errlen) __attribute__((warn_unused_result));

/*
 * Reads and parses the file at path (at most 1 MiB); errors as config_parse_text, plus -errno
 * for an unreadable file and -EFBIG for one too large.
 */
int config_parse_file(struct vm_config *cfg, const char *path, char *err, size_t errlen)
	__attribute__((warn_unused_result));

/*
 * Checks that the configuration can boot: boot-source present (machine-config may be absent, as
 * in Firecracker: 1 vCPU and 128 MiB apply) and the device sections consistent
 * (config_check_devices). Returns 0 or -EINVAL (-ENOMEM) with one line in err.
 */
int config_check_bootable(const struct vm_config *cfg, char *err, size_t errlen)
	__attribute__((warn_unused_result));

/* Parses a level name case-insensitively ("Error", "warning", ...); -EINVAL if unknown. */
int config_log_level_parse(const char *name, enum log_level *out);

/* The level's name as Firecracker spells it ("Info"). */
const char *config_log_level_name(enum log_level level);

/*
 * Sections as JSON objects shaped like Firecracker's API bodies (config_json.c). Each returns a
 * new reference, or NULL when out of memory.
 */
json_t *config_boot_source_json(const struct boot_source_config *b);
json_t *config_machine_config_json(const struct machine_config *m);
json_t *config_logger_json(const struct logger_config *l);

/*
 * The whole configuration as a --config-file document (Firecracker's FullVmConfiguration):
 * loadable again with config_parse_text.
 */
json_t *config_to_json(const struct vm_config *cfg);

#endif
