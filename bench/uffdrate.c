/* uffdrate: how fast guest RAM's pages come in through userfaultfd here, with no VM: kiln's uffd
 * thread (migration/uffd_server.c) serving one faulting thread, and its background fill alone,
 * beside three floors: a minimal fault handler, a bare UFFDIO_COPY loop, and memcpy. Used by
 * bench/run (needs root or vm.unprivileged_userfaultfd=1).
 *
 *   uffdrate [--json] [--mib N]
 *
 * For 4 KiB pages (a shmem memfd, N MiB, default 256) and 2 MiB pages (a hugetlb memfd of up to
 * 64 pages, skipped when fewer than 16 hugepages are free; the host's settings are left alone),
 * each figure is the median of 3 runs on fresh memory, in pages per second. The page source is
 * a pre-filled buffer in memory, so the figures are userfaultfd's and the thread's, not a disk's.
 * The faulting thread reads one byte of every page in a fixed random order. kiln's threads go
 * where the scheduler puts them; the minimal handler and its faulting thread are pinned to one
 * CPU, then to two (when the process may use two), since a wake-up across CPUs can cost more
 * than the rest of a fault.
 * Every run's memory is compared with the source afterwards. One line per figure on stdout, or
 * with --json on stderr, stdout then getting one flat JSON object of all figures. Exit 0, or 1
 * on any failure. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/memfd.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "uffd_compat.h"
#include "uffd_server.h"

#define MIB ((uint64_t)1 << 20)
#define REPS 3
#define BATCH (32u << 10) /* the bare loop's batch for 4 KiB pages: kiln's UFFD_SERVER_CHUNK */
#define HUGE_MAX 64       /* 2 MiB pages per measurement, at most */
#define HUGE_MIN 16       /* fewer free than this: 2 MiB skipped */
#define HUGE_SYS "/sys/kernel/mm/hugepages/hugepages-2048kB"

/* One kind of guest memory and what every measurement of it shares. */
struct kind {
	const char *name, *key; /* "4KiB" in lines, "4k" in JSON keys */
	uint64_t page_size, size, pages;
	unsigned mfd_flags;
	uint64_t uffd_feature;  /* UFFD_FEATURE_MISSING_SHMEM or _HUGETLBFS */
	uint8_t *src;           /* size bytes of pattern: the page source */
	uint32_t *order;        /* the faulting thread's page order: a fixed random permutation */
};

/* One run: its rate, and kiln's counters when kiln served it. */
struct sample {
	double rate;
	struct uffd_server_stats st;
};

static FILE *human;      /* where the lines go: stdout, or stderr with --json */
static int cpus[2] = { -1, -1 }; /* the first two CPUs this may run on; -1: none */
static char json[8192];  /* the JSON object's members so far */
static size_t json_len;

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int fail(const char *what, int err)
{
	fprintf(stderr, "uffdrate: %s: %s\n", what, strerror(err));
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

/* A fresh memfd of k's kind, mapped shared: no page present. NULL on failure (message given). */
static uint8_t *mem_new(const struct kind *k, int *fd)
{
	uint8_t *p;

	*fd = memfd_create("uffdrate", MFD_CLOEXEC | k->mfd_flags);
	if (*fd < 0) {
		fail("memfd_create", errno);
		return NULL;
	}
	if (ftruncate(*fd, (off_t)k->size) < 0) {
		fail("ftruncate of the memfd", errno);
		close(*fd);
		return NULL;
	}
	p = mmap(NULL, k->size, PROT_READ | PROT_WRITE, MAP_SHARED, *fd, 0);
	if (p == MAP_FAILED) {
		fail("mmap of the memfd", errno);
		close(*fd);
		return NULL;
	}
	return p;
}

static void mem_free(const struct kind *k, int fd, uint8_t *host)
{
	munmap(host, k->size);
	close(fd);
}

/* 0 if host holds the source's bytes, else -1 with a message. */
static int verify(const struct kind *k, const uint8_t *host, const char *what)
{
	for (uint64_t p = 0; p < k->pages; p++) {
		if (memcmp(host + p * k->page_size, k->src + p * k->page_size, k->page_size)) {
			fprintf(stderr, "uffdrate: %s %s: page %" PRIu64 " differs from the source\n",
				k->name, what, p);
			return -1;
		}
	}
	return 0;
}

/* Reads one byte of each page in k's order; the sum keeps the reads. */
static uint64_t touch_all(const struct kind *k, const uint8_t *host)
{
	const volatile uint8_t *h = host;
	uint64_t sum = 0;

	for (uint64_t i = 0; i < k->pages; i++)
		sum += h[(uint64_t)k->order[i] * k->page_size];
	return sum;
}

static int src_read(void *opaque, uint64_t off, void *dst, size_t len)
{
	memcpy(dst, (const uint8_t *)opaque + off, len);
	return 0;
}

/* kiln's uffd thread on fresh memory: with fault, one thread touches every page and the time
 * runs from its first touch to its last; without, from before uffd_server_start until
 * uffd_server_wait_done returns, nothing touching the memory. */
static int run_kiln(const struct kind *k, bool fault, struct sample *out)
{
	struct uffd_server s;
	struct uffd_server_config cfg = { .size = k->size, .page_size = k->page_size,
					  .source = { .read = src_read, .opaque = k->src },
					  .seccomp = false };
	char err[256];
	double t0, t1;
	int fd, ret;

	cfg.host = mem_new(k, &fd);
	if (!cfg.host)
		return -1;
	t0 = now_s();
	if (uffd_server_start(&s, &cfg, err, sizeof(err)) < 0) {
		fprintf(stderr, "uffdrate: uffd_server_start: %s\n", err);
		mem_free(k, fd, cfg.host);
		return -1;
	}
	if (fault) {
		t0 = now_s();
		touch_all(k, cfg.host);
		t1 = now_s();
		uffd_server_stats(&s, &out->st); /* the split as the last touch saw it */
		ret = uffd_server_wait_done(&s);
	} else {
		ret = uffd_server_wait_done(&s);
		t1 = now_s();
		uffd_server_stats(&s, &out->st);
	}
	uffd_server_stop(&s);
	out->rate = (double)k->pages / (t1 - t0);
	if (ret < 0)
		fail("kiln's uffd server", -ret);
	else
		ret = verify(k, cfg.host, "kiln uffd thread");
	mem_free(k, fd, cfg.host);
	return ret;
}

/* A userfaultfd for k's memory registered on [host, +size) in MISSING mode; -1 on failure. */
static int uffd_register(const struct kind *k, uint8_t *host)
{
	struct uffdio_api api = { .api = UFFD_API, .features = k->uffd_feature };
	struct uffdio_register reg = { .range = { .start = (uintptr_t)host, .len = k->size },
				       .mode = UFFDIO_REGISTER_MODE_MISSING };
	int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);

	if (fd < 0)
		return fail("userfaultfd (needs root or vm.unprivileged_userfaultfd=1)", errno);
	if (ioctl(fd, UFFDIO_API, &api) < 0 || ioctl(fd, UFFDIO_REGISTER, &reg) < 0) {
		fail("UFFDIO_API or UFFDIO_REGISTER", errno);
		close(fd);
		return -1;
	}
	return fd;
}

/* The minimal handler: blocks in poll, reads the faults, copies each page straight from the
 * source. */
struct bare {
	const struct kind *k;
	uint8_t *host;
	int uffd, error;
};

static void *bare_serve(void *arg)
{
	struct bare *b = arg;
	const struct kind *k = b->k;
	struct pollfd pfd = { .fd = b->uffd, .events = POLLIN };
	struct uffd_msg msgs[16];
	uint64_t left = k->pages;
	ssize_t n;

	while (left > 0 && b->error == 0) {
		if (poll(&pfd, 1, -1) < 0) {
			b->error = errno == EINTR ? 0 : errno;
			continue;
		}
		n = read(b->uffd, msgs, sizeof(msgs));
		if (n < 0) {
			b->error = errno == EAGAIN || errno == EINTR ? 0 : errno;
			continue;
		}
		for (size_t i = 0; i < (size_t)n / sizeof(msgs[0]) && b->error == 0; i++) {
			uint64_t off = (msgs[i].arg.pagefault.address - (uintptr_t)b->host) &
				       ~(k->page_size - 1);
			struct uffdio_copy c = { .dst = (uintptr_t)b->host + off,
						 .src = (uintptr_t)k->src + off, .len = k->page_size };
			struct uffdio_range r = { .start = c.dst, .len = k->page_size };

			if (msgs[i].event != UFFD_EVENT_PAGEFAULT)
				continue;
			if (ioctl(b->uffd, UFFDIO_COPY, &c) == 0)
				left--;
			else if (errno == EEXIST) /* a repeated fault: the page is in */
				b->error = ioctl(b->uffd, UFFDIO_WAKE, &r) < 0 ? errno : 0;
			else if (errno != EAGAIN)
				b->error = errno;
		}
	}
	return NULL;
}

/* The set of CPU cpu alone. */
static cpu_set_t one_cpu(int cpu)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	return set;
}

/* One thread touching every page in k's order, served by the minimal handler: the handler on
 * cpus[0], the toucher on cpus[0] (split false) or cpus[1]. The toucher's own CPUs are given
 * back after. */
static int run_bare_fault(const struct kind *k, bool split, struct sample *out)
{
	struct bare b = { .k = k };
	cpu_set_t mask, handler_cpu = one_cpu(cpus[0]), toucher_cpu = one_cpu(cpus[split]);
	pthread_attr_t attr;
	pthread_t t;
	double t0, t1;
	int fd, ret;

	if ((ret = pthread_getaffinity_np(pthread_self(), sizeof(mask), &mask)) != 0 ||
	    (ret = pthread_setaffinity_np(pthread_self(), sizeof(toucher_cpu), &toucher_cpu)) != 0)
		return fail("pthread_setaffinity_np", ret);
	b.host = mem_new(k, &fd);
	b.uffd = b.host ? uffd_register(k, b.host) : -1;
	if (b.uffd < 0)
		goto err_mem;
	pthread_attr_init(&attr);
	ret = pthread_attr_setaffinity_np(&attr, sizeof(handler_cpu), &handler_cpu);
	if (ret == 0)
		ret = pthread_create(&t, &attr, bare_serve, &b);
	pthread_attr_destroy(&attr);
	if (ret != 0) {
		fail("pthread_create", ret);
		goto err_uffd;
	}
	/* A failed handler leaves the toucher waiting; it fails only if the kernel misbehaves. */
	t0 = now_s();
	touch_all(k, b.host);
	t1 = now_s();
	pthread_join(t, NULL);
	out->rate = (double)k->pages / (t1 - t0);
	ret = b.error ? fail("the minimal handler", b.error) : verify(k, b.host, "bare handler");
	close(b.uffd);
	mem_free(k, fd, b.host);
	pthread_setaffinity_np(pthread_self(), sizeof(mask), &mask);
	return ret;

err_uffd:
	close(b.uffd);
err_mem:
	if (b.host)
		mem_free(k, fd, b.host);
	pthread_setaffinity_np(pthread_self(), sizeof(mask), &mask);
	return -1;
}

/* A bare UFFDIO_COPY loop filling fresh memory straight from the source, batch bytes per
 * ioctl, with nothing faulting. */
static int run_copy(const struct kind *k, uint64_t batch, struct sample *out)
{
	double t0, t1;
	int fd, uffd, ret = 0;
	uint8_t *host = mem_new(k, &fd);

	if (!host)
		return -1;
	uffd = uffd_register(k, host);
	if (uffd < 0) {
		mem_free(k, fd, host);
		return -1;
	}
	t0 = now_s();
	for (uint64_t off = 0; off < k->size && ret == 0; off += batch) {
		struct uffdio_copy c = { .dst = (uintptr_t)host + off,
					 .src = (uintptr_t)k->src + off, .len = batch };

		if (ioctl(uffd, UFFDIO_COPY, &c) < 0)
			ret = fail("UFFDIO_COPY", errno);
		else if ((uint64_t)c.copy != batch)
			ret = fail("UFFDIO_COPY copied less", EIO);
	}
	t1 = now_s();
	out->rate = (double)k->pages / (t1 - t0);
	if (ret == 0)
		ret = verify(k, host, "bare UFFDIO_COPY");
	close(uffd);
	mem_free(k, fd, host);
	return ret;
}

/*
 * The other registration issue 8 weighs: MISSING|MINOR, where the page is written into the
 * memfd through a second mapping (not registered) and then mapped with UFFDIO_CONTINUE, per page,
 * no faults: the floor of that path, beside run_copy's. -1 when the kernel lacks MINOR for this
 * memory (then the figure is skipped).
 */
static int run_continue(const struct kind *k, struct sample *out)
{
	uint64_t minor = k->page_size == 4096 ? UFFD_FEATURE_MINOR_SHMEM : UFFD_FEATURE_MINOR_HUGETLBFS;
	struct uffdio_api api = { .api = UFFD_API, .features = k->uffd_feature | minor };
	struct uffdio_register reg = { .mode = UFFDIO_REGISTER_MODE_MISSING |
					       UFFDIO_REGISTER_MODE_MINOR };
	double t0, t1;
	int fd, uffd, ret = 0;
	uint8_t *host = mem_new(k, &fd), *alias;

	if (!host)
		return -1;
	alias = mmap(NULL, k->size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	uffd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	reg.range = (struct uffdio_range){ .start = (uintptr_t)host, .len = k->size };
	if (alias == MAP_FAILED || uffd < 0 || ioctl(uffd, UFFDIO_API, &api) < 0 ||
	    ioctl(uffd, UFFDIO_REGISTER, &reg) < 0) {
		fprintf(human, "uffd %s MINOR + UFFDIO_CONTINUE: skipped (%s)\n", k->name,
			strerror(errno));
		if (uffd >= 0)
			close(uffd);
		if (alias != MAP_FAILED)
			munmap(alias, k->size);
		mem_free(k, fd, host);
		return 1;
	}
	t0 = now_s();
	for (uint64_t off = 0; off < k->size && ret == 0; off += k->page_size) {
		struct uffdio_continue c = { .range = { .start = (uintptr_t)host + off,
							.len = k->page_size } };

		memcpy(alias + off, k->src + off, k->page_size);
		if (ioctl(uffd, UFFDIO_CONTINUE, &c) < 0)
			ret = fail("UFFDIO_CONTINUE", errno);
	}
	t1 = now_s();
	out->rate = (double)k->pages / (t1 - t0);
	if (ret == 0)
		ret = verify(k, host, "write + UFFDIO_CONTINUE");
	close(uffd);
	munmap(alias, k->size);
	mem_free(k, fd, host);
	return ret;
}

/* memcpy of every page from the source into memory of k's kind, all of it already in. */
static int run_memcpy(const struct kind *k, struct sample *out)
{
	double t0, t1;
	int fd;
	uint8_t *host = mem_new(k, &fd);

	if (!host)
		return -1;
	memset(host, 0, k->size);
	t0 = now_s();
	for (uint64_t off = 0; off < k->size; off += k->page_size)
		memcpy(host + off, k->src + off, k->page_size);
	t1 = now_s();
	out->rate = (double)k->pages / (t1 - t0);
	mem_free(k, fd, host);
	return 0;
}

static int by_rate(const void *a, const void *b)
{
	double x = ((const struct sample *)a)->rate, y = ((const struct sample *)b)->rate;

	return (x > y) - (x < y);
}

enum what { KILN_FAULT, KILN_FILL, BARE_1CPU, BARE_2CPU, COPY_PAGE, COPY_BATCH, CONTINUE,
	     MEMCPY };

/* Runs one measurement REPS times, prints its line and adds its JSON members. -1 on failure. */
static int figure(const struct kind *k, enum what w, const char *key, const char *label,
		  const char *how)
{
	struct sample s[REPS] = { 0 }, sorted[REPS];
	const struct sample *m = &sorted[REPS / 2];
	int ret = 0;

	for (int i = 0; i < REPS && ret == 0; i++) {
		switch (w) {
		case KILN_FAULT: ret = run_kiln(k, true, &s[i]); break;
		case KILN_FILL: ret = run_kiln(k, false, &s[i]); break;
		case BARE_1CPU: ret = run_bare_fault(k, false, &s[i]); break;
		case BARE_2CPU: ret = run_bare_fault(k, true, &s[i]); break;
		case COPY_PAGE: ret = run_copy(k, k->page_size, &s[i]); break;
		case COPY_BATCH: ret = run_copy(k, BATCH, &s[i]); break;
		case CONTINUE: ret = run_continue(k, &s[i]); break;
		case MEMCPY: ret = run_memcpy(k, &s[i]); break;
		}
	}
	if (ret < 0)
		return ret;
	if (ret > 0)
		return 0; /* skipped, and said so */
	memcpy(sorted, s, sizeof(s));
	qsort(sorted, REPS, sizeof(sorted[0]), by_rate);
	fprintf(human, "uffd %s %s: %.0f pages/s (%s; %.0f MiB/s; runs", k->name, label, m->rate,
		how, m->rate * (double)k->page_size / MIB);
	for (int i = 0; i < REPS; i++)
		fprintf(human, " %.0f", s[i].rate);
	fprintf(human, ")\n");
	json_add("\"uffd_%s_%s_pages_per_s\": %.0f, ", k->key, key, m->rate);
	if (w == BARE_1CPU || w == BARE_2CPU)
		json_add("\"uffd_%s_%s_us_per_fault\": %.1f, ", k->key, key, 1e6 / m->rate);
	if (w == KILN_FAULT) {
		/* Touching a page already in takes well under 1 us: the interval is the faults'. */
		double wait = m->st.faults ? (double)k->pages / m->rate / (double)m->st.faults : 0;

		fprintf(human, "  of its %" PRIu64 " pages, when the last touch returned: %" PRIu64
			" copied for a fault (%" PRIu64 " faults), %" PRIu64 " by the background "
			"fill; the interval over the faults: %.1f us per fault; kiln's fault service "
			"(message read to page copied) p50 < %.0f us, p99 < %.0f us, max %.0f us\n",
			k->pages, m->st.fault_pages, m->st.faults, m->st.background_pages, wait * 1e6,
			m->st.fault_ns_p50 / 1e3, m->st.fault_ns_p99 / 1e3, m->st.fault_ns_max / 1e3);
		json_add("\"uffd_%s_%s_fault_pages\": %" PRIu64 ", \"uffd_%s_%s_background_pages\": %"
			 PRIu64 ", \"uffd_%s_%s_faults\": %" PRIu64 ", \"uffd_%s_%s_us_per_fault\": "
			 "%.1f, \"uffd_%s_%s_p50_us\": %.0f, \"uffd_%s_%s_p99_us\": %.0f, ", k->key,
			 key, m->st.fault_pages, k->key, key, m->st.background_pages, k->key, key,
			 m->st.faults, k->key, key, wait * 1e6, k->key, key, m->st.fault_ns_p50 / 1e3,
			 k->key, key, m->st.fault_ns_p99 / 1e3);
	}
	return 0;
}

/* Fills the source with a pattern and draws the page order (xorshift64, fixed seed). */
static int kind_prepare(struct kind *k)
{
	uint64_t x = 0x6b696c6e75666664ull;

	k->pages = k->size / k->page_size;
	k->src = aligned_alloc(k->page_size, k->size);
	k->order = calloc(k->pages, sizeof(k->order[0]));
	if (!k->src || !k->order)
		return fail("the source buffer", ENOMEM);
	for (uint64_t i = 0; i < k->size / 8; i++)
		((uint64_t *)k->src)[i] = i * 0x9e3779b97f4a7c15ull ^ 0x6b696c6e2d756666ull;
	for (uint64_t i = 0; i < k->pages; i++)
		k->order[i] = (uint32_t)i;
	for (uint64_t i = k->pages - 1; i > 0; i--) {
		uint32_t j, t;

		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		j = (uint32_t)(x % (i + 1));
		t = k->order[i], k->order[i] = k->order[j], k->order[j] = t;
	}
	return 0;
}

static int kind_run(struct kind *k)
{
	char copy_how[96];
	int ret = kind_prepare(k);

	snprintf(copy_how, sizeof(copy_how), "bare UFFDIO_COPY loop, %u KiB per ioctl, no faults",
		 BATCH >> 10);
	if (ret == 0)
		ret = figure(k, KILN_FAULT, "fault_served", "fault-served",
			     "kiln uffd thread, 1 faulting thread, random order, first to last touch, "
			     "background fill running");
	if (ret == 0)
		ret = figure(k, KILN_FILL, "background_fill", "background fill",
			     "kiln uffd thread, nothing faulting, start to wait_done");
	if (ret == 0)
		ret = figure(k, BARE_1CPU, "bare_fault_1cpu", "fault-served bare, 1 CPU",
			     "minimal handler: blocking poll, read, UFFDIO_COPY per fault, straight "
			     "from the source; 1 faulting thread, random order, both on one CPU");
	if (ret == 0 && cpus[1] >= 0)
		ret = figure(k, BARE_2CPU, "bare_fault_2cpu", "fault-served bare, 2 CPUs",
			     "the same, the handler and the faulting thread pinned to two CPUs");
	if (ret == 0)
		ret = figure(k, COPY_PAGE, "copy_page", "UFFDIO_COPY per page",
			     "bare UFFDIO_COPY loop, one page per ioctl, no faults");
	if (ret == 0 && k->page_size < BATCH)
		ret = figure(k, COPY_BATCH, "copy_32k", "UFFDIO_COPY 32 KiB", copy_how);
	if (ret == 0)
		ret = figure(k, CONTINUE, "continue_page", "write + UFFDIO_CONTINUE per page",
			     "MISSING|MINOR registration: memcpy through a second mapping, then "
			     "UFFDIO_CONTINUE, one page per ioctl, no faults");
	if (ret == 0)
		ret = figure(k, MEMCPY, "memcpy", "memcpy", "memcpy per page into the same kind of "
			     "memory, already faulted in");
	free(k->src);
	free(k->order);
	return ret;
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

int main(int argc, char **argv)
{
	struct kind k4 = { .name = "4KiB", .key = "4k", .page_size = 4096, .size = 256 * MIB,
			   .mfd_flags = 0, .uffd_feature = UFFD_FEATURE_MISSING_SHMEM };
	struct kind k2 = { .name = "2MiB", .key = "2m", .page_size = 2 * MIB,
			   .mfd_flags = MFD_HUGETLB | MFD_HUGE_2MB,
			   .uffd_feature = UFFD_FEATURE_MISSING_HUGETLBFS };
	bool as_json = false;
	cpu_set_t mask;
	long huge;
	double t0 = now_s();
	int ret;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--json")) {
			as_json = true;
		} else if (!strcmp(argv[i], "--mib") && i + 1 < argc && atoi(argv[i + 1]) > 0) {
			k4.size = (uint64_t)atoi(argv[++i]) * MIB;
		} else {
			fprintf(stderr, "usage: uffdrate [--json] [--mib N]\n");
			return 2;
		}
	}
	human = as_json ? stderr : stdout;
	if (sched_getaffinity(0, sizeof(mask), &mask) < 0)
		return fail("sched_getaffinity", errno), 1;
	for (int c = 0, n = 0; c < CPU_SETSIZE && n < 2; c++)
		if (CPU_ISSET(c, &mask))
			cpus[n++] = c;
	setvbuf(human, NULL, _IOLBF, 0);
	fprintf(human, "reference: 90-150 thousand 4 KiB pages/s for one faulting thread "
		"(published; not measured here)\n");
	ret = kind_run(&k4);
	huge = huge_free();
	if (ret == 0 && huge < HUGE_MIN) {
		fprintf(human, "uffd 2MiB: skipped: no free 2 MiB hugepages (%ld free and unreserved "
			"in " HUGE_SYS ", %d needed; this bench does not change them)\n", huge,
			HUGE_MIN);
		json_add("\"uffd_2m_skipped\": \"no free 2 MiB hugepages (%ld free, %d needed)\", ",
			 huge, HUGE_MIN);
	} else if (ret == 0) {
		k2.size = (uint64_t)(huge < HUGE_MAX ? huge : HUGE_MAX) * k2.page_size;
		ret = kind_run(&k2);
	}
	if (ret < 0)
		return 1;
	fprintf(human, "uffdrate took %.1f s (%d runs per figure)\n", now_s() - t0, REPS);
	if (as_json)
		printf("{ %s\"uffd_4k_mib\": %" PRIu64 ", \"uffd_2m_mib\": %" PRIu64 ", "
		       "\"reps\": %d, \"fault_order\": \"random\" }\n", json, k4.size / MIB,
		       k2.size / MIB, REPS);
	return 0;
}
