/* Restoring a snapshot: the uffd thread's page source (the memory file, checked chunk by chunk),
 * kiln's uffd thread or an external page-fault handler serving guest memory, and the state
 * sections loaded into the new VM's vCPUs and devices. */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "device_state.h"
#include "kvm_state_x86_64.h"
#include "le.h"
#include "log.h"
#include "migrate.h"
#include "snapshot.h"
#include "snapshot_memory.h"
#include "uffd_external.h"
#include "uffd_server.h"
#include "vm.h"

#define PAGE 4096ull

/*
 * The uffd thread's page source for a snapshot: the memory file, each 2 MiB chunk checked
 * against the state file's hash the first time a page of it is asked for (the whole chunk is
 * read then, and its pages served from that copy while the faults and the background fill stay
 * in it).
 */
struct snapshot_pager {
	int fd;
	const struct snapshot_image *img;
	const struct guest_memory *gm;
	uint8_t *chunk;          /* SNAPSHOT_CHUNK bytes: the last chunk read */
	uint32_t cached;         /* its index, UINT32_MAX when none */
	struct uffd_server server;
	struct uffd_external external; /* instead of server, with mem_backend Uffd */
	bool started;
	bool watched;            /* its event fd is on the VM's loop */
};

static int pager_load_chunk(struct snapshot_pager *p, uint32_t k)
{
	uint64_t off = (uint64_t)k * SNAPSHOT_CHUNK, len = snapshot_chunk_len(p->img->mem_size, k);

	uint64_t got = 0;

	while (got < len) {
		ssize_t r = pread(p->fd, p->chunk + got, len - got, (off_t)(off + got));

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			log_error("snapshot memory file: reading chunk %u: %s", k,
				  r < 0 ? strerror(errno) : "unexpected end of file");
			return -EIO;
		}
		got += (uint64_t)r;
	}
	if (snapshot_chunk_hash(p->gm, off, p->chunk, len) !=
	    get_le(p->img->chunk_hashes + 8ull * k, 8)) {
		log_error("snapshot memory file: chunk %u (bytes %" PRIu64 "-%" PRIu64 ") does not "
			  "match the state file: the memory file is corrupted or belongs to another "
			  "snapshot%s; the microVM is stopped", k, off, off + len - 1,
			  p->img->diff ? " (this is a Diff snapshot: merge its memory file onto its "
					 "base first, with kiln snapshot-rebase BASE DIFF)" : "");
		return -EBADMSG;
	}
	p->cached = k;
	return 0;
}

static int pager_read(void *opaque, uint64_t off, void *dst, size_t len)
{
	struct snapshot_pager *p = opaque;
	uint8_t *out = dst;

	if (off >= p->img->mem_size || len > p->img->mem_size - off)
		return -EINVAL;
	while (len > 0) {
		uint32_t k = (uint32_t)(off / SNAPSHOT_CHUNK);
		uint64_t in = off - (uint64_t)k * SNAPSHOT_CHUNK;
		size_t n = SNAPSHOT_CHUNK - in < len ? (size_t)(SNAPSHOT_CHUNK - in) : len;
		int ret;

		if (k != p->cached && (ret = pager_load_chunk(p, k)) < 0)
			return ret;
		memcpy(out, p->chunk + in, n);
		out += n, off += n, len -= n;
	}
	return 0;
}

/* The uffd thread ended: filled (nothing to do) or failed (the memory is lost: stop). */
static void on_pager_event(void *opaque, int fd, uint32_t events)
{
	struct vm *vm = opaque;
	struct uffd_server_stats st;

	(void)events;
	event_loop_del(vm->loop, fd);
	vm->pager->watched = false;
	uffd_server_stats(&vm->pager->server, &st);
	if (vm->restore->mig)
		mig_in_memory_done(vm->restore->mig, &st);
	if (st.error) {
		log_error("guest memory could not be restored (%s): the microVM is stopped",
			  strerror(-st.error));
		vm_request_exit(vm, VM_EXIT_ERROR);
		return;
	}
	log_info("guest memory restored: %llu pages by fault (p50 %llu us, p99 %llu us), %llu in "
		 "the background, %llu poisoned", (unsigned long long)st.fault_pages,
		 (unsigned long long)st.fault_ns_p50 / 1000, (unsigned long long)st.fault_ns_p99 / 1000,
		 (unsigned long long)st.background_pages, (unsigned long long)st.poisoned_pages);
}

/* The page-fault handler went away: pages it never served can no longer be: every one becomes
 * poisoned (a vCPU touching one takes a machine check, kiln's threads fail cleanly; nobody reads
 * zeros or waits forever), and the VM is stopped. */
static void on_handler_gone(void *opaque, int fd, uint32_t events)
{
	struct vm *vm = opaque;
	struct snapshot_pager *p = vm->pager;
	char err[256] = "";

	(void)events;
	event_loop_del(vm->loop, fd);
	p->watched = false;
	if (uffd_external_fail_all(&p->external, err, sizeof(err)) < 0)
		log_error("the page-fault handler exited, and its missing pages cannot be poisoned "
			  "(%s): threads touching them wait until kiln exits", err);
	log_error("the page-fault handler at %s exited; guest memory can no longer be served "
		  "(%llu pages were never served): the microVM is stopped", p->img->uffd_socket,
		  (unsigned long long)p->external.lost_pages);
	vm_request_exit(vm, VM_EXIT_ERROR);
}

static int start_external(struct vm *vm, struct snapshot_pager *p, const struct uffd_range *ranges,
			  size_t nr)
{
	struct guest_memory *gm = &vm->mem;
	char err[512];
	int ret;

	ret = uffd_external_start(&p->external, vm->restore->uffd_socket, gm->host, gm->page_size,
				  gm->regions, gm->nr_regions, ranges, nr, err, sizeof(err));
	if (ret < 0) {
		log_error("restoring guest memory: %s", err);
		return ret;
	}
	p->started = true;
	vm->pager = p;
	ret = event_loop_add(vm->loop, uffd_external_socket(&p->external), EPOLLIN | EPOLLRDHUP,
			     on_handler_gone, vm);
	if (ret < 0) {
		log_error("restoring guest memory: event loop: %s", strerror(-ret));
		snapshot_stop_memory(vm);
		return ret;
	}
	p->watched = true;
	log_info("guest memory is served by the page-fault handler at %s", vm->restore->uffd_socket);
	return 0;
}

int snapshot_restore_poison(struct vm *vm)
{
	const struct state_section *s = state_find(&vm->restore->view, STATE_TAG_POISON, 0);
	int ret = poison_log_decode(&vm->poison, s->data, s->len, true);

	if (ret < 0)
		log_error("the snapshot's poison log: %s", strerror(-ret));
	else if (vm->poison.nr)
		log_info("the snapshot has %zu poisoned range(s): each is poisoned again before the "
			 "first vCPU runs", vm->poison.nr);
	return ret;
}

int snapshot_restore_memory(struct vm *vm)
{
	struct guest_memory *gm = &vm->mem;
	struct uffd_range *ranges = NULL;
	struct snapshot_pager *p;
	char err[512];
	size_t nr = 0;
	int ret;

	p = calloc(1, sizeof(*p));
	if (!p || (!vm->restore->mig && !(p->chunk = aligned_alloc(PAGE, SNAPSHOT_CHUNK))))
		goto nomem;
	p->fd = vm->restore->mem_fd;
	p->img = vm->restore;
	p->gm = gm;
	p->cached = UINT32_MAX;
	pthread_mutex_lock(&vm->poison.lock);
	ranges = calloc(vm->poison.nr ? vm->poison.nr : 1, sizeof(*ranges));
	for (size_t i = 0; ranges && i < vm->poison.nr; i++) {
		const struct poison_range *r = &vm->poison.ranges[i];

		if (!guest_memory_in_ram(gm, r->gpa, r->len)) {
			log_error("the snapshot's poison log has a range outside RAM: 0x%" PRIx64, r->gpa);
			ret = -EINVAL;
			pthread_mutex_unlock(&vm->poison.lock);
			goto err;
		}
		uint64_t off = 0;

		(void)guest_memory_offset_of(gm, r->gpa, &off); /* in RAM: checked above */
		ranges[nr++] = (struct uffd_range){ .off = off, .len = r->len };
	}
	pthread_mutex_unlock(&vm->poison.lock);
	if (!ranges)
		goto nomem;
	if (vm->restore->uffd_socket) {
		ret = start_external(vm, p, ranges, nr);
		free(ranges);
		if (ret < 0)
			goto err_free;
		return 0;
	}
	{
		struct uffd_server_config sc = {
			.host = gm->host,
			.size = gm->size,
			.page_size = gm->page_size,
			.source = { .read = pager_read, .opaque = p },
			.poison = ranges,
			.nr_poison = nr,
			.seccomp = vm->seccomp,
		};

		/* A migrate-in: pages come from the source, and precopy brought some already. */
		if (vm->restore->mig &&
		    (ret = mig_in_memory_source(vm->restore->mig, vm, &p->server, ranges, nr,
						&sc.source, &sc.present)) < 0)
			goto err;
		ret = uffd_server_start(&p->server, &sc, err, sizeof(err));
	}
	free(ranges);
	ranges = NULL;
	if (ret < 0) {
		log_error("restoring guest memory: %s", err);
		goto err;
	}
	p->started = true;
	vm->pager = p;
	ret = event_loop_add(vm->loop, uffd_server_event_fd(&p->server), EPOLLIN, on_pager_event, vm);
	if (ret < 0) {
		log_error("restoring guest memory: event loop: %s", strerror(-ret));
		snapshot_stop_memory(vm);
		return ret;
	}
	p->watched = true;
	return 0;
nomem:
	ret = -ENOMEM;
	log_error("restoring guest memory: out of memory");
err:
	free(ranges);
err_free:
	if (p)
		free(p->chunk);
	free(p);
	return ret;
}

void snapshot_pager_stats(struct vm *vm, struct uffd_server_stats *st)
{
	if (vm->pager && vm->pager->started && !vm->restore->uffd_socket)
		uffd_server_stats(&vm->pager->server, st);
}

bool snapshot_memory_complete(struct vm *vm)
{
	struct uffd_server_stats st = { 0 };

	if (!vm->pager)
		return true;
	if (vm->restore->uffd_socket)
		return false; /* an external handler may still have pages to serve */
	uffd_server_stats(&vm->pager->server, &st);
	return st.done && st.error == 0;
}

void snapshot_stop_memory(struct vm *vm)
{
	struct snapshot_pager *p = vm->pager;

	if (!p)
		return;
	if (p->watched)
		event_loop_del(vm->loop, p->img->uffd_socket ? uffd_external_socket(&p->external)
							     : uffd_server_event_fd(&p->server));
	if (p->started && p->img->uffd_socket) {
		uffd_external_stop(&p->external);
		p->started = false;
	}
	/* Nothing touches guest memory any more: it is about to be unmapped. */
	if (p->started) {
		if (vm->restore && vm->restore->mig)
			mig_in_abandon(vm->restore->mig);
		uffd_server_cancel(&p->server);
		uffd_server_stop(&p->server);
	}
	free(p->chunk);
	free(p);
	vm->pager = NULL;
}

static int load_section(const struct snapshot_image *img, uint32_t tag, unsigned index,
			int (*load)(void *dev, struct state_cursor *c, char *err, size_t errlen),
			void *dev)
{
	const struct state_section *s = state_find(&img->view, tag, index);
	struct state_cursor c = state_cursor_of(s);
	char err[512], name[5];
	int ret = load(dev, &c, err, sizeof(err));

	if (ret < 0) {
		state_tag_name(tag, name);
		log_error("restoring %s section %u: %s", name, index, err);
	}
	return ret;
}

static int load_vm(void *vm, struct state_cursor *c, char *err, size_t errlen)
{
	return kvm_state_load_vm(((struct vm *)vm)->vm_fd, c, err, errlen);
}

static int load_serial(void *s, struct state_cursor *c, char *err, size_t errlen)
{
	return device_state_load_serial(s, c, err, errlen);
}

static int load_i8042(void *k, struct state_cursor *c, char *err, size_t errlen)
{
	return device_state_load_i8042(k, c, err, errlen);
}

static int load_virtio(void *t, struct state_cursor *c, char *err, size_t errlen)
{
	return device_state_load_virtio(t, c, err, errlen);
}

int snapshot_restore_state(struct vm *vm)
{
	const struct snapshot_image *img = vm->restore;
	struct virtio_mmio *devs[CONFIG_MAX_VIRTIO_DEVICES + 2];
	unsigned nr_devs = snapshot_virtio_devices(vm, devs);
	int ret;

	ret = load_section(img, STATE_TAG_VM, 0, load_vm, vm);
	for (unsigned i = 0; i < vm->nr_vcpus && ret == 0; i++) {
		const struct state_section *s = state_find(&img->view, STATE_TAG_VCPU, i);
		struct state_cursor c = state_cursor_of(s);
		char err[512];

		ret = kvm_state_load_vcpu(vm->vcpus[i].fd, i, &c, err, sizeof(err));
		if (ret < 0)
			log_error("restoring vCPU %u: %s", i, err);
	}
	if (ret == 0)
		ret = load_section(img, STATE_TAG_SERIAL, 0, load_serial, &vm->serial);
	if (ret == 0)
		ret = load_section(img, STATE_TAG_I8042, 0, load_i8042, &vm->i8042);
	for (unsigned i = 0; i < nr_devs && ret == 0; i++)
		ret = load_section(img, STATE_TAG_VIRTIO, i, load_virtio, devs[i]);
	if (ret == 0 && vm->virtio.has_vsock && (ret = virtio_vsock_transport_reset(&vm->virtio.vsock)) < 0)
		log_warn("vsock: the transport-reset event could not be sent (%s): the guest keeps "
			 "connections the host no longer has", strerror(-ret));
	return ret == -ENOBUFS ? 0 : ret;
}

