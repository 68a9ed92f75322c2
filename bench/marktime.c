/* marktime: runs a command, times the first output line holding a marker, and samples the
 * command's memory at that moment. Used by bench/run to measure kiln and QEMU alike. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "monio.h"

/* The child, for the alarm handler: a single-purpose tool's one global. */
static volatile pid_t child;

static void on_alarm(int sig)
{
	(void)sig;
	if (child > 0)
		kill(child, SIGKILL);
}

/* Reads the kB value of field (e.g. "RssAnon:") from /proc/pid/status, or -1. */
static long status_kib(pid_t pid, const char *field)
{
	char path[64], line[256];
	long v = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (strncmp(line, field, strlen(field)) == 0)
			v = strtol(line + strlen(field), NULL, 10);
	fclose(f);
	return v;
}

int main(int argc, char **argv)
{
	long anon = -1, file = -1, shmem = -1;
	double t0, marked = -1;
	const char *marker, *log_path = NULL;
	FILE *log = NULL, *in;
	int fds[2], status, argi = 2;
	unsigned timeout_s = 0;
	char line[4096];
	pid_t pid;

	if (argc < 4) {
		fprintf(stderr, "usage: marktime MARKER [--log FILE] [--timeout S] -- CMD...\n");
		return 2;
	}
	marker = argv[1];
	argi = monio_options(argc, argv, argi, &log_path, &timeout_s);
	if (log_path)
		log = fopen(log_path, "we");
	if (argi >= argc || pipe(fds) < 0)
		return 2;
	t0 = monio_now_ms();
	pid = fork();
	if (pid == 0) {
		dup2(fds[1], STDOUT_FILENO);
		dup2(fds[1], STDERR_FILENO);
		close(fds[0]);
		close(fds[1]);
		execvp(argv[argi], argv + argi);
		fprintf(stderr, "marktime: exec %s: %s\n", argv[argi], strerror(errno));
		_exit(127);
	}
	child = pid;
	if (timeout_s) {
		signal(SIGALRM, on_alarm);
		alarm(timeout_s);
	}
	close(fds[1]);
	in = fdopen(fds[0], "r");
	while (in && fgets(line, sizeof(line), in)) {
		if (log)
			fputs(line, log);
		if (marked < 0 && strstr(line, marker)) {
			marked = monio_now_ms() - t0;
			anon = status_kib(pid, "RssAnon:");
			file = status_kib(pid, "RssFile:");
			shmem = status_kib(pid, "RssShmem:");
		}
	}
	waitpid(pid, &status, 0);
	printf("marker_ms=%.1f total_ms=%.1f exit=%d rss_anon_kib=%ld rss_file_kib=%ld "
	       "rss_shmem_kib=%ld\n",
	       marked, monio_now_ms() - t0,
	       WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status), anon, file, shmem);
	if (log)
		fclose(log);
	return marked < 0;
}
