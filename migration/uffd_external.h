/* Guest RAM served by an external page-fault handler (PUT /snapshot/load with mem_backend
 * {"backend_type": "Uffd"}): Firecracker's handshake over a unix socket, and what kiln does when
 * the handler goes away. */
#ifndef KILN_UFFD_EXTERNAL_H
#define KILN_UFFD_EXTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "memory.h"
#include "uffd_server.h"

/* The largest handshake kiln sends: one JSON object per region. */
#define UFFD_EXTERNAL_MSG_MAX 512

/* The owner embeds it and touches it only through the functions below. */
struct uffd_external {
	int uffd;            /* kiln's copy of the userfaultfd */
	int sock;            /* the connection to the handler */
	uint8_t *host;       /* the mapping the regions' offsets count from */
	uint64_t page_size;
	unsigned nr_regions; /* 0 until started, and again once stopped */
	struct guest_region regions[GUEST_MEM_MAX_REGIONS];
	bool can_poison;     /* the kernel places poison markers on this memory */
	uint64_t lost_pages; /* pages uffd_external_fail_all poisoned */
};

/*
 * Writes the handshake for regions into buf: a JSON array with one object per region,
 * {"base_host_virt_addr", "size", "offset", "page_size", "page_size_kib"}, all numbers, the
 * base being host + region offset and the offset the region's offset in the memory file (in
 * kiln, its offset in the memfd). page_size_kib holds the page size in bytes, as Firecracker
 * always put it there despite the name: handlers written for either field read the same value.
 * The length written, or -ENOSPC.
 */
int uffd_external_message(char *buf, size_t len, const uint8_t *host, uint64_t page_size,
			  const struct guest_region *regions, unsigned nr_regions)
	__attribute__((warn_unused_result));

/*
 * Connects to the unix socket socket_path, opens a userfaultfd (kernel-mode faults allowed: KVM
 * faults on guest RAM; UFFD_FEATURE_POISON when the kernel offers it), registers each region's
 * [host + offset, +size) in MISSING mode, places a poison marker on every poison range (memfd
 * offsets, whole pages inside one region) before the handler can see the fd, and sends the
 * handshake (uffd_external_message) with the userfaultfd as SCM_RIGHTS, in one message. kiln
 * keeps its own copies of both fds. Call before anything touches the memory. Refuses, with one
 * line in err: no region or too many, misaligned or overlapping regions, poison ranges outside
 * them, poison ranges on a kernel that cannot place markers, a socket that is missing, refuses
 * or is not accepting ("cannot connect to the page-fault handler at PATH: ..."). 0 or -errno.
 * On failure both fds are closed and no page has been touched; a failure after the connection
 * may leave poison markers behind, so the memory must then be unmapped, not used again.
 */
int uffd_external_start(struct uffd_external *x, const char *socket_path, uint8_t *host,
			uint64_t page_size, const struct guest_region *regions,
			unsigned nr_regions, const struct uffd_range *poison, size_t nr_poison,
			char *err, size_t errlen) __attribute__((warn_unused_result));

/*
 * The connection to the handler, non-blocking. The handler never writes to it (the protocol
 * has one message, kiln's), so it becomes readable, or hangs up, only when the handler has gone
 * away: the owner watches it on its event loop, calls uffd_external_fail_all, and stops the VM
 * ("the page-fault handler exited; guest memory can no longer be served"). A handler must
 * therefore keep the connection open for as long as it serves: Firecracker never reads it, so
 * its protocol does not say so. Valid until stop.
 */
int uffd_external_socket(const struct uffd_external *x);

/*
 * After the handler has gone away: releases every thread waiting on a page it will never serve,
 * to SIGBUS (a vCPU: to a machine check), never to zeros. Puts a poison marker on every page
 * still missing (walking each region, stepping over pages already present or poisoned), then
 * wakes every waiter of every region (a page copied in without a wake-up still has them). After
 * it, no page of the regions is missing: closing the userfaultfd can no longer turn one into
 * zeros. Counts the pages it poisoned in x->lost_pages; costs one ioctl per present page (0.14 s
 * for 1 GiB of 4 KiB pages on the test host). The owner must then stop the VM, whose unserved
 * memory is lost. Only once the handler
 * is gone: a live one would find its pages poisoned. Closing kiln's copy of the userfaultfd
 * instead would be wrong: the waiters would retry and read zero pages. -EOPNOTSUPP when the
 * kernel has no UFFD_FEATURE_POISON (the waiters then wait until kiln exits), else 0 or -errno,
 * with one line in err.
 */
int uffd_external_fail_all(struct uffd_external *x, char *err, size_t errlen)
	__attribute__((warn_unused_result));

/*
 * Closes both fds. With the handler alive, a page it has not served reads as zeros once it has
 * closed its copy too: call only when nothing will touch the memory again before it is unmapped,
 * or after uffd_external_fail_all. Safe on a zeroed, a failed or a stopped uffd_external.
 */
void uffd_external_stop(struct uffd_external *x);

#endif
