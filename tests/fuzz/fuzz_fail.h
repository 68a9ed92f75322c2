/* How a fuzz harness reports a broken rule: one line starting with the binary's name (what
 * run-smoke looks for), then a trap, which libFuzzer takes as a crash and saves the input. */
#ifndef KILN_FUZZ_FAIL_H
#define KILN_FUZZ_FAIL_H

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>

static inline void __attribute__((noreturn, format(printf, 1, 2))) fail(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", program_invocation_short_name);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	__builtin_trap();
}

#endif
