/* Per-thread seccomp filters (libseccomp): installing one, printing one, counting one. */
#ifndef KILN_SECCOMP_FILTER_H
#define KILN_SECCOMP_FILTER_H

#include <stdio.h>

#include "seccomp_rules.h"

/* Exit code after a forbidden syscall: Firecracker's FC_EXIT_CODE_BAD_SYSCALL. */
#define SECCOMP_EXIT_BAD_SYSCALL 148

/* "main", "main-running", "api", "vcpu", "uffd"; NULL when out of range. */
const char *seccomp_filter_thread_name(enum seccomp_thread t);

/* The kind named name; -1 when there is none. */
int seccomp_filter_thread_parse(const char *name);

/* How many rules, and how many distinct syscalls, kind t allows (refusals with an errno are
 * not counted). */
void seccomp_filter_count(enum seccomp_thread t, unsigned *rules, unsigned *syscalls);

/*
 * Installs kind t's filter on the calling thread (threads it creates afterwards inherit it),
 * after the process's SIGSYS handler, which writes one line to stderr naming the thread and
 * the call, and exits SECCOMP_EXIT_BAD_SYSCALL. Returns 0 or -errno.
 */
int seccomp_filter_install(enum seccomp_thread t) __attribute__((warn_unused_result));

/* Prints kind t's effective policy, one line per rule with its reason. Returns 0 or -errno. */
int seccomp_filter_print(FILE *f, enum seccomp_thread t);

#endif
