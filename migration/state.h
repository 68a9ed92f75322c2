/* kiln's state format: a header, tagged versioned sections of fixed-width little-endian fields,
 * and an XXH3-64 checksum over everything before it. Snapshots and migration streams both carry
 * it (docs/state-format.md). */
#ifndef KILN_STATE_H
#define KILN_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define STATE_MAGIC "KILNSTAT"          /* 8 bytes */
#define STATE_ARCH_X86_64 1u
#define STATE_FORMAT_VERSION 1u
#define STATE_HEADER_SIZE 24u           /* magic, u32 arch, u32 version, u64 reserved (0) */
#define STATE_SECTION_HEADER_SIZE 16u   /* u32 tag, u32 version, u64 payload length */
#define STATE_TRAILER_SIZE 8u           /* u64 XXH3-64 of every byte before it */
#define STATE_MAX_FILE (64u << 20)      /* a state file larger than this is refused */

/* A tag is four ASCII characters, first character in the lowest byte. */
#define STATE_TAG(a, b, c, d) \
	((uint32_t)(a) | (uint32_t)(b) << 8 | (uint32_t)(c) << 16 | (uint32_t)(d) << 24)

enum state_tag {
	STATE_TAG_CONFIG = STATE_TAG('C', 'O', 'N', 'F'),  /* the VM's configuration, JSON text */
	STATE_TAG_MEMORY = STATE_TAG('M', 'E', 'M', 'O'),  /* guest RAM layout and memory file */
	STATE_TAG_VM     = STATE_TAG('K', 'V', 'M', 'V'),  /* irqchips, PIT, kvmclock */
	STATE_TAG_VCPU   = STATE_TAG('V', 'C', 'P', 'U'),  /* one per vCPU */
	STATE_TAG_SERIAL = STATE_TAG('U', 'A', 'R', 'T'),
	STATE_TAG_I8042  = STATE_TAG('8', '0', '4', '2'),
	STATE_TAG_VIRTIO = STATE_TAG('V', 'I', 'O', 'D'),  /* one per virtio-mmio device */
	STATE_TAG_POISON = STATE_TAG('P', 'O', 'I', 'S'),  /* the poison log */
	STATE_TAG_END    = STATE_TAG('E', 'N', 'D', '.'),  /* last section, empty */
};

/* --- Writing: a growable buffer with a sticky error --- */

struct state_buf {
	uint8_t *data;
	size_t len, cap;
	bool failed;      /* out of memory somewhere: every later put is a no-op */
};

void state_buf_init(struct state_buf *b);
void state_buf_free(struct state_buf *b);
void state_put_u8(struct state_buf *b, uint8_t v);
void state_put_u16(struct state_buf *b, uint16_t v);
void state_put_u32(struct state_buf *b, uint32_t v);
void state_put_u64(struct state_buf *b, uint64_t v);
void state_put_bytes(struct state_buf *b, const void *p, size_t n);

/* Writes the header; call first. */
void state_begin(struct state_buf *b);
/* Opens a section; returns the mark state_section_end needs. Sections do not nest. */
size_t state_section_begin(struct state_buf *b, uint32_t tag, uint32_t version);
void state_section_end(struct state_buf *b, size_t mark);
/* Appends the END section and the checksum. 0, or -ENOMEM when a put failed. */
int state_finish(struct state_buf *b) __attribute__((warn_unused_result));

/*
 * Writes b to path crash-safely: to "path.partial" (fsync'd), then renamed over path, so path
 * always holds either the previous file or the whole new one. 0 or -errno with a reason in err.
 */
int state_write_file(const struct state_buf *b, const char *path, char *err, size_t errlen)
	__attribute__((warn_unused_result));

/* --- Reading: a cursor whose failures are sticky --- */

struct state_cursor {
	const uint8_t *p;
	size_t len, off;
	bool bad;         /* a read went past the end: every later read returns zeros */
};

uint8_t state_get_u8(struct state_cursor *c);
uint16_t state_get_u16(struct state_cursor *c);
uint32_t state_get_u32(struct state_cursor *c);
uint64_t state_get_u64(struct state_cursor *c);
/* Copies n bytes out (zeros on failure). */
void state_get_bytes(struct state_cursor *c, void *p, size_t n);
/* A pointer to the next n bytes, skipped; NULL (and bad) when fewer remain. */
const uint8_t *state_take(struct state_cursor *c, size_t n);
/* Whether every byte was read and none too many. */
bool state_cursor_done(const struct state_cursor *c);

struct state_section {
	uint32_t tag, version;
	const uint8_t *data;
	size_t len;
};

#define STATE_MAX_SECTIONS 256

/* A checked view of one whole state image (it points into the caller's bytes). */
struct state_view {
	uint32_t arch, version;
	size_t nr;
	struct state_section sections[STATE_MAX_SECTIONS];
};

/*
 * Checks buf as a whole state image: magic, architecture (x86_64), format version, checksum,
 * section framing, END last, nothing after the checksum. 0, or -EINVAL with the first problem
 * found in err ("truncated", "checksum mismatch", "written for aarch64", ...).
 */
int state_parse(const uint8_t *buf, size_t len, struct state_view *v, char *err, size_t errlen)
	__attribute__((warn_unused_result));

/* Reads path whole (at most STATE_MAX_FILE bytes) into *buf (malloc'd) and parses it. */
int state_read_file(const char *path, uint8_t **buf, size_t *len, struct state_view *v,
		    char *err, size_t errlen) __attribute__((warn_unused_result));

/* The index-th section with tag (0-based), or NULL. */
const struct state_section *state_find(const struct state_view *v, uint32_t tag, unsigned index);

/* Counts the sections with tag. */
unsigned state_count(const struct state_view *v, uint32_t tag);

/* A cursor over a section's payload. */
static inline struct state_cursor state_cursor_of(const struct state_section *s)
{
	return (struct state_cursor){ .p = s->data, .len = s->len };
}

/* A tag as its four characters ("CONF", "VCPU"; "?" for unprintable bytes), NUL-terminated. */
void state_tag_name(uint32_t tag, char out[5]);

#endif
