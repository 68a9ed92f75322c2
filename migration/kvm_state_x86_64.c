/* KVM's VM and vCPU state (x86_64) to and from state-format sections: pure encoders and decoders
 * first, then the ioctls that collect and apply them. */
#include "kvm_state_x86_64.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "log.h"
#include "mce_x86_64.h"

#define MSR_IA32_MCG_STATUS 0x17a
#define MSR_IA32_MCG_CTL 0x17b
#define MSR_IA32_MC0_CTL 0x400   /* bank i: CTL, STATUS, ADDR, MISC at 0x400 + 4 * i */
/* KVM_MAX_MCE_BANKS: the bank MSRs of more banks would run into the VMX MSRs at 0x480. */
#define MCE_MAX_BANKS 32u
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define XSAVE_WORDS 1024u        /* struct kvm_xsave's region: the 4 KiB KVM_GET_XSAVE fills */

/* The vCPU event flags KVM takes without a capability enabled first (PAYLOAD and TRIPLE_FAULT
 * need KVM_CAP_EXCEPTION_PAYLOAD and KVM_CAP_X86_TRIPLE_FAULT_EVENT). */
#define EVENTS_SET_FLAGS (KVM_VCPUEVENT_VALID_NMI_PENDING | KVM_VCPUEVENT_VALID_SIPI_VECTOR | \
			  KVM_VCPUEVENT_VALID_SHADOW | KVM_VCPUEVENT_VALID_SMM)

/*
 * Each struct's stream layout, written once as a list of (width in bits, field) and expanded
 * into its put_ and get_ functions, so the two directions cannot disagree. Fields not listed
 * (padding, reserved) are not carried and decode as zero.
 */
#define PUT_FIELD(w, f) state_put_u##w(b, s->f);
#define GET_FIELD(w, f) s->f = state_get_u##w(c);

#define PIC_FIELDS(X) \
	X(8, last_irr) X(8, irr) X(8, imr) X(8, isr) X(8, priority_add) X(8, irq_base) \
	X(8, read_reg_select) X(8, poll) X(8, special_mask) X(8, init_state) X(8, auto_eoi) \
	X(8, rotate_on_auto_eoi) X(8, special_fully_nested_mode) X(8, init4) X(8, elcr) \
	X(8, elcr_mask)
#define IOAPIC_FIELDS(X) X(64, base_address) X(32, ioregsel) X(32, id) X(32, irr)
#define PIT_CHANNEL_FIELDS(X) \
	X(32, count) X(16, latched_count) X(8, count_latched) X(8, status_latched) X(8, status) \
	X(8, read_state) X(8, write_state) X(8, write_latch) X(8, rw_mode) X(8, mode) X(8, bcd) \
	X(8, gate) X(64, count_load_time)
#define CLOCK_FIELDS(X) X(64, clock) X(32, flags)
#define CPUID_ENTRY_FIELDS(X) \
	X(32, function) X(32, index) X(32, flags) X(32, eax) X(32, ebx) X(32, ecx) X(32, edx)
#define REGS_FIELDS(X) \
	X(64, rax) X(64, rbx) X(64, rcx) X(64, rdx) X(64, rsi) X(64, rdi) X(64, rsp) X(64, rbp) \
	X(64, r8) X(64, r9) X(64, r10) X(64, r11) X(64, r12) X(64, r13) X(64, r14) X(64, r15) \
	X(64, rip) X(64, rflags)
#define SEGMENT_FIELDS(X) \
	X(64, base) X(32, limit) X(16, selector) X(8, type) X(8, present) X(8, dpl) X(8, db) \
	X(8, s) X(8, l) X(8, g) X(8, avl) X(8, unusable)
#define DTABLE_FIELDS(X) X(64, base) X(16, limit)
/* After the eight segments and two descriptor tables. */
#define SREGS_TAIL_FIELDS(X) \
	X(64, cr0) X(64, cr2) X(64, cr3) X(64, cr4) X(64, cr8) X(64, efer) X(64, apic_base) \
	X(64, interrupt_bitmap[0]) X(64, interrupt_bitmap[1]) X(64, interrupt_bitmap[2]) \
	X(64, interrupt_bitmap[3])
#define XCR_FIELDS(X) X(32, xcr) X(64, value)
#define DEBUGREGS_FIELDS(X) \
	X(64, db[0]) X(64, db[1]) X(64, db[2]) X(64, db[3]) X(64, dr6) X(64, dr7) X(64, flags)
#define MSR_FIELDS(X) X(32, index) X(64, data)
#define EVENTS_FIELDS(X) \
	X(8, exception.injected) X(8, exception.nr) X(8, exception.has_error_code) \
	X(8, exception.pending) X(32, exception.error_code) \
	X(8, interrupt.injected) X(8, interrupt.nr) X(8, interrupt.soft) X(8, interrupt.shadow) \
	X(8, nmi.injected) X(8, nmi.pending) X(8, nmi.masked) \
	X(32, sipi_vector) X(32, flags) \
	X(8, smi.smm) X(8, smi.pending) X(8, smi.smm_inside_nmi) X(8, smi.latched_init) \
	X(8, triple_fault.pending) X(8, exception_has_payload) X(64, exception_payload)

#define CODEC(name, type, FIELDS) \
	static void put_##name(struct state_buf *b, const type *s) { FIELDS(PUT_FIELD) } \
	static void get_##name(struct state_cursor *c, type *s) { FIELDS(GET_FIELD) }

CODEC(pic, struct kvm_pic_state, PIC_FIELDS)
CODEC(pit_channel, struct kvm_pit_channel_state, PIT_CHANNEL_FIELDS)
CODEC(clock, struct kvm_clock_data, CLOCK_FIELDS)
CODEC(cpuid_entry, struct kvm_cpuid_entry2, CPUID_ENTRY_FIELDS)
CODEC(regs, struct kvm_regs, REGS_FIELDS)
CODEC(segment, struct kvm_segment, SEGMENT_FIELDS)
CODEC(dtable, struct kvm_dtable, DTABLE_FIELDS)
CODEC(sregs_tail, struct kvm_sregs, SREGS_TAIL_FIELDS)
CODEC(xcr, struct kvm_xcr, XCR_FIELDS)
CODEC(debugregs, struct kvm_debugregs, DEBUGREGS_FIELDS)
CODEC(msr, struct kvm_msr_entry, MSR_FIELDS)
CODEC(events, struct kvm_vcpu_events, EVENTS_FIELDS)

static void put_ioapic(struct state_buf *b, const struct kvm_ioapic_state *s)
{
	IOAPIC_FIELDS(PUT_FIELD)
	for (unsigned i = 0; i < KVM_IOAPIC_NUM_PINS; i++)
		state_put_u64(b, s->redirtbl[i].bits);
}

static void get_ioapic(struct state_cursor *c, struct kvm_ioapic_state *s)
{
	IOAPIC_FIELDS(GET_FIELD)
	for (unsigned i = 0; i < KVM_IOAPIC_NUM_PINS; i++)
		s->redirtbl[i].bits = state_get_u64(c);
}

static void put_pit(struct state_buf *b, const struct kvm_pit_state2 *s)
{
	for (unsigned i = 0; i < 3; i++)
		put_pit_channel(b, &s->channels[i]);
	state_put_u32(b, s->flags);
}

static void get_pit(struct state_cursor *c, struct kvm_pit_state2 *s)
{
	for (unsigned i = 0; i < 3; i++)
		get_pit_channel(c, &s->channels[i]);
	s->flags = state_get_u32(c);
}

/* The segments in stream order. */
#define SREGS_SEGMENTS(s) { &(s)->cs, &(s)->ds, &(s)->es, &(s)->fs, &(s)->gs, &(s)->ss, \
			    &(s)->tr, &(s)->ldt }

static void put_sregs(struct state_buf *b, const struct kvm_sregs *s)
{
	const struct kvm_segment *seg[] = SREGS_SEGMENTS(s);

	for (unsigned i = 0; i < 8; i++)
		put_segment(b, seg[i]);
	put_dtable(b, &s->gdt);
	put_dtable(b, &s->idt);
	put_sregs_tail(b, s);
}

static void get_sregs(struct state_cursor *c, struct kvm_sregs *s)
{
	struct kvm_segment *seg[] = SREGS_SEGMENTS(s);

	for (unsigned i = 0; i < 8; i++)
		get_segment(c, seg[i]);
	get_dtable(c, &s->gdt);
	get_dtable(c, &s->idt);
	get_sregs_tail(c, s);
}

static int __attribute__((format(printf, 3, 4)))
refuse(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

/* The end of a section: every byte read, none missing. */
static int check_end(const struct state_cursor *c, const char *section, char *err, size_t errlen)
{
	if (c->bad)
		return refuse(err, errlen, "%s section truncated", section);
	if (!state_cursor_done(c))
		return refuse(err, errlen, "%s section: %zu bytes left over", section,
			      c->len - c->off);
	return 0;
}

void kvm_state_encode_vm(struct state_buf *b, const struct kvm_state_vm *s)
{
	put_pic(b, &s->pic[0]);
	put_pic(b, &s->pic[1]);
	put_ioapic(b, &s->ioapic);
	put_pit(b, &s->pit);
	put_clock(b, &s->clock);
}

int kvm_state_decode_vm(struct state_cursor *c, struct kvm_state_vm *s, char *err, size_t errlen)
{
	memset(s, 0, sizeof(*s));
	get_pic(c, &s->pic[0]);
	get_pic(c, &s->pic[1]);
	get_ioapic(c, &s->ioapic);
	get_pit(c, &s->pit);
	get_clock(c, &s->clock);
	return check_end(c, "VM", err, errlen);
}

void kvm_state_encode_vcpu(struct state_buf *b, const struct kvm_state_vcpu *s)
{
	state_put_u32(b, s->id);
	state_put_u32(b, s->cpuid.head.nent);
	for (uint32_t i = 0; i < s->cpuid.head.nent; i++)
		put_cpuid_entry(b, &s->cpuid.entries[i]);
	state_put_u32(b, s->tsc_khz);
	put_regs(b, &s->regs);
	put_sregs(b, &s->sregs);
	for (unsigned i = 0; i < XSAVE_WORDS; i++)
		state_put_u32(b, s->xsave.region[i]);
	state_put_u32(b, s->xcrs.nr_xcrs);
	state_put_u32(b, s->xcrs.flags);
	for (uint32_t i = 0; i < s->xcrs.nr_xcrs; i++)
		put_xcr(b, &s->xcrs.xcrs[i]);
	put_debugregs(b, &s->debugregs);
	state_put_bytes(b, s->lapic.regs, KVM_APIC_REG_SIZE);
	state_put_u32(b, s->msrs.head.nmsrs);
	for (uint32_t i = 0; i < s->msrs.head.nmsrs; i++)
		put_msr(b, &s->msrs.entries[i]);
	put_events(b, &s->events);
	state_put_u32(b, s->mp_state.mp_state);
}

int kvm_state_decode_vcpu(struct state_cursor *c, struct kvm_state_vcpu *s, char *err,
			  size_t errlen)
{
	uint32_t n;

	memset(s, 0, sizeof(*s));
	s->id = state_get_u32(c);
	n = state_get_u32(c);
	if (n > KVM_STATE_MAX_CPUID)
		return refuse(err, errlen, "VCPU section: %u CPUID entries (at most %u)", n,
			      KVM_STATE_MAX_CPUID);
	s->cpuid.head.nent = n;
	for (uint32_t i = 0; i < n; i++)
		get_cpuid_entry(c, &s->cpuid.entries[i]);
	s->tsc_khz = state_get_u32(c);
	get_regs(c, &s->regs);
	get_sregs(c, &s->sregs);
	for (unsigned i = 0; i < XSAVE_WORDS; i++)
		s->xsave.region[i] = state_get_u32(c);
	n = state_get_u32(c);
	if (n > KVM_MAX_XCRS)
		return refuse(err, errlen, "VCPU section: %u XCRs (at most %u)", n, KVM_MAX_XCRS);
	s->xcrs.nr_xcrs = n;
	s->xcrs.flags = state_get_u32(c);
	for (uint32_t i = 0; i < n; i++)
		get_xcr(c, &s->xcrs.xcrs[i]);
	get_debugregs(c, &s->debugregs);
	state_get_bytes(c, s->lapic.regs, KVM_APIC_REG_SIZE);
	n = state_get_u32(c);
	if (n > KVM_STATE_MAX_MSRS)
		return refuse(err, errlen, "VCPU section: %u MSRs (at most %u)", n,
			      KVM_STATE_MAX_MSRS);
	s->msrs.head.nmsrs = n;
	for (uint32_t i = 0; i < n; i++)
		get_msr(c, &s->msrs.entries[i]);
	get_events(c, &s->events);
	s->mp_state.mp_state = state_get_u32(c);
	return check_end(c, "VCPU", err, errlen);
}

/* --- The ioctls --- */

struct step {
	const char *name;
	unsigned long request;
	void *arg;
};

/* Runs steps in order on fd; at the first failure, "<who><name>: <reason>" in err. */
static int run_steps(int fd, const struct step *steps, size_t n, const char *who, char *err,
		     size_t errlen)
{
	for (size_t i = 0; i < n; i++) {
		if (ioctl(fd, steps[i].request, steps[i].arg) < 0) {
			int ret = -errno;

			snprintf(err, errlen, "%s%s: %s", who, steps[i].name, strerror(errno));
			return ret;
		}
	}
	return 0;
}

int kvm_state_save_vm(int vm_fd, struct state_buf *b)
{
	struct kvm_irqchip chips[KVM_NR_IRQCHIPS] = {
		{ .chip_id = KVM_IRQCHIP_PIC_MASTER },
		{ .chip_id = KVM_IRQCHIP_PIC_SLAVE },
		{ .chip_id = KVM_IRQCHIP_IOAPIC },
	};
	struct kvm_state_vm s = { 0 };
	struct kvm_clock_data clock = { 0 };
	const struct step steps[] = {
		{ "KVM_GET_IRQCHIP (PIC master)", KVM_GET_IRQCHIP, &chips[0] },
		{ "KVM_GET_IRQCHIP (PIC slave)", KVM_GET_IRQCHIP, &chips[1] },
		{ "KVM_GET_IRQCHIP (IOAPIC)", KVM_GET_IRQCHIP, &chips[2] },
		{ "KVM_GET_PIT2", KVM_GET_PIT2, &s.pit },
		{ "KVM_GET_CLOCK", KVM_GET_CLOCK, &clock },
	};
	char err[160];
	int ret;

	ret = run_steps(vm_fd, steps, ARRAY_SIZE(steps), "", err, sizeof(err));
	if (ret < 0) {
		log_error("saving the VM: %s", err);
		return ret;
	}
	s.pic[0] = chips[0].chip.pic;
	s.pic[1] = chips[1].chip.pic;
	s.ioapic = chips[2].chip.ioapic;
	s.clock = (struct kvm_clock_data){ .clock = clock.clock, .flags = clock.flags };
	kvm_state_encode_vm(b, &s);
	if (b->failed) {
		log_error("saving the VM: out of memory");
		return -ENOMEM;
	}
	return 0;
}

int kvm_state_load_vm(int vm_fd, struct state_cursor *c, char *err, size_t errlen)
{
	struct kvm_irqchip chips[KVM_NR_IRQCHIPS] = {
		{ .chip_id = KVM_IRQCHIP_PIC_MASTER },
		{ .chip_id = KVM_IRQCHIP_PIC_SLAVE },
		{ .chip_id = KVM_IRQCHIP_IOAPIC },
	};
	struct kvm_clock_data clock = { 0 };
	struct kvm_state_vm s;
	const struct step steps[] = {
		{ "KVM_SET_IRQCHIP (PIC master)", KVM_SET_IRQCHIP, &chips[0] },
		{ "KVM_SET_IRQCHIP (PIC slave)", KVM_SET_IRQCHIP, &chips[1] },
		{ "KVM_SET_IRQCHIP (IOAPIC)", KVM_SET_IRQCHIP, &chips[2] },
		{ "KVM_SET_PIT2", KVM_SET_PIT2, &s.pit },
		{ "KVM_SET_CLOCK", KVM_SET_CLOCK, &clock },
	};
	int ret;

	ret = kvm_state_decode_vm(c, &s, err, errlen);
	if (ret < 0)
		return ret;
	chips[0].chip.pic = s.pic[0];
	chips[1].chip.pic = s.pic[1];
	chips[2].chip.ioapic = s.ioapic;
	/* Only the value: with KVM_CLOCK_REALTIME or KVM_CLOCK_HOST_TSC KVM would correct it
	 * by fields not saved, and kernels before 5.16 refuse any flag. */
	clock.clock = s.clock.clock;
	return run_steps(vm_fd, steps, ARRAY_SIZE(steps), "", err, errlen);
}

static void msr_add(struct kvm_msrs *m, uint32_t index)
{
	for (uint32_t i = 0; i < m->nmsrs; i++) {
		if (m->entries[i].index == index)
			return;
	}
	m->entries[m->nmsrs++] = (struct kvm_msr_entry){ .index = index };
}

/*
 * The MSRs to save (malloc'd into *out): KVM_GET_MSR_INDEX_LIST, then the machine-check MSRs
 * of mcg_cap, which KVM does not list.
 */
static int msrs_to_save(int kvm_fd, uint64_t mcg_cap, struct kvm_msrs **out, char *err,
			size_t errlen)
{
	struct kvm_msr_list probe = { .nmsrs = 0 }, *list = NULL;
	unsigned banks = (unsigned)(mcg_cap & MCG_BANKS_MASK);
	struct kvm_msrs *want = NULL;
	size_t total;
	int ret;

	if (banks > MCE_MAX_BANKS)
		banks = MCE_MAX_BANKS;
	/* The first call only learns the length (E2BIG). */
	if (ioctl(kvm_fd, KVM_GET_MSR_INDEX_LIST, &probe) < 0 && errno != E2BIG) {
		ret = -errno;
		goto err;
	}
	total = (size_t)probe.nmsrs + 2 + 4 * banks;
	if (total > KVM_STATE_MAX_MSRS) {
		snprintf(err, errlen, "KVM lists %u MSRs: with the machine-check ones, more than %u",
			 probe.nmsrs, KVM_STATE_MAX_MSRS);
		return -E2BIG;
	}
	list = malloc(sizeof(*list) + probe.nmsrs * sizeof(list->indices[0]));
	want = calloc(1, sizeof(*want) + total * sizeof(want->entries[0]));
	if (!list || !want) {
		free(list);
		free(want);
		snprintf(err, errlen, "MSR list: out of memory");
		return -ENOMEM;
	}
	list->nmsrs = probe.nmsrs;
	if (ioctl(kvm_fd, KVM_GET_MSR_INDEX_LIST, list) < 0) {
		ret = -errno;
		goto err;
	}
	for (uint32_t i = 0; i < list->nmsrs && i < probe.nmsrs; i++)
		msr_add(want, list->indices[i]);
	free(list);
	msr_add(want, MSR_IA32_MCG_STATUS);
	msr_add(want, MSR_IA32_MCG_CTL);
	for (unsigned i = 0; i < 4 * banks; i++)
		msr_add(want, MSR_IA32_MC0_CTL + i);
	*out = want;
	return 0;

err:
	snprintf(err, errlen, "KVM_GET_MSR_INDEX_LIST: %s", strerror(-ret));
	free(list);
	free(want);
	return ret;
}

/*
 * Reads the MSRs of want into s->msrs. KVM_GET_MSRS stops at the first MSR it cannot read (one
 * this host or this vCPU's CPUID lacks) and says how many it read: that one is dropped and the
 * rest asked again. want is consumed.
 */
static int read_msrs(int vcpu_fd, unsigned id, struct kvm_msrs *want, struct kvm_state_vcpu *s,
		     char *err, size_t errlen)
{
	const size_t entry = sizeof(want->entries[0]);

	s->msrs.head.nmsrs = 0;
	while (want->nmsrs > 0) {
		int r = ioctl(vcpu_fd, KVM_GET_MSRS, want);

		if (r < 0 || (uint32_t)r > want->nmsrs) {
			int ret = r < 0 ? -errno : -EIO;

			snprintf(err, errlen, "vCPU %u: KVM_GET_MSRS: %s", id, strerror(-ret));
			return ret;
		}
		memcpy(&s->msrs.entries[s->msrs.head.nmsrs], want->entries, (size_t)r * entry);
		s->msrs.head.nmsrs += (uint32_t)r;
		if ((uint32_t)r == want->nmsrs)
			break;
		log_debug("vCPU %u: KVM does not read MSR 0x%x, not saved", id,
			  want->entries[r].index);
		want->nmsrs -= (uint32_t)r + 1;
		memmove(want->entries, &want->entries[r + 1], want->nmsrs * entry);
	}
	return 0;
}

int kvm_state_save_vcpu(int kvm_fd, int vcpu_fd, unsigned id, uint64_t mcg_cap,
			struct state_buf *b)
{
	struct kvm_state_vcpu *s = calloc(1, sizeof(*s));
	struct kvm_msrs *want = NULL;
	char who[24], err[160];
	int ret, khz;

	if (!s) {
		log_error("saving vCPU %u: out of memory", id);
		return -ENOMEM;
	}
	snprintf(who, sizeof(who), "vCPU %u: ", id);
	s->id = id;
	s->cpuid.head.nent = KVM_STATE_MAX_CPUID;
	/* KVM_GET_MP_STATE first: it lets the LAPIC take pending INIT/SIPI, changing what the
	 * others read. */
	const struct step steps[] = {
		{ "KVM_GET_MP_STATE", KVM_GET_MP_STATE, &s->mp_state },
		{ "KVM_GET_REGS", KVM_GET_REGS, &s->regs },
		{ "KVM_GET_SREGS", KVM_GET_SREGS, &s->sregs },
		{ "KVM_GET_XSAVE", KVM_GET_XSAVE, &s->xsave },
		{ "KVM_GET_XCRS", KVM_GET_XCRS, &s->xcrs },
		{ "KVM_GET_DEBUGREGS", KVM_GET_DEBUGREGS, &s->debugregs },
		{ "KVM_GET_LAPIC", KVM_GET_LAPIC, &s->lapic },
		{ "KVM_GET_CPUID2", KVM_GET_CPUID2, &s->cpuid.head },
	};
	/* Last, as Firecracker does: the other reads may change pending events. */
	const struct step events = { "KVM_GET_VCPU_EVENTS", KVM_GET_VCPU_EVENTS, &s->events };

	ret = run_steps(vcpu_fd, steps, ARRAY_SIZE(steps), who, err, sizeof(err));
	if (ret < 0)
		goto out;
	khz = ioctl(vcpu_fd, KVM_GET_TSC_KHZ, 0);
	if (khz < 0) {
		ret = -errno;
		snprintf(err, sizeof(err), "%sKVM_GET_TSC_KHZ: %s", who, strerror(errno));
		goto out;
	}
	s->tsc_khz = (uint32_t)khz;
	ret = msrs_to_save(kvm_fd, mcg_cap, &want, err, sizeof(err));
	if (ret < 0)
		goto out;
	ret = read_msrs(vcpu_fd, id, want, s, err, sizeof(err));
	if (ret < 0)
		goto out;
	ret = run_steps(vcpu_fd, &events, 1, who, err, sizeof(err));
	if (ret < 0)
		goto out;
	kvm_state_encode_vcpu(b, s);
	if (b->failed) {
		ret = -ENOMEM;
		snprintf(err, sizeof(err), "%sout of memory", who);
	}
out:
	if (ret < 0)
		log_error("saving %s", err);
	free(want);
	free(s);
	return ret;
}

/* KVM_SET_TSC_KHZ when the saved rate is known and is not already the vCPU's (setting it
 * needs TSC scaling, which not every host has). */
static int set_tsc_khz(int vcpu_fd, uint32_t khz, const char *who, char *err, size_t errlen)
{
	int now = ioctl(vcpu_fd, KVM_GET_TSC_KHZ, 0);

	if (khz == 0 || (now >= 0 && (uint32_t)now == khz))
		return 0;
	if (ioctl(vcpu_fd, KVM_SET_TSC_KHZ, (unsigned long)khz) < 0) {
		int ret = -errno;

		snprintf(err, errlen, "%sKVM_SET_TSC_KHZ %u (the vCPU runs at %d): %s", who, khz,
			 now, strerror(errno));
		return ret;
	}
	return 0;
}

/* KVM_SET_MSRS sets them in order and says how many it set: all of them, or name the first
 * one refused. */
static int write_msrs(int vcpu_fd, const struct kvm_state_vcpu *s, const char *who, char *err,
		      size_t errlen)
{
	int r = ioctl(vcpu_fd, KVM_SET_MSRS, &s->msrs.head);

	if (r < 0) {
		int ret = -errno;

		snprintf(err, errlen, "%sKVM_SET_MSRS: %s", who, strerror(errno));
		return ret;
	}
	if ((uint32_t)r < s->msrs.head.nmsrs) {
		snprintf(err, errlen, "%sKVM_SET_MSRS set %d of %u MSRs (first refused: 0x%x)", who,
			 r, s->msrs.head.nmsrs, s->msrs.entries[r].index);
		return -EIO;
	}
	return 0;
}

int kvm_state_load_vcpu(int vcpu_fd, unsigned id, struct state_cursor *c, char *err,
			size_t errlen)
{
	struct kvm_state_vcpu *s = malloc(sizeof(*s));
	char who[24], why[160];
	int ret;

	snprintf(who, sizeof(who), "vCPU %u: ", id);
	if (!s) {
		snprintf(err, errlen, "%sout of memory", who);
		return -ENOMEM;
	}
	const struct step first[] = {
		{ "KVM_SET_CPUID2", KVM_SET_CPUID2, &s->cpuid.head },
	};
	const struct step rest[] = {
		{ "KVM_SET_MP_STATE", KVM_SET_MP_STATE, &s->mp_state },
		{ "KVM_SET_REGS", KVM_SET_REGS, &s->regs },
		{ "KVM_SET_SREGS", KVM_SET_SREGS, &s->sregs },
		{ "KVM_SET_XSAVE", KVM_SET_XSAVE, &s->xsave },
		{ "KVM_SET_XCRS", KVM_SET_XCRS, &s->xcrs },
		{ "KVM_SET_DEBUGREGS", KVM_SET_DEBUGREGS, &s->debugregs },
		{ "KVM_SET_LAPIC", KVM_SET_LAPIC, &s->lapic },
	};
	const struct step events = { "KVM_SET_VCPU_EVENTS", KVM_SET_VCPU_EVENTS, &s->events };

	ret = kvm_state_decode_vcpu(c, s, why, sizeof(why));
	if (ret < 0) {
		snprintf(err, errlen, "%s%s", who, why);
		goto out;
	}
	if (s->id != id) {
		ret = refuse(err, errlen, "%sthe VCPU section is vCPU %u's", who, s->id);
		goto out;
	}
	s->events.flags &= EVENTS_SET_FLAGS;
	/* CPUID first: KVM checks MSRs, XCR0 and XSAVE features against it. */
	if ((ret = run_steps(vcpu_fd, first, 1, who, err, errlen)) < 0 ||
	    (ret = set_tsc_khz(vcpu_fd, s->tsc_khz, who, err, errlen)) < 0 ||
	    (ret = run_steps(vcpu_fd, rest, ARRAY_SIZE(rest), who, err, errlen)) < 0 ||
	    (ret = write_msrs(vcpu_fd, s, who, err, errlen)) < 0)
		goto out;
	ret = run_steps(vcpu_fd, &events, 1, who, err, errlen);
out:
	free(s);
	return ret;
}
