/* virtio-vsock's hybrid unix socket (Firecracker's): host programs connect to uds_path and
 * send "CONNECT <port>\n" to reach a guest port; the guest's connections to the host's port P
 * go to the unix socket "<uds_path>_P". Everything here runs with the transport's lock held. */
#ifndef KILN_VIRTIO_VSOCK_HYBRID_H
#define KILN_VIRTIO_VSOCK_HYBRID_H

#include <stdint.h>

#include "vsock.h"
#include "vsock_conn.h"

/* Binds and listens on v->uds_path; a path that exists is an error, as in Firecracker, and is
 * left alone. 0 or -errno (logged). */
int vsock_hybrid_listen(struct virtio_vsock *v) __attribute__((warn_unused_result));

/* Accepts host clients, each with a few seconds to send its CONNECT line. */
void vsock_hybrid_accept(struct virtio_vsock *v);

/* Reads c's CONNECT line, never past its newline (what follows is stream): on a whole valid
 * line c gets a host port and owes the guest a REQUEST; a bad line closes it. */
void vsock_hybrid_read_line(struct vsock_conn *c);

/* The guest opened a connection to the host's port hdr->dst_port: connect to
 * "<uds_path>_<port>" and owe a RESPONSE, or an RST when nobody listens there. */
void vsock_hybrid_guest_request(struct virtio_vsock *v, const struct vsock_hdr *hdr);

/* c gives up ms milliseconds from now (what that means depends on its state). */
void vsock_hybrid_deadline(struct vsock_conn *c, uint64_t ms);

/* The timer ticked: expire deadlines, resume accepting, disarm when nothing waits. */
void vsock_hybrid_tick(struct virtio_vsock *v);

#endif
