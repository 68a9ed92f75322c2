/*
 * Fuzz target for kiln-jailer's command line (jailer/jail_args.c): the input, split on NUL
 * bytes, is argv after "kiln-jailer", each argument in a buffer of its own size. Traps unless a
 * refusal is -EINVAL with a message naming a flag (or the unknown argument), and unless what an
 * accepted command line gives is what the jailer then relies on: a valid id, absolute paths
 * without ".", ".." or empty components, an exec file that names a file, a --copy-in DST with
 * one leading '/' (jailer.c compares it with "/<exec name>"), a chroot dir
 * <base>/<exec name>/<id>/root and a cgroup dir <mount>/<parent>/<id> that stay below their
 * base (no component "." or ".."), cgroup files and values as checked, and the jailed program's
 * argv (its name, --id=ID, the arguments after "--"). --help stops the parse where it is.
 * KILN_FUZZ_LOG=1 in the environment prints each parse's message or paths.
 */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jail_args.h"
#include "fuzz_fail.h"

#define MAX_ARGS 256

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool log_stderr; /* KILN_FUZZ_LOG is set */

/* Whether path has a ".", ".." or empty component; leading and trailing '/'s aside, as
 * Linux reads them (jail_args.c's rule). */
static bool odd_component(const char *path)
{
	const char *p = path + strspn(path, "/");

	while (*p) {
		size_t n = strcspn(p, "/"), k;

		if ((n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
			return true;
		p += n;
		k = strspn(p, "/");
		if (k > 1 && p[k])
			return true;
		p += k;
	}
	return false;
}

static void check_abs(const char *what, const char *path)
{
	if (!path || path[0] != '/' || strlen(path) >= PATH_MAX)
		fail("accepted %s \"%s\": not an absolute path", what, path ? path : "(null)");
	if (odd_component(path))
		fail("accepted %s \"%s\" with a \".\", \"..\" or empty component", what, path);
}

static bool only(const char *s, const char *chars)
{
	return strspn(s, chars) == strlen(s);
}

static void check_accepted(const struct jail_args *a, int argc, char **argv)
{
	char buf[PATH_MAX], want[3 * PATH_MAX], id_arg[JAIL_ID_MAX + 8], ctrl[72];
	char *exec_argv[MAX_ARGS + 4];
	int n;

	if (!a->id || !instance_id_valid(a->id))
		fail("accepted --id \"%s\"", a->id ? a->id : "(null)");
	check_abs("--exec-file", a->exec_file);
	if (!a->exec_name || a->exec_name != strrchr(a->exec_file, '/') + 1 || !a->exec_name[0] ||
	    !strcmp(a->exec_name, ".") || !strcmp(a->exec_name, ".."))
		fail("accepted --exec-file \"%s\": exec name \"%s\"", a->exec_file,
		     a->exec_name ? a->exec_name : "(null)");
	if (a->uid == (uid_t)-1 || a->gid == (gid_t)-1)
		fail("accepted uid %u, gid %u: -1 means \"unchanged\" to setresuid", a->uid, a->gid);
	check_abs("--chroot-base-dir", a->chroot_base);
	if (strcmp(a->chroot_base, "/") && a->chroot_base[strlen(a->chroot_base) - 1] == '/')
		fail("accepted --chroot-base-dir \"%s\" with a trailing '/'", a->chroot_base);
	if (!a->parent_cgroup || !a->parent_cgroup[0] || a->parent_cgroup[0] == '/' ||
	    odd_component(a->parent_cgroup) ||
	    a->parent_cgroup[strlen(a->parent_cgroup) - 1] == '/')
		fail("accepted --parent-cgroup \"%s\"", a->parent_cgroup ? a->parent_cgroup : "(null)");
	if (a->netns)
		check_abs("--netns", a->netns);
	if (a->fsize < 0 && a->fsize != JAIL_RLIMIT_UNSET)
		fail("accepted fsize %lld", a->fsize);
	if (a->nofile < 0)
		fail("accepted no-file %lld", a->nofile);

	if (a->nr_cgroups > JAIL_MAX_CGROUPS || a->nr_copies > JAIL_MAX_COPY_IN)
		fail("%zu cgroups, %zu copies", a->nr_cgroups, a->nr_copies);
	for (size_t i = 0; i < a->nr_cgroups; i++) {
		const struct jail_cgroup_value *c = &a->cgroups[i];

		/* The file is a name in the VM's cgroup dir; the value, one line written to it. */
		if (!only(c->file, "abcdefghijklmnopqrstuvwxyz0123456789_.") || !strchr(c->file, '.') ||
		    c->file[0] == '.' || !strcmp(c->file, "cgroup.procs") || !c->value[0] ||
		    strchr(c->value, '\n'))
			fail("accepted --cgroup \"%s=%s\"", c->file, c->value);
		if (jail_args_controller(c->file, ctrl, sizeof(ctrl)) < 0 || strchr(ctrl, '.'))
			fail("--cgroup \"%s\": controller \"%s\"", c->file, ctrl);
	}
	for (size_t i = 0; i < a->nr_copies; i++) {
		check_abs("--copy-in SRC", a->copies[i].src);
		check_abs("--copy-in DST", a->copies[i].dst);
		if (a->copies[i].dst[strlen(a->copies[i].dst) - 1] == '/')
			fail("accepted --copy-in DST \"%s\", a directory", a->copies[i].dst);
		/* jailer.c refuses a DST of "/<exec name>": "//<exec name>" must not pass. */
		if (a->copies[i].dst[1] == '/')
			fail("accepted --copy-in DST \"%s\" with more than one leading '/'",
			     a->copies[i].dst);
	}

	/* The chroot: below the base, one level per name. */
	if (jail_args_chroot_dir(a, buf, sizeof(buf)) == 0) {
		snprintf(want, sizeof(want), "%s/%s/%s/root",
			 strcmp(a->chroot_base, "/") ? a->chroot_base : "", a->exec_name, a->id);
		if (strcmp(buf, want) != 0 || odd_component(buf))
			fail("chroot dir \"%s\"", buf);
	} else if (strlen(a->chroot_base) + strlen(a->exec_name) + strlen(a->id) + 8 < sizeof(buf)) {
		fail("chroot dir refused though it fits");
	}
	if (jail_args_cgroup_dir(a, "/sys/fs/cgroup/", buf, sizeof(buf)) == 0) {
		snprintf(want, sizeof(want), "/sys/fs/cgroup/%s/%s", a->parent_cgroup, a->id);
		if (strcmp(buf, want) != 0 || odd_component(buf))
			fail("cgroup dir \"%s\"", buf);
		if (log_stderr)
			fprintf(stderr, "fuzz_jailer: cgroup dir %s\n", buf);
	}

	/* The jailed program's argv. */
	if (a->nr_extra < 0 || (a->extra ? a->extra + a->nr_extra != argv + argc : a->nr_extra))
		fail("%d arguments after \"--\"", a->nr_extra);
	if (jail_args_exec_argv(a, id_arg, sizeof(id_arg), exec_argv, (size_t)a->nr_extra + 2) !=
	    -E2BIG)
		fail("exec argv: room for one too few was enough");
	n = jail_args_exec_argv(a, id_arg, sizeof(id_arg), exec_argv, sizeof(exec_argv) /
				sizeof(exec_argv[0]));
	if (n != a->nr_extra + 2 || strcmp(exec_argv[0], a->exec_name) ||
	    strncmp(exec_argv[1], "--id=", 5) || strcmp(exec_argv[1] + 5, a->id) || exec_argv[n])
		fail("exec argv of %d", n);
	for (int i = 0; i < a->nr_extra; i++)
		if (exec_argv[2 + i] != a->extra[i])
			fail("exec argv[%d] is not the argument after \"--\"", 2 + i);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	log_stderr = getenv("KILN_FUZZ_LOG") != NULL;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char name[] = "kiln-jailer";
	char *argv[MAX_ARGS + 2] = { name }, err[JAIL_ERR_LEN];
	struct jail_args a;
	int argc = 1, ret;

	/* Each argument in a buffer of its own size: ASan sees a read past its NUL. A NUL at the
	 * end of the input ends the last argument. */
	for (size_t at = 0; at < size && argc <= MAX_ARGS;) {
		const uint8_t *end = memchr(data + at, '\0', size - at);
		size_t n = end ? (size_t)(end - (data + at)) : size - at;

		argv[argc] = malloc(n + 1);
		if (!argv[argc])
			fail("out of memory");
		memcpy(argv[argc], data + at, n);
		argv[argc++][n] = '\0';
		at += n + 1;
	}
	argv[argc] = NULL;
	memset(err, 0x55, sizeof(err)); /* a message must be written, not found */
	ret = jail_args_parse(&a, argc, argv, err, sizeof(err));
	if (log_stderr)
		fprintf(stderr, "fuzz_jailer: %d %s\n", ret, ret < 0 ? err : a.help ? "help" : "");
	if (ret < 0) {
		if (ret != -EINVAL)
			fail("refused with %d", ret);
		if (!memchr(err, '\0', sizeof(err)) || !err[0])
			fail("refused without a message");
		if (strncmp(err, "--", 2) != 0 && strncmp(err, "unknown argument \"", 18) != 0)
			fail("a message naming no flag: %s", err);
	} else if (ret != 0) {
		fail("accepted with %d", ret);
	} else if (!a.help) {
		check_accepted(&a, argc, argv);
	}
	jail_args_free(&a);
	for (int i = 1; i < argc; i++)
		free(argv[i]);
	return 0;
}
