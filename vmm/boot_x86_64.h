/* The x86_64 64-bit boot protocol: zero page, e820 map, page tables, GDT and boot registers. */
#ifndef KILN_BOOT_X86_64_H
#define KILN_BOOT_X86_64_H

#include <asm/bootparam.h>
#include <linux/kvm.h>
#include <stdint.h>

#include "loader_x86_64.h"
#include "memory.h"

/*
 * Fills table with the guest's e820 map for gm's RAM layout: low RAM below the EBDA, RAM from
 * 1 MiB to the MMIO gap, and RAM above 4 GiB. Returns the number of entries (at most max).
 */
unsigned boot_e820_build(struct boot_e820_entry *table, unsigned max,
			 const struct guest_memory *gm);

/*
 * Builds the zero page for kernel, with the command line at LAYOUT_CMDLINE (cmdline_len bytes
 * without NUL) and the initrd at [initrd_addr, +initrd_size) (size 0: none). Pure.
 */
void boot_params_build(struct boot_params *bp, const struct kernel_image *kernel,
		       const struct guest_memory *gm, uint32_t cmdline_len, uint64_t initrd_addr,
		       uint64_t initrd_size);

/*
 * Writes the command line, zero page, GDT, IDT and identity page tables (4 GiB, 2 MiB pages)
 * into guest memory. -EINVAL if the command line is longer than the kernel accepts.
 */
int boot_setup_memory(struct guest_memory *gm, const struct kernel_image *kernel,
		      const char *cmdline, uint64_t initrd_addr, uint64_t initrd_size)
	__attribute__((warn_unused_result));

/* Adjusts sregs (from KVM_GET_SREGS) for 64-bit mode with kiln's GDT and page tables. Pure. */
void boot_sregs(struct kvm_sregs *sregs);

/* Boot-time general registers: entry in RIP, the zero page in RSI. Pure. */
void boot_regs(struct kvm_regs *regs, uint64_t entry);

#endif
