/* kiln-agent test for snapshots (kiln.test=snapshot): fills most of the guest's memory with a
 * pattern, keeps a CRC-32 of every page, and then obeys the console, line by line, across any
 * number of snapshots and restores:
 *   verify  checks every page but the one handed to the host for poisoning;
 *   poison  reads that page in a child, which must die of SIGBUS BUS_MCEERR_AR;
 *   mutate  gives every 7th page (not that one) a new pattern, written by the CPU (KVM's dirty
 *           log sees it), and reads /dev/vda with O_DIRECT over the first pages (virtio-blk
 *           writes them: only kiln's own record sees that), so a Diff snapshot must hold both;
 *   done    ends the test (PASS when no page ever changed and every poison read took a machine
 *           check).
 * kiln.snap_mib=N sizes the buffer (default 64). */
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
#include <unistd.h>

#include "agent.h"

#define PAGE 4096ul

/* Page index's pattern: a xorshift stream seeded by the page index. */
static void fill_page(uint8_t *page, size_t index)
{
	uint64_t x = 0x9e3779b97f4a7c15ull * (index + 1), *w = (uint64_t *)page;

	for (size_t i = 0; i < PAGE / 8; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		w[i] = x;
	}
}

static void child_sigbus(int sig, siginfo_t *si, void *ctx)
{
	(void)sig;
	(void)ctx;
	_exit(si->si_code == BUS_MCEERR_AR ? 42 : 43);
}

/* Reads the page in a child: 42 when it took SIGBUS BUS_MCEERR_AR, 43 another SIGBUS, 0 when it
 * read fine, -1 on a fork failure. */
static int read_poisoned(const volatile uint8_t *page)
{
	int status;
	pid_t pid = fork();

	if (pid < 0)
		return -1;
	if (pid == 0) {
		struct sigaction sa = { .sa_sigaction = child_sigbus, .sa_flags = SA_SIGINFO };

		sigemptyset(&sa.sa_mask);
		sigaction(SIGBUS, &sa, NULL);
		for (size_t i = 0; i < PAGE; i += 64)
			(void)page[i];
		_exit(0);
	}
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* The guest-physical address of the page at p (pagemap); 0 when unknown. */
static uint64_t phys_of(const void *p)
{
	uint64_t e = 0;
	int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return 0;
	if (pread(fd, &e, sizeof(e), (off_t)((uintptr_t)p / PAGE * 8)) != 8)
		e = 0;
	close(fd);
	return (e >> 63) ? (e & ((1ull << 55) - 1)) * PAGE : 0;
}

/* mutate: CPU writes to every 7th page, then the device's writes over the first pages. Updates
 * the CRCs; prints what it did. */
static void mutate(uint8_t *buf, uint32_t *crc, size_t pages, size_t target, unsigned gen)
{
	size_t changed = 0;
	ssize_t got = 0;
	int fd;

	for (size_t i = 3; i < pages; i += 7) {
		if (i == target)
			continue;
		fill_page(buf + i * PAGE, i + pages * gen);
		crc[i] = crc32_update(0, buf + i * PAGE, PAGE);
		changed++;
	}
	fd = open("/dev/vda", O_RDONLY | O_DIRECT | O_CLOEXEC);
	if (fd >= 0) {
		size_t max = target * PAGE < (4ul << 20) ? target * PAGE : (4ul << 20);

		got = pread(fd, buf, max, 0);
		close(fd);
		for (size_t i = 0; got > 0 && i < (size_t)got / PAGE; i++)
			crc[i] = crc32_update(0, buf + i * PAGE, PAGE);
	}
	printf("KILN-SNAP-MUTATED cpu_pages=%zu blk_bytes=%zd%s\n", changed, got,
	       fd < 0 ? " (no /dev/vda)" : "");
}

void test_snapshot(const struct agent *a, struct result *r)
{
	unsigned long mib = 64;
	size_t pages, target, bad_total = 0, verifies = 0, poisons = 0;
	unsigned gen = 0;
	uint32_t *crc;
	uint8_t *buf;
	char line[64];
	FILE *in;

	if (param_ulong(a, "snap_mib", &mib) < 0 || mib == 0) {
		result_fail(r, "kiln.snap_mib must be a positive number");
		return;
	}
	pages = mib * (1ul << 20) / PAGE;
	buf = mmap(NULL, pages * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	crc = calloc(pages, sizeof(*crc));
	if (buf == MAP_FAILED || !crc) {
		result_fail(r, "cannot allocate %lu MiB: %s", mib, strerror(errno));
		return;
	}
	for (size_t i = 0; i < pages; i++) {
		fill_page(buf + i * PAGE, i);
		crc[i] = crc32_update(0, buf + i * PAGE, PAGE);
	}
	if (mlock(buf, pages * PAGE) != 0)
		result_note(r, "mlock: %s", strerror(errno));
	target = pages / 2;
	printf("KILN-SNAP-READY gpa=0x%llx pages=%zu\n",
	       (unsigned long long)phys_of(buf + target * PAGE), pages);
	fflush(stdout);
	in = fopen("/dev/console", "r");
	if (!in) {
		result_fail(r, "cannot read the console: %s", strerror(errno));
		return;
	}
	while (fgets(line, sizeof(line), in)) {
		if (!strncmp(line, "verify", 6)) {
			size_t bad = 0, first = 0;

			for (size_t i = 0; i < pages; i++) {
				if (i == target || crc32_update(0, buf + i * PAGE, PAGE) == crc[i])
					continue;
				if (!bad++)
					first = i;
			}
			bad_total += bad;
			verifies++;
			printf("KILN-SNAP-VERIFIED pages=%zu bad=%zu first_bad=%zu\n", pages - 1, bad,
			       bad ? first : 0);
		} else if (!strncmp(line, "poison", 6)) {
			int st = read_poisoned(buf + target * PAGE);

			poisons += st == 42;
			printf("KILN-SNAP-POISON %s (child status %d)\n",
			       st == 42 ? "machine-check" : st == 0 ? "READ-FINE" : "other", st);
		} else if (!strncmp(line, "mutate", 6)) {
			mutate(buf, crc, pages, target, ++gen);
		} else if (!strncmp(line, "done", 4)) {
			break;
		} else {
			continue;
		}
		fflush(stdout);
	}
	fclose(in);
	if (bad_total)
		result_fail(r, "%zu page(s) changed across %zu verifications", bad_total, verifies);
	else if (!verifies)
		result_fail(r, "never asked to verify");
	else
		result_note(r, "%zu pages intact over %zu verifications; %zu poisoned read(s) took a "
			    "machine check", pages - 1, verifies, poisons);
}
