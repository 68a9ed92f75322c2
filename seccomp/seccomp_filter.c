/* Installing and printing the per-thread seccomp filters; the SIGSYS handler. */
#include "seccomp_filter.h"

#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <seccomp.h>

/*
 * How the filters stack. A seccomp filter applies to the thread that loads it and to every
 * thread that thread creates afterwards; a thread under several filters gets a call through
 * only if all of them allow it. kiln's order:
 *
 *   1. main, after reading its options and configuration and before anything a client or the
 *      guest sends: loads the main filter (vmm/main.c). From here on every thread kiln creates
 *      is born filtered.
 *   2. main creates libmicrohttpd's thread (api_open), which inherits the main filter; the
 *      first time it accepts a connection, before reading a byte of it, it loads the API filter
 *      (vmm/api_server.c, through the hook vmm/main.c gives api_open).
 *   3. at InstanceStart main builds the VM under its own filter and creates the vCPU threads;
 *      each sets its signal mask for KVM_RUN and loads the vCPU filter before its first
 *      KVM_RUN (vmm/vcpu.c).
 *   4. on a lazy restore (and a migrate-in), main creates the uffd thread before any vCPU
 *      runs (main-running may not create threads); it names itself and loads the uffd filter
 *      before serving a page (migration/uffd_server.c), and lives on after step 5.
 *   5. once the vCPU threads exist, main loads a second filter on itself, main-running, which
 *      drops what only building needed (creating the VM, vCPUs and threads, io_uring rings,
 *      TAP setup, ...) (vmm/vm.c, vm_start). Threads already created keep what they had.
 *
 * So an API, vCPU or uffd thread runs under main ∩ its own, and the main thread, once the guest
 * runs, under main ∩ main-running. The main filter is therefore the union of every rule
 * (seccomp_rules.c marks each rule's kinds, and tests/unit/test_seccomp.c checks the union),
 * and the effective policy of every other kind is exactly its own list. The main filter also
 * allows what a new thread does before loading its own (set_robust_list, rseq,
 * prctl(PR_SET_NAME), KVM_SET_SIGNAL_MASK, seccomp itself).
 *
 * Until its first connection the API thread has only the main filter, and does nothing but
 * wait in epoll_wait and accept4. A filter that cannot be loaded stops what it guards: main
 * exits 1, a vCPU thread stops the VM, the API thread closes each connection unread, the uffd
 * thread ends before serving a page and the restore fails.
 *
 * A call outside the list raises SIGSYS (SCMP_ACT_TRAP): the handler writes the thread's
 * name and the syscall's number to stderr and exits 148, Firecracker's code for a bad syscall.
 * A few calls are refused with an errno instead (clone3: ENOSYS, so that glibc uses clone).
 * io_uring requests never reach seccomp: virtio-blk restricts its rings instead
 * (devices/virtio/blk.c, start_ring).
 */

static const char *const thread_names[SECCOMP_NR_THREADS] = {
	[SECCOMP_MAIN] = "main",
	[SECCOMP_MAIN_RUNNING] = "main-running",
	[SECCOMP_API] = "api",
	[SECCOMP_VCPU] = "vcpu",
	[SECCOMP_UFFD] = "uffd",
};

static const char *const thread_what[SECCOMP_NR_THREADS] = {
	[SECCOMP_MAIN] = "the main thread (event loop, VM build) until the vCPUs run",
	[SECCOMP_MAIN_RUNNING] = "the main thread once the vCPUs run",
	[SECCOMP_API] = "the API thread (libmicrohttpd's)",
	[SECCOMP_VCPU] = "each vCPU thread",
	[SECCOMP_UFFD] = "the uffd thread (lazy restore and migrate-in: serves guest RAM's page "
			 "faults)",
};

const char *seccomp_filter_thread_name(enum seccomp_thread t)
{
	return (unsigned)t < SECCOMP_NR_THREADS ? thread_names[t] : NULL;
}

int seccomp_filter_thread_parse(const char *name)
{
	for (unsigned t = 0; t < SECCOMP_NR_THREADS; t++)
		if (strcmp(name, thread_names[t]) == 0)
			return (int)t;
	return -1;
}

void seccomp_filter_count(enum seccomp_thread t, unsigned *nr_rules, unsigned *nr_syscalls)
{
	unsigned n;
	const struct seccomp_rule *r = seccomp_rules(&n);

	*nr_rules = *nr_syscalls = 0;
	for (unsigned i = 0; i < n; i++) {
		bool seen = false;

		if (!(r[i].threads & SECCOMP_BIT(t)) || r[i].fail_errno)
			continue;
		(*nr_rules)++;
		for (unsigned j = 0; j < i && !seen; j++)
			seen = (r[j].threads & SECCOMP_BIT(t)) && !r[j].fail_errno &&
			       strcmp(r[j].syscall, r[i].syscall) == 0;
		if (!seen)
			(*nr_syscalls)++;
	}
}

/* Appends s to buf (of size len) at *at; async-signal-safe. */
static void put(char *buf, size_t len, size_t *at, const char *s)
{
	while (*s && *at + 1 < len)
		buf[(*at)++] = *s++;
}

static void put_int(char *buf, size_t len, size_t *at, long v)
{
	char digits[24];
	size_t n = 0;
	unsigned long u = v < 0 ? -(unsigned long)v : (unsigned long)v;

	do
		digits[n++] = (char)('0' + u % 10);
	while ((u /= 10) && n < sizeof(digits));
	if (v < 0)
		put(buf, len, at, "-");
	while (n > 0 && *at + 1 < len)
		buf[(*at)++] = digits[--n];
}

/* Runs on the thread that made the forbidden call, under its filter: write, prctl and
 * exit_group are allowed to every kind. */
static void on_sigsys(int sig, siginfo_t *si, void *ctx)
{
	char msg[256], name[17] = { 0 };
	size_t at = 0;

	(void)sig;
	(void)ctx;
	if (prctl(PR_GET_NAME, name) < 0)
		name[0] = '?';
	put(msg, sizeof(msg), &at, "kiln: seccomp: thread ");
	put(msg, sizeof(msg), &at, name);
	put(msg, sizeof(msg), &at, " made system call ");
	put_int(msg, sizeof(msg), &at, si->si_syscall);
	put(msg, sizeof(msg), &at, ", which its filter does not allow (kiln --print-seccomp "
				   "THREAD lists what each thread may call); exiting\n");
	if (write(STDERR_FILENO, msg, at) < 0) {
		/* nowhere else to say it */
	}
	/* exit_group itself, not _exit, which a sanitizer's runtime would wrap in more calls. */
	syscall(SYS_exit_group, SECCOMP_EXIT_BAD_SYSCALL);
}

static int add_rule(scmp_filter_ctx ctx, const struct seccomp_rule *r)
{
	int nr = seccomp_syscall_resolve_name(r->syscall);
	uint32_t action = r->fail_errno ? SCMP_ACT_ERRNO((uint32_t)r->fail_errno) : SCMP_ACT_ALLOW;

	if (nr == __NR_SCMP_ERROR)
		return -ENOSYS;
	if (r->op == SC_EQ)
		return seccomp_rule_add(ctx, action, nr, 1,
					SCMP_CMP(r->arg, SCMP_CMP_EQ, r->value));
	if (r->op == SC_MASKED_EQ)
		return seccomp_rule_add(ctx, action, nr, 1,
					SCMP_CMP(r->arg, SCMP_CMP_MASKED_EQ, r->mask, r->value));
	return seccomp_rule_add(ctx, action, nr, 0);
}

int seccomp_filter_install(enum seccomp_thread t)
{
	struct sigaction sa = { .sa_sigaction = on_sigsys, .sa_flags = SA_SIGINFO };
	const struct seccomp_rule *r;
	scmp_filter_ctx ctx;
	unsigned n;
	int ret = 0;

	if ((unsigned)t >= SECCOMP_NR_THREADS)
		return -EINVAL;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGSYS, &sa, NULL) < 0)
		return -errno;
	/* glibc reads /etc/localtime on the first gmtime_r (log lines): do it while open is still
	 * allowed, so that no thread needs it later. */
	if (t == SECCOMP_MAIN)
		tzset();
	ctx = seccomp_init(SCMP_ACT_TRAP);
	if (!ctx)
		return -ENOMEM;
	r = seccomp_rules(&n);
	for (unsigned i = 0; i < n && ret == 0; i++)
		if (r[i].threads & SECCOMP_BIT(t))
			ret = add_rule(ctx, &r[i]);
	if (ret == 0)
		ret = seccomp_load(ctx);
	seccomp_release(ctx);
	return ret < 0 ? ret : 0;
}

int seccomp_filter_print(FILE *f, enum seccomp_thread t)
{
	const struct seccomp_rule *r;
	unsigned n, nr_rules, nr_syscalls;

	if ((unsigned)t >= SECCOMP_NR_THREADS)
		return -EINVAL;
	seccomp_filter_count(t, &nr_rules, &nr_syscalls);
	fprintf(f, "# kiln's seccomp filter \"%s\", for %s: %u syscalls allowed in %u rules.\n",
		thread_names[t], thread_what[t], nr_syscalls, nr_rules);
	if (t != SECCOMP_MAIN)
		fprintf(f, "# Loaded on top of the \"main\" filter, which allows all of these.\n");
	fprintf(f, "# Any other call: SIGSYS, kiln names the call on stderr and exits %d.\n",
		SECCOMP_EXIT_BAD_SYSCALL);
	r = seccomp_rules(&n);
	for (unsigned i = 0; i < n; i++) {
		char cond[80] = "";

		if (!(r[i].threads & SECCOMP_BIT(t)))
			continue;
		if (r[i].fail_errno)
			snprintf(cond, sizeof(cond), "fails with %s", strerrorname_np(r[i].fail_errno));
		else if (r[i].op == SC_EQ)
			snprintf(cond, sizeof(cond), "arg%u == %s", r[i].arg, r[i].arg_text);
		else if (r[i].op == SC_MASKED_EQ)
			snprintf(cond, sizeof(cond), "arg%u: %s", r[i].arg, r[i].arg_text);
		if (fprintf(f, "%-18s %-38s %s\n", r[i].syscall, cond, r[i].why) < 0)
			return -EIO;
	}
	return fflush(f) == 0 ? 0 : -errno;
}
