/**
 * Confidential-VM launch flows (DESIGN.md "vmm/"; issue 5): what QEMU does to start an SEV-SNP or a
 * TDX guest from OVMF, through the launch uAPI of api.ts (KVM_MEMORY_ENCRYPT_OP). The firmware is
 * loaded into host memory, guest_memfd backs the firmware range and low RAM, both are set PRIVATE
 * (QEMU's kvm_set_memory_attributes_private for guest_memfd regions), and the pages reach
 * guest_memfd only through the measured population calls:
 *   SNP (QEMU target/i386/sev.c): KVM_SEV_INIT2, vCPUs (APs at the OVMF SEV-ES reset vector),
 *     KVM_SEV_SNP_LAUNCH_START, LAUNCH_UPDATE of the whole image as NORMAL pages, then of every
 *     SEV metadata section in table order (SEC_MEM/SVSM_CAA ZERO, SECRETS, CPUID, KERNEL_HASHES
 *     NORMAL with a kernel else ZERO), KVM_SEV_SNP_LAUNCH_FINISH (one VMSA per vCPU);
 *   TDX (QEMU target/i386/kvm/tdx.c): KVM_TDX_INIT_VM, vCPUs with KVM_TDX_INIT_VCPU, one
 *     KVM_TDX_INIT_MEM_REGION per TDVF section (MEASURE where the section has MR_EXTEND),
 *     KVM_TDX_FINALIZE_VM.
 * The flow derives its calls from the firmware's metadata itself (the parsers of measure/), not
 * from measure/'s launch plans, so that tests/coco/launch.test.ts compares two derivations: the
 * digest the model's measurement log folds to, and measure/'s.
 *
 * The launch digest is read out of the model (Kvm.launch, api.ts LaunchAccess): no uAPI gives
 * the host an SNP MEASUREMENT or a TDX MRTD (the guest's attestation report carries them), so on
 * the kvm backend the flow runs but cannot return one.
 */
import type { GuestMemfd, HostMapping, Kvm, LaunchAccess, MemoryEncryptCommand, MemoryEncryptResult, Vcpu, Vm } from '../api.js';
import {
  imageGpa,
  parseOvmf,
  parseSevMetadata,
  parseTdvf,
  resolveVcpuSig,
  SEV_SECTION,
  type SevKernelHashes,
  type Sha384Factory,
  sevEsResetEip,
  sevHashPage,
  sevHashTableArea,
  TDVF_ATTR,
  TDVF_SECTION,
} from '../measure/index.js';
import { KVM_SEV_SNP_PAGE_TYPE, KVM_TDX_MEASURE_MEMORY_REGION, SNP_POLICY, SVM_SEV_FEAT } from '../uapi/coco.js';
import { KVM_MEM_GUEST_MEMFD, KVM_MEMORY_ATTRIBUTE_PRIVATE, PAGE_SIZE_N } from '../uapi/constants.js';

const PAGE = 4096;
const FOUR_GIB = 1n << 32n;
const TWO_MIB = 2n << 20n;

export interface LaunchCall {
  /** the sub-command, e.g. 'KVM_SEV_SNP_LAUNCH_UPDATE' */
  readonly cmd: string;
  /** what it was for: 'firmware', 'SNP_SEC_MEM@0x800000', 'BFV@0xffc84000', … */
  readonly what: string;
}

export interface LaunchResult {
  readonly vm: Vm;
  readonly vcpus: readonly Vcpu[];
  /** the launch digest (SNP MEASUREMENT, TDX MRTD) the model's measurement log folds to; absent off the model */
  readonly digest: Uint8Array | undefined;
  /** every KVM_MEMORY_ENCRYPT_OP the flow issued, in order */
  readonly calls: readonly LaunchCall[];
  /** the guest memory: the firmware range ending at 4 GiB, then low RAM */
  readonly memory: readonly Region[];
}

export interface SnpLaunchOptions {
  vcpus: number;
  /** QEMU CPU model for the CPUID signature in RDX (e.g. 'EPYC-v4'), or vcpuSig */
  vcpuType?: string;
  vcpuSig?: number;
  /** SEV_FEATURES of the VMSAs (0x1 SNPActive, 0x21 with DebugSwap); KVM_SEV_INIT2 gets it minus SNPActive */
  guestFeatures?: bigint;
  /** KVM_SEV_SNP_LAUNCH_START policy; default SMT | RSVD_MBO (0x30000) */
  policy?: bigint;
  /** measured direct boot (QEMU kernel-hashes=on): the hashes page goes in as a NORMAL page */
  kernelHashes?: SevKernelHashes;
}

export interface TdxLaunchOptions {
  vcpus: number;
  /** guest physical address width, 48 or 52 (CPUID 0x80000008.EAX[23:16]); default 52 */
  gpaw?: 48 | 52;
  attributes?: bigint;
  xfam?: bigint;
}

/** A guest memory region QEMU backs with guest_memfd plus host memory (the shared side). */
export interface Region {
  readonly gpa: bigint;
  readonly size: bigint;
  readonly gmem: GuestMemfd;
  /** the region's shared memory (userspace_addr), where QEMU loads what it populates from */
  readonly shared: HostMapping;
  readonly hva: bigint;
}

function encryptOp(target: Vm | Vcpu, cmd: MemoryEncryptCommand): MemoryEncryptResult {
  if (!target.memoryEncryptOp) throw new Error('this backend has no KVM_MEMORY_ENCRYPT_OP (confidential VMs need the model, or an SNP/TDX host)');
  return target.memoryEncryptOp(cmd);
}

/** A guest_memfd memslot with host memory beside it, set PRIVATE as QEMU does for guest_memfd RAM. */
function privateRegion(vm: Vm, slot: number, gpa: bigint, size: bigint, contents?: { at: bigint; bytes: Uint8Array }): Region {
  const gmem = vm.createGuestMemfd({ size, flags: 0n });
  const shared = vm.mmapAnonymous(size);
  if (contents) shared.write(contents.at, contents.bytes);
  vm.setUserMemoryRegion2({
    slot,
    flags: KVM_MEM_GUEST_MEMFD,
    guestPhysAddr: gpa,
    memorySize: size,
    userspaceAddr: shared.addr,
    guestMemfd: gmem.fd,
    guestMemfdOffset: 0n,
  });
  vm.setMemoryAttributes({ address: gpa, size, attributes: KVM_MEMORY_ATTRIBUTE_PRIVATE, flags: 0n });
  return { gpa, size, gmem, shared, hva: shared.addr };
}

/** Low RAM from GPA 0 covering every range, in whole 2 MiB. */
function lowRamSize(ends: readonly bigint[]): bigint {
  // biome-ignore lint/complexity/useMathMinMax: bigint operands (Math.max takes numbers)
  const top = ends.reduce((m, e) => (e > m ? e : m), TWO_MIB);
  return ((top + TWO_MIB - 1n) / TWO_MIB) * TWO_MIB;
}

function hvaOf(r: Region, gpa: bigint): bigint {
  if (gpa < r.gpa || gpa >= r.gpa + r.size) throw new Error(`GPA 0x${gpa.toString(16)} is outside the region at 0x${r.gpa.toString(16)}`);
  return r.hva + (gpa - r.gpa);
}

function hex(n: bigint | number): string {
  return `0x${n.toString(16)}`;
}

/**
 * Launch an SNP guest from an OVMF image on `kvm` (a model KVM of an SNP host, e.g.
 * createModelKvm({ kernel: '6.18+snp' })), and return the launch digest the model measured.
 */
export function launchSnp(kvm: Kvm, firmware: Uint8Array, opts: SnpLaunchOptions, sha384?: Sha384Factory): LaunchResult {
  const img = parseOvmf(firmware);
  const sections = parseSevMetadata(img);
  const apEip = sevEsResetEip(img);
  const vcpuSig = resolveVcpuSig({ ...opts, vmm: 'qemu' });
  const features = opts.guestFeatures ?? SVM_SEV_FEAT.SNP_ACTIVE;
  if (!(features & SVM_SEV_FEAT.SNP_ACTIVE)) throw new Error('SNP guest features must include SNPActive (bit 0)');
  const calls: LaunchCall[] = [];

  const vm = kvm.createVm('snp');
  const op = (cmd: MemoryEncryptCommand, what: string) => {
    calls.push({ cmd: String(cmd.id), what });
    return encryptOp(vm, cmd);
  };
  // KVM_SEV_INIT2 before any vCPU exists; KVM adds SNPActive itself
  op({ id: 'KVM_SEV_INIT2', vmsaFeatures: features & ~SVM_SEV_FEAT.SNP_ACTIVE }, 'init');

  const fwGpa = BigInt(imageGpa(img));
  const fw = privateRegion(vm, 1, fwGpa, FOUR_GIB - fwGpa, { at: 0n, bytes: img.bytes });
  const ends = sections.map((s) => BigInt(s.gpa) + BigInt(Math.max(s.size, PAGE)));
  const ram = privateRegion(vm, 0, 0n, lowRamSize(ends));

  const vcpus: Vcpu[] = [];
  for (let i = 0; i < opts.vcpus; i++) {
    const v = vm.createVcpu(i);
    // QEMU: every vCPU's RDX is its CPUID signature; APs start at the OVMF SEV-ES reset vector
    if (i === 0) launchAccess(kvm).setSnpVcpuRegs(v, { rdx: BigInt(vcpuSig) });
    else launchAccess(kvm).setSnpVcpuRegs(v, { rdx: BigInt(vcpuSig), csBase: BigInt(apEip & 0xffff0000), rip: BigInt(apEip & 0xffff) });
    vcpus.push(v);
  }

  op({ id: 'KVM_SEV_SNP_LAUNCH_START', policy: opts.policy ?? SNP_POLICY.SMT | SNP_POLICY.RSVD_MBO }, 'start');

  const update = (gpa: bigint, len: bigint, type: number, uaddr: bigint, what: string) => {
    let cmd = { id: 'KVM_SEV_SNP_LAUNCH_UPDATE' as const, gfnStart: gpa / PAGE_SIZE_N, uaddr, len, type };
    // KVM populates up to the end of the memslot and copies the progress back: go on from there
    while (cmd.len > 0n) {
      const d = op(cmd, what).data;
      if (!d || d.len === undefined || d.len >= cmd.len) throw new Error(`KVM_SEV_SNP_LAUNCH_UPDATE ${what}: no progress`);
      cmd = { ...cmd, gfnStart: d.gfn_start as bigint, uaddr: d.uaddr as bigint, len: d.len };
    }
  };

  update(fwGpa, BigInt(img.bytes.length), KVM_SEV_SNP_PAGE_TYPE.NORMAL, fw.hva, 'firmware');
  const hashes = opts.kernelHashes ? sevHashTableArea(img) : undefined;
  if (opts.kernelHashes && !sections.some((s) => s.type === SEV_SECTION.SNP_KERNEL_HASHES)) {
    throw new Error("Kernel specified but OVMF metadata doesn't include SNP_KERNEL_HASHES section");
  }
  for (const s of sections) {
    const gpa = BigInt(s.gpa);
    const what = `${SEV_SECTION_LABEL[s.type]}@${hex(s.gpa)}`;
    const pages = (n: number) => BigInt(n) * PAGE_SIZE_N;
    switch (s.type) {
      case SEV_SECTION.SNP_SEC_MEM:
      case SEV_SECTION.SVSM_CAA:
        if (s.size > 0) update(gpa, BigInt(s.size), KVM_SEV_SNP_PAGE_TYPE.ZERO, 0n, what);
        break;
      case SEV_SECTION.SNP_SECRETS:
        update(gpa, pages(1), KVM_SEV_SNP_PAGE_TYPE.SECRETS, hvaOf(ram, gpa), what);
        break;
      case SEV_SECTION.CPUID:
        // QEMU fills this page with its CPUID table; the firmware checks it but does not measure it
        update(gpa, pages(1), KVM_SEV_SNP_PAGE_TYPE.CPUID, hvaOf(ram, gpa), what);
        break;
      case SEV_SECTION.SNP_KERNEL_HASHES:
        if (opts.kernelHashes) {
          if (!hashes || hashes.gpa < s.gpa || hashes.gpa >= s.gpa + PAGE) throw new Error('the SEV hash table is not inside the SNP_KERNEL_HASHES page');
          // QEMU writes the hashes table into guest RAM, then populates that page
          ram.shared.write(gpa - ram.gpa, sevHashPage(opts.kernelHashes, hashes.gpa - s.gpa));
          update(gpa, pages(1), KVM_SEV_SNP_PAGE_TYPE.NORMAL, hvaOf(ram, gpa), what);
        } else if (s.size > 0) update(gpa, BigInt(s.size), KVM_SEV_SNP_PAGE_TYPE.ZERO, 0n, what);
        break;
    }
  }

  op({ id: 'KVM_SEV_SNP_LAUNCH_FINISH' }, 'finish');
  return { vm, vcpus, digest: sha384 ? modelDigest(kvm, vm, sha384) : undefined, calls, memory: [fw, ram] };
}

const SEV_SECTION_LABEL: Readonly<Record<number, string>> = {
  [SEV_SECTION.SNP_SEC_MEM]: 'SNP_SEC_MEM',
  [SEV_SECTION.SNP_SECRETS]: 'SNP_SECRETS',
  [SEV_SECTION.CPUID]: 'CPUID',
  [SEV_SECTION.SVSM_CAA]: 'SVSM_CAA',
  [SEV_SECTION.SNP_KERNEL_HASHES]: 'SNP_KERNEL_HASHES',
};

const TDVF_LABEL: Readonly<Record<number, string>> = {
  [TDVF_SECTION.BFV]: 'BFV',
  [TDVF_SECTION.CFV]: 'CFV',
  [TDVF_SECTION.TD_HOB]: 'TD_HOB',
  [TDVF_SECTION.TEMP_MEM]: 'TEMP_MEM',
};

/**
 * Launch a TD from an OVMF image on `kvm` (a model KVM of a TDX host, e.g.
 * createModelKvm({ kernel: '6.18+tdx' })), and return the MRTD the model measured.
 */
export function launchTdx(kvm: Kvm, firmware: Uint8Array, opts: TdxLaunchOptions, sha384?: Sha384Factory): LaunchResult {
  const img = parseOvmf(firmware);
  const sections = parseTdvf(img);
  const calls: LaunchCall[] = [];
  const vm = kvm.createVm('tdx');
  const gpaw = opts.gpaw ?? 52;
  const vmOp = (cmd: MemoryEncryptCommand, what: string) => {
    calls.push({ cmd: String(cmd.id), what });
    return encryptOp(vm, cmd);
  };
  vmOp(
    {
      id: 'KVM_TDX_INIT_VM',
      attributes: opts.attributes ?? 0n,
      xfam: opts.xfam ?? 0x3n,
      cpuid: [{ function: 0x80000008, index: 0, eax: gpaw << 16 }],
    },
    'init',
  );

  // vCPUs exist only between KVM_TDX_INIT_VM and KVM_TDX_FINALIZE_VM; each needs KVM_TDX_INIT_VCPU
  const vcpus: Vcpu[] = [];
  for (let i = 0; i < opts.vcpus; i++) {
    const v = vm.createVcpu(i);
    calls.push({ cmd: 'KVM_TDX_INIT_VCPU', what: `vCPU ${i}` });
    encryptOp(v, { id: 'KVM_TDX_INIT_VCPU' });
    vcpus.push(v);
  }
  const first = vcpus[0];
  if (!first) throw new Error('a TD needs at least one vCPU (KVM_TDX_INIT_MEM_REGION is a vCPU ioctl)');

  // The flash image ends at 4 GiB; the other sections (TD HOB, temporary memory) lie in low RAM.
  const fwGpa = BigInt(imageGpa(img));
  const fw = privateRegion(vm, 1, fwGpa, FOUR_GIB - fwGpa, { at: 0n, bytes: img.bytes });
  const low = sections.filter((s) => s.memoryAddress < fwGpa);
  const ram = privateRegion(vm, 0, 0n, lowRamSize(low.map((s) => s.memoryAddress + s.memoryDataSize)));

  for (const s of sections) {
    const nrPages = s.memoryDataSize / PAGE_SIZE_N;
    if (nrPages === 0n) continue;
    const what = `${TDVF_LABEL[s.type]}@${hex(s.memoryAddress)}`;
    // BFV/CFV come from the flash at DataOffset; the rest from RAM (the TD HOB QEMU built, zeroes)
    const copied = s.type === TDVF_SECTION.BFV || s.type === TDVF_SECTION.CFV;
    const sourceAddr = copied ? fw.hva + BigInt(s.dataOffset) : hvaOf(ram, s.memoryAddress);
    const flags = s.attributes & TDVF_ATTR.MR_EXTEND ? KVM_TDX_MEASURE_MEMORY_REGION : 0;
    calls.push({ cmd: 'KVM_TDX_INIT_MEM_REGION', what });
    const r = encryptOp(first, { id: 'KVM_TDX_INIT_MEM_REGION', flags, sourceAddr, gpa: s.memoryAddress, nrPages });
    if (r.data?.nr_pages !== 0n) throw new Error(`KVM_TDX_INIT_MEM_REGION ${what}: ${r.data?.nr_pages} pages left`);
  }

  vmOp({ id: 'KVM_TDX_FINALIZE_VM' }, 'finalize');
  return { vm, vcpus, digest: sha384 ? modelDigest(kvm, vm, sha384) : undefined, calls, memory: [fw, ram] };
}

/** The digest from the model's measurement log; the kvm backend has no such log. */
function modelDigest(kvm: Kvm, vm: Vm, sha384: Sha384Factory): Uint8Array | undefined {
  try {
    return kvm.launch?.launchDigest(vm, sha384);
  } catch {
    return undefined;
  }
}

/** The model's LaunchAccess; elsewhere the error the model's own check gives a vCPU not its own. */
function launchAccess(kvm: Kvm): LaunchAccess {
  if (!kvm.launch) throw new Error('setSnpVcpuRegs: not a vCPU of the model backend');
  return kvm.launch;
}
