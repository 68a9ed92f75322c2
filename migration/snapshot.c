/* Snapshots: the memory file (checked in chunks), the state file's sections, and the restore
 * steps the VM build calls. */
#include "snapshot.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <unistd.h>

#include "capabilities.h"
#include "device_state.h"
#include "kvm_state_x86_64.h"
#include "le.h"
#include "log.h"
#include "snapshot_memory.h"
#include "uffd_external.h"
#include "uffd_server.h"
#include "vm.h"

#define PAGE 4096ull

static int __attribute__((format(printf, 3, 4))) fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

static int put_config(struct vm *vm, struct state_buf *b)
{
	json_t *j = config_to_json(vm->cfg);
	char *text = j ? json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
	size_t mark;

	json_decref(j);
	if (!text)
		return -ENOMEM;
	mark = state_section_begin(b, STATE_TAG_CONFIG, 1);
	state_put_bytes(b, text, strlen(text));
	state_section_end(b, mark);
	free(text);
	return 0;
}

/* Every virtio transport of the VM, in the order vm_virtio_init creates them. */
static unsigned virtio_devices(struct vm *vm, struct virtio_mmio **out)
{
	struct vm_virtio *v = &vm->virtio;
	unsigned n = 0;

	for (unsigned i = 0; i < v->nr_blk; i++)
		out[n++] = &v->blk[i].mmio;
	for (unsigned i = 0; i < v->nr_net; i++)
		out[n++] = &v->net[i].mmio;
	if (v->has_vsock)
		out[n++] = &v->vsock.mmio;
	if (v->has_rng)
		out[n++] = &v->rng.mmio;
	return n;
}

static int put_poison(struct vm *vm, struct state_buf *b)
{
	size_t need = poison_log_encoded_size(&vm->poison), mark;
	uint8_t *p = malloc(need ? need : 1);
	long n;

	if (!p)
		return -ENOMEM;
	n = poison_log_encode(&vm->poison, p, need);
	if (n < 0) {
		free(p);
		return (int)n;
	}
	mark = state_section_begin(b, STATE_TAG_POISON, 1);
	state_put_bytes(b, p, (size_t)n);
	state_section_end(b, mark);
	free(p);
	return 0;
}

int snapshot_create(struct vm *vm, enum snapshot_type type, const char *state_path,
		    const char *mem_path, char *err, size_t errlen)
{
	struct virtio_mmio *devs[CONFIG_MAX_VIRTIO_DEVICES + 2];
	unsigned nr_devs = virtio_devices(vm, devs);
	struct snapshot_memory_file mem = { 0 };
	bool mem_written = false;
	struct state_buf b;
	size_t mark;
	int ret;

	if (vm->state != VM_PAUSED)
		return fail(err, errlen, "the microVM must be paused first (PATCH /vm "
			    "{\"state\": \"Paused\"})");
	for (unsigned i = 0; i < vm->virtio.nr_blk; i++)
		virtio_blk_drain(&vm->virtio.blk[i]);
	state_buf_init(&b);
	state_begin(&b);
	ret = put_config(vm, &b);
	if (ret == 0)
		ret = snapshot_memory_write(vm, type == SNAPSHOT_DIFF, mem_path, &b, &mem, err,
					    errlen);
	else
		fail(err, errlen, "out of memory");
	if (ret < 0)
		goto out;
	mem_written = true;
	mark = state_section_begin(&b, STATE_TAG_VM, 1);
	ret = kvm_state_save_vm(vm->vm_fd, &b);
	state_section_end(&b, mark);
	for (unsigned i = 0; i < vm->nr_vcpus && ret == 0; i++) {
		mark = state_section_begin(&b, STATE_TAG_VCPU, 1);
		ret = kvm_state_save_vcpu(vm->kvm_fd, vm->vcpus[i].fd, i, vm->mcg_cap, &b);
		state_section_end(&b, mark);
	}
	if (ret < 0) {
		snprintf(err, errlen, "cannot read the VM's KVM state: %s", strerror(-ret));
		goto out;
	}
	mark = state_section_begin(&b, STATE_TAG_SERIAL, DEVICE_STATE_VERSION);
	device_state_save_serial(&vm->serial, &b);
	state_section_end(&b, mark);
	mark = state_section_begin(&b, STATE_TAG_I8042, DEVICE_STATE_VERSION);
	device_state_save_i8042(&vm->i8042, &b);
	state_section_end(&b, mark);
	for (unsigned i = 0; i < nr_devs; i++) {
		mark = state_section_begin(&b, STATE_TAG_VIRTIO, DEVICE_STATE_VERSION);
		device_state_save_virtio(devs[i], &b);
		state_section_end(&b, mark);
	}
	/* Last: pages found poisoned while the memory was written are in it. */
	ret = put_poison(vm, &b);
	if (ret == 0)
		ret = state_finish(&b);
	if (ret < 0) {
		snprintf(err, errlen, "cannot encode the state: %s", strerror(-ret));
		goto out;
	}
	/* Memory first: a state file is only ever beside a whole memory file. A failure up to
	 * here leaves the previous files as they were. */
	ret = snapshot_memory_commit(&mem, err, errlen);
	if (ret == 0)
		ret = state_write_file(&b, state_path, err, errlen);
out:
	if (mem_written)
		snapshot_memory_end(vm, &mem, ret == 0);
	state_buf_free(&b);
	return ret;
}

/* --- Opening a snapshot --- */

static int parse_memory(struct snapshot_image *img, char *err, size_t errlen)
{
	const struct state_section *s = state_find(&img->view, STATE_TAG_MEMORY, 0);
	struct state_cursor c;
	uint64_t chunk;
	uint32_t flags = 0;

	if (!s)
		return fail(err, errlen, "the state file has no memory section");
	/* Version 1 had no flags word, and only Full snapshots. */
	if (s->version != 1 && s->version != SNAPSHOT_MEMORY_VERSION)
		return fail(err, errlen, "memory section version %u; this kiln reads 1 and %u",
			    s->version, SNAPSHOT_MEMORY_VERSION);
	c = state_cursor_of(s);
	img->mem_size = state_get_u64(&c);
	img->page_size = state_get_u64(&c);
	chunk = state_get_u64(&c);
	if (s->version >= 2)
		flags = state_get_u32(&c);
	img->nr_chunks = state_get_u32(&c);
	img->diff = flags & SNAPSHOT_MEMORY_DIFF;
	if (c.bad || (flags & ~SNAPSHOT_MEMORY_DIFF) || chunk != SNAPSHOT_CHUNK || img->nr_chunks > SNAPSHOT_MAX_CHUNKS ||
	    img->nr_chunks != (img->mem_size + SNAPSHOT_CHUNK - 1) / SNAPSHOT_CHUNK ||
	    (img->page_size != PAGE && img->page_size != SNAPSHOT_CHUNK) ||
	    img->mem_size % img->page_size)
		return fail(err, errlen, "the memory section is malformed");
	img->chunk_hashes = state_take(&c, (size_t)img->nr_chunks * 8);
	if (!state_cursor_done(&c))
		return fail(err, errlen, "the memory section is malformed");
	return 0;
}

static int check_config(const struct snapshot_image *img, struct vm_config *cfg,
			const char *path, char *err, size_t errlen)
{
	const struct state_section *s = state_find(&img->view, STATE_TAG_CONFIG, 0);
	char cerr[CONFIG_ERR_LEN];
	unsigned devices;

	if (!s)
		return fail(err, errlen, "the state file has no configuration section");
	if (config_parse_text(cfg, path, (const char *)s->data, s->len, cerr, sizeof(cerr)) < 0)
		return fail(err, errlen, "its configuration: %s", cerr);
	if ((uint64_t)cfg->machine.mem_size_mib << 20 != img->mem_size ||
	    (cfg->machine.huge_pages == HUGE_PAGES_2M) != (img->page_size == SNAPSHOT_CHUNK))
		return fail(err, errlen, "the memory section does not match machine-config");
	if (state_count(&img->view, STATE_TAG_VCPU) != cfg->machine.vcpu_count)
		return fail(err, errlen, "%u vCPU sections for %u vCPUs",
			    state_count(&img->view, STATE_TAG_VCPU), cfg->machine.vcpu_count);
	devices = (unsigned)(json_array_size(cfg->drives) + json_array_size(cfg->network_interfaces) +
			     (cfg->vsock != NULL) + (cfg->entropy != NULL));
	if (state_count(&img->view, STATE_TAG_VIRTIO) != devices)
		return fail(err, errlen, "%u virtio sections for %u configured devices",
			    state_count(&img->view, STATE_TAG_VIRTIO), devices);
	if (!state_find(&img->view, STATE_TAG_VM, 0) || !state_find(&img->view, STATE_TAG_SERIAL, 0) ||
	    !state_find(&img->view, STATE_TAG_I8042, 0) || !state_find(&img->view, STATE_TAG_POISON, 0))
		return fail(err, errlen, "a section is missing (VM, serial, i8042 or poison log)");
	return 0;
}

/* The poison log's page count, by decoding it into a scratch log. */
static int count_poison(const struct snapshot_image *img, size_t *nr, char *err, size_t errlen)
{
	const struct state_section *s = state_find(&img->view, STATE_TAG_POISON, 0);
	struct poison_log log;
	int ret;

	if (poison_log_init(&log) < 0)
		return fail(err, errlen, "out of memory");
	ret = poison_log_decode(&log, s->data, s->len, true);
	*nr = log.nr;
	poison_log_destroy(&log);
	return ret < 0 ? fail(err, errlen, "the poison log section is malformed") : 0;
}

/*
 * An external handler fills pages with UFFDIO_COPY; on kernels where that erases a poison marker,
 * a handler that copies every page would silently make the poisoned ones readable.
 */
static int check_external_poison(size_t nr_poison, char *why, size_t len)
{
	char probe[256] = "";
	int refuses;

	if (nr_poison == 0)
		return 0;
	refuses = capabilities_uffd_copy_refuses_poison(probe, sizeof(probe));
	if (refuses == 1)
		return 0;
	snprintf(why, len, "it has %zu poisoned range(s) and on this kernel UFFDIO_COPY %s, so a "
		 "page-fault handler could turn them readable again (GET /capabilities: "
		 "uffd_copy_refuses_poison); load it with the File backend, which never copies onto "
		 "a poisoned page", nr_poison, refuses == 0 ? "erases a poison marker" : probe);
	return -EOPNOTSUPP;
}

int snapshot_open(struct snapshot_image *img, struct vm_config *cfg, const char *state_path,
		  const char *mem_path, const char *uffd_socket, char *err, size_t errlen)
{
	char why[512];
	struct stat st;
	size_t nr_poison = 0;
	int ret;

	*img = (struct snapshot_image){ .mem_fd = -1 };
	ret = state_read_file(state_path, &img->buf, &img->len, &img->view, why, sizeof(why));
	if (ret < 0) {
		snprintf(err, errlen, "snapshot %s refused: %s", state_path, why);
		return ret;
	}
	ret = parse_memory(img, why, sizeof(why));
	if (ret == 0)
		ret = check_config(img, cfg, state_path, why, sizeof(why));
	if (ret == 0)
		ret = count_poison(img, &nr_poison, why, sizeof(why));
	if (ret == 0 && uffd_socket)
		ret = check_external_poison(nr_poison, why, sizeof(why));
	if (ret == 0 && uffd_socket && !(img->uffd_socket = strdup(uffd_socket)))
		ret = fail(why, sizeof(why), "out of memory");
	if (ret < 0) {
		snprintf(err, errlen, "snapshot %s refused: %s", state_path, why);
		snapshot_close(img);
		return ret;
	}
	if (uffd_socket)
		return 0; /* the handler reads the memory file, and checks it if it wants */
	img->mem_fd = open(mem_path, O_RDONLY | O_CLOEXEC);
	if (img->mem_fd < 0 || fstat(img->mem_fd, &st) < 0) {
		ret = -errno;
		snprintf(err, errlen, "cannot open the memory file %s: %s", mem_path, strerror(errno));
		snapshot_close(img);
		return ret;
	}
	if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size != img->mem_size) {
		snprintf(err, errlen, "memory file %s refused: %lld bytes, the snapshot's memory is "
			 "%" PRIu64 " bytes", mem_path, (long long)st.st_size, img->mem_size);
		snapshot_close(img);
		return -EINVAL;
	}
	return 0;
}

void snapshot_close(struct snapshot_image *img)
{
	free(img->buf);
	free(img->uffd_socket);
	if (img->mem_fd >= 0)
		close(img->mem_fd);
	*img = (struct snapshot_image){ .mem_fd = -1 };
}

/* --- Restoring --- */

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
	if (!p || !(p->chunk = aligned_alloc(PAGE, SNAPSHOT_CHUNK)))
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
	unsigned nr_devs = virtio_devices(vm, devs);
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

/* --- kiln --describe-snapshot --- */

int snapshot_describe(FILE *out, const char *path, char *err, size_t errlen)
{
	struct snapshot_image img = { .mem_fd = -1 };
	struct poison_log log;
	struct vm_config cfg;
	char why[512], name[5];
	int ret;

	config_init(&cfg);
	ret = state_read_file(path, &img.buf, &img.len, &img.view, why, sizeof(why));
	if (ret == 0)
		ret = parse_memory(&img, why, sizeof(why));
	if (ret == 0)
		ret = check_config(&img, &cfg, path, why, sizeof(why));
	if (ret < 0) {
		snprintf(err, errlen, "%s: %s", path, why);
		goto out;
	}
	fprintf(out, "kiln state file %s\n  format version %u, x86_64, %zu bytes, checksum ok\n",
		path, img.view.version, img.len);
	fprintf(out, "  machine: %u vCPUs, %u MiB, %s pages\n", cfg.machine.vcpu_count,
		cfg.machine.mem_size_mib, img.page_size == PAGE ? "4 KiB" : "2 MiB");
	fprintf(out, "  memory file: %s, %" PRIu64 " bytes in %u checked chunks\n",
		img.diff ? "Diff (the pages written since the previous snapshot; merge it onto its "
			   "base with kiln snapshot-rebase before loading)" : "Full",
		img.mem_size, img.nr_chunks);
	fprintf(out, "  sections:");
	for (size_t i = 0; i < img.view.nr; i++) {
		state_tag_name(img.view.sections[i].tag, name);
		fprintf(out, " %s/v%u(%zu)", name, img.view.sections[i].version,
			img.view.sections[i].len);
	}
	fprintf(out, "\n");
	if (poison_log_init(&log) < 0) {
		ret = -ENOMEM;
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	{
		const struct state_section *s = state_find(&img.view, STATE_TAG_POISON, 0);

		ret = poison_log_decode(&log, s->data, s->len, false);
	}
	if (ret < 0) {
		snprintf(err, errlen, "%s: the poison log section is malformed", path);
	} else {
		fprintf(out, "  poisoned pages: %zu range(s)\n", log.nr);
		for (size_t i = 0; i < log.nr; i++)
			fprintf(out, "    0x%" PRIx64 " +0x%" PRIx64 " (%s)\n", log.ranges[i].gpa,
				log.ranges[i].len, poison_origin_name(log.ranges[i].origin));
	}
	poison_log_destroy(&log);
out:
	config_free(&cfg);
	free(img.buf);
	return ret;
}
