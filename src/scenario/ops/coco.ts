/**
 * Confidential-VM ops: KVM_MEMORY_ENCRYPT_OP with its SEV-SNP and TDX sub-commands, and the host
 * kernel's own accesses to guest memory through its direct map. The model's SNP and TDX platforms
 * implement them (src/model/platforms/); a backend without them answers with a ScenarioError.
 */
import { z } from 'zod';
import type { MemoryEncryptCommand, MemoryEncryptResult } from '../../api.js';
import { SNP_PAGE_TYPE_NAMES } from '../../uapi/coco.js';
import { type Context, stepData } from '../context.js';
import { CpuidEntrySchema, Data, EncryptCmdName, Int, type IntInput, Ref, SnpPageTypeName, TdxFlags, Uaddr } from '../fields.js';
import { defineOp, type StepOf } from '../op.js';
import { bytesToHex, hex, hexToBytes, int, ScenarioError, s64, u32, u64 } from '../values.js';

const NO_KERNEL = 'SEV-SNP and TDX need their hardware, which neither the host nor the lab has: there is no kernel to compare with';

const encryptFields = {
  cmd: z.union([EncryptCmdName, Int], { error: 'expected a command name like "KVM_SEV_SNP_LAUNCH_UPDATE" or a number' }),
  /** whose command numbering a numeric cmd uses */
  vendor: z.enum(['sev', 'tdx']).optional(),
  vcpu: z.number().int().min(0).optional(),
  flags: TdxFlags.optional(),
  // KVM_SEV_INIT2 (struct kvm_sev_init)
  vmsa_features: Int.optional(),
  ghcb_version: Int.optional(),
  // KVM_SEV_SNP_LAUNCH_START
  policy: Int.optional(),
  // KVM_SEV_SNP_LAUNCH_UPDATE
  gfn_start: Int.optional(),
  uaddr: Uaddr.optional(),
  len: Int.optional(),
  type: SnpPageTypeName.optional(),
  // KVM_SEV_SNP_LAUNCH_FINISH
  host_data: z
    .string()
    .regex(/^([0-9a-fA-F]{2}){0,32}$/, 'expected up to 32 hex bytes')
    .optional(),
  // kvm_tdx_cmd.hw_error (userspace must leave it 0)
  hw_error: Int.optional(),
  // KVM_TDX_INIT_VM: attributes, xfam, reserved[], CPUID entries; "gpaw" (48/52) adds CPUID 0x80000008
  attributes: Int.optional(),
  xfam: Int.optional(),
  reserved: z.array(Int).max(12).optional(),
  cpuid: z.array(CpuidEntrySchema).optional(),
  gpaw: z.number().int().min(0).max(255).optional(),
  // KVM_TDX_INIT_VCPU: the value for the vCPU's RCX
  rcx: Int.optional(),
  // KVM_TDX_INIT_MEM_REGION (struct kvm_tdx_init_mem_region)
  source_addr: Uaddr.optional(),
  gpa: Int.optional(),
  nr_pages: Int.optional(),
  // KVM_TDX_CAPABILITIES: cpuid.nent of the buffer
  nent: Int.optional(),
};
type EncryptStep = StepOf<'memory_encrypt_op', typeof encryptFields>;

function snpPageType(t: EncryptStep['type']): number {
  if (t === undefined) throw new ScenarioError('memory_encrypt_op: KVM_SEV_SNP_LAUNCH_UPDATE needs "type"');
  if (typeof t === 'string' && t in SNP_PAGE_TYPE_NAMES) return SNP_PAGE_TYPE_NAMES[t as keyof typeof SNP_PAGE_TYPE_NAMES];
  return Number(int(t as IntInput));
}

function need<T>(v: T | undefined, field: string, cmd: string): T {
  if (v === undefined) throw new ScenarioError(`memory_encrypt_op: ${cmd} needs "${field}"`);
  return v;
}

/** The scenario step as the api.ts command: struct fields snake_case -> camelCase, flag names -> bits. */
function encryptCommand(ctx: Context, s: EncryptStep): MemoryEncryptCommand {
  const flags = s.flags === undefined ? 0 : Array.isArray(s.flags) ? (s.flags.includes('measure') ? 1 : 0) : u32(s.flags as IntInput);
  if (!(typeof s.cmd === 'string' && s.cmd.startsWith('KVM_'))) {
    if (!s.vendor) throw new ScenarioError('memory_encrypt_op: a numeric cmd needs "vendor" ("sev" or "tdx")');
    return { vendor: s.vendor, id: u32(s.cmd as IntInput) };
  }
  const cmd = s.cmd as Extract<EncryptStep['cmd'], `KVM_${string}`>;
  const tdx = { flags, ...(s.hw_error !== undefined && { hwError: u64(s.hw_error) }) };
  switch (cmd) {
    case 'KVM_SEV_INIT2':
      return { id: cmd, vmsaFeatures: u64(s.vmsa_features ?? 0), flags, ghcbVersion: Number(int(s.ghcb_version ?? 0)) };
    case 'KVM_SEV_SNP_LAUNCH_START':
      return { id: cmd, policy: u64(need(s.policy, 'policy', cmd)), flags };
    case 'KVM_SEV_SNP_LAUNCH_UPDATE':
      return {
        id: cmd,
        gfnStart: u64(need(s.gfn_start, 'gfn_start', cmd)),
        uaddr: ctx.uaddr(s.uaddr),
        len: u64(need(s.len, 'len', cmd)),
        type: snpPageType(s.type),
        flags,
      };
    case 'KVM_SEV_SNP_LAUNCH_FINISH':
      return { id: cmd, flags, ...(s.host_data !== undefined && { hostData: hexToBytes(s.host_data) }) };
    case 'KVM_TDX_CAPABILITIES':
      return { id: cmd, ...tdx, nent: Number(int(s.nent ?? 0)) };
    case 'KVM_TDX_INIT_VM': {
      const cpuid = (s.cpuid ?? []).map((e) => ({
        function: u32(e.function),
        index: u32(e.index ?? 0),
        flags: u32(e.flags ?? 0),
        eax: u32(e.eax ?? 0),
        ebx: u32(e.ebx ?? 0),
        ecx: u32(e.ecx ?? 0),
        edx: u32(e.edx ?? 0),
      }));
      // "gpaw": CPUID 0x80000008.EAX[23:16], where KVM takes the TD's GPA width from
      if (s.gpaw !== undefined) cpuid.push({ function: 0x80000008, index: 0, flags: 0, eax: (s.gpaw & 0xff) << 16, ebx: 0, ecx: 0, edx: 0 });
      return { id: cmd, ...tdx, attributes: u64(s.attributes ?? 0), xfam: u64(s.xfam ?? 0), reserved: (s.reserved ?? []).map(u64), cpuid };
    }
    case 'KVM_TDX_INIT_VCPU':
      return { id: cmd, ...tdx, rcx: u64(s.rcx ?? 0) };
    case 'KVM_TDX_INIT_MEM_REGION':
      return { id: cmd, ...tdx, sourceAddr: ctx.uaddr(s.source_addr), gpa: u64(need(s.gpa, 'gpa', cmd)), nrPages: u64(need(s.nr_pages, 'nr_pages', cmd)) };
    case 'KVM_TDX_FINALIZE_VM':
      return { id: cmd, ...tdx };
    default:
      throw new ScenarioError(`memory_encrypt_op: unknown command ${String(cmd)}`);
  }
}

const eq = (a: bigint | number, b: string | number): boolean => BigInt(a) === int(b);

export const memoryEncryptOp = defineOp('memory_encrypt_op', {
  fields: encryptFields,
  mirrors: '`KVM_MEMORY_ENCRYPT_OP` on a VM, or with `vcpu` on that vCPU (SEV-SNP and TDX sub-commands)',
  doc: '`cmd` (`"KVM_SEV_SNP_LAUNCH_UPDATE"`, `"KVM_TDX_INIT_MEM_REGION"`, ... or a number with `vendor`), `vcpu`, `flags`, and the sub-command\'s struct fields: `vmsa_features`, `ghcb_version`, `policy`, `gfn_start`, `uaddr`, `len`, `type`, `host_data`, `hw_error`, `attributes`, `xfam`, `reserved`, `cpuid`, `gpaw` (adds CPUID 0x80000008), `rcx`, `source_addr`, `gpa`, `nr_pages`, `nent`; expect `{"memory_encrypt":{"error":..,"hw_error":..,"data":{..}}}`',
  requires: ['vm_type:snp', 'vm_type:tdx'],
  run(ctx, s) {
    const cmd = encryptCommand(ctx, s);
    // a backend without the call is a bad step: found out on the VM, before a vCPU is created for it
    const vm: { memoryEncryptOp?: unknown } = ctx.vm(s.vm);
    if (!vm.memoryEncryptOp) throw new ScenarioError(`${s.op}: this backend has no KVM_MEMORY_ENCRYPT_OP`);
    const target: { memoryEncryptOp?: (c: MemoryEncryptCommand) => MemoryEncryptResult } = s.vcpu === undefined ? ctx.vm(s.vm) : ctx.vcpu(ctx.vm(s.vm), s.vcpu);
    if (!target.memoryEncryptOp) throw new ScenarioError(`${s.op}: this backend has no KVM_MEMORY_ENCRYPT_OP`);
    return target.memoryEncryptOp(cmd);
  },
  describe(r) {
    const parts = [
      ...(r.error ? [`error ${r.error}`] : []),
      ...(r.hwError ? [`hw_error ${hex(r.hwError)}`] : []),
      ...Object.entries(r.data ?? {}).map(([k, v]) => `${k} ${hex(v)}`),
    ];
    return parts.length ? `ok ${parts.join(' ')}` : 'ok';
  },
  checks: {
    // what KVM_MEMORY_ENCRYPT_OP left in kvm_sev_cmd.error / kvm_tdx_cmd.hw_error and in the
    // sub-command's struct: copied back on failure too, where the kernel does
    memory_encrypt(want, o) {
      if (o.kind === 'fault') return undefined;
      const r = o.kind === 'ok' ? o.value : undefined;
      const copied: Readonly<Record<string, bigint>> = (o.kind === 'errno' ? o.data : r?.data) ?? {};
      const error = r?.error ?? copied.error;
      const hwError = r?.hwError ?? copied.hw_error;
      if (want.error !== undefined && (error === undefined || !eq(error, want.error)))
        return `memory_encrypt.error: expected ${String(want.error)}, got ${error ?? 'nothing'}`;
      if (want.hw_error !== undefined && (hwError === undefined || !eq(hwError, want.hw_error)))
        return `memory_encrypt.hw_error: expected ${String(want.hw_error)}, got ${hwError === undefined ? 'nothing' : hex(hwError)}`;
      for (const [k, v] of Object.entries(want.data ?? {})) {
        const got = copied[k];
        if (got === undefined || !eq(got, v)) return `memory_encrypt.data.${k}: expected ${hex(int(v))}, got ${got === undefined ? 'nothing' : hex(got)}`;
      }
      return undefined;
    },
  },
  diff: { none: NO_KERNEL },
});

function hostKernel(ctx: Context, op: string) {
  const hk = ctx.kvm.hostKernel;
  if (!hk) throw new ScenarioError(`${op}: only the model has the host kernel's direct-map accesses`);
  return hk;
}
const DIRECT_MAP = 'the host kernel touching guest memory through its direct map is a model event; a real kernel has no uAPI for it';

export const directMapRead = defineOp('direct_map_read', {
  fields: { fd: Ref, offset: Int.optional(), length: Int },
  mirrors: 'the host kernel reading a guest_memfd page through its direct map (a bug, a device)',
  doc: '`fd`, `offset`, `length`',
  faults: true,
  requires: ['guest_memfd'],
  run: (ctx, s) => hostKernel(ctx, s.op).directMapRead(ctx.fd(s.fd), s64(s.offset ?? 0), Number(int(s.length))),
  data: (v) => v,
  describe: (v) => (v.length <= 16 ? `data ${bytesToHex(v)}` : `${v.length} bytes`),
  diff: { none: DIRECT_MAP },
});

export const directMapWrite = defineOp('direct_map_write', {
  fields: { fd: Ref, offset: Int.optional(), ...Data },
  mirrors: 'the host kernel writing a guest_memfd page through its direct map',
  doc: '`fd`, `offset`, `hex` or `fill`+`length`',
  faults: true,
  requires: ['guest_memfd'],
  run(ctx, s) {
    hostKernel(ctx, s.op).directMapWrite(ctx.fd(s.fd), s64(s.offset ?? 0), stepData(s, s.op));
    return 0;
  },
  diff: { none: DIRECT_MAP },
});
