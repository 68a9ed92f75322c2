/* boot_start: starts microVMs and times them to the guest's init marker on the serial console
 * (the command's stdout). Used by bench/boot.sh for kiln and QEMU alike.
 *
 *   boot_start kiln SOCK MARKER [--put PATH BODY]...
 *       CMD is kiln with --api-sock SOCK: sends each PUT in order (each must answer 204), then
 *       PUT /actions {"action_type": "InstanceStart"}, and times it.
 *   boot_start qemu QMP MARKER
 *       CMD is QEMU with -S and -qmp unix:QMP,server=on,wait=off: negotiates QMP, then sends
 *       cont, and times it.
 *   boot_start rate N PAR MARKER
 *       starts CMD N times, PAR at a time: the first PAR at once, then the next one each time
 *       one of them prints MARKER.
 *
 * followed by [--log FILE] [--timeout S] -- CMD.... Every guest must print MARKER, then a
 * "KILN-RESULT" line holding " PASS", and its monitor must end; otherwise boot_start says why
 * on stderr and exits 1. Prints, on success:
 *   kiln, qemu: "ready_ms=R answer_ms=A marker_ms=M": R from the fork to the moment the start
 *       request is written (t0: CLOCK_MONOTONIC read right before the write of the whole
 *       request, the socket connected and the VM configured); A from t0 to the 204 or QMP's
 *       return; M from t0 to the read of the marker line.
 *   rate: "total_ms=T per_s=P": T from the first fork to the read of the last marker line,
 *       P = N / T.
 * The log holds every line of every instance: "[ms since the first fork] [instance] line",
 * with "err:" before the monitor's own (stderr) lines. */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "monio.h"

#define MAX_VMS 16
#define MAX_PUTS 8

/* One started monitor. */
struct vm {
	pid_t pid;
	struct monio_stream con, err; /* stdout (the guest's console) and stderr */
	double started, marked; /* marked: when its marker line was read, or -1 */
	int result;		/* 0 until its KILN-RESULT line, then 1 (PASS) or -1 */
	char last[512];		/* its last console line, for a failure message */
};

/* What one boot_start run measures: the command, its instances and the log of their lines. */
struct bench {
	char **argv; /* the command */
	const char *marker;
	FILE *log;
	double since, deadline; /* since: the first fork, which the log's times count from */
	struct vm vms[MAX_VMS];
	int n; /* started */
};

/* Logs and drops every complete line of st (all of it when flush), noting vm's marker and
 * result lines when st is its console. */
static void scan_lines(struct bench *b, struct vm *vm, struct monio_stream *st, bool flush)
{
	char *line;
	size_t len;

	while ((line = monio_line(st, flush, &len))) {
		if (b->log)
			fprintf(b->log, "[%9.1f] [%d] %s%s\n", monio_now_ms() - b->since,
				(int)(vm - b->vms), st == &vm->err ? "err: " : "", line);
		if (st == &vm->con) {
			snprintf(vm->last, sizeof(vm->last), "%.500s", line);
			if (vm->marked < 0 && strstr(line, b->marker))
				vm->marked = monio_now_ms();
			if (!vm->result && strstr(line, "KILN-RESULT "))
				vm->result = strstr(line, " PASS") ? 1 : -1;
		}
		monio_drop(st, len);
	}
}

/* Reads what st has into its buffer (a line too long for it is logged in pieces); at its end or
 * on an error, st->fd becomes -1. */
static void read_stream(struct bench *b, struct vm *vm, struct monio_stream *st)
{
	if (monio_full(st))
		scan_lines(b, vm, st, true);
	monio_read(st);
	scan_lines(b, vm, st, st->fd < 0);
}

/* Waits up to ms for output from every started monitor and, when p, for p's socket. Returns 1
 * when p's socket gave bytes, 0 otherwise, -1 when p's peer hung up or the deadline passed. */
static int pump(struct bench *b, struct monio_peer *p, int ms)
{
	struct pollfd fds[2 * MAX_VMS + 1];
	int i, nfds = 0;

	if (monio_now_ms() > b->deadline)
		return monio_fail("timed out");
	for (i = 0; i < b->n; i++) {
		fds[nfds++] = (struct pollfd){ .fd = b->vms[i].con.fd, .events = POLLIN };
		fds[nfds++] = (struct pollfd){ .fd = b->vms[i].err.fd, .events = POLLIN };
	}
	fds[nfds++] = (struct pollfd){ .fd = p ? p->fd : -1, .events = POLLIN };
	if (poll(fds, (nfds_t)nfds, ms) < 0)
		return errno == EINTR ? 0 : monio_fail("poll: %s", strerror(errno));
	for (i = 0; i < b->n; i++) {
		if (fds[2 * i].revents)
			read_stream(b, &b->vms[i], &b->vms[i].con);
		if (fds[2 * i + 1].revents)
			read_stream(b, &b->vms[i], &b->vms[i].err);
	}
	if (!p || !fds[nfds - 1].revents)
		return 0;
	return monio_peer_read(p) < 0 ? -1 : 1;
}

/* Whether vm's monitor has ended: both its streams closed (then it is reaped). */
static bool vm_ended(struct vm *vm)
{
	if (vm->con.fd >= 0 || vm->err.fd >= 0)
		return false;
	if (vm->pid > 0) {
		waitpid(vm->pid, NULL, 0);
		vm->pid = -vm->pid;
	}
	return true;
}

/* The wait for monio's calls (the API or QMP socket of the only instance): pump, and while the
 * socket is not there yet, giving up once the monitor has ended. */
static int peer_wait(void *ctx, struct monio_peer *p, int ms)
{
	struct bench *b = ctx;

	if (!p && vm_ended(&b->vms[0]))
		return -1;
	return pump(b, p, ms);
}

/* Starts the command as the next instance, its output on pipes, in a process group of its
 * own: 0, or -1. */
static int vm_start(struct bench *b)
{
	struct vm *vm = &b->vms[b->n];

	if (b->n >= MAX_VMS)
		return monio_fail("too many instances");
	vm->marked = -1;
	vm->pid = monio_spawn(b->argv, NULL, &vm->con.fd, &vm->err.fd, &vm->started);
	if (vm->pid < 0)
		return -1;
	b->n++;
	return 0;
}

/* Fails for vm, with its last console line. */
static int vm_fail(struct bench *b, struct vm *vm, const char *why)
{
	return monio_fail("instance %d: %s; its last console line: %s", (int)(vm - b->vms), why,
			  vm->last);
}

/* Waits until every started guest has passed and every monitor has ended: 0, or -1. */
static int wait_all(struct bench *b)
{
	int i, open;

	do {
		open = 0;
		for (i = 0; i < b->n; i++) {
			struct vm *vm = &b->vms[i];

			if (vm->result < 0)
				return monio_fail("a guest failed: %s", vm->last);
			if (!vm_ended(vm)) {
				open++;
			} else if (vm->marked < 0 || vm->result == 0) {
				fprintf(stderr, "boot_start: instance %d ended %s; its last console line: %s\n",
					i, vm->marked < 0 ? "before its marker" : "without a result",
					vm->last);
				return -1;
			}
		}
	} while (open && pump(b, NULL, 100) == 0);
	return open ? -1 : 0;
}

/* Waits for vm's marker line: 0, or -1. */
static int wait_marker(struct bench *b, struct vm *vm)
{
	while (vm->marked < 0) {
		if (vm_ended(vm))
			return vm_fail(b, vm, "the monitor ended before the marker");
		if (pump(b, NULL, 100) < 0)
			return vm_fail(b, vm, "no marker");
	}
	return 0;
}

/* kiln or qemu: one monitor, configured, then started and timed. */
static int timed_start(struct bench *b, bool kiln, const char *sock, char **reqs, int nreqs)
{
	static struct monio_peer p = { .fd = -1, .wait = peer_wait };
	struct vm *vm = &b->vms[0];
	double t0, answered;
	int i;

	p.ctx = b;
	if (vm_start(b) < 0 || monio_connect(&p, sock, 5) < 0)
		return -1;
	if (kiln) {
		for (i = 0; i < nreqs; i++)
			if (monio_http(&p, "PUT", reqs[2 * i], reqs[2 * i + 1], NULL) != 204)
				return -1;
	} else if (monio_qmp_wait(&p, "\"QMP\"", NULL) < 0 ||
		   monio_qmp(&p, "{\"execute\": \"qmp_capabilities\"}", NULL) < 0) {
		return -1;
	}
	if (b->log)
		fprintf(b->log, "[%9.1f] boot_start: the start request goes now\n",
			monio_now_ms() - b->since);
	if (kiln ? monio_http(&p, "PUT", "/actions", "{\"action_type\": \"InstanceStart\"}",
			      &t0) != 204
		 : monio_qmp(&p, "{\"execute\": \"cont\"}", &t0) < 0)
		return -1;
	answered = monio_now_ms();
	if (wait_marker(b, vm) < 0)
		return -1;
	close(p.fd);
	if (wait_all(b) < 0)
		return -1;
	printf("ready_ms=%.1f answer_ms=%.1f marker_ms=%.1f\n", t0 - vm->started, answered - t0,
	       vm->marked - t0);
	return 0;
}

/* rate: n instances, par at a time. */
static int rate(struct bench *b, int n, int par)
{
	double t0 = monio_now_ms(), last = 0;
	int i, marked;

	for (;;) {
		marked = 0;
		for (i = 0; i < b->n; i++) {
			if (b->vms[i].result < 0)
				return vm_fail(b, &b->vms[i], "its guest failed");
			if (b->vms[i].marked >= 0) {
				marked++;
				last = b->vms[i].marked > last ? b->vms[i].marked : last;
			} else if (vm_ended(&b->vms[i])) {
				fprintf(stderr, "boot_start: instance %d ended before its marker; its "
						"last console line: %s\n", i, b->vms[i].last);
				return -1;
			}
		}
		if (marked == n)
			break;
		while (b->n < n && b->n - marked < par)
			if (vm_start(b) < 0)
				return -1;
		if (pump(b, NULL, 100) < 0)
			return -1;
	}
	if (wait_all(b) < 0)
		return -1;
	printf("total_ms=%.1f per_s=%.3f\n", last - t0, n / ((last - t0) / 1e3));
	return 0;
}

static int usage(void)
{
	fprintf(stderr, "usage: boot_start kiln SOCK MARKER [--put PATH BODY]... | qemu QMP MARKER "
			"| rate N PAR MARKER, then [--log FILE] [--timeout S] -- CMD...\n");
	return 2;
}

int main(int argc, char **argv)
{
	static struct bench b;
	char *reqs[2 * MAX_PUTS];
	int argi, nreqs = 0, n = 0, par = 0, rc, i;
	unsigned timeout_s = 300;
	const char *mode, *sock = NULL, *log = NULL;

	if (argc < 4)
		return usage();
	mode = argv[1];
	if (strcmp(mode, "rate") == 0) {
		if (argc < 5)
			return usage();
		n = atoi(argv[2]), par = atoi(argv[3]), b.marker = argv[4], argi = 5;
		if (n < 1 || n > MAX_VMS || par < 1)
			return usage();
	} else if (strcmp(mode, "kiln") == 0 || strcmp(mode, "qemu") == 0) {
		sock = argv[2], b.marker = argv[3], argi = 4;
	} else {
		return usage();
	}
	while (argi + 2 < argc && strcmp(argv[argi], "--put") == 0 && nreqs < MAX_PUTS) {
		reqs[2 * nreqs] = argv[argi + 1];
		reqs[2 * nreqs + 1] = argv[argi + 2];
		nreqs++, argi += 3;
	}
	argi = monio_options(argc, argv, argi, &log, &timeout_s);
	if (log) {
		b.log = fopen(log, "we");
		if (b.log)
			setvbuf(b.log, NULL, _IOLBF, 0);
	}
	if (argi >= argc)
		return usage();
	b.argv = argv + argi;
	signal(SIGPIPE, SIG_IGN);
	b.since = monio_now_ms();
	b.deadline = b.since + timeout_s * 1e3;
	if (sock)
		rc = timed_start(&b, mode[0] == 'k', sock, reqs, nreqs);
	else
		rc = rate(&b, n, par);
	for (i = 0; i < b.n; i++) {
		if (b.vms[i].pid > 0) {
			kill(-b.vms[i].pid, SIGKILL);
			waitpid(b.vms[i].pid, NULL, 0);
		}
	}
	if (b.log)
		fclose(b.log);
	return rc < 0;
}
