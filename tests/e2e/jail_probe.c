/*
 * A static program that kiln-jailer's isolation scenarios jail in kiln's place: it reports
 * what it can see and do from inside, one "jail_probe: KEY VALUE" line each, and exits 0.
 * usage: jail_probe [--id=ID] [--open PATH]... [--kill PID]...  (--kill sends SIGTERM)
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

extern char **environ;

static const char *errno_name(int e)
{
	switch (e) {
	case 0:
		return "ok";
	case ENOENT:
		return "ENOENT";
	case ESRCH:
		return "ESRCH";
	case EPERM:
		return "EPERM";
	case EACCES:
		return "EACCES";
	default:
		return strerror(e);
	}
}

/* The effective capabilities (low and high words), 0 when none. */
static unsigned long long effective_caps(void)
{
	struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct d[2];

	memset(d, 0, sizeof(d));
	if (syscall(SYS_capget, &h, d) < 0)
		return ~0ULL;
	return ((unsigned long long)d[1].effective << 32) | d[0].effective;
}

/* How many capabilities the bounding set still holds. */
static int bounding_caps(void)
{
	int n = 0;

	for (int cap = 0; prctl(PR_CAPBSET_READ, cap, 0, 0, 0) >= 0; cap++)
		n += prctl(PR_CAPBSET_READ, cap, 0, 0, 0) == 1;
	return n;
}

/* Open descriptors above stderr: the jailer should have left none. */
static int open_fds(void)
{
	int n = 0;

	for (int fd = 3; fd < 1024; fd++)
		if (fcntl(fd, F_GETFD) != -1)
			n++;
	return n;
}

static void list_root(void)
{
	DIR *d = opendir("/");
	struct dirent *e;

	printf("jail_probe: root");
	while (d && (e = readdir(d)))
		if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
			printf(" %s", e->d_name);
	printf("\n");
	if (d)
		closedir(d);
}

int main(int argc, char **argv)
{
	struct rlimit rl = { 0, 0 };
	size_t nenv = 0;
	gid_t groups[64];
	int ngroups = getgroups(64, groups);

	while (environ && environ[nenv])
		nenv++;
	getrlimit(RLIMIT_NOFILE, &rl);
	printf("jail_probe: pid %d\n", (int)getpid());
	printf("jail_probe: uid %d %d gid %d %d groups %d\n", (int)getuid(), (int)geteuid(),
	       (int)getgid(), (int)getegid(), ngroups);
	printf("jail_probe: caps %#llx\n", effective_caps());
	printf("jail_probe: bounding %d\n", bounding_caps());
	printf("jail_probe: env %zu\n", nenv);
	printf("jail_probe: nofile %llu\n", (unsigned long long)rl.rlim_cur);
	printf("jail_probe: fds %d\n", open_fds());
	list_root();
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--open") == 0 && i + 1 < argc) {
			FILE *f = fopen(argv[++i], "r");

			printf("jail_probe: open %s %s\n", argv[i], errno_name(f ? 0 : errno));
			if (f)
				fclose(f);
		} else if (strcmp(argv[i], "--kill") == 0 && i + 1 < argc) {
			pid_t pid = (pid_t)atoi(argv[++i]);
			int r = kill(pid, SIGTERM);

			printf("jail_probe: kill %d %s\n", (int)pid, errno_name(r == 0 ? 0 : errno));
		} else if (strncmp(argv[i], "--id=", 5) == 0) {
			printf("jail_probe: id %s\n", argv[i] + 5);
		}
	}
	return 0;
}
