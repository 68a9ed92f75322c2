/* The uffd thread: serves lazily restored (later: migrated-in) guest RAM from a page source
 * through userfaultfd in MISSING mode, faults first and the rest in the background, and keeps
 * every poisoned page poisoned. */
#ifndef KILN_UFFD_SERVER_H
#define KILN_UFFD_SERVER_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * The most the background fill copies at once: 8 pages of 4 KiB, or one of 2 MiB. A fault that
 * arrives meanwhile waits for it: on the test host, 32 KiB kept a faulting thread's median wait
 * at 30-45 us against ~130 us with 256 KiB, for ~10% less fill throughput.
 */
#define UFFD_SERVER_CHUNK (32u << 10)

struct uffd_server;

/* Where pages come from: byte offset N of the source is byte offset N of the memfd. */
struct page_source {
	/* Reads len bytes at memfd offset off into dst: 0 or -errno. off is page-aligned and len
	 * a whole number of pages, at most max(UFFD_SERVER_CHUNK, one page). Called on the uffd
	 * thread only. -EHWPOISON: a page of the range is poisoned at the source (a migration
	 * source found it so); the server then asks page by page and poisons the ones that
	 * answer -EHWPOISON again (the source records them in the VM's poison log). */
	int (*read)(void *opaque, uint64_t off, void *dst, size_t len);
	/*
	 * Optional, for a source that sends pages unasked (a migration source streaming what the
	 * destination lacks): called on the uffd thread instead of a background read whenever no
	 * fault waits. It waits until uffd_fd is readable (a fault: return at once) or pages
	 * arrive, hands those to uffd_server_deliver, and returns 0; -errno fails the server.
	 * With nothing arriving for long, it may read the first missing pages itself.
	 */
	int (*pump)(void *opaque, struct uffd_server *s, int uffd_fd);
	void *opaque;
};

/* From a source's pump or read, on the uffd thread: pages [off, off+len) (memfd offsets, whole
 * pages) arrived with data; copies in the ones not yet present or poisoned. 0 or -errno. */
int uffd_server_deliver(struct uffd_server *s, uint64_t off, const void *data, size_t len);

/* From a source's pump, on the uffd thread: reads the first missing pages (up to a background
 * chunk) through the source's read and copies them in, as the background walk of a source
 * without a pump does. 0 (also when none is missing) or -errno. */
int uffd_server_fetch_missing(struct uffd_server *s);

/* A page source reading the memory file fd with pread. Holes read as zeros; a file that ends
 * before the range does is -EIO, never zeros. fd stays the caller's and must outlive the
 * server. */
struct page_source page_source_file(int fd);

/*
 * A userfaultfd for guest memory of page_size pages (shmem or hugetlb), handshaken with poison
 * markers when the kernel has them (*can_poison); without them it is refused when need_poison,
 * else taken. Not UFFD_USER_MODE_ONLY: KVM faults on guest RAM from the kernel. An fd, or
 * -errno (-EOPNOTSUPP: the kernel lacks a feature) with one line in err.
 */
int uffd_open_guest(uint64_t page_size, bool need_poison, bool *can_poison, char *err,
		    size_t errlen);

/*
 * 0 when this kernel can place poison markers on guest memory of page_size pages, else -errno
 * (-EOPNOTSUPP: no UFFD_FEATURE_POISON) with one line in err.
 */
int uffd_poison_supported(uint64_t page_size, char *err, size_t errlen);

/* Why a kernel without UFFD_FEATURE_POISON cannot have poisoned pages restored. */
#define UFFD_NO_POISON_MSG "this kernel cannot preserve poisoned pages (no " \
	"UFFD_FEATURE_POISON; Linux 6.6+ or kiln's kernel-patches for 6.1)"

/* A range of the memfd, in bytes; both numbers are multiples of the page size. */
struct uffd_range {
	uint64_t off, len;
};

struct uffd_server_config {
	uint8_t *host;         /* MAP_SHARED mapping of a fresh memfd: no page present yet */
	uint64_t size;         /* bytes, a multiple of page_size */
	uint64_t page_size;    /* 4 KiB (shmem memfd) or 2 MiB (hugetlb memfd) */
	struct page_source source;
	const struct uffd_range *poison; /* pages that must stay poisoned; not kept after start */
	size_t nr_poison;
	/* Pages already in the memfd (precopy wrote them before registration), one bit per page
	 * of page_size; NULL: none. They are never copied. Not kept after start. */
	const uint64_t *present;
	bool seccomp;          /* the thread loads the SECCOMP_UFFD filter (kiln: true) */
};

struct uffd_server_stats {
	uint64_t pages;            /* pages of the range */
	uint64_t faults;           /* fault messages served */
	uint64_t fault_pages;      /* pages copied in to serve a fault */
	uint64_t background_pages; /* pages copied in by the background fill */
	uint64_t present_pages;    /* pages already in memory at start */
	uint64_t poisoned_pages;   /* pages given a poison marker (at start, or as the source
				    * answered) */
	uint64_t lost_pages;       /* pages poisoned because the server failed before serving them */
	uint64_t fault_ns_total;   /* fault service time: from reading the message to the copy */
	uint64_t fault_ns_max;
	uint64_t fault_ns_p50;     /* upper bounds, from a power-of-two histogram */
	uint64_t fault_ns_p99;
	bool done;                 /* the server has ended; with error 0, every page is present
				    * or poisoned and the userfaultfd is closed */
	int error;                 /* 0, the -errno the server failed with (set before it poisons
				    * what it did not serve), or -ECANCELED */
};

#define UFFD_SERVER_HIST_BUCKETS 40

/* The server's state; the owner embeds it and touches it only through the functions below. */
struct uffd_server {
	int uffd;               /* -1 once closed */
	int cancel_fd;          /* eventfd: uffd_server_cancel wakes the thread */
	int event_fd;           /* eventfd: readable once the server has ended */
	uint8_t *host;
	uint64_t size, page_size, nr_pages, chunk_pages;
	struct page_source source;
	uint64_t *settled;      /* one bit per page: present or poisoned, nothing left to do */
	uint64_t *poisoned;     /* one bit per page: has a poison marker, never copied over */
	uint64_t cursor;        /* background walk: every page below it is settled */
	uint64_t remaining;     /* pages not settled; the thread alone changes it */
	uint8_t *bounce;        /* chunk_pages pages, page-aligned */
	bool seccomp;
	pthread_t thread;
	pthread_mutex_t lock;   /* guards what follows */
	pthread_cond_t cond;
	bool ready;             /* the thread has named itself and loaded its filter */
	int ready_error;
	struct uffd_server_stats stats;
	uint64_t fault_hist[UFFD_SERVER_HIST_BUCKETS]; /* bucket i: service time < 2^i ns */
};

/*
 * Opens the userfaultfd (kernel-mode faults allowed: KVM faults on guest RAM too), registers
 * [host, host+size) in MISSING mode, places a poison marker on every cfg->poison range, and
 * starts the uffd thread ("kiln-uffd"), which serves faults from cfg->source and fills the rest
 * in the background. Call before anything touches the memory. Refuses with err set: a
 * misaligned or out-of-range poison range, a kernel that cannot place poison markers when
 * there are some, an already present page, a seccomp filter the thread cannot load.
 * 0 or -errno; on failure nothing is left running.
 */
int uffd_server_start(struct uffd_server *s, const struct uffd_server_config *cfg, char *err,
		      size_t errlen) __attribute__((warn_unused_result));

/*
 * An eventfd that becomes readable (and stays so) when the server has ended, filled or failed:
 * for the owner's event loop. A failed server has logged why and turned every page it could not
 * serve into a poisoned one, so that no thread waits forever and none reads zeros (a thread
 * waiting on one gets SIGBUS, a vCPU a machine check); the owner must then stop the VM, whose
 * memory is lost. (A kernel without UFFD_FEATURE_POISON leaves those faulters waiting until the
 * process ends.) Valid until uffd_server_stop.
 */
int uffd_server_event_fd(const struct uffd_server *s);

/* Blocks until the server has ended: 0 once every page is present or poisoned and the
 * userfaultfd is closed, else the -errno it failed with (-ECANCELED after a cancel). */
int uffd_server_wait_done(struct uffd_server *s);

/* A snapshot of the counters; callable from any thread between start and stop. */
void uffd_server_stats(struct uffd_server *s, struct uffd_server_stats *out);

/*
 * Stops the server and frees it. Never leaves a page missing: if the background fill has not
 * finished, stop waits for it to finish (the thread keeps serving faults meanwhile). Safe on a
 * zeroed server and after a failed start. If the failed server could not even poison what it had not served, the
 * userfaultfd is left open (threads touching those pages wait instead of reading zeros).
 */
void uffd_server_stop(struct uffd_server *s);

/*
 * Ends the server at once, leaving unserved pages missing, for an owner tearing the VM down:
 * only when nothing will touch the memory again before it is unmapped (a missing page would
 * read as zeros once the userfaultfd is closed). Then call uffd_server_stop.
 */
void uffd_server_cancel(struct uffd_server *s);

#endif
