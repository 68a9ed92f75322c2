/* kiln-uffd-handler: an example external page-fault handler for PUT /snapshot/load with
 * mem_backend {"backend_type": "Uffd", "backend_path": SOCKET}. It takes one connection on
 * SOCKET, receives the memory layout (JSON) and the userfaultfd, and serves every fault with
 * UFFDIO_COPY from the snapshot's memory file, until kiln closes the connection. With --eager it
 * first copies every page, as a handler that prefetches the whole snapshot would: on a kernel
 * whose UFFDIO_COPY erases poison markers, that would make a poisoned page readable. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <jansson.h>

#define MAX_REGIONS 16
#define FAULT_BATCH 16

struct region {
	uint64_t base, size, offset;
};

struct handler {
	struct region regions[MAX_REGIONS];
	unsigned nr;
	uint64_t page_size;
	const uint8_t *file; /* the memory file, mapped read-only */
	uint64_t file_size;
	int uffd;
	uint64_t faults, copied, present;
	uint64_t die_after; /* 0: never */
};

static void die(const char *what)
{
	fprintf(stderr, "kiln-uffd-handler: %s\n", what);
	exit(1);
}

static void die_errno(const char *what)
{
	fprintf(stderr, "kiln-uffd-handler: %s: %s\n", what, strerror(errno));
	exit(1);
}

/* One connection on path, which must not exist yet. */
static int accept_one(const char *path)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	int l, c;

	if (strlen(path) >= sizeof(a.sun_path))
		die("the socket path is too long");
	strcpy(a.sun_path, path);
	l = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (l < 0)
		die_errno("socket");
	if (bind(l, (struct sockaddr *)&a, sizeof(a)) < 0)
		die_errno(errno == EADDRINUSE ? "the socket path exists already" : "bind");
	if (listen(l, 1) < 0)
		die_errno("listen");
	c = accept4(l, NULL, NULL, SOCK_CLOEXEC);
	if (c < 0)
		die_errno("accept");
	close(l);
	unlink(path);
	return c;
}

/* A member of a region object, which must be a non-negative integer. */
static int get_u64(json_t *o, const char *key, uint64_t *v)
{
	json_t *n = json_object_get(o, key);

	if (!json_is_integer(n) || json_integer_value(n) < 0)
		return -1;
	*v = (uint64_t)json_integer_value(n);
	return 0;
}

/* The handshake: [{"base_host_virt_addr", "size", "offset", "page_size"}, ...] and the fd. */
static void receive_layout(struct handler *h, int sock)
{
	char text[4096], control[CMSG_SPACE(sizeof(int))];
	struct iovec iov = { .iov_base = text, .iov_len = sizeof(text) - 1 };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control,
			    .msg_controllen = sizeof(control) };
	struct cmsghdr *c;
	json_error_t jerr;
	json_t *all, *o;
	ssize_t n;
	size_t i;

	do
		n = recvmsg(sock, &m, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		die_errno("receiving the handshake");
	if (n == 0)
		die("kiln closed the connection before the handshake");
	c = CMSG_FIRSTHDR(&m);
	if (!c || c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS ||
	    c->cmsg_len != CMSG_LEN(sizeof(int)))
		die("the handshake carries no userfaultfd");
	memcpy(&h->uffd, CMSG_DATA(c), sizeof(int));
	all = json_loadb(text, (size_t)n, 0, &jerr);
	if (!json_is_array(all) || json_array_size(all) == 0 ||
	    json_array_size(all) > MAX_REGIONS)
		die("the handshake is not a JSON array of 1 to 16 regions");
	json_array_foreach(all, i, o) {
		struct region *r = &h->regions[h->nr++];
		uint64_t ps = 0;

		/* page_size_kib: the older name, which Firecracker filled with bytes all the
		 * same; a sender meaning KiB gives a value below the smallest page. */
		if (get_u64(o, "page_size", &ps) < 0 &&
		    get_u64(o, "page_size_kib", &ps) == 0 && ps < 4096)
			ps <<= 10;
		if (get_u64(o, "base_host_virt_addr", &r->base) < 0 ||
		    get_u64(o, "size", &r->size) < 0 || get_u64(o, "offset", &r->offset) < 0 ||
		    (ps & (ps - 1)) || ps < 4096 || (h->page_size && ps != h->page_size))
			die("a region lacks base_host_virt_addr, size, offset or a page size");
		h->page_size = ps;
		if (r->base % ps || r->size % ps || r->offset % ps || r->offset > h->file_size ||
		    r->size > h->file_size - r->offset)
			die("a region is misaligned or lies beyond the end of the memory file");
	}
	json_decref(all);
}

/* Copies in the page holding addr, from the file offset of its region. */
static void serve(struct handler *h, uint64_t addr)
{
	uint64_t page = addr & ~(h->page_size - 1);
	const struct region *r = h->regions;

	while (r < h->regions + h->nr && (page < r->base || page - r->base >= r->size))
		r++;
	if (r == h->regions + h->nr) {
		fprintf(stderr, "kiln-uffd-handler: a fault at 0x%" PRIx64 " outside every "
			"region\n", addr);
		exit(1);
	}
	for (;;) {
		const uint8_t *src = h->file + r->offset + (page - r->base);
		struct uffdio_copy c = { .dst = page, .src = (uintptr_t)src, .len = h->page_size };

		if (ioctl(h->uffd, UFFDIO_COPY, &c) == 0) {
			h->copied++;
			return;
		}
		if (errno == EEXIST) { /* present already (or poisoned): wake the faulter */
			struct uffdio_range w = { .start = page, .len = h->page_size };

			h->present++;
			if (ioctl(h->uffd, UFFDIO_WAKE, &w) < 0)
				die_errno("UFFDIO_WAKE");
			return;
		}
		if (errno != EAGAIN) /* EAGAIN: the address space was changing; again */
			die_errno("UFFDIO_COPY");
	}
}

/* --eager: every page of every region, before any fault; EEXIST (present, or poisoned on a
 * kernel that refuses to copy over a poison marker) is counted as present. */
static void copy_all(struct handler *h)
{
	for (const struct region *r = h->regions; r < h->regions + h->nr; r++)
		for (uint64_t off = 0; off < r->size; off += h->page_size)
			serve(h, r->base + off);
	printf("kiln-uffd-handler: eager copy: %" PRIu64 " pages copied, %" PRIu64 " refused "
	       "(present or poisoned)\n", h->copied, h->present);
}

/* kiln never writes after the handshake: a readable socket means it closed the connection. */
static int peer_closed(int sock)
{
	char byte;
	ssize_t n = recv(sock, &byte, 1, MSG_DONTWAIT);

	return n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR);
}

static void serve_faults(struct handler *h)
{
	struct uffd_msg msgs[FAULT_BATCH];
	ssize_t n = read(h->uffd, msgs, sizeof(msgs));

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n < 0)
		die_errno("reading the userfaultfd");
	for (size_t i = 0; i < (size_t)n / sizeof(msgs[0]); i++) {
		if (msgs[i].event != UFFD_EVENT_PAGEFAULT)
			continue;
		serve(h, msgs[i].arg.pagefault.address);
		if (++h->faults == h->die_after) {
			fprintf(stderr, "kiln-uffd-handler: exiting after %" PRIu64 " faults, as "
				"asked\n", h->faults);
			exit(3);
		}
	}
}

int main(int argc, char **argv)
{
	struct handler h = { .uffd = -1 };
	struct stat st;
	int fd, sock, argi = 1;
	bool eager = false;

	for (; argi < argc && !strncmp(argv[argi], "--", 2); argi++) {
		if (!strcmp(argv[argi], "--eager")) {
			eager = true;
		} else if (!strcmp(argv[argi], "--die-after") && argi + 1 < argc) {
			h.die_after = strtoull(argv[++argi], NULL, 10);
		} else {
			argi = argc; /* unknown: usage */
			break;
		}
	}
	if (argc - argi != 2) {
		fprintf(stderr, "usage: kiln-uffd-handler [--eager] [--die-after N] SOCKET "
			"MEMORY_FILE\n");
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	fd = open(argv[argi + 1], O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0)
		die_errno(argv[argi + 1]);
	if (st.st_size == 0)
		die("the memory file is empty");
	h.file_size = (uint64_t)st.st_size;
	h.file = mmap(NULL, h.file_size, PROT_READ, MAP_PRIVATE, fd, 0);
	if (h.file == MAP_FAILED)
		die_errno("mapping the memory file");
	sock = accept_one(argv[argi]);
	receive_layout(&h, sock);
	printf("kiln-uffd-handler: serving %u regions, page size %" PRIu64 "\n", h.nr, h.page_size);
	if (eager)
		copy_all(&h);
	for (;;) {
		struct pollfd p[2] = { { .fd = h.uffd, .events = POLLIN },
				       { .fd = sock, .events = POLLIN } };

		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			die_errno("poll");
		}
		if (p[0].revents & POLLIN)
			serve_faults(&h);
		if (p[0].revents & POLLERR)
			die("the userfaultfd reports an error (kiln opens it O_NONBLOCK)");
		if ((p[0].revents & POLLHUP) || (p[1].revents && peer_closed(sock)))
			break;
	}
	printf("kiln-uffd-handler: done, %" PRIu64 " faults served (%" PRIu64 " pages copied, %"
	       PRIu64 " present already)\n", h.faults, h.copied, h.present);
	return 0;
}
