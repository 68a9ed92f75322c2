/* A hostile migration peer for the end-to-end tests (tests/e2e/scenarios/hostile.sh). After a
 * valid handshake it sends random frames: valid framing with bad contents, frames of the wrong
 * type or at the wrong time, broken framing, truncated frames, stalls. Between rounds it asks
 * kiln's API how the migration ended and arms the next one.
 *   mig_fuzz dest API MIG SEED ROUNDS     a source attacking a destination kiln that listens
 *                                         on unix:MIG (CONFIG_JSON in the environment: the
 *                                         configuration its CONFIG frames carry)
 *   mig_fuzz dest-silent API MIG SEED 1   one such source whose STATE passes every check
 *                                         before the VM build (the source's configuration,
 *                                         sections of random bytes), then says nothing more;
 *                                         GET / must answer meanwhile
 *   mig_fuzz source API MIG SEED ROUNDS   a destination listening on unix:MIG, attacking the
 *                                         source kiln whose API is API: each round starts a
 *                                         migration to it and breaks the protocol right after
 *                                         the handshake, after some pages, or after the
 *                                         source's STATE (its VM paused), in turn
 * Each round must end with the migration failed (GET /migration: "failed" and a reason) and,
 * on a source, the VM running again; a peer left hanging for 10 s is a failure. Prints one
 * line per round and a closing "mig_fuzz: N rounds ..." line; exits 0 when every round ended
 * as it must, 1 otherwise. */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "le.h"
#include "mig_wire.h"
#include "state.h"

#define MEM_SIZE (64u << 20)
#define PAGE 4096u
#define HANG_MS 10000 /* a kiln that neither refuses nor closes this long hangs */
#define MAX_FRAME (5u << 20)

struct fuzz {
	uint64_t rng;
	const char *api, *mig, *json;
	int fails;
	char why[512];   /* the round's own verdict, when it failed */
	char sent[256];  /* what the round sent, for the log */
};

static uint8_t frame[MAX_FRAME + 64];

static uint64_t rnd(struct fuzz *z)
{
	z->rng ^= z->rng << 13;
	z->rng ^= z->rng >> 7;
	z->rng ^= z->rng << 17;
	return z->rng;
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void note(struct fuzz *z, const char *fmt, ...)
{
	size_t n = strlen(z->sent);
	va_list ap;

	if (n + 2 >= sizeof(z->sent))
		return;
	if (n)
		z->sent[n++] = ' ';
	va_start(ap, fmt);
	vsnprintf(z->sent + n, sizeof(z->sent) - n, fmt, ap);
	va_end(ap);
}

static int write_all(int fd, const uint8_t *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		p += w, n -= (size_t)w;
	}
	return 0;
}

static int unix_connect(const char *path, int wait_ms)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	uint64_t end = now_ms() + (uint64_t)wait_ms;

	snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
	for (;;) {
		int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

		if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0)
			return fd;
		if (fd >= 0)
			close(fd);
		if (now_ms() >= end)
			return -1;
		usleep(20000);
	}
}

/* One HTTP request to kiln's API, waiting up to secs for the answer; the status, and the body
 * into out. -1 when none came. */
static int api_wait(struct fuzz *z, const char *method, const char *path, const char *body,
		    char *out, size_t size, int secs)
{
	char req[1024];
	size_t len = 0;
	int fd = unix_connect(z->api, 2000), n, status = -1;
	struct timeval tv = { .tv_sec = secs };

	out[0] = '\0';
	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	n = snprintf(req, sizeof(req), "%s %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
		     "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s", method, path,
		     body ? strlen(body) : 0, body ? body : "");
	if (write_all(fd, (const uint8_t *)req, (size_t)n) == 0) {
		ssize_t r;

		while (len < size - 1 && (r = read(fd, out + len, size - 1 - len)) > 0)
			len += (size_t)r;
		out[len] = '\0';
		if (sscanf(out, "HTTP/1.%*d %d", &status) != 1)
			status = -1;
	}
	close(fd);
	return status;
}

static int api(struct fuzz *z, const char *method, const char *path, const char *body, char *out,
	       size_t size)
{
	return api_wait(z, method, path, body, out, size, 10);
}

/* The string value of "key" in a JSON text (no escapes), into val. */
static bool json_str(const char *text, const char *key, char *val, size_t size)
{
	char k[64];
	const char *p;
	size_t n;

	snprintf(k, sizeof(k), "\"%s\"", key);
	p = strstr(text, k);
	if (!p)
		return false;
	p += strlen(k);
	p += strspn(p, " :");
	if (*p++ != '"')
		return false;
	n = strcspn(p, "\"");
	snprintf(val, size, "%.*s", (int)(n < size ? n : size - 1), p);
	return true;
}

/* Waits up to ms for GET /migration to say "failed"; its reason into why. */
static bool wait_failed(struct fuzz *z, int ms, char *why, size_t size)
{
	static char resp[8192];
	uint64_t end = now_ms() + (uint64_t)ms;
	char state[32] = "?";

	do {
		if (api(z, "GET", "/migration", NULL, resp, sizeof(resp)) == 200 &&
		    json_str(resp, "state", state, sizeof(state)) && !strcmp(state, "failed")) {
			if (!json_str(resp, "error", why, size) || !why[0])
				snprintf(why, size, "(no reason given)");
			return true;
		}
		usleep(50000);
	} while (now_ms() < end);
	snprintf(why, size, "GET /migration still says %s", state);
	return false;
}

static size_t seal(uint32_t type, size_t len)
{
	return mig_frame_seal(frame, type, len);
}

/* A state image with a valid header and checksum: the source's configuration, then sections
 * of random bytes under the tags kiln looks for. */
static size_t fake_state(struct fuzz *z, uint8_t *out, size_t cap, bool buildable)
{
	static const uint32_t tags[] = { STATE_TAG_MEMORY, STATE_TAG_VM, STATE_TAG_VCPU,
					 STATE_TAG_SERIAL, STATE_TAG_I8042, STATE_TAG_POISON };
	size_t n = 0, jl = strlen(z->json);

	memcpy(out, STATE_MAGIC, 8);
	put_le(out + 8, STATE_ARCH_X86_64, 4);
	put_le(out + 12, STATE_FORMAT_VERSION, 4);
	put_le(out + 16, 0, 8);
	n = STATE_HEADER_SIZE;
	put_le(out + n, STATE_TAG_CONFIG, 4);
	put_le(out + n + 4, buildable || rnd(z) % 4 ? 1 : rnd(z) % 3, 4);
	put_le(out + n + 8, jl, 8);
	memcpy(out + n + 16, z->json, jl);
	n += 16 + jl;
	for (unsigned i = 0; i < sizeof(tags) / sizeof(tags[0]); i++) {
		size_t len = rnd(z) % 4 ? rnd(z) % 64 : rnd(z) % 8192;

		if (n + 16 + len + 32 > cap)
			break;
		put_le(out + n, tags[i], 4);
		put_le(out + n + 4, buildable || rnd(z) % 4 ? 1 : rnd(z) % 3, 4);
		if (tags[i] == STATE_TAG_POISON && (buildable || rnd(z) % 2))
			len = 4; /* an empty poison log, well-formed: the build goes further */
		put_le(out + n + 8, len, 8);
		for (size_t k = 0; k < len; k++)
			out[n + 16 + k] = len == 4 && tags[i] == STATE_TAG_POISON ? 0 : (uint8_t)rnd(z);
		n += 16 + len;
	}
	put_le(out + n, STATE_TAG_END, 4);
	put_le(out + n + 4, 1, 4);
	put_le(out + n + 8, 0, 8);
	n += 16;
	put_le(out + n, XXH3_64bits(out, n), 8);
	return n + 8;
}

/*
 * One frame a source might send after CONFIG, into frame; its wire length into *len. Returns
 * true when kiln must refuse it. *cut, when set, is how many bytes to send before closing (or
 * stalling) on a frame never finished.
 */
static bool source_frame(struct fuzz *z, size_t *len, size_t *cut)
{
	uint8_t *p = mig_frame_payload(frame);
	uint64_t r = rnd(z), off = (rnd(z) % (MEM_SIZE / PAGE)) * PAGE;
	size_t n;

	*cut = 0;
	switch (r % 14) {
	case 0: /* valid PAGES */
	case 1:
		n = PAGE * (1 + (r >> 8) % 4);
		if (off + n > MEM_SIZE)
			off = MEM_SIZE - n;
		put_le(p, off, 8);
		for (size_t k = 0; k < n; k += 8)
			put_le(p + 8 + k, rnd(z), 8);
		*len = seal(MIG_PAGES, 8 + n);
		note(z, "PAGES");
		return false;
	case 2: { /* PAGES breaking a rule */
		static const uint64_t offs[] = { 1, MEM_SIZE, MEM_SIZE - PAGE, ~0ull - PAGE + 1,
						 1ull << 63 };
		uint64_t o = offs[(r >> 8) % 5];

		n = (r >> 16) % 3 == 0 ? 0 : (r >> 16) % 3 == 1 ? PAGE + 1 : 2 * PAGE;
		put_le(p, o, 8);
		memset(p + 8, 0x5a, n);
		*len = seal(MIG_PAGES, 8 + n);
		note(z, "PAGES(off=0x%llx,n=%zu)", (unsigned long long)o, n);
		return true;
	}
	case 3: /* PAGES larger than one frame may carry */
		n = MIG_MAX_PAGES_BYTES + PAGE;
		put_le(p, 0, 8);
		memset(p + 8, 0, n);
		*len = seal(MIG_PAGES, 8 + n);
		note(z, "PAGES(4MiB+4K)");
		return true;
	case 4: { /* DISCARD, valid or not */
		uint32_t count = (uint32_t)(1 + (r >> 8) % 4), claim = count;
		bool bad = (r >> 12) % 2;

		if (bad && (r >> 13) % 3 == 0)
			claim = (r >> 16) % 2 ? 0 : 0xffffffffu;
		put_le(p, claim, 4);
		put_le(p + 4, bad && (r >> 13) % 3 == 1 ? 1 : 0, 4);
		for (uint32_t i = 0; i < count; i++) {
			uint64_t o = (rnd(z) % (MEM_SIZE / PAGE)) * PAGE, l = PAGE;

			if (bad && (r >> 13) % 3 == 2)
				o = i % 2 ? MEM_SIZE : o + 1, l = i % 2 ? PAGE : ~0ull - PAGE;
			if (o + l > MEM_SIZE && !bad)
				o = 0;
			put_le(p + 8 + 16 * i, o, 8);
			put_le(p + 16 + 16 * i, l, 8);
		}
		*len = seal(MIG_DISCARD, 8 + 16u * count);
		note(z, "DISCARD%s", bad ? "(bad)" : "");
		return bad;
	}
	case 5: /* STATE: noise */
		n = (r >> 8) % 4096;
		for (size_t k = 0; k < n; k++)
			p[k] = (uint8_t)rnd(z);
		*len = seal(MIG_STATE, n);
		note(z, "STATE(noise)");
		return true;
	case 6: /* STATE: a well-formed image of random sections */
		*len = seal(MIG_STATE, fake_state(z, p, MAX_FRAME - 64, false));
		note(z, "STATE(sections)");
		return true;
	case 7: { /* a frame only a destination sends, or one that came already */
		static const uint32_t types[] = { MIG_HELLO, MIG_CONFIG, MIG_RUNNING, MIG_REQUEST,
						  MIG_POISONED, MIG_COMPLETE, MIG_RESUME, MIG_PUSH };
		uint32_t t = types[(r >> 8) % 8];

		n = (r >> 16) % 64;
		for (size_t k = 0; k < n; k++)
			p[k] = (uint8_t)rnd(z);
		*len = seal(t, n);
		note(z, "%s", mig_type_name(t));
		return true;
	}
	case 8: /* ERROR with text that is not text */
		n = (r >> 8) % 2 ? 10000 : 1 + (r >> 16) % 100;
		for (size_t k = 0; k < n; k++)
			p[k] = (uint8_t)rnd(z);
		*len = seal(MIG_ERROR, n);
		note(z, "ERROR");
		return true;
	case 9: /* broken framing: type, reserved field, length, checksum */
		n = (r >> 8) % 64;
		*len = seal(MIG_PAGES, n);
		switch ((r >> 16) % 4) {
		case 0:
			put_le(frame, (r >> 20) % 2 ? 0 : MIG_TYPE_MAX + 1 + (r >> 24) % 1000, 4);
			break;
		case 1:
			put_le(frame + 4, 1 + (r >> 20) % 0xffff, 4);
			break;
		case 2:
			put_le(frame + 8, MIG_MAX_PAYLOAD + 1 + (r >> 20) % 100, 8);
			break;
		default:
			frame[*len - 1] ^= 0x80;
			break;
		}
		note(z, "BROKEN-FRAMING");
		return true;
	default: /* cut short: a header promising more than comes */
		n = (r >> 8) % 3 == 0 ? MIG_MAX_PAYLOAD : 100 + (r >> 16) % 5000;
		put_le(frame, MIG_PAGES, 4);
		put_le(frame + 4, 0, 4);
		put_le(frame + 8, n, 8);
		*len = MIG_FRAME_HEADER + 50;
		*cut = (r >> 24) % 2 ? 7 : MIG_FRAME_HEADER + 50;
		note(z, "TRUNCATED(%zu of %zu)", *cut, mig_frame_size(n));
		return false;
	}
}

/* Reads frames until the peer closes or ms pass; counts ERRORs (text of the last in err). */
static int drain(int fd, int ms, int *errors, char *err, size_t size, uint32_t *last_type)
{
	static uint8_t buf[1 << 20];
	size_t have = 0;
	uint64_t end = now_ms() + (uint64_t)ms;

	for (;;) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		struct mig_frame f;
		char e[256];
		long n = mig_frame_parse(buf, have, &f, NULL, e, sizeof(e));
		int left = (int)(end - now_ms());
		ssize_t r;

		if (n > 0) {
			if (f.type == MIG_ERROR) {
				(*errors)++;
				mig_error_text(f.payload, f.len, err, size);
			}
			if (last_type)
				*last_type = f.type;
			memmove(buf, buf + n, have - (size_t)n);
			have -= (size_t)n;
			continue;
		}
		if (n < 0 || have == sizeof(buf))
			have = 0; /* not our concern here: only the close is */
		if (left <= 0 || poll(&pfd, 1, left) <= 0)
			return -ETIMEDOUT;
		r = read(fd, buf + have, sizeof(buf) - have);
		if (r <= 0)
			return 0;
		have += (size_t)r;
	}
}

static void verdict(struct fuzz *z, int round, bool ok, const char *what)
{
	if (!ok)
		z->fails++;
	printf("round %d: %s: %s [%s]\n", round, ok ? "ok" : "FAIL", what, z->sent);
	fflush(stdout);
}

/* A source: HELLO, CONFIG, then random frames until one must be refused, or the end. A silent
 * one sends a STATE that passes every check before the VM build and then says nothing: kiln
 * must refuse it without waiting on this peer, answering its API meanwhile. */
static void dest_round(struct fuzz *z, int round, bool silent)
{
	uint8_t *p = mig_frame_payload(frame);
	char err[MIG_MAX_ERROR + 1] = "", why[1024], resp[512], arm[256];
	int fd = unix_connect(z->mig, 5000), errors = 0, frames = 1 + (int)(rnd(z) % 6);
	bool refused = false, stalled = false, api_late = false;
	uint32_t type = 0;
	size_t len, cut;

	z->sent[0] = '\0';
	if (fd < 0) {
		verdict(z, round, false, "cannot connect to the destination");
		return;
	}
	mig_hello_encode(p, MIG_ROLE_SOURCE);
	write_all(fd, frame, seal(MIG_HELLO, MIG_HELLO_LEN));
	len = mig_config_encode(p, MEM_SIZE, PAGE, z->json, strlen(z->json));
	write_all(fd, frame, seal(MIG_CONFIG, len));
	if (silent) {
		uint64_t t0;
		int st;

		write_all(fd, frame, seal(MIG_STATE, fake_state(z, p, MAX_FRAME - 64, true)));
		note(z, "STATE(buildable sections)");
		frames = 0;
		refused = true;
		usleep(1000 * 1000);
		t0 = now_ms();
		st = api_wait(z, "GET", "/", NULL, resp, sizeof(resp), 5);
		note(z, "+GET / %s in %.1f s", st == 200 ? "answered" : "had no answer",
		     (double)(now_ms() - t0) / 1000);
		if (st != 200)
			api_late = true;
	}
	for (int i = 0; i < frames && !refused; i++) {
		refused = source_frame(z, &len, &cut);
		if (write_all(fd, frame, cut ? cut : len) < 0)
			break; /* it gave up on us already */
		if (cut) {
			if (rnd(z) % 2) {
				note(z, "+stall");
				stalled = true;
				usleep(1500 * 1000);
			}
			break;
		}
	}
	if (!refused)
		shutdown(fd, SHUT_WR), note(z, "+close");
	if (drain(fd, HANG_MS, &errors, err, sizeof(err), &type) < 0) {
		uint64_t t0;
		int st;

		close(fd);
		t0 = now_ms();
		st = api_wait(z, "GET", "/", NULL, resp, sizeof(resp), 120);
		snprintf(why, sizeof(why), "the destination neither refused nor closed in %d ms; "
			 "once this peer closed, GET / %s after %.1f s more", HANG_MS,
			 st == 200 ? "answered" : "had no answer", (double)(now_ms() - t0) / 1000);
		verdict(z, round, false, why);
		return;
	}
	close(fd);
	if (!wait_failed(z, 5000, why, sizeof(why))) {
		verdict(z, round, false, why);
		return;
	}
	if (api_late) {
		verdict(z, round, false, "the API did not answer while the destination refused");
		return;
	}
	if (api(z, "GET", "/", NULL, resp, sizeof(resp)) != 200) {
		verdict(z, round, false, "GET / did not answer afterwards");
		return;
	}
	snprintf(arm, sizeof(arm), "{\"uri\": \"unix:%s\"}", z->mig);
	if (api(z, "PUT", "/migration/incoming", arm, resp, sizeof(resp)) != 204) {
		snprintf(why, sizeof(why), "PUT /migration/incoming afterwards: %.200s", resp);
		verdict(z, round, false, why);
		return;
	}
	snprintf(resp, sizeof(resp), "%s%s: %.100s", errors ? "ERROR answered, " : "",
		 stalled ? "stalled" : "failed", why);
	verdict(z, round, true, resp);
}

/* Reads the source's stream until a frame of type want (0: any) arrived, or frames of them
 * (counting any type), or ms passed. True when it came. */
static bool stream_until(int fd, uint32_t want, int frames, int ms)
{
	static uint8_t buf[MAX_FRAME + 64];
	size_t have = 0, need = MIG_FRAME_HEADER;
	uint64_t end = now_ms() + (uint64_t)ms;

	for (;;) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		int left = (int)(end - now_ms());
		ssize_t r;

		while (have >= MIG_FRAME_HEADER) {
			uint32_t type = (uint32_t)get_le(buf, 4);
			uint64_t plen = get_le(buf + 8, 8);

			need = mig_frame_size(plen);
			if (need > sizeof(buf))
				return false;
			if (have < need)
				break;
			memmove(buf, buf + need, have - need);
			have -= need;
			if ((want && type == want) || (!want && --frames <= 0))
				return true;
		}
		if (left <= 0 || poll(&pfd, 1, left) <= 0)
			return false;
		r = read(fd, buf + have, sizeof(buf) - have);
		if (r <= 0)
			return false;
		have += (size_t)r;
	}
}

/* One frame a destination might send, breaking the protocol, into frame; its length. */
static size_t dest_frame(struct fuzz *z)
{
	uint8_t *p = mig_frame_payload(frame);
	uint64_t r = rnd(z);
	size_t n, cut;

	switch (r % 6) {
	case 0: /* a REQUEST: in range or not (the source answers the valid ones once it
		 * waits for RUNNING) */
		mig_range_encode(p, (r >> 8) % 2 ? ((r >> 9) % 64) * PAGE : ~0ull - PAGE + 1,
				 PAGE * (1 + (r >> 20) % 4));
		note(z, "REQUEST");
		return seal(MIG_REQUEST, MIG_RANGE_LEN);
	case 1: /* COMPLETE, HELLO again, a source's frame */
		n = (r >> 8) % 3;
		note(z, "%s", n == 0 ? "COMPLETE" : n == 1 ? "HELLO" : "PAGES");
		return seal(n == 0 ? MIG_COMPLETE : n == 1 ? MIG_HELLO : MIG_PAGES, 0);
	case 2:
		n = 1 + (r >> 8) % 3000;
		for (size_t k = 0; k < n; k++)
			p[k] = (uint8_t)rnd(z);
		note(z, "ERROR");
		return seal(MIG_ERROR, n);
	default: /* the same breakage a source can send, in a small frame; never RUNNING, which
		  * after STATE is no breakage: the source then keeps its VM paused for good, as it
		  * must (the VM may run over there) */
		for (int tries = 0; tries < 32; tries++) {
			z->sent[0] = '\0';
			if (source_frame(z, &n, &cut) && !cut && n < 1 << 16 &&
			    get_le(frame, 4) != MIG_RUNNING)
				return n;
		}
		note(z, "COMPLETE");
		return seal(MIG_COMPLETE, 0);
	}
}

/* A destination: answers HELLO, lets the source stream for a while (maybe up to its STATE,
 * the VM paused), then breaks the protocol or stalls and closes. The VM must run again. */
static void source_round(struct fuzz *z, int round, int lfd)
{
	uint8_t *p = mig_frame_payload(frame);
	char why[1024], resp[1024], start[256], state[32] = "?";
	int fd, errors = 0, at = round % 3, pfd_ok;
	struct pollfd pfd = { .fd = lfd, .events = POLLIN };
	uint64_t t0 = now_ms();

	z->sent[0] = '\0';
	snprintf(start, sizeof(start), "{\"uri\": \"unix:%s\", \"mode\": \"%s\"}", z->mig,
		 rnd(z) % 2 ? "precopy" : "postcopy");
	if (api(z, "PUT", "/migration/start", start, resp, sizeof(resp)) != 204) {
		snprintf(why, sizeof(why), "PUT /migration/start: %.300s", resp);
		verdict(z, round, false, why);
		return;
	}
	pfd_ok = poll(&pfd, 1, 5000);
	fd = pfd_ok > 0 ? accept(lfd, NULL, NULL) : -1;
	if (fd < 0) {
		verdict(z, round, false, "the source did not connect");
		return;
	}
	stream_until(fd, MIG_HELLO, 0, 5000);
	mig_hello_encode(p, MIG_ROLE_DESTINATION);
	write_all(fd, frame, seal(MIG_HELLO, MIG_HELLO_LEN));
	if (at == 1) {
		note(z, "after-some-pages");
		stream_until(fd, 0, 2 + (int)(rnd(z) % 200), 5000);
	} else if (at == 2) {
		note(z, "after-STATE");
		if (!stream_until(fd, MIG_STATE, 0, 60000))
			note(z, "(no STATE in 60 s)");
		else if (api(z, "GET", "/", NULL, resp, sizeof(resp)) == 200 &&
			 json_str(resp, "state", state, sizeof(state)))
			note(z, "(VM %s)", state);
	}
	if (rnd(z) % 4 == 0) {
		note(z, "stall+close");
		usleep(1000 * 1000);
	} else {
		size_t len = dest_frame(z);

		write_all(fd, frame, len);
	}
	shutdown(fd, SHUT_WR);
	drain(fd, HANG_MS, &errors, why, sizeof(why), NULL);
	close(fd);
	if (!wait_failed(z, HANG_MS, why, sizeof(why))) {
		verdict(z, round, false, why);
		return;
	}
	for (int i = 0; i < 50; i++) {
		if (api(z, "GET", "/", NULL, resp, sizeof(resp)) == 200 &&
		    json_str(resp, "state", state, sizeof(state)) && !strcmp(state, "Running"))
			break;
		usleep(100000);
	}
	if (strcmp(state, "Running")) {
		snprintf(resp, sizeof(resp), "the VM is %s afterwards; the migration: %.300s", state,
			 why);
		verdict(z, round, false, resp);
		return;
	}
	snprintf(resp, sizeof(resp), "failed in %llu ms, VM running: %.100s",
		 (unsigned long long)(now_ms() - t0), why);
	verdict(z, round, true, resp);
}

int main(int argc, char **argv)
{
	struct fuzz z = { 0 };
	int rounds;

	if (argc != 6 || (strcmp(argv[1], "dest") && strcmp(argv[1], "dest-silent") &&
			  strcmp(argv[1], "source"))) {
		fprintf(stderr, "usage: mig_fuzz dest|dest-silent|source API_SOCKET MIG_SOCKET SEED "
			"ROUNDS\n");
		return 2;
	}
	z.api = argv[2];
	z.mig = argv[3];
	z.rng = strtoull(argv[4], NULL, 10) * 0x9e3779b97f4a7c15ull | 1;
	rounds = atoi(argv[5]);
	signal(SIGPIPE, SIG_IGN); /* a peer that hung up shows as EPIPE */
	z.json = getenv("CONFIG_JSON");
	if (!z.json)
		z.json = "{\"boot-source\":{\"kernel_image_path\":\"/k\"},"
			 "\"machine-config\":{\"vcpu_count\":1,\"mem_size_mib\":64}}";
	if (strncmp(argv[1], "dest", 4) == 0) {
		/* A failed round leaves the destination in no known state: the rest would say
		 * nothing more. */
		for (int i = 1; i <= rounds && !z.fails; i++)
			dest_round(&z, i, !strcmp(argv[1], "dest-silent"));
	} else {
		struct sockaddr_un a = { .sun_family = AF_UNIX };
		int lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

		snprintf(a.sun_path, sizeof(a.sun_path), "%s", z.mig);
		unlink(z.mig);
		if (lfd < 0 || bind(lfd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(lfd, 1) < 0) {
			perror("mig_fuzz: listen");
			return 1;
		}
		for (int i = 1; i <= rounds && !z.fails; i++)
			source_round(&z, i, lfd);
		close(lfd);
		unlink(z.mig);
	}
	printf("mig_fuzz: %d rounds, %d failed\n", rounds, z.fails);
	return z.fails ? 1 : 0;
}
