/* The shared libraries an x86_64 ELF program needs, found the way ld.so would, for --copy-libs. */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "jail_elf.h"

#define MAX_PHDRS 256
#define MAX_DYN 4096
#define MAX_STRTAB (1u << 20)
#define MAX_NEEDED 64

static const char *const std_dirs[] = {
	"/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib64", "/usr/lib64",
	"/lib",			 "/usr/lib",		      "/usr/local/lib",
};

/* What one ELF file says about its dependencies. */
struct elf_info {
	char interp[PATH_MAX]; /* "" for none */
	char *strtab;	       /* the dynamic string table, NUL-terminated */
	size_t strsz;
	size_t needed[MAX_NEEDED]; /* offsets into strtab */
	size_t nr_needed;
	long runpath; /* offset into strtab, or -1 */
};

static int read_at(int fd, void *buf, size_t n, off_t off)
{
	size_t done = 0;

	while (done < n) {
		ssize_t k = pread(fd, (char *)buf + done, n - done, off + (off_t)done);

		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return -errno;
		if (k == 0)
			return -ENOEXEC; /* the file ends inside a header it announces */
		done += (size_t)k;
	}
	return 0;
}

static bool header_ok(const Elf64_Ehdr *eh)
{
	return memcmp(eh->e_ident, ELFMAG, SELFMAG) == 0 && eh->e_ident[EI_CLASS] == ELFCLASS64 &&
	       eh->e_ident[EI_DATA] == ELFDATA2LSB && eh->e_machine == EM_X86_64 &&
	       eh->e_phentsize == sizeof(Elf64_Phdr) && eh->e_phnum <= MAX_PHDRS;
}

/* Whether path is a readable x86_64 ELF file: ld.so skips libraries of other kinds. */
static bool is_our_elf(const char *path)
{
	Elf64_Ehdr eh;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	bool ok;

	if (fd < 0)
		return false;
	ok = read_at(fd, &eh, sizeof(eh), 0) == 0 && header_ok(&eh);
	close(fd);
	return ok;
}

/* The file offset of virtual address va, from the PT_LOAD segments; -1 if none holds it. */
static off_t va_to_offset(const Elf64_Phdr *ph, size_t n, Elf64_Addr va)
{
	for (size_t i = 0; i < n; i++)
		if (ph[i].p_type == PT_LOAD && va >= ph[i].p_vaddr &&
		    va - ph[i].p_vaddr < ph[i].p_filesz)
			return (off_t)(va - ph[i].p_vaddr + ph[i].p_offset);
	return -1;
}

static int read_dynamic(int fd, const Elf64_Phdr *ph, size_t nph, const Elf64_Phdr *dynp,
			struct elf_info *e)
{
	Elf64_Addr strtab_va = 0;
	Elf64_Dyn *dyn;
	size_t n = dynp->p_filesz / sizeof(Elf64_Dyn);
	off_t str_off;
	int ret;

	if (n == 0 || n > MAX_DYN)
		return -ENOEXEC;
	dyn = calloc(n, sizeof(*dyn));
	if (!dyn)
		return -ENOMEM;
	ret = read_at(fd, dyn, n * sizeof(*dyn), (off_t)dynp->p_offset);
	for (size_t i = 0; ret == 0 && i < n && dyn[i].d_tag != DT_NULL; i++) {
		switch (dyn[i].d_tag) {
		case DT_NEEDED:
			if (e->nr_needed == MAX_NEEDED)
				ret = -E2BIG;
			else
				e->needed[e->nr_needed++] = dyn[i].d_un.d_val;
			break;
		case DT_STRTAB:
			strtab_va = dyn[i].d_un.d_ptr;
			break;
		case DT_STRSZ:
			e->strsz = dyn[i].d_un.d_val;
			break;
		case DT_RUNPATH:
			e->runpath = (long)dyn[i].d_un.d_val;
			break;
		case DT_RPATH:
			if (e->runpath < 0) /* DT_RUNPATH wins when both are there */
				e->runpath = (long)dyn[i].d_un.d_val;
			break;
		}
	}
	free(dyn);
	if (ret < 0)
		return ret;
	if (e->nr_needed == 0 && e->runpath < 0)
		return 0;
	str_off = va_to_offset(ph, nph, strtab_va);
	if (str_off < 0 || e->strsz == 0 || e->strsz > MAX_STRTAB)
		return -ENOEXEC;
	e->strtab = malloc(e->strsz + 1);
	if (!e->strtab)
		return -ENOMEM;
	ret = read_at(fd, e->strtab, e->strsz, str_off);
	if (ret < 0)
		return ret;
	e->strtab[e->strsz] = '\0';
	for (size_t i = 0; i < e->nr_needed; i++)
		if (e->needed[i] >= e->strsz)
			return -ENOEXEC;
	if (e->runpath >= (long)e->strsz)
		return -ENOEXEC;
	return 0;
}

static int elf_read_info(const char *path, struct elf_info *e)
{
	Elf64_Phdr *ph = NULL;
	const Elf64_Phdr *dynp = NULL;
	Elf64_Ehdr eh;
	int fd, ret;

	memset(e, 0, sizeof(*e));
	e->runpath = -1;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ret = read_at(fd, &eh, sizeof(eh), 0);
	if (ret == 0 && !header_ok(&eh))
		ret = -ENOEXEC;
	if (ret == 0 && eh.e_phnum > 0) {
		ph = calloc(eh.e_phnum, sizeof(*ph));
		ret = ph ? read_at(fd, ph, eh.e_phnum * sizeof(*ph), (off_t)eh.e_phoff) : -ENOMEM;
	}
	for (size_t i = 0; ret == 0 && i < eh.e_phnum; i++) {
		if (ph[i].p_type == PT_DYNAMIC) {
			dynp = &ph[i];
		} else if (ph[i].p_type == PT_INTERP) {
			if (ph[i].p_filesz < 2 || ph[i].p_filesz > sizeof(e->interp))
				ret = -ENOEXEC;
			else
				ret = read_at(fd, e->interp, ph[i].p_filesz, (off_t)ph[i].p_offset);
			if (ret == 0 && (e->interp[ph[i].p_filesz - 1] != '\0' || e->interp[0] != '/'))
				ret = -ENOEXEC;
		}
	}
	if (ret == 0 && dynp)
		ret = read_dynamic(fd, ph, eh.e_phnum, dynp, e);
	free(ph);
	close(fd);
	return ret;
}

static bool listed(const struct jail_elf_deps *d, const char *path)
{
	for (size_t i = 0; i < d->n; i++)
		if (strcmp(d->paths[i], path) == 0)
			return true;
	return false;
}

static int add_path(struct jail_elf_deps *d, const char *path)
{
	if (listed(d, path))
		return 0;
	if (d->n == JAIL_ELF_MAX_DEPS)
		return -E2BIG;
	if (!(d->paths[d->n] = strdup(path)))
		return -ENOMEM;
	d->n++;
	return 0;
}

/* Tries dir/name (dir of dir_len bytes, "$ORIGIN" replaced by origin); 1 if found. */
static int try_dir(const char *dir, size_t dir_len, const char *origin, const char *name,
		   char *out, size_t out_len)
{
	int n;

	if (dir_len >= 7 && strncmp(dir, "$ORIGIN", 7) == 0)
		n = snprintf(out, out_len, "%s%.*s/%s", origin, (int)(dir_len - 7), dir + 7, name);
	else if (dir_len >= 9 && strncmp(dir, "${ORIGIN}", 9) == 0)
		n = snprintf(out, out_len, "%s%.*s/%s", origin, (int)(dir_len - 9), dir + 9, name);
	else
		n = snprintf(out, out_len, "%.*s/%s", (int)dir_len, dir, name);
	if (n < 0 || (size_t)n >= out_len || out[0] != '/')
		return 0;
	return is_our_elf(out) ? 1 : 0;
}

static int resolve(const char *name, const char *runpath, const char *origin, char *out,
		   size_t out_len)
{
	if (strchr(name, '/')) {
		if (name[0] != '/' || strlen(name) >= out_len || !is_our_elf(name))
			return 0;
		strcpy(out, name);
		return 1;
	}
	for (const char *p = runpath; p && *p;) {
		size_t n = strcspn(p, ":");

		if (n > 0 && try_dir(p, n, origin, name, out, out_len))
			return 1;
		p += n + (p[n] == ':');
	}
	for (size_t i = 0; i < sizeof(std_dirs) / sizeof(std_dirs[0]); i++)
		if (try_dir(std_dirs[i], strlen(std_dirs[i]), origin, name, out, out_len))
			return 1;
	return 0;
}

/* Adds the interpreter and direct dependencies of path to d. */
static int scan(const char *path, struct jail_elf_deps *d, char *err, size_t errlen)
{
	char origin[PATH_MAX], found[PATH_MAX];
	const char *slash = strrchr(path, '/');
	struct elf_info e;
	int ret;

	ret = elf_read_info(path, &e);
	if (ret < 0) {
		snprintf(err, errlen, "%s: %s", path,
			 ret == -ENOEXEC ? "not an x86_64 ELF file, or a malformed one"
			 : ret == -E2BIG ? "too many DT_NEEDED entries"
					 : strerror(-ret));
		free(e.strtab);
		return ret;
	}
	snprintf(origin, sizeof(origin), "%.*s", slash && slash != path ? (int)(slash - path) : 1,
		 slash ? path : "/");
	if (e.interp[0] && (ret = add_path(d, e.interp)) < 0)
		goto out;
	for (size_t i = 0; i < e.nr_needed; i++) {
		const char *name = e.strtab + e.needed[i];

		if (!resolve(name, e.runpath >= 0 ? e.strtab + e.runpath : NULL, origin, found,
			     sizeof(found))) {
			snprintf(err, errlen, "%s needs %s, which is in none of the standard library "
				 "directories nor its RUNPATH", path, name);
			ret = -ENOENT;
			goto out;
		}
		if ((ret = add_path(d, found)) < 0)
			goto out;
	}
out:
	if (ret == -E2BIG)
		snprintf(err, errlen, "%s: more than %d libraries", path, JAIL_ELF_MAX_DEPS);
	else if (ret == -ENOMEM)
		snprintf(err, errlen, "out of memory");
	free(e.strtab);
	return ret;
}

int jail_elf_deps(const char *exe, struct jail_elf_deps *d, char *err, size_t errlen)
{
	int ret;

	memset(d, 0, sizeof(*d));
	err[0] = '\0';
	ret = scan(exe, d, err, errlen);
	/* d grows as the libraries are scanned: a breadth-first walk of the closure. */
	for (size_t i = 0; ret == 0 && i < d->n; i++)
		ret = scan(d->paths[i], d, err, errlen);
	return ret;
}

void jail_elf_deps_free(struct jail_elf_deps *d)
{
	for (size_t i = 0; i < d->n; i++)
		free(d->paths[i]);
	memset(d, 0, sizeof(*d));
}
