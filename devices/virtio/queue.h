/* Split virtqueues (virtio 1.x) walked through the checked guest-memory accessor: whatever a
 * guest puts in its rings, kiln reads and writes only guest RAM and never loops. */
#ifndef KILN_VIRTQ_H
#define KILN_VIRTQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "memory.h"

#define VIRTQ_MAX_SIZE 256u

/* One buffer of a descriptor chain: a range of guest RAM, checked when the chain was popped. */
struct virtq_buf {
	uint64_t gpa;
	uint32_t len;
	bool write; /* device-writable */
};

/* A descriptor chain: its device-readable buffers first, then its device-writable ones. */
struct virtq_chain {
	uint16_t head;
	uint16_t nr;       /* buffers */
	uint16_t nr_out;   /* readable buffers, bufs[0 .. nr_out) */
	uint64_t out_len;  /* bytes in the readable buffers */
	uint64_t in_len;   /* bytes in the writable buffers */
	struct virtq_buf bufs[VIRTQ_MAX_SIZE];
};

/* A queue's state: what the driver configured and where the device is in its rings. */
struct virtq {
	uint16_t max_size;   /* QueueNumMax, a power of two <= VIRTQ_MAX_SIZE */
	uint16_t size;       /* QueueNum as the driver set it */
	bool ready;
	bool event_idx;      /* VIRTIO_F_RING_EVENT_IDX negotiated */
	uint64_t desc;       /* guest-physical addresses of the three areas */
	uint64_t avail;
	uint64_t used;
	uint16_t next_avail; /* the next avail ring entry the device will take */
	uint16_t next_used;  /* the used ring's idx as the device last wrote it */
	uint16_t signalled_used;
	bool signalled_valid;
};

/* Back to the reset state, keeping max_size. */
void virtq_reset(struct virtq *q);

/*
 * Checks the driver's configuration before the queue goes ready: size a power of two no larger
 * than max_size, the areas aligned (16, 2, 4) and wholly in RAM. 0 or -EINVAL.
 */
int virtq_check(const struct virtq *q, const struct guest_memory *gm)
	__attribute__((warn_unused_result));

/*
 * Takes the next available chain into *c. Returns 1 with a chain, 0 when the ring is empty
 * (with EVENT_IDX, having asked the driver to notify on its next buffer), or -EINVAL when the
 * guest broke the ring's rules (index out of range, a loop, a chain longer than the queue, a
 * buffer outside RAM, a readable buffer after a writable one, an indirect descriptor, which
 * kiln does not offer) or the rings themselves are poisoned: the device must then stop using
 * the queue and ask for a reset. A buffer in a poisoned page is no such break: the chain is
 * taken, and copying its data fails.
 */
int virtq_pop(struct virtq *q, struct guest_memory *gm, struct virtq_chain *c)
	__attribute__((warn_unused_result));

/* Puts chain head back on the used ring with len bytes written. 0 or -EFAULT. */
int virtq_push(struct virtq *q, struct guest_memory *gm, uint16_t head, uint32_t len)
	__attribute__((warn_unused_result));

/* Whether the driver wants an interrupt for the buffers used since the last one it got. */
bool virtq_should_signal(struct virtq *q, const struct guest_memory *gm);

/* Copies up to len bytes from the chain's readable buffers, starting offset bytes in. Returns
 * the bytes copied: fewer when a buffer is poisoned. */
size_t virtq_chain_read(const struct guest_memory *gm, const struct virtq_chain *c,
			uint64_t offset, void *dst, size_t len);

/* Copies up to len bytes into the chain's writable buffers, starting offset bytes into them,
 * recording the pages as written by kiln. Returns the bytes copied: fewer when a buffer is
 * poisoned. */
size_t virtq_chain_write(struct guest_memory *gm, const struct virtq_chain *c, uint64_t offset,
			 const void *src, size_t len);

/*
 * Describes [offset, offset+len) of the readable (write=false) or writable (write=true) part
 * of the chain as host iovecs, for readv/writev/io_uring. Writable pages are recorded as
 * written by kiln. Returns the number of iovecs (at most max), -ENOSPC if they do not fit,
 * -EHWPOISON if the poison log has a page of the range (-EFAULT if a piece is not RAM); a range
 * running past the part's end is cut short. The kernel copying through the iovecs fails with
 * EFAULT (or stops short) at a page poisoned since: callers treat that as the request's I/O
 * error, not the guest's.
 */
int virtq_chain_iov(struct guest_memory *gm, const struct virtq_chain *c, bool write,
		    uint64_t offset, uint64_t len, struct iovec *iov, int max)
	__attribute__((warn_unused_result));

#endif
