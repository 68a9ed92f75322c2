/* virtio-vsock connections: the host side of each stream (its unix socket, buffering and
 * credit) and the packets it owes the guest. Everything here runs with the transport's lock
 * held. */
#ifndef KILN_VIRTIO_VSOCK_CONN_H
#define KILN_VIRTIO_VSOCK_CONN_H

#include <stdbool.h>
#include <stdint.h>

#include "queue.h"
#include "vsock.h"

/* The packet header (virtio 1.2, 5.10.6), decoded. */
#define VSOCK_HDR_LEN 44u
#define VSOCK_TYPE_STREAM 1
enum {
	VSOCK_OP_REQUEST = 1,
	VSOCK_OP_RESPONSE = 2,
	VSOCK_OP_RST = 3,
	VSOCK_OP_SHUTDOWN = 4,
	VSOCK_OP_RW = 5,
	VSOCK_OP_CREDIT_UPDATE = 6,
	VSOCK_OP_CREDIT_REQUEST = 7,
};
#define VSOCK_SHUTDOWN_RCV 1u
#define VSOCK_SHUTDOWN_SEND 2u

struct vsock_hdr {
	uint64_t src_cid, dst_cid;
	uint32_t src_port, dst_port;
	uint32_t len;
	uint16_t type, op;
	uint32_t flags, buf_alloc, fwd_cnt;
};

#define VSOCK_HASH_SIZE 1024u /* buckets, a power of two */
#define VSOCK_RST_RING 256u   /* RSTs for untracked connections awaiting a receive buffer */

/* Tags of the device's epoll set; anything else is a struct vsock_conn pointer. */
#define VSOCK_TAG_LISTEN 1u
#define VSOCK_TAG_TIMER 2u
#define VSOCK_TAG_KICK 3u

#define VSOCK_LINE_MAX 32u
#define VSOCK_DRAIN_TIMEOUT_MS 10000u /* for a host socket to take what the guest left */

enum vsock_state {
	VSOCK_AWAIT_CONNECT, /* a host client was accepted; its CONNECT line is being read */
	VSOCK_LOCAL_INIT,    /* a REQUEST is owed to or was sent to the guest */
	VSOCK_ESTABLISHED,
	VSOCK_DRAINING,      /* the guest is gone; what is buffered still goes to the host */
	VSOCK_RESET,         /* the host side is closed; an RST is owed to the guest */
	VSOCK_DEAD,          /* freed when the current event is done */
};

/* Control packets a connection owes the guest. */
#define VSOCK_PEND_REQUEST 1u
#define VSOCK_PEND_RESPONSE 2u
#define VSOCK_PEND_SHUTDOWN 4u
#define VSOCK_PEND_CREDIT 8u

struct vsock_conn {
	struct virtio_vsock *v;
	struct vsock_conn *hnext;          /* hash chain, while hashed */
	struct vsock_conn *rx_prev, *rx_next;
	struct vsock_conn *dead_next;
	unsigned slot;
	bool hashed, in_rx;
	enum vsock_state state;
	uint32_t local_port, peer_port;    /* the host's and the guest's */
	int fd;
	uint32_t events;                   /* epoll interest now */
	bool watched;                      /* in the device's epoll set */
	bool hup;                          /* the host socket hung up: read what is left */
	bool readable;                     /* the host socket has data or EOF to take */
	bool host_eof;
	bool wr_shut;                      /* shutdown(SHUT_WR) done on the host socket */
	unsigned pending;                  /* VSOCK_PEND_* */
	uint32_t shut_flags;               /* the SHUTDOWN flags kiln sends */
	uint32_t peer_shut;                /* the SHUTDOWN flags the guest sent */
	uint64_t deadline_ms;              /* CLOCK_MONOTONIC; 0 when none */
	/* Guest to host: a ring of up to VSOCK_CONN_BUF_ALLOC bytes the host socket would not take
	 * yet, and "OK <port>\n" for a host-initiated connection. */
	uint8_t *buf;
	uint32_t buf_head, buf_len;
	char ctl[24];
	uint8_t ctl_off, ctl_len;
	uint32_t fwd_cnt, fwd_sent;        /* bytes passed on; the count the guest last saw */
	/* Host to guest: the guest's credit. */
	uint32_t peer_buf_alloc, peer_fwd_cnt, rx_cnt;
	char line[VSOCK_LINE_MAX];
	uint8_t line_len;
};

/* The connection for (host port, guest port), or NULL. */
struct vsock_conn *vsock_conn_find(struct virtio_vsock *v, uint32_t local, uint32_t peer);

/* Takes fd (a connected non-blocking unix socket) into a new connection in state, hashed
 * unless it awaits its CONNECT line. NULL (fd closed) at the connection limit or without
 * memory. */
struct vsock_conn *vsock_conn_new(struct virtio_vsock *v, int fd, enum vsock_state state,
				  uint32_t local, uint32_t peer);

/* Puts c, its ports now known, in the table. */
void vsock_conn_hash(struct vsock_conn *c);

/* One packet from the guest for c (its credit fields already taken), whose payload is
 * [off, off + hdr->len) of chain's readable part. */
void vsock_conn_guest_packet(struct vsock_conn *c, const struct vsock_hdr *hdr,
			     const struct virtq_chain *chain, uint64_t off);

/* Fills *hdr (and for RW, chain past the header) with the next packet c owes the guest.
 * Returns false when c has nothing to send now. */
bool vsock_conn_rx_packet(struct vsock_conn *c, struct virtq_chain *chain, struct vsock_hdr *hdr);

/* Brings c's epoll interest, receive-list place and end of life in line with its state. */
void vsock_conn_refresh(struct vsock_conn *c);

/* Closes the host socket and owes the guest an RST. */
void vsock_conn_reset(struct vsock_conn *c);

/* Closes the host socket; the guest is not told. */
void vsock_conn_close(struct vsock_conn *c);

/* Takes c off the list of connections with packets for the guest. */
void vsock_conn_rx_remove(struct vsock_conn *c);

/* Handles epoll events on c's host socket. */
void vsock_conn_host_event(struct vsock_conn *c, uint32_t events);

/* Closes every connection without telling the guest, and frees them. */
void vsock_conn_close_all(struct virtio_vsock *v);

/* Frees the connections that died during the current event. */
void vsock_conn_reap(struct virtio_vsock *v);

/* Queues an RST for a connection kiln does not track (or no longer does); dropped (counted)
 * when the ring is full. */
void vsock_queue_rst(struct virtio_vsock *v, uint32_t host_port, uint32_t guest_port);

#endif
