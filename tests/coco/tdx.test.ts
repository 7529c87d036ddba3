/**
 * The model's TDX platform (src/model/platforms/tdx.ts), rule by rule: the TD and vCPU lifecycle
 * (tdx_vcpu_create, tdx_vcpu_pre_run), KVM_TDX_INIT_VM / CAPABILITIES / INIT_VCPU /
 * INIT_MEM_REGION / FINALIZE_VM and their errnos (tdx.c), kvm_gmem_populate's rules passed through
 * as is, the MRTD record log, Secure-EPT acceptance, and host access to TD memory as a machine
 * check that poisons the folio (KERNEL-SPEC G9).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { HostFault, type MemoryEncryptCommand, type Vcpu, type Vm } from '../../src/api.js';
import { nodeSha384 } from '../../src/cli/measure.js';
import { TdxMrtdContext, toHex } from '../../src/measure/index.js';
import { getProfile, launchDigest, launchLog, platformOf } from '../../src/model/index.js';
import type { TdxPlatform } from '../../src/model/platforms/index.js';
import { TDX_STATUS } from '../../src/uapi/coco.js';
import { bindGmem, expectErrno, expectOk, gmemFile, hlt, kvmFor, PRIVATE, PS, read, runProgram } from '../model/helpers.js';

const op = (t: Vm | Vcpu, cmd: MemoryEncryptCommand) => {
  if (!t.memoryEncryptOp) throw new Error('no memoryEncryptOp');
  return t.memoryEncryptOp(cmd);
};
const INIT_VM = (gpaw = 52, extra: Partial<Extract<MemoryEncryptCommand, { id: 'KVM_TDX_INIT_VM' }>> = {}): MemoryEncryptCommand => ({
  id: 'KVM_TDX_INIT_VM',
  cpuid: [{ function: 0x80000008, eax: gpaw << 16 }],
  ...extra,
});
const region = (sourceAddr: bigint, gpa: bigint, nrPages: bigint, flags = 0): MemoryEncryptCommand => ({
  id: 'KVM_TDX_INIT_MEM_REGION',
  flags,
  sourceAddr,
  gpa,
  nrPages,
});

/** A TD on a TDX host with a 16-page guest_memfd slot at GPA 0, set private, host memory beside it. */
function td(gpaw = 52, privateAttr = true) {
  const kvm = kvmFor('6.18+tdx');
  const vm = kvm.createVm('tdx');
  const g = vm.createGuestMemfd({ size: 16n * PS, flags: 0n });
  const src = vm.mmapAnonymous(16n * PS);
  bindGmem(vm, 0, 0n, 16n * PS, g, 0n, src.addr);
  if (privateAttr) vm.setMemoryAttributes({ address: 0n, size: 16n * PS, attributes: PRIVATE, flags: 0n });
  op(vm, INIT_VM(gpaw));
  const v = vm.createVcpu(0);
  op(v, { id: 'KVM_TDX_INIT_VCPU' });
  return { kvm, vm, g, src, v, p: platformOf(vm) as TdxPlatform };
}

test('profiles: TDX exists from 6.16 and only on a TDX host', () => {
  const kvm = kvmFor('6.18+tdx');
  assert.equal(kvm.checkExtension(235), 0b100011);
  expectErrno(() => kvm.createVm('snp'), 'EINVAL');
  expectErrno(() => kvmFor('6.12+snp').createVm('tdx'), 'EINVAL');
  assert.ok(getProfile('next+tdx').vmTypes.includes('tdx'));
});

test('a non-TD VM on a TDX host: VM command ENOTTY (vt_mem_enc_ioctl), vCPU command EINVAL (vt_vcpu_mem_enc_ioctl)', () => {
  const vm = kvmFor('6.18+tdx').createVm('sw_protected');
  expectErrno(() => op(vm, INIT_VM()), 'ENOTTY');
  expectErrno(() => op(vm.createVcpu(0), { id: 'KVM_TDX_INIT_VCPU' }), 'EINVAL');
});

test('KVM_TDX_INIT_VM (tdx_td_init, setup_tdparams): hw_error, flags, E2BIG, reserved, attributes, XFAM, the GPA width; once', () => {
  const vm = kvmFor('6.18+tdx').createVm('tdx');
  expectErrno(() => vm.createVcpu(0), 'EIO', 'tdx_vcpu_create before KVM_TDX_INIT_VM');
  expectErrno(() => op(vm, { ...INIT_VM(), hwError: 1n } as MemoryEncryptCommand), 'EINVAL');
  expectErrno(() => op(vm, { ...INIT_VM(), flags: 1 } as MemoryEncryptCommand), 'EINVAL');
  expectErrno(() => op(vm, { id: 'KVM_TDX_INIT_VM', cpuid: Array.from({ length: 257 }, (_, i) => ({ function: i })) }), 'E2BIG');
  expectErrno(() => op(vm, INIT_VM(52, { reserved: [0n, 0n, 5n] })), 'EINVAL');
  expectErrno(() => op(vm, INIT_VM(52, { attributes: 2n })), 'EINVAL');
  expectErrno(() => op(vm, INIT_VM(52, { xfam: 1n << 40n })), 'EINVAL');
  expectErrno(() => op(vm, { id: 'KVM_TDX_INIT_VM', cpuid: [] }), 'EINVAL', 'no CPUID 0x80000008');
  expectErrno(() => op(vm, INIT_VM(50)), 'EINVAL');
  expectErrno(() => op(vm, { vendor: 'tdx', id: 1 }), 'EFAULT', 'no data pointer');
  expectErrno(() => op(vm, { vendor: 'tdx', id: 9 }), 'EINVAL');
  expectOk(() => op(vm, INIT_VM(48, { attributes: 1n << 28n, xfam: 0x3n })));
  const p = platformOf(vm) as TdxPlatform;
  assert.equal(p.state, 'initialized');
  assert.equal(p.sharedBit, 1n << 47n);
  expectErrno(() => op(vm, INIT_VM()), 'EINVAL');
});

test('KVM_TDX_INIT_VM with vCPUs already created (a profile without the lifecycle gate) is EBUSY', () => {
  const base = getProfile('6.18');
  const vm = kvmFor({ ...base, name: '6.18+tdx-loose', vmTypes: [...base.vmTypes, 'tdx'] }).createVm('tdx');
  vm.createVcpu(0);
  expectErrno(() => op(vm, INIT_VM()), 'EBUSY');
});

test("KVM_TDX_CAPABILITIES: flags 0, a CPUID buffer big enough (E2BIG), the module's attributes and XFAM", () => {
  const vm = kvmFor('6.18+tdx').createVm('tdx');
  expectErrno(() => op(vm, { id: 'KVM_TDX_CAPABILITIES', nent: 2 }), 'E2BIG');
  expectErrno(() => op(vm, { id: 'KVM_TDX_CAPABILITIES', nent: 8, flags: 1 }), 'EINVAL');
  const r = op(vm, { id: 'KVM_TDX_CAPABILITIES', nent: 64 });
  assert.equal(r.data?.supported_attrs, (1n << 0n) | (1n << 28n) | (1n << 30n) | (1n << 63n));
});

test('KVM_TDX_INIT_VCPU: flags 0, once per vCPU; vCPU commands need an initialized, unfinalized TD', () => {
  const vm = kvmFor('6.18+tdx').createVm('tdx');
  op(vm, INIT_VM());
  const v = vm.createVcpu(0);
  expectErrno(() => op(v, { id: 'KVM_TDX_INIT_VCPU', flags: 1 }), 'EINVAL');
  expectErrno(() => op(v, { id: 'KVM_TDX_INIT_VCPU', hwError: 2n }), 'EINVAL');
  expectOk(() => op(v, { id: 'KVM_TDX_INIT_VCPU' }));
  expectErrno(() => op(v, { id: 'KVM_TDX_INIT_VCPU' }), 'EINVAL');
  expectErrno(() => op(v, { vendor: 'tdx', id: 7 }), 'EINVAL');
});

test('KVM_TDX_INIT_MEM_REGION: vCPU, flags, NULL/unaligned source, unaligned GPA, zero pages, wrap and the shared bit are EINVAL', () => {
  const { vm, src } = td(48);
  const other = vm.createVcpu(1);
  expectErrno(() => op(other, region(src.addr, PS, 1n)), 'EINVAL', 'vCPU 1 has no KVM_TDX_INIT_VCPU');
  const v = vm.createVcpu(2);
  op(v, { id: 'KVM_TDX_INIT_VCPU' });
  expectErrno(() => op(v, region(src.addr, PS, 1n, 2)), 'EINVAL');
  expectErrno(() => op(v, region(0n, PS, 1n)), 'EINVAL');
  expectErrno(() => op(v, region(src.addr + 1n, PS, 1n)), 'EINVAL');
  expectErrno(() => op(v, region(src.addr, PS + 8n, 1n)), 'EINVAL');
  expectErrno(() => op(v, region(src.addr, PS, 0n)), 'EINVAL');
  expectErrno(() => op(v, region(src.addr, 0xfffffffffffff000n, 2n)), 'EINVAL', 'wraps');
  expectErrno(() => op(v, region(src.addr, (1n << 47n) | PS, 1n)), 'EINVAL', 'shared bit (GPAW 48)');
  expectErrno(() => op(v, region(src.addr, (1n << 47n) - PS, 2n)), 'EINVAL', 'the last page reaches the shared bit');
  expectErrno(() => op(v, { vendor: 'tdx', id: 3 }), 'EFAULT', 'no data pointer');
});

test('KVM_TDX_INIT_MEM_REGION: kvm_gmem_populate errnos pass through with the progress copied back', () => {
  const { vm, src, v } = td(52, false);
  const err = (fn: () => unknown) => {
    try {
      fn();
    } catch (e) {
      return e as { errno: string; data: Record<string, bigint> };
    }
    throw new Error('no error');
  };
  let e = err(() => op(v, region(src.addr, PS, 2n)));
  assert.equal(e.errno, 'EINVAL', 'not PRIVATE');
  assert.deepEqual(e.data, { source_addr: src.addr, gpa: PS, nr_pages: 2n });
  vm.setMemoryAttributes({ address: 0n, size: 16n * PS, attributes: PRIVATE, flags: 0n });
  assert.deepEqual(op(v, region(src.addr, PS, 2n)).data, { source_addr: src.addr + 2n * PS, gpa: 3n * PS, nr_pages: 0n });
  e = err(() => op(v, region(src.addr, 2n * PS, 2n)));
  assert.equal(e.errno, 'EEXIST');
  assert.equal(e.data.nr_pages, 2n);
  e = err(() => op(v, region(src.addr, 14n * PS, 4n)));
  assert.equal(e.errno, 'EINVAL', 'past the memslot');
  assert.deepEqual(e.data, { source_addr: src.addr + 2n * PS, gpa: 16n * PS, nr_pages: 2n });
  e = err(() => op(v, region(0x10000n, 5n * PS, 1n)));
  assert.equal(e.errno, 'EFAULT', 'source not mapped');
});

test('the MRTD log: PAGE.ADD for every page, 16 x MR.EXTEND of its 256-byte chunks where measured, in order', () => {
  const { vm, src, v } = td();
  src.write(
    PS,
    new Uint8Array(4096).map((_, i) => i & 0xff),
  );
  op(v, region(src.addr + PS, PS, 1n, 1));
  op(v, region(src.addr, 4n * PS, 1n, 0));
  const log = launchLog(vm);
  assert.equal(log.platform, 'tdx');
  assert.deepEqual(
    log.entries.map((r) => [r.op, r.gpa]),
    [['MEM.PAGE.ADD', PS], ...Array.from({ length: 16 }, (_, c) => ['MR.EXTEND', PS + BigInt(c * 256)]), ['MEM.PAGE.ADD', 4n * PS]],
  );
  const m = new TdxMrtdContext(nodeSha384);
  m.pageAdd(PS);
  for (let c = 0; c < 4096; c += 256)
    m.mrExtend(
      PS + BigInt(c),
      new Uint8Array(256).map((_, i) => (c + i) & 0xff),
    );
  m.pageAdd(4n * PS);
  assert.equal(toHex(launchDigest(vm, nodeSha384)), toHex(m.digest()));
});

test('KVM_TDX_FINALIZE_VM: once; afterwards no initial memory, no new vCPUs, and only now KVM_RUN and pre-faulting', () => {
  const { vm, src, v } = td();
  src.write(PS, new Uint8Array([0x5a]));
  op(v, region(src.addr + PS, PS, 1n, 1));
  expectErrno(() => runProgram(v, [hlt]), 'EINVAL', 'tdx_vcpu_pre_run: not finalized');
  expectErrno(() => v.preFaultMemory({ gpa: 2n * PS, size: PS, flags: 0n }), 'EOPNOTSUPP');
  expectOk(() => op(vm, { id: 'KVM_TDX_FINALIZE_VM' }));
  expectErrno(() => op(vm, { id: 'KVM_TDX_FINALIZE_VM' }), 'EINVAL');
  expectErrno(() => op(v, region(src.addr, 2n * PS, 1n)), 'EINVAL');
  expectErrno(() => op(v, { id: 'KVM_TDX_INIT_VCPU' }), 'EINVAL');
  expectErrno(() => vm.createVcpu(1), 'EIO');
  assert.deepEqual(runProgram(v, [read(PS, 1), hlt]).reads, [0x5an]);
  assert.deepEqual(v.preFaultMemory({ gpa: 2n * PS, size: PS, flags: 0n }), { gpa: 3n * PS, size: 0n });
});

test('Secure-EPT: PAGE.ADDed pages are accepted, a faulted-in page is pending until TDG.MEM.PAGE.ACCEPT; a zap makes it pending again', () => {
  const { vm, src, v, g } = td();
  op(v, region(src.addr, PS, 1n));
  op(vm, { id: 'KVM_TDX_FINALIZE_VM' });
  const accept = (gpa: bigint) => ({ op: 'tdg_mem_page_accept' as const, gpa });
  assert.deepEqual(runProgram(v, [accept(PS), accept(2n * PS), accept(2n * PS), accept(2n * PS + 4n), hlt]).reads, [
    TDX_STATUS.PAGE_ALREADY_ACCEPTED,
    TDX_STATUS.SUCCESS,
    TDX_STATUS.PAGE_ALREADY_ACCEPTED,
    TDX_STATUS.OPERAND_INVALID,
  ]);
  g.fallocate(3, 2n * PS, PS);
  assert.deepEqual(runProgram(v, [accept(2n * PS), hlt]).reads, [TDX_STATUS.SUCCESS], 'a punched page comes back pending');
  vm.setMemoryAttributes({ address: 5n * PS, size: PS, attributes: 0n, flags: 0n });
  const e = runProgram(v, [accept(5n * PS), hlt]);
  assert.equal(e.reason, 'memory_fault', 'ACCEPT is a private access');
  assert.equal(e.memoryFault?.flags, PRIVATE);
  const sw = kvmFor('6.18').createVm('sw_protected');
  assert.equal(runProgram(sw.createVcpu(0), [accept(0n), hlt]).reason, 'shutdown', 'TDCALL outside a TD is #UD');
});

test('host access to TD memory: a machine check; the folio is poisoned, its mapping zapped, kept until punched; the guest gets EHWPOISON', () => {
  const { kvm, vm, src, v, g } = td();
  src.write(PS, new Uint8Array([1, 2, 3, 4]));
  op(v, region(src.addr + PS, PS, 1n, 1));
  op(vm, { id: 'KVM_TDX_FINALIZE_VM' });
  const k = kvm.vms[0];
  assert.ok(k && kvm.hostKernel);
  assert.ok(k.mmu.sptes.has(1), 'PAGE.ADD mapped the S-EPT entry');
  const mce = (() => {
    try {
      kvm.hostKernel.directMapRead(g.fd, PS, 4);
    } catch (e) {
      return e;
    }
  })();
  assert.ok(mce instanceof HostFault && mce.signal === 'MCE');
  const inode = gmemFile(g).inode;
  assert.ok(inode.poisoned.has(1));
  assert.ok(inode.pages.has(1), 'not truncated');
  assert.equal(k.mmu.sptes.has(1), false, 'kvm_gmem_error_folio zapped it');
  const e = runProgram(v, [read(PS), hlt]);
  assert.equal(e.reason, 'memory_fault');
  assert.equal(e.errno, 'EHWPOISON');
  assert.deepEqual(e.memoryFault, { flags: PRIVATE, gpa: PS, size: PS });
  g.fallocate(3, PS, PS);
  assert.equal(inode.poisoned.has(1), false);
  assert.deepEqual(runProgram(v, [read(PS), hlt]).reads, [0n]);
  // a page the TD never had is the host's
  g.fallocate(1, 8n * PS, PS);
  kvm.hostKernel.directMapWrite(g.fd, 8n * PS, new Uint8Array([3]));
});
