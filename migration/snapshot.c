/* Snapshots: PUT /snapshot/create's state file, opening and checking a snapshot for
 * PUT /snapshot/load, and kiln --describe-snapshot. The memory file is snapshot_memory.c's, the
 * restore steps snapshot_restore.c's. */
#include "snapshot.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "capabilities.h"
#include "device_state.h"
#include "kvm_state_x86_64.h"
#include "snapshot_memory.h"
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

unsigned snapshot_virtio_devices(struct vm *vm, struct virtio_mmio **out)
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

int snapshot_put_config(struct vm *vm, struct state_buf *b)
{
	return put_config(vm, b);
}

int snapshot_put_machine(struct vm *vm, struct state_buf *b, char *err, size_t errlen)
{
	struct virtio_mmio *devs[CONFIG_MAX_VIRTIO_DEVICES + 2];
	unsigned nr_devs = snapshot_virtio_devices(vm, devs);
	size_t mark;
	int ret;

	mark = state_section_begin(b, STATE_TAG_VM, 1);
	ret = kvm_state_save_vm(vm->vm_fd, b);
	state_section_end(b, mark);
	for (unsigned i = 0; i < vm->nr_vcpus && ret == 0; i++) {
		mark = state_section_begin(b, STATE_TAG_VCPU, 1);
		ret = kvm_state_save_vcpu(vm->kvm_fd, vm->vcpus[i].fd, i, vm->mcg_cap, b);
		state_section_end(b, mark);
	}
	if (ret < 0) {
		snprintf(err, errlen, "cannot read the VM's KVM state: %s", strerror(-ret));
		return ret;
	}
	mark = state_section_begin(b, STATE_TAG_SERIAL, DEVICE_STATE_VERSION);
	device_state_save_serial(&vm->serial, b);
	state_section_end(b, mark);
	mark = state_section_begin(b, STATE_TAG_I8042, DEVICE_STATE_VERSION);
	device_state_save_i8042(&vm->i8042, b);
	state_section_end(b, mark);
	for (unsigned i = 0; i < nr_devs; i++) {
		mark = state_section_begin(b, STATE_TAG_VIRTIO, DEVICE_STATE_VERSION);
		device_state_save_virtio(devs[i], b);
		state_section_end(b, mark);
	}
	/* Last: pages found poisoned while the memory was read are in it. */
	ret = put_poison(vm, b);
	if (ret == 0)
		ret = state_finish(b);
	if (ret < 0)
		snprintf(err, errlen, "cannot encode the state: %s", strerror(-ret));
	return ret;
}

int snapshot_create(struct vm *vm, enum snapshot_type type, const char *state_path,
		    const char *mem_path, char *err, size_t errlen)
{
	struct snapshot_memory_file mem = { 0 };
	bool mem_written = false;
	struct state_buf b;
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
	ret = snapshot_put_machine(vm, &b, err, errlen);
	if (ret < 0)
		goto out;
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

int snapshot_check_config(const struct snapshot_image *img, struct vm_config *cfg,
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

int snapshot_count_poison(const struct snapshot_image *img, size_t *nr, char *err, size_t errlen)
{
	const struct state_section *s = state_find(&img->view, STATE_TAG_POISON, 0);
	long n;

	if (!s)
		return fail(err, errlen, "the poison log section is missing");
	n = poison_log_check_encoded(s->data, s->len);
	if (n < 0)
		return fail(err, errlen, "the poison log section is malformed");
	*nr = (size_t)n;
	return 0;
}

/*
 * Whether this kernel can keep the snapshot's nr_poison poisoned ranges poisoned on the way the
 * memory comes back. kiln's own uffd thread (File backend) needs UFFDIO_POISON. An external
 * handler (Uffd backend) fills pages with UFFDIO_COPY; on kernels where that erases a poison
 * marker, a handler that copies every page would silently make the poisoned ones readable. 0,
 * or -EOPNOTSUPP with the reason in why.
 */
static int check_poison(size_t nr_poison, uint64_t page_size, bool external, char *why,
			size_t len)
{
	char probe[256] = "";
	int refuses;

	if (nr_poison == 0)
		return 0;
	if (!external) {
		if (uffd_poison_supported(page_size, probe, sizeof(probe)) == 0)
			return 0;
		snprintf(why, len, "it has %zu poisoned range(s) and %s (GET /capabilities: "
			 "uffd_poison_reason)", nr_poison, probe);
		return -EOPNOTSUPP;
	}
	refuses = capabilities_uffd_copy_refuses_poison(probe, sizeof(probe));
	if (refuses == 1)
		return 0;
	if (refuses == -EOPNOTSUPP)
		snprintf(why, len, "it has %zu poisoned range(s) and %s: neither the Uffd nor the "
			 "File backend can keep them poisoned here (GET /capabilities: "
			 "uffd_poison_reason)", nr_poison, probe);
	else if (refuses == 0)
		snprintf(why, len, "it has %zu poisoned range(s) and on this kernel UFFDIO_COPY erases "
			 "a poison marker, so a page-fault handler could turn them readable again (GET "
			 "/capabilities: uffd_copy_refuses_poison); load it with the File backend, which "
			 "never copies onto a poisoned page", nr_poison);
	else
		snprintf(why, len, "it has %zu poisoned range(s) and whether UFFDIO_COPY keeps a poison "
			 "marker is unknown (its probe failed: %s); load it with the File backend, which "
			 "never copies onto a poisoned page", nr_poison, probe);
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
		ret = snapshot_check_config(img, cfg, state_path, why, sizeof(why));
	if (ret == 0)
		ret = snapshot_count_poison(img, &nr_poison, why, sizeof(why));
	if (ret == 0)
		ret = check_poison(nr_poison, img->page_size, uffd_socket != NULL, why, sizeof(why));
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
		ret = snapshot_check_config(&img, &cfg, path, why, sizeof(why));
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
