/* Boot timer pseudo-device: logs the time from kiln's start to the guest's signal. */
#include "boot_timer.h"

#include <time.h>

#include "log.h"

static uint64_t now_ns(clockid_t clock)
{
	struct timespec ts;

	clock_gettime(clock, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void boot_timer_start(struct boot_timer *t)
{
	t->start_ns = now_ns(CLOCK_MONOTONIC);
	t->start_cpu_ns = now_ns(CLOCK_PROCESS_CPUTIME_ID);
	t->boot_ns = 0;
}

uint64_t boot_timer_elapsed_ns(const struct boot_timer *t)
{
	return now_ns(CLOCK_MONOTONIC) - t->start_ns;
}

static void boot_timer_write(void *opaque, uint64_t offset, const uint8_t *data, uint32_t len)
{
	struct boot_timer *t = opaque;
	uint64_t wall, cpu;

	if (offset != 0 || len != 1 || data[0] != BOOT_TIMER_MAGIC)
		return;
	wall = now_ns(CLOCK_MONOTONIC) - t->start_ns;
	cpu = now_ns(CLOCK_PROCESS_CPUTIME_ID) - t->start_cpu_ns;
	t->boot_ns = wall;
	log_write(LOG_INFO, __FILE__, __LINE__,
		  "Guest-boot-time = %llu us %llu ms, %llu CPU us %llu CPU ms",
		  (unsigned long long)(wall / 1000), (unsigned long long)(wall / 1000000),
		  (unsigned long long)(cpu / 1000), (unsigned long long)(cpu / 1000000));
}

const struct bus_ops boot_timer_bus_ops = { .write = boot_timer_write };
