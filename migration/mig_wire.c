/* The live-migration wire protocol: framing and each frame's payload, over byte buffers. */
#include "mig_wire.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <xxhash.h>

#include "le.h"

#define PAGE_4K 4096ull
#define PAGE_2M (2ull << 20)
#define DISCARD_HEADER 8u /* u32 count, u32 reserved */

static const char *const type_names[] = {
	[MIG_HELLO] = "HELLO",       [MIG_ERROR] = "ERROR",     [MIG_CONFIG] = "CONFIG",
	[MIG_PAGES] = "PAGES",       [MIG_DISCARD] = "DISCARD", [MIG_STATE] = "STATE",
	[MIG_RUNNING] = "RUNNING",   [MIG_REQUEST] = "REQUEST", [MIG_POISONED] = "POISONED",
	[MIG_COMPLETE] = "COMPLETE",
	[MIG_RESUME] = "RESUME",
	[MIG_PUSH] = "PUSH",
};

const char *mig_type_name(uint32_t type)
{
	return type >= 1 && type <= MIG_TYPE_MAX ? type_names[type] : "?";
}

/* Writes one line to err and returns ret. */
static int __attribute__((format(printf, 4, 5)))
fail(int ret, char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return ret;
}

/* --- Framing --- */

long mig_frame_parse(const uint8_t *buf, size_t len, struct mig_frame *f, size_t *need,
		     char *err, size_t errlen)
{
	uint32_t type, reserved;
	uint64_t plen;
	size_t whole;

	if (len < MIG_FRAME_HEADER)
		return 0;
	type = (uint32_t)get_le(buf, 4);
	reserved = (uint32_t)get_le(buf + 4, 4);
	plen = get_le(buf + 8, 8);
	if (type < 1 || type > MIG_TYPE_MAX)
		return fail(-EBADMSG, err, errlen, "frame type %" PRIu32 " is unknown", type);
	if (reserved != 0)
		return fail(-EBADMSG, err, errlen, "frame %s: reserved field is 0x%" PRIx32 ", not 0",
			    mig_type_name(type), reserved);
	if (plen > MIG_MAX_PAYLOAD)
		return fail(-EBADMSG, err, errlen,
			    "frame %s: a %" PRIu64 "-byte payload exceeds the protocol's limit of %u bytes",
			    mig_type_name(type), plen, MIG_MAX_PAYLOAD);
	whole = mig_frame_size((size_t)plen);
	if (need)
		*need = whole;
	if (len < whole)
		return 0;
	if (XXH3_64bits(buf, MIG_FRAME_HEADER + plen) != get_le(buf + MIG_FRAME_HEADER + plen, 8))
		return fail(-EBADMSG, err, errlen, "frame %s: checksum mismatch",
			    mig_type_name(type));
	*f = (struct mig_frame){ .type = type, .payload = buf + MIG_FRAME_HEADER, .len = plen };
	return (long)whole;
}

size_t mig_frame_seal(uint8_t *out, uint32_t type, size_t len)
{
	put_le(out, type, 4);
	put_le(out + 4, 0, 4);
	put_le(out + 8, len, 8);
	put_le(out + MIG_FRAME_HEADER + len, XXH3_64bits(out, MIG_FRAME_HEADER + len), 8);
	return mig_frame_size(len);
}

size_t mig_frame_put(uint8_t *out, uint32_t type, const void *payload, size_t len)
{
	if (len)
		memmove(mig_frame_payload(out), payload, len);
	return mig_frame_seal(out, type, len);
}

/* --- Ranges of guest memory (memfd offsets) --- */

static bool page_size_ok(uint64_t page_size)
{
	return page_size == PAGE_4K || page_size == PAGE_2M;
}

/* The most bytes one PAGES frame carries and one REQUEST asks for. */
static uint64_t pages_cap(uint64_t page_size)
{
	return page_size > MIG_MAX_PAGES_BYTES ? page_size : MIG_MAX_PAGES_BYTES;
}

/* What check_range's messages start with: the frame, and the range's index when there are
 * several (idx >= 0). */
static const char *range_name(char *buf, size_t size, const char *frame, long idx)
{
	if (idx < 0)
		return frame;
	snprintf(buf, size, "%s: range %ld", frame, idx);
	return buf;
}

/* Checks [off, off+len): page-aligned, non-empty, at most cap bytes (0: no cap), inside
 * mem_size. */
static int check_range(const char *frame, long idx, uint64_t off, uint64_t len,
		       uint64_t page_size, uint64_t mem_size, uint64_t cap, char *err, size_t errlen)
{
	char b[48];

	if (!page_size_ok(page_size))
		return fail(-EPROTO, err, errlen, "%s: page size %" PRIu64 " is not 4096 or 2 MiB",
			    range_name(b, sizeof(b), frame, idx), page_size);
	if (off % page_size)
		return fail(-EPROTO, err, errlen, "%s: offset 0x%" PRIx64 " is not page-aligned",
			    range_name(b, sizeof(b), frame, idx), off);
	if (len == 0)
		return fail(-EPROTO, err, errlen, "%s: length is 0",
			    range_name(b, sizeof(b), frame, idx));
	if (len % page_size)
		return fail(-EPROTO, err, errlen,
			    "%s: length 0x%" PRIx64 " is not a whole number of pages",
			    range_name(b, sizeof(b), frame, idx), len);
	if (cap && len > cap)
		return fail(-EPROTO, err, errlen,
			    "%s: length 0x%" PRIx64 " exceeds the limit of 0x%" PRIx64 " bytes",
			    range_name(b, sizeof(b), frame, idx), len, cap);
	if (len > mem_size || off > mem_size - len)
		return fail(-EPROTO, err, errlen,
			    "%s: 0x%" PRIx64 " bytes at offset 0x%" PRIx64
			    " run past the end of memory (0x%" PRIx64 " bytes)",
			    range_name(b, sizeof(b), frame, idx), len, off, mem_size);
	return 0;
}

/* --- HELLO --- */

size_t mig_hello_encode(uint8_t out[MIG_HELLO_LEN], enum mig_role role)
{
	memcpy(out, MIG_MAGIC, 8);
	put_le(out + 8, MIG_VERSION, 4);
	put_le(out + 12, MIG_ARCH_X86_64, 4);
	put_le(out + 16, role, 4);
	put_le(out + 20, 0, 4);
	return MIG_HELLO_LEN;
}

int mig_hello_check(const uint8_t *p, size_t len, enum mig_role expect, char *err, size_t errlen)
{
	uint32_t version, arch, role, reserved;

	/* Magic and version first: a later version's HELLO may be laid out differently. */
	if (len < 8 || memcmp(p, MIG_MAGIC, 8) != 0)
		return fail(-EPROTO, err, errlen, "the peer is not a kiln migration endpoint");
	if (len < 12)
		return fail(-EPROTO, err, errlen, "HELLO: payload is %zu bytes, not %u", len,
			    MIG_HELLO_LEN);
	version = (uint32_t)get_le(p + 8, 4);
	if (version != MIG_VERSION)
		return fail(-EPROTO, err, errlen,
			    "the peer speaks version %" PRIu32
			    " of kiln's migration protocol; this kiln speaks %u",
			    version, MIG_VERSION);
	if (len != MIG_HELLO_LEN)
		return fail(-EPROTO, err, errlen, "HELLO: payload is %zu bytes, not %u", len,
			    MIG_HELLO_LEN);
	arch = (uint32_t)get_le(p + 12, 4);
	role = (uint32_t)get_le(p + 16, 4);
	reserved = (uint32_t)get_le(p + 20, 4);
	if (arch != MIG_ARCH_X86_64)
		return fail(-EPROTO, err, errlen,
			    "the peer runs on architecture %" PRIu32 "; this kiln runs x86_64 (%u)",
			    arch, MIG_ARCH_X86_64);
	if (role != MIG_ROLE_SOURCE && role != MIG_ROLE_DESTINATION)
		return fail(-EPROTO, err, errlen, "HELLO: role %" PRIu32 " is unknown", role);
	if (role != (uint32_t)expect)
		return fail(-EPROTO, err, errlen, "the peer is a migration %s too",
			    role == MIG_ROLE_SOURCE ? "source" : "destination");
	if (reserved != 0)
		return fail(-EPROTO, err, errlen, "HELLO: reserved field is 0x%" PRIx32 ", not 0",
			    reserved);
	return 0;
}

/* --- CONFIG --- */

size_t mig_config_encode(uint8_t *out, uint64_t mem_size, uint64_t page_size, const char *json,
			 size_t json_len)
{
	put_le(out, mem_size, 8);
	put_le(out + 8, page_size, 8);
	if (json_len)
		memcpy(out + 16, json, json_len);
	return 16 + json_len;
}

int mig_config_decode(const uint8_t *p, size_t len, uint64_t *mem_size, uint64_t *page_size,
		      const char **json, size_t *json_len, char *err, size_t errlen)
{
	uint64_t mem, page;

	if (len < 16)
		return fail(-EPROTO, err, errlen,
			    "CONFIG: payload is %zu bytes, shorter than its two sizes", len);
	mem = get_le(p, 8);
	page = get_le(p + 8, 8);
	if (!page_size_ok(page))
		return fail(-EPROTO, err, errlen, "CONFIG: page size %" PRIu64 " is not 4096 or 2 MiB",
			    page);
	if (mem == 0 || mem % page)
		return fail(-EPROTO, err, errlen,
			    "CONFIG: memory size 0x%" PRIx64 " is not a non-zero multiple of the page size",
			    mem);
	if (len == 16)
		return fail(-EPROTO, err, errlen, "CONFIG: the configuration is empty");
	*mem_size = mem;
	*page_size = page;
	*json = (const char *)p + 16;
	*json_len = len - 16;
	return 0;
}

/* --- PAGES --- */

size_t mig_pages_encode_offset(uint8_t *out, uint64_t off)
{
	put_le(out, off, 8);
	return 8;
}

int mig_pages_decode(const uint8_t *p, size_t len, uint64_t page_size, uint64_t mem_size,
		     uint64_t *off, const uint8_t **data, size_t *bytes, char *err, size_t errlen)
{
	uint64_t o;
	int ret;

	if (len < 8)
		return fail(-EPROTO, err, errlen,
			    "PAGES: payload is %zu bytes, shorter than its offset", len);
	if (len == 8)
		return fail(-EPROTO, err, errlen, "PAGES: no data after the offset");
	o = get_le(p, 8);
	ret = check_range("PAGES", -1, o, len - 8, page_size, mem_size, pages_cap(page_size), err,
			  errlen);
	if (ret)
		return ret;
	*off = o;
	*data = p + 8;
	*bytes = len - 8;
	return 0;
}

/* --- REQUEST and POISONED --- */

size_t mig_range_encode(uint8_t out[MIG_RANGE_LEN], uint64_t off, uint64_t len)
{
	put_le(out, off, 8);
	put_le(out + 8, len, 8);
	return MIG_RANGE_LEN;
}

/* A POISONED range answers a REQUEST and never exceeds it: one cap serves both. */
int mig_range_decode(const uint8_t *p, size_t len, uint64_t page_size, uint64_t mem_size,
		     uint64_t *off, uint64_t *rlen, char *err, size_t errlen)
{
	uint64_t o, l;
	int ret;

	if (len != MIG_RANGE_LEN)
		return fail(-EPROTO, err, errlen, "REQUEST/POISONED: payload is %zu bytes, not %u",
			    len, MIG_RANGE_LEN);
	o = get_le(p, 8);
	l = get_le(p + 8, 8);
	ret = check_range("REQUEST/POISONED", -1, o, l, page_size, mem_size, pages_cap(page_size),
			  err, errlen);
	if (ret)
		return ret;
	*off = o;
	*rlen = l;
	return 0;
}

/* --- DISCARD --- */

size_t mig_discard_encode(uint8_t *out, const uint64_t (*ranges)[2], uint32_t count)
{
	put_le(out, count, 4);
	put_le(out + 4, 0, 4);
	for (uint32_t i = 0; i < count; i++)
		mig_range_encode(out + DISCARD_HEADER + (size_t)i * MIG_RANGE_LEN, ranges[i][0],
				 ranges[i][1]);
	return DISCARD_HEADER + (size_t)count * MIG_RANGE_LEN;
}

int mig_discard_decode(const uint8_t *p, size_t len, uint64_t page_size, uint64_t mem_size,
		       uint32_t *count, char *err, size_t errlen)
{
	uint32_t n, reserved;
	int ret;

	if (len < DISCARD_HEADER)
		return fail(-EPROTO, err, errlen,
			    "DISCARD: payload is %zu bytes, shorter than its header", len);
	n = (uint32_t)get_le(p, 4);
	reserved = (uint32_t)get_le(p + 4, 4);
	if (n == 0)
		return fail(-EPROTO, err, errlen, "DISCARD: count is 0");
	if (n > MIG_MAX_DISCARD)
		return fail(-EPROTO, err, errlen, "DISCARD: count %" PRIu32 " exceeds %u", n,
			    MIG_MAX_DISCARD);
	if (reserved != 0)
		return fail(-EPROTO, err, errlen, "DISCARD: reserved field is 0x%" PRIx32 ", not 0",
			    reserved);
	if (len != DISCARD_HEADER + (size_t)n * MIG_RANGE_LEN)
		return fail(-EPROTO, err, errlen,
			    "DISCARD: payload is %zu bytes; %" PRIu32 " ranges take %zu", len, n,
			    DISCARD_HEADER + (size_t)n * MIG_RANGE_LEN);
	for (uint32_t i = 0; i < n; i++) {
		uint64_t off, rlen;

		mig_discard_range(p, i, &off, &rlen);
		ret = check_range("DISCARD", i, off, rlen, page_size, mem_size, 0, err, errlen);
		if (ret)
			return ret;
	}
	*count = n;
	return 0;
}

/* p is the DISCARD payload, as given to mig_discard_decode. */
void mig_discard_range(const uint8_t *p, uint32_t i, uint64_t *off, uint64_t *len)
{
	const uint8_t *r = p + DISCARD_HEADER + (size_t)i * MIG_RANGE_LEN;

	*off = get_le(r, 8);
	*len = get_le(r + 8, 8);
}

/* --- ERROR --- */

void mig_error_text(const uint8_t *p, size_t len, char *out, size_t outlen)
{
	size_t n = len < MIG_MAX_ERROR ? len : MIG_MAX_ERROR;

	if (outlen == 0)
		return;
	if (n > outlen - 1)
		n = outlen - 1;
	for (size_t i = 0; i < n; i++)
		out[i] = p[i] >= 0x20 && p[i] < 0x7f ? (char)p[i] : '?';
	out[n] = '\0';
}
