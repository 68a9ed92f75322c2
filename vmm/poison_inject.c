/* PUT /memory/poison on a running VM: poisons guest pages on purpose, the way a host memory error
 * does, so that the guest's next access takes a machine check. Two host mechanisms:
 * MADV_HWPOISON (CONFIG_MEMORY_FAILURE and CAP_SYS_ADMIN), else a userfaultfd poison marker
 * (UFFDIO_POISON, Linux 6.6+). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/userfaultfd.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "log.h"
#include "poison_log.h"
#include "uffd_compat.h"
#include "vcpu.h"
#include "vmm.h"


/* How long PUT /memory/poison waits for the vCPUs to leave KVM_RUN. */
#define POISON_PAUSE_MS 2000

/* The host address of guest-physical gpa, which must be RAM. */
static uint8_t *host_of(const struct guest_memory *gm, uint64_t gpa)
{
	uint64_t off;

	return guest_memory_offset_of(gm, gpa, &off) ? gm->host + off : NULL;
}

/*
 * The userfaultfd route: registers just [host, host+len), zaps it (the memfd keeps its data, the
 * page tables drop it, KVM's too), places a poison marker, unregisters, and checks that a read
 * still faults (the marker lives on in the page table). vCPUs must be parked. 0 or -errno with
 * err set.
 */
static int poison_uffd(uint8_t *host, uint64_t len, char *err, size_t errlen)
{
	struct uffdio_api api = { .api = UFFD_API, .features = UFFD_FEATURE_POISON };
	struct uffdio_range range = { .start = (uintptr_t)host, .len = len };
	struct uffdio_register reg = { .range = range, .mode = UFFDIO_REGISTER_MODE_MISSING };
	struct uffdio_poison poison = { .range = range };
	const char *step;
	uint8_t byte;
	int fd, ret;

	/* Nobody reads its events: user-mode-only faults never wait for it (and need no
	 * CAP_SYS_PTRACE when vm.unprivileged_userfaultfd is 0). */
	fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY);
	if (fd < 0) {
		ret = -errno;
		snprintf(err, errlen, "userfaultfd: %s", strerror(errno));
		return ret;
	}
	step = "UFFDIO_API";
	if (ioctl(fd, UFFDIO_API, &api) < 0)
		goto err_errno;
	if (!(api.features & UFFD_FEATURE_POISON)) {
		ret = -EOPNOTSUPP;
		snprintf(err, errlen, "this host's userfaultfd has no UFFD_FEATURE_POISON (Linux 6.6+)");
		goto out;
	}
	step = "UFFDIO_REGISTER";
	if (ioctl(fd, UFFDIO_REGISTER, &reg) < 0)
		goto err_errno;
	step = "MADV_DONTNEED";
	if (madvise(host, len, MADV_DONTNEED) < 0)
		goto err_unregister;
	step = "UFFDIO_POISON";
	if (ioctl(fd, UFFDIO_POISON, &poison) < 0)
		goto err_unregister;
	step = "UFFDIO_UNREGISTER";
	if (ioctl(fd, UFFDIO_UNREGISTER, &range) < 0)
		goto err_errno;
	/* The read must fault: a marker lost on unregistering would hand the guest its old data. */
	ret = poison_guard_copy(&byte, host, 1);
	if (ret != -EHWPOISON) {
		ret = -EIO;
		snprintf(err, errlen, "the userfaultfd poison marker did not survive UFFDIO_UNREGISTER");
		goto out;
	}
	ret = 0;
	goto out;

err_unregister:
	ret = -errno;
	ioctl(fd, UFFDIO_UNREGISTER, &range);
	snprintf(err, errlen, "%s: %s", step, strerror(-ret));
	goto out;
err_errno:
	ret = -errno;
	snprintf(err, errlen, "%s: %s", step, strerror(-ret));
out:
	close(fd);
	return ret;
}

/*
 * Poisons one backing page at host; *mechanism names what worked. MADV_HWPOISON first; when the
 * host refuses it (EINVAL: no CONFIG_MEMORY_FAILURE; EPERM: no CAP_SYS_ADMIN), the userfaultfd
 * route. 0 or -errno with err set.
 */
static int poison_page(const struct guest_memory *gm, uint8_t *host, uint64_t len,
		       const char **mechanism, char *err, size_t errlen)
{
	char uerr[160];
	int madv_errno, ret;

	/* The kernel answers with SIGBUS BUS_MCEERR_AR to kiln, which maps the page. */
	vcpu_sigbus_expect_injection(gm);
	ret = madvise(host, len, MADV_HWPOISON);
	madv_errno = errno;
	vcpu_sigbus_expect_injection(NULL);
	if (ret == 0) {
		*mechanism = "MADV_HWPOISON";
		return 0;
	}
	if (madv_errno != EINVAL && madv_errno != EPERM) {
		snprintf(err, errlen, "madvise(MADV_HWPOISON): %s", strerror(madv_errno));
		return -madv_errno;
	}
	ret = poison_uffd(host, len, uerr, sizeof(uerr));
	if (ret == 0) {
		*mechanism = "userfaultfd UFFDIO_POISON";
		return 0;
	}
	snprintf(err, errlen,
		 "this host cannot poison guest memory: madvise(MADV_HWPOISON): %s (needs "
		 "CONFIG_MEMORY_FAILURE and CAP_SYS_ADMIN); userfaultfd: %s",
		 strerror(madv_errno), uerr);
	return ret == -EIO ? -EIO : -EOPNOTSUPP;
}

int vmm_poison_inject(struct vmm *m, uint64_t gpa, uint64_t len, char *err, size_t errlen)
{
	struct vm *vm = m->vm;
	const char *mechanism = "";
	uint64_t ps, start, end, page;
	bool was_paused;
	unsigned done = 0;
	int ret = 0;

	if (!vm || (vm->state != VM_RUNNING && vm->state != VM_PAUSED)) {
		snprintf(err, errlen, "the microVM is not running");
		return -EINVAL;
	}
	ps = vm->mem.page_size;
	if (len == 0 || gpa + len < gpa || gpa + len > UINT64_MAX - ps) {
		snprintf(err, errlen, "guest_phys_addr 0x%" PRIx64 " length %" PRIu64
			 ": an empty or overflowing range", gpa, len);
		return -EINVAL;
	}
	start = gpa & ~(ps - 1);
	end = (gpa + len + ps - 1) & ~(ps - 1);
	if (!guest_memory_in_ram(&vm->mem, start, end - start)) {
		snprintf(err, errlen, "[0x%" PRIx64 ", 0x%" PRIx64 ") (rounded to the %" PRIu64
			 " KiB backing pages) is not guest RAM", start, end, ps >> 10);
		return -EINVAL;
	}

	/* With the vCPUs parked, no guest access falls between poisoning a page and recording it. */
	was_paused = vm->state == VM_PAUSED;
	if (!was_paused && (ret = vm_pause(vm, POISON_PAUSE_MS)) < 0) {
		snprintf(err, errlen, "cannot pause the vCPUs to poison memory: %s", strerror(-ret));
		return ret == -ESHUTDOWN ? -EINVAL : -EBUSY;
	}
	for (page = start; page < end; page += ps) {
		if (poison_log_contains(&vm->poison, page, ps))
			continue;
		ret = poison_page(&vm->mem, host_of(&vm->mem, page), ps, &mechanism, err, errlen);
		if (ret < 0)
			break;
		ret = poison_log_add(&vm->poison, page, ps, POISON_INJECTED);
		if (ret < 0) {
			/* The page is poisoned all the same: the guest gets its machine check, and the
			 * vCPU records the page then (as a host error). */
			log_error("poisoned guest-physical 0x%" PRIx64 " but cannot record it: %s", page,
				  strerror(-ret));
			snprintf(err, errlen, "recording the poisoned page: %s", strerror(-ret));
			break;
		}
		done++;
	}
	if (!was_paused)
		vm_resume(vm);
	if (ret < 0) {
		log_error("PUT /memory/poison [0x%" PRIx64 ", 0x%" PRIx64 "): %s (%u pages poisoned "
			  "before)", start, end, err, done);
		return ret;
	}
	if (done == 0) {
		log_info("PUT /memory/poison [0x%" PRIx64 ", 0x%" PRIx64 "): already poisoned",
			 start, end);
		return 0;
	}
	log_warn("poisoned guest-physical [0x%" PRIx64 ", 0x%" PRIx64 ") on request: %u page(s) of "
		 "%" PRIu64 " KiB with %s, recorded as injected; the guest's next access takes a "
		 "machine check", start, end, done, ps >> 10, mechanism);
	return 0;
}
