/* What the userfaultfd unit tests (test_uffd_server.c, test_uffd_external.c) share: the memory
 * file's pattern, guest RAM, reading pages with SIGBUS caught on any thread, a reading thread,
 * a faked kernel without poison markers (-Wl,--wrap=ioctl) and the hugepage pool. */
#ifndef KILN_UFFD_TEST_H
#define KILN_UFFD_TEST_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TIMEOUT_MS 20000 /* no step should come near it; a hang fails instead of blocking */

/* The word at byte offset off of every test's memory file: differs in every word of every page. */
uint64_t pattern(uint64_t off);

/* Fresh guest RAM: a memfd (hugetlb when huge) mapped MAP_SHARED; NULL when hugetlb fails. */
uint8_t *ram(uint64_t size, bool huge, int *fd);

/* cmocka puts its own SIGBUS handler in place for each test: the test's goes over it. */
void catch_sigbus(void);

/* What check_page says of a page whose read raised the SIGBUS of a poison marker: si_code
 * BUS_MCEERR_AR, or BUS_ADRERR on a kernel without CONFIG_MEMORY_FAILURE (as on this host). */
#define POISONED 1

/* Reads the page at p and compares it with the file at offset off: 0 when equal (zeros when
 * zero), -1 when not, POISONED, or 100 + the si_code of another SIGBUS. */
int check_page(const uint8_t *p, uint64_t off, uint64_t len, bool zero);

/* A thread reading every page in a random order, page first first; for each, what check_page
 * said. */
struct reader {
	const uint8_t *host;
	uint64_t page_size, nr_pages;
	uint64_t first;
	int *result;          /* per page */
	pthread_t thread;
	volatile bool finished;
};

/* 0, or an errno value. */
int reader_start(struct reader *r, const uint8_t *host, uint64_t page_size, uint64_t nr_pages,
		 uint64_t first);

/* Joins the reader: 0, or ETIMEDOUT when it is stuck on a page. */
int reader_join(struct reader *r);

/* What the faked kernel lacks: the feature at UFFDIO_API, or the ioctl at UFFDIO_REGISTER.
 * Every ioctl of the code under test comes through __wrap_ioctl. */
enum fake_kernel { REAL_KERNEL, NO_POISON_FEATURE, NO_POISON_IOCTL };
extern enum fake_kernel kernel;

/* Runs fn(arg) in a child process (one that may load seccomp filters: it ends with _exit, no
 * atexit handlers) with its stderr in out (NUL-terminated); the child's wait status, or -1 when
 * it could not be started. */
int run_in_child(int (*fn)(void *), void *arg, char *out, size_t outlen);

extern const char nr_hugepages_path[];
long read_long(const char *path);     /* -1 when unreadable */
bool write_long(const char *path, long v);

#endif
