/* icount_poison: one poison log lookup (vmm/poison_log.c, poison_log_contains) of a 4 KiB page,
 * in logs of 0, 1, 1,000 and 100,000 entries, hit and miss, beside a bare binary search of the
 * same array; for callgrind's instruction counts (bench/icount.sh). Not a timing benchmark.
 *
 *   valgrind --tool=callgrind --collect-atstart=no --toggle-collect=poison_log_contains \
 *     --toggle-collect='icount_*' icount_poison N
 *
 * Entry i is the 4 KiB page at guest-physical i * 8 KiB (every other page, so that none merge),
 * origin host. A hit looks up one of them, a miss the page after one; the pages come from a
 * fixed pseudo-random sequence, the same every run, so each figure is the mean over N lookups
 * spread across the log. Each figure: a dump named "-", N lookups, a dump "FIGURE N". Exit 0, or
 * 1 when a lookup answers wrong. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <valgrind/callgrind.h>

#include "poison_log.h"

#define PAGE 4096ull
#define WARM 64

struct icount_poison {
	struct poison_log log;
	uint32_t rng;
	bool bad;
};

/* The floor: the binary search poison_log_contains does, without the lock or the empty check. */
__attribute__((noinline)) bool icount_floor(const struct poison_log *log, uint64_t gpa,
					    uint64_t len)
{
	size_t lo = 0, hi = log->nr;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (log->ranges[mid].gpa + log->ranges[mid].len > gpa)
			hi = mid;
		else
			lo = mid + 1;
	}
	return lo < log->nr && log->ranges[lo].gpa < gpa + len;
}

/* The next entry index, from a fixed sequence (a 32-bit LCG). */
static uint64_t next_index(struct icount_poison *x, size_t entries)
{
	x->rng = x->rng * 1664525u + 1013904223u;
	return entries ? (x->rng >> 8) % entries : 0;
}

static void lookups(struct icount_poison *x, size_t entries, bool hit, unsigned long count,
		    bool floor)
{
	for (unsigned long k = 0; k < count; k++) {
		uint64_t gpa = next_index(x, entries) * 2 * PAGE + (hit ? 0 : PAGE);
		bool found = floor ? icount_floor(&x->log, gpa, PAGE) :
				     poison_log_contains(&x->log, gpa, PAGE);

		x->bad |= found != (hit && entries > 0);
	}
}

static void figure(struct icount_poison *x, size_t entries, bool hit, unsigned long n,
		   bool floor)
{
	char label[96];

	lookups(x, entries, hit, WARM, floor);
	CALLGRIND_DUMP_STATS_AT("-");
	x->rng = 1;
	lookups(x, entries, hit, n, floor);
	snprintf(label, sizeof(label), "%spoison_%zu_%s %lu", floor ? "floor_" : "", entries,
		 hit ? "hit" : "miss", n);
	CALLGRIND_DUMP_STATS_AT(label);
}

int main(int argc, char **argv)
{
	static const size_t sizes[] = { 0, 1, 1000, 100000 };
	static struct icount_poison x;
	unsigned long n = argc > 1 ? strtoul(argv[1], NULL, 10) : 1000;
	size_t have = 0;

	if (poison_log_init(&x.log) < 0)
		return 1;
	for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
		for (; have < sizes[s]; have++) {
			if (poison_log_add(&x.log, have * 2 * PAGE, PAGE, POISON_HOST) < 0)
				return 1;
		}
		if (x.log.nr != have) {
			fprintf(stderr, "icount_poison: the log has %zu entries, not %zu\n", x.log.nr,
				have);
			return 1;
		}
		for (int floor = 0; floor < 2; floor++) {
			if (have > 0) /* an empty log has nothing to hit */
				figure(&x, have, true, n, floor);
			figure(&x, have, false, n, floor);
		}
	}
	poison_log_destroy(&x.log);
	if (x.bad) {
		fprintf(stderr, "icount_poison: a lookup answered wrong\n");
		return 1;
	}
	return 0;
}
