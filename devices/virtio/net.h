/* virtio-net on a host TAP device, with checksum and segmentation offloads negotiated. */
#ifndef KILN_VIRTIO_NET_H
#define KILN_VIRTIO_NET_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "device_config.h"
#include "mmio.h"

#define NET_QUEUE_SIZE 256
#define NET_HDR_LEN 12u        /* struct virtio_net_hdr_v1, num_buffers included */
/* The most a tx chain may hold: the header and a 64 KiB GSO frame (Firecracker's limit). */
#define NET_MAX_BUF 65562u
/* The largest frame the backend may hand over for the guest, header included (a VLAN tag more). */
#define NET_RX_ROOM (NET_MAX_BUF + 4u)
/* Writable buffers of the rx chains held at once; readv takes at most IOV_MAX (1024). */
#define NET_RX_BUFS 1024u

/*
 * An rx chain popped and not used yet: its writable buffers are bufs[first, first+nr). The held
 * chains are always the last nr_chains the ring handed out, so whoever saves the queue's state
 * gives them back by rewinding next_avail by nr_chains.
 */
struct net_rx_chain {
	uint16_t head;
	uint16_t first, nr;
	uint64_t cap;
};

/* Receive and transmit scratch, on the heap: a VM holds up to 19 of these devices. */
struct net_bufs {
	struct net_rx_chain chains[NET_QUEUE_SIZE]; /* in ring order */
	unsigned nr_chains;
	struct virtq_buf bufs[NET_RX_BUFS];
	unsigned nr_bufs;
	uint64_t cap;                               /* bytes in all held chains */
	struct iovec iov[NET_RX_BUFS];
	size_t pending;                             /* a frame waiting in frame[] for buffers */
	uint8_t frame[NET_RX_ROOM + 1];
	struct virtq_chain chain;                   /* the chain being popped */
	struct iovec tx_iov[VIRTQ_MAX_SIZE];
};

struct virtio_net {
	struct virtio_mmio mmio;
	struct event_loop *loop;
	char id[65];                 /* iface_id, for messages */
	int tap_fd;
	bool tap;                    /* a TAP device; false for a test's socket: no ioctls */
	bool watched;                /* tap_fd is on the event loop */
	bool has_mac;
	uint8_t mac[6];
	bool mrg_rxbuf;              /* negotiated: a frame may span several rx chains */
	bool guest_csum;             /* negotiated: rx headers may carry checksum flags */
	unsigned tun_offload;        /* TUN_F_* given to the TAP at the last activation */
	bool warned;                 /* a backend read or write error was logged */
	struct net_bufs *b;

	unsigned long long rx_packets, rx_bytes, rx_drops;
	unsigned long long tx_packets, tx_bytes, tx_drops;
};

/* Opens the TAP device cfg->host_dev_name and sets the device up at base on irq; 0 or -errno
 * (logged). On failure nothing is left behind. */
int virtio_net_init(struct virtio_net *n, const struct net_config *cfg, struct guest_memory *mem,
		    struct event_loop *loop, int vm_fd, uint64_t base, unsigned irq)
	__attribute__((warn_unused_result));

/*
 * As virtio_net_init, on a backend fd the caller opened, non-blocking, one frame per read and
 * write with the 12-byte header first; the device owns fd from here on, also on failure. tap
 * says whether it is a TAP device (offloads are then set with TUNSETOFFLOAD); the unit tests
 * pass a SOCK_SEQPACKET socket and false.
 */
int virtio_net_init_fd(struct virtio_net *n, int fd, bool tap, const struct net_config *cfg,
		       struct guest_memory *mem, struct event_loop *loop, int vm_fd, uint64_t base,
		       unsigned irq) __attribute__((warn_unused_result));

/* Stops watching the backend, resets the device, closes the backend. Safe after a failed init. */
void virtio_net_destroy(struct virtio_net *n);

#endif
