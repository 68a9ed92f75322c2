/* The migration source, on the event loop: connect and handshake, precopy rounds driven by KVM's
 * dirty log and kiln's record of its own writes, the switch-over (pause, the rest or the list of
 * stale pages, the state), then the destination's page requests until it has every page. */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "log.h"
#include "migrate_int.h"
#include "poison_log.h"
#include "snapshot_memory.h"
#include "vm.h"
#include "vmm.h"

#define PAGE_4K 4096ull
#define MAX_ROUNDS 30            /* precopy: switch over after this many rounds regardless */
#define BATCH_BYTES (1u << 20)   /* one PAGES frame of the rounds */
#define PUMP_BYTES (8u << 20)    /* written per event before the loop serves others */
#define FLUSH_BYTES (512u << 10) /* frames gathered before a write */
#define PUSH_BYTES (32u << 10)   /* postcopy's stream: per frame, and queued at once */
#define PAUSE_TIMEOUT_MS 5000

static bool bit(const uint64_t *map, uint64_t i)
{
	return map[i / 64] >> (i % 64) & 1;
}

static void set_bit(uint64_t *map, uint64_t i)
{
	map[i / 64] |= 1ull << (i % 64);
}

static void clear_bit(uint64_t *map, uint64_t i)
{
	map[i / 64] &= ~(1ull << (i % 64));
}

/* Whether transfer page p (page_size bytes at memfd offset p * page_size) is in the poison log. */
static bool page_poisoned(struct migration *mig, uint64_t p)
{
	struct guest_memory *gm = &mig->vmm->vm->mem;
	uint64_t gpa;

	return guest_memory_gpa_of_offset(gm, p * mig->page_size, &gpa) &&
	       poison_log_contains(gm->poison, gpa, mig->page_size);
}

/* Reads n transfer pages from p into dst through the poison guard: 0, or -EHWPOISON (a page is
 * poisoned, found so now perhaps, and then recorded). */
static int read_pages(struct migration *mig, uint64_t p, uint64_t n, uint8_t *dst)
{
	struct guest_memory *gm = &mig->vmm->vm->mem;
	uint64_t gpa;

	if (!guest_memory_gpa_of_offset(gm, p * mig->page_size, &gpa))
		return -EFAULT;
	return guest_memory_read(gm, gpa, dst, n * mig->page_size);
}

static int want(struct migration *mig, uint32_t events)
{
	return event_loop_mod(&mig->vmm->loop, mig->conn.fd, events);
}

/* Queues pages [p, p+n) as PAGES frames, a page that turns out poisoned left out. */
static int queue_pages(struct migration *mig, uint32_t type, uint64_t p, uint64_t n,
		       uint64_t *counter)
{
	uint64_t ps = mig->page_size;
	uint8_t *out = mig_conn_reserve(&mig->conn, 8 + n * ps);
	int ret;

	if (!out)
		return -ENOMEM;
	ret = read_pages(mig, p, n, out + 8);
	if (ret == 0) {
		mig_pages_encode_offset(out, p * ps);
		mig_conn_commit(&mig->conn, type, 8 + n * ps);
		*counter += n;
		return 0;
	}
	if (ret != -EHWPOISON)
		return ret;
	for (uint64_t i = 0; i < n; i++) {
		out = mig_conn_reserve(&mig->conn, 8 + ps);
		if (!out)
			return -ENOMEM;
		if (read_pages(mig, p + i, 1, out + 8) < 0)
			continue; /* poisoned: in the log now, sent with the state */
		mig_pages_encode_offset(out, (p + i) * ps);
		mig_conn_commit(&mig->conn, type, 8 + ps);
		(*counter)++;
	}
	return 0;
}

/* Moves the pages written since the last take into mig->dirty (transfer pages). */
static int take_dirty(struct migration *mig)
{
	struct vm *vm = mig->vmm->vm;
	size_t words4k = (size_t)((vm->mem.size / PAGE_4K + 63) / 64);
	uint64_t *map = calloc(words4k, sizeof(uint64_t)), per = mig->page_size / PAGE_4K;
	int ret;

	if (!map)
		return -ENOMEM;
	ret = snapshot_take_dirty(vm, map, words4k);
	for (uint64_t q = 0; ret == 0 && q < vm->mem.size / PAGE_4K; q++)
		if (bit(map, q))
			set_bit(mig->dirty, q / per);
	free(map);
	return ret;
}

static uint64_t count_dirty(struct migration *mig)
{
	uint64_t n = 0;

	for (uint64_t p = 0; p < mig->nr_pages; p++)
		n += bit(mig->dirty, p) && !page_poisoned(mig, p);
	return n;
}

/* The migration took the record of written pages, which Diff snapshots rely on (with
 * track_dirty_pages): the next Diff must hold every page. */
static void give_back_all(struct vm *vm)
{
	size_t bytes = (size_t)((vm->mem.size / PAGE_4K + 63) / 64) * 8;
	uint64_t *all = malloc(bytes);

	if (!all) {
		log_error("migration: out of memory: the next Diff snapshot may lack pages");
		return;
	}
	memset(all, 0xff, bytes);
	guest_memory_give_back_dirty(&vm->mem, all);
	free(all);
}

/* Ends the migration as failed before the destination runs the VM: the VM runs here again. */
static void abort_out(struct migration *mig)
{
	struct vm *vm = mig->vmm->vm;

	if (mig->conn.fd >= 0) {
		event_loop_del(&mig->vmm->loop, mig->conn.fd);
		mig_conn_free(&mig->conn);
	}
	if (mig->logging_enabled_here && vm_set_dirty_logging(vm, false) == 0)
		mig->logging_enabled_here = false;
	if (mig->tracking)
		give_back_all(vm);
	if (mig->paused_here) {
		vm_resume(vm);
		mig->paused_here = false;
		log_info("migration: the microVM runs here again");
	}
}

/* After a failure: before the destination ran the VM, it runs here again; after, it never
 * does (that would be a split brain), and only the connection goes. */
static void undo_out(struct migration *mig)
{
	if (!mig->t_running) {
		abort_out(mig);
	} else if (mig->conn.fd >= 0) {
		event_loop_del(&mig->vmm->loop, mig->conn.fd);
		mig_conn_free(&mig->conn);
	}
}

static void fail_out(struct migration *mig, const char *what, int err)
{
	if (mig->t_running && mig->state != MIG_FAILED && mig->state != MIG_COMPLETED) {
		/* The destination runs the VM and may still need pages: wait for a new
		 * connection. */
		snprintf(mig->error, sizeof(mig->error), "%s: %s", what, strerror(-err));
		mig->state = MIG_BROKEN;
		log_error("migration to %s: %s; the destination runs the microVM, which stays "
			  "paused here for good: PUT /migration/recover {\"uri\"} once the "
			  "destination listens again", mig->uri.text, mig->error);
		undo_out(mig);
		return;
	}
	mig_fail(mig, "%s: %s%s", what, strerror(-err), mig->t_running ?
		 " (the destination already runs the microVM: it stays paused here for good)" :
		 "; the microVM keeps running here");
	undo_out(mig);
}

static int send_state(struct migration *mig)
{
	struct vm *vm = mig->vmm->vm;
	struct state_buf b;
	char err[512];
	int ret;

	state_buf_init(&b);
	state_begin(&b);
	ret = snapshot_put_config(vm, &b);
	if (ret == 0)
		ret = snapshot_put_machine(vm, &b, err, sizeof(err));
	else
		snprintf(err, sizeof(err), "out of memory");
	if (ret == 0 && b.len > MIG_MAX_PAYLOAD) {
		snprintf(err, sizeof(err), "the state is %zu bytes, more than a frame carries", b.len);
		ret = -EFBIG;
	}
	if (ret == 0)
		ret = mig_conn_send(&mig->conn, MIG_STATE, b.data, b.len);
	state_buf_free(&b);
	if (ret < 0) {
		mig_fail(mig, "the VM's state: %s", err);
		abort_out(mig);
		return ret;
	}
	mig->state = MIG_WAIT_RUNNING;
	log_info("migration: state queued %" PRIu64 " ms after the pause (%u rounds, %" PRIu64
		 " pages sent); waiting for the destination to run the microVM",
		 (mig_now_ns() - mig->t_paused) / 1000000, mig->rounds, mig->pages_precopy);
	return 0;
}

/* Postcopy: the pages the destination has but the guest wrote since: it must drop them. */
static int queue_discards(struct migration *mig)
{
	uint64_t (*r)[2] = malloc(MIG_MAX_DISCARD * sizeof(*r)), ps = mig->page_size;
	uint32_t n = 0;
	int ret = 0;

	if (!r)
		return -ENOMEM;
	for (uint64_t p = 0; p <= mig->nr_pages && ret == 0; p++) {
		bool stale = p < mig->nr_pages && bit(mig->dirty, p) && bit(mig->sent, p);

		if (stale) {
			clear_bit(mig->sent, p);
			mig->pages_discarded++;
			if (n && r[n - 1][0] + r[n - 1][1] == p * ps) {
				r[n - 1][1] += ps;
				continue;
			}
			r[n][0] = p * ps, r[n][1] = ps;
			n++;
		}
		if (n && (n == MIG_MAX_DISCARD || p == mig->nr_pages)) {
			uint8_t *out = mig_conn_reserve(&mig->conn, 8 + (size_t)n * MIG_RANGE_LEN);

			if (!out) {
				ret = -ENOMEM;
				break;
			}
			mig_conn_commit(&mig->conn, MIG_DISCARD, mig_discard_encode(out, r, n));
			n = 0;
		}
	}
	free(r);
	return ret;
}

/* Pauses the VM and takes the last record of written pages: precopy then sends those, postcopy
 * the stale list; both then the state. */
static int switch_over(struct migration *mig)
{
	struct vm *vm = mig->vmm->vm;
	int ret;

	mig->t_paused = mig_now_ns();
	if (vm->state == VM_RUNNING) {
		ret = vm_pause(vm, PAUSE_TIMEOUT_MS);
		if (ret < 0) {
			fail_out(mig, "pausing the vCPUs", ret);
			return ret;
		}
		mig->paused_here = true;
	}
	for (unsigned i = 0; i < vm->virtio.nr_blk; i++)
		virtio_blk_drain(&vm->virtio.blk[i]);
	ret = take_dirty(mig);
	if (ret < 0) {
		fail_out(mig, "the dirty-page log", ret);
		return ret;
	}
	mig->state = MIG_SWITCHOVER;
	mig->cursor = 0;
	log_info("migration: switch-over after %u round(s), paused in %" PRIu64 " ms: %" PRIu64
		 " pages written since their last copy", mig->rounds,
		 (mig_now_ns() - mig->t_paused) / 1000000, count_dirty(mig));
	if (mig->mode == MIG_MODE_PRECOPY)
		return 0; /* the pump sends them, then the state */
	ret = queue_discards(mig);
	if (ret < 0) {
		fail_out(mig, "the stale pages", ret);
		return ret;
	}
	return send_state(mig);
}

/* A round's pages are all sent: another round, or the switch-over. */
static int end_round(struct migration *mig)
{
	uint64_t now = mig_now_ns(), elapsed = now - mig->round_start, dirty, bw;
	int ret;

	mig->rounds++;
	ret = take_dirty(mig);
	if (ret < 0) {
		fail_out(mig, "the dirty-page log", ret);
		return ret;
	}
	dirty = count_dirty(mig);
	bw = elapsed ? mig->round_bytes * 1000000000ull / elapsed : 0; /* bytes per second */
	log_info("migration: round %u sent %" PRIu64 " bytes in %" PRIu64 " ms; %" PRIu64
		 " pages written meanwhile", mig->rounds, mig->round_bytes, elapsed / 1000000, dirty);
	mig->last_dirty = dirty;
	if (mig->mode == MIG_MODE_POSTCOPY || mig->rounds >= MAX_ROUNDS ||
	    (bw && dirty * mig->page_size * 1000 / bw <= mig->max_downtime_ms))
		return switch_over(mig);
	mig->cursor = 0;
	mig->round_bytes = 0;
	mig->round_start = now;
	return 0;
}

/* The next run, at or after *p, of at most max pages whose bit in map is want and that are not
 * poisoned: moves *p to its start and returns its length, 0 when there is none. */
static uint64_t next_pages(struct migration *mig, const uint64_t *map, bool want, uint64_t *p,
			   uint64_t max)
{
	uint64_t n = 0;

	while (*p < mig->nr_pages && (bit(map, *p) != want || page_poisoned(mig, *p)))
		++*p;
	while (*p + n < mig->nr_pages && n < max && bit(map, *p + n) == want &&
	       !page_poisoned(mig, *p + n))
		n++;
	return n;
}

/* Postcopy: queues the next pages the destination lacks, unasked (PUSH), a small frame at a
 * time so that the answers to its requests do not wait long behind them; false once every
 * page went. */
static bool push(struct migration *mig, int *ret)
{
	uint64_t max = PUSH_BYTES / mig->page_size ? PUSH_BYTES / mig->page_size : 1;
	uint64_t p = mig->cursor, n = next_pages(mig, mig->sent, false, &p, max);

	mig->cursor = p + n;
	if (n == 0)
		return false;
	*ret = queue_pages(mig, MIG_PUSH, p, n, &mig->pages_pushed);
	if (*ret < 0) {
		fail_out(mig, "reading guest memory", *ret);
		return false;
	}
	for (uint64_t i = p; i < p + n; i++)
		set_bit(mig->sent, i);
	return true;
}

/* Queues the next frame of the rounds or of the switch-over; false when there is none to send
 * now (waiting for the peer). */
static bool produce(struct migration *mig, int *ret)
{
	uint64_t max = BATCH_BYTES / mig->page_size ? BATCH_BYTES / mig->page_size : 1, p, n;

	*ret = 0;
	if (mig->state == MIG_POSTCOPY)
		return push(mig, ret);
	if (mig->state != MIG_PRECOPY && mig->state != MIG_SWITCHOVER)
		return false;
	p = mig->cursor;
	n = next_pages(mig, mig->dirty, true, &p, max);
	if (n == 0) {
		mig->cursor = mig->nr_pages;
		if (mig->state == MIG_PRECOPY)
			*ret = end_round(mig);
		else
			*ret = send_state(mig);
		return *ret == 0;
	}
	*ret = queue_pages(mig, MIG_PAGES, p, n, &mig->pages_precopy);
	if (*ret < 0) {
		fail_out(mig, "reading guest memory", *ret);
		return false;
	}
	for (uint64_t i = p; i < p + n; i++) {
		clear_bit(mig->dirty, i);
		set_bit(mig->sent, i);
	}
	mig->round_bytes += n * mig->page_size;
	mig->cursor = p + n;
	return true;
}

/* Keeps producing and writing until the socket is full, there is nothing to send, or the budget
 * is spent. Frames are gathered up to FLUSH_BYTES before a write: scattered dirty pages make
 * frames of one page, and a write each would cost more than the copy. */
static void pump(struct migration *mig)
{
	uint64_t start = mig->conn.bytes_out;
	bool more = true;
	int ret;

	for (;;) {
		size_t limit = mig->state == MIG_POSTCOPY ? PUSH_BYTES : FLUSH_BYTES;

		while (more && mig->conn.tx_len - mig->conn.tx_off < limit)
			more = produce(mig, &ret);
		if (mig->conn.fd < 0)
			return; /* produce failed the migration */
		ret = mig_conn_flush(&mig->conn);
		if (ret < 0 && ret != -EAGAIN) {
			fail_out(mig, "sending", ret);
			return;
		}
		/* Come back when the socket has room, or (the budget spent) to let the loop serve
		 * the API and the devices first; with nothing to send, only the peer matters. */
		if (ret == -EAGAIN || (more && mig->conn.bytes_out - start >= PUMP_BYTES) || !more) {
			if (want(mig, ret == -EAGAIN || more ? EPOLLIN | EPOLLOUT : EPOLLIN) < 0)
				fail_out(mig, "the event loop", -EIO);
			return;
		}
	}
}

/* Queues POISONED for transfer page p. */
static int queue_poisoned(struct migration *mig, uint64_t p)
{
	uint8_t r[MIG_RANGE_LEN];

	mig_range_encode(r, p * mig->page_size, mig->page_size);
	mig->pages_poisoned_answered++;
	return mig_conn_send(&mig->conn, MIG_POISONED, r, sizeof(r));
}

/* A REQUEST from the destination: its pages in one PAGES frame, or, when one is poisoned (in
 * the log, or found so now), page by page with POISONED for those. */
static int answer(struct migration *mig, const struct mig_frame *f)
{
	uint64_t ps = mig->page_size, off, len, first, n;
	bool clean = true;
	uint8_t *out;
	char err[256];
	int ret;

	ret = mig_range_decode(f->payload, f->len, ps, mig->vmm->vm->mem.size, &off, &len, err,
			       sizeof(err));
	if (ret < 0) {
		mig_fail(mig, "the destination's request: %s", err);
		return ret;
	}
	first = off / ps, n = len / ps;
	for (uint64_t i = 0; i < n && clean; i++)
		clean = !page_poisoned(mig, first + i);
	if (clean) {
		if (!(out = mig_conn_reserve(&mig->conn, 8 + len)))
			return -ENOMEM;
		if (read_pages(mig, first, n, out + 8) == 0) {
			mig_pages_encode_offset(out, off);
			mig_conn_commit(&mig->conn, MIG_PAGES, 8 + len);
			mig->pages_postcopy += n;
			for (uint64_t p = first; p < first + n; p++)
				set_bit(mig->sent, p); /* not streamed again */
			return 0;
		}
	}
	for (uint64_t p = first; p < first + n; p++) {
		if (!(out = mig_conn_reserve(&mig->conn, 8 + ps)))
			return -ENOMEM;
		if (!page_poisoned(mig, p) && read_pages(mig, p, 1, out + 8) == 0) {
			mig_pages_encode_offset(out, p * ps);
			mig_conn_commit(&mig->conn, MIG_PAGES, 8 + ps);
			mig->pages_postcopy++;
			set_bit(mig->sent, p);
		} else if ((ret = queue_poisoned(mig, p)) < 0) {
			return ret;
		}
	}
	return 0;
}

static void completed(struct migration *mig)
{
	mig->state = MIG_COMPLETED;
	mig->t_end = mig_now_ns();
	log_info("migration to %s completed in %" PRIu64 " ms (downtime %" PRIu64 " ms): %" PRIu64
		 " pages before the switch-over in %u round(s), %" PRIu64 " on request, %" PRIu64
		 " pushed after; this kiln exits", mig->uri.text, (mig->t_end - mig->t_start) / 1000000,
		 (mig->t_running - mig->t_paused) / 1000000, mig->pages_precopy, mig->rounds,
		 mig->pages_postcopy, mig->pages_pushed);
	event_loop_del(&mig->vmm->loop, mig->conn.fd);
	mig_conn_free(&mig->conn);
	vm_request_exit(mig->vmm->vm, VM_EXIT_OK);
}

/* One frame from the destination. 0, or -errno with the migration failed. */
static int on_frame(struct migration *mig, const struct mig_frame *f)
{
	char err[MIG_MAX_ERROR + 64];
	int ret;

	switch (f->type) {
	case MIG_HELLO:
		if (mig->state != MIG_HANDSHAKE)
			break;
		ret = mig_hello_check(f->payload, f->len, MIG_ROLE_DESTINATION, err, sizeof(err));
		if (ret < 0) {
			mig_fail(mig, "handshake: %s", err);
			return ret;
		}
		if (mig->recovering) {
			if (mig_conn_send(&mig->conn, MIG_RESUME, NULL, 0) < 0) {
				mig_fail(mig, "out of memory");
				return -ENOMEM;
			}
			mig->state = MIG_POSTCOPY;
			mig->recovering = false;
			mig->recoveries++;
			log_info("migration to %s: postcopy resumes on a new connection",
				 mig->uri.text);
			return 0;
		}
		{
			struct vm *vm = mig->vmm->vm;
			json_t *j = config_to_json(vm->cfg);
			char *text = j ? json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
			uint8_t *out = text ? mig_conn_reserve(&mig->conn, 16 + strlen(text)) : NULL;

			json_decref(j);
			if (!out) {
				free(text);
				mig_fail(mig, "out of memory");
				return -ENOMEM;
			}
			mig_conn_commit(&mig->conn, MIG_CONFIG,
					mig_config_encode(out, vm->mem.size, vm->mem.page_size, text,
							  strlen(text)));
			free(text);
		}
		mig->state = MIG_PRECOPY;
		mig->round_start = mig_now_ns();
		log_info("migration to %s: handshake done, precopy begins", mig->uri.text);
		return 0;
	case MIG_ERROR:
		mig_error_text(f->payload, f->len, err, sizeof(err));
		mig_fail(mig, "the destination refused: %s", err);
		return -ECONNABORTED;
	case MIG_RUNNING:
		if (mig->state != MIG_WAIT_RUNNING)
			break;
		mig->t_running = mig_now_ns();
		mig->state = MIG_POSTCOPY;
		mig->cursor = 0; /* the stream of what the destination lacks starts */
		{
			/* A small send buffer (the kernel doubles it): answers to requests queue
			 * behind less of the stream. */
			int sndbuf = (int)(2 * PUSH_BYTES);

			if (setsockopt(mig->conn.fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf)) < 0)
				log_warn("migration: SO_SNDBUF: %s", strerror(errno));
		}
		log_info("migration: the microVM runs on the destination (downtime %" PRIu64 " ms); "
			 "this VM never resumes", (mig->t_running - mig->t_paused) / 1000000);
		return 0;
	case MIG_REQUEST:
		if (mig->state != MIG_WAIT_RUNNING && mig->state != MIG_POSTCOPY)
			break;
		return answer(mig, f);
	case MIG_COMPLETE:
		if (mig->state != MIG_POSTCOPY)
			break;
		completed(mig);
		return 0;
	default:
		break;
	}
	mig_fail(mig, "the destination sent %s during %s", mig_type_name(f->type),
		 mig_state_name(mig->state));
	return -EPROTO;
}

static void on_event(void *opaque, int fd, uint32_t events)
{
	struct migration *mig = opaque;
	struct mig_frame f;
	char err[256];
	long n;
	int ret;

	(void)fd;
	if (mig->state == MIG_CONNECTING) {
		int so = 0;
		socklen_t sl = sizeof(so);
		uint8_t hello[MIG_HELLO_LEN];

		if (getsockopt(mig->conn.fd, SOL_SOCKET, SO_ERROR, &so, &sl) < 0)
			so = errno;
		if (so) {
			fail_out(mig, "connecting", -so);
			return;
		}
		mig_hello_encode(hello, MIG_ROLE_SOURCE);
		if (mig_conn_send(&mig->conn, MIG_HELLO, hello, sizeof(hello)) < 0) {
			fail_out(mig, "handshake", -ENOMEM);
			return;
		}
		mig->state = MIG_HANDSHAKE;
	}
	if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
		ret = mig_conn_recv(&mig->conn);
		if (ret == 0 || (ret < 0 && ret != -EAGAIN)) {
			fail_out(mig, "the destination went away", ret ? ret : -ECONNRESET);
			return;
		}
		ret = 0;
		while (mig->state != MIG_FAILED && mig->state != MIG_COMPLETED &&
		       (n = mig_conn_frame(&mig->conn, &f, err, sizeof(err))) != 0) {
			if (n < 0) {
				mig_fail(mig, "from the destination: %s", err);
				ret = (int)n;
				break;
			}
			ret = on_frame(mig, &f);
			if (mig->state == MIG_COMPLETED)
				return; /* the connection is gone */
			mig_conn_consume(&mig->conn, (size_t)n);
			if (ret < 0)
				break;
		}
		if (ret < 0 && mig->state != MIG_FAILED && mig->state != MIG_COMPLETED)
			mig_fail(mig, "answering the destination: %s", strerror(-ret));
		if (mig->state == MIG_FAILED) {
			undo_out(mig); /* mig_fail said why */
			return;
		}
		if (mig->state == MIG_COMPLETED)
			return;
	}
	pump(mig);
}

/* A non-blocking connect to mig->uri into mig->conn. 0, or -errno with one line in err. */
static int open_conn(struct migration *mig, char *err, size_t errlen)
{
	int fd = socket(mig->uri.family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), ret;

	if (fd < 0 || (ret = mig_conn_init(&mig->conn, fd)) < 0) {
		ret = fd < 0 ? -errno : ret;
		if (fd >= 0)
			close(fd);
		mig->conn.fd = -1;
		snprintf(err, errlen, "socket: %s", strerror(-ret));
		return ret;
	}
	if (connect(fd, (struct sockaddr *)&mig->uri.addr, mig->uri.addr_len) < 0 &&
	    errno != EINPROGRESS) {
		ret = -errno;
		snprintf(err, errlen, "cannot connect to %s: %s", mig->uri.text, strerror(errno));
		mig_conn_free(&mig->conn);
		return ret;
	}
	return 0;
}

int mig_out_recover(struct migration *mig, const char *uri, char *err, size_t errlen)
{
	struct mig_uri u;
	int ret = mig_uri_parse(&u, uri, err, errlen);

	if (ret < 0)
		return ret;
	if (mig->conn.fd >= 0) { /* the operator says this one is broken */
		event_loop_del(&mig->vmm->loop, mig->conn.fd);
		mig_conn_free(&mig->conn);
	}
	mig->uri = u;
	ret = open_conn(mig, err, errlen);
	if (ret == 0 && (ret = event_loop_add(&mig->vmm->loop, mig->conn.fd, EPOLLIN | EPOLLOUT,
					      on_event, mig)) < 0) {
		snprintf(err, errlen, "event loop: %s", strerror(-ret));
		mig_conn_free(&mig->conn);
	}
	if (ret < 0) {
		mig->state = MIG_BROKEN;
		return ret;
	}
	mig->state = MIG_CONNECTING;
	mig->recovering = true;
	log_info("migration: recovering postcopy through %s", mig->uri.text);
	return 0;
}

int migration_start(struct vmm *m, const char *uri, enum mig_mode mode, unsigned max_downtime_ms,
		    char *err, size_t errlen)
{
	struct vm *vm = m->vm;
	struct migration *mig;
	int fd, ret;

	if (!vm || (vm->state != VM_RUNNING && vm->state != VM_PAUSED)) {
		snprintf(err, errlen, "there is no running microVM to migrate");
		return -EINVAL;
	}
	if (!snapshot_memory_complete(vm)) {
		snprintf(err, errlen, "the microVM's memory is still being brought in (a restore or "
			 "an incoming migration); migrate it once every page is in");
		return -EBUSY;
	}
	mig = mig_new(m, true, uri, err, errlen);
	if (!mig)
		return -EINVAL;
	mig->mode = mode;
	mig->max_downtime_ms = max_downtime_ms;
	mig->page_size = vm->mem.page_size;
	mig->nr_pages = vm->mem.size / mig->page_size;
	mig->dirty = calloc((mig->nr_pages + 63) / 64, sizeof(uint64_t));
	mig->sent = calloc((mig->nr_pages + 63) / 64, sizeof(uint64_t));
	if (!mig->dirty || !mig->sent) {
		snprintf(err, errlen, "out of memory");
		ret = -ENOMEM;
		goto err;
	}
	for (uint64_t p = 0; p < mig->nr_pages; p++)
		set_bit(mig->dirty, p); /* round 1: every page */
	ret = open_conn(mig, err, errlen);
	if (ret < 0)
		goto err;
	fd = mig->conn.fd;
	mig->tracking = vm->cfg->machine.track_dirty_pages;
	if (!mig->tracking) {
		ret = vm_set_dirty_logging(vm, true);
		if (ret < 0) {
			snprintf(err, errlen, "cannot turn on KVM's dirty-page log: %s", strerror(-ret));
			goto err;
		}
		mig->logging_enabled_here = true;
	}
	/* Round 1 sends every page: what the record holds from before (the kernel loader's
	 * writes at boot, say) would only be sent twice. */
	ret = take_dirty(mig);
	if (ret < 0) {
		snprintf(err, errlen, "the dirty-page log: %s", strerror(-ret));
		goto err;
	}
	mig->state = MIG_CONNECTING;
	mig->t_start = mig_now_ns();
	ret = event_loop_add(&m->loop, fd, EPOLLIN | EPOLLOUT, on_event, mig);
	if (ret < 0) {
		snprintf(err, errlen, "event loop: %s", strerror(-ret));
		goto err;
	}
	migration_destroy(m); /* a failed earlier one */
	m->mig = mig;
	log_info("migration to %s (%s, max downtime %u ms) started", mig->uri.text,
		 mode == MIG_MODE_POSTCOPY ? "postcopy" : "precopy", max_downtime_ms);
	return 0;
err:
	if (mig->tracking)
		give_back_all(vm);
	if (mig->logging_enabled_here && vm_set_dirty_logging(vm, false) < 0)
		log_warn("migration: KVM's dirty-page log stays on");
	mig_conn_free(&mig->conn);
	free(mig->dirty);
	free(mig->sent);
	free(mig);
	return ret;
}

void mig_out_status(struct migration *mig, json_t *j)
{
	json_object_set_new(j, "pages_postcopy", json_integer((json_int_t)mig->pages_postcopy));
	json_object_set_new(j, "pages_pushed", json_integer((json_int_t)mig->pages_pushed));
	json_object_set_new(j, "pages_poisoned_answered",
			    json_integer((json_int_t)mig->pages_poisoned_answered));
	json_object_set_new(j, "pages_dirty_last_round", json_integer((json_int_t)mig->last_dirty));
}

void mig_out_destroy(struct migration *mig)
{
	if (mig->conn.fd >= 0) {
		event_loop_del(&mig->vmm->loop, mig->conn.fd);
		mig_conn_free(&mig->conn);
	}
	free(mig->conn.tx);
	free(mig->conn.rx);
	free(mig->dirty);
	free(mig->sent);
}
