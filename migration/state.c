/* kiln's state format: building an image, writing it crash-safely, and checking one read back. */
#include "state.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "le.h"

/* --- Writing --- */

void state_buf_init(struct state_buf *b)
{
	*b = (struct state_buf){ 0 };
}

void state_buf_free(struct state_buf *b)
{
	free(b->data);
	state_buf_init(b);
}

/* Room for n more bytes; false (and failed) when out of memory. */
static bool reserve(struct state_buf *b, size_t n)
{
	size_t cap;
	uint8_t *p;

	if (b->failed)
		return false;
	if (n <= b->cap - b->len)
		return true;
	cap = b->cap ? b->cap : 4096;
	while (cap - b->len < n) {
		if (cap > SIZE_MAX / 2) {
			b->failed = true;
			return false;
		}
		cap *= 2;
	}
	p = realloc(b->data, cap);
	if (!p) {
		b->failed = true;
		return false;
	}
	b->data = p;
	b->cap = cap;
	return true;
}

static void put_le_n(struct state_buf *b, uint64_t v, unsigned bytes)
{
	if (!reserve(b, bytes))
		return;
	put_le(b->data + b->len, v, bytes);
	b->len += bytes;
}

void state_put_u8(struct state_buf *b, uint8_t v) { put_le_n(b, v, 1); }
void state_put_u16(struct state_buf *b, uint16_t v) { put_le_n(b, v, 2); }
void state_put_u32(struct state_buf *b, uint32_t v) { put_le_n(b, v, 4); }
void state_put_u64(struct state_buf *b, uint64_t v) { put_le_n(b, v, 8); }

void state_put_bytes(struct state_buf *b, const void *p, size_t n)
{
	if (n == 0 || !reserve(b, n))
		return;
	memcpy(b->data + b->len, p, n);
	b->len += n;
}

void state_begin(struct state_buf *b)
{
	state_put_bytes(b, STATE_MAGIC, 8);
	state_put_u32(b, STATE_ARCH_X86_64);
	state_put_u32(b, STATE_FORMAT_VERSION);
	state_put_u64(b, 0);
}

size_t state_section_begin(struct state_buf *b, uint32_t tag, uint32_t version)
{
	size_t mark;

	state_put_u32(b, tag);
	state_put_u32(b, version);
	mark = b->len;
	state_put_u64(b, 0); /* the payload length, known at state_section_end */
	return mark;
}

void state_section_end(struct state_buf *b, size_t mark)
{
	if (b->failed || mark + 8 > b->len)
		return;
	put_le(b->data + mark, b->len - mark - 8, 8);
}

int state_finish(struct state_buf *b)
{
	state_section_end(b, state_section_begin(b, STATE_TAG_END, 1));
	if (reserve(b, STATE_TRAILER_SIZE))
		state_put_u64(b, XXH3_64bits(b->data, b->len));
	return b->failed ? -ENOMEM : 0;
}

static int write_all(int fd, const uint8_t *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

int state_write_file(const struct state_buf *b, const char *path, char *err, size_t errlen)
{
	char tmp[4096];
	int fd, ret;

	if (b->failed) {
		snprintf(err, errlen, "out of memory while encoding the state");
		return -ENOMEM;
	}
	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.partial", path) >= sizeof(tmp)) {
		snprintf(err, errlen, "path too long: %s", path);
		return -ENAMETOOLONG;
	}
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		ret = -errno;
		snprintf(err, errlen, "cannot create %s: %s", tmp, strerror(errno));
		return ret;
	}
	ret = write_all(fd, b->data, b->len);
	if (ret == 0 && fsync(fd) < 0)
		ret = -errno;
	close(fd);
	if (ret == 0 && rename(tmp, path) < 0)
		ret = -errno;
	if (ret < 0) {
		snprintf(err, errlen, "cannot write %s: %s", path, strerror(-ret));
		unlink(tmp);
	}
	return ret;
}

/* --- Reading --- */

/* The next n bytes, or NULL with the cursor marked bad. */
static const uint8_t *advance(struct state_cursor *c, size_t n)
{
	const uint8_t *p;

	if (c->bad || n > c->len - c->off) {
		c->bad = true;
		return NULL;
	}
	p = c->p + c->off;
	c->off += n;
	return p;
}

static uint64_t get_n(struct state_cursor *c, unsigned bytes)
{
	const uint8_t *p = advance(c, bytes);

	return p ? get_le(p, bytes) : 0;
}

uint8_t state_get_u8(struct state_cursor *c) { return (uint8_t)get_n(c, 1); }
uint16_t state_get_u16(struct state_cursor *c) { return (uint16_t)get_n(c, 2); }
uint32_t state_get_u32(struct state_cursor *c) { return (uint32_t)get_n(c, 4); }
uint64_t state_get_u64(struct state_cursor *c) { return get_n(c, 8); }

void state_get_bytes(struct state_cursor *c, void *p, size_t n)
{
	const uint8_t *src = advance(c, n);

	if (src)
		memcpy(p, src, n);
	else if (n)
		memset(p, 0, n);
}

const uint8_t *state_take(struct state_cursor *c, size_t n)
{
	return advance(c, n);
}

bool state_cursor_done(const struct state_cursor *c)
{
	return !c->bad && c->off == c->len;
}

void state_tag_name(uint32_t tag, char out[5])
{
	for (unsigned i = 0; i < 4; i++) {
		char ch = (char)(tag >> (8 * i));

		out[i] = ch >= 0x20 && ch < 0x7f ? ch : '?';
	}
	out[4] = '\0';
}

static int __attribute__((format(printf, 3, 4))) refuse(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

static const char *arch_name(uint32_t arch)
{
	switch (arch) {
	case 1: return "x86_64";
	case 2: return "aarch64";
	default: return "an unknown architecture";
	}
}

int state_parse(const uint8_t *buf, size_t len, struct state_view *v, char *err, size_t errlen)
{
	struct state_cursor c;
	size_t body;

	v->nr = 0;
	if (len < 8 || memcmp(buf, STATE_MAGIC, 8) != 0)
		return refuse(err, errlen, "not a kiln state file (no %s magic)", STATE_MAGIC);
	if (len < STATE_HEADER_SIZE + STATE_TRAILER_SIZE)
		return refuse(err, errlen, "truncated: %zu bytes, shorter than a header", len);
	c = (struct state_cursor){ .p = buf, .len = len - STATE_TRAILER_SIZE, .off = 8 };
	v->arch = state_get_u32(&c);
	v->version = state_get_u32(&c);
	if (v->arch != STATE_ARCH_X86_64)
		return refuse(err, errlen, "written for %s (arch %u); this kiln runs x86_64",
			      arch_name(v->arch), v->arch);
	if (v->version != STATE_FORMAT_VERSION)
		return refuse(err, errlen, "format version %u; this kiln reads version %u",
			      v->version, STATE_FORMAT_VERSION);
	if (state_get_u64(&c) != 0)
		return refuse(err, errlen, "reserved header field is not 0");
	body = len - STATE_TRAILER_SIZE;
	if (XXH3_64bits(buf, body) != get_le(buf + body, 8))
		return refuse(err, errlen, "checksum mismatch: the file is truncated or corrupted");
	for (;;) {
		struct state_section s;
		uint64_t n;
		char name[5];

		if (c.len - c.off < STATE_SECTION_HEADER_SIZE)
			return refuse(err, errlen, "truncated: no END section");
		s.tag = state_get_u32(&c);
		s.version = state_get_u32(&c);
		n = state_get_u64(&c);
		if (n > c.len - c.off) {
			state_tag_name(s.tag, name);
			return refuse(err, errlen, "section %s at byte %zu claims %llu bytes; %zu remain",
				      name, c.off - STATE_SECTION_HEADER_SIZE, (unsigned long long)n,
				      c.len - c.off);
		}
		s.len = (size_t)n;
		s.data = state_take(&c, s.len);
		if (s.tag == STATE_TAG_END) {
			if (s.len != 0 || c.off != c.len)
				return refuse(err, errlen, "bytes after the END section");
			return 0;
		}
		if (v->nr == STATE_MAX_SECTIONS)
			return refuse(err, errlen, "more than %u sections", STATE_MAX_SECTIONS);
		v->sections[v->nr++] = s;
	}
}

int state_read_file(const char *path, uint8_t **buf, size_t *len, struct state_view *v,
		    char *err, size_t errlen)
{
	struct stat st;
	size_t got = 0;
	uint8_t *p;
	int fd, ret;

	*buf = NULL;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		ret = -errno;
		snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
		return ret;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > STATE_MAX_FILE) {
		close(fd);
		return refuse(err, errlen, "%s: not a regular file of at most %u MiB", path,
			      STATE_MAX_FILE >> 20);
	}
	p = malloc(st.st_size ? (size_t)st.st_size : 1);
	if (!p) {
		close(fd);
		snprintf(err, errlen, "out of memory reading %s", path);
		return -ENOMEM;
	}
	while (got < (size_t)st.st_size) {
		ssize_t r = read(fd, p + got, (size_t)st.st_size - got);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	close(fd);
	ret = state_parse(p, got, v, err, errlen);
	if (ret < 0) {
		free(p);
		return ret;
	}
	*buf = p;
	*len = got;
	return 0;
}

const struct state_section *state_find(const struct state_view *v, uint32_t tag, unsigned index)
{
	for (size_t i = 0; i < v->nr; i++)
		if (v->sections[i].tag == tag && index-- == 0)
			return &v->sections[i];
	return NULL;
}

unsigned state_count(const struct state_view *v, uint32_t tag)
{
	unsigned n = 0;

	for (size_t i = 0; i < v->nr; i++)
		n += v->sections[i].tag == tag;
	return n;
}
