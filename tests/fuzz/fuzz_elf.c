/*
 * Fuzz target for --copy-libs' ELF reading (jailer/jail_elf.c): the input is the exec file,
 * given to jail_elf_deps through a memfd (/proc/self/fd/N). Its DT_NEEDED names resolve
 * against the host's own library directories, so a closure reaches the host's real libraries;
 * every open jail_elf.c makes comes through __wrap_open (-Wl,--wrap=open), which lets it open
 * the input and regular files outside /proc, /sys and /dev only: a fuzzed path never opens a
 * FIFO, a device or a kernel file. Traps unless a failure leaves a message, and a success lists
 * at most JAIL_ELF_MAX_DEPS distinct absolute paths, each an x86_64 ELF file.
 * KILN_FUZZ_LOG=1 in the environment prints each input's libraries or message.
 */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "jail_elf.h"
#include "fuzz_fail.h"

#define ERR_LEN 512

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int __real_open(const char *path, int flags, ...);
int __wrap_open(const char *path, int flags, ...);

static bool log_stderr; /* KILN_FUZZ_LOG is set */
static int exe_fd = -1; /* the memfd holding the input */
static char exe_path[64];

static bool under(const char *path, const char *dir)
{
	size_t n = strlen(dir);

	return strncmp(path, dir, n) == 0 && (path[n] == '/' || path[n] == '\0');
}

/* jail_elf.c opens read-only, without O_CREAT: no mode argument to pass on. */
int __wrap_open(const char *path, int flags, ...)
{
	char real[PATH_MAX];
	struct stat st;

	if ((flags & O_ACCMODE) != O_RDONLY || (flags & O_CREAT))
		fail("open(\"%s\", 0x%x): not read-only", path, flags);
	if (strcmp(path, exe_path) != 0 &&
	    (!realpath(path, real) || under(real, "/proc") || under(real, "/sys") ||
	     under(real, "/dev") || stat(real, &st) < 0 || !S_ISREG(st.st_mode))) {
		errno = ENOENT;
		return -1;
	}
	return __real_open(path, flags);
}

/* Whether path is a readable x86_64 ELF64 file, read here without jail_elf.c. */
static bool x86_64_elf(const char *path)
{
	Elf64_Ehdr eh;
	int fd = __real_open(path, O_RDONLY | O_CLOEXEC);
	bool ok;

	if (fd < 0)
		return false;
	ok = pread(fd, &eh, sizeof(eh), 0) == (ssize_t)sizeof(eh) &&
	     !memcmp(eh.e_ident, ELFMAG, SELFMAG) && eh.e_ident[EI_CLASS] == ELFCLASS64 &&
	     eh.e_machine == EM_X86_64;
	close(fd);
	return ok;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	log_stderr = getenv("KILN_FUZZ_LOG") != NULL;
	exe_fd = memfd_create("fuzz-elf", MFD_CLOEXEC);
	if (exe_fd < 0)
		fail("memfd_create: %s", strerror(errno));
	snprintf(exe_path, sizeof(exe_path), "/proc/self/fd/%d", exe_fd);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[ERR_LEN];
	struct jail_elf_deps d;
	int ret;

	if (ftruncate(exe_fd, 0) < 0 ||
	    (size && pwrite(exe_fd, data, size, 0) != (ssize_t)size))
		fail("writing the input to the memfd: %s", strerror(errno));
	memset(err, 0x55, sizeof(err));
	ret = jail_elf_deps(exe_path, &d, err, sizeof(err));
	if (log_stderr) {
		fprintf(stderr, "fuzz_elf: %d %s\n", ret, ret < 0 ? err : "");
		for (size_t i = 0; ret == 0 && i < d.n; i++)
			fprintf(stderr, "fuzz_elf:   %s\n", d.paths[i]);
	}
	if (ret < 0) {
		if (!memchr(err, '\0', sizeof(err)) || !err[0])
			fail("failed (%d) without a message", ret);
	} else if (ret != 0) {
		fail("returned %d", ret);
	} else {
		if (d.n > JAIL_ELF_MAX_DEPS)
			fail("%zu paths", d.n);
		for (size_t i = 0; i < d.n; i++) {
			if (d.paths[i][0] != '/')
				fail("a relative path: %s", d.paths[i]);
			if (!x86_64_elf(d.paths[i]))
				fail("listed %s, not an x86_64 ELF file", d.paths[i]);
			for (size_t k = 0; k < i; k++)
				if (!strcmp(d.paths[i], d.paths[k]))
					fail("listed %s twice", d.paths[i]);
		}
	}
	jail_elf_deps_free(&d);
	return 0;
}
