/* Unit tests for vmm/capabilities.c: fields from faked host files, types and fds on this host. */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <cmocka.h>

#include "capabilities.h"

/* A temporary directory holding the fake host files; the state of every test. */
struct fake {
	char dir[PATH_MAX];
	char kvm[PATH_MAX];            /* never created unless a test writes it */
	char cpuinfo[PATH_MAX];
	char hugepages[PATH_MAX];      /* a directory */
	char memory_failure[PATH_MAX];
	struct capabilities_paths paths;
};

static void fake_write(const char *path, const char *text)
{
	FILE *f = fopen(path, "we");

	assert_non_null(f);
	assert_int_equal(fputs(text, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
}

/* out = dir/name, out holding PATH_MAX bytes. */
static void path_join(char *out, const char *dir, const char *name)
{
	int n = snprintf(out, PATH_MAX, "%s/%s", dir, name);

	assert_true(n > 0 && n < PATH_MAX);
}

static int fake_setup(void **state)
{
	const char *tmp = getenv("TMPDIR");
	struct fake *fk = calloc(1, sizeof(*fk));

	if (!fk)
		return -1;
	snprintf(fk->dir, sizeof(fk->dir), "%s/kiln-capabilities-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(fk->dir)) {
		free(fk);
		return -1;
	}
	path_join(fk->kvm, fk->dir, "kvm");
	path_join(fk->cpuinfo, fk->dir, "cpuinfo");
	path_join(fk->hugepages, fk->dir, "hugepages-2048kB");
	path_join(fk->memory_failure, fk->dir, "memory_failure_recovery");
	fk->paths = (struct capabilities_paths){
		.kvm = fk->kvm, .cpuinfo = fk->cpuinfo, .hugepages_2m = fk->hugepages,
		.memory_failure = fk->memory_failure,
	};
	*state = fk;
	return 0;
}

static int fake_teardown(void **state)
{
	struct fake *fk = *state;
	char path[PATH_MAX];

	path_join(path, fk->hugepages, "nr_hugepages");
	unlink(path);
	path_join(path, fk->hugepages, "free_hugepages");
	unlink(path);
	rmdir(fk->hugepages);
	unlink(fk->kvm);
	unlink(fk->cpuinfo);
	unlink(fk->memory_failure);
	rmdir(fk->dir);
	free(fk);
	return 0;
}

static void fake_hugepages(struct fake *fk, const char *total, const char *free_pages)
{
	char path[PATH_MAX];

	assert_int_equal(mkdir(fk->hugepages, 0700), 0);
	path_join(path, fk->hugepages, "nr_hugepages");
	fake_write(path, total);
	path_join(path, fk->hugepages, "free_hugepages");
	fake_write(path, free_pages);
}

/* Open fds of this process, from /proc/self/fd (the directory's own fd not counted). */
static int fd_count(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	assert_non_null(d);
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n - 1;
}

static json_t *member(json_t *obj, const char *path_a, const char *path_b)
{
	json_t *v = json_object_get(obj, path_a);

	assert_non_null(v);
	if (path_b) {
		assert_true(json_is_object(v));
		v = json_object_get(v, path_b);
		assert_non_null(v);
	}
	return v;
}

static void assert_bool_member(json_t *obj, const char *a, const char *b, bool want)
{
	json_t *v = member(obj, a, b);

	assert_true(json_is_boolean(v));
	assert_int_equal(json_is_true(v), want);
}

static void assert_int_member(json_t *obj, const char *a, const char *b, json_int_t want)
{
	json_t *v = member(obj, a, b);

	assert_true(json_is_integer(v));
	assert_int_equal(json_integer_value(v), want);
}

static void capabilities_probe_missing_kvm_reports_enoent(void **state)
{
	struct fake *fk = *state;
	json_t *caps = capabilities_probe(&fk->paths);
	char want[PATH_MAX + 64];

	assert_non_null(caps);
	assert_bool_member(caps, "kvm", "available", false);
	assert_true(json_is_null(member(caps, "kvm", "api_version")));
	snprintf(want, sizeof(want), "%s: No such file or directory", fk->kvm);
	assert_string_equal(json_string_value(member(caps, "kvm", "error")), want);
	assert_true(json_is_null(member(caps, "kvm", "warning")));
	json_decref(caps);
}

static void capabilities_probe_kvm_not_a_device_reports_ioctl_error(void **state)
{
	struct fake *fk = *state;
	json_t *caps;
	const char *err;

	fake_write(fk->kvm, "not a character device\n");
	caps = capabilities_probe(&fk->paths);
	assert_non_null(caps);
	assert_bool_member(caps, "kvm", "available", false);
	assert_true(json_is_null(member(caps, "kvm", "api_version")));
	err = json_string_value(member(caps, "kvm", "error"));
	assert_non_null(err);
	assert_non_null(strstr(err, "KVM_GET_API_VERSION: Inappropriate ioctl for device"));
	json_decref(caps);
}

static void capabilities_probe_cpuinfo_vmx_reports_hardware_virtualization(void **state)
{
	struct fake *fk = *state;
	json_t *caps;

	fake_write(fk->cpuinfo, "processor\t: 0\nvendor_id\t: GenuineIntel\n"
				"flags\t\t: fpu vme de pse tsc msr vmx sse sse2\nbugs\t\t:\n");
	caps = capabilities_probe(&fk->paths);
	assert_non_null(caps);
	assert_bool_member(caps, "kvm", "hardware_virtualization", true);
	json_decref(caps);
}

static void capabilities_probe_cpuinfo_svm_reports_hardware_virtualization(void **state)
{
	struct fake *fk = *state;
	json_t *caps;

	fake_write(fk->cpuinfo, "processor\t: 0\nflags\t\t: fpu lm svm\n");
	caps = capabilities_probe(&fk->paths);
	assert_non_null(caps);
	assert_bool_member(caps, "kvm", "hardware_virtualization", true);
	json_decref(caps);
}

static void capabilities_probe_cpuinfo_without_svm_vmx_reports_none(void **state)
{
	struct fake *fk = *state;
	json_t *caps;

	/* Only whole words count, and only on the flags line. */
	fake_write(fk->cpuinfo, "processor\t: 0\nmodel name\t: vmx svm\n"
				"flags\t\t: fpu svmx xvmx hypervisor\nvmx flags\t: vnmi\n");
	caps = capabilities_probe(&fk->paths);
	assert_non_null(caps);
	assert_bool_member(caps, "kvm", "hardware_virtualization", false);
	json_decref(caps);
}

static void capabilities_probe_missing_cpuinfo_reports_no_hardware_virtualization(void **state)
{
	struct fake *fk = *state;
	json_t *caps = capabilities_probe(&fk->paths);

	assert_non_null(caps);
	assert_bool_member(caps, "kvm", "hardware_virtualization", false);
	json_decref(caps);
}

static void capabilities_probe_hugepage_files_reports_counts(void **state)
{
	struct fake *fk = *state;
	json_t *caps;

	fake_hugepages(fk, "64\n", "10\n");
	caps = capabilities_probe(&fk->paths);
	assert_non_null(caps);
	assert_int_member(caps, "hugepages_2m", "total", 64);
	assert_int_member(caps, "hugepages_2m", "free", 10);
	assert_int_member(caps, "hugepages_2m_free", NULL, 10);
	json_decref(caps);
}

static void capabilities_probe_missing_hugepages_reports_null_and_zero(void **state)
{
	struct fake *fk = *state;
	json_t *caps = capabilities_probe(&fk->paths);

	assert_non_null(caps);
	assert_true(json_is_null(member(caps, "hugepages_2m", "total")));
	assert_true(json_is_null(member(caps, "hugepages_2m", "free")));
	assert_int_member(caps, "hugepages_2m_free", NULL, 0);
	json_decref(caps);
}

static void capabilities_probe_garbled_hugepages_reports_null(void **state)
{
	struct fake *fk = *state;
	json_t *caps;

	fake_hugepages(fk, "lots\n", "-3\n");
	caps = capabilities_probe(&fk->paths);
	assert_non_null(caps);
	assert_true(json_is_null(member(caps, "hugepages_2m", "total")));
	assert_true(json_is_null(member(caps, "hugepages_2m", "free")));
	assert_int_member(caps, "hugepages_2m_free", NULL, 0);
	json_decref(caps);
}

static void capabilities_probe_memory_failure_file_reports_true(void **state)
{
	struct fake *fk = *state;
	json_t *caps;

	fake_write(fk->memory_failure, "1\n");
	caps = capabilities_probe(&fk->paths);
	assert_non_null(caps);
	assert_bool_member(caps, "memory_failure", NULL, true);
	json_decref(caps);
}

static void capabilities_probe_no_memory_failure_file_reports_false(void **state)
{
	struct fake *fk = *state;
	json_t *caps = capabilities_probe(&fk->paths);

	assert_non_null(caps);
	assert_bool_member(caps, "memory_failure", NULL, false);
	json_decref(caps);
}

static void capabilities_probe_partial_paths_use_real_files_for_the_rest(void **state)
{
	struct fake *fk = *state;
	struct capabilities_paths only_kvm = { .kvm = fk->kvm };
	json_t *caps = capabilities_probe(&only_kvm);

	assert_non_null(caps);
	assert_bool_member(caps, "kvm", "available", false);
	assert_bool_member(caps, "memory_failure", NULL,
			   access("/proc/sys/vm/memory_failure_recovery", F_OK) == 0);
	json_decref(caps);
}

/* Every key the endpoint promises, with its JSON type, on the real host. */
static void capabilities_probe_real_host_has_every_key_typed(void **state)
{
	json_t *caps = capabilities_probe(NULL);
	json_t *v;
	struct utsname uts;

	assert_non_null(caps);
	assert_true(json_is_boolean(member(caps, "kvm", "available")));
	v = member(caps, "kvm", "api_version");
	assert_true(json_is_integer(v) || json_is_null(v));
	v = member(caps, "kvm", "error");
	assert_true(json_is_string(v) || json_is_null(v));
	assert_int_equal(json_is_null(v), json_is_true(member(caps, "kvm", "available")));
	assert_true(json_is_boolean(member(caps, "kvm", "hardware_virtualization")));
	v = member(caps, "kvm", "warning");
	assert_true(json_is_string(v) || json_is_null(v));

	assert_true(json_is_boolean(member(caps, "uffd", "available")));
	v = member(caps, "uffd", "error");
	assert_true(json_is_string(v) || json_is_null(v));
	assert_int_equal(json_is_null(v), json_is_true(member(caps, "uffd", "available")));
	assert_true(json_is_integer(member(caps, "uffd", "features")));
	v = member(caps, "uffd", "copy_probe_error");
	assert_true(json_is_string(v) || json_is_null(v));
	assert_true(json_is_boolean(member(caps, "uffd_poison", NULL)));
	v = member(caps, "uffd_copy_refuses_poison", NULL);
	assert_true(json_is_boolean(v) || json_is_null(v));
	v = member(caps, "uffd_poison_reason", NULL);
	assert_true(json_is_string(v) || json_is_null(v));

	v = member(caps, "hugepages_2m", "total");
	assert_true(json_is_integer(v) || json_is_null(v));
	v = member(caps, "hugepages_2m", "free");
	assert_true(json_is_integer(v) || json_is_null(v));
	assert_true(json_is_integer(member(caps, "hugepages_2m_free", NULL)));
	assert_true(json_is_boolean(member(caps, "memory_failure", NULL)));
	assert_true(json_is_boolean(member(caps, "memfd_hugetlb", NULL)));
	assert_int_equal(uname(&uts), 0);
	assert_string_equal(json_string_value(member(caps, "kernel_release", NULL)), uts.release);
	json_decref(caps);
}

/* The uffd fields agree with each other: poison needs uffd and bit 14, a copy verdict poison. */
static void capabilities_probe_real_host_uffd_fields_consistent(void **state)
{
	json_t *caps = capabilities_probe(NULL);
	json_int_t features;
	bool poison;

	assert_non_null(caps);
	features = json_integer_value(member(caps, "uffd", "features"));
	poison = json_is_true(member(caps, "uffd_poison", NULL));
	assert_int_equal(poison, (features >> 14) & 1);
	if (poison)
		assert_true(json_is_true(member(caps, "uffd", "available")));
	if (!json_is_null(member(caps, "uffd_copy_refuses_poison", NULL))) {
		assert_true(poison);
		assert_true(json_is_null(member(caps, "uffd", "copy_probe_error")));
	}
	if (!poison)
		assert_true(json_is_null(member(caps, "uffd_copy_refuses_poison", NULL)));
	/* A reason exactly when some restore path cannot keep poison. */
	assert_int_equal(json_is_null(member(caps, "uffd_poison_reason", NULL)),
			 json_is_true(member(caps, "uffd_copy_refuses_poison", NULL)));
	if (!poison)
		assert_non_null(strstr(json_string_value(member(caps, "uffd_poison_reason", NULL)),
				       json_is_true(member(caps, "uffd", "available")) ?
				       "no UFFD_FEATURE_POISON" : "no userfaultfd"));
	json_decref(caps);
}

static void capabilities_uffd_poison_reason_no_uffd_names_error(void **state)
{
	char buf[512];
	const char *r = capabilities_uffd_poison_reason(false, "userfaultfd: Operation not permitted",
							false, -1, "", buf, sizeof(buf));

	(void)state;
	assert_ptr_equal(r, buf);
	assert_non_null(strstr(r, "no userfaultfd here (userfaultfd: Operation not permitted)"));
}

static void capabilities_uffd_poison_reason_no_poison_names_kernel_feature(void **state)
{
	char buf[512];
	const char *r = capabilities_uffd_poison_reason(true, "", false, -1, "", buf, sizeof(buf));

	(void)state;
	assert_non_null(r);
	assert_non_null(strstr(r, "no UFFD_FEATURE_POISON; Linux 6.6+ or kiln's kernel-patches "
				  "for 6.1"));
	assert_non_null(strstr(r, "incoming migrations"));
	assert_non_null(strstr(r, "are refused"));
}

static void capabilities_uffd_poison_reason_copy_erases_marker_names_uffd_backend(void **state)
{
	char buf[512];
	const char *r = capabilities_uffd_poison_reason(true, "", true, 0, "", buf, sizeof(buf));

	(void)state;
	assert_non_null(r);
	assert_non_null(strstr(r, "UFFDIO_COPY overwrites a poison marker"));
	assert_non_null(strstr(r, "File backend only"));
}

static void capabilities_uffd_poison_reason_copy_probe_failed_names_error(void **state)
{
	char buf[512];
	const char *r = capabilities_uffd_poison_reason(true, "", true, -1, "mmap: No memory", buf,
							sizeof(buf));

	(void)state;
	assert_non_null(r);
	assert_non_null(strstr(r, "unknown (mmap: No memory)"));
}

static void capabilities_uffd_poison_reason_all_present_returns_null(void **state)
{
	char buf[512] = "untouched";

	(void)state;
	assert_null(capabilities_uffd_poison_reason(true, "", true, 1, "", buf, sizeof(buf)));
	assert_string_equal(buf, "untouched");
}

/* A working /dev/kvm on a CPU without svm/vmx (this host) carries a warning. */
static void capabilities_probe_real_kvm_without_virt_flags_warns(void **state)
{
	json_t *caps = capabilities_probe(NULL);
	bool warn;

	assert_non_null(caps);
	warn = json_is_true(member(caps, "kvm", "available")) &&
	       !json_is_true(member(caps, "kvm", "hardware_virtualization"));
	assert_int_equal(json_is_string(member(caps, "kvm", "warning")), warn);
	json_decref(caps);
}

static void capabilities_probe_real_host_leaks_no_fds(void **state)
{
	int before = fd_count();

	for (int i = 0; i < 20; i++) {
		json_t *caps = capabilities_probe(NULL);

		assert_non_null(caps);
		json_decref(caps);
	}
	assert_int_equal(fd_count(), before);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(capabilities_uffd_poison_reason_no_uffd_names_error),
		cmocka_unit_test(capabilities_uffd_poison_reason_no_poison_names_kernel_feature),
		cmocka_unit_test(capabilities_uffd_poison_reason_copy_erases_marker_names_uffd_backend),
		cmocka_unit_test(capabilities_uffd_poison_reason_copy_probe_failed_names_error),
		cmocka_unit_test(capabilities_uffd_poison_reason_all_present_returns_null),
#define FAKE(t) cmocka_unit_test_setup_teardown(t, fake_setup, fake_teardown)
		FAKE(capabilities_probe_missing_kvm_reports_enoent),
		FAKE(capabilities_probe_kvm_not_a_device_reports_ioctl_error),
		FAKE(capabilities_probe_cpuinfo_vmx_reports_hardware_virtualization),
		FAKE(capabilities_probe_cpuinfo_svm_reports_hardware_virtualization),
		FAKE(capabilities_probe_cpuinfo_without_svm_vmx_reports_none),
		FAKE(capabilities_probe_missing_cpuinfo_reports_no_hardware_virtualization),
		FAKE(capabilities_probe_hugepage_files_reports_counts),
		FAKE(capabilities_probe_missing_hugepages_reports_null_and_zero),
		FAKE(capabilities_probe_garbled_hugepages_reports_null),
		FAKE(capabilities_probe_memory_failure_file_reports_true),
		FAKE(capabilities_probe_no_memory_failure_file_reports_false),
		FAKE(capabilities_probe_partial_paths_use_real_files_for_the_rest),
#undef FAKE
		cmocka_unit_test(capabilities_probe_real_host_has_every_key_typed),
		cmocka_unit_test(capabilities_probe_real_host_uffd_fields_consistent),
		cmocka_unit_test(capabilities_probe_real_kvm_without_virt_flags_warns),
		cmocka_unit_test(capabilities_probe_real_host_leaks_no_fds),
	};

	return cmocka_run_group_tests_name("capabilities.c", tests, NULL, NULL);
}
