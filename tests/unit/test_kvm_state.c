/* Unit tests for migration/kvm_state_x86_64.c: every field of every struct round-trips, the
 * payload layout is the documented one, hostile payloads are refused before any ioctl, and save
 * and load drive a fake KVM (__wrap_ioctl) in the required order. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kvm_state_x86_64.h"
#include "log.h"
#include "mce_x86_64.h"
#include "state.h"

#define KVM_FD 3
#define VM_FD 5
#define VCPU_FD 7

/* Encoded sizes, from the layout in docs/state-format.md. */
#define CPUID_ENTRY_BYTES 28u  /* 7 x u32 */
#define REGS_BYTES 144u        /* 18 x u64 */
#define SREGS_BYTES 292u       /* 8 segments of 23, 2 tables of 10, 11 x u64 */
#define XSAVE_BYTES 4096u
#define XCR_BYTES 12u
#define DEBUGREGS_BYTES 56u
#define LAPIC_BYTES 1024u
#define MSR_BYTES 12u
#define EVENTS_BYTES 37u
#define VM_BYTES (2 * 16u + 20u + 24 * 8u + 3 * 24u + 4u + 12u)

static size_t vcpu_bytes(unsigned cpuid, unsigned xcrs, unsigned msrs)
{
	return 4 + 4 + cpuid * CPUID_ENTRY_BYTES + 4 + REGS_BYTES + SREGS_BYTES + XSAVE_BYTES +
	       8 + xcrs * XCR_BYTES + DEBUGREGS_BYTES + LAPIC_BYTES + 4 + msrs * MSR_BYTES +
	       EVENTS_BYTES + 4;
}

/* Distinct bytes within any 256, shifted between blocks of 256, so no two fields are equal. */
static void pattern(void *p, size_t n, unsigned seed)
{
	uint8_t *q = p;

	for (size_t i = 0; i < n; i++)
		q[i] = (uint8_t)(seed + i + 0x55 * (i >> 8));
}

static uint64_t msr_value(uint32_t index)
{
	return index * 0x9e3779b97f4a7c15ull;
}

/* A vCPU state with every carried field set and every other byte zero. */
static void fill_vcpu(struct kvm_state_vcpu *s, unsigned id, unsigned nr_cpuid, unsigned nr_msrs)
{
	struct kvm_segment *seg[] = { &s->sregs.cs, &s->sregs.ds, &s->sregs.es, &s->sregs.fs,
				      &s->sregs.gs, &s->sregs.ss, &s->sregs.tr, &s->sregs.ldt };

	memset(s, 0, sizeof(*s));
	s->id = id;
	s->cpuid.head.nent = nr_cpuid;
	pattern(s->cpuid.entries, nr_cpuid * sizeof(s->cpuid.entries[0]), 1);
	for (unsigned i = 0; i < nr_cpuid; i++)
		memset(s->cpuid.entries[i].padding, 0, sizeof(s->cpuid.entries[i].padding));
	s->tsc_khz = 2999876;
	pattern(&s->regs, sizeof(s->regs), 2);
	pattern(&s->sregs, sizeof(s->sregs), 3);
	for (unsigned i = 0; i < 8; i++)
		seg[i]->padding = 0;
	memset(s->sregs.gdt.padding, 0, sizeof(s->sregs.gdt.padding));
	memset(s->sregs.idt.padding, 0, sizeof(s->sregs.idt.padding));
	pattern(s->xsave.region, sizeof(s->xsave.region), 4);
	s->xcrs.nr_xcrs = 2;
	s->xcrs.flags = 0x1234;
	pattern(s->xcrs.xcrs, 2 * sizeof(s->xcrs.xcrs[0]), 5);
	s->xcrs.xcrs[0].reserved = s->xcrs.xcrs[1].reserved = 0;
	pattern(&s->debugregs, offsetof(struct kvm_debugregs, reserved), 6);
	pattern(s->lapic.regs, sizeof(s->lapic.regs), 7);
	s->msrs.head.nmsrs = nr_msrs;
	for (unsigned i = 0; i < nr_msrs; i++)
		s->msrs.entries[i] = (struct kvm_msr_entry){ .index = 0x1000 + 3 * i,
							     .data = msr_value(i) };
	pattern(&s->events, sizeof(s->events), 8);
	s->events.nmi.pad = 0;
	memset(s->events.reserved, 0, sizeof(s->events.reserved));
	s->events.flags = 0x3f; /* every flag KVM 6.1 knows */
	s->mp_state.mp_state = KVM_MP_STATE_HALTED;
}

static void fill_vm(struct kvm_state_vm *s)
{
	memset(s, 0, sizeof(*s));
	pattern(&s->pic[0], sizeof(s->pic[0]), 10);
	pattern(&s->pic[1], sizeof(s->pic[1]), 40);
	pattern(&s->ioapic, sizeof(s->ioapic), 70);
	s->ioapic.pad = 0;
	pattern(s->pit.channels, sizeof(s->pit.channels), 100);
	s->pit.flags = KVM_PIT_FLAGS_HPET_LEGACY | KVM_PIT_FLAGS_SPEAKER_DATA_ON;
	s->clock.clock = 0x0123456789abcdefull;
	s->clock.flags = KVM_CLOCK_TSC_STABLE | KVM_CLOCK_REALTIME | KVM_CLOCK_HOST_TSC;
}

/* --- The fake KVM --- */

static struct {
	unsigned long calls[64];
	size_t nr_calls;
	unsigned long fail_request;     /* fails with fail_errno */
	int fail_errno;
	struct kvm_state_vm vm;
	struct kvm_state_vcpu vcpu;     /* what the vCPU holds; MSRs as KVM_SET_MSRS set them */
	uint32_t tsc_khz;
	const uint32_t *index_list;     /* KVM_GET_MSR_INDEX_LIST */
	uint32_t nr_index;
	uint32_t unreadable[2];         /* KVM_GET_MSRS stops at these */
	uint32_t unwritable;            /* KVM_SET_MSRS stops at this one */
} fake;

static bool is_vm_request(unsigned long request)
{
	return request == KVM_GET_IRQCHIP || request == KVM_SET_IRQCHIP ||
	       request == KVM_GET_PIT2 || request == KVM_SET_PIT2 ||
	       request == KVM_GET_CLOCK || request == KVM_SET_CLOCK;
}

static int fake_irqchip(struct kvm_irqchip *chip, bool set)
{
	void *kept = &fake.vm.ioapic;
	size_t n = sizeof(fake.vm.ioapic);

	assert_true(chip->chip_id < KVM_NR_IRQCHIPS);
	if (chip->chip_id != KVM_IRQCHIP_IOAPIC) {
		kept = &fake.vm.pic[chip->chip_id];
		n = sizeof(fake.vm.pic[0]);
	}
	if (set)
		memcpy(kept, &chip->chip, n);
	else
		memcpy(&chip->chip, kept, n);
	return 0;
}

static int fake_get_msrs(struct kvm_msrs *m)
{
	for (uint32_t i = 0; i < m->nmsrs; i++) {
		if (m->entries[i].index == fake.unreadable[0] ||
		    m->entries[i].index == fake.unreadable[1])
			return (int)i;
		m->entries[i].data = msr_value(m->entries[i].index);
	}
	return (int)m->nmsrs;
}

static int fake_set_msrs(const struct kvm_msrs *m)
{
	for (uint32_t i = 0; i < m->nmsrs; i++) {
		if (m->entries[i].index == fake.unwritable)
			return (int)i;
		fake.vcpu.msrs.entries[fake.vcpu.msrs.head.nmsrs++] = m->entries[i];
	}
	return (int)m->nmsrs;
}

/* Copies between arg and the fake's copy of a struct, by direction of the request. */
#define GET_SET(get, set, field) \
	case get: memcpy(arg, &(field), sizeof(field)); return 0; \
	case set: memcpy(&(field), arg, sizeof(field)); return 0;

int __wrap_ioctl(int fd, unsigned long request, ...);
int __wrap_ioctl(int fd, unsigned long request, ...)
{
	struct kvm_state_vcpu *v = &fake.vcpu;
	va_list ap;
	void *arg;

	va_start(ap, request);
	arg = va_arg(ap, void *);
	va_end(ap);
	assert_true(fake.nr_calls < sizeof(fake.calls) / sizeof(fake.calls[0]));
	fake.calls[fake.nr_calls++] = request;
	assert_int_equal(fd, request == KVM_GET_MSR_INDEX_LIST ? KVM_FD
			     : is_vm_request(request)           ? VM_FD
								: VCPU_FD);
	if (request == fake.fail_request) {
		errno = fake.fail_errno;
		return -1;
	}
	switch (request) {
	case KVM_GET_MSR_INDEX_LIST: {
		struct kvm_msr_list *l = arg;
		uint32_t room = l->nmsrs;

		l->nmsrs = fake.nr_index;
		if (room < fake.nr_index) {
			errno = E2BIG;
			return -1;
		}
		if (fake.nr_index)
			memcpy(l->indices, fake.index_list, fake.nr_index * sizeof(uint32_t));
		return 0;
	}
	case KVM_GET_IRQCHIP:
	case KVM_SET_IRQCHIP:
		return fake_irqchip(arg, request == KVM_SET_IRQCHIP);
	GET_SET(KVM_GET_PIT2, KVM_SET_PIT2, fake.vm.pit)
	GET_SET(KVM_GET_CLOCK, KVM_SET_CLOCK, fake.vm.clock)
	case KVM_GET_CPUID2: {
		struct kvm_cpuid2 *c = arg;
		uint32_t room = c->nent;

		c->nent = v->cpuid.head.nent;
		if (room < c->nent) {
			errno = E2BIG;
			return -1;
		}
		memcpy(c->entries, v->cpuid.entries, c->nent * sizeof(c->entries[0]));
		return 0;
	}
	case KVM_SET_CPUID2: {
		const struct kvm_cpuid2 *c = arg;

		assert_true(c->nent <= CPUID_MAX_ENTRIES);
		v->cpuid.head.nent = c->nent;
		memcpy(v->cpuid.entries, c->entries, c->nent * sizeof(c->entries[0]));
		return 0;
	}
	case KVM_GET_TSC_KHZ:
		return (int)fake.tsc_khz;
	case KVM_SET_TSC_KHZ:
		fake.tsc_khz = (uint32_t)(uintptr_t)arg;
		return 0;
	GET_SET(KVM_GET_MP_STATE, KVM_SET_MP_STATE, v->mp_state)
	GET_SET(KVM_GET_REGS, KVM_SET_REGS, v->regs)
	GET_SET(KVM_GET_SREGS, KVM_SET_SREGS, v->sregs)
	GET_SET(KVM_GET_XSAVE, KVM_SET_XSAVE, v->xsave)
	GET_SET(KVM_GET_XCRS, KVM_SET_XCRS, v->xcrs)
	GET_SET(KVM_GET_DEBUGREGS, KVM_SET_DEBUGREGS, v->debugregs)
	GET_SET(KVM_GET_LAPIC, KVM_SET_LAPIC, v->lapic)
	GET_SET(KVM_GET_VCPU_EVENTS, KVM_SET_VCPU_EVENTS, v->events)
	case KVM_GET_MSRS:
		return fake_get_msrs(arg);
	case KVM_SET_MSRS:
		return fake_set_msrs(arg);
	default:
		fail_msg("unexpected ioctl 0x%lx", request);
		return -1;
	}
}

static void fake_reset(void)
{
	memset(&fake, 0, sizeof(fake));
}

static void assert_calls(const unsigned long *want, size_t n)
{
	for (size_t i = 0; i < n && i < fake.nr_calls; i++) {
		if (fake.calls[i] != want[i])
			fail_msg("ioctl %zu: 0x%lx, expected 0x%lx", i, fake.calls[i], want[i]);
	}
	assert_int_equal(fake.nr_calls, n);
}

#define ASSERT_CALLS(...)                                                   \
	do {                                                                \
		const unsigned long want_[] = { __VA_ARGS__ };              \
		assert_calls(want_, sizeof(want_) / sizeof(want_[0]));      \
	} while (0)

/* A cursor over exactly the first len bytes of b, in their own allocation so that ASan sees
 * any read past them. */
static struct state_cursor prefix(const struct state_buf *b, size_t len, uint8_t **copy)
{
	*copy = malloc(len ? len : 1);
	assert_non_null(*copy);
	memcpy(*copy, b->data, len);
	return (struct state_cursor){ .p = *copy, .len = len };
}

/* --- Pure encode/decode --- */

static void encode_vm_decode_round_trips_every_field(void **state)
{
	struct kvm_state_vm in, out;
	struct state_cursor c;
	struct state_buf b;
	char err[128];

	fill_vm(&in);
	state_buf_init(&b);
	kvm_state_encode_vm(&b, &in);
	assert_false(b.failed);
	assert_int_equal(b.len, VM_BYTES);
	c = (struct state_cursor){ .p = b.data, .len = b.len };
	assert_int_equal(kvm_state_decode_vm(&c, &out, err, sizeof(err)), 0);
	assert_memory_equal(&in, &out, sizeof(in));
	/* The first field is the master PIC's last_irr, the last the clock's flags, LE. */
	assert_int_equal(b.data[0], in.pic[0].last_irr);
	assert_int_equal(b.data[b.len - 4], KVM_CLOCK_TSC_STABLE | KVM_CLOCK_REALTIME |
					     KVM_CLOCK_HOST_TSC);
	state_buf_free(&b);
}

static void encode_vcpu_decode_round_trips_every_field(void **state)
{
	struct kvm_state_vcpu *in = malloc(sizeof(*in)), *out = malloc(sizeof(*out));
	struct state_cursor c;
	struct state_buf b;
	char err[128];

	fill_vcpu(in, 3, 80, 300);
	state_buf_init(&b);
	kvm_state_encode_vcpu(&b, in);
	assert_false(b.failed);
	assert_int_equal(b.len, vcpu_bytes(80, 2, 300));
	c = (struct state_cursor){ .p = b.data, .len = b.len };
	assert_int_equal(kvm_state_decode_vcpu(&c, out, err, sizeof(err)), 0);
	assert_int_equal(out->cpuid.head.nent, 80);
	assert_int_equal(out->msrs.head.nmsrs, 300);
	assert_memory_equal(&in->cpuid, &out->cpuid, sizeof(in->cpuid));
	assert_memory_equal(&in->regs, &out->regs, sizeof(in->regs));
	assert_memory_equal(&in->sregs, &out->sregs, sizeof(in->sregs));
	assert_memory_equal(&in->xsave, &out->xsave, sizeof(in->xsave));
	assert_memory_equal(&in->xcrs, &out->xcrs, sizeof(in->xcrs));
	assert_memory_equal(&in->debugregs, &out->debugregs, sizeof(in->debugregs));
	assert_memory_equal(&in->lapic, &out->lapic, sizeof(in->lapic));
	assert_memory_equal(&in->msrs, &out->msrs, sizeof(in->msrs));
	assert_memory_equal(&in->events, &out->events, sizeof(in->events));
	assert_memory_equal(in, out, sizeof(*in));
	/* Layout: u32 id then u32 CPUID count, then the first entry's function, little-endian. */
	assert_int_equal(b.data[0], 3);
	assert_int_equal(b.data[4] | b.data[5] << 8, 80);
	assert_int_equal(b.data[8], (uint8_t)in->cpuid.entries[0].function);
	/* ...and the MP state last. */
	assert_int_equal(b.data[b.len - 4], KVM_MP_STATE_HALTED);
	state_buf_free(&b);
	free(in);
	free(out);
}

/* Every proper prefix of a payload is refused before any ioctl, and nothing reads past it. */
static void load_vcpu_truncated_at_every_length_refused(void **state)
{
	struct kvm_state_vcpu *in = malloc(sizeof(*in));
	struct state_buf b;
	char err[128];

	fill_vcpu(in, 1, 80, 40);
	state_buf_init(&b);
	kvm_state_encode_vcpu(&b, in);
	for (size_t len = 0; len < b.len; len++) {
		uint8_t *copy;
		struct state_cursor c = prefix(&b, len, &copy);

		fake_reset();
		err[0] = '\0';
		assert_int_equal(kvm_state_load_vcpu(VCPU_FD, 1, &c, err, sizeof(err)), -EINVAL);
		assert_string_equal(err, "vCPU 1: VCPU section truncated");
		assert_int_equal(fake.nr_calls, 0);
		free(copy);
	}
	state_buf_free(&b);
	free(in);
}

static void load_vm_truncated_at_every_length_refused(void **state)
{
	struct kvm_state_vm in;
	struct state_buf b;
	char err[128];

	fill_vm(&in);
	state_buf_init(&b);
	kvm_state_encode_vm(&b, &in);
	for (size_t len = 0; len < b.len; len++) {
		uint8_t *copy;
		struct state_cursor c = prefix(&b, len, &copy);

		fake_reset();
		assert_int_equal(kvm_state_load_vm(VM_FD, &c, err, sizeof(err)), -EINVAL);
		assert_string_equal(err, "VM section truncated");
		assert_int_equal(fake.nr_calls, 0);
		free(copy);
	}
	state_buf_free(&b);
}

static void decode_vcpu_byte_left_over_refused(void **state)
{
	struct kvm_state_vcpu *s = malloc(sizeof(*s));
	struct state_cursor c;
	struct state_buf b;
	char err[128];

	fill_vcpu(s, 0, 1, 1);
	state_buf_init(&b);
	kvm_state_encode_vcpu(&b, s);
	state_put_u8(&b, 0);
	c = (struct state_cursor){ .p = b.data, .len = b.len };
	assert_int_equal(kvm_state_decode_vcpu(&c, s, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "VCPU section: 1 bytes left over");
	state_buf_free(&b);
	free(s);
}

static void put_u32_at(struct state_buf *b, size_t off, uint32_t v)
{
	for (unsigned i = 0; i < 4; i++)
		b->data[off + i] = (uint8_t)(v >> 8 * i);
}

/* Counts above their bounds are refused before anything is read for them. */
static void decode_vcpu_counts_above_bounds_refused(void **state)
{
	struct kvm_state_vcpu *s = malloc(sizeof(*s));
	const size_t xcrs_at = 8 + 4 + REGS_BYTES + SREGS_BYTES + XSAVE_BYTES;
	struct state_cursor c;
	struct state_buf b;
	char err[128];

	fill_vcpu(s, 0, 0, 0);
	state_buf_init(&b);
	kvm_state_encode_vcpu(&b, s);
	/* 100000 CPUID entries, with the bytes for them nowhere. */
	put_u32_at(&b, 4, 100000);
	c = (struct state_cursor){ .p = b.data, .len = b.len };
	assert_int_equal(kvm_state_decode_vcpu(&c, s, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "VCPU section: 100000 CPUID entries (at most 256)");
	put_u32_at(&b, 4, 0);
	assert_int_equal(b.data[xcrs_at], 2);
	put_u32_at(&b, xcrs_at, KVM_MAX_XCRS + 1);
	c = (struct state_cursor){ .p = b.data, .len = b.len };
	assert_int_equal(kvm_state_decode_vcpu(&c, s, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "VCPU section: 17 XCRs (at most 16)");
	put_u32_at(&b, xcrs_at, 2);
	put_u32_at(&b, b.len - 4 - EVENTS_BYTES - 4, KVM_STATE_MAX_MSRS + 1);
	c = (struct state_cursor){ .p = b.data, .len = b.len };
	assert_int_equal(kvm_state_decode_vcpu(&c, s, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "VCPU section: 1025 MSRs (at most 1024)");
	put_u32_at(&b, b.len - 4 - EVENTS_BYTES - 4, 0);
	c = (struct state_cursor){ .p = b.data, .len = b.len };
	assert_int_equal(kvm_state_decode_vcpu(&c, s, err, sizeof(err)), 0);
	state_buf_free(&b);
	free(s);
}

/* --- Against the fake KVM --- */

/* KVM's list, with IA32_MCG_STATUS already in it and one MSR it will not read. */
static const uint32_t kvm_msr_list[] = { 0x10, 0x1b, 0x17a, 0x3b, 0xc0000080, 0x4b564d00,
					 0x4b564d01 };

/* Saves the fake vCPU (80 CPUID entries) as vCPU 1 with 10 machine-check banks. */
static void save_fake_vcpu(struct state_buf *b)
{
	fake_reset();
	fill_vcpu(&fake.vcpu, 0, 80, 0);
	fake.tsc_khz = 2999876;
	fake.index_list = kvm_msr_list;
	fake.nr_index = sizeof(kvm_msr_list) / sizeof(kvm_msr_list[0]);
	fake.unreadable[0] = 0x4b564d00;
	fake.unreadable[1] = 0x403; /* IA32_MC0_MISC */
	state_buf_init(b);
	assert_int_equal(kvm_state_save_vcpu(KVM_FD, VCPU_FD, 1, MCG_CTL_P | MCG_SER_P | 10, b), 0);
}

static void save_vcpu_reads_mp_state_first_events_last(void **state)
{
	struct state_buf b;

	save_fake_vcpu(&b);
	/* Two refusals: three KVM_GET_MSRS. */
	ASSERT_CALLS(KVM_GET_MP_STATE, KVM_GET_REGS, KVM_GET_SREGS, KVM_GET_XSAVE, KVM_GET_XCRS,
		     KVM_GET_DEBUGREGS, KVM_GET_LAPIC, KVM_GET_CPUID2, KVM_GET_TSC_KHZ,
		     KVM_GET_MSR_INDEX_LIST, KVM_GET_MSR_INDEX_LIST, KVM_GET_MSRS, KVM_GET_MSRS,
		     KVM_GET_MSRS, KVM_GET_VCPU_EVENTS);
	state_buf_free(&b);
}

/* What is saved is KVM's list plus IA32_MCG_CTL and the 40 bank MSRs, once each, without the
 * two KVM would not read, with the values KVM gave. */
static void save_vcpu_keeps_exactly_the_msrs_kvm_read(void **state)
{
	struct kvm_state_vcpu *s = malloc(sizeof(*s));
	struct state_cursor c;
	struct state_buf b;
	unsigned seen_mcg_status = 0;
	char err[128];

	save_fake_vcpu(&b);
	c = (struct state_cursor){ .p = b.data, .len = b.len };
	assert_int_equal(kvm_state_decode_vcpu(&c, s, err, sizeof(err)), 0);
	assert_int_equal(s->id, 1);
	assert_int_equal(s->tsc_khz, 2999876);
	assert_int_equal(s->msrs.head.nmsrs, 7 + 1 + 40 - 2);
	for (uint32_t i = 0; i < s->msrs.head.nmsrs; i++) {
		uint32_t index = s->msrs.entries[i].index;

		assert_int_not_equal(index, 0x4b564d00);
		assert_int_not_equal(index, 0x403);
		assert_true(s->msrs.entries[i].data == msr_value(index));
		seen_mcg_status += index == 0x17a;
	}
	assert_int_equal(seen_mcg_status, 1);
	assert_int_equal(s->msrs.entries[5].index, 0x4b564d01);
	assert_int_equal(s->msrs.entries[6].index, 0x17b);
	assert_int_equal(s->msrs.entries[7].index, 0x400);
	assert_int_equal(s->msrs.entries[s->msrs.head.nmsrs - 1].index, 0x427);
	assert_memory_equal(&s->cpuid, &fake.vcpu.cpuid, sizeof(s->cpuid));
	assert_memory_equal(&s->lapic, &fake.vcpu.lapic, sizeof(s->lapic));
	state_buf_free(&b);
	free(s);
}

/* Saved from one fake vCPU, loaded into a new one: CPUID first, events last, same state. */
static void load_vcpu_applies_in_order_and_round_trips(void **state)
{
	struct kvm_state_vcpu *saved = malloc(sizeof(*saved));
	struct state_cursor c;
	struct state_buf b;
	char err[128] = "";

	save_fake_vcpu(&b);
	c = (struct state_cursor){ .p = b.data, .len = b.len };
	assert_int_equal(kvm_state_decode_vcpu(&c, saved, err, sizeof(err)), 0);
	fake_reset();
	fake.tsc_khz = 3000000;
	c = (struct state_cursor){ .p = b.data, .len = b.len };
	assert_int_equal(kvm_state_load_vcpu(VCPU_FD, 1, &c, err, sizeof(err)), 0);
	assert_string_equal(err, "");
	ASSERT_CALLS(KVM_SET_CPUID2, KVM_GET_TSC_KHZ, KVM_SET_TSC_KHZ, KVM_SET_MP_STATE,
		     KVM_SET_REGS, KVM_SET_SREGS, KVM_SET_XSAVE, KVM_SET_XCRS, KVM_SET_DEBUGREGS,
		     KVM_SET_LAPIC, KVM_SET_MSRS, KVM_SET_VCPU_EVENTS);
	assert_int_equal(fake.tsc_khz, 2999876);
	/* Only the event flags KVM takes without capabilities. */
	assert_int_equal(saved->events.flags, 0x3f);
	assert_int_equal(fake.vcpu.events.flags, KVM_VCPUEVENT_VALID_NMI_PENDING |
					KVM_VCPUEVENT_VALID_SIPI_VECTOR |
					KVM_VCPUEVENT_VALID_SHADOW | KVM_VCPUEVENT_VALID_SMM);
	saved->events.flags = fake.vcpu.events.flags;
	fake.vcpu.id = 1;
	fake.vcpu.tsc_khz = fake.tsc_khz;
	assert_memory_equal(&fake.vcpu.msrs, &saved->msrs, sizeof(saved->msrs));
	assert_memory_equal(&fake.vcpu, saved, sizeof(*saved));
	state_buf_free(&b);
	free(saved);
}

static void load_vcpu_same_tsc_khz_not_set(void **state)
{
	struct state_cursor c;
	struct state_buf b;
	char err[128];

	save_fake_vcpu(&b);
	fake_reset();
	fake.tsc_khz = 2999876;
	c = (struct state_cursor){ .p = b.data, .len = b.len };
	assert_int_equal(kvm_state_load_vcpu(VCPU_FD, 1, &c, err, sizeof(err)), 0);
	for (size_t i = 0; i < fake.nr_calls; i++)
		assert_int_not_equal(fake.calls[i], KVM_SET_TSC_KHZ);
	state_buf_free(&b);
}

static void load_vcpu_msr_refused_names_it(void **state)
{
	struct state_cursor c;
	struct state_buf b;
	char err[128];

	save_fake_vcpu(&b);
	fake_reset();
	fake.tsc_khz = 2999876;
	fake.unwritable = 0x17b; /* the 7th of the 46 saved */
	c = (struct state_cursor){ .p = b.data, .len = b.len };
	assert_int_equal(kvm_state_load_vcpu(VCPU_FD, 1, &c, err, sizeof(err)), -EIO);
	assert_string_equal(err, "vCPU 1: KVM_SET_MSRS set 6 of 46 MSRs (first refused: 0x17b)");
	assert_int_equal(fake.calls[fake.nr_calls - 1], KVM_SET_MSRS); /* no events after */
	state_buf_free(&b);
}

static void load_vcpu_wrong_id_refused(void **state)
{
	struct state_cursor c;
	struct state_buf b;
	char err[128];

	save_fake_vcpu(&b);
	fake_reset();
	c = (struct state_cursor){ .p = b.data, .len = b.len };
	assert_int_equal(kvm_state_load_vcpu(VCPU_FD, 2, &c, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "vCPU 2: the VCPU section is vCPU 1's");
	assert_int_equal(fake.nr_calls, 0);
	state_buf_free(&b);
}

static void load_vcpu_ioctl_failure_names_step(void **state)
{
	struct state_cursor c;
	struct state_buf b;
	char err[128];

	save_fake_vcpu(&b);
	fake_reset();
	fake.fail_request = KVM_SET_XSAVE;
	fake.fail_errno = EINVAL;
	c = (struct state_cursor){ .p = b.data, .len = b.len };
	assert_int_equal(kvm_state_load_vcpu(VCPU_FD, 1, &c, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "vCPU 1: KVM_SET_XSAVE: Invalid argument");
	state_buf_free(&b);
}

static void save_vcpu_ioctl_failure_returns_errno(void **state)
{
	struct state_buf b;

	fake_reset();
	fake.fail_request = KVM_GET_XSAVE;
	fake.fail_errno = EINVAL;
	state_buf_init(&b);
	assert_int_equal(kvm_state_save_vcpu(KVM_FD, VCPU_FD, 0, 0, &b), -EINVAL);
	assert_int_equal(b.len, 0);
	fake_reset();
	fake.fail_request = KVM_GET_MSRS;
	fake.fail_errno = EFAULT;
	assert_int_equal(kvm_state_save_vcpu(KVM_FD, VCPU_FD, 0, 0, &b), -EFAULT);
	assert_int_equal(b.len, 0);
	state_buf_free(&b);
}

/* Irqchips, PIT and clock round-trip through KVM; the clock is set with no flags. */
static void save_vm_then_load_vm_round_trips(void **state)
{
	struct kvm_state_vm before;
	struct state_cursor c;
	struct state_buf b;
	char err[128] = "";

	fake_reset();
	fill_vm(&fake.vm);
	fake.vm.clock.realtime = 0x1111; /* read by KVM, not saved */
	fake.vm.clock.host_tsc = 0x2222;
	before = fake.vm;
	state_buf_init(&b);
	assert_int_equal(kvm_state_save_vm(VM_FD, &b), 0);
	ASSERT_CALLS(KVM_GET_IRQCHIP, KVM_GET_IRQCHIP, KVM_GET_IRQCHIP, KVM_GET_PIT2,
		     KVM_GET_CLOCK);
	assert_int_equal(b.len, VM_BYTES);
	fake_reset();
	c = (struct state_cursor){ .p = b.data, .len = b.len };
	assert_int_equal(kvm_state_load_vm(VM_FD, &c, err, sizeof(err)), 0);
	ASSERT_CALLS(KVM_SET_IRQCHIP, KVM_SET_IRQCHIP, KVM_SET_IRQCHIP, KVM_SET_PIT2,
		     KVM_SET_CLOCK);
	assert_memory_equal(&fake.vm.pic, &before.pic, sizeof(before.pic));
	assert_memory_equal(&fake.vm.ioapic, &before.ioapic, sizeof(before.ioapic));
	assert_memory_equal(&fake.vm.pit, &before.pit, sizeof(before.pit));
	assert_true(fake.vm.clock.clock == before.clock.clock);
	assert_int_equal(fake.vm.clock.flags, 0);
	assert_int_equal(fake.vm.clock.realtime, 0);
	/* The flags were saved even though they are not set back. */
	c = (struct state_cursor){ .p = b.data, .len = b.len };
	assert_int_equal(kvm_state_decode_vm(&c, &before, err, sizeof(err)), 0);
	assert_int_equal(before.clock.flags, KVM_CLOCK_TSC_STABLE | KVM_CLOCK_REALTIME |
					     KVM_CLOCK_HOST_TSC);
	state_buf_free(&b);
}

static void load_vm_ioctl_failure_names_step(void **state)
{
	struct kvm_state_vm s;
	struct state_cursor c;
	struct state_buf b;
	char err[128];

	fill_vm(&s);
	state_buf_init(&b);
	kvm_state_encode_vm(&b, &s);
	fake_reset();
	fake.fail_request = KVM_SET_PIT2;
	fake.fail_errno = ENXIO;
	c = (struct state_cursor){ .p = b.data, .len = b.len };
	assert_int_equal(kvm_state_load_vm(VM_FD, &c, err, sizeof(err)), -ENXIO);
	assert_string_equal(err, "KVM_SET_PIT2: No such device or address");
	state_buf_free(&b);
}

static int group_setup(void **state)
{
	return log_setup(NULL, LOG_OFF, false, false);
}

int main(void)
{
#define T(f) cmocka_unit_test(f)
	const struct CMUnitTest tests[] = {
		T(encode_vm_decode_round_trips_every_field),
		T(encode_vcpu_decode_round_trips_every_field),
		T(load_vcpu_truncated_at_every_length_refused),
		T(load_vm_truncated_at_every_length_refused),
		T(decode_vcpu_byte_left_over_refused),
		T(decode_vcpu_counts_above_bounds_refused),
		T(save_vcpu_reads_mp_state_first_events_last),
		T(save_vcpu_keeps_exactly_the_msrs_kvm_read),
		T(load_vcpu_applies_in_order_and_round_trips),
		T(load_vcpu_same_tsc_khz_not_set),
		T(load_vcpu_msr_refused_names_it),
		T(load_vcpu_wrong_id_refused),
		T(load_vcpu_ioctl_failure_names_step),
		T(save_vcpu_ioctl_failure_returns_errno),
		T(save_vm_then_load_vm_round_trips),
		T(load_vm_ioctl_failure_names_step),
	};
#undef T

	return cmocka_run_group_tests_name("kvm_state_x86_64.c", tests, group_setup, NULL);
}
