/* Guest RAM backed by a sealed memfd, and the checked accessor for guest-physical ranges. */
#include "memory.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <linux/memfd.h>

#include "layout_x86_64.h"
#include "log.h"
#include "poison_log.h"

#define HUGE_2M (2ull << 20)

void guest_memory_layout(struct guest_memory *gm, uint64_t size)
{
	uint64_t low = size < LAYOUT_MMIO_GAP_START ? size : LAYOUT_MMIO_GAP_START;

	gm->size = size;
	gm->nr_regions = 1;
	gm->regions[0] = (struct guest_region){ .gpa = 0, .size = low, .offset = 0 };
	if (size > low) {
		gm->regions[1] = (struct guest_region){
			.gpa = LAYOUT_MMIO_GAP_END, .size = size - low, .offset = low
		};
		gm->nr_regions = 2;
	}
}

long guest_memory_free_hugepages(void)
{
	FILE *f = fopen("/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages", "re");
	long n = -1;

	if (!f)
		return -errno;
	if (fscanf(f, "%ld", &n) != 1)
		n = -EIO;
	fclose(f);
	return n;
}

int guest_memory_create(struct guest_memory *gm, uint64_t size, bool huge)
{
	unsigned flags = MFD_CLOEXEC | MFD_ALLOW_SEALING;
	int err;

	gm->fd = -1;
	gm->host = NULL;
	gm->kiln_dirty = NULL;
	gm->poison = NULL;
	gm->page_size = huge ? HUGE_2M : 4096;
	if (size % gm->page_size) {
		log_error("guest memory: %llu MiB is not a multiple of the %llu KiB page size",
			  (unsigned long long)(size >> 20),
			  (unsigned long long)(gm->page_size >> 10));
		return -EINVAL;
	}
	if (huge) {
		long free_pages = guest_memory_free_hugepages();
		uint64_t need = size / HUGE_2M;

		if (free_pages < 0 || (uint64_t)free_pages < need) {
			log_error("guest memory: huge_pages \"2M\" needs %llu free 2 MiB hugepages, "
				  "the host has %ld (raise /proc/sys/vm/nr_hugepages)",
				  (unsigned long long)need, free_pages < 0 ? 0 : free_pages);
			return -ENOMEM;
		}
		flags |= MFD_HUGETLB | MFD_HUGE_2MB;
	}
	guest_memory_layout(gm, size);

	gm->fd = memfd_create("kiln-guest-ram", flags);
	if (gm->fd < 0) {
		err = -errno;
		log_error("guest memory: memfd_create: %s", strerror(errno));
		return err;
	}
	if (ftruncate(gm->fd, (off_t)size) < 0) {
		err = -errno;
		log_error("guest memory: sizing the memfd to %llu MiB: %s",
			  (unsigned long long)(size >> 20), strerror(errno));
		goto err_close;
	}
	if (fcntl(gm->fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0) {
		err = -errno;
		log_error("guest memory: sealing the memfd: %s", strerror(errno));
		goto err_close;
	}
	gm->host = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, gm->fd, 0);
	if (gm->host == MAP_FAILED) {
		err = -errno;
		gm->host = NULL;
		log_error("guest memory: mapping %llu MiB: %s%s", (unsigned long long)(size >> 20),
			  strerror(errno), huge ? " (are enough hugepages reserved?)" : "");
		goto err_close;
	}
	/* Guest RAM has no place in a core dump of the monitor. */
	madvise(gm->host, size, MADV_DONTDUMP);
	gm->kiln_dirty = calloc((size / GUEST_DIRTY_PAGE + 63) / 64, sizeof(uint64_t));
	if (!gm->kiln_dirty) {
		err = -ENOMEM;
		log_error("guest memory: no memory for the dirty-page record");
		munmap(gm->host, size);
		gm->host = NULL;
		goto err_close;
	}
	return 0;

err_close:
	close(gm->fd);
	gm->fd = -1;
	return err;
}

void guest_memory_destroy(struct guest_memory *gm)
{
	if (gm->host)
		munmap(gm->host, gm->size);
	if (gm->fd >= 0)
		close(gm->fd);
	free(gm->kiln_dirty);
	gm->kiln_dirty = NULL;
	gm->host = NULL;
	gm->fd = -1;
}

/* The host address of [gpa, gpa+len) when it lies wholly in one region; poison not checked. */
static uint8_t *host_ptr(const struct guest_memory *gm, uint64_t gpa, uint64_t len)
{
	if (len == 0 || !gm->host)
		return NULL;
	for (unsigned i = 0; i < gm->nr_regions; i++) {
		const struct guest_region *r = &gm->regions[i];

		if (gpa >= r->gpa && gpa - r->gpa < r->size && len <= r->size - (gpa - r->gpa))
			return gm->host + r->offset + (gpa - r->gpa);
	}
	return NULL;
}

bool guest_memory_in_ram(const struct guest_memory *gm, uint64_t gpa, uint64_t len)
{
	return host_ptr(gm, gpa, len) != NULL;
}

static bool poisoned(const struct guest_memory *gm, uint64_t gpa, uint64_t len)
{
	return gm->poison && poison_log_contains(gm->poison, gpa, len);
}

int guest_memory_check(const struct guest_memory *gm, uint64_t gpa, uint64_t len)
{
	if (!host_ptr(gm, gpa, len))
		return -EFAULT;
	return poisoned(gm, gpa, len) ? -EHWPOISON : 0;
}

void *guest_memory_ptr(const struct guest_memory *gm, uint64_t gpa, uint64_t len)
{
	uint8_t *p = host_ptr(gm, gpa, len);

	return p && !poisoned(gm, gpa, len) ? p : NULL;
}

/* Records the pages of [p, p+len), a range of gm's mapping, as written by kiln. */
static void mark_dirty_at(struct guest_memory *gm, const uint8_t *p, uint64_t len)
{
	uint64_t first = (uint64_t)(p - gm->host) / GUEST_DIRTY_PAGE;
	uint64_t last = ((uint64_t)(p - gm->host) + len - 1) / GUEST_DIRTY_PAGE;

	if (!gm->kiln_dirty)
		return;
	for (uint64_t pg = first; pg <= last; pg++)
		atomic_fetch_or_explicit(&gm->kiln_dirty[pg / 64], 1ull << (pg % 64),
					 memory_order_relaxed);
}

void guest_memory_mark_dirty(struct guest_memory *gm, uint64_t gpa, uint64_t len)
{
	uint8_t *p = host_ptr(gm, gpa, len);

	if (p)
		mark_dirty_at(gm, p, len);
}

void *guest_memory_ptr_mut(struct guest_memory *gm, uint64_t gpa, uint64_t len)
{
	uint8_t *p = guest_memory_ptr(gm, gpa, len);

	if (p)
		mark_dirty_at(gm, p, len);
	return p;
}

void guest_memory_take_dirty(struct guest_memory *gm, uint64_t *bitmap)
{
	uint64_t words = (gm->size / GUEST_DIRTY_PAGE + 63) / 64;

	for (uint64_t i = 0; i < words; i++)
		bitmap[i] = gm->kiln_dirty ? atomic_exchange(&gm->kiln_dirty[i], 0) : 0;
}

void guest_memory_give_back_dirty(struct guest_memory *gm, const uint64_t *bitmap)
{
	uint64_t words = (gm->size / GUEST_DIRTY_PAGE + 63) / 64;

	for (uint64_t i = 0; gm->kiln_dirty && i < words; i++)
		if (bitmap[i])
			atomic_fetch_or(&gm->kiln_dirty[i], bitmap[i]);
}

bool guest_memory_gpa_of_offset(const struct guest_memory *gm, uint64_t off, uint64_t *gpa)
{
	for (unsigned i = 0; i < gm->nr_regions; i++) {
		const struct guest_region *r = &gm->regions[i];

		if (off >= r->offset && off - r->offset < r->size) {
			*gpa = r->gpa + (off - r->offset);
			return true;
		}
	}
	return false;
}

bool guest_memory_offset_of(const struct guest_memory *gm, uint64_t gpa, uint64_t *off)
{
	for (unsigned i = 0; i < gm->nr_regions; i++) {
		const struct guest_region *r = &gm->regions[i];

		if (gpa >= r->gpa && gpa - r->gpa < r->size) {
			*off = r->offset + (gpa - r->gpa);
			return true;
		}
	}
	return false;
}

bool guest_memory_gpa_of(const struct guest_memory *gm, uintptr_t hva, uint64_t *gpa)
{
	uintptr_t base = (uintptr_t)gm->host;

	if (!gm->host || hva < base || hva - base >= gm->size)
		return false;
	return guest_memory_gpa_of_offset(gm, hva - base, gpa);
}

/*
 * A guarded access returned ret: when it met a host memory error (not a page already in the
 * log), record the backing page as poisoned by the host, so that every later access is refused
 * up front and the page travels with snapshots and migrations. Not in the signal handler: the
 * log takes a lock. Returns ret.
 */
static int note_guard_fault(const struct guest_memory *gm, int ret)
{
	const uint8_t *at;
	uint64_t gpa;

	if (ret != -EHWPOISON || !gm->poison || !(at = poison_guard_fault()) ||
	    !guest_memory_gpa_of(gm, (uintptr_t)at, &gpa))
		return ret;
	gpa -= gpa % gm->page_size;
	if (poison_log_add(gm->poison, gpa, gm->page_size, POISON_HOST) == 0)
		log_warn("guest memory: host memory error at guest-physical 0x%llx met by kiln's "
			 "own copy: recorded in the poison log", (unsigned long long)gpa);
	return ret;
}

/* Why [gpa, gpa+len) has no pointer: -EFAULT outside RAM, else -EHWPOISON (in the log). */
static int no_ptr_reason(const struct guest_memory *gm, uint64_t gpa, uint64_t len)
{
	return host_ptr(gm, gpa, len) ? -EHWPOISON : -EFAULT;
}

int guest_memory_load16(const struct guest_memory *gm, uint64_t gpa, uint16_t *v)
{
	const uint16_t *p = guest_memory_ptr(gm, gpa, 2);

	if (!p)
		return no_ptr_reason(gm, gpa, 2);
	return note_guard_fault(gm, poison_guard_load16(p, v));
}

int guest_memory_store16(struct guest_memory *gm, uint64_t gpa, uint16_t v)
{
	uint16_t *p = guest_memory_ptr_mut(gm, gpa, 2);

	if (!p)
		return no_ptr_reason(gm, gpa, 2);
	return note_guard_fault(gm, poison_guard_store16(p, v));
}

int guest_memory_write(struct guest_memory *gm, uint64_t gpa, const void *src, uint64_t len)
{
	uint8_t *p = guest_memory_ptr_mut(gm, gpa, len);

	if (!p)
		return no_ptr_reason(gm, gpa, len);
	return note_guard_fault(gm, poison_guard_copy(p, src, len));
}

int guest_memory_read(const struct guest_memory *gm, uint64_t gpa, void *dst, uint64_t len)
{
	const uint8_t *p = guest_memory_ptr(gm, gpa, len);

	if (!p)
		return no_ptr_reason(gm, gpa, len);
	return note_guard_fault(gm, poison_guard_copy(dst, p, len));
}
