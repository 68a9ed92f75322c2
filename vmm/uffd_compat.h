/* userfaultfd definitions from Linux 6.6's uapi (include/uapi/linux/userfaultfd.h), for system
 * headers older than the running kernel (Debian 12 ships 6.1's). */
#ifndef KILN_UFFD_COMPAT_H
#define KILN_UFFD_COMPAT_H

#include <linux/userfaultfd.h>

#ifndef UFFD_FEATURE_POISON
#define UFFD_FEATURE_POISON (1 << 14)
#endif
#ifndef UFFD_USER_MODE_ONLY
#define UFFD_USER_MODE_ONLY 1
#endif
#ifndef UFFDIO_POISON
#define _UFFDIO_POISON (0x08)
struct uffdio_poison {
	struct uffdio_range range;
	__u64 mode;
	__s64 updated;
};
#define UFFDIO_POISON _IOWR(UFFDIO, _UFFDIO_POISON, struct uffdio_poison)
#endif

#endif
