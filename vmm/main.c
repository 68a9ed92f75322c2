/* kiln's entry point: command-line options, configuration, build and run of one microVM. */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "vm.h"

#define KILN_VERSION "0.1.0"
#define ID_MAX 64

struct options {
	const char *config_file;
	const char *api_sock;
	const char *id;
	const char *log_path;
	enum log_level level;
	bool show_level;
	bool show_log_origin;
	bool no_api;
	bool boot_timer;
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: kiln --config-file FILE --no-api [options]\n"
		"\n"
		"Boots one Linux microVM with KVM. Options (Firecracker's names):\n"
		"  --config-file FILE     VM configuration in Firecracker's JSON format\n"
		"  --no-api               run without the API socket (needs --config-file)\n"
		"  --api-sock PATH        API socket (not supported yet)\n"
		"  --id ID                instance id, letters, digits and '-' (default\n"
		"                         anonymous-instance)\n"
		"  --log-path PATH        write the log there instead of stderr\n"
		"  --level LEVEL          Error, Warning, Info (default), Debug, Trace or Off\n"
		"  --show-level           put the level in each log line\n"
		"  --show-log-origin      put the source file and line in each log line\n"
		"  --boot-timer           log the time from start until the guest writes 123 to\n"
		"                         MMIO 0xd0000000\n"
		"  --version              print the version and exit\n"
		"  --help                 print this help and exit\n"
		"\n"
		"Exit codes: 0 guest rebooted or shut down, 1 error, 152 bad configuration,\n"
		"153 bad arguments, 128+N stopped by signal N.\n");
}

static bool valid_id(const char *id)
{
	size_t n = strlen(id);

	if (n == 0 || n > ID_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!(id[i] == '-' || (id[i] >= '0' && id[i] <= '9') ||
		      (id[i] >= 'a' && id[i] <= 'z') || (id[i] >= 'A' && id[i] <= 'Z')))
			return false;
	return true;
}

/* Takes "--name value" or "--name=value"; returns the value or NULL (and reports it). */
static const char *option_value(int argc, char **argv, int *i, const char *arg, size_t name_len)
{
	if (arg[name_len] == '=')
		return arg + name_len + 1;
	if (*i + 1 < argc)
		return argv[++*i];
	fprintf(stderr, "kiln: %.*s needs a value\n", (int)name_len, arg);
	return NULL;
}

/* Returns 0 to go on, 1 when done (help, version), -1 on a bad argument. */
static int parse_args(int argc, char **argv, struct options *o)
{
	static const char *const valued[] = { "--config-file", "--api-sock", "--id", "--log-path",
					      "--level" };

	for (int i = 1; i < argc; i++) {
		const char *arg = argv[i], *val = NULL;
		size_t k;

		for (k = 0; k < sizeof(valued) / sizeof(valued[0]); k++) {
			size_t n = strlen(valued[k]);

			if (strncmp(arg, valued[k], n) == 0 && (arg[n] == '\0' || arg[n] == '=')) {
				if (!(val = option_value(argc, argv, &i, arg, n)))
					return -1;
				break;
			}
		}
		if (k == 0) {
			o->config_file = val;
		} else if (k == 1) {
			o->api_sock = val;
		} else if (k == 2) {
			if (!valid_id(val)) {
				fprintf(stderr, "kiln: --id \"%s\": use 1 to %d letters, digits or '-'\n",
					val, ID_MAX);
				return -1;
			}
			o->id = val;
		} else if (k == 3) {
			o->log_path = val;
		} else if (k == 4) {
			if (config_log_level_parse(val, &o->level) < 0) {
				fprintf(stderr, "kiln: --level \"%s\": expected Error, Warning, Info, "
						"Debug, Trace or Off\n", val);
				return -1;
			}
		} else if (strcmp(arg, "--no-api") == 0) {
			o->no_api = true;
		} else if (strcmp(arg, "--boot-timer") == 0) {
			o->boot_timer = true;
		} else if (strcmp(arg, "--show-level") == 0) {
			o->show_level = true;
		} else if (strcmp(arg, "--show-log-origin") == 0) {
			o->show_log_origin = true;
		} else if (strcmp(arg, "--version") == 0) {
			printf("kiln v%s\n", KILN_VERSION);
			return 1;
		} else if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
			usage(stdout);
			return 1;
		} else {
			fprintf(stderr, "kiln: unknown argument \"%s\" (see kiln --help)\n", arg);
			return -1;
		}
	}
	if (o->api_sock || !o->no_api) {
		fprintf(stderr, "kiln: the API socket is not supported yet: run with --no-api and "
				"--config-file\n");
		return -1;
	}
	if (!o->config_file) {
		fprintf(stderr, "kiln: --no-api needs --config-file\n");
		return -1;
	}
	return 0;
}

/* Checks that the files the configuration names can be read, before KVM is touched. */
static int check_files(const char *name, const struct vm_config *cfg, char *err, size_t errlen)
{
	const struct {
		const char *field, *path;
	} files[] = {
		{ "boot-source.kernel_image_path", cfg->boot_source.kernel_image_path },
		{ "boot-source.initrd_path", cfg->boot_source.initrd_path },
	};

	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		if (files[i].path && access(files[i].path, R_OK) < 0) {
			snprintf(err, errlen, "%s: %s: %s: %s", name, files[i].field, files[i].path,
				 strerror(errno));
			return -errno;
		}
	}
	return 0;
}

static int setup_logging(const struct options *o, const struct vm_config *cfg)
{
	const struct logger_config *l = &cfg->logger;
	const char *path = l->present && l->log_path ? l->log_path : o->log_path;
	enum log_level level = l->present ? l->level : o->level;
	int ret;

	ret = log_setup(path, level, o->show_level || (l->present && l->show_level),
			o->show_log_origin || (l->present && l->show_log_origin));
	if (ret < 0)
		fprintf(stderr, "kiln: log path %s: %s\n", path, strerror(-ret));
	return ret;
}

int main(int argc, char **argv)
{
	struct options opts = { .id = "anonymous-instance", .level = LOG_INFO };
	char err[CONFIG_ERR_LEN];
	struct vm_config cfg;
	struct vm *vm;
	int ret;

	ret = parse_args(argc, argv, &opts);
	if (ret != 0)
		return ret > 0 ? 0 : VM_EXIT_ARG_PARSING;

	config_init(&cfg);
	if (config_parse_file(&cfg, opts.config_file, err, sizeof(err)) < 0 ||
	    config_check_bootable(&cfg, err, sizeof(err)) < 0 ||
	    check_files(opts.config_file, &cfg, err, sizeof(err)) < 0) {
		fprintf(stderr, "kiln: %s\n", err);
		config_free(&cfg);
		return VM_EXIT_BAD_CONFIG;
	}
	if (setup_logging(&opts, &cfg) < 0) {
		config_free(&cfg);
		return VM_EXIT_BAD_CONFIG;
	}
	log_debug("instance %s: %u vCPUs, %u MiB", opts.id, cfg.machine.vcpu_count,
		  cfg.machine.mem_size_mib);

	vm = calloc(1, sizeof(*vm));
	if (!vm) {
		fprintf(stderr, "kiln: out of memory\n");
		config_free(&cfg);
		return VM_EXIT_ERROR;
	}
	ret = vm_build(vm, &cfg, opts.boot_timer);
	if (ret < 0) {
		free(vm);
		config_free(&cfg);
		return VM_EXIT_ERROR;
	}
	ret = vm_run(vm);
	vm_destroy(vm);
	free(vm);
	config_free(&cfg);
	return ret;
}
