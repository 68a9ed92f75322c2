/* Unit tests for seccomp/: the rule table's invariants, and each thread kind's filter really
 * stopping a forbidden call (in a child process, so that the suite goes on). */
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <seccomp.h> /* libseccomp's */

#include "seccomp_filter.h"
#include "uffd_compat.h"

#define M SECCOMP_BIT(SECCOMP_MAIN)
#define R SECCOMP_BIT(SECCOMP_MAIN_RUNNING)
#define A SECCOMP_BIT(SECCOMP_API)
#define V SECCOMP_BIT(SECCOMP_VCPU)
#define U SECCOMP_BIT(SECCOMP_UFFD)

/* What a child did: its wait status and what it wrote to stderr. */
struct outcome {
	int status;
	char err[512];
};

/* Runs fn in a child whose stderr is captured; fn's return value is the child's exit code. */
static struct outcome in_child(int (*fn)(void *), void *arg)
{
	struct outcome o = { 0 };
	int p[2];
	pid_t pid;
	ssize_t n;
	size_t got = 0;

	assert_int_equal(pipe(p), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(p[0]);
		dup2(p[1], STDERR_FILENO);
		_exit(fn(arg)); /* no atexit handlers (LeakSanitizer) under a filter */
	}
	close(p[1]);
	while ((n = read(p[0], o.err + got, sizeof(o.err) - 1 - got)) > 0)
		got += (size_t)n;
	close(p[0]);
	assert_int_equal(waitpid(pid, &o.status, 0), pid);
	return o;
}

/* The child was stopped by its filter, which named syscall nr. */
static void assert_killed_for(const struct outcome *o, long nr)
{
	char want[64];

	snprintf(want, sizeof(want), "made system call %ld,", nr);
	if (!WIFEXITED(o->status) || WEXITSTATUS(o->status) != SECCOMP_EXIT_BAD_SYSCALL ||
	    !strstr(o->err, want))
		fail_msg("expected exit %d naming syscall %ld; got status 0x%x, stderr: %s",
			 SECCOMP_EXIT_BAD_SYSCALL, nr, o->status, o->err);
}

static void assert_exited_ok(const struct outcome *o)
{
	if (!WIFEXITED(o->status) || WEXITSTATUS(o->status) != 0)
		fail_msg("expected exit 0; got status 0x%x, stderr: %s", o->status, o->err);
}

/* --- forbidden calls, one child each --- */

struct attempt {
	enum seccomp_thread kind;
	long nr;
	long a0, a1, a2;
};

static int attempt_call(void *arg)
{
	const struct attempt *t = arg;

	/* main-running is only ever loaded on top of main, as vm_start does. */
	if (t->kind == SECCOMP_MAIN_RUNNING && seccomp_filter_install(SECCOMP_MAIN) < 0)
		return 2;
	if (seccomp_filter_install(t->kind) < 0)
		return 2;
	syscall(t->nr, t->a0, t->a1, t->a2);
	return 0; /* the call went through: the test fails on exit 0 */
}

static void expect_killed(enum seccomp_thread kind, long nr, long a0, long a1, long a2)
{
	struct attempt t = { kind, nr, a0, a1, a2 };
	struct outcome o = in_child(attempt_call, &t);

	assert_killed_for(&o, nr);
	assert_non_null(strstr(o.err, "kiln: seccomp: thread "));
}

static void main_execve_killed(void **state)
{
	static char *const argv[] = { "/bin/true", NULL };

	(void)state;
	expect_killed(SECCOMP_MAIN, SYS_execve, (long)"/bin/true", (long)argv, 0);
}

static void main_ptrace_killed(void **state)
{
	(void)state;
	expect_killed(SECCOMP_MAIN, SYS_ptrace, 0 /* PTRACE_TRACEME */, 0, 0);
}

/* TCP is allowed for live migration; raw packets and netlink are not. */
static void main_packet_socket_killed(void **state)
{
	(void)state;
	expect_killed(SECCOMP_MAIN, SYS_socket, AF_PACKET, SOCK_RAW, 0);
	expect_killed(SECCOMP_MAIN, SYS_socket, AF_NETLINK, SOCK_RAW, 0);
}

static void main_fork_killed(void **state)
{
	(void)state;
	expect_killed(SECCOMP_MAIN, SYS_clone, SIGCHLD, 0, 0); /* fork(): no CLONE_THREAD */
}

static void main_unlisted_ioctl_killed(void **state)
{
	(void)state;
	expect_killed(SECCOMP_MAIN, SYS_ioctl, 0, FIONREAD, 0);
}

static void main_running_create_vm_killed(void **state)
{
	(void)state;
	expect_killed(SECCOMP_MAIN_RUNNING, SYS_ioctl, 0, KVM_CREATE_VM, 0);
}

static void main_running_io_uring_setup_killed(void **state)
{
	(void)state;
	expect_killed(SECCOMP_MAIN_RUNNING, SYS_io_uring_setup, 8, 0, 0);
}

static void main_running_thread_killed(void **state)
{
	(void)state;
	expect_killed(SECCOMP_MAIN_RUNNING, SYS_clone, 0x3d0f00 /* glibc's thread flags */, 0, 0);
}

static void api_kvm_ioctl_killed(void **state)
{
	(void)state;
	expect_killed(SECCOMP_API, SYS_ioctl, 0, KVM_CREATE_VM, 0);
}

static void api_open_killed(void **state)
{
	(void)state;
	expect_killed(SECCOMP_API, SYS_openat, AT_FDCWD, (long)"/etc/shadow", O_RDONLY);
}

static void api_socket_killed(void **state)
{
	(void)state;
	expect_killed(SECCOMP_API, SYS_socket, AF_UNIX, SOCK_STREAM, 0);
}

static void vcpu_unix_socket_killed(void **state)
{
	(void)state;
	expect_killed(SECCOMP_VCPU, SYS_socket, AF_UNIX, SOCK_STREAM, 0);
}

static void vcpu_open_killed(void **state)
{
	(void)state;
	expect_killed(SECCOMP_VCPU, SYS_openat, AT_FDCWD, (long)"/etc/shadow", O_RDONLY);
}

static void vcpu_execve_killed(void **state)
{
	static char *const argv[] = { "/bin/true", NULL };

	(void)state;
	expect_killed(SECCOMP_VCPU, SYS_execve, (long)"/bin/true", (long)argv, 0);
}

static void vcpu_create_vm_killed(void **state)
{
	(void)state;
	expect_killed(SECCOMP_VCPU, SYS_ioctl, 0, KVM_CREATE_VM, 0);
}

static void vcpu_exec_mapping_killed(void **state)
{
	(void)state;
	expect_killed(SECCOMP_VCPU, SYS_mmap, 0, 4096, 0x4 /* PROT_EXEC */);
}

static void uffd_open_killed(void **state)
{
	(void)state;
	expect_killed(SECCOMP_UFFD, SYS_openat, AT_FDCWD, (long)"/etc/shadow", O_RDONLY);
}

static void uffd_socket_killed(void **state)
{
	(void)state;
	expect_killed(SECCOMP_UFFD, SYS_socket, AF_UNIX, SOCK_STREAM, 0);
}

static void uffd_kvm_run_killed(void **state)
{
	(void)state;
	expect_killed(SECCOMP_UFFD, SYS_ioctl, 0, KVM_RUN, 0);
}

/* Registering more memory is the main thread's business; the uffd thread only serves it. */
static void uffd_register_killed(void **state)
{
	(void)state;
	expect_killed(SECCOMP_UFFD, SYS_ioctl, 0, UFFDIO_REGISTER, 0);
}

static void uffd_new_userfaultfd_killed(void **state)
{
	(void)state;
	expect_killed(SECCOMP_UFFD, SYS_userfaultfd, O_CLOEXEC, 0, 0);
}

/* --- allowed calls still work --- */

static int main_allowed(void *arg)
{
	int fd, efd;
	uint64_t one = 1;
	char buf[8];

	(void)arg;
	if (seccomp_filter_install(SECCOMP_MAIN) < 0)
		return 2;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return 3;
	close(fd);
	efd = eventfd(0, EFD_CLOEXEC);
	if (efd < 0 || write(efd, &one, 8) != 8 || read(efd, &one, 8) != 8)
		return 4;
	if (getrandom(buf, sizeof(buf), 0) != sizeof(buf))
		return 5;
	/* Refused, not fatal: glibc then falls back to clone. */
	if (syscall(SYS_clone3, NULL, 0) != -1 || errno != ENOSYS)
		return 6;
	return 0;
}

static void main_allowed_calls_work(void **state)
{
	struct outcome o = in_child(main_allowed, NULL);

	(void)state;
	assert_exited_ok(&o);
}

static int main_running_allowed(void *arg)
{
	int fd;

	(void)arg;
	if (seccomp_filter_install(SECCOMP_MAIN) < 0 ||
	    seccomp_filter_install(SECCOMP_MAIN_RUNNING) < 0)
		return 2;
	/* vsock's connections, GET /capabilities' KVM check: still allowed. */
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return 3;
	close(fd);
	if (ioctl(STDERR_FILENO, KVM_CHECK_EXTENSION, 0) != -1 || errno != ENOTTY)
		return 4;
	return 0;
}

static void main_running_allowed_calls_work(void **state)
{
	struct outcome o = in_child(main_running_allowed, NULL);

	(void)state;
	assert_exited_ok(&o);
}

static int api_allowed(void *arg)
{
	int efd = eventfd(0, EFD_CLOEXEC);
	uint64_t one = 1;
	void *p;

	(void)arg;
	if (efd < 0 || seccomp_filter_install(SECCOMP_API) < 0)
		return 2;
	if (write(efd, &one, 8) != 8 || read(efd, &one, 8) != 8)
		return 3;
	p = malloc(1 << 20); /* a large block: mmap */
	if (!p)
		return 4;
	free(p);
	close(efd);
	return 0;
}

static void api_allowed_calls_work(void **state)
{
	struct outcome o = in_child(api_allowed, NULL);

	(void)state;
	assert_exited_ok(&o);
}

/* The real order: the main filter, then a thread that adds the vCPU filter on top of it. */
struct vcpu_thread_result {
	int installed;
	int run_errno;
};

static void *vcpu_like_thread(void *arg)
{
	struct vcpu_thread_result *r = arg;
	struct timespec ts;

	r->installed = seccomp_filter_install(SECCOMP_VCPU);
	if (r->installed < 0)
		return NULL;
	/* Allowed requests go through to the fd (not KVM here, so ENOTTY), not to SIGSYS. */
	r->run_errno = ioctl(STDERR_FILENO, KVM_RUN, 0) < 0 ? errno : 0;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return NULL;
}

static int stacked_vcpu_allowed(void *arg)
{
	struct vcpu_thread_result r = { -1, 0 };
	pthread_t t;

	(void)arg;
	if (seccomp_filter_install(SECCOMP_MAIN) < 0)
		return 2;
	if (pthread_create(&t, NULL, vcpu_like_thread, &r) != 0)
		return 3;
	pthread_join(t, NULL);
	if (r.installed < 0)
		return 4;
	return r.run_errno == ENOTTY ? 0 : 5;
}

static void vcpu_thread_under_main_filter_runs(void **state)
{
	struct outcome o = in_child(stacked_vcpu_allowed, NULL);

	(void)state;
	assert_exited_ok(&o);
}

/* The real order again: the main filter, then a uffd-like thread under its own on top, which
 * makes the uffd thread's calls and ends (glibc's thread exit). The real thread's work is
 * tested in tests/unit/test_uffd_server.c. */
static void *uffd_like_thread(void *arg)
{
	int *result = arg, efd = eventfd(0, EFD_CLOEXEC); /* eventfd2: made before, as start does */
	struct pollfd pfd = { .fd = efd, .events = POLLIN };
	uint64_t one = 1;
	char byte;

	if (efd < 0 || seccomp_filter_install(SECCOMP_UFFD) < 0) {
		*result = 2;
		return NULL;
	}
	if (poll(&pfd, 1, 0) != 0 || pread(STDIN_FILENO, &byte, 1, 0) > 1 ||
	    write(efd, &one, 8) != 8 || read(efd, &one, 8) != 8)
		*result = 3;
	else if (ioctl(efd, UFFDIO_COPY, 0) != -1 || errno != ENOTTY)
		*result = 4; /* allowed: the fd, not the filter, refuses */
	else
		*result = 0;
	close(efd);
	return NULL;
}

static int stacked_uffd_allowed(void *arg)
{
	int result = -1;
	pthread_t t;

	(void)arg;
	if (seccomp_filter_install(SECCOMP_MAIN) < 0)
		return 2;
	if (pthread_create(&t, NULL, uffd_like_thread, &result) != 0)
		return 3;
	pthread_join(t, NULL);
	return result;
}

static void uffd_thread_under_main_filter_runs(void **state)
{
	struct outcome o = in_child(stacked_uffd_allowed, NULL);

	(void)state;
	assert_exited_ok(&o);
}

static void *vcpu_socket_thread(void *arg)
{
	(void)arg;
	if (seccomp_filter_install(SECCOMP_VCPU) == 0)
		syscall(SYS_socket, AF_UNIX, SOCK_STREAM, 0);
	return NULL;
}

static int stacked_vcpu_socket(void *arg)
{
	pthread_t t;

	(void)arg;
	if (seccomp_filter_install(SECCOMP_MAIN) < 0)
		return 2;
	/* The main thread may open unix sockets (vsock); its vCPU thread may not. */
	if (pthread_create(&t, NULL, vcpu_socket_thread, NULL) != 0)
		return 3;
	pthread_join(t, NULL);
	return 0;
}

static void vcpu_thread_socket_kills_process(void **state)
{
	struct outcome o = in_child(stacked_vcpu_socket, NULL);

	(void)state;
	assert_killed_for(&o, SYS_socket);
}

/* --- the table --- */

/* Whether the main filter lets through whatever rule i allows. */
static bool main_covers(const struct seccomp_rule *r, unsigned n, unsigned i)
{
	if (r[i].threads & M)
		return true;
	for (unsigned j = 0; j < n; j++)
		if ((r[j].threads & M) && r[j].op == SC_ANY && !r[j].fail_errno &&
		    strcmp(r[j].syscall, r[i].syscall) == 0)
			return true;
	return false;
}

static void rules_of_api_and_vcpu_are_in_main(void **state)
{
	unsigned n;
	const struct seccomp_rule *r = seccomp_rules(&n);

	(void)state;
	for (unsigned i = 0; i < n; i++)
		if ((r[i].threads & (A | V | R | U)) && !main_covers(r, n, i))
			fail_msg("rule %u (%s) is not in the main filter, which every thread runs under",
				 i, r[i].syscall);
}

static void rules_resolve_and_say_why(void **state)
{
	unsigned n;
	const struct seccomp_rule *r = seccomp_rules(&n);

	(void)state;
	assert_true(n > 0);
	for (unsigned i = 0; i < n; i++) {
		if (seccomp_syscall_resolve_name(r[i].syscall) == __NR_SCMP_ERROR)
			fail_msg("rule %u: no syscall named %s", i, r[i].syscall);
		assert_non_null(r[i].why);
		assert_true(strlen(r[i].why) > 5);
		assert_true(r[i].threads != 0);
		assert_true(r[i].op == SC_ANY || r[i].arg_text != NULL);
	}
}

static void count_api_and_vcpu_smaller_than_main(void **state)
{
	unsigned rules[SECCOMP_NR_THREADS], calls[SECCOMP_NR_THREADS];

	(void)state;
	for (unsigned t = 0; t < SECCOMP_NR_THREADS; t++)
		seccomp_filter_count(t, &rules[t], &calls[t]);
	assert_true(calls[SECCOMP_API] < calls[SECCOMP_MAIN]);
	assert_true(rules[SECCOMP_MAIN_RUNNING] < rules[SECCOMP_MAIN]);
	assert_true(calls[SECCOMP_VCPU] < calls[SECCOMP_MAIN]);
	assert_true(calls[SECCOMP_VCPU] <= rules[SECCOMP_VCPU]);
	assert_true(calls[SECCOMP_UFFD] < calls[SECCOMP_VCPU]);
}

static void print_vcpu_lists_kvm_run_only_for_ioctl(void **state)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);

	(void)state;
	assert_non_null(f);
	assert_int_equal(seccomp_filter_print(f, SECCOMP_VCPU), 0);
	fclose(f);
	assert_non_null(strstr(text, "arg1 == KVM_RUN"));
	assert_null(strstr(text, "KVM_CREATE_VM"));
	assert_null(strstr(text, "\nsocket"));
	assert_non_null(strstr(text, "exits 148"));
	free(text);
}

static void print_uffd_lists_serving_ioctls_only(void **state)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);

	(void)state;
	assert_non_null(f);
	assert_int_equal(seccomp_filter_print(f, SECCOMP_UFFD), 0);
	fclose(f);
	assert_non_null(strstr(text, "# kiln's seccomp filter \"uffd\", for the uffd thread"));
	assert_non_null(strstr(text, "arg1 == UFFDIO_COPY"));
	assert_non_null(strstr(text, "arg1 == UFFDIO_POISON"));
	assert_non_null(strstr(text, "\npread64 "));
	assert_null(strstr(text, "UFFDIO_REGISTER"));
	assert_null(strstr(text, "KVM_"));
	assert_null(strstr(text, "\nsocket"));
	assert_null(strstr(text, "\nopenat"));
	assert_null(strstr(text, "\nuserfaultfd"));
	free(text);
}

static void thread_names_parse_back(void **state)
{
	(void)state;
	for (unsigned t = 0; t < SECCOMP_NR_THREADS; t++)
		assert_int_equal(seccomp_filter_thread_parse(seccomp_filter_thread_name(t)), (int)t);
	assert_int_equal(seccomp_filter_thread_parse("uffd"), SECCOMP_UFFD);
	assert_int_equal(seccomp_filter_thread_parse("migration"), -1);
	assert_null(seccomp_filter_thread_name(SECCOMP_NR_THREADS));
	assert_int_equal(seccomp_filter_print(stdout, SECCOMP_NR_THREADS), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(rules_of_api_and_vcpu_are_in_main),
		cmocka_unit_test(rules_resolve_and_say_why),
		cmocka_unit_test(count_api_and_vcpu_smaller_than_main),
		cmocka_unit_test(print_vcpu_lists_kvm_run_only_for_ioctl),
		cmocka_unit_test(print_uffd_lists_serving_ioctls_only),
		cmocka_unit_test(thread_names_parse_back),
		cmocka_unit_test(main_execve_killed),
		cmocka_unit_test(main_ptrace_killed),
		cmocka_unit_test(main_packet_socket_killed),
		cmocka_unit_test(main_fork_killed),
		cmocka_unit_test(main_unlisted_ioctl_killed),
		cmocka_unit_test(main_allowed_calls_work),
		cmocka_unit_test(main_running_create_vm_killed),
		cmocka_unit_test(main_running_io_uring_setup_killed),
		cmocka_unit_test(main_running_thread_killed),
		cmocka_unit_test(main_running_allowed_calls_work),
		cmocka_unit_test(api_kvm_ioctl_killed),
		cmocka_unit_test(api_open_killed),
		cmocka_unit_test(api_socket_killed),
		cmocka_unit_test(api_allowed_calls_work),
		cmocka_unit_test(vcpu_unix_socket_killed),
		cmocka_unit_test(vcpu_open_killed),
		cmocka_unit_test(vcpu_execve_killed),
		cmocka_unit_test(vcpu_create_vm_killed),
		cmocka_unit_test(vcpu_exec_mapping_killed),
		cmocka_unit_test(vcpu_thread_under_main_filter_runs),
		cmocka_unit_test(vcpu_thread_socket_kills_process),
		cmocka_unit_test(uffd_open_killed),
		cmocka_unit_test(uffd_socket_killed),
		cmocka_unit_test(uffd_kvm_run_killed),
		cmocka_unit_test(uffd_register_killed),
		cmocka_unit_test(uffd_new_userfaultfd_killed),
		cmocka_unit_test(uffd_thread_under_main_filter_runs),
	};

	return cmocka_run_group_tests_name("seccomp", tests, NULL, NULL);
}
