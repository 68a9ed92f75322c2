/* kiln-jailer: runs kiln in a chroot, new namespaces, a cgroup and an unprivileged uid, like Firecracker's jailer. */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "jail_args.h"
#include "jail_cgroup.h"
#include "jail_elf.h"
#include "jail_fs.h"

/* Misc character devices, the numbers Firecracker's jailer uses too. */
#define KVM_MAJOR 10
#define KVM_MINOR 232
#define TUN_MAJOR 10
#define TUN_MINOR 200

/* Everything one run of the jailer holds. */
struct jail {
	struct jail_args args;
	char root[PATH_MAX];   /* the chroot dir, as the host sees it */
	char cgroup[PATH_MAX]; /* the VM's cgroup, "" without --cgroup */
	int exec_fd;
	int copy_fds[JAIL_MAX_COPY_IN];
	struct jail_elf_deps libs;
	int lib_fds[JAIL_ELF_MAX_DEPS];
	int netns_fd;
	int null_fd;
	int cgroup_procs_fd;
	char err[JAIL_ERR_LEN];
};

/* Writes "WHAT PATH: strerror(e)" (or "WHAT: ..." for a NULL path) to j->err; returns -e.
 * Paths are cut at 400 bytes, to leave room for the rest. */
static int failed(struct jail *j, int e, const char *what, const char *path)
{
	snprintf(j->err, sizeof(j->err), "%s%s%.400s: %s", what, path ? " " : "", path ? path : "",
		 strerror(e));
	return -e;
}

static int step_check(struct jail *j)
{
	const struct jail_args *a = &j->args;
	struct stat st;

	if (stat(a->exec_file, &st) < 0)
		return failed(j, errno, "--exec-file", a->exec_file);
	if (!S_ISREG(st.st_mode) || !(st.st_mode & 0111)) {
		snprintf(j->err, sizeof(j->err), "--exec-file %s: not an executable file",
			 a->exec_file);
		return -EACCES;
	}
	for (size_t i = 0; i < a->nr_copies; i++) {
		if (stat(a->copies[i].src, &st) < 0)
			return failed(j, errno, "--copy-in", a->copies[i].src);
		if (!S_ISREG(st.st_mode)) {
			snprintf(j->err, sizeof(j->err), "--copy-in %s: not a regular file",
				 a->copies[i].src);
			return -EINVAL;
		}
		if (a->copies[i].dst[0] == '/' && strcmp(a->copies[i].dst + 1, a->exec_name) == 0) {
			snprintf(j->err, sizeof(j->err), "--copy-in %s: would replace the exec file",
				 a->copies[i].dst);
			return -EINVAL;
		}
	}
	if (a->netns && stat(a->netns, &st) < 0)
		return failed(j, errno, "--netns", a->netns);
	if (geteuid() != 0) {
		snprintf(j->err, sizeof(j->err), "kiln-jailer must run as root (it mounts, "
			 "chroots, creates device nodes and changes uid)");
		return -EPERM;
	}
	return 0;
}

/* Everything from the host is opened before the pivot: paths inside the jail come later. */
static int step_open(struct jail *j)
{
	const struct jail_args *a = &j->args;
	int ret;

	j->exec_fd = open(a->exec_file, O_RDONLY | O_CLOEXEC);
	if (j->exec_fd < 0)
		return failed(j, errno, "opening", a->exec_file);
	for (size_t i = 0; i < a->nr_copies; i++) {
		j->copy_fds[i] = open(a->copies[i].src, O_RDONLY | O_CLOEXEC);
		if (j->copy_fds[i] < 0)
			return failed(j, errno, "opening", a->copies[i].src);
	}
	if (a->copy_libs) {
		ret = jail_elf_deps(a->exec_file, &j->libs, j->err, sizeof(j->err));
		if (ret < 0)
			return ret;
		for (size_t i = 0; i < j->libs.n; i++) {
			j->lib_fds[i] = open(j->libs.paths[i], O_RDONLY | O_CLOEXEC);
			if (j->lib_fds[i] < 0)
				return failed(j, errno, "opening", j->libs.paths[i]);
		}
	}
	if (a->netns && (j->netns_fd = open(a->netns, O_RDONLY | O_CLOEXEC)) < 0)
		return failed(j, errno, "opening", a->netns);
	if (a->daemonize && (j->null_fd = open("/dev/null", O_RDWR | O_CLOEXEC)) < 0)
		return failed(j, errno, "opening", "/dev/null");
	return 0;
}

static int step_chroot_dir(struct jail *j)
{
	int ret;

	if (jail_args_chroot_dir(&j->args, j->root, sizeof(j->root)) < 0) {
		snprintf(j->err, sizeof(j->err), "the chroot path is too long");
		return -ENAMETOOLONG;
	}
	ret = jail_fs_mkdir_p(j->root, j->err, sizeof(j->err));
	if (ret < 0)
		return ret;
	return jail_fs_check_dir(j->root, j->err, sizeof(j->err));
}

static int step_cgroup(struct jail *j)
{
	char mount[PATH_MAX];
	int ret;

	if (j->args.nr_cgroups == 0)
		return 0;
	ret = jail_cgroup_find(mount, sizeof(mount), j->err, sizeof(j->err));
	if (ret < 0)
		return ret;
	return jail_cgroup_setup(&j->args, mount, j->cgroup, sizeof(j->cgroup), &j->cgroup_procs_fd,
				 j->err, sizeof(j->err));
}

/* After the copies, so the jail's files are not charged to the VM's memory limit. */
static int step_cgroup_join(struct jail *j)
{
	if (j->cgroup_procs_fd < 0)
		return 0;
	return jail_cgroup_join(j->cgroup_procs_fd, getpid(), j->err, sizeof(j->err));
}

static int step_enter(struct jail *j)
{
	return jail_fs_enter(j->root, j->err, sizeof(j->err));
}

/* Inside the jail now: "/" is the chroot dir. */
static int step_fill(struct jail *j)
{
	const struct jail_args *a = &j->args;
	char path[PATH_MAX];
	struct stat st;
	int ret;

	snprintf(path, sizeof(path), "/%s", a->exec_name);
	ret = jail_fs_copy(j->exec_fd, path, 0755, 0, 0, j->err, sizeof(j->err));
	for (size_t i = 0; ret == 0 && i < j->libs.n; i++)
		ret = jail_fs_copy(j->lib_fds[i], j->libs.paths[i], 0755, 0, 0, j->err,
				   sizeof(j->err));
	/* The VM's own files: its uid may need to write them (drives). */
	for (size_t i = 0; ret == 0 && i < a->nr_copies; i++) {
		mode_t mode = fstat(j->copy_fds[i], &st) == 0 ? (st.st_mode & 0777) | 0600 : 0600;

		ret = jail_fs_copy(j->copy_fds[i], a->copies[i].dst, mode, a->uid, a->gid, j->err,
				   sizeof(j->err));
	}
	if (ret == 0)
		ret = jail_fs_mknod("/dev/kvm", KVM_MAJOR, KVM_MINOR, a->uid, a->gid, j->err,
				    sizeof(j->err));
	if (ret == 0)
		ret = jail_fs_mknod("/dev/net/tun", TUN_MAJOR, TUN_MINOR, a->uid, a->gid, j->err,
				    sizeof(j->err));
	/* kiln creates its API socket and other files here (by default /run/kiln.socket). */
	if (ret == 0 && chown("/", a->uid, a->gid) < 0)
		ret = failed(j, errno, "chown", j->root);
	if (ret == 0 && mkdir("/run", 0755) < 0 && errno != EEXIST)
		ret = failed(j, errno, "mkdir", "/run");
	if (ret == 0 && lchown("/run", a->uid, a->gid) < 0)
		ret = failed(j, errno, "chown", "/run");
	return ret;
}

/* After the copies, so an fsize limit does not stop them. */
static int step_rlimits(struct jail *j)
{
	struct rlimit nofile = { (rlim_t)j->args.nofile, (rlim_t)j->args.nofile };
	struct rlimit fsize = { (rlim_t)j->args.fsize, (rlim_t)j->args.fsize };

	if (setrlimit(RLIMIT_NOFILE, &nofile) < 0)
		return failed(j, errno, "setrlimit", "RLIMIT_NOFILE (no-file)");
	if (j->args.fsize != JAIL_RLIMIT_UNSET && setrlimit(RLIMIT_FSIZE, &fsize) < 0)
		return failed(j, errno, "setrlimit", "RLIMIT_FSIZE (fsize)");
	return 0;
}

static int step_netns(struct jail *j)
{
	if (!j->args.netns)
		return 0;
	if (setns(j->netns_fd, CLONE_NEWNET) < 0)
		return failed(j, errno, "setns(CLONE_NEWNET)", j->args.netns);
	return 0;
}

static const struct {
	const char *name;
	int (*run)(struct jail *j);
} steps[] = {
	{ "checking the host", step_check },
	{ "opening the files to copy", step_open },
	{ "creating the chroot dir", step_chroot_dir },
	{ "creating the cgroup", step_cgroup },
	{ "entering the chroot", step_enter },
	{ "filling the chroot", step_fill },
	{ "joining the cgroup", step_cgroup_join },
	{ "setting resource limits", step_rlimits },
	{ "joining the network namespace", step_netns },
};

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

/* Closes what the steps opened; /dev/null too unless daemonize() still needs it. */
static void close_fds(struct jail *j, bool keep_null)
{
	close_fd(&j->exec_fd);
	close_fd(&j->netns_fd);
	close_fd(&j->cgroup_procs_fd);
	if (!keep_null)
		close_fd(&j->null_fd);
	for (size_t i = 0; i < JAIL_MAX_COPY_IN; i++)
		close_fd(&j->copy_fds[i]);
	for (size_t i = 0; i < JAIL_ELF_MAX_DEPS; i++)
		close_fd(&j->lib_fds[i]);
}

static int drop_privileges(struct jail *j)
{
	uid_t uid = j->args.uid;
	gid_t gid = j->args.gid;

	/* No way back to a capability either, through a file's or otherwise. */
	for (int cap = 0;; cap++) {
		if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) == 0)
			continue;
		if (errno == EINVAL) /* past the last capability this kernel knows */
			break;
		return failed(j, errno, "prctl(PR_CAPBSET_DROP)", NULL);
	}
	if (setgroups(0, NULL) < 0)
		return failed(j, errno, "setgroups", NULL);
	if (setresgid(gid, gid, gid) < 0)
		return failed(j, errno, "setresgid", "--gid");
	if (setresuid(uid, uid, uid) < 0)
		return failed(j, errno, "setresuid", "--uid");
	if (uid != 0 && (setuid(0) == 0 || seteuid(0) == 0)) {
		snprintf(j->err, sizeof(j->err), "still able to become root after dropping to %u",
			 (unsigned)uid);
		return -EPERM;
	}
	return 0;
}

/* Turns this process into the jailed program. Returns only on failure. */
static int exec_jailed(struct jail *j, int parent_death_signal)
{
	char id_arg[JAIL_ID_MAX + 8], path[PATH_MAX];
	char *envp[] = { NULL };
	int e;
	char **argv = calloc((size_t)j->args.nr_extra + 3, sizeof(*argv));

	if (!argv || jail_args_exec_argv(&j->args, id_arg, sizeof(id_arg), argv,
					 (size_t)j->args.nr_extra + 3) < 0) {
		fprintf(stderr, "kiln-jailer: out of memory\n");
		free(argv);
		return 1;
	}
	if (drop_privileges(j) < 0) {
		fprintf(stderr, "kiln-jailer: dropping privileges: %s\n", j->err);
		free(argv);
		return 1;
	}
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 ||
	    (parent_death_signal && prctl(PR_SET_PDEATHSIG, parent_death_signal, 0, 0, 0) < 0)) {
		fprintf(stderr, "kiln-jailer: prctl: %s\n", strerror(errno));
		free(argv);
		return 1;
	}
	snprintf(path, sizeof(path), "/%s", j->args.exec_name);
	close_range(3, ~0U, 0);
	execve(path, argv, envp);
	e = errno;
	fprintf(stderr, "kiln-jailer: exec %s in the jail: %s%s\n", path, strerror(e),
		e == ENOENT ? " (a dynamically linked program needs its libraries in the jail: "
			      "--copy-libs)" : "");
	free(argv);
	return 1;
}

/* setsid() and stdio to /dev/null; a process group leader forks first (setsid would fail). */
static int daemonize(struct jail *j)
{
	if (getpgrp() == getpid()) {
		pid_t pid = fork();

		if (pid < 0)
			return failed(j, errno, "fork", "to leave the process group");
		if (pid > 0)
			_exit(0);
	}
	if (setsid() < 0)
		return failed(j, errno, "setsid", NULL);
	for (int fd = 0; fd < 3; fd++)
		if (dup2(j->null_fd, fd) < 0)
			return failed(j, errno, "dup2", "/dev/null");
	close_fd(&j->null_fd);
	return 0;
}

static int write_pid_file(struct jail *j, pid_t pid)
{
	char path[PATH_MAX], text[32];
	int fd, n = snprintf(text, sizeof(text), "%d", (int)pid);

	snprintf(path, sizeof(path), "/%s.pid", j->args.exec_name);
	unlink(path);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
	if (fd < 0)
		return failed(j, errno, "creating", path);
	if (write(fd, text, (size_t)n) != n) {
		close(fd);
		return failed(j, errno ? errno : EIO, "writing", path);
	}
	return close(fd) < 0 ? failed(j, errno, "writing", path) : 0;
}

/*
 * Forks the jailed program as PID 1 of a new PID namespace. The parent writes its pid to
 * /<exec name>.pid, then exits at once (--daemonize) or waits, passing signals on, and
 * returns the program's status.
 */
static int run_in_pid_ns(struct jail *j)
{
	static const int forwarded[] = { SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2 };
	sigset_t set, old;
	siginfo_t si;
	pid_t pid;
	int status;

	sigemptyset(&set);
	for (size_t i = 0; i < sizeof(forwarded) / sizeof(forwarded[0]); i++)
		sigaddset(&set, forwarded[i]);
	sigaddset(&set, SIGCHLD);
	sigprocmask(SIG_BLOCK, &set, &old);
	if (unshare(CLONE_NEWPID) < 0) {
		fprintf(stderr, "kiln-jailer: unshare(CLONE_NEWPID): %s\n", strerror(errno));
		return 1;
	}
	pid = fork();
	if (pid < 0) {
		fprintf(stderr, "kiln-jailer: fork into the new PID namespace: %s\n", strerror(errno));
		return 1;
	}
	if (pid == 0) {
		sigprocmask(SIG_SETMASK, &old, NULL);
		return exec_jailed(j, j->args.daemonize ? 0 : SIGKILL);
	}
	if (write_pid_file(j, pid) < 0 || (!j->args.daemonize && drop_privileges(j) < 0)) {
		fprintf(stderr, "kiln-jailer: %s\n", j->err);
		kill(pid, SIGKILL);
		return 1;
	}
	if (j->args.daemonize)
		return 0;
	close_range(3, ~0U, 0);
	for (;;) {
		int sig = sigwaitinfo(&set, &si);

		if (sig < 0)
			continue; /* EINTR */
		if (sig != SIGCHLD) {
			kill(pid, sig);
			continue;
		}
		if (waitpid(pid, &status, WNOHANG) == pid)
			return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
	}
}

int main(int argc, char **argv)
{
	struct jail j;
	int ret;

	/* Nothing the caller left open reaches the jail; no environment either. */
	close_range(3, ~0U, 0);
	clearenv();
	umask(022);
	memset(&j, 0, sizeof(j));
	j.exec_fd = j.netns_fd = j.null_fd = j.cgroup_procs_fd = -1;
	for (size_t i = 0; i < JAIL_MAX_COPY_IN; i++)
		j.copy_fds[i] = -1;
	for (size_t i = 0; i < JAIL_ELF_MAX_DEPS; i++)
		j.lib_fds[i] = -1;

	if (jail_args_parse(&j.args, argc, argv, j.err, sizeof(j.err)) < 0) {
		fprintf(stderr, "kiln-jailer: %s\n", j.err);
		jail_args_free(&j.args);
		return 2;
	}
	if (j.args.help) {
		jail_args_usage(stdout);
		jail_args_free(&j.args);
		return 0;
	}
	for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
		if (steps[i].run(&j) < 0) {
			fprintf(stderr, "kiln-jailer: %s: %s\n", steps[i].name, j.err);
			close_fds(&j, false);
			jail_elf_deps_free(&j.libs);
			jail_args_free(&j.args);
			return 1;
		}
	}
	close_fds(&j, true);
	jail_elf_deps_free(&j.libs);
	if (j.args.daemonize && daemonize(&j) < 0) {
		fprintf(stderr, "kiln-jailer: daemonizing: %s\n", j.err);
		ret = 1;
	} else if (j.args.new_pid_ns) {
		ret = run_in_pid_ns(&j);
	} else {
		ret = exec_jailed(&j, 0);
	}
	jail_args_free(&j.args);
	return ret;
}
