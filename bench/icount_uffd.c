/* icount_uffd: kiln's uffd thread (migration/uffd_server.c) serving missing-page faults one at
 * a time, for callgrind's instruction counts (bench/icount.sh). Not a timing benchmark.
 *
 *   valgrind --tool=callgrind --collect-atstart=no --toggle-collect=serve_faults icount_uffd N
 *
 * The page source is kiln's own (page_source_file, pread from a memfd of patterned pages), with
 * a pump that blocks until a fault comes, so that no background fill runs while faults are
 * measured. Faults come from the kernel, inside write(2) from the region into a pipe: under
 * valgrind a thread faulting in user code would block holding valgrind's lock. 16 warm-up faults,
 * a dump named "-" (CALLGRIND_ZERO_STATS would clear the calling thread's counts only), N
 * faults, and a dump named "uffd_fault N". Each fault waits until
 * the uffd thread is back in the pump, so no dump cuts a fault in two. Then the pump fills the
 * rest, and every page is compared with the source. Exit 0, or 1 on any failure.
 * valgrind 3.19 does not know the userfaultfd system call: the harness links with
 * -Wl,--wrap=syscall and gets uffd_server.c its userfaultfd from /dev/userfaultfd instead (the
 * same object, with the same flags). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdarg.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <linux/userfaultfd.h>

#include <valgrind/callgrind.h>

#include "uffd_server.h"

#define PAGE 4096ull
#define WARM 16

/* What the pump shares with the faulting thread. File-static: the pump's opaque is already
 * the file source's fd (page_source_file's). */
struct pump_state {
	int stop_fd;      /* eventfd: readable when the faults are over and the pump should fill */
	int idle_fd;      /* eventfd: the pump counts each time it sees a fault served */
	uint64_t faults;  /* faults the pump has seen served */
	atomic_bool filling;
};

static struct pump_state ps;

long __real_syscall(long nr, ...);
long __wrap_syscall(long nr, ...);

/* syscall(2) for uffd_server.c: userfaultfd through /dev/userfaultfd, the rest passed on. */
long __wrap_syscall(long nr, ...)
{
	long a[6];
	va_list ap;
	int dev, fd;

	va_start(ap, nr);
	for (int i = 0; i < 6; i++)
		a[i] = va_arg(ap, long);
	va_end(ap);
	if (nr != SYS_userfaultfd)
		return __real_syscall(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
	dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
	if (dev < 0)
		return -1;
	fd = ioctl(dev, USERFAULTFD_IOC_NEW, (int)a[0]);
	close(dev);
	return fd;
}

static int pump(void *opaque, struct uffd_server *s, int uffd_fd)
{
	struct pollfd pfd[2] = { { .fd = uffd_fd, .events = POLLIN },
				 { .fd = ps.stop_fd, .events = POLLIN } };
	struct uffd_server_stats st;
	uint64_t one = 1;

	(void)opaque;
	uffd_server_stats(s, &st);
	if (st.faults != ps.faults) {
		ps.faults = st.faults;
		if (write(ps.idle_fd, &one, sizeof(one)) < 0)
			return -errno;
	}
	if (atomic_load(&ps.filling))
		return uffd_server_fetch_missing(s);
	if (poll(pfd, 2, -1) < 0)
		return errno == EINTR ? 0 : -errno;
	if (pfd[1].revents)
		atomic_store(&ps.filling, true);
	return 0;
}

static int die(const char *what, int err)
{
	fprintf(stderr, "icount_uffd: %s: %s\n", what, strerror(err));
	return 1;
}

/* Faults page p in through the kernel (write from it into the pipe), then waits for the uffd
 * thread to be back in its pump. */
static int fault(uint8_t *host, uint64_t p, const int pipefd[2])
{
	uint64_t n;
	char c;

	if (write(pipefd[1], host + p * PAGE, 1) != 1 || read(pipefd[0], &c, 1) != 1 ||
	    read(ps.idle_fd, &n, sizeof(n)) != sizeof(n))
		return -1;
	return c == (char)(p * 7 + 1) ? 0 : -1;
}

int main(int argc, char **argv)
{
	uint64_t n = argc > 1 ? strtoull(argv[1], NULL, 10) : 200, pages, one = 1;
	struct uffd_server_config cfg = { .page_size = PAGE, .seccomp = false };
	struct uffd_server s;
	int srcfd, memfd, pipefd[2], ret;
	char err[256], *page;
	char name[64];

	pages = WARM + n + 64;
	cfg.size = pages * PAGE;
	srcfd = memfd_create("icount-src", MFD_CLOEXEC);
	memfd = memfd_create("icount-mem", MFD_CLOEXEC);
	ps.stop_fd = eventfd(0, EFD_CLOEXEC);
	ps.idle_fd = eventfd(0, EFD_CLOEXEC | EFD_SEMAPHORE);
	page = malloc(PAGE);
	if (srcfd < 0 || memfd < 0 || ps.stop_fd < 0 || ps.idle_fd < 0 || !page ||
	    pipe(pipefd) < 0 || ftruncate(memfd, (off_t)cfg.size) < 0)
		return die("set-up", errno);
	for (uint64_t p = 0; p < pages; p++) {
		memset(page, (int)(p * 7 + 1), PAGE);
		if (pwrite(srcfd, page, PAGE, (off_t)(p * PAGE)) != (ssize_t)PAGE)
			return die("writing the source", errno);
	}
	cfg.host = mmap(NULL, cfg.size, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
	if (cfg.host == MAP_FAILED)
		return die("mmap", errno);
	cfg.source = page_source_file(srcfd);
	cfg.source.pump = pump;
	if (uffd_server_start(&s, &cfg, err, sizeof(err)) < 0) {
		fprintf(stderr, "icount_uffd: uffd_server_start: %s\n", err);
		return 1;
	}
	/* Each page once, in order; warm-up first. */
	for (uint64_t i = 0; i < WARM + n; i++) {
		if (i == WARM)
			CALLGRIND_DUMP_STATS_AT("-");
		if (fault(cfg.host, i, pipefd) < 0) {
			fprintf(stderr, "icount_uffd: fault %" PRIu64 " failed\n", i);
			return 1;
		}
	}
	snprintf(name, sizeof(name), "uffd_fault %" PRIu64, n);
	CALLGRIND_DUMP_STATS_AT(name);
	if (write(ps.stop_fd, &one, sizeof(one)) < 0)
		return die("stopping the pump", errno);
	ret = uffd_server_wait_done(&s);
	uffd_server_stop(&s);
	if (ret < 0)
		return die("kiln's uffd server", -ret);
	for (uint64_t p = 0; p < pages; p++) {
		memset(page, (int)(p * 7 + 1), PAGE);
		if (memcmp(cfg.host + p * PAGE, page, PAGE)) {
			fprintf(stderr, "icount_uffd: page %" PRIu64 " differs\n", p);
			return 1;
		}
	}
	return 0;
}
