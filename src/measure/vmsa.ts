/**
 * The initial VMSA page of each vCPU (Linux `struct sev_es_save_area`, AMD APM vol. 2 table B-4;
 * MEASUREMENT.md §1.6). With SEV-ES and SNP the register state is encrypted and measured, so the
 * digest depends on exactly what the VMM and KVM put there at reset. Values below are those of
 * sev-snp-measure's VMM models: QEMU with KVM_SEV_INIT2 (Linux ≥ 6.10, QEMU ≥ 9.1: mxcsr/fcw set),
 * EC2 and GCE. Everything not written is zero.
 */
import { PAGE } from './bytes.js';
import { check } from './errors.js';

export type VmmType = 'qemu' | 'ec2' | 'gce';
export const VMM_TYPES: readonly VmmType[] = ['qemu', 'ec2', 'gce'];

/** CPUID Fn0000_0001_EAX (AMD pub. 25481): what KVM/QEMU put in RDX at reset. */
export function cpuSig(family: number, model: number, stepping: number): number {
  const famLo = Math.min(family, 0xf);
  const famHi = family > 0xf ? (family - 0xf) & 0xff : 0;
  return ((famHi << 20) | (((model >> 4) & 0xf) << 16) | (famLo << 8) | ((model & 0xf) << 4) | (stepping & 0xf)) >>> 0;
}

/** QEMU CPU models and their signatures (QEMU builtin_x86_defs, as listed by sev-snp-measure). */
export const VCPU_TYPES: Readonly<Record<string, number>> = (() => {
  const t: Record<string, number> = {};
  const add = (sig: number, ...names: string[]) => {
    for (const n of names) t[n] = sig;
  };
  add(cpuSig(23, 1, 2), 'EPYC', 'EPYC-v1', 'EPYC-v2', 'EPYC-IBPB', 'EPYC-v3', 'EPYC-v4');
  add(cpuSig(23, 49, 0), 'EPYC-Rome', 'EPYC-Rome-v1', 'EPYC-Rome-v2', 'EPYC-Rome-v3');
  add(cpuSig(25, 1, 1), 'EPYC-Milan', 'EPYC-Milan-v1', 'EPYC-Milan-v2');
  add(cpuSig(25, 17, 0), 'EPYC-Genoa', 'EPYC-Genoa-v1');
  add(cpuSig(26, 0, 0), 'EPYC-Turin');
  return Object.freeze(t);
})();

/** The reset-vector EIP of the BSP: the last 16 bytes below 4 GiB. */
export const BSP_EIP = 0xfffffff0;

const OFF = {
  es: 0x000,
  cs: 0x010,
  ss: 0x020,
  ds: 0x030,
  fs: 0x040,
  gs: 0x050,
  gdtr: 0x060,
  ldtr: 0x070,
  idtr: 0x080,
  tr: 0x090,
  efer: 0x0d0,
  cr4: 0x148,
  cr0: 0x158,
  dr7: 0x160,
  dr6: 0x168,
  rflags: 0x170,
  rip: 0x178,
  g_pat: 0x268,
  rdx: 0x310,
  sev_features: 0x3b0,
  xcr0: 0x3e8,
  mxcsr: 0x408,
  x87_fcw: 0x410,
} as const;

/** PAT MSR power-on value (APM vol. 2 §A.3). */
const PAT_DEFAULT = 0x0007040600070406n;

class VmsaWriter {
  readonly page = new Uint8Array(PAGE);
  private readonly v = new DataView(this.page.buffer);
  /** struct vmcb_seg: u16 selector, u16 attrib, u32 limit, u64 base */
  seg(at: number, selector: number, attrib: number, limit: number, base: bigint): this {
    this.v.setUint16(at, selector, true);
    this.v.setUint16(at + 2, attrib, true);
    this.v.setUint32(at + 4, limit, true);
    this.v.setBigUint64(at + 8, base, true);
    return this;
  }
  u64(at: number, x: bigint): this {
    this.v.setBigUint64(at, x, true);
    return this;
  }
  u32(at: number, x: number): this {
    this.v.setUint32(at, x, true);
    return this;
  }
  u16(at: number, x: number): this {
    this.v.setUint16(at, x, true);
    return this;
  }
}

export interface VmsaOptions {
  /** the vCPU's reset EIP: BSP_EIP for vCPU 0, the OVMF SEV-ES reset block value for APs */
  eip: number;
  /** SEV_FEATURES (KVM_SEV_INIT2 vmsa_features); 0 for SEV-ES */
  sevFeatures: bigint;
  /** CPUID signature for RDX; ignored by ec2 and gce (they load 0x600) */
  vcpuSig: number;
  vmm: VmmType;
}

/** The VMSA page of one vCPU at reset (real mode, CS:IP from eip). */
export function buildVmsa(o: VmsaOptions): Uint8Array {
  check(Number.isInteger(o.eip) && o.eip >= 0 && o.eip <= 0xffffffff, 'BAD_OPTION', `reset EIP 0x${o.eip.toString(16)} is not a u32`);
  check(o.sevFeatures >= 0n && o.sevFeatures < 1n << 64n, 'BAD_OPTION', 'guest features must be a u64');
  check(Number.isInteger(o.vcpuSig) && o.vcpuSig >= 0 && o.vcpuSig <= 0xffffffff, 'BAD_OPTION', 'vCPU signature must be a u32');
  // Where the VMMs differ (sev-snp-measure vmsa.py): EC2 marks the BSP's CS not-accessed and uses
  // a 16-bit TSS type with a not-accessed SS; EC2 and GCE load RDX = 0x600 and leave the x87/SSE
  // control words zero; GCE overrides the PAT.
  let cs = 0x9b;
  let ss = 0x93;
  let tr = 0x8b;
  let rdx = o.vcpuSig;
  let mxcsr = 0x1f80;
  let fcw = 0x37f;
  let pat = PAT_DEFAULT;
  if (o.vmm === 'ec2') {
    if (o.eip === BSP_EIP) cs = 0x9a;
    ss = 0x92;
    tr = 0x83;
    rdx = 0x600;
    mxcsr = 0;
    fcw = 0;
  } else if (o.vmm === 'gce') {
    pat = 0x00070106n;
    rdx = 0x600;
    mxcsr = 0;
    fcw = 0;
  }
  return new VmsaWriter()
    .seg(OFF.es, 0, 0x93, 0xffff, 0n)
    .seg(OFF.cs, 0xf000, cs, 0xffff, BigInt((o.eip & 0xffff0000) >>> 0))
    .seg(OFF.ss, 0, ss, 0xffff, 0n)
    .seg(OFF.ds, 0, 0x93, 0xffff, 0n)
    .seg(OFF.fs, 0, 0x93, 0xffff, 0n)
    .seg(OFF.gs, 0, 0x93, 0xffff, 0n)
    .seg(OFF.gdtr, 0, 0, 0xffff, 0n)
    .seg(OFF.ldtr, 0, 0x82, 0xffff, 0n)
    .seg(OFF.idtr, 0, 0, 0xffff, 0n)
    .seg(OFF.tr, 0, tr, 0xffff, 0n)
    .u64(OFF.efer, 0x1000n) // KVM sets EFER.SVME
    .u64(OFF.cr4, 0x40n) // KVM sets CR4.MCE
    .u64(OFF.cr0, 0x10n)
    .u64(OFF.dr7, 0x400n)
    .u64(OFF.dr6, 0xffff0ff0n)
    .u64(OFF.rflags, 0x2n)
    .u64(OFF.rip, BigInt(o.eip & 0xffff))
    .u64(OFF.g_pat, pat)
    .u64(OFF.rdx, BigInt(rdx))
    .u64(OFF.sev_features, o.sevFeatures)
    .u64(OFF.xcr0, 0x1n)
    .u32(OFF.mxcsr, mxcsr)
    .u16(OFF.x87_fcw, fcw).page;
}

/**
 * The VMSA of every vCPU when Coconut SVSM is the first thing to run (coconut-svsm QEMU, IGVM-less
 * flow that sev-snp-measure's snp:svsm mode models): 32-bit protected mode with flat segments, all
 * vCPUs identical, entry at the SVSM's own entry point, SEV_FEATURES fixed at SNPActive.
 * x87 FCW stays 0: sev-snp-measure's SVSM VMSA never sets it, and its hardware-captured vectors
 * (MEASUREMENT.md §5.1) agree.
 */
export function buildSvsmVmsa(eip: number, vcpuSig: number): Uint8Array {
  check(Number.isInteger(eip) && eip >= 0 && eip <= 0xffffffff, 'BAD_OPTION', `SVSM entry 0x${eip.toString(16)} is not a u32`);
  const flat = (at: number, sel: number, attr: number) => [at, sel, attr, 0xffffffff] as const;
  const w = new VmsaWriter();
  for (const [at, sel, attr, lim] of [
    flat(OFF.es, 16, 0xc93),
    flat(OFF.cs, 8, 0xc9b),
    flat(OFF.ss, 16, 0xc93),
    flat(OFF.ds, 16, 0xc93),
    flat(OFF.fs, 16, 0xc93),
  ]) {
    w.seg(at, sel, attr, lim, 0n);
  }
  return w
    .seg(OFF.gs, 0, 0x93, 0xffff, 0n)
    .seg(OFF.gdtr, 0, 0, 0xffff, 0n)
    .seg(OFF.ldtr, 0, 0x82, 0xffff, 0n)
    .seg(OFF.idtr, 0, 0, 0xffff, 0n)
    .seg(OFF.tr, 0, 0x8b, 0xffff, 0n)
    .u64(OFF.efer, 0x1000n)
    .u64(OFF.cr4, 0x40n)
    .u64(OFF.cr0, 0x11n) // PE set: the SVSM starts in protected mode
    .u64(OFF.dr7, 0x400n)
    .u64(OFF.dr6, 0xffff0ff0n)
    .u64(OFF.rflags, 0x2n)
    .u64(OFF.rip, BigInt(eip))
    .u64(OFF.g_pat, PAT_DEFAULT)
    .u64(OFF.rdx, BigInt(vcpuSig >>> 0))
    .u64(OFF.sev_features, 0x1n)
    .u64(OFF.xcr0, 0x1n)
    .u32(OFF.mxcsr, 0x1f80).page;
}

/** Resolve the CPUID signature from a QEMU CPU model name or an explicit value. */
export function resolveVcpuSig(o: { vcpuType?: string; vcpuSig?: number; vmm?: VmmType }): number {
  if (o.vcpuSig !== undefined) {
    check(Number.isInteger(o.vcpuSig) && o.vcpuSig >= 0 && o.vcpuSig <= 0xffffffff, 'BAD_OPTION', `vCPU signature ${o.vcpuSig} is not a u32`);
    return o.vcpuSig;
  }
  if (o.vcpuType !== undefined) {
    const sig = Object.hasOwn(VCPU_TYPES, o.vcpuType) ? VCPU_TYPES[o.vcpuType] : undefined;
    check(sig !== undefined, 'BAD_OPTION', `unknown vCPU type ${JSON.stringify(o.vcpuType)} (known: ${Object.keys(VCPU_TYPES).join(', ')})`);
    return sig;
  }
  // EC2 and GCE load a fixed RDX, so they need no CPU model; QEMU's RDX is the model's signature.
  check(o.vmm === 'ec2' || o.vmm === 'gce', 'BAD_OPTION', 'a vCPU type or signature is needed for the QEMU VMSA (e.g. EPYC-v4)');
  return 0;
}
