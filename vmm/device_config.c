/* Parses and cross-checks the virtio device sections of the configuration (device_config.h). */
#include "device_config.h"
#include "config_field.h"
#include "json_text.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#define DESCRIBE_LEN JSON_TEXT_DESCRIBE_LEN
#define WHERE_LEN 64
#define IFNAME_MAX 15 /* IFNAMSIZ - 1 */
#define UDS_PATH_MAX (sizeof(((struct sockaddr_un *)0)->sun_path) - 1)
#define ID_CHARS "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_"

/* Sets *out to the index of the string at key in names (two names); absent keeps *out. */
static int get_choice(const struct config_field_section *s, const char *key,
		      const char *const names[2], unsigned *out)
{
	json_t *v = config_field_get(s, key);
	char desc[DESCRIBE_LEN];

	if (!v)
		return 0;
	for (unsigned i = 0; i < 2; i++) {
		if (json_is_string(v) && !strcmp(json_string_value(v), names[i])) {
			*out = i;
			return 0;
		}
	}
	return config_field_err(s, key, "expected \"%s\" or \"%s\", got %s", names[0], names[1],
				json_text_describe(v, desc, sizeof(desc)));
}

/* A required id: letters, digits and '_' (Firecracker's rule). */
static int get_id(const struct config_field_section *s, const char *key, char **out)
{
	const char *id;
	int rc;

	rc = config_field_string(s, key, CONFIG_FIELD_REQUIRED | CONFIG_FIELD_NONEMPTY, &id);
	if (rc)
		return rc;
	if (strspn(id, ID_CHARS) != strlen(id))
		return config_field_err(s, key, "expected letters, digits and '_' only, got \"%s\"",
					id);
	return config_field_dup(id, out);
}

void config_drive_free(struct drive_config *d)
{
	free(d->drive_id);
	free(d->path_on_host);
	free(d->partuuid);
	*d = (struct drive_config){ 0 };
}

void config_net_free(struct net_config *n)
{
	free(n->iface_id);
	free(n->host_dev_name);
	*n = (struct net_config){ 0 };
}

void config_vsock_free(struct vsock_config *v)
{
	free(v->uds_path);
	*v = (struct vsock_config){ 0 };
}

/* partuuid goes on the kernel command line (root=PARTUUID=...): no spaces or quotes there. */
static int check_partuuid(const struct config_field_section *s, const char *partuuid)
{
	if (partuuid && strspn(partuuid, ID_CHARS "-/=") != strlen(partuuid))
		return config_field_err(s, "partuuid",
					"expected letters, digits, '-', '/' and '=' only (it "
					"goes on the kernel command line), got \"%s\"",
					partuuid);
	return 0;
}

int config_parse_drive(struct drive_config *out, json_t *obj, const char *where, char *err,
		       size_t errlen)
{
	static const char *const known[] = { "drive_id",     "partuuid",     "is_root_device",
					     "cache_type",   "is_read_only", "path_on_host",
					     "rate_limiter", "io_engine",    "socket",
					     NULL };
	static const char *const refused[] = { "socket", "rate_limiter", NULL };
	static const char *const caches[2] = { [CACHE_UNSAFE] = "Unsafe",
					       [CACHE_WRITEBACK] = "Writeback" };
	static const char *const engines[2] = { [IO_ENGINE_SYNC] = "Sync",
						[IO_ENGINE_ASYNC] = "Async" };
	const struct config_field_section s = { obj, where, err, errlen };
	struct drive_config d = { 0 };
	unsigned cache = CACHE_UNSAFE, engine = IO_ENGINE_SYNC;
	const char *path, *partuuid;
	int rc;

	rc = config_field_check_object(&s, known);
	if (!rc)
		rc = config_field_refuse(&s, refused);
	if (!rc)
		rc = get_id(&s, "drive_id", &d.drive_id);
	if (!rc)
		rc = config_field_string(&s, "path_on_host",
					 CONFIG_FIELD_REQUIRED | CONFIG_FIELD_NONEMPTY, &path);
	if (!rc)
		rc = config_field_bool(&s, "is_root_device", CONFIG_FIELD_REQUIRED,
				       &d.is_root_device);
	if (!rc)
		rc = config_field_bool(&s, "is_read_only", 0, &d.is_read_only);
	if (!rc)
		rc = config_field_string(&s, "partuuid", CONFIG_FIELD_NONEMPTY, &partuuid);
	if (!rc)
		rc = check_partuuid(&s, partuuid);
	if (!rc)
		rc = get_choice(&s, "cache_type", caches, &cache);
	if (!rc)
		rc = get_choice(&s, "io_engine", engines, &engine);
	if (!rc)
		rc = config_field_dup(path, &d.path_on_host);
	if (!rc)
		rc = config_field_dup(partuuid, &d.partuuid);
	if (rc) {
		config_drive_free(&d);
		return rc;
	}
	d.cache_type = (enum cache_type)cache;
	d.io_engine = (enum io_engine)engine;
	config_drive_free(out);
	*out = d;
	return 0;
}

/* A TAP device's name as the kernel takes it (dev_valid_name): 1-15 bytes, no '/', ':', space. */
static int check_ifname(const struct config_field_section *s, const char *name)
{
	if (strlen(name) > IFNAME_MAX)
		return config_field_err(s, "host_dev_name",
					"expected at most %d characters, got \"%s\"", IFNAME_MAX,
					name);
	for (const char *p = name; *p; p++) {
		if (*p == '/' || *p == ':' || isspace((unsigned char)*p))
			return config_field_err(s, "host_dev_name",
						"\"%s\" is not a valid interface name ('/', ':' "
						"and spaces are not allowed)",
						name);
	}
	if (!strcmp(name, ".") || !strcmp(name, ".."))
		return config_field_err(s, "host_dev_name", "\"%s\" is not a valid interface name",
					name);
	return 0;
}

/* Parses "xx:xx:xx:xx:xx:xx" (hex, either case) into mac; a multicast address is refused. */
static int parse_mac(const struct config_field_section *s, const char *text, uint8_t mac[6])
{
	static const char hex[] = "0123456789abcdef";

	if (strlen(text) != 17) /* so that no character below is the terminator */
		goto err_syntax;
	for (int i = 0; i < 6; i++) {
		const char *hi = strchr(hex, tolower((unsigned char)text[3 * i]));
		const char *lo = strchr(hex, tolower((unsigned char)text[3 * i + 1]));

		if (!hi || !lo || (i < 5 && text[3 * i + 2] != ':'))
			goto err_syntax;
		mac[i] = (uint8_t)((hi - hex) << 4 | (lo - hex));
	}
	if (mac[0] & 1)
		return config_field_err(s, "guest_mac",
					"\"%s\" is a multicast address; a guest's MAC must be "
					"unicast (low bit of the first octet clear)",
					text);
	return 0;

err_syntax:
	return config_field_err(s, "guest_mac",
				"expected a MAC address like \"06:00:ac:10:00:02\", got \"%s\"",
				text);
}

int config_parse_net(struct net_config *out, json_t *obj, const char *where, char *err,
		     size_t errlen)
{
	static const char *const known[] = { "iface_id", "host_dev_name",   "guest_mac",
					     "mtu",      "rx_rate_limiter", "tx_rate_limiter",
					     NULL };
	static const char *const refused[] = { "mtu", "rx_rate_limiter", "tx_rate_limiter", NULL };
	const struct config_field_section s = { obj, where, err, errlen };
	struct net_config n = { 0 };
	const char *ifname, *mac;
	int rc;

	rc = config_field_check_object(&s, known);
	if (!rc)
		rc = config_field_refuse(&s, refused);
	if (!rc)
		rc = get_id(&s, "iface_id", &n.iface_id);
	if (!rc)
		rc = config_field_string(&s, "host_dev_name",
					 CONFIG_FIELD_REQUIRED | CONFIG_FIELD_NONEMPTY, &ifname);
	if (!rc)
		rc = check_ifname(&s, ifname);
	if (!rc)
		rc = config_field_string(&s, "guest_mac", CONFIG_FIELD_NONEMPTY, &mac);
	if (!rc && mac) {
		rc = parse_mac(&s, mac, n.guest_mac);
		n.has_guest_mac = true;
	}
	if (!rc)
		rc = config_field_dup(ifname, &n.host_dev_name);
	if (rc) {
		config_net_free(&n);
		return rc;
	}
	config_net_free(out);
	*out = n;
	return 0;
}

int config_parse_vsock(struct vsock_config *out, json_t *obj, const char *where, char *err,
		       size_t errlen)
{
	static const char *const known[] = { "guest_cid", "uds_path", "vsock_id", NULL };
	const struct config_field_section s = { obj, where, err, errlen };
	struct vsock_config v = { 0 };
	const char *path, *id;
	int rc;

	rc = config_field_check_object(&s, known);
	if (rc)
		return rc;
	/* 0-2 are the hypervisor, local and host; UINT32_MAX is VMADDR_CID_ANY. */
	rc = config_field_u32(&s, "guest_cid", 3, UINT32_MAX - 1, &v.guest_cid);
	if (!rc)
		rc = config_field_string(&s, "uds_path",
					 CONFIG_FIELD_REQUIRED | CONFIG_FIELD_NONEMPTY, &path);
	if (rc)
		return rc;
	if (strlen(path) > UDS_PATH_MAX)
		return config_field_err(&s, "uds_path",
					"expected at most %zu bytes (a unix socket's path), "
					"got %zu",
					UDS_PATH_MAX, strlen(path));
	/* vsock_id is deprecated by Firecracker: checked, then ignored. */
	rc = config_field_string(&s, "vsock_id", CONFIG_FIELD_NONEMPTY, &id);
	if (!rc)
		rc = config_field_dup(path, &v.uds_path);
	if (rc)
		return rc;
	config_vsock_free(out);
	*out = v;
	return 0;
}

int config_parse_entropy(struct entropy_config *out, json_t *obj, const char *where, char *err,
			 size_t errlen)
{
	static const char *const known[] = { "rate_limiter", NULL };
	static const char *const refused[] = { "rate_limiter", NULL };
	const struct config_field_section s = { obj, where, err, errlen };
	int rc;

	rc = config_field_check_object(&s, known);
	if (!rc)
		rc = config_field_refuse(&s, refused);
	if (rc)
		return rc;
	*out = (struct entropy_config){ 0 };
	return 0;
}

/* Where a device section is kept in cfg, or NULL when key is not one. */
static json_t **device_slot(struct vm_config *cfg, const char *key)
{
	if (!strcmp(key, "drives"))
		return &cfg->drives;
	if (!strcmp(key, "network-interfaces"))
		return &cfg->network_interfaces;
	if (!strcmp(key, "vsock"))
		return &cfg->vsock;
	if (!strcmp(key, "entropy"))
		return &cfg->entropy;
	return NULL;
}

/* Checks one entry of the device section key with its parser. */
static int check_entry(const char *key, json_t *e, const char *where, char *err, size_t errlen)
{
	struct drive_config d = { 0 };
	struct net_config n = { 0 };
	struct vsock_config v = { 0 };
	struct entropy_config r;
	int rc;

	if (!strcmp(key, "drives")) {
		rc = config_parse_drive(&d, e, where, err, errlen);
		config_drive_free(&d);
	} else if (!strcmp(key, "network-interfaces")) {
		rc = config_parse_net(&n, e, where, err, errlen);
		config_net_free(&n);
	} else if (!strcmp(key, "vsock")) {
		rc = config_parse_vsock(&v, e, where, err, errlen);
		config_vsock_free(&v);
	} else {
		rc = config_parse_entropy(&r, e, where, err, errlen);
	}
	return rc;
}

int config_parse_device_section(struct vm_config *cfg, const char *key, json_t *v,
				const char *where, bool *known, char *err, size_t errlen)
{
	json_t **slot = device_slot(cfg, key);
	bool is_list = slot == &cfg->drives || slot == &cfg->network_interfaces;
	char entry[PATH_MAX + 64];
	char desc[DESCRIBE_LEN];
	json_t *e;
	size_t i;
	int rc;

	*known = slot != NULL;
	if (!slot || json_is_null(v))
		return 0;
	if (is_list && !json_is_array(v)) {
		json_text_set_err(err, errlen, "%s: expected an array, got %s", where,
				  json_text_describe(v, desc, sizeof(desc)));
		return -EINVAL;
	}
	if (!is_list) {
		rc = check_entry(key, v, where, err, errlen);
		if (rc)
			return rc;
	}
	json_array_foreach(v, i, e) {
		snprintf(entry, sizeof(entry), "%s[%zu]", where, i);
		rc = check_entry(key, e, entry, err, errlen);
		if (rc)
			return rc;
	}
	json_decref(*slot);
	*slot = json_incref(v);
	return 0;
}

/* The device sections of one configuration, parsed. */
struct devices {
	struct drive_config *drives;
	size_t ndrives;
	struct net_config *nets;
	size_t nnets;
};

static void devices_free(struct devices *d)
{
	for (size_t i = 0; i < d->ndrives; i++)
		config_drive_free(&d->drives[i]);
	for (size_t i = 0; i < d->nnets; i++)
		config_net_free(&d->nets[i]);
	free(d->drives);
	free(d->nets);
}

/* Checks that a list section is an array (or absent); *n is its length. */
static int check_list(json_t *list, const char *name, size_t *n, char *err, size_t errlen)
{
	char desc[DESCRIBE_LEN];

	*n = json_array_size(list);
	if (list && !json_is_array(list)) {
		json_text_set_err(err, errlen, "%s: expected an array, got %s", name,
				  json_text_describe(list, desc, sizeof(desc)));
		return -EINVAL;
	}
	return 0;
}

/* Parses every entry of cfg's device sections into d (allocated here). */
static int parse_all(struct devices *d, const struct vm_config *cfg, char *err, size_t errlen)
{
	char where[WHERE_LEN];
	size_t ndrives, nnets;
	int rc;

	rc = check_list(cfg->drives, "drives", &ndrives, err, errlen);
	if (!rc)
		rc = check_list(cfg->network_interfaces, "network-interfaces", &nnets, err, errlen);
	if (rc)
		return rc;
	d->drives = calloc(ndrives ? ndrives : 1, sizeof(*d->drives));
	d->nets = calloc(nnets ? nnets : 1, sizeof(*d->nets));
	if (!d->drives || !d->nets) {
		json_text_set_err(err, errlen, "out of memory checking the devices");
		return -ENOMEM;
	}
	for (; d->ndrives < ndrives; d->ndrives++) {
		json_t *e = json_array_get(cfg->drives, d->ndrives);

		snprintf(where, sizeof(where), "drives[%zu]", d->ndrives);
		rc = config_parse_drive(&d->drives[d->ndrives], e, where, err, errlen);
		if (rc)
			return rc;
	}
	for (; d->nnets < nnets; d->nnets++) {
		json_t *e = json_array_get(cfg->network_interfaces, d->nnets);

		snprintf(where, sizeof(where), "network-interfaces[%zu]", d->nnets);
		rc = config_parse_net(&d->nets[d->nnets], e, where, err, errlen);
		if (rc)
			return rc;
	}
	return 0;
}

/* Refuses a second root device and a drive_id used twice. */
static int check_drives(const struct devices *d, char *err, size_t errlen)
{
	const struct drive_config *root = NULL;
	size_t root_i = 0;

	for (size_t i = 0; i < d->ndrives; i++) {
		const struct drive_config *a = &d->drives[i];

		for (size_t j = 0; j < i; j++) {
			if (strcmp(a->drive_id, d->drives[j].drive_id))
				continue;
			json_text_set_err(err, errlen,
					  "drives[%zu].drive_id: \"%s\" is already used by "
					  "drives[%zu]",
					  i, a->drive_id, j);
			return -EINVAL;
		}
		if (a->is_root_device && root) {
			json_text_set_err(err, errlen,
					  "drives[%zu].is_root_device: drive \"%s\" cannot be a "
					  "second root device: drive \"%s\" (drives[%zu]) already "
					  "is",
					  i, a->drive_id, root->drive_id, root_i);
			return -EINVAL;
		}
		if (a->is_root_device) {
			root = a;
			root_i = i;
		}
	}
	return 0;
}

/* Refuses an iface_id, a TAP device or a guest MAC used twice. */
static int check_nets(const struct devices *d, char *err, size_t errlen)
{
	for (size_t i = 0; i < d->nnets; i++) {
		const struct net_config *a = &d->nets[i];

		for (size_t j = 0; j < i; j++) {
			const struct net_config *b = &d->nets[j];
			const char *key = NULL, *what = NULL;
			char mac[18];

			if (!strcmp(a->iface_id, b->iface_id)) {
				key = "iface_id";
				what = a->iface_id;
			} else if (!strcmp(a->host_dev_name, b->host_dev_name)) {
				key = "host_dev_name";
				what = a->host_dev_name;
			} else if (a->has_guest_mac && b->has_guest_mac &&
				   !memcmp(a->guest_mac, b->guest_mac, sizeof(a->guest_mac))) {
				const uint8_t *m = a->guest_mac;

				snprintf(mac, sizeof(mac), "%02x:%02x:%02x:%02x:%02x:%02x", m[0],
					 m[1], m[2], m[3], m[4], m[5]);
				key = "guest_mac";
				what = mac;
			}
			if (!key)
				continue;
			json_text_set_err(err, errlen,
					  "network-interfaces[%zu].%s: \"%s\" is already used by "
					  "network-interfaces[%zu] (iface_id \"%s\")",
					  i, key, what, j, b->iface_id);
			return -EINVAL;
		}
	}
	return 0;
}

int config_check_devices(const struct vm_config *cfg, char *err, size_t errlen)
{
	struct devices d = { 0 };
	struct vsock_config vsock = { 0 };
	struct entropy_config entropy;
	size_t total;
	int rc;

	rc = parse_all(&d, cfg, err, errlen);
	if (!rc)
		rc = check_drives(&d, err, errlen);
	if (!rc)
		rc = check_nets(&d, err, errlen);
	if (!rc && cfg->vsock)
		rc = config_parse_vsock(&vsock, cfg->vsock, "vsock", err, errlen);
	if (!rc && cfg->entropy)
		rc = config_parse_entropy(&entropy, cfg->entropy, "entropy", err, errlen);
	total = d.ndrives + d.nnets + !!cfg->vsock + !!cfg->entropy;
	if (!rc && total > CONFIG_MAX_VIRTIO_DEVICES) {
		json_text_set_err(err, errlen,
				  "too many virtio devices: %zu drives, %zu network-interfaces, "
				  "%d vsock and %d entropy make %zu; kiln has room for at most %d",
				  d.ndrives, d.nnets, !!cfg->vsock, !!cfg->entropy, total,
				  CONFIG_MAX_VIRTIO_DEVICES);
		rc = -EINVAL;
	}
	config_vsock_free(&vsock);
	devices_free(&d);
	return rc;
}

int config_apply_overrides(struct vm_config *cfg, json_t *body, char *err, size_t errlen)
{
	json_t *nets = json_object_get(body, "network_overrides"), *o, *vs;
	size_t i, j;

	json_array_foreach(nets, i, o) {
		const char *id = json_string_value(json_object_get(o, "iface_id"));
		json_t *iface, *found = NULL;

		json_array_foreach(cfg->network_interfaces, j, iface)
			if (!strcmp(json_string_value(json_object_get(iface, "iface_id")), id))
				found = iface;
		if (!found) {
			snprintf(err, errlen, "network_overrides[%zu]: the snapshot has no network "
				 "interface \"%s\"", i, id);
			return -EINVAL;
		}
		json_object_set(found, "host_dev_name", json_object_get(o, "host_dev_name"));
	}
	vs = json_object_get(body, "vsock_override");
	if (vs) {
		if (!cfg->vsock) {
			snprintf(err, errlen, "vsock_override: the snapshot has no vsock device");
			return -EINVAL;
		}
		json_object_set(cfg->vsock, "uds_path", json_object_get(vs, "uds_path"));
	}
	return config_check_devices(cfg, err, errlen);
}
