/* Virtio device sections of the configuration (drives, network-interfaces, vsock, entropy):
 * Firecracker's API bodies parsed into plain structs, for the config file, the API and the VM
 * build. The configuration keeps the validated JSON bodies; these are parsed from them. */
#ifndef KILN_DEVICE_CONFIG_H
#define KILN_DEVICE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "config.h"

/* Legacy IRQ lines 5..23 are free for virtio-mmio devices: at most 19 devices in all. */
#define CONFIG_MAX_VIRTIO_DEVICES 19

enum io_engine { IO_ENGINE_SYNC, IO_ENGINE_ASYNC };
enum cache_type { CACHE_UNSAFE, CACHE_WRITEBACK };

struct drive_config {
	char *drive_id;     /* letters, digits, '_' */
	char *path_on_host; /* required: a regular file or block device */
	bool is_root_device;
	bool is_read_only;
	char *partuuid;     /* NULL when absent: root=/dev/vdX, else root=PARTUUID=... */
	enum cache_type cache_type; /* "Unsafe" (default) or "Writeback": flush reaches the disk */
	enum io_engine io_engine;   /* "Sync" (default) or "Async" (io_uring) */
};

struct net_config {
	char *iface_id;
	char *host_dev_name; /* required: the TAP device's name (at most 15 characters) */
	bool has_guest_mac;
	uint8_t guest_mac[6];
};

struct vsock_config {
	uint32_t guest_cid; /* 3 .. UINT32_MAX-1 */
	char *uds_path;     /* required */
};

struct entropy_config {
	int unused; /* rate_limiter is refused; the device has nothing else to configure */
};

/*
 * Each parses one Firecracker API body (already an object) into *out, with the same contract
 * as the section parsers in config.h: `where` prefixes messages ("vm.json: drives[1]"), fields
 * kiln does not implement (rate limiters, vhost-user `socket`) are errors unless absent or null,
 * on failure -EINVAL (or -ENOMEM), *out is left unchanged and one line is in err.
 */
int config_parse_drive(struct drive_config *out, json_t *obj, const char *where, char *err,
		       size_t errlen) __attribute__((warn_unused_result));
int config_parse_net(struct net_config *out, json_t *obj, const char *where, char *err,
		     size_t errlen) __attribute__((warn_unused_result));
int config_parse_vsock(struct vsock_config *out, json_t *obj, const char *where, char *err,
		       size_t errlen) __attribute__((warn_unused_result));
int config_parse_entropy(struct entropy_config *out, json_t *obj, const char *where, char *err,
			 size_t errlen) __attribute__((warn_unused_result));

/* Free the strings a parsed struct owns and zero it; safe on a zeroed struct. */
void config_drive_free(struct drive_config *d);
void config_net_free(struct net_config *n);
void config_vsock_free(struct vsock_config *v);

/*
 * For the config file: when key names a device section ("drives", "network-interfaces", "vsock",
 * "entropy"), sets *known, checks v (an array of entries for the first two, one object for the
 * others) entry by entry with the parsers above, `where` prefixing messages and "[i]" naming
 * list entries, and keeps a reference to v in cfg's section (null leaves it alone). Otherwise
 * clears *known and returns 0. On failure -EINVAL (or -ENOMEM), cfg unchanged, one line in err.
 */
int config_parse_device_section(struct vm_config *cfg, const char *key, json_t *v,
				const char *where, bool *known, char *err, size_t errlen)
	__attribute__((warn_unused_result));

/*
 * Checks the device sections of cfg together: each entry parses, ids are unique, at most one
 * root device, TAP names and guest MACs unique, at most CONFIG_MAX_VIRTIO_DEVICES devices.
 * 0, or -EINVAL with one line in err naming the section and entry ("drives[2].drive_id: ...");
 * -ENOMEM when out of memory. cfg's device sections are read, never changed.
 */
/*
 * A restored or migrated VM's devices, renamed for this host: body's network_overrides ([{"iface_id",
 * "host_dev_name"}]) and vsock_override ({"uds_path"}), already checked against Firecracker's
 * definitions, applied to cfg, which is then checked again (config_check_devices). 0, or
 * -EINVAL with one line in err (an iface_id or vsock the configuration does not have).
 */
int config_apply_overrides(struct vm_config *cfg, json_t *body, char *err, size_t errlen)
	__attribute__((warn_unused_result));

int config_check_devices(const struct vm_config *cfg, char *err, size_t errlen)
	__attribute__((warn_unused_result));

#endif
