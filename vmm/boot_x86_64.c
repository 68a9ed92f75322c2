/* x86_64 boot state: zero page, e820, identity page tables, GDT and 64-bit entry registers. */
#include "boot_x86_64.h"

#include <errno.h>
#include <string.h>

#include "layout_x86_64.h"
#include "log.h"

#define E820_RAM 1
#define CR0_PE 0x1ull
#define CR0_ET 0x10ull
#define CR0_NE 0x20ull
#define CR0_PG 0x80000000ull
#define CR4_PAE 0x20ull
#define EFER_LME 0x100ull
#define EFER_LMA 0x400ull
#define PTE_PRESENT_RW 0x3ull
#define PDE_HUGE 0x80ull
#define PAGE_2M (2ull << 20)

enum { GDT_NULL, GDT_CODE, GDT_DATA, GDT_TSS, GDT_ENTRIES };

/* flags: the descriptor's access byte (bits 0-7) and flags nibble (bits 12-15). */
static uint64_t gdt_entry(uint16_t flags, uint32_t base, uint32_t limit)
{
	return ((uint64_t)(base & 0xff000000u) << 32) | ((uint64_t)(base & 0x00ffffffu) << 16) |
	       (uint64_t)(limit & 0x0000ffffu) | ((uint64_t)(limit & 0x000f0000u) << 32) |
	       ((uint64_t)(flags & 0xf0ffu) << 40);
}

static const uint16_t gdt_flags[GDT_ENTRIES] = {
	[GDT_NULL] = 0,
	[GDT_CODE] = 0xa09b, /* 64-bit code, present, ring 0, 4 KiB granularity */
	[GDT_DATA] = 0xc093, /* 32-bit data, present, writable */
	[GDT_TSS] = 0x808b,  /* busy 64-bit TSS */
};

static struct kvm_segment segment_from_gdt(unsigned index)
{
	uint64_t e = gdt_entry(gdt_flags[index], 0, 0xfffff);

	return (struct kvm_segment){
		.base = 0,
		.limit = 0xffffffff,
		.selector = (uint16_t)(index * 8),
		.type = (e >> 40) & 0xf,
		.present = (e >> 47) & 1,
		.dpl = (e >> 45) & 3,
		.db = (e >> 54) & 1,
		.s = (e >> 44) & 1,
		.l = (e >> 53) & 1,
		.g = (e >> 55) & 1,
		.avl = (e >> 52) & 1,
	};
}

static unsigned e820_add(struct boot_e820_entry *t, unsigned n, unsigned max, uint64_t addr,
			 uint64_t size)
{
	if (n >= max || size == 0)
		return n;
	t[n] = (struct boot_e820_entry){ .addr = addr, .size = size, .type = E820_RAM };
	return n + 1;
}

unsigned boot_e820_build(struct boot_e820_entry *table, unsigned max,
			 const struct guest_memory *gm)
{
	uint64_t low_end = gm->regions[0].size;
	unsigned n = 0;

	n = e820_add(table, n, max, 0, low_end < LAYOUT_EBDA ? low_end : LAYOUT_EBDA);
	if (low_end > LAYOUT_HIMEM)
		n = e820_add(table, n, max, LAYOUT_HIMEM, low_end - LAYOUT_HIMEM);
	for (unsigned i = 1; i < gm->nr_regions; i++)
		n = e820_add(table, n, max, gm->regions[i].gpa, gm->regions[i].size);
	return n;
}

void boot_params_build(struct boot_params *bp, const struct kernel_image *kernel,
		       const struct guest_memory *gm, uint32_t cmdline_len, uint64_t initrd_addr,
		       uint64_t initrd_size)
{
	memset(bp, 0, sizeof(*bp));
	if (kernel->is_bzimage) {
		memcpy(&bp->hdr, &kernel->hdr, kernel->hdr_len);
	} else {
		bp->hdr.boot_flag = 0xaa55;
		bp->hdr.header = 0x53726448; /* "HdrS" */
		bp->hdr.kernel_alignment = 0x1000000;
	}
	bp->hdr.type_of_loader = 0xff;
	bp->hdr.loadflags |= LOADED_HIGH;
	bp->hdr.cmd_line_ptr = (uint32_t)LAYOUT_CMDLINE;
	bp->hdr.cmdline_size = cmdline_len;
	if (initrd_size) {
		bp->hdr.ramdisk_image = (uint32_t)initrd_addr;
		bp->hdr.ramdisk_size = (uint32_t)initrd_size;
		bp->ext_ramdisk_image = (uint32_t)(initrd_addr >> 32);
		bp->ext_ramdisk_size = (uint32_t)(initrd_size >> 32);
	}
	bp->e820_entries = (uint8_t)boot_e820_build(bp->e820_table, E820_MAX_ENTRIES_ZEROPAGE, gm);
}

static int write_page_tables(struct guest_memory *gm)
{
	uint64_t pml4[512] = { 0 }, pdpt[512] = { 0 }, pd[512];
	int ret;

	pml4[0] = LAYOUT_PDPT | PTE_PRESENT_RW;
	for (unsigned i = 0; i < 4; i++) {
		pdpt[i] = (LAYOUT_PD + i * 0x1000ull) | PTE_PRESENT_RW;
		for (unsigned j = 0; j < 512; j++)
			pd[j] = ((uint64_t)(i * 512 + j) * PAGE_2M) | PTE_PRESENT_RW | PDE_HUGE;
		ret = guest_memory_write(gm, LAYOUT_PD + i * 0x1000ull, pd, sizeof(pd));
		if (ret < 0)
			return ret;
	}
	ret = guest_memory_write(gm, LAYOUT_PML4, pml4, sizeof(pml4));
	return ret < 0 ? ret : guest_memory_write(gm, LAYOUT_PDPT, pdpt, sizeof(pdpt));
}

int boot_setup_memory(struct guest_memory *gm, const struct kernel_image *kernel,
		      const char *cmdline, uint64_t initrd_addr, uint64_t initrd_size)
{
	uint64_t gdt[GDT_ENTRIES], idt = 0;
	size_t len = strlen(cmdline);
	struct boot_params bp;
	int ret;

	if (len > kernel->cmdline_max || len + 1 > LAYOUT_CMDLINE_MAX) {
		log_error("kernel command line is %zu bytes; this kernel accepts at most %u", len,
			  kernel->cmdline_max < LAYOUT_CMDLINE_MAX - 1 ? kernel->cmdline_max
								       : LAYOUT_CMDLINE_MAX - 1);
		return -EINVAL;
	}
	for (unsigned i = 0; i < GDT_ENTRIES; i++)
		gdt[i] = gdt_entry(gdt_flags[i], 0, i == GDT_NULL ? 0 : 0xfffff);
	boot_params_build(&bp, kernel, gm, (uint32_t)len, initrd_addr, initrd_size);

	if ((ret = guest_memory_write(gm, LAYOUT_CMDLINE, cmdline, len + 1)) < 0 ||
	    (ret = guest_memory_write(gm, LAYOUT_ZERO_PAGE, &bp, sizeof(bp))) < 0 ||
	    (ret = guest_memory_write(gm, LAYOUT_GDT_ADDR, gdt, sizeof(gdt))) < 0 ||
	    (ret = guest_memory_write(gm, LAYOUT_IDT_ADDR, &idt, sizeof(idt))) < 0 ||
	    (ret = write_page_tables(gm)) < 0) {
		log_error("guest RAM too small for the boot structures");
		return ret;
	}
	return 0;
}

void boot_sregs(struct kvm_sregs *s)
{
	s->gdt.base = LAYOUT_GDT_ADDR;
	s->gdt.limit = GDT_ENTRIES * 8 - 1;
	s->idt.base = LAYOUT_IDT_ADDR;
	s->idt.limit = 7;
	s->cs = segment_from_gdt(GDT_CODE);
	s->ds = s->es = s->fs = s->gs = s->ss = segment_from_gdt(GDT_DATA);
	s->tr = segment_from_gdt(GDT_TSS);
	/* Caches on from the first instruction: CD and NW from reset would slow early boot. */
	s->cr0 = CR0_PE | CR0_ET | CR0_NE | CR0_PG;
	s->cr3 = LAYOUT_PML4;
	s->cr4 = CR4_PAE;
	s->efer = EFER_LME | EFER_LMA;
}

void boot_regs(struct kvm_regs *r, uint64_t entry)
{
	memset(r, 0, sizeof(*r));
	r->rflags = 0x2;
	r->rip = entry;
	r->rsp = r->rbp = LAYOUT_BOOT_STACK;
	r->rsi = LAYOUT_ZERO_PAGE;
}
