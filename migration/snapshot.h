/* Snapshots: PUT /snapshot/create writes a paused VM's state file and memory file; PUT
 * /snapshot/load checks a state file and its memory file, and the VM build restores from them
 * (guest memory served lazily by the uffd thread, the poison log re-applied first). */
#ifndef KILN_SNAPSHOT_H
#define KILN_SNAPSHOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "config.h"
#include "snapshot_memory.h"
#include "state.h"

struct vm;

enum snapshot_type { SNAPSHOT_FULL, SNAPSHOT_DIFF };

/*
 * Writes the paused VM's memory to mem_path and its state to state_path, each through a
 * ".partial" file renamed into place once complete (memory first: a state file is only ever
 * beside a whole memory file). Poisoned pages are never read: the memory file has zeros (or, in
 * a Diff, holes) there and the state file's poison log lists them. 0, or -errno with one line
 * in err.
 */
int snapshot_create(struct vm *vm, enum snapshot_type type, const char *state_path,
		    const char *mem_path, char *err, size_t errlen)
	__attribute__((warn_unused_result));

/* A checked snapshot, ready for the VM build to restore. */
struct snapshot_image {
	uint8_t *buf;            /* the state file, whole */
	size_t len;
	struct state_view view;
	uint64_t mem_size, page_size;
	uint32_t nr_chunks;
	bool diff;               /* a Diff snapshot: its memory file only makes sense rebased */
	const uint8_t *chunk_hashes; /* nr_chunks LE u64s inside buf */
	int mem_fd;              /* the memory file, read-only; -1 with an external handler */
	char *uffd_socket;       /* mem_backend Uffd: the page-fault handler's socket, else NULL */
	bool resume;             /* resume_vm */
	/* A migrate-in (migration/migrate_in.c) instead of a snapshot: guest memory already
	 * created and partly filled by precopy, pages fetched from the source. Not owned. */
	struct mig_in *mig;
};

/*
 * Reads and checks state_path (format, checksum, sections, counts) and parses the snapshot's
 * configuration into cfg (initialised by the caller), where the restored VM will find it.
 * Memory comes from mem_path (its size is checked; kiln's uffd thread serves it) or, when
 * uffd_socket is set instead, from the external page-fault handler listening there
 * (Firecracker's protocol); a snapshot with poisoned pages is then refused unless this kernel's
 * UFFDIO_COPY refuses to erase a poison marker. 0, or -errno with one line in err; img is then
 * empty.
 */
int snapshot_open(struct snapshot_image *img, struct vm_config *cfg, const char *state_path,
		  const char *mem_path, const char *uffd_socket, char *err, size_t errlen)
	__attribute__((warn_unused_result));

/* The number of ranges in the poison log of a checked image. 0, or -errno with err set. */
int snapshot_count_poison(const struct snapshot_image *img, size_t *nr, char *err, size_t errlen);

void snapshot_close(struct snapshot_image *img);

/* Checks the image's sections against its configuration, which it parses into cfg (initialised
 * by the caller): memory size and page size (img->mem_size, img->page_size), vCPU and device
 * counts, the sections every restore needs. path names the image in messages. 0, or -EINVAL
 * with one line in err. */
int snapshot_check_config(const struct snapshot_image *img, struct vm_config *cfg,
			  const char *path, char *err, size_t errlen)
	__attribute__((warn_unused_result));

/* The sections of a paused VM's state, as a snapshot and a migration send them: the
 * configuration (CONF; 0 or -ENOMEM), and everything after the memory: KVM's VM and vCPU state,
 * the devices, the poison log, then END and the checksum (0, or -errno with one line in err). */
int snapshot_put_config(struct vm *vm, struct state_buf *b) __attribute__((warn_unused_result));
int snapshot_put_machine(struct vm *vm, struct state_buf *b, char *err, size_t errlen)
	__attribute__((warn_unused_result));

/*
 * VM build steps for a restore (vm->restore set): the poison log from the snapshot (as
 * inherited), guest memory served by the uffd thread from the memory file (every poisoned page
 * marked before), and, once vCPUs and devices exist, their state. Each 0 or -errno, logged.
 */
int snapshot_restore_poison(struct vm *vm) __attribute__((warn_unused_result));
int snapshot_restore_memory(struct vm *vm) __attribute__((warn_unused_result));
void snapshot_stop_memory(struct vm *vm);
/* The uffd thread's counters while it serves vm's memory; st is left alone otherwise. */
struct uffd_server_stats;
void snapshot_pager_stats(struct vm *vm, struct uffd_server_stats *st);
/* Whether every page of vm's memory is in: booted, or the uffd thread filled it all. */
bool snapshot_memory_complete(struct vm *vm);
int snapshot_restore_state(struct vm *vm) __attribute__((warn_unused_result));

/* Every virtio transport of vm into out, in the order vm_virtio_init creates them (the order of
 * the VIOD sections); returns the count. */
struct virtio_mmio;
unsigned snapshot_virtio_devices(struct vm *vm, struct virtio_mmio **out);

/* `kiln --describe-snapshot F`: the format version, sections, vCPUs, devices, memory and poison
 * log of state file path, on out. 0, or -errno with one line in err. */
int snapshot_describe(FILE *out, const char *path, char *err, size_t errlen)
	__attribute__((warn_unused_result));

#endif
