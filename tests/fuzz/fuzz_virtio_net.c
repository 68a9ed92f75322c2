/*
 * libFuzzer target for virtio-net (devices/virtio/net.c) behind its virtio-mmio transport: the
 * input is what a malicious guest and the host network do, the guest posting receive buffers
 * and transmit chains (a virtio_net_hdr and a frame, or broken descriptors) in a 128 KiB guest
 * memory, the host sending frames of any size, and the backend's reads and writes failing,
 * coming up short or being interrupted on demand. No KVM (vm_fd -1), no TAP: the backend is one
 * end of a SOCK_SEQPACKET socketpair, as in tests/unit/test_virtio_net.c; the other end is the
 * host network.
 *
 * Input: byte 0 is the MAC option (bit 0), then operations (see run_op). Every input starts
 * from a reset device, RAM full of canary and an empty socket, and ends with a reset.
 *
 * Traps (besides fuzz_guest.h's checks of RAM and the used rings) when: a transmit chain comes
 * back with a length; a received frame's header says num_buffers 0, more than one buffer
 * without MRG_RXBUF, or checksum flags without GUEST_CSUM; a frame's chains but the last are
 * not filled; a frame reaches the host shorter than a header and an Ethernet header or longer
 * than NET_MAX_BUF (without injected short writes); a reset leaves receive state behind.
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
#include <sys/uio.h>
#include <unistd.h>

#include "fuzz_guest.h"
#include "fuzz_input.h"
#include "log.h"
#include "net.h"

#define RAM (128ull << 10)
#define RXQ 0u
#define TXQ 1u
#define RX_BASE 0x0000ull
#define TX_BASE 0x2000ull
#define ARENA 0x4000ull            /* buffers from here to the end of RAM */
#define GAP 16u                   /* never offered, between receive buffers: canary */
#define F_CSUM 0
#define F_GUEST_CSUM 1
#define F_MRG_RXBUF 15
#define ETH_HLEN 14u
#define HOST_FRAME_MAX (NET_RX_ROOM + 64) /* a little past what the device takes */

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A backend call the harness makes fail: what and how many times. */
enum fault { FAULT_NONE, FAULT_EAGAIN, FAULT_EINTR, FAULT_EIO, FAULT_EFAULT, FAULT_SHORT };

struct fault_plan {
	enum fault what;
	unsigned count;
	size_t short_len;
};

struct fuzz {
	struct fuzz_guest g;
	struct event_loop loop;
	struct virtio_net net[2];  /* without and with a MAC */
	int peer[2];               /* the host network's ends */
	struct virtio_net *n;      /* the device of this input */
	int host;                  /* its peer */
	struct fault_plan rx, tx;  /* for the backend's reads and its writes */
	bool short_tx;             /* a short write was injected in this input */
	unsigned rx_cont;          /* chains still to come of the frame being checked */
	bool rx_unknown;           /* a frame's start went unchecked: frame checks off */
	uint64_t rx_next;          /* where post_rx puts its next buffer */
	bool rx_wild;              /* receive buffers may overlap: frame checks off */
	uint8_t frame[HOST_FRAME_MAX];
	bool log;
};

static struct fuzz fz;

/* ---- the backend's calls, failing on demand ---- */

ssize_t __real_read(int fd, void *buf, size_t n);
ssize_t __real_readv(int fd, const struct iovec *iov, int n);
ssize_t __real_writev(int fd, const struct iovec *iov, int n);
ssize_t __wrap_read(int fd, void *buf, size_t n);
ssize_t __wrap_readv(int fd, const struct iovec *iov, int n);
ssize_t __wrap_writev(int fd, const struct iovec *iov, int n);

/* The fault due for a call on fd, consumed; FAULT_NONE for other fds and when none is due. */
static enum fault take_fault(struct fault_plan *p, int fd)
{
	if (!fz.n || fd != fz.n->tap_fd || !p->count)
		return FAULT_NONE;
	p->count--;
	return p->what;
}

/* -1 with errno for an error fault, 0 (not an error) for the others. */
static int fault_errno(enum fault f)
{
	static const int err[] = { [FAULT_EAGAIN] = EAGAIN, [FAULT_EINTR] = EINTR,
				   [FAULT_EIO] = EIO, [FAULT_EFAULT] = EFAULT };

	if (f == FAULT_NONE || f == FAULT_SHORT)
		return 0;
	errno = err[f];
	return -1;
}

static ssize_t short_read(ssize_t k)
{
	return k > 0 && (size_t)k > fz.rx.short_len ? (ssize_t)fz.rx.short_len : k;
}

ssize_t __wrap_read(int fd, void *buf, size_t n)
{
	enum fault f = take_fault(&fz.rx, fd);

	if (fault_errno(f))
		return -1;
	return f == FAULT_SHORT ? short_read(__real_read(fd, buf, n)) : __real_read(fd, buf, n);
}

ssize_t __wrap_readv(int fd, const struct iovec *iov, int n)
{
	enum fault f = take_fault(&fz.rx, fd);

	if (fault_errno(f))
		return -1;
	return f == FAULT_SHORT ? short_read(__real_readv(fd, iov, n)) : __real_readv(fd, iov, n);
}

/* A short write sends the frame cut after short_len bytes, as a TAP that took part of it. */
ssize_t __wrap_writev(int fd, const struct iovec *iov, int n)
{
	enum fault f = take_fault(&fz.tx, fd);
	struct iovec cut[VIRTQ_MAX_SIZE];
	size_t left = fz.tx.short_len;
	int k = 0;

	if (fault_errno(f))
		return -1;
	if (f != FAULT_SHORT || n > (int)VIRTQ_MAX_SIZE)
		return __real_writev(fd, iov, n);
	fz.short_tx = true;
	for (; k < n && left; k++) {
		cut[k] = iov[k];
		if (cut[k].iov_len > left)
			cut[k].iov_len = left;
		left -= cut[k].iov_len;
	}
	return __real_writev(fd, cut, k);
}

/* ---- the checks ---- */

static bool has_feature(unsigned bit)
{
	return virtio_mmio_has_feature(&fz.n->mmio, bit);
}

/* One used entry: transmit chains come back empty, received frames are well formed. */
static void check_used(void *ctx, unsigned qi, uint32_t id, uint32_t len, const struct fg_head *h)
{
	uint8_t hdr[NET_HDR_LEN];
	uint16_t nb;

	(void)ctx;
	(void)id;
	if (qi == TXQ) {
		if (len)
			fail("a transmit chain came back with %u bytes written", len);
		return;
	}
	if (fz.rx_unknown || fz.rx_wild || fz.g.lost || fz.g.shared)
		return;
	if (fz.rx_cont) {
		if (len == 0)
			fail("an empty chain in the middle of a frame");
		if (--fz.rx_cont && h->offers == 1 && len != h->wlen)
			fail("a frame's chain but the last holds %u of its %llu bytes", len,
			     (unsigned long long)h->wlen);
		return;
	}
	if (len == 0)
		return; /* given back unused */
	if (len < NET_HDR_LEN)
		fail("a frame's first chain holds %u bytes, less than a header", len);
	if (h->offers != 1 || h->first_len < NET_HDR_LEN) {
		fz.rx_unknown = true; /* the record may not be this chain's, or the header is split */
		return;
	}
	memcpy(hdr, fz.g.gm.host + h->first_gpa, NET_HDR_LEN);
	memcpy(&nb, hdr + 10, 2);
	if (nb == 0 || (nb > 1 && !has_feature(F_MRG_RXBUF)))
		fail("a received frame's header says num_buffers %u (MRG_RXBUF %d)", nb,
		     has_feature(F_MRG_RXBUF));
	if (hdr[0] && !has_feature(F_GUEST_CSUM))
		fail("a received frame's header has flags 0x%x without GUEST_CSUM", hdr[0]);
	if (nb > 1 && len != h->wlen)
		fail("a frame's first chain holds %u of its %llu bytes", len,
		     (unsigned long long)h->wlen);
	fz.rx_cont = nb - 1u;
}

/* Runs one turn of the device under fuzz_guest.h's checks. */
#define ACTION(stmt)                                           \
	do {                                                   \
		fg_before(&fz.g, fz.n->mmio.queues);           \
		stmt;                                          \
		fg_after(&fz.g, check_used, NULL);             \
	} while (0)

/* ---- the guest's driver ---- */

/* A buffer in the arena: its offset and length, mostly small, sometimes large. */
static void arena_buf(struct input *in, uint64_t *gpa, uint32_t *len)
{
	uint8_t k = (uint8_t)take(in, 1);
	uint64_t off = ARENA + take(in, 2) % (RAM - ARENA);
	uint64_t room = RAM - off;

	*len = k & 0x80 ? (uint32_t)(take(in, 3) % (RAM - ARENA)) : (uint32_t)(k & 0x7f) * 32;
	if (*len > room && !(k & 0x40))
		*len = (uint32_t)room; /* mostly inside RAM */
	*gpa = off;
}

/*
 * Receive chains: 1 to 3 writable buffers each, now and then a readable one, one after the
 * other in the arena with a gap between them, so that no two overlap (a frame's header stays
 * as the device wrote it) until the arena wraps around, and a byte written past one is caught.
 */
static void post_rx(struct input *in)
{
	unsigned chains = 1 + (unsigned)take(in, 1) % 8;

	for (unsigned c = 0; c < chains && in->n; c++) {
		uint8_t k = (uint8_t)take(in, 1);
		unsigned nr = 1 + k % 3;
		uint64_t gpa[3];
		uint32_t len[3];
		uint16_t flags[3];

		for (unsigned i = 0; i < nr; i++) {
			arena_buf(in, &gpa[i], &len[i]);
			if (len[i] + GAP > RAM - fz.rx_next) {
				fz.rx_next = ARENA;
				fz.rx_wild = true;
			}
			if (len[i] <= RAM - fz.rx_next) {
				gpa[i] = fz.rx_next;
				fz.rx_next += len[i] + GAP;
			}
			flags[i] = (k & 0x80) && i == 0 ? 0 : VIRTQ_DESC_F_WRITE;
		}
		fg_post_chain(&fz.g.q[RXQ], gpa, len, flags, nr);
	}
}

/* A transmit chain: a virtio_net_hdr and a frame over 1 to 3 readable buffers, sometimes with
 * a writable one at the end, or too short. */
static void post_tx(struct input *in)
{
	uint8_t k = (uint8_t)take(in, 1);
	uint32_t frame = k & 0x80 ? (uint32_t)take(in, 3) % (RAM - ARENA)
				  : NET_HDR_LEN + ETH_HLEN + (uint32_t)take(in, 1) * 8;
	uint64_t at = ARENA + take(in, 2) % (RAM - ARENA), gpa[4];
	uint32_t len[4];
	uint16_t flags[4] = { 0, 0, 0, VIRTQ_DESC_F_WRITE };
	unsigned nr = 1 + k % 3;
	uint8_t hdr[NET_HDR_LEN];

	if (frame > RAM - at)
		frame = (uint32_t)(RAM - at);
	for (unsigned i = 0; i < NET_HDR_LEN; i++)
		hdr[i] = (uint8_t)take(in, 1);
	fg_guest_write(&fz.g, at, hdr, frame < NET_HDR_LEN ? frame : NET_HDR_LEN);
	for (uint32_t i = NET_HDR_LEN; i < frame; i++)
		fz.g.gm.host[at + i] = (uint8_t)(i * 7 + k);
	for (unsigned i = 0; i < nr; i++) {
		uint32_t piece = i + 1 < nr ? frame / nr : frame - frame / nr * (nr - 1);

		gpa[i] = at + (uint64_t)(frame / nr) * i;
		len[i] = piece;
	}
	if (k & 0x40) { /* a writable buffer after the frame: not a frame */
		gpa[nr] = at;
		len[nr] = 16;
		nr++;
		flags[nr - 1] = VIRTQ_DESC_F_WRITE;
	}
	fg_post_chain(&fz.g.q[TXQ], gpa, len, flags, nr);
}

/* The driver's set-up: features from f, queue sizes from s. */
static void start(uint8_t f, uint8_t s)
{
	uint64_t features = VIRTIO_BIT(VIRTIO_F_VERSION_1);
	struct vdrv_queue qs[2];

	if (f & 1)
		features |= VIRTIO_BIT(F_MRG_RXBUF);
	if (f & 2)
		features |= VIRTIO_BIT(F_GUEST_CSUM) | VIRTIO_BIT(7) | VIRTIO_BIT(8);
	if (f & 4)
		features |= VIRTIO_BIT(F_CSUM) | VIRTIO_BIT(11) | VIRTIO_BIT(12);
	if (f & 8)
		features |= VIRTIO_BIT(VIRTIO_F_RING_EVENT_IDX);
	if (f & 16)
		features |= VIRTIO_BIT(5) | VIRTIO_BIT(16); /* MAC, STATUS */
	if ((f & 0xe0) == 0xe0)
		features |= VIRTIO_BIT(10); /* GUEST_UFO: not offered */
	fg_layout(&fz.g, RXQ, (uint16_t)(1u << (s % 9)), RX_BASE);
	fg_layout(&fz.g, TXQ, (uint16_t)(1u << ((s >> 4) % 9)), TX_BASE);
	qs[0] = fz.g.q[RXQ].d;
	qs[1] = fz.g.q[TXQ].d;
	fz.rx_cont = 0;
	fz.rx_unknown = false;
	fz.rx_next = ARENA;
	ACTION((void)vdrv_start(&fz.n->mmio, features, qs, 2));
}

/* ---- the host's network ---- */

/* A frame for the guest: a header from the input, any size, a pattern after the header. */
static void host_send(struct input *in)
{
	uint8_t k = (uint8_t)take(in, 1);
	size_t len = k & 0x80 ? (size_t)take(in, 3) % HOST_FRAME_MAX : (size_t)take(in, 1) * 4;

	for (size_t i = 0; i < len; i++)
		fz.frame[i] = i < NET_HDR_LEN ? (uint8_t)take(in, 1) : (uint8_t)(i ^ k);
	(void)send(fz.host, fz.frame, len, MSG_DONTWAIT);
	if (k & 0x40)
		ACTION(fg_pump(&fz.loop));
}

/* The host network takes what the device sent. */
static void host_drain(void)
{
	for (int i = 0; i < 64; i++) {
		ssize_t k = recv(fz.host, fz.frame, sizeof(fz.frame), MSG_DONTWAIT | MSG_TRUNC);

		if (k < 0)
			return;
		if (!fz.short_tx && ((size_t)k < NET_HDR_LEN + ETH_HLEN || (size_t)k > NET_MAX_BUF))
			fail("a %zd-byte frame reached the host network", k);
	}
}

static void set_fault(struct input *in)
{
	uint8_t k = (uint8_t)take(in, 1);
	struct fault_plan *p = k & 0x80 ? &fz.tx : &fz.rx;

	p->what = (enum fault)(1 + k % 5);
	p->count = 1 + (k >> 3) % 4;
	p->short_len = (size_t)take(in, 2);
}

static void reset(void)
{
	struct net_bufs *b = fz.n->b;

	ACTION(vdrv_write(&fz.n->mmio, VDRV_STATUS, 0));
	if (b->nr_chains || b->nr_bufs || b->pending || b->cap)
		fail("a reset left %u chains, %u buffers, %zu pending bytes", b->nr_chains,
		     b->nr_bufs, b->pending);
}

static void run_op(struct input *in, uint8_t op)
{
	struct fg_queue *q = &fz.g.q[op & 0x80 ? TXQ : RXQ];
	uint32_t v;

	switch (op % 14) {
	case 0: {
		uint8_t f = (uint8_t)take(in, 1);

		start(f, (uint8_t)take(in, 1));
		break;
	}
	case 1:
		post_rx(in);
		if (op & 0x40)
			ACTION(vdrv_notify(&fz.n->mmio, RXQ));
		break;
	case 2:
		post_tx(in);
		ACTION(vdrv_notify(&fz.n->mmio, TXQ));
		break;
	case 3: { /* a descriptor, anything */
		uint16_t i = (uint16_t)take(in, 1);
		uint64_t gpa = fuzz_addr(in, RAM);
		uint32_t len = (uint32_t)take(in, 3);
		uint16_t flags = (uint16_t)take(in, 1);

		if (q->live && q->d.size)
			vdrv_desc(&q->d, (uint16_t)(i % q->d.size), gpa, len, flags & 7,
				  (uint16_t)take(in, 1));
		fz.rx_wild |= q == &fz.g.q[RXQ];
		break;
	}
	case 4: /* publish a head, anything */
		if (q->live && q->d.size)
			vdrv_avail_push(&q->d, (uint16_t)take(in, 2));
		fz.rx_wild |= q == &fz.g.q[RXQ];
		break;
	case 5: /* kick, usually a real queue */
		v = (uint32_t)take(in, 1);
		ACTION(vdrv_notify(&fz.n->mmio, v < 0xf0 ? v & 1 : v & 0xf));
		break;
	case 6:
		host_send(in);
		break;
	case 7:
		ACTION(fg_pump(&fz.loop));
		break;
	case 8:
		host_drain();
		break;
	case 9:
		set_fault(in);
		break;
	case 10: { /* the guest writes bytes anywhere in RAM */
		uint64_t o = take(in, 3) % RAM;
		size_t n = (size_t)take(in, 1);

		n = n < in->n ? n : in->n;
		fg_guest_write(&fz.g, o, in->p, n);
		fz.rx_wild = true;
		in->p += n;
		in->n -= n;
		break;
	}
	case 11: /* the avail idx, used_event, flags: anything */
		v = (uint32_t)take(in, 4);
		if (!q->live || !q->d.size)
			break;
		fz.rx_wild |= q == &fz.g.q[RXQ] && (v & 1);
		if (v & 1)
			vdrv_set_avail_idx(&q->d, (uint16_t)(v >> 16));
		else
			vdrv_set_used_event(&q->d, (uint16_t)(v >> 16));
		vdrv_set_avail_flags(&q->d, (uint16_t)((v >> 1) & 1));
		break;
	case 12: { /* the interrupt handler, and the config space */
		uint8_t b[4];

		v = vdrv_read(&fz.n->mmio, VDRV_INTERRUPT_STATUS);
		vdrv_write(&fz.n->mmio, VDRV_INTERRUPT_ACK, v);
		virtio_mmio_bus_ops.read(&fz.n->mmio, VIRTIO_MMIO_CONFIG + (op >> 4) % 8, b,
					 (op & 0x40) ? 1 : 2);
		break;
	}
	default:
		reset();
		break;
	}
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	static const uint8_t mac[6] = { 0x06, 0x00, 0xac, 0x10, 0x00, 0x02 };

	(void)argc;
	(void)argv;
	fz.log = getenv("KILN_FUZZ_LOG") != NULL;
	if (log_setup(NULL, fz.log ? LOG_DEBUG : LOG_OFF, false, false) < 0 ||
	    event_loop_init(&fz.loop) < 0)
		fail("set-up");
	fg_init(&fz.g, RAM, 2);
	for (unsigned i = 0; i < 2; i++) {
		struct net_config cfg = { .iface_id = (char *)"fuzz", .has_guest_mac = i == 1 };
		int sv[2];

		memcpy(cfg.guest_mac, mac, 6);
		if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv) < 0)
			fail("socketpair: %s", strerror(errno));
		if (virtio_net_init_fd(&fz.net[i], sv[0], false, &cfg, &fz.g.gm, &fz.loop, -1,
				       0xd0000000ull + 0x1000 * i, 5 + i) < 0)
			fail("virtio_net_init_fd");
		fz.peer[i] = sv[1];
	}
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct input in = { data, size };
	unsigned which = (unsigned)take(&in, 1) & 1;

	fz.n = &fz.net[which];
	fz.host = fz.peer[which];
	fz.rx = fz.tx = (struct fault_plan){ 0 };
	fz.short_tx = false;
	fz.rx_cont = 0;
	fz.rx_unknown = fz.rx_wild = false;
	fz.rx_next = ARENA;
	fg_begin(&fz.g);
	while (in.n)
		run_op(&in, (uint8_t)take(&in, 1));
	ACTION(fg_pump(&fz.loop));
	if (fz.log)
		fprintf(stderr, "fuzz_virtio_net: status 0x%x, rx %llu/%llu dropped, tx %llu/%llu "
			"dropped, %llu interrupts%s\n", fz.n->mmio.status, fz.n->rx_packets,
			fz.n->rx_drops, fz.n->tx_packets, fz.n->tx_drops, fz.n->mmio.nr_signals,
			fz.g.tangled ? ", tangled" : "");
	fz.rx = fz.tx = (struct fault_plan){ 0 };
	reset();
	/* The next input starts with an empty network. */
	while (recv(fz.host, fz.frame, 1, MSG_DONTWAIT | MSG_TRUNC) >= 0)
		;
	while (recv(fz.n->tap_fd, fz.frame, 1, MSG_DONTWAIT | MSG_TRUNC) >= 0)
		;
	return 0;
}
