/* Guest RAM served by an external page-fault handler: Firecracker's handshake (the regions as
 * JSON, the userfaultfd as SCM_RIGHTS), and poisoning what a dead handler can no longer serve. */
#include "uffd_external.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include "uffd_compat.h"

#define PAGE_4K 4096ull
#define PAGE_2M (2ull << 20)
#define MAX_AGAIN 1000 /* UFFDIO_POISON's -EAGAIN without progress, before giving up */

int uffd_external_message(char *buf, size_t len, const uint8_t *host, uint64_t page_size,
			  const struct guest_region *regions, unsigned nr_regions)
{
	size_t at = 0;
	int n;

	for (unsigned i = 0; i < nr_regions; i++) {
		const struct guest_region *r = &regions[i];

		n = snprintf(buf + at, len - at, "%s{\"base_host_virt_addr\":%" PRIu64 ",\"size\":%"
			     PRIu64 ",\"offset\":%" PRIu64 ",\"page_size\":%" PRIu64
			     ",\"page_size_kib\":%" PRIu64 "}", i ? "," : "[",
			     (uint64_t)(uintptr_t)(host + r->offset), r->size, r->offset, page_size,
			     page_size);
		if (n < 0 || (size_t)n >= len - at)
			return -ENOSPC;
		at += (size_t)n;
	}
	n = snprintf(buf + at, len - at, "%s]", nr_regions ? "" : "[");
	if (n < 0 || (size_t)n >= len - at)
		return -ENOSPC;
	return (int)(at + (size_t)n);
}

/* The region holding memfd range [off, off+len), or NULL. */
static const struct guest_region *region_of(const struct uffd_external *x, uint64_t off,
					    uint64_t len)
{
	for (const struct guest_region *r = x->regions; r < x->regions + x->nr_regions; r++) {
		uint64_t in = off - r->offset;

		if (off >= r->offset && in < r->size && len <= r->size - in)
			return r;
	}
	return NULL;
}

static int check_args(const struct uffd_external *x, const struct uffd_range *poison,
		      size_t nr_poison, char *err, size_t errlen)
{
	uint64_t ps = x->page_size;

	if ((ps != PAGE_4K && ps != PAGE_2M) || !x->host || (uintptr_t)x->host % ps ||
	    x->nr_regions == 0 || x->nr_regions > GUEST_MEM_MAX_REGIONS) {
		snprintf(err, errlen, "%u region(s) at %p in pages of %" PRIu64 " bytes: "
			 "expected 1 to %u regions of aligned 4 KiB or 2 MiB pages",
			 x->nr_regions, (void *)x->host, ps, GUEST_MEM_MAX_REGIONS);
		return -EINVAL;
	}
	for (const struct guest_region *r = x->regions; r < x->regions + x->nr_regions; r++) {
		uint64_t end = r->offset + r->size;
		bool overlaps = false;

		for (const struct guest_region *q = x->regions; q < r; q++)
			overlaps |= r->offset < q->offset + q->size && q->offset < end;
		if (r->size == 0 || r->offset % ps || r->size % ps || end < r->offset || overlaps) {
			snprintf(err, errlen, "region [0x%" PRIx64 ", +0x%" PRIx64 ") is empty, "
				 "not whole %" PRIu64 " KiB pages, or overlaps another",
				 r->offset, r->size, ps >> 10);
			return -EINVAL;
		}
	}
	for (const struct uffd_range *p = poison; p < poison + nr_poison; p++) {
		if (p->len == 0 || p->off % ps || p->len % ps || !region_of(x, p->off, p->len)) {
			snprintf(err, errlen, "poison range [0x%" PRIx64 ", +0x%" PRIx64 ") is not "
				 "whole %" PRIu64 " KiB pages inside one region", p->off, p->len,
				 ps >> 10);
			return -EINVAL;
		}
	}
	return 0;
}

static int open_uffd(struct uffd_external *x, bool need_poison, char *err, size_t errlen)
{
	static const char no_poison[] = UFFD_NO_POISON_MSG;
	int fd = uffd_open_guest(x->page_size, need_poison, &x->can_poison, err, errlen);

	if (fd < 0)
		return fd;
	x->uffd = fd;
	for (const struct guest_region *r = x->regions; r < x->regions + x->nr_regions; r++) {
		struct uffdio_register reg = {
			.range = { .start = (uintptr_t)(x->host + r->offset), .len = r->size },
			.mode = UFFDIO_REGISTER_MODE_MISSING,
		};

		if (ioctl(fd, UFFDIO_REGISTER, &reg) < 0) {
			snprintf(err, errlen, "UFFDIO_REGISTER of %" PRIu64 " bytes at memfd "
				 "offset 0x%" PRIx64 ": %s", r->size, r->offset, strerror(errno));
			return -EINVAL;
		}
		if (!(reg.ioctls & (1ull << _UFFDIO_COPY))) {
			snprintf(err, errlen, "UFFDIO_REGISTER offers no UFFDIO_COPY here");
			return -EOPNOTSUPP;
		}
		x->can_poison &= (reg.ioctls & (1ull << _UFFDIO_POISON)) != 0;
	}
	if (need_poison && !x->can_poison) {
		snprintf(err, errlen, "%s", no_poison);
		return -EOPNOTSUPP;
	}
	return 0;
}

/* Puts poison markers on memfd range [off, off+len), waking whoever waits on the pages marked.
 * 0 or -errno (-EEXIST: a page present or poisoned already); *done gets the bytes marked. */
static int poison_range(struct uffd_external *x, uint64_t off, uint64_t len, uint64_t *done)
{
	unsigned again = 0;
	int ret;

	*done = 0;
	do {
		struct uffdio_poison p = { .range = { .start = (uintptr_t)(x->host + off + *done),
						      .len = len - *done } };

		ret = ioctl(x->uffd, UFFDIO_POISON, &p) < 0 ? -errno : 0;
		*done += p.updated > 0 ? (uint64_t)p.updated : 0;
		/* -EAGAIN: marked up to a page that was not missing (which the next call reports),
		 * or the address space was changing. */
		again = p.updated > 0 ? 0 : again + 1;
	} while (ret == -EAGAIN && *done < len && again < MAX_AGAIN);
	return *done == len ? 0 : ret < 0 ? ret : -EIO;
}

/* Whether memfd offset off lies in one of the poison ranges before p. */
static bool poisoned_before(const struct uffd_range *poison, const struct uffd_range *p,
			    uint64_t off)
{
	for (const struct uffd_range *q = poison; q < p; q++)
		if (off >= q->off && off - q->off < q->len)
			return true;
	return false;
}

static int place_poison(struct uffd_external *x, const struct uffd_range *poison,
			size_t nr_poison, char *err, size_t errlen)
{
	uint64_t done;
	int ret;

	for (const struct uffd_range *p = poison; p < poison + nr_poison; p++) {
		for (uint64_t at = p->off, end = p->off + p->len; at < end; at += x->page_size) {
			ret = poison_range(x, at, end - at, &done);
			at += done;
			if (ret == 0)
				break;
			if (ret == -EEXIST && poisoned_before(poison, p, at))
				continue; /* ranges that overlap */
			snprintf(err, errlen, "UFFDIO_POISON at memfd offset 0x%" PRIx64 ": %s%s",
				 at, strerror(-ret), ret == -EEXIST ?
				 " (a page is present: the memory must be fresh)" : "");
			return ret;
		}
	}
	return 0;
}

static int connect_handler(const char *path, char *err, size_t errlen)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	int fd, ret;

	if (strlen(path) >= sizeof(a.sun_path)) {
		snprintf(err, errlen, "cannot connect to the page-fault handler at %s: the path is "
			 "longer than %zu bytes", path, sizeof(a.sun_path) - 1);
		return -ENAMETOOLONG;
	}
	memcpy(a.sun_path, path, strlen(path));
	/* Non-blocking: a handler that does not accept must not stall the VM build. */
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		ret = -errno;
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return ret;
	}
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0)
		return fd;
	ret = -errno;
	snprintf(err, errlen, "cannot connect to the page-fault handler at %s: %s%s", path,
		 strerror(-ret), ret == -EAGAIN ? " (its backlog is full: it is not accepting)" :
		 "");
	close(fd);
	return ret;
}

/* The one message of the protocol: the layout, with the userfaultfd attached. */
static int send_handshake(struct uffd_external *x, const char *path, char *err, size_t errlen)
{
	char text[UFFD_EXTERNAL_MSG_MAX];
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} control = { .buf = { 0 } };
	struct iovec iov = { .iov_base = text };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf,
			    .msg_controllen = sizeof(control.buf) };
	struct cmsghdr *c = CMSG_FIRSTHDR(&m);
	int len = uffd_external_message(text, sizeof(text), x->host, x->page_size, x->regions,
					x->nr_regions);
	ssize_t n;
	int e;

	if (len < 0) {
		snprintf(err, errlen, "the memory layout does not fit in %zu bytes", sizeof(text));
		return len;
	}
	iov.iov_len = (size_t)len;
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &x->uffd, sizeof(int));
	do
		n = sendmsg(x->sock, &m, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	if (n == len)
		return 0;
	e = n < 0 ? errno : EIO; /* short: the socket's buffer is smaller than one message */
	snprintf(err, errlen, "sending the memory layout to the page-fault handler at %s: %s", path,
		 strerror(e));
	return -e;
}

int uffd_external_start(struct uffd_external *x, const char *socket_path, uint8_t *host,
			uint64_t page_size, const struct guest_region *regions,
			unsigned nr_regions, const struct uffd_range *poison, size_t nr_poison,
			char *err, size_t errlen)
{
	int ret;

	*x = (struct uffd_external){ .uffd = -1, .sock = -1, .host = host, .page_size = page_size,
				     .nr_regions = nr_regions };
	if (nr_regions <= GUEST_MEM_MAX_REGIONS)
		memcpy(x->regions, regions, nr_regions * sizeof(*regions));
	ret = check_args(x, poison, nr_poison, err, errlen);
	/* Connected first: a handler that is not there leaves the memory as it was. */
	if (ret == 0)
		ret = x->sock = connect_handler(socket_path, err, errlen);
	if (ret >= 0)
		ret = open_uffd(x, nr_poison > 0, err, errlen);
	if (ret == 0)
		ret = place_poison(x, poison, nr_poison, err, errlen);
	if (ret == 0)
		ret = send_handshake(x, socket_path, err, errlen);
	if (ret == 0)
		return 0;
	/* Nothing has touched the memory: no page can fault in as zeros to anyone. */
	uffd_external_stop(x);
	return ret;
}

int uffd_external_socket(const struct uffd_external *x)
{
	return x->sock;
}

int uffd_external_fail_all(struct uffd_external *x, char *err, size_t errlen)
{
	uint64_t ps = x->page_size, done;
	int ret = 0;

	if (!x->can_poison) {
		snprintf(err, errlen, "this kernel cannot poison the pages the page-fault handler "
			 "did not serve (no UFFD_FEATURE_POISON): threads waiting on them wait "
			 "until kiln exits");
		return -EOPNOTSUPP;
	}
	/* Each call marks up to the next page that is not missing; that one is stepped over. */
	for (const struct guest_region *r = x->regions; r < x->regions + x->nr_regions; r++) {
		for (uint64_t at = r->offset, end = r->offset + r->size; at < end; ) {
			ret = poison_range(x, at, end - at, &done);
			x->lost_pages += done / ps;
			at += done + (ret == -EEXIST ? ps : 0);
			if (ret < 0 && ret != -EEXIST) {
				snprintf(err, errlen, "UFFDIO_POISON at memfd offset 0x%" PRIx64
					 ": %s", at, strerror(-ret));
				return ret;
			}
		}
	}
	/* A page copied in with UFFDIO_COPY_MODE_DONTWAKE may still have waiters. */
	for (const struct guest_region *r = x->regions; r < x->regions + x->nr_regions; r++) {
		struct uffdio_range all = { .start = (uintptr_t)(x->host + r->offset),
					    .len = r->size };

		if (ioctl(x->uffd, UFFDIO_WAKE, &all) < 0) {
			ret = -errno;
			snprintf(err, errlen, "UFFDIO_WAKE at memfd offset 0x%" PRIx64 ": %s",
				 r->offset, strerror(errno));
			return ret;
		}
	}
	return 0;
}

void uffd_external_stop(struct uffd_external *x)
{
	if (x->nr_regions == 0)
		return; /* never started, or stopped already */
	if (x->sock >= 0)
		close(x->sock);
	if (x->uffd >= 0)
		close(x->uffd);
	x->sock = x->uffd = -1;
	x->nr_regions = 0;
}
