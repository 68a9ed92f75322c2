/* Unit tests for vmm/boot_x86_64.c: e820 map, zero page, boot registers, boot memory contents. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "boot_x86_64.h"
#include "layout_x86_64.h"
#include "loader_x86_64.h"
#include "log.h"
#include "memory.h"

#define MIB (1ull << 20)
#define GIB (1ull << 30)
#define E820_RAM 1

static void check_e820(const struct boot_e820_entry *e, uint64_t addr, uint64_t size)
{
	assert_int_equal(e->addr, addr);
	assert_int_equal(e->size, size);
	assert_int_equal(e->type, E820_RAM);
}

static unsigned e820_for(struct boot_e820_entry *t, unsigned max, uint64_t ram)
{
	struct guest_memory gm;

	guest_memory_layout(&gm, ram);
	return boot_e820_build(t, max, &gm);
}

static void boot_e820_build_128m_low_and_high_ram(void **state)
{
	struct boot_e820_entry t[8];

	memset(t, 0xee, sizeof(t));
	assert_int_equal(e820_for(t, 8, 128 * MIB), 2);
	check_e820(&t[0], 0, 0x9fc00);
	check_e820(&t[1], 0x100000, 128 * MIB - 0x100000);
	assert_int_equal(t[2].addr, 0xeeeeeeeeeeeeeeeeull); /* nothing past the count */
}

static void boot_e820_build_3_25g_ends_at_gap(void **state)
{
	struct boot_e820_entry t[8];

	assert_int_equal(e820_for(t, 8, 0xd0000000ull), 2);
	check_e820(&t[0], 0, 0x9fc00);
	check_e820(&t[1], 0x100000, 0xd0000000ull - 0x100000);
}

static void boot_e820_build_5g_resumes_at_4g(void **state)
{
	struct boot_e820_entry t[8];

	assert_int_equal(e820_for(t, 8, 5 * GIB), 3);
	check_e820(&t[0], 0, 0x9fc00);
	check_e820(&t[1], 0x100000, 0xd0000000ull - 0x100000);
	check_e820(&t[2], 0x100000000ull, 5 * GIB - 0xd0000000ull);
}

static void boot_e820_build_small_table_stops_at_max(void **state)
{
	struct boot_e820_entry t[3];

	memset(t, 0xee, sizeof(t));
	assert_int_equal(e820_for(t, 2, 5 * GIB), 2);
	check_e820(&t[1], 0x100000, 0xd0000000ull - 0x100000);
	assert_int_equal(t[2].type, 0xeeeeeeee);
	assert_int_equal(e820_for(t, 0, 5 * GIB), 0);
}

static void boot_params_build_elf_fills_protocol_fields(void **state)
{
	static struct boot_params bp;
	struct kernel_image k = { .entry = 0x1000000, .end = 0x3000000, .cmdline_max = 2047 };
	struct guest_memory gm;

	guest_memory_layout(&gm, 128 * MIB);
	memset(&bp, 0xee, sizeof(bp));
	boot_params_build(&bp, &k, &gm, 42, 0x7000000, 0x123456);
	assert_int_equal(bp.hdr.boot_flag, 0xaa55);
	assert_int_equal(bp.hdr.header, 0x53726448);
	assert_int_equal(bp.hdr.kernel_alignment, 0x1000000);
	assert_int_equal(bp.hdr.type_of_loader, 0xff);
	assert_int_equal(bp.hdr.loadflags, LOADED_HIGH);
	assert_int_equal(bp.hdr.cmd_line_ptr, 0x20000);
	assert_int_equal(bp.hdr.cmdline_size, 42);
	assert_int_equal(bp.hdr.ramdisk_image, 0x7000000);
	assert_int_equal(bp.hdr.ramdisk_size, 0x123456);
	assert_int_equal(bp.ext_ramdisk_image, 0);
	assert_int_equal(bp.ext_ramdisk_size, 0);
	assert_int_equal(bp.ext_cmd_line_ptr, 0);
	assert_int_equal(bp.hdr.version, 0);
	assert_int_equal(bp.hdr.setup_sects, 0);
	assert_int_equal(bp.e820_entries, 2);
	check_e820(&bp.e820_table[0], 0, 0x9fc00);
	check_e820(&bp.e820_table[1], 0x100000, 128 * MIB - 0x100000);
	assert_int_equal(bp.e820_table[2].size, 0);
	assert_int_equal(bp.screen_info.orig_video_isVGA, 0);
	assert_int_equal(bp.sentinel, 0);
}

static void boot_params_build_no_initrd_zero_ramdisk(void **state)
{
	static struct boot_params bp;
	struct kernel_image k = { .cmdline_max = 2047 };
	struct guest_memory gm;

	guest_memory_layout(&gm, 5 * GIB);
	memset(&bp, 0xee, sizeof(bp));
	boot_params_build(&bp, &k, &gm, 0, 0x7000000, 0);
	assert_int_equal(bp.hdr.ramdisk_image, 0);
	assert_int_equal(bp.hdr.ramdisk_size, 0);
	assert_int_equal(bp.ext_ramdisk_image, 0);
	assert_int_equal(bp.ext_ramdisk_size, 0);
	assert_int_equal(bp.hdr.cmdline_size, 0);
	assert_int_equal(bp.e820_entries, 3);
	check_e820(&bp.e820_table[2], 0x100000000ull, 5 * GIB - 0xd0000000ull);
}

static void boot_params_build_initrd_above_4g_sets_ext_fields(void **state)
{
	static struct boot_params bp;
	struct kernel_image k = { .cmdline_max = 2047 };
	struct guest_memory gm;

	guest_memory_layout(&gm, 5 * GIB);
	boot_params_build(&bp, &k, &gm, 7, 0x123456000ull, 0x100001000ull);
	assert_int_equal(bp.hdr.ramdisk_image, 0x23456000);
	assert_int_equal(bp.ext_ramdisk_image, 1);
	assert_int_equal(bp.hdr.ramdisk_size, 0x1000);
	assert_int_equal(bp.ext_ramdisk_size, 1);
}

/* A bzImage-style header as the loader would have copied it. */
static struct setup_header bz_header(void)
{
	return (struct setup_header){
		.setup_sects = 31, .root_flags = 1, .syssize = 0x7fc00, .vid_mode = 0xffff,
		.boot_flag = 0xaa55, .jump = 0x6aeb, .header = 0x53726448, .version = 0x020f,
		.kernel_version = 0x3c0, .type_of_loader = 0x00, .loadflags = 0x81 /* + heap */,
		.code32_start = 0x100000, .heap_end_ptr = 0xde00, .initrd_addr_max = 0x7fffffff,
		.kernel_alignment = 0x200000, .relocatable_kernel = 1, .min_alignment = 0x15,
		.xloadflags = XLF_KERNEL_64 | XLF_CAN_BE_LOADED_ABOVE_4G, .cmdline_size = 2047,
		.payload_offset = 0x3a8, .payload_length = 0x7e0000, .pref_address = 0x1000000,
		.init_size = 0x1cc7000, .handover_offset = 0x190, .kernel_info_offset = 0x7e4000,
	};
}

static void boot_params_build_bzimage_copies_header(void **state)
{
	static struct boot_params bp;
	struct kernel_image k = { .is_bzimage = true, .entry = 0x100200, .cmdline_max = 2047,
				  .hdr = bz_header(), .hdr_len = 0x26c - 0x1f1 };
	struct setup_header want = bz_header();
	struct guest_memory gm;

	guest_memory_layout(&gm, 128 * MIB);
	memset(&bp, 0xee, sizeof(bp));
	boot_params_build(&bp, &k, &gm, 100, 0x7ff0000, 0x10000);
	want.type_of_loader = 0xff;
	want.cmd_line_ptr = 0x20000;
	want.cmdline_size = 100;
	want.ramdisk_image = 0x7ff0000;
	want.ramdisk_size = 0x10000;
	assert_memory_equal(&bp.hdr, &want, sizeof(want));
	assert_int_equal(bp.hdr.loadflags, 0x81);
	assert_int_equal(bp.hdr.kernel_alignment, 0x200000);
	assert_int_equal(bp.e820_entries, 2);
	assert_int_equal(((uint8_t *)&bp)[0x1f0], 0);
}

static void boot_params_build_bzimage_short_header_copies_only_its_bytes(void **state)
{
	static struct boot_params bp;
	struct kernel_image k = { .is_bzimage = true, .cmdline_max = 2047, .hdr = bz_header(),
				  .hdr_len = 0x268 - 0x1f1 };
	struct guest_memory gm;

	guest_memory_layout(&gm, 128 * MIB);
	boot_params_build(&bp, &k, &gm, 1, 0, 0);
	assert_int_equal(bp.hdr.init_size, 0x1cc7000);
	assert_int_equal(bp.hdr.kernel_info_offset, 0);
}

static void boot_params_build_loaded_bzimage_keeps_loader_header(void **state)
{
	static struct boot_params bp;
	static uint8_t img[32 * 512 + 0x1000];
	struct setup_header h = bz_header();
	struct kernel_image k;
	struct guest_memory gm;
	char err[128];

	h.init_size = 0x800000;
	memcpy(img + 0x1f1, &h, sizeof(h));
	assert_int_equal(guest_memory_create(&gm, 32 * MIB, false), 0);
	assert_int_equal(loader_load_kernel_buf(&gm, img, sizeof(img), &k, err, sizeof(err)), 0);
	boot_params_build(&bp, &k, &gm, 5, 0, 0);
	assert_memory_equal((uint8_t *)&bp + 0x1f1, img + 0x1f1, 0x210 - 0x1f1);
	assert_int_equal(bp.hdr.type_of_loader, 0xff);
	assert_int_equal(bp.hdr.init_size, 0x800000);
	assert_int_equal(bp.hdr.pref_address, 0x1000000);
	assert_int_equal(bp.hdr.kernel_info_offset, 0x7e4000);
	guest_memory_destroy(&gm);
}

static void check_segment(const struct kvm_segment *s, uint16_t selector, uint8_t type,
			  uint8_t s_bit, uint8_t l, uint8_t db)
{
	assert_int_equal(s->base, 0);
	assert_int_equal(s->limit, 0xffffffff);
	assert_int_equal(s->selector, selector);
	assert_int_equal(s->type, type);
	assert_int_equal(s->present, 1);
	assert_int_equal(s->dpl, 0);
	assert_int_equal(s->db, db);
	assert_int_equal(s->s, s_bit);
	assert_int_equal(s->l, l);
	assert_int_equal(s->g, 1);
	assert_int_equal(s->avl, 0);
	assert_int_equal(s->unusable, 0);
}

static void boot_sregs_reset_state_long_mode_flat_segments(void **state)
{
	struct kvm_sregs s;

	memset(&s, 0, sizeof(s));
	s.cr0 = 0x60000010; /* reset value: CD | NW | ET */
	s.cr4 = 0x40;
	s.apic_base = 0xfee00900;
	boot_sregs(&s);
	assert_int_equal(s.cr0, 0x80000031ull); /* PG | NE | ET | PE */
	assert_int_equal(s.cr0 & (3ull << 29), 0);
	assert_int_equal(s.cr3, 0x9000);
	assert_int_equal(s.cr4, 0x20); /* PAE */
	assert_int_equal(s.efer, 0x500); /* LMA | LME */
	assert_int_equal(s.apic_base, 0xfee00900);
	assert_int_equal(s.gdt.base, 0x500);
	assert_int_equal(s.gdt.limit, 31);
	assert_int_equal(s.idt.base, 0x520);
	assert_int_equal(s.idt.limit, 7);
	check_segment(&s.cs, 0x8, 0xb, 1, 1, 0);
	check_segment(&s.ds, 0x10, 0x3, 1, 0, 1);
	check_segment(&s.es, 0x10, 0x3, 1, 0, 1);
	check_segment(&s.fs, 0x10, 0x3, 1, 0, 1);
	check_segment(&s.gs, 0x10, 0x3, 1, 0, 1);
	check_segment(&s.ss, 0x10, 0x3, 1, 0, 1);
	check_segment(&s.tr, 0x18, 0xb, 0, 0, 0);
}

static void boot_regs_entry_sets_rip_rsi_stack(void **state)
{
	struct kvm_regs r, want;

	memset(&r, 0xff, sizeof(r));
	boot_regs(&r, 0x1000000);
	memset(&want, 0, sizeof(want));
	want.rip = 0x1000000;
	want.rsi = 0x7000;
	want.rsp = 0x8ff0;
	want.rbp = 0x8ff0;
	want.rflags = 2;
	assert_memory_equal(&r, &want, sizeof(r));
}

static int mem64_setup(void **state)
{
	static struct guest_memory gm;

	if (guest_memory_create(&gm, 64 * MIB, false) < 0)
		return -1;
	*state = &gm;
	return 0;
}

static int mem_teardown(void **state)
{
	guest_memory_destroy(*state);
	return 0;
}

static uint64_t get64(const struct guest_memory *gm, uint64_t gpa)
{
	uint64_t v;

	memcpy(&v, gm->host + gpa, sizeof(v));
	return v;
}

/* Decodes a GDT descriptor the way the CPU does when a selector is loaded. */
static struct kvm_segment decode_gdt(uint64_t e, uint16_t selector)
{
	uint32_t limit = (uint32_t)((e & 0xffff) | ((e >> 32) & 0xf0000));

	return (struct kvm_segment){
		.base = ((e >> 16) & 0xffffff) | ((e >> 32) & 0xff000000),
		.limit = (e >> 55) & 1 ? (limit << 12) | 0xfff : limit,
		.selector = selector,
		.type = (e >> 40) & 0xf,
		.s = (e >> 44) & 1,
		.dpl = (e >> 45) & 3,
		.present = (e >> 47) & 1,
		.avl = (e >> 52) & 1,
		.l = (e >> 53) & 1,
		.db = (e >> 54) & 1,
		.g = (e >> 55) & 1,
	};
}

static void assert_same_segment(struct kvm_segment a, struct kvm_segment b)
{
	a.padding = b.padding = 0;
	assert_memory_equal(&a, &b, sizeof(a));
}

static void boot_setup_memory_64m_writes_cmdline_zero_page_gdt(void **state)
{
	struct guest_memory *gm = *state;
	struct kernel_image k = { .entry = 0x1000000, .end = 0x3000000, .cmdline_max = 2047,
				  .initrd_max = UINT32_MAX };
	static const char cmdline[] = "console=ttyS0 reboot=k panic=1 pci=off";
	static struct boot_params want;
	struct kvm_sregs s = { 0 };

	memset(gm->host + LAYOUT_CMDLINE, 0xee, 0x100);
	assert_int_equal(boot_setup_memory(gm, &k, cmdline, 0x3f00000, 0x1234), 0);
	assert_memory_equal(gm->host + LAYOUT_CMDLINE, cmdline, sizeof(cmdline)); /* with NUL */
	assert_int_equal(gm->host[LAYOUT_CMDLINE + sizeof(cmdline)], 0xee);

	boot_params_build(&want, &k, gm, sizeof(cmdline) - 1, 0x3f00000, 0x1234);
	assert_memory_equal(gm->host + LAYOUT_ZERO_PAGE, &want, sizeof(want));
	assert_int_equal(((struct boot_params *)(gm->host + LAYOUT_ZERO_PAGE))->hdr.cmd_line_ptr,
			 0x20000);

	/* GDT: null, code, data, TSS; IDT empty. */
	assert_int_equal(get64(gm, 0x500), 0);
	assert_int_equal(get64(gm, 0x508), 0x00af9b000000ffffull);
	assert_int_equal(get64(gm, 0x510), 0x00cf93000000ffffull);
	assert_int_equal(get64(gm, 0x518), 0x008f8b000000ffffull);
	assert_int_equal(get64(gm, 0x520), 0);
	boot_sregs(&s);
	assert_same_segment(decode_gdt(get64(gm, 0x508), 0x08), s.cs);
	assert_same_segment(decode_gdt(get64(gm, 0x510), 0x10), s.ds);
	assert_same_segment(decode_gdt(get64(gm, 0x510), 0x10), s.ss);
	assert_same_segment(decode_gdt(get64(gm, 0x518), 0x18), s.tr);
}

static void boot_setup_memory_64m_identity_maps_4g(void **state)
{
	struct guest_memory *gm = *state;
	struct kernel_image k = { .cmdline_max = 2047, .initrd_max = UINT32_MAX };

	memset(gm->host + LAYOUT_PML4, 0xee, 0x7000);
	assert_int_equal(boot_setup_memory(gm, &k, "", 0, 0), 0);
	assert_int_equal(gm->host[LAYOUT_CMDLINE], 0);
	assert_int_equal(get64(gm, LAYOUT_PML4), 0xa003);
	for (unsigned i = 1; i < 512; i++)
		assert_int_equal(get64(gm, LAYOUT_PML4 + 8 * i), 0);
	for (unsigned i = 0; i < 4; i++)
		assert_int_equal(get64(gm, LAYOUT_PDPT + 8 * i), 0xb003 + 0x1000 * i);
	for (unsigned i = 4; i < 512; i++)
		assert_int_equal(get64(gm, LAYOUT_PDPT + 8 * i), 0);
	/* Every PDE maps its own 2 MiB: present, writable, huge. */
	for (uint64_t n = 0; n < 2048; n++)
		assert_int_equal(get64(gm, LAYOUT_PD + 8 * n), (n << 21) | 0x83);
	assert_int_equal(get64(gm, LAYOUT_PD), 0x83);
	assert_int_equal(get64(gm, LAYOUT_PD + 8), 0x200083);
	assert_int_equal(get64(gm, LAYOUT_PD + 0x1000), 0x40000083);
	assert_int_equal(get64(gm, LAYOUT_PD + 0x3ff8), 0xffe00083ull);
	assert_int_equal(gm->host[LAYOUT_PD + 0x4000], 0xee); /* four directories only */
}

static void boot_setup_memory_overlong_cmdline_fails_einval(void **state)
{
	struct guest_memory *gm = *state;
	struct kernel_image k = { .cmdline_max = 10, .initrd_max = UINT32_MAX };
	static char big[LAYOUT_CMDLINE_MAX + 1];

	assert_int_equal(boot_setup_memory(gm, &k, "0123456789a", 0, 0), -EINVAL);
	assert_int_equal(gm->host[LAYOUT_CMDLINE], 0); /* nothing written */
	assert_int_equal(get64(gm, LAYOUT_PML4), 0);
	assert_int_equal(boot_setup_memory(gm, &k, "0123456789", 0, 0), 0);
	assert_memory_equal(gm->host + LAYOUT_CMDLINE, "0123456789", 11);

	/* A kernel allowing more than kiln's 4 KiB area is still held to the area. */
	k.cmdline_max = 8192;
	memset(big, 'x', LAYOUT_CMDLINE_MAX);
	assert_int_equal(boot_setup_memory(gm, &k, big, 0, 0), -EINVAL);
	big[LAYOUT_CMDLINE_MAX - 1] = '\0';
	assert_int_equal(boot_setup_memory(gm, &k, big, 0, 0), 0);
	assert_int_equal(gm->host[LAYOUT_CMDLINE + LAYOUT_CMDLINE_MAX - 2], 'x');
	assert_int_equal(gm->host[LAYOUT_CMDLINE + LAYOUT_CMDLINE_MAX - 1], 0);
}

static void boot_setup_memory_tiny_ram_fails_efault(void **state)
{
	struct guest_memory gm;
	struct kernel_image k = { .cmdline_max = 2047 };

	assert_int_equal(guest_memory_create(&gm, 64 * 1024, false), 0);
	assert_int_equal(boot_setup_memory(&gm, &k, "quiet", 0, 0), -EFAULT);
	guest_memory_destroy(&gm);
}

static int group_setup(void **state)
{
	return log_setup(NULL, LOG_OFF, false, false);
}

int main(void)
{
#define T(f) cmocka_unit_test(f)
#define TM(f) cmocka_unit_test_setup_teardown(f, mem64_setup, mem_teardown)
	const struct CMUnitTest tests[] = {
		T(boot_e820_build_128m_low_and_high_ram),
		T(boot_e820_build_3_25g_ends_at_gap),
		T(boot_e820_build_5g_resumes_at_4g),
		T(boot_e820_build_small_table_stops_at_max),
		T(boot_params_build_elf_fills_protocol_fields),
		T(boot_params_build_no_initrd_zero_ramdisk),
		T(boot_params_build_initrd_above_4g_sets_ext_fields),
		T(boot_params_build_bzimage_copies_header),
		T(boot_params_build_bzimage_short_header_copies_only_its_bytes),
		T(boot_params_build_loaded_bzimage_keeps_loader_header),
		T(boot_sregs_reset_state_long_mode_flat_segments),
		T(boot_regs_entry_sets_rip_rsi_stack),
		TM(boot_setup_memory_64m_writes_cmdline_zero_page_gdt),
		TM(boot_setup_memory_64m_identity_maps_4g),
		TM(boot_setup_memory_overlong_cmdline_fails_einval),
		T(boot_setup_memory_tiny_ram_fails_efault),
	};
#undef T
#undef TM

	return cmocka_run_group_tests_name("boot_x86_64.c", tests, group_setup, NULL);
}
