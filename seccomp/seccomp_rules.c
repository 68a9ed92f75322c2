/* What each kind of kiln thread may ask of the kernel: the rule table. */
#include "seccomp_rules.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <linux/if_tun.h>
#include <linux/io_uring.h>
#include <linux/kvm.h>
#include <linux/userfaultfd.h>
#include <sched.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/ioctl.h>

#include "uffd_compat.h" /* UFFDIO_POISON where the system headers predate it */

#define B SECCOMP_BIT(SECCOMP_MAIN) /* main thread, until the vCPUs run (build) */
#define M (B | SECCOMP_BIT(SECCOMP_MAIN_RUNNING)) /* main thread, all along */
#define A SECCOMP_BIT(SECCOMP_API)
#define V SECCOMP_BIT(SECCOMP_VCPU)
#define U SECCOMP_BIT(SECCOMP_UFFD)
#define ALL (M | A | V | U)

/* Allowed with any arguments. */
#define SYS(name, threads, why) { #name, threads, 0, SC_ANY, 0, 0, NULL, 0, why }
/* Allowed when argument arg equals val. */
#define EQ(name, threads, arg, val, why) \
	{ #name, threads, arg, SC_EQ, (uint64_t)(val), 0, #val, 0, why }
/* ioctl, allowed for one request number. */
#define IOCTL(req, threads, why) { "ioctl", threads, 1, SC_EQ, (uint64_t)(req), 0, #req, 0, why }
/* Allowed when (argument arg & mask) == val; text says so in words. */
#define MASKED(name, threads, arg, mask, val, text, why) \
	{ #name, threads, arg, SC_MASKED_EQ, (uint64_t)(val), (uint64_t)(mask), text, 0, why }
/* Not allowed, but failing with err instead of stopping kiln. */
#define REFUSE(name, threads, err, why) { #name, threads, 0, SC_ANY, 0, 0, NULL, err, why }

/*
 * Rules for A, V or U must also be in B: those threads inherit the main thread's filter and add
 * their own on top, and the kernel lets a call through only if every filter allows it (the
 * unit test checks this). The main thread's first list is therefore the union of everything.
 * Once the vCPUs run, the main thread narrows itself to the M rules: the B ones only build.
 */
static const struct seccomp_rule rules[] = {
	/* --- memory: glibc's malloc, thread stacks, kiln's own mappings --- */
	SYS(brk, ALL, "glibc malloc: the main arena grows and shrinks"),
	MASKED(mmap, ALL, 2, PROT_EXEC, 0, "prot without PROT_EXEC",
	       "malloc arenas and large blocks, libmicrohttpd's connection pools, thread stacks, "
	       "guest RAM, kvm_run, io_uring rings"),
	MASKED(mprotect, ALL, 2, PROT_EXEC, 0, "prot without PROT_EXEC",
	       "malloc grows a thread's arena; pthread_create's stack guard"),
	SYS(munmap, ALL, "free() of large blocks, connection pools; guest RAM and rings at exit; "
			 "libseccomp frees its filter (U)"),
	SYS(mremap, M | A, "realloc() of large blocks: request bodies, JSON text"),
	SYS(madvise, ALL, "glibc frees a finished thread's stack (the uffd thread's once the "
			  "restore is done) and trims arenas; guest RAM is left out of core dumps; "
			  "PUT /memory/poison: MADV_HWPOISON, or MADV_DONTNEED before UFFDIO_POISON (M)"),

	/* --- threads, signals, time --- */
	SYS(futex, ALL, "mutexes and condition variables: API hand-over, pause/resume, device locks, "
			"the uffd thread's counters"),
	MASKED(clone, B, 0, CLONE_THREAD, CLONE_THREAD, "flags with CLONE_THREAD",
	       "pthread_create: the API, vCPU and uffd threads; never a new process"),
	REFUSE(clone3, B, ENOSYS, "its flags sit in memory a filter cannot read: glibc falls back "
				  "to clone, whose flags are checked"),
	SYS(set_robust_list, B, "a new thread's first steps in glibc (before its own filter)"),
	SYS(rseq, B, "a new thread's first steps in glibc (before its own filter)"),
	EQ(prctl, B, 0, PR_SET_NAME, "threads name themselves (kiln_main, kiln-vcpuN, MHD-single, "
				     "kiln-uffd)"),
	EQ(prctl, ALL, 0, PR_GET_NAME, "log lines in a file name their thread"),
	EQ(prctl, B, 0, PR_SET_NO_NEW_PRIVS, "libseccomp, as each thread installs its own filter"),
	SYS(seccomp, B, "the API, vCPU and uffd threads install their own filter on top of this one"),
	SYS(rt_sigaction, B, "the vCPU kick handler, the SIGBUS handler and the SIGSYS handler"),
	SYS(rt_sigprocmask, ALL, "pthread_create and threads' signal masks; abort(); the poison "
				 "guard unblocks SIGBUS after jumping out of a copy"),
	SYS(rt_sigreturn, ALL, "return from the vCPU kick handler and the SIGBUS handler (a vCPU "
			       "thread's host memory error)"),
	SYS(rt_sigtimedwait, B | V, "a vCPU consumes a pending kick before KVM_RUN"),
	EQ(tgkill, M, 2, SIGUSR2, "the event loop kicks vCPUs out of KVM_RUN (pause, stop)"),
	EQ(tgkill, ALL, 2, SIGABRT, "abort(): glibc's fortify and stack-protector checks"),
	SYS(getpid, ALL, "pthread_kill and abort() name the process"),
	SYS(gettid, ALL, "abort() names the thread"),
	SYS(clock_gettime, ALL, "timestamps (logs, metrics, latencies, HTTP dates, fault service "
				"times) when the vDSO cannot answer"),
	SYS(gettimeofday, ALL, "time() when the vDSO cannot answer"),
	SYS(clock_nanosleep, M, "console input waits 1 ms for the guest to drain its FIFO"),
	SYS(exit, ALL, "a thread ends"),
	SYS(exit_group, ALL, "kiln exits (also from the SIGSYS handler, and the SIGBUS handler on "
			     "a kiln bug)"),

	/* --- file descriptors --- */
	SYS(read, M | A | U, "eventfds, signalfd, timerfds, stdin, sysfs and /proc files (M); "
			     "libmicrohttpd's wake-up eventfd (A); userfaultfd fault messages (U)"),
	SYS(write, ALL, "eventfds (irqfds, API hand-over, VM exit, the uffd thread's end), serial "
			"output, log and metrics; the SIGBUS handler's line on stderr"),
	SYS(close, ALL, "every fd kiln opens; vsock connections closed by a device reset (V); the "
			"userfaultfd once every page is in (U)"),
	SYS(openat, M, "kernel, initrd, drives, /dev/kvm, /dev/net/tun, serial and log and metrics "
		       "files (PUT /logger, PUT /metrics), /proc and sysfs for checks"),
	SYS(newfstatat, M, "fstat of kernel, initrd and drive files; stdio's fopen"),
	SYS(lseek, M, "stdio reading /proc and sysfs files; PUT /snapshot/create checks a Diff "
		      "memory file's holes (SEEK_DATA, SEEK_HOLE)"),
	SYS(access, M, "kernel and initrd readable before the build; GET /capabilities"),
	SYS(pread64, B | U, "the loader reads the kernel and initrd (B); the uffd thread reads "
			    "pages from the snapshot's memory file (U)"),
	SYS(preadv, M, "virtio-blk Sync engine"),
	SYS(pwritev, M, "virtio-blk Sync engine"),
	SYS(fdatasync, M, "virtio-blk flush (cache_type Writeback), Sync engine; a drive is "
			  "flushed before a snapshot"),
	SYS(readv, M, "virtio-net receives from the TAP; virtio-vsock reads host sockets"),
	SYS(writev, M, "virtio-net transmits to the TAP"),
	SYS(ftruncate, M, "guest RAM: sizing the memfd (B); PUT /snapshot/create sizes the memory "
			  "file"),
	SYS(pwrite64, M, "PUT /snapshot/create writes the memory file"),
	SYS(fsync, M, "PUT /snapshot/create: memory and state files reach the disk before their "
		      "rename"),
	SYS(rename, M, "PUT /snapshot/create puts each finished file in place"),
	EQ(fcntl, B, 1, F_ADD_SEALS, "guest RAM: sealing the memfd's size"),
	EQ(fcntl, B, 1, F_GETFL, "libmicrohttpd checks the API socket at start"),
	EQ(fcntl, M, 1, F_SETFL, "libmicrohttpd makes sockets non-blocking (B); a migrate-in hands "
				 "its connection to the uffd thread blocking (M: after a recovery)"),
	SYS(unlink, M, "the API socket and the vsock socket are removed at exit; a snapshot's "
		       ".partial file when its writing fails"),
	SYS(uname, M, "GET /capabilities: kernel_release"),
	SYS(memfd_create, M, "guest RAM; GET /capabilities probes hugetlb memfds"),
	SYS(userfaultfd, M, "GET /capabilities probes UFFD_FEATURE_POISON; PUT /memory/poison "
			    "without MADV_HWPOISON; a lazy restore registers guest RAM, for the uffd "
			    "thread or an external page-fault handler (B)"),
	SYS(getrandom, M, "virtio-rng fills guest buffers"),

	/* --- events --- */
	SYS(epoll_wait, M | A, "the event loop and virtio-vsock's own set (M); libmicrohttpd (A)"),
	SYS(epoll_ctl, M | A, "handlers come and go (M); connections come and go (A)"),
	EQ(epoll_ctl, V, 1, EPOLL_CTL_DEL, "a vsock device reset drops its host sockets"),
	SYS(epoll_create1, B, "libmicrohttpd at start; virtio-vsock's set"),
	SYS(eventfd2, B, "ioeventfds, irqfds, io_uring completions, the API hand-over, the uffd "
			 "thread's end"),
	SYS(poll, B | U, "the uffd thread looks for a waiting fault between background copies"),
	SYS(timerfd_create, B, "virtio-vsock's connection timer"),
	SYS(timerfd_settime, M | V, "virtio-vsock's connection timer (V: a device reset)"),

	/* --- sockets: unix only --- */
	EQ(socket, M, 0, AF_UNIX, "virtio-vsock: its listening socket, connections to host ports; "
				  "PUT /snapshot/load with a Uffd backend: the page-fault handler's "
				  "connection (B)"),
	SYS(bind, M, "virtio-vsock's uds_path (B); a migration destination's socket, again for "
		     "PUT /migration/recover (M)"),
	SYS(listen, M, "virtio-vsock's uds_path (B); a migration destination's socket, again for "
		       "PUT /migration/recover (M)"),
	SYS(connect, M, "virtio-vsock connects to uds_path_PORT for the guest; PUT /snapshot/load "
			"connects to the page-fault handler's backend_path (B)"),
	SYS(accept4, M | A, "API connections (A); host connections to vsock's uds_path (M)"),
	EQ(getsockopt, M, 1, SOL_SOCKET, "libmicrohttpd checks the API socket's domain at start "
					 "(B); PUT /migration/start: the connect's outcome (M)"),
	EQ(setsockopt, M, 1, SOL_SOCKET, "a migrate-in: SO_REUSEADDR on its TCP listener, a time "
					 "limit on the source's answers (M: PUT /migration/recover)"),
	EQ(socket, M, 0, AF_INET, "live migration over TCP: PUT /migration/start (M), "
				  "/migration/incoming and --migrate-in (B)"),
	EQ(socket, M, 0, AF_INET6, "live migration over TCP to an IPv6 address"),
	MASKED(fallocate, B, 1, ~0ull, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
	       "FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE",
	       "a migrate-in drops the pages written on the source after it sent them"),
	SYS(getsockname, B, "libmicrohttpd checks the API socket at start"),
	SYS(recvfrom, M | A, "HTTP requests (A); vsock reads its CONNECT line (M)"),
	SYS(sendto, M | A, "HTTP replies (A); vsock (M)"),
	SYS(sendmsg, M | A, "HTTP replies (A); vsock sends guest data to host sockets (M); the "
			    "memory layout and the userfaultfd to the page-fault handler (B)"),
	SYS(shutdown, M | A, "libmicrohttpd ends connections (A) and its socket (M); vsock (M)"),

	/* --- io_uring: virtio-blk's Async engine; each ring allows only READV, WRITEV, FSYNC --- */
	SYS(io_uring_setup, B, "virtio-blk Async engine: one ring per drive, built at start"),
	EQ(io_uring_register, B, 1, IORING_REGISTER_EVENTFD, "completions wake the event loop"),
	EQ(io_uring_register, B, 1, IORING_REGISTER_RESTRICTIONS,
	   "the ring allows only READV, WRITEV and FSYNC"),
	EQ(io_uring_register, B, 1, IORING_REGISTER_ENABLE_RINGS, "the ring starts restricted"),
	SYS(io_uring_enter, M | V, "submits and reaps requests (V: a device reset waits for "
				   "requests in flight)"),

	/* --- ioctl: only these requests --- */
	IOCTL(KVM_GET_API_VERSION, M, "opening /dev/kvm; GET /capabilities"),
	IOCTL(KVM_CHECK_EXTENSION, M, "the capabilities kiln needs; GET /capabilities"),
	IOCTL(KVM_GET_VCPU_MMAP_SIZE, B, "VM build"),
	IOCTL(KVM_GET_SUPPORTED_CPUID, B, "VM build"),
	IOCTL(KVM_X86_GET_MCE_CAP_SUPPORTED, B, "VM build: the guest's machine-check banks"),
	IOCTL(KVM_CREATE_VM, B, "VM build"),
	IOCTL(KVM_SET_TSS_ADDR, B, "VM build"),
	IOCTL(KVM_SET_IDENTITY_MAP_ADDR, B, "VM build"),
	IOCTL(KVM_CREATE_IRQCHIP, B, "VM build"),
	IOCTL(KVM_CREATE_PIT2, B, "VM build"),
	IOCTL(KVM_SET_USER_MEMORY_REGION, M, "VM build: guest RAM slots (B); PUT /migration/start "
					     "turns their dirty-page log on, a failed migration off"),
	IOCTL(KVM_IOEVENTFD, M, "virtio queue notifications (assigned at build, removed at exit)"),
	IOCTL(KVM_IRQFD, M, "virtio interrupts (assigned at build, removed at exit)"),
	IOCTL(KVM_IRQ_LINE, M | V, "serial and i8042 interrupts"),
	IOCTL(KVM_CREATE_VCPU, B, "VM build"),
	IOCTL(KVM_SET_CPUID2, B, "vCPU setup"),
	IOCTL(KVM_X86_SETUP_MCE, B, "vCPU setup: machine-check banks"),
	IOCTL(KVM_SET_MSRS, B, "vCPU setup"),
	IOCTL(KVM_GET_LAPIC, M, "vCPU setup: LINT0/LINT1 (B); PUT /snapshot/create"),
	IOCTL(KVM_SET_LAPIC, B, "vCPU setup: LINT0/LINT1"),
	IOCTL(KVM_GET_SREGS, M, "vCPU setup: boot registers (B); PUT /snapshot/create"),
	IOCTL(KVM_SET_SREGS, B, "vCPU setup: boot registers"),
	IOCTL(KVM_SET_REGS, B, "vCPU setup: boot registers"),
	IOCTL(KVM_SET_FPU, B, "vCPU setup: boot registers"),
	IOCTL(KVM_GET_REGS, M, "a stopped vCPU's rip for the debug log; PUT /snapshot/create"),
	/* PUT /snapshot/create reads a paused VM's state; PUT /snapshot/load (B) writes it back. */
	IOCTL(KVM_GET_MSR_INDEX_LIST, M, "PUT /snapshot/create: which MSRs a vCPU has"),
	IOCTL(KVM_GET_IRQCHIP, M, "PUT /snapshot/create"),
	IOCTL(KVM_SET_IRQCHIP, B, "PUT /snapshot/load"),
	IOCTL(KVM_GET_PIT2, M, "PUT /snapshot/create"),
	IOCTL(KVM_SET_PIT2, B, "PUT /snapshot/load"),
	IOCTL(KVM_GET_CLOCK, M, "PUT /snapshot/create"),
	IOCTL(KVM_SET_CLOCK, B, "PUT /snapshot/load"),
	IOCTL(KVM_GET_CPUID2, M, "PUT /snapshot/create"),
	IOCTL(KVM_GET_TSC_KHZ, M, "PUT /snapshot/create; PUT /snapshot/load compares rates (B)"),
	IOCTL(KVM_SET_TSC_KHZ, B, "PUT /snapshot/load, when the snapshot's rate differs"),
	IOCTL(KVM_GET_XSAVE, M, "PUT /snapshot/create"),
	IOCTL(KVM_SET_XSAVE, B, "PUT /snapshot/load"),
	IOCTL(KVM_GET_XCRS, M, "PUT /snapshot/create"),
	IOCTL(KVM_SET_XCRS, B, "PUT /snapshot/load"),
	IOCTL(KVM_GET_DEBUGREGS, M, "PUT /snapshot/create"),
	IOCTL(KVM_SET_DEBUGREGS, B, "PUT /snapshot/load"),
	IOCTL(KVM_GET_MSRS, M, "PUT /snapshot/create"),
	IOCTL(KVM_GET_VCPU_EVENTS, M, "PUT /snapshot/create"),
	IOCTL(KVM_SET_VCPU_EVENTS, B, "PUT /snapshot/load"),
	IOCTL(KVM_GET_MP_STATE, M, "PUT /snapshot/create"),
	IOCTL(KVM_GET_DIRTY_LOG, M, "PUT /snapshot/create: the pages the guest wrote since the last "
				    "snapshot (Diff), or the restart of that record (Full)"),
	IOCTL(KVM_SET_MP_STATE, B, "PUT /snapshot/load"),
	IOCTL(KVM_SET_SIGNAL_MASK, B, "a vCPU thread opens the kick signal inside KVM_RUN "
				      "(before its own filter)"),
	IOCTL(KVM_RUN, B | V, "a vCPU runs the guest"),
	IOCTL(KVM_X86_SET_MCE, B | V, "a vCPU injects a machine check when the guest touched a "
				      "poisoned page"),
	IOCTL(TUNSETIFF, B, "virtio-net attaches to its TAP"),
	IOCTL(TUNSETVNETHDRSZ, B, "virtio-net: 12-byte virtio-net headers on the TAP"),
	IOCTL(TUNSETOFFLOAD, B | V, "virtio-net: the TAP's offloads follow the driver's features "
				    "(V: at DRIVER_OK)"),
	IOCTL(BLKGETSIZE64, B, "virtio-blk on a block device: its size"),
	IOCTL(TCGETS, M, "the console: isatty and raw mode"),
	IOCTL(TCSETS, M, "the console: raw mode, restored at exit"),
	IOCTL(UFFDIO_API, M, "GET /capabilities: userfaultfd features; PUT /memory/poison; a lazy "
			     "restore, by the uffd thread or a page-fault handler (B)"),
	IOCTL(UFFDIO_REGISTER, M, "GET /capabilities: the poison probe; PUT /memory/poison "
				  "registers the page it poisons; a lazy restore registers guest RAM "
				  "(B)"),
	IOCTL(UFFDIO_POISON, M | U, "GET /capabilities: the poison probe; PUT /memory/poison; a "
				    "lazy restore keeps poisoned pages poisoned (B), and the uffd thread "
				    "poisons the pages it cannot serve after a failure (U), the event "
				    "loop those a page-fault handler that exited did not serve"),
	IOCTL(UFFDIO_UNREGISTER, M | U, "PUT /memory/poison: the marker stays, the range goes; "
					"the uffd thread once every page is in (U)"),
	IOCTL(UFFDIO_COPY, M | U, "GET /capabilities: the poison probe; the uffd thread copies "
				  "pages in (U)"),
	IOCTL(UFFDIO_WAKE, M | U, "the uffd thread wakes a faulter whose page arrived another way "
				  "(U); the event loop wakes the waiters of a page-fault handler "
				  "that exited, once their pages are poisoned"),
};

const struct seccomp_rule *seccomp_rules(unsigned *n)
{
	*n = sizeof(rules) / sizeof(rules[0]);
	return rules;
}
