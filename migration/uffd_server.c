/* The uffd thread: serves guest RAM's missing-page faults from a page source and fills the rest
 * in the background, never copying over a poisoned page. */
#include "uffd_server.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "seccomp_filter.h"
#include "uffd_compat.h"

#define PAGE_4K 4096ull
#define PAGE_2M (2ull << 20)
#define MSG_BATCH 16 /* fault messages read at once */

static int file_read(void *opaque, uint64_t off, void *dst, size_t len)
{
	ssize_t n = pread((int)(intptr_t)opaque, dst, len, (off_t)off);

	/* Short only at the end of the file: a truncated memory file, whose pages are lost (not
	 * zero). */
	return n == (ssize_t)len ? 0 : n < 0 ? -errno : -EIO;
}

struct page_source page_source_file(int fd)
{
	return (struct page_source){ .read = file_read, .opaque = (void *)(intptr_t)fd };
}

/* --- the thread's work --- */

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static bool bit_test(const uint64_t *map, uint64_t i)
{
	return map[i / 64] >> (i % 64) & 1;
}

/* Finds the first run of pages at or after *p whose bit in map is value, at most max pages
 * long: moves *p to its start and returns its length, 0 when there is none. */
static uint64_t next_run(const struct uffd_server *s, const uint64_t *map, bool value,
			 uint64_t *p, uint64_t max)
{
	uint64_t other = value ? 0 : ~0ull, n = 0;

	while (*p < s->nr_pages && bit_test(map, *p) != value)
		*p += *p % 64 == 0 && map[*p / 64] == other ? 64 : 1;
	while (*p + n < s->nr_pages && n < max && bit_test(map, *p + n) == value)
		n++;
	return n;
}

/* Marks pages [first, first+n) settled, counting the newly settled ones in *counter (a member
 * of s->stats). Only the uffd thread (or start, before it exists) settles pages. */
static void settle(struct uffd_server *s, uint64_t first, uint64_t n, uint64_t *counter)
{
	uint64_t added = 0;

	for (uint64_t p = first; p < first + n; p++) {
		if (!bit_test(s->settled, p)) {
			s->settled[p / 64] |= 1ull << (p % 64);
			added++;
		}
	}
	s->remaining -= added;
	pthread_mutex_lock(&s->lock);
	*counter += added;
	pthread_mutex_unlock(&s->lock);
}

/* Places poison markers on pages [first, first+n), waking whoever waits on them. 0 or -errno;
 * *bytes gets how much was marked before a failure. */
static int poison_pages(struct uffd_server *s, uint64_t first, uint64_t n, uint64_t *bytes)
{
	struct uffdio_poison p = { .range = { .start = (uintptr_t)s->host + first * s->page_size,
					      .len = n * s->page_size } };
	int ret = ioctl(s->uffd, UFFDIO_POISON, &p) < 0 ? -errno : 0;

	*bytes = p.updated > 0 ? (uint64_t)p.updated : 0;
	return ret;
}

/*
 * Copies pages [first, first+n) in from src. A page found present (a racing fault, or a write
 * through another mapping) ends the copy early: it is woken in case its faulter still sleeps,
 * and the rest stays unsettled for later. 0 or -errno.
 */
static int copy_in(struct uffd_server *s, uint64_t first, uint64_t n, const uint8_t *src,
		   uint64_t *counter)
{
	uint64_t ps = s->page_size, off = first * ps, len = n * ps, at = 0;
	const char *op = "UFFDIO_COPY";
	int e;

	do {
		struct uffdio_copy c = { .dst = (uintptr_t)s->host + off + at,
					 .src = (uintptr_t)src + at, .len = len - at };

		e = ioctl(s->uffd, UFFDIO_COPY, &c) < 0 ? errno : 0;
		settle(s, first + at / ps, c.copy > 0 ? (uint64_t)c.copy / ps : 0, counter);
		at += c.copy > 0 ? (uint64_t)c.copy : 0;
	} while (e == EAGAIN); /* the address space was changing: nothing lost, again */
	if (e == EEXIST) {
		struct uffdio_range r = { .start = (uintptr_t)s->host + off + at, .len = ps };

		settle(s, first + at / ps, 1, counter);
		op = "UFFDIO_WAKE";
		e = ioctl(s->uffd, UFFDIO_WAKE, &r) < 0 ? errno : 0;
	}
	if (e)
		log_error("uffd: %s at memfd offset 0x%" PRIx64 ": %s", op, off + at, strerror(e));
	return -e;
}

int uffd_server_deliver(struct uffd_server *s, uint64_t off, const void *data, size_t len)
{
	uint64_t first = off / s->page_size, end = (off + len) / s->page_size, p = first, n;
	int ret;

	while (p < end && (n = next_run(s, s->settled, false, &p, end - p)) > 0) {
		ret = copy_in(s, p, n, (const uint8_t *)data + (p - first) * s->page_size,
			      &s->stats.background_pages);
		if (ret < 0)
			return ret;
		/* A page found present ended the run early: go on after it. */
		while (p < end && bit_test(s->settled, p))
			p++;
	}
	return 0;
}


/*
 * Reads pages [first, first+n) from the source and copies them in (copy_in). 0 or -errno.
 */
static int copy_pages(struct uffd_server *s, uint64_t first, uint64_t n, uint64_t *counter)
{
	uint64_t ps = s->page_size, off = first * ps, len = n * ps;
	int ret = s->source.read(s->source.opaque, off, s->bounce, len);

	if (ret == -EHWPOISON && n > 1) {
		/* Page by page: the source poisons only the ones it must. */
		for (uint64_t i = 0; i < n; i++)
			if (!bit_test(s->settled, first + i) &&
			    (ret = copy_pages(s, first + i, 1, counter)) < 0)
				return ret;
		return 0;
	}
	if (ret == -EHWPOISON) {
		uint64_t bytes;

		s->poisoned[first / 64] |= 1ull << (first % 64);
		ret = poison_pages(s, first, 1, &bytes);
		if (ret == 0)
			settle(s, first, 1, &s->stats.poisoned_pages);
		else
			log_error("uffd: UFFDIO_POISON at memfd offset 0x%" PRIx64 ": %s", off,
				  strerror(-ret));
		return ret;
	}
	if (ret < 0) {
		log_error("uffd: the page source cannot read %" PRIu64 " bytes at memfd offset 0x%"
			  PRIx64 ": %s", len, off, strerror(-ret));
		return ret;
	}
	/* The read may have delivered pages meanwhile (a pushing source): copy the rest only. */
	for (uint64_t p = first; p < first + n;) {
		uint64_t q = p;

		if (bit_test(s->settled, p)) {
			p++;
			continue;
		}
		while (q < first + n && !bit_test(s->settled, q))
			q++;
		ret = copy_in(s, p, q - p, s->bounce + (p - first) * ps, counter);
		if (ret < 0)
			return ret;
		p++; /* settled by copy_in; a page it found present ended the copy there */
	}
	return 0;
}

static int serve_fault(struct uffd_server *s, uint64_t addr)
{
	uint64_t page = (addr - (uintptr_t)s->host) / s->page_size, bytes;

	if (addr < (uintptr_t)s->host || page >= s->nr_pages) {
		log_error("uffd: a fault at 0x%" PRIx64 ", outside the registered memory", addr);
		return -EFAULT;
	}
	/* A poisoned page faults only if its marker was lost: put the marker back (which wakes the
	 * faulter into SIGBUS) rather than hand out the page's old data. */
	if (bit_test(s->poisoned, page))
		return poison_pages(s, page, 1, &bytes);
	return copy_pages(s, page, 1, &s->stats.fault_pages);
}

/* Serves the fault messages waiting. Each one's time counts from the read that got it, so
 * that waiting behind the others in its batch counts too. */
static int serve_faults(struct uffd_server *s)
{
	struct uffd_msg msgs[MSG_BATCH];
	ssize_t n = read(s->uffd, msgs, sizeof(msgs));
	uint64_t start = now_ns(), ns;
	unsigned bucket;
	int ret;

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return 0;
	if (n < 0) {
		log_error("uffd: reading fault messages: %s", strerror(errno));
		return -errno;
	}
	for (size_t i = 0; i < (size_t)n / sizeof(msgs[0]); i++) {
		if (msgs[i].event != UFFD_EVENT_PAGEFAULT)
			continue; /* no other event was asked for */
		ret = serve_fault(s, msgs[i].arg.pagefault.address);
		if (ret < 0)
			return ret;
		ns = now_ns() - start;
		bucket = ns ? 64 - (unsigned)__builtin_clzll(ns) : 0; /* ns < 2^bucket */
		pthread_mutex_lock(&s->lock);
		s->stats.faults++;
		s->stats.fault_ns_total += ns;
		s->stats.fault_ns_max = ns > s->stats.fault_ns_max ? ns : s->stats.fault_ns_max;
		s->fault_hist[bucket < UFFD_SERVER_HIST_BUCKETS ? bucket :
			      UFFD_SERVER_HIST_BUCKETS - 1]++;
		pthread_mutex_unlock(&s->lock);
	}
	return 0;
}

/* After a fatal error: poisons every page not served, so that a thread waiting on one wakes up
 * to SIGBUS (a vCPU: to a machine check) instead of waiting forever or reading zeros. */
static int poison_unserved(struct uffd_server *s)
{
	uint64_t p = s->cursor, n, bytes;
	int ret;

	while ((n = next_run(s, s->settled, false, &p, UINT64_MAX)) > 0) {
		ret = poison_pages(s, p, n, &bytes);
		settle(s, p, bytes / s->page_size, &s->stats.lost_pages);
		p += bytes / s->page_size;
		if (ret == -EEXIST) /* present after all (written through another mapping) */
			settle(s, p++, 1, &s->stats.background_pages);
		else if (ret < 0 && ret != -EAGAIN)
			return ret;
	}
	return 0;
}

/* Ends the server: releases whatever still waits, and says how it ended. */
static void finish(struct uffd_server *s, int error)
{
	struct uffdio_range all = { .start = (uintptr_t)s->host, .len = s->size };
	uint64_t one = 1;
	int ret;

	if (error < 0 && error != -ECANCELED) {
		/* Known before the first page is poisoned: a guest that dies of it is seen to. */
		pthread_mutex_lock(&s->lock);
		s->stats.error = error;
		pthread_mutex_unlock(&s->lock);
		log_error("uffd: the page server failed (%s); poisoning the %" PRIu64 " pages it has "
			  "not served: the VM must stop", strerror(-error), s->remaining);
		if ((ret = poison_unserved(s)) < 0)
			log_error("uffd: cannot poison them (%s): the userfaultfd stays open so that "
				  "they never read as zeros", strerror(-ret));
	}
	if (s->remaining == 0 || error == -ECANCELED) {
		/* Wakes any fault still queued. The poison markers stay: they live in the page table,
		 * not in the registration. */
		if (ioctl(s->uffd, UFFDIO_UNREGISTER, &all) < 0)
			log_warn("uffd: UFFDIO_UNREGISTER: %s", strerror(errno));
		close(s->uffd);
		s->uffd = -1;
	}
	pthread_mutex_lock(&s->lock);
	s->stats.done = true;
	s->stats.error = error;
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
	if (write(s->event_fd, &one, sizeof(one)) < 0)
		log_error("uffd: cannot signal the end of the page server: %s", strerror(errno));
}

/* One step of the background walk: the next missing pages, a chunk at most. */
static int background_step(struct uffd_server *s)
{
	uint64_t n = next_run(s, s->settled, false, &s->cursor, s->chunk_pages);

	return n ? copy_pages(s, s->cursor, n, &s->stats.background_pages) : 0;
}

int uffd_server_fetch_missing(struct uffd_server *s)
{
	return background_step(s);
}

static void *serve(void *arg)
{
	struct uffd_server *s = arg;
	struct pollfd pfd[2] = { { .fd = s->uffd, .events = POLLIN },
				 { .fd = s->cancel_fd, .events = POLLIN } };
	int ret = 0;

	prctl(PR_SET_NAME, "kiln-uffd");
	if (s->seccomp)
		ret = seccomp_filter_install(SECCOMP_UFFD);
	pthread_mutex_lock(&s->lock);
	s->ready = true;
	s->ready_error = ret;
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
	if (ret < 0)
		return NULL; /* start undoes the rest */
	/* Faults first; between them, one chunk of the background walk at a time. The poll never
	 * blocks: as long as a page is missing, the walk has work. */
	while (ret == 0 && s->remaining > 0) {
		if (poll(pfd, 2, 0) < 0) {
			ret = errno == EINTR ? 0 : -errno;
		} else if (pfd[1].revents) {
			ret = -ECANCELED;
		} else if (pfd[0].revents & POLLIN) {
			ret = serve_faults(s);
		} else if (pfd[0].revents) {
			ret = -EIO; /* POLLERR: the address space is gone */
		} else if (s->source.pump) {
			ret = s->source.pump(s->source.opaque, s, s->uffd);
		} else {
			ret = background_step(s);
		}
	}
	finish(s, ret);
	return NULL;
}

/* --- starting and stopping --- */

static int check_config(const struct uffd_server_config *c, char *err, size_t errlen)
{
	uint64_t ps = c->page_size;

	if ((ps != PAGE_4K && ps != PAGE_2M) || !c->host || (uintptr_t)c->host % ps ||
	    c->size == 0 || c->size % ps || !c->source.read) {
		snprintf(err, errlen, "%" PRIu64 " bytes at %p in pages of %" PRIu64 " bytes, or no "
			 "page source: expected whole aligned 4 KiB or 2 MiB pages", c->size,
			 (void *)c->host, ps);
		return -EINVAL;
	}
	for (const struct uffd_range *r = c->poison; r < c->poison + c->nr_poison; r++) {
		if (r->len == 0 || r->off % ps || r->len % ps) {
			snprintf(err, errlen, "poison range [0x%" PRIx64 ", +0x%" PRIx64 ") is not "
				 "whole %" PRIu64 " KiB pages", r->off, r->len, ps >> 10);
			return -EINVAL;
		}
		if (r->off >= c->size || r->len > c->size - r->off) {
			snprintf(err, errlen, "poison range [0x%" PRIx64 ", +0x%" PRIx64 ") lies "
				 "outside the 0x%" PRIx64 " bytes of memory", r->off, r->len, c->size);
			return -EINVAL;
		}
	}
	return 0;
}

/* A userfaultfd after its UFFDIO_API handshake: an fd, -EOPNOTSUPP when the kernel lacks a
 * feature, or -errno. Not UFFD_USER_MODE_ONLY: KVM faults on guest RAM from the kernel. */
static int uffd_open_api(uint64_t features)
{
	struct uffdio_api api = { .api = UFFD_API, .features = features };
	int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK), ret;

	if (fd < 0)
		return -errno;
	if (ioctl(fd, UFFDIO_API, &api) == 0)
		return fd;
	ret = errno == EINVAL ? -EOPNOTSUPP : -errno;
	close(fd);
	return ret;
}

int uffd_open_guest(uint64_t page_size, bool need_poison, bool *can_poison, char *err,
		    size_t errlen)
{
	uint64_t mem = page_size == PAGE_2M ? UFFD_FEATURE_MISSING_HUGETLBFS :
					      UFFD_FEATURE_MISSING_SHMEM;
	int fd;

	/* Poison is asked for even with none to place: a failed server, or a handler that went
	 * away, needs it to release the threads waiting on pages nobody will serve. */
	fd = uffd_open_api(mem | UFFD_FEATURE_POISON);
	*can_poison = fd >= 0;
	if (fd == -EOPNOTSUPP && !need_poison)
		fd = uffd_open_api(mem);
	if (fd == -EOPNOTSUPP)
		snprintf(err, errlen, "%s", need_poison ? UFFD_NO_POISON_MSG :
			 "this kernel's userfaultfd cannot serve this memory (shmem or hugetlb)");
	else if (fd < 0)
		snprintf(err, errlen, "userfaultfd: %s%s", strerror(-fd), fd == -EPERM ?
			 " (needs CAP_SYS_PTRACE or vm.unprivileged_userfaultfd=1)" : "");
	return fd;
}

int uffd_poison_supported(uint64_t page_size, char *err, size_t errlen)
{
	bool can_poison;
	int fd = uffd_open_guest(page_size, true, &can_poison, err, errlen);

	if (fd < 0)
		return fd;
	close(fd);
	return 0;
}

static int open_uffd(struct uffd_server *s, bool need_poison, char *err, size_t errlen)
{
	static const char no_poison[] = UFFD_NO_POISON_MSG;
	struct uffdio_register reg = { .range = { .start = (uintptr_t)s->host, .len = s->size },
				       .mode = UFFDIO_REGISTER_MODE_MISSING };
	bool can_poison;
	int fd = uffd_open_guest(s->page_size, need_poison, &can_poison, err, errlen);

	if (fd < 0)
		return fd;
	if (ioctl(fd, UFFDIO_REGISTER, &reg) < 0) {
		snprintf(err, errlen, "UFFDIO_REGISTER of %" PRIu64 " bytes: %s", s->size,
			 strerror(errno));
		close(fd);
		return -EINVAL;
	}
	if (!(reg.ioctls & (1ull << _UFFDIO_COPY)) ||
	    (need_poison && !(reg.ioctls & (1ull << _UFFDIO_POISON)))) {
		snprintf(err, errlen, "%s", !(reg.ioctls & (1ull << _UFFDIO_COPY)) ?
			 "UFFDIO_REGISTER offers no UFFDIO_COPY on this memory" : no_poison);
		close(fd); /* unregisters */
		return -EOPNOTSUPP;
	}
	s->uffd = fd;
	return 0;
}

/* Marks the poisoned pages (ranges may overlap or touch), then poisons them run by run. */
static int place_poison(struct uffd_server *s, const struct uffd_server_config *c, char *err,
			size_t errlen)
{
	uint64_t ps = s->page_size, p = 0, n, bytes;
	int ret;

	for (const struct uffd_range *r = c->poison; r < c->poison + c->nr_poison; r++)
		for (uint64_t q = r->off / ps; q < (r->off + r->len) / ps; q++)
			s->poisoned[q / 64] |= 1ull << (q % 64);
	for (; (n = next_run(s, s->poisoned, true, &p, UINT64_MAX)) > 0; p += n) {
		ret = poison_pages(s, p, n, &bytes);
		if (ret < 0) {
			snprintf(err, errlen, "UFFDIO_POISON at memfd offset 0x%" PRIx64 ": %s%s",
				 p * ps + bytes, strerror(-ret), ret == -EEXIST ?
				 " (a page is present: the memory must be fresh)" : "");
			return ret;
		}
		settle(s, p, n, &s->stats.poisoned_pages);
	}
	return 0;
}

/* Starts the thread and waits for it to load its filter: no unguarded thread serves a page. */
static int start_thread(struct uffd_server *s, char *err, size_t errlen)
{
	int ret = pthread_create(&s->thread, NULL, serve, s);

	if (ret != 0) {
		snprintf(err, errlen, "cannot create the uffd thread: %s", strerror(ret));
		return -ret;
	}
	pthread_mutex_lock(&s->lock);
	while (!s->ready)
		pthread_cond_wait(&s->cond, &s->lock);
	ret = s->ready_error;
	pthread_mutex_unlock(&s->lock);
	if (ret < 0) {
		pthread_join(s->thread, NULL);
		snprintf(err, errlen, "the uffd thread cannot load its seccomp filter: %s",
			 strerror(-ret));
	}
	return ret;
}

/* Frees what start allocated; leaves the userfaultfd alone. */
static void free_state(struct uffd_server *s)
{
	if (s->cancel_fd >= 0)
		close(s->cancel_fd);
	if (s->event_fd >= 0)
		close(s->event_fd);
	free(s->settled);
	free(s->poisoned);
	free(s->bounce);
	pthread_cond_destroy(&s->cond);
	pthread_mutex_destroy(&s->lock);
	s->settled = s->poisoned = NULL;
	s->bounce = NULL;
	s->cancel_fd = s->event_fd = -1;
}

int uffd_server_start(struct uffd_server *s, const struct uffd_server_config *cfg, char *err,
		      size_t errlen)
{
	uint64_t ps = cfg->page_size, words;
	int ret;

	memset(s, 0, sizeof(*s));
	s->uffd = s->cancel_fd = s->event_fd = -1;
	ret = check_config(cfg, err, errlen);
	if (ret < 0)
		return ret;
	s->host = cfg->host;
	s->size = cfg->size;
	s->page_size = ps;
	s->nr_pages = s->remaining = s->stats.pages = cfg->size / ps;
	s->chunk_pages = ps >= UFFD_SERVER_CHUNK ? 1 : UFFD_SERVER_CHUNK / ps;
	s->source = cfg->source;
	s->seccomp = cfg->seccomp;
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->cond, NULL);
	words = (s->nr_pages + 63) / 64;
	s->settled = calloc(words, sizeof(uint64_t));
	s->poisoned = calloc(words, sizeof(uint64_t));
	s->bounce = aligned_alloc(ps, s->chunk_pages * ps);
	s->cancel_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	s->event_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (!s->settled || !s->poisoned || !s->bounce || s->cancel_fd < 0 || s->event_fd < 0) {
		ret = s->cancel_fd < 0 || s->event_fd < 0 ? -errno : -ENOMEM;
		snprintf(err, errlen, "the page server's state: %s", strerror(-ret));
		goto err_free;
	}
	ret = open_uffd(s, cfg->nr_poison > 0, err, errlen);
	if (ret < 0)
		goto err_free;
	for (uint64_t p = 0; cfg->present && p < s->nr_pages; p++)
		if (bit_test(cfg->present, p))
			settle(s, p, 1, &s->stats.present_pages);
	ret = place_poison(s, cfg, err, errlen);
	if (ret == 0)
		ret = start_thread(s, err, errlen);
	if (ret == 0)
		return 0;
	/* Nothing has touched the memory yet: no page can fault in as zeros to anyone. */
	close(s->uffd);
	s->uffd = -1;
err_free:
	free_state(s);
	return ret;
}

int uffd_server_event_fd(const struct uffd_server *s)
{
	return s->event_fd;
}

int uffd_server_wait_done(struct uffd_server *s)
{
	int ret;

	pthread_mutex_lock(&s->lock);
	while (!s->stats.done)
		pthread_cond_wait(&s->cond, &s->lock);
	ret = s->stats.error;
	pthread_mutex_unlock(&s->lock);
	return ret;
}

/* The upper bound of the histogram bucket holding the q-th percentile of fault times. */
static uint64_t percentile(const struct uffd_server *s, unsigned q)
{
	uint64_t seen = 0;
	unsigned i = 0;

	while (i < UFFD_SERVER_HIST_BUCKETS - 1 &&
	       (seen += s->fault_hist[i]) * 100 < s->stats.faults * q)
		i++;
	return 1ull << i;
}

void uffd_server_stats(struct uffd_server *s, struct uffd_server_stats *out)
{
	pthread_mutex_lock(&s->lock);
	*out = s->stats;
	out->fault_ns_p50 = out->faults ? percentile(s, 50) : 0;
	out->fault_ns_p99 = out->faults ? percentile(s, 99) : 0;
	pthread_mutex_unlock(&s->lock);
}

void uffd_server_cancel(struct uffd_server *s)
{
	uint64_t one = 1;

	if (s->settled && write(s->cancel_fd, &one, sizeof(one)) < 0)
		log_error("uffd: cannot cancel the page server: %s", strerror(errno));
}

void uffd_server_stop(struct uffd_server *s)
{
	if (!s->settled)
		return; /* never started, or stopped already */
	/* The thread ends by itself once no page is missing, having filled or poisoned them (or
	 * when cancelled). */
	pthread_join(s->thread, NULL);
	if (s->uffd >= 0)
		log_warn("uffd: leaving the userfaultfd open: %" PRIu64 " pages were never served",
			 s->remaining);
	free_state(s);
}
