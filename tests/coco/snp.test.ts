/**
 * The model's SEV-SNP platform (src/model/platforms/snp.ts), rule by rule: KVM_SEV_INIT2 and the
 * SNP launch commands of KVM_MEMORY_ENCRYPT_OP with their errnos (sev.c), kvm_gmem_populate's
 * rules as snp_launch_update reports them, the RMP and PVALIDATE, the lifecycle gates, and the
 * platform profiles that make KVM_X86_SNP_VM exist at all.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { HostFault, type MemoryEncryptCommand, type Vm } from '../../src/api.js';
import { nodeSha384 } from '../../src/cli/measure.js';
import { SNP_PAGE_TYPE, SnpGuestContext, toHex, VMSA_GPA } from '../../src/measure/index.js';
import { buildVmsa } from '../../src/measure/vmsa.js';
import { getProfile, launchDigest, launchLog, PROFILES, platformOf, setSnpVcpuRegs, withPlatform } from '../../src/model/index.js';
import type { SnpPlatform } from '../../src/model/platforms/index.js';
import { CAP } from '../../src/uapi/constants.js';
import { bindGmem, errnoOf, expectErrno, expectOk, hlt, kvmFor, PRIVATE, PS, read, runProgram, snpKvm } from '../model/helpers.js';

const op = (vm: Vm, cmd: MemoryEncryptCommand) => {
  if (!vm.memoryEncryptOp) throw new Error('no memoryEncryptOp');
  return vm.memoryEncryptOp(cmd);
};
const INIT2: MemoryEncryptCommand = { id: 'KVM_SEV_INIT2' };
const START: MemoryEncryptCommand = { id: 'KVM_SEV_SNP_LAUNCH_START', policy: 0x30000n };
const FINISH: MemoryEncryptCommand = { id: 'KVM_SEV_SNP_LAUNCH_FINISH' };
const update = (gfnStart: bigint, len: bigint, type: number, uaddr = 0n): MemoryEncryptCommand => ({
  id: 'KVM_SEV_SNP_LAUNCH_UPDATE',
  gfnStart,
  uaddr,
  len,
  type,
});

/** An SNP VM on an SNP host with a 16-page guest_memfd slot at GPA 0 and host memory beside it. */
function snpVm(privateAttr = true) {
  const kvm = kvmFor('6.18+snp');
  const vm = kvm.createVm('snp');
  const g = vm.createGuestMemfd({ size: 16n * PS, flags: 0n });
  const src = vm.mmapAnonymous(16n * PS);
  bindGmem(vm, 0, 0n, 16n * PS, g, 0n, src.addr);
  if (privateAttr) vm.setMemoryAttributes({ address: 0n, size: 16n * PS, attributes: PRIVATE, flags: 0n });
  return { kvm, vm, g, src, p: platformOf(vm) as SnpPlatform };
}

test('profiles: SNP exists from 6.11 and only on an SNP host; the version profiles are unchanged', () => {
  for (const n of ['6.12+snp', '6.18+snp', '7.3+snp', 'next+snp']) assert.ok(PROFILES[n]?.vmTypes.includes('snp'), n);
  for (const n of ['6.8+snp', '6.8+tdx', '6.12+tdx']) assert.equal(PROFILES[n], undefined, n);
  for (const n of ['6.8', '6.12', '6.18', '7.3', 'next']) assert.deepEqual(PROFILES[n]?.vmTypes, ['default', 'sw_protected'], n);
  assert.equal(withPlatform(getProfile('6.8'), 'snp').vmTypes.includes('snp'), false, '6.8 predates KVM_X86_SNP_VM');
  assert.equal(withPlatform(getProfile('6.8'), 'snp').platform, 'snp');
  const kvm = kvmFor('6.18+snp');
  assert.equal(kvm.checkExtension(CAP.KVM_CAP_VM_TYPES), 0b10011);
  expectErrno(() => kvm.createVm('tdx'), 'EINVAL');
  expectErrno(() => kvmFor('6.18').createVm('snp'), 'EINVAL');
  expectErrno(() => kvmFor('6.8').createVm(4), 'EINVAL');
});

test('KVM_MEMORY_ENCRYPT_OP without the hardware is ENOTTY; on an SNP host the vCPU fd has none (ENOTTY)', () => {
  const vm = kvmFor('6.18').createVm('sw_protected');
  expectErrno(() => op(vm, INIT2), 'ENOTTY');
  const { vm: s } = snpVm();
  const v = s.createVcpu(0);
  expectErrno(() => v.memoryEncryptOp?.(update(0n, PS, 3)), 'ENOTTY');
});

test('KVM_SEV_INIT2 (__sev_guest_init): vCPUs, flags, VMSA features, GHCB version, then only once', () => {
  const a = snpVm();
  a.vm.createVcpu(0);
  expectErrno(() => op(a.vm, INIT2), 'EINVAL', 'a vCPU exists');
  const { vm, p } = snpVm();
  expectErrno(() => op(vm, { id: 'KVM_SEV_INIT2', flags: 1 }), 'EINVAL');
  expectErrno(() => op(vm, { id: 'KVM_SEV_INIT2', vmsaFeatures: 1n }), 'EINVAL', "SNPActive is KVM's to set");
  expectErrno(() => op(vm, { id: 'KVM_SEV_INIT2', ghcbVersion: 1 }), 'EINVAL');
  expectErrno(() => op(vm, { id: 'KVM_SEV_INIT2', ghcbVersion: 3 }), 'EINVAL');
  expectErrno(() => op(vm, { vendor: 'sev', id: 22 }), 'EFAULT', 'no data pointer');
  expectOk(() => op(vm, { id: 'KVM_SEV_INIT2', vmsaFeatures: 0x20n }));
  assert.equal(p.vmsaFeatures, 0x21n);
  assert.equal(p.ghcbVersion, 2);
  expectErrno(() => op(vm, INIT2), 'EPERM', 'an SNP guest: commands below 100 are EPERM');
  expectErrno(() => op(vm, { vendor: 'sev', id: 7 }), 'EPERM');
  expectErrno(() => op(vm, { vendor: 'sev', id: 103 }), 'EINVAL');
});

test('legacy SEV commands: ENOTTY before KVM_SEV_INIT2, EINVAL for ids the switch lacks; on a default VM of an SNP host, INIT is ENOTTY (no SEV ASIDs)', () => {
  const { vm } = snpVm();
  expectErrno(() => op(vm, { vendor: 'sev', id: 2 }), 'ENOTTY');
  expectErrno(() => op(vm, { vendor: 'sev', id: 19 }), 'EINVAL', 'KVM_SEV_CERT_EXPORT is not in the switch');
  expectErrno(() => op(vm, { vendor: 'sev', id: 0 }), 'EINVAL', 'KVM_SEV_INIT is for default VMs');
  const plain = kvmFor('6.18+snp').createVm('default');
  expectErrno(() => op(plain, { vendor: 'sev', id: 0 }), 'ENOTTY');
  expectErrno(() => op(plain, INIT2), 'EINVAL');
  expectErrno(() => op(plain, START), 'ENOTTY');
  expectErrno(() => op(plain, update(0n, PS, 3)), 'EINVAL');
  expectErrno(() => op(plain, FINISH), 'ENOTTY');
});

test('KVM_SEV_SNP_LAUNCH_START: INIT2 first, flags 0, supported policy with bit 17, one context', () => {
  const { vm } = snpVm();
  expectErrno(() => op(vm, START), 'ENOTTY');
  op(vm, INIT2);
  expectErrno(() => op(vm, { ...START, flags: 1 } as MemoryEncryptCommand), 'EINVAL');
  expectErrno(() => op(vm, { ...START, policy: 0x10000n } as MemoryEncryptCommand), 'EINVAL', 'RSVD_MBO clear');
  expectErrno(() => op(vm, { ...START, policy: 0x70000n } as MemoryEncryptCommand), 'EINVAL', 'MIGRATE_MA');
  expectOk(() => op(vm, { ...START, policy: 0x1b0000n | 0x1fn } as MemoryEncryptCommand), 'DEBUG, SINGLE_SOCKET and an ABI version');
  expectErrno(() => op(vm, START), 'EINVAL');
});

test('KVM_SEV_SNP_LAUNCH_UPDATE: argument checks are EINVAL; every kvm_gmem_populate failure is EIO', () => {
  const { vm, src, g } = snpVm(false);
  expectErrno(() => op(vm, update(1n, PS, 1, src.addr)), 'EINVAL', 'no SNP guest yet');
  op(vm, INIT2);
  expectErrno(() => op(vm, update(1n, PS, 1, src.addr)), 'EINVAL', 'no context yet');
  op(vm, START);
  expectErrno(() => op(vm, update(1n, 0n, 1, src.addr)), 'EINVAL', 'len 0');
  expectErrno(() => op(vm, update(1n, 100n, 1, src.addr)), 'EINVAL', 'len unaligned');
  expectErrno(() => op(vm, update(1n, PS, 2, src.addr)), 'EINVAL', 'VMSA is not a uAPI page type');
  expectErrno(() => op(vm, update(1n, PS, 7, src.addr)), 'EINVAL');
  expectErrno(() => op(vm, { ...update(1n, PS, 1, src.addr), flags: 1 } as MemoryEncryptCommand), 'EINVAL');
  // before 7.0 snp_launch_update() does not look at the source address (the 4 KiB rule came with
  // kvm-x86-gmem-6.20): NULL and unaligned sources reach kvm_gmem_populate, which fails here on the
  // attribute check (the gfn is not PRIVATE yet) -> EIO
  expectErrno(() => op(vm, update(1n, PS, 1, 0n)), 'EIO', 'NULL source: not refused before 7.0');
  expectErrno(() => op(vm, update(1n, PS, 5, src.addr + 8n)), 'EIO', 'unaligned source: not refused before 7.0');
  expectErrno(() => op(vm, update(0x100n, PS, 3)), 'EINVAL', 'no memslot');
  expectErrno(() => op(vm, update(1n, PS, 1, src.addr)), 'EIO', 'not PRIVATE');
  vm.setMemoryAttributes({ address: 0n, size: 16n * PS, attributes: PRIVATE, flags: 0n });
  expectErrno(() => op(vm, update(1n, PS, 1, 0x1000n)), 'EIO', 'the source is not mapped');
  assert.deepEqual(op(vm, update(1n, 2n * PS, 1, src.addr)).data, { gfn_start: 3n, uaddr: src.addr + 2n * PS, len: 0n });
  expectErrno(() => op(vm, update(2n, PS, 1, src.addr)), 'EIO', 'already populated');
  // stops at the memslot's end: 2 of 4 pages, the rest copied back
  assert.deepEqual(op(vm, update(14n, 4n * PS, 3, 0xdead000n)).data, { gfn_start: 16n, uaddr: 0xdead000n, len: 2n * PS });
  // the folio of a private fault is prepared: populating it is EEXIST -> EIO
  const v = vm.createVcpu(0);
  assert.equal(runProgram(v, [read(5n * PS, 4, false), hlt]).reason, 'hlt');
  expectErrno(() => op(vm, update(5n, PS, 3)), 'EIO');
  g.close();
  expectErrno(() => op(vm, update(6n, PS, 3)), 'EIO', 'the guest_memfd is closed (EFAULT inside)');
});

test('KVM_SEV_SNP_LAUNCH_FINISH: one VMSA per vCPU in creation order from its registers, then the launch is closed', () => {
  const { vm, src } = snpVm();
  expectErrno(() => op(vm, FINISH), 'ENOTTY');
  op(vm, INIT2);
  expectErrno(() => op(vm, FINISH), 'EINVAL', 'no context');
  op(vm, START);
  src.write(PS, new Uint8Array(4096).fill(0x11));
  op(vm, update(1n, PS, 1, src.addr + PS));
  op(vm, update(8n, 2n * PS, 3));
  const bsp = vm.createVcpu(0);
  const ap = vm.createVcpu(1);
  setSnpVcpuRegs(bsp, { rdx: 0x800f12n });
  setSnpVcpuRegs(ap, { rdx: 0x800f12n, csBase: 0x800000n, rip: 0xb004n });
  expectErrno(() => op(vm, { ...FINISH, flags: 1 } as MemoryEncryptCommand), 'EINVAL');
  expectErrno(() => bsp.preFaultMemory({ gpa: 0n, size: PS, flags: 0n }), 'EOPNOTSUPP', 'pre_fault_allowed only after LAUNCH_FINISH');
  expectOk(() => op(vm, FINISH));
  expectErrno(() => setSnpVcpuRegs(bsp, { rip: 0n }), 'EINVAL', 'guest_state_protected');
  expectErrno(() => op(vm, FINISH), 'EINVAL', 'sev_es_sync_vmsa: already protected');
  expectErrno(() => op(vm, update(10n, PS, 3)), 'EIO', 'the firmware guest is RUNNING');
  assert.deepEqual(bsp.preFaultMemory({ gpa: 0n, size: PS, flags: 0n }), { gpa: PS, size: 0n });

  const log = launchLog(vm);
  assert.equal(log.platform, 'snp');
  const want = [
    [SNP_PAGE_TYPE.NORMAL, PS],
    [SNP_PAGE_TYPE.ZERO, 8n * PS],
    [SNP_PAGE_TYPE.ZERO, 9n * PS],
    [SNP_PAGE_TYPE.VMSA, VMSA_GPA],
    [SNP_PAGE_TYPE.VMSA, VMSA_GPA],
  ];
  assert.deepEqual(
    log.entries.map((e) => [e.type, e.gpa]),
    want,
  );
  // the fold: LD over the same pages, with the VMSAs the registers give
  const g = new SnpGuestContext(nodeSha384);
  g.measure(SNP_PAGE_TYPE.NORMAL, PS, new Uint8Array(4096).fill(0x11));
  g.measure(SNP_PAGE_TYPE.ZERO, 8n * PS);
  g.measure(SNP_PAGE_TYPE.ZERO, 9n * PS);
  g.measure(SNP_PAGE_TYPE.VMSA, VMSA_GPA, buildVmsa({ eip: 0xfffffff0, sevFeatures: 1n, vcpuSig: 0x800f12, vmm: 'qemu' }));
  g.measure(SNP_PAGE_TYPE.VMSA, VMSA_GPA, buildVmsa({ eip: 0x80b004, sevFeatures: 1n, vcpuSig: 0x800f12, vmm: 'qemu' }));
  assert.equal(toHex(launchDigest(vm, nodeSha384)), toHex(g.digest()));
});

test('LAUNCH_FINISH with no vCPUs: the second goes to the firmware, which refuses a RUNNING guest (EIO, error 2)', () => {
  const { vm } = snpVm();
  op(vm, INIT2);
  op(vm, START);
  op(vm, FINISH);
  try {
    op(vm, FINISH);
    assert.fail('expected EIO');
  } catch (e) {
    assert.equal((e as { errno: string }).errno, 'EIO');
    assert.equal((e as { data: Record<string, bigint> }).data.error, 2n);
  }
});

test('KVM_RUN needs KVM_SEV_INIT2 on an SNP host (svm_vcpu_pre_run); a profile that only lists the type keeps the fault-path rules alone', () => {
  const { vm } = snpVm();
  const v = vm.createVcpu(0);
  expectErrno(() => runProgram(v, [hlt]), 'EINVAL');
  const loose = snpKvm().createVm('snp');
  assert.equal(runProgram(loose.createVcpu(0), [hlt]).reason, 'hlt');
});

test('RMP: launch pages are assigned and validated, a private fault assigns without validating, PVALIDATE flips the bit', () => {
  const { vm, src, p, g } = snpVm();
  op(vm, INIT2);
  op(vm, START);
  op(vm, update(1n, PS, 1, src.addr));
  op(vm, FINISH);
  const inode = (g as unknown as { file: { inode: { pages: Map<number, Uint8Array> } } }).file.inode;
  const launched = inode.pages.get(1) as Uint8Array;
  assert.deepEqual(p.rmp.get(launched), { assigned: true, validated: true, gpa: PS });
  const v = vm.createVcpu(0);
  const e = runProgram(v, [
    { op: 'pvalidate', gpa: PS, validate: true },
    { op: 'pvalidate', gpa: 3n * PS, validate: true },
    { op: 'pvalidate', gpa: 3n * PS, validate: false },
    { op: 'pvalidate', gpa: 3n * PS + 8n, validate: false },
    hlt,
  ]);
  assert.deepEqual(e.reads, [255n, 0n, 0n, 1n]);
  assert.deepEqual(p.rmp.get(inode.pages.get(3) as Uint8Array), { assigned: true, validated: false, gpa: 3n * PS });
  // PVALIDATE on a VM that is no SNP guest is #UD: shutdown
  const other = kvmFor('6.18').createVm('sw_protected');
  assert.equal(runProgram(other.createVcpu(0), [{ op: 'pvalidate', gpa: 0n, validate: true }, hlt]).reason, 'shutdown');
});

test("RMP: the host writing an assigned page faults, reading it sees ciphertext; unassigned pages are the host's", () => {
  const { kvm, vm, src, p, g } = snpVm();
  op(vm, INIT2);
  op(vm, START);
  src.write(PS, new Uint8Array([1, 2, 3, 4]));
  op(vm, update(1n, PS, 1, src.addr + PS));
  const hk = kvm.hostKernel;
  assert.ok(hk);
  const err = (() => {
    try {
      hk.directMapWrite(g.fd, PS, new Uint8Array([9]));
    } catch (e) {
      return e;
    }
  })();
  assert.ok(err instanceof HostFault && err.signal === 'SIGBUS', String(err));
  assert.notDeepEqual(hk.directMapRead(g.fd, PS, 4), new Uint8Array([1, 2, 3, 4]));
  // a fallocated folio nobody gave the guest: plain memory
  g.fallocate(1, 10n * PS, PS);
  hk.directMapWrite(g.fd, 10n * PS, new Uint8Array([7]));
  assert.deepEqual(hk.directMapRead(g.fd, 10n * PS, 1), new Uint8Array([7]));
  expectErrno(() => hk.directMapRead(g.fd, 11n * PS, 1), 'ENOENT');
  expectErrno(() => hk.directMapRead(g.fd, PS - 2n, 4), 'EINVAL', 'crosses a page');
  // any host mapping that reached such a page would take the same RMP check (host.ts physOwner)
  const anon = vm.mmapAnonymous(PS);
  anon.write(0n, new Uint8Array([1]));
  const page = kvm.proc.mm.peek(anon.addr) as Uint8Array;
  p.rmp.set(page, { assigned: true, validated: false, gpa: 0n });
  kvm.proc.mm.physOwner.set(page, p);
  assert.equal(
    errnoOf(() => anon.write(0n, new Uint8Array([2]))),
    'SIGBUS',
  );
  assert.equal(
    errnoOf(() => anon.read(0n, 1)),
    'ok',
  );
});
