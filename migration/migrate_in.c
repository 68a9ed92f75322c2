/* The migration destination: on the event loop until the VM runs (the handshake, guest memory
 * created from the source's configuration and filled by precopy, stale pages dropped, the VM
 * built from the source's state), then the uffd thread fetches every missing page from the
 * source, faults first, and the destination says COMPLETE. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "log.h"
#include "migrate_int.h"
#include "poison_log.h"
#include "vm.h"
#include "vmm.h"

#define RECV_TIMEOUT_S 60 /* the uffd thread waits this long for the source's answer */

static bool bit(const uint64_t *map, uint64_t i)
{
	return map[i / 64] >> (i % 64) & 1;
}

static void send_error(struct migration *mig, const char *text)
{
	if (mig->conn.fd < 0 || mig_conn_send(&mig->conn, MIG_ERROR, text, strlen(text)) < 0)
		return;
	if (mig_conn_flush(&mig->conn) < 0)
		log_warn("migration: the refusal could not be sent to the source");
}

/* The migration failed before the VM was built: nothing runs; kiln stays without a VM. */
static void fail_in(struct migration *mig)
{
	if (mig->conn.fd >= 0) {
		event_loop_del(&mig->vmm->loop, mig->conn.fd);
		mig_conn_free(&mig->conn);
	}
	guest_memory_destroy(&mig->mem);
	free(mig->present);
	mig->present = NULL;
}

static int on_config(struct migration *mig, const struct mig_frame *f, char *err, size_t errlen)
{
	uint64_t size, ps;
	const char *json;
	size_t len;
	int ret;

	ret = mig_config_decode(f->payload, f->len, &size, &ps, &json, &len, err, errlen);
	if (ret < 0)
		return ret;
	config_init(&mig->cfg);
	mig->have_cfg = true;
	ret = config_parse_text(&mig->cfg, "the source's configuration", json, len, err, errlen);
	if (ret < 0)
		return ret;
	if ((uint64_t)mig->cfg.machine.mem_size_mib << 20 != size ||
	    (mig->cfg.machine.huge_pages == HUGE_PAGES_2M) != (ps == (2u << 20))) {
		snprintf(err, errlen, "CONFIG: %" PRIu64 " bytes in %" PRIu64 "-byte pages do not match "
			 "its machine-config", size, ps);
		return -EPROTO;
	}
	ret = guest_memory_create(&mig->mem, size, ps != 4096);
	if (ret < 0) {
		snprintf(err, errlen, "cannot create %" PRIu64 " MiB of guest memory here: %s",
			 size >> 20, strerror(-ret));
		return ret;
	}
	mig->page_size = ps;
	mig->nr_pages = size / ps;
	mig->words = (mig->nr_pages + 63) / 64;
	mig->present = calloc(mig->words, sizeof(uint64_t));
	if (!mig->present) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	mig->state = MIG_PRECOPY;
	log_info("migration from %s: %u vCPUs, %" PRIu64 " MiB in %s pages; receiving memory",
		 mig->uri.text, mig->cfg.machine.vcpu_count, size >> 20, ps == 4096 ? "4 KiB" : "2 MiB");
	return 0;
}

static int on_pages(struct migration *mig, const struct mig_frame *f, char *err, size_t errlen)
{
	const uint8_t *data;
	uint64_t off;
	size_t n;
	int ret;

	ret = mig_pages_decode(f->payload, f->len, mig->page_size, mig->mem.size, &off, &data, &n,
			       err, errlen);
	if (ret < 0)
		return ret;
	/* Nothing has this memory yet: no vCPU, no userfaultfd, no poison. */
	memcpy(mig->mem.host + off, data, n);
	for (uint64_t p = off / mig->page_size; p < (off + n) / mig->page_size; p++)
		mig->present[p / 64] |= 1ull << (p % 64);
	mig->pages_precopy += n / mig->page_size;
	return 0;
}

/* Drops [off, off+len) from the memfd: it reads as missing again (the uffd thread fetches it). */
static int drop(struct migration *mig, uint64_t off, uint64_t len)
{
	if (fallocate(mig->mem.fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off,
		      (off_t)len) < 0)
		return -errno;
	for (uint64_t p = off / mig->page_size; p < (off + len) / mig->page_size; p++)
		mig->present[p / 64] &= ~(1ull << (p % 64));
	return 0;
}

static int on_discard(struct migration *mig, const struct mig_frame *f, char *err, size_t errlen)
{
	uint64_t off, len;
	uint32_t n;
	int ret;

	ret = mig_discard_decode(f->payload, f->len, mig->page_size, mig->mem.size, &n, err, errlen);
	for (uint32_t i = 0; ret == 0 && i < n; i++) {
		mig_discard_range(f->payload, i, &off, &len);
		ret = drop(mig, off, len);
		if (ret < 0)
			snprintf(err, errlen, "cannot drop stale pages at 0x%" PRIx64 ": %s", off,
				 strerror(-ret));
		else
			mig->pages_discarded += len / mig->page_size;
	}
	return ret;
}

/* STATE: the VM is built from it, with this memory, and started. */
static int on_state(struct migration *mig, const struct mig_frame *f, char *err, size_t errlen)
{
	struct vmm *m = mig->vmm;
	struct snapshot_image *img;
	struct vm_config cfg;
	struct vm *vm;
	char why[512];
	int ret;

	if (mig->conn.rx_len != (size_t)mig_frame_size(f->len)) {
		snprintf(err, errlen, "bytes after STATE, before the destination ran the VM");
		return -EPROTO;
	}
	img = calloc(1, sizeof(*img));
	vm = calloc(1, sizeof(*vm));
	if (!img || !vm || !(img->buf = malloc(f->len))) {
		free(img);
		free(vm);
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	memcpy(img->buf, f->payload, f->len);
	img->len = f->len;
	img->mem_fd = -1;
	img->mem_size = mig->mem.size;
	img->page_size = mig->page_size;
	img->mig = &mig->in;
	config_init(&cfg);
	ret = state_parse(img->buf, img->len, &img->view, why, sizeof(why));
	if (ret == 0)
		ret = snapshot_check_config(img, &cfg, "the migration stream", why, sizeof(why));
	if (ret < 0) {
		snprintf(err, errlen, "STATE: %s", why);
		goto err;
	}
	/* The socket is the uffd thread's from here: blocking, with a time limit per answer. */
	event_loop_del(&m->loop, mig->conn.fd);
	mig->in = (struct mig_in){ .mig = mig, .fd = mig->conn.fd };
	pthread_mutex_init(&mig->in.write_lock, NULL);
	{
		struct timeval tv = { .tv_sec = RECV_TIMEOUT_S };

		if (fcntl(mig->in.fd, F_SETFL, 0) < 0 ||
		    setsockopt(mig->in.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0) {
			ret = -errno;
			snprintf(err, errlen, "the connection: %s", strerror(errno));
			goto err;
		}
	}
	/* The source's process keeps its own logger, metrics and serial output (as a load). */
	{
		struct logger_config l = cfg.logger;
		struct serial_config s = cfg.serial;
		struct metrics_config mc = cfg.metrics;

		cfg.logger = m->cfg.logger, m->cfg.logger = l;
		cfg.serial = m->cfg.serial, m->cfg.serial = s;
		cfg.metrics = m->cfg.metrics, m->cfg.metrics = mc;
	}
	config_free(&m->cfg);
	m->cfg = cfg;
	config_init(&cfg);
	mig->img = img;
	log_clear_last_error();
	ret = vm_build(vm, &m->cfg, &m->loop, &m->metrics, m->boot_timer, img);
	if (ret < 0) {
		snprintf(err, errlen, "cannot build the microVM: %s",
			 log_last_error()[0] ? log_last_error() : strerror(-ret));
		mig->img = NULL;
		goto err;
	}
	m->vm = vm;
	m->snapshot = img;
	vm->seccomp = m->seccomp;
	ret = vm_start(vm, false);
	if (ret < 0) {
		snprintf(err, errlen, "cannot start the vCPUs: %s", strerror(-ret));
		return ret; /* the VM is asked to stop; the source resumes when we close */
	}
	mig->t_running = mig_now_ns();
	mig->state = MIG_POSTCOPY;
	pthread_mutex_lock(&mig->in.write_lock);
	ret = mig_conn_send(&mig->conn, MIG_RUNNING, NULL, 0);
	if (ret == 0) {
		do
			ret = mig_conn_flush(&mig->conn);
		while (ret == -EAGAIN);
	}
	pthread_mutex_unlock(&mig->in.write_lock);
	if (ret < 0)
		log_error("migration: telling the source the microVM runs: %s", strerror(-ret));
	log_info("migration from %s: the microVM runs here (%" PRIu64 " pages came before, %"
		 PRIu64 " stale ones dropped)", mig->uri.text, mig->pages_precopy,
		 mig->pages_discarded);
	return 0;
err:
	config_free(&cfg);
	free(img->buf);
	free(img);
	free(vm);
	return ret;
}

static int on_frame(struct migration *mig, const struct mig_frame *f, char *err, size_t errlen)
{
	switch (f->type) {
	case MIG_HELLO:
		if (mig->state != MIG_HANDSHAKE)
			break;
		{
			uint8_t hello[MIG_HELLO_LEN];
			int ret = mig_hello_check(f->payload, f->len, MIG_ROLE_SOURCE, err, errlen);

			if (ret < 0)
				return ret;
			mig_hello_encode(hello, MIG_ROLE_DESTINATION);
			if (mig_conn_send(&mig->conn, MIG_HELLO, hello, sizeof(hello)) < 0)
				return -ENOMEM;
			return 0;
		}
	case MIG_CONFIG:
		if (mig->state != MIG_HANDSHAKE || mig->have_cfg)
			break;
		return on_config(mig, f, err, errlen);
	case MIG_PAGES:
		if (mig->state != MIG_PRECOPY)
			break;
		return on_pages(mig, f, err, errlen);
	case MIG_DISCARD:
		if (mig->state != MIG_PRECOPY)
			break;
		return on_discard(mig, f, err, errlen);
	case MIG_STATE:
		if (mig->state != MIG_PRECOPY)
			break;
		return on_state(mig, f, err, errlen);
	case MIG_ERROR:
		mig_error_text(f->payload, f->len, err, errlen);
		return -ECONNABORTED;
	default:
		break;
	}
	snprintf(err, errlen, "the source sent %s during %s", mig_type_name(f->type),
		 mig_state_name(mig->state));
	return -EPROTO;
}

static void on_conn(void *opaque, int fd, uint32_t events)
{
	struct migration *mig = opaque;
	char err[MIG_MAX_ERROR + 128] = "";
	struct mig_frame f;
	long n;
	int ret;

	(void)fd;
	(void)events;
	ret = mig_conn_recv(&mig->conn);
	if (ret == -EAGAIN)
		return;
	if (ret <= 0) {
		mig_fail(mig, "the source went away before the microVM ran here (%s)",
			 ret ? strerror(-ret) : "end of stream");
		fail_in(mig);
		return;
	}
	while ((n = mig_conn_frame(&mig->conn, &f, err, sizeof(err))) > 0) {
		ret = on_frame(mig, &f, err, sizeof(err));
		if (ret < 0 || mig->state == MIG_POSTCOPY)
			break;
		mig_conn_consume(&mig->conn, (size_t)n);
	}
	if (n < 0)
		ret = (int)n;
	if (ret < 0 && mig->state != MIG_POSTCOPY) {
		mig_fail(mig, "%s", err);
		if (ret != -ECONNABORTED)
			send_error(mig, err);
		fail_in(mig);
		if (mig->vmm->vm)
			vm_request_exit(mig->vmm->vm, VM_EXIT_ERROR);
		return;
	}
	if (mig->state == MIG_POSTCOPY) {
		mig->conn.rx_len = 0; /* the STATE frame, handled */
		return;
	}
	ret = mig_conn_flush(&mig->conn);
	if (ret < 0 && ret != -EAGAIN) {
		mig_fail(mig, "sending to the source: %s", strerror(-ret));
		fail_in(mig);
	}
}

static void on_accept(void *opaque, int fd, uint32_t events)
{
	struct migration *mig = opaque;
	int c, ret;

	(void)events;
	c = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (c < 0)
		return;
	event_loop_del(&mig->vmm->loop, fd);
	close(fd);
	mig->listen_fd = -1;
	if (mig->uri.family == AF_UNIX)
		unlink(((struct sockaddr_un *)&mig->uri.addr)->sun_path);
	ret = mig_conn_init(&mig->conn, c);
	if (ret == 0)
		ret = event_loop_add(&mig->vmm->loop, c, EPOLLIN, on_conn, mig);
	if (ret < 0) {
		close(c);
		mig->conn.fd = -1;
		mig_fail(mig, "cannot take the connection: %s", strerror(-ret));
		return;
	}
	mig->state = MIG_HANDSHAKE;
	mig->t_start = mig_now_ns();
	log_info("migration: a source connected on %s", mig->uri.text);
}

int migration_incoming(struct vmm *m, const char *uri, char *err, size_t errlen)
{
	struct migration *mig;
	int fd, ret, one = 1;

	if (m->vm) {
		snprintf(err, errlen, "this kiln already has a microVM; migrate into a fresh one");
		return -EINVAL;
	}
	if (m->mig && m->mig->state != MIG_FAILED) {
		snprintf(err, errlen, "a migration is %s already", mig_state_name(m->mig->state));
		return -EBUSY;
	}
	mig = calloc(1, sizeof(*mig));
	if (!mig) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	mig->vmm = m;
	mig->conn.fd = -1;
	mig->mem.fd = -1;
	ret = mig_uri_parse(&mig->uri, uri, err, errlen);
	if (ret < 0) {
		free(mig);
		return ret;
	}
	fd = socket(mig->uri.family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		ret = -errno;
		snprintf(err, errlen, "socket: %s", strerror(errno));
		free(mig);
		return ret;
	}
	if (mig->uri.family != AF_UNIX)
		(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&mig->uri.addr, mig->uri.addr_len) < 0 || listen(fd, 1) < 0) {
		ret = -errno;
		snprintf(err, errlen, "cannot listen on %s: %s", mig->uri.text, strerror(errno));
		close(fd);
		free(mig);
		return ret;
	}
	mig->listen_fd = fd;
	ret = event_loop_add(&m->loop, fd, EPOLLIN, on_accept, mig);
	if (ret < 0) {
		snprintf(err, errlen, "event loop: %s", strerror(-ret));
		close(fd);
		free(mig);
		return ret;
	}
	migration_destroy(m);
	m->mig = mig;
	mig->state = MIG_LISTENING;
	log_info("migration: waiting for a source on %s", mig->uri.text);
	return 0;
}

/* --- the VM build's memory step, and the uffd thread's page source --- */

int mig_in_take_memory(struct mig_in *in, struct guest_memory *gm)
{
	struct migration *mig = in->mig;

	if (mig->mem.fd < 0)
		return -EINVAL;
	*gm = mig->mem;
	mig->mem = (struct guest_memory){ .fd = -1 };
	return 0;
}

/* Blocking: reads from the source until rx holds a whole frame. 0, or -errno (logged). */
static int read_frame(struct mig_in *in, struct mig_frame *f, long *size)
{
	char err[256];
	size_t need = 0;

	for (;;) {
		long n = mig_frame_parse(in->rx, in->rx_len, f, &need, err, sizeof(err));
		ssize_t r;

		if (n < 0) {
			log_error("migration: from the source: %s", err);
			return (int)n;
		}
		if (n > 0) {
			*size = n;
			return 0;
		}
		if (need > in->rx_cap) {
			uint8_t *p = need <= mig_frame_size(MIG_MAX_PAGES_BYTES + 64) ?
				     realloc(in->rx, need) : NULL;

			if (!p) {
				log_error("migration: the source sent a %zu-byte frame while pages "
					  "were expected", need);
				return -EPROTO;
			}
			in->rx = p;
			in->rx_cap = need;
		}
		do
			r = read(in->fd, in->rx + in->rx_len, in->rx_cap - in->rx_len);
		while (r < 0 && errno == EINTR);
		if (r <= 0) {
			int e = r < 0 ? errno : ECONNRESET;

			log_error("migration: %s while pages were missing",
				  r == 0 ? "the source closed the connection" :
				  e == EAGAIN ? "the source did not answer for 60 s" :
				  e == ECONNRESET ? "the connection to the source was reset" : strerror(e));
			return -e;
		}
		in->rx_len += (size_t)r;
		__atomic_add_fetch(&in->mig->conn.bytes_in, (uint64_t)r, __ATOMIC_RELAXED);
	}
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

/* The page source: a REQUEST, then its answers in order (PAGES, or POISONED: recorded in the
 * VM's poison log, and the range is -EHWPOISON, which the uffd server asks again page by page). */
static int source_read(void *opaque, uint64_t off, void *dst, size_t len)
{
	struct mig_in *in = opaque;
	struct migration *mig = in->mig;
	uint8_t frame[MIG_FRAME_HEADER + MIG_RANGE_LEN + MIG_FRAME_TRAILER];
	uint64_t at = off, ps = mig->page_size;
	bool poisoned = false;
	int ret;

	mig_range_encode(mig_frame_payload(frame), off, len);
	mig_frame_seal(frame, MIG_REQUEST, MIG_RANGE_LEN);
	pthread_mutex_lock(&in->write_lock);
	ret = write_all(in->fd, frame, sizeof(frame));
	pthread_mutex_unlock(&in->write_lock);
	if (ret < 0) {
		log_error("migration: asking the source for pages: %s", strerror(-ret));
		return ret;
	}
	in->requests++;
	while (at < off + len) {
		struct mig_frame f;
		const uint8_t *data;
		uint64_t o, n;
		size_t bytes;
		long size = 0;
		char err[256];

		ret = read_frame(in, &f, &size);
		if (ret < 0)
			return ret;
		if (f.type == MIG_PAGES) {
			ret = mig_pages_decode(f.payload, f.len, ps, mig->nr_pages * ps, &o, &data,
					       &bytes, err, sizeof(err));
			n = bytes;
			if (ret == 0 && (o != at || o + n > off + len))
				ret = -EPROTO, snprintf(err, sizeof(err), "PAGES at 0x%" PRIx64
						       " answers a request for 0x%" PRIx64, o, at);
			if (ret == 0)
				memcpy((uint8_t *)dst + (at - off), data, n);
		} else if (f.type == MIG_POISONED) {
			ret = mig_range_decode(f.payload, f.len, ps, mig->nr_pages * ps, &o, &n, err,
					       sizeof(err));
			if (ret == 0 && (o != at || o + n > off + len))
				ret = -EPROTO, snprintf(err, sizeof(err), "POISONED at 0x%" PRIx64
						       " answers a request for 0x%" PRIx64, o, at);
			if (ret == 0) {
				uint64_t gpa;

				poisoned = true;
				if (guest_memory_gpa_of_offset(&in->vm->mem, o, &gpa) &&
				    poison_log_add(&in->vm->poison, gpa, n, POISON_INHERITED) < 0)
					log_error("migration: the poison log cannot record 0x%" PRIx64
						  " (it is poisoned all the same)", gpa);
			}
		} else {
			ret = -EPROTO;
			snprintf(err, sizeof(err), "%s where pages were expected",
				 mig_type_name(f.type));
		}
		memmove(in->rx, in->rx + size, in->rx_len - (size_t)size);
		in->rx_len -= (size_t)size;
		if (ret < 0) {
			log_error("migration: the source's answer: %s", err);
			return ret;
		}
		at = o + n;
	}
	return poisoned ? -EHWPOISON : 0;
}

int mig_in_memory_source(struct mig_in *in, struct vm *vm, const struct uffd_range *poison,
			 size_t nr_poison, struct page_source *src, const uint64_t **present)
{
	struct migration *mig = in->mig;
	int ret;

	in->vm = vm;
	in->rx_cap = mig_frame_size(MIG_MAX_PAGES_BYTES + 64);
	in->rx = malloc(in->rx_cap);
	if (!in->rx)
		return -ENOMEM;
	/* A page poisoned on the source after it was sent is here with its old data: dropped, so
	 * that the uffd server can mark it. */
	for (size_t i = 0; i < nr_poison; i++) {
		bool any = false;

		for (uint64_t p = poison[i].off / mig->page_size;
		     p < (poison[i].off + poison[i].len) / mig->page_size; p++)
			any |= bit(mig->present, p);
		if (any && (ret = drop(mig, poison[i].off, poison[i].len)) < 0) {
			log_error("migration: cannot drop a poisoned page's old copy at 0x%" PRIx64
				  ": %s", poison[i].off, strerror(-ret));
			return ret;
		}
	}
	*src = (struct page_source){ .read = source_read, .opaque = in };
	*present = mig->present;
	return 0;
}

void mig_in_memory_done(struct mig_in *in, const struct uffd_server_stats *st)
{
	struct migration *mig = in->mig;
	int ret;

	mig->uffd_stats = *st;
	mig->uffd_done = true;
	mig->t_end = mig_now_ns();
	if (st->error) {
		mig_fail(mig, "guest memory could not be fetched from the source (%s): the microVM "
			 "is lost", strerror(-st->error));
		return;
	}
	pthread_mutex_lock(&in->write_lock);
	ret = mig_conn_send(&mig->conn, MIG_COMPLETE, NULL, 0);
	if (ret == 0)
		ret = mig_conn_flush(&mig->conn);
	pthread_mutex_unlock(&in->write_lock);
	if (ret < 0)
		log_warn("migration: telling the source every page is here: %s", strerror(-ret));
	mig_conn_free(&mig->conn);
	mig->in.fd = -1;
	mig->state = MIG_COMPLETED;
	log_info("migration from %s completed in %" PRIu64 " ms: %" PRIu64 " pages before the "
		 "microVM ran, %" PRIu64 " fetched on fault (p50 %" PRIu64 " us, p99 %" PRIu64
		 " us), %" PRIu64 " in the background, %" PRIu64 " poisoned", mig->uri.text,
		 (mig->t_end - mig->t_start) / 1000000, mig->pages_precopy, st->fault_pages,
		 st->fault_ns_p50 / 1000, st->fault_ns_p99 / 1000, st->background_pages,
		 st->poisoned_pages);
}

void mig_in_status(struct migration *mig, json_t *j)
{
	struct uffd_server_stats st = mig->uffd_stats;

	if (!mig->uffd_done && mig->vmm->vm && mig->vmm->vm->pager)
		snapshot_pager_stats(mig->vmm->vm, &st);
	json_object_set_new(j, "pages_received", json_integer((json_int_t)mig->pages_precopy));
	json_object_set_new(j, "requests", json_integer((json_int_t)mig->in.requests));
	json_object_set_new(j, "faults", json_integer((json_int_t)st.faults));
	json_object_set_new(j, "pages_on_fault", json_integer((json_int_t)st.fault_pages));
	json_object_set_new(j, "pages_background", json_integer((json_int_t)st.background_pages));
	json_object_set_new(j, "pages_poisoned", json_integer((json_int_t)st.poisoned_pages));
	json_object_set_new(j, "fault_p50_us", json_integer((json_int_t)(st.fault_ns_p50 / 1000)));
	json_object_set_new(j, "fault_p99_us", json_integer((json_int_t)(st.fault_ns_p99 / 1000)));
}

void mig_in_destroy(struct migration *mig)
{
	if (mig->listen_fd >= 0) {
		event_loop_del(&mig->vmm->loop, mig->listen_fd);
		close(mig->listen_fd);
		if (mig->uri.family == AF_UNIX)
			unlink(((struct sockaddr_un *)&mig->uri.addr)->sun_path);
	}
	if (mig->conn.fd >= 0 && mig->state != MIG_POSTCOPY)
		event_loop_del(&mig->vmm->loop, mig->conn.fd);
	mig_conn_free(&mig->conn);
	guest_memory_destroy(&mig->mem);
	free(mig->present);
	free(mig->in.rx);
	if (mig->have_cfg)
		config_free(&mig->cfg);
}
