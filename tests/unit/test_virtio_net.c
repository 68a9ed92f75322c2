/* Unit tests for devices/virtio/net.c: driven through the virtio-mmio registers as a driver
 * would, over real guest memory and a real event loop, with a SOCK_SEQPACKET socket in place
 * of the TAP device. */
#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "log.h"
#include "net.h"
#include "poison_log.h"
#include "virtio.h"

#define MIB (1ull << 20)
#define QSIZE 256u
#define RX_DESC 0x10000ull
#define RX_AVAIL 0x11000ull
#define RX_USED 0x12000ull
#define TX_DESC 0x20000ull
#define TX_AVAIL 0x21000ull
#define TX_USED 0x22000ull
#define RX_BUFS 0x100000ull /* a buffer every 8 KiB, by descriptor index */
#define TX_BUFS 0x400000ull
#define BUF_STEP 2048u

/* Feature bits the tests negotiate (virtio 1.2, 5.1.3). */
#define F_CSUM VIRTIO_BIT(0)
#define F_GUEST_CSUM VIRTIO_BIT(1)
#define F_MAC VIRTIO_BIT(5)
#define F_GUEST_TSO4 VIRTIO_BIT(7)
#define F_GUEST_TSO6 VIRTIO_BIT(8)
#define F_GUEST_UFO VIRTIO_BIT(10)
#define F_HOST_TSO4 VIRTIO_BIT(11)
#define F_HOST_TSO6 VIRTIO_BIT(12)
#define F_HOST_UFO VIRTIO_BIT(14)
#define F_MRG VIRTIO_BIT(15)
#define F_STATUS VIRTIO_BIT(16)
#define F_V1 VIRTIO_BIT(VIRTIO_F_VERSION_1)
#define F_ALL (F_CSUM | F_GUEST_CSUM | F_GUEST_TSO4 | F_GUEST_TSO6 | F_HOST_TSO4 | \
	       F_HOST_TSO6 | F_MRG | F_STATUS | F_V1)

struct fixture {
	struct guest_memory gm;
	struct event_loop el;
	struct virtio_net n;
	int peer;              /* the test's end: the "host network" */
	uint16_t rx_idx, tx_idx; /* avail idx the driver published */
	uint16_t rx_desc, tx_desc; /* next free descriptor */
	uint16_t rx_seen;      /* used entries consumed */
};

static const uint8_t mac[6] = { 0x06, 0x00, 0xac, 0x10, 0x00, 0x02 };

static struct fixture *make(bool with_mac)
{
	struct net_config cfg = { .iface_id = (char *)"eth0", .host_dev_name = (char *)"unused",
				  .has_guest_mac = with_mac };
	struct fixture *f = calloc(1, sizeof(*f));
	int sv[2];

	assert_non_null(f);
	memcpy(cfg.guest_mac, mac, 6);
	assert_int_equal(guest_memory_create(&f->gm, 16 * MIB, false), 0);
	assert_int_equal(event_loop_init(&f->el), 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
	assert_int_equal(fcntl(sv[0], F_SETFL, O_NONBLOCK), 0);
	assert_int_equal(virtio_net_init_fd(&f->n, sv[0], false, &cfg, &f->gm, &f->el, -1,
					    0xd0000000ull, 5), 0);
	f->peer = sv[1];
	return f;
}

static int setup_mac(void **state)
{
	*state = make(true);
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	virtio_net_destroy(&f->n);
	close(f->peer);
	event_loop_destroy(&f->el);
	guest_memory_destroy(&f->gm);
	free(f);
	return 0;
}

/* ---- the driver's side ---- */

static void wr(struct fixture *f, uint64_t off, uint32_t v)
{
	virtio_mmio_bus_ops.write(&f->n.mmio, off, (const uint8_t *)&v, 4);
}

static uint32_t rd(struct fixture *f, uint64_t off)
{
	uint32_t v;

	virtio_mmio_bus_ops.read(&f->n.mmio, off, (uint8_t *)&v, 4);
	return v;
}

static uint64_t device_features(struct fixture *f)
{
	uint64_t hi;

	wr(f, 0x14, 1);
	hi = rd(f, 0x10);
	wr(f, 0x14, 0);
	return hi << 32 | rd(f, 0x10);
}

/* Fresh, zeroed rings for queue q, as a driver allocates them. */
static void queue_setup(struct fixture *f, unsigned q, uint64_t desc, uint64_t avail,
			uint64_t used)
{
	memset(guest_memory_ptr(&f->gm, desc, 0x3000), 0, 0x3000);
	wr(f, 0x30, q);
	assert_int_equal(rd(f, 0x34), QSIZE);
	wr(f, 0x38, QSIZE);
	wr(f, 0x80, (uint32_t)desc);
	wr(f, 0x84, 0);
	wr(f, 0x90, (uint32_t)avail);
	wr(f, 0x94, 0);
	wr(f, 0xa0, (uint32_t)used);
	wr(f, 0xa4, 0);
	wr(f, 0x44, 1);
}

/* Negotiates features (those the device offers) and sets both queues up, short of DRIVER_OK. */
static void driver_setup(struct fixture *f, uint64_t features)
{
	f->rx_idx = f->tx_idx = f->rx_desc = f->tx_desc = f->rx_seen = 0;
	wr(f, 0x70, 0);
	wr(f, 0x70, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
	features &= device_features(f);
	wr(f, 0x24, 0);
	wr(f, 0x20, (uint32_t)features);
	wr(f, 0x24, 1);
	wr(f, 0x20, (uint32_t)(features >> 32));
	wr(f, 0x70, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK);
	assert_true(rd(f, 0x70) & VIRTIO_STATUS_FEATURES_OK);
	queue_setup(f, 0, RX_DESC, RX_AVAIL, RX_USED);
	queue_setup(f, 1, TX_DESC, TX_AVAIL, TX_USED);
}

static void driver_ok(struct fixture *f)
{
	wr(f, 0x70, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER |
			    VIRTIO_STATUS_FEATURES_OK | VIRTIO_STATUS_DRIVER_OK);
	assert_true(f->n.mmio.activated);
}

static void driver_start(struct fixture *f, uint64_t features)
{
	driver_setup(f, features);
	driver_ok(f);
}

static void *gpa(struct fixture *f, uint64_t addr, uint64_t len)
{
	void *p = guest_memory_ptr(&f->gm, addr, len);

	assert_non_null(p);
	return p;
}

static void put16(struct fixture *f, uint64_t addr, uint16_t v)
{
	memcpy(gpa(f, addr, 2), &v, 2);
}

static uint16_t get16(struct fixture *f, uint64_t addr)
{
	uint16_t v;

	memcpy(&v, gpa(f, addr, 2), 2);
	return v;
}

static uint32_t get32(struct fixture *f, uint64_t addr)
{
	uint32_t v;

	memcpy(&v, gpa(f, addr, 4), 4);
	return v;
}

static void put_desc(struct fixture *f, uint64_t table, uint16_t i, uint64_t addr, uint32_t len,
		     uint16_t flags, uint16_t next)
{
	uint8_t *d = gpa(f, table + 16ull * i, 16);

	memcpy(d, &addr, 8);
	memcpy(d + 8, &len, 4);
	memcpy(d + 12, &flags, 2);
	memcpy(d + 14, &next, 2);
}

static void publish(struct fixture *f, uint64_t avail, uint16_t *idx, uint16_t head)
{
	put16(f, avail + 4 + 2ull * (*idx % QSIZE), head);
	(*idx)++;
	put16(f, avail + 2, *idx);
}

/* Posts one single-buffer rx chain of len bytes at slot i of the rx buffer area; returns its
 * head. */
static uint16_t post_rx(struct fixture *f, uint32_t len)
{
	uint16_t d = f->rx_desc++;

	put_desc(f, RX_DESC, d, RX_BUFS + (uint64_t)d * BUF_STEP * 4, len, VIRTQ_DESC_F_WRITE, 0);
	publish(f, RX_AVAIL, &f->rx_idx, d);
	return d;
}

static uint64_t rx_buf(uint16_t head)
{
	return RX_BUFS + (uint64_t)head * BUF_STEP * 4;
}

/* Posts a tx chain of the given pieces (flags per piece) and kicks the tx queue. */
static void send_tx(struct fixture *f, const void *data, const uint32_t *lens,
		    const uint16_t *flags, unsigned nr)
{
	const uint8_t *p = data;
	uint16_t head = f->tx_desc;
	uint64_t addr = TX_BUFS;

	for (unsigned i = 0; i < nr; i++) {
		uint16_t d = f->tx_desc++;

		if (p && lens[i] <= 2 * MIB)
			memcpy(gpa(f, addr, lens[i]), p, lens[i]);
		put_desc(f, TX_DESC, d, addr, lens[i],
			 (uint16_t)(flags[i] | (i + 1 < nr ? VIRTQ_DESC_F_NEXT : 0)),
			 (uint16_t)(d + 1));
		if (p)
			p += lens[i];
		addr += lens[i];
	}
	publish(f, TX_AVAIL, &f->tx_idx, head);
	wr(f, 0x50, 1);
}

static void kick_rx(struct fixture *f)
{
	wr(f, 0x50, 0);
}

/* Posts nr rx buffers of 2 KiB and kicks. */
static void post_rx_many(struct fixture *f, unsigned nr)
{
	for (unsigned i = 0; i < nr; i++)
		post_rx(f, BUF_STEP);
	kick_rx(f);
}

/* Runs the event loop's handlers once; how many fds were ready. */
static int loop_once(struct fixture *f, int timeout_ms)
{
	struct epoll_event evs[8];
	int n = epoll_wait(f->el.epfd, evs, 8, timeout_ms);

	for (int i = 0; i < n; i++) {
		struct event_handler *h = &f->el.handlers[evs[i].data.u32];

		h->fn(h->opaque, h->fd, evs[i].events);
	}
	return n;
}

/* A frame from the "host": header (flags byte as given) then len bytes of pattern seed. */
static size_t host_frame(uint8_t *buf, size_t len, uint8_t flags, uint8_t seed)
{
	memset(buf, 0, NET_HDR_LEN);
	buf[0] = flags;
	for (size_t i = 0; i < len; i++)
		buf[NET_HDR_LEN + i] = (uint8_t)(seed + i * 7);
	return NET_HDR_LEN + len;
}

static void host_send(struct fixture *f, const uint8_t *buf, size_t len)
{
	assert_int_equal(send(f->peer, buf, len, 0), (ssize_t)len);
}

/* The next used rx entry: its head and length. */
static void rx_used(struct fixture *f, uint16_t *head, uint32_t *len)
{
	uint64_t e = RX_USED + 4 + 8ull * (f->rx_seen % QSIZE);

	assert_true((uint16_t)(get16(f, RX_USED + 2) - f->rx_seen) > 0);
	*head = (uint16_t)get32(f, e);
	*len = get32(f, e + 4);
	f->rx_seen++;
}

/* The next nbufs used rx entries hold frame (len bytes, header first) and its header says
 * num_buffers = nbufs. */
static void expect_rx(struct fixture *f, const uint8_t *frame, size_t len, uint16_t nbufs)
{
	uint16_t head, first = 0;
	uint32_t blen;
	size_t off = 0;

	for (uint16_t i = 0; i < nbufs; i++) {
		size_t skip = i == 0 ? NET_HDR_LEN : 0;

		rx_used(f, &head, &blen);
		assert_in_range(blen, skip + 1, len - off);
		if (i == 0) {
			first = head;
			assert_memory_equal(gpa(f, rx_buf(head), 10), frame, 10);
		}
		assert_memory_equal(gpa(f, rx_buf(head) + skip, blen - skip), frame + off + skip,
				    blen - skip);
		off += blen;
	}
	assert_int_equal(off, len);
	assert_int_equal(get16(f, rx_buf(first) + 10), nbufs);
}

static bool needs_reset(struct fixture *f)
{
	return rd(f, 0x70) & VIRTIO_STATUS_NEEDS_RESET;
}

/* ---- features and configuration ---- */

static void virtio_net_features_with_mac_offers_mac_csum_tso(void **state)
{
	struct fixture *f = *state;
	uint64_t feat = device_features(f);
	uint8_t cfg[8];

	assert_int_equal(rd(f, 0x008), VIRTIO_ID_NET);
	assert_int_equal(feat & (F_ALL | F_MAC), F_ALL | F_MAC);
	assert_int_equal(feat & (F_GUEST_UFO | F_HOST_UFO), 0);
	for (unsigned i = 0; i < 8; i++)
		virtio_mmio_bus_ops.read(&f->n.mmio, 0x100 + i, &cfg[i], 1);
	assert_memory_equal(cfg, mac, 6);
	assert_int_equal(cfg[6] | cfg[7] << 8, 1); /* VIRTIO_NET_S_LINK_UP */
}

static void virtio_net_features_without_mac_no_mac_bit(void **state)
{
	struct fixture *f = make(false);

	assert_int_equal(device_features(f) & F_MAC, 0);
	assert_int_equal(device_features(f) & F_ALL, F_ALL);
	*state = f;
}

static void virtio_net_activate_guest_tso_sets_tun_offload(void **state)
{
	struct fixture *f = *state;

	driver_start(f, F_ALL);
	assert_int_equal(f->n.tun_offload, TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6);
	driver_start(f, F_V1 | F_GUEST_CSUM | F_GUEST_TSO4);
	assert_int_equal(f->n.tun_offload, TUN_F_CSUM | TUN_F_TSO4);
	/* TSO without checksum offload is not a thing the TAP accepts. */
	driver_start(f, F_V1 | F_GUEST_TSO6);
	assert_int_equal(f->n.tun_offload, 0);
}

/* ---- transmit ---- */

static void virtio_net_tx_split_header_reaches_backend_intact(void **state)
{
	struct fixture *f = *state;
	uint8_t frame[NET_HDR_LEN + 60], got[256];
	uint32_t lens[3] = { 5, 7, 60 };
	uint16_t flags[3] = { 0 };
	unsigned long long sig = f->n.mmio.nr_signals;

	driver_start(f, F_ALL);
	host_frame(frame, 60, 1, 3);
	send_tx(f, frame, lens, flags, 3);
	assert_int_equal(recv(f->peer, got, sizeof(got), MSG_DONTWAIT), sizeof(frame));
	assert_memory_equal(got, frame, sizeof(frame));
	assert_int_equal(get16(f, TX_USED + 2), 1);
	assert_int_equal(get32(f, TX_USED + 4), 0);   /* head */
	assert_int_equal(get32(f, TX_USED + 8), 0);   /* nothing written */
	assert_int_equal(f->n.tx_packets, 1);
	assert_int_equal(f->n.tx_bytes, 60);
	assert_true(f->n.mmio.nr_signals > sig);
}

static void virtio_net_tx_writable_buffer_dropped(void **state)
{
	struct fixture *f = *state;
	uint8_t frame[NET_HDR_LEN + 100], got[256];
	uint32_t lens[2] = { NET_HDR_LEN + 60, 40 };
	uint16_t flags[2] = { 0, VIRTQ_DESC_F_WRITE };
	uint32_t good[1] = { NET_HDR_LEN + 100 };
	uint16_t none[1] = { 0 };

	driver_start(f, F_ALL);
	host_frame(frame, 100, 0, 9);
	send_tx(f, frame, lens, flags, 2);
	assert_int_equal(recv(f->peer, got, sizeof(got), MSG_DONTWAIT), -1);
	assert_int_equal(f->n.tx_drops, 1);
	assert_int_equal(get16(f, TX_USED + 2), 1);
	/* The device goes on: the next frame passes. */
	send_tx(f, frame, good, none, 1);
	assert_int_equal(recv(f->peer, got, sizeof(got), MSG_DONTWAIT), sizeof(frame));
	assert_int_equal(f->n.tx_packets, 1);
	assert_false(needs_reset(f));
}

static void virtio_net_tx_short_and_oversized_frames_dropped(void **state)
{
	struct fixture *f = *state;
	uint8_t got[64];
	uint32_t shorter[1] = { NET_HDR_LEN - 2 }, big[2] = { NET_HDR_LEN, NET_MAX_BUF };
	uint16_t flags[2] = { 0 };

	driver_start(f, F_ALL);
	send_tx(f, NULL, shorter, flags, 1);
	send_tx(f, NULL, big, flags, 2);
	assert_int_equal(recv(f->peer, got, sizeof(got), MSG_DONTWAIT), -1);
	assert_int_equal(f->n.tx_drops, 2);
	assert_int_equal(get16(f, TX_USED + 2), 2);
	assert_false(needs_reset(f));
}

static void virtio_net_tx_buffer_outside_ram_needs_reset(void **state)
{
	struct fixture *f = *state;
	uint32_t lens[1] = { 1500 };
	uint16_t flags[1] = { 0 };
	uint8_t got[64];

	driver_start(f, F_ALL);
	put_desc(f, TX_DESC, 0, 16 * MIB - 100, 1500, 0, 0);
	publish(f, TX_AVAIL, &f->tx_idx, 0);
	wr(f, 0x50, 1);
	assert_true(needs_reset(f));
	assert_int_equal(get16(f, TX_USED + 2), 0);
	/* Dead until reset: more kicks do nothing. */
	f->tx_desc = 1;
	send_tx(f, NULL, lens, flags, 1);
	assert_int_equal(recv(f->peer, got, sizeof(got), MSG_DONTWAIT), -1);
}

static void virtio_net_tx_descriptor_loop_needs_reset(void **state)
{
	struct fixture *f = *state;

	driver_start(f, F_ALL);
	put_desc(f, TX_DESC, 0, TX_BUFS, 64, VIRTQ_DESC_F_NEXT, 1);
	put_desc(f, TX_DESC, 1, TX_BUFS, 64, VIRTQ_DESC_F_NEXT, 0);
	publish(f, TX_AVAIL, &f->tx_idx, 0);
	wr(f, 0x50, 1);
	assert_true(needs_reset(f));
}

static void virtio_net_tx_backend_gone_counts_drop(void **state)
{
	struct fixture *f = *state;
	uint8_t frame[NET_HDR_LEN + 60];
	uint32_t lens[1] = { sizeof(frame) };
	uint16_t flags[1] = { 0 };

	driver_start(f, F_ALL);
	close(f->peer);
	f->peer = -1;
	host_frame(frame, 60, 0, 1);
	send_tx(f, frame, lens, flags, 1);
	assert_int_equal(f->n.tx_drops, 1);
	assert_int_equal(get16(f, TX_USED + 2), 1);
}

/* ---- receive ---- */

static void virtio_net_rx_frame_lands_in_one_buffer_with_header(void **state)
{
	struct fixture *f = *state;
	uint8_t frame[NET_HDR_LEN + 1000];
	unsigned long long sig;

	driver_start(f, F_ALL);
	post_rx_many(f, 40); /* 80 KiB: enough to read straight into guest buffers */
	sig = f->n.mmio.nr_signals;
	host_send(f, frame, host_frame(frame, 1000, 1, 5));
	assert_int_equal(loop_once(f, 1000), 1);
	expect_rx(f, frame, sizeof(frame), 1);
	assert_int_equal(f->n.rx_packets, 1);
	assert_int_equal(f->n.rx_bytes, 1000);
	assert_true(f->n.mmio.nr_signals > sig);
}

static void virtio_net_rx_mergeable_frame_spans_buffers(void **state)
{
	struct fixture *f = *state;
	static uint8_t frame[NET_HDR_LEN + 5000];

	driver_start(f, F_ALL);
	post_rx_many(f, 40);
	host_send(f, frame, host_frame(frame, 5000, 0, 11));
	assert_int_equal(loop_once(f, 1000), 1);
	expect_rx(f, frame, sizeof(frame), 3); /* 2048 + 2048 + the rest */
	assert_int_equal(get16(f, RX_USED + 2), 3);
}

static void virtio_net_rx_few_buffers_waits_for_more(void **state)
{
	struct fixture *f = *state;
	static uint8_t frame[NET_HDR_LEN + 6000];

	driver_start(f, F_ALL);
	post_rx_many(f, 2);
	host_send(f, frame, host_frame(frame, 6000, 0, 21));
	assert_int_equal(loop_once(f, 1000), 1);
	assert_int_equal(get16(f, RX_USED + 2), 0); /* 4 KiB cannot take 6 KiB */
	assert_int_equal(f->n.rx_drops, 0);
	post_rx_many(f, 2);
	expect_rx(f, frame, sizeof(frame), 3);
	assert_int_equal(f->n.rx_packets, 1);
}

static void virtio_net_rx_no_buffers_stops_reading(void **state)
{
	struct fixture *f = *state;
	uint8_t frame[NET_HDR_LEN + 200], peek[16];

	driver_start(f, F_ALL);
	host_send(f, frame, host_frame(frame, 200, 0, 2));
	assert_int_equal(loop_once(f, 1000), 1);
	/* The frame stays in the backend and the loop does not wake again for it. */
	assert_int_equal(loop_once(f, 50), 0);
	assert_true(recv(f->n.tap_fd, peek, sizeof(peek), MSG_PEEK | MSG_DONTWAIT) > 0);
	assert_int_equal(f->n.rx_drops, 0);
	post_rx_many(f, 1);
	expect_rx(f, frame, sizeof(frame), 1);
	/* A new frame wakes the loop again. */
	host_send(f, frame, sizeof(frame));
	assert_int_equal(loop_once(f, 1000), 1);
	assert_int_equal(f->n.rx_packets, 1);
	post_rx_many(f, 1);
	assert_int_equal(f->n.rx_packets, 2);
}

static void virtio_net_rx_without_mrg_too_big_for_chain_dropped(void **state)
{
	struct fixture *f = *state;
	static uint8_t big[NET_HDR_LEN + 3000];
	uint8_t frame[NET_HDR_LEN + 100];

	driver_start(f, F_ALL & ~F_MRG);
	post_rx(f, NET_HDR_LEN + 1514);
	post_rx(f, NET_HDR_LEN + 1514);
	kick_rx(f);
	host_send(f, big, host_frame(big, 3000, 0, 4));
	host_send(f, frame, host_frame(frame, 100, 0, 4));
	assert_int_equal(loop_once(f, 1000), 1);
	assert_int_equal(f->n.rx_drops, 1);
	expect_rx(f, frame, sizeof(frame), 1); /* in the chain the big one could not fill */
	assert_int_equal(get16(f, RX_USED + 2), 1);
}

static void virtio_net_rx_oversized_from_backend_dropped(void **state)
{
	struct fixture *f = *state;
	static uint8_t big[70000];
	uint8_t tiny[NET_HDR_LEN + 4], frame[NET_HDR_LEN + 64];

	driver_start(f, F_ALL);
	post_rx_many(f, 40);
	host_send(f, big, host_frame(big, sizeof(big) - NET_HDR_LEN, 0, 1));
	host_send(f, tiny, host_frame(tiny, 4, 0, 1)); /* shorter than Ethernet: still passed */
	host_send(f, frame, 8);                         /* shorter than the header */
	host_send(f, frame, host_frame(frame, 64, 0, 1));
	assert_int_equal(loop_once(f, 1000), 1);
	assert_int_equal(f->n.rx_drops, 2);
	assert_int_equal(f->n.rx_packets, 2);
	expect_rx(f, tiny, sizeof(tiny), 1);
	expect_rx(f, frame, sizeof(frame), 1);
	assert_false(needs_reset(f));
}

static void virtio_net_rx_readable_chain_needs_reset(void **state)
{
	struct fixture *f = *state;

	driver_start(f, F_ALL);
	put_desc(f, RX_DESC, 0, RX_BUFS, BUF_STEP, 0, 0);
	publish(f, RX_AVAIL, &f->rx_idx, 0);
	kick_rx(f);
	assert_true(needs_reset(f));
	assert_int_equal(get16(f, RX_USED + 2), 0);
}

static void virtio_net_rx_chain_shorter_than_header_needs_reset(void **state)
{
	struct fixture *f = *state;

	driver_start(f, F_ALL);
	post_rx(f, NET_HDR_LEN - 1);
	kick_rx(f);
	assert_true(needs_reset(f));
}

static void virtio_net_rx_without_guest_csum_clears_flags(void **state)
{
	struct fixture *f = *state;
	uint8_t frame[NET_HDR_LEN + 64];

	driver_start(f, F_V1 | F_MRG);
	post_rx_many(f, 1);
	host_send(f, frame, host_frame(frame, 64, 2, 0)); /* DATA_VALID */
	assert_int_equal(loop_once(f, 1000), 1);
	assert_int_equal(*(uint8_t *)gpa(f, rx_buf(0), 1), 0);

	driver_start(f, F_ALL);
	post_rx_many(f, 1);
	host_send(f, frame, sizeof(frame));
	assert_int_equal(loop_once(f, 1000), 1);
	expect_rx(f, frame, sizeof(frame), 1);
	assert_int_equal(*(uint8_t *)gpa(f, rx_buf(0), 1), 2);
}

static void virtio_net_reset_drops_waiting_frame(void **state)
{
	struct fixture *f = *state;
	static uint8_t frame[NET_HDR_LEN + 6000];

	driver_start(f, F_ALL);
	post_rx_many(f, 1);
	host_send(f, frame, host_frame(frame, 6000, 0, 8));
	assert_int_equal(loop_once(f, 1000), 1);
	assert_int_equal(f->n.b->pending, sizeof(frame));
	wr(f, 0x70, 0);
	assert_int_equal(f->n.rx_drops, 1);
	assert_int_equal(f->n.b->pending, 0);
	assert_int_equal(f->n.b->nr_chains, 0);
}

static void virtio_net_inactive_device_reads_nothing(void **state)
{
	struct fixture *f = *state;
	uint8_t frame[NET_HDR_LEN + 64], peek[16];

	host_send(f, frame, host_frame(frame, 64, 0, 0));
	assert_int_equal(loop_once(f, 1000), 1);
	assert_true(recv(f->n.tap_fd, peek, sizeof(peek), MSG_PEEK | MSG_DONTWAIT) > 0);
	/* Buffers posted before DRIVER_OK are served when the driver says it. */
	driver_setup(f, F_V1);
	post_rx(f, BUF_STEP);
	assert_int_equal(f->n.rx_packets, 0);
	driver_ok(f);
	expect_rx(f, frame, sizeof(frame), 1);
}

static void virtio_net_destroy_stops_watching_backend(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(f->el.nr, 1);
	virtio_net_destroy(&f->n);
	assert_int_equal(f->el.nr, 0);
	assert_int_equal(f->n.tap_fd, -1);
	virtio_net_destroy(&f->n); /* twice is harmless; teardown does it a third time */
}

/* ---- poisoned guest pages: frames are dropped, the device goes on ---- */

static void virtio_net_tx_buffer_in_poisoned_page_dropped(void **state)
{
	struct fixture *f = *state;
	uint8_t frame[NET_HDR_LEN + 60], got[256];
	uint32_t lens[1] = { sizeof(frame) };
	uint16_t flags[1] = { 0 };
	struct poison_log log;

	assert_int_equal(poison_log_init(&log), 0);
	f->gm.poison = &log;
	driver_start(f, F_ALL);
	host_frame(frame, 60, 0, 3);
	memcpy(f->gm.host + TX_BUFS, frame, sizeof(frame));
	assert_int_equal(poison_log_add(&log, TX_BUFS, 4096, POISON_INJECTED), 0);
	send_tx(f, NULL, lens, flags, 1);
	assert_int_equal(recv(f->peer, got, sizeof(got), MSG_DONTWAIT), -1);
	assert_int_equal(get16(f, TX_USED + 2), 1);
	assert_int_equal(f->n.tx_drops, 1);
	assert_false(needs_reset(f));
	f->gm.poison = NULL;
	poison_log_destroy(&log);
}

/* A poisoned rx buffer: every held buffer goes back empty and the frame, still in the backend,
 * goes to the buffers after them. */
static void virtio_net_rx_buffer_in_poisoned_page_returned_empty(void **state)
{
	struct fixture *f = *state;
	uint8_t frame[NET_HDR_LEN + 1000];
	const unsigned held = NET_RX_ROOM / BUF_STEP + 1;
	struct poison_log log;
	uint16_t head;
	uint32_t len;

	assert_int_equal(poison_log_init(&log), 0);
	f->gm.poison = &log;
	driver_start(f, F_ALL);
	post_rx_many(f, 40);
	assert_int_equal(poison_log_add(&log, rx_buf(3), 4096, POISON_HOST), 0);
	host_send(f, frame, host_frame(frame, 1000, 1, 5));
	assert_int_equal(loop_once(f, 1000), 1);
	/* Held: as many as it takes to pass the largest frame, the poisoned one among them. */
	assert_int_equal(get16(f, RX_USED + 2), held + 1);
	for (unsigned i = 0; i < held; i++) {
		rx_used(f, &head, &len);
		assert_int_equal(head, i);
		assert_int_equal(len, 0);
	}
	expect_rx(f, frame, sizeof(frame), 1);
	assert_int_equal(f->n.rx_drops, 1);
	assert_int_equal(f->n.rx_packets, 1);
	assert_false(needs_reset(f));
	f->gm.poison = NULL;
	poison_log_destroy(&log);
}

static int group_setup(void **state)
{
	signal(SIGPIPE, SIG_IGN); /* kiln ignores it too: a closed backend is an error, not death */
	return log_setup(NULL, LOG_OFF, false, false);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup_mac, teardown)
#define TN(f) cmocka_unit_test_teardown(f, teardown)
	const struct CMUnitTest tests[] = {
		T(virtio_net_features_with_mac_offers_mac_csum_tso),
		TN(virtio_net_features_without_mac_no_mac_bit),
		T(virtio_net_activate_guest_tso_sets_tun_offload),
		T(virtio_net_tx_split_header_reaches_backend_intact),
		T(virtio_net_tx_writable_buffer_dropped),
		T(virtio_net_tx_short_and_oversized_frames_dropped),
		T(virtio_net_tx_buffer_outside_ram_needs_reset),
		T(virtio_net_tx_descriptor_loop_needs_reset),
		T(virtio_net_tx_backend_gone_counts_drop),
		T(virtio_net_rx_frame_lands_in_one_buffer_with_header),
		T(virtio_net_rx_mergeable_frame_spans_buffers),
		T(virtio_net_rx_few_buffers_waits_for_more),
		T(virtio_net_rx_no_buffers_stops_reading),
		T(virtio_net_rx_without_mrg_too_big_for_chain_dropped),
		T(virtio_net_rx_oversized_from_backend_dropped),
		T(virtio_net_rx_readable_chain_needs_reset),
		T(virtio_net_rx_chain_shorter_than_header_needs_reset),
		T(virtio_net_rx_without_guest_csum_clears_flags),
		T(virtio_net_reset_drops_waiting_frame),
		T(virtio_net_inactive_device_reads_nothing),
		T(virtio_net_destroy_stops_watching_backend),
		T(virtio_net_tx_buffer_in_poisoned_page_dropped),
		T(virtio_net_rx_buffer_in_poisoned_page_returned_empty),
	};
#undef T
#undef TN

	return cmocka_run_group_tests_name("virtio_net.c", tests, group_setup, NULL);
}
