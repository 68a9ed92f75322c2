/* The Intel MultiProcessor table that tells the guest about its vCPUs and interrupt routing. */
#ifndef KILN_MPTABLE_X86_64_H
#define KILN_MPTABLE_X86_64_H

#include <stddef.h>
#include <stdint.h>

#include "memory.h"

/* Bytes the table takes for nr_cpus processors. */
size_t mptable_size(unsigned nr_cpus);

/*
 * Encodes the floating pointer and configuration table for nr_cpus vCPUs (APIC ids 0..n-1),
 * one ISA bus, the IOAPIC with pins 0..23 routed 1:1, and LINT0/LINT1 as ExtINT/NMI, as they
 * will sit at guest-physical base. Returns the length written, or 0 if cap is too small.
 */
size_t mptable_build(uint8_t *buf, size_t cap, unsigned nr_cpus, uint64_t base);

/* Builds the table and writes it at LAYOUT_EBDA. Returns 0 or -errno. */
int mptable_setup(struct guest_memory *gm, unsigned nr_cpus) __attribute__((warn_unused_result));

#endif
