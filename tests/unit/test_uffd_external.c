/* Unit tests for migration/uffd_external.c, on real userfaultfd memory, against the example
 * handler (build/uffd_handler/kiln-uffd-handler, or the path given as the first argument): the
 * handshake's one message and fd; every page served from the memory file and poisoned pages
 * raising SIGBUS; a handler that dies leaving its waiters to SIGBUS after
 * uffd_external_fail_all, never to zeros or a hang; refusals with clear errors; 2 MiB hugetlb
 * pages; the main thread's seccomp filters. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/memfd.h>
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
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "seccomp_filter.h"
#include "uffd_compat.h"
#include "uffd_external.h"
#include "uffd_test.h"

#define PAGE 4096ull
#define HUGE (2ull << 20)
#define MIB (1ull << 20)
#define GIB (1ull << 30)

static const char *handler_path = "build/uffd_handler/kiln-uffd-handler";

static void write_memory_file(const char *path, uint64_t size)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	uint64_t *buf = malloc(MIB);

	assert_true(fd >= 0);
	assert_non_null(buf);
	for (uint64_t off = 0; off < size; off += MIB) {
		for (uint64_t w = 0; w < MIB / 8; w++)
			buf[w] = pattern(off + w * 8);
		assert_int_equal(pwrite(fd, buf, MIB, (off_t)off), (ssize_t)MIB);
	}
	free(buf);
	close(fd);
}

/* kiln's layout for size bytes of RAM in the tests: low memory, then a region above 4 GiB. */
static void layout(struct guest_region r[2], uint64_t size, uint64_t low)
{
	r[0] = (struct guest_region){ .gpa = 0, .size = low, .offset = 0 };
	r[1] = (struct guest_region){ .gpa = 4 * GIB, .size = size - low, .offset = low };
}

/* --- the handler, run as kiln's owner would have it run --- */

struct fixture {
	char dir[64], sock[128], file[128], log[128];
	pid_t handler;        /* 0 once reaped */
	struct uffd_external x;
	long hugepages_old;   /* nr_hugepages before the test raised it, or -1 */
};

static void spawn_handler(struct fixture *f, unsigned die_after)
{
	char n[16];

	if (access(handler_path, X_OK) < 0)
		fail_msg("%s: %s (build it: ninja %s)", handler_path, strerror(errno),
			 handler_path);
	snprintf(n, sizeof(n), "%u", die_after);
	f->handler = fork();
	assert_true(f->handler >= 0);
	if (f->handler == 0) {
		int out = open(f->log, O_WRONLY | O_CREAT | O_TRUNC, 0600);

		dup2(out, STDOUT_FILENO);
		dup2(out, STDERR_FILENO);
		if (die_after)
			execl(handler_path, handler_path, "--die-after", n, f->sock, f->file, NULL);
		else
			execl(handler_path, handler_path, f->sock, f->file, NULL);
		_exit(127);
	}
}

/* The handler's exit status, waiting at most TIMEOUT_MS; -1 on timeout. */
static int handler_status(struct fixture *f)
{
	int status;

	for (int ms = 0; ms < TIMEOUT_MS; ms += 5) {
		if (waitpid(f->handler, &status, WNOHANG) == f->handler) {
			f->handler = 0;
			return status;
		}
		usleep(5000);
	}
	return -1;
}

static void read_log(const struct fixture *f, char *buf, size_t len)
{
	int fd = open(f->log, O_RDONLY | O_CLOEXEC);
	ssize_t n = fd >= 0 ? read(fd, buf, len - 1) : -1;

	buf[n > 0 ? n : 0] = '\0';
	if (fd >= 0)
		close(fd);
}

/* uffd_external_start, again while the handler is not listening yet (it binds, then listens). */
static int start_when_listening(struct uffd_external *x, const char *sock, uint8_t *host,
				uint64_t ps, const struct guest_region *r, unsigned nr,
				const struct uffd_range *poison, size_t nr_poison, char *err,
				size_t errlen)
{
	int ret = -ENOENT;
	const struct timespec wait = { .tv_nsec = 2000000 };

	for (int ms = 0; ms < TIMEOUT_MS && (ret == -ENOENT || ret == -ECONNREFUSED); ms += 2) {
		ret = uffd_external_start(x, sock, host, ps, r, nr, poison, nr_poison, err, errlen);
		if (ret == -ENOENT || ret == -ECONNREFUSED)
			nanosleep(&wait, NULL);
	}
	return ret;
}

static void start_ok(struct fixture *f, uint8_t *host, uint64_t ps,
		     const struct guest_region *r, unsigned nr, const struct uffd_range *poison,
		     size_t nr_poison)
{
	char err[256] = "";
	int ret = start_when_listening(&f->x, f->sock, host, ps, r, nr, poison, nr_poison, err,
				       sizeof(err));

	if (ret != 0)
		fail_msg("uffd_external_start: %d: %s", ret, err);
}

/* A listening socket at path, standing in for a handler. */
static int listen_at(const char *path)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	strcpy(a.sun_path, path);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(fd, 1), 0);
	return fd;
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	strcpy(f->dir, "/tmp/kiln-uffd-external-XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	snprintf(f->sock, sizeof(f->sock), "%s/handler.sock", f->dir);
	snprintf(f->file, sizeof(f->file), "%s/memory", f->dir);
	snprintf(f->log, sizeof(f->log), "%s/handler.log", f->dir);
	f->x = (struct uffd_external){ .uffd = -1, .sock = -1 };
	f->hugepages_old = -1;
	kernel = REAL_KERNEL; /* whatever a failed test left */
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	if (f->handler > 0) { /* a failed test's: only the one this test started */
		kill(f->handler, SIGKILL);
		waitpid(f->handler, NULL, 0);
	}
	uffd_external_stop(&f->x);
	unlink(f->sock);
	unlink(f->file);
	unlink(f->log);
	rmdir(f->dir);
	if (f->hugepages_old >= 0 && read_long(nr_hugepages_path) != f->hugepages_old &&
	    !write_long(nr_hugepages_path, f->hugepages_old))
		fprintf(stderr, "cannot put %s back to %ld\n", nr_hugepages_path, f->hugepages_old);
	free(f);
	return 0;
}

/* --- the handshake --- */

static void uffd_external_message_lists_regions_with_both_page_size_fields(void **state)
{
	static const char want[] =
		"[{\"base_host_virt_addr\":1073741824,\"size\":3145728,\"offset\":0,"
		"\"page_size\":4096,\"page_size_kib\":4096},"
		"{\"base_host_virt_addr\":1076887552,\"size\":1048576,\"offset\":3145728,"
		"\"page_size\":4096,\"page_size_kib\":4096}]";
	struct guest_region r[2];
	char buf[UFFD_EXTERNAL_MSG_MAX];
	uint8_t *host = (uint8_t *)(uintptr_t)GIB;

	(void)state;
	layout(r, 4 * MIB, 3 * MIB);
	assert_int_equal(uffd_external_message(buf, sizeof(buf), host, PAGE, r, 2),
			 (int)strlen(want));
	assert_string_equal(buf, want);
	assert_int_equal(uffd_external_message(buf, strlen(want), host, PAGE, r, 2), -ENOSPC);
	assert_int_equal(uffd_external_message(buf, 40, host, PAGE, r, 2), -ENOSPC);
	/* The largest kiln sends, numbers at their widest, fits. */
	for (int i = 0; i < 2; i++)
		r[i].size = r[i].offset = UINT64_MAX / 2;
	assert_true(uffd_external_message(buf, sizeof(buf), host, HUGE, r, 2) > 0);
}

/* The handler's side of the protocol, by hand: one message, the layout, with the fd. */
static void uffd_external_start_sends_one_message_with_the_userfaultfd(void **state)
{
	struct fixture *f = *state;
	struct guest_region r[2];
	const uint64_t size = 4 * MIB;
	char err[256], text[1024], control[CMSG_SPACE(sizeof(int))], link[64], path[64];
	struct iovec iov = { .iov_base = text, .iov_len = sizeof(text) - 1 };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control,
			    .msg_controllen = sizeof(control) };
	int mem, l = listen_at(f->sock), c, fd;
	uint8_t *host = ram(size, false, &mem);
	json_t *all;
	ssize_t n;

	assert_non_null(host);
	layout(r, size, 3 * MIB);
	assert_int_equal(uffd_external_start(&f->x, f->sock, host, PAGE, r, 2, NULL, 0, err,
					     sizeof(err)), 0);
	c = accept4(l, NULL, NULL, SOCK_CLOEXEC);
	assert_true(c >= 0);
	n = recvmsg(c, &m, MSG_CMSG_CLOEXEC);
	assert_true(n > 0);
	text[n] = '\0';
	assert_non_null(CMSG_FIRSTHDR(&m));
	assert_int_equal(CMSG_FIRSTHDR(&m)->cmsg_type, SCM_RIGHTS);
	memcpy(&fd, CMSG_DATA(CMSG_FIRSTHDR(&m)), sizeof(fd));
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	n = readlink(path, link, sizeof(link) - 1);
	assert_true(n > 0);
	link[n] = '\0';
	assert_string_equal(link, "anon_inode:[userfaultfd]");
	all = json_loads(text, 0, NULL);
	assert_int_equal(json_array_size(all), 2);
	for (size_t i = 0; i < 2; i++) {
		json_t *o = json_array_get(all, i);

		assert_int_equal(json_integer_value(json_object_get(o, "base_host_virt_addr")),
				 (json_int_t)(uintptr_t)(host + r[i].offset));
		assert_int_equal(json_integer_value(json_object_get(o, "size")), r[i].size);
		assert_int_equal(json_integer_value(json_object_get(o, "offset")), r[i].offset);
		assert_int_equal(json_integer_value(json_object_get(o, "page_size")), PAGE);
		assert_int_equal(json_integer_value(json_object_get(o, "page_size_kib")), PAGE);
	}
	json_decref(all);
	/* Nothing follows; stop closes kiln's end. */
	assert_int_equal(recv(c, text, 1, MSG_DONTWAIT), -1);
	assert_int_equal(errno, EAGAIN);
	uffd_external_stop(&f->x);
	assert_int_equal(recv(c, text, 1, 0), 0);
	close(fd);
	close(c);
	close(l);
	munmap(host, size);
	close(mem);
}

/* --- serving, and the handler's death --- */

static void uffd_external_handler_serves_every_page_and_poison_raises_sigbus(void **state)
{
	struct fixture *f = *state;
	const uint64_t size = 4 * MIB, n = size / PAGE;
	const struct uffd_range poison[] = { { MIB + 4 * PAGE, 2 * PAGE }, { 3 * MIB, PAGE } };
	struct guest_region r[2];
	struct reader rd;
	char log[1024];
	int mem, status;
	uint8_t *host = ram(size, false, &mem);

	catch_sigbus();
	assert_non_null(host);
	layout(r, size, 3 * MIB);
	write_memory_file(f->file, size);
	spawn_handler(f, 0);
	start_ok(f, host, PAGE, r, 2, poison, 2);
	assert_int_equal(reader_start(&rd, host, PAGE, n, 0), 0);
	if (reader_join(&rd) != 0)
		fail_msg("the reading thread hangs on a page");
	for (uint64_t p = 0; p < n; p++) {
		bool poisoned = p == MIB / PAGE + 4 || p == MIB / PAGE + 5 || p == 3 * MIB / PAGE;

		if (rd.result[p] != (poisoned ? POISONED : 0))
			fail_msg("page %" PRIu64 ": %d", p, rd.result[p]);
	}
	uffd_external_stop(&f->x); /* the handler sees kiln go and exits 0 */
	status = handler_status(f);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	read_log(f, log, sizeof(log));
	assert_non_null(strstr(log, "kiln-uffd-handler: serving 2 regions, page size 4096\n"));
	assert_non_null(strstr(log, "kiln-uffd-handler: done, "));
	free(rd.result);
	munmap(host, size);
	close(mem);
}

static void uffd_external_handler_death_then_fail_all_raises_sigbus_never_zeros(void **state)
{
	struct fixture *f = *state;
	const uint64_t size = 4 * MIB, n = size / PAGE;
	const struct uffd_range poison = { 2 * MIB, 2 * PAGE };
	struct guest_region r[2];
	struct reader rd;
	struct pollfd hup;
	uint64_t served = 0;
	char err[256], log[1024];
	int mem, status;
	uint8_t *host = ram(size, false, &mem);

	catch_sigbus();
	assert_non_null(host);
	layout(r, size, 3 * MIB);
	write_memory_file(f->file, size);
	spawn_handler(f, 5);
	start_ok(f, host, PAGE, r, 2, &poison, 1);
	assert_int_equal(reader_start(&rd, host, PAGE, n, 0), 0);
	/* Five faults served, the handler exits: the owner sees the connection hang up. */
	hup = (struct pollfd){ .fd = uffd_external_socket(&f->x), .events = POLLIN };
	assert_int_equal(poll(&hup, 1, TIMEOUT_MS), 1);
	assert_true(hup.revents & (POLLHUP | POLLIN));
	status = handler_status(f);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 3);
	read_log(f, log, sizeof(log));
	assert_non_null(strstr(log, "exiting after 5 faults"));
	/* kiln's copy of the userfaultfd keeps the reader waiting on its sixth page. */
	usleep(100000);
	assert_false(rd.finished);
	assert_int_equal(uffd_external_fail_all(&f->x, err, sizeof(err)), 0);
	if (reader_join(&rd) != 0)
		fail_msg("the reading thread still hangs after uffd_external_fail_all");
	for (uint64_t p = 0; p < n; p++) {
		if (rd.result[p] != 0 && rd.result[p] != POISONED)
			fail_msg("page %" PRIu64 ": %d (-1: zeros)", p, rd.result[p]);
		served += rd.result[p] == 0;
	}
	assert_in_range(served, 1, 5);
	assert_int_equal(f->x.lost_pages, n - served - 2);
	/* Served pages keep their data; twice is harmless. */
	assert_int_equal(uffd_external_fail_all(&f->x, err, sizeof(err)), 0);
	assert_int_equal(f->x.lost_pages, n - served - 2);
	for (uint64_t p = 0; p < n; p++)
		assert_int_equal(check_page(host + p * PAGE, p * PAGE, PAGE, false), rd.result[p]);
	uffd_external_stop(&f->x);
	/* Closed now, and still no page reads as zeros. */
	for (uint64_t p = 0; p < n; p++)
		assert_int_equal(check_page(host + p * PAGE, p * PAGE, PAGE, false), rd.result[p]);
	free(rd.result);
	munmap(host, size);
	close(mem);
}

/* --- refusals --- */

static void uffd_external_start_refuses_missing_or_refused_socket(void **state)
{
	struct fixture *f = *state;
	const uint64_t size = 4 * MIB;
	struct guest_region r[2];
	char err[256], want[256], path[160];
	int mem, l;
	uint8_t *host = ram(size, false, &mem);
	struct sockaddr_un a = { .sun_family = AF_UNIX };

	catch_sigbus();
	assert_non_null(host);
	layout(r, size, 3 * MIB);
	assert_int_equal(uffd_external_start(&f->x, f->sock, host, PAGE, r, 2, NULL, 0, err,
					     sizeof(err)), -ENOENT);
	snprintf(want, sizeof(want), "cannot connect to the page-fault handler at %s: No such "
		 "file or directory", f->sock);
	assert_string_equal(err, want);
	/* A socket file nobody listens on any more. */
	l = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	strcpy(a.sun_path, f->sock);
	assert_int_equal(bind(l, (struct sockaddr *)&a, sizeof(a)), 0);
	close(l);
	assert_int_equal(uffd_external_start(&f->x, f->sock, host, PAGE, r, 2, NULL, 0, err,
					     sizeof(err)), -ECONNREFUSED);
	snprintf(want, sizeof(want), "cannot connect to the page-fault handler at %s: Connection "
		 "refused", f->sock);
	assert_string_equal(err, want);
	memset(path, 'a', sizeof(path) - 1);
	path[0] = '/';
	path[sizeof(path) - 1] = '\0';
	assert_int_equal(uffd_external_start(&f->x, path, host, PAGE, r, 2, NULL, 0, err,
					     sizeof(err)), -ENAMETOOLONG);
	assert_non_null(strstr(err, "the path is longer than 107 bytes"));
	/* Nothing stays registered: the memory is plain memory again, and nothing to stop. */
	assert_int_equal(f->x.nr_regions, 0);
	assert_int_equal(host[5 * PAGE], 0);
	munmap(host, size);
	close(mem);
}

static void uffd_external_start_refuses_bad_layouts(void **state)
{
	struct fixture *f = *state;
	const uint64_t size = 4 * MIB;
	struct guest_region r[3];
	struct uffd_range bad[] = { { 3, PAGE }, { 0, 0 }, { 3 * MIB - PAGE, 2 * PAGE },
				    { 4 * MIB, PAGE } };
	char err[256];
	int mem;
	uint8_t *host = ram(size, false, &mem);

	assert_non_null(host);
	layout(r, size, 3 * MIB);
	r[2] = r[1];
	assert_int_equal(uffd_external_start(&f->x, f->sock, host, PAGE, r, 3, NULL, 0, err,
					     sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "expected 1 to 2 regions"));
	assert_int_equal(uffd_external_start(&f->x, f->sock, host, PAGE, r, 0, NULL, 0, err,
					     sizeof(err)), -EINVAL);
	assert_int_equal(uffd_external_start(&f->x, f->sock, host, 8192, r, 2, NULL, 0, err,
					     sizeof(err)), -EINVAL);
	assert_int_equal(uffd_external_start(&f->x, f->sock, host + PAGE, HUGE, r, 2, NULL, 0, err,
					     sizeof(err)), -EINVAL);
	r[1].offset = 3 * MIB - PAGE; /* overlaps the first */
	assert_int_equal(uffd_external_start(&f->x, f->sock, host, PAGE, r, 2, NULL, 0, err,
					     sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "overlaps another"));
	layout(r, size, 3 * MIB);
	r[1].size = 100;
	assert_int_equal(uffd_external_start(&f->x, f->sock, host, PAGE, r, 2, NULL, 0, err,
					     sizeof(err)), -EINVAL);
	layout(r, size, 3 * MIB);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(uffd_external_start(&f->x, f->sock, host, PAGE, r, 2, &bad[i], 1,
						     err, sizeof(err)), -EINVAL);
		assert_non_null(strstr(err, "inside one region"));
	}
	munmap(host, size);
	close(mem);
}

static void uffd_external_start_refuses_poison_without_kernel_support(void **state)
{
	struct fixture *f = *state;
	static const char says[] = "this kernel cannot preserve poisoned pages (no "
		"UFFD_FEATURE_POISON; Linux 6.6+ or kiln's kernel-patches for 6.1)";
	const uint64_t size = 4 * MIB;
	const struct uffd_range poison = { PAGE, PAGE };
	struct guest_region r[2];
	char err[256];
	int mem, l = listen_at(f->sock), c;
	uint8_t *host = ram(size, false, &mem);

	assert_non_null(host);
	layout(r, size, 3 * MIB);
	for (kernel = NO_POISON_FEATURE; kernel <= NO_POISON_IOCTL; kernel++) {
		err[0] = '\0';
		assert_int_equal(uffd_external_start(&f->x, f->sock, host, PAGE, r, 2, &poison, 1,
						     err, sizeof(err)), -EOPNOTSUPP);
		assert_string_equal(err, says);
		/* The handler saw a connection close without a message. */
		c = accept4(l, NULL, NULL, SOCK_CLOEXEC);
		assert_true(c >= 0);
		assert_int_equal(recv(c, err, 1, 0), 0);
		close(c);
	}
	/* Without poison to place, such a kernel hands the memory over all the same, but cannot
	 * release the waiters of a dead handler. */
	kernel = NO_POISON_FEATURE;
	assert_int_equal(uffd_external_start(&f->x, f->sock, host, PAGE, r, 2, NULL, 0, err,
					     sizeof(err)), 0);
	kernel = REAL_KERNEL;
	c = accept4(l, NULL, NULL, SOCK_CLOEXEC);
	assert_true(c >= 0);
	assert_int_equal(uffd_external_fail_all(&f->x, err, sizeof(err)), -EOPNOTSUPP);
	assert_non_null(strstr(err, "no UFFD_FEATURE_POISON"));
	uffd_external_stop(&f->x);
	close(c);
	close(l);
	munmap(host, size);
	close(mem);
}

/* --- 2 MiB hugetlb pages --- */

static void uffd_external_hugetlb_pages(void **state)
{
	struct fixture *f = *state;
	const uint64_t size = 4 * HUGE, n = size / HUGE;
	const struct uffd_range poison = { HUGE, HUGE };
	long old = read_long(nr_hugepages_path),
	     free_pages = read_long("/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages");
	struct guest_region r[2];
	struct reader rd;
	char log[1024];
	int mem, status;
	uint8_t *host;

	catch_sigbus();
	if (old >= 0 && free_pages >= 0 && free_pages < (long)n) {
		f->hugepages_old = old; /* the teardown puts it back */
		write_long(nr_hugepages_path, old + (long)n - free_pages);
	}
	host = ram(size, true, &mem);
	if (!host) {
		print_message("    skipped: the host has fewer than %" PRIu64 " free 2 MiB hugepages, "
			      "and %s cannot be raised\n", n, nr_hugepages_path);
		skip();
	}
	layout(r, size, 3 * HUGE);
	write_memory_file(f->file, size);
	spawn_handler(f, 0);
	start_ok(f, host, HUGE, r, 2, &poison, 1);
	assert_int_equal(reader_start(&rd, host, HUGE, n, 0), 0);
	if (reader_join(&rd) != 0)
		fail_msg("the reading thread hangs on a page");
	for (uint64_t p = 0; p < n; p++)
		assert_int_equal(rd.result[p], p == 1 ? POISONED : 0);
	uffd_external_stop(&f->x);
	status = handler_status(f);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	read_log(f, log, sizeof(log));
	assert_non_null(strstr(log, "serving 2 regions, page size 2097152\n"));
	free(rd.result);
	munmap(host, size);
	close(mem);
}

/* --- under the main thread's seccomp filters --- */

/*
 * In a child, as kiln's main thread: start under the build filter (main), the handler dies,
 * the hang-up is seen, then uffd_external_fail_all under the running one (main-running) on
 * top, as after the vCPUs run. The exit code says which step failed.
 */
static int fail_all_under_filters(void *arg)
{
	struct fixture *f = arg;
	const uint64_t size = 4 * MIB, n = size / PAGE;
	struct guest_region r[2];
	struct pollfd hup;
	struct reader rd;
	char err[256];
	int mem;
	uint8_t *host = ram(size, false, &mem);

	layout(r, size, 3 * MIB);
	if (!host || seccomp_filter_install(SECCOMP_MAIN) < 0)
		return 2;
	if (start_when_listening(&f->x, f->sock, host, PAGE, r, 2, NULL, 0, err,
				 sizeof(err)) < 0) {
		fprintf(stderr, "uffd_external_start: %s\n", err);
		return 3;
	}
	if (reader_start(&rd, host, PAGE, n, 0) != 0)
		return 4;
	hup = (struct pollfd){ .fd = uffd_external_socket(&f->x), .events = POLLIN };
	if (poll(&hup, 1, TIMEOUT_MS) != 1 || seccomp_filter_install(SECCOMP_MAIN_RUNNING) < 0)
		return 5;
	if (uffd_external_fail_all(&f->x, err, sizeof(err)) < 0) {
		fprintf(stderr, "uffd_external_fail_all: %s\n", err);
		return 6;
	}
	if (reader_join(&rd) != 0)
		return 7;
	for (uint64_t p = 0; p < n; p++)
		if (rd.result[p] != 0 && rd.result[p] != POISONED)
			return 8;
	uffd_external_stop(&f->x);
	return 0;
}

static void uffd_external_fail_all_under_main_thread_seccomp_filters(void **state)
{
	struct fixture *f = *state;
	char out[512] = "";
	int status;

	catch_sigbus();
#if defined(__SANITIZE_ADDRESS__)
	print_message("    skipped here: ASan's runtime makes calls kiln's filters refuse; "
		      "build/unit/test_uffd_external_seccomp runs this test without sanitizers\n");
	skip();
#endif
	write_memory_file(f->file, 4 * MIB);
	spawn_handler(f, 3); /* before the filters, which refuse a new process */
	status = run_in_child(fail_all_under_filters, f, out, sizeof(out));
	assert_true(status >= 0);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		fail_msg("the child ended with status 0x%x; stderr: %s", status, out);
	status = handler_status(f);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 3);
}

#define TEST(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		TEST(uffd_external_message_lists_regions_with_both_page_size_fields),
		TEST(uffd_external_start_sends_one_message_with_the_userfaultfd),
		TEST(uffd_external_handler_serves_every_page_and_poison_raises_sigbus),
		TEST(uffd_external_handler_death_then_fail_all_raises_sigbus_never_zeros),
		TEST(uffd_external_start_refuses_missing_or_refused_socket),
		TEST(uffd_external_start_refuses_bad_layouts),
		TEST(uffd_external_start_refuses_poison_without_kernel_support),
		TEST(uffd_external_hugetlb_pages),
		TEST(uffd_external_fail_all_under_main_thread_seccomp_filters),
	};

	if (argc > 1)
		handler_path = argv[1];
	return cmocka_run_group_tests_name("uffd_external.c", tests, NULL, NULL);
}
