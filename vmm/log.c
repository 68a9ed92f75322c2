/* Leveled logging: one process-wide sink, since stderr is process-wide too. */
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/*
 * The one piece of process-wide mutable state in kiln: every thread logs, and threading a
 * logger through every call would buy nothing. Guarded by lock.
 */
static struct {
	pthread_mutex_t lock;
	int fd;
	enum log_level level;
	bool show_level;
	bool show_origin;
	char id[65];
} sink = { PTHREAD_MUTEX_INITIALIZER, STDERR_FILENO, LOG_INFO, false, false, "anonymous-instance" };

/* Each thread's last error message, so that an API request can answer with the reason. */
static __thread char last_error[256];

static const char *const level_names[] = { "Off", "Error", "Warn", "Info", "Debug", "Trace" };

void log_set_instance_id(const char *id)
{
	pthread_mutex_lock(&sink.lock);
	snprintf(sink.id, sizeof(sink.id), "%s", id);
	pthread_mutex_unlock(&sink.lock);
}

const char *log_last_error(void)
{
	return last_error;
}

void log_clear_last_error(void)
{
	last_error[0] = '\0';
}

int log_setup(const char *path, enum log_level level, bool show_level, bool show_origin)
{
	int fd = STDERR_FILENO;

	if (path) {
		fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NONBLOCK, 0600);
		if (fd < 0)
			return -errno;
	}
	pthread_mutex_lock(&sink.lock);
	if (sink.fd != STDERR_FILENO)
		close(sink.fd);
	sink.fd = fd;
	sink.level = level;
	sink.show_level = show_level;
	sink.show_origin = show_origin;
	pthread_mutex_unlock(&sink.lock);
	return 0;
}

enum log_level log_level_get(void)
{
	return sink.level;
}

/*
 * On stderr: "kiln: message". In a log file, Firecracker's shape:
 * "2026-11-25T10:42:00.123456789 [instance-id:thread:LEVEL:file:line] message".
 */
void log_write(enum log_level level, const char *file, int line, const char *fmt, ...)
{
	char buf[1024], thread[16] = "?";
	size_t msg_at;
	struct timespec ts;
	struct tm tm;
	va_list ap;
	int n;

	if (level == LOG_OFF || level > sink.level)
		return;
	if (sink.fd == STDERR_FILENO) {
		n = snprintf(buf, sizeof(buf), "kiln");
		if (sink.show_level)
			n += snprintf(buf + n, sizeof(buf) - n, " [%s]", level_names[level]);
		if (sink.show_origin)
			n += snprintf(buf + n, sizeof(buf) - n, " %s:%d", file, line);
		n += snprintf(buf + n, sizeof(buf) - n, ": ");
	} else {
		clock_gettime(CLOCK_REALTIME, &ts);
		gmtime_r(&ts.tv_sec, &tm);
		pthread_getname_np(pthread_self(), thread, sizeof(thread));
		n = (int)strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
		n += snprintf(buf + n, sizeof(buf) - n, ".%09ld [%s:%s", ts.tv_nsec, sink.id, thread);
		if (sink.show_level)
			n += snprintf(buf + n, sizeof(buf) - n, ":%s", level_names[level]);
		if (sink.show_origin)
			n += snprintf(buf + n, sizeof(buf) - n, ":%s:%d", file, line);
		n += snprintf(buf + n, sizeof(buf) - n, "] ");
	}
	msg_at = (size_t)n < sizeof(buf) ? (size_t)n : sizeof(buf) - 1;
	va_start(ap, fmt);
	if (n < (int)sizeof(buf))
		n += vsnprintf(buf + n, sizeof(buf) - n, fmt, ap);
	va_end(ap);
	if (n > (int)sizeof(buf) - 2)
		n = sizeof(buf) - 2;
	buf[n] = '\0';
	if (level == LOG_ERROR)
		snprintf(last_error, sizeof(last_error), "%s", buf + msg_at);
	buf[n++] = '\n';
	pthread_mutex_lock(&sink.lock);
	if (write(sink.fd, buf, n) < 0) {
		/* Nowhere left to report a failing log sink. */
	}
	pthread_mutex_unlock(&sink.lock);
}
