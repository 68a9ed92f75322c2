/* Unit tests for vmm/poison_log.c (the log, its encodings, the guard against a real SIGBUS) and
 * for the poison checks of vmm/memory.c. */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "log.h"
#include "memory.h"
#include "poison_log.h"

#define PAGE 4096ull
#define MIB (1ull << 20)

/* ASan's own SIGBUS handler would report the test's deliberate fault as a crash. */
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
	return "handle_sigbus=0";
}

static int log_setup_fn(void **state)
{
	struct poison_log *log = malloc(sizeof(*log));

	if (!log || poison_log_init(log) < 0)
		return -1;
	*state = log;
	return 0;
}

static int log_teardown_fn(void **state)
{
	poison_log_destroy(*state);
	free(*state);
	return 0;
}

static void check_range(struct poison_log *log, size_t i, uint64_t gpa, uint64_t len,
			enum poison_origin origin)
{
	assert_true(i < log->nr);
	assert_int_equal(log->ranges[i].gpa, gpa);
	assert_int_equal(log->ranges[i].len, len);
	assert_int_equal(log->ranges[i].origin, origin);
}

/* --- the log --- */

static void poison_log_add_one_range_recorded(void **state)
{
	struct poison_log *log = *state;

	assert_int_equal(poison_log_add(log, 0x5000, PAGE, POISON_HOST), 0);
	assert_int_equal(log->nr, 1);
	assert_int_equal(atomic_load(&log->count), 1);
	check_range(log, 0, 0x5000, PAGE, POISON_HOST);
}

static void poison_log_add_touching_same_origin_merges(void **state)
{
	struct poison_log *log = *state;

	assert_int_equal(poison_log_add(log, 0x3000, PAGE, POISON_HOST), 0);
	assert_int_equal(poison_log_add(log, 0x5000, PAGE, POISON_HOST), 0);
	assert_int_equal(log->nr, 2);
	assert_int_equal(poison_log_add(log, 0x4000, PAGE, POISON_HOST), 0); /* fills the gap */
	assert_int_equal(log->nr, 1);
	check_range(log, 0, 0x3000, 3 * PAGE, POISON_HOST);
	assert_int_equal(poison_log_add(log, 0x2000, PAGE, POISON_HOST), 0); /* before */
	assert_int_equal(poison_log_add(log, 0x6000, PAGE, POISON_HOST), 0); /* after */
	assert_int_equal(log->nr, 1);
	check_range(log, 0, 0x2000, 5 * PAGE, POISON_HOST);
	assert_int_equal(atomic_load(&log->count), 1);
}

static void poison_log_add_touching_other_origin_stays_apart(void **state)
{
	struct poison_log *log = *state;

	assert_int_equal(poison_log_add(log, 0x3000, PAGE, POISON_HOST), 0);
	assert_int_equal(poison_log_add(log, 0x4000, PAGE, POISON_INJECTED), 0);
	assert_int_equal(poison_log_add(log, 0x2000, PAGE, POISON_INHERITED), 0);
	assert_int_equal(log->nr, 3);
	check_range(log, 0, 0x2000, PAGE, POISON_INHERITED);
	check_range(log, 1, 0x3000, PAGE, POISON_HOST);
	check_range(log, 2, 0x4000, PAGE, POISON_INJECTED);
}

static void poison_log_add_overlap_keeps_first_origin(void **state)
{
	struct poison_log *log = *state;

	assert_int_equal(poison_log_add(log, 0x2000, 2 * PAGE, POISON_HOST), 0);
	assert_int_equal(poison_log_add(log, 0x8000, PAGE, POISON_HOST), 0);
	assert_int_equal(poison_log_add(log, 0x1000, 0x9000, POISON_INJECTED), 0);
	assert_int_equal(log->nr, 5);
	check_range(log, 0, 0x1000, PAGE, POISON_INJECTED);
	check_range(log, 1, 0x2000, 2 * PAGE, POISON_HOST);
	check_range(log, 2, 0x4000, 4 * PAGE, POISON_INJECTED);
	check_range(log, 3, 0x8000, PAGE, POISON_HOST);
	check_range(log, 4, 0x9000, PAGE, POISON_INJECTED);
	/* Already recorded: nothing changes, whatever the origin. */
	assert_int_equal(poison_log_add(log, 0x2000, PAGE, POISON_INHERITED), 0);
	assert_int_equal(poison_log_add(log, 0x1000, 0x9000, POISON_INJECTED), 0);
	assert_int_equal(log->nr, 5);
	check_range(log, 1, 0x2000, 2 * PAGE, POISON_HOST);
}

static void poison_log_add_covering_same_origin_one_range(void **state)
{
	struct poison_log *log = *state;

	for (uint64_t a = 0x10000; a < 0x20000; a += 2 * PAGE)
		assert_int_equal(poison_log_add(log, a, PAGE, POISON_HOST), 0);
	assert_int_equal(log->nr, 8);
	assert_int_equal(poison_log_add(log, 0xf000, 0x12000, POISON_HOST), 0);
	assert_int_equal(log->nr, 1);
	check_range(log, 0, 0xf000, 0x12000, POISON_HOST);
}

static void poison_log_add_bad_arguments_fail_einval(void **state)
{
	struct poison_log *log = *state;

	assert_int_equal(poison_log_add(log, 0x1000, 0, POISON_HOST), -EINVAL);
	assert_int_equal(poison_log_add(log, UINT64_MAX - 0xfff, 0x2000, POISON_HOST), -EINVAL);
	assert_int_equal(poison_log_add(log, 0x1000, PAGE, (enum poison_origin)7), -EINVAL);
	/* The end is exclusive and must be representable: the very last page cannot be. */
	assert_int_equal(poison_log_add(log, UINT64_MAX - 0xfff, 0x1000, POISON_HOST), -EINVAL);
	assert_int_equal(log->nr, 0);
	assert_int_equal(poison_log_add(log, UINT64_MAX - 0x1fff, 0x1000, POISON_HOST), 0);
}

static void poison_log_contains_edges(void **state)
{
	struct poison_log *log = *state;

	assert_false(poison_log_contains(log, 0, UINT64_MAX)); /* empty */
	assert_int_equal(poison_log_add(log, 0x1000, PAGE, POISON_HOST), 0);
	assert_int_equal(poison_log_add(log, 0x5000, PAGE, POISON_INJECTED), 0);
	assert_false(poison_log_contains(log, 0xfff, 1));
	assert_true(poison_log_contains(log, 0xfff, 2));
	assert_true(poison_log_contains(log, 0x1000, 1));
	assert_true(poison_log_contains(log, 0x1fff, 1));
	assert_false(poison_log_contains(log, 0x2000, 1));
	assert_false(poison_log_contains(log, 0x2000, 0x3000));
	assert_true(poison_log_contains(log, 0x2000, 0x3001));
	assert_false(poison_log_contains(log, 0x6000, UINT64_MAX)); /* clamped, not wrapped */
	assert_true(poison_log_contains(log, 0, UINT64_MAX));
	assert_false(poison_log_contains(log, 0x1000, 0));
}

static void poison_log_many_ranges_sorted_and_found(void **state)
{
	struct poison_log *log = *state;
	enum { N = 2000 };
	uint64_t order[N];

	/* Every other page, in a scrambled order (a permutation: 7919 is prime to N). */
	for (uint64_t i = 0; i < N; i++)
		order[i] = (i * 7919) % N;
	for (uint64_t i = 0; i < N; i++)
		assert_int_equal(poison_log_add(log, order[i] * 2 * PAGE, PAGE,
						order[i] % 3 ? POISON_HOST : POISON_INJECTED), 0);
	assert_int_equal(log->nr, N);
	for (size_t i = 1; i < log->nr; i++)
		assert_true(log->ranges[i - 1].gpa + log->ranges[i - 1].len < log->ranges[i].gpa);
	for (uint64_t p = 0; p < 2 * N; p++)
		assert_int_equal(poison_log_contains(log, p * PAGE + 17, 1), p % 2 == 0);
	/* Filling the holes with the host origin merges every host neighbour. */
	for (uint64_t i = 0; i < N; i++)
		assert_int_equal(poison_log_add(log, (2 * i + 1) * PAGE, PAGE, POISON_HOST), 0);
	for (size_t i = 1; i < log->nr; i++) {
		const struct poison_range *a = &log->ranges[i - 1], *b = &log->ranges[i];

		assert_int_equal(a->gpa + a->len, b->gpa);
		assert_int_not_equal(a->origin, b->origin);
	}
	assert_true(poison_log_contains(log, 0, 2 * N * PAGE));
}

/* --- names and JSON --- */

static void poison_origin_name_each(void **state)
{
	(void)state;
	assert_string_equal(poison_origin_name(POISON_HOST), "host");
	assert_string_equal(poison_origin_name(POISON_INJECTED), "injected");
	assert_string_equal(poison_origin_name(POISON_INHERITED), "inherited");
}

static void poison_log_json_shape(void **state)
{
	struct poison_log *log = *state;
	json_t *j = poison_log_json(log);
	char *text;

	text = json_dumps(j, JSON_COMPACT);
	assert_string_equal(text, "{\"pages\":[]}");
	free(text);
	json_decref(j);
	assert_int_equal(poison_log_add(log, 0x200000, 0x200000, POISON_HOST), 0);
	assert_int_equal(poison_log_add(log, 0x1000, PAGE, POISON_INHERITED), 0);
	j = poison_log_json(log);
	text = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
	assert_string_equal(text, "{\"pages\":[{\"guest_phys_addr\":4096,\"length\":4096,"
				  "\"origin\":\"inherited\"},{\"guest_phys_addr\":2097152,"
				  "\"length\":2097152,\"origin\":\"host\"}]}");
	free(text);
	json_decref(j);
}

/* --- the encoding --- */

static void poison_log_encode_golden_bytes(void **state)
{
	struct poison_log *log = *state;
	static const uint8_t golden[] = {
		2, 0, 0, 0,
		0x00, 0x10, 0, 0, 0, 0, 0, 0,  0x00, 0x10, 0, 0, 0, 0, 0, 0,  1, 0, 0, 0,
		0x00, 0x00, 0x20, 0, 1, 0, 0, 0,  0x00, 0x00, 0x20, 0, 0, 0, 0, 0,  0, 0, 0, 0,
	};
	uint8_t buf[sizeof(golden) + 8];

	assert_int_equal(poison_log_encoded_size(log), 4);
	assert_int_equal(poison_log_encode(log, buf, 4), 4);
	assert_memory_equal(buf, "\0\0\0\0", 4);
	assert_int_equal(poison_log_add(log, 0x1000, PAGE, POISON_INJECTED), 0);
	assert_int_equal(poison_log_add(log, 0x100200000ull, 0x200000, POISON_HOST), 0);
	assert_int_equal(poison_log_encoded_size(log), sizeof(golden));
	assert_int_equal(poison_log_encode(log, buf, sizeof(golden) - 1), -ENOSPC);
	memset(buf, 0xee, sizeof(buf));
	assert_int_equal(poison_log_encode(log, buf, sizeof(buf)), sizeof(golden));
	assert_memory_equal(buf, golden, sizeof(golden));
	assert_int_equal(buf[sizeof(golden)], 0xee);
}

static void poison_log_decode_round_trip_same_ranges(void **state)
{
	struct poison_log *log = *state, copy, inherited;
	uint8_t buf[4 + 20 * 3];

	assert_int_equal(poison_log_add(log, 0x1000, PAGE, POISON_INJECTED), 0);
	assert_int_equal(poison_log_add(log, 0x3000, 2 * PAGE, POISON_HOST), 0);
	assert_int_equal(poison_log_add(log, 0x9000, PAGE, POISON_INHERITED), 0);
	assert_int_equal(poison_log_encode(log, buf, sizeof(buf)), sizeof(buf));

	assert_int_equal(poison_log_init(&copy), 0);
	assert_int_equal(poison_log_decode(&copy, buf, sizeof(buf), false), 0);
	assert_int_equal(copy.nr, 3);
	for (size_t i = 0; i < 3; i++)
		check_range(&copy, i, log->ranges[i].gpa, log->ranges[i].len, log->ranges[i].origin);
	poison_log_destroy(&copy);

	assert_int_equal(poison_log_init(&inherited), 0);
	assert_int_equal(poison_log_decode(&inherited, buf, sizeof(buf), true), 0);
	assert_int_equal(inherited.nr, 3);
	for (size_t i = 0; i < 3; i++)
		check_range(&inherited, i, log->ranges[i].gpa, log->ranges[i].len,
			    POISON_INHERITED);
	poison_log_destroy(&inherited);
}

static void put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void poison_log_decode_bad_input_fails_einval_log_unchanged(void **state)
{
	struct poison_log *log = *state;
	uint8_t good[4 + 40], bad[sizeof(good) + 1];

	assert_int_equal(poison_log_add(log, 0x1000, PAGE, POISON_HOST), 0);
	assert_int_equal(poison_log_add(log, 0x4000, PAGE, POISON_INJECTED), 0);
	assert_int_equal(poison_log_encode(log, good, sizeof(good)), sizeof(good));
	poison_log_destroy(log);
	assert_int_equal(poison_log_init(log), 0);

	assert_int_equal(poison_log_decode(log, good, 0, false), -EINVAL);
	assert_int_equal(poison_log_decode(log, good, 3, false), -EINVAL);
	for (size_t len = 4; len < sizeof(good); len++) /* every truncation */
		assert_int_equal(poison_log_decode(log, good, len, false), -EINVAL);
	memcpy(bad, good, sizeof(good));
	bad[sizeof(good)] = 0;
	assert_int_equal(poison_log_decode(log, bad, sizeof(bad), false), -EINVAL); /* trailing */
	memcpy(bad, good, sizeof(good));
	bad[0] = 3; /* count says more than there is */
	assert_int_equal(poison_log_decode(log, bad, sizeof(good), false), -EINVAL);
	bad[0] = 1; /* count says less: the rest is trailing */
	assert_int_equal(poison_log_decode(log, bad, sizeof(good), false), -EINVAL);
	memcpy(bad, good, sizeof(good));
	bad[4 + 20 + 16] = 3; /* unknown origin in the second range */
	assert_int_equal(poison_log_decode(log, bad, sizeof(good), false), -EINVAL);
	bad[4 + 20 + 16] = 1;
	bad[4 + 20 + 19] = 1; /* origin 0x01000001 */
	assert_int_equal(poison_log_decode(log, bad, sizeof(good), false), -EINVAL);
	memcpy(bad, good, sizeof(good));
	put64(bad + 4 + 20 + 8, 0); /* zero length */
	assert_int_equal(poison_log_decode(log, bad, sizeof(good), false), -EINVAL);
	memcpy(bad, good, sizeof(good));
	put64(bad + 4 + 20, UINT64_MAX - 0xfff); /* gpa + len wraps */
	put64(bad + 4 + 20 + 8, 0x2000);
	assert_int_equal(poison_log_decode(log, bad, sizeof(good), false), -EINVAL);
	memcpy(bad, good, sizeof(good));
	put64(bad + 4 + 20, 0x1000); /* the second range overlaps the first */
	assert_int_equal(poison_log_decode(log, bad, sizeof(good), false), -EINVAL);
	put64(bad + 4 + 20, 0x0); /* out of order */
	assert_int_equal(poison_log_decode(log, bad, sizeof(good), false), -EINVAL);
	assert_int_equal(log->nr, 0); /* no range added by any of them */
	put64(bad + 4 + 20, 0x2000); /* touching the first is in order */
	assert_int_equal(poison_log_decode(log, bad, sizeof(good), false), 0);
	assert_int_equal(log->nr, 2);
	poison_log_destroy(log);
	assert_int_equal(poison_log_init(log), 0);
	assert_int_equal(poison_log_decode(log, good, sizeof(good), false), 0);
	assert_int_equal(log->nr, 2);
}

/* The largest log a state file can hold in descending order once took hours to decode. */
static void poison_log_decode_descending_refused_fast(void **state)
{
	struct poison_log *log = *state;
	enum { N = 200000 };
	size_t len = 4 + 20 * (size_t)N;
	uint8_t *buf = calloc(1, len);

	assert_non_null(buf);
	buf[0] = N & 0xff, buf[1] = (N >> 8) & 0xff, buf[2] = (N >> 16) & 0xff;
	for (size_t i = 0; i < N; i++) {
		put64(buf + 4 + 20 * i, (uint64_t)(N - i) * 2 * PAGE);
		put64(buf + 4 + 20 * i + 8, PAGE);
	}
	assert_int_equal(poison_log_decode(log, buf, len, true), -EINVAL);
	assert_int_equal(log->nr, 0);
	for (size_t i = 0; i < N; i++) /* the same ranges ascending */
		put64(buf + 4 + 20 * i, (uint64_t)(i + 1) * 2 * PAGE);
	assert_int_equal(poison_log_decode(log, buf, len, true), 0);
	assert_int_equal(log->nr, N);
	free(buf);
}

/* --- the guard, against a real SIGBUS --- */

/* When set, the test's SIGBUS counts as a host memory error (as BUS_MCEERR_AR would). */
static bool fault_is_memory_error;

static void on_sigbus(int sig, siginfo_t *si, void *uc)
{
	(void)uc;
	poison_guard_handle_at(si->si_addr, fault_is_memory_error);
	/* Not inside the guard: die as without a handler. */
	signal(sig, SIG_DFL);
	raise(sig);
}

/* cmocka puts its own SIGBUS handler in place for each test: the test's goes over it. */
static void catch_sigbus(struct sigaction *old)
{
	struct sigaction sa = { .sa_sigaction = on_sigbus, .sa_flags = SA_SIGINFO };

	sigemptyset(&sa.sa_mask);
	assert_int_equal(sigaction(SIGBUS, &sa, old), 0);
}

/* Two pages of a memfd mapped, the file then cut to one: the second page raises SIGBUS. */
static uint8_t *map_cut_short(int *fd)
{
	uint8_t *p;

	*fd = memfd_create("kiln-test-poison", MFD_CLOEXEC);
	assert_true(*fd >= 0);
	assert_int_equal(ftruncate(*fd, 2 * PAGE), 0);
	p = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, *fd, 0);
	assert_true(p != MAP_FAILED);
	memset(p, 0x5a, 2 * PAGE);
	assert_int_equal(ftruncate(*fd, PAGE), 0);
	return p;
}

static void poison_guard_copy_sigbus_fails_ehwpoison(void **state)
{
	uint8_t buf[64] = { 0 }, *p;
	struct sigaction old;
	uint16_t v = 0;
	int fd;

	(void)state;
	catch_sigbus(&old);
	p = map_cut_short(&fd);
	assert_false(poison_guard_handle()); /* outside a guarded copy */
	assert_int_equal(poison_guard_copy(buf, p + PAGE - 32, 32), 0);
	assert_int_equal(buf[0], 0x5a);
	/* Twice each way: SIGBUS must be unblocked again after the first one was caught. */
	for (int i = 0; i < 2; i++) {
		assert_int_equal(poison_guard_copy(buf, p + PAGE - 32, 64), -EHWPOISON);
		assert_int_equal(poison_guard_copy(p + PAGE + 100, buf, 8), -EHWPOISON);
		assert_int_equal(poison_guard_load16((const uint16_t *)(p + PAGE), &v), -EHWPOISON);
		assert_int_equal(poison_guard_store16((uint16_t *)(p + PAGE + 2), 7), -EHWPOISON);
	}
	assert_int_equal(poison_guard_load16((const uint16_t *)p, &v), 0);
	assert_int_equal(v, 0x5a5a);
	assert_int_equal(poison_guard_store16((uint16_t *)p, 0x1234), 0);
	assert_int_equal(p[0], 0x34);
	assert_false(poison_guard_handle()); /* the guard is off again */
	munmap(p, 2 * PAGE);
	close(fd);
	sigaction(SIGBUS, &old, NULL);
}

/* --- guest memory with a poison log --- */

struct gm_fixture {
	struct guest_memory gm;
	struct poison_log log;
};

static int gm_setup(void **state)
{
	struct gm_fixture *f = calloc(1, sizeof(*f));

	if (!f || guest_memory_create(&f->gm, 16 * MIB, false) < 0 || poison_log_init(&f->log) < 0)
		return -1;
	f->gm.poison = &f->log;
	*state = f;
	return 0;
}

static int gm_teardown(void **state)
{
	struct gm_fixture *f = *state;

	guest_memory_destroy(&f->gm);
	poison_log_destroy(&f->log);
	free(f);
	return 0;
}

static void guest_memory_ptr_poisoned_range_null(void **state)
{
	struct gm_fixture *f = *state;
	struct guest_memory *gm = &f->gm;
	uint64_t bm[(16 * MIB / PAGE + 63) / 64];

	assert_non_null(guest_memory_ptr(gm, 0x3000, PAGE));
	assert_int_equal(poison_log_add(&f->log, 0x3000, PAGE, POISON_INJECTED), 0);
	assert_ptr_equal(guest_memory_ptr(gm, 0x2000, PAGE), gm->host + 0x2000);
	assert_ptr_equal(guest_memory_ptr(gm, 0x4000, 8), gm->host + 0x4000);
	assert_null(guest_memory_ptr(gm, 0x2fff, 2));
	assert_null(guest_memory_ptr(gm, 0x3000, 1));
	assert_null(guest_memory_ptr(gm, 0x3fff, 1));
	assert_null(guest_memory_ptr(gm, 0, 16 * MIB));
	guest_memory_take_dirty(gm, bm);
	assert_null(guest_memory_ptr_mut(gm, 0x3800, 16));
	guest_memory_take_dirty(gm, bm);
	assert_int_equal(bm[0], 0); /* a refused range is not recorded as written */
	assert_true(guest_memory_in_ram(gm, 0x3000, PAGE));
	assert_false(guest_memory_in_ram(gm, 16 * MIB - 1, 2));
	assert_int_equal(guest_memory_check(gm, 0x3000, 1), -EHWPOISON);
	assert_int_equal(guest_memory_check(gm, 0x2000, PAGE), 0);
	assert_int_equal(guest_memory_check(gm, 16 * MIB, 1), -EFAULT);
}

static void guest_memory_read_write_poisoned_fail_ehwpoison(void **state)
{
	struct gm_fixture *f = *state;
	struct guest_memory *gm = &f->gm;
	uint8_t buf[16];

	memset(gm->host + 0x3000, 0x77, PAGE);
	memset(buf, 0x11, sizeof(buf));
	assert_int_equal(poison_log_add(&f->log, 0x3000, PAGE, POISON_HOST), 0);
	assert_int_equal(guest_memory_read(gm, 0x2ff8, buf, sizeof(buf)), -EHWPOISON);
	assert_int_equal(buf[0], 0x11); /* nothing copied, not even the bytes before the page */
	assert_int_equal(buf[15], 0x11);
	assert_int_equal(guest_memory_write(gm, 0x3ff0, buf, sizeof(buf)), -EHWPOISON);
	assert_int_equal(gm->host[0x3ff0], 0x77); /* nothing written */
	assert_int_equal(guest_memory_read(gm, 16 * MIB, buf, 1), -EFAULT);
	assert_int_equal(guest_memory_write(gm, 0x4000, buf, sizeof(buf)), 0);
	assert_int_equal(guest_memory_read(gm, 0x2ff0, buf, sizeof(buf)), 0);
}

/* A page that faults without being in the log: the guard, not the log, stops the copy. */
static void guest_memory_read_write_sigbus_fail_ehwpoison(void **state)
{
	struct guest_memory gm = { 0 };
	uint8_t buf[8] = { 0 };
	struct sigaction old;
	int fd;

	(void)state;
	catch_sigbus(&old);
	guest_memory_layout(&gm, 2 * PAGE);
	gm.host = map_cut_short(&fd);
	assert_int_equal(guest_memory_read(&gm, PAGE - 4, buf, 8), -EHWPOISON);
	assert_int_equal(guest_memory_write(&gm, PAGE, buf, 8), -EHWPOISON);
	assert_int_equal(guest_memory_read(&gm, PAGE - 8, buf, 8), 0);
	assert_int_equal(buf[7], 0x5a);
	munmap(gm.host, 2 * PAGE);
	close(fd);
	sigaction(SIGBUS, &old, NULL);
}

/* A host memory error met by kiln's own copy: the copy fails and the page goes in the log as
 * "host"; an ordinary fault (the memfd cut short) is not recorded. */
static void guest_memory_read_memory_error_recorded_as_host(void **state)
{
	struct guest_memory gm = { 0 };
	struct poison_log log;
	uint8_t buf[8] = { 0 };
	struct sigaction old;
	json_t *j;
	int fd;

	(void)state;
	assert_int_equal(poison_log_init(&log), 0);
	catch_sigbus(&old);
	guest_memory_layout(&gm, 2 * PAGE);
	gm.page_size = PAGE;
	gm.poison = &log;
	gm.host = map_cut_short(&fd);
	assert_int_equal(guest_memory_read(&gm, PAGE, buf, 8), -EHWPOISON);
	assert_false(poison_log_contains(&log, PAGE, 1));
	fault_is_memory_error = true;
	assert_int_equal(guest_memory_read(&gm, PAGE + 8, buf, 8), -EHWPOISON);
	fault_is_memory_error = false;
	assert_true(poison_log_contains(&log, PAGE, PAGE));
	assert_false(poison_log_contains(&log, 0, PAGE));
	j = poison_log_json(&log);
	assert_string_equal(json_string_value(json_object_get(
				    json_array_get(json_object_get(j, "pages"), 0), "origin")),
			    "host");
	json_decref(j);
	/* Now refused up front, without touching the page. */
	assert_int_equal(guest_memory_read(&gm, PAGE, buf, 1), -EHWPOISON);
	munmap(gm.host, 2 * PAGE);
	close(fd);
	sigaction(SIGBUS, &old, NULL);
	poison_log_destroy(&log);
}

static int group_setup(void **state)
{
	(void)state;
	return log_setup(NULL, LOG_OFF, false, false);
}

int main(void)
{
#define TL(f) cmocka_unit_test_setup_teardown(f, log_setup_fn, log_teardown_fn)
#define TG(f) cmocka_unit_test_setup_teardown(f, gm_setup, gm_teardown)
	const struct CMUnitTest tests[] = {
		TL(poison_log_add_one_range_recorded),
		TL(poison_log_add_touching_same_origin_merges),
		TL(poison_log_add_touching_other_origin_stays_apart),
		TL(poison_log_add_overlap_keeps_first_origin),
		TL(poison_log_add_covering_same_origin_one_range),
		TL(poison_log_add_bad_arguments_fail_einval),
		TL(poison_log_contains_edges),
		TL(poison_log_many_ranges_sorted_and_found),
		cmocka_unit_test(poison_origin_name_each),
		TL(poison_log_json_shape),
		TL(poison_log_encode_golden_bytes),
		TL(poison_log_decode_round_trip_same_ranges),
		TL(poison_log_decode_bad_input_fails_einval_log_unchanged),
		TL(poison_log_decode_descending_refused_fast),
		cmocka_unit_test(poison_guard_copy_sigbus_fails_ehwpoison),
		TG(guest_memory_ptr_poisoned_range_null),
		TG(guest_memory_read_write_poisoned_fail_ehwpoison),
		cmocka_unit_test(guest_memory_read_write_sigbus_fail_ehwpoison),
		cmocka_unit_test(guest_memory_read_memory_error_recorded_as_host),
	};
#undef TL
#undef TG

	return cmocka_run_group_tests_name("poison_log.c", tests, group_setup, NULL);
}
