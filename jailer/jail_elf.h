/* The shared libraries an x86_64 ELF program needs, found the way ld.so would, for --copy-libs. */
#ifndef KILN_JAIL_ELF_H
#define KILN_JAIL_ELF_H

#include <stddef.h>

#define JAIL_ELF_MAX_DEPS 64

struct jail_elf_deps {
	char *paths[JAIL_ELF_MAX_DEPS]; /* absolute: the ELF interpreter, then the libraries */
	size_t n;
};

/*
 * Lists the ELF interpreter (PT_INTERP) and every library in the DT_NEEDED closure of exe,
 * each resolved through DT_RUNPATH/DT_RPATH ($ORIGIN expanded) and then the standard
 * directories (/lib/x86_64-linux-gnu, /usr/lib/x86_64-linux-gnu, /lib64, /usr/lib64, /lib,
 * /usr/lib, /usr/local/lib); no ld.so.cache, no LD_LIBRARY_PATH. A static program gives none.
 * Returns 0, or -errno with one line in err (not an x86_64 ELF file, a library not found...).
 * The caller frees d with jail_elf_deps_free, also after a failure.
 */
int jail_elf_deps(const char *exe, struct jail_elf_deps *d, char *err, size_t errlen)
	__attribute__((warn_unused_result));

void jail_elf_deps_free(struct jail_elf_deps *d);

#endif
