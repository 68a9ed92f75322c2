/* Unit tests for migration/snapshot_memory.c: a Full file is memory byte for byte, a Diff file
 * holds exactly the pages written since the last snapshot (kiln's record and KVM's dirty log,
 * faked by __wrap_ioctl) and holes elsewhere, the MEMO hashes always describe all of memory,
 * poisoned pages are never read, a failed write keeps the record, and rebase merges a Diff. */
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <linux/magic.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>
#define XXH_STATIC_LINKING_ONLY /* XXH3_state_t on the stack */
#include <xxhash.h>

#include <cmocka.h>

#include "log.h"
#include "memory.h"
#include "poison_log.h"
#include "snapshot_memory.h"
#include "state.h"
#include "vm.h"

#define VM_FD 9
#define PAGE 4096ull
#define MIB (1ull << 20)
#define MEM_SIZE (7 * MIB)          /* four chunks, the last one 1 MiB */
#define NR_PAGES (MEM_SIZE / PAGE)
#define NR_CHUNKS 4u
#define MAX_WORDS ((NR_PAGES + 63) / 64)

/* KVM's dirty log, one bitmap per memslot: read and cleared by KVM_GET_DIRTY_LOG. */
static struct {
	unsigned nr_slots;
	uint64_t pages[GUEST_MEM_MAX_REGIONS];
	uint64_t log[GUEST_MEM_MAX_REGIONS][MAX_WORDS];
	unsigned calls;
	int fail_slot;  /* KVM_GET_DIRTY_LOG of this slot fails with fail_errno; -1: none */
	int fail_errno;
} kvm;

int __real_ioctl(int fd, unsigned long request, ...);
int __wrap_ioctl(int fd, unsigned long request, ...);
int __wrap_ioctl(int fd, unsigned long request, ...)
{
	struct kvm_dirty_log *d;
	va_list ap;
	void *arg;

	va_start(ap, request);
	arg = va_arg(ap, void *);
	va_end(ap);
	if (request != KVM_GET_DIRTY_LOG)
		return __real_ioctl(fd, request, arg);
	d = arg;
	kvm.calls++;
	assert_int_equal(fd, VM_FD);
	assert_in_range(d->slot, 0, kvm.nr_slots - 1);
	assert_non_null(d->dirty_bitmap);
	if ((int)d->slot == kvm.fail_slot) {
		errno = kvm.fail_errno;
		return -1;
	}
	/* Exactly the slot's bitmap, as KVM writes it: ASan catches a shorter buffer. */
	memcpy(d->dirty_bitmap, kvm.log[d->slot], (kvm.pages[d->slot] + 63) / 64 * 8);
	memset(kvm.log[d->slot], 0, sizeof(kvm.log[d->slot]));
	return 0;
}

static void kvm_reset(const struct guest_memory *gm)
{
	memset(&kvm, 0, sizeof(kvm));
	kvm.fail_slot = -1;
	kvm.nr_slots = gm->nr_regions;
	for (unsigned i = 0; i < gm->nr_regions; i++)
		kvm.pages[i] = gm->regions[i].size / PAGE;
}

struct fixture {
	struct vm *vm;
	struct vm_config cfg;
	char dir[64];
	char full[96], diff[96], diff2[96];
	char err[512];
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct statfs fs;

	/* Diff files need a file system that keeps 4 KiB holes: tmpfs. */
	if (!f || !(f->vm = calloc(1, sizeof(*f->vm))))
		return -1;
	strcpy(f->dir, "/dev/shm/kiln-snapshot-memory-XXXXXX");
	if (!mkdtemp(f->dir) || statfs(f->dir, &fs) < 0 || fs.f_type != TMPFS_MAGIC)
		return -1;
	snprintf(f->full, sizeof(f->full), "%s/full", f->dir);
	snprintf(f->diff, sizeof(f->diff), "%s/diff", f->dir);
	snprintf(f->diff2, sizeof(f->diff2), "%s/diff2", f->dir);
	f->cfg.machine.track_dirty_pages = true;
	f->vm->cfg = &f->cfg;
	f->vm->vm_fd = VM_FD;
	if (poison_log_init(&f->vm->poison) < 0 ||
	    guest_memory_create(&f->vm->mem, MEM_SIZE, false) < 0)
		return -1;
	f->vm->mem.poison = &f->vm->poison;
	kvm_reset(&f->vm->mem);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	const char *names[] = { "full", "diff", "diff2", "full.partial", "diff.partial",
				"diff2.partial", "short" };
	char p[128];

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		snprintf(p, sizeof(p), "%s/%s", f->dir, names[i]);
		unlink(p);
	}
	rmdir(f->dir);
	guest_memory_destroy(&f->vm->mem);
	poison_log_destroy(&f->vm->poison);
	free(f->vm);
	free(f);
	return 0;
}

/* Page p (memfd order) of pattern seed: every 8 bytes differ, across pages and seeds. */
static void pattern_page(uint8_t *dst, unsigned seed, uint64_t p)
{
	for (uint64_t i = 0; i < PAGE; i += 8) {
		uint64_t v = (p * PAGE + i + 1) * 0x9e3779b97f4a7c15ull ^ (uint64_t)seed << 56;

		memcpy(dst + i, &v, 8);
	}
}

/* Fills all of memory behind kiln's and KVM's backs (as before tracking started). */
static void fill_memory(struct fixture *f, unsigned seed)
{
	for (uint64_t p = 0; p < NR_PAGES; p++)
		pattern_page(f->vm->mem.host + p * PAGE, seed, p);
}

/* kiln writes pattern seed over the pages, through the checked accessor (its record). */
static void kiln_writes(struct fixture *f, unsigned seed, const uint64_t *pages, size_t n)
{
	uint8_t buf[PAGE];
	uint64_t gpa;

	for (size_t i = 0; i < n; i++) {
		pattern_page(buf, seed, pages[i]);
		assert_true(guest_memory_gpa_of_offset(&f->vm->mem, pages[i] * PAGE, &gpa));
		assert_int_equal(guest_memory_write(&f->vm->mem, gpa, buf, PAGE), 0);
	}
}

/* The guest writes pattern seed over the pages: memory changes and KVM's log of the slot has
 * bit (offset - region offset) / 4 KiB. */
static void guest_writes(struct fixture *f, unsigned seed, const uint64_t *pages, size_t n)
{
	const struct guest_memory *gm = &f->vm->mem;

	for (size_t i = 0; i < n; i++) {
		uint64_t off = pages[i] * PAGE, bit;
		unsigned s = 0;

		while (off - gm->regions[s].offset >= gm->regions[s].size)
			s++;
		pattern_page(gm->host + off, seed, pages[i]);
		bit = (off - gm->regions[s].offset) / PAGE;
		kvm.log[s][bit / 64] |= 1ull << (bit % 64);
	}
}

struct memo {
	uint64_t size, page_size, chunk;
	uint32_t flags, nr;
	uint64_t hash[NR_CHUNKS];
};

/* Parses b as exactly one MEMO section. */
static void memo_parse(const struct state_buf *b, struct memo *m)
{
	struct state_cursor c = { .p = b->data, .len = b->len };

	assert_false(b->failed);
	assert_int_equal(state_get_u32(&c), STATE_TAG_MEMORY);
	assert_int_equal(state_get_u32(&c), SNAPSHOT_MEMORY_VERSION);
	assert_int_equal(state_get_u64(&c), b->len - STATE_SECTION_HEADER_SIZE);
	m->size = state_get_u64(&c);
	m->page_size = state_get_u64(&c);
	m->chunk = state_get_u64(&c);
	m->flags = state_get_u32(&c);
	m->nr = state_get_u32(&c);
	assert_int_equal(m->nr, NR_CHUNKS);
	for (uint32_t k = 0; k < m->nr; k++)
		m->hash[k] = state_get_u64(&c);
	assert_true(state_cursor_done(&c));
	assert_int_equal(m->size, MEM_SIZE);
	assert_int_equal(m->page_size, PAGE);
	assert_int_equal(m->chunk, 2 * MIB);
}

/* snapshot_memory_write and commit into a fresh buffer; on success m gets its MEMO section. */
static int write_memory(struct fixture *f, bool diff, const char *path, struct memo *m)
{
	struct snapshot_memory_file mf;
	struct state_buf b;
	int ret;

	state_buf_init(&b);
	f->err[0] = '\0';
	ret = snapshot_memory_write(f->vm, diff, path, &b, &mf, f->err, sizeof(f->err));
	if (ret == 0) {
		memo_parse(&b, m);
		ret = snapshot_memory_commit(&mf, f->err, sizeof(f->err));
		snapshot_memory_end(f->vm, &mf, ret == 0);
	}
	state_buf_free(&b);
	return ret;
}

static uint64_t chunk_len(uint32_t k)
{
	return MEM_SIZE - k * 2 * MIB < 2 * MIB ? MEM_SIZE - k * 2 * MIB : 2 * MIB;
}

/* XXH3-64 of each chunk of data (MEM_SIZE bytes). */
static void chunk_hashes(const uint8_t *data, uint64_t *hash)
{
	for (uint32_t k = 0; k < NR_CHUNKS; k++)
		hash[k] = XXH3_64bits(data + k * 2 * MIB, chunk_len(k));
}

static uint8_t *read_whole(const char *path)
{
	uint8_t *buf = malloc(MEM_SIZE + 1);
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	assert_non_null(buf);
	assert_true(fd >= 0);
	assert_int_equal(read(fd, buf, MEM_SIZE + 1), MEM_SIZE);
	close(fd);
	return buf;
}

static bool exists(const char *path)
{
	return access(path, F_OK) == 0;
}

static bool partial_exists(const char *path)
{
	char p[128];

	snprintf(p, sizeof(p), "%s.partial", path);
	return exists(p);
}

/*
 * The data regions of path (SEEK_DATA/SEEK_HOLE) are exactly the given pages, each holding the
 * memory's current bytes; the file is as large as memory.
 */
static void assert_data_pages(struct fixture *f, const char *path, const uint64_t *pages,
			      size_t n)
{
	bool want[NR_PAGES] = { false }, seen[NR_PAGES] = { false };
	uint8_t buf[PAGE];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	off_t at = 0;

	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	assert_int_equal(st.st_size, MEM_SIZE);
	for (size_t i = 0; i < n; i++)
		want[pages[i]] = true;
	for (;;) {
		off_t start = lseek(fd, at, SEEK_DATA), end;

		if (start < 0 && errno == ENXIO)
			break;
		assert_true(start >= 0);
		end = lseek(fd, start, SEEK_HOLE);
		assert_true(end > start);
		for (uint64_t p = (uint64_t)start / PAGE; p * PAGE < (uint64_t)end; p++) {
			if (!want[p])
				fail_msg("%s: page %llu is data, expected a hole", path,
					 (unsigned long long)p);
			assert_int_equal(pread(fd, buf, PAGE, (off_t)(p * PAGE)), PAGE);
			assert_memory_equal(buf, f->vm->mem.host + p * PAGE, PAGE);
			seen[p] = true;
		}
		at = end;
	}
	close(fd);
	for (uint64_t p = 0; p < NR_PAGES; p++)
		if (want[p] && !seen[p])
			fail_msg("%s: page %llu is a hole, expected data", path, (unsigned long long)p);
}

static void poison_page(struct fixture *f, uint64_t page)
{
	uint64_t gpa;

	assert_true(guest_memory_gpa_of_offset(&f->vm->mem, page * PAGE, &gpa));
	assert_int_equal(poison_log_add(&f->vm->poison, gpa, PAGE, POISON_INJECTED), 0);
}

/* Region 0 [0, 4 MiB) at memfd 0, region 1 [4 GiB, +3 MiB) at memfd 4 MiB: two memslots. */
static void split_layout(struct fixture *f)
{
	struct guest_memory *gm = &f->vm->mem;

	gm->nr_regions = 2;
	gm->regions[0] = (struct guest_region){ .gpa = 0, .size = 4 * MIB, .offset = 0 };
	gm->regions[1] = (struct guest_region){ .gpa = 4ull << 30, .size = 3 * MIB,
						.offset = 4 * MIB };
	kvm_reset(gm);
}

static void write_full_file_is_memory_and_hashes_its_chunks(void **state)
{
	struct fixture *f = *state;
	uint64_t want[NR_CHUNKS];
	struct memo m;
	uint8_t *file;

	f->cfg.machine.track_dirty_pages = false;
	fill_memory(f, 1);
	assert_int_equal(write_memory(f, false, f->full, &m), 0);
	file = read_whole(f->full);
	assert_memory_equal(file, f->vm->mem.host, MEM_SIZE);
	assert_int_equal(m.flags, 0);
	chunk_hashes(file, want);
	for (uint32_t k = 0; k < NR_CHUNKS; k++)
		assert_int_equal(m.hash[k], want[k]);
	assert_int_equal(m.hash[NR_CHUNKS - 1], XXH3_64bits(file + 6 * MIB, MIB));
	assert_false(partial_exists(f->full));
	assert_int_equal(kvm.calls, 0);
	free(file);
}

/* The poisoned page is made inaccessible: reading it would kill the test with SIGSEGV. */
static void write_full_poisoned_page_zero_and_left_out_of_hash(void **state)
{
	struct fixture *f = *state;
	const uint64_t bad = 512 + 3; /* in chunk 1 */
	uint8_t zero[PAGE] = { 0 }, want[PAGE];
	uint64_t whole[NR_CHUNKS];
	XXH3_state_t st;
	struct memo m;
	uint8_t *file;

	fill_memory(f, 1);
	poison_page(f, bad);
	assert_int_equal(mprotect(f->vm->mem.host + bad * PAGE, PAGE, PROT_NONE), 0);
	assert_int_equal(write_memory(f, false, f->full, &m), 0);
	file = read_whole(f->full);
	assert_memory_equal(file + bad * PAGE, zero, PAGE);
	for (uint64_t p = 0; p < NR_PAGES; p++) {
		pattern_page(want, 1, p);
		if (p != bad)
			assert_memory_equal(file + p * PAGE, want, PAGE);
	}
	chunk_hashes(file, whole);
	assert_int_equal(m.hash[0], whole[0]);
	assert_int_equal(m.hash[2], whole[2]);
	assert_int_equal(m.hash[3], whole[3]);
	XXH3_64bits_reset(&st);
	for (uint64_t p = 512; p < 1024; p++)
		if (p != bad)
			XXH3_64bits_update(&st, file + p * PAGE, PAGE);
	assert_int_equal(m.hash[1], XXH3_64bits_digest(&st));
	assert_int_not_equal(m.hash[1], whole[1]);
	free(file);
}

static void write_diff_without_tracking_refused(void **state)
{
	struct fixture *f = *state;
	const uint64_t pages[] = { 1 };
	struct snapshot_memory_file mf;
	struct state_buf b;

	f->cfg.machine.track_dirty_pages = false;
	kiln_writes(f, 2, pages, 1);
	state_buf_init(&b);
	assert_int_equal(snapshot_memory_write(f->vm, true, f->diff, &b, &mf, f->err,
					       sizeof(f->err)), -EINVAL);
	assert_non_null(strstr(f->err, "track_dirty_pages"));
	assert_int_equal(b.len, 0);
	assert_false(exists(f->diff));
	assert_false(partial_exists(f->diff));
	assert_int_equal(kvm.calls, 0);
	state_buf_free(&b);
}

static void write_diff_holds_written_pages_and_holes_elsewhere(void **state)
{
	struct fixture *f = *state;
	const uint64_t by_kiln[] = { 3, 700, 1000 }, by_guest[] = { 5, 6, 7, 1000, NR_PAGES - 1 };
	const uint64_t unlogged = 900; /* changed, but in neither record */
	const uint64_t all[] = { 3, 5, 6, 7, 700, 1000, 1499, 1500, NR_PAGES - 1 };
	uint64_t want[NR_CHUNKS];
	struct memo diff, full;
	uint8_t buf[PAGE];
	uint64_t gpa;

	fill_memory(f, 1);
	kiln_writes(f, 2, by_kiln, 3);
	guest_writes(f, 3, by_guest, 5);
	pattern_page(f->vm->mem.host + unlogged * PAGE, 4, unlogged);
	/* A write of a few bytes straddling two pages records both. */
	memset(buf, 0x5a, 16);
	assert_true(guest_memory_gpa_of_offset(&f->vm->mem, 1500 * PAGE - 8, &gpa));
	assert_int_equal(guest_memory_write(&f->vm->mem, gpa, buf, 16), 0);
	assert_int_equal(write_memory(f, true, f->diff, &diff), 0);
	assert_int_equal(diff.flags, SNAPSHOT_MEMORY_DIFF);
	assert_int_equal(kvm.calls, 1);
	assert_data_pages(f, f->diff, all, sizeof(all) / sizeof(all[0]));
	assert_false(partial_exists(f->diff));
	chunk_hashes(f->vm->mem.host, want);
	assert_int_equal(write_memory(f, false, f->full, &full), 0);
	for (uint32_t k = 0; k < NR_CHUNKS; k++) {
		assert_int_equal(diff.hash[k], want[k]);
		assert_int_equal(diff.hash[k], full.hash[k]);
	}
}

static void write_diff_slot_bits_map_to_region_offset(void **state)
{
	struct fixture *f = *state;
	const uint64_t by_guest[] = { 2, 1024 + 2, NR_PAGES - 1 }, by_kiln[] = { 1024 + 5 };
	const uint64_t all[] = { 2, 1026, 1029, NR_PAGES - 1 };
	struct memo m;

	split_layout(f);
	fill_memory(f, 1);
	guest_writes(f, 2, by_guest, 3);
	kiln_writes(f, 3, by_kiln, 1);
	assert_int_equal(kvm.log[1][0], 1ull << 2); /* memfd page 1026 is bit 2 of slot 1 */
	assert_int_equal(write_memory(f, true, f->diff, &m), 0);
	assert_int_equal(kvm.calls, 2);
	assert_data_pages(f, f->diff, all, 4);
}

static void write_diff_poisoned_dirty_page_left_a_hole(void **state)
{
	struct fixture *f = *state;
	const uint64_t by_guest[] = { 10, 11, 12 };
	const uint64_t all[] = { 10, 12 };
	uint64_t gpa;
	struct memo m;

	fill_memory(f, 1);
	guest_writes(f, 2, by_guest, 3);
	assert_true(guest_memory_gpa_of_offset(&f->vm->mem, 11 * PAGE, &gpa));
	guest_memory_mark_dirty(&f->vm->mem, gpa, PAGE);
	poison_page(f, 11);
	assert_int_equal(mprotect(f->vm->mem.host + 11 * PAGE, PAGE, PROT_NONE), 0);
	assert_int_equal(write_memory(f, true, f->diff, &m), 0);
	assert_data_pages(f, f->diff, all, 2);
}

/* After a successful write of kind first_diff, a Diff with nothing newly written is all holes. */
static void second_diff_all_holes(struct fixture *f, bool first_diff)
{
	const uint64_t by_kiln[] = { 4, 600 }, by_guest[] = { 8, 1200 };
	uint64_t want[NR_CHUNKS];
	struct memo m;

	fill_memory(f, 1);
	kiln_writes(f, 2, by_kiln, 2);
	guest_writes(f, 3, by_guest, 2);
	assert_int_equal(write_memory(f, first_diff, first_diff ? f->diff : f->full, &m), 0);
	assert_int_equal(write_memory(f, true, f->diff2, &m), 0);
	assert_data_pages(f, f->diff2, NULL, 0);
	chunk_hashes(f->vm->mem.host, want);
	for (uint32_t k = 0; k < NR_CHUNKS; k++)
		assert_int_equal(m.hash[k], want[k]);
}

static void write_full_restarts_record_next_diff_all_holes(void **state)
{
	second_diff_all_holes(*state, false);
}

static void write_diff_restarts_record_next_diff_all_holes(void **state)
{
	second_diff_all_holes(*state, true);
}

static void write_dirty_log_failure_keeps_record(void **state)
{
	struct fixture *f = *state;
	const uint64_t by_kiln[] = { 10 }, by_guest[] = { 20 }, all[] = { 10, 20 };
	struct memo m;

	fill_memory(f, 1);
	kiln_writes(f, 2, by_kiln, 1);
	guest_writes(f, 3, by_guest, 1);
	kvm.fail_slot = 0;
	kvm.fail_errno = EIO;
	assert_int_equal(write_memory(f, true, f->diff, &m), -EIO);
	assert_non_null(strstr(f->err, "dirty-page log"));
	assert_false(exists(f->diff));
	assert_false(partial_exists(f->diff));
	kvm.fail_slot = -1;
	assert_int_equal(write_memory(f, true, f->diff, &m), 0);
	assert_data_pages(f, f->diff, all, 2);
}

/* Slot 0's log was read (and cleared by KVM) before slot 1's failed: kiln keeps its pages. */
static void write_second_slot_failure_keeps_first_slot_pages(void **state)
{
	struct fixture *f = *state;
	const uint64_t by_kiln[] = { 10 }, by_guest[] = { 20, 1024 + 30 };
	const uint64_t all[] = { 10, 20, 1054 };
	struct memo m;

	split_layout(f);
	fill_memory(f, 1);
	kiln_writes(f, 2, by_kiln, 1);
	guest_writes(f, 3, by_guest, 2);
	kvm.fail_slot = 1;
	kvm.fail_errno = EFAULT;
	assert_int_equal(write_memory(f, true, f->diff, &m), -EFAULT);
	assert_int_equal(kvm.log[0][0], 0);
	assert_false(exists(f->diff));
	kvm.fail_slot = -1;
	assert_int_equal(write_memory(f, true, f->diff, &m), 0);
	assert_data_pages(f, f->diff, all, 3);
}

static void write_uncreatable_path_keeps_record(void **state)
{
	struct fixture *f = *state;
	const uint64_t by_kiln[] = { 10 }, by_guest[] = { 20 }, all[] = { 10, 20 };
	char path[128];
	struct memo m;

	snprintf(path, sizeof(path), "%s/missing/mem", f->dir);
	fill_memory(f, 1);
	kiln_writes(f, 2, by_kiln, 1);
	guest_writes(f, 3, by_guest, 1);
	assert_int_equal(write_memory(f, true, path, &m), -ENOENT);
	assert_non_null(strstr(f->err, path));
	assert_int_equal(write_memory(f, false, path, &m), -ENOENT);
	assert_int_equal(kvm.calls, 2);
	assert_int_equal(write_memory(f, true, f->diff, &m), 0);
	assert_data_pages(f, f->diff, all, 2);
}

/* A file the failed snapshots below must leave alone. */
static void put_old_file(const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, "old", 3), 3);
	close(fd);
}

static void assert_old_file(const char *path)
{
	char buf[8];
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	assert_true(fd >= 0);
	assert_int_equal(read(fd, buf, sizeof(buf)), 3);
	assert_memory_equal(buf, "old", 3);
	close(fd);
}

/* Before a snapshot that fails: an old file at the Diff's path, page 10 written by kiln and
 * page 20 by the guest. */
static void before_failure(struct fixture *f)
{
	const uint64_t by_kiln[] = { 10 }, by_guest[] = { 20 };

	put_old_file(f->diff);
	fill_memory(f, 1);
	kiln_writes(f, 2, by_kiln, 1);
	guest_writes(f, 3, by_guest, 1);
}

/* After it: no .partial, the old file untouched, and the next Diff has both pages. */
static void after_failure(struct fixture *f)
{
	const uint64_t all[] = { 10, 20 };
	struct memo m;

	assert_false(partial_exists(f->diff));
	assert_old_file(f->diff);
	assert_int_equal(write_memory(f, true, f->diff, &m), 0);
	assert_data_pages(f, f->diff, all, 2);
}

/* A write failing after path.partial exists (the file size limit): the partial file goes, the
 * previous file at path stays, the record stays. */
static void write_failure_removes_partial_keeps_old_file(void **state)
{
	struct fixture *f = *state;
	struct rlimit old, small;
	struct memo m;
	int ret;

	before_failure(f);
	assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
	small = (struct rlimit){ .rlim_cur = MIB, .rlim_max = old.rlim_max };
	signal(SIGXFSZ, SIG_IGN);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &small), 0);
	ret = write_memory(f, true, f->diff, &m);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
	signal(SIGXFSZ, SIG_DFL);
	assert_int_equal(ret, -EFBIG);
	assert_non_null(strstr(f->err, f->diff));
	after_failure(f);
}

/* The memory file was written, then the snapshot failed later (its state, say): the file is not
 * put in place, the old one stays, and the next Diff still has the pages. */
static void written_but_not_committed_leaves_old_file_and_record(void **state)
{
	struct fixture *f = *state;
	struct snapshot_memory_file mf;
	struct state_buf b;

	before_failure(f);
	state_buf_init(&b);
	assert_int_equal(snapshot_memory_write(f->vm, true, f->diff, &b, &mf, f->err,
					       sizeof(f->err)), 0);
	assert_true(partial_exists(f->diff));
	snapshot_memory_end(f->vm, &mf, false);
	state_buf_free(&b);
	after_failure(f);
}

/* Full, then pages change, Diff, rebase: the base becomes today's memory, and checks against
 * the Diff's hashes as a Full file of it would. */
static void rebase_full_with_diff_gives_current_memory(void **state)
{
	struct fixture *f = *state;
	const uint64_t by_kiln[] = { 0, 513, 514 }, by_guest[] = { 1000, 1100, NR_PAGES - 1 };
	uint64_t copied, got[NR_CHUNKS];
	struct memo full, diff;
	uint8_t *file, want[PAGE];

	fill_memory(f, 1);
	assert_int_equal(write_memory(f, false, f->full, &full), 0);
	kiln_writes(f, 2, by_kiln, 3);
	guest_writes(f, 3, by_guest, 3);
	assert_int_equal(write_memory(f, true, f->diff, &diff), 0);
	assert_int_equal(snapshot_rebase(f->full, f->diff, &copied, f->err, sizeof(f->err)), 0);
	assert_int_equal(copied, 6 * PAGE);
	file = read_whole(f->full);
	assert_memory_equal(file, f->vm->mem.host, MEM_SIZE);
	for (uint64_t p = 0; p < NR_PAGES; p++) {
		bool changed = p == 0 || p == 513 || p == 514 || p == 1000 || p == 1100 ||
			       p == NR_PAGES - 1;

		pattern_page(want, changed ? (p < 1000 ? 2 : 3) : 1, p);
		assert_memory_equal(file + p * PAGE, want, PAGE);
	}
	chunk_hashes(file, got);
	for (uint32_t k = 0; k < NR_CHUNKS; k++) {
		assert_int_equal(got[k], diff.hash[k]);
		assert_int_not_equal(got[k], full.hash[k]);
	}
	free(file);
}

static void make_file(const char *path, uint64_t size)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, "x", 1, 0), 1);
	assert_int_equal(ftruncate(fd, (off_t)size), 0);
	close(fd);
}

static void rebase_different_sizes_refused(void **state)
{
	struct fixture *f = *state;
	uint64_t copied = 1;
	char other[128];

	snprintf(other, sizeof(other), "%s/short", f->dir);
	make_file(f->full, MEM_SIZE);
	make_file(other, MEM_SIZE - PAGE);
	assert_int_equal(snapshot_rebase(f->full, other, &copied, f->err, sizeof(f->err)), -EINVAL);
	assert_non_null(strstr(f->err, f->full));
	assert_non_null(strstr(f->err, other));
	assert_int_equal(copied, 0);
}

static void rebase_same_file_refused(void **state)
{
	struct fixture *f = *state;
	uint64_t copied = 1;
	char same[128];

	snprintf(same, sizeof(same), "%s/./full", f->dir);
	make_file(f->full, MEM_SIZE);
	assert_int_equal(snapshot_rebase(f->full, same, &copied, f->err, sizeof(f->err)), -EINVAL);
	assert_non_null(strstr(f->err, "same file"));
	assert_int_equal(copied, 0);
}

static void rebase_missing_file_refused(void **state)
{
	struct fixture *f = *state;
	uint64_t copied = 1;

	make_file(f->full, MEM_SIZE);
	assert_int_equal(snapshot_rebase(f->full, f->diff, &copied, f->err, sizeof(f->err)),
			 -ENOENT);
	assert_non_null(strstr(f->err, f->diff));
	assert_int_equal(snapshot_rebase(f->diff, f->full, &copied, f->err, sizeof(f->err)),
			 -ENOENT);
	assert_non_null(strstr(f->err, f->diff));
	assert_int_equal(copied, 0);
}

/* Both unopenable, for different reasons: the error is base's, with base's errno. */
static void rebase_missing_base_reports_its_own_errno(void **state)
{
	struct fixture *f = *state;
	char below_file[128], want[256];
	uint64_t copied = 1;

	make_file(f->full, MEM_SIZE);
	snprintf(below_file, sizeof(below_file), "%s/x", f->full); /* ENOTDIR */
	assert_int_equal(snapshot_rebase(f->diff, below_file, &copied, f->err, sizeof(f->err)),
			 -ENOENT);
	snprintf(want, sizeof(want), "cannot open %s: %s", f->diff, strerror(ENOENT));
	assert_string_equal(f->err, want);
}

static int group_setup(void **state)
{
	return log_setup(NULL, LOG_OFF, false, false);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(write_full_file_is_memory_and_hashes_its_chunks),
		T(write_full_poisoned_page_zero_and_left_out_of_hash),
		T(write_diff_without_tracking_refused),
		T(write_diff_holds_written_pages_and_holes_elsewhere),
		T(write_diff_slot_bits_map_to_region_offset),
		T(write_diff_poisoned_dirty_page_left_a_hole),
		T(write_full_restarts_record_next_diff_all_holes),
		T(write_diff_restarts_record_next_diff_all_holes),
		T(write_dirty_log_failure_keeps_record),
		T(write_second_slot_failure_keeps_first_slot_pages),
		T(write_uncreatable_path_keeps_record),
		T(write_failure_removes_partial_keeps_old_file),
		T(written_but_not_committed_leaves_old_file_and_record),
		T(rebase_full_with_diff_gives_current_memory),
		T(rebase_different_sizes_refused),
		T(rebase_same_file_refused),
		T(rebase_missing_file_refused),
		T(rebase_missing_base_reports_its_own_errno),
	};
#undef T

	return cmocka_run_group_tests_name("snapshot_memory.c", tests, group_setup, NULL);
}
