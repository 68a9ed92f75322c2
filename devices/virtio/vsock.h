/* virtio-vsock with Firecracker's hybrid unix-socket backend: host programs reach guest ports
 * through "CONNECT <port>\n" on one unix socket, guest connections to the host's port P reach
 * the unix socket "<uds_path>_P". */
#ifndef KILN_VIRTIO_VSOCK_H
#define KILN_VIRTIO_VSOCK_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "device_config.h"
#include "mmio.h"

#define VSOCK_HOST_CID 2u
#define VSOCK_MAX_CONNS 1024u
/* The receive buffer kiln advertises per connection: what a guest may send before kiln has
 * passed it on to the host socket. */
#define VSOCK_CONN_BUF_ALLOC (256u * 1024)

struct vsock_conn;

struct vsock_stats {
	uint64_t tx_packets;     /* packets the guest sent that kiln handled */
	uint64_t rx_packets;     /* packets kiln gave the guest */
	uint64_t tx_bytes;       /* stream bytes from the guest passed to host sockets */
	uint64_t rx_bytes;       /* stream bytes from host sockets given to the guest */
	uint64_t bad_packets;    /* dropped: malformed chain or header, wrong CIDs */
	uint64_t bad_rx_bufs;    /* receive chains with readable buffers or too small */
	uint64_t rst_sent;
	uint64_t rst_dropped;    /* RSTs for unknown connections lost to a full queue */
	uint64_t credit_overruns; /* connections reset for sending past kiln's credit */
	uint64_t conns_opened;
	uint64_t conns_refused;  /* host clients or guest requests turned away */
};

/* An RST owed to the guest for a connection kiln does not (or no longer) track. */
struct vsock_rst {
	uint32_t host_port;
	uint32_t guest_port;
};

struct virtio_vsock {
	struct virtio_mmio mmio;
	uint64_t guest_cid;
	char *uds_path;
	int listen_fd;            /* the hybrid socket at uds_path */
	bool bound;               /* uds_path is ours to unlink */
	bool listen_paused;       /* accept ran out of descriptors: retried on the next tick */
	int epfd;                 /* the device's own epoll set, one handler in the event loop */
	bool epfd_watched;
	int timer_fd;             /* ticks while some connection has a deadline */
	bool timer_armed;
	int kick_fd;              /* another pass over the queues after a full budget */
	uint32_t next_port;       /* the next host port for host-initiated connections */
	unsigned nr_conns;
	struct vsock_conn **slots;    /* VSOCK_MAX_CONNS entries, every live connection */
	struct vsock_conn **hash;     /* by (host port, guest port) */
	struct vsock_conn *rx_head;   /* connections with a packet for the guest, round robin */
	struct vsock_conn *rx_tail;
	struct vsock_conn *dead;      /* freed when the current event is done */
	struct vsock_rst *rst;        /* ring of RSTs for unknown connections */
	unsigned rst_head, rst_len;
	struct virtq_chain *rx_chain; /* a popped receive chain not yet filled */
	bool rx_held;
	struct virtq_chain *tx_chain;
	struct iovec *iov;            /* VIRTQ_MAX_SIZE entries */
	struct vsock_stats stats;
};

/*
 * Listens on cfg->uds_path (refusing a path that exists) and sets the device up at base on
 * irq, with one handler on loop. 0 or -errno (logged); on failure nothing is left behind.
 */
int virtio_vsock_init(struct virtio_vsock *v, const struct vsock_config *cfg,
		      struct guest_memory *mem, struct event_loop *loop, int vm_fd, uint64_t base,
		      unsigned irq) __attribute__((warn_unused_result));

/*
 * Tells the driver that every connection is gone (VIRTIO_VSOCK_EVENT_TRANSPORT_RESET on the event
 * queue), as the virtio spec asks after a restore: the host sockets did not survive. 0 (also
 * when the driver is not running), -ENOBUFS when the driver left no event buffer, or -EINVAL /
 * -EFAULT when its buffer is unusable (the device then needs a reset).
 */
int virtio_vsock_transport_reset(struct virtio_vsock *v) __attribute__((warn_unused_result));

/* Resets the device, closes every connection and the listening socket, and unlinks uds_path.
 * Safe after a failed init. */
void virtio_vsock_destroy(struct virtio_vsock *v);

#endif
