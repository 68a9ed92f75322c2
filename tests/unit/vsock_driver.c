/* The guest's driver and the host's programs for the vsock unit tests: MMIO registers, rings in
 * a real memfd guest memory, real unix sockets, and a pump for the real event loop. */
#include "vsock_driver.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "virtio.h"

/* The wire format, written independently of the device's own codec. */
static void vd_put(uint8_t *p, uint64_t v, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t vd_get(const uint8_t *p, unsigned n)
{
	uint64_t v = 0;

	for (unsigned i = 0; i < n; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

void vd_encode(const struct vsock_hdr *h, uint8_t *b)
{
	vd_put(b, h->src_cid, 8);
	vd_put(b + 8, h->dst_cid, 8);
	vd_put(b + 16, h->src_port, 4);
	vd_put(b + 20, h->dst_port, 4);
	vd_put(b + 24, h->len, 4);
	vd_put(b + 28, h->type, 2);
	vd_put(b + 30, h->op, 2);
	vd_put(b + 32, h->flags, 4);
	vd_put(b + 36, h->buf_alloc, 4);
	vd_put(b + 40, h->fwd_cnt, 4);
}

static void vd_decode(const uint8_t *b, struct vsock_hdr *h)
{
	h->src_cid = vd_get(b, 8);
	h->dst_cid = vd_get(b + 8, 8);
	h->src_port = (uint32_t)vd_get(b + 16, 4);
	h->dst_port = (uint32_t)vd_get(b + 20, 4);
	h->len = (uint32_t)vd_get(b + 24, 4);
	h->type = (uint16_t)vd_get(b + 28, 2);
	h->op = (uint16_t)vd_get(b + 30, 2);
	h->flags = (uint32_t)vd_get(b + 32, 4);
	h->buf_alloc = (uint32_t)vd_get(b + 36, 4);
	h->fwd_cnt = (uint32_t)vd_get(b + 40, 4);
}

void vd_wr(struct fx *f, uint64_t off, uint32_t val)
{
	virtio_mmio_bus_ops.write(&f->v.mmio, off, (const uint8_t *)&val, 4);
}

uint32_t vd_rd(struct fx *f, uint64_t off)
{
	uint32_t val;

	virtio_mmio_bus_ops.read(&f->v.mmio, off, (uint8_t *)&val, 4);
	return val;
}

static void vd_put16(struct fx *f, uint64_t gpa, uint16_t v)
{
	uint8_t b[2];

	vd_put(b, v, 2);
	assert_int_equal(guest_memory_write(&f->gm, gpa, b, 2), 0);
}

uint32_t vd_get32(struct fx *f, uint64_t gpa)
{
	uint8_t b[4];

	assert_int_equal(guest_memory_read(&f->gm, gpa, b, 4), 0);
	return (uint32_t)vd_get(b, 4);
}

void vd_put_desc(struct fx *f, struct drvq *q, uint16_t i, uint64_t addr, uint32_t len,
		     uint16_t flags, uint16_t next)
{
	uint8_t d[16];

	vd_put(d, addr, 8);
	vd_put(d + 8, len, 4);
	vd_put(d + 12, flags, 2);
	vd_put(d + 14, next, 2);
	assert_int_equal(guest_memory_write(&f->gm, q->desc + 16ull * i, d, 16), 0);
}

/* Offers descriptor chain head on queue qi and notifies it. */
void vd_offer(struct fx *f, unsigned qi, uint16_t head)
{
	struct drvq *q = &f->q[qi];

	vd_put16(f, q->avail + 4 + 2ull * (q->next_avail % QSIZE), head);
	q->next_avail++;
	vd_put16(f, q->avail + 2, q->next_avail);
	vd_wr(f, 0x50, qi);
}

void vd_driver_up(struct fx *f)
{
	vd_wr(f, 0x70, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
	vd_wr(f, 0x24, 1);
	vd_wr(f, 0x20, 1); /* VERSION_1 */
	vd_wr(f, 0x24, 0);
	vd_wr(f, 0x20, 0);
	vd_wr(f, 0x70, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK);
	assert_true(vd_rd(f, 0x70) & VIRTIO_STATUS_FEATURES_OK);
	for (unsigned i = 0; i < 3; i++) {
		struct drvq *q = &f->q[i];

		*q = (struct drvq){ .desc = RING_BASE + 0x4000ull * i };
		q->avail = q->desc + 0x1000;
		q->used = q->desc + 0x2000;
		memset(guest_memory_ptr_mut(&f->gm, q->desc, 0x4000), 0, 0x4000); /* fresh rings */
		vd_wr(f, 0x30, i);
		vd_wr(f, 0x38, QSIZE);
		vd_wr(f, 0x80, (uint32_t)q->desc);
		vd_wr(f, 0x84, 0);
		vd_wr(f, 0x90, (uint32_t)q->avail);
		vd_wr(f, 0x94, 0);
		vd_wr(f, 0xa0, (uint32_t)q->used);
		vd_wr(f, 0xa4, 0);
		vd_wr(f, 0x44, 1);
	}
	vd_wr(f, 0x70, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK |
			    VIRTIO_STATUS_DRIVER_OK);
}

void vd_post_rx(struct fx *f, unsigned n)
{
	for (unsigned k = 0; k < n; k++) {
		uint16_t i = f->q[0].next_avail % QSIZE;

		vd_put_desc(f, &f->q[0], i, RXBUF_BASE + 0x2000ull * i, RXBUF_LEN, VIRTQ_DESC_F_WRITE, 0);
		vd_offer(f, 0, i);
	}
}

/* The next packet the device gave the guest, if any. */
bool vd_rx_get(struct fx *f, struct pkt *p)
{
	struct drvq *q = &f->q[0];
	uint8_t raw[VSOCK_HDR_LEN];
	uint64_t elem, addr;
	uint32_t len;

	if ((uint16_t)(vd_get32(f, q->used) >> 16) == q->next_used)
		return false;
	elem = q->used + 4 + 8ull * (q->next_used++ % QSIZE);
	addr = RXBUF_BASE + 0x2000ull * vd_get32(f, elem);
	len = vd_get32(f, elem + 4);
	assert_true(len >= VSOCK_HDR_LEN && len <= RXBUF_LEN);
	assert_int_equal(guest_memory_read(&f->gm, addr, raw, VSOCK_HDR_LEN), 0);
	vd_decode(raw, &p->h);
	assert_int_equal(p->h.len, len - VSOCK_HDR_LEN);
	if (p->h.len)
		assert_int_equal(guest_memory_read(&f->gm, addr + VSOCK_HDR_LEN, p->data, p->h.len),
				 0);
	return true;
}

/* Sends bytes as one readable descriptor, followed by a writable one when evil. */
void vd_tx_raw(struct fx *f, const void *bytes, uint32_t len, bool evil)
{
	struct drvq *q = &f->q[1];
	uint16_t i = (uint16_t)(2 * (q->next_avail % (QSIZE / 2)));
	uint64_t addr = TXBUF_BASE + TXBUF_STRIDE * (i / 2);

	assert_true(len + 16 <= TXBUF_STRIDE);
	assert_int_equal(guest_memory_write(&f->gm, addr, bytes, len), 0);
	vd_put_desc(f, q, i, addr, len, evil ? VIRTQ_DESC_F_NEXT : 0, (uint16_t)(i + 1));
	if (evil)
		vd_put_desc(f, q, (uint16_t)(i + 1), addr + len, 16, VIRTQ_DESC_F_WRITE, 0);
	vd_offer(f, 1, i);
}

void vd_tx(struct fx *f, uint32_t src, uint32_t dst, uint16_t op, uint32_t flags,
	       uint32_t buf_alloc, uint32_t fwd_cnt, const void *data, uint32_t len)
{
	static const uint32_t max = 65536;
	uint8_t *b = malloc(VSOCK_HDR_LEN + max);
	struct vsock_hdr h = {
		.src_cid = CID, .dst_cid = 2, .src_port = src, .dst_port = dst, .len = len,
		.type = VSOCK_TYPE_STREAM, .op = op, .flags = flags, .buf_alloc = buf_alloc,
		.fwd_cnt = fwd_cnt,
	};

	assert_non_null(b);
	assert_true(len <= max);
	vd_encode(&h, b);
	if (len)
		memcpy(b + VSOCK_HDR_LEN, data, len);
	vd_tx_raw(f, b, VSOCK_HDR_LEN + len, false);
	free(b);
}

/* Dispatches the loop's ready handlers until it goes quiet. */
void vd_pump(struct fx *f)
{
	for (int round = 0; round < 200; round++) {
		struct epoll_event evs[16];
		int n = epoll_wait(f->el.epfd, evs, 16, 0);

		if (n <= 0)
			return;
		for (int i = 0; i < n; i++) {
			struct event_handler *h = &f->el.handlers[evs[i].data.u32];

			if (h->fn)
				h->fn(h->opaque, h->fd, evs[i].events);
		}
	}
	fail_msg("the event loop never went quiet");
}

int vd_client(struct fx *f)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", f->uds);
	assert_true(fd >= 0);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	return fd;
}

int vd_listener(struct fx *f, uint32_t port)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s_%u", f->uds, port);
	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(fd, 8), 0);
	return fd;
}

void vd_say(int fd, const char *s)
{
	assert_int_equal(send(fd, s, strlen(s), MSG_DONTWAIT | MSG_NOSIGNAL), (ssize_t)strlen(s));
}

/* Reads what is there without waiting: the byte count, 0 at EOF (or reset), -1 when nothing. */
ssize_t vd_hear(int fd, void *buf, size_t n)
{
	ssize_t k = recv(fd, buf, n, MSG_DONTWAIT);

	if (k < 0 && errno == ECONNRESET)
		return 0;
	return k < 0 && errno == EAGAIN ? -1 : k;
}

void vd_expect_pkt(struct fx *f, struct pkt *p, uint16_t op, uint32_t src, uint32_t dst)
{
	assert_true(vd_rx_get(f, p));
	assert_int_equal(p->h.op, op);
	assert_int_equal(p->h.src_cid, 2);
	assert_int_equal(p->h.dst_cid, CID);
	assert_int_equal(p->h.type, VSOCK_TYPE_STREAM);
	assert_int_equal(p->h.src_port, src);
	assert_int_equal(p->h.dst_port, dst);
}

/* A host client connected to guest port gport; returns its socket. */
int vd_host_conn(struct fx *f, uint32_t gport, uint32_t buf_alloc, uint32_t *hport)
{
	char line[32], want[32];
	struct pkt p;
	int fd = vd_client(f);

	snprintf(line, sizeof(line), "CONNECT %u\n", gport);
	vd_say(fd, line);
	vd_pump(f);
	assert_true(vd_rx_get(f, &p));
	assert_int_equal(p.h.op, VSOCK_OP_REQUEST);
	assert_int_equal(p.h.dst_port, gport);
	assert_int_equal(p.h.buf_alloc, VSOCK_CONN_BUF_ALLOC);
	*hport = p.h.src_port;
	vd_tx(f, gport, *hport, VSOCK_OP_RESPONSE, 0, buf_alloc, 0, NULL, 0);
	vd_pump(f);
	snprintf(want, sizeof(want), "OK %u\n", *hport);
	memset(line, 0, sizeof(line));
	assert_int_equal(vd_hear(fd, line, strlen(want)), (ssize_t)strlen(want));
	assert_string_equal(line, want);
	return fd;
}

struct vsock_conn *vd_only_conn(struct fx *f)
{
	for (unsigned i = 0; i < VSOCK_MAX_CONNS; i++)
		if (f->v.slots[i])
			return f->v.slots[i];
	return NULL;
}

int vd_setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	struct vsock_config cfg = { .guest_cid = CID };

	assert_non_null(f);
	assert_int_equal(guest_memory_create(&f->gm, MEM_SIZE, false), 0);
	assert_int_equal(event_loop_init(&f->el), 0);
	snprintf(f->dir, sizeof(f->dir), "/tmp/kiln-vsock-test.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->uds, sizeof(f->uds), "%s/v.sock", f->dir);
	cfg.uds_path = f->uds;
	assert_int_equal(virtio_vsock_init(&f->v, &cfg, &f->gm, &f->el, -1, 0xd0000000, 5), 0);
	vd_driver_up(f);
	vd_post_rx(f, 32);
	*state = f;
	return 0;
}

int vd_teardown(void **state)
{
	struct fx *f = *state;
	char cmd[128];

	virtio_vsock_destroy(&f->v);
	assert_int_not_equal(access(f->uds, F_OK), 0); /* the hybrid socket is unlinked */
	event_loop_destroy(&f->el);
	guest_memory_destroy(&f->gm);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
	assert_int_equal(system(cmd), 0);
	free(f);
	return 0;
}

/* Takes the guest's packets until none come, giving each buffer back; RW payloads go to buf,
 * the last other packet to *ctl. Returns the RW bytes. */
size_t vd_collect(struct fx *f, uint8_t *buf, size_t max, struct pkt *ctl)
{
	struct pkt p;
	size_t got = 0;
	bool more = true;

	while (more) {
		more = false;
		vd_pump(f);
		while (vd_rx_get(f, &p)) {
			more = true;
			if (p.h.op == VSOCK_OP_RW) {
				assert_true(got + p.h.len <= max);
				memcpy(buf + got, p.data, p.h.len);
				got += p.h.len;
			} else if (ctl) {
				*ctl = p;
			}
			vd_post_rx(f, 1);
		}
	}
	return got;
}

void vd_fill(uint8_t *b, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		b[i] = (uint8_t)((i * 131 + seed) ^ (i >> 9));
}

void vd_send_big(struct fx *f, uint32_t src, uint32_t dst, const uint8_t *data, size_t n,
		     uint32_t fwd_cnt)
{
	for (size_t off = 0; off < n; off += 65536)
		vd_tx(f, src, dst, VSOCK_OP_RW, 0, 1 << 20, fwd_cnt, data + off,
		   (uint32_t)(n - off < 65536 ? n - off : 65536));
}

size_t vd_drain(int fd, uint8_t *buf, size_t n)
{
	size_t got = 0;
	ssize_t k;

	while (got < n && (k = vd_hear(fd, buf + got, n - got)) > 0)
		got += (size_t)k;
	return got;
}

