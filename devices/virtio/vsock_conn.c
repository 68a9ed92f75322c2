/* virtio-vsock connections: the table, buffering between guest and host socket, credit,
 * shutdown and reset. */
#include "vsock_conn.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "vsock_hybrid.h"

#define MAX_PKT_LEN 65536u       /* stream bytes in one packet to the guest */
/* Tell the guest about the space kiln freed once it is this much. */
#define CREDIT_THRESHOLD (VSOCK_CONN_BUF_ALLOC / 4)

static unsigned hash_of(uint32_t local, uint32_t peer)
{
	uint32_t h = (local * 0x9e3779b1u) ^ peer;

	return (h * 0x85ebca6bu) >> 22 & (VSOCK_HASH_SIZE - 1);
}

struct vsock_conn *vsock_conn_find(struct virtio_vsock *v, uint32_t local, uint32_t peer)
{
	struct vsock_conn *c = v->hash[hash_of(local, peer)];

	while (c && (c->local_port != local || c->peer_port != peer))
		c = c->hnext;
	return c;
}

void vsock_conn_hash(struct vsock_conn *c)
{
	struct vsock_conn **b = &c->v->hash[hash_of(c->local_port, c->peer_port)];

	c->hnext = *b;
	*b = c;
	c->hashed = true;
}

static void hash_del(struct vsock_conn *c)
{
	struct vsock_conn **pp = &c->v->hash[hash_of(c->local_port, c->peer_port)];

	if (!c->hashed)
		return;
	while (*pp && *pp != c)
		pp = &(*pp)->hnext;
	if (*pp)
		*pp = c->hnext;
	c->hashed = false;
}

static void rx_add(struct vsock_conn *c)
{
	struct virtio_vsock *v = c->v;

	if (c->in_rx)
		return;
	c->rx_prev = v->rx_tail;
	c->rx_next = NULL;
	if (v->rx_tail)
		v->rx_tail->rx_next = c;
	else
		v->rx_head = c;
	v->rx_tail = c;
	c->in_rx = true;
}

void vsock_conn_rx_remove(struct vsock_conn *c)
{
	struct virtio_vsock *v = c->v;

	if (!c->in_rx)
		return;
	if (c->rx_prev)
		c->rx_prev->rx_next = c->rx_next;
	else
		v->rx_head = c->rx_next;
	if (c->rx_next)
		c->rx_next->rx_prev = c->rx_prev;
	else
		v->rx_tail = c->rx_prev;
	c->rx_prev = c->rx_next = NULL;
	c->in_rx = false;
}

static void set_events(struct vsock_conn *c, uint32_t want)
{
	struct epoll_event ev = { .events = want, .data.ptr = c };

	if (c->fd < 0 || c->hup || (c->watched && c->events == want))
		return;
	if (epoll_ctl(c->v->epfd, c->watched ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, c->fd, &ev) < 0) {
		log_warn("vsock: epoll for a host socket: %s", strerror(errno));
		return;
	}
	c->watched = true;
	c->events = want;
}

static void unwatch(struct vsock_conn *c)
{
	if (c->watched)
		epoll_ctl(c->v->epfd, EPOLL_CTL_DEL, c->fd, NULL);
	c->watched = false;
}

static void close_host(struct vsock_conn *c)
{
	unwatch(c);
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	free(c->buf);
	c->buf = NULL;
	c->buf_head = c->buf_len = 0;
	c->ctl_off = c->ctl_len = 0;
	c->readable = false;
	c->deadline_ms = 0;
}

/* Out of every table; freed by vsock_conn_reap once the current event is handled. */
static void die(struct vsock_conn *c)
{
	struct virtio_vsock *v = c->v;

	if (c->state == VSOCK_DEAD)
		return;
	close_host(c);
	hash_del(c);
	vsock_conn_rx_remove(c);
	v->slots[c->slot] = NULL;
	v->nr_conns--;
	c->state = VSOCK_DEAD;
	c->dead_next = v->dead;
	v->dead = c;
}

void vsock_conn_close(struct vsock_conn *c)
{
	die(c);
}

void vsock_conn_reset(struct vsock_conn *c)
{
	if (c->state == VSOCK_DEAD || c->state == VSOCK_RESET)
		return;
	/* Nothing to reset on the guest's side if it never heard of the connection. */
	if (c->state == VSOCK_AWAIT_CONNECT || c->state == VSOCK_DRAINING ||
	    (c->state == VSOCK_LOCAL_INIT && (c->pending & VSOCK_PEND_REQUEST))) {
		die(c);
		return;
	}
	close_host(c);
	c->state = VSOCK_RESET;
	c->pending = 0;
	rx_add(c);
}

void vsock_conn_reap(struct virtio_vsock *v)
{
	while (v->dead) {
		struct vsock_conn *c = v->dead;

		v->dead = c->dead_next;
		free(c);
	}
}

void vsock_conn_close_all(struct virtio_vsock *v)
{
	for (unsigned i = 0; i < VSOCK_MAX_CONNS; i++)
		if (v->slots[i])
			die(v->slots[i]);
	vsock_conn_reap(v);
}

void vsock_queue_rst(struct virtio_vsock *v, uint32_t host_port, uint32_t guest_port)
{
	if (v->rst_len >= VSOCK_RST_RING) {
		v->stats.rst_dropped++;
		return;
	}
	v->rst[(v->rst_head + v->rst_len) % VSOCK_RST_RING] =
		(struct vsock_rst){ .host_port = host_port, .guest_port = guest_port };
	v->rst_len++;
}

struct vsock_conn *vsock_conn_new(struct virtio_vsock *v, int fd, enum vsock_state state,
				  uint32_t local, uint32_t peer)
{
	struct vsock_conn *c = NULL;
	unsigned slot;

	if (v->nr_conns < VSOCK_MAX_CONNS)
		c = calloc(1, sizeof(*c));
	if (!c) {
		close(fd);
		v->stats.conns_refused++;
		return NULL;
	}
	for (slot = 0; v->slots[slot]; slot++)
		;
	*c = (struct vsock_conn){ .v = v, .slot = slot, .state = state, .local_port = local,
				  .peer_port = peer, .fd = fd };
	v->slots[slot] = c;
	v->nr_conns++;
	v->stats.conns_opened++;
	if (state != VSOCK_AWAIT_CONNECT)
		vsock_conn_hash(c);
	return c;
}

static uint32_t peer_credit(const struct vsock_conn *c)
{
	uint32_t in_flight = c->rx_cnt - c->peer_fwd_cnt;

	return in_flight >= c->peer_buf_alloc ? 0 : c->peer_buf_alloc - in_flight;
}

static bool can_read(const struct vsock_conn *c)
{
	return c->state == VSOCK_ESTABLISHED && !c->host_eof &&
	       !(c->peer_shut & VSOCK_SHUTDOWN_RCV) && peer_credit(c) > 0;
}

static bool has_output(const struct vsock_conn *c)
{
	return c->ctl_len > 0 || c->buf_len > 0;
}

static void forwarded(struct vsock_conn *c, uint32_t n)
{
	c->fwd_cnt += n;
	c->v->stats.tx_bytes += n;
	if (c->fwd_cnt - c->fwd_sent >= CREDIT_THRESHOLD)
		c->pending |= VSOCK_PEND_CREDIT;
}

static ssize_t send_iov(int fd, struct iovec *iov, int n)
{
	struct msghdr mh = { .msg_iov = iov, .msg_iovlen = (size_t)n };
	ssize_t k;

	do
		k = sendmsg(fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
	while (k < 0 && errno == EINTR);
	if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
		return 0;
	return k < 0 ? -EPIPE : k;
}

/* Writes what waits for the host socket, then half-closes it if the guest stopped sending.
 * 0, or -EPIPE when the host socket takes no more. */
static int flush(struct vsock_conn *c)
{
	if (c->fd < 0)
		return has_output(c) ? -EPIPE : 0;
	while (c->ctl_off < c->ctl_len) {
		struct iovec iov = { c->ctl + c->ctl_off, (size_t)(c->ctl_len - c->ctl_off) };
		ssize_t k = send_iov(c->fd, &iov, 1);

		if (k <= 0)
			return (int)k;
		c->ctl_off += (uint8_t)k;
	}
	c->ctl_off = c->ctl_len = 0;
	while (c->buf_len > 0) {
		uint32_t first = VSOCK_CONN_BUF_ALLOC - c->buf_head;
		struct iovec iov[2];
		int n = 1;
		ssize_t k;

		if (first > c->buf_len)
			first = c->buf_len;
		iov[0] = (struct iovec){ c->buf + c->buf_head, first };
		if (c->buf_len > first) {
			iov[1] = (struct iovec){ c->buf, c->buf_len - first };
			n = 2;
		}
		k = send_iov(c->fd, iov, n);
		if (k <= 0)
			return (int)k;
		c->buf_head = (c->buf_head + (uint32_t)k) % VSOCK_CONN_BUF_ALLOC;
		c->buf_len -= (uint32_t)k;
		forwarded(c, (uint32_t)k);
	}
	/* Drained: give the memory back until the host socket blocks again. */
	free(c->buf);
	c->buf = NULL;
	c->buf_head = 0;
	if ((c->peer_shut & VSOCK_SHUTDOWN_SEND) && !c->wr_shut) {
		shutdown(c->fd, SHUT_WR);
		c->wr_shut = true;
	}
	return 0;
}

/* Passes [off, off+len) of the chain to the host socket, buffering what it will not take.
 * -ENOBUFS when that would pass the credit kiln gave, -EPIPE when the socket is gone. */
static int take_payload(struct vsock_conn *c, const struct virtq_chain *chain, uint64_t off,
			uint32_t len)
{
	struct virtio_vsock *v = c->v;
	uint32_t tail, first;

	if (len > 0 && !has_output(c) && c->fd >= 0) {
		int n = virtq_chain_iov(v->mmio.mem, chain, false, off, len, v->iov,
					(int)VIRTQ_MAX_SIZE);
		ssize_t k = n > 0 ? send_iov(c->fd, v->iov, n) : 0;

		/* A poisoned payload (refused, or EFAULT from the kernel) ends the connection. */
		if (n == -EHWPOISON || n == -EFAULT || k < 0)
			return -EPIPE;
		forwarded(c, (uint32_t)k);
		off += (uint64_t)k;
		len -= (uint32_t)k;
	}
	if (len == 0)
		return 0;
	if (len > VSOCK_CONN_BUF_ALLOC - c->buf_len)
		return -ENOBUFS;
	if (!c->buf && !(c->buf = malloc(VSOCK_CONN_BUF_ALLOC)))
		return -ENOMEM;
	tail = (c->buf_head + c->buf_len) % VSOCK_CONN_BUF_ALLOC;
	first = VSOCK_CONN_BUF_ALLOC - tail < len ? VSOCK_CONN_BUF_ALLOC - tail : len;
	if (virtq_chain_read(v->mmio.mem, chain, off, c->buf + tail, first) != first ||
	    (len > first &&
	     virtq_chain_read(v->mmio.mem, chain, off + first, c->buf, len - first) != len - first))
		return -EPIPE; /* a poisoned payload */
	c->buf_len += len;
	return 0;
}

/* The guest is done with c (it sent RST, or SHUTDOWN both ways): whatever the host socket has
 * not taken yet still goes to it, then it is closed. rst: the guest expects an RST back. */
static void finish(struct vsock_conn *c, bool rst)
{
	if (flush(c) == 0 && has_output(c) && !c->hup) {
		if (rst)
			vsock_queue_rst(c->v, c->local_port, c->peer_port);
		hash_del(c);
		vsock_conn_rx_remove(c);
		c->state = VSOCK_DRAINING;
		vsock_hybrid_deadline(c, VSOCK_DRAIN_TIMEOUT_MS);
		return;
	}
	if (rst)
		vsock_conn_reset(c);
	else
		die(c);
}

void vsock_conn_guest_packet(struct vsock_conn *c, const struct vsock_hdr *hdr,
			     const struct virtq_chain *chain, uint64_t off)
{
	int ret;

	if (c->state == VSOCK_RESET)
		return; /* an RST is on its way */
	c->peer_buf_alloc = hdr->buf_alloc;
	c->peer_fwd_cnt = hdr->fwd_cnt;
	switch (hdr->op) {
	case VSOCK_OP_RESPONSE:
		if (c->state != VSOCK_LOCAL_INIT || (c->pending & VSOCK_PEND_REQUEST)) {
			vsock_conn_reset(c);
			break;
		}
		c->state = VSOCK_ESTABLISHED;
		c->deadline_ms = 0;
		c->ctl_len = (uint8_t)snprintf(c->ctl, sizeof(c->ctl), "OK %u\n", c->local_port);
		c->ctl_off = 0;
		if (flush(c) < 0)
			vsock_conn_reset(c);
		break;
	case VSOCK_OP_RW:
		if (c->state != VSOCK_ESTABLISHED || (c->peer_shut & VSOCK_SHUTDOWN_SEND)) {
			vsock_conn_reset(c);
			break;
		}
		ret = take_payload(c, chain, off, hdr->len);
		if (ret == -ENOBUFS)
			c->v->stats.credit_overruns++;
		if (ret < 0)
			vsock_conn_reset(c);
		break;
	case VSOCK_OP_SHUTDOWN:
		if (c->state != VSOCK_ESTABLISHED) {
			vsock_conn_reset(c);
			break;
		}
		c->peer_shut |= hdr->flags & (VSOCK_SHUTDOWN_RCV | VSOCK_SHUTDOWN_SEND);
		if (c->peer_shut == (VSOCK_SHUTDOWN_RCV | VSOCK_SHUTDOWN_SEND))
			finish(c, true);
		else if (flush(c) < 0)
			vsock_conn_reset(c);
		break;
	case VSOCK_OP_RST:
		finish(c, false);
		break;
	case VSOCK_OP_CREDIT_UPDATE:
		break;
	case VSOCK_OP_CREDIT_REQUEST:
		c->pending |= VSOCK_PEND_CREDIT;
		break;
	default: /* a REQUEST on a live connection, or no operation at all */
		vsock_conn_reset(c);
		break;
	}
	vsock_conn_refresh(c);
}

bool vsock_conn_rx_packet(struct vsock_conn *c, struct virtq_chain *chain, struct vsock_hdr *hdr)
{
	struct virtio_vsock *v = c->v;

	*hdr = (struct vsock_hdr){
		.src_cid = VSOCK_HOST_CID, .dst_cid = v->guest_cid, .src_port = c->local_port,
		.dst_port = c->peer_port, .type = VSOCK_TYPE_STREAM,
		.buf_alloc = VSOCK_CONN_BUF_ALLOC, .fwd_cnt = c->fwd_cnt,
	};
	switch (c->state) {
	case VSOCK_RESET:
		hdr->op = VSOCK_OP_RST;
		die(c);
		return true;
	case VSOCK_LOCAL_INIT:
		if (!(c->pending & VSOCK_PEND_REQUEST))
			return false;
		hdr->op = VSOCK_OP_REQUEST;
		c->pending &= ~VSOCK_PEND_REQUEST;
		goto sent;
	case VSOCK_ESTABLISHED:
		break;
	default:
		return false;
	}
	if (c->pending & VSOCK_PEND_RESPONSE) {
		hdr->op = VSOCK_OP_RESPONSE;
		c->pending &= ~VSOCK_PEND_RESPONSE;
		goto sent;
	}
	if (c->readable && can_read(c) && chain->in_len > VSOCK_HDR_LEN) {
		uint64_t max = chain->in_len - VSOCK_HDR_LEN;
		uint32_t credit = peer_credit(c);
		ssize_t k;
		int n;

		if (max > credit)
			max = credit;
		if (max > MAX_PKT_LEN)
			max = MAX_PKT_LEN;
		n = virtq_chain_iov(v->mmio.mem, chain, true, VSOCK_HDR_LEN, max, v->iov,
				    (int)VIRTQ_MAX_SIZE);
		do
			k = n > 0 ? readv(c->fd, v->iov, n) : (errno = EFAULT, -1);
		while (k < 0 && errno == EINTR);
		if (k > 0) {
			hdr->op = VSOCK_OP_RW;
			hdr->len = (uint32_t)k;
			c->rx_cnt += (uint32_t)k;
			v->stats.rx_bytes += (uint64_t)k;
			goto sent;
		}
		c->readable = false;
		if (k == 0) {
			c->host_eof = true;
			c->shut_flags |= VSOCK_SHUTDOWN_SEND;
			c->pending |= VSOCK_PEND_SHUTDOWN;
		} else if (errno != EAGAIN && errno != EWOULDBLOCK) {
			hdr->op = VSOCK_OP_RST;
			die(c);
			return true;
		}
	}
	if (c->pending & VSOCK_PEND_SHUTDOWN) {
		hdr->op = VSOCK_OP_SHUTDOWN;
		hdr->flags = c->shut_flags;
		c->pending &= ~VSOCK_PEND_SHUTDOWN;
		goto sent;
	}
	if (!(c->pending & VSOCK_PEND_CREDIT))
		return false;
	hdr->op = VSOCK_OP_CREDIT_UPDATE;
sent:
	/* Every header carries fwd_cnt: no separate update is owed after this one. */
	c->pending &= ~VSOCK_PEND_CREDIT;
	c->fwd_sent = c->fwd_cnt;
	return true;
}

static bool has_rx_work(const struct vsock_conn *c)
{
	switch (c->state) {
	case VSOCK_RESET:
		return true;
	case VSOCK_LOCAL_INIT:
		return c->pending & VSOCK_PEND_REQUEST;
	case VSOCK_ESTABLISHED:
		return (c->pending & (VSOCK_PEND_RESPONSE | VSOCK_PEND_SHUTDOWN | VSOCK_PEND_CREDIT)) ||
		       (c->readable && can_read(c));
	default:
		return false;
	}
}

void vsock_conn_refresh(struct vsock_conn *c)
{
	uint32_t want = 0;

	switch (c->state) {
	case VSOCK_DEAD:
		return;
	case VSOCK_RESET:
		rx_add(c);
		return;
	case VSOCK_AWAIT_CONNECT:
		want = EPOLLIN;
		break;
	case VSOCK_LOCAL_INIT:
		break; /* hang-ups are reported all the same */
	case VSOCK_DRAINING:
		if (!has_output(c)) {
			die(c);
			return;
		}
		want = EPOLLOUT;
		break;
	case VSOCK_ESTABLISHED:
		/* Both sides said they send no more and everything was delivered: a clean close. */
		if (c->host_eof && (c->peer_shut & VSOCK_SHUTDOWN_SEND) && !has_output(c) &&
		    !(c->pending & VSOCK_PEND_SHUTDOWN)) {
			vsock_conn_reset(c);
			return;
		}
		if (c->hup && can_read(c))
			c->readable = true; /* no more events: read until EOF */
		if (can_read(c) && !c->readable)
			want |= EPOLLIN;
		if (has_output(c))
			want |= EPOLLOUT;
		break;
	}
	set_events(c, want);
	if (has_rx_work(c))
		rx_add(c);
	else
		vsock_conn_rx_remove(c);
}

void vsock_conn_host_event(struct vsock_conn *c, uint32_t events)
{
	if (c->state == VSOCK_DEAD || c->state == VSOCK_RESET || c->fd < 0)
		return;
	if (c->state == VSOCK_AWAIT_CONNECT) {
		vsock_hybrid_read_line(c);
		vsock_conn_refresh(c);
		return;
	}
	if ((events & (EPOLLOUT | EPOLLHUP | EPOLLERR)) && flush(c) < 0) {
		vsock_conn_reset(c);
		return;
	}
	if (events & (EPOLLHUP | EPOLLERR)) {
		/* Always reported: stop watching, read what is left, write nothing more. */
		unwatch(c);
		c->hup = true;
		if (has_output(c) || c->state == VSOCK_LOCAL_INIT) {
			vsock_conn_reset(c);
			return;
		}
	}
	if (events & EPOLLIN)
		c->readable = true;
	vsock_conn_refresh(c);
}

