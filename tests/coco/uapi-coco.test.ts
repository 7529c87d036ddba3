/**
 * Pins src/uapi/coco.ts against the kernel's uapi header as read (arch/x86/include/uapi/asm/kvm.h,
 * kvm-x86/linux @3cfc1a8e; include/uapi/linux/kvm.h for KVM_MEMORY_ENCRYPT_OP). The expected
 * sizes and offsets are worked out by hand from the C declarations (natural alignment, no packing),
 * never computed by the code under test.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as C from '../../src/uapi/coco.js';
import { decode, encode, type Layout, scalar } from '../../src/uapi/layout.js';

test('KVM_MEMORY_ENCRYPT_OP = _IOWR(KVMIO, 0xba, unsigned long) = 0xc008aeba', () => {
  assert.equal(C.KVM_MEMORY_ENCRYPT_OP, 0xc008aeba);
});

test('enum sev_cmd_id and enum kvm_tdx_cmd_id values', () => {
  assert.equal(C.SEV_CMD.KVM_SEV_INIT, 0);
  assert.equal(C.SEV_CMD.KVM_SEV_LAUNCH_START, 2);
  assert.equal(C.SEV_CMD.KVM_SEV_SEND_CANCEL, 21);
  assert.equal(C.SEV_CMD.KVM_SEV_INIT2, 22);
  assert.deepEqual([C.SEV_CMD.KVM_SEV_SNP_LAUNCH_START, C.SEV_CMD.KVM_SEV_SNP_LAUNCH_UPDATE, C.SEV_CMD.KVM_SEV_SNP_LAUNCH_FINISH], [100, 101, 102]);
  // the enum counts up without gaps from 0 to KVM_SEV_INIT2
  const legacy = Object.values(C.SEV_CMD).filter((v) => v < 100);
  assert.deepEqual(
    legacy,
    Array.from({ length: 23 }, (_, i) => i),
  );
  assert.deepEqual(C.TDX_CMD, {
    KVM_TDX_CAPABILITIES: 0,
    KVM_TDX_INIT_VM: 1,
    KVM_TDX_INIT_VCPU: 2,
    KVM_TDX_INIT_MEM_REGION: 3,
    KVM_TDX_FINALIZE_VM: 4,
    KVM_TDX_GET_CPUID: 5,
  });
});

test('page types, flags and firmware/TDX-module constants', () => {
  assert.deepEqual(C.KVM_SEV_SNP_PAGE_TYPE, { NORMAL: 1, ZERO: 3, UNMEASURED: 4, SECRETS: 5, CPUID: 6 });
  assert.equal(C.KVM_SEV_PAGE_TYPE_INVALID, 0);
  assert.deepEqual([C.KVM_SEV_SNP_ID_BLOCK_SIZE, C.KVM_SEV_SNP_ID_AUTH_SIZE, C.KVM_SEV_SNP_FINISH_DATA_SIZE], [96, 4096, 32]);
  assert.equal(C.KVM_TDX_MEASURE_MEMORY_REGION, 1);
  assert.equal(C.KVM_MAX_CPUID_ENTRIES, 256);
  assert.equal(C.SNP_POLICY_MASK_VALID, 0x1bffffn);
  assert.equal(C.TDX_STATUS.PAGE_ALREADY_ACCEPTED, 0x00000b0a00000000n);
  assert.equal(C.SEV_RET.INVALID_GUEST_STATE, 2);
  assert.equal(C.PVALIDATE.FAIL_NOUPDATE, 255n);
});

const layouts: [Layout, number, Record<string, number>][] = [
  [C.kvm_sev_cmd, 24, { id: 0, pad0: 4, data: 8, error: 16, sev_fd: 20 }],
  [C.kvm_sev_init, 48, { vmsa_features: 0, flags: 8, ghcb_version: 12, pad1: 14, pad2: 16 }],
  [C.kvm_sev_snp_launch_start, 64, { policy: 0, gosvw: 8, flags: 24, pad0: 26, pad1: 32 }],
  [C.kvm_sev_snp_launch_update, 64, { gfn_start: 0, uaddr: 8, len: 16, type: 24, pad0: 25, flags: 26, pad1: 28, pad2: 32 }],
  [
    C.kvm_sev_snp_launch_finish,
    88,
    { id_block_uaddr: 0, id_auth_uaddr: 8, id_block_en: 16, auth_key_en: 17, vcek_disabled: 18, host_data: 19, pad0: 51, flags: 54, pad1: 56 },
  ],
  [C.kvm_tdx_cmd, 24, { id: 0, flags: 4, data: 8, hw_error: 16 }],
  [C.kvm_cpuid_entry2, 40, { function: 0, index: 4, flags: 8, eax: 12, ebx: 16, ecx: 20, edx: 24, padding: 28 }],
  [C.kvm_tdx_init_vm, 264, { attributes: 0, xfam: 8, mrconfigid: 16, mrowner: 64, mrownerconfig: 112, reserved: 160, cpuid_nent: 256, cpuid_padding: 260 }],
  [C.kvm_tdx_init_mem_region, 24, { source_addr: 0, gpa: 8, nr_pages: 16 }],
  [
    C.kvm_tdx_capabilities,
    2056,
    {
      supported_attrs: 0,
      supported_xfam: 8,
      kernel_tdvmcallinfo_1_r11: 16,
      user_tdvmcallinfo_1_r11: 24,
      kernel_tdvmcallinfo_1_r12: 32,
      user_tdvmcallinfo_1_r12: 40,
      reserved: 48,
      cpuid_nent: 2048,
      cpuid_padding: 2052,
    },
  ],
];

for (const [l, size, offsets] of layouts) {
  test(`struct ${l.name}: size ${size} and every field offset`, () => {
    assert.equal(l.size, size);
    for (const [f, off] of Object.entries(offsets)) assert.equal((l.fields as Record<string, { offset: number }>)[f]?.offset, off, `${l.name}.${f}`);
    assert.equal(Object.keys(l.fields).length, Object.keys(offsets).length, 'no field left unpinned');
  });
}

test('array fields have the C array lengths', () => {
  assert.equal(C.kvm_sev_init.fields.pad2.count, 8);
  assert.equal(C.kvm_sev_snp_launch_start.fields.gosvw.count, 16);
  assert.equal(C.kvm_sev_snp_launch_update.fields.pad2.count, 4);
  assert.equal(C.kvm_sev_snp_launch_finish.fields.host_data.count, 32);
  assert.equal(C.kvm_tdx_init_vm.fields.mrconfigid.count, 6);
  assert.equal(C.kvm_tdx_init_vm.fields.reserved.count, 12);
  assert.equal(C.kvm_tdx_capabilities.fields.reserved.count, 250);
});

test('encoding truncates like the C assignment: a u8 page type, a u16 flags field', () => {
  const d = decode(C.kvm_sev_snp_launch_update, encode(C.kvm_sev_snp_launch_update, { type: 0x101, flags: 0x10001, len: (1n << 64n) + 4096n }));
  assert.equal(scalar(d.type), 1n);
  assert.equal(scalar(d.flags), 1n);
  assert.equal(scalar(d.len), 4096n);
});
