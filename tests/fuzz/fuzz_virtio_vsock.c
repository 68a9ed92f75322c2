/*
 * libFuzzer target for virtio-vsock (devices/virtio/vsock.c, vsock_conn.c, vsock_hybrid.c)
 * behind its virtio-mmio transport: the input plays both ends of the connections. The guest
 * posts receive buffers and sends packets (REQUEST, RESPONSE, RW, SHUTDOWN, RST, CREDIT_*, or
 * anything, with any ports, CIDs, lengths and credit) in a 64 KiB guest memory; host programs
 * connect to the hybrid socket, send CONNECT lines and data, read, half-close and close, and
 * take the connections the guest opens to two listening ports. No KVM (vm_fd -1); the hybrid
 * socket and the listeners live in a temporary directory, as in tests/unit/vsock_driver.c.
 *
 * Input: operations (see run_op). Every input starts from a reset device and RAM full of
 * canary, and ends with every host socket closed and a reset.
 *
 * Traps (besides fuzz_guest.h's checks of RAM and the used rings) when: a packet to the guest
 * is shorter than a header, does not come from the host's CID to the guest's, is not a stream
 * packet, has an unknown operation, a length other than the used length says, a payload on
 * anything but RW, an RW payload over 64 KiB, or buffer space other than kiln's; kiln sends
 * past the credit the guest gave (checked while the harness saw every packet the guest sent);
 * a transmit chain comes back with a length; the connection table disagrees with its count; a
 * reset leaves a connection, an RST or a packet owed behind; an input leaves a socket open.
 * KILN_FUZZ_LOG=1 keeps kiln's log on.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <unistd.h>

#include "fuzz_guest.h"
#include "fuzz_input.h"
#include "log.h"
#include "vsock.h"
#include "vsock_conn.h"

#define RAM (64ull << 10)
#define RXQ 0u
#define TXQ 1u
#define EVQ 2u
#define RX_BASE 0x0000ull
#define TX_BASE 0x2000ull
#define EV_BASE 0x4000ull
#define ARENA 0x6000ull
#define GAP 16u                   /* never offered, between receive buffers: canary */
#define CID 3u
#define NR_LISTENERS 2
#define LISTEN_PORT0 1000u        /* 1000 and 1001 listen, 1002 does not */
#define HOST_PORT0 (1u << 30)     /* the first port kiln gives a host-initiated connection */
#define NR_SOCKS 8
#define NR_CREDITS 32
#define MAX_PKT 65536u
#define FD_SCAN 256

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The credit the guest gave a connection and what kiln sent it, as the harness saw them. */
struct credit {
	bool used;
	uint32_t host_port, guest_port;
	uint32_t buf_alloc, fwd_cnt, rx_cnt;
};

struct fuzz {
	struct fuzz_guest g;
	struct event_loop loop;
	struct virtio_vsock v;
	char dir[64], uds[96];
	int listener[NR_LISTENERS];
	int sock[NR_SOCKS];          /* host programs' sockets, -1 when free */
	unsigned next_sock;
	struct credit credit[NR_CREDITS];
	unsigned next_credit;
	bool credit_known;           /* the harness saw every packet the guest sent */
	uint64_t rx_next;            /* where post_rx puts its next buffer */
	bool rx_wild;                /* receive buffers may overlap: their contents unchecked */
	bool open_fd[FD_SCAN];       /* sockets open between inputs */
	uint8_t buf[MAX_PKT + 64];
	bool log;
};

static struct fuzz fz;

/* ---- the guest's credit, mirrored ---- */

static struct credit *credit_of(uint32_t host_port, uint32_t guest_port, bool make)
{
	struct credit *c;

	for (unsigned i = 0; i < NR_CREDITS; i++)
		if (fz.credit[i].used && fz.credit[i].host_port == host_port &&
		    fz.credit[i].guest_port == guest_port)
			return &fz.credit[i];
	if (!make)
		return NULL;
	c = &fz.credit[fz.next_credit++ % NR_CREDITS];
	*c = (struct credit){ .used = true, .host_port = host_port, .guest_port = guest_port };
	return c;
}

/* kiln took a well-formed stream packet from the guest: it carries the connection's credit. */
static void credit_from_guest(const struct vsock_hdr *h)
{
	struct credit *c = credit_of(h->dst_port, h->src_port, true);

	if (h->op == VSOCK_OP_REQUEST)
		c->rx_cnt = 0;
	c->buf_alloc = h->buf_alloc;
	c->fwd_cnt = h->fwd_cnt;
}

/* ---- the checks ---- */

/* The header's fields' sizes in wire order (virtio 1.2, 5.10.6), for a codec of the harness's
 * own. */
static const unsigned field_size[10] = { 8, 8, 4, 4, 4, 2, 2, 4, 4, 4 };

static void hdr_encode(const struct vsock_hdr *h, uint8_t *b)
{
	const uint64_t v[10] = { h->src_cid, h->dst_cid, h->src_port, h->dst_port, h->len,
				 h->type, h->op, h->flags, h->buf_alloc, h->fwd_cnt };
	unsigned off = 0;

	for (unsigned i = 0; i < 10; off += field_size[i++])
		for (unsigned k = 0; k < field_size[i]; k++)
			b[off + k] = (uint8_t)(v[i] >> (8 * k));
}

static void hdr_decode(const uint8_t *b, struct vsock_hdr *h)
{
	uint64_t v[10];
	const unsigned *size = field_size;
	unsigned off = 0;

	for (unsigned i = 0; i < 10; off += size[i++]) {
		v[i] = 0;
		for (unsigned k = 0; k < size[i]; k++)
			v[i] |= (uint64_t)b[off + k] << (8 * k);
	}
	*h = (struct vsock_hdr){ .src_cid = v[0], .dst_cid = v[1], .src_port = (uint32_t)v[2],
				 .dst_port = (uint32_t)v[3], .len = (uint32_t)v[4],
				 .type = (uint16_t)v[5], .op = (uint16_t)v[6],
				 .flags = (uint32_t)v[7], .buf_alloc = (uint32_t)v[8],
				 .fwd_cnt = (uint32_t)v[9] };
}

/* A packet kiln gave the guest, its header in the chain's first writable buffer. */
static void check_rx(uint32_t len, const struct fg_head *h)
{
	struct vsock_hdr p;
	struct credit *c;

	if (len == 0)
		return; /* a buffer kiln could not use, given back */
	if (len < VSOCK_HDR_LEN)
		fail("a %u-byte packet to the guest", len);
	if (fz.rx_wild || fz.g.shared || h->offers != 1 || h->first_len < VSOCK_HDR_LEN) {
		/* The buffer may have been another packet's too, the record may not be this
		 * chain's, or the header is split: a REQUEST or RESPONSE may go unseen. */
		fz.credit_known = false;
		return;
	}
	hdr_decode(fz.g.gm.host + h->first_gpa, &p);
	if (p.src_cid != VSOCK_HOST_CID || p.dst_cid != CID || p.type != VSOCK_TYPE_STREAM)
		fail("a packet from CID %llu to CID %llu, type %u", (unsigned long long)p.src_cid,
		     (unsigned long long)p.dst_cid, p.type);
	if (p.op < VSOCK_OP_REQUEST || p.op > VSOCK_OP_CREDIT_UPDATE)
		fail("a packet with operation %u", p.op);
	if (p.len != len - VSOCK_HDR_LEN || (p.op != VSOCK_OP_RW && p.len) ||
	    (p.op == VSOCK_OP_RW && (!p.len || p.len > MAX_PKT)))
		fail("a packet (op %u) of %u payload bytes in %u used", p.op, p.len, len);
	if (p.op != VSOCK_OP_RST && p.buf_alloc != VSOCK_CONN_BUF_ALLOC)
		fail("a packet (op %u) offering %u bytes of buffer", p.op, p.buf_alloc);
	if (p.op == VSOCK_OP_REQUEST || p.op == VSOCK_OP_RESPONSE) {
		c = credit_of(p.src_port, p.dst_port, true);
		c->rx_cnt = 0;
		if (p.op == VSOCK_OP_REQUEST)
			c->buf_alloc = c->fwd_cnt = 0; /* the guest has said nothing yet */
	}
	if (p.op != VSOCK_OP_RW || !fz.credit_known)
		return;
	c = credit_of(p.src_port, p.dst_port, false);
	if (!c)
		return;
	c->rx_cnt += p.len;
	if (c->rx_cnt - c->fwd_cnt > c->buf_alloc)
		fail("kiln sent %u bytes past the guest's credit on %u:%u (buf_alloc %u, fwd_cnt "
		     "%u, sent %u)", c->rx_cnt - c->fwd_cnt - c->buf_alloc, p.src_port, p.dst_port,
		     c->buf_alloc, c->fwd_cnt, c->rx_cnt);
}

static void check_used(void *ctx, unsigned qi, uint32_t id, uint32_t len, const struct fg_head *h)
{
	(void)ctx;
	(void)id;
	if (qi == RXQ)
		check_rx(len, h);
	else if (qi == TXQ && len)
		fail("a transmit chain came back with %u bytes written", len);
	else if (qi == EVQ && len != 4)
		fail("an event of %u bytes", len);
}

/* The table of connections agrees with its count and its hash. */
static void check_conns(void)
{
	unsigned n = 0;

	for (unsigned i = 0; i < VSOCK_MAX_CONNS; i++) {
		struct vsock_conn *c = fz.v.slots[i];

		if (!c)
			continue;
		n++;
		if (c->slot != i || c->state == VSOCK_DEAD)
			fail("connection table: slot %u holds %s", i,
			     c->slot != i ? "another slot's connection" : "a dead connection");
		if (c->hashed && vsock_conn_find(&fz.v, c->local_port, c->peer_port) != c)
			fail("connection %u:%u is hashed but cannot be found", c->local_port,
			     c->peer_port);
	}
	if (n != fz.v.nr_conns)
		fail("connection table: %u connections, the count says %u", n, fz.v.nr_conns);
	if (fz.v.rst_len > VSOCK_RST_RING)
		fail("%u RSTs owed, the ring holds %u", fz.v.rst_len, VSOCK_RST_RING);
}

static void after(void)
{
	fg_after(&fz.g, check_used, NULL);
	if (fz.g.tangled || fz.g.lost)
		fz.credit_known = false; /* used entries went by unchecked */
	check_conns();
}

/* Runs one turn of the device under the checks. */
#define ACTION(stmt)                                   \
	do {                                           \
		fg_before(&fz.g, fz.v.mmio.queues);    \
		stmt;                                  \
		after();                               \
	} while (0)

/* ---- the guest's driver ---- */

/* Receive (or event) buffers: mostly one writable buffer with room for a header and some data,
 * one after the other in the arena with a gap between them, so that no two overlap until the
 * arena wraps around and a byte written past one is caught. */
static void post_rx(struct input *in, unsigned qi)
{
	unsigned chains = 1 + (unsigned)take(in, 1) % 16;

	for (unsigned c = 0; c < chains && in->n; c++) {
		uint8_t k = (uint8_t)take(in, 1);
		unsigned nr = 1 + (k >> 6 == 3);
		uint64_t gpa[2];
		uint32_t len[2];
		uint16_t flags[2] = { VIRTQ_DESC_F_WRITE, VIRTQ_DESC_F_WRITE };

		for (unsigned i = 0; i < nr; i++) {
			uint16_t size = (uint16_t)take(in, 2);

			len[i] = k & 0x20 ? size % 8192 : VSOCK_HDR_LEN + (size & 0x3ff);
			if (len[i] + GAP > RAM - fz.rx_next) {
				fz.rx_next = ARENA;
				fz.rx_wild = true;
			}
			gpa[i] = fz.rx_next;
			fz.rx_next += len[i] + GAP;
		}
		if ((k & 0x1f) == 0x1f)
			flags[0] = 0; /* readable: kiln must refuse it */
		fg_post_chain(&fz.g.q[qi], gpa, len, flags, nr);
	}
}

static uint32_t pick_port(struct input *in, bool host)
{
	uint8_t k = (uint8_t)take(in, 1);

	switch (k >> 6) {
	case 0:
		return host ? LISTEN_PORT0 + k % 3 : 5000 + k % 4;
	case 1:
		return host ? HOST_PORT0 + k % 4 : 5000 + k % 4;
	case 2:
		return host ? HOST_PORT0 + k % 64 : k % 8;
	default:
		return (uint32_t)take(in, 4);
	}
}

/* One packet from the guest, its header and payload over up to three readable buffers, now
 * and then with a writable one after them. */
static void send_packet(struct input *in)
{
	static const uint16_t ops[8] = { VSOCK_OP_REQUEST, VSOCK_OP_RESPONSE, VSOCK_OP_RW,
					 VSOCK_OP_RW, VSOCK_OP_SHUTDOWN, VSOCK_OP_RST,
					 VSOCK_OP_CREDIT_UPDATE, VSOCK_OP_CREDIT_REQUEST };
	static const uint32_t allocs[4] = { 0, 100, 4096, 1u << 20 };
	uint8_t k = (uint8_t)take(in, 1), w = (uint8_t)take(in, 1);
	struct vsock_hdr h = { .src_cid = CID, .dst_cid = VSOCK_HOST_CID, .type = 1 };
	uint64_t at = ARENA + (uint64_t)(take(in, 2) % ((RAM - ARENA) / 64)) * 64, gpa[4];
	uint32_t payload, len[4], total;
	uint16_t flags[4] = { 0 };
	unsigned nr = 1 + (w >> 6) % 3;
	uint8_t raw[VSOCK_HDR_LEN];
	struct fg_queue *q = &fz.g.q[TXQ];
	bool formed;

	h.op = k & 0x80 ? (uint16_t)take(in, 1) : ops[k & 7];
	h.src_port = pick_port(in, false);
	h.dst_port = pick_port(in, true);
	h.buf_alloc = k & 0x40 ? (uint32_t)take(in, 4) : allocs[(k >> 3) & 3];
	h.fwd_cnt = k & 0x20 ? (uint32_t)take(in, 4) : 0;
	h.flags = w & 1 ? (uint32_t)take(in, 4) : (w >> 1) & 3;
	payload = h.op == VSOCK_OP_RW ? (uint32_t)take(in, 2) % 4096 : 0;
	h.len = payload;
	if (w & 0x08) { /* the guest lies */
		switch ((w >> 4) & 3) {
		case 0:
			h.len = (uint32_t)take(in, 4);
			break;
		case 1:
			h.src_cid = take(in, 8);
			break;
		case 2:
			h.dst_cid = take(in, 1);
			break;
		default:
			h.type = (uint16_t)take(in, 2);
			break;
		}
	}
	total = VSOCK_HDR_LEN + payload;
	if (total > RAM - at)
		at = RAM - total;
	hdr_encode(&h, raw);
	fg_guest_write(&fz.g, at, raw, VSOCK_HDR_LEN);
	for (uint32_t i = 0; i < payload; i++)
		fz.g.gm.host[at + VSOCK_HDR_LEN + i] = (uint8_t)(i * 13 + k);
	for (unsigned i = 0; i < nr; i++) {
		gpa[i] = at + (uint64_t)(total / nr) * i;
		len[i] = i + 1 < nr ? total / nr : total - total / nr * (nr - 1);
	}
	if (w & 0x04) {
		gpa[nr] = at;
		len[nr] = 64;
		flags[nr++] = VIRTQ_DESC_F_WRITE;
	}
	formed = !(w & 0x0c);
	fg_post_chain(q, gpa, len, flags, nr);
	ACTION({
		vdrv_notify(&fz.v.mmio, TXQ);
		/* The packet's credit counts from here, unless kiln did not take it now. */
		if (q->live && fz.v.mmio.queues[TXQ].next_avail != q->d.avail_idx)
			fz.credit_known = false;
		else if (formed && h.type == VSOCK_TYPE_STREAM)
			credit_from_guest(&h);
	});
}

/* The driver's set-up: EVENT_IDX or not, now and then a feature kiln does not offer; queue
 * sizes from s and e. */
static void start(uint8_t f, uint8_t s, uint8_t e)
{
	uint64_t features = VIRTIO_BIT(VIRTIO_F_VERSION_1);
	struct vdrv_queue qs[3];

	if (f & 1)
		features |= VIRTIO_BIT(VIRTIO_F_RING_EVENT_IDX);
	if ((f & 6) == 6)
		features |= VIRTIO_BIT(1); /* SEQPACKET */
	fg_layout(&fz.g, RXQ, (uint16_t)(1u << (s % 9)), RX_BASE);
	fg_layout(&fz.g, TXQ, (uint16_t)(1u << ((s >> 4) % 9)), TX_BASE);
	fg_layout(&fz.g, EVQ, (uint16_t)(1u << (e % 4)), EV_BASE);
	for (unsigned i = 0; i < 3; i++)
		qs[i] = fz.g.q[i].d;
	fz.rx_next = ARENA;
	ACTION((void)vdrv_start(&fz.v.mmio, features, qs, 3));
}

/* A driver's reset. Host clients that connected before the driver ever started stay (the
 * device had nothing to reset); after a start, nothing may. */
static void reset(void)
{
	bool activated = fz.v.mmio.activated;

	ACTION(vdrv_write(&fz.v.mmio, VDRV_STATUS, 0));
	if (activated && (fz.v.nr_conns || fz.v.rst_len || fz.v.rx_head || fz.v.dead ||
			  fz.v.rx_held))
		fail("a reset left %u connections, %u RSTs%s%s%s", fz.v.nr_conns, fz.v.rst_len,
		     fz.v.rx_head ? ", packets owed" : "", fz.v.dead ? ", dead connections" : "",
		     fz.v.rx_held ? ", a receive buffer held" : "");
}

/* ---- the host's programs ---- */

/* Takes fd into the table, closing whoever held its place. */
static void add_sock(int fd)
{
	int *slot = &fz.sock[fz.next_sock++ % NR_SOCKS];

	if (*slot >= 0)
		close(*slot);
	*slot = fd;
}

static int *pick_sock(struct input *in)
{
	return &fz.sock[take(in, 1) % NR_SOCKS];
}

static void host_connect(void)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd < 0)
		fail("socket: %s", strerror(errno));
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", fz.uds);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		close(fd);
		return;
	}
	add_sock(fd);
}

/* A host program writes: a CONNECT line (well formed or not), bytes from the input, or a
 * block of data. */
static void host_say(struct input *in)
{
	static const char *const forms[4] = { "CONNECT %u\n", "connect  %u \r\n", "CONNECT %u",
					      "CONNECT %u\nhello" };
	int *fd = pick_sock(in);
	uint8_t k = (uint8_t)take(in, 1);
	size_t n;

	switch (k & 3) {
	case 0:
	case 1:
		n = (size_t)snprintf((char *)fz.buf, sizeof(fz.buf), forms[(k >> 2) & 3],
				     k & 0x80 ? (unsigned)take(in, 4) : 5000 + (k >> 4) % 4);
		break;
	case 2:
		n = (size_t)take(in, 1) % 48;
		n = n < in->n ? n : in->n;
		memcpy(fz.buf, in->p, n);
		in->p += n;
		in->n -= n;
		break;
	default:
		n = ((size_t)take(in, 1) + 1) * 256;
		for (size_t i = 0; i < n; i++)
			fz.buf[i] = (uint8_t)(i * 31 + k);
		break;
	}
	if (*fd >= 0)
		(void)send(*fd, fz.buf, n, MSG_DONTWAIT | MSG_NOSIGNAL);
}

static void host_hear(struct input *in)
{
	int *fd = pick_sock(in);
	size_t n = ((size_t)take(in, 1) + 1) * 256;

	if (*fd >= 0)
		(void)recv(*fd, fz.buf, n, MSG_DONTWAIT);
}

static void host_close(struct input *in)
{
	int *fd = pick_sock(in);
	uint8_t how = (uint8_t)take(in, 1) % 3;

	if (*fd < 0)
		return;
	if (how == 2) {
		close(*fd);
		*fd = -1;
	} else {
		shutdown(*fd, how == 0 ? SHUT_WR : SHUT_RD);
	}
}

/* A listener takes a connection the guest opened. */
static void host_accept(struct input *in)
{
	int fd = accept4(fz.listener[take(in, 1) % NR_LISTENERS], NULL, NULL,
			 SOCK_NONBLOCK | SOCK_CLOEXEC);

	if (fd >= 0)
		add_sock(fd);
}

/* Every deadline passes now: the device's timer fires at once. */
static void expire(void)
{
	struct itimerspec its = { .it_interval = { 0, 250000000 }, .it_value = { 0, 1 } };

	virtio_mmio_lock(&fz.v.mmio);
	for (unsigned i = 0; i < VSOCK_MAX_CONNS; i++)
		if (fz.v.slots[i] && fz.v.slots[i]->deadline_ms)
			fz.v.slots[i]->deadline_ms = 1;
	virtio_mmio_unlock(&fz.v.mmio);
	if (timerfd_settime(fz.v.timer_fd, 0, &its, NULL) < 0)
		fail("timerfd_settime: %s", strerror(errno));
	usleep(50);
	ACTION(fg_pump(&fz.loop));
}

static void run_op(struct input *in, uint8_t op)
{
	struct fg_queue *q = &fz.g.q[(op >> 6) % 3];
	uint32_t v;

	switch (op % 20) {
	case 0: {
		uint8_t f = (uint8_t)take(in, 1), s = (uint8_t)take(in, 1);

		start(f, s, (uint8_t)take(in, 1));
		break;
	}
	case 1:
	case 2:
		post_rx(in, RXQ);
		if (op & 0x20)
			ACTION(vdrv_notify(&fz.v.mmio, RXQ));
		break;
	case 3:
	case 4:
	case 5:
		send_packet(in);
		break;
	case 6:
		host_connect();
		break;
	case 7:
	case 8:
		host_say(in);
		break;
	case 9:
		host_hear(in);
		break;
	case 10:
		host_close(in);
		break;
	case 11:
		host_accept(in);
		break;
	case 12:
	case 13:
		ACTION(fg_pump(&fz.loop));
		break;
	case 14:
		expire();
		break;
	case 15: { /* a descriptor, anything */
		uint16_t i = (uint16_t)take(in, 1);
		uint64_t gpa = fuzz_addr(in, RAM);
		uint32_t len = (uint32_t)take(in, 2);
		uint16_t flags = (uint16_t)take(in, 1);

		if (q->live && q->d.size)
			vdrv_desc(&q->d, (uint16_t)(i % q->d.size), gpa, len, flags & 7,
				  (uint16_t)take(in, 1));
		if (q->live && q->d.size && (op & 0x20))
			vdrv_avail_push(&q->d, (uint16_t)(i % q->d.size));
		fz.rx_wild = true;
		fz.credit_known = false;
		break;
	}
	case 16: /* kick, usually a real queue */
		v = (uint32_t)take(in, 1);
		ACTION(vdrv_notify(&fz.v.mmio, v < 0xf0 ? v % 3 : v & 0xf));
		break;
	case 17: /* the guest writes bytes anywhere in RAM, or the avail idx */
		if (op & 0x20) {
			uint64_t o = take(in, 3) % RAM;
			size_t n = (size_t)take(in, 1);

			n = n < in->n ? n : in->n;
			fg_guest_write(&fz.g, o, in->p, n);
			in->p += n;
			in->n -= n;
		} else if (q->live && q->d.size) {
			vdrv_set_avail_idx(&q->d, (uint16_t)take(in, 2));
		}
		fz.rx_wild = true;
		fz.credit_known = false;
		break;
	case 18: /* the interrupt handler and the config space; or a restore's transport reset */
		if (op & 0x20) {
			post_rx(in, EVQ);
			ACTION((void)virtio_vsock_transport_reset(&fz.v));
		} else {
			uint8_t b[8];

			v = vdrv_read(&fz.v.mmio, VDRV_INTERRUPT_STATUS);
			vdrv_write(&fz.v.mmio, VDRV_INTERRUPT_ACK, v);
			virtio_mmio_bus_ops.read(&fz.v.mmio, VIRTIO_MMIO_CONFIG + (op >> 6) * 2, b,
						 4);
		}
		break;
	default:
		reset();
		break;
	}
}

/* Which descriptors are open sockets, for the leak check (libFuzzer's own files come and go). */
static void scan_fds(bool *open)
{
	struct stat st;

	for (int fd = 0; fd < FD_SCAN; fd++)
		open[fd] = fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode);
}

/* At exit: the device unlinks the hybrid socket; the listeners' sockets and the directory go
 * here. */
static void cleanup(void)
{
	char path[128];

	virtio_vsock_destroy(&fz.v);
	for (int i = 0; i < NR_LISTENERS; i++) {
		snprintf(path, sizeof(path), "%s_%u", fz.uds, LISTEN_PORT0 + i);
		unlink(path);
	}
	rmdir(fz.dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct vsock_config cfg = { .guest_cid = CID };

	(void)argc;
	(void)argv;
	fz.log = getenv("KILN_FUZZ_LOG") != NULL;
	if (log_setup(NULL, fz.log ? LOG_DEBUG : LOG_OFF, false, false) < 0 ||
	    event_loop_init(&fz.loop) < 0)
		fail("set-up");
	fg_init(&fz.g, RAM, 3);
	snprintf(fz.dir, sizeof(fz.dir), "%s/kiln-fuzz-vsock.XXXXXX",
		 getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	if (!mkdtemp(fz.dir))
		fail("mkdtemp: %s", strerror(errno));
	snprintf(fz.uds, sizeof(fz.uds), "%s/v", fz.dir);
	cfg.uds_path = fz.uds;
	if (virtio_vsock_init(&fz.v, &cfg, &fz.g.gm, &fz.loop, -1, 0xd0000000ull, 5) < 0)
		fail("virtio_vsock_init");
	atexit(cleanup);
	for (int i = 0; i < NR_LISTENERS; i++) {
		struct sockaddr_un sa = { .sun_family = AF_UNIX };

		snprintf(sa.sun_path, sizeof(sa.sun_path), "%s_%u", fz.uds, LISTEN_PORT0 + i);
		fz.listener[i] = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (fz.listener[i] < 0 || bind(fz.listener[i], (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
		    listen(fz.listener[i], 64) < 0)
			fail("listener %s: %s", sa.sun_path, strerror(errno));
	}
	for (int i = 0; i < NR_SOCKS; i++)
		fz.sock[i] = -1;
	scan_fds(fz.open_fd);
	return 0;
}

/* Ends an input: host programs gone, the device reset, the listeners' queues emptied. */
static void finish(void)
{
	bool open[FD_SCAN];
	int fd;

	for (int i = 0; i < NR_SOCKS; i++) {
		if (fz.sock[i] >= 0)
			close(fz.sock[i]);
		fz.sock[i] = -1;
	}
	ACTION(fg_pump(&fz.loop)); /* clients still queued on the hybrid socket come and go */
	reset();
	/* Connections made while no driver ran: gone too, so that inputs do not meet. */
	virtio_mmio_lock(&fz.v.mmio);
	vsock_conn_close_all(&fz.v);
	virtio_mmio_unlock(&fz.v.mmio);
	for (int i = 0; i < NR_LISTENERS; i++)
		while ((fd = accept4(fz.listener[i], NULL, NULL, SOCK_CLOEXEC)) >= 0)
			close(fd);
	scan_fds(open);
	for (fd = 0; fd < FD_SCAN; fd++)
		if (open[fd] && !fz.open_fd[fd])
			fail("socket %d is open after the input", fd);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct input in = { data, size };
	fg_begin(&fz.g);
	fz.rx_next = ARENA;
	fz.rx_wild = false;
	fz.credit_known = true;
	memset(fz.credit, 0, sizeof(fz.credit));
	while (in.n)
		run_op(&in, (uint8_t)take(&in, 1));
	if (fz.log)
		fprintf(stderr, "fuzz_virtio_vsock: status 0x%x, %u connections, rx %llu tx %llu "
			"packets, %llu bad, %llu RSTs, %llu opened, %llu refused%s%s\n",
			fz.v.mmio.status, fz.v.nr_conns,
			(unsigned long long)fz.v.stats.rx_packets,
			(unsigned long long)fz.v.stats.tx_packets,
			(unsigned long long)fz.v.stats.bad_packets,
			(unsigned long long)fz.v.stats.rst_sent,
			(unsigned long long)fz.v.stats.conns_opened,
			(unsigned long long)fz.v.stats.conns_refused,
			fz.g.tangled ? ", tangled" : "", fz.credit_known ? "" : ", credit unknown");
	finish();
	return 0;
}
