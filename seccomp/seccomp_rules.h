/* The seccomp policy of each kind of kiln thread, as data: one table, a reason on every rule. */
#ifndef KILN_SECCOMP_RULES_H
#define KILN_SECCOMP_RULES_H

#include <stdint.h>

/* The kinds of kiln thread, each with its own filter. */
enum seccomp_thread {
	SECCOMP_MAIN,         /* main thread: the event loop, VM build, devices' backends */
	SECCOMP_MAIN_RUNNING, /* the main thread again once the vCPUs run: nothing left to build */
	SECCOMP_API,          /* libmicrohttpd's thread: HTTP on the API socket */
	SECCOMP_VCPU,         /* one per vCPU: KVM_RUN and the exits handled on the spot */
	SECCOMP_UFFD,         /* the uffd thread: serves guest RAM's page faults on restore */
	SECCOMP_NR_THREADS,
};

#define SECCOMP_BIT(t) (1u << (t))

/* One allowed syscall, optionally with a condition on one argument. */
struct seccomp_rule {
	const char *syscall;   /* name, as libseccomp resolves it */
	unsigned threads;      /* SECCOMP_BIT()s of the thread kinds allowed */
	unsigned arg;          /* argument index checked, when op is not SC_ANY */
	enum { SC_ANY, SC_EQ, SC_MASKED_EQ } op;
	uint64_t value, mask;  /* SC_EQ: arg == value; SC_MASKED_EQ: (arg & mask) == value */
	const char *arg_text;  /* the condition in words, e.g. "KVM_RUN" */
	int fail_errno;        /* 0: allowed; else the call fails with this errno, never kills */
	const char *why;       /* who needs it */
};

/*
 * Every rule of every kind; n gets the count. A rule allowed to the API, vCPU or uffd threads,
 * or to the running main thread, is also allowed to the main thread: they run under its filter
 * too (seccomp_filter.c).
 */
const struct seccomp_rule *seccomp_rules(unsigned *n);

#endif
