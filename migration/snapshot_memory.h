/* Snapshot memory files: writing one (Full: all of guest RAM; Diff: the pages written since the
 * last snapshot, at their offsets in a sparse file), the per-chunk hashes that check one on
 * restore, and merging a Diff onto its base (`kiln snapshot-rebase`). */
#ifndef KILN_SNAPSHOT_MEMORY_H
#define KILN_SNAPSHOT_MEMORY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "state.h"

struct guest_memory;
struct vm;

/* Memory files are checked in chunks of this size: the state file holds each chunk's XXH3-64. */
#define SNAPSHOT_CHUNK (2ull << 20)
#define SNAPSHOT_MEMORY_VERSION 2u
#define SNAPSHOT_MAX_CHUNKS (1u << 20) /* 2 TiB of guest RAM */
#define SNAPSHOT_MEMORY_DIFF 1u        /* MEMO flags: the memory file holds the dirtied pages */

/* Bytes of chunk k of a memory of size bytes. */
uint64_t snapshot_chunk_len(uint64_t size, uint32_t k);

/* Chunk [off, off+len) of memfd-ordered data: XXH3-64 over its pages the poison log of gm does
 * not list, in order (one call when it lists none, which gives the same value). */
uint64_t snapshot_chunk_hash(const struct guest_memory *gm, uint64_t off, const uint8_t *data,
			     uint64_t len);

/*
 * Moves the record of pages written since the last take (kiln's own and KVM's dirty log, slot by
 * slot; the memslots must log) into map (words 64-bit words, zeroed by the caller), one bit per
 * 4 KiB page of the memfd. 0, or -errno: what was taken is then given back.
 */
int snapshot_take_dirty(struct vm *vm, uint64_t *map, size_t words)
	__attribute__((warn_unused_result));

/* A memory file written but not yet in place, and the record of written pages it consumed. */
struct snapshot_memory_file {
	char path[4096];
	char partial[4096];  /* path.partial, where it is until committed */
	uint64_t *taken;     /* the record taken (NULL without dirty-page tracking) */
	bool committed;
};

/*
 * Writes the paused VM's memory to path.partial (fsync'd) and appends the MEMO section to b.
 * The hashes always describe all of memory, so a Diff merged onto its base checks like a Full
 * one. With dirty-page tracking on, the record of written pages (KVM's dirty log and kiln's own)
 * is taken here, so that it restarts with this snapshot; a Diff writes just those pages and
 * needs the tracking. Poisoned pages are never read. On success f must go through
 * snapshot_memory_end; on failure (-errno, one line in err) nothing is left and the record is
 * kept for the next snapshot.
 */
int snapshot_memory_write(struct vm *vm, bool diff, const char *path, struct state_buf *b,
			  struct snapshot_memory_file *f, char *err, size_t errlen)
	__attribute__((warn_unused_result));

/* Renames f's file into place. 0, or -errno with one line in err. */
int snapshot_memory_commit(struct snapshot_memory_file *f, char *err, size_t errlen)
	__attribute__((warn_unused_result));

/* The snapshot is done (ok) or failed: then an uncommitted file is removed and the record f took
 * is given back, so the next Diff still has those pages. Frees f's record. */
void snapshot_memory_end(struct vm *vm, struct snapshot_memory_file *f, bool ok);

/*
 * `kiln snapshot-rebase BASE DIFF`: copies the data regions of Diff memory file diff over base,
 * in place, and fsyncs it; *copied is the byte count. The files must be the same size.
 * 0, or -errno with one line in err.
 */
int snapshot_rebase(const char *base, const char *diff, uint64_t *copied, char *err,
		    size_t errlen) __attribute__((warn_unused_result));

#endif
