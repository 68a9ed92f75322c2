/* What migrate.c, migrate_out.c and migrate_in.c share: one migration's state, and a framed
 * connection on the event loop. Not for the rest of kiln (migrate.h is). */
#ifndef KILN_MIGRATE_INT_H
#define KILN_MIGRATE_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "memory.h"
#include "mig_wire.h"
#include "migrate.h"
#include "snapshot.h"
#include "uffd_server.h"

/* A framed connection: frames queued in tx are written as the socket takes them; bytes read
 * into rx are cut into frames. */
struct mig_conn {
	int fd;
	uint8_t *tx;
	size_t tx_len, tx_off, tx_cap;
	uint8_t *rx;
	size_t rx_off, rx_len, rx_cap; /* frames not yet consumed: rx[rx_off, rx_len) */
	uint64_t bytes_out, bytes_in;
};

int mig_conn_init(struct mig_conn *c, int fd) __attribute__((warn_unused_result));
void mig_conn_free(struct mig_conn *c); /* closes fd too */
/* Room for a frame with a payload of len bytes at the end of tx: its payload pointer, or NULL
 * (out of memory). Then mig_conn_commit seals it. */
uint8_t *mig_conn_reserve(struct mig_conn *c, size_t len);
void mig_conn_commit(struct mig_conn *c, uint32_t type, size_t len);
/* Queues a whole frame; 0 or -ENOMEM. */
int mig_conn_send(struct mig_conn *c, uint32_t type, const void *payload, size_t len)
	__attribute__((warn_unused_result));
/* Writes what tx holds: 0 once empty, -EAGAIN while the socket is full, else -errno. */
int mig_conn_flush(struct mig_conn *c) __attribute__((warn_unused_result));
/* Reads what the socket has: 0 at the peer's end, 1 after reading, -EAGAIN, else -errno. */
int mig_conn_recv(struct mig_conn *c) __attribute__((warn_unused_result));
/* The frame at the start of rx: its size (consume it with mig_conn_consume after use), 0 when
 * incomplete, -EBADMSG with one line in err. */
long mig_conn_frame(struct mig_conn *c, struct mig_frame *f, char *err, size_t errlen)
	__attribute__((warn_unused_result));
void mig_conn_consume(struct mig_conn *c, size_t n);

enum mig_state {
	MIG_NONE,
	MIG_CONNECTING,   /* source: connect() in progress */
	MIG_LISTENING,    /* destination: waiting for the source */
	MIG_HANDSHAKE,
	MIG_PRECOPY,      /* source: rounds; destination: receiving pages */
	MIG_SWITCHOVER,   /* source: paused, sending the rest and the state */
	MIG_WAIT_RUNNING, /* source: waiting for the destination's vCPUs */
	MIG_POSTCOPY,     /* the destination runs; missing pages are fetched on fault */
	MIG_BROKEN,       /* postcopy's connection broke: waiting for PUT /migration/recover */
	MIG_COMPLETED,
	MIG_FAILED,
};

const char *mig_state_name(enum mig_state s);

/* The destination's side of the connection once its VM runs: the uffd thread's page source. */
struct mig_in {
	struct migration *mig;
	struct vm *vm;           /* set by the memory step */
	int fd;                  /* blocking from then on; replaced by a recovery */
	pthread_mutex_t write_lock; /* the uffd thread's requests and main's RUNNING/COMPLETE, and
				     * fd's replacement */
	pthread_mutex_t lock;    /* guards what follows */
	pthread_cond_t cond;     /* a recovered connection arrived */
	int new_fd;              /* -1, or the recovered connection main hands over */
	uint8_t *carry;          /* what main read after its RESUME (the stream goes on at once) */
	size_t carry_len;
	bool broken;             /* the uffd thread waits for new_fd */
	bool running;            /* the source was told the VM runs here: a break can be recovered */
	bool abandoned;          /* the VM is going away: no recovery, no more reads */
	unsigned recover_timeout_ms;
	int event_fd;            /* eventfd: the uffd thread tells main the connection broke */
	bool ready;              /* the above are initialised */
	uint8_t *rx;             /* the uffd thread's receive buffer */
	size_t rx_len, rx_cap;
	struct uffd_server *server; /* the uffd thread's server, for the pages pushed */
	bool stream_idle;        /* the source's stream stopped: ask for missing pages */
	uint64_t requests, pushed;
};

struct migration {
	struct vmm *vmm;
	bool source;
	enum mig_state state;
	enum mig_mode mode;
	unsigned max_downtime_ms;
	struct mig_uri uri;
	struct mig_conn conn;
	char error[512];
	uint64_t t_start, t_paused, t_running, t_end; /* CLOCK_MONOTONIC ns; 0: not yet */
	uint64_t page_size, nr_pages;
	uint64_t pages_precopy;  /* PAGES sent (source) or received (destination) before the VM ran */
	uint64_t pages_postcopy; /* pages answered to a request (source) */
	uint64_t pages_pushed;   /* pages streamed unasked after the destination ran (source) */
	uint64_t pages_discarded;
	uint64_t pages_poisoned_answered;
	unsigned rounds;

	/* Source */
	uint64_t *dirty;         /* pages still to send in this round (page_size units) */
	uint64_t *sent;          /* pages the destination has */
	uint64_t cursor;
	uint64_t round_bytes, round_start, last_dirty;
	bool paused_here, logging_enabled_here, tracking;

	/* Destination */
	int listen_fd;
	struct guest_memory mem; /* created by CONFIG (fd -1 before), filled by precopy */
	uint64_t *present;       /* pages in mem (page_size units) */
	struct snapshot_image *img;
	struct mig_in in;
	struct uffd_server_stats uffd_stats; /* once the uffd thread ended */
	bool uffd_done;
	unsigned recover_timeout_ms;
	json_t *overrides;       /* destination: network_overrides, vsock_override; or NULL */
	unsigned recoveries;     /* broken connections recovered (both sides) */
	bool recovering;         /* source: this connection resumes postcopy */
};

/* A new migration of vmm m at uri, its descriptors -1; NULL with one line in err (one is under
 * way, a bad uri, out of memory). */
struct migration *mig_new(struct vmm *m, bool source, const char *uri, char *err, size_t errlen);

uint64_t mig_now_ns(void);
/* Records why the migration failed (the first reason wins) and logs it. */
void mig_fail(struct migration *mig, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* migrate_out.c and migrate_in.c: their event-loop handlers' teardown. */
void mig_out_destroy(struct migration *mig);
void mig_in_destroy(struct migration *mig);
void mig_out_status(struct migration *mig, json_t *j);
/* PUT /migration/recover on each side: reconnect (source) or listen again (destination). */
int mig_out_recover(struct migration *mig, const char *uri, char *err, size_t errlen)
	__attribute__((warn_unused_result));
int mig_in_recover(struct migration *mig, const char *uri, char *err, size_t errlen)
	__attribute__((warn_unused_result));
void mig_in_status(struct migration *mig, json_t *j);

#endif
