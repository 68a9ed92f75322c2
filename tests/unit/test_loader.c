/* Unit tests for vmm/loader_x86_64.c: synthetic and real ELF and bzImage kernels, and initrds. */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "layout_x86_64.h"
#include "loader_x86_64.h"
#include "log.h"
#include "memory.h"

#define MIB (1ull << 20)
#define RAM (64 * MIB)
#define IMG_MAX (64 * 1024)
#define GUEST_VMLINUX "build/guest/vmlinux"
#define GUEST_BZIMAGE "build/guest/bzImage"

struct fixture {
	struct guest_memory gm;
	struct kernel_image k;
	char err[256];
	_Alignas(8) uint8_t img[IMG_MAX];
};

static int fixture_setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (!f || guest_memory_create(&f->gm, RAM, false) < 0)
		return -1;
	*state = f;
	return 0;
}

static int fixture_teardown(void **state)
{
	struct fixture *f = *state;

	guest_memory_destroy(&f->gm);
	free(f);
	return 0;
}

static int load(struct fixture *f, size_t len)
{
	f->err[0] = '\0';
	return loader_load_kernel_buf(&f->gm, f->img, len, &f->k, f->err, sizeof(f->err));
}

struct seg {
	uint32_t type;
	uint64_t paddr, filesz, memsz;
};

/* Lays out an ELF64 x86_64 image in f->img: header, program headers, then each segment's bytes
 * (byte j of segment i is i * 16 + j). Returns the image length. */
static size_t make_elf(struct fixture *f, const struct seg *segs, unsigned n, uint64_t entry)
{
	Elf64_Ehdr eh = {
		.e_ident = { ELFMAG0, ELFMAG1, ELFMAG2, ELFMAG3, ELFCLASS64, ELFDATA2LSB,
			     EV_CURRENT },
		.e_type = ET_EXEC,
		.e_machine = EM_X86_64,
		.e_version = EV_CURRENT,
		.e_entry = entry,
		.e_phoff = sizeof(Elf64_Ehdr),
		.e_ehsize = sizeof(Elf64_Ehdr),
		.e_phentsize = sizeof(Elf64_Phdr),
		.e_phnum = (uint16_t)n,
	};
	size_t off = sizeof(eh) + n * sizeof(Elf64_Phdr);

	memset(f->img, 0, sizeof(f->img));
	memcpy(f->img, &eh, sizeof(eh));
	for (unsigned i = 0; i < n; i++) {
		Elf64_Phdr ph = {
			.p_type = segs[i].type,
			.p_offset = off,
			.p_vaddr = 0xffffffff80000000ull + segs[i].paddr,
			.p_paddr = segs[i].paddr,
			.p_filesz = segs[i].filesz,
			.p_memsz = segs[i].memsz,
		};

		assert_true(off + segs[i].filesz <= sizeof(f->img));
		memcpy(f->img + sizeof(eh) + i * sizeof(ph), &ph, sizeof(ph));
		for (uint64_t j = 0; j < segs[i].filesz; j++)
			f->img[off + j] = (uint8_t)(i * 16 + j);
		off += segs[i].filesz;
	}
	return off;
}

#define ehdr(f) ((Elf64_Ehdr *)(f)->img)
#define phdr(f, i) ((Elf64_Phdr *)((f)->img + sizeof(Elf64_Ehdr)) + (i))

static void loader_load_kernel_buf_elf_segments_placed_and_zero_filled(void **state)
{
	struct fixture *f = *state;
	static const struct seg segs[] = {
		{ PT_LOAD, 0x100000, 0x100, 0x3000 },
		{ PT_NOTE, 0xf0000000, 0x10, 0x10 }, /* not loaded, so not checked against RAM */
		{ PT_LOAD, 0x400000, 0x20, 0x20 },
	};
	size_t len = make_elf(f, segs, 3, 0x100080);
	const uint8_t *ram = f->gm.host;

	memset(f->gm.host + 0x100000, 0xcc, 0x4000);
	memset(f->gm.host + 0x400000, 0xcc, 0x1000);
	assert_int_equal(load(f, len), 0);
	assert_string_equal(f->err, "");
	assert_false(f->k.is_bzimage);
	assert_int_equal(f->k.entry, 0x100080);
	assert_int_equal(f->k.end, 0x400020);
	assert_int_equal(f->k.initrd_max, 0xffffffffull);
	assert_int_equal(f->k.cmdline_max, 2047);
	assert_int_equal(f->k.hdr_len, 0);
	assert_int_equal(f->k.hdr.header, 0);

	for (unsigned j = 0; j < 0x100; j++)
		assert_int_equal(ram[0x100000 + j], j & 0xff);
	for (unsigned j = 0x100; j < 0x3000; j++)
		assert_int_equal(ram[0x100000 + j], 0); /* bss */
	assert_int_equal(ram[0x103000], 0xcc);    /* nothing past memsz */
	for (unsigned j = 0; j < 0x20; j++)
		assert_int_equal(ram[0x400000 + j], 32 + j);
	assert_int_equal(ram[0x400020], 0xcc);
}

static void loader_load_kernel_buf_elf_segment_outside_ram_fails_efault(void **state)
{
	struct fixture *f = *state;
	struct seg segs[] = { { PT_LOAD, RAM - 0x800, 0x10, 0x1000 } };
	size_t len = make_elf(f, segs, 1, RAM - 0x800);

	assert_int_equal(load(f, len), -EFAULT);
	assert_string_equal(f->err, "ELF segment 0 [0x3fff800, +0x1000) does not fit in guest RAM");
	segs[0].paddr = UINT64_MAX - 0xff; /* wraps */
	len = make_elf(f, segs, 1, 0);
	assert_int_equal(load(f, len), -EFAULT);
	segs[0] = (struct seg){ PT_LOAD, RAM - 0x1000, 0x10, 0x1000 }; /* ends on the last byte */
	len = make_elf(f, segs, 1, RAM - 0x1000);
	assert_int_equal(load(f, len), 0);
	assert_int_equal(f->k.end, RAM);
}

static void loader_load_kernel_buf_elf_filesz_over_memsz_fails(void **state)
{
	struct fixture *f = *state;
	static const struct seg segs[] = { { PT_LOAD, 0x100000, 0x40, 0x20 } };
	size_t len = make_elf(f, segs, 1, 0x100000);

	assert_true(load(f, len) < 0);
	assert_int_equal(f->gm.host[0x100000], 0); /* nothing copied */
}

static void loader_load_kernel_buf_elf_truncated_header_fails_einval(void **state)
{
	struct fixture *f = *state;
	static const struct seg segs[] = { { PT_LOAD, 0x100000, 0x10, 0x10 } };

	make_elf(f, segs, 1, 0x100000);
	assert_int_equal(load(f, sizeof(Elf64_Ehdr) - 1), -EINVAL);
	assert_string_equal(f->err, "truncated ELF header");
	assert_int_equal(load(f, 4), -EINVAL);
	/* A header whose program headers are cut off. */
	assert_int_equal(load(f, sizeof(Elf64_Ehdr) + sizeof(Elf64_Phdr) - 1), -EINVAL);
	assert_string_equal(f->err, "bad ELF program header table");
}

static void loader_load_kernel_buf_elf_wrong_machine_fails_einval(void **state)
{
	struct fixture *f = *state;
	static const struct seg segs[] = { { PT_LOAD, 0x100000, 0x10, 0x10 } };
	size_t len = make_elf(f, segs, 1, 0x100000);

	ehdr(f)->e_machine = EM_386;
	assert_int_equal(load(f, len), -EINVAL);
	assert_string_equal(f->err, "not a little-endian x86_64 ELF64 kernel");
	ehdr(f)->e_machine = EM_AARCH64;
	assert_int_equal(load(f, len), -EINVAL);
	ehdr(f)->e_machine = EM_X86_64;
	ehdr(f)->e_ident[EI_CLASS] = ELFCLASS32;
	assert_int_equal(load(f, len), -EINVAL);
	ehdr(f)->e_ident[EI_CLASS] = ELFCLASS64;
	ehdr(f)->e_ident[EI_DATA] = ELFDATA2MSB;
	assert_int_equal(load(f, len), -EINVAL);
	assert_int_equal(f->gm.host[0x100000], 0);
}

static void loader_load_kernel_buf_elf_bad_phdr_table_fails_einval(void **state)
{
	struct fixture *f = *state;
	static const struct seg segs[] = { { PT_LOAD, 0x100000, 0x10, 0x10 } };
	size_t len = make_elf(f, segs, 1, 0x100000);

	ehdr(f)->e_phoff = len - sizeof(Elf64_Phdr) + 1;
	assert_int_equal(load(f, len), -EINVAL);
	assert_string_equal(f->err, "bad ELF program header table");
	ehdr(f)->e_phoff = UINT64_MAX - 8;
	assert_int_equal(load(f, len), -EINVAL);
	ehdr(f)->e_phoff = sizeof(Elf64_Ehdr);
	ehdr(f)->e_phnum = 0xffff;
	assert_int_equal(load(f, len), -EINVAL);
	ehdr(f)->e_phnum = 0;
	assert_int_equal(load(f, len), -EINVAL);
	ehdr(f)->e_phnum = 1;
	ehdr(f)->e_phentsize = 32;
	assert_int_equal(load(f, len), -EINVAL);
	ehdr(f)->e_phentsize = sizeof(Elf64_Phdr);
	assert_int_equal(load(f, len), 0);
}

static void loader_load_kernel_buf_elf_segment_past_file_fails_einval(void **state)
{
	struct fixture *f = *state;
	static const struct seg segs[] = { { PT_LOAD, 0x100000, 0x10, 0x10 } };
	size_t len = make_elf(f, segs, 1, 0x100000);

	phdr(f, 0)->p_filesz = 0x11;
	assert_int_equal(load(f, len), -EINVAL);
	assert_string_equal(f->err, "ELF segment 0 lies outside the file");
	phdr(f, 0)->p_filesz = 0x10;
	phdr(f, 0)->p_offset = UINT64_MAX - 4;
	assert_int_equal(load(f, len), -EINVAL);
}

static void loader_load_kernel_buf_elf_no_load_segment_fails_einval(void **state)
{
	struct fixture *f = *state;
	static const struct seg segs[] = { { PT_NOTE, 0x100000, 0x10, 0x10 } };
	size_t len = make_elf(f, segs, 1, 0x100000);

	assert_int_equal(load(f, len), -EINVAL);
	assert_string_equal(f->err, "ELF kernel has no loadable segment");
}

#define PAYLOAD_LEN 0x3000u

/* A bzImage with a 2.15 header in f->img; payload byte j is (j * 7) & 0xff. Returns its length. */
static size_t make_bzimage(struct fixture *f, uint8_t setup_sects, uint16_t version,
			   uint16_t xloadflags)
{
	struct setup_header h = {
		.setup_sects = setup_sects,
		.boot_flag = 0xaa55,
		.jump = 0x6aeb, /* jmp to 0x26c, the end of a 2.15 header */
		.header = 0x53726448,
		.version = version,
		.loadflags = LOADED_HIGH,
		.initrd_addr_max = 0x7fffffff,
		.kernel_alignment = 0x200000,
		.relocatable_kernel = 1,
		.xloadflags = xloadflags,
		.cmdline_size = 2047,
		.pref_address = 0x1000000,
		.init_size = 0x800000,
		.kernel_info_offset = 0x12345,
	};
	size_t off = (size_t)((setup_sects ? setup_sects : 4) + 1) * 512;

	memset(f->img, 0, sizeof(f->img));
	memcpy(f->img + 0x1f1, &h, sizeof(h));
	for (unsigned j = 0; j < PAYLOAD_LEN; j++)
		f->img[off + j] = (uint8_t)(j * 7);
	return off + PAYLOAD_LEN;
}

static struct setup_header *bzhdr(struct fixture *f)
{
	return (struct setup_header *)(f->img + 0x1f1);
}

static void check_payload_at_1m(struct fixture *f)
{
	for (unsigned j = 0; j < PAYLOAD_LEN; j++)
		assert_int_equal(f->gm.host[LAYOUT_HIMEM + j], (uint8_t)(j * 7));
}

static void loader_load_kernel_buf_bzimage_payload_at_1m(void **state)
{
	struct fixture *f = *state;
	size_t len = make_bzimage(f, 4, 0x020f, XLF_KERNEL_64 | XLF_CAN_BE_LOADED_ABOVE_4G);

	assert_int_equal(load(f, len), 0);
	assert_string_equal(f->err, "");
	assert_true(f->k.is_bzimage);
	assert_int_equal(f->k.entry, 0x100200);
	assert_int_equal(f->k.end, 0x1800000); /* pref_address + init_size */
	assert_int_equal(f->k.initrd_max, 0x7fffffff);
	assert_int_equal(f->k.cmdline_max, 2047);
	assert_int_equal(f->k.hdr_len, 0x26c - 0x1f1);
	assert_memory_equal(&f->k.hdr, bzhdr(f), sizeof(f->k.hdr));
	check_payload_at_1m(f);
	assert_int_equal(f->gm.host[LAYOUT_HIMEM + PAYLOAD_LEN], 0);
}

static void loader_load_kernel_buf_bzimage_setup_sects_0_means_4(void **state)
{
	struct fixture *f = *state;
	size_t len = make_bzimage(f, 0, 0x020c, XLF_KERNEL_64);

	assert_int_equal(len, 5 * 512 + PAYLOAD_LEN);
	assert_int_equal(load(f, len), 0);
	check_payload_at_1m(f);
	len = make_bzimage(f, 31, 0x020c, XLF_KERNEL_64);
	assert_int_equal(load(f, len), 0);
	check_payload_at_1m(f);
}

static void loader_load_kernel_buf_bzimage_header_limits_taken(void **state)
{
	struct fixture *f = *state;
	size_t len = make_bzimage(f, 4, 0x020f, XLF_KERNEL_64);

	bzhdr(f)->initrd_addr_max = 0x1ffffff;
	bzhdr(f)->cmdline_size = 511;
	assert_int_equal(load(f, len), 0);
	assert_int_equal(f->k.initrd_max, 0x1ffffff);
	assert_int_equal(f->k.cmdline_max, 511);
	/* Zeros fall back to the protocol's old defaults. */
	bzhdr(f)->initrd_addr_max = 0;
	bzhdr(f)->cmdline_size = 0;
	assert_int_equal(load(f, len), 0);
	assert_int_equal(f->k.initrd_max, 0x37ffffff);
	assert_int_equal(f->k.cmdline_max, 255);
	/* A payload bigger than init_size sets the end. */
	bzhdr(f)->pref_address = 0;
	bzhdr(f)->init_size = 0x1000;
	assert_int_equal(load(f, len), 0);
	assert_int_equal(f->k.end, LAYOUT_HIMEM + PAYLOAD_LEN);
}

static void loader_load_kernel_buf_bzimage_short_header_copied_to_its_end(void **state)
{
	struct fixture *f = *state;
	size_t len = make_bzimage(f, 4, 0x020c, XLF_KERNEL_64);

	f->img[0x201] = 0x66; /* a 2.12 header ends at 0x268, before kernel_info_offset */
	assert_int_equal(load(f, len), 0);
	assert_int_equal(f->k.hdr_len, 0x268 - 0x1f1);
	assert_int_equal(f->k.hdr.kernel_info_offset, 0);
	assert_int_equal(f->k.hdr.init_size, 0x800000);
	assert_int_equal(f->k.hdr.version, 0x020c);
}

static void loader_load_kernel_buf_bzimage_old_protocol_fails_einval(void **state)
{
	struct fixture *f = *state;
	size_t len = make_bzimage(f, 4, 0x020b, XLF_KERNEL_64);

	assert_int_equal(load(f, len), -EINVAL);
	assert_string_equal(f->err, "bzImage boot protocol 2.11 has no 64-bit entry "
				    "(need 2.12 and XLF_KERNEL_64)");
	assert_int_equal(f->gm.host[LAYOUT_HIMEM], 0);
}

static void loader_load_kernel_buf_bzimage_no_xlf_kernel_64_fails_einval(void **state)
{
	struct fixture *f = *state;
	size_t len = make_bzimage(f, 4, 0x020f, XLF_CAN_BE_LOADED_ABOVE_4G);

	assert_int_equal(load(f, len), -EINVAL);
	assert_string_equal(f->err, "bzImage boot protocol 2.15 has no 64-bit entry "
				    "(need 2.12 and XLF_KERNEL_64)");
}

static void loader_load_kernel_buf_bzimage_malformed_fails(void **state)
{
	struct fixture *f = *state;
	size_t len = make_bzimage(f, 4, 0x020f, XLF_KERNEL_64);

	bzhdr(f)->boot_flag = 0;
	assert_int_equal(load(f, len), -EINVAL);
	assert_string_equal(f->err, "bzImage boot flag missing");

	make_bzimage(f, 4, 0x020f, XLF_KERNEL_64);
	assert_int_equal(load(f, 5 * 512), -EINVAL); /* setup only */
	assert_string_equal(f->err, "bzImage has no protected-mode payload");
	assert_int_equal(load(f, 0x210), -EINVAL);
	assert_string_equal(f->err, "truncated bzImage setup header");

	bzhdr(f)->init_size = 0x4000000; /* 16 MiB + 64 MiB of low RAM needed */
	assert_int_equal(load(f, len), -EFAULT);
	assert_string_equal(f->err, "bzImage needs 80 MiB of low RAM to decompress");
}

static void loader_load_kernel_buf_garbage_fails_einval(void **state)
{
	struct fixture *f = *state;

	for (unsigned i = 0; i < 4096; i++)
		f->img[i] = (uint8_t)(i * 131 + 17);
	assert_int_equal(load(f, 4096), -EINVAL);
	assert_string_equal(f->err, "neither an ELF vmlinux nor a bzImage");
	assert_int_equal(load(f, 0), -EINVAL);
	memcpy(f->img, ELFMAG, 3);
	assert_int_equal(load(f, 3), -EINVAL);
	assert_string_equal(f->err, "neither an ELF vmlinux nor a bzImage");
}

/* A temporary file holding data, or (data NULL) len bytes where byte i is i * 13 + 5. */
static void write_file(char *path, size_t n, const uint8_t *data, size_t len)
{
	static uint8_t buf[16384];
	int fd;

	assert_true(len <= sizeof(buf));
	for (size_t i = 0; i < len; i++)
		buf[i] = data ? data[i] : (uint8_t)(i * 13 + 5);
	snprintf(path, n, "/tmp/kiln-test-loader-XXXXXX");
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, buf, len), (ssize_t)len);
	close(fd);
}

static void check_initrd(const struct guest_memory *gm, uint64_t addr, size_t len)
{
	for (size_t i = 0; i < len; i++)
		assert_int_equal(gm->host[addr + i], (uint8_t)(i * 13 + 5));
}

static void loader_load_initrd_top_of_low_ram_page_aligned(void **state)
{
	struct fixture *f = *state;
	struct kernel_image k = { .end = 0x2000000, .initrd_max = UINT32_MAX };
	uint64_t addr = 1, size = 1;
	char path[64];

	write_file(path, sizeof(path), NULL, 10000);
	assert_int_equal(loader_load_initrd(&f->gm, path, &k, &addr, &size), 0);
	assert_int_equal(size, 10000);
	assert_int_equal(addr, RAM - 0x3000); /* (RAM - 10000) rounded down to 4 KiB */
	assert_int_equal(addr % 4096, 0);
	check_initrd(&f->gm, addr, 10000);

	k.initrd_max = 0x1ffffff; /* below the end of RAM: the kernel's limit wins */
	assert_int_equal(loader_load_initrd(&f->gm, path, &k, &addr, &size), -ENOMEM);
	k.end = 0x1000000;
	assert_int_equal(loader_load_initrd(&f->gm, path, &k, &addr, &size), 0);
	assert_int_equal(addr, 0x2000000 - 0x3000);
	check_initrd(&f->gm, addr, 10000);
	unlink(path);
}

static void loader_load_initrd_too_large_fails_enomem(void **state)
{
	struct fixture *f = *state;
	struct kernel_image k = { .end = RAM - 0x2000, .initrd_max = UINT32_MAX };
	uint64_t addr = 1, size = 1;
	char path[64];

	write_file(path, sizeof(path), NULL, 0x2001); /* would start at RAM - 0x3000, below end */
	assert_int_equal(loader_load_initrd(&f->gm, path, &k, &addr, &size), -ENOMEM);
	assert_int_equal(addr, 1);
	assert_int_equal(size, 1);
	k.end = RAM - 0x3000; /* exactly fits */
	assert_int_equal(loader_load_initrd(&f->gm, path, &k, &addr, &size), 0);
	assert_int_equal(addr, RAM - 0x3000);
	k.end = 0;
	k.initrd_max = 0xfff; /* smaller than the initrd itself */
	assert_int_equal(loader_load_initrd(&f->gm, path, &k, &addr, &size), -ENOMEM);
	unlink(path);
}

static void loader_load_initrd_above_gap_stays_in_low_ram(void **state)
{
	struct guest_memory gm;
	struct kernel_image k = { .end = 0x2000000, .initrd_max = UINT32_MAX };
	uint64_t addr = 0, size = 0;
	char path[64];

	assert_int_equal(guest_memory_create(&gm, 5ull << 30, false), 0);
	write_file(path, sizeof(path), NULL, 5000);
	assert_int_equal(loader_load_initrd(&gm, path, &k, &addr, &size), 0);
	assert_int_equal(addr, 0xd0000000ull - 0x2000);
	assert_int_equal(size, 5000);
	check_initrd(&gm, addr, 5000);
	unlink(path);
	guest_memory_destroy(&gm);
}

static void loader_load_initrd_unreadable_fails(void **state)
{
	struct fixture *f = *state;
	struct kernel_image k = { .end = 0x2000000, .initrd_max = UINT32_MAX };
	uint64_t addr = 1, size = 1;
	char path[64];

	assert_int_equal(loader_load_initrd(&f->gm, "/nonexistent/initrd", &k, &addr, &size),
			 -ENOENT);
	assert_int_equal(loader_load_initrd(&f->gm, "/tmp", &k, &addr, &size), -EINVAL);
	write_file(path, sizeof(path), NULL, 0);
	assert_int_equal(loader_load_initrd(&f->gm, path, &k, &addr, &size), -EINVAL);
	unlink(path);
	assert_int_equal(addr, 1);
	assert_int_equal(size, 1);
}

static void loader_load_kernel_bad_file_fails(void **state)
{
	struct fixture *f = *state;
	char path[64];

	assert_int_equal(loader_load_kernel(&f->gm, "/nonexistent/vmlinux", &f->k), -ENOENT);
	assert_int_equal(loader_load_kernel(&f->gm, "/tmp", &f->k), -EINVAL);
	write_file(path, sizeof(path), NULL, 4096);
	assert_int_equal(loader_load_kernel(&f->gm, path, &f->k), -EINVAL);
	unlink(path);
}

static void loader_load_kernel_elf_file_read_through_fd(void **state)
{
	struct fixture *f = *state;
	static const struct seg segs[] = { { PT_LOAD, 0x200000, 0x1800, 0x2000 } };
	size_t len = make_elf(f, segs, 1, 0x200000);
	char path[64];

	write_file(path, sizeof(path), f->img, len);
	memset(f->gm.host + 0x200000, 0xcc, 0x3000);
	assert_int_equal(loader_load_kernel(&f->gm, path, &f->k), 0);
	unlink(path);
	assert_int_equal(f->k.entry, 0x200000);
	assert_int_equal(f->k.end, 0x202000);
	assert_memory_equal(f->gm.host + 0x200000, f->img + len - 0x1800, 0x1800);
	assert_int_equal(f->gm.host[0x201800], 0);
	assert_int_equal(f->gm.host[0x201fff], 0);
	assert_int_equal(f->gm.host[0x202000], 0xcc);
}

/* Reads n bytes at off of a real image into a fresh buffer. */
static uint8_t *read_at(const char *path, uint64_t off, size_t n)
{
	uint8_t *b = malloc(n);
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	assert_non_null(b);
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, b, n, (off_t)off), (ssize_t)n);
	close(fd);
	return b;
}

static void loader_load_kernel_real_vmlinux_segments_loaded(void **state)
{
	struct fixture *f = *state;
	Elf64_Ehdr *eh;
	Elf64_Phdr *ph;
	uint64_t end = 0;

	if (access(GUEST_VMLINUX, R_OK) != 0) {
		skip();
		return;
	}
	eh = (Elf64_Ehdr *)read_at(GUEST_VMLINUX, 0, sizeof(*eh));
	ph = (Elf64_Phdr *)read_at(GUEST_VMLINUX, eh->e_phoff, eh->e_phnum * sizeof(*ph));
	assert_int_equal(loader_load_kernel(&f->gm, GUEST_VMLINUX, &f->k), 0);
	assert_false(f->k.is_bzimage);
	assert_int_equal(f->k.entry, eh->e_entry);
	for (unsigned i = 0; i < eh->e_phnum; i++) {
		uint8_t *want;
		size_t n;

		if (ph[i].p_type != PT_LOAD)
			continue;
		if (ph[i].p_paddr + ph[i].p_memsz > end)
			end = ph[i].p_paddr + ph[i].p_memsz;
		n = ph[i].p_filesz < 4096 ? ph[i].p_filesz : 4096;
		want = read_at(GUEST_VMLINUX, ph[i].p_offset + ph[i].p_filesz - n, n);
		assert_memory_equal(f->gm.host + ph[i].p_paddr + ph[i].p_filesz - n, want, n);
		free(want);
	}
	assert_int_equal(f->k.end, end);
	assert_int_equal(f->k.cmdline_max, 2047);
	free(eh);
	free(ph);
}

static void loader_load_kernel_real_bzimage_payload_loaded(void **state)
{
	struct fixture *f = *state;
	struct setup_header *h;
	struct stat st;
	uint64_t off, payload;
	uint8_t *want;

	if (stat(GUEST_BZIMAGE, &st) != 0) {
		skip();
		return;
	}
	h = (struct setup_header *)read_at(GUEST_BZIMAGE, 0x1f1, sizeof(*h));
	off = (uint64_t)((h->setup_sects ? h->setup_sects : 4) + 1) * 512;
	payload = (uint64_t)st.st_size - off;
	assert_int_equal(loader_load_kernel(&f->gm, GUEST_BZIMAGE, &f->k), 0);
	assert_true(f->k.is_bzimage);
	assert_int_equal(f->k.entry, 0x100200);
	assert_int_equal(f->k.end, h->pref_address + h->init_size);
	assert_int_equal(f->k.initrd_max, h->initrd_addr_max);
	assert_int_equal(f->k.cmdline_max, h->cmdline_size);
	assert_int_equal(f->k.hdr.version, h->version);
	want = read_at(GUEST_BZIMAGE, off, 4096);
	assert_memory_equal(f->gm.host + LAYOUT_HIMEM, want, 4096);
	free(want);
	want = read_at(GUEST_BZIMAGE, off + payload - 4096, 4096);
	assert_memory_equal(f->gm.host + LAYOUT_HIMEM + payload - 4096, want, 4096);
	free(want);
	free(h);
}

static int group_setup(void **state)
{
	return log_setup(NULL, LOG_OFF, false, false);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, fixture_setup, fixture_teardown)
	const struct CMUnitTest tests[] = {
		T(loader_load_kernel_buf_elf_segments_placed_and_zero_filled),
		T(loader_load_kernel_buf_elf_segment_outside_ram_fails_efault),
		T(loader_load_kernel_buf_elf_filesz_over_memsz_fails),
		T(loader_load_kernel_buf_elf_truncated_header_fails_einval),
		T(loader_load_kernel_buf_elf_wrong_machine_fails_einval),
		T(loader_load_kernel_buf_elf_bad_phdr_table_fails_einval),
		T(loader_load_kernel_buf_elf_segment_past_file_fails_einval),
		T(loader_load_kernel_buf_elf_no_load_segment_fails_einval),
		T(loader_load_kernel_buf_bzimage_payload_at_1m),
		T(loader_load_kernel_buf_bzimage_setup_sects_0_means_4),
		T(loader_load_kernel_buf_bzimage_header_limits_taken),
		T(loader_load_kernel_buf_bzimage_short_header_copied_to_its_end),
		T(loader_load_kernel_buf_bzimage_old_protocol_fails_einval),
		T(loader_load_kernel_buf_bzimage_no_xlf_kernel_64_fails_einval),
		T(loader_load_kernel_buf_bzimage_malformed_fails),
		T(loader_load_kernel_buf_garbage_fails_einval),
		T(loader_load_initrd_top_of_low_ram_page_aligned),
		T(loader_load_initrd_too_large_fails_enomem),
		T(loader_load_initrd_above_gap_stays_in_low_ram),
		T(loader_load_initrd_unreadable_fails),
		T(loader_load_kernel_bad_file_fails),
		T(loader_load_kernel_elf_file_read_through_fd),
		T(loader_load_kernel_real_vmlinux_segments_loaded),
		T(loader_load_kernel_real_bzimage_payload_loaded),
	};
#undef T

	return cmocka_run_group_tests_name("loader_x86_64.c", tests, group_setup, NULL);
}
