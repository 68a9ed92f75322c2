/* kiln-agent's shared pieces: the agent, a test's result, helpers, and the tests that live in
 * their own files (agent_<area>.c). */
#ifndef KILN_AGENT_H
#define KILN_AGENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define BUSYBOX "/bin/busybox"

struct agent {
	bool pid1;
	char cmdline[4096];
	char uptime_at_init[32];
};

struct result {
	bool pass;
	char detail[512];
};

struct test {
	const char *name;
	void (*run)(const struct agent *a, struct result *r);
};

/* Fails the test, replacing its notes with this reason (later failures add to it). */
__attribute__((format(printf, 2, 3))) void result_fail(struct result *r, const char *fmt, ...);

/* Adds a note to a passing test's detail. */
__attribute__((format(printf, 2, 3))) void result_note(struct result *r, const char *fmt, ...);

/* zlib's CRC-32 (IEEE 802.3) of p continuing from crc (0 to start): the host's python computes
 * the same at C speed. */
uint32_t crc32_update(uint32_t crc, const uint8_t *p, size_t n);

/* Reads up to size - 1 bytes of path into buf, NUL-terminated; returns the length or -errno. */
ssize_t read_text(const char *path, char *buf, size_t size);

/* A child of read_in_child that took SIGBUS ends with this status plus the si_code; one that
 * found a byte other than the expected one ends with AGENT_EXIT_CORRUPT. */
#define AGENT_EXIT_SIGBUS_BASE 100
#define AGENT_EXIT_CORRUPT 3

/* Reads the first and last byte of every 4 KiB page of buf in a child, which reports a SIGBUS
 * on stdout; with expect >= 0 each must equal it. Returns the child's wait status, -1 when it
 * could not run. */
int read_in_child(const volatile uint8_t *buf, size_t len, int expect);

/* The guest-physical address of the page holding p (from /proc/self/pagemap) into *gpa; 0, or
 * -errno (-ENOENT: the page has no frame). */
int guest_phys(const void *p, uint64_t *gpa);

/* Asks the kernel for count free 2 MiB pages; 0 or -errno. */
int reserve_hugepages(unsigned count);

/* Copies the value of kiln.KEY=VALUE from the command line into val; the last one wins. */
bool param_get(const struct agent *a, const char *key, char *val, size_t size);

/* Returns 1 with *out set, 0 when kiln.KEY is absent, -EINVAL when it is not a number. */
int param_ulong(const struct agent *a, const char *key, unsigned long *out);

/* The first network interface that is not loopback, into name: 0 or -errno. */
int agent_find_iface(char *name, size_t size);

/* Gives ifname the address cidr ("ADDR/PREFIX") and brings it and lo up (again: no change).
 * 0, or -1 with a reason in why. */
int agent_if_config(const char *ifname, const char *cidr, char *why, size_t size);

/* Tests in agent_devices.c, agent_net.c, agent_vsock.c, agent_hostile*.c. */
void test_blk(const struct agent *a, struct result *r);
void test_rng(const struct agent *a, struct result *r);
void test_blkbench(const struct agent *a, struct result *r);
void test_net(const struct agent *a, struct result *r);
void test_vsock(const struct agent *a, struct result *r);
void test_poison(const struct agent *a, struct result *r);
void test_snapshot(const struct agent *a, struct result *r);
void test_hostile_mmio(const struct agent *a, struct result *r);
void test_hostile_virtq(const struct agent *a, struct result *r);

#endif
