/* The VM's cgroup v2: found, created, its controllers enabled, its limits written, the jailer moved in. */
#ifndef KILN_JAIL_CGROUP_H
#define KILN_JAIL_CGROUP_H

#include <stddef.h>
#include <sys/types.h>

#include "jail_args.h"

/*
 * Finds where the cgroup v2 hierarchy is mounted (the first cgroup2 entry of
 * /proc/self/mounts) and writes it to mount. Returns 0, or -ENOENT with one line in err
 * saying how to mount it.
 */
int jail_cgroup_find(char *mount, size_t len, char *err, size_t errlen)
	__attribute__((warn_unused_result));

/*
 * Creates <mount>/<parent_cgroup>/<id> (written to dir), enables the controllers the
 * --cgroup files need in cgroup.subtree_control from the mount down to its parent, writes each
 * --cgroup value, and opens the new cgroup's cgroup.procs into *procs_fd (for
 * jail_cgroup_join, which works after pivot_root too). Returns 0 or -errno with one line in
 * err naming the file at fault.
 */
int jail_cgroup_setup(const struct jail_args *a, const char *mount, char *dir, size_t dir_len,
		      int *procs_fd, char *err, size_t errlen) __attribute__((warn_unused_result));

/*
 * Moves pid into the cgroup whose cgroup.procs is open as procs_fd; its children are born
 * there. Returns 0 or -errno with one line in err.
 */
int jail_cgroup_join(int procs_fd, pid_t pid, char *err, size_t errlen)
	__attribute__((warn_unused_result));

#endif
