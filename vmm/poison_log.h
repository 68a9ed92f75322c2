/* The poison log: the VM's record of poisoned guest-physical ranges, and the guard that lets
 * kiln's own threads touch guest memory without ever dying of SIGBUS. */
#ifndef KILN_POISON_LOG_H
#define KILN_POISON_LOG_H

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum poison_origin {
	POISON_HOST,      /* a host memory error (SIGBUS BUS_MCEERR_AR/AO) */
	POISON_INJECTED,  /* PUT /memory/poison: a drill or a test */
	POISON_INHERITED, /* recorded by a snapshot or migration source */
};

struct poison_range {
	uint64_t gpa;  /* guest-physical start, aligned to the backing page size */
	uint64_t len;  /* bytes: the backing page size (4 KiB or 2 MiB) or a multiple */
	enum poison_origin origin;
};

struct poison_log {
	pthread_mutex_t lock;
	struct poison_range *ranges; /* sorted by gpa, never overlapping */
	size_t nr, cap;
	atomic_size_t count;         /* nr, readable without the lock: 0 is the fast path */
};

int poison_log_init(struct poison_log *log) __attribute__((warn_unused_result));
void poison_log_destroy(struct poison_log *log);

/*
 * Records [gpa, gpa+len) with origin. Parts already recorded keep their first origin; ranges
 * of the same origin that touch are merged. Callable from any thread, but not from a signal
 * handler. 0, -EINVAL (len 0 or overflow) or -ENOMEM.
 */
int poison_log_add(struct poison_log *log, uint64_t gpa, uint64_t len, enum poison_origin origin)
	__attribute__((warn_unused_result));

/* Whether any byte of [gpa, gpa+len) is recorded. Lock-free when the log is empty. */
bool poison_log_contains(struct poison_log *log, uint64_t gpa, uint64_t len);

/* "host", "injected", "inherited". */
const char *poison_origin_name(enum poison_origin origin);

/* {"pages": [{"guest_phys_addr": N, "length": N, "origin": "..."}, ...]}; NULL when out of
 * memory. */
json_t *poison_log_json(struct poison_log *log);

/*
 * Fixed-width little-endian encoding for snapshots and migration streams: u32 count, then per
 * range u64 gpa, u64 len, u32 origin. poison_log_encoded_size gives the bytes needed;
 * poison_log_encode writes them (-ENOSPC if len is too small) and returns the bytes written;
 * poison_log_check_encoded returns the number of ranges in an encoded log, or -EINVAL for
 * truncated input, unknown origins, zero or overflowing lengths, ranges out of order or
 * overlapping, and trailing bytes; poison_log_decode refuses the same input with -EINVAL,
 * else adds the ranges to log (as origin POISON_INHERITED when as_inherited).
 */
size_t poison_log_encoded_size(struct poison_log *log);
long poison_log_encode(struct poison_log *log, uint8_t *buf, size_t len);
long poison_log_check_encoded(const uint8_t *buf, size_t len);
int poison_log_decode(struct poison_log *log, const uint8_t *buf, size_t len, bool as_inherited)
	__attribute__((warn_unused_result));

/*
 * The guard. kiln's own threads (event loop, API) copy to and from guest memory only through
 * poison_guard_copy: if a page turns out poisoned in the middle of the copy (a host memory error
 * that raced with the poison-log check), the SIGBUS is caught and the copy fails with
 * -EHWPOISON instead of killing kiln. vCPU threads never copy guest memory themselves.
 */
int poison_guard_copy(void *dst, const void *src, size_t n) __attribute__((warn_unused_result));

/*
 * The guard around one aligned 16-bit access the guest may race with (virtqueue ring indices):
 * an acquire load or a release store, as __atomic_load_n / __atomic_store_n. 0 or -EHWPOISON.
 */
int poison_guard_load16(const uint16_t *p, uint16_t *v) __attribute__((warn_unused_result));
int poison_guard_store16(uint16_t *p, uint16_t v) __attribute__((warn_unused_result));

/*
 * Called first by kiln's SIGBUS handler: when the faulting thread is inside a guarded copy,
 * jumps back out of it (and never returns); otherwise returns false. poison_guard_handle_at also
 * notes the faulting address when the fault is a memory error (si_code BUS_MCEERR_AR/AO), for
 * poison_guard_fault after the copy failed.
 */
bool poison_guard_handle(void);
bool poison_guard_handle_at(const void *addr, bool memory_error);

/* After a guarded copy on this thread failed with -EHWPOISON: the host address of the memory
 * error it met, or NULL when the fault was not one (or was not noted). */
const void *poison_guard_fault(void);

#endif
