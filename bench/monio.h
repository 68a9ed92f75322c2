/* monio: how the benchmark tools (boot_start, restoretime, marktime) drive a monitor under test,
 * kiln or QEMU: the clock, messages, the options they share, starting the monitor with its
 * output on pipes, that output split into lines, and its API (HTTP) or QMP socket. Each tool
 * keeps its own loop: what to poll and what a line means. */
#ifndef KILN_BENCH_MONIO_H
#define KILN_BENCH_MONIO_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* One of a monitor's output pipes and what was read of it but not yet taken as lines. */
struct monio_stream {
	int fd; /* -1 once it ended */
	size_t len;
	char buf[65536];
};

/* A monitor's API or QMP socket and the bytes read from it but not yet consumed, kept
 * NUL-terminated. */
struct monio_peer {
	int fd;
	size_t len;
	char buf[65536];
	/* The tool's wait, which the calls below make until they have what they wait for: up to
	 * ms for the monitor's output and, when p, for p's socket (read with monio_peer_read); p
	 * is NULL while monio_connect waits for the socket to appear. < 0 gives up. ctx is the
	 * tool's. */
	int (*wait)(void *ctx, struct monio_peer *p, int ms);
	void *ctx;
};

/* CLOCK_MONOTONIC in milliseconds. */
double monio_now_ms(void);

/* Prints "NAME: " (the program's name), the message and a newline on stderr: -1. */
int monio_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Reads "[--log FILE] [--timeout S] [--]" from argv[argi] on, setting *log and *timeout_s to
 * what is given: the index of the command's first word (argc when there is none). */
int monio_options(int argc, char **argv, int argi, const char **log, unsigned *timeout_s);

/* Starts argv in a process group of its own, its stdout and stderr on pipes whose read ends go
 * to *out and *err, and its stdin on a pipe whose write end goes to *in or, when in is NULL,
 * on /dev/null. *forked (when given) is read from the clock right before the fork. The pid, or
 * -1 (said). */
pid_t monio_spawn(char **argv, int *in, int *out, int *err, double *forked)
	__attribute__((warn_unused_result));

/* The next line in st, NUL-terminated in place of its '\n', its length without the '\n' in
 * *len; when flush, whatever st still holds counts as a line. NULL when there is none. Drop it
 * with monio_drop before asking for the next. */
char *monio_line(struct monio_stream *st, bool flush, size_t *len);

/* Drops the line monio_line just gave (len as it said), and its '\n'. */
void monio_drop(struct monio_stream *st, size_t len);

/* Whether st has no room left to read into: take its lines with flush first. */
bool monio_full(const struct monio_stream *st);

/* Reads what st's pipe has into st (call it when poll says so, never while monio_full): the
 * bytes read (1 when interrupted), or 0 at the pipe's end or on an error, when st->fd is closed
 * and becomes -1. */
ssize_t monio_read(struct monio_stream *st);

/* Reads what p's socket has into p->buf (call it when poll says so): 0, or -1 (said) when the
 * answer outgrows p->buf or the socket's peer hung up. */
int monio_peer_read(struct monio_peer *p) __attribute__((warn_unused_result));

/* Connects p, emptied, to the unix socket at path, waiting ms between tries until the monitor
 * has created it: 0, or -1 (said). */
int monio_connect(struct monio_peer *p, const char *path, int ms)
	__attribute__((warn_unused_result));

/* Sends one HTTP request on p and waits for the whole answer: its status, or -1 (said). An
 * answer other than 2xx is printed with its body. *t0 (when given) is read from the clock right
 * before the request is written. */
int monio_http(struct monio_peer *p, const char *method, const char *path, const char *body,
	       double *t0) __attribute__((warn_unused_result));

/* Reads QMP lines until one holds want, and want2 when given: 0, or -1 (said) on an error
 * answer, a failed migration or no such line. */
int monio_qmp_wait(struct monio_peer *p, const char *want, const char *want2)
	__attribute__((warn_unused_result));

/* Sends one QMP command and waits for its return: 0, or -1 (said). t0 as for monio_http. */
int monio_qmp(struct monio_peer *p, const char *cmd, double *t0)
	__attribute__((warn_unused_result));

#endif
