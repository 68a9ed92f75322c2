/* Metrics in Firecracker's shape: the field tables, the JSON snapshot, the non-blocking writer. */
#include "metrics.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* A device's counters, and the class whose fields describe them. */
struct metrics_device {
	const struct metrics_class *cls;
	char *id;
	void *counters;
	struct metrics_device *next;
};

/* One group of struct metrics, described by its field list. */
struct group {
	const char *name;
	size_t offset;
	const struct metrics_field *fields;
	size_t nr_fields;
};

#define GROUP_FIELDS(g, LIST)                                                                      \
	static const struct metrics_field g##_fields[] = {LIST(METRICS_FIELD, g)};
METRICS_GROUPS(GROUP_FIELDS)
#undef GROUP_FIELDS

#define GROUP(g, LIST) {#g, offsetof(struct metrics, g), g##_fields, ARRAY_LEN(g##_fields)},
static const struct group groups[] = {METRICS_GROUPS(GROUP)};
#undef GROUP

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || !errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

int metrics_init(struct metrics *m)
{
	int rc;

	memset(m, 0, sizeof(*m));
	rc = pthread_mutex_init(&m->lock, NULL);
	if (rc)
		return -rc;
	m->fd = -1;
	return 0;
}

void metrics_destroy(struct metrics *m)
{
	struct metrics_device *d, *next;

	for (d = m->devices; d; d = next) {
		next = d->next;
		free(d->counters);
		free(d->id);
		free(d);
	}
	m->devices = NULL;
	free(m->pending);
	m->pending = NULL;
	if (m->fd >= 0)
		close(m->fd);
	m->fd = -1;
	pthread_mutex_destroy(&m->lock);
}

int metrics_set_output(struct metrics *m, const char *path, char *err, size_t errlen)
{
	struct stat st;
	int fd, rc = 0;

	if (!path || !*path) {
		set_err(err, errlen, "metrics_path is empty");
		return -EINVAL;
	}
	pthread_mutex_lock(&m->lock);
	if (m->fd >= 0) {
		set_err(err, errlen, "metrics already configured: reinitialization is not allowed");
		rc = -EALREADY;
		goto out;
	}
	/*
	 * A named pipe is opened read-write, as Firecracker does: that never waits for, or fails
	 * for want of, a reader (a client may start reading after PUT /metrics); lines wait in
	 * the pipe, and once it is full they are dropped and counted.
	 */
	if (stat(path, &st) == 0 && S_ISSOCK(st.st_mode)) {
		set_err(err, errlen, "metrics path %s is a socket: metrics go to a file or a named pipe",
			path);
		rc = -ENXIO;
		goto out;
	}
	fd = open(path,
		  (stat(path, &st) == 0 && S_ISFIFO(st.st_mode) ? O_RDWR : O_WRONLY | O_APPEND) |
			  O_CREAT | O_NONBLOCK | O_CLOEXEC,
		  0600);
	if (fd < 0) {
		rc = -errno;
		set_err(err, errlen, "cannot open metrics path %s: %s", path, strerror(-rc));
		goto out;
	}
	m->fd = fd;
out:
	pthread_mutex_unlock(&m->lock);
	return rc;
}

int metrics_device_register(struct metrics *m, const struct metrics_class *cls, const char *id,
			    void **counters)
{
	struct metrics_device *d, **tail;
	int rc = 0;

	if (!id || !*id)
		return -EINVAL;
	pthread_mutex_lock(&m->lock);
	for (tail = &m->devices; *tail; tail = &(*tail)->next) {
		d = *tail;
		if (d->cls != cls && strcmp(d->cls->name, cls->name) == 0) {
			rc = -EINVAL;
			goto out;
		}
		if (d->cls == cls && strcmp(d->id, id) == 0) {
			*counters = d->counters;
			goto out;
		}
	}
	d = calloc(1, sizeof(*d));
	if (!d)
		goto nomem;
	d->cls = cls;
	d->id = strdup(id);
	d->counters = calloc(1, cls->size);
	if (!d->id || !d->counters) {
		free(d->id);
		free(d->counters);
		free(d);
		goto nomem;
	}
	*tail = d;
	*counters = d->counters;
	goto out;
nomem:
	rc = -ENOMEM;
out:
	pthread_mutex_unlock(&m->lock);
	return rc;
}

static _Atomic uint64_t *u64_at(void *base, size_t offset)
{
	return (_Atomic uint64_t *)((char *)base + offset);
}

static uint64_t take(_Atomic uint64_t *c, bool reset)
{
	return reset ? atomic_exchange_explicit(c, 0, memory_order_relaxed)
		     : atomic_load_explicit(c, memory_order_relaxed);
}

/* Reads a field into v (one value, or min/max/sum for a latency), zeroing what resets. */
static void field_take(void *base, const struct metrics_field *f, bool reset, uint64_t v[3])
{
	struct metrics_latency *l;

	switch (f->kind) {
	case METRICS_COUNTER:
		v[0] = take(u64_at(base, f->offset), reset);
		break;
	case METRICS_GAUGE:
		v[0] = take(u64_at(base, f->offset), false);
		break;
	case METRICS_LATENCY:
		l = (struct metrics_latency *)((char *)base + f->offset);
		v[0] = take(&l->min_us, false);
		v[1] = take(&l->max_us, false);
		v[2] = take(&l->sum_us, reset);
		break;
	}
}

/* Adds one device's reading of a field into the class's sum (a plain, unshared struct). */
static void field_merge(void *sum, const struct metrics_field *f, const uint64_t v[3])
{
	struct metrics_latency *l;

	switch (f->kind) {
	case METRICS_COUNTER:
	case METRICS_GAUGE:
		metrics_add(u64_at(sum, f->offset), v[0]);
		break;
	case METRICS_LATENCY:
		l = (struct metrics_latency *)((char *)sum + f->offset);
		if (v[0] && (metrics_get(&l->min_us) == 0 || v[0] < metrics_get(&l->min_us)))
			metrics_set(&l->min_us, v[0]);
		if (v[1] > metrics_get(&l->max_us))
			metrics_set(&l->max_us, v[1]);
		metrics_add(&l->sum_us, v[2]);
		break;
	}
}

/* JSON integers are signed 64-bit; a counter never gets near the top, but stay non-negative. */
static json_t *json_u64(uint64_t v)
{
	return json_integer(v > (uint64_t)LLONG_MAX ? LLONG_MAX : (json_int_t)v);
}

static int field_put(json_t *obj, const struct metrics_field *f, const uint64_t v[3])
{
	json_t *val;

	if (f->kind != METRICS_LATENCY) {
		val = json_u64(v[0]);
	} else {
		val = json_object();
		if (val && (json_object_set_new(val, "min_us", json_u64(v[0])) ||
			    json_object_set_new(val, "max_us", json_u64(v[1])) ||
			    json_object_set_new(val, "sum_us", json_u64(v[2])))) {
			json_decref(val);
			val = NULL;
		}
	}
	return json_object_set_new(obj, f->name, val) ? -ENOMEM : 0;
}

/*
 * Reads every field of the struct at base into a new object. When sum is given, the readings
 * are also merged into it. Returns NULL when out of memory.
 */
static json_t *fields_object(void *base, const struct metrics_field *fields, size_t n, bool reset,
			     void *sum)
{
	json_t *obj = json_object();
	uint64_t v[3] = {0};

	for (size_t i = 0; obj && i < n; i++) {
		field_take(base, &fields[i], reset, v);
		if (sum)
			field_merge(sum, &fields[i], v);
		if (field_put(obj, &fields[i], v) < 0) {
			json_decref(obj);
			obj = NULL;
		}
	}
	return obj;
}

/* Adds "<class>_<id>" for each device of cls (unless aggregate_only), then "<class>". */
static int class_put(json_t *root, struct metrics_device *first, bool reset)
{
	const struct metrics_class *cls = first->cls;
	void *sum = calloc(1, cls->size);
	json_t *obj;
	char *key;
	int rc = -ENOMEM;

	if (!sum)
		return -ENOMEM;
	for (struct metrics_device *d = first; d; d = d->next) {
		if (d->cls != cls)
			continue;
		obj = fields_object(d->counters, cls->fields, cls->nr_fields, reset, sum);
		if (!obj)
			goto out;
		if (cls->aggregate_only) {
			json_decref(obj);
			continue;
		}
		if (asprintf(&key, "%s_%s", cls->name, d->id) < 0) {
			json_decref(obj);
			goto out;
		}
		rc = json_object_set_new(root, key, obj) ? -ENOMEM : 0;
		free(key);
		if (rc < 0)
			goto out;
		rc = -ENOMEM;
	}
	obj = fields_object(sum, cls->fields, cls->nr_fields, false, NULL);
	rc = obj && json_object_set_new(root, cls->name, obj) == 0 ? 0 : -ENOMEM;
out:
	free(sum);
	return rc;
}

static bool class_seen_before(struct metrics_device *devices, struct metrics_device *d)
{
	for (struct metrics_device *p = devices; p != d; p = p->next)
		if (p->cls == d->cls)
			return true;
	return false;
}

/* metrics_snapshot with m->lock held. */
static json_t *snapshot_locked(struct metrics *m, uint64_t now_ms, bool reset)
{
	json_t *root = json_object();
	json_t *obj;

	if (!root || json_object_set_new(root, "utc_timestamp_ms", json_u64(now_ms)))
		goto fail;
	for (size_t i = 0; i < ARRAY_LEN(groups); i++) {
		obj = fields_object((char *)m + groups[i].offset, groups[i].fields,
				    groups[i].nr_fields, reset, NULL);
		if (!obj || json_object_set_new(root, groups[i].name, obj))
			goto fail;
	}
	for (struct metrics_device *d = m->devices; d; d = d->next)
		if (!class_seen_before(m->devices, d) && class_put(root, d, reset) < 0)
			goto fail;
	return root;
fail:
	json_decref(root);
	return NULL;
}

json_t *metrics_snapshot(struct metrics *m, uint64_t now_ms, bool reset)
{
	json_t *root;

	pthread_mutex_lock(&m->lock);
	root = snapshot_locked(m, now_ms, reset);
	pthread_mutex_unlock(&m->lock);
	return root;
}

/* write(2), retried when a signal interrupts it. */
static ssize_t write_retry(int fd, const void *buf, size_t len)
{
	ssize_t n;

	do
		n = write(fd, buf, len);
	while (n < 0 && errno == EINTR);
	return n;
}

/*
 * Finishes a line the output took only part of. Returns 0 when none is left, -EAGAIN while
 * some is, or -errno; after an error the cut line is ended with a newline at the next try, so
 * that the lines after it still parse.
 */
static int pending_drain(struct metrics *m)
{
	ssize_t n;
	int rc;

	if (!m->pending)
		return 0;
	n = write_retry(m->fd, m->pending, m->pending_len);
	if (n < 0) {
		rc = errno == EWOULDBLOCK ? -EAGAIN : -errno;
		if (rc != -EAGAIN) {
			m->pending[0] = '\n';
			m->pending_len = 1;
		}
		return rc;
	}
	if ((size_t)n < m->pending_len) {
		memmove(m->pending, m->pending + n, m->pending_len - n);
		m->pending_len -= n;
		return -EAGAIN;
	}
	free(m->pending);
	m->pending = NULL;
	m->pending_len = 0;
	return 0;
}

/*
 * Writes a new line (taking over the buffer). Returns 0 when the output took all of it or a
 * part (the rest then waits in m->pending), -EAGAIN when it took nothing, or -errno.
 */
static int line_write(struct metrics *m, char *line, size_t len)
{
	ssize_t n = write_retry(m->fd, line, len);
	int rc = 0;

	if (n < 0) {
		rc = errno == EWOULDBLOCK ? -EAGAIN : -errno;
	} else if ((size_t)n < len) {
		memmove(line, line + n, len - n);
		m->pending = line;
		m->pending_len = len - n;
		return 0;
	}
	free(line);
	return rc;
}

/* Builds one line (snapshot, compact JSON, newline) into a new buffer. */
static int line_build(struct metrics *m, uint64_t now_ms, char **line, size_t *len)
{
	json_t *root = snapshot_locked(m, now_ms, true);
	size_t n;
	char *buf;

	if (!root)
		return -ENOMEM;
	n = json_dumpb(root, NULL, 0, JSON_COMPACT);
	buf = n ? malloc(n + 1) : NULL;
	if (buf && json_dumpb(root, buf, n, JSON_COMPACT) != n) {
		free(buf);
		buf = NULL;
	}
	json_decref(root);
	if (!buf)
		return -ENOMEM;
	buf[n] = '\n';
	*line = buf;
	*len = n + 1;
	return 0;
}

int metrics_flush(struct metrics *m, uint64_t now_ms)
{
	size_t len;
	char *line;
	int rc;

	pthread_mutex_lock(&m->lock);
	if (m->fd < 0) {
		rc = 0;
		goto out;
	}
	/* Until a partly written line is finished, nothing is read: counters keep adding up. */
	rc = pending_drain(m);
	if (rc == 0)
		rc = line_build(m, now_ms, &line, &len);
	if (rc == 0)
		rc = line_write(m, line, len);
	if (rc == -EAGAIN)
		metrics_inc(&m->logger.missed_metrics_count);
	else if (rc < 0)
		metrics_inc(&m->logger.metrics_fails);
out:
	pthread_mutex_unlock(&m->lock);
	return rc;
}
