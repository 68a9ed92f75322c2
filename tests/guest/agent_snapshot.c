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
 * kiln.snap_mib=N sizes the buffer (default 64). kiln.snap_huge=1: the page handed to the host
 * for poisoning is a guest 2 MiB huge page of its own (on 2 MiB hugetlb memory the host poisons
 * whole 2 MiB pages, which must then hold nothing else the agent uses). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
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
		size_t max = pages * PAGE / 2 < (4ul << 20) ? pages * PAGE / 2 : (4ul << 20);

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
	unsigned long mib = 64, huge = 0;
	size_t pages, target, bad_total = 0, verifies = 0, poisons = 0;
	unsigned gen = 0;
	uint32_t *crc;
	uint8_t *buf, *victim;
	uint64_t gpa = 0;
	char line[64];
	FILE *in;
	int ret;

	if (param_ulong(a, "snap_mib", &mib) < 0 || mib == 0 ||
	    param_ulong(a, "snap_huge", &huge) < 0) {
		result_fail(r, "kiln.snap_mib must be a positive number, kiln.snap_huge 0 or 1");
		return;
	}
	pages = mib * (1ul << 20) / PAGE;
	/* A guest huge page of its own for the host to poison, reserved before the buffer
	 * fragments memory; else a page in the middle of the buffer, left out of verify and
	 * mutate. */
	target = huge ? SIZE_MAX : pages / 2;
	victim = NULL;
	if (huge) {
		if ((ret = reserve_hugepages(1)) < 0) {
			result_fail(r, "cannot reserve guest huge pages: %s", strerror(-ret));
			return;
		}
		victim = mmap(NULL, 2ul << 20, PROT_READ | PROT_WRITE,
			      MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB | (21 << MAP_HUGE_SHIFT), -1, 0);
		if (victim == MAP_FAILED) {
			result_fail(r, "mmap of a guest huge page: %s", strerror(errno));
			return;
		}
		memset(victim, 0x5a, 2ul << 20);
	}
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
	if (!victim)
		victim = buf + pages / 2 * PAGE;
	if ((ret = guest_phys(victim, &gpa)) < 0) {
		result_fail(r, "the guest-physical address of the page to poison: %s",
			    strerror(-ret));
		return;
	}
	printf("KILN-SNAP-READY gpa=0x%llx pages=%zu\n", (unsigned long long)gpa, pages);
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
			printf("KILN-SNAP-VERIFIED pages=%zu bad=%zu first_bad=%zu\n",
			       pages - (target < pages), bad, bad ? first : 0);
		} else if (!strncmp(line, "poison", 6)) {
			int st = read_in_child(victim, PAGE, -1);
			bool mce = st > 0 && WIFEXITED(st) &&
				   WEXITSTATUS(st) == AGENT_EXIT_SIGBUS_BASE + BUS_MCEERR_AR;

			poisons += mce;
			printf("KILN-SNAP-POISON %s (child status %d)\n",
			       mce ? "machine-check" : st == 0 ? "READ-FINE" : "other", st);
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
			    "machine check", pages - (target < pages), verifies, poisons);
}
