/*
 * Fuzz target for the migration wire protocol (migration/mig_wire.c): the input is a stream of
 * frames, consumed one at a time with mig_frame_parse as a receiver would, each frame handed to
 * its decoder. The first byte is a set of flags: bit 0, the target writes each frame's checksum
 * itself before parsing it, so that the fuzzer reaches the decoders past a 64-bit hash; bit 1,
 * the next 8 bytes are the memory size (otherwise 256 MiB). The page size is 4096 until a
 * CONFIG decodes, whose sizes then hold for the frames after it, as they do in a migration.
 * Beyond not crashing, the target checks that a frame cut short by a byte is waited for, and
 * that every decoded payload encodes back to the same bytes.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "le.h"
#include "mig_wire.h"

#define FLAG_SEAL 1u
#define FLAG_MEM_SIZE 2u

static uint8_t again[8 + (size_t)MIG_MAX_DISCARD * MIG_RANGE_LEN];
static uint64_t ranges[MIG_MAX_DISCARD][2];

/* Writes the checksum of the frame at p, when its header and payload are all there. */
static void seal(uint8_t *p, size_t n)
{
	uint64_t plen;

	if (n < MIG_FRAME_HEADER)
		return;
	plen = get_le(p + 8, 8);
	if (plen <= MIG_MAX_PAYLOAD && mig_frame_size((size_t)plen) <= n)
		put_le(p + MIG_FRAME_HEADER + plen, XXH3_64bits(p, MIG_FRAME_HEADER + plen), 8);
}

static void decode(const struct mig_frame *f, uint64_t *page_size, uint64_t *mem_size)
{
	char err[256], text[MIG_MAX_ERROR + 1];
	const uint8_t *data;
	const char *json;
	uint64_t off, len, mem, page;
	uint32_t count;
	size_t bytes;

	switch (f->type) {
	case MIG_HELLO:
		(void)mig_hello_check(f->payload, f->len, MIG_ROLE_SOURCE, err, sizeof(err));
		(void)mig_hello_check(f->payload, f->len, MIG_ROLE_DESTINATION, err, sizeof(err));
		break;
	case MIG_ERROR:
		mig_error_text(f->payload, f->len, text, sizeof(text));
		for (size_t i = 0; text[i]; i++)
			if (text[i] < 0x20 || text[i] > 0x7e)
				abort();
		break;
	case MIG_CONFIG:
		if (mig_config_decode(f->payload, f->len, &mem, &page, &json, &bytes, err,
				      sizeof(err)) == 0) {
			if (mig_config_encode(again, mem, page, json, bytes) != f->len ||
			    memcmp(again, f->payload, f->len) != 0)
				abort();
			*mem_size = mem;
			*page_size = page;
		}
		break;
	case MIG_PAGES:
	case MIG_PUSH:
		if (mig_pages_decode(f->payload, f->len, *page_size, *mem_size, &off, &data, &bytes,
				     err, sizeof(err)) == 0) {
			if (bytes == 0 || off + bytes > *mem_size || off + bytes < off ||
			    data + bytes != f->payload + f->len)
				abort();
		}
		break;
	case MIG_DISCARD:
		if (mig_discard_decode(f->payload, f->len, *page_size, *mem_size, &count, err,
				       sizeof(err)) == 0) {
			for (uint32_t i = 0; i < count; i++)
				mig_discard_range(f->payload, i, &ranges[i][0], &ranges[i][1]);
			if (mig_discard_encode(again, (const uint64_t (*)[2])ranges, count) != f->len ||
			    memcmp(again, f->payload, f->len) != 0)
				abort();
		}
		break;
	case MIG_REQUEST:
	case MIG_POISONED:
		if (mig_range_decode(f->payload, f->len, *page_size, *mem_size, &off, &len, err,
				     sizeof(err)) == 0) {
			if (mig_range_encode(again, off, len) != f->len ||
			    memcmp(again, f->payload, f->len) != 0)
				abort();
		}
		break;
	default:
		break;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint64_t mem_size = 256ull << 20, page_size = 4096;
	size_t at, n, need;
	uint8_t flags, *buf;
	char err[256];

	if (size < 1)
		return 0;
	flags = data[0];
	at = 1;
	if (flags & FLAG_MEM_SIZE) {
		if (size < 9)
			return 0;
		mem_size = get_le(data + 1, 8);
		at = 9;
	}
	n = size - at;
	buf = malloc(n ? n : 1); /* a copy of its own: the target may write checksums */
	if (!buf)
		return 0;
	memcpy(buf, data + at, n);
	for (size_t off = 0; off < n;) {
		struct mig_frame f;
		long got;

		if (flags & FLAG_SEAL)
			seal(buf + off, n - off);
		need = 0;
		got = mig_frame_parse(buf + off, n - off, &f, &need, err, sizeof(err));
		if (got <= 0)
			break;
		/* The same frame a byte short: waited for, with the size it will take. */
		if ((size_t)got > n - off || need != (size_t)got ||
		    mig_frame_parse(buf + off, (size_t)got - 1, &f, &need, err, sizeof(err)) != 0)
			abort();
		decode(&f, &page_size, &mem_size);
		off += (size_t)got;
	}
	free(buf);
	return 0;
}
