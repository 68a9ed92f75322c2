/*
 * Fuzz target for kiln's side of the external page-fault handler (migration/uffd_external.c).
 * kiln parses nothing the handler sends: the protocol has one message, kiln's, and the
 * connection becoming readable (a byte, EOF or a hang-up alike) means the handler is gone;
 * snapshot_restore.c's on_handler_gone then calls uffd_external_fail_all. So the target covers
 * the handshake kiln builds and that loss path. Input:
 *   u8 flags   bit 0: a live run; bit 1: the message into a buffer of a fuzzed size;
 *              bit 2: fuzzed poison ranges, which may be refused; bit 3: no handler listening
 *   the message: u64 host, u64 page size, u8 regions (0 to 4), per region u64 gpa, size,
 *              offset; u16 buffer size (bit 1)
 *   a live run: u8 layout (bit 0: two regions; bits 1-2: pages between them), u8 pages of each
 *              region (1 to 16), u8 poison ranges (0 to 3) each u8 region, u8 first page,
 *              u8 pages (or, bit 2, u64 offset and u64 length), u32 pages the handler serves,
 *              u8 what it does then (bits 0-1: stay quiet, write bytes, close, write and
 *              close; bit 2: close its userfaultfd first; bit 3: shut down writing, not
 *              close), u8 how many bytes it writes
 * The message must fit its buffer or be refused (-ENOSPC exactly when its full text would not
 * fit; never for kiln's 2 regions in UFFD_EXTERNAL_MSG_MAX), and read with jansson as one
 * object per region holding the values given. In a live run (4 KiB pages of a memfd, a
 * handler on a unix socket in this process): uffd_external_start refuses only what it must,
 * with a message, before connecting; the handler receives the message and the userfaultfd;
 * its UFFDIO_COPY works on every page not poisoned at the start; the connection is readable
 * exactly when the handler wrote or went away; then uffd_external_fail_all leaves no page
 * missing (each page reads as the handler served it, or raises SIGBUS), counts the pages it
 * poisoned, and changes nothing when called again; stop closes both fds.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <jansson.h>

#include "fuzz_input.h"
#include "log.h"
#include "seccomp_filter.h"
#include "uffd_compat.h"
#include "uffd_external.h"
#include "fuzz_fail.h"

#define PAGE 4096ull
#define MSG_REGIONS 4  /* more than kiln's GUEST_MEM_MAX_REGIONS: the builder takes any */
#define MAX_PAGES 16   /* per region */
#define MAX_POISON 3
#define MAX_WRITE 64

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The handler's listening socket, set up once; and the SIGBUS a poisoned page raises. */
static struct {
	char dir[80], path[96];
	int listen_fd;
	struct sigaction old_bus;
} fz = { .listen_fd = -1 };

static bool log_stderr; /* KILN_FUZZ_LOG is set */
static sigjmp_buf bus_jump;
static volatile sig_atomic_t bus_expected;

/* uffd_server.c's uffd thread loads it; that thread never starts here. */
int seccomp_filter_install(enum seccomp_thread t)
{
	fail("seccomp_filter_install(%d): a uffd thread started", (int)t);
}

/* --- the handshake message --- */

/* Whether the JSON value v is the number want (jansson reads integers past INT64_MAX only as
 * reals, rounded). */
static bool is_number(json_t *v, uint64_t want, bool as_real)
{
	if (as_real)
		return json_is_number(v) && json_number_value(v) == (double)want;
	return json_is_integer(v) && (uint64_t)json_integer_value(v) == want;
}

static void check_message(const char *buf, int n, const uint8_t *host, uint64_t page_size,
			  const struct guest_region *r, unsigned nr)
{
	static const char *const keys[] = { "base_host_virt_addr", "size", "offset", "page_size",
					    "page_size_kib" };
	bool as_real = page_size > INT64_MAX;
	json_error_t jerr;
	json_t *all, *o;
	size_t i;

	for (unsigned k = 0; k < nr; k++)
		as_real |= (uint64_t)(uintptr_t)(host + r[k].offset) > INT64_MAX ||
			   r[k].size > INT64_MAX || r[k].offset > INT64_MAX;
	all = json_loadb(buf, (size_t)n, as_real ? JSON_DECODE_INT_AS_REAL : 0, &jerr);
	if (!json_is_array(all) || json_array_size(all) != nr)
		fail("the message is not an array of %u regions (%s): %.*s", nr, jerr.text, n, buf);
	json_array_foreach(all, i, o) {
		const uint64_t want[] = { (uint64_t)(uintptr_t)(host + r[i].offset), r[i].size,
					  r[i].offset, page_size, page_size };

		if (json_object_size(o) != 5)
			fail("region %zu has %zu fields: %.*s", i, json_object_size(o), n, buf);
		for (size_t k = 0; k < 5; k++)
			if (!is_number(json_object_get(o, keys[k]), want[k], as_real))
				fail("region %zu: %s is not %llu: %.*s", i, keys[k],
				     (unsigned long long)want[k], n, buf);
	}
	json_decref(all);
}

static void message(struct input *in, unsigned flags)
{
	struct guest_region r[MSG_REGIONS];
	uint64_t host_v = take(in, 8), page_size = take(in, 8);
	unsigned nr = (unsigned)take(in, 1) % (MSG_REGIONS + 1);
	size_t len = UFFD_EXTERNAL_MSG_MAX;
	char full[4096], *buf;
	uint8_t *host;
	int n, whole;

	/* kiln's host is a mapping; host + offset never wraps. */
	host_v = host_v ? host_v : PAGE;
	host = (uint8_t *)(uintptr_t)host_v;
	for (unsigned i = 0; i < nr; i++) {
		r[i].gpa = take(in, 8);
		r[i].size = take(in, 8);
		r[i].offset = take(in, 8);
		if (r[i].offset > UINTPTR_MAX - host_v)
			r[i].offset = UINTPTR_MAX - host_v;
	}
	if (flags & 2)
		len = (size_t)take(in, 2) % (UFFD_EXTERNAL_MSG_MAX + 1);

	whole = uffd_external_message(full, sizeof(full), host, page_size, r, nr);
	if (whole < 0 || (size_t)whole >= sizeof(full))
		fail("%u regions do not fit in %zu bytes: %d", nr, sizeof(full), whole);
	if (nr <= GUEST_MEM_MAX_REGIONS && whole >= UFFD_EXTERNAL_MSG_MAX)
		fail("%u regions take %d bytes: send_handshake's %d are too few", nr, whole,
		     UFFD_EXTERNAL_MSG_MAX);
	if (log_stderr)
		fprintf(stderr, "fuzz_uffd_external: %s\n", full);
	check_message(full, whole, host, page_size, r, nr);

	buf = malloc(len ? len : 1); /* exactly len: ASan sees a write past it */
	if (!buf)
		fail("out of memory");
	n = uffd_external_message(buf, len, host, page_size, r, nr);
	if ((size_t)whole >= len ? n != -ENOSPC : n != whole)
		fail("%u regions, %d bytes, into %zu: %d", nr, whole, len, n);
	if (n >= 0 && (buf[n] != '\0' || memcmp(buf, full, (size_t)n + 1) != 0))
		fail("the message into %zu bytes is not the one into %zu", len, sizeof(full));
	free(buf);
}

/* --- a live run --- */

static void on_sigbus(int sig, siginfo_t *si, void *uc)
{
	(void)si;
	(void)uc;
	if (bus_expected)
		siglongjmp(bus_jump, 1);
	/* Not a read of this target's: the handler that was there before (ASan's) reports it. */
	sigaction(sig, &fz.old_bus, NULL);
}

static uint64_t pattern(uint64_t off)
{
	return off * 0x9e3779b97f4a7c15ull ^ 0x6b696c6e2d756666ull;
}

/* Reads the page at p: 1 when it holds the pattern of memfd offset off, 0 when it raised
 * SIGBUS, -1 when it holds something else. */
static int read_page(const uint8_t *p, uint64_t off)
{
	const volatile uint64_t *w = (const volatile uint64_t *)p;
	int ret = 1;

	if (sigsetjmp(bus_jump, 1)) {
		bus_expected = 0;
		return 0;
	}
	bus_expected = 1;
	for (uint64_t i = 0; i < PAGE / 8; i++)
		if (w[i] != pattern(off + i * 8))
			ret = -1;
	bus_expected = 0;
	return ret;
}

/* The handler's end: the connection kiln made, its message and its userfaultfd. */
struct handler {
	int conn, uffd;
};

static void handler_accept(struct handler *h, const uint8_t *host,
			   const struct guest_region *r, unsigned nr)
{
	char text[UFFD_EXTERNAL_MSG_MAX + 1], want[UFFD_EXTERNAL_MSG_MAX];
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} control;
	struct iovec iov = { .iov_base = text, .iov_len = sizeof(text) };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf,
			    .msg_controllen = sizeof(control.buf) };
	struct cmsghdr *c;
	ssize_t n;
	int len;

	h->conn = accept4(fz.listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	if (h->conn < 0)
		fail("started, but no connection to accept: %s", strerror(errno));
	n = recvmsg(h->conn, &m, MSG_CMSG_CLOEXEC);
	c = CMSG_FIRSTHDR(&m);
	if (n <= 0 || !c || c->cmsg_type != SCM_RIGHTS || c->cmsg_len != CMSG_LEN(sizeof(int)))
		fail("no handshake with a userfaultfd (%zd bytes)", n);
	memcpy(&h->uffd, CMSG_DATA(c), sizeof(int));
	len = uffd_external_message(want, sizeof(want), host, PAGE, r, nr);
	if (n != len || memcmp(text, want, (size_t)len) != 0)
		fail("the handshake is not uffd_external_message's: %.*s", (int)n, text);
}

/* The live run's layout and what its handler does, read from the input. */
struct live {
	unsigned nr;
	struct guest_region r[GUEST_MEM_MAX_REGIONS];
	uint64_t total;                      /* memfd bytes, the gap between regions included */
	struct uffd_range poison[MAX_POISON];
	size_t nr_poison;
	uint32_t serve;                      /* bit i: page i of the regions, in order */
	unsigned action, nr_write;
	uint8_t bytes[MAX_WRITE];
};

static void read_live(struct input *in, unsigned flags, struct live *l)
{
	unsigned layout = (unsigned)take(in, 1);
	uint64_t off = 0;

	*l = (struct live){ .nr = 1 + (layout & 1) };
	for (unsigned i = 0; i < l->nr; i++) {
		uint64_t pages = 1 + take(in, 1) % MAX_PAGES;

		l->r[i] = (struct guest_region){ .gpa = i ? 4ull << 30 : 0, .size = pages * PAGE,
						 .offset = off };
		off += pages * PAGE + ((layout >> 1) & 3) * PAGE;
	}
	l->total = l->r[l->nr - 1].offset + l->r[l->nr - 1].size;
	l->nr_poison = take(in, 1) % (MAX_POISON + 1);
	for (size_t i = 0; i < l->nr_poison; i++) {
		const struct guest_region *r = &l->r[flags & 4 ? 0 : take(in, 1) % l->nr];
		uint64_t pages = r->size / PAGE, first, n;

		if (flags & 4) {
			l->poison[i].off = take(in, 8);
			l->poison[i].len = take(in, 8);
		} else {
			first = take(in, 1) % pages;
			n = 1 + take(in, 1) % (pages - first);
			l->poison[i] = (struct uffd_range){ .off = r->offset + first * PAGE,
							    .len = n * PAGE };
		}
	}
	l->serve = (uint32_t)take(in, 4);
	l->action = (unsigned)take(in, 1);
	l->nr_write = 1 + (unsigned)take(in, 1) % MAX_WRITE;
	for (unsigned i = 0; i < l->nr_write; i++)
		l->bytes[i] = (uint8_t)take(in, 1);
}

static bool in_poison(const struct live *l, uint64_t off)
{
	for (size_t i = 0; i < l->nr_poison; i++)
		if (off >= l->poison[i].off && off - l->poison[i].off < l->poison[i].len)
			return true;
	return false;
}

/* Whether uffd_external_start must refuse l's poison ranges: whole pages inside one region. */
static bool poison_refused(const struct live *l)
{
	for (size_t i = 0; i < l->nr_poison; i++) {
		const struct uffd_range *p = &l->poison[i];
		bool inside = false;

		for (unsigned k = 0; k < l->nr; k++)
			inside |= p->off >= l->r[k].offset && p->off - l->r[k].offset < l->r[k].size &&
				  p->len <= l->r[k].size - (p->off - l->r[k].offset);
		if (!p->len || p->off % PAGE || p->len % PAGE || !inside)
			return true;
	}
	return false;
}

static void serve_pages(const struct live *l, struct handler *h, uint8_t *host, bool *served)
{
	static uint64_t src[PAGE / 8];
	unsigned bit = 0;

	for (unsigned k = 0; k < l->nr; k++) {
		for (uint64_t off = l->r[k].offset; off < l->r[k].offset + l->r[k].size;
		     off += PAGE, bit++) {
			struct uffdio_copy c = { .dst = (uintptr_t)(host + off),
						 .src = (uintptr_t)src, .len = PAGE };
			int ret;

			served[bit] = false;
			if (!(l->serve >> (bit % 32) & 1))
				continue;
			for (uint64_t i = 0; i < PAGE / 8; i++)
				src[i] = pattern(off + i * 8);
			/* Over a poison marker: refused (-EEXIST) on a kernel that keeps markers,
			 * erased by the copy on stock ones (GET /capabilities says which). */
			ret = ioctl(h->uffd, UFFDIO_COPY, &c) < 0 ? errno : 0;
			if (ret != 0 && !(ret == EEXIST && in_poison(l, off)))
				fail("UFFDIO_COPY at offset 0x%llx%s: %s", (unsigned long long)off,
				     in_poison(l, off) ? ", poisoned" : "", strerror(ret));
			served[bit] = ret == 0;
		}
	}
}

/* What snapshot_restore.c's on_handler_gone runs, then checks on every page. */
static void handler_gone(const struct live *l, struct uffd_external *x, uint8_t *host,
			 const bool *served)
{
	uint64_t want_lost = 0, lost;
	char err[256] = "";
	unsigned bit = 0;

	if (uffd_external_fail_all(x, err, sizeof(err)) < 0)
		fail("fail_all: %s", err);
	for (unsigned k = 0; k < l->nr; k++) {
		for (uint64_t off = l->r[k].offset; off < l->r[k].offset + l->r[k].size;
		     off += PAGE, bit++) {
			struct uffdio_poison p = { .range = { (uintptr_t)(host + off), PAGE } };
			int got = ioctl(x->uffd, UFFDIO_POISON, &p) < 0 ? errno : 0;

			/* A page left missing would block the read below for good: this asks
			 * first, and poisons it if so (EEXIST: present, or poisoned). */
			if (got != EEXIST)
				fail("after fail_all, page at 0x%llx was %s", (unsigned long long)off,
				     got ? strerror(got) : "still missing");
			got = read_page(host + off, off);

			if (got != (served[bit] ? 1 : 0))
				fail("after fail_all, page at 0x%llx (%s) reads %s",
				     (unsigned long long)off, served[bit] ? "served" :
				     in_poison(l, off) ? "poisoned at the start" : "never served",
				     got == 0 ? "as poisoned" : got == 1 ? "as served" : "wrong");
			want_lost += !served[bit] && !in_poison(l, off);
		}
	}
	if (x->lost_pages != want_lost)
		fail("fail_all counted %llu lost pages, not %llu",
		     (unsigned long long)x->lost_pages, (unsigned long long)want_lost);
	lost = x->lost_pages;
	if (uffd_external_fail_all(x, err, sizeof(err)) < 0 || x->lost_pages != lost)
		fail("fail_all again: %s, %llu lost pages", err, (unsigned long long)x->lost_pages);
}

static void live(struct input *in, unsigned flags)
{
	struct handler h = { -1, -1 };
	struct uffd_external x;
	bool served[GUEST_MEM_MAX_REGIONS * MAX_PAGES], wrote, gone, readable;
	struct pollfd pfd;
	char err[512] = "";
	struct live l;
	uint8_t *host;
	int memfd, ret, sock, uffd;

	read_live(in, flags, &l);
	memfd = memfd_create("fuzz-uffd-external", MFD_CLOEXEC);
	if (memfd < 0 || ftruncate(memfd, (off_t)l.total) < 0)
		fail("memfd: %s", strerror(errno));
	host = mmap(NULL, l.total, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
	if (host == MAP_FAILED)
		fail("mmap: %s", strerror(errno));

	ret = uffd_external_start(&x, flags & 8 ? "/nonexistent/kiln-fuzz.sock" : fz.path, host,
				  PAGE, l.r, l.nr, l.poison, l.nr_poison, err, sizeof(err));
	if (poison_refused(&l) || (flags & 8)) {
		/* Refused before anything connects or touches the memory. */
		if (ret >= 0 || !err[0])
			fail("started with %s (%d: %s)", flags & 8 ? "no handler" :
			     "poison ranges outside whole pages of one region", ret, err);
		if ((flags & 8) && !poison_refused(&l) &&
		    !strstr(err, "/nonexistent/kiln-fuzz.sock"))
			fail("a refusal not naming the socket: %s", err);
		if (accept4(fz.listen_fd, NULL, NULL, SOCK_NONBLOCK) >= 0 || errno != EAGAIN)
			fail("refused (%s), but connected", err);
		if (log_stderr)
			fprintf(stderr, "fuzz_uffd_external: refused: %s\n", err);
		uffd_external_stop(&x);
		goto out;
	}
	if (ret < 0)
		fail("uffd_external_start: %s", err);
	handler_accept(&h, host, l.r, l.nr);
	serve_pages(&l, &h, host, served);

	/* What the handler does then; closing its userfaultfd changes nothing for kiln. */
	if (l.action & 4) {
		close(h.uffd);
		h.uffd = -1;
	}
	wrote = l.action & 1;
	gone = l.action & 2;
	if (wrote && send(h.conn, l.bytes, l.nr_write, MSG_NOSIGNAL) != (ssize_t)l.nr_write)
		fail("the handler's send: %s", strerror(errno));
	if (gone && (l.action & 8))
		shutdown(h.conn, SHUT_WR);
	else if (gone) {
		close(h.conn);
		h.conn = -1;
	}
	pfd = (struct pollfd){ .fd = uffd_external_socket(&x), .events = POLLIN | POLLRDHUP };
	readable = poll(&pfd, 1, 0) == 1;
	if (readable != (wrote || gone))
		fail("the connection is %sreadable after the handler %s", readable ? "" : "not ",
		     gone ? "went away" : wrote ? "wrote" : "kept quiet");
	if (readable)
		handler_gone(&l, &x, host, served);
	if (log_stderr)
		fprintf(stderr, "fuzz_uffd_external: %u region(s), %zu poison range(s), handler "
			"%s: %s, %llu page(s) lost\n", l.nr, l.nr_poison, gone ? "gone" : wrote ?
			"wrote" : "quiet", readable ? "readable" : "not readable",
			(unsigned long long)x.lost_pages);

	sock = x.sock;
	uffd = x.uffd;
	uffd_external_stop(&x);
	if (x.nr_regions || fcntl(sock, F_GETFD) >= 0 || fcntl(uffd, F_GETFD) >= 0)
		fail("stop left %u regions, or an fd open", x.nr_regions);
	if (h.conn >= 0)
		close(h.conn);
	if (h.uffd >= 0)
		close(h.uffd);
out:
	munmap(host, l.total);
	close(memfd);
}

static void cleanup(void)
{
	unlink(fz.path);
	rmdir(fz.dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct sigaction sa = { .sa_sigaction = on_sigbus, .sa_flags = SA_SIGINFO };
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	const char *tmp;

	(void)argc;
	(void)argv;
	log_stderr = getenv("KILN_FUZZ_LOG") != NULL;
	if (log_setup(NULL, log_stderr ? LOG_DEBUG : LOG_OFF, false, false) < 0)
		fail("log_setup");
	/* Removed at exit; a crash leaves it behind, as run-smoke keeps its work dir then. */
	tmp = getenv("TMPDIR");
	if (snprintf(fz.dir, sizeof(fz.dir), "%s/kiln-fuzz-uffd.XXXXXX", tmp && *tmp ? tmp :
		     "/tmp") >= (int)sizeof(fz.dir) || !mkdtemp(fz.dir))
		fail("mkdtemp %s: %s", fz.dir, strerror(errno));
	snprintf(fz.path, sizeof(fz.path), "%s/handler.sock", fz.dir);
	atexit(cleanup);
	snprintf(a.sun_path, sizeof(a.sun_path), "%s", fz.path);
	fz.listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fz.listen_fd < 0 || bind(fz.listen_fd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
	    listen(fz.listen_fd, 4) < 0)
		fail("the handler's socket at %s: %s", fz.path, strerror(errno));
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGBUS, &sa, &fz.old_bus) < 0)
		fail("sigaction: %s", strerror(errno));
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct input in = { data, size };
	unsigned flags = (unsigned)take(&in, 1);

	message(&in, flags);
	if (flags & 1)
		live(&in, flags);
	return 0;
}
