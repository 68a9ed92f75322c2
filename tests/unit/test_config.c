/*
 * Unit tests for vmm/config.c and vmm/device_config.c: the --config-file parser, its section
 * parsers, the device sections' parsers and cross-checks, and their messages.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"
#include "device_config.h"

#define NAME "test.json"
#define MC NAME ": machine-config."
#define VCPU_RANGE "expected an integer from 1 to 32, got "
#define MEM_RANGE "expected an integer from 16 to 1048576, got "
#define FILE_LIMIT (1024 * 1024)

/* The required machine-config fields, for tests about the others. */
#define REQ "\"vcpu_count\": 1, \"mem_size_mib\": 128, "

/* Macros rather than functions, so that a failure reports the caller's line. */
#define assert_parse_fails(cfg, json, msg)                             \
	do {                                                           \
		char err_[CONFIG_ERR_LEN] = "";                        \
		assert_int_equal(parse((cfg), (json), err_), -EINVAL); \
		assert_string_equal(err_, (msg));                      \
	} while (0)

/* Parses a machine-config section made of the given fields. */
#define assert_machine_fails(cfg, fields, msg)                                          \
	do {                                                                            \
		char json_[512];                                                        \
		snprintf(json_, sizeof(json_), "{\"machine-config\": {%s}}", (fields)); \
		assert_parse_fails((cfg), json_, (msg));                                \
	} while (0)

static const char minimal_json[] = "{\"boot-source\": {\"kernel_image_path\": \"vmlinux\"}}";

static int cfg_setup(void **state)
{
	struct vm_config *cfg = malloc(sizeof(*cfg));

	if (!cfg)
		return -1;
	config_init(cfg);
	*state = cfg;
	return 0;
}

static int cfg_teardown(void **state)
{
	config_free(*state);
	free(*state);
	return 0;
}

/* The path of a file under tests/data/config/, found from this source file's location. */
static void data_path(char *buf, size_t len, const char *file)
{
#ifdef TEST_DATA_DIR
	snprintf(buf, len, "%s/%s", TEST_DATA_DIR, file);
#else
	const char *slash = strrchr(__FILE__, '/');
	int dirlen = slash ? (int)(slash - __FILE__ + 1) : 0;

	snprintf(buf, len, "%.*s../data/config/%s", dirlen, __FILE__, file);
#endif
}

static int parse(struct vm_config *cfg, const char *json, char *err)
{
	return config_parse_text(cfg, NAME, json, strlen(json), err, CONFIG_ERR_LEN);
}

/* Writes size bytes to a new temporary file: json followed by spaces. */
static void write_temp(char *path, size_t pathlen, const char *json, size_t size)
{
	size_t jlen = strlen(json);
	char *buf = malloc(size);
	int fd;

	assert_non_null(buf);
	assert_true(jlen <= size);
	memcpy(buf, json, jlen);
	memset(buf + jlen, ' ', size - jlen);
	snprintf(path, pathlen, "/tmp/kiln-test-config-XXXXXX");
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, buf, size), (ssize_t)size);
	close(fd);
	free(buf);
}

static void config_init_fresh_has_defaults(void **state)
{
	struct vm_config *cfg = *state;

	assert_false(cfg->has_boot_source);
	assert_false(cfg->has_machine_config);
	assert_null(cfg->boot_source.kernel_image_path);
	assert_int_equal(cfg->machine.vcpu_count, 1);
	assert_int_equal(cfg->machine.mem_size_mib, 128);
	assert_int_equal(cfg->machine.huge_pages, HUGE_PAGES_NONE);
	assert_false(cfg->logger.present);
	assert_int_equal(cfg->logger.level, LOG_INFO);
	assert_null(cfg->serial.serial_out_path);
}

static void config_parse_file_full_config_fills_every_field(void **state)
{
	struct vm_config *cfg = *state;
	char err[CONFIG_ERR_LEN] = "";
	char path[4096];

	data_path(path, sizeof(path), "full.json");
	assert_int_equal(config_parse_file(cfg, path, err, sizeof(err)), 0);
	assert_string_equal(err, "");
	assert_true(cfg->has_boot_source);
	assert_string_equal(cfg->boot_source.kernel_image_path, "/srv/kiln/vmlinux");
	assert_string_equal(cfg->boot_source.initrd_path, "/srv/kiln/initrd.cpio");
	assert_string_equal(cfg->boot_source.boot_args, "console=ttyS0 reboot=k panic=1 pci=off");
	assert_true(cfg->has_machine_config);
	assert_int_equal(cfg->machine.vcpu_count, 4);
	assert_int_equal(cfg->machine.mem_size_mib, 2048);
	assert_true(cfg->machine.smt);
	assert_true(cfg->machine.track_dirty_pages);
	assert_int_equal(cfg->machine.huge_pages, HUGE_PAGES_2M);
	assert_true(cfg->logger.present);
	assert_string_equal(cfg->logger.log_path, "/var/log/kiln.log");
	assert_int_equal(cfg->logger.level, LOG_DEBUG);
	assert_true(cfg->logger.show_level);
	assert_true(cfg->logger.show_log_origin);
	assert_string_equal(cfg->serial.serial_out_path, "/var/log/kiln-serial.log");
	assert_int_equal(config_check_bootable(cfg, err, sizeof(err)), 0);
}

static void config_parse_file_minimal_config_keeps_defaults(void **state)
{
	struct vm_config *cfg = *state;
	char err[CONFIG_ERR_LEN] = "";
	char path[4096];

	data_path(path, sizeof(path), "minimal.json");
	assert_int_equal(config_parse_file(cfg, path, err, sizeof(err)), 0);
	assert_string_equal(cfg->boot_source.kernel_image_path, "vmlinux");
	assert_null(cfg->boot_source.initrd_path);
	assert_null(cfg->boot_source.boot_args);
	assert_false(cfg->has_machine_config);
	assert_int_equal(cfg->machine.vcpu_count, 1);
	assert_int_equal(cfg->machine.mem_size_mib, 128);
	assert_false(cfg->machine.smt);
	assert_false(cfg->machine.track_dirty_pages);
	assert_int_equal(cfg->machine.huge_pages, HUGE_PAGES_NONE);
	assert_false(cfg->logger.present);
	assert_null(cfg->serial.serial_out_path);
	assert_int_equal(config_check_bootable(cfg, err, sizeof(err)), 0);
}

static void config_parse_file_malformed_json_reports_line_and_column(void **state)
{
	char err[CONFIG_ERR_LEN] = "";
	char path[4096];
	char want[4200];

	data_path(path, sizeof(path), "malformed.json");
	snprintf(want, sizeof(want), "%s:4:3: invalid JSON: string or '}' expected near '}'", path);
	assert_int_equal(config_parse_file(*state, path, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, want);
}

static void config_parse_text_malformed_json_reports_line_and_column(void **state)
{
	assert_parse_fails(*state, "{\n  \"machine-config\": {\n    \"vcpu_count\": 2 2\n}",
			   NAME ":3:21: invalid JSON: '}' expected near '2'");
	assert_parse_fails(*state, "",
			   NAME ":1:0: invalid JSON: unexpected token near end of file");
	assert_parse_fails(*state, "{\"logger\": {}, \"logger\": {}}",
			   NAME ":1:23: invalid JSON: duplicate object key near '\"logger\"'");
}

static void config_parse_text_top_level_not_object_fails(void **state)
{
	const char *msg = NAME ": expected a JSON object at the top level, got ";
	char want[CONFIG_ERR_LEN];

	snprintf(want, sizeof(want), "%san array", msg);
	assert_parse_fails(*state, "[]", want);
	snprintf(want, sizeof(want), "%s\"x\"", msg);
	assert_parse_fails(*state, "\"x\"", want);
}

static void config_parse_text_not_nul_terminated_reads_len_bytes(void **state)
{
	struct vm_config *cfg = *state;
	size_t len = strlen(minimal_json);
	char err[CONFIG_ERR_LEN] = "";
	char text[sizeof(minimal_json) + 8];

	memcpy(text, minimal_json, len);
	memset(text + len, 'x', sizeof(text) - len);
	assert_int_equal(config_parse_text(cfg, NAME, text, len, err, sizeof(err)), 0);
	assert_string_equal(cfg->boot_source.kernel_image_path, "vmlinux");
}

static void config_parse_text_wrong_type_fails(void **state)
{
	assert_machine_fails(*state, "\"vcpu_count\": \"2\", \"mem_size_mib\": 128",
			     MC "vcpu_count: " VCPU_RANGE "\"2\"");
	assert_machine_fails(*state, "\"vcpu_count\": 2.0, \"mem_size_mib\": 128",
			     MC "vcpu_count: " VCPU_RANGE "2.0");
	assert_machine_fails(*state, "\"vcpu_count\": 2, \"mem_size_mib\": [128]",
			     MC "mem_size_mib: " MEM_RANGE "an array");
	assert_machine_fails(*state, REQ "\"smt\": \"yes\"",
			     MC "smt: expected true or false, got \"yes\"");
	assert_parse_fails(*state, "{\"boot-source\": {\"kernel_image_path\": 12}}",
			   NAME ": boot-source.kernel_image_path: expected a string, got 12");
	assert_parse_fails(*state, "{\"serial\": []}",
			   NAME ": serial: expected an object, got an array");
}

static void config_parse_text_vcpu_count_out_of_range_fails(void **state)
{
	assert_machine_fails(*state, "\"vcpu_count\": 0, \"mem_size_mib\": 128",
			     MC "vcpu_count: " VCPU_RANGE "0");
	assert_machine_fails(*state, "\"vcpu_count\": 33, \"mem_size_mib\": 128",
			     MC "vcpu_count: " VCPU_RANGE "33");
	assert_machine_fails(*state, "\"vcpu_count\": -1, \"mem_size_mib\": 128",
			     MC "vcpu_count: " VCPU_RANGE "-1");
}

static void config_parse_text_mem_size_out_of_range_fails(void **state)
{
	assert_machine_fails(*state, "\"vcpu_count\": 1, \"mem_size_mib\": 0",
			     MC "mem_size_mib: " MEM_RANGE "0");
	assert_machine_fails(*state, "\"vcpu_count\": 1, \"mem_size_mib\": 1000000000000",
			     MC "mem_size_mib: " MEM_RANGE "1000000000000");
}

static void config_parse_text_range_limits_accepted(void **state)
{
	static const char most[] =
		"{\"machine-config\": {\"vcpu_count\": 32, \"mem_size_mib\": 1048576}}";
	static const char least[] =
		"{\"machine-config\": {\"vcpu_count\": 1, \"mem_size_mib\": 16}}";
	struct vm_config *cfg = *state;
	char err[CONFIG_ERR_LEN] = "";

	assert_int_equal(parse(cfg, most, err), 0);
	assert_int_equal(cfg->machine.vcpu_count, CONFIG_MAX_VCPUS);
	assert_int_equal(cfg->machine.mem_size_mib, CONFIG_MAX_MEM_MIB);
	assert_int_equal(parse(cfg, least, err), 0);
	assert_int_equal(cfg->machine.vcpu_count, 1);
	assert_int_equal(cfg->machine.mem_size_mib, CONFIG_MIN_MEM_MIB);
}

static void config_parse_text_inconsistent_machine_fails(void **state)
{
	const char *odd_vcpus = "\"vcpu_count\": 3, \"mem_size_mib\": 128, \"smt\": true";
	const char *odd_mem = "\"vcpu_count\": 1, \"mem_size_mib\": 129, \"huge_pages\": \"2M\"";

	assert_machine_fails(*state, odd_vcpus,
			     MC "vcpu_count: expected 1 or an even number when smt is enabled, "
				"got 3");
	assert_machine_fails(*state, odd_mem,
			     MC "mem_size_mib: expected a multiple of 2 with 2M huge pages, "
				"got 129");
}

static void config_parse_text_unknown_key_fails(void **state)
{
	assert_parse_fails(*state, "{\"boot-source\": {\"kernel_image_path\": \"k\"}, \"x\": 1}",
			   NAME ": unknown key \"x\"");
	assert_parse_fails(*state, "{\"machine_config\": {}}",
			   NAME ": unknown key \"machine_config\"");
	assert_parse_fails(*state, "{\"x\": null}", NAME ": unknown key \"x\"");
}

static void config_parse_text_unknown_field_fails(void **state)
{
	assert_machine_fails(*state, REQ "\"foo\": 1",
			     NAME ": machine-config: unknown field \"foo\"");
	assert_parse_fails(*state, "{\"logger\": {\"level\": \"Info\", \"bar\\nbaz\": 1}}",
			   NAME ": logger: unknown field \"bar?baz\"");
}

static void config_parse_text_unsupported_section_fails(void **state)
{
	static const char *const sections[] = { "balloon", "mmds-config", "cpu-config", "pmem",
						"memory-hotplug" };
	char json[256];
	char msg[256];

	for (size_t i = 0; i < sizeof(sections) / sizeof(sections[0]); i++) {
		snprintf(json, sizeof(json), "{\"%s\": {}}", sections[i]);
		snprintf(msg, sizeof(msg), NAME ": %s: not supported by kiln yet", sections[i]);
		assert_parse_fails(*state, json, msg);
	}
	assert_parse_fails(*state, "{\"pmem\": [{\"id\": \"p\"}]}",
			   NAME ": pmem: not supported by kiln yet");
	assert_parse_fails(*state, "{\"balloon\": []}",
			   NAME ": balloon: not supported by kiln yet");
}

static void config_parse_text_metrics_section_parses(void **state)
{
	struct vm_config cfg;
	char err[CONFIG_ERR_LEN];

	(void)state;
	config_init(&cfg);
	assert_int_equal(config_parse_text(&cfg, NAME, "{\"metrics\": {\"metrics_path\": \"/m\"}}",
					   35, err, sizeof(err)),
			 0);
	assert_string_equal(cfg.metrics.metrics_path, "/m");
	config_free(&cfg);
	assert_parse_fails(*state, "{\"metrics\": {}}",
			   NAME ": metrics.metrics_path: required field missing");
	assert_parse_fails(*state, "{\"metrics\": {\"metrics_path\": 3}}",
			   NAME ": metrics.metrics_path: expected a string, got 3");
}

/* GET /vm/config's document loads back as a --config-file into the same configuration. */
static void config_to_json_round_trip_same_config(void **state)
{
	static const char text[] =
		"{\"boot-source\": {\"kernel_image_path\": \"/k\", \"initrd_path\": \"/i\","
		" \"boot_args\": \"console=ttyS0\"},"
		" \"machine-config\": {\"vcpu_count\": 4, \"mem_size_mib\": 256, \"smt\": true,"
		" \"huge_pages\": \"2M\", \"track_dirty_pages\": true},"
		" \"logger\": {\"level\": \"Debug\", \"log_path\": \"/l\", \"show_level\": true},"
		" \"metrics\": {\"metrics_path\": \"/m\"}, \"serial\": {\"serial_out_path\": \"/s\"}}";
	struct vm_config a, b;
	char err[CONFIG_ERR_LEN];
	json_t *doc;
	char *dumped;

	(void)state;
	config_init(&a);
	config_init(&b);
	assert_int_equal(config_parse_text(&a, NAME, text, sizeof(text) - 1, err, sizeof(err)), 0);
	doc = config_to_json(&a);
	assert_non_null(doc);
	dumped = json_dumps(doc, 0);
	assert_int_equal(config_parse_text(&b, NAME, dumped, strlen(dumped), err, sizeof(err)), 0);
	assert_string_equal(b.boot_source.kernel_image_path, "/k");
	assert_string_equal(b.boot_source.initrd_path, "/i");
	assert_string_equal(b.boot_source.boot_args, "console=ttyS0");
	assert_int_equal(b.machine.vcpu_count, 4);
	assert_int_equal(b.machine.mem_size_mib, 256);
	assert_true(b.machine.smt);
	assert_true(b.machine.track_dirty_pages);
	assert_int_equal(b.machine.huge_pages, HUGE_PAGES_2M);
	assert_int_equal(b.logger.level, LOG_DEBUG);
	assert_string_equal(b.logger.log_path, "/l");
	assert_true(b.logger.show_level);
	assert_string_equal(b.metrics.metrics_path, "/m");
	assert_string_equal(b.serial.serial_out_path, "/s");
	free(dumped);
	json_decref(doc);
	config_free(&a);
	config_free(&b);
}

static void config_parse_file_firecracker_drive_parses(void **state)
{
	struct vm_config *cfg = *state;
	char err[CONFIG_ERR_LEN] = "";
	struct drive_config d = { 0 };
	char path[4096];

	data_path(path, sizeof(path), "with-rootfs-drive.json");
	assert_int_equal(config_parse_file(cfg, path, err, sizeof(err)), 0);
	assert_int_equal(json_array_size(cfg->drives), 1);
	assert_int_equal(config_check_bootable(cfg, err, sizeof(err)), 0);
	assert_int_equal(config_parse_drive(&d, json_array_get(cfg->drives, 0), "d", err,
					    sizeof(err)),
			 0);
	assert_string_equal(d.drive_id, "rootfs");
	assert_string_equal(d.path_on_host, "rootfs.ext4");
	assert_true(d.is_root_device);
	assert_false(d.is_read_only);
	config_drive_free(&d);
}

static void config_parse_text_empty_lists_accepted(void **state)
{
	static const char json[] = "{\"drives\": [], \"network-interfaces\": [], \"pmem\": [], "
				   "\"vsock\": null, \"balloon\": null}";
	struct vm_config *cfg = *state;
	char err[CONFIG_ERR_LEN] = "";

	assert_int_equal(parse(cfg, json, err), 0);
	assert_false(cfg->has_boot_source);
}

static void config_parse_text_unsupported_options_fail(void **state)
{
	assert_machine_fails(*state, REQ "\"huge_pages\": \"Transparent\"",
			     MC "huge_pages: \"Transparent\" is not supported by kiln yet");
	assert_machine_fails(*state, REQ "\"huge_pages\": \"1G\"",
			     MC "huge_pages: expected \"None\" or \"2M\", got \"1G\"");
	assert_machine_fails(*state, REQ "\"cpu_template\": \"T2\"",
			     MC "cpu_template: \"T2\" is not supported by kiln yet");
	assert_machine_fails(*state, REQ "\"cpu_template\": \"Z9\"",
			     MC "cpu_template: expected \"None\", got \"Z9\"");
	assert_parse_fails(*state, "{\"logger\": {\"module\": \"api_server\"}}",
			   NAME ": logger.module: not supported by kiln yet");
	assert_parse_fails(*state, "{\"serial\": {\"rate_limiter\": {\"size\": 1}}}",
			   NAME ": serial.rate_limiter: not supported by kiln yet");
	assert_parse_fails(*state, "{\"logger\": {\"level\": \"loud\"}}",
			   NAME ": logger.level: expected one of Error, Warning, Info, Debug, "
				"Trace, Off, got \"loud\"");
}

static void config_parse_text_missing_required_fails(void **state)
{
	assert_parse_fails(*state, "{\"boot-source\": {\"initrd_path\": \"initrd\"}}",
			   NAME ": boot-source.kernel_image_path: required field missing");
	assert_parse_fails(*state, "{\"boot-source\": {\"kernel_image_path\": \"\"}}",
			   NAME ": boot-source.kernel_image_path: expected a non-empty string");
	assert_machine_fails(*state, "\"mem_size_mib\": 128",
			     MC "vcpu_count: required field missing");
	assert_machine_fails(*state, "\"vcpu_count\": 1",
			     MC "mem_size_mib: required field missing");
}

static void config_parse_text_null_optional_fields_absent(void **state)
{
	static const char json[] =
		"{\"boot-source\": {\"kernel_image_path\": \"k\", \"initrd_path\": null, "
		"\"boot_args\": null}, \"machine-config\": {\"vcpu_count\": 2, "
		"\"mem_size_mib\": 256, \"smt\": null, \"track_dirty_pages\": null, "
		"\"huge_pages\": null, \"cpu_template\": null}, \"logger\": {\"level\": null, "
		"\"log_path\": null, \"module\": null}, \"serial\": {\"serial_out_path\": null, "
		"\"rate_limiter\": null}, \"metrics\": null}";
	struct vm_config *cfg = *state;
	char err[CONFIG_ERR_LEN] = "";

	assert_int_equal(parse(cfg, json, err), 0);
	assert_null(cfg->boot_source.initrd_path);
	assert_null(cfg->boot_source.boot_args);
	assert_int_equal(cfg->machine.vcpu_count, 2);
	assert_false(cfg->machine.smt);
	assert_int_equal(cfg->machine.huge_pages, HUGE_PAGES_NONE);
	assert_true(cfg->logger.present);
	assert_int_equal(cfg->logger.level, LOG_INFO);
	assert_null(cfg->logger.log_path);
	assert_null(cfg->serial.serial_out_path);
}

static void config_parse_text_null_required_field_fails(void **state)
{
	assert_parse_fails(*state, "{\"boot-source\": {\"kernel_image_path\": null}}",
			   NAME ": boot-source.kernel_image_path: expected a string, got null");
}

static void config_parse_text_failure_leaves_cfg_unchanged(void **state)
{
	static const char bad[] = "{\"boot-source\": {\"kernel_image_path\": \"other\"}, "
				  "\"machine-config\": {\"vcpu_count\": 0}}";
	struct vm_config *cfg = *state;
	char err[CONFIG_ERR_LEN] = "";

	assert_int_equal(parse(cfg, minimal_json, err), 0);
	assert_int_equal(parse(cfg, bad, err), -EINVAL);
	assert_string_equal(cfg->boot_source.kernel_image_path, "vmlinux");
	assert_false(cfg->has_machine_config);
}

static void config_parse_text_second_parse_replaces_strings(void **state)
{
	static const char first[] = "{\"boot-source\": {\"kernel_image_path\": \"a\", "
				    "\"initrd_path\": \"i\"}, \"logger\": {\"log_path\": \"l\"}, "
				    "\"serial\": {\"serial_out_path\": \"s\"}}";
	static const char second[] = "{\"boot-source\": {\"kernel_image_path\": \"b\"}, "
				     "\"logger\": {\"log_path\": \"m\"}, "
				     "\"serial\": {\"serial_out_path\": \"t\"}}";
	struct vm_config *cfg = *state;
	char err[CONFIG_ERR_LEN] = "";

	assert_int_equal(parse(cfg, first, err), 0);
	assert_int_equal(parse(cfg, second, err), 0);
	assert_string_equal(cfg->boot_source.kernel_image_path, "b");
	assert_null(cfg->boot_source.initrd_path);
	assert_string_equal(cfg->logger.log_path, "m");
	assert_string_equal(cfg->serial.serial_out_path, "t");
}

static void config_parse_machine_config_bad_body_leaves_out_unchanged(void **state)
{
	struct machine_config mc = { .vcpu_count = 2, .mem_size_mib = 512 };
	char err[CONFIG_ERR_LEN] = "";
	json_t *body;

	(void)state;
	body = json_pack("{s:i, s:i, s:s}", "vcpu_count", 4, "mem_size_mib", 1024, "huge_pages",
			 "x");
	assert_non_null(body);
	assert_int_equal(config_parse_machine_config(&mc, body, "machine-config", err, sizeof(err)),
			 -EINVAL);
	assert_string_equal(err,
			    "machine-config.huge_pages: expected \"None\" or \"2M\", got \"x\"");
	assert_int_equal(mc.vcpu_count, 2);
	assert_int_equal(mc.mem_size_mib, 512);
	json_object_set_new(body, "huge_pages", json_string("2M"));
	assert_int_equal(config_parse_machine_config(&mc, body, "machine-config", err, sizeof(err)),
			 0);
	assert_int_equal(mc.vcpu_count, 4);
	assert_int_equal(mc.huge_pages, HUGE_PAGES_2M);
	json_decref(body);
}

static void config_parse_boot_source_body_replaces_old_strings(void **state)
{
	struct boot_source_config bs = { 0 };
	char err[CONFIG_ERR_LEN] = "";
	json_t *body;

	(void)state;
	body = json_pack("{s:s, s:s}", "kernel_image_path", "k1", "boot_args", "console=ttyS0");
	assert_int_equal(config_parse_boot_source(&bs, body, "boot-source", err, sizeof(err)), 0);
	json_decref(body);
	body = json_pack("{s:s}", "kernel_image_path", "k2");
	assert_int_equal(config_parse_boot_source(&bs, body, "boot-source", err, sizeof(err)), 0);
	json_decref(body);
	assert_string_equal(bs.kernel_image_path, "k2");
	assert_null(bs.boot_args);
	free(bs.kernel_image_path);
}

static void config_parse_file_unreadable_fails(void **state)
{
	char err[CONFIG_ERR_LEN] = "";

	assert_int_equal(config_parse_file(*state, "/nonexistent/vm.json", err, sizeof(err)),
			 -ENOENT);
	assert_string_equal(err, "/nonexistent/vm.json: cannot read: No such file or directory");
	assert_int_equal(config_parse_file(*state, "/", err, sizeof(err)), -EISDIR);
	assert_string_equal(err, "/: cannot read: Is a directory");
}

static void config_parse_file_too_large_fails(void **state)
{
	char err[CONFIG_ERR_LEN] = "";
	char want[CONFIG_ERR_LEN];
	char path[64];
	int rc;

	write_temp(path, sizeof(path), minimal_json, FILE_LIMIT + 1);
	rc = config_parse_file(*state, path, err, sizeof(err));
	unlink(path);
	snprintf(want, sizeof(want), "%s: larger than the 1 MiB limit for a config file", path);
	assert_int_equal(rc, -EFBIG);
	assert_string_equal(err, want);
}

static void config_parse_file_exactly_limit_accepted(void **state)
{
	struct vm_config *cfg = *state;
	char err[CONFIG_ERR_LEN] = "";
	char path[64];
	int rc;

	write_temp(path, sizeof(path), minimal_json, FILE_LIMIT);
	rc = config_parse_file(cfg, path, err, sizeof(err));
	unlink(path);
	assert_int_equal(rc, 0);
	assert_string_equal(cfg->boot_source.kernel_image_path, "vmlinux");
}

static void config_check_bootable_no_boot_source_fails(void **state)
{
	struct vm_config *cfg = *state;
	char err[CONFIG_ERR_LEN] = "";

	assert_int_equal(parse(cfg, "{\"machine-config\": {" REQ "\"smt\": false}}", err), 0);
	assert_int_equal(config_check_bootable(cfg, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "boot-source: required section missing");
}

static void config_log_level_parse_any_case_succeeds(void **state)
{
	static const struct {
		const char *name;
		enum log_level level;
	} cases[] = {
		{ "Error", LOG_ERROR }, { "warning", LOG_WARNING }, { "INFO", LOG_INFO },
		{ "dEbUg", LOG_DEBUG }, { "Trace", LOG_TRACE },     { "off", LOG_OFF },
	};
	enum log_level level;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		level = LOG_INFO;
		assert_int_equal(config_log_level_parse(cases[i].name, &level), 0);
		assert_int_equal(level, cases[i].level);
	}
}

static void config_log_level_parse_unknown_fails(void **state)
{
	enum log_level level = LOG_TRACE;

	(void)state;
	assert_int_equal(config_log_level_parse("Verbose", &level), -EINVAL);
	assert_int_equal(config_log_level_parse("", &level), -EINVAL);
	assert_int_equal(config_log_level_parse("Info ", &level), -EINVAL);
	assert_int_equal(config_log_level_parse(NULL, &level), -EINVAL);
	assert_int_equal(level, LOG_TRACE);
}

static void config_free_parsed_config_resets_to_defaults(void **state)
{
	struct vm_config *cfg = *state;
	char err[CONFIG_ERR_LEN] = "";
	char path[4096];

	data_path(path, sizeof(path), "full.json");
	assert_int_equal(config_parse_file(cfg, path, err, sizeof(err)), 0);
	config_free(cfg);
	assert_false(cfg->has_boot_source);
	assert_null(cfg->boot_source.kernel_image_path);
	assert_null(cfg->boot_source.initrd_path);
	assert_null(cfg->boot_source.boot_args);
	assert_false(cfg->logger.present);
	assert_null(cfg->logger.log_path);
	assert_null(cfg->serial.serial_out_path);
	assert_int_equal(cfg->machine.vcpu_count, 1);
	config_free(cfg);
}

static void config_parse_text_small_errlen_truncates(void **state)
{
	static const char json[] = "{\"x\": 1}";
	char err[16];

	memset(err, '#', sizeof(err));
	assert_int_equal(config_parse_text(*state, NAME, json, strlen(json), err, 10), -EINVAL);
	assert_string_equal(err, "test.json");
	assert_int_equal(err[10], '#');
	memset(err, '#', sizeof(err));
	assert_int_equal(config_parse_text(*state, NAME, json, strlen(json), err, 0), -EINVAL);
	assert_int_equal(err[0], '#');
	assert_int_equal(config_parse_text(*state, NAME, json, strlen(json), NULL, 0), -EINVAL);
}

static void config_parse_text_truncation_keeps_utf8_whole(void **state)
{
	static const char json[] = "{\"\xc3\xa9\xc3\xa9\": 1}";
	char err[CONFIG_ERR_LEN];

	/* 19 bytes fit: "n: unknown key \"", one "é" and half of the next, which must go. */
	assert_int_equal(config_parse_text(*state, "n", json, strlen(json), err, 20), -EINVAL);
	assert_string_equal(err, "n: unknown key \"\xc3\xa9");
}

/* --- device sections (device_config.c) --- */

/* Runs a device parser on a JSON body: it must fail with msg and leave out all zero. */
#define assert_device_fails(parse_fn, type, body, msg)                                          \
	do {                                                                                    \
		char err_[CONFIG_ERR_LEN] = "";                                                 \
		type out_;                                                                      \
		type zero_;                                                                     \
		json_t *b_ = json_loads((body), JSON_DECODE_ANY, NULL);                         \
		memset(&out_, 0, sizeof(out_));                                                 \
		memset(&zero_, 0, sizeof(zero_));                                               \
		assert_non_null(b_);                                                            \
		assert_int_equal(parse_fn(&out_, b_, "d", err_, sizeof(err_)), -EINVAL);        \
		assert_string_equal(err_, (msg));                                               \
		assert_memory_equal(&out_, &zero_, sizeof(out_));                               \
		json_decref(b_);                                                                \
	} while (0)

#define DRIVE_REQ "\"drive_id\": \"rootfs\", \"path_on_host\": \"/r.ext4\", "
/* A drive entry with only the required fields; root is true or false. */
#define DRIVE(id, root) \
	"{\"drive_id\": \"" id "\", \"path_on_host\": \"" id ".img\", \"is_root_device\": " root "}"
#define NET_REQ "\"iface_id\": \"eth0\", \"host_dev_name\": \"tap0\", "
#define BOOT "\"boot-source\": {\"kernel_image_path\": \"vmlinux\"}"

/* Runs a device parser on a JSON body into *out, which must succeed. */
#define assert_device_parses(parse_fn, out, body)                                               \
	do {                                                                                    \
		char err_[CONFIG_ERR_LEN] = "";                                                 \
		json_t *b_ = json_loads((body), 0, NULL);                                       \
		assert_non_null(b_);                                                            \
		assert_int_equal(parse_fn((out), b_, "d", err_, sizeof(err_)), 0);              \
		assert_string_equal(err_, "");                                                  \
		json_decref(b_);                                                                \
	} while (0)

static void config_parse_drive_good_body_fills_fields(void **state)
{
	struct drive_config d = { 0 };

	(void)state;
	assert_device_parses(config_parse_drive, &d,
		   "{" DRIVE_REQ "\"is_root_device\": true, \"is_read_only\": true, "
		   "\"partuuid\": \"0eaa91a0-01\", \"cache_type\": \"Writeback\", "
		   "\"io_engine\": \"Async\", \"rate_limiter\": null, \"socket\": null}");
	assert_string_equal(d.drive_id, "rootfs");
	assert_string_equal(d.path_on_host, "/r.ext4");
	assert_true(d.is_root_device);
	assert_true(d.is_read_only);
	assert_string_equal(d.partuuid, "0eaa91a0-01");
	assert_int_equal(d.cache_type, CACHE_WRITEBACK);
	assert_int_equal(d.io_engine, IO_ENGINE_ASYNC);
	/* A second parse replaces every field, absent ones by their defaults. */
	assert_device_parses(config_parse_drive, &d,
		   "{\"drive_id\": \"data_1\", \"path_on_host\": \"d.img\", "
		   "\"is_root_device\": false, \"partuuid\": null, \"is_read_only\": null}");
	assert_string_equal(d.drive_id, "data_1");
	assert_string_equal(d.path_on_host, "d.img");
	assert_false(d.is_root_device);
	assert_false(d.is_read_only);
	assert_null(d.partuuid);
	assert_int_equal(d.cache_type, CACHE_UNSAFE);
	assert_int_equal(d.io_engine, IO_ENGINE_SYNC);
	config_drive_free(&d);
	assert_null(d.drive_id);
	config_drive_free(&d);
}

static void config_parse_drive_bad_field_fails_naming_it(void **state)
{
	static const struct {
		const char *body, *msg;
	} cases[] = {
		{ "[]", "d: expected an object, got an array" },
		{ "{\"path_on_host\": \"r\", \"is_root_device\": true}",
		  "d.drive_id: required field missing" },
		{ "{\"drive_id\": \"a-b\", \"path_on_host\": \"r\", \"is_root_device\": true}",
		  "d.drive_id: expected letters, digits and '_' only, got \"a-b\"" },
		{ "{\"drive_id\": \"\", \"path_on_host\": \"r\", \"is_root_device\": true}",
		  "d.drive_id: expected a non-empty string" },
		{ "{\"drive_id\": \"r\", \"is_root_device\": true}",
		  "d.path_on_host: required field missing" },
		{ "{\"drive_id\": \"r\", \"path_on_host\": \"\", \"is_root_device\": true}",
		  "d.path_on_host: expected a non-empty string" },
		{ "{\"drive_id\": \"r\", \"path_on_host\": null, \"is_root_device\": true}",
		  "d.path_on_host: expected a string, got null" },
		{ "{" DRIVE_REQ "\"is_read_only\": false}",
		  "d.is_root_device: required field missing" },
		{ "{" DRIVE_REQ "\"is_root_device\": \"yes\"}",
		  "d.is_root_device: expected true or false, got \"yes\"" },
		{ "{" DRIVE_REQ "\"is_root_device\": true, \"is_read_only\": 1}",
		  "d.is_read_only: expected true or false, got 1" },
		{ "{" DRIVE_REQ "\"is_root_device\": true, \"cache_type\": \"None\"}",
		  "d.cache_type: expected \"Unsafe\" or \"Writeback\", got \"None\"" },
		{ "{" DRIVE_REQ "\"is_root_device\": true, \"io_engine\": \"sync\"}",
		  "d.io_engine: expected \"Sync\" or \"Async\", got \"sync\"" },
		{ "{" DRIVE_REQ "\"is_root_device\": true, \"partuuid\": \"a b\"}",
		  "d.partuuid: expected letters, digits, '-', '/' and '=' only (it goes on the "
		  "kernel command line), got \"a b\"" },
		{ "{" DRIVE_REQ "\"is_root_device\": true, \"rate_limiter\": {}}",
		  "d.rate_limiter: not supported by kiln yet" },
		{ "{\"drive_id\": \"r\", \"is_root_device\": true, \"socket\": \"/vhost.sock\"}",
		  "d.socket: not supported by kiln yet" },
		{ "{" DRIVE_REQ "\"is_root_device\": true, \"foo\": 1}",
		  "d: unknown field \"foo\"" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		assert_device_fails(config_parse_drive, struct drive_config, cases[i].body,
				    cases[i].msg);
}

static void config_parse_net_good_body_fills_fields(void **state)
{
	static const uint8_t mac[6] = { 0x06, 0x00, 0xac, 0x10, 0x00, 0x2f };
	struct net_config n = { 0 };

	(void)state;
	assert_device_parses(config_parse_net, &n,
		   "{" NET_REQ "\"guest_mac\": \"06:00:AC:10:00:2f\", \"rx_rate_limiter\": null, "
		   "\"tx_rate_limiter\": null, \"mtu\": null}");
	assert_string_equal(n.iface_id, "eth0");
	assert_string_equal(n.host_dev_name, "tap0");
	assert_true(n.has_guest_mac);
	assert_memory_equal(n.guest_mac, mac, sizeof(mac));
	assert_device_parses(config_parse_net, &n,
		   "{\"iface_id\": \"e1\", \"host_dev_name\": \"tap-kiln.0123\"}");
	assert_string_equal(n.iface_id, "e1");
	assert_string_equal(n.host_dev_name, "tap-kiln.0123");
	assert_false(n.has_guest_mac);
	config_net_free(&n);
	config_net_free(&n);
}

static void config_parse_net_bad_field_fails_naming_it(void **state)
{
	static const struct {
		const char *body, *msg;
	} cases[] = {
		{ "{\"host_dev_name\": \"tap0\"}", "d.iface_id: required field missing" },
		{ "{\"iface_id\": \"eth 0\", \"host_dev_name\": \"tap0\"}",
		  "d.iface_id: expected letters, digits and '_' only, got \"eth 0\"" },
		{ "{\"iface_id\": \"eth0\"}", "d.host_dev_name: required field missing" },
		{ "{\"iface_id\": \"eth0\", \"host_dev_name\": \"\"}",
		  "d.host_dev_name: expected a non-empty string" },
		{ "{\"iface_id\": \"eth0\", \"host_dev_name\": \"tap456789abcdef0\"}",
		  "d.host_dev_name: expected at most 15 characters, got \"tap456789abcdef0\"" },
		{ "{\"iface_id\": \"eth0\", \"host_dev_name\": \"tap/0\"}",
		  "d.host_dev_name: \"tap/0\" is not a valid interface name ('/', ':' and spaces "
		  "are not allowed)" },
		{ "{\"iface_id\": \"eth0\", \"host_dev_name\": \"..\"}",
		  "d.host_dev_name: \"..\" is not a valid interface name" },
		{ "{" NET_REQ "\"guest_mac\": \"06:00:ac:10:00\"}",
		  "d.guest_mac: expected a MAC address like \"06:00:ac:10:00:02\", got "
		  "\"06:00:ac:10:00\"" },
		{ "{" NET_REQ "\"guest_mac\": \"06-00-ac-10-00-02\"}",
		  "d.guest_mac: expected a MAC address like \"06:00:ac:10:00:02\", got "
		  "\"06-00-ac-10-00-02\"" },
		{ "{" NET_REQ "\"guest_mac\": \"06:00:ac:10:0g:02\"}",
		  "d.guest_mac: expected a MAC address like \"06:00:ac:10:00:02\", got "
		  "\"06:00:ac:10:0g:02\"" },
		{ "{" NET_REQ "\"guest_mac\": 6}", "d.guest_mac: expected a string, got 6" },
		{ "{" NET_REQ "\"guest_mac\": \"01:00:5e:00:00:01\"}",
		  "d.guest_mac: \"01:00:5e:00:00:01\" is a multicast address; a guest's MAC must "
		  "be unicast (low bit of the first octet clear)" },
		{ "{" NET_REQ "\"rx_rate_limiter\": {}}",
		  "d.rx_rate_limiter: not supported by kiln yet" },
		{ "{" NET_REQ "\"tx_rate_limiter\": {\"bandwidth\": null}}",
		  "d.tx_rate_limiter: not supported by kiln yet" },
		{ "{" NET_REQ "\"mtu\": 1500}", "d.mtu: not supported by kiln yet" },
		{ "{" NET_REQ "\"allow_mmds_requests\": true}",
		  "d: unknown field \"allow_mmds_requests\"" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		assert_device_fails(config_parse_net, struct net_config, cases[i].body,
				    cases[i].msg);
}

static void config_parse_vsock_good_body_fills_fields(void **state)
{
	struct vsock_config v = { 0 };

	(void)state;
	assert_device_parses(config_parse_vsock, &v,
		   "{\"guest_cid\": 3, \"uds_path\": \"/tmp/v.sock\", \"vsock_id\": \"vsock0\"}");
	assert_int_equal(v.guest_cid, 3);
	assert_string_equal(v.uds_path, "/tmp/v.sock");
	assert_device_parses(config_parse_vsock, &v,
		   "{\"guest_cid\": 4294967294, \"uds_path\": \"v\", \"vsock_id\": null}");
	assert_int_equal(v.guest_cid, 4294967294u);
	assert_string_equal(v.uds_path, "v");
	config_vsock_free(&v);
	config_vsock_free(&v);
}

static void config_parse_vsock_bad_field_fails_naming_it(void **state)
{
	static const struct {
		const char *body, *msg;
	} cases[] = {
		{ "{\"uds_path\": \"v\"}", "d.guest_cid: required field missing" },
		{ "{\"guest_cid\": 2, \"uds_path\": \"v\"}",
		  "d.guest_cid: expected an integer from 3 to 4294967294, got 2" },
		{ "{\"guest_cid\": 4294967295, \"uds_path\": \"v\"}",
		  "d.guest_cid: expected an integer from 3 to 4294967294, got 4294967295" },
		{ "{\"guest_cid\": \"3\", \"uds_path\": \"v\"}",
		  "d.guest_cid: expected an integer from 3 to 4294967294, got \"3\"" },
		{ "{\"guest_cid\": 3}", "d.uds_path: required field missing" },
		{ "{\"guest_cid\": 3, \"uds_path\": \"\"}",
		  "d.uds_path: expected a non-empty string" },
		{ "{\"guest_cid\": 3, \"uds_path\": \"v\", \"vsock_id\": 1}",
		  "d.vsock_id: expected a string, got 1" },
		{ "{\"guest_cid\": 3, \"uds_path\": \"v\", \"port\": 1}",
		  "d: unknown field \"port\"" },
	};

	char body[256];
	char path[109];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		assert_device_fails(config_parse_vsock, struct vsock_config, cases[i].body,
				    cases[i].msg);
	/* sun_path holds 107 bytes and the terminator. */
	memset(path, 'a', sizeof(path) - 1);
	path[sizeof(path) - 1] = '\0';
	snprintf(body, sizeof(body), "{\"guest_cid\": 3, \"uds_path\": \"%s\"}", path);
	assert_device_fails(config_parse_vsock, struct vsock_config, body,
			    "d.uds_path: expected at most 107 bytes (a unix socket's path), "
			    "got 108");
}

static void config_parse_entropy_empty_body_succeeds(void **state)
{
	struct entropy_config e;

	(void)state;
	assert_device_parses(config_parse_entropy, &e, "{}");
	assert_device_parses(config_parse_entropy, &e, "{\"rate_limiter\": null}");
}

static void config_parse_entropy_rate_limiter_fails(void **state)
{
	(void)state;
	assert_device_fails(config_parse_entropy, struct entropy_config,
			    "{\"rate_limiter\": {\"ops\": {\"size\": 1, \"refill_time\": 1}}}",
			    "d.rate_limiter: not supported by kiln yet");
	assert_device_fails(config_parse_entropy, struct entropy_config, "{\"x\": 1}",
			    "d: unknown field \"x\"");
	assert_device_fails(config_parse_entropy, struct entropy_config, "null",
			    "d: expected an object, got null");
}

static void config_parse_text_device_sections_parse(void **state)
{
	static const char json[] =
		"{" BOOT ", \"drives\": [{" DRIVE_REQ "\"is_root_device\": true}, "
		"{\"drive_id\": \"data\", \"path_on_host\": \"d.img\", \"is_root_device\": false, "
		"\"is_read_only\": true}], \"network-interfaces\": [{" NET_REQ
		"\"guest_mac\": \"06:00:00:00:00:01\"}, {\"iface_id\": \"eth1\", "
		"\"host_dev_name\": \"tap1\", \"guest_mac\": \"06:00:00:00:00:02\"}], "
		"\"vsock\": {\"guest_cid\": 3, \"uds_path\": \"v.sock\"}, \"entropy\": {}}";
	struct vm_config *cfg = *state;
	char err[CONFIG_ERR_LEN] = "";

	assert_int_equal(parse(cfg, json, err), 0);
	assert_int_equal(json_array_size(cfg->drives), 2);
	assert_int_equal(json_array_size(cfg->network_interfaces), 2);
	assert_true(json_is_object(cfg->vsock));
	assert_true(json_is_object(cfg->entropy));
	assert_int_equal(config_check_devices(cfg, err, sizeof(err)), 0);
	assert_int_equal(config_check_bootable(cfg, err, sizeof(err)), 0);
}

static void config_parse_text_bad_device_entry_fails_naming_it(void **state)
{
	assert_parse_fails(*state,
			   "{\"drives\": [{\"drive_id\": \"r\", \"is_root_device\": true}]}",
			   NAME ": drives[0].path_on_host: required field missing");
	assert_parse_fails(*state,
			   "{\"network-interfaces\": [{" NET_REQ "\"guest_mac\": null}, "
			   "{\"iface_id\": \"e1\", \"host_dev_name\": \"tap1\", "
			   "\"guest_mac\": \"ff:ff:ff:ff:ff:ff\"}]}",
			   NAME ": network-interfaces[1].guest_mac: \"ff:ff:ff:ff:ff:ff\" is a "
				"multicast address; a guest's MAC must be unicast (low bit of the "
				"first octet clear)");
	assert_parse_fails(*state, "{\"drives\": {}}",
			   NAME ": drives: expected an array, got an object");
	assert_parse_fails(*state, "{\"network-interfaces\": [3]}",
			   NAME ": network-interfaces[0]: expected an object, got 3");
	assert_parse_fails(*state, "{\"vsock\": []}",
			   NAME ": vsock: expected an object, got an array");
	assert_parse_fails(*state, "{\"vsock\": {\"guest_cid\": 1, \"uds_path\": \"v\"}}",
			   NAME ": vsock.guest_cid: expected an integer from 3 to 4294967294, "
				"got 1");
	assert_parse_fails(*state, "{\"entropy\": {\"rate_limiter\": {}}}",
			   NAME ": entropy.rate_limiter: not supported by kiln yet");
}

static void config_parse_text_second_root_device_fails(void **state)
{
	assert_parse_fails(*state,
			   "{\"drives\": [" DRIVE("rootfs", "true") ", " DRIVE("data", "false") ", "
			   DRIVE("other", "true") "]}",
			   NAME ": drives[2].is_root_device: drive \"other\" cannot be a second "
				"root device: drive \"rootfs\" (drives[0]) already is");
}

static void config_parse_text_duplicate_ids_fail(void **state)
{
	assert_parse_fails(*state,
			   "{\"drives\": [" DRIVE("rootfs", "false") ", "
			   DRIVE("rootfs", "true") "]}",
			   NAME ": drives[1].drive_id: \"rootfs\" is already used by drives[0]");
	assert_parse_fails(*state,
			   "{\"network-interfaces\": [{" NET_REQ "\"guest_mac\": null}, "
			   "{\"iface_id\": \"eth0\", \"host_dev_name\": \"tap1\"}]}",
			   NAME ": network-interfaces[1].iface_id: \"eth0\" is already used by "
				"network-interfaces[0] (iface_id \"eth0\")");
	assert_parse_fails(*state,
			   "{\"network-interfaces\": [{" NET_REQ "\"guest_mac\": null}, "
			   "{\"iface_id\": \"eth1\", \"host_dev_name\": \"tap0\"}]}",
			   NAME ": network-interfaces[1].host_dev_name: \"tap0\" is already used "
				"by network-interfaces[0] (iface_id \"eth0\")");
	assert_parse_fails(*state,
			   "{\"network-interfaces\": [{" NET_REQ
			   "\"guest_mac\": \"06:00:00:00:00:0A\"}, "
			   "{\"iface_id\": \"eth1\", \"host_dev_name\": \"tap1\", "
			   "\"guest_mac\": \"06:00:00:00:00:0a\"}]}",
			   NAME ": network-interfaces[1].guest_mac: \"06:00:00:00:00:0a\" is "
				"already used by network-interfaces[0] (iface_id \"eth0\")");
}

/* Appends n drives named d0, d1... to a config file's text. */
static void append_drives(char *json, size_t len, int n)
{
	for (int i = 0; i < n; i++)
		snprintf(json + strlen(json), len - strlen(json),
			 "%s{\"drive_id\": \"d%d\", \"path_on_host\": \"d\", "
			 "\"is_root_device\": false}",
			 i ? ", " : "", i);
}

static void config_parse_text_too_many_devices_fails(void **state)
{
	struct vm_config *cfg = *state;
	char err[CONFIG_ERR_LEN] = "";
	char json[4096] = "{\"drives\": [";

	/* 17 drives, a vsock and an entropy device: 19, the most there are IRQs for. */
	append_drives(json, sizeof(json), CONFIG_MAX_VIRTIO_DEVICES - 2);
	strcat(json, "], \"vsock\": {\"guest_cid\": 3, \"uds_path\": \"v\"}, \"entropy\": {}}");
	assert_int_equal(parse(cfg, json, err), 0);
	assert_int_equal(json_array_size(cfg->drives), CONFIG_MAX_VIRTIO_DEVICES - 2);
	/* One network interface more is one device too many. */
	assert_parse_fails(cfg, "{\"network-interfaces\": [{" NET_REQ "\"guest_mac\": null}]}",
			   NAME ": too many virtio devices: 17 drives, 1 network-interfaces, "
				"1 vsock and 1 entropy make 20; kiln has room for at most 19");
	assert_null(cfg->network_interfaces);
}

/* A section in a later file replaces the earlier one; a failed parse keeps the old ones. */
static void config_parse_text_device_sections_replace(void **state)
{
	struct vm_config *cfg = *state;
	char err[CONFIG_ERR_LEN] = "";

	assert_int_equal(parse(cfg, "{\"drives\": [{" DRIVE_REQ "\"is_root_device\": true}]}", err),
			 0);
	assert_parse_fails(cfg,
			   "{\"drives\": [" DRIVE("a", "true") ", " DRIVE("b", "true") "]}",
			   NAME ": drives[1].is_root_device: drive \"b\" cannot be a second root "
				"device: drive \"a\" (drives[0]) already is");
	assert_string_equal(json_string_value(json_object_get(json_array_get(cfg->drives, 0),
							       "drive_id")),
			    "rootfs");
	assert_int_equal(parse(cfg, "{\"drives\": [], \"vsock\": null}", err), 0);
	assert_int_equal(json_array_size(cfg->drives), 0);
	assert_null(cfg->vsock);
}

/* The API stores bodies in cfg directly: config_check_bootable catches what they break. */
static void config_check_bootable_duplicate_drive_fails(void **state)
{
	struct vm_config *cfg = *state;
	char err[CONFIG_ERR_LEN] = "";

	assert_int_equal(parse(cfg, minimal_json, err), 0);
	cfg->drives = json_pack("[{s:s, s:s, s:b}, {s:s, s:s, s:b}]", "drive_id", "a",
				"path_on_host", "a", "is_root_device", 0, "drive_id", "a",
				"path_on_host", "b", "is_root_device", 0);
	assert_non_null(cfg->drives);
	assert_int_equal(config_check_bootable(cfg, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "drives[1].drive_id: \"a\" is already used by drives[0]");
	json_decref(cfg->drives);
	cfg->drives = json_pack("{}");
	assert_int_equal(config_check_devices(cfg, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "drives: expected an array, got an object");
}

/* GET /vm/config with devices loads back as a --config-file with the same devices. */
static void config_to_json_devices_round_trip(void **state)
{
	static const char text[] =
		"{" BOOT ", \"drives\": [{" DRIVE_REQ "\"is_root_device\": true}], "
		"\"network-interfaces\": [{" NET_REQ "\"guest_mac\": null}], "
		"\"vsock\": {\"guest_cid\": 7, \"uds_path\": \"v\"}, \"entropy\": {}}";
	struct vm_config *cfg = *state;
	char err[CONFIG_ERR_LEN] = "";
	struct vm_config b;
	json_t *doc;
	char *dumped;

	assert_int_equal(parse(cfg, text, err), 0);
	doc = config_to_json(cfg);
	assert_non_null(doc);
	assert_true(json_is_object(json_object_get(doc, "entropy")));
	dumped = json_dumps(doc, 0);
	assert_non_null(dumped);
	config_init(&b);
	assert_int_equal(config_parse_text(&b, NAME, dumped, strlen(dumped), err, sizeof(err)), 0);
	assert_true(json_equal(b.drives, cfg->drives));
	assert_true(json_equal(b.network_interfaces, cfg->network_interfaces));
	assert_true(json_equal(b.vsock, cfg->vsock));
	assert_true(json_equal(b.entropy, cfg->entropy));
	config_free(&b);
	free(dumped);
	json_decref(doc);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, cfg_setup, cfg_teardown)
	const struct CMUnitTest tests[] = {
		T(config_init_fresh_has_defaults),
		T(config_parse_file_full_config_fills_every_field),
		T(config_parse_file_minimal_config_keeps_defaults),
		T(config_parse_file_malformed_json_reports_line_and_column),
		T(config_parse_text_malformed_json_reports_line_and_column),
		T(config_parse_text_top_level_not_object_fails),
		T(config_parse_text_not_nul_terminated_reads_len_bytes),
		T(config_parse_text_wrong_type_fails),
		T(config_parse_text_vcpu_count_out_of_range_fails),
		T(config_parse_text_mem_size_out_of_range_fails),
		T(config_parse_text_range_limits_accepted),
		T(config_parse_text_inconsistent_machine_fails),
		T(config_parse_text_unknown_key_fails),
		T(config_parse_text_unknown_field_fails),
		T(config_parse_text_unsupported_section_fails),
		T(config_parse_text_metrics_section_parses),
		T(config_to_json_round_trip_same_config),
		T(config_parse_file_firecracker_drive_parses),
		T(config_parse_text_empty_lists_accepted),
		T(config_parse_text_unsupported_options_fail),
		T(config_parse_text_missing_required_fails),
		T(config_parse_text_null_optional_fields_absent),
		T(config_parse_text_null_required_field_fails),
		T(config_parse_text_failure_leaves_cfg_unchanged),
		T(config_parse_text_second_parse_replaces_strings),
		T(config_parse_machine_config_bad_body_leaves_out_unchanged),
		T(config_parse_boot_source_body_replaces_old_strings),
		T(config_parse_file_unreadable_fails),
		T(config_parse_file_too_large_fails),
		T(config_parse_file_exactly_limit_accepted),
		T(config_check_bootable_no_boot_source_fails),
		T(config_log_level_parse_any_case_succeeds),
		T(config_log_level_parse_unknown_fails),
		T(config_free_parsed_config_resets_to_defaults),
		T(config_parse_text_small_errlen_truncates),
		T(config_parse_text_truncation_keeps_utf8_whole),
		T(config_parse_drive_good_body_fills_fields),
		T(config_parse_drive_bad_field_fails_naming_it),
		T(config_parse_net_good_body_fills_fields),
		T(config_parse_net_bad_field_fails_naming_it),
		T(config_parse_vsock_good_body_fills_fields),
		T(config_parse_vsock_bad_field_fails_naming_it),
		T(config_parse_entropy_empty_body_succeeds),
		T(config_parse_entropy_rate_limiter_fails),
		T(config_parse_text_device_sections_parse),
		T(config_parse_text_bad_device_entry_fails_naming_it),
		T(config_parse_text_second_root_device_fails),
		T(config_parse_text_duplicate_ids_fail),
		T(config_parse_text_too_many_devices_fails),
		T(config_parse_text_device_sections_replace),
		T(config_check_bootable_duplicate_drive_fails),
		T(config_to_json_devices_round_trip),
	};
#undef T

	return cmocka_run_group_tests_name("config.c", tests, NULL, NULL);
}
