/* Loads a Linux kernel (ELF vmlinux or bzImage) and an initrd into guest memory. */
#ifndef KILN_LOADER_X86_64_H
#define KILN_LOADER_X86_64_H

#include <asm/bootparam.h>
#include <stdbool.h>
#include <stdint.h>

#include "memory.h"

struct kernel_image {
	bool is_bzimage;
	uint64_t entry;          /* guest-physical 64-bit entry point */
	uint64_t end;            /* first guest-physical byte past what the kernel needs */
	uint64_t initrd_max;     /* highest address an initrd byte may have */
	uint32_t cmdline_max;    /* longest command line the kernel accepts, without NUL */
	struct setup_header hdr; /* the bzImage's setup header (zeroed for ELF) */
	uint32_t hdr_len;        /* bytes of hdr that came from the image */
};

/*
 * Loads the kernel at path into gm: ELF segments at their physical addresses, or a bzImage's
 * protected-mode part at 1 MiB for the 64-bit boot protocol. Logs and returns -errno on an
 * unreadable file, an unknown format, a kernel too old for 64-bit entry, or one that does not
 * fit in guest RAM.
 */
int loader_load_kernel(struct guest_memory *gm, const char *path, struct kernel_image *out)
	__attribute__((warn_unused_result));

/*
 * Parses a kernel image held in memory (buf, len) into gm; the body of loader_load_kernel,
 * split out for tests. err gets one line on failure.
 */
int loader_load_kernel_buf(struct guest_memory *gm, const uint8_t *buf, uint64_t len,
			   struct kernel_image *out, char *err, size_t errlen)
	__attribute__((warn_unused_result));

/*
 * Loads the initrd at path at the highest page-aligned address under both the end of low RAM
 * and kernel->initrd_max, above kernel->end. Returns 0 with *addr and *size set, or -errno.
 */
int loader_load_initrd(struct guest_memory *gm, const char *path,
		       const struct kernel_image *kernel, uint64_t *addr, uint64_t *size)
	__attribute__((warn_unused_result));

#endif
