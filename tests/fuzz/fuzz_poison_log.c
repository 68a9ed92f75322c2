/*
 * Fuzz target for the poison log (vmm/poison_log.c): its encoded form, as snapshots and
 * migration streams carry it, and the operations kiln runs on a decoded log. Input:
 *   u8 flags    bit 0: decode as inherited; bits 1-3: how many of the operations run before
 *               the decode (into a log that is not empty, as on a restore over a log)
 *   u16 n, then n bytes: the encoded log (u32 count, per range u64 gpa, u64 len, u32 origin)
 *   then operations, one u8 each (low 2 bits the kind, the next 2 the origin) and their
 *   arguments: 0 add(gpa, len, origin), 1 contains(gpa, len), 2 add of a range the fuzzer
 *   sees in the log grown or shifted by a little, 3 decode of the log's own encoding into it.
 *   A gpa or len is a u8 selector then 2 bytes (small) or, for a selector >= 0xf0, 8 bytes.
 * Every step is checked against a plain model (sorted ranges, first origin kept, touching
 * ranges of one origin merged): check_encoded refuses exactly what the format forbids (checked
 * here independently), decode refuses iff check_encoded does and then leaves the log as it
 * was, accepted ranges land as the model's adds do, contains answers as the model, and the
 * log's encoding checks, decodes back to the same log and encodes to the same bytes.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "fuzz_input.h"
#include "le.h"
#include "poison_log.h"
#include "fuzz_fail.h"

#define ENC_HEADER 4u
#define ENC_RANGE 20u

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct model {
	struct poison_range *r;
	size_t nr, cap;
};

static void model_push(struct model *m, uint64_t gpa, uint64_t end, enum poison_origin origin)
{
	if (m->nr == m->cap) {
		m->cap = m->cap ? 2 * m->cap : 16;
		m->r = realloc(m->r, m->cap * sizeof(*m->r));
		if (!m->r)
			fail("out of memory");
	}
	m->r[m->nr++] = (struct poison_range){ gpa, end - gpa, origin };
}

static int by_gpa(const void *a, const void *b)
{
	const struct poison_range *x = a, *y = b;

	return x->gpa < y->gpa ? -1 : x->gpa > y->gpa;
}

/* The model's add: the gaps of [gpa, gpa+len) take origin, then touching ranges of one origin
 * merge. The caller has checked len and overflow. */
static void model_add(struct model *m, uint64_t gpa, uint64_t len, enum poison_origin origin)
{
	uint64_t cursor = gpa, end = gpa + len;
	size_t n = m->nr, w = 0;

	for (size_t i = 0; i < n && cursor < end; i++) {
		uint64_t rg = m->r[i].gpa, re = rg + m->r[i].len;

		if (re <= cursor)
			continue;
		if (rg >= end)
			break;
		if (rg > cursor)
			model_push(m, cursor, rg, origin);
		cursor = re;
	}
	if (cursor < end)
		model_push(m, cursor, end, origin);
	qsort(m->r, m->nr, sizeof(*m->r), by_gpa);
	for (size_t i = 0; i < m->nr; i++) {
		struct poison_range *last = w ? &m->r[w - 1] : NULL;

		if (last && last->gpa + last->len == m->r[i].gpa && last->origin == m->r[i].origin)
			last->len += m->r[i].len;
		else
			m->r[w++] = m->r[i];
	}
	m->nr = w;
}

static bool model_contains(const struct model *m, uint64_t gpa, uint64_t len)
{
	uint64_t end = len > UINT64_MAX - gpa ? UINT64_MAX : gpa + len;

	if (len == 0)
		return false;
	for (size_t i = 0; i < m->nr; i++)
		if (m->r[i].gpa < end && m->r[i].gpa + m->r[i].len > gpa)
			return true;
	return false;
}

static void same_as_model(struct poison_log *log, const struct model *m, const char *after)
{
	if (log->nr != m->nr || atomic_load(&log->count) != log->nr)
		fail("after %s: %zu ranges (count %zu), the model has %zu", after, log->nr,
		     atomic_load(&log->count), m->nr);
	for (size_t i = 0; i < m->nr; i++) {
		const struct poison_range *a = &log->ranges[i], *b = &m->r[i];

		if (a->gpa != b->gpa || a->len != b->len || a->origin != b->origin)
			fail("after %s: range %zu is [0x%llx, +0x%llx) %d, the model's "
			     "[0x%llx, +0x%llx) %d", after, i, (unsigned long long)a->gpa,
			     (unsigned long long)a->len, a->origin, (unsigned long long)b->gpa,
			     (unsigned long long)b->len, b->origin);
	}
}

/* What the format allows, read here without kiln's code: the count, or -1. */
static long expected_count(const uint8_t *p, size_t n)
{
	uint64_t count, prev_end = 0;

	if (n < ENC_HEADER || (n - ENC_HEADER) % ENC_RANGE)
		return -1;
	count = get_le(p, 4);
	if (count != (n - ENC_HEADER) / ENC_RANGE)
		return -1;
	for (uint64_t i = 0; i < count; i++) {
		const uint8_t *q = p + ENC_HEADER + ENC_RANGE * i;
		uint64_t gpa = get_le(q, 8), len = get_le(q + 8, 8), origin = get_le(q + 16, 4);

		if (len == 0 || gpa + len < gpa || origin > POISON_INHERITED)
			return -1;
		if (i > 0 && gpa < prev_end)
			return -1; /* out of order or overlapping; touching is allowed */
		prev_end = gpa + len;
	}
	return (long)count;
}

/*
 * Decodes blob (n bytes, a copy of its own so ASan sees a read past it) into log, checking it
 * against check_encoded, the format and the model, which then follows.
 */
static void decode(struct poison_log *log, struct model *m, const uint8_t *blob, size_t n,
		   bool as_inherited)
{
	long want = expected_count(blob, n), got = poison_log_check_encoded(blob, n);
	int ret = poison_log_decode(log, blob, n, as_inherited);

	if (got != want && !(got == -EINVAL && want == -1))
		fail("check_encoded of %zu bytes gave %ld, the format says %ld", n, got, want);
	if ((got < 0) != (ret < 0) || (ret < 0 && ret != -EINVAL) || ret > 0)
		fail("decode gave %d where check_encoded gave %ld", ret, got);
	for (long i = 0; i < got; i++) {
		const uint8_t *q = blob + ENC_HEADER + ENC_RANGE * (size_t)i;

		model_add(m, get_le(q, 8), get_le(q + 8, 8),
			  as_inherited ? POISON_INHERITED : (enum poison_origin)get_le(q + 16, 4));
	}
	same_as_model(log, m, ret < 0 ? "a refused decode" : "a decode");
}

/* The log's encoding, which must check and decode (both ways) back to the same log. */
static uint8_t *encode(struct poison_log *log, size_t *n)
{
	size_t size = poison_log_encoded_size(log);
	uint8_t *buf = malloc(size), *again;
	struct poison_log copy;
	struct model inherited = { 0 };
	size_t n2;

	if (!buf)
		fail("out of memory");
	if (size != ENC_HEADER + ENC_RANGE * log->nr)
		fail("encoded_size %zu for %zu ranges", size, log->nr);
	if (poison_log_encode(log, buf, size - 1) != -ENOSPC)
		fail("encode into %zu bytes of %zu did not refuse", size - 1, size);
	if (poison_log_encode(log, buf, size) != (long)size)
		fail("encode did not write %zu bytes", size);
	if (poison_log_check_encoded(buf, size) != (long)log->nr)
		fail("the log's own encoding of %zu ranges fails its check", log->nr);

	if (poison_log_init(&copy) < 0)
		fail("poison_log_init");
	if (poison_log_decode(&copy, buf, size, false) < 0)
		fail("the log's own encoding does not decode");
	again = malloc(size);
	if (!again)
		fail("out of memory");
	n2 = poison_log_encoded_size(&copy);
	if (n2 != size || poison_log_encode(&copy, again, n2) != (long)size ||
	    memcmp(buf, again, size) != 0)
		fail("decode then encode of the log's encoding is not the same %zu bytes", size);
	free(again);
	poison_log_destroy(&copy);

	/* As inherited: the same bytes covered, one origin, touching ranges merged. */
	if (poison_log_init(&copy) < 0)
		fail("poison_log_init");
	if (poison_log_decode(&copy, buf, size, true) < 0)
		fail("the log's own encoding does not decode as inherited");
	for (size_t i = 0; i < log->nr; i++)
		model_add(&inherited, log->ranges[i].gpa, log->ranges[i].len, POISON_INHERITED);
	same_as_model(&copy, &inherited, "decoding the log's encoding as inherited");
	free(inherited.r);
	poison_log_destroy(&copy);
	*n = size;
	return buf;
}

static void check_json(struct poison_log *log)
{
	json_t *j = poison_log_json(log), *pages = json_object_get(j, "pages"), *e;
	size_t i;

	if (json_array_size(pages) != log->nr)
		fail("poison_log_json: %zu pages for %zu ranges", json_array_size(pages), log->nr);
	json_array_foreach(pages, i, e) {
		const struct poison_range *r = &log->ranges[i];
		const char *origin = json_string_value(json_object_get(e, "origin"));

		if ((uint64_t)json_integer_value(json_object_get(e, "guest_phys_addr")) != r->gpa ||
		    (uint64_t)json_integer_value(json_object_get(e, "length")) != r->len || !origin ||
		    strcmp(origin, poison_origin_name(r->origin)) != 0)
			fail("poison_log_json: page %zu is not range %zu", i, i);
	}
	json_decref(j);
}

static uint64_t take_number(struct input *in)
{
	return take(in, take(in, 1) >= 0xf0 ? 8 : 2);
}

static void operation(struct poison_log *log, struct model *m, struct input *in)
{
	unsigned op = (unsigned)take(in, 1);
	enum poison_origin origin = (enum poison_origin)((op >> 2) & 3);
	uint64_t gpa = take_number(in), len = take_number(in);
	uint8_t *buf;
	size_t n;
	int ret;

	switch (op & 3) {
	case 2:
		/* A range around one the log has: what a guest poisoning its neighbours gives. */
		if (log->nr) {
			const struct poison_range *r = &log->ranges[gpa % log->nr];

			len = r->len + (len & 0xff);
			gpa = r->gpa - (gpa >> 8 & 0xff) > r->gpa ? 0 : r->gpa - (gpa >> 8 & 0xff);
			if (len > UINT64_MAX - gpa)
				len = UINT64_MAX - gpa;
		}
		/* fall through */
	case 0:
		ret = poison_log_add(log, gpa, len, origin);
		if (len == 0 || len > UINT64_MAX - gpa || origin > POISON_INHERITED) {
			if (ret != -EINVAL)
				fail("add(0x%llx, 0x%llx, %d) gave %d, not -EINVAL",
				     (unsigned long long)gpa, (unsigned long long)len, origin, ret);
		} else if (ret != 0) {
			fail("add(0x%llx, 0x%llx, %d) gave %d", (unsigned long long)gpa,
			     (unsigned long long)len, origin, ret);
		} else {
			model_add(m, gpa, len, origin);
		}
		same_as_model(log, m, "an add");
		break;
	case 1:
		if (poison_log_contains(log, gpa, len) != model_contains(m, gpa, len))
			fail("contains(0x%llx, 0x%llx): %d, the model says %d",
			     (unsigned long long)gpa, (unsigned long long)len,
			     poison_log_contains(log, gpa, len), model_contains(m, gpa, len));
		break;
	case 3:
		/* Decoding what is recorded already changes nothing, whatever the origin. */
		buf = encode(log, &n);
		decode(log, m, buf, n, origin & 1);
		free(buf);
		break;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct input in = { data, size };
	unsigned flags = (unsigned)take(&in, 1), before = (flags >> 1) & 7;
	size_t n = (size_t)take(&in, 2);
	struct model m = { 0 };
	struct poison_log log;
	uint8_t *blob;

	if (n > in.n)
		n = in.n;
	blob = malloc(n ? n : 1);
	if (!blob || poison_log_init(&log) < 0)
		fail("out of memory");
	memcpy(blob, in.p, n);
	in.p += n;
	in.n -= n;
	for (unsigned i = 0; i < before && in.n; i++)
		operation(&log, &m, &in);
	decode(&log, &m, blob, n, flags & 1);
	free(blob);
	while (in.n)
		operation(&log, &m, &in);
	free(encode(&log, &n));
	check_json(&log);
	poison_log_destroy(&log);
	free(m.r);
	return 0;
}
