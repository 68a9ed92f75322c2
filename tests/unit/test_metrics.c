/* Unit tests for vmm/metrics.c: the JSON lines, counter resets, device groups and pipe outputs. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "metrics.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* A stand-in for the block device's counters, with one field of each kind. */
#define FAKE_BLOCK_METRICS(X, g)                                                                   \
	X(g, read_count, COUNTER)                                                                  \
	X(g, write_count, COUNTER)                                                                 \
	X(g, queue_depth, GAUGE)                                                                   \
	X(g, read_agg, LATENCY)
METRICS_STRUCT(block, FAKE_BLOCK_METRICS);
static const struct metrics_field block_fields[] = {FAKE_BLOCK_METRICS(METRICS_FIELD, block)};
static const struct metrics_class block_class = {"block", block_fields, ARRAY_LEN(block_fields),
						 sizeof(struct metrics_block), false};
/* Same name, another class: must be refused. */
static const struct metrics_class other_block_class = {
    "block", block_fields, ARRAY_LEN(block_fields), sizeof(struct metrics_block), false};

#define FAKE_VSOCK_METRICS(X, g) X(g, rx_packets_count, COUNTER)
METRICS_STRUCT(vsock, FAKE_VSOCK_METRICS);
static const struct metrics_field vsock_fields[] = {FAKE_VSOCK_METRICS(METRICS_FIELD, vsock)};
static const struct metrics_class vsock_class = {"vsock", vsock_fields, ARRAY_LEN(vsock_fields),
						 sizeof(struct metrics_vsock), true};

static const char *const core_groups[] = {
    "api_server",
    "get_api_requests",
    "put_api_requests",
    "patch_api_requests",
    "vcpu",
    "vmm",
    "uart",
    "i8042",
    "signals",
    "latencies_us",
    "logger",
};

/* One struct metrics and a private directory for its files and pipes. */
struct fixture {
	struct metrics m;
	char dir[64];
	char file[96];
	char fifo[96];
	char err[256];
};

static int fixture_setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "/tmp/kiln-metrics-XXXXXX");
	if (!mkdtemp(f->dir) || metrics_init(&f->m) < 0)
		return -1;
	snprintf(f->file, sizeof(f->file), "%s/metrics.json", f->dir);
	snprintf(f->fifo, sizeof(f->fifo), "%s/metrics.fifo", f->dir);
	*state = f;
	return 0;
}

static int fixture_teardown(void **state)
{
	struct fixture *f = *state;

	metrics_destroy(&f->m);
	unlink(f->file);
	unlink(f->fifo);
	rmdir(f->dir);
	free(f);
	return 0;
}

/* Whole contents of path, NUL-terminated. */
static char *slurp(const char *path)
{
	FILE *fp = fopen(path, "r");
	char *buf = NULL;
	size_t len = 0;

	assert_non_null(fp);
	assert_int_equal(getdelim(&buf, &len, '\0', fp) >= 0 || feof(fp), 1);
	fclose(fp);
	if (!buf)
		buf = strdup("");
	return buf;
}

/* Everything a non-blocking fd has now, appended to a growing NUL-terminated buffer. */
static void drain_into(int fd, char **buf, size_t *len)
{
	char chunk[4096];
	ssize_t n;

	while ((n = read(fd, chunk, sizeof(chunk))) > 0) {
		*buf = realloc(*buf, *len + n + 1);
		assert_non_null(*buf);
		memcpy(*buf + *len, chunk, n);
		*len += n;
		(*buf)[*len] = '\0';
	}
}

/* Parses each newline-terminated line of text; returns how many, all into lines[]. */
static size_t parse_lines(const char *text, json_t **lines, size_t max)
{
	size_t n = 0;
	const char *nl;
	json_error_t jerr;

	for (; (nl = strchr(text, '\n')); text = nl + 1) {
		assert_true(n < max);
		lines[n] = json_loadb(text, nl - text, 0, &jerr);
		if (!lines[n])
			fail_msg("line %zu does not parse: %s", n, jerr.text);
		assert_true(json_is_object(lines[n]));
		n++;
	}
	return n;
}

static json_int_t get_int(json_t *root, const char *group, const char *field)
{
	json_t *v = json_object_get(json_object_get(root, group), field);

	if (!json_is_integer(v))
		fail_msg("%s.%s is missing or not an integer", group, field);
	return json_integer_value(v);
}

static json_int_t get_latency(json_t *root, const char *group, const char *field, const char *part)
{
	json_t *v = json_object_get(json_object_get(json_object_get(root, group), field), part);

	if (!json_is_integer(v))
		fail_msg("%s.%s.%s is missing or not an integer", group, field, part);
	return json_integer_value(v);
}

static void free_lines(json_t **lines, size_t n)
{
	for (size_t i = 0; i < n; i++)
		json_decref(lines[i]);
}

static void metrics_flush_file_output_one_json_line_per_flush(void **state)
{
	struct fixture *f = *state;
	json_t *lines[4];
	char *text;
	size_t n;

	assert_int_equal(metrics_set_output(&f->m, f->file, f->err, sizeof(f->err)), 0);
	assert_int_equal(metrics_flush(&f->m, 1700000000123ull), 0);
	assert_int_equal(metrics_flush(&f->m, 1700000060123ull), 0);

	text = slurp(f->file);
	n = parse_lines(text, lines, ARRAY_LEN(lines));
	assert_int_equal(n, 2);
	assert_int_equal(text[strlen(text) - 1], '\n');
	assert_int_equal(json_integer_value(json_object_get(lines[0], "utc_timestamp_ms")),
			 1700000000123ll);
	assert_int_equal(json_integer_value(json_object_get(lines[1], "utc_timestamp_ms")),
			 1700000060123ll);
	for (size_t i = 0; i < n; i++) {
		for (size_t g = 0; g < ARRAY_LEN(core_groups); g++)
			if (!json_is_object(json_object_get(lines[i], core_groups[g])))
				fail_msg("line %zu has no group %s", i, core_groups[g]);
		assert_int_equal(json_object_size(lines[i]), 1 + ARRAY_LEN(core_groups));
	}
	/* A few of Firecracker's names, one per group. */
	get_int(lines[0], "api_server", "process_startup_time_cpu_us");
	get_int(lines[0], "get_api_requests", "vmm_version_count");
	get_int(lines[0], "put_api_requests", "boot_source_fails");
	get_int(lines[0], "patch_api_requests", "machine_cfg_count");
	get_int(lines[0], "vcpu", "exit_mmio_write");
	get_latency(lines[0], "vcpu", "exit_io_in_agg", "sum_us");
	get_int(lines[0], "vmm", "panic_count");
	get_int(lines[0], "uart", "missed_write_count");
	get_int(lines[0], "i8042", "reset_count");
	get_int(lines[0], "signals", "sigbus");
	get_int(lines[0], "latencies_us", "vmm_resume_vm");
	get_int(lines[0], "logger", "missed_metrics_count");
	free_lines(lines, n);
	free(text);
}

static void metrics_flush_counters_reset_gauges_kept(void **state)
{
	struct fixture *f = *state;
	json_t *lines[4];
	char *text;

	assert_int_equal(metrics_set_output(&f->m, f->file, f->err, sizeof(f->err)), 0);
	metrics_add(&f->m.vcpu.exit_io_out, 3);
	metrics_inc(&f->m.put_api_requests.actions_count);
	metrics_set(&f->m.api_server.process_startup_time_us, 4242);
	metrics_set(&f->m.latencies_us.pause_vm, 17);
	metrics_latency_record(&f->m.vcpu.exit_io_out_agg, 5);
	assert_int_equal(metrics_flush(&f->m, 1), 0);
	assert_int_equal(metrics_flush(&f->m, 2), 0);

	text = slurp(f->file);
	assert_int_equal(parse_lines(text, lines, ARRAY_LEN(lines)), 2);
	assert_int_equal(get_int(lines[0], "vcpu", "exit_io_out"), 3);
	assert_int_equal(get_int(lines[1], "vcpu", "exit_io_out"), 0);
	assert_int_equal(get_int(lines[0], "put_api_requests", "actions_count"), 1);
	assert_int_equal(get_int(lines[1], "put_api_requests", "actions_count"), 0);
	assert_int_equal(get_int(lines[1], "api_server", "process_startup_time_us"), 4242);
	assert_int_equal(get_int(lines[1], "latencies_us", "pause_vm"), 17);
	assert_int_equal(get_latency(lines[0], "vcpu", "exit_io_out_agg", "sum_us"), 5);
	assert_int_equal(get_latency(lines[1], "vcpu", "exit_io_out_agg", "sum_us"), 0);
	assert_int_equal(get_latency(lines[1], "vcpu", "exit_io_out_agg", "min_us"), 5);
	assert_int_equal(get_latency(lines[1], "vcpu", "exit_io_out_agg", "max_us"), 5);
	free_lines(lines, 2);
	free(text);
}

static void metrics_flush_no_output_returns_zero_keeps_counting(void **state)
{
	struct fixture *f = *state;

	metrics_inc(&f->m.uart.write_count);
	assert_int_equal(metrics_flush(&f->m, 1), 0);
	metrics_inc(&f->m.uart.write_count);
	assert_int_equal(metrics_get(&f->m.uart.write_count), 2);
	assert_int_equal(metrics_get(&f->m.logger.missed_metrics_count), 0);
	assert_int_equal(metrics_get(&f->m.logger.metrics_fails), 0);
}

static void metrics_latency_record_tracks_min_max_sum(void **state)
{
	struct fixture *f = *state;
	struct metrics_latency *l = &f->m.vcpu.exit_mmio_read_agg;

	metrics_latency_record(l, 40);
	metrics_latency_record(l, 7);
	metrics_latency_record(l, 90);
	assert_int_equal(metrics_get(&l->min_us), 7);
	assert_int_equal(metrics_get(&l->max_us), 90);
	assert_int_equal(metrics_get(&l->sum_us), 137);
}

enum { NR_THREADS = 4, INCS_PER_THREAD = 100000 };

static void *increment_many(void *arg)
{
	struct metrics *m = arg;

	for (int i = 0; i < INCS_PER_THREAD; i++)
		metrics_inc(&m->vcpu.exit_io_in);
	return NULL;
}

static void metrics_inc_four_threads_during_flushes_sums_exactly(void **state)
{
	struct fixture *f = *state;
	pthread_t threads[NR_THREADS];
	json_t *lines[256];
	json_int_t total = 0;
	char *text;
	size_t n;

	assert_int_equal(metrics_set_output(&f->m, f->file, f->err, sizeof(f->err)), 0);
	for (int i = 0; i < NR_THREADS; i++)
		assert_int_equal(pthread_create(&threads[i], NULL, increment_many, &f->m), 0);
	for (int i = 0; i < 100; i++)
		assert_int_equal(metrics_flush(&f->m, i), 0);
	for (int i = 0; i < NR_THREADS; i++)
		assert_int_equal(pthread_join(threads[i], NULL), 0);
	assert_int_equal(metrics_flush(&f->m, 100), 0);

	text = slurp(f->file);
	n = parse_lines(text, lines, ARRAY_LEN(lines));
	assert_int_equal(n, 101);
	for (size_t i = 0; i < n; i++)
		total += get_int(lines[i], "vcpu", "exit_io_in");
	assert_int_equal(total, NR_THREADS * INCS_PER_THREAD);
	free_lines(lines, n);
	free(text);
}

static void metrics_device_register_block_per_device_and_sum(void **state)
{
	struct fixture *f = *state;
	struct metrics_block *rootfs, *scratch;
	void *p;
	json_t *root;

	assert_int_equal(metrics_device_register(&f->m, &block_class, "rootfs", &p), 0);
	rootfs = p;
	assert_int_equal(metrics_device_register(&f->m, &block_class, "scratch", &p), 0);
	scratch = p;
	metrics_add(&rootfs->read_count, 10);
	metrics_add(&scratch->read_count, 5);
	metrics_inc(&scratch->write_count);
	metrics_set(&rootfs->queue_depth, 2);
	metrics_set(&scratch->queue_depth, 3);
	metrics_latency_record(&rootfs->read_agg, 20);
	metrics_latency_record(&scratch->read_agg, 8);
	metrics_latency_record(&scratch->read_agg, 50);

	root = metrics_snapshot(&f->m, 1, true);
	assert_non_null(root);
	assert_int_equal(get_int(root, "block_rootfs", "read_count"), 10);
	assert_int_equal(get_int(root, "block_scratch", "read_count"), 5);
	assert_int_equal(get_int(root, "block_scratch", "write_count"), 1);
	assert_int_equal(get_int(root, "block", "read_count"), 15);
	assert_int_equal(get_int(root, "block", "write_count"), 1);
	assert_int_equal(get_int(root, "block", "queue_depth"), 5);
	assert_int_equal(get_latency(root, "block", "read_agg", "sum_us"), 78);
	assert_int_equal(get_latency(root, "block", "read_agg", "min_us"), 8);
	assert_int_equal(get_latency(root, "block", "read_agg", "max_us"), 50);
	assert_int_equal(json_object_size(root), 1 + ARRAY_LEN(core_groups) + 3);
	json_decref(root);

	/* The per-device counters were reset by that snapshot, and the sum with them. */
	root = metrics_snapshot(&f->m, 2, true);
	assert_non_null(root);
	assert_int_equal(get_int(root, "block_rootfs", "read_count"), 0);
	assert_int_equal(get_int(root, "block", "read_count"), 0);
	assert_int_equal(get_int(root, "block", "queue_depth"), 5);
	json_decref(root);
}

static void metrics_device_register_same_id_returns_same_counters(void **state)
{
	struct fixture *f = *state;
	void *a, *b;

	assert_int_equal(metrics_device_register(&f->m, &block_class, "rootfs", &a), 0);
	assert_int_equal(metrics_device_register(&f->m, &block_class, "rootfs", &b), 0);
	assert_ptr_equal(a, b);
}

static void metrics_device_register_bad_id_or_name_clash_einval(void **state)
{
	struct fixture *f = *state;
	void *p;

	assert_int_equal(metrics_device_register(&f->m, &block_class, "", &p), -EINVAL);
	assert_int_equal(metrics_device_register(&f->m, &block_class, "rootfs", &p), 0);
	assert_int_equal(metrics_device_register(&f->m, &other_block_class, "data", &p), -EINVAL);
}

static void metrics_device_register_aggregate_only_emits_sum_alone(void **state)
{
	struct fixture *f = *state;
	struct metrics_vsock *v;
	void *p;
	json_t *root;

	assert_int_equal(metrics_device_register(&f->m, &vsock_class, "vsock0", &p), 0);
	v = p;
	metrics_add(&v->rx_packets_count, 4);
	root = metrics_snapshot(&f->m, 1, false);
	assert_non_null(root);
	assert_null(json_object_get(root, "vsock_vsock0"));
	assert_int_equal(get_int(root, "vsock", "rx_packets_count"), 4);
	json_decref(root);
}

static void metrics_set_output_second_call_ealready(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(metrics_set_output(&f->m, f->file, f->err, sizeof(f->err)), 0);
	assert_int_equal(metrics_set_output(&f->m, f->file, f->err, sizeof(f->err)), -EALREADY);
	assert_non_null(strstr(f->err, "already configured"));
}

static void metrics_set_output_failed_open_allows_retry(void **state)
{
	struct fixture *f = *state;
	char missing[128];

	assert_int_equal(metrics_set_output(&f->m, "", f->err, sizeof(f->err)), -EINVAL);
	snprintf(missing, sizeof(missing), "%s/no/such/dir", f->dir);
	assert_int_equal(metrics_set_output(&f->m, missing, f->err, sizeof(f->err)), -ENOENT);
	assert_non_null(strstr(f->err, missing));
	assert_int_equal(metrics_set_output(&f->m, f->file, f->err, sizeof(f->err)), 0);
}

/* As in Firecracker, a pipe nobody reads yet is fine: the line waits in it for the reader. */
static void metrics_set_output_fifo_without_reader_waits_for_reader(void **state)
{
	struct fixture *f = *state;
	char buf[256];
	ssize_t n;
	int rfd;

	assert_int_equal(mkfifo(f->fifo, 0600), 0);
	assert_int_equal(metrics_set_output(&f->m, f->fifo, f->err, sizeof(f->err)), 0);
	assert_int_equal(metrics_flush(&f->m, 1000), 0);
	rfd = open(f->fifo, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	assert_true(rfd >= 0);
	n = read(rfd, buf, sizeof(buf) - 1);
	assert_true(n > 0);
	buf[n] = '\0';
	assert_non_null(strstr(buf, "\"utc_timestamp_ms\":1000"));
	close(rfd);
}

/* Opens the fixture's fifo for reading (non-blocking) and points the metrics at it. */
static int fifo_output(struct fixture *f)
{
	int rfd;

	assert_int_equal(mkfifo(f->fifo, 0600), 0);
	rfd = open(f->fifo, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	assert_true(rfd >= 0);
	assert_int_equal(metrics_set_output(&f->m, f->fifo, f->err, sizeof(f->err)), 0);
	return rfd;
}

static void metrics_flush_full_pipe_drops_line_counts_missed(void **state)
{
	struct fixture *f = *state;
	int rfd = fifo_output(f);
	int wfd = open(f->fifo, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
	char page[4096] = {0};
	char *text = NULL;
	size_t len = 0;
	json_t *line;

	assert_true(wfd >= 0);
	while (write(wfd, page, sizeof(page)) > 0)
		;
	while (write(wfd, page, 1) > 0)
		;
	assert_int_equal(errno, EAGAIN);
	metrics_inc(&f->m.i8042.read_count);
	assert_int_equal(metrics_flush(&f->m, 1), -EAGAIN);
	assert_int_equal(metrics_get(&f->m.logger.missed_metrics_count), 1);
	assert_int_equal(metrics_get(&f->m.logger.metrics_fails), 0);

	/* Empty the pipe of the filler: the next line arrives whole and reports the miss. */
	drain_into(rfd, &text, &len);
	free(text);
	text = NULL;
	len = 0;
	assert_int_equal(metrics_flush(&f->m, 2), 0);
	drain_into(rfd, &text, &len);
	assert_non_null(text);
	assert_int_equal(text[len - 1], '\n');
	assert_ptr_equal(strchr(text, '\n'), text + len - 1);
	line = json_loadb(text, len - 1, 0, NULL);
	assert_non_null(line);
	assert_int_equal(get_int(line, "logger", "missed_metrics_count"), 1);
	/* The dropped line's deltas went with it. */
	assert_int_equal(get_int(line, "i8042", "read_count"), 0);
	json_decref(line);
	free(text);
	close(wfd);
	close(rfd);
}

static void metrics_flush_short_write_finishes_line_later(void **state)
{
	struct fixture *f = *state;
	int rfd = fifo_output(f);
	int pipe_size = fcntl(rfd, F_SETPIPE_SZ, 4096);
	char *text = NULL, *dump;
	size_t len = 0, n;
	json_t *lines[32], *root;
	void *p;
	char id[16];

	assert_true(pipe_size > 0);
	/* Enough devices for a line longer than the pipe. */
	for (int i = 0;; i++) {
		root = metrics_snapshot(&f->m, 1, false);
		dump = json_dumps(root, JSON_COMPACT);
		n = strlen(dump);
		free(dump);
		json_decref(root);
		if (n > (size_t)pipe_size + 100)
			break;
		snprintf(id, sizeof(id), "drv%d", i);
		assert_int_equal(metrics_device_register(&f->m, &block_class, id, &p), 0);
	}

	/* The pipe takes part of the first line: the flush succeeds, the rest waits. */
	assert_int_equal(metrics_flush(&f->m, 1), 0);
	drain_into(rfd, &text, &len);
	assert_int_equal(len, pipe_size);
	assert_null(memchr(text, '\n', len));

	/* Reading makes room; later flushes finish that line before any other. */
	for (int i = 2; i < 12; i++) {
		int rc = metrics_flush(&f->m, i);

		assert_true(rc == 0 || rc == -EAGAIN);
		drain_into(rfd, &text, &len);
	}
	n = parse_lines(text, lines, ARRAY_LEN(lines));
	assert_true(n >= 2);
	assert_int_equal(json_integer_value(json_object_get(lines[0], "utc_timestamp_ms")), 1);
	assert_non_null(json_object_get(lines[n - 1], "block_drv0"));
	assert_int_equal(metrics_get(&f->m.logger.metrics_fails), 0);
	free_lines(lines, n);
	free(text);
	close(rfd);
}

/* The output holds the pipe open for reading too: a reader that goes away is no EPIPE. */
static void metrics_flush_reader_gone_no_sigpipe(void **state)
{
	struct fixture *f = *state;
	int rfd;
	sigset_t pending;

	signal(SIGPIPE, SIG_DFL);
	rfd = fifo_output(f);
	close(rfd);
	assert_int_equal(metrics_flush(&f->m, 1), 0);
	assert_int_equal(metrics_get(&f->m.logger.metrics_fails), 0);
	assert_int_equal(metrics_get(&f->m.logger.missed_metrics_count), 0);
	assert_int_equal(sigpending(&pending), 0);
	assert_int_equal(sigismember(&pending, SIGPIPE), 0);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, fixture_setup, fixture_teardown)
	const struct CMUnitTest tests[] = {
	    T(metrics_flush_file_output_one_json_line_per_flush),
	    T(metrics_flush_counters_reset_gauges_kept),
	    T(metrics_flush_no_output_returns_zero_keeps_counting),
	    T(metrics_latency_record_tracks_min_max_sum),
	    T(metrics_inc_four_threads_during_flushes_sums_exactly),
	    T(metrics_device_register_block_per_device_and_sum),
	    T(metrics_device_register_same_id_returns_same_counters),
	    T(metrics_device_register_bad_id_or_name_clash_einval),
	    T(metrics_device_register_aggregate_only_emits_sum_alone),
	    T(metrics_set_output_second_call_ealready),
	    T(metrics_set_output_failed_open_allows_retry),
	    T(metrics_set_output_fifo_without_reader_waits_for_reader),
	    T(metrics_flush_full_pipe_drops_line_counts_missed),
	    T(metrics_flush_short_write_finishes_line_later),
	    T(metrics_flush_reader_gone_no_sigpipe),
	};
#undef T

	return cmocka_run_group_tests_name("metrics.c", tests, NULL, NULL);
}
