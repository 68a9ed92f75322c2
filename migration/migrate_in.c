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
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "device_config.h"
#include "log.h"
#include "migrate_int.h"
#include "poison_log.h"
#include "vm.h"
#include "vmm.h"

#define RECV_TIMEOUT_S 60 /* the uffd thread waits this long for the source's answer */
#define PUMP_IDLE_MS 500  /* no stream this long: the uffd thread asks for a missing page */
#define RECV_BUFFER (64 << 10) /* the connection's receive buffer once the VM runs here */

static bool bit(const uint64_t *map, uint64_t i)
{
	return map[i / 64] >> (i % 64) & 1;
}

static int write_all(int fd, const uint8_t *p, size_t n);

/* Tells the source why, on whichever side of the hand-over the connection is. */
static void send_error(struct migration *mig, const char *text)
{
	size_t len = strlen(text) < MIG_MAX_ERROR ? strlen(text) : MIG_MAX_ERROR;
	uint8_t *frame;
	int ret = -ENOTCONN;

	if (mig->conn.fd >= 0) {
		if (mig_conn_send(&mig->conn, MIG_ERROR, text, len) == 0)
			ret = mig_conn_flush(&mig->conn);
	} else if (mig->in.ready && mig->in.fd >= 0 &&
		   (frame = malloc(mig_frame_size(len))) != NULL) {
		mig_frame_put(frame, MIG_ERROR, text, len);
		pthread_mutex_lock(&mig->in.write_lock);
		ret = write_all(mig->in.fd, frame, mig_frame_size(len));
		pthread_mutex_unlock(&mig->in.write_lock);
		free(frame);
	}
	if (ret < 0)
		log_warn("migration: the refusal could not be sent to the source");
}

/* The migration failed before the VM ran here: nothing runs; kiln stays without a VM, and the
 * source, seeing the connection close, resumes the VM. */
static void fail_in(struct migration *mig)
{
	if (mig->conn.fd >= 0) {
		event_loop_del(&mig->vmm->loop, mig->conn.fd);
		mig_conn_free(&mig->conn);
	}
	if (mig->in.ready && mig->in.fd >= 0) { /* handed over already: the VM build failed */
		pthread_mutex_lock(&mig->in.write_lock);
		close(mig->in.fd);
		mig->in.fd = -1;
		pthread_mutex_unlock(&mig->in.write_lock);
	}
	guest_memory_destroy(&mig->mem);
	free(mig->present);
	mig->present = NULL;
}

static int on_config(struct migration *mig, const struct mig_frame *f, char *err, size_t errlen)
{
	struct vm_config cfg;
	uint64_t size, ps;
	unsigned vcpus;
	const char *json;
	size_t len;
	int ret;

	ret = mig_config_decode(f->payload, f->len, &size, &ps, &json, &len, err, errlen);
	if (ret < 0)
		return ret;
	/* Checked now, before memory is made for it; STATE brings it again, for the VM. */
	config_init(&cfg);
	ret = config_parse_text(&cfg, "the source's configuration", json, len, err, errlen);
	vcpus = cfg.machine.vcpu_count;
	if (ret == 0 && ((uint64_t)cfg.machine.mem_size_mib << 20 != size ||
			 (cfg.machine.huge_pages == HUGE_PAGES_2M) != (ps == (2u << 20)))) {
		snprintf(err, errlen, "CONFIG: %" PRIu64 " bytes in %" PRIu64 "-byte pages do not match "
			 "its machine-config", size, ps);
		ret = -EPROTO;
	}
	config_free(&cfg);
	if (ret < 0)
		return ret;
	ret = guest_memory_create(&mig->mem, size, ps != 4096);
	if (ret < 0) {
		snprintf(err, errlen, "cannot create %" PRIu64 " MiB of guest memory here: %s",
			 size >> 20, strerror(-ret));
		return ret;
	}
	mig->page_size = ps;
	mig->nr_pages = size / ps;
	mig->present = calloc((mig->nr_pages + 63) / 64, sizeof(uint64_t));
	if (!mig->present) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	mig->state = MIG_PRECOPY;
	log_info("migration from %s: %u vCPUs, %" PRIu64 " MiB in %s pages; receiving memory",
		 mig->uri.text, vcpus, size >> 20, ps == 4096 ? "4 KiB" : "2 MiB");
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

/* Sends an empty frame of type on the uffd thread's connection. 0 or -errno. */
static int send_empty(struct mig_in *in, uint32_t type)
{
	uint8_t frame[MIG_FRAME_HEADER + MIG_FRAME_TRAILER];
	int ret;

	mig_frame_seal(frame, type, 0);
	pthread_mutex_lock(&in->write_lock);
	ret = in->fd >= 0 ? write_all(in->fd, frame, sizeof(frame)) : -ENOTCONN;
	pthread_mutex_unlock(&in->write_lock);
	return ret;
}

/* Makes fd blocking, with a time limit on each answer awaited. 0 or -errno. */
static int make_blocking(int fd)
{
	struct timeval tv = { .tv_sec = RECV_TIMEOUT_S };
	int rcvbuf = RECV_BUFFER;

	if (fcntl(fd, F_SETFL, 0) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0)
		return -errno;
	/* Postcopy's stream must not pile up ahead of the answers to the uffd thread's requests
	 * (TCP would grow the buffer to megabytes). */
	if (setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf)) < 0)
		log_warn("migration: SO_RCVBUF: %s", strerror(errno));
	return 0;
}

/* The uffd thread's side of the connection, fd handed over. 0, or -errno with err. */
static int in_init(struct migration *mig, int fd, char *err, size_t errlen)
{
	struct mig_in *in = &mig->in;
	pthread_condattr_t ca;
	int ret = make_blocking(fd);

	if (ret < 0) {
		snprintf(err, errlen, "the connection: %s", strerror(-ret));
		return ret;
	}
	*in = (struct mig_in){ .mig = mig, .fd = fd, .new_fd = -1,
			       .recover_timeout_ms = mig->recover_timeout_ms };
	in->event_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (in->event_fd < 0) {
		ret = -errno;
		snprintf(err, errlen, "eventfd: %s", strerror(errno));
		in->fd = -1;
		return ret;
	}
	pthread_mutex_init(&in->write_lock, NULL);
	pthread_mutex_init(&in->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&in->cond, &ca);
	pthread_condattr_destroy(&ca);
	in->ready = true;
	return 0;
}

/* The uffd thread says the connection broke: postcopy waits for PUT /migration/recover. */
static void on_broken(void *opaque, int fd, uint32_t events)
{
	struct migration *mig = opaque;
	uint64_t n;

	(void)events;
	if (read(fd, &n, sizeof(n)) < 0)
		return;
	if (mig->state != MIG_POSTCOPY)
		return;
	mig->state = MIG_BROKEN;
	log_error("migration from %s: the connection to the source broke while pages are "
		  "missing; vCPUs that touch one wait. PUT /migration/recover {\"uri\"} within %u ms "
		  "(then on the source), or the missing pages are poisoned and the microVM is lost",
		  mig->uri.text, mig->recover_timeout_ms);
}

/*
 * Refuses a STATE whose poison log this kernel cannot keep: without UFFDIO_POISON the uffd thread
 * could only leave those pages readable. 0, or -EOPNOTSUPP with the reason in err.
 */
static int check_poison(struct migration *mig, const struct snapshot_image *img, char *err,
			size_t errlen)
{
	char why[256];
	size_t nr = 0;

	if (snapshot_count_poison(img, &nr, why, sizeof(why)) < 0 || nr == 0)
		return 0; /* a missing or malformed log: the VM build says so */
	if (uffd_poison_supported(mig->page_size, why, sizeof(why)) == 0)
		return 0;
	snprintf(err, errlen, "the destination cannot take a microVM with %zu poisoned range(s): "
		 "%s (the destination's GET /capabilities: uffd_poison_reason)", nr, why);
	return -EOPNOTSUPP;
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

	if (mig->conn.rx_len - mig->conn.rx_off != (size_t)mig_frame_size(f->len)) {
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
	if (ret == 0 && mig->overrides)
		ret = config_apply_overrides(&cfg, mig->overrides, why, sizeof(why));
	if (ret < 0) {
		snprintf(err, errlen, "STATE: %s", why);
		goto err;
	}
	ret = check_poison(mig, img, err, errlen);
	if (ret < 0)
		goto err;
	/* The socket is the uffd thread's from here: blocking, with a time limit per answer. */
	event_loop_del(&m->loop, mig->conn.fd);
	ret = in_init(mig, mig->conn.fd, err, errlen);
	if (ret < 0)
		goto err;
	mig->conn.fd = -1;
	vmm_adopt_config(m, &cfg);
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
	ret = event_loop_add(&m->loop, mig->in.event_fd, EPOLLIN, on_broken, mig);
	if (ret < 0) {
		snprintf(err, errlen, "event loop: %s", strerror(-ret));
		vm_request_exit(vm, VM_EXIT_ERROR);
		return ret;
	}
	ret = vm_start(vm, false);
	if (ret < 0) {
		snprintf(err, errlen, "cannot start the vCPUs: %s", strerror(-ret));
		return ret; /* the VM is asked to stop; the source resumes when we close */
	}
	mig->t_running = mig_now_ns();
	mig->state = MIG_POSTCOPY;
	ret = send_empty(&mig->in, MIG_RUNNING);
	if (ret < 0)
		log_error("migration: telling the source the microVM runs: %s", strerror(-ret));
	pthread_mutex_lock(&mig->in.lock);
	mig->in.running = ret == 0;
	pthread_mutex_unlock(&mig->in.lock);
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
		if (mig->state != MIG_HANDSHAKE || mig->mem.fd >= 0)
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
		mig->conn.rx_len = mig->conn.rx_off = 0; /* the STATE frame, handled */
		return;
	}
	ret = mig_conn_flush(&mig->conn);
	if (ret < 0 && ret != -EAGAIN) {
		mig_fail(mig, "sending to the source: %s", strerror(-ret));
		fail_in(mig);
	}
}

/* Listens at mig->uri, with fn on the loop for the connection. 0, or -errno with err. */
static int listen_at(struct migration *mig, event_fn fn, char *err, size_t errlen)
{
	int fd = socket(mig->uri.family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), ret, one = 1;

	if (fd < 0) {
		ret = -errno;
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return ret;
	}
	if (mig->uri.family != AF_UNIX &&
	    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0)
		log_warn("migration: SO_REUSEADDR: %s", strerror(errno));
	if (bind(fd, (struct sockaddr *)&mig->uri.addr, mig->uri.addr_len) < 0 || listen(fd, 1) < 0) {
		ret = -errno;
		snprintf(err, errlen, "cannot listen on %s: %s", mig->uri.text, strerror(errno));
		close(fd);
		return ret;
	}
	ret = event_loop_add(&mig->vmm->loop, fd, EPOLLIN, fn, mig);
	if (ret < 0) {
		snprintf(err, errlen, "event loop: %s", strerror(-ret));
		close(fd);
		return ret;
	}
	mig->listen_fd = fd;
	return 0;
}

/* Takes the one connection the listener waits for into mig->conn, on the loop with fn. */
static int take_conn(struct migration *mig, int lfd, event_fn fn)
{
	int c = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC), ret;

	if (c < 0)
		return -errno;
	event_loop_del(&mig->vmm->loop, lfd);
	close(lfd);
	mig->listen_fd = -1;
	if (mig->uri.family == AF_UNIX)
		unlink(((struct sockaddr_un *)&mig->uri.addr)->sun_path);
	mig_conn_free(&mig->conn);
	ret = mig_conn_init(&mig->conn, c);
	if (ret == 0)
		ret = event_loop_add(&mig->vmm->loop, c, EPOLLIN, fn, mig);
	if (ret < 0) {
		mig_conn_free(&mig->conn);
		return ret;
	}
	return 0;
}

/* A recovery connection: the source's HELLO, ours, then RESUME; the socket then goes to the uffd
 * thread, which has waited for it. Anything else drops the connection: postcopy stays paused. */
static void on_recover_conn(void *opaque, int fd, uint32_t events)
{
	struct migration *mig = opaque;
	char err[MIG_MAX_ERROR + 128] = "";
	struct mig_frame f;
	uint8_t hello[MIG_HELLO_LEN];
	long n;
	int ret = mig_conn_recv(&mig->conn);

	(void)events;
	if (ret == -EAGAIN)
		return;
	if (ret <= 0) {
		snprintf(err, sizeof(err), "the source went away (%s)",
			 ret ? strerror(-ret) : "end of stream");
		goto drop;
	}
	while ((n = mig_conn_frame(&mig->conn, &f, err, sizeof(err))) > 0) {
		if (f.type == MIG_HELLO) {
			if (mig_hello_check(f.payload, f.len, MIG_ROLE_SOURCE, err, sizeof(err)) < 0)
				goto drop;
			mig_hello_encode(hello, MIG_ROLE_DESTINATION);
			if (mig_conn_send(&mig->conn, MIG_HELLO, hello, sizeof(hello)) < 0 ||
			    mig_conn_flush(&mig->conn) < 0) {
				snprintf(err, sizeof(err), "cannot answer the source's HELLO");
				goto drop;
			}
			mig_conn_consume(&mig->conn, (size_t)n);
			continue;
		}
		if (f.type != MIG_RESUME) {
			snprintf(err, sizeof(err), "the source sent %s where RESUME was expected",
				 mig_type_name(f.type));
			goto drop;
		}
		/* The source streams again right after RESUME: what came with it goes over too. */
		mig_conn_consume(&mig->conn, (size_t)n);
		event_loop_del(&mig->vmm->loop, fd);
		ret = make_blocking(fd);
		pthread_mutex_lock(&mig->in.lock);
		if (ret == 0 && mig->in.broken) {
			size_t left = mig->conn.rx_len - mig->conn.rx_off;

			free(mig->in.carry);
			mig->in.carry = left ? malloc(left) : NULL;
			mig->in.carry_len = mig->in.carry ? left : 0;
			if (mig->in.carry)
				memcpy(mig->in.carry, mig->conn.rx + mig->conn.rx_off, left);
			if (left && !mig->in.carry)
				ret = -ENOMEM;
			else
				mig->in.new_fd = fd;
			pthread_cond_broadcast(&mig->in.cond);
		} else if (ret == 0) {
			ret = -ETIMEDOUT;
		}
		pthread_mutex_unlock(&mig->in.lock);
		if (ret < 0) {
			snprintf(err, sizeof(err), "%s", ret == -ETIMEDOUT ? "too late: the missing "
				 "pages were given up" : strerror(-ret));
			goto drop;
		}
		mig->conn.fd = -1; /* the uffd thread's now */
		mig->conn.rx_len = mig->conn.rx_off = 0;
		mig->state = MIG_POSTCOPY;
		mig->recoveries++;
		log_info("migration from %s: postcopy resumes", mig->uri.text);
		return;
	}
	if (n == 0)
		return;
drop:
	log_error("migration: recovering through %s: %s", mig->uri.text, err);
	if (mig->conn.fd >= 0) {
		send_error(mig, err);
		event_loop_del(&mig->vmm->loop, mig->conn.fd);
		close(mig->conn.fd);
		mig->conn.fd = -1;
	}
}

static void on_recover_accept(void *opaque, int fd, uint32_t events)
{
	struct migration *mig = opaque;
	int ret;

	(void)events;
	ret = take_conn(mig, fd, on_recover_conn);
	if (ret < 0 && ret != -EAGAIN)
		log_error("migration: taking the recovery connection: %s", strerror(-ret));
	else if (ret == 0)
		log_info("migration: a source connected on %s to recover", mig->uri.text);
}

int mig_in_recover(struct migration *mig, const char *uri, char *err, size_t errlen)
{
	struct mig_uri u;
	int ret = mig_uri_parse(&u, uri, err, errlen);

	if (ret < 0)
		return ret;
	if (mig->listen_fd >= 0) {
		snprintf(err, errlen, "already listening at %s", mig->uri.text);
		return -EBUSY;
	}
	mig->uri = u;
	ret = listen_at(mig, on_recover_accept, err, errlen);
	if (ret == 0)
		log_info("migration: waiting on %s for the source to recover postcopy", u.text);
	return ret;
}

static void on_accept(void *opaque, int fd, uint32_t events)
{
	struct migration *mig = opaque;
	int ret;

	(void)events;
	ret = take_conn(mig, fd, on_conn);
	if (ret == -EAGAIN)
		return;
	if (ret < 0) {
		mig_fail(mig, "cannot take the connection: %s", strerror(-ret));
		return;
	}
	mig->state = MIG_HANDSHAKE;
	mig->t_start = mig_now_ns();
	log_info("migration: a source connected on %s", mig->uri.text);
}

int migration_incoming(struct vmm *m, const char *uri, unsigned recover_timeout_ms,
		       json_t *overrides, char *err, size_t errlen)
{
	struct migration *mig;
	int ret;

	if (m->vm) {
		snprintf(err, errlen, "this kiln already has a microVM; migrate into a fresh one");
		return -EINVAL;
	}
	mig = mig_new(m, false, uri, err, errlen);
	if (!mig)
		return -EINVAL;
	mig->recover_timeout_ms = recover_timeout_ms;
	mig->overrides = json_incref(overrides);
	ret = listen_at(mig, on_accept, err, errlen);
	if (ret < 0) {
		json_decref(mig->overrides);
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

			if (__atomic_load_n(&in->abandoned, __ATOMIC_RELAXED))
				return -ECONNRESET; /* main shut the reading side: the VM goes away */
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

static void consume(struct mig_in *in, long size)
{
	memmove(in->rx, in->rx + size, in->rx_len - (size_t)size);
	in->rx_len -= (size_t)size;
}

/* A PUSH frame: its pages go in, those not present yet. 0, or -errno with err. */
static int take_push(struct mig_in *in, const struct mig_frame *f, char *err, size_t errlen)
{
	struct migration *mig = in->mig;
	const uint8_t *data;
	uint64_t o;
	size_t bytes;
	int ret = mig_pages_decode(f->payload, f->len, mig->page_size, mig->nr_pages * mig->page_size,
				   &o, &data, &bytes, err, errlen);

	if (ret < 0)
		return ret;
	in->pushed += bytes / mig->page_size;
	ret = uffd_server_deliver(in->server, o, data, bytes);
	if (ret < 0)
		snprintf(err, errlen, "copying pages in at 0x%" PRIx64 ": %s", o, strerror(-ret));
	return ret;
}

/* One REQUEST, then its answers in order (PAGES, or POISONED: recorded in the VM's poison log,
 * and the range is -EHWPOISON, which the uffd server asks again page by page). */
static int request(struct mig_in *in, uint64_t off, void *dst, size_t len)
{
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
		return ret == -EPIPE ? -ECONNRESET : ret;
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
		if (f.type == MIG_PUSH) {
			ret = take_push(in, &f, err, sizeof(err));
			consume(in, size);
			if (ret < 0) {
				log_error("migration: the source's stream: %s", err);
				return ret;
			}
			continue;
		}
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
		consume(in, size);
		if (ret < 0) {
			log_error("migration: the source's answer: %s", err);
			return ret;
		}
		at = o + n;
	}
	return poisoned ? -EHWPOISON : 0;
}

/* Waits, on the uffd thread, for main to hand over a recovered connection. 0, or -ECONNRESET
 * once recover_timeout_ms passed without one. */
static int reconnect(struct mig_in *in)
{
	uint64_t one = 1, ns = (uint64_t)in->recover_timeout_ms * 1000000ull;
	struct timespec dl;
	int fd, r = 0;

	clock_gettime(CLOCK_MONOTONIC, &dl);
	dl.tv_sec += (time_t)(ns / 1000000000ull);
	dl.tv_nsec += (long)(ns % 1000000000ull);
	if (dl.tv_nsec >= 1000000000) {
		dl.tv_sec++;
		dl.tv_nsec -= 1000000000;
	}
	pthread_mutex_lock(&in->lock);
	if (!in->running || in->abandoned) {
		/* Before RUNNING the source still has the VM and resumes it: nothing to recover. */
		pthread_mutex_unlock(&in->lock);
		log_error("migration: the connection to the source is gone before the microVM ran "
			  "here%s", in->abandoned ? " (the microVM is going away)" : "");
		return -ECONNRESET;
	}
	in->broken = true;
	if (write(in->event_fd, &one, sizeof(one)) < 0)
		log_warn("migration: cannot tell the main thread the connection broke");
	while (in->new_fd < 0 && !in->abandoned && r == 0)
		r = pthread_cond_timedwait(&in->cond, &in->lock, &dl);
	fd = in->new_fd;
	in->new_fd = -1;
	in->broken = false;
	in->rx_len = 0;
	if (fd >= 0 && in->carry && in->carry_len <= in->rx_cap) {
		memcpy(in->rx, in->carry, in->carry_len);
		in->rx_len = in->carry_len;
	}
	free(in->carry);
	in->carry = NULL;
	in->carry_len = 0;
	pthread_mutex_unlock(&in->lock);
	if (fd < 0) {
		log_error("migration: no new connection from the source within %u ms: it is taken "
			  "as gone", in->recover_timeout_ms);
		return -ECONNRESET;
	}
	pthread_mutex_lock(&in->write_lock);
	close(in->fd);
	in->fd = fd;
	pthread_mutex_unlock(&in->write_lock);
	log_info("migration: the uffd thread goes on through the recovered connection");
	return 0;
}

static bool broken(int ret)
{
	return ret == -ECONNRESET || ret == -EAGAIN || ret == -ETIMEDOUT || ret == -ENOTCONN;
}

/* The page source: a request, again through a recovered connection when this one broke. */
static int source_read(void *opaque, uint64_t off, void *dst, size_t len)
{
	struct mig_in *in = opaque;
	int ret;

	while (broken(ret = request(in, off, dst, len)))
		if (reconnect(in) < 0)
			return ret;
	return ret;
}

/*
 * The page source's pump: takes the source's stream (PUSH frames) until a fault waits. When the
 * stream has nothing for PUMP_IDLE_MS (it has not begun, or a recovery lost part of it), the
 * missing pages are asked for instead, a chunk at a time, until the stream comes back.
 */
static int source_pump(void *opaque, struct uffd_server *s, int uffd_fd)
{
	struct mig_in *in = opaque;
	struct pollfd p[2] = { { .fd = in->fd, .events = POLLIN }, { .fd = uffd_fd, .events = POLLIN } };
	struct mig_frame f;
	char err[256];
	long size = 0;
	int ret, n;

	if (mig_frame_parse(in->rx, in->rx_len, &f, NULL, err, sizeof(err)) == 0) {
		n = poll(p, 2, in->stream_idle ? 0 : PUMP_IDLE_MS);
		if (n < 0)
			return errno == EINTR ? 0 : -errno;
		if (p[1].revents)
			return 0; /* a fault: the server serves it first */
		if (n == 0) {
			in->stream_idle = true;
			return uffd_server_fetch_missing(s);
		}
	}
	ret = read_frame(in, &f, &size);
	if (broken(ret))
		return reconnect(in) < 0 ? ret : 0;
	if (ret < 0)
		return ret;
	if (f.type != MIG_PUSH) {
		log_error("migration: the source sent %s unasked", mig_type_name(f.type));
		consume(in, size);
		return -EPROTO;
	}
	in->stream_idle = false;
	ret = take_push(in, &f, err, sizeof(err));
	consume(in, size);
	if (ret < 0)
		log_error("migration: the source's stream: %s", err);
	return ret;
}


int mig_in_memory_source(struct mig_in *in, struct vm *vm, struct uffd_server *server,
			 const struct uffd_range *poison, size_t nr_poison, struct page_source *src,
			 const uint64_t **present)
{
	struct migration *mig = in->mig;
	int ret;

	in->vm = vm;
	in->server = server;
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
	*src = (struct page_source){ .read = source_read, .pump = source_pump, .opaque = in };
	*present = mig->present;
	return 0;
}

void mig_in_abandon(struct mig_in *in)
{
	if (!in->ready)
		return;
	pthread_mutex_lock(&in->lock);
	__atomic_store_n(&in->abandoned, true, __ATOMIC_RELAXED);
	pthread_cond_broadcast(&in->cond);
	pthread_mutex_unlock(&in->lock);
	/* The uffd thread's read returns at once; main can still send the source its refusal. */
	pthread_mutex_lock(&in->write_lock);
	if (in->fd >= 0)
		shutdown(in->fd, SHUT_RD);
	pthread_mutex_unlock(&in->write_lock);
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
	ret = send_empty(in, MIG_COMPLETE);
	if (ret < 0)
		log_warn("migration: telling the source every page is here: %s", strerror(-ret));
	pthread_mutex_lock(&in->write_lock);
	close(in->fd);
	in->fd = -1;
	pthread_mutex_unlock(&in->write_lock);
	mig->state = MIG_COMPLETED;
	log_info("migration from %s completed in %" PRIu64 " ms: %" PRIu64 " pages before the "
		 "microVM ran, %" PRIu64 " fetched on fault (p50 %" PRIu64 " us, p99 %" PRIu64
		 " us), %" PRIu64 " in the background (%" PRIu64 " of them streamed by the source, in %"
		 PRIu64 " requests in all), %" PRIu64 " poisoned", mig->uri.text,
		 (mig->t_end - mig->t_start) / 1000000, mig->pages_precopy, st->fault_pages,
		 st->fault_ns_p50 / 1000, st->fault_ns_p99 / 1000, st->background_pages, in->pushed,
		 in->requests, st->poisoned_pages);
}

void mig_in_status(struct migration *mig, json_t *j)
{
	struct uffd_server_stats st = mig->uffd_stats;

	if (!mig->uffd_done && mig->vmm->vm && mig->vmm->vm->pager)
		snapshot_pager_stats(mig->vmm->vm, &st);
	json_object_set_new(j, "pages_received", json_integer((json_int_t)mig->pages_precopy));
	json_object_set_new(j, "requests", json_integer((json_int_t)mig->in.requests));
	json_object_set_new(j, "pages_pushed", json_integer((json_int_t)mig->in.pushed));
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
	free(mig->in.carry);
	if (mig->in.ready) {
		event_loop_del(&mig->vmm->loop, mig->in.event_fd);
		close(mig->in.event_fd);
		if (mig->in.fd >= 0)
			close(mig->in.fd);
		if (mig->in.new_fd >= 0)
			close(mig->in.new_fd);
		pthread_cond_destroy(&mig->in.cond);
		pthread_mutex_destroy(&mig->in.lock);
		pthread_mutex_destroy(&mig->in.write_lock);
	}
	json_decref(mig->overrides);
	if (mig->img)
		mig->img->mig = NULL; /* the VM lives on; its memory came in long ago */
}
