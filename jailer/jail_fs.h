/* The jail's file system: its directory on the host, pivot_root into it, and what goes inside. */
#ifndef KILN_JAIL_FS_H
#define KILN_JAIL_FS_H

#include <stddef.h>
#include <sys/types.h>

/*
 * Creates path and its missing parents (mode 0755, owned by the caller), like mkdir -p.
 * Returns 0 or -errno with one line in err.
 */
int jail_fs_mkdir_p(const char *path, char *err, size_t errlen) __attribute__((warn_unused_result));

/*
 * Refuses a chroot dir on a nodev file system (no device node would open there).
 * Returns 0 or -errno with one line in err.
 */
int jail_fs_check_dir(const char *dir, char *err, size_t errlen) __attribute__((warn_unused_result));

/*
 * Enters a new mount namespace whose root is dir: marks every mount a slave, bind-mounts dir
 * onto itself, pivot_root()s into it, detaches the old root and chroot()s to ".".
 * Afterwards no host path outside dir is reachable. Returns 0 or -errno with one line in err.
 */
int jail_fs_enter(const char *dir, char *err, size_t errlen) __attribute__((warn_unused_result));

/*
 * Copies the open file src_fd (from offset 0) to path (inside the jail by then), creating its
 * parent directories; the file gets mode and uid:gid and replaces whatever was at path
 * (a symlink there is replaced, never followed). Returns 0 or -errno with one line in err.
 */
int jail_fs_copy(int src_fd, const char *path, mode_t mode, uid_t uid, gid_t gid, char *err,
		 size_t errlen) __attribute__((warn_unused_result));

/*
 * Creates character device path (major:minor), mode 0600, owned by uid:gid, replacing whatever
 * was there. Returns 0 or -errno with one line in err.
 */
int jail_fs_mknod(const char *path, unsigned major, unsigned minor, uid_t uid, gid_t gid,
		  char *err, size_t errlen) __attribute__((warn_unused_result));

#endif
