/* The live-migration wire protocol (docs/migration-protocol.md): framing, the handshake and each
 * frame's payload. Pure functions over byte buffers: no I/O, no allocation, so the parser can
 * be fuzzed on its own (tests/fuzz/fuzz_mig_wire.c). */
#ifndef KILN_MIG_WIRE_H
#define KILN_MIG_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MIG_MAGIC "KILNMIGR"           /* 8 bytes, at the start of HELLO's payload */
#define MIG_VERSION 1u
#define MIG_ARCH_X86_64 1u
#define MIG_FRAME_HEADER 16u           /* u32 type, u32 reserved (0), u64 payload length */
#define MIG_FRAME_TRAILER 8u           /* u64 XXH3-64 over the header and the payload */
#define MIG_MAX_PAYLOAD ((64u << 20) + 4096u) /* a STATE frame's state image at its largest */
#define MIG_MAX_PAGES_BYTES (4u << 20) /* data bytes in one PAGES frame, at most */
#define MIG_MAX_ERROR 4096u            /* bytes of an ERROR frame's text, at most */
#define MIG_MAX_DISCARD 65536u         /* ranges in one DISCARD frame, at most */
#define MIG_HELLO_LEN 24u              /* magic, u32 version, u32 arch, u32 role, u32 reserved */
#define MIG_RANGE_LEN 16u              /* u64 offset, u64 length */

/* Every field is little-endian. Frame types: */
enum mig_type {
	MIG_HELLO = 1,    /* both ways, first: MIG_HELLO_LEN bytes */
	MIG_ERROR = 2,    /* either way, then the connection ends: UTF-8 text, no NUL */
	MIG_CONFIG = 3,   /* source: u64 memory bytes, u64 page size, the VM's configuration (JSON) */
	MIG_PAGES = 4,    /* source: u64 memfd offset, then whole pages of data */
	MIG_DISCARD = 5,  /* source: u32 count, u32 reserved (0), count ranges (MIG_RANGE_LEN each) */
	MIG_STATE = 6,    /* source: a whole state image (migration/state.h) */
	MIG_RUNNING = 7,  /* destination: empty; its vCPUs run */
	MIG_REQUEST = 8,  /* destination: one range (MIG_RANGE_LEN); answered by PAGES or POISONED */
	MIG_POISONED = 9, /* source: one range, poisoned on the source, in answer to a REQUEST */
	MIG_COMPLETE = 10,/* destination: empty; every page arrived, the source may end */
	MIG_RESUME = 11,  /* source, right after the HELLOs of a new connection: empty; postcopy
			   * goes on where the broken connection left it */
	MIG_PUSH = 12,    /* source, after RUNNING: as PAGES, but sent unasked (postcopy's stream
			   * of the pages the destination lacks); never an answer to a REQUEST */
	MIG_TYPE_MAX = MIG_PUSH,
};

enum mig_role { MIG_ROLE_SOURCE = 1, MIG_ROLE_DESTINATION = 2 };

/* The name of a frame type ("PAGES"), or "?" */
const char *mig_type_name(uint32_t type);

/* A frame found in a receive buffer; payload points into that buffer. */
struct mig_frame {
	uint32_t type;
	const uint8_t *payload;
	size_t len;
};

/*
 * Looks for one whole frame at the start of buf[0, len): returns the bytes it takes (header,
 * payload and trailer) and fills f; 0 when more bytes are needed (once the header is in,
 * *need, when not NULL, gets the whole frame's size); -EBADMSG with one line in err for an
 * unknown type, a reserved field not 0, a payload longer than MIG_MAX_PAYLOAD or a checksum
 * mismatch. The payload itself is not checked here (see the decoders below).
 */
long mig_frame_parse(const uint8_t *buf, size_t len, struct mig_frame *f, size_t *need,
		     char *err, size_t errlen) __attribute__((warn_unused_result));

/* Bytes a frame with a payload of len bytes takes on the wire. */
static inline size_t mig_frame_size(size_t len)
{
	return MIG_FRAME_HEADER + len + MIG_FRAME_TRAILER;
}

/* Where the payload goes in a frame being built at out. */
static inline uint8_t *mig_frame_payload(uint8_t *out)
{
	return out + MIG_FRAME_HEADER;
}

/* Writes the header and the trailer around the len payload bytes already at
 * mig_frame_payload(out); returns mig_frame_size(len). */
size_t mig_frame_seal(uint8_t *out, uint32_t type, size_t len);

/* Copies payload in and seals: a whole frame at out (mig_frame_size(len) bytes). */
size_t mig_frame_put(uint8_t *out, uint32_t type, const void *payload, size_t len);

/* --- payloads: each encoder returns the payload bytes written; each decoder 0, or -EPROTO
 * with one line in err naming what is wrong --- */

size_t mig_hello_encode(uint8_t out[MIG_HELLO_LEN], enum mig_role role);
/* Checks a peer's HELLO: the magic, MIG_VERSION ("the peer speaks version 2 of kiln's migration
 * protocol; this kiln speaks 1"), x86_64, and that the peer has role expect. */
int mig_hello_check(const uint8_t *p, size_t len, enum mig_role expect, char *err, size_t errlen)
	__attribute__((warn_unused_result));

/* CONFIG: mem_size a non-zero multiple of page_size, page_size 4096 or 2 MiB, a JSON text
 * (not checked here) of at least one byte. */
size_t mig_config_encode(uint8_t *out, uint64_t mem_size, uint64_t page_size, const char *json,
			 size_t json_len);
int mig_config_decode(const uint8_t *p, size_t len, uint64_t *mem_size, uint64_t *page_size,
		      const char **json, size_t *json_len, char *err, size_t errlen)
	__attribute__((warn_unused_result));

/* PAGES: offset page-aligned, data a non-zero whole number of pages of at most
 * MIG_MAX_PAGES_BYTES, [offset, offset+bytes) inside mem_size. The encoder writes the offset
 * only (the caller puts the data after it, at out + 8); returns 8. */
size_t mig_pages_encode_offset(uint8_t *out, uint64_t off);
int mig_pages_decode(const uint8_t *p, size_t len, uint64_t page_size, uint64_t mem_size,
		     uint64_t *off, const uint8_t **data, size_t *bytes, char *err, size_t errlen)
	__attribute__((warn_unused_result));

/* REQUEST and POISONED: one range, page-aligned, non-empty, inside mem_size; a REQUEST covers at
 * most MIG_MAX_PAGES_BYTES (or one page, when the page is larger). */
size_t mig_range_encode(uint8_t out[MIG_RANGE_LEN], uint64_t off, uint64_t len);
int mig_range_decode(const uint8_t *p, size_t len, uint64_t page_size, uint64_t mem_size,
		     uint64_t *off, uint64_t *rlen, char *err, size_t errlen)
	__attribute__((warn_unused_result));

/* DISCARD: count (1..MIG_MAX_DISCARD) ranges, each as for mig_range_decode but without the
 * size cap. The encoder writes the count header (out must have room for 8 + count * 16 bytes)
 * and the ranges; the decoder checks them all, then gives the count and where the ranges start
 * (read the i-th with mig_discard_range). */
size_t mig_discard_encode(uint8_t *out, const uint64_t (*ranges)[2], uint32_t count);
int mig_discard_decode(const uint8_t *p, size_t len, uint64_t page_size, uint64_t mem_size,
		       uint32_t *count, char *err, size_t errlen) __attribute__((warn_unused_result));
void mig_discard_range(const uint8_t *p, uint32_t i, uint64_t *off, uint64_t *len);

/* ERROR: the text (at most MIG_MAX_ERROR bytes, cut there) into out, NUL-terminated and with
 * every byte outside printable ASCII replaced by '?'. */
void mig_error_text(const uint8_t *p, size_t len, char *out, size_t outlen);

#endif
