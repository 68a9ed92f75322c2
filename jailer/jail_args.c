/* kiln-jailer's command line: Firecracker's jailer flags, their checks, and the paths built from them. */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "jail_args.h"

enum flag {
	F_ID,
	F_EXEC_FILE,
	F_UID,
	F_GID,
	F_CHROOT_BASE,
	F_PARENT_CGROUP,
	F_CGROUP,
	F_CGROUP_VERSION,
	F_NETNS,
	F_RESOURCE_LIMIT,
	F_COPY_IN,
	F_DAEMONIZE,
	F_NEW_PID_NS,
	F_COPY_LIBS,
	F_HELP,
};

static const struct {
	const char *name;
	bool valued;
} flags[] = {
	[F_ID] = { "--id", true },
	[F_EXEC_FILE] = { "--exec-file", true },
	[F_UID] = { "--uid", true },
	[F_GID] = { "--gid", true },
	[F_CHROOT_BASE] = { "--chroot-base-dir", true },
	[F_PARENT_CGROUP] = { "--parent-cgroup", true },
	[F_CGROUP] = { "--cgroup", true },
	[F_CGROUP_VERSION] = { "--cgroup-version", true },
	[F_NETNS] = { "--netns", true },
	[F_RESOURCE_LIMIT] = { "--resource-limit", true },
	[F_COPY_IN] = { "--copy-in", true },
	[F_DAEMONIZE] = { "--daemonize", false },
	[F_NEW_PID_NS] = { "--new-pid-ns", false },
	[F_COPY_LIBS] = { "--copy-libs", false },
	[F_HELP] = { "--help", false },
};

void jail_args_usage(FILE *f)
{
	fprintf(f,
		"usage: kiln-jailer --id ID --exec-file PATH --uid UID --gid GID [options] [-- ARGS...]\n"
		"\n"
		"Builds a chroot for one microVM at <chroot-base-dir>/<exec-file name>/<id>/root,\n"
		"copies the exec file into it, puts the process in a cgroup v2, enters a new mount\n"
		"namespace rooted there (pivot_root), creates /dev/kvm and /dev/net/tun, drops to\n"
		"UID:GID, closes stray file descriptors and execs /<exec-file name> --id=ID ARGS...\n"
		"with an empty environment. Must run as root. Options (Firecracker's jailer names):\n"
		"  --id ID                 1 to %d letters, digits or '-' (required)\n"
		"  --exec-file PATH        absolute path of the program to jail, e.g. kiln (required)\n"
		"  --uid UID, --gid GID    numeric ids the program runs as (required)\n"
		"  --chroot-base-dir DIR   absolute (default " JAIL_DEFAULT_CHROOT_BASE ")\n"
		"  --cgroup FILE=VALUE     write VALUE to FILE of the VM's cgroup, e.g.\n"
		"                          memory.max=512M or 'cpu.max=50000 100000' (repeatable)\n"
		"  --parent-cgroup PATH    the VM's cgroup is <cgroup2 mount>/PATH/<id> (default:\n"
		"                          the exec file's name)\n"
		"  --cgroup-version 2      only cgroup v2 is supported\n"
		"  --netns PATH            join this network namespace (e.g. /var/run/netns/NAME)\n"
		"  --resource-limit fsize=N|no-file=N\n"
		"                          setrlimit (repeatable; no-file defaults to %d)\n"
		"  --daemonize             setsid, stdin/stdout/stderr to /dev/null\n"
		"  --new-pid-ns            run the program as PID 1 of a new PID namespace; its pid\n"
		"                          goes to /<exec-file name>.pid in the jail. Without\n"
		"                          --daemonize the jailer waits and exits with its status\n"
		"  --copy-in SRC[:DST]     copy host file SRC to DST in the jail (default /<name of\n"
		"                          SRC>), owned by UID:GID (kiln only, repeatable)\n"
		"  --copy-libs             copy the exec file's shared libraries and ELF interpreter\n"
		"                          into the jail, at the same paths (kiln only)\n"
		"  --help                  print this help and exit\n"
		"\n"
		"Exit codes: 2 bad arguments, 1 failure; with --new-pid-ns and no --daemonize, the\n"
		"jailed program's own status (128+N when signal N ended it).\n",
		JAIL_ID_MAX, JAIL_DEFAULT_NOFILE);
}

static int bad(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int bad(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

/* Whether path has an empty, "." or ".." component (leading and trailing '/'s aside). */
static bool has_odd_component(const char *path)
{
	const char *p = path;

	while (*p == '/')
		p++;
	while (*p) {
		size_t n = strcspn(p, "/");

		if ((n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
			return true;
		p += n;
		if (*p == '/' && p[1] == '/' && p[strspn(p, "/")] != '\0')
			return true;
		if (*p == '/')
			p++;
	}
	return false;
}

/* An absolute path without "." or ".." components, shorter than PATH_MAX. */
static int check_abs_path(const char *flag, const char *path, char *err, size_t errlen)
{
	if (path[0] != '/')
		return bad(err, errlen, "%s \"%s\": must be an absolute path", flag, path);
	if (has_odd_component(path))
		return bad(err, errlen, "%s \"%s\": no \".\", \"..\" or empty components", flag, path);
	if (strlen(path) >= PATH_MAX)
		return bad(err, errlen, "%s: path too long", flag);
	return 0;
}

static int parse_id_number(const char *flag, const char *s, unsigned *out, char *err, size_t errlen)
{
	unsigned long long n;
	char *end;

	errno = 0;
	n = strtoull(s, &end, 10);
	if (errno || end == s || *end || s[0] == '-' || s[0] == '+' || n >= UINT_MAX)
		return bad(err, errlen, "%s \"%s\": expected a number from 0 to %u", flag, s,
			   UINT_MAX - 1);
	*out = (unsigned)n;
	return 0;
}

/* Letters, digits, '_' and '.', with a '.' neither first nor last: "memory.max". */
static bool valid_cgroup_file(const char *f)
{
	size_t n = strlen(f);

	if (n == 0 || n > 64 || f[0] == '.' || f[n - 1] == '.' || !strchr(f, '.'))
		return false;
	for (size_t i = 0; i < n; i++)
		if (!(f[i] == '_' || f[i] == '.' || (f[i] >= '0' && f[i] <= '9') ||
		      (f[i] >= 'a' && f[i] <= 'z')))
			return false;
	return true;
}

static int add_cgroup(struct jail_args *a, const char *arg, char *err, size_t errlen)
{
	const char *eq = strchr(arg, '=');
	struct jail_cgroup_value *c;

	if (!eq)
		return bad(err, errlen, "--cgroup \"%s\": expected FILE=VALUE, e.g. memory.max=512M",
			   arg);
	if (a->nr_cgroups == JAIL_MAX_CGROUPS)
		return bad(err, errlen, "--cgroup: at most %d", JAIL_MAX_CGROUPS);
	c = &a->cgroups[a->nr_cgroups];
	c->file = strndup(arg, (size_t)(eq - arg));
	c->value = strdup(eq + 1);
	if (!c->file || !c->value) {
		free(c->file);
		free(c->value);
		c->file = c->value = NULL;
		return bad(err, errlen, "out of memory");
	}
	a->nr_cgroups++;
	if (!valid_cgroup_file(c->file))
		return bad(err, errlen, "--cgroup \"%s\": \"%s\" is not a cgroup file name "
			   "(CONTROLLER.KEY, lower case)", arg, c->file);
	if (strcmp(c->file, "cgroup.procs") == 0 || strcmp(c->file, "cgroup.threads") == 0 ||
	    strcmp(c->file, "cgroup.subtree_control") == 0)
		return bad(err, errlen, "--cgroup \"%s\": the jailer writes %s itself", arg,
			   c->file);
	if (c->value[0] == '\0' || strchr(c->value, '\n'))
		return bad(err, errlen, "--cgroup \"%s\": the value must be one non-empty line", arg);
	return 0;
}

static int add_rlimit(struct jail_args *a, const char *arg, char *err, size_t errlen)
{
	const char *eq = strchr(arg, '=');
	unsigned long long n;
	char *end;
	long long *slot;

	if (eq && (size_t)(eq - arg) == 5 && strncmp(arg, "fsize", 5) == 0)
		slot = &a->fsize;
	else if (eq && (size_t)(eq - arg) == 7 && strncmp(arg, "no-file", 7) == 0)
		slot = &a->nofile;
	else
		return bad(err, errlen, "--resource-limit \"%s\": expected fsize=N or no-file=N", arg);
	errno = 0;
	n = strtoull(eq + 1, &end, 10);
	if (errno || end == eq + 1 || *end || eq[1] == '-' || n > LLONG_MAX)
		return bad(err, errlen, "--resource-limit \"%s\": N must be a whole number", arg);
	*slot = (long long)n;
	return 0;
}

static int add_copy(struct jail_args *a, const char *arg, char *err, size_t errlen)
{
	const char *sep = NULL, *base;
	struct jail_copy_in *c;
	size_t skip;
	int ret;

	/* The last ":/" splits SRC from DST, so a SRC may hold ':' as long as no DST follows. */
	for (const char *p = strstr(arg, ":/"); p; p = strstr(p + 1, ":/"))
		sep = p;
	if (a->nr_copies == JAIL_MAX_COPY_IN)
		return bad(err, errlen, "--copy-in: at most %d", JAIL_MAX_COPY_IN);
	c = &a->copies[a->nr_copies];
	c->src = sep ? strndup(arg, (size_t)(sep - arg)) : strdup(arg);
	if (!c->src)
		return bad(err, errlen, "out of memory");
	a->nr_copies++;
	ret = check_abs_path("--copy-in", c->src, err, errlen);
	if (ret < 0)
		return ret;
	base = strrchr(c->src, '/') + 1;
	if (!sep && *base == '\0')
		return bad(err, errlen, "--copy-in \"%s\": SRC must name a file", arg);
	if (sep) {
		c->dst = strdup(sep + 1);
	} else if (asprintf(&c->dst, "/%s", base) < 0) {
		c->dst = NULL;
	}
	if (!c->dst)
		return bad(err, errlen, "out of memory");
	ret = check_abs_path("--copy-in", c->dst, err, errlen);
	if (ret < 0)
		return ret;
	if (c->dst[strlen(c->dst) - 1] == '/')
		return bad(err, errlen, "--copy-in \"%s\": DST must name a file, not \"%s\"", arg,
			   c->dst);
	/* One leading '/': the jailer compares DST with "/<exec name>", which "//kiln" would pass. */
	skip = strspn(c->dst, "/") - 1;
	memmove(c->dst, c->dst + skip, strlen(c->dst + skip) + 1);
	return 0;
}

/* A relative path of names made of letters, digits, '.', '_' and '-', none "." or "..". */
static bool valid_parent_cgroup(const char *p)
{
	if (p[0] == '\0' || p[0] == '/' || p[strlen(p) - 1] == '/' || has_odd_component(p) ||
	    strlen(p) >= PATH_MAX / 2)
		return false;
	for (; *p; p++)
		if (!(*p == '/' || *p == '.' || *p == '_' || *p == '-' ||
		      (*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'z') ||
		      (*p >= 'A' && *p <= 'Z')))
			return false;
	return true;
}

static int set_once(const char **slot, const char *flag, const char *val, char *err, size_t errlen)
{
	if (*slot)
		return bad(err, errlen, "%s given twice", flag);
	*slot = val;
	return 0;
}

static int take_flag(struct jail_args *a, enum flag f, const char *val, bool *have_uid,
		     bool *have_gid, char *err, size_t errlen)
{
	unsigned n = 0;
	int ret = 0;

	switch (f) {
	case F_ID:
		if ((ret = set_once(&a->id, "--id", val, err, errlen)) < 0)
			return ret;
		if (!instance_id_valid(val))
			return bad(err, errlen, "--id \"%s\": use 1 to %d letters, digits or '-'",
				   val, JAIL_ID_MAX);
		return 0;
	case F_EXEC_FILE:
		if ((ret = set_once(&a->exec_file, "--exec-file", val, err, errlen)) < 0)
			return ret;
		if ((ret = check_abs_path("--exec-file", val, err, errlen)) < 0)
			return ret;
		a->exec_name = strrchr(val, '/') + 1;
		if (a->exec_name[0] == '\0')
			return bad(err, errlen, "--exec-file \"%s\": must name a file", val);
		return 0;
	case F_UID:
	case F_GID:
		if (*(f == F_UID ? have_uid : have_gid))
			return bad(err, errlen, "%s given twice", flags[f].name);
		if ((ret = parse_id_number(flags[f].name, val, &n, err, errlen)) < 0)
			return ret;
		if (f == F_UID) {
			a->uid = n;
			*have_uid = true;
		} else {
			a->gid = n;
			*have_gid = true;
		}
		return 0;
	case F_CHROOT_BASE:
		if (a->chroot_base)
			return bad(err, errlen, "--chroot-base-dir given twice");
		if ((ret = check_abs_path("--chroot-base-dir", val, err, errlen)) < 0)
			return ret;
		if (!(a->chroot_base = strdup(val)))
			return bad(err, errlen, "out of memory");
		for (size_t k = strlen(a->chroot_base); k > 1 && a->chroot_base[k - 1] == '/'; k--)
			a->chroot_base[k - 1] = '\0';
		return 0;
	case F_PARENT_CGROUP:
		if ((ret = set_once(&a->parent_cgroup, "--parent-cgroup", val, err, errlen)) < 0)
			return ret;
		if (!valid_parent_cgroup(val))
			return bad(err, errlen, "--parent-cgroup \"%s\": expected a relative path of "
				   "letters, digits, '.', '_' and '-'", val);
		return 0;
	case F_CGROUP:
		return add_cgroup(a, val, err, errlen);
	case F_CGROUP_VERSION:
		if (strcmp(val, "2") != 0)
			return bad(err, errlen, "--cgroup-version \"%s\": kiln-jailer supports only "
				   "cgroup v2 (--cgroup-version 2)", val);
		return 0;
	case F_NETNS:
		if ((ret = set_once(&a->netns, "--netns", val, err, errlen)) < 0)
			return ret;
		return check_abs_path("--netns", val, err, errlen);
	case F_RESOURCE_LIMIT:
		return add_rlimit(a, val, err, errlen);
	case F_COPY_IN:
		return add_copy(a, val, err, errlen);
	case F_DAEMONIZE:
		a->daemonize = true;
		return 0;
	case F_NEW_PID_NS:
		a->new_pid_ns = true;
		return 0;
	case F_COPY_LIBS:
		a->copy_libs = true;
		return 0;
	case F_HELP:
		a->help = true;
		return 0;
	}
	return bad(err, errlen, "internal error: flag %d", (int)f);
}

int jail_args_parse(struct jail_args *a, int argc, char **argv, char *err, size_t errlen)
{
	bool have_uid = false, have_gid = false;
	int ret;

	memset(a, 0, sizeof(*a));
	a->fsize = JAIL_RLIMIT_UNSET;
	a->nofile = JAIL_DEFAULT_NOFILE;
	err[0] = '\0';
	for (int i = 1; i < argc; i++) {
		const char *arg = argv[i], *val = NULL;
		size_t f, n = 0;

		if (strcmp(arg, "--") == 0) {
			a->extra = argv + i + 1;
			a->nr_extra = argc - i - 1;
			break;
		}
		if (strcmp(arg, "-h") == 0) {
			a->help = true;
			return 0;
		}
		for (f = 0; f < sizeof(flags) / sizeof(flags[0]); f++) {
			n = strlen(flags[f].name);
			if (strncmp(arg, flags[f].name, n) == 0 &&
			    (arg[n] == '\0' || (arg[n] == '=' && flags[f].valued)))
				break;
		}
		if (f == sizeof(flags) / sizeof(flags[0]))
			return bad(err, errlen, "unknown argument \"%s\" (see kiln-jailer --help; "
				   "the jailed program's arguments go after \"--\")", arg);
		if (flags[f].valued) {
			if (arg[n] == '=')
				val = arg + n + 1;
			else if (i + 1 < argc)
				val = argv[++i];
			else
				return bad(err, errlen, "%s needs a value", flags[f].name);
		}
		ret = take_flag(a, (enum flag)f, val, &have_uid, &have_gid, err, errlen);
		if (ret < 0)
			return ret;
		if (a->help)
			return 0;
	}
	if (!a->id)
		return bad(err, errlen, "--id is required");
	if (!a->exec_file)
		return bad(err, errlen, "--exec-file is required");
	if (!have_uid)
		return bad(err, errlen, "--uid is required");
	if (!have_gid)
		return bad(err, errlen, "--gid is required");
	if (!a->chroot_base && !(a->chroot_base = strdup(JAIL_DEFAULT_CHROOT_BASE)))
		return bad(err, errlen, "out of memory");
	if (!a->parent_cgroup)
		a->parent_cgroup = a->exec_name;
	return 0;
}

void jail_args_free(struct jail_args *a)
{
	for (size_t i = 0; i < a->nr_cgroups; i++) {
		free(a->cgroups[i].file);
		free(a->cgroups[i].value);
	}
	for (size_t i = 0; i < a->nr_copies; i++) {
		free(a->copies[i].src);
		free(a->copies[i].dst);
	}
	free(a->chroot_base);
	memset(a, 0, sizeof(*a));
}

int jail_args_chroot_dir(const struct jail_args *a, char *buf, size_t len)
{
	/* A base of "/" gives "/<name>/...", not "//<name>/...". */
	const char *base = strcmp(a->chroot_base, "/") == 0 ? "" : a->chroot_base;
	int n = snprintf(buf, len, "%s/%s/%s/root", base, a->exec_name, a->id);

	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

int jail_args_cgroup_dir(const struct jail_args *a, const char *mount, char *buf, size_t len)
{
	size_t m = strlen(mount);
	int n;

	while (m > 1 && mount[m - 1] == '/')
		m--;
	if (m == 1 && mount[0] == '/')
		m = 0;
	n = snprintf(buf, len, "%.*s/%s/%s", (int)m, mount, a->parent_cgroup, a->id);
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

int jail_args_controller(const char *file, char *buf, size_t len)
{
	const char *dot = strchr(file, '.');
	size_t n;

	if (!dot || dot == file)
		return -EINVAL;
	n = (size_t)(dot - file);
	if (n + 1 > len)
		return -ENAMETOOLONG;
	if (n == 6 && strncmp(file, "cgroup", 6) == 0)
		n = 0;
	memcpy(buf, file, n);
	buf[n] = '\0';
	return 0;
}

int jail_args_exec_argv(const struct jail_args *a, char *id_arg, size_t id_len, char **argv,
			size_t max)
{
	size_t n = 0;
	int k = snprintf(id_arg, id_len, "--id=%s", a->id);

	if (k < 0 || (size_t)k >= id_len || max < (size_t)a->nr_extra + 3)
		return -E2BIG;
	argv[n++] = (char *)a->exec_name;
	argv[n++] = id_arg;
	for (int i = 0; i < a->nr_extra; i++)
		argv[n++] = a->extra[i];
	argv[n] = NULL;
	return (int)n;
}
