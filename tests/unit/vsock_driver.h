/* The guest's driver and the host's programs for the vsock unit tests (vsock_driver.c). */
#ifndef KILN_TEST_VSOCK_DRIVER_H
#define KILN_TEST_VSOCK_DRIVER_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "event_loop.h"
#include "memory.h"
#include "vsock.h"
#include "vsock_conn.h"

#define MEM_SIZE (16ull << 20)
#define CID 3u
#define QSIZE 64u
#define RING_BASE 0x100000ull
#define RXBUF_BASE 0x200000ull
#define RXBUF_LEN (4096u + VSOCK_HDR_LEN)
#define TXBUF_BASE 0x400000ull
#define TXBUF_STRIDE 0x11000ull
#define HOST_PORT0 (1u << 30)

struct drvq {
	uint64_t desc, avail, used;
	uint16_t next_avail, next_used;
};

struct fx {
	struct guest_memory gm;
	struct event_loop el;
	struct virtio_vsock v;
	char dir[64], uds[80];
	struct drvq q[3];
};

struct pkt {
	struct vsock_hdr h;
	uint8_t data[4096];
};

/* The wire format, written independently of the device's own codec. */
void vd_encode(const struct vsock_hdr *h, uint8_t *b);

/* MMIO register accesses as the guest's driver makes them. */
void vd_wr(struct fx *f, uint64_t off, uint32_t val);
uint32_t vd_rd(struct fx *f, uint64_t off);

/* A little-endian u32 of guest memory. */
uint32_t vd_get32(struct fx *f, uint64_t gpa);

/* Writes descriptor i of q. */
void vd_put_desc(struct fx *f, struct drvq *q, uint16_t i, uint64_t addr, uint32_t len,
		 uint16_t flags, uint16_t next);

/* Offers descriptor chain head on queue qi and notifies it. */
void vd_offer(struct fx *f, unsigned qi, uint16_t head);

/* Negotiates VERSION_1, lays out fresh rings for the three queues and sets DRIVER_OK. */
void vd_driver_up(struct fx *f);

/* Offers n receive buffers of RXBUF_LEN bytes. */
void vd_post_rx(struct fx *f, unsigned n);

/* The next packet the device gave the guest, if any. */
bool vd_rx_get(struct fx *f, struct pkt *p);

/* Sends bytes as one readable descriptor, followed by a writable one when evil. */
void vd_tx_raw(struct fx *f, const void *bytes, uint32_t len, bool evil);

/* Sends one packet from the guest's CID to the host's. */
void vd_tx(struct fx *f, uint32_t src, uint32_t dst, uint16_t op, uint32_t flags,
	   uint32_t buf_alloc, uint32_t fwd_cnt, const void *data, uint32_t len);

/* Sends n bytes as RW packets of up to 64 KiB. */
void vd_send_big(struct fx *f, uint32_t src, uint32_t dst, const uint8_t *data, size_t n,
		 uint32_t fwd_cnt);

/* Dispatches the loop's ready handlers until it goes quiet; fails the test if it never does
 * (a busy loop). */
void vd_pump(struct fx *f);

/* A host program's connection to the hybrid socket, and a listener on uds_path_<port>. */
int vd_client(struct fx *f);
int vd_listener(struct fx *f, uint32_t port);

/* Sends s without waiting; fails the test unless all of it went. */
void vd_say(int fd, const char *s);

/* Reads what is there without waiting: the byte count, 0 at EOF (or reset), -1 when nothing. */
ssize_t vd_hear(int fd, void *buf, size_t n);

/* Reads everything there is, up to n bytes, without waiting. */
size_t vd_drain(int fd, uint8_t *buf, size_t n);

/* Takes the next packet, failing the test unless it is op from host port src to guest port
 * dst. */
void vd_expect_pkt(struct fx *f, struct pkt *p, uint16_t op, uint32_t src, uint32_t dst);

/* A host program connected to guest port gport, the guest answering with buf_alloc of credit;
 * returns its socket and the host port in *hport. */
int vd_host_conn(struct fx *f, uint32_t gport, uint32_t buf_alloc, uint32_t *hport);

/* The device's one connection, or NULL. */
struct vsock_conn *vd_only_conn(struct fx *f);

/* Takes the guest's packets until none come, giving each buffer back; RW payloads go to buf,
 * the last other packet to *ctl. Returns the RW bytes. */
size_t vd_collect(struct fx *f, uint8_t *buf, size_t max, struct pkt *ctl);

/* A reproducible byte pattern. */
void vd_fill(uint8_t *b, size_t n, unsigned seed);

/* A device with its driver up and 32 receive buffers; and its teardown, which checks that
 * uds_path was unlinked. */
int vd_setup(void **state);
int vd_teardown(void **state);

/* The guest-abuse group, in test_virtio_vsock_abuse.c. */
int vsock_abuse_run(void);

#endif
