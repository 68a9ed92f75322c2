/* Metrics in Firecracker's shape: atomic counters, flushed as one JSON object per line. */
#ifndef KILN_METRICS_H
#define KILN_METRICS_H

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Firecracker flushes every 60 s, and on the FlushMetrics action. */
#define METRICS_FLUSH_INTERVAL_MS 60000

/*
 * What a field holds and how a flush treats it:
 * COUNTER  events since the previous flush: reported, then reset to 0.
 * GAUGE    a latest value (startup time, a latency, a fatal signal): reported, never reset.
 * LATENCY  Firecracker's {min_us, max_us, sum_us} aggregate: sum_us is reset at each flush,
 *          min_us and max_us hold since the start (0: nothing recorded yet).
 */
enum metrics_kind { METRICS_COUNTER, METRICS_GAUGE, METRICS_LATENCY };

struct metrics_latency {
	_Atomic uint64_t min_us, max_us, sum_us;
};

#define METRICS_TYPE_COUNTER _Atomic uint64_t
#define METRICS_TYPE_GAUGE   _Atomic uint64_t
#define METRICS_TYPE_LATENCY struct metrics_latency

/*
 * The groups, each a list of X(group, field, kind). These lists are the only place a metric is
 * named: struct metrics and the JSON both come from them. To add a group, write its list and
 * add it to METRICS_GROUPS. Names follow Firecracker's src/vmm/src/logger/metrics.rs.
 */
#define METRICS_API_SERVER(X, g)                                                                   \
	X(g, process_startup_time_us, GAUGE)                                                       \
	X(g, process_startup_time_cpu_us, GAUGE)                                                   \
	X(g, sync_response_fails, COUNTER)                                                         \
	X(g, sync_vmm_send_timeout_count, COUNTER)

#define METRICS_GET_API_REQUESTS(X, g)                                                             \
	X(g, instance_info_count, COUNTER)                                                         \
	X(g, machine_cfg_count, COUNTER)                                                           \
	X(g, mmds_count, COUNTER)                                                                  \
	X(g, vmm_version_count, COUNTER)                                                           \
	X(g, hotplug_memory_count, COUNTER)                                                        \
	X(g, vm_config_count, COUNTER) /* kiln's own: Firecracker does not count GET /vm/config */

#define METRICS_PUT_API_REQUESTS(X, g)                                                             \
	X(g, actions_count, COUNTER)                                                               \
	X(g, actions_fails, COUNTER)                                                               \
	X(g, boot_source_count, COUNTER)                                                           \
	X(g, boot_source_fails, COUNTER)                                                           \
	X(g, drive_count, COUNTER)                                                                 \
	X(g, drive_fails, COUNTER)                                                                 \
	X(g, logger_count, COUNTER)                                                                \
	X(g, logger_fails, COUNTER)                                                                \
	X(g, machine_cfg_count, COUNTER)                                                           \
	X(g, machine_cfg_fails, COUNTER)                                                           \
	X(g, cpu_cfg_count, COUNTER)                                                               \
	X(g, cpu_cfg_fails, COUNTER)                                                               \
	X(g, metrics_count, COUNTER)                                                               \
	X(g, metrics_fails, COUNTER)                                                               \
	X(g, network_count, COUNTER)                                                               \
	X(g, network_fails, COUNTER)                                                               \
	X(g, mmds_count, COUNTER)                                                                  \
	X(g, mmds_fails, COUNTER)                                                                  \
	X(g, vsock_count, COUNTER)                                                                 \
	X(g, vsock_fails, COUNTER)                                                                 \
	X(g, pmem_count, COUNTER)                                                                  \
	X(g, pmem_fails, COUNTER)                                                                  \
	X(g, serial_count, COUNTER)                                                                \
	X(g, serial_fails, COUNTER)                                                                \
	X(g, hotplug_memory_count, COUNTER)                                                        \
	X(g, hotplug_memory_fails, COUNTER)

#define METRICS_PATCH_API_REQUESTS(X, g)                                                           \
	X(g, drive_count, COUNTER)                                                                 \
	X(g, drive_fails, COUNTER)                                                                 \
	X(g, network_count, COUNTER)                                                               \
	X(g, network_fails, COUNTER)                                                               \
	X(g, machine_cfg_count, COUNTER)                                                           \
	X(g, machine_cfg_fails, COUNTER)                                                           \
	X(g, mmds_count, COUNTER)                                                                  \
	X(g, mmds_fails, COUNTER)                                                                  \
	X(g, hotplug_memory_count, COUNTER)                                                        \
	X(g, hotplug_memory_fails, COUNTER)

#define METRICS_VCPU(X, g)                                                                         \
	X(g, exit_io_in, COUNTER)                                                                  \
	X(g, exit_io_out, COUNTER)                                                                 \
	X(g, exit_mmio_read, COUNTER)                                                              \
	X(g, exit_mmio_write, COUNTER)                                                             \
	X(g, failures, COUNTER)                                                                    \
	X(g, kvmclock_ctrl_fails, COUNTER)                                                         \
	X(g, exit_io_in_agg, LATENCY)                                                              \
	X(g, exit_io_out_agg, LATENCY)                                                             \
	X(g, exit_mmio_read_agg, LATENCY)                                                          \
	X(g, exit_mmio_write_agg, LATENCY)

#define METRICS_VMM(X, g)                                                                          \
	X(g, device_events, COUNTER)                                                               \
	X(g, panic_count, GAUGE)

#define METRICS_UART(X, g)                                                                         \
	X(g, error_count, COUNTER)                                                                 \
	X(g, flush_count, COUNTER)                                                                 \
	X(g, missed_read_count, COUNTER)                                                           \
	X(g, missed_write_count, COUNTER)                                                          \
	X(g, read_count, COUNTER)                                                                  \
	X(g, write_count, COUNTER)

#define METRICS_I8042(X, g)                                                                        \
	X(g, error_count, COUNTER)                                                                 \
	X(g, missed_read_count, COUNTER)                                                           \
	X(g, missed_write_count, COUNTER)                                                          \
	X(g, read_count, COUNTER)                                                                  \
	X(g, reset_count, COUNTER)                                                                 \
	X(g, write_count, COUNTER)

/* Fatal signals are gauges (0 or 1, as in Firecracker); kiln survives SIGBUS from poison. */
#define METRICS_SIGNALS(X, g)                                                                      \
	X(g, sigbus, COUNTER)                                                                      \
	X(g, sigsegv, GAUGE)                                                                       \
	X(g, sigxfsz, GAUGE)                                                                       \
	X(g, sigxcpu, GAUGE)                                                                       \
	X(g, sigpipe, COUNTER)                                                                     \
	X(g, sighup, GAUGE)                                                                        \
	X(g, sigill, GAUGE)

/* Durations in microseconds of the last such operation, at the API and at the VMM level. */
#define METRICS_LATENCIES_US(X, g)                                                                 \
	X(g, full_create_snapshot, GAUGE)                                                          \
	X(g, diff_create_snapshot, GAUGE)                                                          \
	X(g, load_snapshot, GAUGE)                                                                 \
	X(g, pause_vm, GAUGE)                                                                      \
	X(g, resume_vm, GAUGE)                                                                     \
	X(g, vmm_full_create_snapshot, GAUGE)                                                      \
	X(g, vmm_diff_create_snapshot, GAUGE)                                                      \
	X(g, vmm_load_snapshot, GAUGE)                                                             \
	X(g, vmm_pause_vm, GAUGE)                                                                  \
	X(g, vmm_resume_vm, GAUGE)

#define METRICS_LOGGER(X, g)                                                                       \
	X(g, missed_metrics_count, COUNTER)                                                        \
	X(g, metrics_fails, COUNTER)                                                               \
	X(g, missed_log_count, COUNTER)                                                            \
	X(g, log_fails, COUNTER)

/* G(group, list), in the order they are written (after utc_timestamp_ms, before devices). */
#define METRICS_GROUPS(G)                                                                          \
	G(api_server, METRICS_API_SERVER)                                                          \
	G(get_api_requests, METRICS_GET_API_REQUESTS)                                              \
	G(put_api_requests, METRICS_PUT_API_REQUESTS)                                              \
	G(patch_api_requests, METRICS_PATCH_API_REQUESTS)                                          \
	G(vcpu, METRICS_VCPU)                                                                      \
	G(vmm, METRICS_VMM)                                                                        \
	G(uart, METRICS_UART)                                                                      \
	G(i8042, METRICS_I8042)                                                                    \
	G(signals, METRICS_SIGNALS)                                                                \
	G(latencies_us, METRICS_LATENCIES_US)                                                      \
	G(logger, METRICS_LOGGER)

/* One field of a group or a device class: its JSON name, where it lives, how it is flushed. */
struct metrics_field {
	const char *name;
	size_t offset;
	enum metrics_kind kind;
};

/* Builders for a field list: a member of struct metrics_<g>, and its struct metrics_field. */
#define METRICS_MEMBER(g, name, kind) METRICS_TYPE_##kind name;
#define METRICS_FIELD(g, name, kind)  {#name, offsetof(struct metrics_##g, name), METRICS_##kind},

/* Declares struct metrics_<g> from a field list (a group, or a device class's counters). */
#define METRICS_STRUCT(g, LIST)                                                                    \
	struct metrics_##g {                                                                       \
		LIST(METRICS_MEMBER, g)                                                            \
	}

#define METRICS_GROUP_STRUCT(g, LIST) METRICS_STRUCT(g, LIST);
METRICS_GROUPS(METRICS_GROUP_STRUCT)
#undef METRICS_GROUP_STRUCT

/*
 * A kind of device with per-device counters (Firecracker's block, net, vsock...). The device's
 * unit declares them once and describes them, e.g.:
 *
 *   #define BLOCK_METRICS(X, g) X(g, read_count, COUNTER) X(g, write_count, COUNTER)
 *   METRICS_STRUCT(block, BLOCK_METRICS);
 *   static const struct metrics_field block_fields[] = { BLOCK_METRICS(METRICS_FIELD, block) };
 *   const struct metrics_class block_metrics_class = {
 *           "block", block_fields, sizeof(block_fields) / sizeof(block_fields[0]),
 *           sizeof(struct metrics_block), false };
 *
 * A flush writes each device as "<name>_<id>" and their sum as "<name>" (aggregate_only: the
 * sum alone, as Firecracker writes "vsock"). In the sum, counters and gauges add up, latency
 * sums add up and min_us/max_us are the smallest and largest of the devices'.
 */
struct metrics_class {
	const char *name;
	const struct metrics_field *fields;
	size_t nr_fields;
	size_t size; /* sizeof(struct metrics_<name>) */
	bool aggregate_only;
};

struct metrics_device;

/*
 * Every metric of one VMM. Groups are incremented from any thread without a lock; lock guards
 * the output, a partly written line and the device list.
 */
struct metrics {
#define METRICS_GROUP_MEMBER(g, LIST) struct metrics_##g g;
	METRICS_GROUPS(METRICS_GROUP_MEMBER)
#undef METRICS_GROUP_MEMBER

	pthread_mutex_t lock;
	int fd;	       /* -1 until metrics_set_output */
	char *pending; /* tail of a line the output took only part of */
	size_t pending_len;
	struct metrics_device *devices; /* in registration order */
};

/* Adds 1 to a counter (or gauge). Lock-free and async-signal-safe, from any thread. */
static inline void metrics_inc(_Atomic uint64_t *c)
{
	atomic_fetch_add_explicit(c, 1, memory_order_relaxed);
}

/* Adds n to a counter (or gauge). Lock-free and async-signal-safe, from any thread. */
static inline void metrics_add(_Atomic uint64_t *c, uint64_t n)
{
	atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

/* Stores a gauge's latest value. Lock-free and async-signal-safe, from any thread. */
static inline void metrics_set(_Atomic uint64_t *c, uint64_t v)
{
	atomic_store_explicit(c, v, memory_order_relaxed);
}

/* Current value (for a counter: what the next flush would report). */
static inline uint64_t metrics_get(_Atomic uint64_t *c)
{
	return atomic_load_explicit(c, memory_order_relaxed);
}

/* Records one duration of us microseconds into a latency aggregate. Lock-free, any thread. */
static inline void metrics_latency_record(struct metrics_latency *l, uint64_t us)
{
	uint64_t cur;

	atomic_fetch_add_explicit(&l->sum_us, us, memory_order_relaxed);
	cur = atomic_load_explicit(&l->min_us, memory_order_relaxed);
	while ((cur == 0 || us < cur) &&
	       !atomic_compare_exchange_weak_explicit(&l->min_us, &cur, us, memory_order_relaxed,
						      memory_order_relaxed))
		;
	cur = atomic_load_explicit(&l->max_us, memory_order_relaxed);
	while (us > cur && !atomic_compare_exchange_weak_explicit(
			       &l->max_us, &cur, us, memory_order_relaxed, memory_order_relaxed))
		;
}

/* Zeroes every metric, with no output and no devices. Returns 0 or -errno. */
int metrics_init(struct metrics *m) __attribute__((warn_unused_result));

/*
 * Sends every later flush to path (PUT /metrics): a regular file (created 0600 if missing,
 * appended to) or a named pipe, which must already have a reader. Only the first successful
 * call counts, as in Firecracker. Returns 0, or -errno with a sentence in err: -EALREADY
 * (metrics already configured), -EINVAL (empty path), -ENXIO (a pipe with no reader, or a
 * socket), or open(2)'s error.
 */
int metrics_set_output(struct metrics *m, const char *path, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/*
 * Per-device counters: registers device id of class cls and points *counters at its zeroed
 * struct metrics_<cls->name>, valid until metrics_destroy. The same class and id again give the
 * same counters (a re-created device keeps counting). Returns 0, -EINVAL (empty id, or another
 * class already uses cls->name) or -ENOMEM.
 */
int metrics_device_register(struct metrics *m, const struct metrics_class *cls, const char *id,
			    void **counters) __attribute__((warn_unused_result));

/*
 * Builds the object a flush at now_ms (UTC, ms since the epoch) would write: utc_timestamp_ms,
 * every group, then every device class. With reset, each counter is read and zeroed in one
 * atomic exchange, so an increment lands in exactly one flush. Returns a new reference, or
 * NULL when out of memory (with reset, deltas already read are lost).
 */
json_t *metrics_snapshot(struct metrics *m, uint64_t now_ms, bool reset);

/*
 * Writes one line (the snapshot, reset) to the output; never blocks. With no output yet,
 * does nothing and returns 0: counters keep adding up. A line the output has no room for is
 * dropped and counted in logger.missed_metrics_count (-EAGAIN); a line taken only in part is
 * finished at the next flush, before anything else is written. Other write errors count in
 * logger.metrics_fails and return -errno. A named pipe is held open for reading too, so a
 * reader that goes away is no EPIPE: lines wait in the pipe, then are dropped. Deltas of a
 * dropped line are lost.
 */
int metrics_flush(struct metrics *m, uint64_t now_ms);

/* Closes the output and frees the devices' counters. */
void metrics_destroy(struct metrics *m);

#endif
