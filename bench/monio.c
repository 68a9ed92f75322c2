/* monio: what the benchmark tools share to drive a monitor under test (see monio.h). */
#include "monio.h"

#include <err.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

double monio_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

int monio_fail(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vwarnx(fmt, ap);
	va_end(ap);
	return -1;
}

int monio_options(int argc, char **argv, int argi, const char **log, unsigned *timeout_s)
{
	if (argi + 1 < argc && strcmp(argv[argi], "--log") == 0) {
		*log = argv[argi + 1];
		argi += 2;
	}
	if (argi + 1 < argc && strcmp(argv[argi], "--timeout") == 0) {
		*timeout_s = (unsigned)strtoul(argv[argi + 1], NULL, 10);
		argi += 2;
	}
	if (argi < argc && strcmp(argv[argi], "--") == 0)
		argi++;
	return argi;
}

pid_t monio_spawn(char **argv, int *in, int *out, int *err, double *forked)
{
	int ip[2], op[2], ep[2];
	pid_t pid;

	if ((in && pipe2(ip, O_CLOEXEC) < 0) || pipe2(op, O_CLOEXEC) < 0 ||
	    pipe2(ep, O_CLOEXEC) < 0)
		return monio_fail("pipe: %s", strerror(errno));
	if (forked)
		*forked = monio_now_ms();
	pid = fork();
	if (pid < 0)
		return monio_fail("fork: %s", strerror(errno));
	if (pid == 0) {
		setpgid(0, 0);
		dup2(in ? ip[0] : open("/dev/null", O_RDONLY), STDIN_FILENO);
		dup2(op[1], STDOUT_FILENO);
		dup2(ep[1], STDERR_FILENO);
		execvp(argv[0], argv);
		monio_fail("exec %s: %s", argv[0], strerror(errno));
		_exit(127);
	}
	setpgid(pid, pid);
	if (in) {
		close(ip[0]);
		*in = ip[1];
	}
	close(op[1]);
	close(ep[1]);
	*out = op[0];
	*err = ep[0];
	return pid;
}

char *monio_line(struct monio_stream *st, bool flush, size_t *len)
{
	char *nl = memchr(st->buf, '\n', st->len);

	if (!nl && !(flush && st->len))
		return NULL;
	*len = nl ? (size_t)(nl - st->buf) : st->len;
	st->buf[*len] = '\0';
	return st->buf;
}

void monio_drop(struct monio_stream *st, size_t len)
{
	size_t n = len < st->len ? len + 1 : len;

	memmove(st->buf, st->buf + n, st->len - n);
	st->len -= n;
}

bool monio_full(const struct monio_stream *st)
{
	return st->len + 1 >= sizeof(st->buf);
}

ssize_t monio_read(struct monio_stream *st)
{
	ssize_t n = read(st->fd, st->buf + st->len, sizeof(st->buf) - 1 - st->len);

	if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN)) {
		close(st->fd);
		st->fd = -1;
		return 0;
	}
	st->len += n > 0 ? (size_t)n : 0;
	return n > 0 ? n : 1;
}

int monio_peer_read(struct monio_peer *p)
{
	ssize_t n;

	if (p->len + 1 >= sizeof(p->buf))
		return monio_fail("an oversized answer on the socket");
	n = read(p->fd, p->buf + p->len, sizeof(p->buf) - 1 - p->len);
	if (n <= 0)
		return monio_fail("the socket's peer hung up");
	p->len += (size_t)n;
	p->buf[p->len] = '\0';
	return 0;
}

int monio_connect(struct monio_peer *p, const char *path, int ms)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };

	if (strlen(path) >= sizeof(sa.sun_path))
		return monio_fail("socket path too long: %s", path);
	strcpy(sa.sun_path, path);
	p->len = 0;
	p->buf[0] = '\0';
	for (;;) {
		p->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (p->fd < 0)
			return monio_fail("socket: %s", strerror(errno));
		if (connect(p->fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
			return 0;
		close(p->fd);
		p->fd = -1;
		if (p->wait(p->ctx, NULL, ms) < 0)
			return monio_fail("no socket at %s", path);
	}
}

/* Writes iov (iovcnt parts) to p in one call; *t0 (when given) is read from the
 * clock right before: 0, or -1 (said). */
static int send_all(struct monio_peer *p, const struct iovec *iov, int iovcnt, double *t0)
{
	size_t n = 0;
	int i;

	for (i = 0; i < iovcnt; i++)
		n += iov[i].iov_len;
	if (t0)
		*t0 = monio_now_ms();
	if (writev(p->fd, iov, iovcnt) != (ssize_t)n)
		return monio_fail("write: %s", strerror(errno));
	return 0;
}

int monio_http(struct monio_peer *p, const char *method, const char *path, const char *body,
	       double *t0)
{
	char req[4096], *end, *cl;
	struct iovec iov;
	size_t need = 0;
	int n, status;

	n = snprintf(req, sizeof(req),
		     "%s %s HTTP/1.1\r\nHost: localhost\r\nAccept: application/json\r\n"
		     "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
		     method, path, strlen(body), body);
	if (n < 0 || (size_t)n >= sizeof(req))
		return monio_fail("cannot send %s", path);
	iov = (struct iovec){ .iov_base = req, .iov_len = (size_t)n };
	if (send_all(p, &iov, 1, t0) < 0)
		return monio_fail("cannot send %s", path);
	for (;;) {
		end = strstr(p->buf, "\r\n\r\n");
		if (end) {
			cl = strcasestr(p->buf, "\r\nContent-Length:");
			need = (size_t)(end - p->buf) + 4 +
			       (cl && cl < end ? strtoul(cl + 17, NULL, 10) : 0);
			if (p->len >= need)
				break;
		}
		if (p->wait(p->ctx, p, 100) < 0)
			return monio_fail("no answer to %s", path);
	}
	if (sscanf(p->buf, "HTTP/1.%*d %d", &status) != 1)
		return monio_fail("a broken answer to %s", path);
	if (status / 100 != 2)
		monio_fail("%s %s answered %.*s", method, path, (int)need, p->buf);
	memmove(p->buf, p->buf + need, p->len - need + 1);
	p->len -= need;
	return status;
}

int monio_qmp_wait(struct monio_peer *p, const char *want, const char *want2)
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
				monio_fail("QMP: %s", p->buf);
			memmove(p->buf, p->buf + n, p->len - n + 1);
			p->len -= n;
			if (bad)
				return -1;
			if (hit)
				return 0;
		}
		if (p->wait(p->ctx, p, 100) < 0)
			return monio_fail("no QMP line holding %s", want);
	}
}

int monio_qmp(struct monio_peer *p, const char *cmd, double *t0)
{
	size_t n = strlen(cmd);
	struct iovec iov[2] = { { .iov_base = (char *)cmd, .iov_len = n },
				{ .iov_base = "\n", .iov_len = 1 } };

	if (send_all(p, iov, 2, t0) < 0)
		return monio_fail("cannot send %s", cmd);
	return monio_qmp_wait(p, "\"return\"", NULL);
}
