/**
 * The x86 vCPU-setup structs and ioctls that running a guest needs (kvm_regs, kvm_sregs,
 * kvm_cpuid2, kvm_signal_mask; arch/x86/include/uapi/asm/kvm.h and include/uapi/linux/kvm.h),
 * declared as data like structs.ts, with ioctl numbers computed from the layouts.
 */

import { IOC_NONE, IOC_READ, IOC_WRITE, ioc as iocFull, KVMIO } from './ioctls.js';
import { defineLayout, type FieldSpec, type Layout } from './layout.js';

export const kvm_regs = defineLayout('kvm_regs', 144, {
  rax: { type: 'u64', offset: 0 },
  rbx: { type: 'u64', offset: 8 },
  rcx: { type: 'u64', offset: 16 },
  rdx: { type: 'u64', offset: 24 },
  rsi: { type: 'u64', offset: 32 },
  rdi: { type: 'u64', offset: 40 },
  rsp: { type: 'u64', offset: 48 },
  rbp: { type: 'u64', offset: 56 },
  r8: { type: 'u64', offset: 64 },
  r9: { type: 'u64', offset: 72 },
  r10: { type: 'u64', offset: 80 },
  r11: { type: 'u64', offset: 88 },
  r12: { type: 'u64', offset: 96 },
  r13: { type: 'u64', offset: 104 },
  r14: { type: 'u64', offset: 112 },
  r15: { type: 'u64', offset: 120 },
  rip: { type: 'u64', offset: 128 },
  rflags: { type: 'u64', offset: 136 },
});

/** struct kvm_segment (24 bytes), laid out at each segment's offset inside kvm_sregs. */
const SEGMENT_FIELDS = [
  ['base', 'u64', 0],
  ['limit', 'u32', 8],
  ['selector', 'u16', 12],
  ['type', 'u8', 14],
  ['present', 'u8', 15],
  ['dpl', 'u8', 16],
  ['db', 'u8', 17],
  ['s', 'u8', 18],
  ['l', 'u8', 19],
  ['g', 'u8', 20],
  ['avl', 'u8', 21],
  ['unusable', 'u8', 22],
  ['padding', 'u8', 23],
] as const;
export const SEGMENTS = ['cs', 'ds', 'es', 'fs', 'gs', 'ss', 'tr', 'ldt'] as const;
export type SegmentName = (typeof SEGMENTS)[number];
type SegmentField = `${SegmentName}_${(typeof SEGMENT_FIELDS)[number][0]}`;

type SregsField =
  | SegmentField
  | 'gdt_base'
  | 'gdt_limit'
  | 'gdt_padding'
  | 'idt_base'
  | 'idt_limit'
  | 'idt_padding'
  | 'cr0'
  | 'cr2'
  | 'cr3'
  | 'cr4'
  | 'cr8'
  | 'efer'
  | 'apic_base'
  | 'interrupt_bitmap';

function sregsFields(): Record<SregsField, FieldSpec> {
  const fields: Partial<Record<SregsField, FieldSpec>> = {};
  SEGMENTS.forEach((seg, i) => {
    for (const [name, type, off] of SEGMENT_FIELDS) fields[`${seg}_${name}`] = { type, offset: i * 24 + off };
  });
  Object.assign(fields, {
    gdt_base: { type: 'u64', offset: 192 },
    gdt_limit: { type: 'u16', offset: 200 },
    gdt_padding: { type: 'u16', offset: 202, count: 3 },
    idt_base: { type: 'u64', offset: 208 },
    idt_limit: { type: 'u16', offset: 216 },
    idt_padding: { type: 'u16', offset: 218, count: 3 },
    cr0: { type: 'u64', offset: 224 },
    cr2: { type: 'u64', offset: 232 },
    cr3: { type: 'u64', offset: 240 },
    cr4: { type: 'u64', offset: 248 },
    cr8: { type: 'u64', offset: 256 },
    efer: { type: 'u64', offset: 264 },
    apic_base: { type: 'u64', offset: 272 },
    interrupt_bitmap: { type: 'u64', offset: 280, count: 4 },
  } satisfies Partial<Record<SregsField, FieldSpec>>);
  return fields as Record<SregsField, FieldSpec>;
}

/** struct kvm_sregs (x86, 312 bytes): 8 segments, gdt/idt dtables, control registers, efer. */
export const kvm_sregs: Layout<SregsField> = defineLayout('kvm_sregs', 312, sregsFields());

/** struct kvm_cpuid2 header; `nent` entries of kvm_cpuid_entry2 follow it. */
export const kvm_cpuid2 = defineLayout('kvm_cpuid2', 8, {
  nent: { type: 'u32', offset: 0 },
  padding: { type: 'u32', offset: 4 },
});
export const kvm_cpuid_entry2 = defineLayout('kvm_cpuid_entry2', 40, {
  function: { type: 'u32', offset: 0 },
  index: { type: 'u32', offset: 4 },
  flags: { type: 'u32', offset: 8 },
  eax: { type: 'u32', offset: 12 },
  ebx: { type: 'u32', offset: 16 },
  ecx: { type: 'u32', offset: 20 },
  edx: { type: 'u32', offset: 24 },
  padding: { type: 'u32', offset: 28, count: 3 },
});

/** struct kvm_signal_mask { __u32 len; __u8 sigset[0]; }: the ioctl size is 4, the sigset follows. */
export const kvm_signal_mask = defineLayout('kvm_signal_mask', 4, {
  len: { type: 'u32', offset: 0 },
});

const ioc = (dir: number, nr: number, size: number): number => iocFull(dir, KVMIO, nr, size);

export const IOCTL_X86 = {
  KVM_GET_SUPPORTED_CPUID: ioc(IOC_READ | IOC_WRITE, 0x05, kvm_cpuid2.size),
  KVM_SET_TSS_ADDR: ioc(IOC_NONE, 0x47, 0),
  KVM_GET_REGS: ioc(IOC_READ, 0x81, kvm_regs.size),
  KVM_SET_REGS: ioc(IOC_WRITE, 0x82, kvm_regs.size),
  KVM_GET_SREGS: ioc(IOC_READ, 0x83, kvm_sregs.size),
  KVM_SET_SREGS: ioc(IOC_WRITE, 0x84, kvm_sregs.size),
  KVM_SET_SIGNAL_MASK: ioc(IOC_WRITE, 0x8b, kvm_signal_mask.size),
  KVM_SET_CPUID2: ioc(IOC_WRITE, 0x90, kvm_cpuid2.size),
} as const;

/** kvm_run exit reasons beyond the ones src/uapi/constants.ts names (include/uapi/linux/kvm.h). */
export const KVM_EXIT_INTR = 10;
