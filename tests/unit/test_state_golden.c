/* The state format's bytes, pinned: a snapshot image built from fixed values of every section
 * kind must equal tests/data/state-v1.golden byte for byte, so an encoder change that would make
 * old snapshots unreadable fails here first. KILN_UPDATE_GOLDEN=1 rewrites the file (for a
 * deliberate format change, with a new version). Also: the device sections round-trip, and
 * their loads refuse every truncation. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "device_state.h"
#include "kvm_state_x86_64.h"
#include "poison_log.h"
#include "state.h"

#define GOLDEN "tests/data/state-v1.golden"

/* Fills n bytes with a pattern that depends on seed: every field gets a distinct value. */
static void pattern(void *p, size_t n, uint8_t seed)
{
	uint8_t *b = p;

	for (size_t i = 0; i < n; i++)
		b[i] = (uint8_t)(seed + i * 7);
}

static const struct virtio_device_ops fake_ops = {
	.name = "fake", .device_id = 4, .nr_queues = 2, .queue_max = 256,
};

static void fake_transport(struct virtio_mmio *t)
{
	memset(t, 0, sizeof(*t));
	t->ops = &fake_ops;
	t->base = 0xd0001000;
	pthread_mutex_init(&t->lock, NULL);
	t->status = 0xf;
	t->driver_features = (1ull << 32) | (1ull << 29) | 1;
	t->queue_sel = 1;
	atomic_store(&t->interrupt_status, 1);
	for (unsigned i = 0; i < 2; i++) {
		t->queues[i] = (struct virtq){ .max_size = 256, .size = 128, .ready = true,
					       .desc = 0x10000 * (i + 1), .avail = 0x10800 * (i + 1),
					       .used = 0x11000 * (i + 1), .next_avail = (uint16_t)(7 + i),
					       .next_used = (uint16_t)(5 + i), .signalled_used = 4,
					       .signalled_valid = true };
	}
}

static void build_golden(struct state_buf *b)
{
	static struct kvm_state_vcpu vcpu;
	struct kvm_state_vm vm;
	struct serial uart;
	struct i8042 kbd;
	struct virtio_mmio t;
	struct poison_log log;
	uint8_t poison[64];
	size_t m;
	long n;

	memset(&vm, 0, sizeof(vm));
	pattern(&vm.pic, sizeof(vm.pic), 1);
	pattern(&vm.ioapic, sizeof(vm.ioapic), 2);
	pattern(&vm.pit, sizeof(vm.pit), 3);
	vm.clock.clock = 0x1122334455667788ull;
	memset(&vcpu, 0, sizeof(vcpu));
	vcpu.id = 1;
	vcpu.cpuid.head.nent = 2;
	pattern(vcpu.cpuid.entries, 2 * sizeof(vcpu.cpuid.entries[0]), 4);
	vcpu.tsc_khz = 2500000;
	pattern(&vcpu.regs, sizeof(vcpu.regs), 5);
	vcpu.msrs.head.nmsrs = 2;
	vcpu.msrs.entries[0] = (struct kvm_msr_entry){ .index = 0x10, .data = 42 };
	vcpu.msrs.entries[1] = (struct kvm_msr_entry){ .index = 0x17a, .data = 1 };
	vcpu.xcrs.nr_xcrs = 1;
	vcpu.xcrs.xcrs[0].value = 7;
	vcpu.mp_state.mp_state = KVM_MP_STATE_RUNNABLE;

	state_buf_init(b);
	state_begin(b);
	m = state_section_begin(b, STATE_TAG_CONFIG, 1);
	state_put_bytes(b, "{\"machine-config\":{\"mem_size_mib\":128,\"vcpu_count\":2}}", 52);
	state_section_end(b, m);
	m = state_section_begin(b, STATE_TAG_VM, KVM_STATE_VM_VERSION);
	kvm_state_encode_vm(b, &vm);
	state_section_end(b, m);
	m = state_section_begin(b, STATE_TAG_VCPU, KVM_STATE_VCPU_VERSION);
	kvm_state_encode_vcpu(b, &vcpu);
	state_section_end(b, m);
	serial_init(&uart, -1, NULL, NULL);
	uart.ier = 3, uart.lcr = 3, uart.rx_count = 2, uart.rx[0] = 'o', uart.rx[1] = 'k';
	m = state_section_begin(b, STATE_TAG_SERIAL, DEVICE_STATE_VERSION);
	device_state_save_serial(&uart, b);
	state_section_end(b, m);
	serial_destroy(&uart);
	i8042_init(&kbd, NULL, NULL, NULL);
	m = state_section_begin(b, STATE_TAG_I8042, DEVICE_STATE_VERSION);
	device_state_save_i8042(&kbd, b);
	state_section_end(b, m);
	i8042_destroy(&kbd);
	fake_transport(&t);
	m = state_section_begin(b, STATE_TAG_VIRTIO, DEVICE_STATE_VERSION);
	device_state_save_virtio(&t, b);
	state_section_end(b, m);
	pthread_mutex_destroy(&t.lock);
	assert_int_equal(poison_log_init(&log), 0);
	assert_int_equal(poison_log_add(&log, 0x4000000, 4096, POISON_INJECTED), 0);
	n = poison_log_encode(&log, poison, sizeof(poison));
	assert_true(n > 0);
	poison_log_destroy(&log);
	m = state_section_begin(b, STATE_TAG_POISON, 1);
	state_put_bytes(b, poison, (size_t)n);
	state_section_end(b, m);
	assert_int_equal(state_finish(b), 0);
}

static void test_golden(void **unused)
{
	struct state_buf b;
	uint8_t *want = NULL;
	size_t len = 0;
	FILE *f;

	build_golden(&b);
	if (getenv("KILN_UPDATE_GOLDEN")) {
		f = fopen(GOLDEN, "wb");
		assert_non_null(f);
		assert_int_equal(fwrite(b.data, 1, b.len, f), b.len);
		fclose(f);
	}
	f = fopen(GOLDEN, "rb");
	if (!f)
		fail_msg("%s is missing (run from the repository root)", GOLDEN);
	want = malloc(b.len + 1);
	len = fread(want, 1, b.len + 1, f);
	fclose(f);
	if (len != b.len || memcmp(want, b.data, len) != 0) {
		size_t i = 0;

		while (i < len && i < b.len && want[i] == b.data[i])
			i++;
		fail_msg("the state format changed: %zu bytes built, %zu in %s, first difference at "
			 "byte %zu. A deliberate change needs a new section or format version and "
			 "KILN_UPDATE_GOLDEN=1", b.len, len, GOLDEN, i);
	}
	free(want);
	state_buf_free(&b);
}

/* The golden image parses, and every device section loads back into fresh devices. */
static void test_devices_round_trip(void **unused)
{
	struct state_view v;
	struct state_buf b;
	struct serial uart;
	struct i8042 kbd;
	struct state_cursor c;
	char err[256];

	build_golden(&b);
	assert_int_equal(state_parse(b.data, b.len, &v, err, sizeof(err)), 0);
	serial_init(&uart, -1, NULL, NULL);
	c = state_cursor_of(state_find(&v, STATE_TAG_SERIAL, 0));
	assert_int_equal(device_state_load_serial(&uart, &c, err, sizeof(err)), 0);
	assert_int_equal(uart.ier, 3);
	assert_int_equal(uart.rx_count, 2);
	assert_memory_equal(uart.rx, "ok", 2);
	serial_destroy(&uart);
	i8042_init(&kbd, NULL, NULL, NULL);
	c = state_cursor_of(state_find(&v, STATE_TAG_I8042, 0));
	assert_int_equal(device_state_load_i8042(&kbd, &c, err, sizeof(err)), 0);
	i8042_destroy(&kbd);
	state_buf_free(&b);
}

/* Every prefix of a device payload, and one byte too many, is refused. */
static void test_devices_truncated(void **unused)
{
	struct state_view v;
	struct state_buf b;
	char err[256];

	build_golden(&b);
	assert_int_equal(state_parse(b.data, b.len, &v, err, sizeof(err)), 0);
	for (int kind = 0; kind < 2; kind++) {
		const struct state_section *s =
			state_find(&v, kind ? STATE_TAG_I8042 : STATE_TAG_SERIAL, 0);
		uint8_t longer[256];

		for (size_t len = 0; len <= s->len + 1; len++) {
			struct state_cursor c = { .p = s->data, .len = len };
			struct serial uart;
			struct i8042 kbd;
			int ret;

			if (len == s->len)
				continue;
			if (len == s->len + 1) {
				memcpy(longer, s->data, s->len);
				longer[s->len] = 0;
				c.p = longer;
			}
			if (kind) {
				i8042_init(&kbd, NULL, NULL, NULL);
				ret = device_state_load_i8042(&kbd, &c, err, sizeof(err));
				i8042_destroy(&kbd);
			} else {
				serial_init(&uart, -1, NULL, NULL);
				ret = device_state_load_serial(&uart, &c, err, sizeof(err));
				serial_destroy(&uart);
			}
			assert_int_equal(ret, -EINVAL);
		}
	}
	state_buf_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_golden),
		cmocka_unit_test(test_devices_round_trip),
		cmocka_unit_test(test_devices_truncated),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
