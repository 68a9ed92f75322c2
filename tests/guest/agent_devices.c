/* kiln-agent tests for virtio-blk (kiln.test=blk) and virtio-rng (kiln.test=rng). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"

#define BLK_FILE "/kiln-blk.bin"
#define BLK_FILE_BYTES (4u << 20)
#define RO_MAGIC "kiln-ro-drive-ok"

static uint64_t xorshift(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* Reads (out false) or writes all n bytes, retrying short transfers; 0 or -1 with errno. */
static int io_all(int fd, void *buf, size_t n, bool out)
{
	uint8_t *p = buf;

	while (n > 0) {
		ssize_t k = out ? write(fd, p, n) : read(fd, p, n);

		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return -1;
		p += k;
		n -= (size_t)k;
	}
	return 0;
}

/* The root is the ext4 image on /dev/vda, mounted read-write by the kernel. */
static void check_root(struct result *r)
{
	char mounts[4096];

	if (read_text("/proc/mounts", mounts, sizeof(mounts)) < 0) {
		result_fail(r, "cannot read /proc/mounts");
		return;
	}
	if (!strstr(mounts, "/dev/root / ext4 rw") && !strstr(mounts, "/dev/vda / ext4 rw"))
		result_fail(r, "root is not ext4 mounted rw from virtio-blk: %.200s", mounts);
}

/* Writes 4 MiB of seeded data, fsyncs, drops the page cache and reads it back through the
 * device. Returns the data's CRC-32, or 0 after failing the test. */
static uint32_t write_file(struct result *r, uint64_t seed)
{
	uint64_t *buf = malloc(BLK_FILE_BYTES), *back = malloc(BLK_FILE_BYTES);
	uint32_t h;
	int fd = -1;

	if (!buf || !back) {
		result_fail(r, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < BLK_FILE_BYTES / 8; i++)
		buf[i] = xorshift(&seed);
	fd = open(BLK_FILE, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0 || io_all(fd, buf, BLK_FILE_BYTES, true) < 0 || fsync(fd) < 0) {
		result_fail(r, "writing %s: %s", BLK_FILE, strerror(errno));
		goto out;
	}
	close(fd);
	fd = -1;
	sync();
	fd = open("/proc/sys/vm/drop_caches", O_WRONLY | O_CLOEXEC);
	if (fd < 0 || write(fd, "3\n", 2) != 2) {
		result_fail(r, "drop_caches: %s", strerror(errno));
		goto out;
	}
	close(fd);
	fd = open(BLK_FILE, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || io_all(fd, back, BLK_FILE_BYTES, false) < 0) {
		result_fail(r, "reading %s back: %s", BLK_FILE, strerror(errno));
		goto out;
	}
	if (memcmp(buf, back, BLK_FILE_BYTES)) {
		result_fail(r, "%s reads back different from what was written", BLK_FILE);
		goto out;
	}
	h = crc32_update(0, (const uint8_t *)buf, BLK_FILE_BYTES);
	free(buf);
	free(back);
	close(fd);
	return h;
out:
	free(buf);
	free(back);
	if (fd >= 0)
		close(fd);
	return 0;
}

/* /dev/vdb is the read-only drive: its first bytes are known, and writing is refused. */
static void check_read_only(struct result *r)
{
	char ro[8] = "", magic[sizeof(RO_MAGIC)] = "";
	int fd;

	if (read_text("/sys/block/vdb/ro", ro, sizeof(ro)) < 0 || ro[0] != '1')
		result_fail(r, "/sys/block/vdb/ro is \"%.1s\", expected 1", ro);
	fd = open("/dev/vdb", O_RDONLY | O_CLOEXEC);
	if (fd < 0 || io_all(fd, magic, sizeof(RO_MAGIC) - 1, false) < 0 ||
	    memcmp(magic, RO_MAGIC, sizeof(RO_MAGIC) - 1)) {
		result_fail(r, "/dev/vdb does not start with %s", RO_MAGIC);
	}
	if (fd >= 0)
		close(fd);
	fd = open("/dev/vdb", O_WRONLY | O_CLOEXEC);
	if (fd >= 0) {
		ssize_t k = pwrite(fd, "x", 1, 0);
		int err = errno;

		if (k == 1 && fsync(fd) == 0)
			result_fail(r, "a write to the read-only /dev/vdb succeeded");
		else
			result_note(r, "ro-write=%s", strerror(k == 1 ? errno : err));
		close(fd);
	} else {
		result_note(r, "ro-open=%s", strerror(errno));
	}
}

/*
 * kiln.blk_seed=N: write BLK_FILE from seed N and report its CRC-32 as blk_crc=HEX.
 * kiln.blk_ro=1: also check /dev/vdb as a read-only drive.
 */
void test_blk(const struct agent *a, struct result *r)
{
	unsigned long seed = 1, ro = 0;
	uint32_t h;

	if (param_ulong(a, "blk_seed", &seed) < 0 || param_ulong(a, "blk_ro", &ro) < 0) {
		result_fail(r, "kiln.blk_seed and kiln.blk_ro must be numbers");
		return;
	}
	check_root(r);
	if (ro)
		check_read_only(r);
	if (!r->pass)
		return;
	h = write_file(r, seed ? seed : 1);
	if (r->pass)
		result_note(r, "blk_crc=%08x", h);
}

/* The kernel picked virtio's hwrng, and /dev/hwrng gives bytes that look random. */
void test_rng(const struct agent *a, struct result *r)
{
	uint8_t x[256], y[256];
	char cur[64] = "";
	unsigned zeros = 0;
	int fd;

	(void)a;
	if (read_text("/sys/class/misc/hw_random/rng_current", cur, sizeof(cur)) < 0 ||
	    strncmp(cur, "virtio_rng", 10)) {
		result_fail(r, "rng_current is \"%.40s\", expected virtio_rng", cur);
		return;
	}
	fd = open("/dev/hwrng", O_RDONLY | O_CLOEXEC);
	if (fd < 0 || io_all(fd, x, sizeof(x), false) < 0 || io_all(fd, y, sizeof(y), false) < 0) {
		result_fail(r, "reading /dev/hwrng: %s", strerror(errno));
		if (fd >= 0)
			close(fd);
		return;
	}
	close(fd);
	for (size_t i = 0; i < sizeof(x); i++)
		zeros += x[i] == 0;
	if (!memcmp(x, y, sizeof(x)) || zeros > 16)
		result_fail(r, "/dev/hwrng bytes do not look random (%u zero bytes of 256)", zeros);
	else
		result_note(r, "hwrng=%u bytes", (unsigned)(sizeof(x) + sizeof(y)));
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Sequential passes over the first `bytes` of fd in 1 MiB O_DIRECT blocks; MB/s, or -1. */
static double seq_pass(int fd, uint8_t *buf, uint64_t bytes, bool write)
{
	const size_t blk = 1u << 20;
	double t0 = now_s();

	for (uint64_t off = 0; off < bytes; off += blk) {
		ssize_t k = write ? pwrite(fd, buf, blk, (off_t)off) : pread(fd, buf, blk, (off_t)off);

		if (k != (ssize_t)blk)
			return -1;
	}
	if (write && fdatasync(fd) < 0)
		return -1;
	return (double)bytes / 1e6 / (now_s() - t0);
}

/* 4 KiB operations at random aligned offsets within `bytes` for `secs` seconds; IOPS, or -1. */
static double rand_pass(int fd, uint8_t *buf, uint64_t bytes, bool write, double secs)
{
	uint64_t seed = 0x6b696c6e, n = 0;
	double t0 = now_s(), t;

	do {
		for (int i = 0; i < 64; i++, n++) {
			off_t off = (off_t)(xorshift(&seed) % (bytes / 4096)) * 4096;
			ssize_t k = write ? pwrite(fd, buf, 4096, off) : pread(fd, buf, 4096, off);

			if (k != 4096)
				return -1;
		}
		t = now_s() - t0;
	} while (t < secs);
	return (double)n / t;
}

/*
 * kiln.test=blkbench: throughput of /dev/<kiln.bench_dev> (default vda), the same work under any
 * monitor: sequential
 * write and read of kiln.bench_mib MiB (default 64) in 1 MiB blocks, then 4 KiB random reads
 * and writes for kiln.bench_secs seconds each (default 3), all O_DIRECT (no guest page cache).
 * Prints "KILN-BENCH blk seq_write_mbs=.. seq_read_mbs=.. rand_read_iops=.. rand_write_iops=..".
 */
void test_blkbench(const struct agent *a, struct result *r)
{
	unsigned long mib = 64, secs = 3;
	char name[16] = "vda", dev[32];
	double sw, sr, rr, rw;
	uint8_t *buf = NULL;
	int fd;

	if (param_ulong(a, "bench_mib", &mib) < 0 || param_ulong(a, "bench_secs", &secs) < 0 ||
	    mib == 0 || secs == 0) {
		result_fail(r, "kiln.bench_mib and kiln.bench_secs must be positive numbers");
		return;
	}
	param_get(a, "bench_dev", name, sizeof(name));
	snprintf(dev, sizeof(dev), "/dev/%s", name);
	fd = open(dev, O_RDWR | O_DIRECT | O_CLOEXEC);
	if (fd < 0 || posix_memalign((void **)&buf, 4096, 1u << 20)) {
		result_fail(r, "%s: %s", dev, strerror(errno));
		if (fd >= 0)
			close(fd);
		return;
	}
	memset(buf, 0x5a, 1u << 20);
	sw = seq_pass(fd, buf, (uint64_t)mib << 20, true);
	sr = seq_pass(fd, buf, (uint64_t)mib << 20, false);
	rr = rand_pass(fd, buf, (uint64_t)mib << 20, false, (double)secs);
	rw = rand_pass(fd, buf, (uint64_t)mib << 20, true, (double)secs);
	close(fd);
	free(buf);
	if (sw < 0 || sr < 0 || rr < 0 || rw < 0) {
		result_fail(r, "I/O error on %s: %s", dev, strerror(errno));
		return;
	}
	printf("KILN-BENCH blk seq_write_mbs=%.1f seq_read_mbs=%.1f rand_read_iops=%.0f "
	       "rand_write_iops=%.0f\n", sw, sr, rr, rw);
	result_note(r, "seq_write_mbs=%.1f seq_read_mbs=%.1f", sw, sr);
}
