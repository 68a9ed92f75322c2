/* virtio-vsock's hybrid unix socket: host clients and their CONNECT line, guest connections
 * to "<uds_path>_<port>", and the deadlines of both. */
#include "vsock_hybrid.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

#define CONNECT_TIMEOUT_MS 5000u /* for a host client's CONNECT line */
#define REQUEST_TIMEOUT_MS 5000u /* for the guest's answer to a REQUEST */
#define TICK_MS 250u
#define FIRST_LOCAL_PORT (1u << 30)
#define ACCEPT_BATCH 16
#define LISTEN_BACKLOG 128

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void arm_timer(struct virtio_vsock *v)
{
	struct itimerspec its = {
		.it_interval = { 0, TICK_MS * 1000000l },
		.it_value = { 0, TICK_MS * 1000000l },
	};

	if (!v->timer_armed && timerfd_settime(v->timer_fd, 0, &its, NULL) == 0)
		v->timer_armed = true;
}

void vsock_hybrid_deadline(struct vsock_conn *c, uint64_t ms)
{
	c->deadline_ms = now_ms() + ms;
	arm_timer(c->v);
}

int vsock_hybrid_listen(struct virtio_vsock *v)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int ret;

	if (strlen(v->uds_path) >= sizeof(sa.sun_path)) {
		log_error("vsock: uds_path %s is longer than a unix socket path can be", v->uds_path);
		return -ENAMETOOLONG;
	}
	strcpy(sa.sun_path, v->uds_path);
	v->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (v->listen_fd < 0)
		goto err;
	if (bind(v->listen_fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		goto err;
	v->bound = true;
	if (listen(v->listen_fd, LISTEN_BACKLOG) < 0)
		goto err;
	return 0;
err:
	ret = -errno;
	log_error("vsock: cannot listen on %s: %s%s", v->uds_path, strerror(-ret),
		  ret == -EADDRINUSE ? " (remove it, or choose another uds_path)" : "");
	return ret;
}

/* "CONNECT <port>\n", the word in any case, blanks around the port: the port or -1. */
static int64_t parse_connect(const char *s, size_t n)
{
	uint64_t port = 0;
	size_t i = 0, digits = 0;

	while (i < n && (s[i] == ' ' || s[i] == '\t'))
		i++;
	if (n - i < 8 || strncasecmp(s + i, "connect", 7) != 0 || (s[i + 7] != ' ' && s[i + 7] != '\t'))
		return -1;
	for (i += 7; i < n && (s[i] == ' ' || s[i] == '\t'); i++)
		;
	for (; i < n && s[i] >= '0' && s[i] <= '9'; i++, digits++) {
		port = port * 10 + (uint64_t)(s[i] - '0');
		if (port > UINT32_MAX)
			return -1;
	}
	while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\r'))
		i++;
	return digits > 0 && i == n - 1 && s[i] == '\n' ? (int64_t)port : -1;
}

static uint32_t pick_port(struct virtio_vsock *v, uint32_t peer)
{
	for (;;) {
		uint32_t p = v->next_port++;

		if (v->next_port == 0)
			v->next_port = FIRST_LOCAL_PORT;
		if (!vsock_conn_find(v, p, peer))
			return p;
	}
}

void vsock_hybrid_read_line(struct vsock_conn *c)
{
	char peek[VSOCK_LINE_MAX];
	size_t take;
	ssize_t n = recv(c->fd, peek, VSOCK_LINE_MAX - c->line_len, MSG_PEEK | MSG_DONTWAIT);
	char *nl;
	int64_t port;

	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return;
	if (n <= 0) {
		vsock_conn_close(c);
		return;
	}
	nl = memchr(peek, '\n', (size_t)n);
	take = nl ? (size_t)(nl - peek) + 1 : (size_t)n;
	if (recv(c->fd, c->line + c->line_len, take, MSG_DONTWAIT) != (ssize_t)take) {
		vsock_conn_close(c);
		return;
	}
	c->line_len += (uint8_t)take;
	if (!nl) {
		if (c->line_len == VSOCK_LINE_MAX)
			vsock_conn_close(c);
		return;
	}
	port = parse_connect(c->line, c->line_len);
	if (port < 0) {
		log_warn("vsock: a host client sent no valid CONNECT line");
		vsock_conn_close(c);
		return;
	}
	c->peer_port = (uint32_t)port;
	c->local_port = pick_port(c->v, c->peer_port);
	c->state = VSOCK_LOCAL_INIT;
	c->pending = VSOCK_PEND_REQUEST;
	vsock_conn_hash(c);
	vsock_hybrid_deadline(c, REQUEST_TIMEOUT_MS);
}

void vsock_hybrid_guest_request(struct virtio_vsock *v, const struct vsock_hdr *hdr)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct vsock_conn *c;
	int n, fd;

	n = snprintf(sa.sun_path, sizeof(sa.sun_path), "%s_%u", v->uds_path, hdr->dst_port);
	if (n < 0 || (size_t)n >= sizeof(sa.sun_path) || v->nr_conns >= VSOCK_MAX_CONNS)
		goto refuse;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		goto refuse;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 && errno != EINPROGRESS) {
		close(fd);
		goto refuse;
	}
	c = vsock_conn_new(v, fd, VSOCK_ESTABLISHED, hdr->dst_port, hdr->src_port);
	if (!c) {
		vsock_queue_rst(v, hdr->dst_port, hdr->src_port);
		return;
	}
	c->peer_buf_alloc = hdr->buf_alloc;
	c->peer_fwd_cnt = hdr->fwd_cnt;
	c->pending = VSOCK_PEND_RESPONSE;
	vsock_conn_refresh(c);
	return;

refuse:
	v->stats.conns_refused++;
	vsock_queue_rst(v, hdr->dst_port, hdr->src_port);
}

void vsock_hybrid_accept(struct virtio_vsock *v)
{
	for (int i = 0; i < ACCEPT_BATCH; i++) {
		int fd = accept4(v->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		struct vsock_conn *c;

		if (fd < 0) {
			struct epoll_event ev = { .events = 0, .data.u64 = VSOCK_TAG_LISTEN };

			if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ||
			    errno == ECONNABORTED)
				return;
			/* Out of descriptors or memory: the client stays queued; try again later
			 * rather than spin on a listening socket that stays readable. */
			log_warn("vsock: accept on %s: %s", v->uds_path, strerror(errno));
			if (epoll_ctl(v->epfd, EPOLL_CTL_MOD, v->listen_fd, &ev) == 0) {
				v->listen_paused = true;
				arm_timer(v);
			}
			return;
		}
		c = vsock_conn_new(v, fd, VSOCK_AWAIT_CONNECT, 0, 0);
		if (!c)
			continue;
		vsock_hybrid_deadline(c, CONNECT_TIMEOUT_MS);
		vsock_conn_refresh(c);
	}
}

void vsock_hybrid_tick(struct virtio_vsock *v)
{
	uint64_t now = now_ms();
	bool waiting = false;

	if (v->listen_paused) {
		struct epoll_event ev = { .events = EPOLLIN, .data.u64 = VSOCK_TAG_LISTEN };

		if (epoll_ctl(v->epfd, EPOLL_CTL_MOD, v->listen_fd, &ev) == 0)
			v->listen_paused = false;
		else
			waiting = true;
	}
	for (unsigned i = 0; i < VSOCK_MAX_CONNS; i++) {
		struct vsock_conn *c = v->slots[i];

		if (!c || !c->deadline_ms)
			continue;
		if (now < c->deadline_ms) {
			waiting = true;
			continue;
		}
		c->deadline_ms = 0;
		if (c->state == VSOCK_LOCAL_INIT) {
			vsock_conn_reset(c); /* the guest never answered: the client sees EOF */
			vsock_conn_refresh(c);
		} else if (c->state == VSOCK_AWAIT_CONNECT || c->state == VSOCK_DRAINING) {
			vsock_conn_close(c);
		}
	}
	if (!waiting) {
		struct itimerspec off = { 0 };

		timerfd_settime(v->timer_fd, 0, &off, NULL);
		v->timer_armed = false;
	}
}
