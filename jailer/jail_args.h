/* kiln-jailer's command line: Firecracker's jailer flags, their checks, and the paths built from them. */
#ifndef KILN_JAIL_ARGS_H
#define KILN_JAIL_ARGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/types.h>

#include "instance_id.h"

#define JAIL_ID_MAX INSTANCE_ID_MAX
#define JAIL_MAX_CGROUPS 32
#define JAIL_MAX_COPY_IN 64
#define JAIL_ERR_LEN 512
#define JAIL_DEFAULT_CHROOT_BASE "/srv/jailer"
#define JAIL_DEFAULT_NOFILE 2048 /* Firecracker's default for RLIMIT_NOFILE */
#define JAIL_RLIMIT_UNSET (-1LL)

/* One --cgroup FILE=VALUE. */
struct jail_cgroup_value {
	char *file;  /* "memory.max": a file of the VM's cgroup */
	char *value; /* "512M" */
};

/* One --copy-in SRC[:DST]. */
struct jail_copy_in {
	char *src; /* absolute path on the host */
	char *dst; /* absolute path inside the jail, with one leading '/' */
};

struct jail_args {
	const char *id;
	const char *exec_file; /* absolute path of the program to jail */
	const char *exec_name; /* its last component: the chroot's subdirectory and argv[0] */
	uid_t uid;
	gid_t gid;
	char *chroot_base; /* absolute, without a trailing '/' */
	const char *parent_cgroup;
	struct jail_cgroup_value cgroups[JAIL_MAX_CGROUPS];
	size_t nr_cgroups;
	const char *netns;
	long long fsize;  /* RLIMIT_FSIZE, or JAIL_RLIMIT_UNSET */
	long long nofile; /* RLIMIT_NOFILE */
	bool daemonize;
	bool new_pid_ns;
	bool copy_libs;
	struct jail_copy_in copies[JAIL_MAX_COPY_IN];
	size_t nr_copies;
	char **extra; /* the arguments after "--", passed on to the jailed program */
	int nr_extra;
	bool help;
};

/*
 * Parses argv into a (which the caller frees with jail_args_free, also after a failure).
 * Checks everything that needs no file system. Returns 0, or -EINVAL with one line in err
 * naming the flag at fault. --help sets a->help and returns 0 without checking the rest.
 */
int jail_args_parse(struct jail_args *a, int argc, char **argv, char *err, size_t errlen)
	__attribute__((warn_unused_result));

/* Frees what jail_args_parse allocated; a is zeroed. */
void jail_args_free(struct jail_args *a);

/* Prints the usage text. */
void jail_args_usage(FILE *f);

/*
 * Writes <chroot_base>/<exec_name>/<id>/root to buf. Returns 0 or -ENAMETOOLONG.
 */
int jail_args_chroot_dir(const struct jail_args *a, char *buf, size_t len)
	__attribute__((warn_unused_result));

/*
 * Writes <mount>/<parent_cgroup>/<id> (the VM's cgroup v2 directory) to buf.
 * Returns 0 or -ENAMETOOLONG.
 */
int jail_args_cgroup_dir(const struct jail_args *a, const char *mount, char *buf, size_t len)
	__attribute__((warn_unused_result));

/*
 * Writes the controller of a cgroup file ("memory" for "memory.max") to buf. Core files
 * ("cgroup.*") have none: buf gets "". Returns 0 or -EINVAL for a name without a '.'.
 */
int jail_args_controller(const char *file, char *buf, size_t len)
	__attribute__((warn_unused_result));

/*
 * Fills argv (max entries, NULL-terminated) with what the jailed program is run with:
 * exec_name, --id=<id> (into id_arg), then the arguments after "--".
 * Returns the number of arguments or -E2BIG.
 */
int jail_args_exec_argv(const struct jail_args *a, char *id_arg, size_t id_len, char **argv,
			size_t max) __attribute__((warn_unused_result));

#endif
