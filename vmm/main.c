/* kiln's entry point: command-line options, configuration, build and run of one microVM. */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "api.h"
#include "config.h"
#include "instance_id.h"
#include "log.h"
#include "seccomp_filter.h"
#include "migrate.h"
#include "snapshot.h"
#include "vmm.h"

#define DEFAULT_API_SOCK "/run/kiln.socket"

struct options {
	const char *config_file;
	const char *api_sock;
	const char *id;
	const char *log_path;
	const char *metrics_path;
	size_t max_payload;
	enum log_level level;
	bool show_level;
	bool show_log_origin;
	bool no_api;
	bool boot_timer;
	bool no_seccomp;
	const char *migrate_in;
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: kiln [--api-sock PATH] [--config-file FILE] [options]\n"
		"       kiln --no-api --config-file FILE [options]\n"
		"\n"
		"Runs one Linux microVM with KVM, configured through Firecracker's REST API on a\n"
		"unix socket and/or a config file. Options (Firecracker's names):\n"
		"  --api-sock PATH        API socket (default " DEFAULT_API_SOCK "); must not exist\n"
		"  --config-file FILE     VM configuration in Firecracker's JSON format: the VM\n"
		"                         starts from it at once\n"
		"  --no-api               no API socket (needs --config-file)\n"
		"  --http-api-max-payload-size N\n"
		"                         largest API request body in bytes (default 51200)\n"
		"  --id ID                instance id, letters, digits and '-' (default\n"
		"                         anonymous-instance)\n"
		"  --log-path PATH        write the log there instead of stderr\n"
		"  --metrics-path PATH    write metrics there (a file or a named pipe)\n"
		"  --level LEVEL          Error, Warning, Info (default), Debug, Trace or Off\n"
		"  --show-level           put the level in each log line\n"
		"  --show-log-origin      put the source file and line in each log line\n"
		"  --boot-timer           log the time from start until the guest writes 123 to\n"
		"                         MMIO 0xd0000000\n"
		"  --no-seccomp           run without seccomp filters (not for production)\n"
		"  --print-seccomp THREAD print the seccomp policy of THREAD (main, main-running,\n"
		"                         api, vcpu or uffd) and exit\n"
		"  --describe-snapshot F  check the snapshot state file F and print its format\n"
		"                         version, machine, sections and poisoned pages, then exit\n"
		"  --migrate-in URI       wait for a live migration's source at URI (unix:PATH or\n"
		"                         tcp:ADDR:PORT) and run the microVM it sends\n"
		"  --version              print the version and exit\n"
		"  snapshot-rebase BASE DIFF  merge the Diff snapshot memory file DIFF onto BASE\n"
		"  --help                 print this help and exit\n"
		"\n"
		"Exit codes: 0 guest rebooted or shut down, 1 error, 148 a thread made a system call\n"
		"its seccomp filter forbids, 149 a SIGBUS that was no guest memory error, 152 bad\n"
		"configuration, 153 bad arguments, 128+N stopped by signal N.\n");
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
					      "--level", "--http-api-max-payload-size",
					      "--metrics-path", "--print-seccomp",
					      "--describe-snapshot", "--migrate-in" };

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
			if (!instance_id_valid(val)) {
				fprintf(stderr, "kiln: --id \"%s\": use 1 to %d letters, digits or '-'\n",
					val, INSTANCE_ID_MAX);
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
		} else if (k == 5) {
			char *end;
			unsigned long long n;

			errno = 0;
			n = strtoull(val, &end, 10);
			if (errno || *end || end == val || n == 0 || n > 64ull * 1024 * 1024) {
				fprintf(stderr, "kiln: --http-api-max-payload-size \"%s\": expected "
						"bytes from 1 to 67108864\n", val);
				return -1;
			}
			o->max_payload = (size_t)n;
		} else if (k == 6) {
			o->metrics_path = val;
		} else if (k == 7) {
			int t = seccomp_filter_thread_parse(val);

			if (t < 0) {
				fprintf(stderr, "kiln: --print-seccomp \"%s\": expected main, "
						"main-running, api, vcpu or uffd\n", val);
				return -1;
			}
			return seccomp_filter_print(stdout, (enum seccomp_thread)t) < 0 ? -1 : 1;
		} else if (k == 8) {
			char err[1024];

			if (snapshot_describe(stdout, val, err, sizeof(err)) < 0) {
				fprintf(stderr, "kiln: --describe-snapshot %s\n", err);
				return -1;
			}
			return 1;
		} else if (k == 9) {
			o->migrate_in = val;
		} else if (strcmp(arg, "--no-seccomp") == 0) {
			o->no_seccomp = true;
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
	if (o->no_api && o->api_sock) {
		fprintf(stderr, "kiln: --no-api and --api-sock exclude each other\n");
		return -1;
	}
	if (o->no_api && !o->config_file) {
		fprintf(stderr, "kiln: --no-api needs --config-file\n");
		return -1;
	}
	if (o->migrate_in && o->config_file) {
		fprintf(stderr, "kiln: --migrate-in and --config-file exclude each other (the "
				"source sends the configuration)\n");
		return -1;
	}
	if (!o->no_api && !o->api_sock)
		o->api_sock = DEFAULT_API_SOCK;
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

static uint64_t us_of(const struct timespec *ts)
{
	return (uint64_t)ts->tv_sec * 1000000 + (uint64_t)ts->tv_nsec / 1000;
}

/* Firecracker's startup figures: from main until the API socket serves, wall and CPU time. */
static void record_startup(struct metrics *metrics, const struct timespec *t0)
{
	struct timespec now, cpu;

	clock_gettime(CLOCK_MONOTONIC, &now);
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &cpu);
	metrics_set(&metrics->api_server.process_startup_time_us, us_of(&now) - us_of(t0));
	metrics_set(&metrics->api_server.process_startup_time_cpu_us, us_of(&cpu));
	log_debug("API ready %llu us after start, %llu us of CPU",
		  (unsigned long long)(us_of(&now) - us_of(t0)), (unsigned long long)us_of(&cpu));
}

/* Run by libmicrohttpd's thread before it reads its first connection. */
static int api_thread_filter(void)
{
	return seccomp_filter_install(SECCOMP_API);
}

/* `kiln snapshot-rebase BASE DIFF`: Firecracker's `snapshot-editor edit-memory rebase`. */
static int snapshot_rebase_main(int argc, char **argv)
{
	char err[1024];
	uint64_t copied;

	if (argc != 4) {
		fprintf(stderr, "usage: kiln snapshot-rebase BASE_MEMORY_FILE DIFF_MEMORY_FILE\n"
				"  merges a Diff snapshot's memory file onto the memory file of the "
				"snapshot before it, in place\n");
		return VM_EXIT_ARG_PARSING;
	}
	if (snapshot_rebase(argv[2], argv[3], &copied, err, sizeof(err)) < 0) {
		fprintf(stderr, "kiln: snapshot-rebase: %s\n", err);
		return VM_EXIT_ERROR;
	}
	printf("merged %llu bytes of %s onto %s\n", (unsigned long long)copied, argv[3], argv[2]);
	return 0;
}

int main(int argc, char **argv)
{
	struct options opts = { .id = "anonymous-instance", .level = LOG_INFO,
				.max_payload = API_SERVER_DEFAULT_MAX_PAYLOAD };
	char err[CONFIG_ERR_LEN];
	struct timespec t0;
	struct api api;
	struct vmm m;
	int ret;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	if (argc > 1 && strcmp(argv[1], "snapshot-rebase") == 0)
		return snapshot_rebase_main(argc, argv);
	ret = parse_args(argc, argv, &opts);
	if (ret != 0)
		return ret > 0 ? 0 : VM_EXIT_ARG_PARSING;
	pthread_setname_np(pthread_self(), "kiln_main");
	if (vmm_init(&m, opts.id, opts.boot_timer) < 0)
		return VM_EXIT_ERROR;

	if (opts.config_file) {
		if (config_parse_file(&m.cfg, opts.config_file, err, sizeof(err)) < 0) {
			fprintf(stderr, "kiln: %s\n", err);
			vmm_destroy(&m);
			return VM_EXIT_BAD_CONFIG;
		}
		if (vmm_check_bootable(&m, err, sizeof(err)) < 0) {
			fprintf(stderr, "kiln: %s: %s\n", opts.config_file, err);
			vmm_destroy(&m);
			return VM_EXIT_BAD_CONFIG;
		}
	}
	if (setup_logging(&opts, &m.cfg) < 0) {
		vmm_destroy(&m);
		return VM_EXIT_BAD_CONFIG;
	}
	if (opts.metrics_path || m.cfg.metrics.metrics_path) {
		if (vmm_set_metrics_path(&m, opts.metrics_path ? opts.metrics_path
							       : m.cfg.metrics.metrics_path,
					 err, sizeof(err)) < 0) {
			fprintf(stderr, "kiln: %s\n", err);
			vmm_destroy(&m);
			return VM_EXIT_BAD_CONFIG;
		}
	}
	/* Before anything a client or the guest sends: every thread created from here on is born
	 * under this filter (seccomp/seccomp_filter.c explains the order). */
	m.seccomp = !opts.no_seccomp;
	if (!m.seccomp) {
		log_warn("--no-seccomp: running without seccomp filters; a compromised thread may "
			 "make any system call");
	} else if ((ret = seccomp_filter_install(SECCOMP_MAIN)) < 0) {
		fprintf(stderr, "kiln: cannot install the main thread's seccomp filter: %s\n",
			strerror(-ret));
		vmm_destroy(&m);
		return VM_EXIT_ERROR;
	}
	if (opts.api_sock) {
		/* The socket first: clients wait for it, and it needs no KVM. */
		if (api_open(&api, &m, opts.api_sock, opts.max_payload,
			     m.seccomp ? api_thread_filter : NULL, err, sizeof(err)) < 0) {
			fprintf(stderr, "kiln: %s\n", err);
			vmm_destroy(&m);
			return VM_EXIT_ERROR;
		}
		m.api = &api;
		record_startup(&m.metrics, &t0);
		log_debug("API listening on %s", opts.api_sock);
	}
	if (opts.config_file && vmm_start_vm(&m, err, sizeof(err)) < 0) {
		fprintf(stderr, "kiln: %s\n", err);
		ret = VM_EXIT_ERROR;
	} else if (opts.migrate_in && migration_incoming(&m, opts.migrate_in, MIG_RECOVER_TIMEOUT_MS, NULL, err,
							   sizeof(err)) < 0) {
		fprintf(stderr, "kiln: --migrate-in: %s\n", err);
		ret = VM_EXIT_ERROR;
	} else {
		ret = vmm_run(&m);
	}
	if (m.api)
		api_close(m.api);
	vmm_destroy(&m);
	return ret;
}
