/* Leveled logging to stderr or a file, in one place for the whole process. */
#ifndef KILN_LOG_H
#define KILN_LOG_H

#include "config.h"

/*
 * Points the log at path (NULL: stderr) with the given level and decorations.
 * Returns 0 or -errno if the file cannot be opened (the log stays where it was).
 */
int log_setup(const char *path, enum log_level level, bool show_level, bool show_origin)
	__attribute__((warn_unused_result));

/* Current threshold; messages above it are dropped. */
enum log_level log_level_get(void);

/* Names the instance in log file lines (--id). */
void log_set_instance_id(const char *id);

/* The calling thread's last error message (without decorations), "" if none since the clear. */
const char *log_last_error(void);
void log_clear_last_error(void);

/* Formats one line; use the macros below. */
void log_write(enum log_level level, const char *file, int line, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

#define log_error(...) log_write(LOG_ERROR, __FILE__, __LINE__, __VA_ARGS__)
#define log_warn(...) log_write(LOG_WARNING, __FILE__, __LINE__, __VA_ARGS__)
#define log_info(...) log_write(LOG_INFO, __FILE__, __LINE__, __VA_ARGS__)
#define log_debug(...) log_write(LOG_DEBUG, __FILE__, __LINE__, __VA_ARGS__)

#endif
