/* Snapshot memory files: Full and Diff writing, chunk hashes, and Diff rebasing. */
#include "snapshot_memory.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/kvm.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>
#define XXH_STATIC_LINKING_ONLY /* XXH3_state_t on the stack */
#include <xxhash.h>

#include "memory.h"
#include "poison_log.h"
#include "vm.h"

#define PAGE 4096ull
#define COPY_BUF (1u << 20)

uint64_t snapshot_chunk_len(uint64_t size, uint32_t k)
{
	uint64_t start = (uint64_t)k * SNAPSHOT_CHUNK;

	return size - start < SNAPSHOT_CHUNK ? size - start : SNAPSHOT_CHUNK;
}

static bool page_poisoned(const struct guest_memory *gm, uint64_t off, uint64_t len)
{
	uint64_t gpa;

	return gm->poison && guest_memory_gpa_of_offset(gm, off, &gpa) &&
	       poison_log_contains(gm->poison, gpa, len);
}

uint64_t snapshot_chunk_hash(const struct guest_memory *gm, uint64_t off, const uint8_t *data,
			     uint64_t len)
{
	XXH3_state_t st;

	if (!page_poisoned(gm, off, len))
		return XXH3_64bits(data, len);
	XXH3_64bits_reset(&st);
	for (uint64_t p = 0; p < len; p += PAGE)
		if (!page_poisoned(gm, off + p, PAGE))
			XXH3_64bits_update(&st, data + p, PAGE);
	return XXH3_64bits_digest(&st);
}

/* Reads [off, off+len) of the memfd through the checked accessor; -EHWPOISON or -EFAULT. */
static int read_range(struct guest_memory *gm, uint64_t off, uint8_t *buf, uint64_t len)
{
	uint64_t gpa;

	if (!guest_memory_gpa_of_offset(gm, off, &gpa))
		return -EFAULT;
	return guest_memory_read(gm, gpa, buf, len);
}

/*
 * Copies chunk [off, off+len) of guest memory into buf, zeros for poisoned pages, which are never
 * read. A page found poisoned now (a host memory error not yet seen) is recorded by the
 * accessor and left zero too.
 */
static void read_chunk(struct guest_memory *gm, uint64_t off, uint8_t *buf, uint64_t len)
{
	if (!page_poisoned(gm, off, len) && read_range(gm, off, buf, len) == 0)
		return;
	for (uint64_t p = 0; p < len; p += PAGE)
		if (page_poisoned(gm, off + p, PAGE) || read_range(gm, off + p, buf + p, PAGE) < 0)
			memset(buf + p, 0, PAGE);
}

static int pwrite_all(int fd, const uint8_t *p, size_t n, uint64_t off)
{
	while (n > 0) {
		ssize_t w = pwrite(fd, p, n, (off_t)off);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		p += w, n -= (size_t)w, off += (uint64_t)w;
	}
	return 0;
}

static int pread_all(int fd, uint8_t *p, size_t n, uint64_t off)
{
	while (n > 0) {
		ssize_t r = pread(fd, p, n, (off_t)off);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return r < 0 ? -errno : -EIO;
		p += r, n -= (size_t)r, off += (uint64_t)r;
	}
	return 0;
}

static bool test_bit(const uint64_t *map, uint64_t i)
{
	return map[i / 64] >> (i % 64) & 1;
}

/*
 * Moves the record of pages written since the last take (kiln's own and KVM's dirty log, slot by
 * slot) into map, one bit per 4 KiB page of the memfd. On failure what was taken is given back.
 */
int snapshot_take_dirty(struct vm *vm, uint64_t *map, size_t words)
{
	struct guest_memory *gm = &vm->mem;
	int ret = 0;

	guest_memory_take_dirty(gm, map);
	for (unsigned i = 0; i < gm->nr_regions && ret == 0; i++) {
		const struct guest_region *r = &gm->regions[i];
		uint64_t pages = r->size / PAGE, first = r->offset / PAGE;
		uint64_t *slot = calloc((pages + 63) / 64, sizeof(uint64_t));
		struct kvm_dirty_log log = { .slot = i, .dirty_bitmap = slot };

		if (!slot) {
			ret = -ENOMEM;
			break;
		}
		if (ioctl(vm->vm_fd, KVM_GET_DIRTY_LOG, &log) < 0)
			ret = -errno;
		for (uint64_t p = 0; ret == 0 && p < pages; p++)
			if (test_bit(slot, p) && first + p < words * 64)
				map[(first + p) / 64] |= 1ull << ((first + p) % 64);
		free(slot);
	}
	if (ret < 0)
		guest_memory_give_back_dirty(gm, map);
	return ret;
}

/*
 * The file system must report the Diff file's holes: a page rebase would copy must be a page this
 * snapshot wrote, or rebasing would overwrite the base with zeros. Checks every data region.
 */
static int check_holes(int fd, uint64_t size, const uint64_t *map, char *err, size_t errlen)
{
	uint64_t at = 0;

	while (at < size) {
		off_t start = lseek(fd, (off_t)at, SEEK_DATA), end;

		if (start < 0 && errno == ENXIO)
			return 0;
		if (start < 0 || (end = lseek(fd, start, SEEK_HOLE)) < 0) {
			int e = errno;

			snprintf(err, errlen, "cannot find the holes of the Diff memory file: %s",
				 strerror(e));
			return -e;
		}
		for (uint64_t p = (uint64_t)start / PAGE; p * PAGE < (uint64_t)end; p++) {
			if (!test_bit(map, p)) {
				snprintf(err, errlen, "the file system of mem_file_path does not keep "
					 "the Diff memory file's holes at 4 KiB (byte %" PRIu64 " reads "
					 "as data): merging it onto a base would overwrite pages the "
					 "guest did not write; write Diff snapshots to tmpfs, ext4 or xfs",
					 (uint64_t)(p * PAGE));
				return -EOPNOTSUPP;
			}
		}
		at = (uint64_t)end;
	}
	return 0;
}

/* Writes the pages of chunk [off, off+len) (already in buf) the dirty map has, run by run. */
static int write_dirty_runs(int fd, const uint8_t *buf, uint64_t off, uint64_t len,
			    const uint64_t *map, const struct guest_memory *gm)
{
	for (uint64_t p = 0; p < len;) {
		uint64_t q;

		if (!test_bit(map, (off + p) / PAGE) || page_poisoned(gm, off + p, PAGE)) {
			p += PAGE;
			continue;
		}
		for (q = p + PAGE; q < len && test_bit(map, (off + q) / PAGE) &&
				   !page_poisoned(gm, off + q, PAGE);
		     q += PAGE)
			;
		int ret = pwrite_all(fd, buf + p, (size_t)(q - p), off + p);

		if (ret < 0)
			return ret;
		p = q;
	}
	return 0;
}

int snapshot_memory_write(struct vm *vm, bool diff, const char *path, struct state_buf *b,
			  struct snapshot_memory_file *f, char *err, size_t errlen)
{
	struct guest_memory *gm = &vm->mem;
	bool tracking = vm->cfg->machine.track_dirty_pages;
	uint32_t nr = (uint32_t)((gm->size + SNAPSHOT_CHUNK - 1) / SNAPSHOT_CHUNK);
	size_t words = (size_t)((gm->size / PAGE + 63) / 64), mark;
	uint8_t *buf = NULL;
	int fd = -1, ret = 0;

	*f = (struct snapshot_memory_file){ 0 };
	if (diff && !tracking) {
		snprintf(err, errlen, "a Diff snapshot needs dirty-page tracking: set "
			 "machine-config track_dirty_pages (or track_dirty_pages in "
			 "/snapshot/load) to true");
		return -EINVAL;
	}
	if ((size_t)snprintf(f->path, sizeof(f->path), "%s", path) >= sizeof(f->path) ||
	    (size_t)snprintf(f->partial, sizeof(f->partial), "%s.partial", path) >=
		    sizeof(f->partial)) {
		snprintf(err, errlen, "mem_file_path is too long");
		return -ENAMETOOLONG;
	}
	buf = aligned_alloc(PAGE, SNAPSHOT_CHUNK);
	f->taken = tracking ? calloc(words, sizeof(uint64_t)) : NULL;
	if (!buf || (tracking && !f->taken)) {
		free(buf);
		free(f->taken);
		f->taken = NULL;
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	/* Before memory is read: a page written later is in this file and in the next Diff. */
	if (tracking && (ret = snapshot_take_dirty(vm, f->taken, words)) < 0) {
		snprintf(err, errlen, "cannot read the dirty-page log: %s", strerror(-ret));
		free(f->taken); /* snapshot_take_dirty gave it back */
		f->taken = NULL;
		free(buf);
		return ret;
	}
	fd = open(f->partial, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		ret = -errno;
		snprintf(err, errlen, "cannot create %s: %s", f->partial, strerror(errno));
		goto out;
	}
	mark = state_section_begin(b, STATE_TAG_MEMORY, SNAPSHOT_MEMORY_VERSION);
	state_put_u64(b, gm->size);
	state_put_u64(b, gm->page_size);
	state_put_u64(b, SNAPSHOT_CHUNK);
	state_put_u32(b, diff ? SNAPSHOT_MEMORY_DIFF : 0);
	state_put_u32(b, nr);
	for (uint32_t k = 0; k < nr && ret == 0; k++) {
		uint64_t off = (uint64_t)k * SNAPSHOT_CHUNK, len = snapshot_chunk_len(gm->size, k);

		read_chunk(gm, off, buf, len);
		state_put_u64(b, snapshot_chunk_hash(gm, off, buf, len));
		ret = diff ? write_dirty_runs(fd, buf, off, len, f->taken, gm)
			   : pwrite_all(fd, buf, (size_t)len, off);
	}
	state_section_end(b, mark);
	/* Sized last (a Diff may end in a hole): a file cut short by a crash is refused at load for
	 * its size, before any vCPU runs. */
	if (ret == 0 && ftruncate(fd, (off_t)gm->size) < 0)
		ret = -errno;
	if (ret == 0 && fsync(fd) < 0)
		ret = -errno;
	if (ret < 0)
		snprintf(err, errlen, "cannot write the memory file %s: %s", path, strerror(-ret));
	else if (diff)
		ret = check_holes(fd, gm->size, f->taken, err, errlen);
out:
	if (fd >= 0)
		close(fd);
	free(buf);
	if (ret < 0)
		snapshot_memory_end(vm, f, false);
	return ret;
}

int snapshot_memory_commit(struct snapshot_memory_file *f, char *err, size_t errlen)
{
	if (rename(f->partial, f->path) < 0) {
		int e = errno;

		snprintf(err, errlen, "cannot put the memory file %s in place: %s", f->path,
			 strerror(e));
		return -e;
	}
	f->committed = true;
	return 0;
}

void snapshot_memory_end(struct vm *vm, struct snapshot_memory_file *f, bool ok)
{
	if (!ok && !f->committed && f->partial[0])
		unlink(f->partial);
	if (!ok && f->taken)
		guest_memory_give_back_dirty(&vm->mem, f->taken);
	free(f->taken);
	f->taken = NULL;
}

int snapshot_rebase(const char *base, const char *diff, uint64_t *copied, char *err,
		    size_t errlen)
{
	int bfd = open(base, O_RDWR | O_CLOEXEC);
	int dfd = bfd < 0 ? -1 : open(diff, O_RDONLY | O_CLOEXEC); /* errno stays base's */
	struct stat bs, ds;
	uint8_t *buf = NULL;
	uint64_t at = 0;
	int ret = 0;

	*copied = 0;
	if (bfd < 0 || dfd < 0) {
		ret = -errno;
		snprintf(err, errlen, "cannot open %s: %s", bfd < 0 ? base : diff, strerror(errno));
		goto out;
	}
	if (fstat(bfd, &bs) < 0 || fstat(dfd, &ds) < 0) {
		ret = -errno;
		snprintf(err, errlen, "cannot stat: %s", strerror(errno));
		goto out;
	}
	if (!S_ISREG(bs.st_mode) || !S_ISREG(ds.st_mode) || bs.st_size != ds.st_size) {
		snprintf(err, errlen, "%s (%lld bytes) and %s (%lld bytes) are not memory files of "
			 "the same microVM", base, (long long)bs.st_size, diff, (long long)ds.st_size);
		ret = -EINVAL;
		goto out;
	}
	if (bs.st_dev == ds.st_dev && bs.st_ino == ds.st_ino) {
		snprintf(err, errlen, "%s and %s are the same file", base, diff);
		ret = -EINVAL;
		goto out;
	}
	if (!(buf = malloc(COPY_BUF))) {
		ret = -ENOMEM;
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	while (at < (uint64_t)ds.st_size && ret == 0) {
		off_t start = lseek(dfd, (off_t)at, SEEK_DATA), end;

		if (start < 0 && errno == ENXIO)
			break;
		if (start < 0 || (end = lseek(dfd, start, SEEK_HOLE)) < 0) {
			ret = -errno;
			snprintf(err, errlen, "cannot find the data regions of %s: %s", diff,
				 strerror(errno));
			break;
		}
		for (uint64_t o = (uint64_t)start; o < (uint64_t)end && ret == 0;) {
			size_t n = (uint64_t)end - o < COPY_BUF ? (size_t)((uint64_t)end - o) : COPY_BUF;

			ret = pread_all(dfd, buf, n, o);
			if (ret == 0)
				ret = pwrite_all(bfd, buf, n, o);
			if (ret < 0)
				snprintf(err, errlen, "copying bytes %" PRIu64 "-%" PRIu64 " of %s onto "
					 "%s: %s (%s is now partly merged)", o, o + n - 1, diff, base,
					 strerror(-ret), base);
			o += n, *copied += ret == 0 ? n : 0;
		}
		at = (uint64_t)end;
	}
	if (ret == 0 && fsync(bfd) < 0) {
		ret = -errno;
		snprintf(err, errlen, "fsync %s: %s", base, strerror(errno));
	}
out:
	free(buf);
	if (bfd >= 0)
		close(bfd);
	if (dfd >= 0)
		close(dfd);
	return ret;
}
