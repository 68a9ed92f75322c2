/* The VM's cgroup v2: found, created, its controllers enabled, its limits written, the jailer moved in. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <mntent.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "jail_cgroup.h"
#include "jail_fs.h"

#define CTRL_LEN 32
#define LIST_LEN 1024

int jail_cgroup_find(char *mount, size_t len, char *err, size_t errlen)
{
	char line[4096];
	struct mntent ent, *m;
	FILE *f = setmntent("/proc/self/mounts", "re");
	int ret = -ENOENT;

	if (!f) {
		snprintf(err, errlen, "/proc/self/mounts: %s", strerror(errno));
		return -errno;
	}
	while ((m = getmntent_r(f, &ent, line, sizeof(line)))) {
		if (strcmp(m->mnt_type, "cgroup2") == 0) {
			ret = snprintf(mount, len, "%s", m->mnt_dir) < (int)len ? 0 : -ENAMETOOLONG;
			break;
		}
	}
	endmntent(f);
	if (ret == -ENOENT)
		snprintf(err, errlen, "no cgroup v2 file system is mounted (kiln-jailer supports "
			 "only cgroup v2: mount -t cgroup2 none /sys/fs/cgroup)");
	else if (ret < 0)
		snprintf(err, errlen, "the cgroup2 mount point is too long");
	return ret;
}

/* Reads a small file into buf, NUL-terminated, trailing newline dropped. */
static int read_small(const char *path, char *buf, size_t len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = read(fd, buf, len - 1);
	if (n < 0) {
		int e = errno;

		close(fd);
		return -e;
	}
	close(fd);
	buf[n] = '\0';
	if (n > 0 && buf[n - 1] == '\n')
		buf[n - 1] = '\0';
	return 0;
}

/* One write(2): the kernel parses a cgroup file's value per write. */
static int write_small(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	size_t n = strlen(text);
	ssize_t k;

	if (fd < 0)
		return -errno;
	k = write(fd, text, n);
	if (k < 0 || (size_t)k != n) {
		int e = k < 0 ? errno : EIO;

		close(fd);
		return -e;
	}
	if (close(fd) < 0)
		return -errno;
	return 0;
}

static bool has_word(const char *list, const char *word)
{
	size_t n = strlen(word);

	for (const char *p = list; *p;) {
		size_t k;

		p += strspn(p, " ");
		k = strcspn(p, " ");
		if (k == n && strncmp(p, word, n) == 0)
			return true;
		p += k;
	}
	return false;
}

/* The controllers the --cgroup files belong to, each once. */
static size_t needed_controllers(const struct jail_args *a, char ctrl[][CTRL_LEN])
{
	size_t n = 0;

	for (size_t i = 0; i < a->nr_cgroups; i++) {
		char c[CTRL_LEN];
		bool seen = false;

		if (jail_args_controller(a->cgroups[i].file, c, sizeof(c)) < 0 || c[0] == '\0')
			continue;
		for (size_t k = 0; k < n; k++)
			seen = seen || strcmp(ctrl[k], c) == 0;
		if (!seen)
			memcpy(ctrl[n++], c, sizeof(c));
	}
	return n;
}

/* Writes "+ctrl" to dir/cgroup.subtree_control for each controller not yet enabled there. */
static int enable_in(const char *dir, char ctrl[][CTRL_LEN], size_t n, char *err, size_t errlen)
{
	char path[PATH_MAX + 32], list[LIST_LEN], plus[CTRL_LEN + 1];
	int ret;

	snprintf(path, sizeof(path), "%s/cgroup.subtree_control", dir);
	ret = read_small(path, list, sizeof(list));
	for (size_t i = 0; ret == 0 && i < n; i++) {
		if (has_word(list, ctrl[i]))
			continue;
		snprintf(plus, sizeof(plus), "+%s", ctrl[i]);
		ret = write_small(path, plus);
		if (ret < 0) {
			snprintf(err, errlen, "enabling %s in %s: %s%s", ctrl[i], path, strerror(-ret),
				 ret == -EBUSY ? " (a cgroup with processes of its own cannot "
						 "enable controllers for its children)" : "");
			return ret;
		}
	}
	if (ret < 0)
		snprintf(err, errlen, "%s: %s", path, strerror(-ret));
	return ret;
}

int jail_cgroup_setup(const struct jail_args *a, const char *mount, char *dir, size_t dir_len,
		      int *procs_fd, char *err, size_t errlen)
{
	char ctrl[JAIL_MAX_CGROUPS][CTRL_LEN], list[LIST_LEN], path[PATH_MAX + 80];
	size_t n = needed_controllers(a, ctrl), root_len;
	int ret;

	if (jail_args_cgroup_dir(a, mount, dir, dir_len) < 0) {
		snprintf(err, errlen, "the cgroup path is too long");
		return -ENAMETOOLONG;
	}
	snprintf(path, sizeof(path), "%s/cgroup.controllers", mount);
	ret = read_small(path, list, sizeof(list));
	if (ret < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(-ret));
		return ret;
	}
	for (size_t i = 0; i < n; i++) {
		if (!has_word(list, ctrl[i])) {
			snprintf(err, errlen, "the cgroup controller \"%s\" is not available (%s: "
				 "\"%s\")", ctrl[i], path, list);
			return -EOPNOTSUPP;
		}
	}
	ret = jail_fs_mkdir_p(dir, err, errlen);
	if (ret < 0)
		return ret;
	/* Each ancestor of the VM's cgroup, from the mount down, hands the controllers on. */
	root_len = strlen(dir) - strlen(a->parent_cgroup) - strlen(a->id) - 2;
	for (size_t p = root_len; n > 0 && dir[p]; p++) {
		char anc[PATH_MAX];

		if (dir[p] != '/')
			continue;
		snprintf(anc, sizeof(anc), "%.*s", p == 0 ? 1 : (int)p, p == 0 ? "/" : dir);
		ret = enable_in(anc, ctrl, n, err, errlen);
		if (ret < 0)
			return ret;
	}
	for (size_t i = 0; i < a->nr_cgroups; i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, a->cgroups[i].file);
		ret = write_small(path, a->cgroups[i].value);
		if (ret < 0) {
			snprintf(err, errlen, "writing \"%s\" to %s: %s", a->cgroups[i].value, path,
				 strerror(-ret));
			return ret;
		}
	}
	snprintf(path, sizeof(path), "%s/cgroup.procs", dir);
	*procs_fd = open(path, O_WRONLY | O_CLOEXEC);
	if (*procs_fd < 0) {
		snprintf(err, errlen, "opening %s: %s", path, strerror(errno));
		return -errno;
	}
	return 0;
}

int jail_cgroup_join(int procs_fd, pid_t pid, char *err, size_t errlen)
{
	char text[32];
	int n = snprintf(text, sizeof(text), "%d", (int)pid);
	ssize_t k = write(procs_fd, text, (size_t)n);

	if (k != n) {
		int e = k < 0 ? errno : EIO;

		snprintf(err, errlen, "moving pid %s into the cgroup: %s", text, strerror(e));
		return -e;
	}
	return 0;
}
