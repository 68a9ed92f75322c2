/* migration/state.c: images round-trip; every truncation, bit flip, wrong version and wrong
 * architecture is refused with a reason; the file write replaces the old file only whole. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

#include "le.h"
#include "state.h"

/* An image with two sections: CONF "{}" and two VCPU sections with a few fields. */
static void build_image(struct state_buf *b)
{
	size_t m;

	state_buf_init(b);
	state_begin(b);
	m = state_section_begin(b, STATE_TAG_CONFIG, 1);
	state_put_bytes(b, "{}", 2);
	state_section_end(b, m);
	for (unsigned i = 0; i < 2; i++) {
		m = state_section_begin(b, STATE_TAG_VCPU, 3);
		state_put_u32(b, i);
		state_put_u8(b, 0xab);
		state_put_u16(b, 0xbeef);
		state_put_u64(b, 0x0123456789abcdefull);
		state_section_end(b, m);
	}
	assert_int_equal(state_finish(b), 0);
}

static void test_round_trip(void **unused)
{
	struct state_view v;
	struct state_buf b;
	char err[256] = "";

	build_image(&b);
	assert_int_equal(state_parse(b.data, b.len, &v, err, sizeof(err)), 0);
	assert_int_equal(v.nr, 3);
	assert_int_equal(v.arch, STATE_ARCH_X86_64);
	assert_int_equal(state_count(&v, STATE_TAG_VCPU), 2);
	assert_null(state_find(&v, STATE_TAG_POISON, 0));
	assert_null(state_find(&v, STATE_TAG_VCPU, 2));
	for (unsigned i = 0; i < 2; i++) {
		const struct state_section *s = state_find(&v, STATE_TAG_VCPU, i);
		struct state_cursor c;

		assert_non_null(s);
		assert_int_equal(s->version, 3);
		c = state_cursor_of(s);
		assert_int_equal(state_get_u32(&c), i);
		assert_int_equal(state_get_u8(&c), 0xab);
		assert_int_equal(state_get_u16(&c), 0xbeef);
		assert_true(state_get_u64(&c) == 0x0123456789abcdefull);
		assert_true(state_cursor_done(&c));
		assert_int_equal(state_get_u32(&c), 0); /* past the end: zero, and bad from now on */
		assert_true(c.bad);
		assert_false(state_cursor_done(&c));
	}
	state_buf_free(&b);
}

/* Every prefix of a valid image is refused, with a reason. */
static void test_truncated(void **unused)
{
	struct state_view v;
	struct state_buf b;
	char err[256];

	build_image(&b);
	for (size_t len = 0; len < b.len; len++) {
		uint8_t *copy = malloc(len ? len : 1);

		memcpy(copy, b.data, len);
		err[0] = '\0';
		assert_int_equal(state_parse(copy, len, &v, err, sizeof(err)), -EINVAL);
		assert_true(err[0] != '\0');
		free(copy);
	}
	state_buf_free(&b);
}

/* Every single-bit flip anywhere is refused. */
static void test_bit_flips(void **unused)
{
	struct state_view v;
	struct state_buf b;
	char err[256];

	build_image(&b);
	for (size_t i = 0; i < b.len * 8; i++) {
		b.data[i / 8] ^= (uint8_t)(1u << (i % 8));
		assert_int_equal(state_parse(b.data, b.len, &v, err, sizeof(err)), -EINVAL);
		b.data[i / 8] ^= (uint8_t)(1u << (i % 8));
	}
	assert_int_equal(state_parse(b.data, b.len, &v, err, sizeof(err)), 0);
	state_buf_free(&b);
}

/* Rewrites the checksum after an edit, so that the check below it is what refuses. */
static void reseal(struct state_buf *b)
{
	put_le(b->data + b->len - 8, XXH3_64bits(b->data, b->len - 8), 8);
}

static void test_wrong_arch_and_version(void **unused)
{
	struct state_view v;
	struct state_buf b;
	char err[256];

	build_image(&b);
	put_le(b.data + 8, 2, 4);
	reseal(&b);
	assert_int_equal(state_parse(b.data, b.len, &v, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "aarch64"));
	put_le(b.data + 8, STATE_ARCH_X86_64, 4);
	put_le(b.data + 12, 2, 4);
	reseal(&b);
	assert_int_equal(state_parse(b.data, b.len, &v, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "version 2"));
	state_buf_free(&b);
}

/* A section length that runs past the end is refused even with a valid checksum. */
static void test_section_overrun(void **unused)
{
	struct state_view v;
	struct state_buf b;
	char err[256];

	build_image(&b);
	put_le(b.data + STATE_HEADER_SIZE + 8, 1ull << 40, 8);
	reseal(&b);
	assert_int_equal(state_parse(b.data, b.len, &v, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "CONF"));
	state_buf_free(&b);
}

static void test_write_file(void **unused)
{
	char dir[] = "/tmp/kiln-test-state.XXXXXX", path[128], partial[160], err[256];
	struct state_view v;
	struct state_buf b;
	uint8_t *buf;
	size_t len;

	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/snap", dir);
	snprintf(partial, sizeof(partial), "%s.partial", path);
	build_image(&b);
	assert_int_equal(state_write_file(&b, path, err, sizeof(err)), 0);
	assert_int_equal(access(partial, F_OK), -1);
	assert_int_equal(state_read_file(path, &buf, &len, &v, err, sizeof(err)), 0);
	assert_int_equal(len, b.len);
	assert_memory_equal(buf, b.data, len);
	free(buf);
	/* A path that cannot be created leaves nothing behind and says why. */
	snprintf(path, sizeof(path), "%s/missing/snap", dir);
	assert_true(state_write_file(&b, path, err, sizeof(err)) < 0);
	assert_non_null(strstr(err, "missing"));
	assert_int_equal(state_read_file(path, &buf, &len, &v, err, sizeof(err)), -ENOENT);
	snprintf(path, sizeof(path), "%s/snap", dir);
	unlink(path);
	rmdir(dir);
	state_buf_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_truncated),
		cmocka_unit_test(test_bit_flips),
		cmocka_unit_test(test_wrong_arch_and_version),
		cmocka_unit_test(test_section_overrun),
		cmocka_unit_test(test_write_file),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
