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
} sink = { PTHREAD_MUTEX_INITIALIZER, STDERR_FILENO, LOG_INFO, false, false };

static const char *const level_names[] = { "Off", "Error", "Warn", "Info", "Debug", "Trace" };

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

void log_write(enum log_level level, const char *file, int line, const char *fmt, ...)
{
	char buf[1024];
	struct timespec ts;
	va_list ap;
	int n;

	if (level == LOG_OFF || level > sink.level)
		return;
	if (sink.fd == STDERR_FILENO) {
		n = snprintf(buf, sizeof(buf), "kiln");
	} else {
		clock_gettime(CLOCK_REALTIME, &ts);
		n = snprintf(buf, sizeof(buf), "%lld.%06ld kiln", (long long)ts.tv_sec,
			     ts.tv_nsec / 1000);
	}
	if (sink.show_level)
		n += snprintf(buf + n, sizeof(buf) - n, " [%s]", level_names[level]);
	if (sink.show_origin)
		n += snprintf(buf + n, sizeof(buf) - n, " %s:%d", file, line);
	n += snprintf(buf + n, sizeof(buf) - n, ": ");
	va_start(ap, fmt);
	if (n < (int)sizeof(buf))
		n += vsnprintf(buf + n, sizeof(buf) - n, fmt, ap);
	va_end(ap);
	if (n > (int)sizeof(buf) - 2)
		n = sizeof(buf) - 2;
	buf[n++] = '\n';
	pthread_mutex_lock(&sink.lock);
	if (write(sink.fd, buf, n) < 0) {
		/* Nowhere left to report a failing log sink. */
	}
	pthread_mutex_unlock(&sink.lock);
}
