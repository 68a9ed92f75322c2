/* Unit tests for devices/serial.c: the 16550A registers as the guest sees them via the bus ops. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "serial.h"

enum { DATA, IER, IIR, LCR, MCR, LSR, MSR, SCR };
#define FCR IIR

/* One UART writing into a pipe, with every interrupt-line call recorded. */
struct fixture {
	struct serial s;
	int rfd, wfd;
	unsigned nr_irq;
	int irq[32];
};

static void record_irq(void *opaque, int level)
{
	struct fixture *f = opaque;

	assert_true(f->nr_irq < 32);
	f->irq[f->nr_irq++] = level;
}

static int fixture_setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	int fds[2];

	if (!f || pipe2(fds, O_NONBLOCK | O_CLOEXEC) < 0)
		return -1;
	f->rfd = fds[0];
	f->wfd = fds[1];
	serial_init(&f->s, f->wfd, record_irq, f);
	*state = f;
	return 0;
}

static int fixture_teardown(void **state)
{
	struct fixture *f = *state;

	serial_destroy(&f->s);
	close(f->rfd);
	close(f->wfd);
	free(f);
	return 0;
}

static void out(struct fixture *f, uint64_t reg, uint8_t v)
{
	serial_bus_ops.write(&f->s, reg, &v, 1);
}

static uint8_t in(struct fixture *f, uint64_t reg)
{
	uint8_t v = 0x5a;

	serial_bus_ops.read(&f->s, reg, &v, 1);
	return v;
}

/* Whatever the UART wrote to its output fd so far. */
static ssize_t drain(struct fixture *f, char *buf, size_t len)
{
	ssize_t n = read(f->rfd, buf, len);

	return n < 0 && errno == EAGAIN ? 0 : n;
}

static void push_str(struct fixture *f, const char *s)
{
	assert_int_equal(serial_rx_push(&f->s, (const uint8_t *)s, strlen(s)), strlen(s));
}

static void serial_write_thr_bytes_reach_out_fd(void **state)
{
	struct fixture *f = *state;
	char buf[16];

	out(f, DATA, 'h');
	out(f, DATA, 'i');
	out(f, DATA, '\n');
	assert_int_equal(drain(f, buf, sizeof(buf)), 3);
	assert_memory_equal(buf, "hi\n", 3);
	assert_int_equal(f->s.tx_bytes, 3);
	assert_int_equal(f->s.tx_errors, 0);
	assert_int_equal(f->nr_irq, 0); /* IER is 0 after reset */
}

static void serial_write_thr_full_pipe_counts_error(void **state)
{
	struct fixture *f = *state;
	static char junk[65536];
	char buf[1];

	while (write(f->wfd, junk, sizeof(junk)) > 0)
		;
	out(f, DATA, 'x');
	assert_int_equal(f->s.tx_bytes, 0);
	assert_int_equal(f->s.tx_errors, 1);
	assert_int_equal(in(f, LSR), 0x60); /* the transmitter still reads as empty */
	assert_int_equal(read(f->rfd, buf, 1), 1);
}

static void serial_read_lsr_reflects_rx_data(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(in(f, LSR), 0x60); /* THRE | TEMT */
	push_str(f, "a");
	assert_int_equal(in(f, LSR), 0x61); /* | DR */
	assert_int_equal(in(f, DATA), 'a');
	assert_int_equal(in(f, LSR), 0x60);
}

static void serial_rx_push_over_fifo_takes_only_room(void **state)
{
	struct fixture *f = *state;
	uint8_t buf[100];

	for (unsigned i = 0; i < sizeof(buf); i++)
		buf[i] = (uint8_t)i;
	assert_int_equal(serial_rx_space(&f->s), 64);
	assert_int_equal(serial_rx_push(&f->s, buf, 10), 10);
	assert_int_equal(serial_rx_space(&f->s), 54);
	assert_int_equal(serial_rx_push(&f->s, buf + 10, 90), 54);
	assert_int_equal(serial_rx_space(&f->s), 0);
	assert_int_equal(serial_rx_push(&f->s, buf + 64, 1), 0);
	assert_int_equal(in(f, DATA), 0);
	assert_int_equal(serial_rx_space(&f->s), 1);
	assert_int_equal(serial_rx_push(&f->s, buf + 64, 36), 1);
	/* Order survives the ring wrapping: 1..63 then 64. */
	for (unsigned i = 1; i <= 64; i++)
		assert_int_equal(in(f, DATA), i);
	assert_int_equal(in(f, LSR) & 0x01, 0);
	assert_int_equal(serial_rx_space(&f->s), 64);
	assert_int_equal(f->s.rx_bytes, 65);
}

static void serial_read_rbr_fifo_order_then_zero(void **state)
{
	struct fixture *f = *state;

	push_str(f, "ab");
	push_str(f, "c");
	assert_int_equal(in(f, DATA), 'a');
	assert_int_equal(in(f, DATA), 'b');
	assert_int_equal(in(f, DATA), 'c');
	assert_int_equal(in(f, DATA), 0);
	assert_int_equal(in(f, LSR), 0x60);
}

static void serial_read_iir_rx_data_before_thre(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(in(f, IIR), 0x01);
	out(f, IER, 0x03); /* RDI | THRI: THRE pending at once */
	push_str(f, "xy");
	assert_int_equal(in(f, IIR), 0x04);
	assert_int_equal(in(f, IIR), 0x04); /* reading IIR does not drop RX data */
	assert_int_equal(in(f, DATA), 'x');
	assert_int_equal(in(f, IIR), 0x04);
	assert_int_equal(in(f, DATA), 'y');
	assert_int_equal(in(f, IIR), 0x02); /* THRE was kept behind the RX data */
	assert_int_equal(in(f, IIR), 0x01);
}

static void serial_read_iir_fifo_enabled_sets_top_bits(void **state)
{
	struct fixture *f = *state;

	out(f, FCR, 0x01);
	assert_int_equal(in(f, IIR), 0xc1);
	out(f, IER, 0x01);
	push_str(f, "z");
	assert_int_equal(in(f, IIR), 0xc4);
	out(f, FCR, 0x00);
	assert_int_equal(in(f, IIR), 0x04);
}

static void serial_write_ier_thri_raises_irq_until_iir_read(void **state)
{
	struct fixture *f = *state;

	out(f, IER, 0x02);
	assert_int_equal(f->nr_irq, 1);
	assert_int_equal(f->irq[0], 1);
	assert_int_equal(in(f, IIR), 0x02);
	assert_int_equal(f->nr_irq, 2);
	assert_int_equal(f->irq[1], 0);
	assert_int_equal(in(f, IIR), 0x01);
	/* Rewriting THRI while already set does not raise it again. */
	out(f, IER, 0x02);
	assert_int_equal(in(f, IIR), 0x01);
	assert_int_equal(f->nr_irq, 2);
	/* Each transmitted byte empties the holding register again. */
	out(f, DATA, '.');
	assert_int_equal(f->nr_irq, 3);
	assert_int_equal(f->irq[2], 1);
	assert_int_equal(in(f, IIR), 0x02);
	assert_int_equal(f->nr_irq, 4);
	assert_int_equal(f->irq[3], 0);
	/* Off and on again raises it afresh. */
	out(f, IER, 0x00);
	out(f, IER, 0x02);
	assert_int_equal(f->nr_irq, 5);
	assert_int_equal(f->irq[4], 1);
	out(f, IER, 0x00);
	assert_int_equal(f->nr_irq, 6);
	assert_int_equal(f->irq[5], 0);
}

static void serial_irq_callback_sees_level_changes_only(void **state)
{
	struct fixture *f = *state;

	push_str(f, "a"); /* IER.RDI off: no interrupt */
	assert_int_equal(f->nr_irq, 0);
	out(f, IER, 0x01);
	assert_int_equal(f->nr_irq, 1);
	assert_int_equal(f->irq[0], 1);
	push_str(f, "bc");
	out(f, SCR, 0x77);
	assert_int_equal(in(f, LSR), 0x61);
	assert_int_equal(in(f, DATA), 'a');
	assert_int_equal(in(f, DATA), 'b');
	assert_int_equal(f->nr_irq, 1);
	assert_int_equal(in(f, DATA), 'c');
	assert_int_equal(f->nr_irq, 2);
	assert_int_equal(f->irq[1], 0);
	assert_int_equal(in(f, DATA), 0);
	assert_int_equal(f->nr_irq, 2);
	assert_int_equal(f->s.irq_level, 0);
}

static void serial_write_dlab_switches_to_divisor_latch(void **state)
{
	struct fixture *f = *state;
	char buf[4];

	out(f, IER, 0x05);
	out(f, LCR, 0x83); /* DLAB, 8N1 */
	assert_int_equal(in(f, DATA), 0x0c); /* 9600 baud after reset */
	assert_int_equal(in(f, IER), 0x00);  /* DLM */
	out(f, DATA, 0x01);
	out(f, IER, 0x02);
	assert_int_equal(in(f, DATA), 0x01);
	assert_int_equal(in(f, IER), 0x02);
	assert_int_equal(in(f, LCR), 0x83);
	assert_int_equal(drain(f, buf, sizeof(buf)), 0); /* DLL writes are not output */
	assert_int_equal(f->nr_irq, 0);                   /* nor is DLM an IER write */

	out(f, LCR, 0x03);
	assert_int_equal(in(f, LCR), 0x03);
	assert_int_equal(in(f, IER), 0x05);
	assert_int_equal(f->s.dll, 0x01);
	assert_int_equal(f->s.dlm, 0x02);
	out(f, IER, 0xff);
	assert_int_equal(in(f, IER), 0x0f);
}

static void serial_write_mcr_loopback_echoes_and_mirrors_msr(void **state)
{
	struct fixture *f = *state;
	char buf[4];

	assert_int_equal(in(f, MSR), 0xb0); /* DCD | DSR | CTS outside loopback */
	out(f, MCR, 0x1a);                  /* LOOP | OUT2 | RTS, as Linux's autoconfig */
	assert_int_equal(in(f, MCR), 0x1a);
	assert_int_equal(in(f, MSR) & 0xf0, 0x90);
	out(f, MCR, 0x1f);
	assert_int_equal(in(f, MSR) & 0xf0, 0xf0);
	out(f, MCR, 0x10);
	assert_int_equal(in(f, MSR) & 0xf0, 0x00);
	out(f, MCR, 0x11);
	assert_int_equal(in(f, MSR) & 0xf0, 0x20); /* DTR -> DSR */
	out(f, MCR, 0x14);
	assert_int_equal(in(f, MSR) & 0xf0, 0x40); /* OUT1 -> RI */

	out(f, DATA, 0x55);
	out(f, DATA, 0xaa);
	assert_int_equal(drain(f, buf, sizeof(buf)), 0);
	assert_int_equal(f->s.tx_bytes, 0);
	assert_int_equal(in(f, LSR), 0x61);
	assert_int_equal(in(f, DATA), 0x55);
	assert_int_equal(in(f, DATA), 0xaa);
	assert_int_equal(in(f, LSR), 0x60);

	out(f, MCR, 0xff);
	assert_int_equal(in(f, MCR), 0x1f);
	out(f, MCR, 0x08);
	out(f, DATA, 'o');
	assert_int_equal(drain(f, buf, sizeof(buf)), 1);
	assert_int_equal(buf[0], 'o');
	assert_int_equal(in(f, LSR), 0x60);
}

static void serial_write_fcr_clear_rx_empties_fifo(void **state)
{
	struct fixture *f = *state;

	out(f, IER, 0x01);
	push_str(f, "hello");
	assert_int_equal(f->nr_irq, 1);
	out(f, FCR, 0x01); /* enable without clearing keeps the data */
	assert_int_equal(in(f, LSR), 0x61);
	out(f, FCR, 0x07);
	assert_int_equal(in(f, LSR), 0x60);
	assert_int_equal(serial_rx_space(&f->s), 64);
	assert_int_equal(in(f, DATA), 0);
	assert_int_equal(in(f, IIR), 0xc1);
	assert_int_equal(f->nr_irq, 2);
	assert_int_equal(f->irq[1], 0);
	push_str(f, "k"); /* the ring restarts cleanly */
	assert_int_equal(in(f, DATA), 'k');
}

static void serial_write_scr_reads_back(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(in(f, SCR), 0x00);
	out(f, SCR, 0xa5);
	assert_int_equal(in(f, SCR), 0xa5);
	out(f, LSR, 0x00); /* read-only */
	out(f, MSR, 0x00);
	assert_int_equal(in(f, LSR), 0x60);
	assert_int_equal(in(f, MSR), 0xb0);
}

static void serial_bus_ops_past_last_register_read_ff(void **state)
{
	struct fixture *f = *state;
	uint8_t v[4] = { 0, 0, 0, 0 };
	static const uint8_t w[4] = { 0x11, 0x22, 0x33, 0x44 };

	serial_bus_ops.write(&f->s, 6, w, 4); /* MSR (ignored), SCR, then nothing */
	assert_int_equal(in(f, SCR), 0x22);
	serial_bus_ops.read(&f->s, 5, v, 4);
	assert_int_equal(v[0], 0x60);
	assert_int_equal(v[1], 0xb0);
	assert_int_equal(v[2], 0x22);
	assert_int_equal(v[3], 0xff);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, fixture_setup, fixture_teardown)
	const struct CMUnitTest tests[] = {
		T(serial_write_thr_bytes_reach_out_fd),
		T(serial_write_thr_full_pipe_counts_error),
		T(serial_read_lsr_reflects_rx_data),
		T(serial_rx_push_over_fifo_takes_only_room),
		T(serial_read_rbr_fifo_order_then_zero),
		T(serial_read_iir_rx_data_before_thre),
		T(serial_read_iir_fifo_enabled_sets_top_bits),
		T(serial_write_ier_thri_raises_irq_until_iir_read),
		T(serial_irq_callback_sees_level_changes_only),
		T(serial_write_dlab_switches_to_divisor_latch),
		T(serial_write_mcr_loopback_echoes_and_mirrors_msr),
		T(serial_write_fcr_clear_rx_empties_fifo),
		T(serial_write_scr_reads_back),
		T(serial_bus_ops_past_last_register_read_ff),
	};
#undef T

	return cmocka_run_group_tests_name("serial.c", tests, NULL, NULL);
}
