/* kiln-agent test for snapshots (kiln.test=snapshot): fills most of the guest's memory with a
 * pattern, keeps a CRC-32 of every page, and then obeys the console, line by line, across any
 * number of snapshots and restores:
 *   verify  checks every page but the one handed to the host for poisoning;
 *   poison  reads that page in a child, which must die of SIGBUS BUS_MCEERR_AR;
 *   mutate  gives every 7th page (not that one) a new pattern, written by the CPU (KVM's dirty
 *           log sees it), and reads /dev/vda with O_DIRECT over the first pages (virtio-blk
 *           writes them: only kiln's own record sees that), so a Diff snapshot must hold both;
 *   churn   starts a writer thread that, until stopped, keeps rewriting pages (every one but
 *           the one handed to the host) in a fixed pseudo-random order, each pass with a new
 *           pattern, updating a page's CRC after writing it, so that memory keeps changing while
 *           the VM is migrated; prints KILN-SNAP-CHURNING;
 *   still   stops the writer and prints KILN-SNAP-STILL rewritten=N sum=0xS: the pages it wrote
 *           and the CRC-32 of the whole CRC table (verify is the real check). verify, mutate
 *           and done stop a running writer first (printing that line too), so that the CRCs
 *           they read or write are settled; poison does not (it only reads that page, in a
 *           child);
 *   blk     reads all of /dev/vda with O_DIRECT (into a buffer of its own) and prints
 *           KILN-SNAP-BLK crc=H bytes=N (zlib's CRC-32 of the whole device), or
 *           KILN-SNAP-BLK fail <why>;
 *   net IP/PREFIX HOSTIP PORT
 *           gives the first interface besides lo the address IP/PREFIX and brings it up (again,
 *           harmlessly, when it is up already), connects over TCP to HOSTIP:PORT (retrying for
 *           up to 30 s), sends a line and expects the same line back; prints KILN-SNAP-NET ok
 *           <iface> tries=N or KILN-SNAP-NET fail <why>;
 *   vsock PORT
 *           connects AF_VSOCK to the host (CID 2) at PORT (kiln's hybrid vsock takes it to
 *           <uds_path>_PORT on the host), sends a line and expects the same line back; prints
 *           KILN-SNAP-VSOCK ok tries=N or KILN-SNAP-VSOCK fail <why>;
 *   done    ends the test (PASS when no page ever changed, every poison read took a machine
 *           check and every blk, net and vsock succeeded, the blk CRCs all the same).
 * blk, net and vsock leave the pattern buffer and a running churn writer alone.
 * kiln.snap_mib=N sizes the buffer (default 64). kiln.snap_huge=1: the page handed to the host
 * for poisoning is a guest 2 MiB huge page of its own (on 2 MiB hugetlb memory the host poisons
 * whole 2 MiB pages, which must then hold nothing else the agent uses). */
#define _GNU_SOURCE
#include <errno.h>
#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <linux/vm_sockets.h>

#include "agent.h"

#define PAGE 4096ul

/* Page index's pattern: a xorshift stream seeded by the page index. */
static void fill_page(uint8_t *page, size_t index)
{
	uint64_t x = 0x9e3779b97f4a7c15ull * (index + 1), *w = (uint64_t *)page;

	for (size_t i = 0; i < PAGE / 8; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		w[i] = x;
	}
}

/* mutate: CPU writes to every 7th page, then the device's writes over the first pages. Updates
 * the CRCs; prints what it did. */
static void mutate(uint8_t *buf, uint32_t *crc, size_t pages, size_t target, unsigned gen)
{
	size_t changed = 0;
	ssize_t got = 0;
	int fd;

	for (size_t i = 3; i < pages; i += 7) {
		if (i == target)
			continue;
		fill_page(buf + i * PAGE, i + pages * gen);
		crc[i] = crc32_update(0, buf + i * PAGE, PAGE);
		changed++;
	}
	fd = open("/dev/vda", O_RDONLY | O_DIRECT | O_CLOEXEC);
	if (fd >= 0) {
		size_t max = pages * PAGE / 2 < (4ul << 20) ? pages * PAGE / 2 : (4ul << 20);

		got = pread(fd, buf, max, 0);
		close(fd);
		for (size_t i = 0; got > 0 && i < (size_t)got / PAGE; i++)
			crc[i] = crc32_update(0, buf + i * PAGE, PAGE);
	}
	printf("KILN-SNAP-MUTATED cpu_pages=%zu blk_bytes=%zd%s\n", changed, got,
	       fd < 0 ? " (no /dev/vda)" : "");
}

/* churn's writer thread. Between churn_start and churn_stop only the writer touches buf and crc
 * (poison's child reads the page the writer never writes); pthread_join hands them back. */
struct churn {
	pthread_t thread;
	bool running;
	atomic_bool stop;
	uint8_t *buf;
	uint32_t *crc;
	size_t pages, target;
	unsigned gen;     /* in: the first pass's generation; out: not below the last one used */
	size_t rewritten; /* pages written since churn_start */
};

/* Rewrites pages until told to stop. The order is fixed and pseudo-random: a full-period LCG
 * over the next power of two at or above pages, its output scrambled by a (bijective) xorshift,
 * values past the buffer skipped, so each pass writes every page but target exactly once. Each
 * pass has a generation of its own. The writer takes no lock (no stdio, no malloc), so poison
 * can fork while it runs. */
static void *churn_run(void *arg)
{
	struct churn *c = arg;
	unsigned bits = 0;
	uint64_t mask, state = 0;

	while (((size_t)1 << bits) < c->pages)
		bits++;
	mask = ((uint64_t)1 << bits) - 1;
	for (;; c->gen++) {
		for (uint64_t n = 0; n <= mask; n++) {
			size_t i;

			if (atomic_load_explicit(&c->stop, memory_order_relaxed))
				return NULL;
			/* c odd, a = 1 mod 4: period 2^bits (Hull-Dobell). */
			state = (state * 6364136223846793005ull + 1442695040888963407ull) & mask;
			i = (size_t)(state ^ (state >> (bits / 2 + 1)));
			if (i >= c->pages || i == c->target)
				continue;
			fill_page(c->buf + i * PAGE, i + c->pages * c->gen);
			c->crc[i] = crc32_update(0, c->buf + i * PAGE, PAGE);
			if (++c->rewritten % 64 == 0)
				sched_yield();
		}
	}
}

/* churn: starts the writer with the generation after *gen. Returns 0 or an errno. */
static int churn_start(struct churn *c, unsigned *gen)
{
	int err;

	if (c->running)
		return 0;
	atomic_store(&c->stop, false);
	c->gen = *gen + 1;
	c->rewritten = 0;
	err = pthread_create(&c->thread, NULL, churn_run, c);
	if (err == 0)
		c->running = true;
	return err;
}

/* still: stops the writer if it runs, takes its last generation into *gen, and prints what it
 * did (rewritten=0 when it was not running) and the CRC-32 of the CRC table. */
static void churn_stop(struct churn *c, unsigned *gen, size_t *rewritten_total)
{
	size_t rewritten = 0;

	if (c->running) {
		atomic_store(&c->stop, true);
		pthread_join(c->thread, NULL);
		c->running = false;
		*gen = c->gen;
		rewritten = c->rewritten;
		*rewritten_total += rewritten;
	}
	printf("KILN-SNAP-STILL rewritten=%zu sum=0x%08x\n", rewritten,
	       crc32_update(0, (const uint8_t *)c->crc, c->pages * sizeof(*c->crc)));
}

/* ---- blk, net, vsock: the devices, checked from inside across snapshots and migrations ---- */

#define DEV_TIMEOUT_S 20
#define DEV_CHUNK (256ul << 10)

/* blk: zlib's CRC-32 of all of /dev/vda, read with O_DIRECT into a buffer of its own. 0, or -1
 * with a reason in why. */
static int dev_blk(uint32_t *crc, unsigned long long *bytes, char *why, size_t size)
{
	void *b = NULL;
	int fd, err = 0;

	*crc = 0;
	*bytes = 0;
	fd = open("/dev/vda", O_RDONLY | O_DIRECT | O_CLOEXEC);
	if (fd < 0) {
		snprintf(why, size, "open /dev/vda: %s", strerror(errno));
		return -1;
	}
	if ((err = posix_memalign(&b, PAGE, DEV_CHUNK)) != 0) {
		snprintf(why, size, "buffer: %s", strerror(err));
		close(fd);
		return -1;
	}
	for (;;) {
		ssize_t k = pread(fd, b, DEV_CHUNK, (off_t)*bytes);

		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0) {
			snprintf(why, size, "read at %llu: %s", *bytes, strerror(errno));
			err = -1;
			break;
		}
		if (k == 0)
			break;
		*crc = crc32_update(*crc, b, (size_t)k);
		*bytes += (unsigned long long)k;
	}
	free(b);
	close(fd);
	return err ? -1 : 0;
}

static void dev_timeouts(int s)
{
	struct timeval tv = { .tv_sec = DEV_TIMEOUT_S };

	setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

/* A stream connection to sa, up to max_tries tries pause_us apart: the socket, or -1 with the
 * last errno in *err; *tries gets the tries made. */
static int dev_connect(int family, const struct sockaddr *sa, socklen_t len, int max_tries,
		       useconds_t pause_us, int *tries, int *err)
{
	int s = -1;

	for (*tries = 1; *tries <= max_tries; ++*tries) {
		s = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (s < 0) {
			*err = errno;
			return -1;
		}
		dev_timeouts(s);
		if (connect(s, sa, len) == 0)
			return s;
		*err = errno;
		close(s);
		if (*tries < max_tries)
			usleep(pause_us);
	}
	*tries = max_tries;
	return -1;
}

/* Sends line on s and expects it back (up to a newline). 0, or -1 with a reason in why. */
static int dev_echo(int s, const char *line, char *why, size_t size)
{
	size_t len = strlen(line), got = 0;
	char back[128];

	for (size_t done = 0; done < len;) {
		ssize_t k = send(s, line + done, len - done, MSG_NOSIGNAL);

		if (k <= 0) {
			snprintf(why, size, "send: %s", k < 0 ? strerror(errno) : "nothing sent");
			return -1;
		}
		done += (size_t)k;
	}
	while (got < sizeof(back) - 1) {
		ssize_t k = recv(s, back + got, 1, 0);

		if (k <= 0) {
			snprintf(why, size, "answer after %zu bytes: %s", got,
				 k < 0 ? strerror(errno) : "EOF");
			return -1;
		}
		if (back[got++] == '\n')
			break;
	}
	back[got] = '\0';
	if (strcmp(back, line)) {
		back[strcspn(back, "\n")] = '\0';
		snprintf(why, size, "the answer was \"%s\"", back);
		return -1;
	}
	return 0;
}

/* net IP/PREFIX HOSTIP PORT: prints KILN-SNAP-NET ok|fail. Returns whether it worked. */
static bool dev_net(const char *args, unsigned n)
{
	char cidr[48], host[48], ifname[IFNAMSIZ] = "", why[160] = "", line[96];
	unsigned port = 0;
	struct sockaddr_in sa = { .sin_family = AF_INET };
	int s = -1, tries = 0, err = 0;

	if (sscanf(args, "%47s %47s %u", cidr, host, &port) != 3 || port == 0 || port > 65535 ||
	    inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
		printf("KILN-SNAP-NET fail usage: net IP/PREFIX HOSTIP PORT\n");
		return false;
	}
	sa.sin_port = htons((uint16_t)port);
	if (agent_find_iface(ifname, sizeof(ifname)) < 0) {
		printf("KILN-SNAP-NET fail no network interface besides lo\n");
		return false;
	}
	if (agent_if_config(ifname, cidr, why, sizeof(why)) < 0) {
		printf("KILN-SNAP-NET fail %s\n", why);
		return false;
	}
	/* Up to 30 s: the host may be a moment late, and the guest may have to find the host's
	 * MAC address anew. */
	s = dev_connect(AF_INET, (struct sockaddr *)&sa, sizeof(sa), 60, 500 * 1000, &tries, &err);
	if (s < 0) {
		printf("KILN-SNAP-NET fail connect to %s:%u (%d tries): %s\n", host, port, tries,
		       strerror(err));
		return false;
	}
	snprintf(line, sizeof(line), "kiln-snap net %u from %s\n", n, cidr);
	if (dev_echo(s, line, why, sizeof(why)) < 0) {
		printf("KILN-SNAP-NET fail %s:%u: %s\n", host, port, why);
		close(s);
		return false;
	}
	close(s);
	printf("KILN-SNAP-NET ok %s %s -> %s:%u tries=%d\n", ifname, cidr, host, port, tries);
	return true;
}

/* vsock PORT: prints KILN-SNAP-VSOCK ok|fail. Returns whether it worked. */
static bool dev_vsock(const char *args, unsigned n)
{
	struct sockaddr_vm sa = { .svm_family = AF_VSOCK, .svm_cid = VMADDR_CID_HOST };
	char why[160] = "", line[64];
	unsigned port = 0;
	int s = -1, tries = 0, err = 0;

	if (sscanf(args, "%u", &port) != 1) {
		printf("KILN-SNAP-VSOCK fail usage: vsock PORT\n");
		return false;
	}
	sa.svm_port = port;
	/* A few tries, a second apart: a reset (no listener yet) is answered at once. */
	s = dev_connect(AF_VSOCK, (struct sockaddr *)&sa, sizeof(sa), 5, 1000 * 1000, &tries, &err);
	if (s < 0) {
		printf("KILN-SNAP-VSOCK fail connect to host port %u (%d tries): %s\n", port, tries,
		       strerror(err));
		return false;
	}
	snprintf(line, sizeof(line), "kiln-snap vsock %u\n", n);
	if (dev_echo(s, line, why, sizeof(why)) < 0) {
		printf("KILN-SNAP-VSOCK fail port %u: %s\n", port, why);
		close(s);
		return false;
	}
	close(s);
	printf("KILN-SNAP-VSOCK ok port %u tries=%d\n", port, tries);
	return true;
}

void test_snapshot(const struct agent *a, struct result *r)
{
	size_t blks = 0, nets = 0, vsocks = 0, dev_fails = 0;
	unsigned long long blk_bytes0 = 0;
	uint32_t blk_crc0 = 0;
	unsigned long mib = 64, huge = 0;
	size_t pages, target, bad_total = 0, verifies = 0, poisons = 0, churned = 0, churns = 0;
	struct churn churn = { .running = false };
	unsigned gen = 0;
	uint32_t *crc;
	uint8_t *buf, *victim;
	uint64_t gpa = 0;
	char line[96];
	FILE *in;
	int ret;

	if (param_ulong(a, "snap_mib", &mib) < 0 || mib == 0 ||
	    param_ulong(a, "snap_huge", &huge) < 0) {
		result_fail(r, "kiln.snap_mib must be a positive number, kiln.snap_huge 0 or 1");
		return;
	}
	pages = mib * (1ul << 20) / PAGE;
	/* A guest huge page of its own for the host to poison, reserved before the buffer
	 * fragments memory; else a page in the middle of the buffer, left out of verify and
	 * mutate. */
	target = huge ? SIZE_MAX : pages / 2;
	victim = NULL;
	if (huge) {
		if ((ret = reserve_hugepages(1)) < 0) {
			result_fail(r, "cannot reserve guest huge pages: %s", strerror(-ret));
			return;
		}
		victim = mmap(NULL, 2ul << 20, PROT_READ | PROT_WRITE,
			      MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB | (21 << MAP_HUGE_SHIFT), -1, 0);
		if (victim == MAP_FAILED) {
			result_fail(r, "mmap of a guest huge page: %s", strerror(errno));
			return;
		}
		memset(victim, 0x5a, 2ul << 20);
	}
	buf = mmap(NULL, pages * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	crc = calloc(pages, sizeof(*crc));
	if (buf == MAP_FAILED || !crc) {
		result_fail(r, "cannot allocate %lu MiB: %s", mib, strerror(errno));
		return;
	}
	for (size_t i = 0; i < pages; i++) {
		fill_page(buf + i * PAGE, i);
		crc[i] = crc32_update(0, buf + i * PAGE, PAGE);
	}
	if (mlock(buf, pages * PAGE) != 0)
		result_note(r, "mlock: %s", strerror(errno));
	if (!victim)
		victim = buf + pages / 2 * PAGE;
	if ((ret = guest_phys(victim, &gpa)) < 0) {
		result_fail(r, "the guest-physical address of the page to poison: %s",
			    strerror(-ret));
		return;
	}
	printf("KILN-SNAP-READY gpa=0x%llx pages=%zu\n", (unsigned long long)gpa, pages);
	fflush(stdout);
	in = fopen("/dev/console", "r");
	if (!in) {
		result_fail(r, "cannot read the console: %s", strerror(errno));
		return;
	}
	churn.buf = buf;
	churn.crc = crc;
	churn.pages = pages;
	churn.target = target;
	while (fgets(line, sizeof(line), in)) {
		if (!strncmp(line, "verify", 6)) {
			size_t bad = 0, first = 0;

			if (churn.running)
				churn_stop(&churn, &gen, &churned);
			for (size_t i = 0; i < pages; i++) {
				if (i == target || crc32_update(0, buf + i * PAGE, PAGE) == crc[i])
					continue;
				if (!bad++)
					first = i;
			}
			bad_total += bad;
			verifies++;
			printf("KILN-SNAP-VERIFIED pages=%zu bad=%zu first_bad=%zu\n",
			       pages - (target < pages), bad, bad ? first : 0);
		} else if (!strncmp(line, "poison", 6)) {
			uint64_t now = gpa;
			int st = read_in_child(victim, PAGE, -1);
			bool mce = st > 0 && WIFEXITED(st) &&
				   WEXITSTATUS(st) == AGENT_EXIT_SIGBUS_BASE + BUS_MCEERR_AR;

			poisons += mce;
			/* A read that went fine on a page the guest moved says nothing of kiln. */
			if (!mce && guest_phys(victim, &now) == 0 && now != gpa)
				printf("KILN-SNAP-POISON MOVED gpa=0x%llx (the guest moved the page "
				       "from 0x%llx)\n", (unsigned long long)now,
				       (unsigned long long)gpa);
			else
				printf("KILN-SNAP-POISON %s (child status %d)\n",
				       mce ? "machine-check" : st == 0 ? "READ-FINE" : "other", st);
		} else if (!strncmp(line, "mutate", 6)) {
			if (churn.running)
				churn_stop(&churn, &gen, &churned);
			mutate(buf, crc, pages, target, ++gen);
		} else if (!strncmp(line, "churn", 5)) {
			bool already = churn.running;
			int err = churn_start(&churn, &gen);

			if (err) {
				result_fail(r, "cannot start the churn thread: %s", strerror(err));
				printf("KILN-SNAP-CHURN-FAILED %s\n", strerror(err));
			} else {
				churns += !already;
				printf("KILN-SNAP-CHURNING%s\n", already ? " (already)" : "");
			}
		} else if (!strncmp(line, "still", 5)) {
			churn_stop(&churn, &gen, &churned);
		} else if (!strncmp(line, "blk", 3)) {
			unsigned long long bytes;
			uint32_t c;
			char why[160];

			if (dev_blk(&c, &bytes, why, sizeof(why)) < 0) {
				dev_fails++;
				printf("KILN-SNAP-BLK fail %s\n", why);
			} else {
				if (!blks++) {
					blk_crc0 = c;
					blk_bytes0 = bytes;
				} else if (c != blk_crc0 || bytes != blk_bytes0) {
					dev_fails++;
				}
				printf("KILN-SNAP-BLK crc=%08x bytes=%llu\n", c, bytes);
			}
		} else if (!strncmp(line, "net ", 4)) {
			dev_fails += !dev_net(line + 4, (unsigned)++nets);
		} else if (!strncmp(line, "vsock ", 6)) {
			dev_fails += !dev_vsock(line + 6, (unsigned)++vsocks);
		} else if (!strncmp(line, "done", 4)) {
			break;
		} else {
			continue;
		}
		fflush(stdout);
	}
	if (churn.running) {
		churn_stop(&churn, &gen, &churned);
		fflush(stdout);
	}
	fclose(in);
	if (dev_fails)
		result_fail(r, "%zu of %zu blk, net and vsock check(s) failed (see the KILN-SNAP-BLK, "
			    "-NET and -VSOCK lines)", dev_fails, blks + nets + vsocks);
	if (bad_total)
		result_fail(r, "%zu page(s) changed across %zu verifications", bad_total, verifies);
	else if (!verifies)
		result_fail(r, "never asked to verify");
	else
		result_note(r, "%zu pages intact over %zu verifications; %zu poisoned read(s) took a "
			    "machine check; %zu page(s) rewritten over %zu churn(s)",
			    pages - (target < pages), verifies, poisons, churned, churns);
	if (r->pass && blks + nets + vsocks)
		result_note(r, "devices: %zu blk read(s) of %llu bytes crc %08x, %zu net and %zu "
			    "vsock echo(es)", blks, blk_bytes0, blk_crc0, nets, vsocks);
}
