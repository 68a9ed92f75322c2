/* The jail's file system: its directory on the host, pivot_root into it, and what goes inside. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "jail_fs.h"

#define COPY_CHUNK (1 << 20)

/* Writes "WHAT PATH: strerror(e)" (or "WHAT: ..." for a NULL path) to err; returns -e. */
static int fail(char *err, size_t errlen, int e, const char *what, const char *path)
{
	snprintf(err, errlen, "%s%s%s: %s", what, path ? " " : "", path ? path : "", strerror(e));
	return -e;
}

int jail_fs_mkdir_p(const char *path, char *err, size_t errlen)
{
	char buf[PATH_MAX];
	size_t n = strlen(path);

	if (n == 0 || n >= sizeof(buf))
		return fail(err, errlen, ENAMETOOLONG, "mkdir", path);
	memcpy(buf, path, n + 1);
	for (char *p = buf + 1;; p++) {
		if (*p != '/' && *p != '\0')
			continue;
		char c = *p;

		*p = '\0';
		if (mkdir(buf, 0755) < 0 && errno != EEXIST)
			return fail(err, errlen, errno, "mkdir", buf);
		*p = c;
		if (c == '\0')
			break;
	}
	return 0;
}

int jail_fs_check_dir(const char *dir, char *err, size_t errlen)
{
	struct statvfs sv;
	struct stat st;

	if (lstat(dir, &st) < 0)
		return fail(err, errlen, errno, "stat", dir);
	if (!S_ISDIR(st.st_mode)) {
		snprintf(err, errlen, "%s is not a directory", dir);
		return -ENOTDIR;
	}
	if (statvfs(dir, &sv) < 0)
		return fail(err, errlen, errno, "statvfs", dir);
	if (sv.f_flag & ST_NODEV) {
		snprintf(err, errlen, "%s is on a file system mounted nodev: /dev/kvm would not "
			 "open there; choose another --chroot-base-dir", dir);
		return -EPERM;
	}
	return 0;
}

int jail_fs_enter(const char *dir, char *err, size_t errlen)
{
	char old[] = "old_root.XXXXXX";

	if (unshare(CLONE_NEWNS) < 0)
		return fail(err, errlen, errno, "unshare(CLONE_NEWNS)", NULL);
	/* Nothing done here may reach the host's mounts; pivot_root refuses shared ones. */
	if (mount(NULL, "/", NULL, MS_SLAVE | MS_REC, NULL) < 0)
		return fail(err, errlen, errno, "making mounts slaves under", "/");
	if (mount(dir, dir, NULL, MS_BIND | MS_REC, NULL) < 0)
		return fail(err, errlen, errno, "bind-mounting onto itself", dir);
	if (chdir(dir) < 0)
		return fail(err, errlen, errno, "chdir", dir);
	/* A fresh name: one the jailed program left behind could be a symlink. */
	if (!mkdtemp(old))
		return fail(err, errlen, errno, "mkdtemp in", dir);
	if (syscall(SYS_pivot_root, ".", old) < 0) {
		int e = errno;

		rmdir(old);
		return fail(err, errlen, e, "pivot_root into", dir);
	}
	if (chdir("/") < 0)
		return fail(err, errlen, errno, "chdir", "/");
	if (umount2(old, MNT_DETACH) < 0)
		return fail(err, errlen, errno, "unmounting the old root at", old);
	if (rmdir(old) < 0)
		return fail(err, errlen, errno, "rmdir", old);
	if (chroot(".") < 0)
		return fail(err, errlen, errno, "chroot", dir);
	return 0;
}

/* Creates the parent directories of path. */
static int make_parents(const char *path, char *err, size_t errlen)
{
	char dir[PATH_MAX];
	const char *slash = strrchr(path, '/');

	if (!slash || slash == path)
		return 0;
	if ((size_t)(slash - path) >= sizeof(dir))
		return fail(err, errlen, ENAMETOOLONG, "mkdir", path);
	memcpy(dir, path, (size_t)(slash - path));
	dir[slash - path] = '\0';
	return jail_fs_mkdir_p(dir, err, errlen);
}

static int copy_data(int src, int dst)
{
	char *buf = NULL;
	off_t off = 0;

	for (;;) {
		ssize_t n = sendfile(dst, src, &off, COPY_CHUNK);

		if (n == 0)
			return 0;
		if (n > 0)
			continue;
		if (errno == EINTR)
			continue;
		if (errno != EINVAL && errno != ENOSYS)
			return -errno;
		break; /* sendfile cannot read this file system: copy by hand */
	}
	buf = malloc(COPY_CHUNK);
	if (!buf)
		return -ENOMEM;
	for (;;) {
		ssize_t n = pread(src, buf, COPY_CHUNK, off), w = 0;

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			free(buf);
			return n < 0 ? -errno : 0;
		}
		while (w < n) {
			ssize_t k = write(dst, buf + w, (size_t)(n - w));

			if (k < 0 && errno == EINTR)
				continue;
			if (k < 0) {
				int e = errno;

				free(buf);
				return -e;
			}
			w += k;
		}
		off += n;
	}
}

int jail_fs_copy(int src_fd, const char *path, mode_t mode, uid_t uid, gid_t gid, char *err,
		 size_t errlen)
{
	char tmp[PATH_MAX];
	int fd, ret;

	ret = make_parents(path, err, errlen);
	if (ret < 0)
		return ret;
	if (snprintf(tmp, sizeof(tmp), "%s.kiln-jailer-tmp", path) >= (int)sizeof(tmp))
		return fail(err, errlen, ENAMETOOLONG, "copying to", path);
	unlink(tmp);
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return fail(err, errlen, errno, "creating", tmp);
	ret = copy_data(src_fd, fd);
	if (ret < 0) {
		fail(err, errlen, -ret, "copying to", path);
	} else if (fchown(fd, uid, gid) < 0 || fchmod(fd, mode) < 0) {
		ret = fail(err, errlen, errno, "setting the owner and mode of", path);
	}
	if (close(fd) < 0 && ret == 0)
		ret = fail(err, errlen, errno, "writing", path);
	if (ret == 0 && rename(tmp, path) < 0)
		ret = fail(err, errlen, errno, "renaming into place", path);
	if (ret < 0)
		unlink(tmp);
	return ret;
}

int jail_fs_mknod(const char *path, unsigned major, unsigned minor, uid_t uid, gid_t gid,
		  char *err, size_t errlen)
{
	int ret = make_parents(path, err, errlen);

	if (ret < 0)
		return ret;
	if (unlink(path) < 0 && errno != ENOENT)
		return fail(err, errlen, errno, "removing the old", path);
	if (mknod(path, S_IFCHR | 0600, makedev(major, minor)) < 0)
		return fail(err, errlen, errno, "mknod", path);
	/* mknod's mode went through the umask: set it whole. */
	if (lchown(path, uid, gid) < 0 || chmod(path, 0600) < 0)
		return fail(err, errlen, errno, "setting the owner and mode of", path);
	return 0;
}
