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
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_VMS 16
#define MAX_PUTS 8

/* One of a monitor's output streams and what was read of it but not yet split into lines. */
struct stream {
	int fd; /* -1 once it ended */
	size_t len;
	char buf[16384];
};

/* One started monitor. */
struct vm {
	pid_t pid;
	struct stream con, err; /* stdout (the guest's console) and stderr */
	double started, marked; /* marked: when its marker line was read, or -1 */
	int result;		/* 0 until its KILN-RESULT line, then 1 (PASS) or -1 */
	char last[512];		/* its last console line, for a failure message */
};

/* An API or QMP connection and the bytes read from it but not yet consumed. */
struct peer {
	int fd;
	size_t len;
	char buf[16384];
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

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int fail(const char *fmt, const char *what)
{
	fprintf(stderr, "boot_start: ");
	fprintf(stderr, fmt, what);
	fputc('\n', stderr);
	return -1;
}

/* Logs and drops every complete line of st (all of it when flush), noting vm's marker and
 * result lines when st is its console. */
static void scan_lines(struct bench *b, struct vm *vm, struct stream *st, bool flush)
{
	char *nl;

	while ((nl = memchr(st->buf, '\n', st->len)) || (flush && st->len)) {
		size_t n = nl ? (size_t)(nl - st->buf) + 1 : st->len;
		char *line = st->buf;

		line[nl ? n - 1 : n] = '\0';
		if (b->log)
			fprintf(b->log, "[%9.1f] [%d] %s%s\n", now_ms() - b->since, (int)(vm - b->vms),
				st == &vm->err ? "err: " : "", line);
		if (st == &vm->con) {
			snprintf(vm->last, sizeof(vm->last), "%.500s", line);
			if (vm->marked < 0 && strstr(line, b->marker))
				vm->marked = now_ms();
			if (!vm->result && strstr(line, "KILN-RESULT "))
				vm->result = strstr(line, " PASS") ? 1 : -1;
		}
		memmove(st->buf, st->buf + n, st->len - n);
		st->len -= n;
	}
}

/* Reads what st has into its buffer (a line too long for it is logged in pieces); at its end or
 * on an error, st->fd becomes -1. */
static void read_stream(struct bench *b, struct vm *vm, struct stream *st)
{
	ssize_t n;

	if (st->len + 1 >= sizeof(st->buf))
		scan_lines(b, vm, st, true);
	n = read(st->fd, st->buf + st->len, sizeof(st->buf) - 1 - st->len);
	if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN)) {
		close(st->fd);
		st->fd = -1;
	} else if (n > 0) {
		st->len += (size_t)n;
	}
	scan_lines(b, vm, st, st->fd < 0);
}

/* Waits up to ms for output from every started monitor and, when p, for p's socket. Returns 1
 * when p's socket gave bytes, 0 otherwise, -1 when p's peer hung up or the deadline passed. */
static int pump(struct bench *b, struct peer *p, int ms)
{
	struct pollfd fds[2 * MAX_VMS + 1];
	int i, nfds = 0;
	ssize_t n;

	if (now_ms() > b->deadline)
		return fail("%s", "timed out");
	for (i = 0; i < b->n; i++) {
		fds[nfds++] = (struct pollfd){ .fd = b->vms[i].con.fd, .events = POLLIN };
		fds[nfds++] = (struct pollfd){ .fd = b->vms[i].err.fd, .events = POLLIN };
	}
	fds[nfds++] = (struct pollfd){ .fd = p ? p->fd : -1, .events = POLLIN };
	if (poll(fds, (nfds_t)nfds, ms) < 0)
		return errno == EINTR ? 0 : fail("poll: %s", strerror(errno));
	for (i = 0; i < b->n; i++) {
		if (fds[2 * i].revents)
			read_stream(b, &b->vms[i], &b->vms[i].con);
		if (fds[2 * i + 1].revents)
			read_stream(b, &b->vms[i], &b->vms[i].err);
	}
	if (!p || !fds[nfds - 1].revents)
		return 0;
	if (p->len + 1 >= sizeof(p->buf))
		return fail("%s", "an oversized answer on the socket");
	n = read(p->fd, p->buf + p->len, sizeof(p->buf) - 1 - p->len);
	if (n <= 0)
		return fail("%s", "the socket's peer hung up");
	p->len += (size_t)n;
	p->buf[p->len] = '\0';
	return 1;
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

/* Starts the command as the next instance, its output on pipes, in a process group of its
 * own: 0, or -1. */
static int vm_start(struct bench *b)
{
	struct vm *vm = &b->vms[b->n];
	int out[2], err[2], devnull;

	if (b->n >= MAX_VMS)
		return fail("%s", "too many instances");
	if (pipe2(out, O_CLOEXEC) < 0 || pipe2(err, O_CLOEXEC) < 0)
		return fail("pipe: %s", strerror(errno));
	vm->marked = -1;
	vm->started = now_ms();
	vm->pid = fork();
	if (vm->pid < 0)
		return fail("fork: %s", strerror(errno));
	if (vm->pid == 0) {
		setpgid(0, 0);
		devnull = open("/dev/null", O_RDONLY);
		dup2(devnull, STDIN_FILENO);
		dup2(out[1], STDOUT_FILENO);
		dup2(err[1], STDERR_FILENO);
		execvp(b->argv[0], b->argv);
		fprintf(stderr, "boot_start: exec %s: %s\n", b->argv[0], strerror(errno));
		_exit(127);
	}
	setpgid(vm->pid, vm->pid);
	close(out[1]);
	close(err[1]);
	vm->con.fd = out[0];
	vm->err.fd = err[0];
	b->n++;
	return 0;
}

/* Fails for vm, with its last console line. */
static int vm_fail(struct bench *b, struct vm *vm, const char *why)
{
	fprintf(stderr, "boot_start: instance %d: %s; its last console line: %s\n",
		(int)(vm - b->vms), why, vm->last);
	return -1;
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
				return fail("a guest failed: %s", vm->last);
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

/* Connects to the unix socket at path once the monitor creates it: 0 with p ready, or -1. */
static int connect_wait(struct bench *b, struct peer *p, const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };

	if (strlen(path) >= sizeof(sa.sun_path))
		return fail("socket path too long: %s", path);
	strcpy(sa.sun_path, path);
	for (;;) {
		p->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (p->fd < 0)
			return fail("socket: %s", strerror(errno));
		if (connect(p->fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
			return 0;
		close(p->fd);
		p->fd = -1;
		if (vm_ended(&b->vms[0]) || pump(b, NULL, 5) < 0)
			return fail("no socket at %s", path);
	}
}

/* Writes req (len bytes) to p; *t0 (when given) is read right before the write: 0, or -1. */
static int send_all(struct peer *p, const char *req, size_t len, double *t0)
{
	if (t0)
		*t0 = now_ms();
	return write(p->fd, req, len) == (ssize_t)len ? 0 : fail("write: %s", strerror(errno));
}

/* Sends one HTTP request on p and reads the whole answer: its status, or -1. An answer other
 * than 2xx is printed with its body. *t0 as for send_all. */
static int http(struct bench *b, struct peer *p, const char *method, const char *path,
		const char *body, double *t0)
{
	char req[4096], *end, *cl;
	size_t need = 0;
	int n, status;

	n = snprintf(req, sizeof(req),
		     "%s %s HTTP/1.1\r\nHost: localhost\r\nAccept: application/json\r\n"
		     "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
		     method, path, strlen(body), body);
	if (n < 0 || (size_t)n >= sizeof(req) || send_all(p, req, (size_t)n, t0) < 0)
		return fail("cannot send %s", path);
	for (;;) {
		end = strstr(p->buf, "\r\n\r\n");
		if (end) {
			cl = strcasestr(p->buf, "\r\nContent-Length:");
			need = (size_t)(end - p->buf) + 4 +
			       (cl && cl < end ? strtoul(cl + 17, NULL, 10) : 0);
			if (p->len >= need)
				break;
		}
		if (pump(b, p, 100) < 0)
			return fail("no answer to %s", path);
	}
	if (sscanf(p->buf, "HTTP/1.%*d %d", &status) != 1)
		return fail("a broken answer to %s", path);
	if (status / 100 != 2)
		fprintf(stderr, "boot_start: %s %s answered %.*s\n", method, path, (int)need, p->buf);
	memmove(p->buf, p->buf + need, p->len - need + 1);
	p->len -= need;
	return status;
}

/* Reads QMP lines until one holds want: 0, or -1 on an error answer or no such line. */
static int qmp_wait(struct bench *b, struct peer *p, const char *want)
{
	char *nl;

	for (;;) {
		while ((nl = strchr(p->buf, '\n'))) {
			size_t n = (size_t)(nl - p->buf) + 1;
			bool hit, bad;

			*nl = '\0';
			hit = strstr(p->buf, want);
			bad = strstr(p->buf, "\"error\"");
			if (bad)
				fprintf(stderr, "boot_start: QMP: %s\n", p->buf);
			memmove(p->buf, p->buf + n, p->len - n + 1);
			p->len -= n;
			if (bad)
				return -1;
			if (hit)
				return 0;
		}
		if (pump(b, p, 100) < 0)
			return fail("no QMP line holding %s", want);
	}
}

/* Sends one QMP command and waits for its return: 0, or -1. *t0 as for send_all. */
static int qmp(struct bench *b, struct peer *p, const char *cmd, double *t0)
{
	char line[256];
	int n = snprintf(line, sizeof(line), "%s\n", cmd);

	if (n < 0 || (size_t)n >= sizeof(line) || send_all(p, line, (size_t)n, t0) < 0)
		return fail("cannot send %s", cmd);
	return qmp_wait(b, p, "\"return\"");
}

/* kiln or qemu: one monitor, configured, then started and timed. */
static int timed_start(struct bench *b, bool kiln, const char *sock, char **reqs, int nreqs)
{
	static struct peer p = { .fd = -1 };
	struct vm *vm = &b->vms[0];
	double t0, answered;
	int i;

	if (vm_start(b) < 0 || connect_wait(b, &p, sock) < 0)
		return -1;
	if (kiln) {
		for (i = 0; i < nreqs; i++)
			if (http(b, &p, "PUT", reqs[2 * i], reqs[2 * i + 1], NULL) != 204)
				return -1;
	} else if (qmp_wait(b, &p, "\"QMP\"") < 0 ||
		   qmp(b, &p, "{\"execute\": \"qmp_capabilities\"}", NULL) < 0) {
		return -1;
	}
	if (b->log)
		fprintf(b->log, "[%9.1f] boot_start: the start request goes now\n",
			now_ms() - b->since);
	if (kiln ? http(b, &p, "PUT", "/actions", "{\"action_type\": \"InstanceStart\"}", &t0) != 204
		 : qmp(b, &p, "{\"execute\": \"cont\"}", &t0) < 0)
		return -1;
	answered = now_ms();
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
	double t0 = now_ms(), last = 0;
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
	const char *mode, *sock = NULL;

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
	if (argi + 1 < argc && strcmp(argv[argi], "--log") == 0) {
		b.log = fopen(argv[argi + 1], "we");
		if (b.log)
			setvbuf(b.log, NULL, _IOLBF, 0);
		argi += 2;
	}
	if (argi + 1 < argc && strcmp(argv[argi], "--timeout") == 0) {
		timeout_s = (unsigned)strtoul(argv[argi + 1], NULL, 10);
		argi += 2;
	}
	if (argi < argc && strcmp(argv[argi], "--") == 0)
		argi++;
	if (argi >= argc)
		return usage();
	b.argv = argv + argi;
	signal(SIGPIPE, SIG_IGN);
	b.since = now_ms();
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
