/* Unit tests for kiln-jailer's flags (jail_args.c), its paths, and --copy-libs' ELF walk (jail_elf.c). */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "jail_args.h"
#include "jail_elf.h"

/* One parse: its result and message. */
struct fixture {
	struct jail_args a;
	char err[JAIL_ERR_LEN];
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	jail_args_free(&f->a);
	free(f);
	return 0;
}

static int parse_list(struct fixture *f, const char **list)
{
	int argc = 0;

	while (list[argc])
		argc++;
	jail_args_free(&f->a);
	return jail_args_parse(&f->a, argc, (char **)list, f->err, sizeof(f->err));
}

/* PARSE(f, "--id", "x", ...): parses kiln-jailer's arguments. */
#define PARSE(f, ...) parse_list((f), (const char *[]){ "kiln-jailer", __VA_ARGS__, NULL })
#define REQUIRED "--id", "vm-1", "--exec-file", "/usr/bin/kiln", "--uid", "10000", "--gid", "10001"

/* Parsing must fail with -EINVAL and a message holding want. */
static void expect_error(struct fixture *f, int ret, const char *want)
{
	assert_int_equal(ret, -EINVAL);
	if (!strstr(f->err, want))
		fail_msg("error \"%s\" does not mention \"%s\"", f->err, want);
}

static void parse_required_only_takes_defaults(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(PARSE(f, REQUIRED), 0);
	assert_string_equal(f->a.id, "vm-1");
	assert_string_equal(f->a.exec_file, "/usr/bin/kiln");
	assert_string_equal(f->a.exec_name, "kiln");
	assert_int_equal(f->a.uid, 10000);
	assert_int_equal(f->a.gid, 10001);
	assert_string_equal(f->a.chroot_base, "/srv/jailer");
	assert_string_equal(f->a.parent_cgroup, "kiln");
	assert_int_equal(f->a.nofile, 2048);
	assert_true(f->a.fsize == JAIL_RLIMIT_UNSET);
	assert_int_equal(f->a.nr_cgroups, 0);
	assert_int_equal(f->a.nr_copies, 0);
	assert_int_equal(f->a.nr_extra, 0);
	assert_false(f->a.daemonize || f->a.new_pid_ns || f->a.copy_libs || f->a.help);
}

static void parse_every_flag_sets_it(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(PARSE(f, "--id=a1", "--exec-file=/opt/k/kiln", "--uid=0", "--gid", "0",
			       "--chroot-base-dir", "/tmp/jail//", "--parent-cgroup", "vms/fast",
			       "--cgroup", "memory.max=512M", "--cgroup=cpu.max=50000 100000",
			       "--cgroup-version", "2", "--netns", "/var/run/netns/n1",
			       "--resource-limit", "fsize=1000", "--resource-limit=no-file=64",
			       "--daemonize", "--new-pid-ns", "--copy-libs", "--copy-in",
			       "/images/vmlinux", "--copy-in", "/images/disk.ext4:/drives/root.ext4",
			       "--", "--no-api", "--config-file", "/vm.json"),
			 0);
	assert_string_equal(f->a.id, "a1");
	assert_string_equal(f->a.exec_name, "kiln");
	assert_int_equal(f->a.uid, 0);
	assert_string_equal(f->a.chroot_base, "/tmp/jail");
	assert_string_equal(f->a.parent_cgroup, "vms/fast");
	assert_int_equal(f->a.nr_cgroups, 2);
	assert_string_equal(f->a.cgroups[0].file, "memory.max");
	assert_string_equal(f->a.cgroups[0].value, "512M");
	assert_string_equal(f->a.cgroups[1].file, "cpu.max");
	assert_string_equal(f->a.cgroups[1].value, "50000 100000");
	assert_string_equal(f->a.netns, "/var/run/netns/n1");
	assert_int_equal(f->a.fsize, 1000);
	assert_int_equal(f->a.nofile, 64);
	assert_true(f->a.daemonize && f->a.new_pid_ns && f->a.copy_libs);
	assert_int_equal(f->a.nr_copies, 2);
	assert_string_equal(f->a.copies[0].src, "/images/vmlinux");
	assert_string_equal(f->a.copies[0].dst, "/vmlinux");
	assert_string_equal(f->a.copies[1].src, "/images/disk.ext4");
	assert_string_equal(f->a.copies[1].dst, "/drives/root.ext4");
	assert_int_equal(f->a.nr_extra, 3);
	assert_string_equal(f->a.extra[0], "--no-api");
	assert_string_equal(f->a.extra[2], "/vm.json");
}

static void parse_missing_required_fails(void **state)
{
	struct fixture *f = *state;

	expect_error(f, PARSE(f, "--exec-file", "/k", "--uid", "1", "--gid", "1"), "--id is required");
	expect_error(f, PARSE(f, "--id", "x", "--uid", "1", "--gid", "1"), "--exec-file is required");
	expect_error(f, PARSE(f, "--id", "x", "--exec-file", "/k", "--gid", "1"), "--uid is required");
	expect_error(f, PARSE(f, "--id", "x", "--exec-file", "/k", "--uid", "1"), "--gid is required");
	expect_error(f, parse_list(f, (const char *[]){ "kiln-jailer", NULL }), "--id is required");
}

static void parse_bad_id_fails(void **state)
{
	struct fixture *f = *state;
	char long_id[JAIL_ID_MAX + 2];

	expect_error(f, PARSE(f, REQUIRED, "--id", "again"), "--id given twice");
	expect_error(f, PARSE(f, "--id", "a_b"), "--id \"a_b\"");
	expect_error(f, PARSE(f, "--id", "../etc"), "letters, digits or '-'");
	expect_error(f, PARSE(f, "--id", ""), "--id");
	memset(long_id, 'a', sizeof(long_id) - 1);
	long_id[JAIL_ID_MAX + 1] = '\0';
	expect_error(f, PARSE(f, "--id", long_id), "--id");
	long_id[JAIL_ID_MAX] = '\0';
	assert_int_equal(PARSE(f, "--id", long_id, "--exec-file", "/k", "--uid", "1", "--gid", "1"), 0);
}

static void parse_bad_exec_file_fails(void **state)
{
	struct fixture *f = *state;

	expect_error(f, PARSE(f, "--exec-file", "build/kiln"), "must be an absolute path");
	expect_error(f, PARSE(f, "--exec-file", "/usr/../bin/kiln"), "\"..\"");
	expect_error(f, PARSE(f, "--exec-file", "/usr/bin/"), "must name a file");
	expect_error(f, PARSE(f, "--exec-file"), "--exec-file needs a value");
}

static void parse_bad_ids_fail(void **state)
{
	struct fixture *f = *state;

	expect_error(f, PARSE(f, "--uid", "root"), "--uid \"root\"");
	expect_error(f, PARSE(f, "--uid", "-1"), "--uid");
	expect_error(f, PARSE(f, "--gid", "4294967295"), "--gid");
	expect_error(f, PARSE(f, "--gid", "12x"), "--gid");
	expect_error(f, PARSE(f, "--uid", "1", "--uid", "2"), "--uid given twice");
}

static void parse_bad_cgroup_fails(void **state)
{
	struct fixture *f = *state;

	expect_error(f, PARSE(f, "--cgroup", "memory.max"), "expected FILE=VALUE");
	expect_error(f, PARSE(f, "--cgroup", "memory=1"), "not a cgroup file name");
	expect_error(f, PARSE(f, "--cgroup", "../memory.max=1"), "not a cgroup file name");
	expect_error(f, PARSE(f, "--cgroup", "Memory.max=1"), "not a cgroup file name");
	expect_error(f, PARSE(f, "--cgroup", "cgroup.procs=1"), "writes cgroup.procs itself");
	expect_error(f, PARSE(f, "--cgroup", "memory.max="), "non-empty");
	expect_error(f, PARSE(f, "--cgroup-version", "1"), "only cgroup v2");
	expect_error(f, PARSE(f, "--parent-cgroup", "/kiln"), "--parent-cgroup");
	expect_error(f, PARSE(f, "--parent-cgroup", "a/../b"), "--parent-cgroup");
	expect_error(f, PARSE(f, "--parent-cgroup", "a b"), "--parent-cgroup");
}

static void parse_too_many_cgroups_fails(void **state)
{
	struct fixture *f = *state;
	const char *list[2 + 2 * (JAIL_MAX_CGROUPS + 1)] = { "kiln-jailer" };
	int n = 1;

	for (int i = 0; i <= JAIL_MAX_CGROUPS; i++) {
		list[n++] = "--cgroup";
		list[n++] = "pids.max=10";
	}
	list[n] = NULL;
	expect_error(f, parse_list(f, list), "at most 32");
}

static void parse_bad_resource_limit_fails(void **state)
{
	struct fixture *f = *state;

	expect_error(f, PARSE(f, "--resource-limit", "nofile=5"), "fsize=N or no-file=N");
	expect_error(f, PARSE(f, "--resource-limit", "fsize"), "fsize=N or no-file=N");
	expect_error(f, PARSE(f, "--resource-limit", "fsize=-1"), "whole number");
	expect_error(f, PARSE(f, "--resource-limit", "no-file=1k"), "whole number");
}

static void parse_bad_paths_fail(void **state)
{
	struct fixture *f = *state;

	expect_error(f, PARSE(f, "--chroot-base-dir", "srv"), "--chroot-base-dir \"srv\"");
	expect_error(f, PARSE(f, "--chroot-base-dir", "/srv/./x"), "--chroot-base-dir");
	expect_error(f, PARSE(f, "--chroot-base-dir", "/srv//x"), "empty components");
	expect_error(f, PARSE(f, "--netns", "netns/n1"), "--netns");
	expect_error(f, PARSE(f, "--copy-in", "vmlinux"), "--copy-in \"vmlinux\"");
	expect_error(f, PARSE(f, "--copy-in", "/a/vmlinux:/../etc/x"), "--copy-in");
	expect_error(f, PARSE(f, "--copy-in", "/a/vmlinux:/boot/"), "DST must name a file");
	expect_error(f, PARSE(f, "--copy-in", "/a/"), "SRC must name a file");
}

static void parse_copy_in_colon_without_dst_keeps_src(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(PARSE(f, REQUIRED, "--copy-in", "/img/a:b", "--copy-in", "/x:y/z:/in/z"), 0);
	assert_string_equal(f->a.copies[0].src, "/img/a:b");
	assert_string_equal(f->a.copies[0].dst, "/a:b");
	assert_string_equal(f->a.copies[1].src, "/x:y/z");
	assert_string_equal(f->a.copies[1].dst, "/in/z");
}

/* jailer.c refuses a DST of "/<exec name>" (it would replace the exec file): "//kiln" is the
 * same file, and must reach that check spelled the same way. */
static void parse_copy_in_dst_leading_slashes_one_slash(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(PARSE(f, REQUIRED, "--copy-in", "/img/k://kiln", "--copy-in",
			       "/img/v:///boot//../x"), -EINVAL);
	assert_int_equal(PARSE(f, REQUIRED, "--copy-in", "/img/k://kiln", "--copy-in",
			       "/img/v:///boot/vmlinux", "--copy-in", "//img//"), -EINVAL);
	assert_int_equal(PARSE(f, REQUIRED, "--copy-in", "/img/k://kiln", "--copy-in",
			       "/img/v:///boot/vmlinux"), 0);
	assert_string_equal(f->a.copies[0].dst, "/kiln");
	assert_string_equal(f->a.copies[1].dst, "/boot/vmlinux");
}

static void parse_unknown_or_misused_flag_fails(void **state)
{
	struct fixture *f = *state;

	expect_error(f, PARSE(f, REQUIRED, "--no-api"), "unknown argument \"--no-api\"");
	expect_error(f, PARSE(f, REQUIRED, "--daemonize=1"), "unknown argument");
	expect_error(f, PARSE(f, REQUIRED, "--ids", "x"), "unknown argument");
}

static void parse_help_stops_early(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(PARSE(f, "--help", "--bogus"), 0);
	assert_true(f->a.help);
	assert_int_equal(PARSE(f, "-h"), 0);
	assert_true(f->a.help);
}

static void chroot_dir_joins_base_name_id(void **state)
{
	struct fixture *f = *state;
	char buf[64];

	assert_int_equal(PARSE(f, REQUIRED), 0);
	assert_int_equal(jail_args_chroot_dir(&f->a, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "/srv/jailer/kiln/vm-1/root");
	assert_int_equal(PARSE(f, REQUIRED, "--chroot-base-dir", "/"), 0);
	assert_int_equal(jail_args_chroot_dir(&f->a, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "/kiln/vm-1/root");
	assert_int_equal(jail_args_chroot_dir(&f->a, buf, 10), -ENAMETOOLONG);
}

static void cgroup_dir_joins_mount_parent_id(void **state)
{
	struct fixture *f = *state;
	char buf[64];

	assert_int_equal(PARSE(f, REQUIRED), 0);
	assert_int_equal(jail_args_cgroup_dir(&f->a, "/sys/fs/cgroup", buf, sizeof(buf)), 0);
	assert_string_equal(buf, "/sys/fs/cgroup/kiln/vm-1");
	assert_int_equal(jail_args_cgroup_dir(&f->a, "/sys/fs/cgroup//", buf, sizeof(buf)), 0);
	assert_string_equal(buf, "/sys/fs/cgroup/kiln/vm-1");
	assert_int_equal(jail_args_cgroup_dir(&f->a, "/", buf, sizeof(buf)), 0);
	assert_string_equal(buf, "/kiln/vm-1");
	assert_int_equal(PARSE(f, REQUIRED, "--parent-cgroup", "a/b"), 0);
	assert_int_equal(jail_args_cgroup_dir(&f->a, "/cg", buf, sizeof(buf)), 0);
	assert_string_equal(buf, "/cg/a/b/vm-1");
	assert_int_equal(jail_args_cgroup_dir(&f->a, "/cg", buf, 8), -ENAMETOOLONG);
}

static void controller_of_file_is_its_prefix(void **state)
{
	char buf[16];

	(void)state;
	assert_int_equal(jail_args_controller("memory.max", buf, sizeof(buf)), 0);
	assert_string_equal(buf, "memory");
	assert_int_equal(jail_args_controller("memory.swap.max", buf, sizeof(buf)), 0);
	assert_string_equal(buf, "memory");
	assert_int_equal(jail_args_controller("cpu.max", buf, sizeof(buf)), 0);
	assert_string_equal(buf, "cpu");
	assert_int_equal(jail_args_controller("cgroup.max.depth", buf, sizeof(buf)), 0);
	assert_string_equal(buf, "");
	assert_int_equal(jail_args_controller("nodot", buf, sizeof(buf)), -EINVAL);
	assert_int_equal(jail_args_controller("memory.max", buf, 4), -ENAMETOOLONG);
}

static void exec_argv_is_name_id_then_extra(void **state)
{
	struct fixture *f = *state;
	char id_arg[JAIL_ID_MAX + 8], *argv[8];

	assert_int_equal(PARSE(f, REQUIRED, "--", "--no-api", "--config-file", "/vm.json"), 0);
	assert_int_equal(jail_args_exec_argv(&f->a, id_arg, sizeof(id_arg), argv, 8), 5);
	assert_string_equal(argv[0], "kiln");
	assert_string_equal(argv[1], "--id=vm-1");
	assert_string_equal(argv[2], "--no-api");
	assert_string_equal(argv[4], "/vm.json");
	assert_null(argv[5]);
	assert_int_equal(jail_args_exec_argv(&f->a, id_arg, sizeof(id_arg), argv, 5), -E2BIG);
}

static bool has_suffix(const struct jail_elf_deps *d, const char *suffix)
{
	for (size_t i = 0; i < d->n; i++) {
		size_t n = strlen(d->paths[i]), k = strlen(suffix);

		if (n >= k && strcmp(d->paths[i] + n - k, suffix) == 0)
			return true;
	}
	return false;
}

/* This test binary is dynamically linked to cmocka and libc: both must be found. */
static void elf_deps_of_self_lists_interp_and_libs(void **state)
{
	struct jail_elf_deps d;
	char err[JAIL_ERR_LEN], self[4096];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);

	(void)state;
	assert_true(n > 0);
	self[n] = '\0';
	assert_int_equal(jail_elf_deps(self, &d, err, sizeof(err)), 0);
	assert_true(d.n >= 3);
	assert_string_equal(d.paths[0], "/lib64/ld-linux-x86-64.so.2");
	assert_true(has_suffix(&d, "/libcmocka.so.0"));
	assert_true(has_suffix(&d, "/libc.so.6"));
	for (size_t i = 0; i < d.n; i++) {
		assert_true(d.paths[i][0] == '/');
		assert_int_equal(access(d.paths[i], R_OK), 0);
		for (size_t k = i + 1; k < d.n; k++)
			assert_string_not_equal(d.paths[i], d.paths[k]);
	}
	jail_elf_deps_free(&d);
}

static void elf_deps_of_non_elf_fails(void **state)
{
	char path[] = "/tmp/test_jailer.XXXXXX", err[JAIL_ERR_LEN], self[4096], buf[200];
	struct jail_elf_deps d;
	int fd = mkstemp(path), src;

	(void)state;
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "#!/bin/sh\necho hi\n", 18), 18);
	assert_int_equal(jail_elf_deps(path, &d, err, sizeof(err)), -ENOEXEC);
	assert_non_null(strstr(err, "not an x86_64 ELF file"));
	jail_elf_deps_free(&d);

	/* A real ELF header whose program headers are cut off. */
	assert_true(readlink("/proc/self/exe", self, sizeof(self) - 1) > 0);
	self[readlink("/proc/self/exe", self, sizeof(self) - 1)] = '\0';
	src = open(self, O_RDONLY);
	assert_true(src >= 0);
	assert_int_equal(read(src, buf, sizeof(buf)), sizeof(buf));
	close(src);
	assert_int_equal(ftruncate(fd, 0), 0);
	assert_int_equal(pwrite(fd, buf, sizeof(buf), 0), sizeof(buf));
	assert_int_equal(jail_elf_deps(path, &d, err, sizeof(err)), -ENOEXEC);
	jail_elf_deps_free(&d);
	close(fd);
	unlink(path);

	assert_int_equal(jail_elf_deps("/nonexistent/kiln", &d, err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, "/nonexistent/kiln"));
	jail_elf_deps_free(&d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(parse_required_only_takes_defaults, setup, teardown),
		cmocka_unit_test_setup_teardown(parse_every_flag_sets_it, setup, teardown),
		cmocka_unit_test_setup_teardown(parse_missing_required_fails, setup, teardown),
		cmocka_unit_test_setup_teardown(parse_bad_id_fails, setup, teardown),
		cmocka_unit_test_setup_teardown(parse_bad_exec_file_fails, setup, teardown),
		cmocka_unit_test_setup_teardown(parse_bad_ids_fail, setup, teardown),
		cmocka_unit_test_setup_teardown(parse_bad_cgroup_fails, setup, teardown),
		cmocka_unit_test_setup_teardown(parse_too_many_cgroups_fails, setup, teardown),
		cmocka_unit_test_setup_teardown(parse_bad_resource_limit_fails, setup, teardown),
		cmocka_unit_test_setup_teardown(parse_bad_paths_fail, setup, teardown),
		cmocka_unit_test_setup_teardown(parse_copy_in_colon_without_dst_keeps_src, setup,
						teardown),
		cmocka_unit_test_setup_teardown(parse_copy_in_dst_leading_slashes_one_slash, setup,
						teardown),
		cmocka_unit_test_setup_teardown(parse_unknown_or_misused_flag_fails, setup, teardown),
		cmocka_unit_test_setup_teardown(parse_help_stops_early, setup, teardown),
		cmocka_unit_test_setup_teardown(chroot_dir_joins_base_name_id, setup, teardown),
		cmocka_unit_test_setup_teardown(cgroup_dir_joins_mount_parent_id, setup, teardown),
		cmocka_unit_test(controller_of_file_is_its_prefix),
		cmocka_unit_test_setup_teardown(exec_argv_is_name_id_then_extra, setup, teardown),
		cmocka_unit_test(elf_deps_of_self_lists_interp_and_libs),
		cmocka_unit_test(elf_deps_of_non_elf_fails),
	};

	return cmocka_run_group_tests_name("jailer", tests, NULL, NULL);
}
