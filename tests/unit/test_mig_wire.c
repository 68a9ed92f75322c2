/* migration/mig_wire.c: every frame type round-trips; the parser waits on every prefix, refuses
 * a bad header before its payload arrives and any flipped bit after; each decoder refuses what
 * is malformed, out of memory or overflowing, with one line naming the frame and the field. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "le.h"
#include "mig_wire.h"

#define PAGE 4096ull
#define HUGE (2ull << 20)
#define MIB (1ull << 20)
#define MEM (256 * MIB)

/* A frame of type with len payload bytes (i * 7 + 1 each) sealed into buf. */
static size_t make_frame(uint8_t *buf, uint32_t type, size_t len)
{
	for (size_t i = 0; i < len; i++)
		mig_frame_payload(buf)[i] = (uint8_t)(i * 7 + 1);
	return mig_frame_seal(buf, type, len);
}

/* Parses buf[0, n) expecting exactly one whole frame of n bytes. */
static struct mig_frame parse_whole(const uint8_t *buf, size_t n)
{
	struct mig_frame f = { 0 };
	char err[256] = "";
	size_t need = 0;

	assert_int_equal(mig_frame_parse(buf, n, &f, &need, err, sizeof(err)), (long)n);
	assert_int_equal(need, n);
	assert_string_equal(err, "");
	assert_ptr_equal(f.payload, buf + MIG_FRAME_HEADER);
	return f;
}

/* Parses buf[0, n), expecting -EBADMSG and a message containing want. */
static void parse_refused(const uint8_t *buf, size_t n, const char *want)
{
	struct mig_frame f;
	char err[256] = "";

	assert_int_equal(mig_frame_parse(buf, n, &f, NULL, err, sizeof(err)), -EBADMSG);
	assert_non_null(strstr(err, want));
	assert_null(strchr(err, '\n'));
}

static void mig_type_name_each_type_named(void **unused)
{
	assert_string_equal(mig_type_name(MIG_HELLO), "HELLO");
	assert_string_equal(mig_type_name(MIG_PAGES), "PAGES");
	assert_string_equal(mig_type_name(MIG_COMPLETE), "COMPLETE");
	assert_string_equal(mig_type_name(MIG_RESUME), "RESUME");
	assert_string_equal(mig_type_name(MIG_PUSH), "PUSH");
	for (uint32_t t = 1; t <= MIG_TYPE_MAX; t++)
		assert_string_not_equal(mig_type_name(t), "?");
	assert_string_equal(mig_type_name(0), "?");
	assert_string_equal(mig_type_name(MIG_TYPE_MAX + 1), "?");
	assert_string_equal(mig_type_name(UINT32_MAX), "?");
}

/* The header's bytes, little-endian, and the trailer over header and payload. */
static void mig_frame_seal_layout_little_endian(void **unused)
{
	uint8_t buf[64];
	size_t n = mig_frame_put(buf, MIG_REQUEST, "0123456789abcdef", 16);
	const uint8_t want[16] = { 8, 0, 0, 0, 0, 0, 0, 0, 16, 0, 0, 0, 0, 0, 0, 0 };

	assert_int_equal(n, 40);
	assert_int_equal(mig_frame_size(16), 40);
	assert_memory_equal(buf, want, 16);
	assert_memory_equal(buf + 16, "0123456789abcdef", 16);
	assert_true(get_le(buf + 32, 8) == XXH3_64bits(buf, 32));
}

static void mig_frame_put_hello_round_trip(void **unused)
{
	uint8_t buf[64];
	struct mig_frame f;
	char err[256] = "";
	size_t n;

	n = mig_frame_seal(buf, MIG_HELLO, mig_hello_encode(mig_frame_payload(buf),
							     MIG_ROLE_SOURCE));
	f = parse_whole(buf, n);
	assert_int_equal(f.type, MIG_HELLO);
	assert_int_equal(f.len, MIG_HELLO_LEN);
	assert_memory_equal(f.payload, MIG_MAGIC, 8);
	assert_int_equal(mig_hello_check(f.payload, f.len, MIG_ROLE_SOURCE, err, sizeof(err)), 0);
	mig_hello_encode(mig_frame_payload(buf), MIG_ROLE_DESTINATION);
	assert_int_equal(mig_hello_check(mig_frame_payload(buf), MIG_HELLO_LEN,
					 MIG_ROLE_DESTINATION, err, sizeof(err)), 0);
}

static void mig_frame_put_error_round_trip(void **unused)
{
	const char *msg = "the peer speaks version 2 of kiln's migration protocol";
	uint8_t buf[128];
	struct mig_frame f;
	char text[128];

	f = parse_whole(buf, mig_frame_put(buf, MIG_ERROR, msg, strlen(msg)));
	assert_int_equal(f.type, MIG_ERROR);
	mig_error_text(f.payload, f.len, text, sizeof(text));
	assert_string_equal(text, msg);
}

static void mig_frame_put_config_round_trip(void **unused)
{
	const char *json = "{\"machine-config\":{\"vcpu_count\":2}}";
	uint64_t mem, page;
	const char *j;
	uint8_t buf[128];
	struct mig_frame f;
	char err[256] = "";
	size_t jlen, n;

	n = mig_config_encode(mig_frame_payload(buf), MEM, HUGE, json, strlen(json));
	assert_int_equal(n, 16 + strlen(json));
	f = parse_whole(buf, mig_frame_seal(buf, MIG_CONFIG, n));
	assert_int_equal(f.type, MIG_CONFIG);
	assert_int_equal(mig_config_decode(f.payload, f.len, &mem, &page, &j, &jlen, err,
					   sizeof(err)), 0);
	assert_true(mem == MEM);
	assert_true(page == HUGE);
	assert_int_equal(jlen, strlen(json));
	assert_memory_equal(j, json, jlen);
}

static void mig_frame_put_pages_round_trip(void **unused)
{
	uint8_t *buf = malloc(mig_frame_size(8 + MIG_MAX_PAGES_BYTES));
	const uint8_t *data;
	uint64_t off;
	struct mig_frame f;
	char err[256] = "";
	size_t bytes, n;

	assert_non_null(buf);
	/* One page, and the most one frame carries. */
	for (unsigned k = 0; k < 2; k++) {
		size_t len = k ? MIG_MAX_PAGES_BYTES : PAGE;

		n = mig_pages_encode_offset(mig_frame_payload(buf), MEM - len);
		assert_int_equal(n, 8);
		for (size_t i = 0; i < len; i++)
			mig_frame_payload(buf)[8 + i] = (uint8_t)(i ^ (i >> 12));
		f = parse_whole(buf, mig_frame_seal(buf, MIG_PAGES, n + len));
		assert_int_equal(f.type, MIG_PAGES);
		assert_int_equal(mig_pages_decode(f.payload, f.len, PAGE, MEM, &off, &data, &bytes,
						  err, sizeof(err)), 0);
		assert_true(off == MEM - len);
		assert_int_equal(bytes, len);
		assert_ptr_equal(data, f.payload + 8);
		for (size_t i = 0; i < len; i++)
			assert_int_equal(data[i], (uint8_t)(i ^ (i >> 12)));
	}
	free(buf);
}

static void mig_frame_put_discard_round_trip(void **unused)
{
	const uint64_t ranges[3][2] = { { 0, PAGE }, { 16 * PAGE, 64 * MIB }, { MEM - PAGE, PAGE } };
	uint8_t buf[128];
	struct mig_frame f;
	uint32_t count = 0;
	char err[256] = "";
	size_t n;

	n = mig_discard_encode(mig_frame_payload(buf), ranges, 3);
	assert_int_equal(n, 8 + 3 * 16);
	f = parse_whole(buf, mig_frame_seal(buf, MIG_DISCARD, n));
	assert_int_equal(f.type, MIG_DISCARD);
	assert_int_equal(mig_discard_decode(f.payload, f.len, PAGE, MEM, &count, err, sizeof(err)),
			 0);
	assert_int_equal(count, 3);
	for (uint32_t i = 0; i < count; i++) {
		uint64_t off, len;

		mig_discard_range(f.payload, i, &off, &len);
		assert_true(off == ranges[i][0]);
		assert_true(len == ranges[i][1]);
	}
}

static void mig_frame_put_request_poisoned_round_trip(void **unused)
{
	const uint32_t types[] = { MIG_REQUEST, MIG_POISONED };
	uint8_t buf[64];
	uint64_t off, len;
	struct mig_frame f;
	char err[256] = "";

	for (unsigned i = 0; i < 2; i++) {
		assert_int_equal(mig_range_encode(mig_frame_payload(buf), 3 * PAGE, 2 * PAGE),
				 MIG_RANGE_LEN);
		f = parse_whole(buf, mig_frame_seal(buf, types[i], MIG_RANGE_LEN));
		assert_int_equal(f.type, types[i]);
		assert_int_equal(mig_range_decode(f.payload, f.len, PAGE, MEM, &off, &len, err,
						  sizeof(err)), 0);
		assert_true(off == 3 * PAGE);
		assert_true(len == 2 * PAGE);
	}
}

/* STATE carries an opaque image; RUNNING and COMPLETE are empty. */
static void mig_frame_put_state_running_complete_round_trip(void **unused)
{
	uint8_t buf[600];
	struct mig_frame f;

	f = parse_whole(buf, make_frame(buf, MIG_STATE, 500));
	assert_int_equal(f.type, MIG_STATE);
	assert_int_equal(f.len, 500);
	assert_int_equal(f.payload[499], (uint8_t)(499 * 7 + 1));
	f = parse_whole(buf, mig_frame_put(buf, MIG_RUNNING, NULL, 0));
	assert_int_equal(f.type, MIG_RUNNING);
	assert_int_equal(f.len, 0);
	f = parse_whole(buf, mig_frame_put(buf, MIG_COMPLETE, NULL, 0));
	assert_int_equal(f.type, MIG_COMPLETE);
	assert_int_equal(f.len, 0);
}

/* Every prefix: 0; *need left alone until the header is in, then the whole size. */
static void mig_frame_parse_each_prefix_returns_0(void **unused)
{
	uint8_t buf[256];
	size_t n = make_frame(buf, MIG_STATE, 100);
	struct mig_frame f;
	char err[256];

	for (size_t len = 0; len < n; len++) {
		size_t need = 12345;

		err[0] = '\0';
		assert_int_equal(mig_frame_parse(buf, len, &f, &need, err, sizeof(err)), 0);
		assert_int_equal(need, len < MIG_FRAME_HEADER ? 12345 : n);
		assert_string_equal(err, "");
		assert_int_equal(mig_frame_parse(buf, len, &f, NULL, err, sizeof(err)), 0);
	}
	parse_whole(buf, n);
}

static void mig_frame_parse_two_frames_consumed_in_turn(void **unused)
{
	uint8_t buf[256];
	size_t a = make_frame(buf, MIG_STATE, 33);
	size_t b = mig_frame_put(buf + a, MIG_RUNNING, NULL, 0);
	struct mig_frame f;
	char err[256] = "";
	size_t need = 0;

	/* Extra bytes after a frame are the next one's: left where they are. */
	assert_int_equal(mig_frame_parse(buf, a + b, &f, &need, err, sizeof(err)), (long)a);
	assert_int_equal(need, a);
	assert_int_equal(f.type, MIG_STATE);
	assert_int_equal(f.len, 33);
	assert_int_equal(mig_frame_parse(buf, a + 5, &f, &need, err, sizeof(err)), (long)a);
	assert_int_equal(mig_frame_parse(buf + a, b, &f, &need, err, sizeof(err)), (long)b);
	assert_int_equal(need, b);
	assert_int_equal(f.type, MIG_RUNNING);
	assert_int_equal(f.len, 0);
}

static void mig_frame_parse_unknown_type_refused(void **unused)
{
	const uint32_t bad[] = { 0, MIG_TYPE_MAX + 1, 77, UINT32_MAX };
	uint8_t buf[64];

	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		size_t n = make_frame(buf, bad[i], 8);

		/* From the header alone, and whole. */
		parse_refused(buf, MIG_FRAME_HEADER, "is unknown");
		parse_refused(buf, n, "is unknown");
	}
	parse_refused(buf, MIG_FRAME_HEADER, "frame type 4294967295 is unknown");
	make_frame(buf, 77, 0);
	parse_refused(buf, MIG_FRAME_HEADER, "frame type 77 is unknown");
}

static void mig_frame_parse_reserved_set_refused(void **unused)
{
	uint8_t buf[64];
	size_t n = make_frame(buf, MIG_PAGES, 8);

	put_le(buf + 4, 5, 4);
	put_le(buf + n - 8, XXH3_64bits(buf, n - 8), 8); /* a valid checksum does not help */
	parse_refused(buf, MIG_FRAME_HEADER, "frame PAGES: reserved field is 0x5, not 0");
	parse_refused(buf, n, "reserved");
}

/* A length past the limit is refused from the header, before any payload arrives. */
static void mig_frame_parse_oversize_refused_from_header(void **unused)
{
	const uint64_t bad[] = { MIG_MAX_PAYLOAD + 1ull, 70000000, UINT64_MAX, 1ull << 63 };
	uint8_t buf[MIG_FRAME_HEADER];
	struct mig_frame f;
	char err[256];
	size_t need = 0;

	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		put_le(buf, MIG_STATE, 4);
		put_le(buf + 4, 0, 4);
		put_le(buf + 8, bad[i], 8);
		parse_refused(buf, MIG_FRAME_HEADER, "exceeds the protocol's limit");
	}
	put_le(buf + 8, 70000000, 8);
	parse_refused(buf, MIG_FRAME_HEADER,
		      "frame STATE: a 70000000-byte payload exceeds the protocol's limit");
	/* At the limit: waits for the rest. */
	put_le(buf + 8, MIG_MAX_PAYLOAD, 8);
	assert_int_equal(mig_frame_parse(buf, MIG_FRAME_HEADER, &f, &need, err, sizeof(err)), 0);
	assert_int_equal(need, mig_frame_size(MIG_MAX_PAYLOAD));
}

/* Any bit flipped in the payload or the trailer: a checksum mismatch. */
static void mig_frame_parse_flipped_bit_refused(void **unused)
{
	uint8_t buf[128];
	size_t n = make_frame(buf, MIG_PAGES, 24);

	for (size_t byte = MIG_FRAME_HEADER; byte < n; byte++) {
		for (unsigned bit = 0; bit < 8; bit++) {
			buf[byte] ^= (uint8_t)(1u << bit);
			parse_refused(buf, n, "frame PAGES: checksum mismatch");
			buf[byte] ^= (uint8_t)(1u << bit);
		}
	}
	parse_whole(buf, n);
}

static void mig_hello_check_wrong_magic_refused(void **unused)
{
	uint8_t p[MIG_HELLO_LEN + 8];
	char err[256];

	mig_hello_encode(p, MIG_ROLE_SOURCE);
	p[7] = 'S';
	assert_int_equal(mig_hello_check(p, MIG_HELLO_LEN, MIG_ROLE_SOURCE, err, sizeof(err)),
			 -EPROTO);
	assert_string_equal(err, "the peer is not a kiln migration endpoint");
	mig_hello_encode(p, MIG_ROLE_SOURCE);
	for (size_t len = 0; len < 8; len++) {
		assert_int_equal(mig_hello_check(p, len, MIG_ROLE_SOURCE, err, sizeof(err)), -EPROTO);
		assert_string_equal(err, "the peer is not a kiln migration endpoint");
	}
	for (size_t len = 8; len <= sizeof(p); len++) {
		char want[64];

		if (len == MIG_HELLO_LEN)
			continue;
		snprintf(want, sizeof(want), "HELLO: payload is %zu bytes, not 24", len);
		assert_int_equal(mig_hello_check(p, len, MIG_ROLE_SOURCE, err, sizeof(err)), -EPROTO);
		assert_string_equal(err, want);
	}
}

/* Another version is named even when its HELLO is laid out differently. */
static void mig_hello_check_version_mismatch_names_both(void **unused)
{
	uint8_t p[MIG_HELLO_LEN + 8] = { 0 };
	char err[256];

	mig_hello_encode(p, MIG_ROLE_DESTINATION);
	put_le(p + 8, 2, 4);
	assert_int_equal(mig_hello_check(p, MIG_HELLO_LEN, MIG_ROLE_DESTINATION, err, sizeof(err)),
			 -EPROTO);
	assert_string_equal(err, "the peer speaks version 2 of kiln's migration protocol; "
				 "this kiln speaks 1");
	assert_int_equal(mig_hello_check(p, sizeof(p), MIG_ROLE_DESTINATION, err, sizeof(err)),
			 -EPROTO);
	assert_non_null(strstr(err, "version 2"));
	assert_int_equal(mig_hello_check(p, 12, MIG_ROLE_DESTINATION, err, sizeof(err)), -EPROTO);
	assert_non_null(strstr(err, "version 2"));
}

static void mig_hello_check_same_role_refused(void **unused)
{
	uint8_t p[MIG_HELLO_LEN];
	char err[256];

	mig_hello_encode(p, MIG_ROLE_SOURCE);
	assert_int_equal(mig_hello_check(p, sizeof(p), MIG_ROLE_DESTINATION, err, sizeof(err)),
			 -EPROTO);
	assert_string_equal(err, "the peer is a migration source too");
	mig_hello_encode(p, MIG_ROLE_DESTINATION);
	assert_int_equal(mig_hello_check(p, sizeof(p), MIG_ROLE_SOURCE, err, sizeof(err)),
			 -EPROTO);
	assert_string_equal(err, "the peer is a migration destination too");
	put_le(p + 16, 3, 4);
	assert_int_equal(mig_hello_check(p, sizeof(p), MIG_ROLE_SOURCE, err, sizeof(err)),
			 -EPROTO);
	assert_string_equal(err, "HELLO: role 3 is unknown");
}

static void mig_hello_check_arch_reserved_refused(void **unused)
{
	uint8_t p[MIG_HELLO_LEN];
	char err[256];

	mig_hello_encode(p, MIG_ROLE_SOURCE);
	put_le(p + 12, 2, 4);
	assert_int_equal(mig_hello_check(p, sizeof(p), MIG_ROLE_SOURCE, err, sizeof(err)),
			 -EPROTO);
	assert_non_null(strstr(err, "architecture 2"));
	mig_hello_encode(p, MIG_ROLE_SOURCE);
	put_le(p + 20, 1, 4);
	assert_int_equal(mig_hello_check(p, sizeof(p), MIG_ROLE_SOURCE, err, sizeof(err)),
			 -EPROTO);
	assert_string_equal(err, "HELLO: reserved field is 0x1, not 0");
}

/* Decodes a CONFIG of mem and page with a json of jlen bytes; returns the result, err set. */
static int config(uint64_t mem, uint64_t page, size_t jlen, char *err)
{
	uint8_t p[64];
	const char *j;
	uint64_t m, pg;
	size_t n = mig_config_encode(p, mem, page, "{\"a\":1}", jlen);

	err[0] = '\0';
	return mig_config_decode(p, n, &m, &pg, &j, &n, err, 256);
}

static void mig_config_decode_bad_sizes_refused(void **unused)
{
	uint8_t p[16] = { 0 };
	const char *j;
	uint64_t m, pg;
	char err[256];
	size_t n;

	assert_int_equal(config(MEM, PAGE, 1, err), 0);
	assert_int_equal(config(PAGE, PAGE, 7, err), 0);
	assert_int_equal(config(MEM, HUGE, 7, err), 0);
	assert_int_equal(config(MEM, PAGE, 0, err), -EPROTO);
	assert_string_equal(err, "CONFIG: the configuration is empty");
	assert_int_equal(config(MEM, 8192, 7, err), -EPROTO);
	assert_string_equal(err, "CONFIG: page size 8192 is not 4096 or 2 MiB");
	assert_int_equal(config(MEM, 0, 7, err), -EPROTO);
	assert_non_null(strstr(err, "CONFIG: page size 0"));
	assert_int_equal(config(0, PAGE, 7, err), -EPROTO);
	assert_non_null(strstr(err, "CONFIG: memory size 0x0"));
	assert_int_equal(config(MEM + PAGE, HUGE, 7, err), -EPROTO);
	assert_non_null(strstr(err, "CONFIG: memory size 0x10001000"));
	assert_int_equal(config(MEM + 1, PAGE, 7, err), -EPROTO);
	for (size_t len = 0; len < 16; len++) {
		assert_int_equal(mig_config_decode(p, len, &m, &pg, &j, &n, err, sizeof(err)),
				 -EPROTO);
		assert_non_null(strstr(err, "CONFIG: payload is"));
	}
}

/* Decodes a PAGES of off with bytes bytes of data in memory of mem. */
static int pages(uint64_t off, size_t bytes, uint64_t page, uint64_t mem, char *err)
{
	static uint8_t p[8 + MIG_MAX_PAGES_BYTES + HUGE];
	const uint8_t *data;
	uint64_t o;
	size_t b;

	mig_pages_encode_offset(p, off);
	err[0] = '\0';
	return mig_pages_decode(p, 8 + bytes, page, mem, &o, &data, &b, err, 256);
}

static void mig_pages_decode_bad_range_refused(void **unused)
{
	char err[256];

	assert_int_equal(pages(0, PAGE, PAGE, MEM, err), 0);
	assert_int_equal(pages(MEM - PAGE, PAGE, PAGE, MEM, err), 0);
	assert_int_equal(pages(MEM - HUGE, HUGE, HUGE, MEM, err), 0);
	assert_int_equal(pages(0, 2 * HUGE, HUGE, MEM, err), 0);
	assert_int_equal(pages(0x1001, PAGE, PAGE, MEM, err), -EPROTO);
	assert_string_equal(err, "PAGES: offset 0x1001 is not page-aligned");
	assert_int_equal(pages(PAGE, HUGE, HUGE, MEM, err), -EPROTO);
	assert_string_equal(err, "PAGES: offset 0x1000 is not page-aligned");
	assert_int_equal(pages(0, PAGE + 1, PAGE, MEM, err), -EPROTO);
	assert_non_null(strstr(err, "PAGES: length 0x1001 is not a whole number of pages"));
	assert_int_equal(pages(0, PAGE, HUGE, MEM, err), -EPROTO);
	assert_non_null(strstr(err, "not a whole number of pages"));
	assert_int_equal(pages(0, 0, PAGE, MEM, err), -EPROTO);
	assert_string_equal(err, "PAGES: no data after the offset");
	assert_int_equal(pages(0, MIG_MAX_PAGES_BYTES + PAGE, PAGE, MEM, err), -EPROTO);
	assert_non_null(strstr(err, "PAGES: length 0x401000 exceeds the limit of 0x400000 bytes"));
	assert_int_equal(pages(0, MIG_MAX_PAGES_BYTES + HUGE, HUGE, MEM, err), -EPROTO);
	assert_non_null(strstr(err, "exceeds the limit"));
	assert_int_equal(pages(MEM, PAGE, PAGE, MEM, err), -EPROTO);
	assert_non_null(strstr(err, "PAGES: 0x1000 bytes at offset 0x10000000 run past the end"));
	assert_int_equal(pages(MEM - PAGE, 2 * PAGE, PAGE, MEM, err), -EPROTO);
	assert_non_null(strstr(err, "run past the end of memory"));
	/* off + bytes wraps to a small number: still past the end. */
	assert_int_equal(pages(UINT64_MAX - PAGE + 1, PAGE, PAGE, MEM, err), -EPROTO);
	assert_non_null(strstr(err, "run past the end of memory"));
	assert_int_equal(pages(UINT64_MAX - 2 * PAGE + 1, 2 * PAGE, PAGE, UINT64_MAX - PAGE + 1,
			       err), -EPROTO);
	assert_non_null(strstr(err, "run past the end of memory"));
	/* A page size the caller got wrong is refused, never divided by. */
	assert_int_equal(pages(0, PAGE, 0, MEM, err), -EPROTO);
	assert_non_null(strstr(err, "PAGES: page size 0"));
}

static void mig_pages_decode_short_payload_refused(void **unused)
{
	uint8_t p[8] = { 0 };
	const uint8_t *data;
	uint64_t off;
	char err[256];
	size_t b;

	for (size_t len = 0; len < 8; len++) {
		assert_int_equal(mig_pages_decode(p, len, PAGE, MEM, &off, &data, &b, err,
						  sizeof(err)), -EPROTO);
		assert_non_null(strstr(err, "PAGES: payload is"));
	}
}

/* Decodes a REQUEST/POISONED range. */
static int range(uint64_t off, uint64_t len, uint64_t page, uint64_t mem, char *err)
{
	uint8_t p[MIG_RANGE_LEN];
	uint64_t o, l;

	mig_range_encode(p, off, len);
	err[0] = '\0';
	return mig_range_decode(p, sizeof(p), page, mem, &o, &l, err, 256);
}

static void mig_range_decode_bad_range_refused(void **unused)
{
	uint8_t p[MIG_RANGE_LEN + 1] = { 0 };
	uint64_t o, l;
	char err[256];

	assert_int_equal(range(MEM - PAGE, PAGE, PAGE, MEM, err), 0);
	assert_int_equal(range(0, MIG_MAX_PAGES_BYTES, PAGE, MEM, err), 0);
	assert_int_equal(range(0, 2 * HUGE, HUGE, MEM, err), 0);
	assert_int_equal(range(0x1001, PAGE, PAGE, MEM, err), -EPROTO);
	assert_string_equal(err, "REQUEST/POISONED: offset 0x1001 is not page-aligned");
	assert_int_equal(range(0, 0, PAGE, MEM, err), -EPROTO);
	assert_string_equal(err, "REQUEST/POISONED: length is 0");
	assert_int_equal(range(0, 0x800, PAGE, MEM, err), -EPROTO);
	assert_non_null(strstr(err, "length 0x800 is not a whole number of pages"));
	assert_int_equal(range(0, MIG_MAX_PAGES_BYTES + PAGE, PAGE, MEM, err), -EPROTO);
	assert_non_null(strstr(err, "exceeds the limit of 0x400000 bytes"));
	assert_int_equal(range(0, 3 * HUGE, HUGE, MEM, err), -EPROTO);
	assert_non_null(strstr(err, "exceeds the limit"));
	assert_int_equal(range(MEM, PAGE, PAGE, MEM, err), -EPROTO);
	assert_non_null(strstr(err, "run past the end of memory (0x10000000 bytes)"));
	assert_int_equal(range(UINT64_MAX - PAGE + 1, PAGE, PAGE, MEM, err), -EPROTO);
	assert_non_null(strstr(err, "run past the end"));
	assert_int_equal(range(UINT64_MAX - PAGE + 1, 2 * PAGE, PAGE, UINT64_MAX - PAGE + 1, err),
			 -EPROTO);
	assert_non_null(strstr(err, "run past the end"));
	for (size_t len = 0; len <= sizeof(p); len++) {
		if (len == MIG_RANGE_LEN)
			continue;
		assert_int_equal(mig_range_decode(p, len, PAGE, MEM, &o, &l, err, sizeof(err)),
				 -EPROTO);
		assert_non_null(strstr(err, "REQUEST/POISONED: payload is"));
	}
}

/* A DISCARD of count ranges, each one page at page i; the header's count written as given. */
static uint8_t *discard(uint32_t count, size_t *len)
{
	uint64_t (*r)[2] = calloc(count ? count : 1, sizeof(*r));
	uint8_t *p = malloc(8 + (size_t)(count ? count : 1) * MIG_RANGE_LEN);

	assert_non_null(r);
	assert_non_null(p);
	for (uint32_t i = 0; i < count; i++) {
		r[i][0] = (uint64_t)i * PAGE;
		r[i][1] = PAGE;
	}
	*len = mig_discard_encode(p, (const uint64_t (*)[2])r, count);
	free(r);
	return p;
}

static void mig_discard_decode_bad_header_refused(void **unused)
{
	uint32_t count = 0;
	char err[256];
	size_t len;
	uint8_t *p = discard(2, &len);

	for (size_t n = 0; n < 8; n++) {
		assert_int_equal(mig_discard_decode(p, n, PAGE, MEM, &count, err, sizeof(err)),
				 -EPROTO);
		assert_non_null(strstr(err, "DISCARD: payload is"));
	}
	assert_int_equal(mig_discard_decode(p, len - 1, PAGE, MEM, &count, err, sizeof(err)),
			 -EPROTO);
	assert_string_equal(err, "DISCARD: payload is 39 bytes; 2 ranges take 40");
	assert_int_equal(mig_discard_decode(p, len - 16, PAGE, MEM, &count, err, sizeof(err)),
			 -EPROTO);
	put_le(p, 0, 4);
	assert_int_equal(mig_discard_decode(p, 8, PAGE, MEM, &count, err, sizeof(err)), -EPROTO);
	assert_string_equal(err, "DISCARD: count is 0");
	put_le(p, MIG_MAX_DISCARD + 1, 4);
	assert_int_equal(mig_discard_decode(p, len, PAGE, MEM, &count, err, sizeof(err)), -EPROTO);
	assert_string_equal(err, "DISCARD: count 65537 exceeds 65536");
	put_le(p, UINT32_MAX, 4);
	assert_int_equal(mig_discard_decode(p, len, PAGE, MEM, &count, err, sizeof(err)), -EPROTO);
	assert_non_null(strstr(err, "exceeds"));
	put_le(p, 2, 4);
	put_le(p + 4, 9, 4);
	assert_int_equal(mig_discard_decode(p, len, PAGE, MEM, &count, err, sizeof(err)), -EPROTO);
	assert_string_equal(err, "DISCARD: reserved field is 0x9, not 0");
	assert_int_equal(count, 0);
	free(p);
}

static void mig_discard_decode_bad_range_named(void **unused)
{
	uint32_t count = 0;
	char err[256];
	size_t len;
	uint8_t *p = discard(3, &len);

	assert_int_equal(mig_discard_decode(p, len, PAGE, MEM, &count, err, sizeof(err)), 0);
	put_le(p + 8 + 2 * 16, 0x1001, 8);
	assert_int_equal(mig_discard_decode(p, len, PAGE, MEM, &count, err, sizeof(err)), -EPROTO);
	assert_string_equal(err, "DISCARD: range 2: offset 0x1001 is not page-aligned");
	mig_range_encode(p + 8 + 16, UINT64_MAX - PAGE + 1, 2 * PAGE);
	assert_int_equal(mig_discard_decode(p, len, PAGE, MEM, &count, err, sizeof(err)), -EPROTO);
	assert_non_null(strstr(err, "DISCARD: range 1: 0x2000 bytes at offset"));
	mig_range_encode(p + 8, 0, 0);
	assert_int_equal(mig_discard_decode(p, len, PAGE, MEM, &count, err, sizeof(err)), -EPROTO);
	assert_string_equal(err, "DISCARD: range 0: length is 0");
	/* No size cap: all of memory in one range. */
	mig_range_encode(p + 8, 0, MEM);
	mig_range_encode(p + 8 + 16, 0, PAGE);
	mig_range_encode(p + 8 + 32, MEM - PAGE, PAGE);
	assert_int_equal(mig_discard_decode(p, len, PAGE, MEM, &count, err, sizeof(err)), 0);
	assert_int_equal(count, 3);
	free(p);
}

static void mig_discard_decode_most_ranges_accepted(void **unused)
{
	uint32_t count = 0;
	char err[256];
	size_t len;
	uint8_t *p = discard(MIG_MAX_DISCARD, &len);
	uint64_t off, rlen;

	assert_int_equal(len, 8 + (size_t)MIG_MAX_DISCARD * 16);
	assert_true(len <= MIG_MAX_PAYLOAD);
	assert_int_equal(mig_discard_decode(p, len, PAGE, MEM, &count, err, sizeof(err)), 0);
	assert_int_equal(count, MIG_MAX_DISCARD);
	mig_discard_range(p, MIG_MAX_DISCARD - 1, &off, &rlen);
	assert_true(off == (MIG_MAX_DISCARD - 1ull) * PAGE);
	assert_true(rlen == PAGE);
	free(p);
}

static void mig_error_text_unprintable_replaced(void **unused)
{
	const uint8_t msg[] = { 'b', 'a', 'd', '\n', 0x1b, '[', '2', 'J', 0, 0xc3, 0xa9, 0x7f, '!' };
	char out[32];

	memset(out, 'x', sizeof(out));
	mig_error_text(msg, sizeof(msg), out, sizeof(out));
	assert_string_equal(out, "bad?\?[2J?\?\?\?!"); /* \? : no trigraphs */
	mig_error_text(msg, sizeof(msg), out, 4);
	assert_string_equal(out, "bad");
	mig_error_text(msg, 0, out, sizeof(out));
	assert_string_equal(out, "");
	out[0] = 'x';
	mig_error_text(msg, sizeof(msg), out, 0);
	assert_int_equal(out[0], 'x');
}

static void mig_error_text_long_cut_at_limit(void **unused)
{
	size_t n = MIG_MAX_ERROR + 100;
	uint8_t *msg = malloc(n);
	char *out = malloc(n + 1);

	assert_non_null(msg);
	assert_non_null(out);
	memset(msg, 'a', n);
	mig_error_text(msg, n, out, n + 1);
	assert_int_equal(strlen(out), MIG_MAX_ERROR);
	free(msg);
	free(out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(mig_type_name_each_type_named),
		cmocka_unit_test(mig_frame_seal_layout_little_endian),
		cmocka_unit_test(mig_frame_put_hello_round_trip),
		cmocka_unit_test(mig_frame_put_error_round_trip),
		cmocka_unit_test(mig_frame_put_config_round_trip),
		cmocka_unit_test(mig_frame_put_pages_round_trip),
		cmocka_unit_test(mig_frame_put_discard_round_trip),
		cmocka_unit_test(mig_frame_put_request_poisoned_round_trip),
		cmocka_unit_test(mig_frame_put_state_running_complete_round_trip),
		cmocka_unit_test(mig_frame_parse_each_prefix_returns_0),
		cmocka_unit_test(mig_frame_parse_two_frames_consumed_in_turn),
		cmocka_unit_test(mig_frame_parse_unknown_type_refused),
		cmocka_unit_test(mig_frame_parse_reserved_set_refused),
		cmocka_unit_test(mig_frame_parse_oversize_refused_from_header),
		cmocka_unit_test(mig_frame_parse_flipped_bit_refused),
		cmocka_unit_test(mig_hello_check_wrong_magic_refused),
		cmocka_unit_test(mig_hello_check_version_mismatch_names_both),
		cmocka_unit_test(mig_hello_check_same_role_refused),
		cmocka_unit_test(mig_hello_check_arch_reserved_refused),
		cmocka_unit_test(mig_config_decode_bad_sizes_refused),
		cmocka_unit_test(mig_pages_decode_bad_range_refused),
		cmocka_unit_test(mig_pages_decode_short_payload_refused),
		cmocka_unit_test(mig_range_decode_bad_range_refused),
		cmocka_unit_test(mig_discard_decode_bad_header_refused),
		cmocka_unit_test(mig_discard_decode_bad_range_named),
		cmocka_unit_test(mig_discard_decode_most_ranges_accepted),
		cmocka_unit_test(mig_error_text_unprintable_replaced),
		cmocka_unit_test(mig_error_text_long_cut_at_limit),
	};

	return cmocka_run_group_tests_name("mig_wire.c", tests, NULL, NULL);
}
