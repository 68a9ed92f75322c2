/* Smoke test for /dev/kvm (run by tests/e2e/l1/run-kvm-smoke, typically inside in-l1's L1):
 * creates a VM with one vCPU that runs a real-mode loop doing `out` to a port N times and then
 * `hlt`, checks every exit, and prints the cost of one exit. Exits 0 when KVM works. */
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define GUEST_ADDR 0x1000
#define GUEST_SIZE 0x1000
#define PORT 0x10

/* Real-mode code: out PORT, al; inc ax; repeated cx times, then hlt. */
static const uint8_t code[] = {
	0x31, 0xc0,       /* xor ax, ax */
	0xb9, 0x00, 0x00, /* mov cx, N (patched at offset 3) */
	0xe6, PORT,       /* 1: out PORT, al */
	0x40,             /* inc ax */
	0xe2, 0xfb,       /* loop 1b */
	0xf4,             /* hlt */
};

static int fail(const char *what)
{
	fprintf(stderr, "kvm-smoke: %s: %s\n", what, strerror(errno));
	return 1;
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	long n = argc > 1 ? strtol(argv[1], NULL, 0) : 1000;
	int kvm, vm, vcpu, run_size, api;
	struct kvm_userspace_memory_region region;
	struct kvm_sregs sregs;
	struct kvm_regs regs;
	struct kvm_run *run;
	uint8_t *mem;
	long exits = 0;
	double t0, t1;

	if (n < 1 || n > 0xffff) {
		fprintf(stderr, "usage: kvm-smoke [EXITS (1-65535, default 1000)]\n");
		return 2;
	}
	kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (kvm < 0)
		return fail("open /dev/kvm");
	api = ioctl(kvm, KVM_GET_API_VERSION, 0);
	if (api != KVM_API_VERSION) {
		fprintf(stderr, "kvm-smoke: KVM API version %d, want %d\n", api, KVM_API_VERSION);
		return 1;
	}
	vm = ioctl(kvm, KVM_CREATE_VM, 0);
	if (vm < 0)
		return fail("KVM_CREATE_VM");

	mem = mmap(NULL, GUEST_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED)
		return fail("mmap guest memory");
	memcpy(mem, code, sizeof(code));
	mem[3] = n & 0xff;
	mem[4] = n >> 8;
	region = (struct kvm_userspace_memory_region){
		.slot = 0,
		.guest_phys_addr = GUEST_ADDR,
		.memory_size = GUEST_SIZE,
		.userspace_addr = (uintptr_t)mem,
	};
	if (ioctl(vm, KVM_SET_USER_MEMORY_REGION, &region) < 0)
		return fail("KVM_SET_USER_MEMORY_REGION");

	vcpu = ioctl(vm, KVM_CREATE_VCPU, 0);
	if (vcpu < 0)
		return fail("KVM_CREATE_VCPU");
	run_size = ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (run_size < (int)sizeof(*run))
		return fail("KVM_GET_VCPU_MMAP_SIZE");
	run = mmap(NULL, run_size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu, 0);
	if (run == MAP_FAILED)
		return fail("mmap kvm_run");

	if (ioctl(vcpu, KVM_GET_SREGS, &sregs) < 0)
		return fail("KVM_GET_SREGS");
	sregs.cs.base = 0;
	sregs.cs.selector = 0;
	if (ioctl(vcpu, KVM_SET_SREGS, &sregs) < 0)
		return fail("KVM_SET_SREGS");
	regs = (struct kvm_regs){ .rip = GUEST_ADDR, .rflags = 0x2 };
	if (ioctl(vcpu, KVM_SET_REGS, &regs) < 0)
		return fail("KVM_SET_REGS");

	t0 = now();
	for (;;) {
		if (ioctl(vcpu, KVM_RUN, 0) < 0) {
			if (errno == EINTR)
				continue;
			return fail("KVM_RUN");
		}
		if (run->exit_reason == KVM_EXIT_HLT)
			break;
		if (run->exit_reason != KVM_EXIT_IO || run->io.direction != KVM_EXIT_IO_OUT ||
		    run->io.port != PORT || run->io.size != 1 || run->io.count != 1) {
			fprintf(stderr, "kvm-smoke: unexpected exit %u after %ld port writes\n",
				run->exit_reason, exits);
			return 1;
		}
		uint8_t value = *((uint8_t *)run + run->io.data_offset);
		if (value != (exits & 0xff)) {
			fprintf(stderr, "kvm-smoke: port write %ld carried %u, want %ld\n", exits,
				value, exits & 0xff);
			return 1;
		}
		exits++;
	}
	t1 = now();
	if (exits != n) {
		fprintf(stderr, "kvm-smoke: guest halted after %ld port writes, want %ld\n", exits, n);
		return 1;
	}
	printf("kvm-smoke: ok: %ld port-0x%x exits then hlt, %.1f us per exit\n", exits, PORT,
	       (t1 - t0) * 1e6 / (exits + 1));
	return 0;
}
