/* Host capability probe for GET /capabilities: cheap, unprivileged, works without /dev/kvm. */
#include "capabilities.h"
#include "kvm.h"
#include "uffd_compat.h"
#include "uffd_server.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <unistd.h>
#include <linux/kvm.h>
#include <linux/memfd.h>
#include <linux/userfaultfd.h>


#define ERR_LEN 192

struct uffd_report {
	bool available;
	char error[ERR_LEN];       /* "" when available */
	uint64_t features;
	bool poison;
	int copy_refuses;          /* 1, 0, or -1 when unknown */
	char copy_error[ERR_LEN];  /* "" unless the copy probe failed */
};

/* paths with every NULL field (or all of them, for NULL) replaced by the real file. */
static struct capabilities_paths paths_resolve(const struct capabilities_paths *paths)
{
	struct capabilities_paths r = {
		.kvm = "/dev/kvm",
		.cpuinfo = "/proc/cpuinfo",
		.hugepages_2m = "/sys/kernel/mm/hugepages/hugepages-2048kB",
		.memory_failure = "/proc/sys/vm/memory_failure_recovery",
	};

	if (paths && paths->kvm)
		r.kvm = paths->kvm;
	if (paths && paths->cpuinfo)
		r.cpuinfo = paths->cpuinfo;
	if (paths && paths->hugepages_2m)
		r.hugepages_2m = paths->hugepages_2m;
	if (paths && paths->memory_failure)
		r.memory_failure = paths->memory_failure;
	return r;
}

/* A JSON string, or JSON null for NULL or "" (and for text jansson refuses). */
static json_t *string_or_null(const char *s)
{
	json_t *j = s && *s ? json_string(s) : NULL;

	return j ? j : json_null();
}

/* 1 when the first "flags" line of a cpuinfo file lists svm or vmx, 0 if not, -errno. */
static int cpuinfo_has_virt(const char *path)
{
	FILE *f = fopen(path, "re");
	char *line = NULL, *save = NULL, *word;
	size_t cap = 0;
	int found = 0;

	if (!f)
		return -errno;
	while (getline(&line, &cap, f) > 0) {
		char *colon = line + 5 + strspn(line + 5, " \t");

		if (strncmp(line, "flags", 5) != 0 || *colon != ':')
			continue;
		for (word = strtok_r(colon + 1, " \t\n", &save); word;
		     word = strtok_r(NULL, " \t\n", &save))
			if (!strcmp(word, "svm") || !strcmp(word, "vmx"))
				found = 1;
		break;
	}
	free(line);
	fclose(f);
	return found;
}

static json_t *kvm_report(const char *path, bool hw_virt)
{
	const char *missing;
	char err[ERR_LEN] = "";
	bool ok = false;
	int fd, version = -1;

	fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		snprintf(err, sizeof(err), "%s: %s", path, strerror(errno));
		goto out;
	}
	version = ioctl(fd, KVM_GET_API_VERSION, 0);
	if (version < 0) {
		snprintf(err, sizeof(err), "%s: KVM_GET_API_VERSION: %s", path, strerror(errno));
		goto out;
	}
	if (version != KVM_API_VERSION) {
		snprintf(err, sizeof(err), "%s speaks KVM API version %d, kiln needs %d", path,
			 version, KVM_API_VERSION);
		goto out;
	}
	missing = kvm_missing_cap(fd);
	if (missing) {
		snprintf(err, sizeof(err), "KVM lacks a capability kiln needs: %s", missing);
		goto out;
	}
	ok = true;
out:
	if (fd >= 0)
		close(fd);
	return json_pack("{s:b, s:o, s:o, s:b, s:o}", "available", ok,
			 "api_version", version >= 0 ? json_integer(version) : json_null(),
			 "error", string_or_null(err), "hardware_virtualization", hw_virt,
			 "warning", string_or_null(ok && !hw_virt ?
				 "KVM works but the CPU shows no svm or vmx flag: guests would run "
				 "without hardware virtualization, very slowly" : NULL));
}

/* A userfaultfd, user-mode-only when the kernel knows the flag (5.11+): an fd or -errno. */
static int uffd_open(void)
{
	int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY);

	if (fd < 0)
		fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	return fd < 0 ? -errno : fd;
}

/* A userfaultfd handshaken with UFFDIO_API asking for features; an fd or -errno. */
static int uffd_open_api(uint64_t want, uint64_t *offered)
{
	struct uffdio_api api = { .api = UFFD_API, .features = want };
	int fd = uffd_open(), err;

	if (fd < 0)
		return fd;
	if (ioctl(fd, UFFDIO_API, &api) < 0) {
		err = -errno;
		close(fd);
		return err;
	}
	if (offered)
		*offered = api.features;
	return fd;
}

/*
 * Poisons page 0 of a registered anonymous range and copies a page onto it: 1 when
 * UFFDIO_COPY refuses (EEXIST), 0 when it overwrote the marker, -errno (err set) otherwise.
 * The poisoned page is never read or written here: that would raise SIGBUS.
 */
int capabilities_uffd_copy_refuses_poison(char *err, size_t len)
{
	long page = sysconf(_SC_PAGESIZE);
	struct uffdio_register reg = { 0 };
	struct uffdio_poison poison = { 0 };
	struct uffdio_copy copy = { 0 };
	uint8_t *base;
	int fd, ret;

	fd = uffd_open_api(UFFD_FEATURE_POISON, NULL);
	if (fd == -EINVAL) {
		/* UFFDIO_API refuses a feature it does not know with EINVAL. */
		snprintf(err, len, "%s", UFFD_NO_POISON_MSG);
		return -EOPNOTSUPP;
	}
	if (fd < 0) {
		snprintf(err, len, "UFFDIO_API with UFFD_FEATURE_POISON: %s", strerror(-fd));
		return fd;
	}
	/* Pages 0 and 1 are registered; page 2, outside the range, is the copy's source. */
	base = mmap(NULL, 3 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (base == MAP_FAILED) {
		ret = -errno;
		snprintf(err, len, "mmap: %s", strerror(errno));
		goto out_close;
	}
	memset(base + 2 * page, 0x5a, page);
	reg.range = (struct uffdio_range){ .start = (uintptr_t)base, .len = 2 * page };
	reg.mode = UFFDIO_REGISTER_MODE_MISSING;
	if (ioctl(fd, UFFDIO_REGISTER, &reg) < 0) {
		ret = -errno;
		snprintf(err, len, "UFFDIO_REGISTER: %s", strerror(errno));
		goto out_unmap;
	}
	if (!(reg.ioctls & (1ull << _UFFDIO_POISON))) {
		ret = -EOPNOTSUPP;
		snprintf(err, len, "%s", UFFD_NO_POISON_MSG);
		goto out_unmap;
	}
	poison.range = (struct uffdio_range){ .start = (uintptr_t)base, .len = page };
	if (ioctl(fd, UFFDIO_POISON, &poison) < 0) {
		ret = -errno;
		snprintf(err, len, "UFFDIO_POISON: %s", strerror(errno));
		goto out_unmap;
	}
	copy = (struct uffdio_copy){
		.dst = (uintptr_t)base, .src = (uintptr_t)(base + 2 * page), .len = page
	};
	if (ioctl(fd, UFFDIO_COPY, &copy) == 0) {
		ret = 0;
	} else if (errno == EEXIST) {
		ret = 1;
	} else {
		ret = -errno;
		snprintf(err, len, "UFFDIO_COPY onto a poison marker: %s", strerror(errno));
	}
out_unmap:
	munmap(base, 3 * page);
out_close:
	close(fd);
	return ret;
}

static void uffd_probe(struct uffd_report *r)
{
	int fd, ret;

	memset(r, 0, sizeof(*r));
	r->copy_refuses = -1;
	fd = uffd_open();
	if (fd < 0) {
		snprintf(r->error, sizeof(r->error), "userfaultfd: %s%s", strerror(-fd),
			 fd == -EPERM ? " (needs CAP_SYS_PTRACE or vm.unprivileged_userfaultfd=1)"
			 : fd == -ENOSYS ? " (kernel built without CONFIG_USERFAULTFD)" : "");
		return;
	}
	close(fd);
	fd = uffd_open_api(0, &r->features);
	if (fd < 0) {
		snprintf(r->error, sizeof(r->error), "UFFDIO_API: %s", strerror(-fd));
		return;
	}
	close(fd);
	r->available = true;
	r->poison = r->features & UFFD_FEATURE_POISON;
	if (!r->poison)
		return;
	ret = capabilities_uffd_copy_refuses_poison(r->copy_error, sizeof(r->copy_error));
	if (ret >= 0)
		r->copy_refuses = ret;
}

const char *capabilities_uffd_poison_reason(bool uffd_available, const char *uffd_error,
					    bool poison, int copy_refuses, const char *copy_error,
					    char *buf, size_t len)
{
	if (!uffd_available)
		snprintf(buf, len, "no userfaultfd here (%s): kiln can neither restore a snapshot "
			 "nor receive a migration, poisoned or not", uffd_error && *uffd_error ?
			 uffd_error : "unknown error");
	else if (!poison)
		snprintf(buf, len, "%s: snapshot loads (File and Uffd backends) and incoming "
			 "migrations whose microVM has poisoned pages are refused, since kiln could "
			 "only hand those pages to the guest as readable data", UFFD_NO_POISON_MSG);
	else if (copy_refuses == 0)
		snprintf(buf, len, "UFFDIO_COPY overwrites a poison marker on this kernel: an "
			 "external page-fault handler (the Uffd backend) could make a poisoned page "
			 "readable again, so snapshots with poisoned pages load with the File backend "
			 "only (kiln's own uffd thread never copies onto a poisoned page); migrations "
			 "keep poisoned pages");
	else if (copy_refuses < 0)
		snprintf(buf, len, "whether UFFDIO_COPY keeps a poison marker is unknown (%s): "
			 "snapshots with poisoned pages load with the File backend only; migrations "
			 "keep poisoned pages", copy_error && *copy_error ? copy_error : "no probe");
	else
		return NULL;
	return buf;
}

/* The integer in dir/name, or JSON null when it cannot be read. */
static json_t *read_count(const char *dir, const char *name)
{
	char path[PATH_MAX];
	long long n;
	FILE *f;
	int ok;

	if (snprintf(path, sizeof(path), "%s/%s", dir, name) >= (int)sizeof(path))
		return json_null();
	f = fopen(path, "re");
	if (!f)
		return json_null();
	ok = fscanf(f, "%lld", &n) == 1 && n >= 0;
	fclose(f);
	return ok ? json_integer(n) : json_null();
}

static bool memfd_hugetlb_works(void)
{
	int fd = memfd_create("kiln-capabilities", MFD_CLOEXEC | MFD_HUGETLB | MFD_HUGE_2MB);

	if (fd < 0)
		return false;
	close(fd);
	return true;
}

json_t *capabilities_probe(const struct capabilities_paths *paths)
{
	struct capabilities_paths p = paths_resolve(paths);
	struct uffd_report uffd;
	struct utsname uts;
	char reason[512];
	json_t *total, *free_pages, *root;
	bool hw_virt = cpuinfo_has_virt(p.cpuinfo) > 0;

	uffd_probe(&uffd);
	total = read_count(p.hugepages_2m, "nr_hugepages");
	free_pages = read_count(p.hugepages_2m, "free_hugepages");
	root = json_pack("{s:o, s:{s:b, s:o, s:I, s:o}, s:b, s:o, s:o, s:{s:o, s:o}, s:I, s:b, s:o, "
			 "s:b}",
			 "kvm", kvm_report(p.kvm, hw_virt),
			 "uffd", "available", uffd.available, "error", string_or_null(uffd.error),
			 "features", (json_int_t)uffd.features,
			 "copy_probe_error", string_or_null(uffd.copy_error),
			 "uffd_poison", uffd.poison,
			 "uffd_copy_refuses_poison",
			 uffd.copy_refuses < 0 ? json_null() : json_boolean(uffd.copy_refuses),
			 "uffd_poison_reason",
			 string_or_null(capabilities_uffd_poison_reason(uffd.available, uffd.error,
				 uffd.poison, uffd.copy_refuses, uffd.copy_error, reason,
				 sizeof(reason))),
			 "hugepages_2m", "total", total, "free", json_incref(free_pages),
			 "hugepages_2m_free",
			 (json_int_t)(json_is_integer(free_pages) ? json_integer_value(free_pages) : 0),
			 "memory_failure", access(p.memory_failure, F_OK) == 0,
			 "kernel_release", string_or_null(uname(&uts) == 0 ? uts.release : NULL),
			 "memfd_hugetlb", memfd_hugetlb_works());
	json_decref(free_pages);
	return root;
}
