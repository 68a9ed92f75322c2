/* Kernel and initrd loading for x86_64: ELF vmlinux, bzImage (64-bit boot protocol), initrd. */
#include "loader_x86_64.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "layout_x86_64.h"
#include "log.h"

#define PAGE_4K 4096ull
#define SETUP_HDR_OFFSET 0x1f1u
#define BZ_MIN_VERSION 0x020c /* 2.12: xloadflags and the 64-bit entry */
#define BZ_ENTRY64_OFFSET 0x200u
#define ELF_CMDLINE_MAX 2047u /* COMMAND_LINE_SIZE - 1 on x86 */

/* A kernel or initrd: an open file read with large preads, or a buffer (for tests). */
struct image {
	int fd;
	const uint8_t *buf;
	uint64_t len;
};

/* Copies [off, off+n) of the image to dst; -EINVAL if that lies outside it. */
static int image_read(const struct image *img, uint64_t off, void *dst, uint64_t n)
{
	uint8_t *p = dst;

	if (off > img->len || n > img->len - off)
		return -EINVAL;
	if (img->buf) {
		memcpy(dst, img->buf + off, n);
		return 0;
	}
	while (n) {
		ssize_t got = pread(img->fd, p, n > (1u << 30) ? (1u << 30) : n, (off_t)off);

		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0)
			return got < 0 ? -errno : -EIO;
		p += got;
		off += (uint64_t)got;
		n -= (uint64_t)got;
	}
	return 0;
}

static int image_open(const char *path, const char *what, struct image *img)
{
	struct stat st;
	int err;

	img->buf = NULL;
	img->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (img->fd < 0) {
		err = -errno;
		log_error("%s %s: %s", what, path, strerror(errno));
		return err;
	}
	if (fstat(img->fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size == 0) {
		log_error("%s %s: not a non-empty regular file", what, path);
		close(img->fd);
		return -EINVAL;
	}
	img->len = (uint64_t)st.st_size;
	return 0;
}

static uint64_t low_ram_end(const struct guest_memory *gm)
{
	return gm->regions[0].gpa + gm->regions[0].size;
}

/*
 * Reads filesz image bytes from off to gpa and zeroes up to memsz. -EFAULT if the range is not
 * all RAM, -EINVAL or -errno if the image cannot supply the bytes.
 */
static int place(struct guest_memory *gm, uint64_t gpa, const struct image *img, uint64_t off,
		 uint64_t filesz, uint64_t memsz)
{
	uint8_t *dst;
	int ret;

	if (memsz < filesz)
		return -EINVAL;
	if (!(dst = guest_memory_ptr_mut(gm, gpa, memsz ? memsz : 1)))
		return -EFAULT;
	ret = image_read(img, off, dst, filesz);
	if (ret < 0)
		return ret;
	memset(dst + filesz, 0, memsz - filesz);
	return 0;
}

static int load_elf(struct guest_memory *gm, const struct image *img, struct kernel_image *out,
		    char *err, size_t errlen)
{
	uint64_t len = img->len;
	Elf64_Ehdr eh;
	int ret;

	if (image_read(img, 0, &eh, sizeof(eh)) < 0) {
		snprintf(err, errlen, "truncated ELF header");
		return -EINVAL;
	}
	if (eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_ident[EI_DATA] != ELFDATA2LSB ||
	    eh.e_machine != EM_X86_64) {
		snprintf(err, errlen, "not a little-endian x86_64 ELF64 kernel");
		return -EINVAL;
	}
	if (eh.e_phentsize != sizeof(Elf64_Phdr) || eh.e_phnum == 0 || eh.e_phoff > len ||
	    (uint64_t)eh.e_phnum * sizeof(Elf64_Phdr) > len - eh.e_phoff) {
		snprintf(err, errlen, "bad ELF program header table");
		return -EINVAL;
	}
	out->end = 0;
	for (unsigned i = 0; i < eh.e_phnum; i++) {
		Elf64_Phdr ph;

		if (image_read(img, eh.e_phoff + i * sizeof(ph), &ph, sizeof(ph)) < 0) {
			snprintf(err, errlen, "cannot read ELF program header %u", i);
			return -EIO;
		}
		if (ph.p_type != PT_LOAD)
			continue;
		if (ph.p_offset > len || ph.p_filesz > len - ph.p_offset) {
			snprintf(err, errlen, "ELF segment %u lies outside the file", i);
			return -EINVAL;
		}
		ret = place(gm, ph.p_paddr, img, ph.p_offset, ph.p_filesz, ph.p_memsz);
		if (ret == -EFAULT) {
			snprintf(err, errlen,
				 "ELF segment %u [0x%llx, +0x%llx) does not fit in guest RAM", i,
				 (unsigned long long)ph.p_paddr, (unsigned long long)ph.p_memsz);
			return -EFAULT;
		}
		if (ret < 0) {
			snprintf(err, errlen, "ELF segment %u: %s", i,
				 ret == -EINVAL ? "file size larger than memory size"
						: strerror(-ret));
			return ret;
		}
		if (ph.p_paddr + ph.p_memsz > out->end)
			out->end = ph.p_paddr + ph.p_memsz;
	}
	if (out->end == 0) {
		snprintf(err, errlen, "ELF kernel has no loadable segment");
		return -EINVAL;
	}
	out->is_bzimage = false;
	out->entry = eh.e_entry;
	out->initrd_max = UINT32_MAX;
	out->cmdline_max = ELF_CMDLINE_MAX;
	return 0;
}

static int load_bzimage(struct guest_memory *gm, const struct image *img, const uint8_t *head,
			struct kernel_image *out, char *err, size_t errlen)
{
	struct setup_header *h = &out->hdr;
	uint64_t hdr_end, payload_off, need, len = img->len;
	unsigned setup_sects;
	int ret;

	hdr_end = 0x202u + head[0x201];
	if (hdr_end > len || hdr_end - SETUP_HDR_OFFSET > sizeof(*h)) {
		hdr_end = SETUP_HDR_OFFSET + sizeof(*h);
		if (hdr_end > len) {
			snprintf(err, errlen, "truncated bzImage setup header");
			return -EINVAL;
		}
	}
	memset(h, 0, sizeof(*h));
	memcpy(h, head + SETUP_HDR_OFFSET, hdr_end - SETUP_HDR_OFFSET);
	out->hdr_len = (uint32_t)(hdr_end - SETUP_HDR_OFFSET);
	if (h->boot_flag != 0xaa55) {
		snprintf(err, errlen, "bzImage boot flag missing");
		return -EINVAL;
	}
	if (h->version < BZ_MIN_VERSION || !(h->xloadflags & XLF_KERNEL_64)) {
		snprintf(err, errlen,
			 "bzImage boot protocol %u.%02u has no 64-bit entry (need 2.12 and "
			 "XLF_KERNEL_64)",
			 h->version >> 8, h->version & 0xff);
		return -EINVAL;
	}
	setup_sects = h->setup_sects ? h->setup_sects : 4;
	payload_off = (uint64_t)(setup_sects + 1) * 512;
	if (payload_off >= len) {
		snprintf(err, errlen, "bzImage has no protected-mode payload");
		return -EINVAL;
	}
	/* The decompressor needs init_size bytes at the aligned load address. */
	if (h->pref_address > UINT64_MAX - h->init_size) {
		snprintf(err, errlen, "bzImage pref_address and init_size overflow");
		return -EINVAL;
	}
	need = h->pref_address + h->init_size;
	if (need < LAYOUT_HIMEM + (len - payload_off))
		need = LAYOUT_HIMEM + (len - payload_off);
	if (!guest_memory_ptr(gm, 0, need)) {
		snprintf(err, errlen, "bzImage needs %llu MiB of low RAM to decompress",
			 (unsigned long long)((need + (1 << 20) - 1) >> 20));
		return -EFAULT;
	}
	ret = place(gm, LAYOUT_HIMEM, img, payload_off, len - payload_off, len - payload_off);
	if (ret < 0) {
		snprintf(err, errlen, "bzImage payload: %s",
			 ret == -EFAULT ? "does not fit in guest RAM" : strerror(-ret));
		return ret;
	}
	out->is_bzimage = true;
	out->entry = LAYOUT_HIMEM + BZ_ENTRY64_OFFSET;
	out->end = need;
	out->initrd_max = h->initrd_addr_max ? h->initrd_addr_max : 0x37ffffff;
	out->cmdline_max = h->cmdline_size ? h->cmdline_size : 255;
	return 0;
}

/* Recognises the image's format from its first bytes and loads it. */
static int load_kernel(struct guest_memory *gm, const struct image *img,
		       struct kernel_image *out, char *err, size_t errlen)
{
	uint8_t head[SETUP_HDR_OFFSET + sizeof(struct setup_header)] = { 0 };
	uint64_t n = img->len < sizeof(head) ? img->len : sizeof(head);

	memset(out, 0, sizeof(*out));
	if (image_read(img, 0, head, n) < 0) {
		snprintf(err, errlen, "cannot read the image");
		return -EIO;
	}
	if (n >= SELFMAG && memcmp(head, ELFMAG, SELFMAG) == 0)
		return load_elf(gm, img, out, err, errlen);
	if (n >= 0x206 && memcmp(head + 0x202, "HdrS", 4) == 0)
		return load_bzimage(gm, img, head, out, err, errlen);
	snprintf(err, errlen, "neither an ELF vmlinux nor a bzImage");
	return -EINVAL;
}

int loader_load_kernel_buf(struct guest_memory *gm, const uint8_t *buf, uint64_t len,
			   struct kernel_image *out, char *err, size_t errlen)
{
	struct image img = { .fd = -1, .buf = buf, .len = len };

	return load_kernel(gm, &img, out, err, errlen);
}

int loader_load_kernel(struct guest_memory *gm, const char *path, struct kernel_image *out)
{
	struct image img;
	char err[256];
	int ret;

	ret = image_open(path, "kernel image", &img);
	if (ret < 0)
		return ret;
	ret = load_kernel(gm, &img, out, err, sizeof(err));
	if (ret < 0)
		log_error("kernel image %s: %s", path, err);
	close(img.fd);
	return ret;
}

int loader_load_initrd(struct guest_memory *gm, const char *path,
		       const struct kernel_image *kernel, uint64_t *addr, uint64_t *size)
{
	struct image img;
	uint64_t top, at;
	int ret;

	ret = image_open(path, "initrd", &img);
	if (ret < 0)
		return ret;
	top = low_ram_end(gm);
	if (top > kernel->initrd_max + 1)
		top = kernel->initrd_max + 1;
	ret = -ENOMEM;
	if (img.len > top) {
		log_error("initrd %s (%llu KiB) does not fit below 0x%llx", path,
			  (unsigned long long)(img.len >> 10), (unsigned long long)top);
		goto out;
	}
	at = (top - img.len) & ~(PAGE_4K - 1);
	if (at < kernel->end) {
		log_error("initrd %s (%llu KiB) does not fit in guest RAM beside the kernel", path,
			  (unsigned long long)(img.len >> 10));
		goto out;
	}
	ret = place(gm, at, &img, 0, img.len, img.len);
	if (ret < 0) {
		log_error("initrd %s: %s", path, strerror(-ret));
		goto out;
	}
	*addr = at;
	*size = img.len;
out:
	close(img.fd);
	return ret;
}
