/* Live migration: the source (PUT /migration/start: precopy rounds, the switch-over, then page
 * requests) and the destination (PUT /migration/incoming, --migrate-in: memory filled by
 * precopy, the VM built from the source's state, the rest served by the uffd thread on fault).
 * Both run on the event loop thread; the wire protocol is mig_wire.h's. */
#ifndef KILN_MIGRATE_H
#define KILN_MIGRATE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct vmm;

/* Where the peer is: "unix:PATH" or "tcp:ADDR:PORT" (ADDR a numeric IPv4 address, or an IPv6
 * one in brackets). */
struct mig_uri {
	int family;              /* AF_UNIX, AF_INET or AF_INET6 */
	struct sockaddr_storage addr;
	socklen_t addr_len;
	char text[256];
};

/* Parses uri; 0, or -EINVAL with one line in err. */
int mig_uri_parse(struct mig_uri *u, const char *uri, char *err, size_t errlen)
	__attribute__((warn_unused_result));

enum mig_mode { MIG_MODE_PRECOPY, MIG_MODE_POSTCOPY };

/*
 * Source: starts migrating the running VM to the destination at uri; the work goes on from the
 * event loop. Until the destination says its vCPUs run, any failure resumes the VM here; after
 * that this VM never runs again, and kiln exits 0 once the destination has every page.
 * 0, or -errno with one line in err (-EBUSY: a migration is under way).
 */
int migration_start(struct vmm *m, const char *uri, enum mig_mode mode, unsigned max_downtime_ms,
		    char *err, size_t errlen) __attribute__((warn_unused_result));

/*
 * Destination: listens at uri for one source, on a kiln with no VM yet; a broken postcopy
 * connection may be recovered within recover_timeout_ms. overrides (NULL, or an object with
 * network_overrides and vsock_override as in PUT /snapshot/load, already checked; a reference
 * is taken) rename the source's TAP devices and vsock socket for this host. 0, or -errno with
 * one line in err.
 */
int migration_incoming(struct vmm *m, const char *uri, unsigned recover_timeout_ms,
		       json_t *overrides, char *err, size_t errlen)
	__attribute__((warn_unused_result));

/* Postcopy's connection broke while both sides live (or, on the source, the operator says it
 * did): the destination's missing pages wait, the source stays paused. PUT /migration/recover
 * then listens again at uri (destination) or connects there (source), and postcopy goes on.
 * The destination gives up recover_timeout_ms after the break: its missing pages are then
 * poisoned and the VM is lost. 0, or -errno with one line in err. */
#define MIG_RECOVER_TIMEOUT_MS 30000u
int migration_recover(struct vmm *m, const char *uri, char *err, size_t errlen)
	__attribute__((warn_unused_result));

/* GET /migration's body: the state, counters and times of this process's migration. */
json_t *migration_status(struct vmm *m);

/* Whether a migration holds the VM paused (the switch-over, or the destination runs it): it
 * must not be resumed here. */
bool migration_holds_vm(struct vmm *m);

/* Whether this kiln waits for (or receives) a migrating VM: it may not boot or load another. */
bool migration_incoming_pending(struct vmm *m);

/* --- the destination's VM build (vmm/vm.c, migration/snapshot_restore.c) --- */

struct mig_in;
struct guest_memory;
struct page_source;
struct uffd_range;
struct uffd_server_stats;
struct vm;

/* Moves the guest memory precopy filled into gm. 0, or -EINVAL when there is none. */
int mig_in_take_memory(struct mig_in *in, struct guest_memory *gm)
	__attribute__((warn_unused_result));

/* The uffd thread's page source (the source, asked page range by page range) and the pages
 * already here; drops the old copies of the poison ranges first. 0 or -errno, logged. */
struct uffd_server;
int mig_in_memory_source(struct mig_in *in, struct vm *vm, struct uffd_server *server,
			 const struct uffd_range *poison, size_t nr_poison, struct page_source *src,
			 const uint64_t **present) __attribute__((warn_unused_result));

/* The VM goes away while the uffd thread may still wait on the source (its build failed, or it
 * stopped): the thread's reads and any wait for a recovery end at once, so that the page server
 * can be stopped without waiting for a silent source. On main. */
void mig_in_abandon(struct mig_in *in);

/* The uffd thread ended (every page here, or failed): tells the source, records the figures. */
void mig_in_memory_done(struct mig_in *in, const struct uffd_server_stats *st);

/* Frees the migration, either side; safe when there is none. */
void migration_destroy(struct vmm *m);

#endif
