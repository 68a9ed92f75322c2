/* The poison log (sorted, merged ranges behind a lock), its JSON and wire encodings, and the
 * guard that turns a SIGBUS in kiln's own copies of guest memory into -EHWPOISON. */
#include "poison_log.h"

#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "le.h"

#define ENC_HEADER 4u  /* u32 count */
#define ENC_RANGE 20u  /* u64 gpa, u64 len, u32 origin */

int poison_log_init(struct poison_log *log)
{
	int ret;

	*log = (struct poison_log){ 0 };
	ret = pthread_mutex_init(&log->lock, NULL);
	if (ret)
		return -ret;
	atomic_init(&log->count, 0);
	return 0;
}

void poison_log_destroy(struct poison_log *log)
{
	pthread_mutex_destroy(&log->lock);
	free(log->ranges);
	log->ranges = NULL;
	log->nr = log->cap = 0;
	atomic_store(&log->count, 0);
}

static uint64_t range_end(const struct poison_range *r)
{
	return r->gpa + r->len;
}

/* The first range ending after gpa (nr when none); lock held. */
static size_t first_ending_after(const struct poison_log *log, uint64_t gpa)
{
	size_t lo = 0, hi = log->nr;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (range_end(&log->ranges[mid]) > gpa)
			hi = mid;
		else
			lo = mid + 1;
	}
	return lo;
}

/* Appends [gpa, end) to out, extending the last piece when it touches with the same origin. */
static void emit(struct poison_range *out, size_t *n, uint64_t gpa, uint64_t end,
		 enum poison_origin origin)
{
	if (*n > 0 && range_end(&out[*n - 1]) == gpa && out[*n - 1].origin == origin) {
		out[*n - 1].len += end - gpa;
		return;
	}
	out[(*n)++] = (struct poison_range){ .gpa = gpa, .len = end - gpa, .origin = origin };
}

static int reserve(struct poison_log *log, size_t need)
{
	struct poison_range *r;
	size_t cap;

	if (need <= log->cap)
		return 0;
	cap = log->cap ? log->cap : 8;
	while (cap < need)
		cap *= 2;
	r = realloc(log->ranges, cap * sizeof(*r));
	if (!r)
		return -ENOMEM;
	log->ranges = r;
	log->cap = cap;
	return 0;
}

/*
 * The ranges touching or overlapping [gpa, end), window [lo, hi), are rebuilt together with the
 * new one: what they cover keeps its origin, the gaps between get origin, touching pieces of
 * one origin merge. Lock held.
 */
static int add_locked(struct poison_log *log, uint64_t gpa, uint64_t end, enum poison_origin origin)
{
	size_t lo, hi, n = 0;
	struct poison_range *out;
	uint64_t cursor = gpa;

	/* Past the last range, not touching it: how a log decoded in order grows. */
	if (!log->nr || gpa > range_end(&log->ranges[log->nr - 1])) {
		if (reserve(log, log->nr + 1) < 0)
			return -ENOMEM;
		log->ranges[log->nr++] = (struct poison_range){ gpa, end - gpa, origin };
		atomic_store_explicit(&log->count, log->nr, memory_order_release);
		return 0;
	}
	lo = first_ending_after(log, gpa);
	if (lo > 0 && range_end(&log->ranges[lo - 1]) == gpa)
		lo--;
	for (hi = lo; hi < log->nr && log->ranges[hi].gpa <= end; hi++)
		;
	out = malloc((2 * (hi - lo) + 1) * sizeof(*out));
	if (!out)
		return -ENOMEM;
	for (size_t i = lo; i < hi; i++) {
		const struct poison_range *r = &log->ranges[i];

		if (r->gpa > cursor && cursor < end)
			emit(out, &n, cursor, r->gpa < end ? r->gpa : end, origin);
		emit(out, &n, r->gpa, range_end(r), r->origin);
		if (range_end(r) > cursor)
			cursor = range_end(r);
	}
	if (cursor < end)
		emit(out, &n, cursor, end, origin);
	if (reserve(log, log->nr - (hi - lo) + n) < 0) {
		free(out);
		return -ENOMEM;
	}
	memmove(log->ranges + lo + n, log->ranges + hi, (log->nr - hi) * sizeof(*out));
	memcpy(log->ranges + lo, out, n * sizeof(*out));
	log->nr = log->nr - (hi - lo) + n;
	atomic_store_explicit(&log->count, log->nr, memory_order_release);
	free(out);
	return 0;
}

int poison_log_add(struct poison_log *log, uint64_t gpa, uint64_t len, enum poison_origin origin)
{
	int ret;

	if (len == 0 || len > UINT64_MAX - gpa || (unsigned)origin > POISON_INHERITED)
		return -EINVAL;
	pthread_mutex_lock(&log->lock);
	ret = add_locked(log, gpa, gpa + len, origin);
	pthread_mutex_unlock(&log->lock);
	return ret;
}

bool poison_log_contains(struct poison_log *log, uint64_t gpa, uint64_t len)
{
	uint64_t end = len > UINT64_MAX - gpa ? UINT64_MAX : gpa + len;
	bool hit;
	size_t i;

	if (len == 0 || atomic_load_explicit(&log->count, memory_order_acquire) == 0)
		return false;
	pthread_mutex_lock(&log->lock);
	i = first_ending_after(log, gpa);
	hit = i < log->nr && log->ranges[i].gpa < end;
	pthread_mutex_unlock(&log->lock);
	return hit;
}

const char *poison_origin_name(enum poison_origin origin)
{
	switch (origin) {
	case POISON_HOST:
		return "host";
	case POISON_INJECTED:
		return "injected";
	case POISON_INHERITED:
		return "inherited";
	}
	return "unknown";
}

json_t *poison_log_json(struct poison_log *log)
{
	json_t *pages = json_array(), *root;

	if (!pages)
		return NULL;
	pthread_mutex_lock(&log->lock);
	for (size_t i = 0; i < log->nr; i++) {
		const struct poison_range *r = &log->ranges[i];
		json_t *e = json_pack("{s:I, s:I, s:s}", "guest_phys_addr", (json_int_t)r->gpa,
				      "length", (json_int_t)r->len, "origin",
				      poison_origin_name(r->origin));

		if (!e || json_array_append_new(pages, e) < 0) {
			pthread_mutex_unlock(&log->lock);
			json_decref(pages);
			return NULL;
		}
	}
	pthread_mutex_unlock(&log->lock);
	root = json_pack("{s:o}", "pages", pages);
	return root;
}

/* --- the fixed-width little-endian encoding --- */


size_t poison_log_encoded_size(struct poison_log *log)
{
	size_t n;

	pthread_mutex_lock(&log->lock);
	n = log->nr;
	pthread_mutex_unlock(&log->lock);
	return ENC_HEADER + ENC_RANGE * n;
}

long poison_log_encode(struct poison_log *log, uint8_t *buf, size_t len)
{
	size_t need;

	pthread_mutex_lock(&log->lock);
	need = ENC_HEADER + ENC_RANGE * log->nr;
	if (len < need || log->nr > UINT32_MAX) {
		pthread_mutex_unlock(&log->lock);
		return -ENOSPC;
	}
	put_le(buf, log->nr, 4);
	for (size_t i = 0; i < log->nr; i++) {
		uint8_t *p = buf + ENC_HEADER + ENC_RANGE * i;

		put_le(p, log->ranges[i].gpa, 8);
		put_le(p + 8, log->ranges[i].len, 8);
		put_le(p + 16, (uint32_t)log->ranges[i].origin, 4);
	}
	pthread_mutex_unlock(&log->lock);
	return (long)need;
}

long poison_log_check_encoded(const uint8_t *buf, size_t len)
{
	uint64_t count, prev_end = 0;

	if (len < ENC_HEADER)
		return -EINVAL;
	count = get_le(buf, 4);
	if ((len - ENC_HEADER) % ENC_RANGE || (len - ENC_HEADER) / ENC_RANGE != count)
		return -EINVAL;
	for (uint64_t i = 0; i < count; i++) {
		const uint8_t *p = buf + ENC_HEADER + ENC_RANGE * i;
		uint64_t gpa = get_le(p, 8), n = get_le(p + 8, 8), origin = get_le(p + 16, 4);

		if (n == 0 || n > UINT64_MAX - gpa || origin > POISON_INHERITED ||
		    (i > 0 && gpa < prev_end))
			return -EINVAL;
		prev_end = gpa + n;
	}
	return (long)count;
}

/*
 * Checks every range before adding any, so bad input leaves the log as it was. Ranges in order
 * land at the end of what came before, so no input makes decoding cost more than n log n.
 */
int poison_log_decode(struct poison_log *log, const uint8_t *buf, size_t len, bool as_inherited)
{
	long count = poison_log_check_encoded(buf, len);

	if (count < 0)
		return (int)count;
	for (long i = 0; i < count; i++) {
		const uint8_t *p = buf + ENC_HEADER + ENC_RANGE * i;
		enum poison_origin origin = as_inherited ? POISON_INHERITED
							 : (enum poison_origin)get_le(p + 16, 4);
		int ret = poison_log_add(log, get_le(p, 8), get_le(p + 8, 8), origin);

		if (ret < 0)
			return ret;
	}
	return 0;
}

/* --- the guard --- */

/*
 * Per thread by nature: where the copy in progress on this thread jumps back to. The only
 * state kiln keeps outside struct vm, because a signal handler can reach nothing else.
 */
static _Thread_local struct {
	sigjmp_buf jmp;
	volatile sig_atomic_t active;
	const void *volatile fault; /* the memory error the last caught fault was, or NULL */
} guard;

/* The handler ran with SIGBUS blocked and was left by a jump that restores no mask. */
static int caught(void)
{
	sigset_t set;

	guard.active = 0;
	sigemptyset(&set);
	sigaddset(&set, SIGBUS);
	pthread_sigmask(SIG_UNBLOCK, &set, NULL);
	return -EHWPOISON;
}

int poison_guard_copy(void *dst, const void *src, size_t n)
{
	if (sigsetjmp(guard.jmp, 0))
		return caught();
	guard.active = 1;
	atomic_signal_fence(memory_order_seq_cst);
	memcpy(dst, src, n);
	atomic_signal_fence(memory_order_seq_cst);
	guard.active = 0;
	return 0;
}

int poison_guard_load16(const uint16_t *p, uint16_t *v)
{
	if (sigsetjmp(guard.jmp, 0))
		return caught();
	guard.active = 1;
	atomic_signal_fence(memory_order_seq_cst);
	*v = __atomic_load_n(p, __ATOMIC_ACQUIRE);
	atomic_signal_fence(memory_order_seq_cst);
	guard.active = 0;
	return 0;
}

int poison_guard_store16(uint16_t *p, uint16_t v)
{
	if (sigsetjmp(guard.jmp, 0))
		return caught();
	guard.active = 1;
	atomic_signal_fence(memory_order_seq_cst);
	__atomic_store_n(p, v, __ATOMIC_RELEASE);
	atomic_signal_fence(memory_order_seq_cst);
	guard.active = 0;
	return 0;
}

bool poison_guard_handle_at(const void *addr, bool memory_error)
{
	if (!guard.active)
		return false;
	guard.active = 0;
	guard.fault = memory_error ? addr : NULL;
	siglongjmp(guard.jmp, 1);
}

bool poison_guard_handle(void)
{
	return poison_guard_handle_at(NULL, false);
}

const void *poison_guard_fault(void)
{
	return guard.fault;
}
