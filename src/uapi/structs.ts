/** The uAPI structs guestmem passes to KVM, from include/uapi/linux/kvm.h (KERNEL-SPEC §1.2). */
import { defineLayout } from './layout.js';

export const kvm_create_guest_memfd = defineLayout('kvm_create_guest_memfd', 64, {
  size: { type: 'u64', offset: 0 },
  flags: { type: 'u64', offset: 8 },
  reserved: { type: 'u64', offset: 16, count: 6 },
});

export const kvm_userspace_memory_region = defineLayout('kvm_userspace_memory_region', 32, {
  slot: { type: 'u32', offset: 0 },
  flags: { type: 'u32', offset: 4 },
  guest_phys_addr: { type: 'u64', offset: 8 },
  memory_size: { type: 'u64', offset: 16 },
  userspace_addr: { type: 'u64', offset: 24 },
});

export const kvm_userspace_memory_region2 = defineLayout('kvm_userspace_memory_region2', 160, {
  slot: { type: 'u32', offset: 0 },
  flags: { type: 'u32', offset: 4 },
  guest_phys_addr: { type: 'u64', offset: 8 },
  memory_size: { type: 'u64', offset: 16 },
  userspace_addr: { type: 'u64', offset: 24 },
  guest_memfd_offset: { type: 'u64', offset: 32 },
  guest_memfd: { type: 'u32', offset: 40 },
  pad1: { type: 'u32', offset: 44 },
  pad2: { type: 'u64', offset: 48, count: 14 },
});

export const kvm_memory_attributes = defineLayout('kvm_memory_attributes', 32, {
  address: { type: 'u64', offset: 0 },
  size: { type: 'u64', offset: 8 },
  attributes: { type: 'u64', offset: 16 },
  flags: { type: 'u64', offset: 24 },
});

export const kvm_enable_cap = defineLayout('kvm_enable_cap', 104, {
  cap: { type: 'u32', offset: 0 },
  flags: { type: 'u32', offset: 4 },
  args: { type: 'u64', offset: 8, count: 4 },
  pad: { type: 'u8', offset: 40, count: 64 },
});

export const kvm_pre_fault_memory = defineLayout('kvm_pre_fault_memory', 64, {
  gpa: { type: 'u64', offset: 0 },
  size: { type: 'u64', offset: 8 },
  flags: { type: 'u64', offset: 16 },
  padding: { type: 'u64', offset: 24, count: 5 },
});

/** The head of struct kvm_run; the exit union starts at 32 and is 256 bytes. */
export const kvm_run = defineLayout('kvm_run', 288, {
  request_interrupt_window: { type: 'u8', offset: 0 },
  immediate_exit: { type: 'u8', offset: 1 },
  exit_reason: { type: 'u32', offset: 8 },
  ready_for_interrupt_injection: { type: 'u8', offset: 12 },
  if_flag: { type: 'u8', offset: 13 },
  flags: { type: 'u16', offset: 14 },
  cr8: { type: 'u64', offset: 16 },
  apic_base: { type: 'u64', offset: 24 },
});

/** Exit payloads, at their offsets inside kvm_run (decode with base 0 over the whole kvm_run). */
export const kvm_run_io = defineLayout('kvm_run.io', 48, {
  direction: { type: 'u8', offset: 32 },
  size: { type: 'u8', offset: 33 },
  port: { type: 'u16', offset: 34 },
  count: { type: 'u32', offset: 36 },
  data_offset: { type: 'u64', offset: 40 },
});

export const kvm_run_mmio = defineLayout('kvm_run.mmio', 56, {
  phys_addr: { type: 'u64', offset: 32 },
  data: { type: 'u8', offset: 40, count: 8 },
  len: { type: 'u32', offset: 48 },
  is_write: { type: 'u8', offset: 52 },
});

export const kvm_run_hypercall = defineLayout('kvm_run.hypercall', 104, {
  nr: { type: 'u64', offset: 32 },
  args: { type: 'u64', offset: 40, count: 6 },
  ret: { type: 'u64', offset: 88 },
  flags: { type: 'u64', offset: 96 },
});

export const kvm_run_memory_fault = defineLayout('kvm_run.memory_fault', 56, {
  flags: { type: 'u64', offset: 32 },
  gpa: { type: 'u64', offset: 40 },
  size: { type: 'u64', offset: 48 },
});
