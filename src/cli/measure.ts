/**
 * `guestmem measure`: launch digests from a firmware image, with the flags and output of
 * sev-snp-measure where the two overlap (digest in lower-case hex on stdout), plus `--mode tdx`.
 * A thin shell: read files, hash with node:crypto, call src/measure, print. Bad input is one line on
 * stderr and exit status 2.
 */
import { createHash, hash } from 'node:crypto';
import { statSync } from 'node:fs';
import { type Command, InvalidArgumentError, Option } from 'commander';
import {
  cpuSig,
  fromHex,
  type HashFactory,
  MeasureError,
  type SevKernelHashes,
  sevEsLaunchDigest,
  sevKernelHashes,
  sevLaunchDigest,
  snpLaunchDigest,
  snpOvmfHash,
  svsmLaunchDigest,
  TDX_ORDERS,
  type TdxOrder,
  tdxMrtd,
  toHex,
  VCPU_TYPES,
  type VmmType,
} from '../measure/index.js';
import { UserError } from './errors.js';
import { readRegularFile } from './files.js';

function nodeHash(alg: 'sha384' | 'sha256'): HashFactory {
  // hash() (Node ≥ 20.12) skips the Hash object: ~1 µs less per page than createHash().
  const oneShot = typeof hash === 'function' ? (b: Uint8Array) => hash(alg, b, 'buffer') : undefined;
  const f = () => createHash(alg);
  return oneShot ? Object.assign(f, { oneShot }) : f;
}
/** node:crypto SHA-384 / SHA-256 for src/measure. */
export const nodeSha384: HashFactory = nodeHash('sha384');
export const nodeSha256: HashFactory = nodeHash('sha256');

export const MODES = ['snp', 'seves', 'sev', 'snp:ovmf-hash', 'snp:svsm', 'tdx'] as const;
export type MeasureMode = (typeof MODES)[number];

export interface MeasureArgs {
  mode: MeasureMode;
  ovmf: string;
  vcpus?: number;
  vcpuType?: string;
  vcpuSig?: number;
  vcpuFamily?: number;
  vcpuModel?: number;
  vcpuStepping?: number;
  vmmType?: VmmType;
  guestFeatures?: bigint;
  kernel?: string;
  initrd?: string;
  append?: string;
  snpOvmfHash?: string;
  svsm?: string;
  varsSize?: number;
  varsFile?: string;
  tdxOrder?: TdxOrder;
  outputFormat?: 'hex' | 'base64';
}

/** A usage error: the message is printed as is, exit status 2. */
class UsageError extends Error {}

function intArg(what: string) {
  return (v: string): number => {
    const n = /^(0x[0-9a-f]+|0o[0-7]+|0b[01]+|\d+)$/i.test(v.trim()) ? Number(v.trim()) : Number.NaN;
    if (!Number.isSafeInteger(n)) throw new InvalidArgumentError(`expected ${what}`);
    return n;
  };
}

function featuresArg(v: string): bigint {
  // sev-snp-measure parses with int(x, 0): 0x21, 33 and 0b100001 all mean the same.
  try {
    const n = BigInt(v.trim());
    if (n >= 0n && n < 1n << 64n) return n;
  } catch {
    // fall through
  }
  throw new InvalidArgumentError('expected a u64 such as 0x1 or 0x21');
}

function vmmArg(v: string): VmmType {
  const t = v.toLowerCase();
  if (t === 'qemu' || t === 'ec2' || t === 'gce') return t;
  throw new InvalidArgumentError('expected qemu, ec2 or gce');
}

/**
 * The most bytes each input may have, checked before reading (a wrong path such as /dev/zero must
 * not be read forever). Firmware is mapped below 4 GiB in a flash region of a few MiB; 64 MiB is far
 * above any OVMF, TDVF or SVSM image. Kernels and initrds are bounded only to stay readable at once.
 */
const MAX_BYTES = { firmware: 64 << 20, 'SVSM image': 64 << 20, kernel: 512 << 20, initrd: 1 << 30 } as const;

function read(path: string, what: keyof typeof MAX_BYTES): Uint8Array {
  return readRegularFile(path, what, MAX_BYTES[what]);
}

/** The flags each mode uses beyond --mode, --ovmf and the output flags; any other is refused. */
const VCPU_FLAGS = ['vcpus', 'vcpuType', 'vcpuSig', 'vcpuFamily', 'vcpuModel', 'vcpuStepping', 'vmmType'] as const;
const KERNEL_FLAGS = ['kernel', 'initrd', 'append'] as const;
const MODE_FLAGS: Record<MeasureMode, readonly (keyof MeasureArgs)[]> = {
  snp: [...VCPU_FLAGS, ...KERNEL_FLAGS, 'guestFeatures', 'snpOvmfHash'],
  seves: [...VCPU_FLAGS, ...KERNEL_FLAGS],
  sev: KERNEL_FLAGS,
  'snp:ovmf-hash': [],
  'snp:svsm': [...VCPU_FLAGS, 'svsm', 'varsSize', 'varsFile'],
  tdx: ['tdxOrder'],
};
const FLAG_NAME = (k: string) => `--${k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
const CHECKED_FLAGS = [...new Set(Object.values(MODE_FLAGS).flat())];

/** A flag the mode would silently ignore is a usage error: the user meant something by it. */
function checkFlagsApply(a: MeasureArgs): void {
  const given = CHECKED_FLAGS.filter((k) => a[k] !== undefined && !MODE_FLAGS[a.mode].includes(k));
  if (given.length) throw new UsageError(`${given.map(FLAG_NAME).join(', ')} ${given.length > 1 ? 'do' : 'does'} not apply to --mode ${a.mode}`);
}

function kernelHashes(a: MeasureArgs): SevKernelHashes | undefined {
  if (a.kernel === undefined) return undefined;
  const initrd = a.initrd === undefined ? {} : { initrd: read(a.initrd, 'initrd') };
  return sevKernelHashes({ kernel: read(a.kernel, 'kernel'), ...initrd, ...opt('append', a.append) }, nodeSha256);
}

function vcpuSig(a: MeasureArgs): { vcpuSig?: number; vcpuType?: string } {
  if (a.vcpuFamily !== undefined) return { vcpuSig: cpuSig(a.vcpuFamily, a.vcpuModel ?? 0, a.vcpuStepping ?? 0) };
  if (a.vcpuSig !== undefined) return { vcpuSig: a.vcpuSig };
  if (a.vcpuType !== undefined) return { vcpuType: a.vcpuType };
  if ((a.vmmType ?? 'qemu') === 'qemu') throw new UsageError(`missing --vcpu-type or --vcpu-sig or --vcpu-family in guest mode '${a.mode}'`);
  return {};
}

/** Compute the digest the arguments ask for (the library call behind the command). */
export function measure(a: MeasureArgs): Uint8Array {
  if (a.initrd !== undefined && a.kernel === undefined) throw new UsageError('--kernel required when using --initrd');
  if (a.append !== undefined && a.kernel === undefined) throw new UsageError('--kernel required when using --append');
  if (a.snpOvmfHash !== undefined && a.mode !== 'snp') throw new UsageError('SNP OVMF hash only works with SNP');
  if (a.tdxOrder !== undefined && a.mode !== 'tdx') throw new UsageError('--tdx-order only applies to --mode tdx');
  checkFlagsApply(a);
  const needVcpus = a.mode === 'snp' || a.mode === 'seves' || a.mode === 'snp:svsm';
  if (needVcpus && a.vcpus === undefined) throw new UsageError(`missing --vcpus N in guest mode '${a.mode}'`);
  const fw = read(a.ovmf, 'firmware');
  const vmmType = a.vmmType ?? 'qemu';
  switch (a.mode) {
    case 'snp:ovmf-hash':
      return snpOvmfHash(fw, nodeSha384);
    case 'sev':
      return sevLaunchDigest(fw, { ...opt('kernelHashes', kernelHashes(a)) }, nodeSha256);
    case 'tdx':
      return tdxMrtd(fw, { order: a.tdxOrder ?? 'per-page' }, nodeSha384);
    case 'seves':
      return sevEsLaunchDigest(fw, { vcpus: a.vcpus as number, vmmType, ...vcpuSig(a), ...opt('kernelHashes', kernelHashes(a)) }, nodeSha256);
    case 'snp': {
      const seed = a.snpOvmfHash === undefined ? undefined : fromHex(a.snpOvmfHash);
      const o = { vcpus: a.vcpus as number, vmmType, guestFeatures: a.guestFeatures ?? 1n, ...vcpuSig(a) };
      return snpLaunchDigest(fw, { ...o, ...opt('kernelHashes', kernelHashes(a)), ...opt('ovmfHash', seed) }, nodeSha384);
    }
    case 'snp:svsm': {
      if (vmmType !== 'qemu') throw new UsageError('SVSM mode is only implemented for QEMU');
      if (a.svsm === undefined) throw new UsageError('snp:svsm mode requires --svsm');
      if (a.kernel !== undefined) throw new UsageError('snp:svsm mode does not take --kernel');
      let varsSize = a.varsSize;
      if (a.varsFile !== undefined) {
        if (varsSize !== undefined) throw new UsageError('--vars-size conflicts with --vars-file');
        try {
          varsSize = statSync(a.varsFile).size;
        } catch (e) {
          throw new UsageError(`cannot read OVMF vars ${a.varsFile}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
        }
      }
      if (varsSize === undefined) throw new UsageError('snp:svsm mode requires --vars-size or --vars-file');
      return svsmLaunchDigest(fw, read(a.svsm, 'SVSM image'), { vcpus: a.vcpus as number, varsSize, ...vcpuSig(a) }, nodeSha384);
    }
  }
}

function opt<K extends string, V>(k: K, v: V | undefined): { [P in K]?: V } {
  return (v === undefined ? {} : { [k]: v }) as { [P in K]?: V };
}

const MODE_NAME: Record<MeasureMode, string> = {
  snp: 'SEV_SNP',
  seves: 'SEV_ES',
  sev: 'SEV',
  'snp:ovmf-hash': 'SEV_SNP',
  'snp:svsm': 'SEV_SNP_SVSM',
  tdx: 'TDX',
};

/**
 * Add `measure` to the guestmem command.
 * @example registerMeasure(program) // guestmem measure --mode snp --vcpus 1 --vcpu-type EPYC-v4 --ovmf OVMF.fd
 */
export function registerMeasure(program: Command): void {
  program
    .command('measure')
    .description('launch digest of a confidential VM from its firmware: SNP/SEV-ES/SEV (as sev-snp-measure) or TDX MRTD')
    .addOption(new Option('--mode <mode>', 'guest mode').choices([...MODES]).makeOptionMandatory())
    .requiredOption('--ovmf <file>', 'OVMF firmware image (unified OVMF.fd / OVMF.amdsev.fd / OVMF.inteltdx.fd)')
    .option('--vcpus <n>', 'number of guest vCPUs', intArg('a vCPU count'))
    .addOption(new Option('--vcpu-type <type>', 'QEMU CPU model of the guest vCPUs').choices(Object.keys(VCPU_TYPES)))
    .option('--vcpu-sig <value>', 'guest vCPU signature (CPUID 1.EAX)', intArg('a u32 such as 0x800f12'))
    .option('--vcpu-family <n>', 'guest vCPU family', intArg('a family number'))
    .option('--vcpu-model <n>', 'guest vCPU model', intArg('a model number'))
    .option('--vcpu-stepping <n>', 'guest vCPU stepping', intArg('a stepping number'))
    .option('--vmm-type <type>', 'VMM whose initial VMSA to model: qemu, ec2 or gce (default qemu)', vmmArg)
    .option('--guest-features <value>', 'SEV_FEATURES of the VMSAs (default 0x1; 0x21 adds DebugSwap)', featuresArg)
    .option('--kernel <file>', 'kernel for measured direct boot (kernel-hashes=on)')
    .option('--initrd <file>', 'initrd (use with --kernel)')
    .option('--append <cmdline>', 'kernel command line (use with --kernel)')
    .option('--snp-ovmf-hash <hex>', 'precalculated snp:ovmf-hash of the firmware, instead of hashing its pages')
    .option('--svsm <file>', 'Coconut SVSM image (snp:svsm)')
    .option('--vars-size <bytes>', 'size of the OVMF_VARS file (snp:svsm)', intArg('a byte count'))
    .option('--vars-file <file>', 'OVMF_VARS file, for its size (snp:svsm)')
    .addOption(new Option('--tdx-order <order>', 'TDX measurement order: per-page (upstream KVM, default) or per-section (QEMU 8.x)').choices([...TDX_ORDERS]))
    .addOption(new Option('--output-format <format>', 'digest format').choices(['hex', 'base64']).default('hex'))
    .option('-v, --verbose', 'say which measurement was calculated')
    .option('--json', 'print {mode, digest, ...} as JSON')
    .action((o: MeasureArgs & { json?: boolean; verbose?: boolean }) => {
      let d: Uint8Array;
      try {
        d = measure(o);
      } catch (e) {
        // Bad input of any kind is one line, never a stack.
        const msg =
          e instanceof MeasureError || e instanceof UsageError || e instanceof UserError ? e.message : `internal error: ${(e as Error).message ?? String(e)}`;
        process.stderr.write(`guestmem measure: ${msg}\n`);
        process.exitCode = 2;
        return;
      }
      const text = o.outputFormat === 'base64' ? btoa(String.fromCharCode(...d)) : toHex(d);
      if (o.json) {
        const j: Record<string, unknown> = { mode: o.mode, digest: text, ovmf: o.ovmf };
        for (const k of ['vcpus', 'vcpuType', 'vcpuSig', 'vmmType', 'kernel', 'initrd', 'append', 'svsm', 'varsSize', 'tdxOrder'] as const)
          if (o[k] !== undefined) j[k] = o[k];
        if (o.mode === 'snp' || o.mode === 'seves') j.vmmType = o.vmmType ?? 'qemu';
        if (o.mode === 'snp') j.guestFeatures = `0x${(o.guestFeatures ?? 1n).toString(16)}`;
        if (o.mode === 'tdx') j.tdxOrder = o.tdxOrder ?? 'per-page';
        process.stdout.write(`${JSON.stringify(j)}\n`);
      } else process.stdout.write(o.verbose ? `Calculated ${MODE_NAME[o.mode]} guest measurement: ${text}\n` : `${text}\n`);
    });
}
