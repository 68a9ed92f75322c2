/* Unit tests for devices/virtio/vsock*.c: the test is the guest's driver and the host's
 * programs (vsock_driver.c); connections both ways, data, credit, shutdown and reset here, a
 * misbehaving guest in test_virtio_vsock_abuse.c. */
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

static void virtio_vsock_init_path_exists_fails(void **state)
{
	struct vsock_config cfg = { .guest_cid = CID };
	struct guest_memory gm = { .fd = -1 };
	struct event_loop el;
	struct virtio_vsock v;
	char dir[64] = "/tmp/kiln-vsock-test.XXXXXX", path[96];
	int fd;

	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/taken", dir);
	fd = open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(event_loop_init(&el), 0);
	cfg.uds_path = path;
	assert_int_equal(virtio_vsock_init(&v, &cfg, &gm, &el, -1, 0xd0000000, 5), -EADDRINUSE);
	assert_int_equal(access(path, F_OK), 0); /* someone else's file stays */
	assert_int_equal(el.nr, 0);
	virtio_vsock_destroy(&v); /* a no-op after a failed init */
	cfg.uds_path = "/tmp/kiln-vsock-test-this-path-is-far-too-long-for-a-unix-socket-address/"
		       "and-it-goes-on-and-on-beyond-one-hundred-and-eight-bytes.sock";
	assert_int_equal(virtio_vsock_init(&v, &cfg, &gm, &el, -1, 0xd0000000, 5), -ENAMETOOLONG);
	event_loop_destroy(&el);
	unlink(path);
	rmdir(dir);
}

static void config_read_registers_describe_vsock(void **state)
{
	struct fx *f = *state;

	assert_int_equal(vd_rd(f, 0x008), VIRTIO_ID_VSOCK);
	assert_int_equal(vd_rd(f, 0x100), CID);
	assert_int_equal(vd_rd(f, 0x104), 0);
	vd_wr(f, 0x14, 0);
	assert_int_equal(vd_rd(f, 0x010), 1u << VIRTIO_F_RING_EVENT_IDX); /* no SEQPACKET (bit 1) */
	vd_wr(f, 0x14, 1);
	assert_int_equal(vd_rd(f, 0x010), 1); /* VERSION_1 */
	vd_wr(f, 0x30, 0);
	assert_int_equal(vd_rd(f, 0x034), 256);
}

static void host_connect_guest_accepts_relays_both_ways(void **state)
{
	struct fx *f = *state;
	uint32_t hport;
	unsigned long long irqs;
	char buf[16] = { 0 };
	struct pkt p;
	int fd = vd_host_conn(f, 5000, 65536, &hport);

	assert_int_equal(hport, HOST_PORT0);
	irqs = f->v.mmio.nr_signals;
	vd_say(fd, "hello");
	vd_pump(f);
	vd_expect_pkt(f, &p, VSOCK_OP_RW, hport, 5000);
	assert_int_equal(p.h.len, 5);
	assert_memory_equal(p.data, "hello", 5);
	assert_true(f->v.mmio.nr_signals > irqs);
	vd_tx(f, 5000, hport, VSOCK_OP_RW, 0, 65536, 5, "world", 5);
	assert_int_equal(vd_hear(fd, buf, sizeof(buf)), 5);
	assert_string_equal(buf, "world");
	assert_int_equal(f->v.stats.tx_bytes, 5);
	assert_int_equal(f->v.stats.rx_bytes, 5);
	close(fd);
}

static void host_connect_guest_rst_closes_client(void **state)
{
	struct fx *f = *state;
	char buf[16];
	struct pkt p;
	int fd = vd_client(f);

	vd_say(fd, "connect   5001 \r\n");
	vd_pump(f);
	vd_expect_pkt(f, &p, VSOCK_OP_REQUEST, HOST_PORT0, 5001);
	vd_tx(f, 5001, HOST_PORT0, VSOCK_OP_RST, 0, 0, 0, NULL, 0);
	vd_pump(f);
	assert_int_equal(vd_hear(fd, buf, sizeof(buf)), 0);
	assert_false(vd_rx_get(f, &p)); /* no RST for an RST */
	assert_int_equal(f->v.nr_conns, 0);
	close(fd);
}

static void host_connect_bad_line_closes_client(void **state)
{
	static const char *const lines[] = {
		"CONNEKT 5\n", "CONNECT\n", "CONNECT x5\n", "CONNECT 5 6\n", "CONNECT 4294967296\n",
		"CONNECT 00000000000000000000000000000000000000005\n", "CONNECT5\n",
	};
	struct fx *f = *state;
	char buf[16];
	struct pkt p;

	for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
		int fd = vd_client(f);

		vd_say(fd, lines[i]);
		vd_pump(f);
		assert_int_equal(vd_hear(fd, buf, sizeof(buf)), 0);
		close(fd);
	}
	assert_false(vd_rx_get(f, &p));
	assert_int_equal(f->v.nr_conns, 0);
}

static void host_connect_silent_client_times_out(void **state)
{
	struct fx *f = *state;
	char buf[16];
	ssize_t k = -1;
	int fd = vd_client(f);

	vd_say(fd, "CONN");
	vd_pump(f);
	assert_int_equal(vd_hear(fd, buf, sizeof(buf)), -1);
	assert_non_null(vd_only_conn(f));
	vd_only_conn(f)->deadline_ms = 1; /* as if five seconds had passed */
	for (int i = 0; i < 40 && k != 0; i++) {
		usleep(25000);
		vd_pump(f);
		k = vd_hear(fd, buf, sizeof(buf));
	}
	assert_int_equal(k, 0);
	assert_int_equal(f->v.nr_conns, 0);
	assert_false(f->v.timer_armed); /* nothing left to time */
	close(fd);
}

static void host_connect_pipelined_data_kept(void **state)
{
	struct fx *f = *state;
	char buf[16] = { 0 };
	struct pkt p;
	int fd = vd_client(f);

	vd_say(fd, "CONNECT 7\nabc");
	vd_pump(f);
	vd_expect_pkt(f, &p, VSOCK_OP_REQUEST, HOST_PORT0, 7);
	assert_false(vd_rx_get(f, &p));
	vd_tx(f, 7, HOST_PORT0, VSOCK_OP_RESPONSE, 0, 4096, 0, NULL, 0);
	vd_pump(f);
	assert_int_equal(vd_hear(fd, buf, sizeof(buf)), 14);
	assert_string_equal(buf, "OK 1073741824\n");
	vd_expect_pkt(f, &p, VSOCK_OP_RW, HOST_PORT0, 7);
	assert_int_equal(p.h.len, 3);
	assert_memory_equal(p.data, "abc", 3);
	close(fd);
}

static void guest_connect_listener_relays_both_ways(void **state)
{
	struct fx *f = *state;
	int l = vd_listener(f, 5001), fd;
	char buf[16] = { 0 };
	struct pkt p;

	vd_tx(f, 1234, 5001, VSOCK_OP_REQUEST, 0, 65536, 0, NULL, 0);
	vd_expect_pkt(f, &p, VSOCK_OP_RESPONSE, 5001, 1234);
	assert_int_equal(p.h.buf_alloc, VSOCK_CONN_BUF_ALLOC);
	fd = accept(l, NULL, NULL);
	assert_true(fd >= 0);
	vd_tx(f, 1234, 5001, VSOCK_OP_RW, 0, 65536, 0, "ping", 4);
	assert_int_equal(vd_hear(fd, buf, sizeof(buf)), 4);
	assert_string_equal(buf, "ping");
	vd_say(fd, "pong");
	vd_pump(f);
	vd_expect_pkt(f, &p, VSOCK_OP_RW, 5001, 1234);
	assert_memory_equal(p.data, "pong", 4);
	close(fd);
	close(l);
}

static void guest_connect_no_listener_rst(void **state)
{
	struct fx *f = *state;
	struct pkt p;

	vd_tx(f, 1234, 6000, VSOCK_OP_REQUEST, 0, 65536, 0, NULL, 0);
	vd_expect_pkt(f, &p, VSOCK_OP_RST, 6000, 1234);
	assert_int_equal(f->v.nr_conns, 0);
	assert_int_equal(f->v.stats.conns_refused, 1);
}

/* Never more stream bytes than the guest has room for; more as its fwd_cnt grows. */
static void host_data_guest_credit_respected(void **state)
{
	struct fx *f = *state;
	static uint8_t out[20000], in[20000];
	uint32_t hport;
	int fd = vd_host_conn(f, 9, 8192, &hport);

	vd_fill(out, sizeof(out), 1);
	assert_int_equal(send(fd, out, sizeof(out), MSG_DONTWAIT), (ssize_t)sizeof(out));
	assert_int_equal(vd_collect(f, in, sizeof(in), NULL), 8192);
	assert_false(vd_only_conn(f)->events & EPOLLIN); /* not watched while there is no credit */
	vd_tx(f, 9, hport, VSOCK_OP_CREDIT_UPDATE, 0, 8192, 4096, NULL, 0);
	assert_int_equal(vd_collect(f, in + 8192, sizeof(in) - 8192, NULL), 4096);
	vd_tx(f, 9, hport, VSOCK_OP_CREDIT_UPDATE, 0, 16384, 12288, NULL, 0);
	assert_int_equal(vd_collect(f, in + 12288, sizeof(in) - 12288, NULL), 7712);
	assert_memory_equal(in, out, sizeof(out));
	close(fd);
}

/* Without receive buffers the host socket is left alone, and read again when they come. */
static void host_data_no_rx_buffers_waits(void **state)
{
	struct fx *f = *state;
	static uint8_t out[48 * 4096], in[48 * 4096];
	uint32_t hport;
	int fd = vd_host_conn(f, 9, 1 << 20, &hport);
	struct pkt p;
	size_t got = 0;

	vd_fill(out, sizeof(out), 2);
	assert_int_equal(send(fd, out, sizeof(out), MSG_DONTWAIT), (ssize_t)sizeof(out));
	vd_pump(f);
	while (vd_rx_get(f, &p)) {
		memcpy(in + got, p.data, p.h.len);
		got += p.h.len;
	}
	assert_int_equal(got, 31 * 4096); /* the buffers left after the REQUEST */
	vd_pump(f); /* quiet: the socket is not watched for input meanwhile */
	assert_false(vd_only_conn(f)->events & EPOLLIN);
	vd_post_rx(f, 8);
	got += vd_collect(f, in + got, sizeof(in) - got, NULL);
	assert_int_equal(got, sizeof(out));
	assert_memory_equal(in, out, sizeof(out));
	close(fd);
}

/* The host socket blocks: the guest's bytes wait in kiln, then all arrive, in order. */
static void guest_data_host_blocked_flushed_later(void **state)
{
	struct fx *f = *state;
	static uint8_t out[192 * 1024], in[192 * 1024];
	uint32_t hport;
	int fd = vd_host_conn(f, 9, 65536, &hport), small = 4096;
	struct vsock_conn *c = vd_only_conn(f);
	struct pkt last = { 0 };
	size_t got = 0;

	assert_int_equal(setsockopt(c->fd, SOL_SOCKET, SO_SNDBUF, &small, sizeof(small)), 0);
	vd_fill(out, sizeof(out), 3);
	vd_send_big(f, 9, hport, out, sizeof(out), 0);
	assert_true(c->buf_len > 0);
	assert_true(c->events & EPOLLOUT);
	for (int i = 0; i < 1000 && got < sizeof(out); i++) {
		got += vd_drain(fd, in + got, sizeof(in) - got);
		vd_collect(f, NULL, 0, &last);
	}
	assert_int_equal(got, sizeof(out));
	assert_memory_equal(in, out, sizeof(out));
	assert_int_equal(c->buf_len, 0);
	assert_null(c->buf); /* given back once drained */
	/* The guest heard how much kiln passed on. */
	assert_int_equal(last.h.op, VSOCK_OP_CREDIT_UPDATE);
	assert_true(last.h.fwd_cnt >= sizeof(out) - VSOCK_CONN_BUF_ALLOC / 4);
	close(fd);
}

static void guest_data_past_credit_resets(void **state)
{
	struct fx *f = *state;
	static uint8_t out[320 * 1024];
	uint32_t hport;
	int fd = vd_host_conn(f, 9, 65536, &hport), small = 4096;
	struct pkt p = { 0 };

	assert_int_equal(setsockopt(vd_only_conn(f)->fd, SOL_SOCKET, SO_SNDBUF, &small, sizeof(small)),
			 0);
	vd_fill(out, sizeof(out), 4);
	vd_send_big(f, 9, hport, out, sizeof(out), 0);
	vd_collect(f, NULL, 0, &p);
	assert_int_equal(p.h.op, VSOCK_OP_RST);
	assert_int_equal(f->v.stats.credit_overruns, 1);
	assert_int_equal(f->v.nr_conns, 0);
	close(fd);
}

static void guest_shutdown_both_rst_and_client_eof(void **state)
{
	struct fx *f = *state;
	char buf[16] = { 0 };
	uint32_t hport;
	struct pkt p;
	int fd = vd_host_conn(f, 9, 65536, &hport);

	vd_tx(f, 9, hport, VSOCK_OP_RW, 0, 65536, 0, "bye", 3);
	vd_tx(f, 9, hport, VSOCK_OP_SHUTDOWN, VSOCK_SHUTDOWN_RCV | VSOCK_SHUTDOWN_SEND, 65536, 0,
	   NULL, 0);
	vd_expect_pkt(f, &p, VSOCK_OP_RST, hport, 9);
	assert_int_equal(vd_hear(fd, buf, sizeof(buf)), 3);
	assert_int_equal(vd_hear(fd, buf, sizeof(buf)), 0);
	assert_int_equal(f->v.nr_conns, 0);
	close(fd);
}

/* Each side half-closes in turn; once both sent all they had, kiln closes with an RST. */
static void host_half_close_then_guest_clean_close(void **state)
{
	struct fx *f = *state;
	char buf[16] = { 0 };
	uint32_t hport;
	struct pkt p;
	int fd = vd_host_conn(f, 9, 65536, &hport);

	assert_int_equal(shutdown(fd, SHUT_WR), 0);
	vd_pump(f);
	vd_expect_pkt(f, &p, VSOCK_OP_SHUTDOWN, hport, 9);
	assert_int_equal(p.h.flags, VSOCK_SHUTDOWN_SEND);
	vd_tx(f, 9, hport, VSOCK_OP_RW, 0, 65536, 0, "late", 4);
	assert_int_equal(vd_hear(fd, buf, sizeof(buf)), 4);
	assert_string_equal(buf, "late");
	vd_tx(f, 9, hport, VSOCK_OP_SHUTDOWN, VSOCK_SHUTDOWN_SEND, 65536, 0, NULL, 0);
	vd_pump(f);
	assert_int_equal(vd_hear(fd, buf, sizeof(buf)), 0);
	vd_expect_pkt(f, &p, VSOCK_OP_RST, hport, 9);
	assert_int_equal(f->v.nr_conns, 0);
	close(fd);
}

static void guest_rst_closes_client_silently(void **state)
{
	struct fx *f = *state;
	char buf[16];
	uint32_t hport;
	struct pkt p;
	int fd = vd_host_conn(f, 9, 65536, &hport);

	vd_tx(f, 9, hport, VSOCK_OP_RST, 0, 0, 0, NULL, 0);
	vd_pump(f);
	assert_int_equal(vd_hear(fd, buf, sizeof(buf)), 0);
	assert_false(vd_rx_get(f, &p));
	/* Later packets for it are answered with an RST. */
	vd_tx(f, 9, hport, VSOCK_OP_RW, 0, 65536, 0, "x", 1);
	vd_expect_pkt(f, &p, VSOCK_OP_RST, hport, 9);
	close(fd);
}

static void host_close_guest_gets_shutdown_then_rst(void **state)
{
	struct fx *f = *state;
	uint32_t hport;
	struct pkt p;
	int fd = vd_host_conn(f, 9, 65536, &hport);

	vd_say(fd, "last words");
	close(fd);
	vd_pump(f);
	vd_expect_pkt(f, &p, VSOCK_OP_RW, hport, 9);
	assert_memory_equal(p.data, "last words", 10);
	vd_expect_pkt(f, &p, VSOCK_OP_SHUTDOWN, hport, 9);
	assert_int_equal(p.h.flags, VSOCK_SHUTDOWN_SEND);
	vd_pump(f); /* the hang-up is not a busy loop */
	vd_tx(f, 9, hport, VSOCK_OP_RW, 0, 65536, 0, "anyone?", 7);
	vd_expect_pkt(f, &p, VSOCK_OP_RST, hport, 9);
	assert_int_equal(f->v.nr_conns, 0);
}

static void device_reset_closes_every_connection(void **state)
{
	struct fx *f = *state;
	int l = vd_listener(f, 77), fd, gfd;
	uint32_t hport;
	char buf[16];
	struct pkt p;

	fd = vd_host_conn(f, 9, 65536, &hport);
	vd_tx(f, 1234, 77, VSOCK_OP_REQUEST, 0, 65536, 0, NULL, 0);
	vd_expect_pkt(f, &p, VSOCK_OP_RESPONSE, 77, 1234);
	gfd = accept(l, NULL, NULL);
	assert_int_equal(f->v.nr_conns, 2);
	vd_wr(f, 0x70, 0);
	assert_int_equal(f->v.nr_conns, 0);
	assert_int_equal(vd_hear(fd, buf, sizeof(buf)), 0);
	assert_int_equal(vd_hear(gfd, buf, sizeof(buf)), 0);
	/* The driver comes back and the device works again. */
	vd_driver_up(f);
	vd_post_rx(f, 8);
	close(fd);
	fd = vd_host_conn(f, 9, 65536, &hport);
	close(fd);
	close(gfd);
	close(l);
}

/* A host program may connect before the guest's driver is up: its REQUEST goes out then. */
static void host_connect_before_driver_waits_for_it(void **state)
{
	struct fx *f = *state;
	char buf[16] = { 0 };
	struct pkt p;
	int fd;

	vd_wr(f, 0x70, 0);
	fd = vd_client(f);
	vd_say(fd, "CONNECT 9\n");
	vd_pump(f);
	assert_int_equal(f->v.nr_conns, 1);
	vd_driver_up(f);
	vd_post_rx(f, 4);
	vd_expect_pkt(f, &p, VSOCK_OP_REQUEST, HOST_PORT0, 9);
	vd_tx(f, 9, HOST_PORT0, VSOCK_OP_RESPONSE, 0, 4096, 0, NULL, 0);
	assert_int_equal(vd_hear(fd, buf, sizeof(buf)), 14);
	assert_string_equal(buf, "OK 1073741824\n");
	close(fd);
}

/* Many connections at once: every packet reaches its own socket and every socket its own
 * guest port. */
static void many_connections_each_routed(void **state)
{
	enum { N = 100 };
	struct fx *f = *state;
	uint32_t hports[N];
	int fds[N];
	unsigned got = 0;
	char text[32], buf[32];
	struct pkt p;

	for (int i = 0; i < N; i++) {
		fds[i] = vd_client(f);
		snprintf(text, sizeof(text), "CONNECT %d\n", 1000 + i);
		vd_say(fds[i], text);
	}
	while (got < N) {
		bool any = false;

		vd_pump(f);
		while (vd_rx_get(f, &p)) {
			any = true;
			assert_int_equal(p.h.op, VSOCK_OP_REQUEST);
			hports[p.h.dst_port - 1000] = p.h.src_port;
			got++;
			vd_post_rx(f, 1);
		}
		assert_true(any);
	}
	for (int i = 0; i < N; i++) {
		vd_tx(f, 1000 + i, hports[i], VSOCK_OP_RESPONSE, 0, 65536, 0, NULL, 0);
		assert_true(vd_hear(fds[i], buf, sizeof(buf)) > 3);
		snprintf(text, sizeof(text), "to guest %d", i);
		vd_say(fds[i], text);
	}
	for (got = 0; got < N;) {
		bool any = false;

		vd_pump(f);
		while (vd_rx_get(f, &p)) {
			any = true;
			assert_int_equal(p.h.op, VSOCK_OP_RW);
			assert_int_equal(p.h.src_port, hports[p.h.dst_port - 1000]);
			snprintf(text, sizeof(text), "to guest %u", p.h.dst_port - 1000);
			assert_int_equal(p.h.len, strlen(text));
			assert_memory_equal(p.data, text, p.h.len);
			got++;
			vd_post_rx(f, 1);
		}
		assert_true(any);
	}
	for (int i = N - 1; i >= 0; i--) {
		snprintf(text, sizeof(text), "to host %d", i);
		vd_tx(f, 1000 + i, hports[i], VSOCK_OP_RW, 0, 65536, 0, text, strlen(text));
		memset(buf, 0, sizeof(buf));
		assert_int_equal(vd_hear(fds[i], buf, sizeof(buf)), strlen(text));
		assert_string_equal(buf, text);
		close(fds[i]);
	}
	assert_int_equal(f->v.nr_conns, N);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(virtio_vsock_init_path_exists_fails),
#define T(name) cmocka_unit_test_setup_teardown(name, vd_setup, vd_teardown)
		T(config_read_registers_describe_vsock),
		T(host_connect_guest_accepts_relays_both_ways),
		T(host_connect_guest_rst_closes_client),
		T(host_connect_bad_line_closes_client),
		T(host_connect_silent_client_times_out),
		T(host_connect_pipelined_data_kept),
		T(guest_connect_listener_relays_both_ways),
		T(guest_connect_no_listener_rst),
		T(host_data_guest_credit_respected),
		T(host_data_no_rx_buffers_waits),
		T(guest_data_host_blocked_flushed_later),
		T(guest_data_past_credit_resets),
		T(guest_shutdown_both_rst_and_client_eof),
		T(host_half_close_then_guest_clean_close),
		T(guest_rst_closes_client_silently),
		T(host_close_guest_gets_shutdown_then_rst),
		T(device_reset_closes_every_connection),
		T(host_connect_before_driver_waits_for_it),
		T(many_connections_each_routed),
#undef T
	};
	int failed = cmocka_run_group_tests_name("vsock.c", tests, NULL, NULL);

	return failed + vsock_abuse_run();
}
