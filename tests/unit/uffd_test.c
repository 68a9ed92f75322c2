/* What the userfaultfd unit tests share; see uffd_test.h. */
#include "uffd_test.h"

#include <errno.h>
#include <linux/memfd.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "uffd_compat.h"

/* ASan's own SIGBUS handler would report the test's deliberate faults as crashes. */
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
	return "handle_sigbus=0";
}

uint64_t pattern(uint64_t off)
{
	return off * 0x9e3779b97f4a7c15ull ^ 0x6b696c6e2d756666ull;
}

uint8_t *ram(uint64_t size, bool huge, int *fd)
{
	uint8_t *p;

	*fd = memfd_create("kiln-test-ram", MFD_CLOEXEC | (huge ? MFD_HUGETLB | MFD_HUGE_2MB : 0));
	if (*fd < 0 || ftruncate(*fd, (off_t)size) < 0)
		return NULL;
	p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, *fd, 0);
	return p == MAP_FAILED ? NULL : p;
}

static _Thread_local sigjmp_buf *volatile bus_jump; /* volatile: the handler reads it */
static _Thread_local volatile int bus_code;

static void on_sigbus(int sig, siginfo_t *si, void *uc)
{
	(void)uc;
	if (bus_jump) {
		bus_code = si->si_code;
		siglongjmp(*bus_jump, 1);
	}
	signal(sig, SIG_DFL);
	raise(sig);
}

void catch_sigbus(void)
{
	struct sigaction sa = { .sa_sigaction = on_sigbus, .sa_flags = SA_SIGINFO };

	sigemptyset(&sa.sa_mask);
	sigaction(SIGBUS, &sa, NULL);
}

int check_page(const uint8_t *p, uint64_t off, uint64_t len, bool zero)
{
	sigjmp_buf jump;
	const volatile uint64_t *w = (const volatile uint64_t *)p;

	if (sigsetjmp(jump, 1)) {
		bus_jump = NULL;
		return bus_code == BUS_MCEERR_AR || bus_code == BUS_ADRERR ? POISONED : 100 + bus_code;
	}
	bus_jump = &jump;
	for (uint64_t i = 0; i < len / 8; i++) {
		if (w[i] != (zero ? 0 : pattern(off + i * 8))) {
			bus_jump = NULL;
			return -1;
		}
	}
	bus_jump = NULL;
	return 0;
}

static void *read_pages(void *arg)
{
	struct reader *r = arg;
	uint64_t *order = malloc(r->nr_pages * sizeof(*order)), x = 0x2545f4914f6cdd1dull;

	if (!order)
		abort();
	for (uint64_t i = 0; i < r->nr_pages; i++)
		order[i] = i;
	for (uint64_t i = r->nr_pages - 1; i > 0; i--) { /* Fisher-Yates, xorshift64 */
		uint64_t j, t;

		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		j = x % (i + 1);
		t = order[i], order[i] = order[j], order[j] = t;
	}
	for (uint64_t i = 0; i < r->nr_pages; i++) {
		if (order[i] == r->first) /* read first instead */
			order[i] = order[0];
	}
	order[0] = r->first;
	for (uint64_t i = 0; i < r->nr_pages; i++)
		r->result[order[i]] = check_page(r->host + order[i] * r->page_size,
						 order[i] * r->page_size, r->page_size, false);
	free(order);
	r->finished = true;
	return NULL;
}

int reader_start(struct reader *r, const uint8_t *host, uint64_t page_size, uint64_t nr_pages,
		 uint64_t first)
{
	*r = (struct reader){ .host = host, .page_size = page_size, .nr_pages = nr_pages,
			      .first = first };
	r->result = calloc(nr_pages, sizeof(int));
	return r->result ? pthread_create(&r->thread, NULL, read_pages, r) : ENOMEM;
}

int reader_join(struct reader *r)
{
	struct timespec t;

	clock_gettime(CLOCK_REALTIME, &t);
	t.tv_sec += TIMEOUT_MS / 1000;
	return pthread_timedjoin_np(r->thread, NULL, &t);
}

enum fake_kernel kernel = REAL_KERNEL;

int __real_ioctl(int fd, unsigned long req, ...);
int __wrap_ioctl(int fd, unsigned long req, ...);
int __wrap_ioctl(int fd, unsigned long req, ...)
{
	va_list ap;
	void *arg;
	int ret;

	va_start(ap, req);
	arg = va_arg(ap, void *);
	va_end(ap);
	if (req == UFFDIO_API && kernel == NO_POISON_FEATURE &&
	    (((struct uffdio_api *)arg)->features & UFFD_FEATURE_POISON)) {
		errno = EINVAL; /* as before Linux 6.6 */
		return -1;
	}
	ret = __real_ioctl(fd, req, arg);
	if (ret == 0 && req == UFFDIO_REGISTER && kernel == NO_POISON_IOCTL)
		((struct uffdio_register *)arg)->ioctls &= ~(1ull << _UFFDIO_POISON);
	return ret;
}

int run_in_child(int (*fn)(void *), void *arg, char *out, size_t outlen)
{
	int p[2], status;
	ssize_t got;
	pid_t pid;

	if (pipe(p) < 0)
		return -1;
	pid = fork();
	if (pid < 0) {
		close(p[0]);
		close(p[1]);
		return -1;
	}
	if (pid == 0) {
		close(p[0]);
		dup2(p[1], STDERR_FILENO);
		_exit(fn(arg));
	}
	close(p[1]);
	got = read(p[0], out, outlen - 1);
	out[got > 0 ? got : 0] = '\0';
	close(p[0]);
	return waitpid(pid, &status, 0) == pid ? status : -1;
}

const char nr_hugepages_path[] = "/proc/sys/vm/nr_hugepages";

long read_long(const char *path)
{
	FILE *f = fopen(path, "r");
	long v = -1;

	if (f && fscanf(f, "%ld", &v) != 1)
		v = -1;
	if (f)
		fclose(f);
	return v;
}

bool write_long(const char *path, long v)
{
	FILE *f = fopen(path, "w");
	bool ok = f && fprintf(f, "%ld\n", v) > 0;

	return f && fclose(f) == 0 && ok;
}
