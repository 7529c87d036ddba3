/**
 * Pins every struct size, field offset, ioctl number and constant of src/uapi/ against the values in
 * KERNEL-SPEC §1 (which were checked against kernel headers and the live kernel). The expected values
 * here are typed in from the spec, never computed by the code under test.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as C from '../src/uapi/constants.js';
import { CAP, decode, ERRNO, encode, errnoName, IOCTL, structs as S } from '../src/uapi/index.js';
import * as X86 from '../src/uapi/x86.js';

test('ioctl numbers match KERNEL-SPEC §1.1', () => {
  const expected: Record<string, number> = {
    KVM_CREATE_GUEST_MEMFD: 0xc040aed4,
    KVM_SET_USER_MEMORY_REGION2: 0x40a0ae49,
    KVM_SET_USER_MEMORY_REGION: 0x4020ae46,
    KVM_SET_MEMORY_ATTRIBUTES: 0x4020aed2,
    KVM_PRE_FAULT_MEMORY: 0xc040aed5,
    KVM_CHECK_EXTENSION: 0xae03,
    KVM_CREATE_VM: 0xae01,
    KVM_ENABLE_CAP: 0x4068aea3,
    KVM_GET_API_VERSION: 0xae00,
    KVM_RUN: 0xae80,
    KVM_CREATE_VCPU: 0xae41,
    KVM_GET_VCPU_MMAP_SIZE: 0xae04,
  };
  for (const [name, value] of Object.entries(expected)) {
    assert.equal((IOCTL as Record<string, number>)[name], value, `${name} = 0x${value.toString(16)}`);
  }
});

const layouts: [keyof typeof S, number, Record<string, number>][] = [
  ['kvm_create_guest_memfd', 64, { size: 0, flags: 8, reserved: 16 }],
  ['kvm_userspace_memory_region', 32, { slot: 0, flags: 4, guest_phys_addr: 8, memory_size: 16, userspace_addr: 24 }],
  [
    'kvm_userspace_memory_region2',
    160,
    { slot: 0, flags: 4, guest_phys_addr: 8, memory_size: 16, userspace_addr: 24, guest_memfd_offset: 32, guest_memfd: 40, pad1: 44, pad2: 48 },
  ],
  ['kvm_memory_attributes', 32, { address: 0, size: 8, attributes: 16, flags: 24 }],
  ['kvm_pre_fault_memory', 64, { gpa: 0, size: 8, flags: 16, padding: 24 }],
  ['kvm_enable_cap', 104, { cap: 0, flags: 4, args: 8, pad: 40 }],
  ['kvm_run_memory_fault', 56, { flags: 32, gpa: 40, size: 48 }],
  ['kvm_run_hypercall', 104, { nr: 32, args: 40, ret: 88, flags: 96 }],
  ['kvm_run_io', 48, { direction: 32, size: 33, port: 34, count: 36, data_offset: 40 }],
];

for (const [name, size, offsets] of layouts) {
  test(`struct ${name}: size ${size} and field offsets`, () => {
    const l = S[name];
    assert.equal(l.size, size);
    for (const [field, off] of Object.entries(offsets)) {
      assert.equal((l.fields as Record<string, { offset: number }>)[field]?.offset, off, `${name}.${field}`);
    }
    assert.equal(Object.keys(l.fields).length, Object.keys(offsets).length, 'no field left unpinned');
  });
}

test('x86 vCPU-setup ioctls (kvm_regs 144, kvm_sregs 312, kvm_cpuid2 8, kvm_signal_mask 4 bytes)', () => {
  assert.deepEqual([X86.kvm_regs.size, X86.kvm_sregs.size, X86.kvm_cpuid2.size, X86.kvm_signal_mask.size], [144, 312, 8, 4]);
  assert.deepEqual(X86.IOCTL_X86, {
    KVM_GET_SUPPORTED_CPUID: 0xc008ae05,
    KVM_SET_TSS_ADDR: 0xae47,
    KVM_GET_REGS: 0x8090ae81,
    KVM_SET_REGS: 0x4090ae82,
    KVM_GET_SREGS: 0x8138ae83,
    KVM_SET_SREGS: 0x4138ae84,
    KVM_SET_SIGNAL_MASK: 0x4004ae8b,
    KVM_SET_CPUID2: 0x4008ae90,
  });
});

test('kvm_run: exit_reason at 8, the exit union at 32', () => {
  assert.equal(S.kvm_run.fields.exit_reason.offset, 8);
  assert.equal(S.kvm_run_mmio.fields.phys_addr.offset, 32);
});

test('v1 region struct is the first 32 bytes of v2 (SANITY_CHECK_MEM_REGION_FIELD)', () => {
  for (const [f, spec] of Object.entries(S.kvm_userspace_memory_region.fields)) {
    assert.deepEqual(spec, (S.kvm_userspace_memory_region2.fields as Record<string, unknown>)[f]);
  }
});

test('encode writes little-endian at the declared offsets; decode reads it back', () => {
  const buf = encode(S.kvm_userspace_memory_region2, {
    slot: 0x10000 | 10,
    flags: 4,
    guest_phys_addr: 0xc0000000n,
    memory_size: 0x200000n,
    userspace_addr: 0x7f0000000000n,
    guest_memfd_offset: 0x1000n,
    guest_memfd: 7,
  });
  assert.equal(buf.length, 160);
  const dv = new DataView(buf.buffer);
  assert.equal(dv.getUint32(0, true), 0x1000a);
  assert.equal(dv.getBigUint64(8, true), 0xc0000000n);
  assert.equal(dv.getUint32(40, true), 7);
  assert.equal(buf[32], 0x00);
  assert.equal(buf[33], 0x10);
  const back = decode(S.kvm_userspace_memory_region2, buf);
  assert.equal(back.guest_memfd_offset, 0x1000n);
  assert.equal(back.memory_size, 0x200000n);
  assert.deepEqual(back.pad2, new Array(14).fill(0n));
});

test('encode truncates to the field width like a C assignment, and clears a reused buffer', () => {
  const buf = new Uint8Array(64).fill(0xff);
  encode(S.kvm_create_guest_memfd, { size: (1n << 64n) + 5n, flags: -1n, reserved: [1n, 2n] }, buf);
  const d = decode(S.kvm_create_guest_memfd, buf);
  assert.equal(d.size, 5n);
  assert.equal(d.flags, (1n << 64n) - 1n);
  assert.deepEqual(d.reserved, [1n, 2n, 0n, 0n, 0n, 0n]);
});

test('capability numbers and constants of KERNEL-SPEC §1.3', () => {
  assert.deepEqual(
    [
      CAP.KVM_CAP_EXIT_HYPERCALL,
      CAP.KVM_CAP_USER_MEMORY2,
      CAP.KVM_CAP_MEMORY_FAULT_INFO,
      CAP.KVM_CAP_MEMORY_ATTRIBUTES,
      CAP.KVM_CAP_GUEST_MEMFD,
      CAP.KVM_CAP_VM_TYPES,
      CAP.KVM_CAP_PRE_FAULT_MEMORY,
      CAP.KVM_CAP_GUEST_MEMFD_FLAGS,
      C.PENDING_CAP.KVM_CAP_MEMORY_ATTRIBUTES2,
    ],
    [201, 231, 232, 233, 234, 235, 236, 244, 245],
  );
  assert.equal(C.KVM_MEM_LOG_DIRTY_PAGES, 1);
  assert.equal(C.KVM_MEM_READONLY, 2);
  assert.equal(C.KVM_MEM_GUEST_MEMFD, 4);
  assert.equal(C.KVM_MEMORY_ATTRIBUTE_PRIVATE, 8n);
  assert.equal(C.KVM_EXIT.HYPERCALL, 3);
  assert.equal(C.KVM_EXIT.MEMORY_FAULT, 39);
  assert.equal(C.KVM_MEMORY_EXIT_FLAG_PRIVATE, 8n);
  assert.equal(C.GUEST_MEMFD_FLAG_MMAP, 1n);
  assert.equal(C.GUEST_MEMFD_FLAG_INIT_SHARED, 2n);
  assert.equal(C.KVM_HC_MAP_GPA_RANGE, 12);
  assert.equal(C.KVM_MAP_GPA_RANGE_ENCRYPTED, 16);
  assert.equal(C.KVM_EXIT_HYPERCALL_LONG_MODE, 1n);
  assert.deepEqual(C.VM_TYPE, { default: 0, sw_protected: 1, sev: 2, sev_es: 3, snp: 4, tdx: 5 });
  assert.equal(C.GMEM_ST_MODE, 0o100600);
  assert.equal(C.KVM_USER_MEM_SLOTS, 32764);
});

test('errno numbers are the x86-64 Linux ones', () => {
  assert.deepEqual(
    [
      ERRNO.EBADF,
      ERRNO.EFAULT,
      ERRNO.EEXIST,
      ERRNO.ENODEV,
      ERRNO.EINVAL,
      ERRNO.ENOTTY,
      ERRNO.EFBIG,
      ERRNO.ESPIPE,
      ERRNO.EOPNOTSUPP,
      ERRNO.EHWPOISON,
      ERRNO.ENXIO,
    ],
    [9, 14, 17, 19, 22, 25, 27, 29, 95, 133, 6],
  );
  assert.equal(errnoName(22), 'EINVAL');
  assert.equal(errnoName(4242), 'E4242');
});
