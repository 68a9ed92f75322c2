/*
 * Fuzz target for the --config-file parser: the input is the file's bytes, given to
 * config_parse_text as main.c gives them (vmm/config.c, config_field.c, device_config.c). Each
 * input is parsed twice: into a fresh configuration, as main.c does, and over a configuration
 * that already has every non-device section, as a second file or the API's would. Traps unless:
 *   - both parses agree, and a failure gives one line: non-empty, no control characters,
 *     starting with the file's name, the same both times, valid UTF-8 unless it quotes a JSON
 *     syntax error; the configuration it was parsed over is left as it was;
 *   - a success gives a configuration that passes what kiln applies next (config_check_devices;
 *     config_check_bootable when boot-source is there, and a "boot-source" message when not),
 *     with the machine-config's invariants, and that config_to_json writes back as a file
 *     config_parse_text reads to the same configuration; over the full configuration, the
 *     sections the file had replace their own, the others stay.
 * KILN_FUZZ_LOG=1 in the environment prints each input's message, or what it was read as.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "config.h"
#include "device_config.h"
#include "fuzz_fail.h"

#define NAME "vm.json"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Every non-device section, none of them the default: what a parse over it must keep. */
static const char full_text[] =
	"{\"boot-source\": {\"kernel_image_path\": \"/k\", \"initrd_path\": \"/i\", "
	"\"boot_args\": \"console=ttyS0\"}, "
	"\"machine-config\": {\"vcpu_count\": 2, \"mem_size_mib\": 256, \"smt\": true, "
	"\"track_dirty_pages\": true, \"huge_pages\": \"2M\"}, "
	"\"logger\": {\"level\": \"Debug\", \"log_path\": \"/l\", \"show_level\": true}, "
	"\"metrics\": {\"metrics_path\": \"/m\"}, \"serial\": {\"serial_out_path\": \"/s\"}}";

static bool log_stderr; /* KILN_FUZZ_LOG is set */

static bool valid_utf8(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;

	while (*p) {
		unsigned need = *p < 0x80 ? 0 : (*p & 0xe0) == 0xc0 ? 1 : (*p & 0xf0) == 0xe0 ? 2 :
			(*p & 0xf8) == 0xf0 ? 3 : 4;

		if (need == 4)
			return false;
		for (p++; need; need--, p++)
			if ((*p & 0xc0) != 0x80)
				return false;
	}
	return true;
}

/* The one line a failure must leave: main.c prints it after "kiln: ". */
static void check_err(const char *err, int rc)
{
	if (rc != -EINVAL && rc != -ENOMEM)
		fail("refused with %d, not -EINVAL or -ENOMEM: %s", rc, err);
	if (!err[0])
		fail("refused (%d) with an empty message", rc);
	if (strncmp(err, NAME ":", sizeof(NAME)) != 0)
		fail("a message not naming the file: %s", err);
	if (strlen(err) >= CONFIG_ERR_LEN)
		fail("a message of %zu bytes", strlen(err));
	for (const char *p = err; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			fail("control character 0x%02x in the message: %s", (unsigned char)*p, err);
	/* jansson's syntax errors quote the input's bytes as they are (api_fault_body knows);
	 * every other message quotes JSON strings, and must cut them on a character. */
	if (!strstr(err, ": invalid JSON: ") && !valid_utf8(err))
		fail("a message that is not UTF-8: %s", err);
}

/* config_to_json of cfg as text; the caller frees it. */
static char *dump(const struct vm_config *cfg)
{
	json_t *j = config_to_json(cfg);
	char *text;

	if (!j)
		fail("config_to_json: NULL");
	text = json_dumps(j, JSON_SORT_KEYS | JSON_COMPACT);
	json_decref(j);
	if (!text)
		fail("json_dumps: NULL");
	return text;
}

static void check_machine(const struct machine_config *m)
{
	if (m->vcpu_count < 1 || m->vcpu_count > CONFIG_MAX_VCPUS ||
	    m->mem_size_mib < CONFIG_MIN_MEM_MIB || m->mem_size_mib > CONFIG_MAX_MEM_MIB ||
	    (m->smt && m->vcpu_count > 1 && m->vcpu_count % 2) ||
	    (m->huge_pages == HUGE_PAGES_2M && m->mem_size_mib % 2) ||
	    (m->huge_pages != HUGE_PAGES_NONE && m->huge_pages != HUGE_PAGES_2M))
		fail("accepted machine-config: %u vCPUs, %u MiB, smt %d, huge pages %d",
		     m->vcpu_count, m->mem_size_mib, m->smt, m->huge_pages);
}

/* What kiln runs on an accepted configuration before building the VM. */
static void check_accepted(const struct vm_config *cfg)
{
	char err[CONFIG_ERR_LEN] = "";
	struct vm_config again;
	char *text, *text2;
	int rc;

	check_machine(&cfg->machine);
	if (config_check_devices(cfg, err, sizeof(err)) < 0)
		fail("accepted, then config_check_devices: %s", err);
	rc = config_check_bootable(cfg, err, sizeof(err));
	if (cfg->has_boot_source && rc < 0)
		fail("accepted with a boot-source, then config_check_bootable: %s", err);
	if (!cfg->has_boot_source && (rc != -EINVAL || !strstr(err, "boot-source")))
		fail("accepted without boot-source, then config_check_bootable gave %d: %s", rc,
		     err);
	if (cfg->has_boot_source && (!cfg->boot_source.kernel_image_path ||
				     !cfg->boot_source.kernel_image_path[0]))
		fail("accepted a boot-source without a kernel");

	/* config_to_json writes a file kiln reads back to the same configuration. */
	text = dump(cfg);
	config_init(&again);
	rc = config_parse_text(&again, NAME, text, strlen(text), err, sizeof(err));
	if (rc < 0)
		fail("config_to_json's file refused: %s: %s", err, text);
	text2 = dump(&again);
	if (strcmp(text, text2) != 0)
		fail("config_to_json's file reads back as another: %s, then %s", text, text2);
	free(text2);
	free(text);
	config_free(&again);
}

static bool same(json_t *a, json_t *b)
{
	return (!a && !b) || (a && b && json_equal(a, b));
}

/*
 * Over the full configuration: sections the file had (not null) are the fresh parse's, the
 * others the full configuration's.
 */
static void check_over(json_t *root, const struct vm_config *fresh, const struct vm_config *over,
		       json_t *before)
{
	json_t *f = config_to_json(fresh), *o = config_to_json(over);
	const char *key;
	json_t *v;

	if (!f || !o)
		fail("config_to_json: NULL");
	json_object_foreach(before, key, v) {
		json_t *in = json_object_get(root, key);
		bool replaced = in && !json_is_null(in);

		if (replaced && !same(json_object_get(f, key), json_object_get(o, key)))
			fail("over a full configuration, \"%s\" is not the file's", key);
		if (!replaced && !same(v, json_object_get(o, key)))
			fail("over a full configuration, \"%s\" changed though the file had none",
			     key);
	}
	json_object_foreach(o, key, v) {
		json_t *in = json_object_get(root, key);

		if (!json_object_get(before, key) && (!in || json_is_null(in)))
			fail("over a full configuration, \"%s\" appeared from nowhere", key);
	}
	json_decref(f);
	json_decref(o);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct vm_config cfg;
	char err[CONFIG_ERR_LEN];

	(void)argc;
	(void)argv;
	log_stderr = getenv("KILN_FUZZ_LOG") != NULL;
	config_init(&cfg);
	if (config_parse_text(&cfg, NAME, full_text, strlen(full_text), err, sizeof(err)) < 0)
		fail("the full configuration: %s", err);
	config_free(&cfg);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[CONFIG_ERR_LEN] = "", err_over[CONFIG_ERR_LEN] = "";
	struct vm_config fresh, over;
	char *text = malloc(size ? size : 1); /* exactly the input: ASan sees a read past it */
	json_t *before, *root;
	int rc, rc_over;

	if (!text)
		return 0;
	memcpy(text, data, size);
	config_init(&fresh);
	config_init(&over);
	if (config_parse_text(&over, NAME, full_text, strlen(full_text), err, sizeof(err)) < 0)
		fail("the full configuration: %s", err);
	before = config_to_json(&over);

	rc = config_parse_text(&fresh, NAME, text, size, err, sizeof(err));
	rc_over = config_parse_text(&over, NAME, text, size, err_over, sizeof(err_over));
	if (log_stderr) {
		char *t = rc < 0 ? NULL : dump(&fresh);

		fprintf(stderr, "fuzz_config: %s\n", t ? t : err);
		free(t);
	}
	if ((rc < 0) != (rc_over < 0))
		fail("fresh %d (%s), over a full configuration %d (%s)", rc, err, rc_over,
		     err_over);
	if (rc < 0) {
		json_t *after = config_to_json(&over);

		check_err(err, rc);
		if (strcmp(err, err_over) != 0)
			fail("two messages for one file: %s, then %s", err, err_over);
		if (!json_equal(before, after))
			fail("a refused file changed the configuration (%s)", err);
		json_decref(after);
	} else {
		if (rc != 0)
			fail("accepted with %d", rc);
		check_accepted(&fresh);
		check_accepted(&over);
		root = json_loadb(text, size, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, NULL);
		if (!json_is_object(root))
			fail("accepted what jansson does not read as an object");
		check_over(root, &fresh, &over, before);
		json_decref(root);
	}
	json_decref(before);
	config_free(&fresh);
	config_free(&over);
	free(text);
	return 0;
}
