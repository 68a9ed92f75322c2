/* poisonapply: how long kiln takes to put a snapshot's poison log back on fresh guest memory,
 * through its own restore code, beside the least a monitor must do: open a userfaultfd, register
 * the memory and issue one UFFDIO_POISON per page. Used by bench/poison.sh (needs root or
 * vm.unprivileged_userfaultfd=1).
 *
 *   poisonapply [--json] [--runs N]
 *
 * Guest memory is made by guest_memory_create: 1 GiB of 4 KiB pages (shmem), and, when at least
 * 4 are free, up to 512 MiB of 2 MiB hugetlb pages (the host's hugepage settings are left
 * alone). The poisoned pages are a fixed random set (xorshift64, fixed seed) of even-numbered
 * pages, so no two touch and every one has an unlogged neighbour: kiln's per-run batching cannot
 * merge them, and both sides issue one UFFDIO_POISON per page.
 *
 * kiln's time runs over the restore steps that read and apply the log, in their order:
 * state_parse of a state image holding the POIS section (its checksum covers the log),
 * snapshot_count_poison and uffd_poison_supported (what snapshot_open's check does for the File
 * backend), poison_log_init + snapshot_restore_poison (the VM build's poison step), and
 * snapshot_restore_memory (the ranges turned into memfd offsets, uffd_server_start: userfaultfd,
 * UFFDIO_REGISTER in MISSING mode, every marker placed, the uffd thread started). Memory
 * creation is outside the time on both sides. The memory file behind the uffd thread is a
 * sparse memfd of zeros with matching chunk hashes.
 *
 * After every run, a sample of logged pages (the first, the last and up to 14 between) must
 * raise SIGBUS when read, at that address, and the page after each must read as zeros. Each
 * figure is the median of N runs (default 3; logs of up to 1,000 pages at least 15) on fresh
 * memory, kiln and the bare loop alternating.
 * One line per figure on stdout, or with --json on stderr, stdout then getting one flat JSON
 * object. Exit 0 (also when the kernel has no UFFD_FEATURE_POISON: the JSON says why it
 * skipped), or 1 on any failure. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include <linux/userfaultfd.h>

#include "event_loop.h"
#include "le.h"
#include "log.h"
#include "memory.h"
#include "poison_log.h"
#include "snapshot.h"
#include "state.h"
#include "uffd_compat.h"
#include "uffd_server.h"
#include "vm.h"

#define MIB ((uint64_t)1 << 20)
#define RUNS_MAX 99
/* Logs this small take milliseconds, and their time swings with the uffd thread's start (the
 * scheduler's wake-up on a busy host): they get this many runs at least. */
#define SMALL_LOG 1000
#define SMALL_RUNS 15
#define SAMPLE 16       /* logged pages touched after each run, at most */
#define HUGE_MAX 256    /* 2 MiB pages of memory, at most (100 logged need 200) */
#define HUGE_MIN 4      /* fewer free than this: 2 MiB skipped */
#define HUGE_SYS "/sys/kernel/mm/hugepages/hugepages-2048kB"

/* One kind of guest memory. */
struct kind {
	const char *name, *key; /* "4KiB" in lines, "4k" in JSON keys */
	uint64_t page_size, size;
	bool huge;
};

/* One poison log: its pages, and the state image and chunk hashes a snapshot of it would have. */
struct pset {
	const struct kind *k;
	uint64_t *pages;        /* page numbers, ascending */
	size_t n;
	struct state_buf image; /* header, POIS section, END, checksum */
	uint8_t *hashes;        /* one LE u64 per SNAPSHOT_CHUNK of memory: zeros, poison skipped */
	uint32_t nr_chunks;
};

/* One run's times in microseconds. */
struct sample {
	double kiln, validate, decode, start; /* kiln: all, and its three parts */
	double bare, ioctl;                   /* bare: userfaultfd to last ioctl, and the ioctls */
	double thread;                        /* a busy thread's start (thread_start_us) */
	uint64_t poisoned;                    /* kiln's uffd thread's count of markers placed */
};

static FILE *human;      /* where the lines go: stdout, or stderr with --json */
static char json[16384]; /* the JSON object's members so far */
static size_t json_len;
static int mem_file = -1; /* the memory file: a sparse memfd, zeros, as large as the largest kind */

/* The signal handler's only way back: where a touch jumps to, and what the SIGBUS said. */
static sigjmp_buf touch_env;
static volatile sig_atomic_t touch_code;
static void *volatile touch_addr;

static double now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int fail(const char *what, int err)
{
	fprintf(stderr, "poisonapply: %s: %s\n", what, strerror(err));
	return -1;
}

static void json_add(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void json_add(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	json_len += (size_t)vsnprintf(json + json_len, sizeof(json) - json_len, fmt, ap);
	va_end(ap);
	if (json_len >= sizeof(json))
		json_len = sizeof(json) - 1;
}

/* A reason as a JSON string's inside: quotes, backslashes and control bytes become '. */
static const char *json_safe(char *s)
{
	for (char *p = s; *p; p++)
		if (*p == '"' || *p == '\\' || (unsigned char)*p < 0x20)
			*p = '\'';
	return s;
}

static void on_sigbus(int sig, siginfo_t *si, void *uc)
{
	(void)sig, (void)uc;
	touch_code = si->si_code;
	touch_addr = si->si_addr;
	siglongjmp(touch_env, 1);
}

/* Reads the byte at p: 0 with *val, or 1 when that raised SIGBUS (*code its si_code, *addr its
 * si_addr). */
static int touch(const volatile uint8_t *p, uint8_t *val, int *code, void **addr)
{
	if (sigsetjmp(touch_env, 1)) {
		*code = touch_code;
		*addr = touch_addr;
		return 1;
	}
	*val = *p;
	return 0;
}

static const char *bus_code_name(int code)
{
	switch (code) {
	case BUS_MCEERR_AR: return "BUS_MCEERR_AR";
	case BUS_MCEERR_AO: return "BUS_MCEERR_AO";
	case BUS_ADRERR: return "BUS_ADRERR";
	case BUS_ADRALN: return "BUS_ADRALN";
	case BUS_OBJERR: return "BUS_OBJERR";
	}
	return "other";
}

static char sigbus_seen[32] = "none"; /* the si_code the poisoned pages gave, for the JSON */

/* 0 when the sampled pages of s are poisoned in host (a read raises SIGBUS at that very
 * address, BUS_MCEERR_AR/AO, or BUS_ADRERR on a kernel without CONFIG_MEMORY_FAILURE) and the
 * page after each reads as zeros; else -1 with a message. */
static int verify(const struct pset *s, uint8_t *host, const char *who)
{
	uint64_t ps = s->k->page_size;
	size_t count = s->n < SAMPLE ? s->n : SAMPLE;

	for (size_t i = 0; i < count; i++) {
		size_t at = count == 1 ? 0 : i * (s->n - 1) / (count - 1); /* first, ..., last */
		uint8_t *page = host + s->pages[at] * ps, *probe = page + ps / 2, val = 0;
		void *addr = NULL;
		int code = 0;

		if (!touch(probe, &val, &code, &addr)) {
			fprintf(stderr, "poisonapply: %s %s: logged page %" PRIu64 " reads (%u): not "
				"poisoned\n", s->k->name, who, s->pages[at], val);
			return -1;
		}
		if ((code != BUS_MCEERR_AR && code != BUS_MCEERR_AO && code != BUS_ADRERR) ||
		    (uint8_t *)addr < page || (uint8_t *)addr >= page + ps) {
			fprintf(stderr, "poisonapply: %s %s: logged page %" PRIu64 ": SIGBUS %s at %p, "
				"expected a memory error in [%p, +%" PRIu64 ")\n", s->k->name, who,
				s->pages[at], bus_code_name(code), addr, (void *)page, ps);
			return -1;
		}
		snprintf(sigbus_seen, sizeof(sigbus_seen), "%s", bus_code_name(code));
		if (touch(page + ps + ps / 2, &val, &code, &addr) || val != 0) {
			fprintf(stderr, "poisonapply: %s %s: page %" PRIu64 ", after a logged one and not "
				"logged, %s\n", s->k->name, who, s->pages[at] + 1,
				val ? "does not read as zeros" : "raises SIGBUS");
			return -1;
		}
	}
	return 0;
}

/* Draws n distinct even page numbers of k's memory at random (fixed seed), ascending. */
static int pset_pages(struct pset *s)
{
	uint64_t slots = s->k->size / s->k->page_size / 2, x = 0x6b696c6e706f6973ull;
	uint32_t *slot = calloc(slots, sizeof(*slot));

	s->pages = calloc(s->n ? s->n : 1, sizeof(*s->pages));
	if (!slot || !s->pages) {
		free(slot);
		return fail("the page set", ENOMEM);
	}
	for (uint64_t i = 0; i < slots; i++)
		slot[i] = (uint32_t)i;
	for (size_t i = 0; i < s->n; i++) {
		uint64_t j;
		uint32_t t;

		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		j = i + x % (slots - i);
		t = slot[i], slot[i] = slot[j], slot[j] = t;
	}
	for (size_t i = 0; i < s->n; i++)
		s->pages[i] = 2ull * slot[i];
	free(slot);
	return 0;
}

static int by_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return (x > y) - (x < y);
}

/*
 * The log of s's pages as a snapshot would carry it: poison_log_add per page (origin host),
 * poison_log_encode into a POIS section between state_begin and state_finish, and the chunk
 * hashes of a memory file of zeros with those pages left out (snapshot_chunk_hash).
 */
static int pset_build(struct pset *s, const struct kind *k, size_t n)
{
	struct guest_memory gm = { .fd = -1, .page_size = k->page_size };
	struct poison_log log;
	uint8_t *enc = NULL, *zeros = NULL;
	size_t mark;
	long len;
	int ret;

	*s = (struct pset){ .k = k, .n = n };
	state_buf_init(&s->image);
	if (pset_pages(s) < 0)
		return -1;
	qsort(s->pages, s->n, sizeof(s->pages[0]), by_u64);
	if (poison_log_init(&log) < 0)
		return fail("poison_log_init", ENOMEM);
	guest_memory_layout(&gm, k->size);
	gm.poison = &log;
	ret = 0;
	for (size_t i = 0; i < n && ret == 0; i++) {
		uint64_t gpa = 0;

		if (!guest_memory_gpa_of_offset(&gm, s->pages[i] * k->page_size, &gpa))
			ret = -EINVAL;
		else
			ret = poison_log_add(&log, gpa, k->page_size, POISON_HOST);
	}
	s->nr_chunks = (uint32_t)((k->size + SNAPSHOT_CHUNK - 1) / SNAPSHOT_CHUNK);
	s->hashes = calloc(s->nr_chunks, 8);
	zeros = calloc(1, SNAPSHOT_CHUNK);
	enc = malloc(poison_log_encoded_size(&log));
	if (ret < 0 || !s->hashes || !zeros || !enc) {
		ret = fail("building the poison log", ret < 0 ? -ret : ENOMEM);
		goto out;
	}
	len = poison_log_encode(&log, enc, poison_log_encoded_size(&log));
	if (len < 0) {
		ret = fail("poison_log_encode", (int)-len);
		goto out;
	}
	/* The section as put_poison in migration/snapshot.c writes it. */
	state_begin(&s->image);
	mark = state_section_begin(&s->image, STATE_TAG_POISON, 1);
	state_put_bytes(&s->image, enc, (size_t)len);
	state_section_end(&s->image, mark);
	if (state_finish(&s->image) < 0) {
		ret = fail("the state image", ENOMEM);
		goto out;
	}
	for (uint32_t c = 0; c < s->nr_chunks; c++)
		put_le(s->hashes + 8ull * c, snapshot_chunk_hash(&gm, (uint64_t)c * SNAPSHOT_CHUNK,
								   zeros, snapshot_chunk_len(k->size, c)), 8);
out:
	free(enc);
	free(zeros);
	poison_log_destroy(&log);
	return ret < 0 ? -1 : 0;
}

static void pset_free(struct pset *s)
{
	free(s->pages);
	free(s->hashes);
	state_buf_free(&s->image);
}

/*
 * kiln's restore of s's poison log onto fresh memory, timed from the state image to the uffd
 * thread running with every marker placed; then verified and torn down as kiln does
 * (snapshot_stop_memory).
 */
static int run_kiln(const struct pset *s, struct sample *out)
{
	const struct kind *k = s->k;
	struct snapshot_image img = { .mem_size = k->size, .page_size = k->page_size,
				      .nr_chunks = s->nr_chunks, .chunk_hashes = s->hashes,
				      .mem_fd = mem_file };
	struct uffd_server_stats st = { 0 };
	struct event_loop loop;
	struct vm *vm = calloc(1, sizeof(*vm));
	char err[512] = "";
	size_t nr = 0;
	double t0, t1, t2, t3;
	int ret;

	if (!vm)
		return fail("struct vm", ENOMEM);
	if ((ret = event_loop_init(&loop)) < 0) {
		free(vm);
		return fail("event_loop_init", -ret);
	}
	vm->restore = &img;
	vm->loop = &loop;
	vm->seccomp = false;
	if (guest_memory_create(&vm->mem, k->size, k->huge) < 0) {
		ret = fail("guest_memory_create", ENOMEM);
		goto out_loop;
	}
	vm->mem.poison = &vm->poison;

	t0 = now_us();
	ret = state_parse(s->image.data, s->image.len, &img.view, err, sizeof(err));
	if (ret == 0)
		ret = snapshot_count_poison(&img, &nr, err, sizeof(err));
	if (ret == 0 && nr > 0)
		ret = uffd_poison_supported(k->page_size, err, sizeof(err));
	t1 = now_us();
	if (ret < 0) {
		fprintf(stderr, "poisonapply: checking the snapshot: %s\n", err);
		goto out_mem;
	}
	ret = poison_log_init(&vm->poison);
	if (ret == 0 && (ret = snapshot_restore_poison(vm)) < 0)
		poison_log_destroy(&vm->poison);
	t2 = now_us();
	if (ret < 0) {
		fail("snapshot_restore_poison", -ret);
		goto out_mem;
	}
	ret = snapshot_restore_memory(vm);
	t3 = now_us();
	if (ret < 0) {
		fail("snapshot_restore_memory", -ret);
		goto out_log;
	}

	*out = (struct sample){ .kiln = t3 - t0, .validate = t1 - t0, .decode = t2 - t1,
				.start = t3 - t2 };
	snapshot_pager_stats(vm, &st);
	out->poisoned = st.poisoned_pages;
	ret = verify(s, vm->mem.host, "kiln");
	if (ret == 0 && (nr != s->n || st.poisoned_pages != s->n)) {
		fprintf(stderr, "poisonapply: %s kiln: %zu pages logged, %zu ranges decoded, %" PRIu64
			" markers placed\n", k->name, s->n, nr, st.poisoned_pages);
		ret = -1;
	}
	snapshot_stop_memory(vm);
out_log:
	poison_log_destroy(&vm->poison);
out_mem:
	guest_memory_destroy(&vm->mem);
out_loop:
	event_loop_destroy(&loop);
	free(vm);
	return ret < 0 ? -1 : 0;
}

/* A thread that says it runs and then keeps its CPU busy, as kiln's uffd thread does (it says
 * so before it serves, start_thread in migration/uffd_server.c, then polls without sleeping
 * while pages are missing). */
struct handshake {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool ready;
	atomic_bool stop;
};

static void *handshake_thread(void *arg)
{
	struct handshake *h = arg;

	pthread_mutex_lock(&h->lock);
	h->ready = true;
	pthread_cond_broadcast(&h->cond);
	pthread_mutex_unlock(&h->lock);
	while (!atomic_load_explicit(&h->stop, memory_order_relaxed))
		;
	return NULL;
}

/* Microseconds from pthread_create until the caller runs again after the new thread said it
 * runs; -1 on failure. */
static double thread_start_us(void)
{
	struct handshake h = { .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER };
	pthread_t t;
	double t0 = now_us(), t1;
	int ret;

	atomic_init(&h.stop, false);
	ret = pthread_create(&t, NULL, handshake_thread, &h);
	if (ret != 0)
		return fail("pthread_create", ret);
	pthread_mutex_lock(&h.lock);
	while (!h.ready)
		pthread_cond_wait(&h.cond, &h.lock);
	pthread_mutex_unlock(&h.lock);
	t1 = now_us();
	atomic_store(&h.stop, true);
	pthread_join(t, NULL);
	return t1 - t0;
}

/*
 * The floor: on fresh memory of the same kind, userfaultfd + UFFDIO_API + UFFDIO_REGISTER
 * (MISSING, as kiln registers), then one UFFDIO_POISON per page in ascending order. Verified
 * once the userfaultfd is closed (its markers stay in the page tables).
 */
static int run_bare(const struct pset *s, struct sample *out)
{
	const struct kind *k = s->k;
	struct guest_memory gm;
	struct uffdio_api api = { .api = UFFD_API, .features = UFFD_FEATURE_POISON |
				  (k->huge ? UFFD_FEATURE_MISSING_HUGETLBFS : UFFD_FEATURE_MISSING_SHMEM) };
	struct uffdio_register reg = { .mode = UFFDIO_REGISTER_MODE_MISSING };
	double t0, t1, t2;
	int uffd, ret = 0;

	if (guest_memory_create(&gm, k->size, k->huge) < 0)
		return fail("guest_memory_create", ENOMEM);
	reg.range = (struct uffdio_range){ .start = (uintptr_t)gm.host, .len = k->size };
	t0 = now_us();
	uffd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (uffd < 0 || ioctl(uffd, UFFDIO_API, &api) < 0 || ioctl(uffd, UFFDIO_REGISTER, &reg) < 0) {
		ret = fail("userfaultfd, UFFDIO_API or UFFDIO_REGISTER", errno);
		goto out;
	}
	t1 = now_us();
	for (size_t i = 0; i < s->n && ret == 0; i++) {
		struct uffdio_poison p = { .range = { .start = (uintptr_t)gm.host +
							       s->pages[i] * k->page_size,
						      .len = k->page_size } };

		if (ioctl(uffd, UFFDIO_POISON, &p) < 0)
			ret = fail("UFFDIO_POISON", errno);
	}
	t2 = now_us();
	out->bare = t2 - t0;
	out->ioctl = t2 - t1;
	close(uffd);
	uffd = -1;
	if (ret == 0)
		ret = verify(s, gm.host, "bare loop");
	if (ret == 0 && (out->thread = thread_start_us()) < 0)
		ret = -1;
out:
	if (uffd >= 0)
		close(uffd);
	guest_memory_destroy(&gm);
	return ret;
}

static int by_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* The median of member off (a double) of runs samples. */
static double median_of(const struct sample *s, int runs, size_t off)
{
	double v[RUNS_MAX];

	for (int i = 0; i < runs; i++)
		memcpy(&v[i], (const uint8_t *)&s[i] + off, sizeof(double));
	qsort(v, (size_t)runs, sizeof(v[0]), by_double);
	return runs % 2 ? v[runs / 2] : (v[runs / 2 - 1] + v[runs / 2]) / 2;
}

/* The smallest (sign 1) or largest (sign -1) member off (a double) of runs samples. */
static double extreme_of(const struct sample *s, int runs, size_t off, double sign)
{
	double m = 0, v;

	for (int i = 0; i < runs; i++) {
		memcpy(&v, (const uint8_t *)&s[i] + off, sizeof(double));
		m = i == 0 || sign * v < sign * m ? v : m;
	}
	return m;
}

/* Measures one log size runs times, kiln then the bare loop each time; prints its line and adds
 * its JSON members. -1 on failure. */
static int figure(const struct kind *k, size_t n, int runs)
{
	struct sample s[RUNS_MAX] = { 0 };
	struct pset set;
	double kiln, validate, decode, start, bare, ioctl_us, thread;
	int ret = pset_build(&set, k, n);

	for (int i = 0; i < runs && ret == 0; i++) {
		ret = run_kiln(&set, &s[i]);
		if (ret == 0)
			ret = run_bare(&set, &s[i]);
	}
	pset_free(&set);
	if (ret < 0)
		return -1;
	kiln = median_of(s, runs, offsetof(struct sample, kiln));
	validate = median_of(s, runs, offsetof(struct sample, validate));
	decode = median_of(s, runs, offsetof(struct sample, decode));
	start = median_of(s, runs, offsetof(struct sample, start));
	bare = median_of(s, runs, offsetof(struct sample, bare));
	ioctl_us = median_of(s, runs, offsetof(struct sample, ioctl));
	thread = median_of(s, runs, offsetof(struct sample, thread));
	fprintf(human, "poison %s, %zu pages, %d runs: kiln %.1f us (parse+count+probe %.1f, "
		"decode %.1f, restore_memory %.1f; %" PRIu64 " markers); bare %.1f us (UFFDIO_POISON "
		"loop %.1f); per page kiln %.3f us, bare %.3f us; runs kiln", k->name, n, runs, kiln,
		validate, decode, start, s[0].poisoned, bare, ioctl_us, n ? kiln / (double)n : 0,
		n ? bare / (double)n : 0);
	for (int i = 0; i < runs; i++)
		fprintf(human, " %.0f", s[i].kiln);
	fprintf(human, ", bare");
	for (int i = 0; i < runs; i++)
		fprintf(human, " %.0f", s[i].bare);
	fprintf(human, "; a thread's start %.1f us\n", thread);
	json_add("\"poison_%s_%zu_kiln_us\": %.1f, \"poison_%s_%zu_validate_us\": %.1f, "
		 "\"poison_%s_%zu_decode_us\": %.1f, \"poison_%s_%zu_start_us\": %.1f, "
		 "\"poison_%s_%zu_bare_us\": %.1f, \"poison_%s_%zu_ioctl_us\": %.1f, ",
		 k->key, n, kiln, k->key, n, validate, k->key, n, decode, k->key, n, start,
		 k->key, n, bare, k->key, n, ioctl_us);
	json_add("\"poison_%s_%zu_kiln_min_us\": %.1f, \"poison_%s_%zu_kiln_max_us\": %.1f, "
		 "\"poison_%s_%zu_bare_min_us\": %.1f, \"poison_%s_%zu_runs\": %d, "
		 "\"poison_%s_%zu_thread_us\": %.1f, \"poison_%s_%zu_thread_max_us\": %.1f, ", k->key, n,
		 extreme_of(s, runs, offsetof(struct sample, kiln), 1), k->key, n,
		 extreme_of(s, runs, offsetof(struct sample, kiln), -1), k->key, n,
		 extreme_of(s, runs, offsetof(struct sample, bare), 1), k->key, n, runs, k->key, n,
		 thread, k->key, n, extreme_of(s, runs, offsetof(struct sample, thread), -1));
	return 0;
}

/* 2 MiB hugepages free and not reserved by someone else; 0 if there are none. */
static long huge_free(void)
{
	long v[2] = { 0, 0 };
	const char *name[2] = { HUGE_SYS "/free_hugepages", HUGE_SYS "/resv_hugepages" };

	for (int i = 0; i < 2; i++) {
		FILE *f = fopen(name[i], "r");

		if (!f || fscanf(f, "%ld", &v[i]) != 1)
			v[i] = 0;
		if (f)
			fclose(f);
	}
	return v[0] - v[1];
}

/* Runs k's log sizes (those that fit: half its pages at most), or says why they are skipped.
 * -1 on failure. */
static int kind_run(const struct kind *k, const size_t *sizes, size_t nr_sizes, int runs)
{
	char why[256] = "";
	int ret = 0;

	if (uffd_poison_supported(k->page_size, why, sizeof(why)) < 0) {
		fprintf(human, "poison %s: skipped: %s\n", k->name, why);
		json_add("\"poison_%s_skipped\": \"%s\", ", k->key, json_safe(why));
		return 0;
	}
	json_add("\"poison_%s_mib\": %" PRIu64 ", ", k->key, k->size / MIB);
	for (size_t i = 0; i < nr_sizes && ret == 0; i++)
		if (sizes[i] <= k->size / k->page_size / 2)
			ret = figure(k, sizes[i], sizes[i] <= SMALL_LOG && runs < SMALL_RUNS ? SMALL_RUNS
										: runs);
	return ret;
}

int main(int argc, char **argv)
{
	static const size_t sizes_4k[] = { 0, 1, 1000, 100000 }, sizes_2m[] = { 0, 1, 100 };
	struct kind k4 = { .name = "4KiB", .key = "4k", .page_size = 4096, .size = 1024 * MIB };
	struct kind k2 = { .name = "2MiB", .key = "2m", .page_size = 2 * MIB, .huge = true };
	struct sigaction sa = { .sa_sigaction = on_sigbus, .sa_flags = SA_SIGINFO | SA_NODEFER };
	bool as_json = false;
	int runs = 3, ret;
	long huge;
	double t0 = now_us();

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--json")) {
			as_json = true;
		} else if (!strcmp(argv[i], "--runs") && i + 1 < argc && atoi(argv[i + 1]) > 0 &&
			   atoi(argv[i + 1]) <= RUNS_MAX) {
			runs = atoi(argv[++i]);
		} else {
			fprintf(stderr, "usage: poisonapply [--json] [--runs N (1-%d)]\n", RUNS_MAX);
			return 2;
		}
	}
	human = as_json ? stderr : stdout;
	setvbuf(human, NULL, _IOLBF, 0);
	/* kiln's info lines (one per restore) would drown the figures; errors still show. */
	if (log_setup(NULL, LOG_WARNING, false, false) < 0)
		return fail("log_setup", EINVAL), 1;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGBUS, &sa, NULL) < 0)
		return fail("sigaction", errno), 1;
	mem_file = memfd_create("poisonapply-memory-file", MFD_CLOEXEC);
	if (mem_file < 0 || ftruncate(mem_file, (off_t)k4.size) < 0)
		return fail("the memory file", errno), 1;

	ret = kind_run(&k4, sizes_4k, sizeof(sizes_4k) / sizeof(sizes_4k[0]), runs);
	huge = huge_free();
	if (huge > HUGE_MAX)
		huge = HUGE_MAX;
	if (ret == 0 && huge < HUGE_MIN) {
		fprintf(human, "poison 2MiB: skipped: %ld 2 MiB hugepages free and unreserved in "
			HUGE_SYS ", %d needed; this bench does not change them\n", huge, HUGE_MIN);
		json_add("\"poison_2m_skipped\": \"no free 2 MiB hugepages (%ld free and unreserved, "
			 "%d needed)\", ", huge, HUGE_MIN);
	} else if (ret == 0) {
		k2.size = (uint64_t)(huge & ~1L) * k2.page_size;
		ret = kind_run(&k2, sizes_2m, sizeof(sizes_2m) / sizeof(sizes_2m[0]), runs);
	}
	close(mem_file);
	if (ret < 0)
		return 1;
	fprintf(human, "poisonapply took %.1f s (%d runs per figure; SIGBUS on a poisoned page: "
		"%s)\n", (now_us() - t0) / 1e6, runs, sigbus_seen);
	if (as_json)
		printf("{ %s\"poison_runs\": %d, \"poison_sigbus\": \"%s\", \"poison_set\": "
		       "\"random even pages\" }\n", json, runs, sigbus_seen);
	return 0;
}
