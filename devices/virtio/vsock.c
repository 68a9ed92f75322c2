/* virtio-vsock: placeholder until the device is written; refuses to be created. */
#include "vsock.h"

#include <errno.h>

#include "log.h"

int virtio_vsock_init(struct virtio_vsock *d, const struct vsock_config *cfg, struct guest_memory *mem,
		     struct event_loop *loop, int vm_fd, uint64_t base, unsigned irq)
{
	(void)cfg; (void)mem; (void)loop; (void)vm_fd; (void)base; (void)irq;
	d->listen_fd = -1;
	log_error("virtio-vsock is not supported by kiln yet");
	return -ENOSYS;
}

void virtio_vsock_destroy(struct virtio_vsock *d)
{
	(void)d;
}
