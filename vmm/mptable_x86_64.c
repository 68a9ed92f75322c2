/* MP table (Intel MultiProcessor Specification 1.4) encoder, byte by byte. */
#include "mptable_x86_64.h"

#include <errno.h>
#include <string.h>

#include "layout_x86_64.h"
#include "log.h"

#define MPF_SIZE 16
#define MPC_HEADER_SIZE 44
#define MPC_CPU_SIZE 20
#define MPC_SMALL_SIZE 8 /* bus, IOAPIC, interrupt source and local interrupt entries */
#define MP_NR_IRQS (LAYOUT_IRQ_MAX + 1)

enum { MP_PROCESSOR, MP_BUS, MP_IOAPIC, MP_INTSRC, MP_LINTSRC };
enum { MP_IRQ_INT = 0, MP_IRQ_NMI = 1, MP_IRQ_EXTINT = 3 };

#define APIC_VERSION 0x14
#define IOAPIC_VERSION 0x11
#define CPU_ENABLED 1
#define CPU_BOOTPROCESSOR 2
#define CPU_FEATURE_FPU (1u << 0)
#define CPU_FEATURE_APIC (1u << 9)
#define CPU_SIGNATURE 0x600 /* family 6: any modern x86 */

struct writer {
	uint8_t *p;
};

static void put8(struct writer *w, uint8_t v)
{
	*w->p++ = v;
}

static void put16(struct writer *w, uint16_t v)
{
	put8(w, v & 0xff);
	put8(w, v >> 8);
}

static void put32(struct writer *w, uint32_t v)
{
	put16(w, v & 0xffff);
	put16(w, v >> 16);
}

static void put_bytes(struct writer *w, const char *s, size_t n)
{
	memcpy(w->p, s, n);
	w->p += n;
}

static uint8_t checksum(const uint8_t *p, size_t n)
{
	uint8_t sum = 0;

	while (n--)
		sum += *p++;
	return (uint8_t)-sum;
}

size_t mptable_size(unsigned nr_cpus)
{
	return MPF_SIZE + MPC_HEADER_SIZE + nr_cpus * MPC_CPU_SIZE +
	       (2 + MP_NR_IRQS + 2) * MPC_SMALL_SIZE;
}

size_t mptable_build(uint8_t *buf, size_t cap, unsigned nr_cpus, uint64_t base)
{
	size_t total = mptable_size(nr_cpus), mpc_len = total - MPF_SIZE;
	uint8_t ioapic_id = (uint8_t)(nr_cpus + 1);
	uint8_t *mpc = buf + MPF_SIZE;
	struct writer w = { buf };

	if (cap < total || nr_cpus == 0 || nr_cpus > 254)
		return 0;
	memset(buf, 0, total);

	/* Floating pointer structure. */
	put_bytes(&w, "_MP_", 4);
	put32(&w, (uint32_t)(base + MPF_SIZE));
	put8(&w, 1);     /* length in 16-byte units */
	put8(&w, 4);     /* spec revision 1.4 */
	put8(&w, 0);     /* checksum, below */
	w.p += 5;        /* feature bytes: 0, a configuration table is present */

	/* Configuration table header. */
	put_bytes(&w, "PCMP", 4);
	put16(&w, (uint16_t)mpc_len);
	put8(&w, 4);
	put8(&w, 0);     /* checksum, below */
	put_bytes(&w, "KILN    ", 8);
	put_bytes(&w, "MICROVM     ", 12);
	put32(&w, 0);    /* OEM table pointer */
	put16(&w, 0);    /* OEM table size */
	put16(&w, (uint16_t)(nr_cpus + 2 + MP_NR_IRQS + 2));
	put32(&w, (uint32_t)LAYOUT_LAPIC_ADDR);
	put32(&w, 0);    /* extended table length, checksum, reserved */

	for (unsigned i = 0; i < nr_cpus; i++) {
		put8(&w, MP_PROCESSOR);
		put8(&w, (uint8_t)i);
		put8(&w, APIC_VERSION);
		put8(&w, CPU_ENABLED | (i == 0 ? CPU_BOOTPROCESSOR : 0));
		put32(&w, CPU_SIGNATURE);
		put32(&w, CPU_FEATURE_FPU | CPU_FEATURE_APIC);
		put32(&w, 0);
		put32(&w, 0);
	}

	put8(&w, MP_BUS);
	put8(&w, 0);
	put_bytes(&w, "ISA   ", 6);

	put8(&w, MP_IOAPIC);
	put8(&w, ioapic_id);
	put8(&w, IOAPIC_VERSION);
	put8(&w, 1);     /* enabled */
	put32(&w, (uint32_t)LAYOUT_IOAPIC_ADDR);

	for (unsigned irq = 0; irq < MP_NR_IRQS; irq++) {
		put8(&w, MP_INTSRC);
		put8(&w, MP_IRQ_INT);
		put16(&w, 0); /* polarity and trigger conform to the bus */
		put8(&w, 0);  /* source bus */
		put8(&w, (uint8_t)irq);
		put8(&w, ioapic_id);
		put8(&w, (uint8_t)irq);
	}

	put8(&w, MP_LINTSRC);
	put8(&w, MP_IRQ_EXTINT);
	put16(&w, 0);
	put8(&w, 0);
	put8(&w, 0);
	put8(&w, 0);     /* local APIC 0 */
	put8(&w, 0);     /* LINT0 */

	put8(&w, MP_LINTSRC);
	put8(&w, MP_IRQ_NMI);
	put16(&w, 0);
	put8(&w, 0);
	put8(&w, 0);
	put8(&w, 0xff);  /* every local APIC */
	put8(&w, 1);     /* LINT1 */

	mpc[7] = checksum(mpc, mpc_len);
	buf[10] = checksum(buf, MPF_SIZE);
	return total;
}

int mptable_setup(struct guest_memory *gm, unsigned nr_cpus)
{
	uint8_t buf[1024];
	size_t len = mptable_build(buf, sizeof(buf), nr_cpus, LAYOUT_EBDA);

	if (len == 0 || LAYOUT_EBDA + len > 0xa0000) {
		log_error("MP table: %u vCPUs do not fit in the EBDA", nr_cpus);
		return -EINVAL;
	}
	return guest_memory_write(gm, LAYOUT_EBDA, buf, len);
}
