/* api_bench: times kiln's API over its unix socket (request latency on one keep-alive
 * connection) and kiln's start-up (process start until the socket accepts). Used by bench/run. */
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
#define MAX_N 100000
#define START_TIMEOUT_US 30000000.0 /* L1 under TCG is slow */

/* One keep-alive HTTP/1.1 connection; buf holds bytes read but not yet consumed. */
struct conn {
	int fd;
	size_t len;
	char buf[16384];
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

/* Sends one request (body may be NULL) and reads the whole response: status line, headers and
 * Content-Length bytes of body. Returns the HTTP status, or -1 on a broken or oversized reply. */
static int request(struct conn *c, const char *method, const char *path, const char *body)
{
	char req[1024], *end, *cl;
	size_t head, need;
	int n, status;

	n = snprintf(req, sizeof(req),
		     "%s %s HTTP/1.1\r\nHost: localhost\r\nAccept: application/json\r\n"
		     "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
		     method, path, body ? strlen(body) : 0, body ? body : "");
	/* A blocking write of under 1 KiB to a unix stream socket is written whole. */
	if (n < 0 || (size_t)n >= sizeof(req) || write(c->fd, req, (size_t)n) != n)
		return -1;
	for (;;) {
		c->buf[c->len] = '\0';
		end = strstr(c->buf, "\r\n\r\n");
		if (end) {
			head = (size_t)(end - c->buf) + 4;
			cl = strcasestr(c->buf, "\r\nContent-Length:");
			need = head + (cl && cl < end ? strtoul(cl + 17, NULL, 10) : 0);
			if (need < sizeof(c->buf) && c->len >= need)
				break;
		}
		if (c->len + 1 >= sizeof(c->buf))
			return -1;
		ssize_t r = read(c->fd, c->buf + c->len, sizeof(c->buf) - 1 - c->len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		c->len += (size_t)r;
	}
	if (sscanf(c->buf, "HTTP/1.%*d %d", &status) != 1)
		return -1;
	memmove(c->buf, c->buf + need, c->len - need);
	c->len -= need;
	return status;
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

/* Times n requests (after WARMUP untimed ones) into v, in us; -1 on an unexpected status. */
static int time_requests(struct conn *c, const char *method, const char *path, const char *body,
			 int want, double *v, size_t n)
{
	for (size_t i = 0; i < n + WARMUP; i++) {
		double t0 = now_us();
		int status = request(c, method, path, body);

		if (status != want) {
			fprintf(stderr, "api_bench: %s %s: status %d, want %d\n", method, path,
				status, want);
			return -1;
		}
		if (i >= WARMUP)
			v[i - WARMUP] = now_us() - t0;
	}
	return 0;
}

/* Latency mode: N timed GET / and N timed PUT /machine-config on one connection. */
static int latency(const char *sock, size_t n)
{
	static double get[MAX_N], put[MAX_N];
	static struct conn c;

	c.fd = connect_unix(sock);
	if (c.fd < 0) {
		fprintf(stderr, "api_bench: %s: %s\n", sock, strerror(errno));
		return 1;
	}
	if (time_requests(&c, "GET", "/", NULL, 200, get, n) < 0 ||
	    time_requests(&c, "PUT", "/machine-config", "{\"vcpu_count\": 1, \"mem_size_mib\": 128}",
			  204, put, n) < 0)
		return 1;
	close(c.fd);
	printf("{");
	print_stats("get_root", "us", get, n, false);
	print_stats("put_machine_config", "us", put, n, true);
	return 0;
}

/* CPU time (utime + stime) of pid from /proc/pid/stat, in us (clock-tick resolution), or -1. */
static double proc_cpu_us(pid_t pid)
{
	char path[64], line[1024], *p;
	unsigned long ut, st;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return -1;
	p = fgets(line, sizeof(line), f) ? strrchr(line, ')') : NULL;
	fclose(f);
	/* After "pid (comm)": state, then fields 4..13, then utime and stime. */
	if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
		return -1;
	return (ut + st) * 1e6 / sysconf(_SC_CLK_TCK);
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

/* One start of kiln: wall time to the first accepted connect, the child's CPU time then (from
 * /proc and kiln's own metrics), into out[0..3] in us. 0, or -1 after reporting why. */
static int start_once(const char *kiln, const char *sock, double out[4])
{
	static struct conn c;
	char mpath[256], body[512];
	bool reaped = false;
	int ret = -1, null;
	double t0;
	pid_t pid;

	snprintf(mpath, sizeof(mpath), "%s.metrics", sock);
	snprintf(body, sizeof(body), "{\"metrics_path\": \"%s\"}", mpath);
	unlink(sock);
	unlink(mpath);
	t0 = now_us();
	pid = fork();
	if (pid == 0) {
		null = open("/dev/null", O_WRONLY);
		dup2(null, STDOUT_FILENO);
		dup2(null, STDERR_FILENO);
		execl(kiln, kiln, "--api-sock", sock, "--id", "bench", (char *)NULL);
		_exit(127);
	}
	if (pid < 0)
		return -1;
	while ((c.fd = connect_unix(sock)) < 0 && now_us() - t0 < START_TIMEOUT_US &&
	       !(reaped = waitpid(pid, NULL, WNOHANG) == pid))
		nanosleep(&(struct timespec){ .tv_nsec = 50000 }, NULL);
	if (c.fd >= 0) {
		out[0] = now_us() - t0;
		out[1] = proc_cpu_us(pid);
		c.len = 0;
		if (request(&c, "PUT", "/metrics", body) == 204 &&
		    request(&c, "PUT", "/actions", "{\"action_type\": \"FlushMetrics\"}") == 204) {
			out[2] = metric(mpath, "process_startup_time_us");
			out[3] = metric(mpath, "process_startup_time_cpu_us");
			ret = out[1] >= 0 && out[2] >= 0 && out[3] >= 0 ? 0 : -1;
		}
		close(c.fd);
	}
	if (ret < 0)
		fprintf(stderr, "api_bench: %s did not serve %s (or its metrics)\n", kiln, sock);
	if (!reaped) {
		kill(pid, SIGTERM);
		waitpid(pid, NULL, 0);
	}
	unlink(sock);
	unlink(mpath);
	return ret;
}

/* Startup mode: RUNS starts of kiln, each figure's percentiles over them. */
static int startup(const char *kiln, const char *sock, size_t runs)
{
	static double v[4][MAX_N];
	double out[4];

	for (size_t i = 0; i < runs; i++) {
		if (start_once(kiln, sock, out) < 0)
			return 1;
		for (int k = 0; k < 4; k++)
			v[k][i] = out[k];
	}
	printf("{");
	print_stats("start_to_socket", "us", v[0], runs, false);
	print_stats("proc_stat_cpu", "us", v[1], runs, false);
	print_stats("kiln_startup", "us", v[2], runs, false);
	print_stats("kiln_startup_cpu", "us", v[3], runs, true);
	return 0;
}

int main(int argc, char **argv)
{
	long n;

	signal(SIGPIPE, SIG_IGN);
	if (argc == 5 && strcmp(argv[1], "--startup") == 0 && (n = atol(argv[4])) > 0 && n <= MAX_N)
		return startup(argv[2], argv[3], (size_t)n);
	if (argc == 3 && (n = atol(argv[2])) > 0 && n <= MAX_N)
		return latency(argv[1], (size_t)n);
	fprintf(stderr, "usage: api_bench SOCKET N\n"
			"       api_bench --startup KILN_BINARY SOCKET RUNS\n");
	return 2;
}
