/* virtio-net: placeholder until the device is written; refuses to be created. */
#include "net.h"

#include <errno.h>

#include "log.h"

int virtio_net_init(struct virtio_net *d, const struct net_config *cfg, struct guest_memory *mem,
		     struct event_loop *loop, int vm_fd, uint64_t base, unsigned irq)
{
	(void)cfg; (void)mem; (void)loop; (void)vm_fd; (void)base; (void)irq;
	d->tap_fd = -1;
	log_error("virtio-net is not supported by kiln yet");
	return -ENOSYS;
}

void virtio_net_destroy(struct virtio_net *d)
{
	(void)d;
}
