/* restoretime: snapshots the snapshot agent's guest (kiln.test=snapshot) under kiln or QEMU, or
 * restores it and times the restore, with the monitor's API or QMP socket and the guest's
 * console (the command's stdin and stdout) in one process. Used by bench/restore.sh.
 *
 *   restoretime kiln-take SOCK BODY   waits for KILN-SNAP-READY, PATCH /vm Paused, then
 *                                     PUT /snapshot/create BODY
 *   restoretime kiln-load SOCK BODY   PUT /snapshot/load BODY (resume_vm true)
 *   restoretime qemu-take QMP FILE    waits for KILN-SNAP-READY, stop, migrate "exec:cat > FILE"
 *   restoretime qemu-load QMP FILE    (QEMU started with -incoming defer) migrate-incoming
 *                                     "exec:cat FILE", then cont
 *
 * followed by [--log FILE] [--timeout S] -- CMD.... A load then sends "verify" on the console,
 * waits for KILN-SNAP-VERIFIED with bad=0, sends "done" and waits for KILN-RESULT snapshot PASS.
 * Prints "load_ms=L verified_ms=V" (both from the moment the load request is written; L until
 * the 204, or QMP's answer to cont; V until the guest's verified line arrives), or "take_ms=T".
 * At the end the command is killed, and what it started (in its process group) once it has
 * ended or after 30 s. Exit 0 on success. Each line
 * in the log starts with the milliseconds since the command started or, after a load request,
 * since that request was written. */
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

/* One of the command's output streams and what was read of it but not yet split into lines. */
struct stream {
	int fd; /* -1 once it ended */
	size_t len;
	char buf[65536];
};

/* The monitored command: its console input, its console output (stdout, where markers are
 * looked for) and its own messages (stderr: kept apart, since a monitor's log line can land
 * inside a console line when both share a pipe). */
struct run {
	pid_t pid;
	int in;
	struct stream con, err;
	FILE *log;
	double deadline, since; /* since: when the log's times count from */
	char last[4096];	/* the last console line that held a marker */
};

/* An API or QMP connection and the bytes read from it but not yet consumed. */
struct peer {
	int fd;
	size_t len;
	char buf[65536];
};

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int fail(const char *fmt, const char *what)
{
	fprintf(stderr, "restoretime: ");
	fprintf(stderr, fmt, what);
	fputc('\n', stderr);
	return -1;
}

/* Logs and drops every complete line of st (all of it when flush); stops after one holding
 * marker (kept in r->last) and returns 1, or returns 0 when no complete line holds it. */
static int scan_lines(struct run *r, struct stream *st, const char *marker, bool flush)
{
	char *nl;

	while ((nl = memchr(st->buf, '\n', st->len)) || (flush && st->len)) {
		size_t n = nl ? (size_t)(nl - st->buf) + 1 : st->len;
		bool hit;

		if (r->log) {
			fprintf(r->log, "[%9.1f] ", now_ms() - r->since);
			fwrite(st->buf, 1, n, r->log);
			if (!nl)
				fputc('\n', r->log);
		}
		st->buf[nl ? n - 1 : n] = '\0';
		hit = marker && strstr(st->buf, marker);
		if (hit)
			snprintf(r->last, sizeof(r->last), "%.4000s", st->buf);
		memmove(st->buf, st->buf + n, st->len - n);
		st->len -= n;
		if (hit)
			return 1;
	}
	return 0;
}

/* Reads what st has into its buffer (a line too long for it is logged in pieces): the bytes
 * read (1 when interrupted), or 0 at its end or on an error, when st->fd becomes -1. */
static ssize_t read_stream(struct run *r, struct stream *st)
{
	ssize_t n;

	if (st->len + 1 >= sizeof(st->buf))
		scan_lines(r, st, NULL, true);
	n = read(st->fd, st->buf + st->len, sizeof(st->buf) - 1 - st->len);
	if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN)) {
		close(st->fd);
		st->fd = -1;
		return 0;
	}
	st->len += n > 0 ? (size_t)n : 0;
	return n > 0 ? n : 1;
}

/* Waits up to ms for the command's output and, when p, p's socket. Returns 1 when a console line
 * holds marker, 2 when p's socket gave bytes, 0 when nothing came, -1 when the console ended,
 * p's peer hung up, or the run's deadline passed. */
static int pump(struct run *r, struct peer *p, const char *marker, int ms)
{
	struct pollfd fds[3] = { { .fd = r->con.fd, .events = POLLIN },
				 { .fd = p ? p->fd : -1, .events = POLLIN },
				 { .fd = r->err.fd, .events = POLLIN } };
	ssize_t n;

	if (scan_lines(r, &r->con, marker, false))
		return 1;
	if (now_ms() > r->deadline)
		return fail("%s", "timed out");
	if (poll(fds, 3, ms) < 0)
		return errno == EINTR ? 0 : fail("poll: %s", strerror(errno));
	if (fds[2].revents) {
		read_stream(r, &r->err);
		scan_lines(r, &r->err, NULL, r->err.fd < 0);
	}
	if (fds[0].revents) {
		if (read_stream(r, &r->con) <= 0)
			return fail("%s", "the console ended (the command exited?)");
		if (scan_lines(r, &r->con, marker, false))
			return 1;
	}
	if (p && fds[1].revents) {
		if (p->len + 1 >= sizeof(p->buf))
			return fail("%s", "an oversized answer on the socket");
		n = read(p->fd, p->buf + p->len, sizeof(p->buf) - 1 - p->len);
		if (n <= 0)
			return fail("%s", "the socket's peer hung up");
		p->len += (size_t)n;
		p->buf[p->len] = '\0';
		return 2;
	}
	return 0;
}

/* Waits for an output line holding marker (left in r->last): 0, or -1. */
static int wait_line(struct run *r, const char *marker)
{
	int got;

	while ((got = pump(r, NULL, marker, 100)) != 1)
		if (got < 0)
			return fail("no line holding \"%s\"", marker);
	return 0;
}

/* Writes line to the guest's console: 0, or -1. */
static int console(struct run *r, const char *line)
{
	size_t n = strlen(line);

	return write(r->in, line, n) == (ssize_t)n ? 0 : fail("console write: %s", strerror(errno));
}

/* Connects to the unix socket at path once the command creates it, reading its output
 * meanwhile: 0 with p ready, or -1. */
static int connect_wait(struct run *r, struct peer *p, const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };

	if (strlen(path) >= sizeof(sa.sun_path))
		return fail("socket path too long: %s", path);
	strcpy(sa.sun_path, path);
	p->len = 0;
	p->buf[0] = '\0';
	for (;;) {
		p->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (p->fd < 0)
			return fail("socket: %s", strerror(errno));
		if (connect(p->fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
			return 0;
		close(p->fd);
		if (pump(r, NULL, NULL, 10) < 0)
			return fail("no socket at %s", path);
	}
}

/* Sends one HTTP request on p and reads the whole answer: its status, or -1. An answer other
 * than 2xx is printed with its body. */
static int http(struct run *r, struct peer *p, const char *method, const char *path,
		const char *body)
{
	char req[2048], *end, *cl;
	size_t need = 0;
	int n, status;

	n = snprintf(req, sizeof(req),
		     "%s %s HTTP/1.1\r\nHost: localhost\r\nAccept: application/json\r\n"
		     "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
		     method, path, strlen(body), body);
	if (n < 0 || (size_t)n >= sizeof(req) || write(p->fd, req, (size_t)n) != n)
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
		if (pump(r, p, NULL, 100) < 0)
			return fail("no answer to %s", path);
	}
	if (sscanf(p->buf, "HTTP/1.%*d %d", &status) != 1)
		return fail("a broken answer to %s", path);
	if (status / 100 != 2)
		fprintf(stderr, "restoretime: %s %s answered %.*s\n", method, path, (int)need,
			p->buf);
	memmove(p->buf, p->buf + need, p->len - need + 1);
	p->len -= need;
	return status;
}

/* Reads QMP lines until one holds want (and want2, when given): 0, or -1 on an error answer, a
 * failed migration or no such line. */
static int qmp_wait(struct run *r, struct peer *p, const char *want, const char *want2)
{
	char *nl;

	for (;;) {
		while ((nl = strchr(p->buf, '\n'))) {
			size_t n = (size_t)(nl - p->buf) + 1;
			bool hit, bad;

			*nl = '\0';
			hit = strstr(p->buf, want) && (!want2 || strstr(p->buf, want2));
			bad = strstr(p->buf, "\"error\"") ||
			      (strstr(p->buf, "\"MIGRATION\"") && strstr(p->buf, "\"failed\""));
			if (bad)
				fprintf(stderr, "restoretime: QMP: %s\n", p->buf);
			memmove(p->buf, p->buf + n, p->len - n + 1);
			p->len -= n;
			if (bad)
				return -1;
			if (hit)
				return 0;
		}
		if (pump(r, p, NULL, 100) < 0)
			return fail("no QMP line holding %s", want);
	}
}

/* Sends one QMP command and waits for its return: 0, or -1. */
static int qmp(struct run *r, struct peer *p, const char *cmd)
{
	size_t n = strlen(cmd);

	if (write(p->fd, cmd, n) != (ssize_t)n || write(p->fd, "\n", 1) != 1)
		return fail("cannot send %s", cmd);
	return qmp_wait(r, p, "\"return\"", NULL);
}

/* Connects to QMP at path, negotiates, and turns MIGRATION events on: 0, or -1. */
static int qmp_open(struct run *r, struct peer *p, const char *path)
{
	if (connect_wait(r, p, path) < 0 || qmp_wait(r, p, "\"QMP\"", NULL) < 0 ||
	    qmp(r, p, "{\"execute\": \"qmp_capabilities\"}") < 0)
		return -1;
	return qmp(r, p, "{\"execute\": \"migrate-set-capabilities\", \"arguments\": "
			 "{\"capabilities\": [{\"capability\": \"events\", \"state\": true}]}}");
}

/* Starts argv with its stdin, stdout and stderr on pipes, in a process group of its own: 0, or
 * -1. */
static int start(struct run *r, char **argv)
{
	int in[2], out[2], err[2];

	if (pipe2(in, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0 || pipe2(err, O_CLOEXEC) < 0)
		return fail("pipe: %s", strerror(errno));
	r->pid = fork();
	if (r->pid < 0)
		return fail("fork: %s", strerror(errno));
	if (r->pid == 0) {
		setpgid(0, 0);
		dup2(in[0], STDIN_FILENO);
		dup2(out[1], STDOUT_FILENO);
		dup2(err[1], STDERR_FILENO);
		execvp(argv[0], argv);
		fprintf(stderr, "restoretime: exec %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	setpgid(r->pid, r->pid);
	close(in[0]);
	close(out[1]);
	close(err[1]);
	r->in = in[1];
	r->con.fd = out[0];
	r->err.fd = err[0];
	return 0;
}

/* After a restore: the guest checks every page, then ends its test. Sets *verified. */
static int verify(struct run *r, double *verified)
{
	if (console(r, "verify\n") < 0 || wait_line(r, "KILN-SNAP-VERIFIED") < 0)
		return -1;
	*verified = now_ms();
	if (!strstr(r->last, " bad=0 "))
		return fail("pages changed: %s", r->last);
	if (console(r, "done\n") < 0 || wait_line(r, "KILN-RESULT snapshot") < 0)
		return -1;
	return strstr(r->last, "PASS") ? 0 : fail("the agent failed: %s", r->last);
}

static int kiln_take(struct run *r, struct peer *p, const char *sock, const char *body)
{
	double t0;

	if (wait_line(r, "KILN-SNAP-READY") < 0 || connect_wait(r, p, sock) < 0 ||
	    http(r, p, "PATCH", "/vm", "{\"state\": \"Paused\"}") != 204)
		return -1;
	t0 = now_ms();
	if (http(r, p, "PUT", "/snapshot/create", body) != 204)
		return -1;
	printf("take_ms=%.1f\n", now_ms() - t0);
	return 0;
}

/* Logs that the load request goes now, and counts the log's times from it: the time. */
static double load_starts(struct run *r)
{
	scan_lines(r, &r->con, NULL, false);
	scan_lines(r, &r->err, NULL, false);
	r->since = now_ms();
	if (r->log)
		fprintf(r->log, "[%9.1f] restoretime: the load request goes now\n", 0.0);
	return r->since;
}

static int kiln_load(struct run *r, struct peer *p, const char *sock, const char *body)
{
	double t0, loaded, verified;

	if (connect_wait(r, p, sock) < 0)
		return -1;
	t0 = load_starts(r);
	if (http(r, p, "PUT", "/snapshot/load", body) != 204)
		return -1;
	loaded = now_ms();
	if (verify(r, &verified) < 0)
		return -1;
	printf("load_ms=%.1f verified_ms=%.1f\n", loaded - t0, verified - t0);
	return 0;
}

static int qemu_take(struct run *r, struct peer *p, const char *qmp_path, const char *file)
{
	char cmd[4200];
	double t0;

	if (wait_line(r, "KILN-SNAP-READY") < 0 || qmp_open(r, p, qmp_path) < 0 ||
	    qmp(r, p, "{\"execute\": \"stop\"}") < 0 ||
	    qmp(r, p, "{\"execute\": \"migrate-set-parameters\", \"arguments\": "
		      "{\"max-bandwidth\": 17179869184}}") < 0)
		return -1;
	snprintf(cmd, sizeof(cmd),
		 "{\"execute\": \"migrate\", \"arguments\": {\"uri\": \"exec:cat > %s\"}}", file);
	t0 = now_ms();
	if (qmp(r, p, cmd) < 0 || qmp_wait(r, p, "\"MIGRATION\"", "\"completed\"") < 0)
		return -1;
	printf("take_ms=%.1f\n", now_ms() - t0);
	return 0;
}

static int qemu_load(struct run *r, struct peer *p, const char *qmp_path, const char *file)
{
	double t0, loaded, verified;
	char cmd[4200];

	if (qmp_open(r, p, qmp_path) < 0)
		return -1;
	snprintf(cmd, sizeof(cmd),
		 "{\"execute\": \"migrate-incoming\", \"arguments\": {\"uri\": \"exec:cat %s\"}}",
		 file);
	t0 = load_starts(r);
	if (qmp(r, p, cmd) < 0 || qmp_wait(r, p, "\"MIGRATION\"", "\"completed\"") < 0 ||
	    qmp(r, p, "{\"execute\": \"cont\"}") < 0)
		return -1;
	loaded = now_ms();
	if (verify(r, &verified) < 0)
		return -1;
	printf("load_ms=%.1f verified_ms=%.1f\n", loaded - t0, verified - t0);
	return 0;
}

/* After the monitor is killed: waits (30 s at most) for whatever it started to end as well,
 * which it has when nobody holds the output pipes any more, logging what they still say. QEMU's
 * "exec:cat > FILE" may still be writing the file after the migration completed. */
static void drain(struct run *r)
{
	double end = now_ms() + 30e3;

	while ((r->con.fd >= 0 || r->err.fd >= 0) && now_ms() < end) {
		struct pollfd fds[2] = { { .fd = r->con.fd, .events = POLLIN },
					 { .fd = r->err.fd, .events = POLLIN } };

		if (poll(fds, 2, 100) < 0 && errno != EINTR)
			break;
		for (int i = 0; i < 2; i++) {
			struct stream *st = i ? &r->err : &r->con;

			if (fds[i].revents) {
				read_stream(r, st);
				scan_lines(r, st, NULL, st->fd < 0);
			}
		}
	}
	if (r->con.fd >= 0 || r->err.fd >= 0)
		fprintf(stderr, "restoretime: the command's children outlived it by 30 s\n");
}

int main(int argc, char **argv)
{
	static struct run r = { .con.fd = -1, .err.fd = -1 };
	static struct peer p = { .fd = -1 };
	const char *mode, *sock, *arg;
	unsigned timeout_s = 300;
	int argi = 4, rc;

	if (argc < 6) {
		fprintf(stderr, "usage: restoretime kiln-take|kiln-load SOCK BODY | qemu-take|qemu-load "
				"QMP FILE [--log FILE] [--timeout S] -- CMD...\n");
		return 2;
	}
	mode = argv[1], sock = argv[2], arg = argv[3];
	if (strlen(arg) > 4000 || (mode[0] == 'q' && strpbrk(arg, "\"\\"))) {
		fail("%s", "the body or file name is too long, or the file name has \" or \\");
		return 2;
	}
	if (argi + 1 < argc && strcmp(argv[argi], "--log") == 0) {
		r.log = fopen(argv[argi + 1], "we");
		argi += 2;
	}
	if (argi + 1 < argc && strcmp(argv[argi], "--timeout") == 0) {
		timeout_s = (unsigned)strtoul(argv[argi + 1], NULL, 10);
		argi += 2;
	}
	if (argi < argc && strcmp(argv[argi], "--") == 0)
		argi++;
	if (argi >= argc)
		return 2;
	signal(SIGPIPE, SIG_IGN);
	r.since = now_ms();
	r.deadline = r.since + timeout_s * 1e3;
	if (start(&r, argv + argi) < 0)
		return 1;
	if (strcmp(mode, "kiln-take") == 0)
		rc = kiln_take(&r, &p, sock, arg);
	else if (strcmp(mode, "kiln-load") == 0)
		rc = kiln_load(&r, &p, sock, arg);
	else if (strcmp(mode, "qemu-take") == 0)
		rc = qemu_take(&r, &p, sock, arg);
	else if (strcmp(mode, "qemu-load") == 0)
		rc = qemu_load(&r, &p, sock, arg);
	else
		rc = fail("unknown mode %s", mode);
	kill(r.pid, SIGKILL);
	waitpid(r.pid, NULL, 0);
	drain(&r);
	kill(-r.pid, SIGKILL);
	if (r.log)
		fclose(r.log);
	return rc < 0;
}
