/* PUT /snapshot/create and PUT /snapshot/load, on the event loop thread: Firecracker's bodies
 * checked and turned into migration/snapshot.c's calls. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "log.h"
#include "migrate.h"
#include "snapshot.h"
#include "vmm.h"

#define PAUSE_TIMEOUT_MS 5000

static const char *str(json_t *body, const char *key)
{
	return json_string_value(json_object_get(body, key));
}

void api_snapshot_create(struct vmm *m, struct api *a, struct api_call *c)
{
	const char *type = str(c->body, "snapshot_type");
	char err[1024];
	int ret;

	(void)a;
	ret = snapshot_create(m->vm, type && !strcmp(type, "Diff") ? SNAPSHOT_DIFF : SNAPSHOT_FULL,
			      str(c->body, "snapshot_path"), str(c->body, "mem_file_path"), err,
			      sizeof(err));
	if (ret < 0) {
		log_error("CreateSnapshot: %s", err);
		api_reply_fault(&c->reply, "CreateSnapshot: %s", err);
		return;
	}
	log_info("snapshot written: %s, memory %s", str(c->body, "snapshot_path"),
		 str(c->body, "mem_file_path"));
	api_reply_json(&c->reply, 204, NULL);
}

/* Which memory file the body names (*uffd false) or which handler socket (*uffd true), or NULL
 * with err set. */
static const char *mem_source(json_t *body, bool *uffd, char *err, size_t errlen)
{
	json_t *backend = json_object_get(body, "mem_backend");
	const char *path = str(body, "mem_file_path");

	if (backend && path) {
		snprintf(err, errlen, "give mem_backend or mem_file_path, not both");
		return NULL;
	}
	if (!backend && !path) {
		snprintf(err, errlen, "missing mem_backend (or the deprecated mem_file_path)");
		return NULL;
	}
	*uffd = !path && !strcmp(str(backend, "backend_type"), "Uffd");
	return path ? path : str(backend, "backend_path");
}

static int load(struct vmm *m, json_t *body, char *err, size_t errlen)
{
	const char *huge = str(body, "huge_pages"), *mem;
	struct snapshot_image *img;
	struct vm_config cfg;
	struct vm *vm;
	bool uffd = false;
	int ret;

	if (migration_incoming_pending(m)) {
		snprintf(err, errlen, "this kiln waits for a migrating microVM (GET /migration)");
		return -EBUSY;
	}
	if (json_is_true(json_object_get(body, "clock_realtime"))) {
		snprintf(err, errlen, "clock_realtime is not supported by kiln yet");
		return -EINVAL;
	}
	if (huge && strcmp(huge, "Snapshot") != 0) {
		snprintf(err, errlen, "huge_pages \"%s\": kiln restores the snapshot's own page size "
			 "only (\"Snapshot\")", huge);
		return -EINVAL;
	}
	if (!(mem = mem_source(body, &uffd, err, errlen)))
		return -EINVAL;
	img = calloc(1, sizeof(*img));
	vm = calloc(1, sizeof(*vm));
	if (!img || !vm) {
		free(img);
		free(vm);
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	config_init(&cfg);
	ret = snapshot_open(img, &cfg, str(body, "snapshot_path"), uffd ? NULL : mem,
			    uffd ? mem : NULL, err, errlen);
	if (ret == 0)
		ret = config_apply_overrides(&cfg, body, err, errlen);
	/* As in Firecracker, the load request decides whether the restored VM tracks dirty pages
	 * (enable_diff_snapshots is its deprecated name). */
	cfg.machine.track_dirty_pages = json_is_true(json_object_get(body, "track_dirty_pages")) ||
					json_is_true(json_object_get(body, "enable_diff_snapshots"));
	if (ret < 0) {
		config_free(&cfg);
		snapshot_close(img);
		free(img);
		free(vm);
		return ret;
	}
	vmm_adopt_config(m, &cfg);
	log_clear_last_error();
	ret = vm_build(vm, &m->cfg, &m->loop, &m->metrics, m->boot_timer, img);
	if (ret < 0) {
		snprintf(err, errlen, "cannot restore the microVM: %s",
			 log_last_error()[0] ? log_last_error() : strerror(-ret));
		snapshot_close(img);
		free(img);
		free(vm);
		return ret;
	}
	m->vm = vm;
	m->snapshot = img;
	vm->seccomp = m->seccomp;
	ret = vm_start(vm, !json_is_true(json_object_get(body, "resume_vm")));
	if (ret < 0)
		snprintf(err, errlen, "cannot start the vCPUs: %s", strerror(-ret));
	return ret;
}

void api_snapshot_load(struct vmm *m, struct api *a, struct api_call *c)
{
	char err[1024];

	(void)a;
	if (load(m, c->body, err, sizeof(err)) < 0) {
		log_error("LoadSnapshot: %s", err);
		api_reply_fault(&c->reply, "LoadSnapshot: %s", err);
		return;
	}
	log_info("microVM restored from %s (%s)", str(c->body, "snapshot_path"),
		 m->vm->state == VM_PAUSED ? "paused" : "running");
	api_reply_json(&c->reply, 204, NULL);
}
