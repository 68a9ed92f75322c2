/* kiln-agent: PID 1 of kiln's test guests; runs the test named by kiln.test= on the kernel
 * command line, prints one KILN-RESULT line and reboots the VM. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <net/if.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"

/*
 * MemTotal is the RAM the guest was given minus what the kernel keeps before the page
 * allocator starts and never frees: its image (text, data, bss), the struct page array (64
 * bytes per 4 KiB page, 1.6% of RAM), the first MiB on x86, early page tables and, above
 * 4 GiB, 64 MiB of swiotlb. Measured with configs/guest-kernel-x86_64-6.1.config (6.1.192):
 * 128 MiB of RAM gives 106488 KiB (81%), 256 MiB 235496 KiB (90%), 1 GiB 1008312 KiB (96%),
 * i.e. ~22 MiB plus 1.6% short, so 90% is too tight for small guests. (Debian's generic 6.1
 * kernel, with a far bigger image, shows 81672 KiB at 128 MiB; the tests never boot it.)
 * The floor is RAM minus 32 MiB minus 4%: ~13 MiB of headroom at 128 MiB, and a guest given
 * half its RAM still fails whenever RAM >= 70 MiB; MemTotal never exceeds RAM, so the ceiling
 * catches double.
 */
#define MEM_SLACK_KIB (32u * 1024)
#define MEM_SLACK_PERCENT 4u

static void result_add(struct result *r, const char *fmt, va_list ap)
{
	size_t len = strlen(r->detail);

	if (len > 0 && len < sizeof(r->detail) - 2) {
		strcpy(r->detail + len, "; ");
		len += 2;
	}
	if (len < sizeof(r->detail))
		vsnprintf(r->detail + len, sizeof(r->detail) - len, fmt, ap);
}

__attribute__((format(printf, 2, 3)))
void result_fail(struct result *r, const char *fmt, ...)
{
	va_list ap;

	if (r->pass) {
		r->pass = false;
		r->detail[0] = '\0';
	}
	va_start(ap, fmt);
	result_add(r, fmt, ap);
	va_end(ap);
}

__attribute__((format(printf, 2, 3)))
void result_note(struct result *r, const char *fmt, ...)
{
	va_list ap;

	if (!r->pass)
		return;
	va_start(ap, fmt);
	result_add(r, fmt, ap);
	va_end(ap);
}

uint32_t crc32_update(uint32_t crc, const uint8_t *p, size_t n)
{
	static uint32_t table[256];
	uint32_t c = ~crc;

	if (!table[1]) {
		for (uint32_t i = 0; i < 256; i++) {
			uint32_t v = i;

			for (int k = 0; k < 8; k++)
				v = v & 1 ? 0xedb88320u ^ (v >> 1) : v >> 1;
			table[i] = v;
		}
	}
	for (size_t i = 0; i < n; i++)
		c = table[(c ^ p[i]) & 0xff] ^ (c >> 8);
	return ~c;
}

/* Reads up to size - 1 bytes of path into buf, NUL-terminated; returns the length or -errno. */
ssize_t read_text(const char *path, char *buf, size_t size)
{
	size_t len = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	while (len < size - 1) {
		ssize_t n = read(fd, buf + len, size - 1 - len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int err = errno;

			close(fd);
			return -err;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	buf[len] = '\0';
	return (ssize_t)len;
}

/* Copies the value of kiln.KEY=VALUE from the command line into val; the last one wins. */
bool param_get(const struct agent *a, const char *key, char *val, size_t size)
{
	char prefix[64];
	const char *p = a->cmdline;
	bool found = false;
	int plen = snprintf(prefix, sizeof(prefix), "kiln.%s=", key);

	while (*p) {
		size_t wlen;

		p += strspn(p, " \t\n");
		wlen = strcspn(p, " \t\n");
		if (wlen > (size_t)plen && strncmp(p, prefix, (size_t)plen) == 0) {
			snprintf(val, size, "%.*s", (int)(wlen - (size_t)plen), p + plen);
			found = true;
		}
		p += wlen;
	}
	return found;
}

/* Returns 1 with *out set, 0 when kiln.KEY is absent, -EINVAL when it is not a number. */
int param_ulong(const struct agent *a, const char *key, unsigned long *out)
{
	char val[32], *end;

	if (!param_get(a, key, val, sizeof(val)))
		return 0;
	errno = 0;
	*out = strtoul(val, &end, 10);
	if (errno || end == val || *end || val[0] == '-')
		return -EINVAL;
	return 1;
}

static int count_cpus(void)
{
	char line[256];
	int n = 0;
	FILE *f = fopen("/proc/cpuinfo", "re");

	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f))
		if (strncmp(line, "processor", 9) == 0 && strchr(" \t:", line[9]))
			n++;
	fclose(f);
	return n;
}

static long mem_total_kib(void)
{
	char buf[4096], *p;
	ssize_t n = read_text("/proc/meminfo", buf, sizeof(buf));

	if (n < 0)
		return n;
	p = strstr(buf, "MemTotal:");
	if (!p)
		return -ENOENT;
	return strtol(p + strlen("MemTotal:"), NULL, 10);
}

static void test_boot(const struct agent *a, struct result *r)
{
	unsigned long want_cpus, want_mib, hugepages;
	int cpus = count_cpus();
	long kib = mem_total_kib();
	int rc;

	if (cpus < 0)
		result_fail(r, "cannot read /proc/cpuinfo: %s", strerror(-cpus));
	if (kib < 0)
		result_fail(r, "cannot read MemTotal from /proc/meminfo: %s", strerror((int)-kib));

	rc = param_ulong(a, "expect_cpus", &want_cpus);
	if (rc < 0)
		result_fail(r, "kiln.expect_cpus is not a number");
	else if (rc > 0 && cpus >= 0 && (unsigned long)cpus != want_cpus)
		result_fail(r, "cpus=%d expected %lu", cpus, want_cpus);

	rc = param_ulong(a, "expect_mem_mib", &want_mib);
	if (rc < 0) {
		result_fail(r, "kiln.expect_mem_mib is not a number");
	} else if (rc > 0 && kib >= 0) {
		unsigned long max = want_mib * 1024;
		unsigned long slack = MEM_SLACK_KIB + max / 100 * MEM_SLACK_PERCENT;
		unsigned long min = max > slack ? max - slack : 0;

		if ((unsigned long)kib < min || (unsigned long)kib > max)
			result_fail(r, "mem_kib=%ld outside [%lu, %lu] for %lu MiB", kib, min, max,
				    want_mib);
	}

	/* How guest RAM is backed is invisible from inside; the host side checks hugepages. */
	if (param_ulong(a, "expect_hugepages", &hugepages) < 0)
		result_fail(r, "kiln.expect_hugepages is not a number");

	result_note(r, "cpus=%d mem_kib=%ld", cpus, kib);
}

static void test_hello(const struct agent *a, struct result *r)
{
	struct utsname u;
	char up[64] = "?";
	int cpus = count_cpus();
	long kib = mem_total_kib();

	(void)a;
	if (uname(&u) != 0) {
		result_fail(r, "uname: %s", strerror(errno));
		return;
	}
	if (read_text("/proc/uptime", up, sizeof(up)) > 0)
		up[strcspn(up, " \n")] = '\0';
	printf("\n"
	       "     _    _ _\n"
	       "    | | _(_) |_ __\n"
	       "    | |/ / | | '_ \\\n"
	       "    |   <| | | | | |\n"
	       "    |_|\\_\\_|_|_| |_|\n"
	       "\n"
	       "    Hello from a kiln microVM!\n"
	       "\n"
	       "    kernel   %s %s %s\n"
	       "    cpus     %d\n"
	       "    memory   %ld KiB (%.1f MiB)\n"
	       "    uptime   %s s\n"
	       "\n",
	       u.sysname, u.release, u.machine, cpus, kib, (double)kib / 1024.0, up);
	if (cpus < 0 || kib < 0)
		result_fail(r, "cannot read /proc/cpuinfo or /proc/meminfo");
}

/* Puts the shell on the real console device so it gets a controlling tty (job control and
 * ^C work); /dev/console itself can never be one. */
static void shell_exec(void)
{
	char active[128], tty[160] = "/dev/console";
	const char *term = getenv("TERM");
	char term_env[64];
	char *argv[] = { "sh", NULL };
	char *envp[] = { "PATH=/bin:/sbin:/usr/bin:/usr/sbin", "HOME=/root", "PS1=kiln:\\w# ",
			 term_env, NULL };
	int fd;

	if (read_text("/sys/class/tty/console/active", active, sizeof(active)) > 0) {
		char *last = strrchr(active, ' ');

		last = last ? last + 1 : active;
		last[strcspn(last, "\n")] = '\0';
		if (*last)
			snprintf(tty, sizeof(tty), "/dev/%s", last);
	}
	snprintf(term_env, sizeof(term_env), "TERM=%s", term ? term : "linux");
	setsid();
	fd = open(tty, O_RDWR);
	if (fd < 0)
		fd = open("/dev/console", O_RDWR);
	if (fd >= 0) {
		ioctl(fd, TIOCSCTTY, 1);
		dup2(fd, 0);
		dup2(fd, 1);
		dup2(fd, 2);
		if (fd > 2)
			close(fd);
	}
	if (chdir("/root") != 0 && chdir("/") != 0)
		_exit(127);
	execve(BUSYBOX, argv, envp);
	fprintf(stderr, "kiln-agent: exec %s: %s\n", BUSYBOX, strerror(errno));
	_exit(127);
}

/*
 * Runs the shell and waits for it, reaping orphans meanwhile. busybox's reboot, poweroff
 * and halt signal PID 1 (SIGTERM, SIGUSR2, SIGUSR1): all three end the VM with a reboot,
 * which is how the VMM learns the guest is done.
 */
static void test_shell(const struct agent *a, struct result *r)
{
	sigset_t mask, old;
	pid_t pid;

	(void)a;
	if (access(BUSYBOX, X_OK) != 0) {
		result_fail(r, "%s is missing: the shell needs busybox in the image", BUSYBOX);
		return;
	}
	sigemptyset(&mask);
	sigaddset(&mask, SIGCHLD);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGUSR1);
	sigaddset(&mask, SIGUSR2);
	sigprocmask(SIG_BLOCK, &mask, &old);
	printf("kiln-agent: starting busybox sh; exit or reboot stops the VM\n");
	fflush(stdout);
	pid = fork();
	if (pid < 0) {
		result_fail(r, "fork: %s", strerror(errno));
		sigprocmask(SIG_SETMASK, &old, NULL);
		return;
	}
	if (pid == 0) {
		sigprocmask(SIG_SETMASK, &old, NULL);
		shell_exec();
	}
	for (;;) {
		int sig = sigwaitinfo(&mask, NULL), status;
		pid_t w;

		if (sig < 0)
			continue;
		if (sig != SIGCHLD) {
			result_note(r, "%s requested", sig == SIGTERM ? "reboot" : "power-off");
			break;
		}
		while ((w = waitpid(-1, &status, WNOHANG)) > 0)
			if (w == pid)
				break;
		if (w == pid) {
			result_note(r, "shell exited with status %d",
				    WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
			break;
		}
	}
	sigprocmask(SIG_SETMASK, &old, NULL);
}

/*
 * Prints "kiln-tick N MS" (N counts up, MS is CLOCK_MONOTONIC) every 200 ms of guest time until
 * Ctrl+Alt+Del arrives, which passes the test and reboots; kiln.ticks=N (default 1500, 5 min)
 * bounds the wait. With Ctrl+Alt+Del switched to signalling PID 1, the kernel sends it SIGINT
 * instead of rebooting on its own: this is init treating it as a reboot request.
 */
static void test_ticker(const struct agent *a, struct result *r)
{
	struct timespec period = { 0, 200 * 1000 * 1000 }, now;
	char limit_text[16] = "1500";
	long limit, n;
	sigset_t mask;

	param_get(a, "ticks", limit_text, sizeof(limit_text));
	limit = strtol(limit_text, NULL, 10);
	sigemptyset(&mask);
	sigaddset(&mask, SIGINT);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	if (a->pid1 && reboot(RB_DISABLE_CAD) != 0) {
		result_fail(r, "reboot(RB_DISABLE_CAD): %s", strerror(errno));
		return;
	}
	for (n = 0; n < limit; n++) {
		clock_gettime(CLOCK_MONOTONIC, &now);
		printf("kiln-tick %ld %lld\n", n, (long long)now.tv_sec * 1000 + now.tv_nsec / 1000000);
		if (sigtimedwait(&mask, NULL, &period) == SIGINT) {
			printf("kiln-agent: ctrl-alt-del: rebooting\n");
			result_note(r, "ctrl-alt-del after %ld ticks", n + 1);
			return;
		}
	}
	result_fail(r, "no ctrl-alt-del in %ld ticks", limit);
}

static const struct test tests[] = {
	{ "boot", test_boot },
	{ "ticker", test_ticker },
	{ "hello", test_hello },
	{ "shell", test_shell },
	{ "blk", test_blk },
	{ "rng", test_rng },
	{ "blkbench", test_blkbench },
	{ "net", test_net },
	{ "vsock", test_vsock },
	{ "poison", test_poison },
	{ "snapshot", test_snapshot },
	{ "hostile-mmio", test_hostile_mmio },
	{ "hostile-virtq", test_hostile_virtq },
};

/* Mounts fs on target unless something is mounted there already (e.g. devtmpfs when the
 * kernel booted from a disk with CONFIG_DEVTMPFS_MOUNT). */
static int mount_once(const char *fs, const char *target, unsigned long flags, const char *data)
{
	char parent[64];
	struct stat st, pst;

	if (mkdir(target, 0755) != 0 && errno != EEXIST)
		return -errno;
	snprintf(parent, sizeof(parent), "%s/..", target);
	if (stat(target, &st) == 0 && stat(parent, &pst) == 0 && st.st_dev != pst.st_dev)
		return 0;
	if (mount(fs, target, fs, flags, data) != 0)
		return -errno;
	return 0;
}

static int setup_system(struct result *r)
{
	static const struct {
		const char *fs, *target;
		unsigned long flags;
		const char *data;
	} mounts[] = {
		{ "proc", "/proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL },
		{ "sysfs", "/sys", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL },
		{ "devtmpfs", "/dev", MS_NOSUID, "mode=0755" },
		{ "tmpfs", "/tmp", MS_NOSUID | MS_NODEV, "mode=1777" },
	};
	size_t i;
	int fd, con;

	for (i = 0; i < sizeof(mounts) / sizeof(mounts[0]); i++) {
		int rc = mount_once(mounts[i].fs, mounts[i].target, mounts[i].flags, mounts[i].data);

		if (rc < 0) {
			result_fail(r, "mount %s on %s: %s", mounts[i].fs, mounts[i].target,
				    strerror(-rc));
			return rc;
		}
	}
	/* The tests name pages by their guest-physical address: compaction must not move the
	 * mlocked ones elsewhere (it may by default). */
	fd = open("/proc/sys/vm/compact_unevictable_allowed", O_WRONLY | O_CLOEXEC);
	if (fd >= 0) {
		if (write(fd, "0\n", 2) != 2)
			result_note(r, "compact_unevictable_allowed stays 1");
		close(fd);
	}
	for (fd = 0; fd <= 2; fd++) {
		if (fcntl(fd, F_GETFD) >= 0)
			continue;
		con = open("/dev/console", O_RDWR | O_NOCTTY);
		if (con < 0) {
			int err = errno;

			result_fail(r, "open /dev/console: %s", strerror(err));
			return -err;
		}
		if (con != fd) {
			dup2(con, fd);
			close(con);
		}
	}
	return 0;
}

__attribute__((noreturn))
static void finish(const struct agent *a, const char *name, const struct result *r)
{
	printf("KILN-RESULT %s %s%s%s\n", name, r->pass ? "PASS" : "FAIL", r->detail[0] ? " " : "",
	       r->detail);
	fflush(stdout);
	if (!a->pid1)
		exit(r->pass ? 0 : 1);
	printf("kiln-agent: rebooting\n");
	fflush(stdout);
	sync();
	reboot(RB_AUTOBOOT);
	/* Exiting PID 1 panics the kernel, and panic=N reboots it: still never a hang. */
	fprintf(stderr, "kiln-agent: reboot: %s\n", strerror(errno));
	exit(1);
}

/*
 * As PID 1 it sets the system up and reads /proc/cmdline. Run as any other process (on the
 * host, to try a test) it touches no mounts, takes the command line from its arguments and
 * exits instead of rebooting.
 */
/*
 * Tells the VMM's boot timer (Firecracker's convention, kiln --boot-timer) that init is up:
 * one byte, 123, written to MMIO 0xd0000000. Elsewhere the write lands nowhere and is harmless.
 */
static void signal_boot_timer(void)
{
	volatile uint8_t *p;
	int fd = open("/dev/mem", O_RDWR | O_SYNC | O_CLOEXEC);

	if (fd < 0)
		return;
	p = mmap(NULL, 4096, PROT_WRITE, MAP_SHARED, fd, 0xd0000000);
	if (p != MAP_FAILED) {
		*p = 123;
		munmap((void *)p, 4096);
	}
	close(fd);
}

int main(int argc, char **argv)
{
	struct agent a = { .pid1 = getpid() == 1 };
	struct result r = { .pass = true };
	char name[64] = "boot";
	size_t i;

	if (a.pid1)
		setup_system(&r);
	setvbuf(stdout, NULL, _IOLBF, 0);
	snprintf(a.uptime_at_init, sizeof(a.uptime_at_init), "?");
	if (read_text("/proc/uptime", a.uptime_at_init, sizeof(a.uptime_at_init)) > 0)
		a.uptime_at_init[strcspn(a.uptime_at_init, " \n")] = '\0';
	if (a.pid1)
		signal_boot_timer();
	printf("kiln-agent: up\n");
	printf("kiln-agent: uptime-at-init=%s\n", a.uptime_at_init);

	if (a.pid1) {
		ssize_t n = read_text("/proc/cmdline", a.cmdline, sizeof(a.cmdline));

		if (n < 0 && r.pass)
			result_fail(&r, "cannot read /proc/cmdline: %s", strerror((int)-n));
	} else {
		for (int k = 1; k < argc; k++) {
			size_t len = strlen(a.cmdline);

			snprintf(a.cmdline + len, sizeof(a.cmdline) - len, "%s ", argv[k]);
		}
	}
	param_get(&a, "test", name, sizeof(name));
	if (!r.pass)
		finish(&a, name, &r);

	for (i = 0; i < sizeof(tests) / sizeof(tests[0]); i++) {
		if (strcmp(tests[i].name, name) == 0) {
			tests[i].run(&a, &r);
			break;
		}
	}
	if (i == sizeof(tests) / sizeof(tests[0]))
		result_fail(&r, "unknown test (kiln.test=%s)", name);
	finish(&a, name, &r);
}

/* In read_in_child's child: reports the SIGBUS and ends with AGENT_EXIT_SIGBUS_BASE + si_code. */
static void child_sigbus(int sig, siginfo_t *si, void *ctx)
{
	char line[128];
	int n;

	(void)sig;
	(void)ctx;
	n = snprintf(line, sizeof(line),
		     "kiln-agent: reader got SIGBUS si_code=%d%s addr=%p addr_lsb=%d\n",
		     si->si_code, si->si_code == BUS_MCEERR_AR ? " (BUS_MCEERR_AR)" : "",
		     si->si_addr, (int)si->si_addr_lsb);
	if (n > 0 && write(STDOUT_FILENO, line, (size_t)n) < 0)
		n = 0;
	_exit(AGENT_EXIT_SIGBUS_BASE + si->si_code);
}

int read_in_child(const volatile uint8_t *buf, size_t len, int expect)
{
	int status;
	pid_t pid = fork();

	if (pid < 0)
		return -1;
	if (pid == 0) {
		struct sigaction sa = { .sa_sigaction = child_sigbus, .sa_flags = SA_SIGINFO };

		sigemptyset(&sa.sa_mask);
		sigaction(SIGBUS, &sa, NULL);
		for (size_t off = 0; off < len; off += 4096) {
			uint8_t first = buf[off], last = buf[off + 4095];

			if (expect >= 0 && (first != expect || last != expect))
				_exit(AGENT_EXIT_CORRUPT);
		}
		_exit(0);
	}
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -1;
	return status;
}

int guest_phys(const void *p, uint64_t *gpa)
{
	uint64_t entry = 0;
	int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC), ret = 0;

	if (fd < 0)
		return -errno;
	if (pread(fd, &entry, sizeof(entry), (off_t)((uintptr_t)p / 4096 * sizeof(entry))) !=
	    (ssize_t)sizeof(entry))
		ret = -EIO;
	close(fd);
	if (ret == 0 && (!(entry >> 63) || !(entry & ((1ull << 55) - 1))))
		ret = -ENOENT;
	if (ret == 0)
		*gpa = (entry & ((1ull << 55) - 1)) * 4096;
	return ret;
}

int reserve_hugepages(unsigned count)
{
	char text[16];
	int n = snprintf(text, sizeof(text), "%u\n", count);
	int fd = open("/proc/sys/vm/nr_hugepages", O_WRONLY | O_CLOEXEC);
	ssize_t w;

	if (fd < 0)
		return -errno;
	w = write(fd, text, (size_t)n);
	close(fd);
	return w == n ? 0 : -EIO;
}

/* The first network interface that is not loopback, into name. */
int agent_find_iface(char *name, size_t size)
{
	DIR *d = opendir("/sys/class/net");
	struct dirent *e;
	int ret = -ENODEV;

	if (!d)
		return -errno;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.' || !strcmp(e->d_name, "lo") || strlen(e->d_name) >= size)
			continue;
		memcpy(name, e->d_name, strlen(e->d_name) + 1);
		ret = 0;
		break;
	}
	closedir(d);
	return ret;
}

static int if_up(int s, const char *ifname)
{
	struct ifreq ifr = { 0 };

	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", ifname);
	if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0)
		return -1;
	ifr.ifr_flags |= IFF_UP;
	return ioctl(s, SIOCSIFFLAGS, &ifr);
}

/* agent.h: setting the address the interface has already is no change. */
int agent_if_config(const char *ifname, const char *cidr, char *why, size_t size)
{
	struct ifreq ifr = { 0 };
	struct sockaddr_in *sin = (struct sockaddr_in *)&ifr.ifr_addr;
	const char *slash = strchr(cidr, '/');
	unsigned long prefix = slash ? strtoul(slash + 1, NULL, 10) : 32;
	char addr[32];
	int s, ret = -1;

	snprintf(addr, sizeof(addr), "%.*s", slash ? (int)(slash - cidr) : (int)strlen(cidr), cidr);
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", ifname);
	sin->sin_family = AF_INET;
	if (prefix > 32 || inet_pton(AF_INET, addr, &sin->sin_addr) != 1) {
		snprintf(why, size, "%s is not ADDR/PREFIX", cidr);
		return -1;
	}
	s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (s < 0) {
		snprintf(why, size, "socket: %s", strerror(errno));
		return -1;
	}
	if (ioctl(s, SIOCSIFADDR, &ifr) < 0) {
		snprintf(why, size, "SIOCSIFADDR %s on %s: %s", addr, ifname, strerror(errno));
	} else {
		sin->sin_addr.s_addr = htonl(prefix ? 0xffffffffu << (32 - prefix) : 0);
		if (ioctl(s, SIOCSIFNETMASK, &ifr) < 0 || if_up(s, "lo") < 0 ||
		    if_up(s, ifname) < 0)
			snprintf(why, size, "bringing %s up: %s", ifname, strerror(errno));
		else
			ret = 0;
	}
	close(s);
	return ret;
}
