/* Unit tests for devices/i8042.c: controller commands, keyboard replies, reset and Ctrl+Alt+Del. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "i8042.h"

#define ST_OBF 0x01
#define ST_CMD 0x08
#define ST_IDLE 0x14 /* SYS | UNLOCKED after reset */

/* One controller with its interrupt-line and reset calls recorded. */
struct fixture {
	struct i8042 k;
	unsigned nr_irq, nr_reset;
	int irq[64];
};

static void record_irq(void *opaque, int level)
{
	struct fixture *f = opaque;

	assert_true(f->nr_irq < 64);
	f->irq[f->nr_irq++] = level;
}

static void record_reset(void *opaque)
{
	struct fixture *f = opaque;

	f->nr_reset++;
}

static int fixture_setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	i8042_init(&f->k, record_irq, record_reset, f);
	*state = f;
	return 0;
}

static int fixture_teardown(void **state)
{
	struct fixture *f = *state;

	i8042_destroy(&f->k);
	free(f);
	return 0;
}

static void out(struct fixture *f, uint16_t port, uint8_t v)
{
	i8042_bus_ops.write(&f->k, port - I8042_PORT_BASE, &v, 1);
}

static uint8_t in(struct fixture *f, uint16_t port)
{
	uint8_t v = 0x5a;

	i8042_bus_ops.read(&f->k, port - I8042_PORT_BASE, &v, 1);
	return v;
}

/* Queues one keyboard byte through the controller's "write keyboard buffer" command. */
static void kbd_byte(struct fixture *f, uint8_t v)
{
	out(f, I8042_CMD_PORT, 0xd2);
	out(f, I8042_DATA_PORT, v);
}

static void i8042_write_self_test_replies_55(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(in(f, I8042_CMD_PORT), ST_IDLE);
	out(f, I8042_CMD_PORT, 0xaa);
	assert_int_equal(in(f, I8042_CMD_PORT), ST_IDLE | ST_CMD | ST_OBF);
	assert_int_equal(in(f, I8042_DATA_PORT), 0x55);
	assert_int_equal(in(f, I8042_CMD_PORT) & ST_OBF, 0);
	assert_int_equal(f->nr_irq, 0); /* controller replies are polled, not interrupting */
	assert_int_equal(f->nr_reset, 0);
}

static void i8042_write_ctr_reads_back(void **state)
{
	struct fixture *f = *state;

	out(f, I8042_CMD_PORT, 0x20);
	assert_int_equal(in(f, I8042_DATA_PORT), 0x05); /* KBDINT | SYS after reset */
	out(f, I8042_CMD_PORT, 0x60);
	assert_int_equal(in(f, I8042_CMD_PORT) & ST_CMD, ST_CMD);
	out(f, I8042_DATA_PORT, 0x47);
	assert_int_equal(in(f, I8042_CMD_PORT), ST_IDLE); /* data written, nothing queued */
	assert_int_equal(f->k.ctr, 0x47);
	out(f, I8042_CMD_PORT, 0x20);
	assert_int_equal(in(f, I8042_DATA_PORT), 0x47);
	assert_int_equal(f->nr_irq, 0);
}

static void i8042_write_port_enable_disable_toggles_ctr(void **state)
{
	struct fixture *f = *state;

	out(f, I8042_CMD_PORT, 0xad);
	assert_int_equal(f->k.ctr, 0x15);
	out(f, I8042_CMD_PORT, 0xa7);
	assert_int_equal(f->k.ctr, 0x35);
	out(f, I8042_CMD_PORT, 0xae);
	assert_int_equal(f->k.ctr, 0x25);
	out(f, I8042_CMD_PORT, 0xa8);
	assert_int_equal(f->k.ctr, 0x05);
	out(f, I8042_CMD_PORT, 0xa9); /* no auxiliary port */
	assert_int_equal(in(f, I8042_DATA_PORT), 0xff);
	out(f, I8042_CMD_PORT, 0xab); /* keyboard interface test passes */
	assert_int_equal(in(f, I8042_DATA_PORT), 0x00);
	assert_int_equal(f->nr_reset, 0);
}

static void i8042_write_kbd_reset_replies_fa_aa(void **state)
{
	struct fixture *f = *state;

	out(f, I8042_DATA_PORT, 0xff);
	assert_int_equal(f->nr_irq, 1);
	assert_int_equal(f->irq[0], 1);
	assert_int_equal(in(f, I8042_CMD_PORT) & ST_CMD, 0);
	assert_int_equal(in(f, I8042_DATA_PORT), 0xfa);
	/* An edge per byte: down, then up again while data remains. */
	assert_int_equal(f->nr_irq, 3);
	assert_int_equal(f->irq[1], 0);
	assert_int_equal(f->irq[2], 1);
	assert_int_equal(in(f, I8042_DATA_PORT), 0xaa);
	assert_int_equal(f->nr_irq, 4);
	assert_int_equal(f->irq[3], 0);
	assert_int_equal(in(f, I8042_CMD_PORT) & ST_OBF, 0);
	assert_int_equal(f->nr_reset, 0);
}

static void i8042_write_kbd_get_id_replies_fa_ab_83(void **state)
{
	struct fixture *f = *state;

	out(f, I8042_DATA_PORT, 0xf2);
	assert_int_equal(f->k.count, 3);
	assert_int_equal(in(f, I8042_DATA_PORT), 0xfa);
	assert_int_equal(in(f, I8042_DATA_PORT), 0xab);
	assert_int_equal(in(f, I8042_DATA_PORT), 0x83);
	assert_int_equal(in(f, I8042_CMD_PORT) & ST_OBF, 0);
}

static void i8042_write_kbd_other_commands_ack_or_echo(void **state)
{
	struct fixture *f = *state;

	out(f, I8042_DATA_PORT, 0xee);
	assert_int_equal(in(f, I8042_DATA_PORT), 0xee);
	out(f, I8042_DATA_PORT, 0xf4); /* enable scanning */
	assert_int_equal(in(f, I8042_DATA_PORT), 0xfa);
	out(f, I8042_DATA_PORT, 0xed); /* set LEDs, then its argument */
	out(f, I8042_DATA_PORT, 0x00);
	assert_int_equal(in(f, I8042_DATA_PORT), 0xfa);
	assert_int_equal(in(f, I8042_DATA_PORT), 0xfa);
	assert_int_equal(in(f, I8042_CMD_PORT) & ST_OBF, 0);
}

static void i8042_write_kbd_irq_disabled_no_irq(void **state)
{
	struct fixture *f = *state;

	out(f, I8042_CMD_PORT, 0x60);
	out(f, I8042_DATA_PORT, 0x04); /* KBDINT off */
	out(f, I8042_DATA_PORT, 0xff);
	assert_int_equal(in(f, I8042_DATA_PORT), 0xfa);
	assert_int_equal(in(f, I8042_DATA_PORT), 0xaa);
	assert_int_equal(f->nr_irq, 0);
}

static void i8042_write_reset_cpu_calls_reset_only(void **state)
{
	struct fixture *f = *state;

	out(f, I8042_CMD_PORT, 0xfe);
	assert_int_equal(f->nr_reset, 1);
	assert_int_equal(f->k.resets, 1);
	assert_int_equal(f->nr_irq, 0);
	assert_int_equal(f->k.count, 0);
	assert_int_equal(in(f, I8042_CMD_PORT) & ST_OBF, 0);
	assert_int_equal(f->k.ctr, 0x05);
	/* 0xfe on the data port is a keyboard resend, not a CPU reset. */
	out(f, I8042_DATA_PORT, 0xfe);
	assert_int_equal(f->nr_reset, 1);
	assert_int_equal(in(f, I8042_DATA_PORT), 0xfa);
	out(f, I8042_CMD_PORT, 0xfe);
	assert_int_equal(f->nr_reset, 2);
}

static void i8042_write_reset_cpu_without_callback_counts(void **state)
{
	struct fixture *f = *state;

	f->k.reset = NULL;
	out(f, I8042_CMD_PORT, 0xfe);
	assert_int_equal(f->k.resets, 1);
	assert_int_equal(f->nr_reset, 0);
}

static void i8042_send_ctrl_alt_del_queues_scancodes(void **state)
{
	struct fixture *f = *state;
	static const uint8_t seq[] = { 0x14, 0x11, 0xe0, 0x71 };

	assert_int_equal(i8042_send_ctrl_alt_del(&f->k), 0);
	assert_int_equal(f->nr_irq, 1);
	assert_int_equal(f->irq[0], 1);
	assert_int_equal(f->k.irq_level, 1);
	assert_int_equal(in(f, I8042_CMD_PORT) & ST_OBF, ST_OBF);
	for (unsigned i = 0; i < sizeof(seq); i++)
		assert_int_equal(in(f, I8042_DATA_PORT), seq[i]);
	assert_int_equal(f->irq[f->nr_irq - 1], 0);
	assert_int_equal(f->k.irq_level, 0);
	assert_int_equal(in(f, I8042_CMD_PORT) & ST_OBF, 0);
	assert_int_equal(f->nr_reset, 0);
}

static void i8042_send_ctrl_alt_del_no_room_fails_enospc(void **state)
{
	struct fixture *f = *state;

	for (unsigned i = 0; i < I8042_BUF_LEN - 3; i++)
		kbd_byte(f, (uint8_t)i);
	assert_int_equal(f->k.count, 13);
	assert_int_equal(i8042_send_ctrl_alt_del(&f->k), -ENOSPC);
	assert_int_equal(f->k.count, 13);
	assert_int_equal(in(f, I8042_DATA_PORT), 0);
	assert_int_equal(i8042_send_ctrl_alt_del(&f->k), 0); /* exactly four free */
	assert_int_equal(f->k.count, I8042_BUF_LEN);
	for (unsigned i = 1; i < I8042_BUF_LEN - 3; i++)
		assert_int_equal(in(f, I8042_DATA_PORT), i);
	assert_int_equal(in(f, I8042_DATA_PORT), 0x14);
	assert_int_equal(in(f, I8042_DATA_PORT), 0x11);
	assert_int_equal(in(f, I8042_DATA_PORT), 0xe0);
	assert_int_equal(in(f, I8042_DATA_PORT), 0x71);
	assert_int_equal(f->k.count, 0);
}

static void i8042_read_empty_buffer_repeats_last_byte(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(in(f, I8042_DATA_PORT), 0x00);
	assert_int_equal(in(f, I8042_CMD_PORT) & ST_OBF, 0);
	out(f, I8042_CMD_PORT, 0xaa);
	assert_int_equal(in(f, I8042_DATA_PORT), 0x55);
	assert_int_equal(in(f, I8042_DATA_PORT), 0x55);
	assert_int_equal(in(f, I8042_CMD_PORT) & ST_OBF, 0);
	assert_int_equal(f->nr_irq, 0);
}

static void i8042_write_full_buffer_keeps_first_16(void **state)
{
	struct fixture *f = *state;

	for (unsigned i = 0; i < I8042_BUF_LEN + 2; i++)
		kbd_byte(f, (uint8_t)(0x30 + i));
	assert_int_equal(f->k.count, I8042_BUF_LEN);
	for (unsigned i = 0; i < I8042_BUF_LEN; i++)
		assert_int_equal(in(f, I8042_DATA_PORT), 0x30 + i);
	assert_int_equal(in(f, I8042_CMD_PORT) & ST_OBF, 0);
}

static void i8042_bus_ops_ports_61_to_63_read_ff(void **state)
{
	struct fixture *f = *state;
	uint8_t v[5] = { 0 };
	static const uint8_t w[3] = { 0xaa, 0xfe, 0xff };

	i8042_bus_ops.write(&f->k, 1, w, 3);
	assert_int_equal(f->nr_reset, 0);
	assert_int_equal(f->k.count, 0);
	out(f, I8042_CMD_PORT, 0xaa);
	i8042_bus_ops.read(&f->k, 0, v, 5);
	assert_int_equal(v[0], 0x55);
	assert_int_equal(v[1], 0xff);
	assert_int_equal(v[2], 0xff);
	assert_int_equal(v[3], 0xff);
	assert_int_equal(v[4], ST_IDLE | ST_CMD);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, fixture_setup, fixture_teardown)
	const struct CMUnitTest tests[] = {
		T(i8042_write_self_test_replies_55),
		T(i8042_write_ctr_reads_back),
		T(i8042_write_port_enable_disable_toggles_ctr),
		T(i8042_write_kbd_reset_replies_fa_aa),
		T(i8042_write_kbd_get_id_replies_fa_ab_83),
		T(i8042_write_kbd_other_commands_ack_or_echo),
		T(i8042_write_kbd_irq_disabled_no_irq),
		T(i8042_write_reset_cpu_calls_reset_only),
		T(i8042_write_reset_cpu_without_callback_counts),
		T(i8042_send_ctrl_alt_del_queues_scancodes),
		T(i8042_send_ctrl_alt_del_no_room_fails_enospc),
		T(i8042_read_empty_buffer_repeats_last_byte),
		T(i8042_write_full_buffer_keeps_first_16),
		T(i8042_bus_ops_ports_61_to_63_read_ff),
	};
#undef T

	return cmocka_run_group_tests_name("i8042.c", tests, NULL, NULL);
}
