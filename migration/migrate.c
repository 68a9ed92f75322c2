/* Live migration, both sides: the peer's address, the framed connection, GET /migration. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "migrate_int.h"
#include "vmm.h"

uint64_t mig_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* --- the framed connection --- */

int mig_conn_init(struct mig_conn *c, int fd)
{
	*c = (struct mig_conn){ .fd = fd };
	c->tx_cap = mig_frame_size(MIG_MAX_PAGES_BYTES + 64);
	c->rx_cap = mig_frame_size(MIG_MAX_PAGES_BYTES + 64);
	c->tx = malloc(c->tx_cap);
	c->rx = malloc(c->rx_cap);
	if (!c->tx || !c->rx) {
		free(c->tx);
		free(c->rx);
		c->tx = c->rx = NULL;
		return -ENOMEM;
	}
	return 0;
}

void mig_conn_free(struct mig_conn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	free(c->tx);
	free(c->rx);
	*c = (struct mig_conn){ .fd = -1 };
}

static int grow(uint8_t **buf, size_t *cap, size_t need)
{
	uint8_t *p;
	size_t n = *cap;

	if (need <= *cap)
		return 0;
	while (n < need)
		n *= 2;
	p = realloc(*buf, n);
	if (!p)
		return -ENOMEM;
	*buf = p;
	*cap = n;
	return 0;
}

uint8_t *mig_conn_reserve(struct mig_conn *c, size_t len)
{
	if (c->tx_off == c->tx_len)
		c->tx_off = c->tx_len = 0;
	if (grow(&c->tx, &c->tx_cap, c->tx_len + mig_frame_size(len)) < 0)
		return NULL;
	return mig_frame_payload(c->tx + c->tx_len);
}

void mig_conn_commit(struct mig_conn *c, uint32_t type, size_t len)
{
	c->tx_len += mig_frame_seal(c->tx + c->tx_len, type, len);
}

int mig_conn_send(struct mig_conn *c, uint32_t type, const void *payload, size_t len)
{
	uint8_t *p = mig_conn_reserve(c, len);

	if (!p)
		return -ENOMEM;
	if (len)
		memcpy(p, payload, len);
	mig_conn_commit(c, type, len);
	return 0;
}

int mig_conn_flush(struct mig_conn *c)
{
	while (c->tx_off < c->tx_len) {
		ssize_t w = write(c->fd, c->tx + c->tx_off, c->tx_len - c->tx_off);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return errno == EWOULDBLOCK ? -EAGAIN : -errno;
		c->tx_off += (size_t)w;
		c->bytes_out += (uint64_t)w;
	}
	c->tx_off = c->tx_len = 0;
	return 0;
}

int mig_conn_recv(struct mig_conn *c)
{
	ssize_t r;

	if (c->rx_off) { /* what was consumed goes, once per read rather than once per frame */
		memmove(c->rx, c->rx + c->rx_off, c->rx_len - c->rx_off);
		c->rx_len -= c->rx_off;
		c->rx_off = 0;
	}
	if (c->rx_len == c->rx_cap && grow(&c->rx, &c->rx_cap, c->rx_cap * 2) < 0)
		return -ENOMEM;
	do
		r = read(c->fd, c->rx + c->rx_len, c->rx_cap - c->rx_len);
	while (r < 0 && errno == EINTR);
	if (r < 0)
		return errno == EWOULDBLOCK ? -EAGAIN : -errno;
	c->rx_len += (size_t)r;
	c->bytes_in += (uint64_t)r;
	return r > 0;
}

long mig_conn_frame(struct mig_conn *c, struct mig_frame *f, char *err, size_t errlen)
{
	size_t need = 0;
	long n = mig_frame_parse(c->rx + c->rx_off, c->rx_len - c->rx_off, f, &need, err, errlen);

	/* A frame larger than the buffer: make room for all of it. */
	if (n == 0 && need > c->rx_cap && grow(&c->rx, &c->rx_cap, need + c->rx_off) < 0) {
		snprintf(err, errlen, "out of memory for a %zu-byte frame", need);
		return -ENOMEM;
	}
	return n;
}

void mig_conn_consume(struct mig_conn *c, size_t n)
{
	c->rx_off += n;
	if (c->rx_off == c->rx_len)
		c->rx_off = c->rx_len = 0;
}

struct migration *mig_new(struct vmm *m, bool source, const char *uri, char *err, size_t errlen)
{
	struct migration *mig;

	if (m->mig && m->mig->state != MIG_FAILED && m->mig->state != MIG_COMPLETED) {
		snprintf(err, errlen, "a migration is %s already", mig_state_name(m->mig->state));
		return NULL;
	}
	mig = calloc(1, sizeof(*mig));
	if (!mig) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	mig->vmm = m;
	mig->source = source;
	mig->conn.fd = mig->listen_fd = mig->mem.fd = -1;
	mig->in.fd = mig->in.new_fd = mig->in.event_fd = -1;
	if (mig_uri_parse(&mig->uri, uri, err, errlen) < 0) {
		free(mig);
		return NULL;
	}
	return mig;
}

/* --- status --- */

const char *mig_state_name(enum mig_state s)
{
	static const char *const names[] = {
		[MIG_NONE] = "none", [MIG_CONNECTING] = "connecting",
		[MIG_LISTENING] = "listening", [MIG_HANDSHAKE] = "handshake",
		[MIG_PRECOPY] = "precopy", [MIG_SWITCHOVER] = "switchover",
		[MIG_WAIT_RUNNING] = "wait-running", [MIG_POSTCOPY] = "postcopy",
		[MIG_BROKEN] = "postcopy-paused",
		[MIG_COMPLETED] = "completed", [MIG_FAILED] = "failed",
	};

	return (unsigned)s < sizeof(names) / sizeof(names[0]) ? names[s] : "?";
}

void mig_fail(struct migration *mig, const char *fmt, ...)
{
	va_list ap;

	if (mig->state == MIG_FAILED)
		return;
	va_start(ap, fmt);
	vsnprintf(mig->error, sizeof(mig->error), fmt, ap);
	va_end(ap);
	mig->state = MIG_FAILED;
	mig->t_end = mig_now_ns();
	log_error("migration %s %s: %s", mig->source ? "to" : "from", mig->uri.text, mig->error);
}

static json_t *ms(uint64_t from, uint64_t to)
{
	return from && to >= from ? json_integer((json_int_t)((to - from) / 1000000)) : json_null();
}

json_t *migration_status(struct vmm *m)
{
	struct migration *mig = m->mig;
	uint64_t now = mig_now_ns();
	json_t *j;

	if (!mig)
		return json_pack("{s:s}", "state", "none");
	j = json_pack("{s:s,s:s,s:s,s:s,s:I,s:I,s:I,s:I,s:i}", "state", mig_state_name(mig->state),
		      "role", mig->source ? "source" : "destination", "uri", mig->uri.text,
		      "mode", mig->mode == MIG_MODE_POSTCOPY ? "postcopy" : "precopy",
		      "bytes_sent", (json_int_t)mig->conn.bytes_out,
		      "bytes_received", (json_int_t)mig->conn.bytes_in,
		      "pages_precopy", (json_int_t)mig->pages_precopy,
		      "pages_discarded", (json_int_t)mig->pages_discarded,
		      "rounds", (int)mig->rounds);
	if (!j)
		return NULL;
	json_object_set_new(j, "total_ms", ms(mig->t_start, mig->t_end ? mig->t_end : now));
	json_object_set_new(j, "downtime_ms", ms(mig->t_paused, mig->t_running));
	json_object_set_new(j, "recoveries", json_integer(mig->recoveries));
	if (mig->source)
		mig_out_status(mig, j);
	else
		mig_in_status(mig, j);
	if (mig->state == MIG_FAILED)
		json_object_set_new(j, "error", json_string(mig->error));
	return j;
}

bool migration_holds_vm(struct vmm *m)
{
	struct migration *mig = m->mig;

	return mig && mig->source && (mig->state == MIG_SWITCHOVER ||
				      mig->state == MIG_WAIT_RUNNING || mig->t_running);
}

int migration_recover(struct vmm *m, const char *uri, char *err, size_t errlen)
{
	if (!m->mig || (m->mig->state != MIG_BROKEN &&
			!(m->mig->source && m->mig->state == MIG_POSTCOPY))) {
		snprintf(err, errlen, "there is no postcopy migration to recover (GET /migration: "
			 "%s)", m->mig ? mig_state_name(m->mig->state) : "none");
		return -EINVAL;
	}
	return m->mig->source ? mig_out_recover(m->mig, uri, err, errlen) :
				mig_in_recover(m->mig, uri, err, errlen);
}

bool migration_incoming_pending(struct vmm *m)
{
	struct migration *mig = m->mig;

	return mig && !mig->source && mig->state != MIG_FAILED && mig->state != MIG_COMPLETED;
}

void migration_destroy(struct vmm *m)
{
	struct migration *mig = m->mig;

	if (!mig)
		return;
	if (mig->source)
		mig_out_destroy(mig);
	else
		mig_in_destroy(mig);
	free(mig);
	m->mig = NULL;
}
