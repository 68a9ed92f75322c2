/* Unit tests for devices/virtio/vsock*.c with a guest that breaks the rules: malformed packets,
 * unknown connections, bad receive buffers, ring violations, too many connections. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "virtio.h"
#include "vsock_driver.h"

static void tx_malformed_packets_dropped(void **state)
{
	struct fx *f = *state;
	uint8_t raw[VSOCK_HDR_LEN + 10];
	struct vsock_hdr h = {
		.src_cid = CID, .dst_cid = 2, .src_port = 1, .dst_port = 2, .type = 1,
		.op = VSOCK_OP_REQUEST,
	};
	struct pkt p;
	int l = vd_listener(f, 2);

	vd_tx_raw(f, raw, 20, false); /* shorter than a header */
	vd_encode(&h, raw);
	vd_tx_raw(f, raw, VSOCK_HDR_LEN, true); /* a writable buffer in a transmit chain */
	h.len = 11;
	vd_encode(&h, raw);
	vd_tx_raw(f, raw, sizeof(raw), false); /* len past the chain */
	h.len = 0;
	h.src_cid = CID + 1;
	vd_encode(&h, raw);
	vd_tx_raw(f, raw, VSOCK_HDR_LEN, false); /* not the guest's CID */
	h.src_cid = CID;
	h.dst_cid = 7;
	vd_encode(&h, raw);
	vd_tx_raw(f, raw, VSOCK_HDR_LEN, false); /* not to the host */
	vd_pump(f);
	assert_int_equal(f->v.stats.bad_packets, 5);
	assert_false(vd_rx_get(f, &p));
	assert_int_equal(f->v.nr_conns, 0);
	assert_int_equal(vd_get32(f, f->q[1].used) >> 16, 5); /* every chain was given back */
	assert_false(vd_rd(f, 0x70) & VIRTIO_STATUS_NEEDS_RESET);
	close(l);
}

static void tx_unknown_connection_rst(void **state)
{
	struct fx *f = *state;
	uint8_t raw[VSOCK_HDR_LEN];
	struct vsock_hdr h = {
		.src_cid = CID, .dst_cid = 2, .src_port = 40, .dst_port = 50, .type = 2,
		.op = VSOCK_OP_REQUEST,
	};
	struct pkt p;

	vd_encode(&h, raw);
	vd_tx_raw(f, raw, VSOCK_HDR_LEN, false); /* SEQPACKET was not offered */
	vd_expect_pkt(f, &p, VSOCK_OP_RST, 50, 40);
	vd_tx(f, 41, 51, VSOCK_OP_RW, 0, 0, 0, "?", 1);
	vd_expect_pkt(f, &p, VSOCK_OP_RST, 51, 41);
	vd_tx(f, 42, 52, 99, 0, 0, 0, NULL, 0);
	vd_expect_pkt(f, &p, VSOCK_OP_RST, 52, 42);
	vd_tx(f, 43, 53, VSOCK_OP_RST, 0, 0, 0, NULL, 0);
	vd_tx(f, 44, 54, VSOCK_OP_RESPONSE, 0, 0, 0, NULL, 0);
	vd_expect_pkt(f, &p, VSOCK_OP_RST, 54, 44);
	assert_false(vd_rx_get(f, &p));
	assert_int_equal(f->v.stats.rst_sent, 4);
}

static void tx_request_on_live_connection_resets(void **state)
{
	struct fx *f = *state;
	char buf[16];
	uint32_t hport;
	struct pkt p;
	int fd = vd_host_conn(f, 9, 65536, &hport);

	vd_tx(f, 9, hport, VSOCK_OP_REQUEST, 0, 65536, 0, NULL, 0);
	vd_expect_pkt(f, &p, VSOCK_OP_RST, hport, 9);
	assert_int_equal(vd_hear(fd, buf, sizeof(buf)), 0);
	close(fd);
}

/* Receive chains with a readable buffer, or no room past a header, go back empty. */
static void rx_bad_buffers_returned_empty(void **state)
{
	struct fx *f = *state;
	struct drvq *q = &f->q[0];
	struct pkt p;
	uint16_t i;

	for (uint32_t k = 0; k < 32; k++) {
		vd_tx(f, 100 + k, 6000, VSOCK_OP_REQUEST, 0, 0, 0, NULL, 0);
		vd_expect_pkt(f, &p, VSOCK_OP_RST, 6000, 100 + k);
	}
	vd_tx(f, 1, 6000, VSOCK_OP_REQUEST, 0, 0, 0, NULL, 0); /* its RST waits for a buffer */
	i = q->next_avail % QSIZE;
	vd_put_desc(f, q, i, RXBUF_BASE + 0x2000ull * i, RXBUF_LEN, 0, 0);
	vd_offer(f, 0, i);
	i = q->next_avail % QSIZE;
	vd_put_desc(f, q, i, RXBUF_BASE + 0x2000ull * i, VSOCK_HDR_LEN, VIRTQ_DESC_F_WRITE, 0);
	vd_offer(f, 0, i);
	assert_int_equal(f->v.stats.bad_rx_bufs, 2);
	for (int k = 0; k < 2; k++)
		assert_int_equal(vd_get32(f, q->used + 8 + 8ull * (q->next_used++ % QSIZE)), 0);
	assert_false(vd_rx_get(f, &p));
	vd_post_rx(f, 1);
	vd_expect_pkt(f, &p, VSOCK_OP_RST, 6000, 1);
}

static void tx_descriptor_outside_ram_needs_reset(void **state)
{
	struct fx *f = *state;
	struct drvq *q = &f->q[1];
	struct pkt p;

	vd_put_desc(f, q, 0, MEM_SIZE - 8, 64, 0, 0);
	vd_offer(f, 1, 0);
	assert_true(vd_rd(f, 0x70) & VIRTIO_STATUS_NEEDS_RESET);
	vd_wr(f, 0x70, 0);
	vd_driver_up(f);
	vd_post_rx(f, 4);
	vd_tx(f, 1234, 6000, VSOCK_OP_REQUEST, 0, 65536, 0, NULL, 0);
	assert_true(vd_rx_get(f, &p));
	assert_int_equal(p.h.op, VSOCK_OP_RST);
}

static void conn_limit_refuses_more(void **state)
{
	struct fx *f = *state;
	unsigned saved = f->v.nr_conns;
	int l = vd_listener(f, 5), fd;
	char buf[16];
	struct pkt p;

	f->v.nr_conns = VSOCK_MAX_CONNS; /* as if every slot were taken */
	vd_tx(f, 1, 5, VSOCK_OP_REQUEST, 0, 65536, 0, NULL, 0);
	vd_expect_pkt(f, &p, VSOCK_OP_RST, 5, 1);
	fd = vd_client(f);
	vd_pump(f);
	assert_int_equal(vd_hear(fd, buf, sizeof(buf)), 0);
	f->v.nr_conns = saved;
	close(fd);
	close(l);
}

int vsock_abuse_run(void)
{
	const struct CMUnitTest tests[] = {
#define T(name) cmocka_unit_test_setup_teardown(name, vd_setup, vd_teardown)
		T(tx_malformed_packets_dropped),
		T(tx_unknown_connection_rst),
		T(tx_request_on_live_connection_resets),
		T(rx_bad_buffers_returned_empty),
		T(tx_descriptor_outside_ram_needs_reset),
		T(conn_limit_refuses_more),
#undef T
	};

	return cmocka_run_group_tests_name("vsock.c, a misbehaving guest", tests, NULL, NULL);
}
