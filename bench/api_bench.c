/* api_bench: times kiln's API over its unix socket beside its peer, QEMU's QMP socket, and its
 * floor, a bare unix socket server: start-up (process start until the socket accepts and
 * answers) and request round trips on one connection. Used by bench/api.sh. */
#include <errno.h>
#include <fcntl.h>
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

#define WARMUP 10
#define BLOCK 100 /* latency: each kind's requests go in blocks of this many, the kinds in turn */
#define MAX_N 100000
#define START_TIMEOUT_US 30000000.0 /* L1 under TCG is slow */

/* One connection; buf holds bytes read but not yet consumed. */
struct conn {
	int fd;
	size_t len;
	char buf[16384];
};

/* A reply captured from kiln, for the floor server to send back. */
struct canned {
	size_t len, sent; /* its length, and the length of the request it answered */
	char buf[4096];
};

/* One kind of timed round trip: an HTTP request, or a QMP command when qmp is set. */
struct op {
	const char *name; /* its key in the output */
	struct conn *c;
	const char *method, *path, *body, *qmp;
	int want; /* the HTTP status expected */
};

/* One program to start: it serves on sock once started. */
struct target {
	const char *name; /* the prefix of its keys in the output */
	const char *sock;
	char **argv;
	char **envp;  /* NULL: api_bench's own environment */
	bool qmp;     /* ready when QMP's greeting is read, otherwise when GET / is answered */
	bool metrics; /* kiln: also read its own start-up figures through FlushMetrics */
};

static double now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

/* Connects to the unix socket at path: the fd, or -1 with errno set. */
static int connect_unix(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Binds and listens on a new unix socket at path: the fd, or -1 with errno set. */
static int listen_unix(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	unlink(path);
	if (fd >= 0 && (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 8) < 0)) {
		close(fd);
		return -1;
	}
	return fd;
}

/* The length of the whole HTTP message (head and Content-Length body) at the start of c's
 * buffer, or 0 while it is incomplete. */
static size_t http_len(struct conn *c)
{
	char *end = strstr(c->buf, "\r\n\r\n"), *cl;
	size_t need;

	if (!end)
		return 0;
	cl = strcasestr(c->buf, "\r\nContent-Length:");
	need = (size_t)(end - c->buf) + 4 + (cl && cl < end ? strtoul(cl + 17, NULL, 10) : 0);
	return c->len >= need ? need : 0;
}

/* The length of the line (up to and with its '\n') at the start of c's buffer, or 0. */
static size_t line_len(struct conn *c)
{
	char *nl = memchr(c->buf, '\n', c->len);

	return nl ? (size_t)(nl - c->buf) + 1 : 0;
}

/* Reads until complete finds a whole message at the start of c's buffer: its length, or 0 on
 * end of file, an error or a message that does not fit. */
static size_t read_until(struct conn *c, size_t (*complete)(struct conn *))
{
	size_t n;
	ssize_t r;

	for (;;) {
		c->buf[c->len] = '\0';
		if ((n = complete(c)))
			return n;
		if (c->len + 1 >= sizeof(c->buf))
			return 0;
		r = read(c->fd, c->buf + c->len, sizeof(c->buf) - 1 - c->len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return 0;
		c->len += (size_t)r;
	}
}

/* Drops the first n bytes of c's buffer. */
static void consume(struct conn *c, size_t n)
{
	memmove(c->buf, c->buf + n, c->len - n);
	c->len -= n;
}

/* Writes all n bytes of p: 0, or -1. */
static int write_all(int fd, const char *p, size_t n)
{
	ssize_t w;

	while (n) {
		w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Sends one request (body may be NULL) and reads the whole response, copying it into keep
 * unless that is NULL. Returns the HTTP status, or -1 on a broken or oversized reply. */
static int request(struct conn *c, const char *method, const char *path, const char *body,
		   struct canned *keep)
{
	char req[1024];
	size_t n;
	int len, status;

	len = snprintf(req, sizeof(req),
		       "%s %s HTTP/1.1\r\nHost: localhost\r\nAccept: application/json\r\n"
		       "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
		       method, path, body ? strlen(body) : 0, body ? body : "");
	if (len < 0 || (size_t)len >= sizeof(req) || write_all(c->fd, req, (size_t)len) < 0)
		return -1;
	n = read_until(c, http_len);
	if (!n || sscanf(c->buf, "HTTP/1.%*d %d", &status) != 1)
		return -1;
	if (keep) {
		if (n > sizeof(keep->buf))
			return -1;
		memcpy(keep->buf, c->buf, n);
		keep->len = n;
		keep->sent = (size_t)len;
	}
	consume(c, n);
	return status;
}

/* Sends one QMP command and reads its reply line: 0 when it is a success, or -1. */
static int qmp(struct conn *c, const char *cmd)
{
	size_t n;
	int ok;

	if (write_all(c->fd, cmd, strlen(cmd)) < 0 || !(n = read_until(c, line_len)))
		return -1;
	ok = strncmp(c->buf, "{\"return\"", 9) == 0;
	consume(c, n);
	return ok ? 0 : -1;
}

/* The floor's server: answers each request on each connection to listen_fd with get (for a
 * GET) or put, reading and writing nothing else. Never returns. */
static _Noreturn void serve(int listen_fd, const struct canned *get, const struct canned *put)
{
	static struct conn c;
	const struct canned *reply;
	size_t n;

	for (;;) {
		c.fd = accept(listen_fd, NULL, NULL);
		c.len = 0;
		while (c.fd >= 0 && (n = read_until(&c, http_len))) {
			reply = strncmp(c.buf, "GET ", 4) == 0 ? get : put;
			if (write_all(c.fd, reply->buf, reply->len) < 0)
				break;
			consume(&c, n);
		}
		if (c.fd >= 0)
			close(c.fd);
	}
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* Sorts v and prints `"name": {"p50_<unit>": .., "p99_<unit>": .., "min_<unit>": .., "n": ..}`
 * (nearest-rank percentiles). */
static void print_stats(const char *name, const char *unit, double *v, size_t n, bool last)
{
	qsort(v, n, sizeof(*v), cmp_double);
	printf("\"%s\": {\"p50_%s\": %.1f, \"p99_%s\": %.1f, \"min_%s\": %.1f, \"n\": %zu}%s", name,
	       unit, v[(n * 50 + 99) / 100 - 1], unit, v[(n * 99 + 99) / 100 - 1], unit, v[0], n,
	       last ? "}\n" : ", ");
}

/* One round trip of o: 0, or -1 after saying what went wrong. */
static int op_once(const struct op *o)
{
	int status;

	if (o->qmp) {
		if (qmp(o->c, o->qmp) == 0)
			return 0;
		fprintf(stderr, "api_bench: QMP %s failed\n", o->qmp);
		return -1;
	}
	status = request(o->c, o->method, o->path, o->body, NULL);
	if (status == o->want)
		return 0;
	fprintf(stderr, "api_bench: %s %s: status %d, want %d\n", o->method, o->path, status,
		o->want);
	return -1;
}

/* Times n round trips of o into v, in us: 0, or -1. */
static int time_op(const struct op *o, double *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		double t0 = now_us();

		if (op_once(o) < 0)
			return -1;
		v[i] = now_us() - t0;
	}
	return 0;
}

/* Connects to QEMU's QMP socket, reads the greeting and leaves capabilities negotiation:
 * 0, or -1. */
static int qmp_open(struct conn *c, const char *sock)
{
	size_t n;

	c->len = 0;
	c->fd = connect_unix(sock);
	if (c->fd < 0 || !(n = read_until(c, line_len)))
		return -1;
	consume(c, n);
	return qmp(c, "{\"execute\": \"qmp_capabilities\"}");
}

/* Latency mode: n timed round trips of each op, kiln's, QMP's and the floor's, alternating in
 * blocks of BLOCK after WARMUP untimed ones each. The floor is a child process answering on
 * floor_sock with the replies kiln gave to the same requests. QMP's query-status also goes
 * padded with 100 leading spaces, which shows what each byte of a command costs QEMU. */
static int latency(const char *kiln_sock, const char *qmp_sock, const char *floor_sock, size_t n)
{
	static const char mc[] = "{\"vcpu_count\": 1, \"mem_size_mib\": 128}";
	/* Sets the machine's RAM size to the 128 MiB QEMU started with: QOM lookup, visitor and
	 * checks, the field written, nothing else changed. */
	static const char qom_set[] = "{\"execute\": \"qom-set\", \"arguments\": {\"path\": "
				      "\"/machine\", \"property\": \"memory\", \"value\": "
				      "{\"size\": 134217728}}}";
	static const char status[] = "{\"execute\": \"query-status\"}";
	static char padded[sizeof(status) + 100];
	static struct conn kc, qc, fc;
	static struct canned get, put;
	enum { K = 7 };
	static double v[K][MAX_N];
	const struct op ops[K] = {
		{ "get_root", &kc, "GET", "/", NULL, NULL, 200 },
		{ "put_machine_config", &kc, "PUT", "/machine-config", mc, NULL, 204 },
		{ "qmp_query_status", &qc, .qmp = status },
		{ "qmp_qom_set", &qc, .qmp = qom_set },
		{ "qmp_query_status_padded", &qc, .qmp = padded },
		{ "floor_get_root", &fc, "GET", "/", NULL, NULL, 200 },
		{ "floor_put_machine_config", &fc, "PUT", "/machine-config", mc, NULL, 204 },
	};
	int lfd, ret = 1;
	pid_t floor;

	snprintf(padded, sizeof(padded), "%100s%s", "", status);
	kc.fd = connect_unix(kiln_sock);
	if (kc.fd < 0 || request(&kc, "GET", "/", NULL, &get) != 200 ||
	    request(&kc, "PUT", "/machine-config", mc, &put) != 204) {
		fprintf(stderr, "api_bench: kiln at %s did not answer\n", kiln_sock);
		return 1;
	}
	if (qmp_open(&qc, qmp_sock) < 0) {
		fprintf(stderr, "api_bench: no QMP at %s\n", qmp_sock);
		return 1;
	}
	lfd = listen_unix(floor_sock);
	if (lfd < 0 || (floor = fork()) < 0) {
		fprintf(stderr, "api_bench: floor server on %s: %s\n", floor_sock, strerror(errno));
		return 1;
	}
	if (floor == 0) {
		close(kc.fd);
		close(qc.fd);
		serve(lfd, &get, &put);
	}
	close(lfd);
	fc.fd = connect_unix(floor_sock);
	if (fc.fd < 0) {
		fprintf(stderr, "api_bench: floor server on %s: %s\n", floor_sock, strerror(errno));
		goto out;
	}
	for (size_t k = 0; k < K; k++)
		for (size_t i = 0; i < WARMUP; i++)
			if (op_once(&ops[k]) < 0)
				goto out;
	for (size_t lo = 0; lo < n; lo += BLOCK) {
		size_t len = n - lo < BLOCK ? n - lo : BLOCK;

		for (size_t k = 0; k < K; k++)
			if (time_op(&ops[k], v[k] + lo, len) < 0)
				goto out;
	}
	printf("{\"bytes\": {\"get_root_request\": %zu, \"get_root_reply\": %zu, "
	       "\"put_machine_config_request\": %zu, \"put_machine_config_reply\": %zu, "
	       "\"qmp_query_status\": %zu, \"qmp_qom_set\": %zu}, ",
	       get.sent, get.len, put.sent, put.len, strlen(status), strlen(qom_set));
	for (size_t k = 0; k < K; k++)
		print_stats(ops[k].name, "us", v[k], n, k == K - 1);
	ret = 0;
out:
	kill(floor, SIGTERM);
	waitpid(floor, NULL, 0);
	unlink(floor_sock);
	return ret;
}

/* The time on clock (a process's CPU clock: all its threads, those gone included), in us, or -1. */
static double cpu_us(clockid_t clock)
{
	struct timespec ts;

	if (clock_gettime(clock, &ts) < 0)
		return -1;
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

/* Reads the number after "key": in the first line of the file at path, or -1. */
static double metric(const char *path, const char *key)
{
	char line[8192], pat[128], *p;
	FILE *f = fopen(path, "re");

	if (!f)
		return -1;
	p = fgets(line, sizeof(line), f);
	fclose(f);
	snprintf(pat, sizeof(pat), "\"%s\":", key);
	p = p ? strstr(line, pat) : NULL;
	return p ? strtod(p + strlen(pat), NULL) : -1;
}

/* Reads kiln's own start-up figures (wall, CPU) into out[0..1] through FlushMetrics: 0, or -1. */
static int kiln_metrics(struct conn *c, const char *sock, double out[2])
{
	char mpath[256], body[512];
	int ret = -1;

	snprintf(mpath, sizeof(mpath), "%s.metrics", sock);
	snprintf(body, sizeof(body), "{\"metrics_path\": \"%s\"}", mpath);
	unlink(mpath);
	if (request(c, "PUT", "/metrics", body, NULL) == 204 &&
	    request(c, "PUT", "/actions", "{\"action_type\": \"FlushMetrics\"}", NULL) == 204) {
		out[0] = metric(mpath, "process_startup_time_us");
		out[1] = metric(mpath, "process_startup_time_cpu_us");
		ret = out[0] >= 0 && out[1] >= 0 ? 0 : -1;
	}
	unlink(mpath);
	return ret;
}

/*
 * One start of t, from before fork: out[0] the wall time to the first connect that succeeds
 * (polled every 50 us), out[1] to the first reply (GET / answered, or QMP's greeting read),
 * out[2] the process's CPU time then; for kiln, out[3..4] its own figures. All in us; 0, or
 * -1 after saying why.
 */
static int start_once(const struct target *t, double out[5])
{
	static struct conn c;
	struct timeval tv = { .tv_sec = (time_t)(START_TIMEOUT_US / 1e6) };
	bool reaped = false, clocked;
	clockid_t clock;
	int ret = -1, null;
	double t0;
	pid_t pid;

	unlink(t->sock);
	t0 = now_us();
	pid = fork();
	if (pid == 0) {
		null = open("/dev/null", O_WRONLY);
		dup2(null, STDOUT_FILENO);
		dup2(null, STDERR_FILENO);
		execve(t->argv[0], t->argv, t->envp ? t->envp : environ);
		_exit(127);
	}
	if (pid < 0)
		return -1;
	c.fd = -1;
	clocked = clock_getcpuclockid(pid, &clock) == 0;
	while (clocked && (c.fd = connect_unix(t->sock)) < 0 && now_us() - t0 < START_TIMEOUT_US &&
	       !(reaped = waitpid(pid, NULL, WNOHANG) == pid))
		nanosleep(&(struct timespec){ .tv_nsec = 50000 }, NULL);
	if (c.fd >= 0) {
		out[0] = now_us() - t0;
		c.len = 0;
		setsockopt(c.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		if (t->qmp ? read_until(&c, line_len) > 0 : request(&c, "GET", "/", NULL, NULL) == 200) {
			out[1] = now_us() - t0;
			out[2] = cpu_us(clock);
			ret = out[2] >= 0 ? 0 : -1;
		}
		if (ret == 0 && t->metrics)
			ret = kiln_metrics(&c, t->sock, out + 3);
		close(c.fd);
	}
	if (ret < 0)
		fprintf(stderr, "api_bench: %s did not serve %s\n", t->argv[0], t->sock);
	if (!reaped) {
		kill(pid, SIGTERM);
		waitpid(pid, NULL, 0);
	}
	unlink(t->sock);
	return ret;
}

/* The key prefix_suffix, in a buffer that lasts until the next call. */
static const char *key(const char *prefix, const char *suffix)
{
	static char k[128];

	snprintf(k, sizeof(k), "%s_%s", prefix, suffix);
	return k;
}

/* A copy of api_bench's environment with one more assignment, or NULL. */
static char **env_with(char *assignment)
{
	size_t n = 0;
	char **env;

	while (environ[n])
		n++;
	env = calloc(n + 2, sizeof(*env));
	if (env) {
		memcpy(env, environ, n * sizeof(*env));
		env[n] = assignment;
	}
	return env;
}

/*
 * Startup mode: runs starts of each program, taking turns: kiln, kiln --no-seccomp, QEMU
 * (qemu_argv, to which the QMP socket is added) and the floor (api_bench --listen, bare, with
 * all of kiln's libraries preloaded, and with gnutls alone), each figure's percentiles over
 * its starts.
 */
static int startup(const char *dir, size_t runs, char *kiln, const char *libs, const char *tls,
		   char **qemu_argv, int qemu_argc)
{
	enum { T = 6 };
	static const char *names[T] = { "kiln", "kiln_noseccomp", "qemu",
					"floor", "floor_libs", "floor_gnutls" };
	static char socks[T][108], qmp_arg[160], ld_libs[4096], ld_tls[4096]; /* 108: sun_path */
	static double v[T][5][MAX_N];
	static char *self = "/proc/self/exe";
	char **qemu = calloc((size_t)qemu_argc + 3, sizeof(*qemu));
	char **env_libs = env_with(ld_libs), **env_tls = env_with(ld_tls);
	double out[5];
	int ret = 1;

	for (int k = 0; k < T; k++)
		snprintf(socks[k], sizeof(socks[k]), "%s/%s.sock", dir, names[k]);
	snprintf(qmp_arg, sizeof(qmp_arg), "unix:%s,server=on,wait=off", socks[2]);
	snprintf(ld_libs, sizeof(ld_libs), "LD_PRELOAD=%s", libs);
	snprintf(ld_tls, sizeof(ld_tls), "LD_PRELOAD=%s", tls);
	if (!qemu || !env_libs || !env_tls)
		goto out;
	memcpy(qemu, qemu_argv, (size_t)qemu_argc * sizeof(*qemu));
	qemu[qemu_argc] = "-qmp";
	qemu[qemu_argc + 1] = qmp_arg;

	char *kiln_argv[] = { kiln, "--api-sock", socks[0], "--id", "bench", NULL };
	char *nosec_argv[] = { kiln, "--no-seccomp", "--api-sock", socks[1], "--id", "bench", NULL };
	char *floor_argv[] = { self, "--listen", socks[3], NULL };
	char *libs_argv[] = { self, "--listen", socks[4], NULL };
	char *tls_argv[] = { self, "--listen", socks[5], NULL };
	const struct target targets[T] = {
		{ names[0], socks[0], kiln_argv, NULL, false, true },
		{ names[1], socks[1], nosec_argv, NULL, false, false },
		{ names[2], socks[2], qemu, NULL, true, false },
		{ names[3], socks[3], floor_argv, NULL, false, false },
		{ names[4], socks[4], libs_argv, env_libs, false, false },
		{ names[5], socks[5], tls_argv, env_tls, false, false },
	};

	for (size_t i = 0; i < runs; i++)
		for (size_t j = 0; j < T; j++) {
			size_t k = (i + j) % T;

			if (start_once(&targets[k], out) < 0)
				goto out;
			for (int f = 0; f < 5; f++)
				v[k][f][i] = out[f];
		}
	printf("{");
	for (int k = 0; k < T; k++) {
		print_stats(key(names[k], "start_to_socket"), "us", v[k][0], runs, false);
		print_stats(key(names[k], "start_to_reply"), "us", v[k][1], runs, false);
		print_stats(key(names[k], "cpu_to_reply"), "us", v[k][2], runs, false);
	}
	print_stats("kiln_self_startup", "us", v[0][3], runs, false);
	print_stats("kiln_self_startup_cpu", "us", v[0][4], runs, true);
	ret = 0;
out:
	free(qemu);
	free(env_libs);
	free(env_tls);
	return ret;
}

/* Listen mode, the floor for start-up: listens on sock, answers every request with an empty
 * JSON object. */
static int listen_mode(const char *sock)
{
	static struct canned reply;
	int fd = listen_unix(sock);

	if (fd < 0)
		return 1;
	reply.len = (size_t)snprintf(reply.buf, sizeof(reply.buf),
				     "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}");
	serve(fd, &reply, &reply);
}

int main(int argc, char **argv)
{
	long n;

	signal(SIGPIPE, SIG_IGN);
	if (argc == 3 && strcmp(argv[1], "--listen") == 0)
		return listen_mode(argv[2]);
	if (argc >= 8 && strcmp(argv[1], "--startup") == 0 && (n = atol(argv[3])) > 0 &&
	    n <= MAX_N)
		return startup(argv[2], (size_t)n, argv[4], argv[5], argv[6], argv + 7, argc - 7);
	if (argc == 6 && strcmp(argv[1], "--latency") == 0 && (n = atol(argv[5])) > 0 &&
	    n <= MAX_N)
		return latency(argv[2], argv[3], argv[4], (size_t)n);
	fprintf(stderr, "usage: api_bench --latency KILN_SOCKET QMP_SOCKET FLOOR_SOCKET N\n"
			"       api_bench --startup DIR RUNS KILN LIBS TLS_LIBS QEMU [QEMU_FLAG...]\n"
			"       api_bench --listen SOCKET\n");
	return 2;
}
