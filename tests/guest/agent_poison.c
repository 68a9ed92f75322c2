/* kiln-agent test for host memory errors (kiln.test=poison): a buffer whose guest-physical page
 * the host poisons through kiln's API; reading it must cost only the reader its life. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"

#ifndef MAP_HUGE_2MB
#define MAP_HUGE_2MB (21 << MAP_HUGE_SHIFT)
#endif

#define PAGE 4096ul
#define HUGE (2ul << 20)
#define PATTERN 0xa5
#define WAIT_SECONDS 120

/* The first kernel log line holding "Memory failure" into line; false when there is none. */
static bool kmsg_find(char *line, size_t size)
{
	char rec[1024];
	bool found = false;
	int fd = open("/dev/kmsg", O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return false;
	while ((n = read(fd, rec, sizeof(rec) - 1)) > 0 || (n < 0 && errno == EPIPE)) {
		char *text;

		if (n <= 0)
			continue; /* EPIPE: records were overwritten; go on with the next */
		rec[n] = '\0';
		text = strchr(rec, ';');
		text = text ? text + 1 : rec;
		text[strcspn(text, "\n")] = '\0';
		if (!found && strstr(text, "Memory failure")) {
			size_t tl = strlen(text);

			tl = tl < size - 1 ? tl : size - 1;
			memcpy(line, text, tl);
			line[tl] = '\0';
			found = true;
		}
	}
	close(fd);
	return found;
}

/*
 * kiln.poison_blk=1: the buffer is only ever handed to virtio-blk. A first O_DIRECT write from
 * it to /dev/vda must work (before the host hears of the page); then the page's address is
 * printed and writes go on every 200 ms (the guest never touches the page itself) until one
 * fails with EIO: the host poisoned the page and kiln refused to read it. A write from another
 * page must then still work: the device goes on.
 */
static void poison_blk_writes(uint8_t *buf, uint64_t gpa, struct result *r)
{
	struct timespec period = { 0, 200 * 1000 * 1000 }, start, now;
	uint8_t *other = NULL;
	int fd = open("/dev/vda", O_RDWR | O_DIRECT | O_CLOEXEC), tries = 0, err = 0;

	if (fd < 0 || posix_memalign((void **)&other, PAGE, PAGE)) {
		result_fail(r, "/dev/vda: %s", strerror(errno));
		goto out;
	}
	if (pwrite(fd, buf, PAGE, 0) != (ssize_t)PAGE) {
		result_fail(r, "the write from the page failed before it was poisoned: %s",
			    strerror(errno));
		goto out;
	}
	printf("KILN-POISON-GPA 0x%llx %lu\n", (unsigned long long)gpa, PAGE);
	fflush(stdout);
	clock_gettime(CLOCK_MONOTONIC, &start);
	for (;;) {
		tries++;
		if (pwrite(fd, buf, PAGE, 0) != (ssize_t)PAGE) {
			err = errno;
			break;
		}
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (now.tv_sec - start.tv_sec > WAIT_SECONDS) {
			result_fail(r, "writes from the buffer still worked after %d tries", tries);
			goto out;
		}
		nanosleep(&period, NULL);
	}
	if (err != EIO) {
		result_fail(r, "the write from the poisoned page failed with %s, not EIO",
			    strerror(err));
		goto out;
	}
	memset(other, 0x5a, PAGE);
	if (pwrite(fd, other, PAGE, PAGE) != (ssize_t)PAGE ||
	    pread(fd, other, PAGE, PAGE) != (ssize_t)PAGE || other[0] != 0x5a) {
		result_fail(r, "virtio-blk stopped working after the poisoned write: %s",
			    strerror(errno));
		goto out;
	}
	result_note(r, "blk write from the poisoned page failed with EIO after %d writes; "
		       "a write from another page then worked", tries);
out:
	free(other);
	if (fd >= 0)
		close(fd);
}

/*
 * kiln.poison_huge=1: the buffer is one guest 2 MiB huge page (so that the host's whole 2 MiB
 * page holds nothing else); otherwise one 4 KiB page. Prints "KILN-POISON-GPA 0x... LEN", then
 * reads the buffer in a fresh child every 200 ms until one dies of SIGBUS BUS_MCEERR_AR (the host
 * poisoned it meanwhile), checks the kernel logged "Memory failure", and that it still runs.
 */
void test_poison(const struct agent *a, struct result *r)
{
	struct timespec period = { 0, 200 * 1000 * 1000 }, start, now;
	unsigned long huge = 0, blk = 0;
	char kline[256] = "", up[64] = "?";
	size_t len;
	uint8_t *buf;
	uint64_t gpa;
	int status = 0, tries = 0, ret;

	if (param_ulong(a, "poison_huge", &huge) < 0 || param_ulong(a, "poison_blk", &blk) < 0) {
		result_fail(r, "kiln.poison_huge and kiln.poison_blk must be numbers");
		return;
	}
	len = huge ? HUGE : PAGE;
	if (huge && (ret = reserve_hugepages(4)) < 0) {
		result_fail(r, "cannot reserve guest huge pages: %s", strerror(-ret));
		return;
	}
	buf = mmap(NULL, len, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS | (huge ? MAP_HUGETLB | MAP_HUGE_2MB : 0), -1, 0);
	if (buf == MAP_FAILED) {
		result_fail(r, "mmap of %zu bytes%s: %s", len, huge ? " (MAP_HUGETLB)" : "",
			    strerror(errno));
		return;
	}
	memset(buf, PATTERN, len);
	if (mlock(buf, len) != 0)
		result_note(r, "mlock: %s", strerror(errno));
	if ((ret = guest_phys(buf, &gpa)) < 0) {
		result_fail(r, "the buffer's guest-physical address (pagemap): %s", strerror(-ret));
		return;
	}
	if (gpa % len) {
		result_fail(r, "buffer at guest-physical 0x%llx is not %zu-aligned",
			    (unsigned long long)gpa, len);
		return;
	}
	if (blk) {
		poison_blk_writes(buf, gpa, r);
		return;
	}
	printf("KILN-POISON-GPA 0x%llx %zu\n", (unsigned long long)gpa, len);
	fflush(stdout);

	clock_gettime(CLOCK_MONOTONIC, &start);
	for (;;) {
		status = read_in_child(buf, len, PATTERN);
		tries++;
		if (status != 0)
			break;
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (now.tv_sec - start.tv_sec > WAIT_SECONDS) {
			result_fail(r, "the buffer still read fine after %d reads in %d s", tries,
				    WAIT_SECONDS);
			return;
		}
		nanosleep(&period, NULL);
	}
	if (status < 0) {
		result_fail(r, "fork/waitpid: %s", strerror(errno));
		return;
	}
	if (WIFEXITED(status) && WEXITSTATUS(status) == AGENT_EXIT_CORRUPT) {
		result_fail(r, "the buffer read back changed data: silent corruption");
		return;
	}
	if (!WIFEXITED(status) || WEXITSTATUS(status) != AGENT_EXIT_SIGBUS_BASE + BUS_MCEERR_AR) {
		result_fail(r, "the reader ended with %s %d, not SIGBUS BUS_MCEERR_AR",
			    WIFEXITED(status) ? "exit status" : "signal",
			    WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
		return;
	}
	if (!kmsg_find(kline, sizeof(kline))) {
		result_fail(r, "no \"Memory failure\" line in the kernel log");
		return;
	}
	/* Still alive: a new process runs, and the clock moves. */
	if (read_in_child(buf, 0, PATTERN) != 0 || read_text("/proc/uptime", up, sizeof(up)) <= 0) {
		result_fail(r, "the guest did not carry on after the memory error");
		return;
	}
	up[strcspn(up, " \n")] = '\0';
	result_note(r, "gpa=0x%llx len=%zu reader killed by BUS_MCEERR_AR after %d reads; "
		       "kernel: %s; uptime %s s",
		    (unsigned long long)gpa, len, tries, kline, up);
}
