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
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "monio.h"

/* The monitored command: its console input, its console output (stdout, where markers are
 * looked for) and its own messages (stderr: kept apart, since a monitor's log line can land
 * inside a console line when both share a pipe). */
struct run {
	pid_t pid;
	int in;
	struct monio_stream con, err;
	FILE *log;
	double deadline, since; /* since: when the log's times count from */
	char last[4096];	/* the last console line that held a marker */
};

/* Logs and drops every complete line of st (all of it when flush); stops after one holding
 * marker (kept in r->last) and returns 1, or returns 0 when no complete line holds it. */
static int scan_lines(struct run *r, struct monio_stream *st, const char *marker, bool flush)
{
	char *line;
	size_t len;
	bool hit;

	while ((line = monio_line(st, flush, &len))) {
		if (r->log) {
			fprintf(r->log, "[%9.1f] ", monio_now_ms() - r->since);
			fwrite(line, 1, len, r->log);
			fputc('\n', r->log);
		}
		hit = marker && strstr(line, marker);
		if (hit)
			snprintf(r->last, sizeof(r->last), "%.4000s", line);
		monio_drop(st, len);
		if (hit)
			return 1;
	}
	return 0;
}

/* Reads what st has into its buffer (a line too long for it is logged in pieces): as
 * monio_read. */
static ssize_t read_stream(struct run *r, struct monio_stream *st)
{
	if (monio_full(st))
		scan_lines(r, st, NULL, true);
	return monio_read(st);
}

/* Waits up to ms for the command's output and, when p, p's socket. Returns 1 when a console line
 * holds marker, 2 when p's socket gave bytes, 0 when nothing came, -1 when the console ended,
 * p's peer hung up, or the run's deadline passed. */
static int pump(struct run *r, struct monio_peer *p, const char *marker, int ms)
{
	struct pollfd fds[3] = { { .fd = r->con.fd, .events = POLLIN },
				 { .fd = p ? p->fd : -1, .events = POLLIN },
				 { .fd = r->err.fd, .events = POLLIN } };

	if (scan_lines(r, &r->con, marker, false))
		return 1;
	if (monio_now_ms() > r->deadline)
		return monio_fail("timed out");
	if (poll(fds, 3, ms) < 0)
		return errno == EINTR ? 0 : monio_fail("poll: %s", strerror(errno));
	if (fds[2].revents) {
		read_stream(r, &r->err);
		scan_lines(r, &r->err, NULL, r->err.fd < 0);
	}
	if (fds[0].revents) {
		if (read_stream(r, &r->con) <= 0)
			return monio_fail("the console ended (the command exited?)");
		if (scan_lines(r, &r->con, marker, false))
			return 1;
	}
	if (p && fds[1].revents)
		return monio_peer_read(p) < 0 ? -1 : 2;
	return 0;
}

/* The wait for monio's calls: pump, looking for no marker. */
static int peer_wait(void *r, struct monio_peer *p, int ms)
{
	return pump(r, p, NULL, ms);
}

/* Waits for an output line holding marker (left in r->last): 0, or -1. */
static int wait_line(struct run *r, const char *marker)
{
	int got;

	while ((got = pump(r, NULL, marker, 100)) != 1)
		if (got < 0)
			return monio_fail("no line holding \"%s\"", marker);
	return 0;
}

/* Writes line to the guest's console: 0, or -1. */
static int console(struct run *r, const char *line)
{
	size_t n = strlen(line);

	if (write(r->in, line, n) != (ssize_t)n)
		return monio_fail("console write: %s", strerror(errno));
	return 0;
}

/* Connects to QMP at path, negotiates, and turns MIGRATION events on: 0, or -1. */
static int qmp_open(struct monio_peer *p, const char *path)
{
	if (monio_connect(p, path, 10) < 0 || monio_qmp_wait(p, "\"QMP\"", NULL) < 0 ||
	    monio_qmp(p, "{\"execute\": \"qmp_capabilities\"}", NULL) < 0)
		return -1;
	return monio_qmp(p, "{\"execute\": \"migrate-set-capabilities\", \"arguments\": "
			    "{\"capabilities\": [{\"capability\": \"events\", \"state\": true}]}}",
			 NULL);
}

/* After a restore: the guest checks every page, then ends its test. Sets *verified. */
static int verify(struct run *r, double *verified)
{
	if (console(r, "verify\n") < 0 || wait_line(r, "KILN-SNAP-VERIFIED") < 0)
		return -1;
	*verified = monio_now_ms();
	if (!strstr(r->last, " bad=0 "))
		return monio_fail("pages changed: %s", r->last);
	if (console(r, "done\n") < 0 || wait_line(r, "KILN-RESULT snapshot") < 0)
		return -1;
	return strstr(r->last, "PASS") ? 0 : monio_fail("the agent failed: %s", r->last);
}

static int kiln_take(struct run *r, struct monio_peer *p, const char *sock, const char *body)
{
	double t0;

	if (wait_line(r, "KILN-SNAP-READY") < 0 || monio_connect(p, sock, 10) < 0 ||
	    monio_http(p, "PATCH", "/vm", "{\"state\": \"Paused\"}", NULL) != 204)
		return -1;
	t0 = monio_now_ms();
	if (monio_http(p, "PUT", "/snapshot/create", body, NULL) != 204)
		return -1;
	printf("take_ms=%.1f\n", monio_now_ms() - t0);
	return 0;
}

/* Logs that the load request goes now, and counts the log's times from it: the time. */
static double load_starts(struct run *r)
{
	scan_lines(r, &r->con, NULL, false);
	scan_lines(r, &r->err, NULL, false);
	r->since = monio_now_ms();
	if (r->log)
		fprintf(r->log, "[%9.1f] restoretime: the load request goes now\n", 0.0);
	return r->since;
}

static int kiln_load(struct run *r, struct monio_peer *p, const char *sock, const char *body)
{
	double t0, loaded, verified;

	if (monio_connect(p, sock, 10) < 0)
		return -1;
	t0 = load_starts(r);
	if (monio_http(p, "PUT", "/snapshot/load", body, NULL) != 204)
		return -1;
	loaded = monio_now_ms();
	if (verify(r, &verified) < 0)
		return -1;
	printf("load_ms=%.1f verified_ms=%.1f\n", loaded - t0, verified - t0);
	return 0;
}

static int qemu_take(struct run *r, struct monio_peer *p, const char *qmp_path, const char *file)
{
	char cmd[4200];
	double t0;

	if (wait_line(r, "KILN-SNAP-READY") < 0 || qmp_open(p, qmp_path) < 0 ||
	    monio_qmp(p, "{\"execute\": \"stop\"}", NULL) < 0 ||
	    monio_qmp(p, "{\"execute\": \"migrate-set-parameters\", \"arguments\": "
			 "{\"max-bandwidth\": 17179869184}}", NULL) < 0)
		return -1;
	snprintf(cmd, sizeof(cmd),
		 "{\"execute\": \"migrate\", \"arguments\": {\"uri\": \"exec:cat > %s\"}}", file);
	t0 = monio_now_ms();
	if (monio_qmp(p, cmd, NULL) < 0 || monio_qmp_wait(p, "\"MIGRATION\"", "\"completed\"") < 0)
		return -1;
	printf("take_ms=%.1f\n", monio_now_ms() - t0);
	return 0;
}

static int qemu_load(struct run *r, struct monio_peer *p, const char *qmp_path, const char *file)
{
	double t0, loaded, verified;
	char cmd[4200];

	if (qmp_open(p, qmp_path) < 0)
		return -1;
	snprintf(cmd, sizeof(cmd),
		 "{\"execute\": \"migrate-incoming\", \"arguments\": {\"uri\": \"exec:cat %s\"}}",
		 file);
	t0 = load_starts(r);
	if (monio_qmp(p, cmd, NULL) < 0 ||
	    monio_qmp_wait(p, "\"MIGRATION\"", "\"completed\"") < 0 ||
	    monio_qmp(p, "{\"execute\": \"cont\"}", NULL) < 0)
		return -1;
	loaded = monio_now_ms();
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
	double end = monio_now_ms() + 30e3;

	while ((r->con.fd >= 0 || r->err.fd >= 0) && monio_now_ms() < end) {
		struct pollfd fds[2] = { { .fd = r->con.fd, .events = POLLIN },
					 { .fd = r->err.fd, .events = POLLIN } };

		if (poll(fds, 2, 100) < 0 && errno != EINTR)
			break;
		for (int i = 0; i < 2; i++) {
			struct monio_stream *st = i ? &r->err : &r->con;

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
	static struct monio_peer p = { .fd = -1, .wait = peer_wait, .ctx = &r };
	const char *mode, *sock, *arg, *log = NULL;
	unsigned timeout_s = 300;
	int argi = 4, rc;

	if (argc < 6) {
		fprintf(stderr, "usage: restoretime kiln-take|kiln-load SOCK BODY | qemu-take|qemu-load "
				"QMP FILE [--log FILE] [--timeout S] -- CMD...\n");
		return 2;
	}
	mode = argv[1], sock = argv[2], arg = argv[3];
	if (strlen(arg) > 4000 || (mode[0] == 'q' && strpbrk(arg, "\"\\"))) {
		monio_fail("the body or file name is too long, or the file name has \" or \\");
		return 2;
	}
	argi = monio_options(argc, argv, argi, &log, &timeout_s);
	if (log)
		r.log = fopen(log, "we");
	if (argi >= argc)
		return 2;
	signal(SIGPIPE, SIG_IGN);
	r.since = monio_now_ms();
	r.deadline = r.since + timeout_s * 1e3;
	r.pid = monio_spawn(argv + argi, &r.in, &r.con.fd, &r.err.fd, NULL);
	if (r.pid < 0)
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
		rc = monio_fail("unknown mode %s", mode);
	kill(r.pid, SIGKILL);
	waitpid(r.pid, NULL, 0);
	drain(&r);
	kill(-r.pid, SIGKILL);
	if (r.log)
		fclose(r.log);
	return rc < 0;
}
