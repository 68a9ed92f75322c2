/* kiln-agent tests that attack kiln from inside the guest, from user space through /dev/mem
 * and ioperm: kiln.test=hostile-mmio hammers every port and MMIO window kiln decodes, and
 * addresses it does not, with random accesses; kiln.test=hostile-virtq drives the virtio-mmio
 * devices itself and feeds them random virtqueues. The virtio-mmio and i8042 drivers are
 * unbound first, so the guest never trips over its own devices. kiln.seed=N makes a run
 * repeatable, kiln.secs=N bounds it. The host side is tests/e2e/scenarios/hostile.sh. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/io.h>
#include <sys/mman.h>
#include <sys/reboot.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"
#include "agent_hostile.h"

#ifndef MAP_HUGE_2MB
#define MAP_HUGE_2MB (21 << MAP_HUGE_SHIFT)
#endif

#define MMIO_GAP_START 0xd0000000ull /* kiln's layout_x86_64.h: the boot timer's page */
#define MMIO_GAP_END 0xfec00000ull   /* the IOAPIC and LAPIC above are KVM's, not kiln's */
#define HIGH_START (4ull << 30)      /* nothing above 4 GiB in a guest this small */
#define HIGH_END (64ull << 30)
#define RANDOM_PAGES 32
#define SERIAL 0x3f8
#define I8042_DATA 0x60
#define I8042_CMD 0x64
#define I8042_RESET_CPU 0xfe

uint64_t hostile_rand(struct hostile *h)
{
	h->rng ^= h->rng << 13;
	h->rng ^= h->rng >> 7;
	h->rng ^= h->rng << 17;
	return h->rng;
}

uint64_t hostile_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Edge values, powers of two, small numbers and noise, in equal shares. */
uint64_t hostile_value(struct hostile *h)
{
	static const uint64_t edge[] = { 0, 1, 2, 3, 4, 7, 8, 0xf, 0x10, 0x7f, 0x80, 0xff,
					 0x100, 0x7fff, 0x8000, 0xffff, 0x10000, 0x7fffffff,
					 0x80000000, 0xffffffff, 0x100000000ull, ~0ull };
	uint64_t r = hostile_rand(h);

	switch (r & 3) {
	case 0:
		return edge[(r >> 2) % (sizeof(edge) / sizeof(edge[0]))];
	case 1:
		return 1ull << ((r >> 2) % 64);
	case 2:
		return (r >> 2) % 512;
	default:
		return hostile_rand(h);
	}
}

/* One access of len bytes, as one instruction, whatever the alignment. */
uint64_t mmio_read(volatile void *p, unsigned len)
{
	uint64_t v;

	switch (len) {
	case 1: {
		uint8_t x;

		__asm__ volatile("movb %1, %0" : "=q"(x) : "m"(*(volatile uint8_t *)p));
		return x;
	}
	case 2: {
		uint16_t x;

		__asm__ volatile("movw %1, %0" : "=r"(x) : "m"(*(volatile uint16_t *)p));
		return x;
	}
	case 4: {
		uint32_t x;

		__asm__ volatile("movl %1, %0" : "=r"(x) : "m"(*(volatile uint32_t *)p));
		return x;
	}
	default:
		__asm__ volatile("movq %1, %0" : "=r"(v) : "m"(*(volatile uint64_t *)p));
		return v;
	}
}

void mmio_write(volatile void *p, unsigned len, uint64_t v)
{
	switch (len) {
	case 1:
		__asm__ volatile("movb %1, %0" : "=m"(*(volatile uint8_t *)p) : "q"((uint8_t)v));
		break;
	case 2:
		__asm__ volatile("movw %1, %0" : "=m"(*(volatile uint16_t *)p) : "r"((uint16_t)v));
		break;
	case 4:
		__asm__ volatile("movl %1, %0" : "=m"(*(volatile uint32_t *)p) : "r"((uint32_t)v));
		break;
	default:
		__asm__ volatile("movq %1, %0" : "=m"(*(volatile uint64_t *)p) : "r"(v));
		break;
	}
}

static int write_text(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC), ret = 0;

	if (fd < 0)
		return -errno;
	if (write(fd, text, strlen(text)) != (ssize_t)strlen(text))
		ret = -EIO;
	close(fd);
	return ret;
}

/* Unbinds every device of platform driver drv (each name in its sysfs directory holding a
 * '.', or named exactly prefix). Returns how many, or -errno. */
static int unbind(const char *drv, const char *prefix)
{
	char dir[96], path[128], names[16][64];
	int n = 0, done = 0;
	struct dirent *e;
	DIR *d;

	snprintf(dir, sizeof(dir), "/sys/bus/platform/drivers/%s", drv);
	d = opendir(dir);
	if (!d)
		return errno == ENOENT ? 0 : -errno;
	while ((e = readdir(d)) && n < 16)
		if (!strncmp(e->d_name, prefix, strlen(prefix)) && strlen(e->d_name) < 64)
			snprintf(names[n++], sizeof(names[0]), "%s", e->d_name);
	closedir(d);
	snprintf(path, sizeof(path), "%s/unbind", dir);
	for (int i = 0; i < n; i++)
		done += write_text(path, names[i]) == 0;
	return done;
}

/* The end of the highest "System RAM" range in /proc/iomem. */
static uint64_t ram_end(void)
{
	char line[256];
	uint64_t end = 0;
	FILE *f = fopen("/proc/iomem", "re");

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f)) {
		unsigned long long a, b;

		if (line[0] != ' ' && strstr(line, ": System RAM") &&
		    sscanf(line, "%llx-%llx", &a, &b) == 2 && b + 1 > end)
			end = b + 1;
	}
	fclose(f);
	return end;
}

void *hostile_map(struct hostile *h, uint64_t gpa)
{
	void *p = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, h->mem_fd, (off_t)gpa);

	return p == MAP_FAILED ? NULL : p;
}

/* The virtio-mmio windows kiln announced with virtio_mmio.device=4K@BASE:IRQ. */
static int find_devices(const struct agent *a, struct hostile *h, struct result *r)
{
	const char *p = a->cmdline;

	while ((p = strstr(p, "virtio_mmio.device=")) && h->nr_dev < MAX_VDEV) {
		const char *at = strchr(p, '@');
		struct vdev *d = &h->dev[h->nr_dev];
		unsigned long long base;
		unsigned irq;

		p += strlen("virtio_mmio.device=");
		if (!at || sscanf(at + 1, "%llx:%u", &base, &irq) != 2)
			continue;
		d->base = base;
		d->regs = hostile_map(h, base);
		if (!d->regs) {
			result_fail(r, "mmap of /dev/mem at 0x%llx: %s", base, strerror(errno));
			return -1;
		}
		if (vreg(d, R_MAGIC) != 0x74726976u) {
			result_fail(r, "no virtio-mmio magic at 0x%llx", base);
			return -1;
		}
		d->id = vreg(d, R_DEVICE_ID);
		vreg_set(d, R_DEV_FEATURES_SEL, 1);
		d->features = (uint64_t)vreg(d, R_DEV_FEATURES) << 32;
		vreg_set(d, R_DEV_FEATURES_SEL, 0);
		d->features |= vreg(d, R_DEV_FEATURES);
		for (d->nq = 0; d->nq < MAX_VQ; d->nq++) {
			vreg_set(d, R_QUEUE_SEL, d->nq);
			d->qmax[d->nq] = (uint16_t)vreg(d, R_QUEUE_NUM_MAX);
			if (!d->qmax[d->nq])
				break;
		}
		h->nr_dev++;
	}
	if (!h->nr_dev) {
		result_fail(r, "no virtio_mmio.device= on the command line");
		return -1;
	}
	return 0;
}

int hostile_setup(const struct agent *a, struct hostile *h, struct result *r)
{
	unsigned long seed = 0, secs = 20;
	int ret, unbound;

	memset(h, 0, sizeof(*h));
	if (param_ulong(a, "seed", &seed) < 0 || param_ulong(a, "secs", &secs) < 0) {
		result_fail(r, "kiln.seed and kiln.secs must be numbers");
		return -1;
	}
	if (!seed)
		seed = (unsigned long)time(NULL);
	h->rng = seed * 0x9e3779b97f4a7c15ull | 1;
	h->deadline_ms = hostile_now_ms() + secs * 1000;
	printf("kiln-hostile: seed=%lu secs=%lu\n", seed, secs);
	/* Off the devices before anything touches them: their drivers reset them on the way. */
	unbound = unbind("virtio-mmio", "virtio-mmio.");
	if (unbound < 0) {
		result_fail(r, "unbinding virtio-mmio: %s", strerror(-unbound));
		return -1;
	}
	h->mem_fd = open("/dev/mem", O_RDWR | O_SYNC | O_CLOEXEC);
	if (h->mem_fd < 0) {
		result_fail(r, "open /dev/mem: %s", strerror(errno));
		return -1;
	}
	h->ram_end = ram_end();
	if (!h->ram_end) {
		result_fail(r, "no System RAM in /proc/iomem");
		return -1;
	}
	if (find_devices(a, h, r) < 0)
		return -1;
	/* The rings and buffers live in one guest huge page: 2 MiB of physically contiguous RAM
	 * that is the agent's alone. */
	if ((ret = reserve_hugepages(1)) < 0) {
		result_fail(r, "cannot reserve a guest huge page: %s", strerror(-ret));
		return -1;
	}
	h->scratch = mmap(NULL, HUGE, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB | MAP_HUGE_2MB | MAP_POPULATE,
			  -1, 0);
	if (h->scratch == MAP_FAILED || mlock(h->scratch, HUGE) != 0 ||
	    guest_phys(h->scratch, &h->scratch_gpa) < 0 || h->scratch_gpa % HUGE) {
		result_fail(r, "a locked guest huge page: %s", strerror(errno));
		return -1;
	}
	printf("kiln-hostile: %u virtio devices (unbound: %d), RAM ends at 0x%" PRIx64
	       ", scratch at 0x%" PRIx64 "\n", h->nr_dev, unbound, h->ram_end, h->scratch_gpa);
	for (unsigned i = 0; i < h->nr_dev; i++)
		printf("kiln-hostile: device %u at 0x%" PRIx64 ": id %u, features 0x%" PRIx64
		       ", %u queues\n", i, h->dev[i].base, h->dev[i].id, h->dev[i].features,
		       h->dev[i].nq);
	return 0;
}

void vdev_reset(struct vdev *d)
{
	vreg_set(d, R_STATUS, 0);
}

/* --- kiln.test=hostile-mmio --- */

/* Where ring kind k (0 descriptors, 1 available, 2 used) may lie in the scratch page: each in
 * its own third, so kiln's writes to a used ring never land on a descriptor table or an
 * available ring (which hold only 0x00 and 0xff bytes: no buffer kiln could write to). */
#define RING_AREA (640u << 10)

/* A queue address's low half that keeps ring kind k out of the guest's own memory: in its
 * area of the scratch page (leaving room for the largest ring), past the end of RAM, or
 * misaligned. The high half may be anything: any non-zero value puts the ring beyond RAM. */
static uint32_t safe_ring_low(struct hostile *h, unsigned k)
{
	uint64_t r = hostile_rand(h);

	switch (r % 4) {
	case 0:
	case 1:
		return (uint32_t)(h->scratch_gpa + k * RING_AREA + (r >> 8) % (RING_AREA - 0x2000));
	case 2:
		return (uint32_t)(h->ram_end + (r >> 8) % (MMIO_GAP_START - h->ram_end));
	default:
		return (uint32_t)(0xffffffffu - (r >> 8) % 0x2000);
	}
}

/* Which ring kind the register at off holds the low half of, or -1. */
static int ring_low(uint64_t off)
{
	return off == R_DESC_LO ? 0 : off == R_DRIVER_LO ? 1 : off == R_DEVICE_LO ? 2 : -1;
}

static const uint16_t vregs[] = { R_MAGIC, R_VERSION, R_DEVICE_ID, 0x00c, R_DEV_FEATURES,
				  R_DEV_FEATURES_SEL, R_DRV_FEATURES, R_DRV_FEATURES_SEL,
				  R_QUEUE_SEL, R_QUEUE_NUM_MAX, R_QUEUE_NUM, R_QUEUE_READY,
				  R_QUEUE_NOTIFY, R_INT_STATUS, R_INT_ACK, R_STATUS, R_DESC_LO,
				  R_DESC_HI, R_DRIVER_LO, R_DRIVER_HI, R_DEVICE_LO, R_DEVICE_HI,
				  0x0ac, 0x0b0, 0x0b4, 0x0b8, 0x0bc, 0x0c0, 0x0fc };

/* One access to a virtio-mmio window: a register by its offset, anywhere in the window, or
 * in the configuration space; a ring address written is always a safe one. */
static void poke_virtio(struct hostile *h)
{
	struct vdev *d = &h->dev[hostile_rand(h) % h->nr_dev];
	uint64_t r = hostile_rand(h), off, v = hostile_value(h);
	unsigned len = (r & 3) ? 4 : 1u << ((r >> 2) % 4);

	switch ((r >> 4) % 8) {
	case 0:
		off = (r >> 8) % PAGE;
		break;
	case 1:
		off = 0x100 + (r >> 8) % 0x100;
		break;
	default:
		off = vregs[(r >> 8) % (sizeof(vregs) / sizeof(vregs[0]))] + ((r >> 20) % 16 == 0);
		break;
	}
	if (off + len > PAGE)
		off = PAGE - len;
	if (off == R_STATUS && (r >> 30) % 2)
		v = (r >> 32) & 0xff; /* the status bits, in all their combinations */
	if (r & (1ull << 40)) {
		(void)mmio_read(d->regs + off, len);
		return;
	}
	/* kiln takes registers only as aligned 4-byte accesses; 8-byte ones are kept safe too. */
	if (off % 4 == 0 && ring_low(off) >= 0 && len >= 4)
		v = (v & ~0xffffffffull) | safe_ring_low(h, (unsigned)ring_low(off));
	if (off % 4 == 0 && len == 8 && ring_low(off + 4) >= 0)
		v = (v & 0xffffffffull) | (uint64_t)safe_ring_low(h, (unsigned)ring_low(off + 4)) << 32;
	mmio_write(d->regs + off, len, v);
}

/* Walks a device through its initialisation with its rings in their areas of the scratch page,
 * then notifies: the deeper states. */
static void init_virtio(struct hostile *h)
{
	struct vdev *d = &h->dev[hostile_rand(h) % h->nr_dev];
	uint64_t r = hostile_rand(h);

	vdev_reset(d);
	vreg_set(d, R_STATUS, S_ACK | S_DRIVER);
	vreg_set(d, R_DRV_FEATURES_SEL, 1);
	vreg_set(d, R_DRV_FEATURES, r & 1 ? 1 : (uint32_t)(d->features >> 32));
	vreg_set(d, R_DRV_FEATURES_SEL, 0);
	vreg_set(d, R_DRV_FEATURES, (uint32_t)(d->features & hostile_rand(h)));
	vreg_set(d, R_STATUS, S_ACK | S_DRIVER | S_FEATURES_OK);
	for (unsigned q = 0; q < d->nq; q++) {
		uint64_t at = h->scratch_gpa + (hostile_rand(h) % (RING_AREA / PAGE - 1)) * PAGE;

		vreg_set(d, R_QUEUE_SEL, q);
		vreg_set(d, R_QUEUE_NUM, 1u << (hostile_rand(h) % 9));
		vreg_set(d, R_DESC_LO, (uint32_t)at);
		vreg_set(d, R_DRIVER_LO, (uint32_t)(at + RING_AREA));
		vreg_set(d, R_DEVICE_LO, (uint32_t)(at + 2 * RING_AREA));
		vreg_set(d, R_QUEUE_READY, 1);
	}
	vreg_set(d, R_STATUS, S_ACK | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK);
	vreg_set(d, R_QUEUE_NOTIFY, (r >> 8) % 4 ? (uint32_t)((r >> 16) % (d->nq + 1))
						: (uint32_t)hostile_value(h));
}

/*
 * Two bits no random write may set. The i8042's CPU reset would end the run early. The UART's
 * DLAB would livelock the guest in its own 8250 driver: its interrupt handler reads the receive
 * buffer, which with DLAB set gives the divisor latch and leaves the data pending, so a receive
 * interrupt would fire for ever (on real hardware too). poke_divisor covers the divisor latch.
 */
static void sanitize(uint16_t port, unsigned size, uint8_t *buf, unsigned count)
{
	for (unsigned i = 0; i < count; i++)
		for (unsigned b = 0; b < size; b++) {
			uint8_t *v = &buf[i * size + b];

			if (port + b == I8042_CMD && *v == I8042_RESET_CPU)
				*v = 0xff;
			if (port + b == SERIAL + 3)
				*v &= 0x7f;
		}
}

/* KVM's own devices (PIC, PIT, speaker port, ELCR): random writes there break the guest, not
 * kiln. */
static bool kvm_port(uint16_t p)
{
	return (p >= 0x20 && p <= 0x21) || (p >= 0xa0 && p <= 0xa1) || (p >= 0x40 && p <= 0x43) ||
	       p == 0x61 || (p >= 0x4d0 && p <= 0x4d1);
}

/* One port access (or a string of them) at port, or a random port for port 0. */
static void poke_port(struct hostile *h, uint16_t base, unsigned span, bool string)
{
	static uint8_t buf[PAGE];
	uint64_t r = hostile_rand(h), v = hostile_value(h);
	/* Kept short: each element of a string costs an exit of its own under nested KVM. */
	unsigned size = 1u << (r % 3), count = 1 + (unsigned)((r >> 8) % 64);
	uint16_t port = (uint16_t)(base ? base + (r >> 24) % span : (r >> 24) & 0xffff);

	if (kvm_port(port) || kvm_port((uint16_t)(port + size - 1)))
		return;
	if (string) {
		if ((r >> 40) & 1) {
			for (unsigned i = 0; i < count * size; i++)
				buf[i] = (uint8_t)hostile_value(h);
			sanitize(port, size, buf, count);
			size == 1 ? outsb(port, buf, count) : size == 2 ? outsw(port, buf, count)
								: outsl(port, buf, count);
		} else {
			size == 1 ? insb(port, buf, count) : size == 2 ? insw(port, buf, count)
							       : insl(port, buf, count);
		}
		return;
	}
	if ((r >> 40) & 1) {
		uint8_t b[4];

		memcpy(b, &v, 4);
		sanitize(port, size, b, 1);
		memcpy(&v, b, 4);
		size == 1 ? outb((uint8_t)v, port) : size == 2 ? outw((uint16_t)v, port)
							   : outl((uint32_t)v, port);
	} else {
		(void)(size == 1 ? inb(port) : size == 2 ? inw(port) : inl(port));
	}
}

/* The divisor latch, with the UART's interrupts off meanwhile (see sanitize). */
static void poke_divisor(struct hostile *h)
{
	uint8_t ier = inb(SERIAL + 1), lcr = inb(SERIAL + 3);

	outb(0, SERIAL + 1);
	outb(lcr | 0x80, SERIAL + 3);
	outb((uint8_t)hostile_value(h), SERIAL + (hostile_rand(h) & 1));
	(void)inb(SERIAL + (hostile_rand(h) & 1));
	outb(lcr & 0x7f, SERIAL + 3);
	outb(ier, SERIAL + 1);
}

struct uart_regs {
	uint8_t lcr, mcr, ier, scr, dll, dlm;
};

static void uart_save(struct uart_regs *u)
{
	u->lcr = inb(SERIAL + 3);
	u->mcr = inb(SERIAL + 4);
	u->ier = inb(SERIAL + 1);
	u->scr = inb(SERIAL + 7);
	outb(u->lcr | 0x80, SERIAL + 3);
	u->dll = inb(SERIAL);
	u->dlm = inb(SERIAL + 1);
	outb(u->lcr, SERIAL + 3);
}

/* Puts the console's UART back as the 8250 driver left it, its FIFOs enabled and emptied;
 * interrupts stay off until the divisor latch is closed again. */
static void uart_restore(const struct uart_regs *u)
{
	outb(0, SERIAL + 1);
	outb(u->mcr, SERIAL + 4);
	outb(0x83, SERIAL + 2);
	outb(0x80, SERIAL + 3);
	outb(u->dll, SERIAL);
	outb(u->dlm, SERIAL + 1);
	outb(u->lcr, SERIAL + 3);
	outb(u->scr, SERIAL + 7);
	outb(u->ier, SERIAL + 1);
}

/* After the storm: each virtio window resets and still reads as a device, the UART keeps its
 * scratch register, and the i8042 passes its self-test. */
static void check_devices(struct hostile *h, struct result *r)
{
	int n;

	for (unsigned i = 0; i < h->nr_dev; i++) {
		struct vdev *d = &h->dev[i];

		vdev_reset(d);
		if (vreg(d, R_STATUS) || vreg(d, R_MAGIC) != 0x74726976u || vreg(d, R_VERSION) != 2 ||
		    vreg(d, R_DEVICE_ID) != d->id)
			result_fail(r, "device at 0x%" PRIx64 " after the storm: status 0x%x, magic "
				    "0x%x, id %u", d->base, vreg(d, R_STATUS), vreg(d, R_MAGIC),
				    vreg(d, R_DEVICE_ID));
	}
	outb(0x5a, SERIAL + 7);
	if (inb(SERIAL + 7) != 0x5a || !(inb(SERIAL + 5) & 0x20))
		result_fail(r, "the UART lost its scratch register or THRE");
	for (n = 0; n < 64 && (inb(I8042_CMD) & 1); n++)
		(void)inb(I8042_DATA);
	outb(0xaa, I8042_CMD);
	for (n = 0; n < 64 && !(inb(I8042_CMD) & 1); n++)
		;
	if (n == 64 || inb(I8042_DATA) != 0x55)
		result_fail(r, "the i8042 failed its self-test after the storm");
}

/* Maps unclaimed pages into pages: the boot timer's, then ones past the end of RAM, in the MMIO
 * gap and above 4 GiB (where /dev/mem lets us: the guest's physical address width may not
 * reach). Returns how many. */
static unsigned map_unclaimed(struct hostile *h, volatile uint8_t **pages)
{
	unsigned nr = 0, high = 0;

	pages[nr] = hostile_map(h, MMIO_GAP_START);
	nr += pages[nr] != NULL;
	for (unsigned k = 0; nr < RANDOM_PAGES + 1 && k < 8 * RANDOM_PAGES; k++) {
		uint64_t rr = hostile_rand(h), gpa;

		if (k % 4 == 0)
			gpa = HIGH_START + (rr % ((HIGH_END - HIGH_START) / PAGE)) * PAGE;
		else if (k % 4 == 1)
			gpa = h->ram_end + (rr % 4) * PAGE;
		else
			gpa = MMIO_GAP_START + (1 + h->nr_dev + rr % ((MMIO_GAP_END - MMIO_GAP_START) /
								    PAGE - 1 - h->nr_dev)) * PAGE;
		pages[nr] = hostile_map(h, gpa);
		if (pages[nr]) {
			nr++;
			high += gpa >= HIGH_START;
		}
	}
	printf("kiln-hostile: %u unclaimed pages mapped, %u of them above 4 GiB\n", nr, high);
	return nr;
}

enum { K_VIRTIO, K_VIRTIO_INIT, K_SERIAL, K_I8042, K_PAGES, K_PORTS, K_STRING, K_NR };

/* One access of kind k (chosen by p, a number below 100). */
static void one_access(struct hostile *h, unsigned k, uint64_t p, volatile uint8_t **pages,
		       unsigned nr_pages)
{
	volatile uint8_t *page;
	uint64_t rr, off;
	unsigned len;

	switch (k) {
	case K_VIRTIO:
		poke_virtio(h);
		break;
	case K_VIRTIO_INIT:
		init_virtio(h);
		break;
	case K_SERIAL:
		if ((p & 15) == 1)
			poke_divisor(h);
		else
			poke_port(h, SERIAL, 8, (p & 7) == 0);
		break;
	case K_I8042:
		poke_port(h, I8042_DATA, 5, (p & 7) == 0);
		break;
	case K_PAGES:
		page = pages[hostile_rand(h) % nr_pages];
		rr = hostile_rand(h);
		len = 1u << (rr % 4);
		off = (rr >> 8) % (PAGE - len + 1);
		if ((rr >> 40) & 1)
			mmio_write(page + off, len, hostile_value(h));
		else
			(void)mmio_read(page + off, len);
		break;
	default:
		poke_port(h, 0, 0, k == K_STRING);
		break;
	}
}

void test_hostile_mmio(const struct agent *a, struct result *r)
{
	/* Shares of the kinds, in percent: virtio registers, whole virtio initialisations,
	 * serial, i8042, unclaimed MMIO pages, random ports, random string I/O. */
	static const unsigned share[K_NR] = { 40, 3, 15, 15, 12, 8, 7 };
	static const char *const names[K_NR] = { "virtio", "virtio-init", "serial", "i8042",
						 "mmio-pages", "ports", "string-io" };
	volatile uint8_t *pages[RANDOM_PAGES + 1];
	unsigned long max_ops = 200000, kinds = (1u << K_NR) - 1; /* kiln.kinds: a mask */
	uint64_t ops[K_NR] = { 0 }, t0, n, total = 0;
	struct hostile h;
	struct uart_regs u;
	struct termios tio, raw;
	unsigned nr_pages;

	if (hostile_setup(a, &h, r) < 0)
		return;
	if (param_ulong(a, "ops", &max_ops) < 0 || param_ulong(a, "kinds", &kinds) < 0 ||
	    iopl(3) != 0) {
		result_fail(r, "kiln.ops or kiln.kinds is not a number, or iopl(3): %s",
			    strerror(errno));
		return;
	}
	/* Keyboard bytes must reach no one: no i8042 driver, no Ctrl+Alt+Del, no SysRq. */
	printf("kiln-hostile: i8042 unbound: %d\n", unbind("i8042", "i8042"));
	reboot(RB_DISABLE_CAD);
	if (write_text("/proc/sys/kernel/sysrq", "0\n") < 0)
		result_note(r, "SysRq stays on");
	/* Rings kiln may find in the scratch page: 0x00 or 0xff pages, no buffer valid. */
	memset(h.scratch, 0, HUGE);
	for (size_t i = 0; i < HUGE; i += 2 * PAGE)
		memset(h.scratch + i, 0xff, PAGE);
	nr_pages = map_unclaimed(&h, pages);
	if (!nr_pages) {
		result_fail(r, "no page of the MMIO gap could be mapped");
		return;
	}
	/* The console goes raw and quiet: a UART in loopback must not feed an echo storm. */
	fflush(stdout);
	tcdrain(STDOUT_FILENO);
	tcgetattr(STDIN_FILENO, &tio);
	raw = tio;
	cfmakeraw(&raw);
	tcsetattr(STDIN_FILENO, TCSANOW, &raw);
	uart_save(&u);
	t0 = hostile_now_ms();
	for (n = 0; n < max_ops && (n % 256 || hostile_now_ms() < h.deadline_ms); n++) {
		uint64_t p = hostile_rand(&h) % 100;
		unsigned k = 0, sum = share[0];

		while (p >= sum)
			sum += share[++k];
		if (kinds & (1u << k)) {
			ops[k]++;
			one_access(&h, k, p, pages, nr_pages);
		}
	}
	uart_restore(&u);
	tcflush(STDIN_FILENO, TCIOFLUSH);
	tcsetattr(STDIN_FILENO, TCSANOW, &tio);
	t0 = hostile_now_ms() - t0;
	printf("\nkiln-hostile: ");
	for (unsigned k = 0; k < K_NR; k++) {
		printf("%s %" PRIu64 "%s", names[k], ops[k], k + 1 < K_NR ? ", " : "\n");
		total += ops[k];
	}
	printf("kiln-hostile: %" PRIu64 " accesses in %" PRIu64 " ms\n", total, t0);
	check_devices(&h, r);
	result_note(r, "accesses=%" PRIu64 " in %" PRIu64 " ms", total, t0);
}
