/* Guest-physical memory map of an x86_64 kiln microVM. */
#ifndef KILN_LAYOUT_X86_64_H
#define KILN_LAYOUT_X86_64_H

#define LAYOUT_GDT_ADDR 0x500ull
#define LAYOUT_IDT_ADDR 0x520ull
#define LAYOUT_ZERO_PAGE 0x7000ull  /* struct boot_params */
#define LAYOUT_BOOT_STACK 0x8ff0ull
#define LAYOUT_PML4 0x9000ull
#define LAYOUT_PDPT 0xa000ull
#define LAYOUT_PD 0xb000ull          /* four page directories: identity map of 4 GiB */
#define LAYOUT_CMDLINE 0x20000ull
#define LAYOUT_CMDLINE_MAX 4096u
#define LAYOUT_EBDA 0x9fc00ull        /* MP table lives here */
#define LAYOUT_HIMEM 0x100000ull      /* where protected-mode kernels load */

/* RAM below 4 GiB ends here (3.25 GiB, as in Firecracker); the rest starts at 4 GiB. */
#define LAYOUT_MMIO_GAP_START 0xd0000000ull
#define LAYOUT_MMIO_GAP_END 0x100000000ull

/* Firecracker's boot timer: the guest writes 123 to this byte when its init is up. */
#define LAYOUT_BOOT_TIMER_ADDR 0xd0000000ull
/* virtio-mmio devices, one 4 KiB window each, after the boot timer's. */
#define LAYOUT_VIRTIO_MMIO_BASE 0xd0001000ull
#define LAYOUT_VIRTIO_MMIO_SIZE 0x1000ull

#define LAYOUT_IOAPIC_ADDR 0xfec00000ull
#define LAYOUT_LAPIC_ADDR 0xfee00000ull
#define LAYOUT_TSS_ADDR 0xfffbd000ull
#define LAYOUT_IDENTITY_MAP_ADDR 0xfffbc000ull

/* Legacy IRQ lines. */
#define LAYOUT_IRQ_KEYBOARD 1
#define LAYOUT_IRQ_COM1 4
#define LAYOUT_IRQ_VIRTIO_FIRST 5
#define LAYOUT_IRQ_MAX 23

#endif
