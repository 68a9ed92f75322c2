/* What this host offers kiln (KVM, userfaultfd poison, hugepages), for GET /capabilities. */
#ifndef KILN_CAPABILITIES_H
#define KILN_CAPABILITIES_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

/* Files the probe reads; a NULL field (or a NULL struct) means the real one, shown here. */
struct capabilities_paths {
	const char *kvm;            /* "/dev/kvm" */
	const char *cpuinfo;        /* "/proc/cpuinfo" */
	const char *hugepages_2m;   /* "/sys/kernel/mm/hugepages/hugepages-2048kB" (a directory) */
	const char *memory_failure; /* "/proc/sys/vm/memory_failure_recovery" */
};

/*
 * Describes the host as a new JSON object, without needing /dev/kvm to exist or privileges:
 *   kvm: { available, api_version (int|null), error (string|null),
 *          hardware_virtualization (cpuinfo has svm or vmx), warning (string|null) },
 *   uffd: { available, error (string|null), features (UFFDIO_API's mask),
 *           copy_probe_error (string|null) },
 *   uffd_poison (UFFD_FEATURE_POISON and UFFDIO_POISON offered),
 *   uffd_copy_refuses_poison (bool|null: null when UFFDIO_POISON is absent or the probe
 *                             failed; true when UFFDIO_COPY onto a poison marker fails EEXIST),
 *   uffd_poison_reason (string|null: why some restore path cannot keep poisoned pages poisoned
 *                       here and what kiln refuses for it; null when every path can),
 *   hugepages_2m: { total, free } (ints, null when unreadable), hugepages_2m_free (int, 0 then),
 *   memory_failure (the kernel has CONFIG_MEMORY_FAILURE), kernel_release (uname -r),
 *   memfd_hugetlb (memfd_create with MFD_HUGETLB | MFD_HUGE_2MB works).
 * Takes a few milliseconds, leaves no fd or mapping behind and never touches a poisoned page.
 * Returns NULL only when memory runs out; the caller owns the reference.
 */
json_t *capabilities_probe(const struct capabilities_paths *paths)
	__attribute__((warn_unused_result));

/*
 * The probe behind uffd_copy_refuses_poison: poisons a page of a scratch mapping and copies onto
 * it with UFFDIO_COPY. 1 when the kernel refuses (EEXIST: the marker survives), 0 when the copy
 * erased the marker, -errno with the reason in err when the probe could not run: -EOPNOTSUPP
 * (err UFFD_NO_POISON_MSG) when the kernel has no UFFD_FEATURE_POISON or UFFDIO_POISON, another
 * -errno when userfaultfd itself fails.
 */
int capabilities_uffd_copy_refuses_poison(char *err, size_t len);

/*
 * The text of uffd_poison_reason from the probe's findings (uffd_error: why userfaultfd is
 * unavailable; copy_refuses: 1, 0 or -1 unknown, copy_error why): written into buf and returned,
 * or NULL when userfaultfd, UFFDIO_POISON and a marker-keeping UFFDIO_COPY are all there.
 */
const char *capabilities_uffd_poison_reason(bool uffd_available, const char *uffd_error,
					    bool poison, int copy_refuses, const char *copy_error,
					    char *buf, size_t len);

#endif
