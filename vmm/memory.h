/* Guest RAM: one sealed memfd mapped once, split into KVM memslots around the MMIO gap,
 * and the one checked accessor every guest-physical access goes through. */
#ifndef KILN_MEMORY_H
#define KILN_MEMORY_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GUEST_MEM_MAX_REGIONS 2

struct poison_log;

struct guest_region {
	uint64_t gpa;      /* guest-physical start */
	uint64_t size;     /* bytes */
	uint64_t offset;   /* offset in the memfd and in the host mapping */
};

struct guest_memory {
	int fd;            /* the memfd, -1 when not created */
	uint8_t *host;     /* MAP_SHARED mapping of the whole memfd */
	uint64_t size;     /* total RAM bytes */
	uint64_t page_size; /* 4 KiB or 2 MiB */
	unsigned nr_regions;
	struct guest_region regions[GUEST_MEM_MAX_REGIONS];
	/*
	 * Pages kiln itself wrote (device emulation), one bit per 4 KiB of the memfd; KVM's dirty
	 * log sees only the guest's own writes. NULL when not created.
	 */
	_Atomic uint64_t *kiln_dirty;
	/* The VM's poison log, which every accessor below consults; NULL: none. Not owned. */
	struct poison_log *poison;
};

#define GUEST_DIRTY_PAGE 4096ull

/*
 * Splits size bytes of RAM into guest regions: [0, min(size, gap_start)) and, for the rest,
 * [4 GiB, ...). Pure; used by guest_memory_create and the e820 builder.
 */
void guest_memory_layout(struct guest_memory *gm, uint64_t size);

/*
 * Creates the memfd (hugetlb 2 MiB when huge), sizes it, seals its size and maps it. Leaves
 * gm->poison NULL: the owner points it at its poison log afterwards.
 * Fails with a logged reason: -ENOMEM when the host has too few free hugepages.
 */
int guest_memory_create(struct guest_memory *gm, uint64_t size, bool huge)
	__attribute__((warn_unused_result));

/* Unmaps and closes; safe on a zeroed or half-created guest_memory. */
void guest_memory_destroy(struct guest_memory *gm);

/* Whether [gpa, gpa+len) lies wholly inside one RAM region, poisoned or not. Overflow-safe;
 * len 0 is refused. For checks of the guest's ring rules, which a poisoned page does not break. */
bool guest_memory_in_ram(const struct guest_memory *gm, uint64_t gpa, uint64_t len);

/* 0 when [gpa, gpa+len) may be accessed, -EFAULT when it is not RAM, -EHWPOISON when the poison
 * log has a page of it. */
int guest_memory_check(const struct guest_memory *gm, uint64_t gpa, uint64_t len);

/*
 * The guest-physical address of host address hva in gm's mapping; false outside guest RAM.
 * Async-signal-safe: reads the region table only.
 */
bool guest_memory_gpa_of(const struct guest_memory *gm, uintptr_t hva, uint64_t *gpa);

/* RAM is contiguous in the memfd: the guest-physical address of memfd offset off, and the memfd
 * offset of guest-physical gpa. False outside RAM. No poison check (callers may hold the poison
 * log's lock). */
bool guest_memory_gpa_of_offset(const struct guest_memory *gm, uint64_t off, uint64_t *gpa);
bool guest_memory_offset_of(const struct guest_memory *gm, uint64_t gpa, uint64_t *off);

/*
 * A 16-bit ring field the other side may be writing: one aligned load (acquire) or store
 * (release), guarded against a page turning poisoned under it (then recorded, as by the copies
 * below). 0, -EFAULT (not RAM) or -EHWPOISON.
 */
int guest_memory_load16(const struct guest_memory *gm, uint64_t gpa, uint16_t *v)
	__attribute__((warn_unused_result));
int guest_memory_store16(struct guest_memory *gm, uint64_t gpa, uint16_t v)
	__attribute__((warn_unused_result));

/*
 * The checked accessor: a host pointer to [gpa, gpa+len) when that range lies wholly inside
 * one RAM region and the poison log has no page of it, else NULL. Overflow-safe. len 0 is
 * refused. Whoever dereferences the pointer on kiln's own threads must expect a page to turn
 * poisoned meanwhile: copy through poison_guard_copy, or hand it to the kernel (readv, ...),
 * which then fails with EFAULT instead of raising SIGBUS.
 */
void *guest_memory_ptr(const struct guest_memory *gm, uint64_t gpa, uint64_t len);

/*
 * The accessor for ranges kiln is about to write: as guest_memory_ptr, and records the pages
 * as written by kiln. Callable from any thread.
 */
void *guest_memory_ptr_mut(struct guest_memory *gm, uint64_t gpa, uint64_t len);

/* Records [gpa, gpa+len) as written by kiln; ranges outside RAM are ignored. */
void guest_memory_mark_dirty(struct guest_memory *gm, uint64_t gpa, uint64_t len);

/*
 * Moves the record of pages kiln wrote into bitmap (one bit per 4 KiB page of RAM in memfd
 * order, (size/4096+63)/64 words) and clears it, atomically per word.
 */
void guest_memory_take_dirty(struct guest_memory *gm, uint64_t *bitmap);

/* ORs bitmap (as from guest_memory_take_dirty, or KVM's dirty log) back into the record: a
 * snapshot that failed after taking it must not lose pages for the next one. */
void guest_memory_give_back_dirty(struct guest_memory *gm, const uint64_t *bitmap);

/* Copies into guest memory (recorded as written by kiln) through the poison guard; -EFAULT if
 * the range is not RAM, -EHWPOISON if a page of it is poisoned (recorded, or found so now). */
int guest_memory_write(struct guest_memory *gm, uint64_t gpa, const void *src, uint64_t len)
	__attribute__((warn_unused_result));

/* Copies out of guest memory through the poison guard; -EFAULT if the range is not RAM,
 * -EHWPOISON if a page of it is poisoned. */
int guest_memory_read(const struct guest_memory *gm, uint64_t gpa, void *dst, uint64_t len)
	__attribute__((warn_unused_result));

/* Free 2 MiB hugepages on the host, or -errno. */
long guest_memory_free_hugepages(void);

#endif
