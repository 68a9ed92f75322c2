/* Unit tests for migration/uffd_server.c on real userfaultfd memory: pages read in any order
 * from another thread match the memory file; poisoned pages raise SIGBUS before, during and after
 * the fill (and once the range is unregistered); the background fill completes alone; a failing
 * source leaves no thread waiting and no page reading zeros; 2 MiB hugetlb pages; the thread
 * under its seccomp filter. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/memfd.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "seccomp_filter.h"
#include "uffd_compat.h"
#include "uffd_server.h"
#include "uffd_test.h"

#define PAGE 4096ull
#define HUGE (2ull << 20)
#define MIB (1ull << 20)

/* A memory file of size bytes (a memfd: no disk), each word its pattern except in the hole
 * [hole, hole+hole_len), left sparse. */
static int memory_file(uint64_t size, uint64_t hole, uint64_t hole_len)
{
	int fd = memfd_create("kiln-test-memory-file", MFD_CLOEXEC);
	uint64_t *buf = malloc(MIB);

	assert_true(fd >= 0);
	assert_non_null(buf);
	assert_int_equal(ftruncate(fd, (off_t)size), 0);
	for (uint64_t off = 0; off < size; off += MIB) {
		uint64_t len = size - off < MIB ? size - off : MIB;

		for (uint64_t w = 0; w < len / 8; w++)
			buf[w] = off + w * 8 >= hole && off + w * 8 < hole + hole_len ? 0 :
				 pattern(off + w * 8);
		if (off + len <= hole || off >= hole + hole_len)
			assert_int_equal(pwrite(fd, buf, len, (off_t)off), (ssize_t)len);
	}
	free(buf);
	return fd;
}

/* Waits for the server's end through its event fd (as the owner's event loop would). */
static int server_ended(struct uffd_server *s)
{
	struct pollfd p = { .fd = uffd_server_event_fd(s), .events = POLLIN };

	if (poll(&p, 1, TIMEOUT_MS) != 1)
		fail_msg("the page server did not end within %d ms", TIMEOUT_MS);
	return uffd_server_wait_done(s);
}

static void start_ok(struct uffd_server *s, uint8_t *host, uint64_t size, uint64_t page_size,
		     struct page_source src, const struct uffd_range *poison, size_t nr)
{
	struct uffd_server_config c = { .host = host, .size = size, .page_size = page_size,
					.source = src, .poison = poison, .nr_poison = nr };
	char err[256] = "";

	if (uffd_server_start(s, &c, err, sizeof(err)) != 0)
		fail_msg("uffd_server_start: %s", err);
}

static void assert_stats_add_up(struct uffd_server *s, uint64_t poisoned)
{
	struct uffd_server_stats st;

	uffd_server_stats(s, &st);
	assert_true(st.done);
	assert_int_equal(st.poisoned_pages, poisoned);
	assert_int_equal(st.fault_pages + st.background_pages + st.poisoned_pages + st.lost_pages +
			 st.present_pages, st.pages);
	assert_true(st.fault_pages <= st.faults);
	assert_true(st.fault_ns_max <= st.fault_ns_total);
	assert_true(st.fault_ns_p50 <= st.fault_ns_p99);
}

static double seconds_since(const struct timespec *t0)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)(t.tv_sec - t0->tv_sec) + (double)(t.tv_nsec - t0->tv_nsec) / 1e9;
}

/* A source that holds every read until the test opens it. */
struct gate {
	struct page_source inner;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool open;
	pid_t waiter;         /* the thread id of the first reader to wait, 0 before */
};

static int gated_read(void *opaque, uint64_t off, void *dst, size_t len)
{
	struct gate *g = opaque;

	pthread_mutex_lock(&g->lock);
	if (!g->waiter) {
		g->waiter = gettid();
		pthread_cond_broadcast(&g->cond);
	}
	while (!g->open)
		pthread_cond_wait(&g->cond, &g->lock);
	pthread_mutex_unlock(&g->lock);
	return g->inner.read(g->inner.opaque, off, dst, len);
}

static void gate_open(struct gate *g)
{
	pthread_mutex_lock(&g->lock);
	g->open = true;
	pthread_cond_broadcast(&g->cond);
	pthread_mutex_unlock(&g->lock);
}

/* Each test's server and gate, torn down even when the test fails half-way: a server thread
 * left running would write into a later test's stack. */
struct fixture {
	struct uffd_server server;
	struct gate gate;
	long hugepages_old;   /* nr_hugepages before the test raised it, or -1 */
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	pthread_mutex_init(&f->gate.lock, NULL);
	pthread_cond_init(&f->gate.cond, NULL);
	f->hugepages_old = -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	gate_open(&f->gate);
	uffd_server_cancel(&f->server); /* no-ops after a test that stopped its server */
	uffd_server_stop(&f->server);
	if (f->hugepages_old >= 0 && read_long(nr_hugepages_path) != f->hugepages_old &&
	    !write_long(nr_hugepages_path, f->hugepages_old))
		fprintf(stderr, "cannot put %s back to %ld\n", nr_hugepages_path, f->hugepages_old);
	free(f);
	return 0;
}

/* --- 4 KiB pages --- */

static void uffd_server_random_reads_match_file_and_poison_raises_sigbus(void **state)
{
	struct fixture *f = *state;
	struct uffd_server *s = &f->server;
	const uint64_t size = 64 * MIB, n = size / PAGE;
	const struct uffd_range poison[] = {
		{ 5 * PAGE, PAGE }, { 1000 * PAGE, 3 * PAGE }, { 1001 * PAGE, PAGE } /* overlap */,
		{ size - PAGE, PAGE },
	};
	struct uffd_server_stats st;
	struct reader r;
	int file = memory_file(size, 0, 0), mem;
	uint8_t *host = ram(size, false, &mem);

	catch_sigbus();
	assert_non_null(host);
	/* The source is held until the reader's first fault is queued: on a busy machine the
	 * background fill could otherwise finish before the reader touches a page. */
	f->gate.inner = page_source_file(file);
	start_ok(s, host, size, PAGE, (struct page_source){ .read = gated_read, .opaque = &f->gate },
		 poison, 4);
	assert_int_equal(reader_start(&r, host, PAGE, n, n / 2), 0);
	{
		struct pollfd p = { .fd = s->uffd, .events = POLLIN };

		if (poll(&p, 1, TIMEOUT_MS) != 1)
			fail_msg("no fault within %d ms", TIMEOUT_MS);
	}
	gate_open(&f->gate);
	if (reader_join(&r) != 0)
		fail_msg("the reading thread hangs on a page");
	for (uint64_t p = 0; p < n; p++) {
		bool poisoned = p == 5 || (p >= 1000 && p < 1003) || p == n - 1;

		if (r.result[p] != (poisoned ? POISONED : 0))
			fail_msg("page %" PRIu64 ": %d", p, r.result[p]);
	}
	assert_int_equal(server_ended(s), 0);
	assert_stats_add_up(s, 5);
	uffd_server_stats(s, &st);
	assert_true(st.faults > 0);
	print_message("    %" PRIu64 " faults (%" PRIu64 " pages), %" PRIu64 " in the background; "
		      "fault service: mean %.1f us, p50 < %.1f us, p99 < %.1f us, max %.1f us\n",
		      st.faults, st.fault_pages, st.background_pages,
		      (double)st.fault_ns_total / (double)st.faults / 1e3, st.fault_ns_p50 / 1e3,
		      st.fault_ns_p99 / 1e3, st.fault_ns_max / 1e3);
	/* Unregistered and closed now: the markers outlive the registration, the data stays. */
	assert_int_equal(s->uffd, -1);
	assert_int_equal(check_page(host + 5 * PAGE, 5 * PAGE, PAGE, false), POISONED);
	assert_int_equal(check_page(host + 1002 * PAGE, 1002 * PAGE, PAGE, false), POISONED);
	assert_int_equal(check_page(host + size - PAGE, size - PAGE, PAGE, false), POISONED);
	assert_int_equal(check_page(host + 4 * PAGE, 4 * PAGE, PAGE, false), 0);
	assert_int_equal(check_page(host + 1003 * PAGE, 1003 * PAGE, PAGE, false), 0);
	uffd_server_stop(s);
	free(r.result);
	munmap(host, size);
	close(mem);
	close(file);
}

static void uffd_server_poison_raises_sigbus_before_any_page_is_served(void **state)
{
	struct fixture *f = *state;
	struct uffd_server *s = &f->server;
	const uint64_t size = 4 * MIB;
	const struct uffd_range poison = { 7 * PAGE, PAGE };
	struct uffd_server_stats st;
	struct reader r;
	struct timespec pause = { 0, 50 * 1000 * 1000 };
	char name[16] = "";
	int file = memory_file(size, 0, 0), mem;
	uint8_t *host = ram(size, false, &mem);

	catch_sigbus();
	assert_non_null(host);
	f->gate.inner = page_source_file(file);
	start_ok(s, host, size, PAGE, (struct page_source){ .read = gated_read, .opaque = &f->gate }, &poison, 1);
	/* The thread sits in its first background read; a fault waits behind it. */
	assert_int_equal(reader_start(&r, host, PAGE, size / PAGE, 3), 0);
	nanosleep(&pause, NULL);
	assert_false(r.finished);
	assert_int_equal(check_page(host + 7 * PAGE, 7 * PAGE, PAGE, false), POISONED);
	uffd_server_stats(s, &st);
	assert_int_equal(st.fault_pages + st.background_pages, 0);
	assert_false(st.done);
	assert_int_equal(pthread_getname_np(s->thread, name, sizeof(name)), 0);
	assert_string_equal(name, "kiln-uffd");
	gate_open(&f->gate);
	if (reader_join(&r) != 0)
		fail_msg("the reading thread hangs on a page");
	for (uint64_t p = 0; p < size / PAGE; p++)
		assert_int_equal(r.result[p], p == 7 ? POISONED : 0);
	assert_int_equal(server_ended(s), 0);
	assert_stats_add_up(s, 1);
	assert_int_equal(check_page(host + 7 * PAGE, 7 * PAGE, PAGE, false), POISONED);
	uffd_server_stop(s);
	free(r.result);
	munmap(host, size);
	close(mem);
	close(file);
}

static void uffd_server_background_fill_alone_completes(void **state)
{
	struct fixture *f = *state;
	struct uffd_server *s = &f->server;
	const uint64_t size = 256 * MIB, hole = 100 * MIB, hole_len = MIB;
	const struct uffd_range poison = { 3 * MIB, 2 * PAGE };
	struct uffd_server_stats st;
	struct timespec t0;
	double secs;
	int file = memory_file(size, hole, hole_len), mem;
	uint8_t *host = ram(size, false, &mem);

	catch_sigbus();
	assert_non_null(host);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	start_ok(s, host, size, PAGE, page_source_file(file), &poison, 1);
	assert_int_equal(server_ended(s), 0);
	secs = seconds_since(&t0);
	assert_stats_add_up(s, 2);
	uffd_server_stats(s, &st);
	assert_int_equal(st.faults, 0);
	assert_int_equal(st.background_pages, size / PAGE - 2);
	print_message("    background fill: %" PRIu64 " pages (%" PRIu64 " MiB) in %.3f s: %.0f "
		      "pages/s, %.0f MiB/s\n", st.background_pages, (uint64_t)(size / MIB), secs,
		      (double)st.background_pages / secs, (double)(size / MIB) / secs);
	for (uint64_t off = 0; off < size; off += PAGE) {
		bool poisoned = off >= 3 * MIB && off < 3 * MIB + 2 * PAGE;
		int want = poisoned ? POISONED : 0;

		/* The file's hole reads as zeros: sparse, not lost. */
		if (check_page(host + off, off, PAGE, off >= hole && off < hole + hole_len) != want)
			fail_msg("offset 0x%" PRIx64, off);
	}
	uffd_server_stop(s);
	munmap(host, size);
	close(mem);
	close(file);
}

/* Pages precopy already wrote (config.present) are never copied over; the rest come from the
 * source. */
static void uffd_server_present_pages_are_left_alone(void **state)
{
	struct fixture *f = *state;
	struct uffd_server *s = &f->server;
	const uint64_t size = 16 * MIB, pages = size / PAGE;
	uint64_t *present = calloc((pages + 63) / 64, sizeof(uint64_t)), nr = 0;
	struct uffd_server_config c = { .size = size, .page_size = PAGE };
	struct uffd_server_stats st;
	int file = memory_file(size, 0, 0), mem;
	uint8_t *host = ram(size, false, &mem);
	char err[256] = "";

	catch_sigbus();
	assert_non_null(host);
	assert_non_null(present);
	for (uint64_t p = 0; p < pages; p += 3) {
		memset(host + p * PAGE, 0xab, PAGE);
		present[p / 64] |= 1ull << (p % 64);
		nr++;
	}
	c.host = host;
	c.source = page_source_file(file);
	c.present = present;
	if (uffd_server_start(s, &c, err, sizeof(err)) != 0)
		fail_msg("uffd_server_start: %s", err);
	free(present); /* not kept after start */
	assert_int_equal(server_ended(s), 0);
	assert_stats_add_up(s, 0);
	uffd_server_stats(s, &st);
	assert_int_equal(st.present_pages, nr);
	assert_int_equal(st.background_pages + st.fault_pages, pages - nr);
	for (uint64_t p = 0; p < pages; p++) {
		if (p % 3 == 0) {
			for (uint64_t b = 0; b < PAGE; b++)
				if (host[p * PAGE + b] != 0xab)
					fail_msg("present page %" PRIu64 " was overwritten", p);
		} else if (check_page(host + p * PAGE, p * PAGE, PAGE, false) != 0) {
			fail_msg("page %" PRIu64, p);
		}
	}
	uffd_server_stop(s);
	munmap(host, size);
	close(mem);
	close(file);
}

/* A source that finds one page poisoned (as a migration source answers POISONED). */
struct poisoning_source {
	int file;
	uint64_t bad;       /* memfd offset of the poisoned page */
	unsigned calls_with_bad;
};

static int poisoning_read(void *opaque, uint64_t off, void *dst, size_t len)
{
	struct poisoning_source *ps = opaque;

	if (ps->bad >= off && ps->bad < off + len) {
		ps->calls_with_bad++;
		return -EHWPOISON;
	}
	return page_source_file(ps->file).read((void *)(intptr_t)ps->file, off, dst, len);
}

/* -EHWPOISON from the source: the server asks again page by page and marks only the poisoned
 * page, whose read raises SIGBUS; its neighbours in the same chunk arrive. */
static void uffd_server_source_poisoned_page_is_marked(void **state)
{
	struct fixture *f = *state;
	struct uffd_server *s = &f->server;
	const uint64_t size = 8 * MIB;
	struct poisoning_source ps = { .bad = 5 * MIB + 3 * PAGE };
	struct uffd_server_stats st;
	int mem;
	uint8_t *host = ram(size, false, &mem);

	catch_sigbus();
	assert_non_null(host);
	ps.file = memory_file(size, 0, 0);
	start_ok(s, host, size, PAGE, (struct page_source){ .read = poisoning_read, .opaque = &ps },
		 NULL, 0);
	assert_int_equal(server_ended(s), 0);
	assert_stats_add_up(s, 1);
	uffd_server_stats(s, &st);
	assert_int_equal(st.lost_pages, 0);
	assert_int_equal(ps.calls_with_bad, 2); /* the chunk, then the page alone */
	for (uint64_t off = 0; off < size; off += PAGE)
		if (check_page(host + off, off, PAGE, false) != (off == ps.bad ? POISONED : 0))
			fail_msg("offset 0x%" PRIx64, off);
	uffd_server_stop(s);
	munmap(host, size);
	close(mem);
	close(ps.file);
}

/* The memory file ends at half the memory: the source fails for the other half. */
static void uffd_server_failing_source_releases_faulter_with_sigbus(void **state)
{
	struct fixture *f = *state;
	struct uffd_server *s = &f->server;
	const uint64_t size = 64 * MIB, n = size / PAGE;
	struct uffd_server_stats st;
	struct reader r;
	uint64_t good = 0, lost = 0, one;
	int file = memory_file(size, 0, 0), mem;
	uint8_t *host = ram(size, false, &mem);

	catch_sigbus();
	assert_non_null(host);
	assert_int_equal(ftruncate(file, (off_t)(size / 2)), 0);
	start_ok(s, host, size, PAGE, page_source_file(file), NULL, 0);
	assert_int_equal(reader_start(&r, host, PAGE, n, n - 1), 0); /* the last page first: beyond the file */
	if (reader_join(&r) != 0)
		fail_msg("the reading thread hangs on a page");
	assert_int_equal(r.result[n - 1], POISONED);
	assert_int_equal(server_ended(s), -EIO);
	assert_int_equal(read(uffd_server_event_fd(s), &one, sizeof(one)), sizeof(one));
	/* Every page either holds its data or raises SIGBUS: none reads as zeros. */
	for (uint64_t p = 0; p < n; p++) {
		if (r.result[p] == 0)
			good++;
		else if (r.result[p] == POISONED)
			lost++;
		else
			fail_msg("page %" PRIu64 ": %d", p, r.result[p]);
		assert_true(p < n / 2 || r.result[p] != 0);
	}
	uffd_server_stats(s, &st);
	assert_int_equal(st.error, -EIO);
	assert_stats_add_up(s, 0);
	assert_int_equal(st.lost_pages, lost);
	assert_int_equal(st.fault_pages + st.background_pages, good);
	assert_true(lost >= n / 2);
	assert_int_equal(s->uffd, -1); /* nothing left missing: closed */
	uffd_server_stop(s);
	free(r.result);
	munmap(host, size);
	close(mem);
	close(file);
}

static void uffd_server_cancel_ends_at_once(void **state)
{
	struct fixture *f = *state;
	struct uffd_server *s = &f->server;
	const uint64_t size = 4 * MIB;
	int file = memory_file(size, 0, 0), mem;
	uint8_t *host = ram(size, false, &mem);

	catch_sigbus();
	assert_non_null(host);
	f->gate.inner = page_source_file(file);
	start_ok(s, host, size, PAGE, (struct page_source){ .read = gated_read, .opaque = &f->gate }, NULL, 0);
	uffd_server_cancel(s);
	gate_open(&f->gate); /* lets the first background read finish; the cancel is seen next */
	assert_int_equal(server_ended(s), -ECANCELED);
	uffd_server_stop(s);
	munmap(host, size); /* unmapped unread, as the owner tearing the VM down does */
	close(mem);
	close(file);
}

static void uffd_server_start_refuses_bad_ranges(void **state)
{
	struct fixture *f = *state;
	struct uffd_server *s = &f->server;
	static const struct {
		struct uffd_range r;
		const char *says;
	} bad[] = {
		{ { 100, PAGE }, "is not whole 4 KiB pages" },
		{ { PAGE, 100 }, "is not whole 4 KiB pages" },
		{ { PAGE, 0 }, "is not whole 4 KiB pages" },
		{ { 4 * MIB, PAGE }, "lies outside the 0x400000 bytes of memory" },
		{ { 4 * MIB - PAGE, 2 * PAGE }, "lies outside" },
		{ { UINT64_MAX - PAGE + 1, 2 * PAGE }, "lies outside" },
	};
	const uint64_t size = 4 * MIB;
	char err[256];
	int file = memory_file(PAGE, 0, 0), mem;
	uint8_t *host = ram(size, false, &mem);
	struct uffd_server_config c = { .host = host, .size = size, .page_size = PAGE,
					.source = page_source_file(file), .nr_poison = 1 };

	catch_sigbus();
	assert_non_null(host);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		c.poison = &bad[i].r;
		err[0] = '\0';
		assert_int_equal(uffd_server_start(s, &c, err, sizeof(err)), -EINVAL);
		if (!strstr(err, bad[i].says))
			fail_msg("range %zu: \"%s\"", i, err);
		assert_int_equal(s->uffd, -1);
		uffd_server_stop(s); /* a no-op after a failed start */
	}
	c.poison = NULL;
	c.page_size = 8192;
	assert_int_equal(uffd_server_start(s, &c, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "expected whole aligned 4 KiB or 2 MiB pages"));
	/* A page already present: the memory is not fresh. */
	c.page_size = PAGE;
	c.poison = &(struct uffd_range){ 0, PAGE };
	host[0] = 1;
	assert_int_equal(uffd_server_start(s, &c, err, sizeof(err)), -EEXIST);
	assert_non_null(strstr(err, "the memory must be fresh"));
	munmap(host, size);
	close(mem);
	close(file);
}

static void uffd_server_start_refuses_poison_without_kernel_support(void **state)
{
	struct fixture *f = *state;
	struct uffd_server *s = &f->server;
	static const char says[] = "this kernel cannot preserve poisoned pages (no "
		"UFFD_FEATURE_POISON; Linux 6.6+ or kiln's kernel-patches for 6.1)";
	const uint64_t size = 4 * MIB;
	const struct uffd_range poison = { PAGE, PAGE };
	char err[256];
	int file = memory_file(size, 0, 0), mem;
	uint8_t *host = ram(size, false, &mem);
	struct uffd_server_config c = { .host = host, .size = size, .page_size = PAGE,
					.source = page_source_file(file), .poison = &poison,
					.nr_poison = 1 };

	catch_sigbus();
	assert_non_null(host);
	for (kernel = NO_POISON_FEATURE; kernel <= NO_POISON_IOCTL; kernel++) {
		err[0] = '\0';
		assert_int_equal(uffd_server_start(s, &c, err, sizeof(err)), -EOPNOTSUPP);
		assert_string_equal(err, says);
	}
	/* Without poison to place, such a kernel serves the memory all the same. */
	kernel = NO_POISON_FEATURE;
	c.nr_poison = 0;
	assert_int_equal(uffd_server_start(s, &c, err, sizeof(err)), 0);
	kernel = REAL_KERNEL;
	assert_int_equal(server_ended(s), 0);
	assert_int_equal(check_page(host + PAGE, PAGE, PAGE, false), 0);
	uffd_server_stop(s);
	munmap(host, size);
	close(mem);
	close(file);
}

/* --- 2 MiB hugetlb pages --- */

static void uffd_server_hugetlb_pages(void **state)
{
	struct fixture *f = *state;
	struct uffd_server *s = &f->server;
	const uint64_t size = 8 * HUGE, n = size / HUGE;
	const struct uffd_range poison = { 5 * HUGE, HUGE };
	long old = read_long(nr_hugepages_path),
	     free_pages = read_long("/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages");
	struct reader r;
	int file, mem;
	uint8_t *host;

	catch_sigbus();
	if (old >= 0 && free_pages >= 0 && free_pages < (long)n) {
		f->hugepages_old = old; /* the teardown puts it back */
		write_long(nr_hugepages_path, old + (long)n - free_pages);
	}
	host = ram(size, true, &mem);
	if (!host) {
		print_message("    skipped: the host has fewer than %" PRIu64 " free 2 MiB hugepages, "
			      "and %s cannot be raised\n", n, nr_hugepages_path);
		skip();
	}
	file = memory_file(size, 0, 0);
	start_ok(s, host, size, HUGE, page_source_file(file), &poison, 1);
	assert_int_equal(reader_start(&r, host, HUGE, n, 2), 0);
	if (reader_join(&r) != 0)
		fail_msg("the reading thread hangs on a page");
	for (uint64_t p = 0; p < n; p++)
		assert_int_equal(r.result[p], p == 5 ? POISONED : 0);
	assert_int_equal(server_ended(s), 0);
	assert_stats_add_up(s, 1);
	assert_int_equal(check_page(host + 5 * HUGE + 4 * PAGE, 5 * HUGE + 4 * PAGE, PAGE, false),
			 POISONED);
	uffd_server_stop(s);
	free(r.result);
	munmap(host, size);
	close(mem);
	close(file);
}

/* --- under the seccomp filters --- */

/* The number of seccomp filters on thread tid of this process, or -1. */
static int seccomp_filters_of(pid_t tid)
{
	char path[64], text[4096], *at;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/self/task/%d/status", (int)tid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	n = read(fd, text, sizeof(text) - 1);
	close(fd);
	text[n > 0 ? n : 0] = '\0';
	at = strstr(text, "Seccomp_filters:");
	return at ? atoi(at + strlen("Seccomp_filters:")) : -1;
}

/* In a child: the main filter on its main thread (as kiln has when it restores), the server's
 * thread with its own on top, counted by the kernel while it waits at the gate; then it serves
 * every page and ends; then a second server fails (its memory file cut short), logs and
 * poisons what it could not serve. The exit code says which step failed. */
static int serve_under_filters(void *arg)
{
	struct fixture *f = arg;
	const uint64_t size = 16 * MIB, n = size / PAGE;
	const struct uffd_range poison = { 9 * PAGE, PAGE };
	struct uffd_server_config c = { .size = size, .page_size = PAGE, .poison = &poison,
					.nr_poison = 1, .seccomp = true,
					.source = { .read = gated_read, .opaque = &f->gate } };
	struct reader r;
	char err[256];
	int file = memory_file(size, 0, 0), mem, filters;

	f->gate.inner = page_source_file(file);
	c.host = ram(size, false, &mem);
	if (!c.host || seccomp_filter_install(SECCOMP_MAIN) < 0)
		return 2;
	if (uffd_server_start(&f->server, &c, err, sizeof(err)) < 0) {
		fprintf(stderr, "uffd_server_start: %s\n", err);
		return 3;
	}
	pthread_mutex_lock(&f->gate.lock);
	while (!f->gate.waiter)
		pthread_cond_wait(&f->gate.cond, &f->gate.lock);
	pthread_mutex_unlock(&f->gate.lock);
	filters = seccomp_filters_of(f->gate.waiter);
	if (filters != 2) {
		fprintf(stderr, "the uffd thread has %d seccomp filters, not 2\n", filters);
		return 4;
	}
	gate_open(&f->gate);
	if (reader_start(&r, c.host, PAGE, n, n - 2) != 0 || reader_join(&r) != 0)
		return 5;
	for (uint64_t p = 0; p < n; p++)
		if (r.result[p] != (p == 9 ? POISONED : 0))
			return 6;
	if (uffd_server_wait_done(&f->server) != 0)
		return 7;
	uffd_server_stop(&f->server); /* joins the thread, which ended under its filter */
	c.host = ram(size, false, &mem);
	c.source = page_source_file(file);
	if (!c.host || ftruncate(file, (off_t)(size / 2)) < 0 ||
	    uffd_server_start(&f->server, &c, err, sizeof(err)) < 0)
		return 8;
	if (check_page(c.host + size - PAGE, size - PAGE, PAGE, false) != POISONED ||
	    uffd_server_wait_done(&f->server) != -EIO)
		return 9;
	uffd_server_stop(&f->server);
	return 0;
}

static void uffd_server_thread_runs_under_its_seccomp_filter(void **state)
{
	struct fixture *f = *state;
	char out[512] = "";
	int status;

	catch_sigbus();
#if defined(__SANITIZE_ADDRESS__)
	print_message("    skipped here: ASan's runtime makes calls kiln's filters refuse; "
		      "build/unit/test_uffd_server_seccomp runs this test without sanitizers\n");
	skip();
#endif
	status = run_in_child(serve_under_filters, f, out, sizeof(out));
	assert_true(status >= 0);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		fail_msg("the child ended with status 0x%x; stderr: %s", status, out);
}

#define TEST(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		TEST(uffd_server_random_reads_match_file_and_poison_raises_sigbus),
		TEST(uffd_server_poison_raises_sigbus_before_any_page_is_served),
		TEST(uffd_server_background_fill_alone_completes),
		TEST(uffd_server_present_pages_are_left_alone),
		TEST(uffd_server_source_poisoned_page_is_marked),
		TEST(uffd_server_failing_source_releases_faulter_with_sigbus),
		TEST(uffd_server_cancel_ends_at_once),
		TEST(uffd_server_start_refuses_bad_ranges),
		TEST(uffd_server_start_refuses_poison_without_kernel_support),
		TEST(uffd_server_hugetlb_pages),
		TEST(uffd_server_thread_runs_under_its_seccomp_filter),
	};

	return cmocka_run_group_tests_name("uffd_server.c", tests, NULL, NULL);
}
