/**
 * Runs a scenario on a backend and judges every step against its `expect`. The runner only speaks
 * the interface of api.ts, so the same file runs on the model and on the real kernel.
 */
import {
  CODE_GPA,
  CODE_SIZE,
  type GuestOp,
  HostFault,
  type HostMapping,
  type Kvm,
  KvmError,
  type MemoryEncryptCommand,
  type MemoryEncryptResult,
  type UserspaceMemoryRegion,
  type Vcpu,
  type VcpuExit,
  type Vm,
} from '../api.js';
import { SNP_PAGE_TYPE_NAMES } from '../uapi/coco.js';
import {
  CAP,
  GUEST_MEMFD_FLAGS,
  KVM_HC_MAP_GPA_RANGE,
  KVM_MEMORY_ATTRIBUTE_PRIVATE,
  MADV,
  MPOL,
  SEEK_CUR,
  SEEK_END,
  SEEK_SET,
  VM_TYPE,
  type VmType,
} from '../uapi/constants.js';
import type { Expect, IntInput, Scenario, Step } from './schema.js';
import {
  attrFlags,
  bytesToHex,
  capNumber,
  fallocMode,
  gmemFlags,
  hcAttrs,
  hex,
  hexToBytes,
  i32,
  int,
  mapFlags,
  memFlags,
  prot,
  ScenarioError,
  s64,
  u32,
  u64,
} from './values.js';

/** A backend the runner can open a fresh KVM on, once per scenario. */
export interface Backend {
  readonly name: 'model' | 'kvm';
  /** Open for a scenario written for `kernel` (undefined: the backend's default), or say why it cannot. */
  open(kernel: string | undefined): { kvm: Kvm; profile: string } | { skip: string };
  /** Invariants checked after every step (the model's); a non-empty list fails the step. */
  check?(kvm: Kvm): string[];
  /** NUMA nodes the backend's host has (requires "numa_nodes:N"). */
  readonly numaNodes: number;
  /** Open the model of another design (a scenario's "design"; src/designs/ supplies them). */
  openDesign?(design: string, kernel: string | undefined): { kvm: Kvm; profile: string } | { skip: string };
  /**
   * What guest code can do here, found by running it (requires "gmem_only_faults", "hypercall_exits");
   * absent means everything the kernel's capabilities promise works.
   */
  guest?(kvm: Kvm): GuestFacts;
  /** Why this backend cannot judge a scenario written for another kernel's rules, if it cannot. */
  incompatible?(sc: Scenario, kernel: string | undefined): string | undefined;
}

export type Status = 'passed' | 'failed' | 'skipped';

export interface StepResult {
  index: number;
  op: string;
  status: Status;
  /** what happened, e.g. "ok", "EINVAL", "SIGBUS at offset 0x4000", "exit hlt reads [0x1]" */
  got: string;
  /** why the step failed */
  reason?: string;
}

export interface ScenarioResult {
  name: string;
  file: string;
  backend: string;
  kernel: string;
  status: Status;
  reason?: string;
  steps: StepResult[];
}

type Outcome =
  | { kind: 'ok'; value?: unknown }
  | { kind: 'errno'; errno: string; message: string; data?: Readonly<Record<string, bigint>> | undefined }
  | { kind: 'fault'; fault: HostFault };

type Obj = { kind: 'kvm' } | { kind: 'vm'; vm: Vm } | { kind: 'fd'; fd: number; close?: () => void } | { kind: 'map'; map: HostMapping };

/** Which capability a `requires` entry needs, checked through KVM_CHECK_EXTENSION on /dev/kvm. */
/** What guest code can do on a backend, found by running it. */
export interface GuestFacts {
  /** guest_memfd-only slots serve guest faults without a host mapping (6.18 GMEM_ONLY with TDP) */
  gmemOnlyFaults: boolean;
  /** KVM_HC_MAP_GPA_RANGE exits to userspace */
  hypercallExits: boolean;
  /** guest code is emulated: every access goes through userspace_addr (PVM) */
  emulatedAccess: boolean;
}

export function unmetRequirement(kvm: Kvm, req: string, numaNodes: number, guest?: (kvm: Kvm) => GuestFacts): string | undefined {
  const [what, arg] = req.split(':') as [string, string | undefined];
  const cap = (c: number) => kvm.checkExtension(c);
  switch (what) {
    case 'vm_type': {
      const t = VM_TYPE[arg as VmType];
      if (t === undefined) throw new ScenarioError(`requires: unknown VM type '${arg}'`);
      return cap(CAP.KVM_CAP_VM_TYPES) & (1 << t) ? undefined : `KVM_CAP_VM_TYPES lacks ${arg}`;
    }
    case 'guest_memfd':
      return cap(CAP.KVM_CAP_GUEST_MEMFD) ? undefined : 'KVM_CAP_GUEST_MEMFD is 0';
    case 'guest_memfd_flags': {
      const f = GUEST_MEMFD_FLAGS[arg as keyof typeof GUEST_MEMFD_FLAGS];
      if (f === undefined) throw new ScenarioError(`requires: unknown guest_memfd flag '${arg}'`);
      return BigInt(cap(CAP.KVM_CAP_GUEST_MEMFD_FLAGS)) & f ? undefined : `KVM_CAP_GUEST_MEMFD_FLAGS lacks ${arg}`;
    }
    case 'memory_attributes':
      return BigInt(cap(CAP.KVM_CAP_MEMORY_ATTRIBUTES)) & KVM_MEMORY_ATTRIBUTE_PRIVATE ? undefined : 'KVM_CAP_MEMORY_ATTRIBUTES lacks PRIVATE';
    case 'pre_fault_memory':
      return cap(CAP.KVM_CAP_PRE_FAULT_MEMORY) ? undefined : 'KVM_CAP_PRE_FAULT_MEMORY is 0';
    case 'exit_hypercall':
      return cap(CAP.KVM_CAP_EXIT_HYPERCALL) & (1 << KVM_HC_MAP_GPA_RANGE) ? undefined : 'KVM_CAP_EXIT_HYPERCALL lacks KVM_HC_MAP_GPA_RANGE';
    case 'gmem_only_faults':
      if (!cap(CAP.KVM_CAP_GUEST_MEMFD_FLAGS)) return 'KVM_CAP_GUEST_MEMFD_FLAGS is 0';
      return !guest || guest(kvm).gmemOnlyFaults ? undefined : 'guest accesses reach memory only through userspace_addr here (guest code is emulated)';
    case 'hypercall_exits':
      return !guest || guest(kvm).hypercallExits ? undefined : 'KVM_HC_MAP_GPA_RANGE never exits to userspace here';
    case 'emulated_guest_access':
      return guest?.(kvm).emulatedAccess ? undefined : 'guest code runs on the CPU here (no emulation through userspace_addr)';
    case 'hardware_guest_access':
      // the scenario is about KVM's MMU faults (hva_to_pfn, SPTE permissions), which PVM's emulator bypasses
      return guest?.(kvm).emulatedAccess ? 'guest code is emulated here: its accesses go through userspace_addr, not KVM faults' : undefined;
    case 'address_spaces': {
      const n = cap(CAP.KVM_CAP_MULTI_ADDRESS_SPACE) || 1;
      return n === Number(arg) ? undefined : `this kernel has ${n} memslot address space(s), the scenario is about ${arg}`;
    }
    case 'numa_nodes':
      return numaNodes >= Number(arg) ? undefined : `the host has ${numaNodes} NUMA node(s), ${arg} needed`;
    default:
      throw new ScenarioError(`requires: unknown requirement '${req}'`);
  }
}

class Context {
  readonly objs = new Map<string, Obj>();
  readonly vcpus = new Map<Vm, Map<number, Vcpu>>();
  /** names whose fd a close step already closed */
  readonly closed = new Set<string>();
  constructor(readonly kvm: Kvm) {
    this.objs.set('kvm', { kind: 'kvm' });
  }

  obj(name: string, field: string): Obj {
    const o = this.objs.get(name);
    if (!o) throw new ScenarioError(`${field}: no object named '${name}' (names come from "as", plus "kvm" and "vm")`);
    return o;
  }

  name(as: string, o: Obj): void {
    if (this.objs.has(as)) throw new ScenarioError(`as: the name '${as}' is already taken`);
    this.objs.set(as, o);
  }

  vm(name: string | undefined): Vm {
    const o = this.obj(name ?? 'vm', 'vm');
    if (o.kind !== 'vm') throw new ScenarioError(`vm: '${name}' is not a VM`);
    return o.vm;
  }

  fd(ref: string | number, field = 'fd'): number {
    if (typeof ref === 'number' || /^-?\d|^-?0x/i.test(ref)) return i32(ref);
    const o = this.obj(ref, field);
    switch (o.kind) {
      case 'kvm':
        return this.kvm.fd;
      case 'vm':
        return o.vm.fd;
      case 'fd':
        return o.fd;
      case 'map':
        throw new ScenarioError(`${field}: '${ref}' is a mapping, not a file descriptor`);
    }
  }

  map(name: string): HostMapping {
    const o = this.obj(name, 'map');
    if (o.kind !== 'map') throw new ScenarioError(`map: '${name}' is not a mapping`);
    return o.map;
  }

  uaddr(v: string | number | { map: string; offset: string | number } | undefined): bigint {
    if (v === undefined) return 0n;
    if (typeof v === 'object') return this.map(v.map).addr + u64(v.offset);
    if (typeof v === 'number' || /^-?\d|^-?0x/i.test(v)) return u64(v);
    return this.map(v).addr;
  }

  vcpu(vm: Vm, id: number): Vcpu {
    let m = this.vcpus.get(vm);
    if (!m) this.vcpus.set(vm, (m = new Map()));
    let v = m.get(id);
    if (!v) m.set(id, (v = vm.createVcpu(id)));
    return v;
  }
}

function data(s: { hex?: string | undefined; fill?: number | undefined; length?: string | number | undefined }, op: string): Uint8Array {
  if (s.hex !== undefined) return hexToBytes(s.hex);
  if (s.fill !== undefined && s.length !== undefined) return new Uint8Array(Number(int(s.length))).fill(s.fill);
  throw new ScenarioError(`${op}: give "hex", or "fill" with "length"`);
}

function program(ops: NonNullable<Extract<Step, { op: 'run' }>['program']>): GuestOp[] {
  return ops.map((o) => {
    if (o === 'hlt') return { op: 'hlt' };
    if ('write' in o) return { op: 'write', gpa: u64(o.write), width: o.width, value: u64(o.value), ...(o.shared !== undefined && { shared: o.shared }) };
    if ('read' in o) return { op: 'read', gpa: u64(o.read), width: o.width, ...(o.shared !== undefined && { shared: o.shared }) };
    if ('map_gpa_range' in o) return { op: 'map_gpa_range', gpa: u64(o.map_gpa_range), npages: u64(o.npages), attrs: hcAttrs(o.attrs) };
    // confidential guests (issue 5)
    if ('pvalidate' in o) return { op: 'pvalidate', gpa: u64(o.pvalidate), validate: o.validate };
    if ('tdg_mem_page_accept' in o) return { op: 'tdg_mem_page_accept', gpa: u64(o.tdg_mem_page_accept) };
    return { op: 'out', port: Number(int(o.out)), value: u64(o.value) };
  });
}

function mpolMode(m: string | number): number {
  return typeof m === 'string' && m in MPOL ? MPOL[m as keyof typeof MPOL] : Number(int(m));
}

const WHENCE = { set: SEEK_SET, cur: SEEK_CUR, end: SEEK_END } as const;

/** Execute one step; returns the value it produced (checked against expect). */
function execute(ctx: Context, s: Step): unknown {
  const kvm = ctx.kvm;
  const f = kvm.files;
  switch (s.op) {
    case 'create_vm': {
      const vm = kvm.createVm(s.type === undefined ? 'default' : typeof s.type === 'string' && s.type in VM_TYPE ? (s.type as VmType) : Number(int(s.type)));
      ctx.name(s.as, { kind: 'vm', vm });
      return { fd: vm.fd };
    }
    case 'check_extension': {
      const cap = capNumber(s.cap);
      return s.scope === undefined || s.scope === 'system' ? kvm.checkExtension(cap) : ctx.vm(s.scope).checkExtension(cap);
    }
    case 'enable_cap':
      return ctx.vm(s.vm).enableCap(capNumber(s.cap), (s.args ?? []).map(u64), s.flags === undefined ? 0 : u32(s.flags));
    case 'create_guest_memfd': {
      const g = ctx.vm(s.vm).createGuestMemfd({ size: u64(s.size), flags: gmemFlags(s.flags), reserved: (s.reserved ?? []).map(u64) });
      if (s.as) ctx.name(s.as, { kind: 'fd', fd: g.fd, close: () => g.close() });
      return { fd: g.fd };
    }
    case 'set_user_memory_region2': {
      const fd = s.guest_memfd === undefined ? 0 : ctx.fd(s.guest_memfd, 'guest_memfd');
      ctx.vm(s.vm).setUserMemoryRegion2({
        slot: u32(s.slot),
        flags: memFlags(s.flags),
        guestPhysAddr: u64(s.guest_phys_addr),
        memorySize: u64(s.memory_size),
        userspaceAddr: ctx.uaddr(s.userspace_addr),
        guestMemfd: fd >>> 0,
        guestMemfdOffset: u64(s.guest_memfd_offset ?? 0),
      });
      return 0;
    }
    case 'set_user_memory_region':
      ctx.vm(s.vm).setUserMemoryRegion({
        slot: u32(s.slot),
        flags: memFlags(s.flags),
        guestPhysAddr: u64(s.guest_phys_addr),
        memorySize: u64(s.memory_size),
        userspaceAddr: ctx.uaddr(s.userspace_addr),
      });
      return 0;
    case 'set_memory_attributes':
      ctx.vm(s.vm).setMemoryAttributes({ address: u64(s.address), size: u64(s.size), attributes: attrFlags(s.attributes), flags: u64(s.flags ?? 0) });
      return 0;
    case 'fallocate':
      f.fallocate(ctx.fd(s.fd), fallocMode(s.mode), s64(s.offset), s64(s.length));
      return 0;
    case 'mmap': {
      const m = f.mmap(ctx.fd(s.fd), s64(s.offset ?? 0), u64(s.length), prot(s.prot ?? ['read', 'write']), mapFlags(s.flags ?? ['shared']));
      if (s.as) ctx.name(s.as, { kind: 'map', map: m });
      else m.unmap();
      return 0;
    }
    case 'mmap_anonymous': {
      const m = ctx.vm(s.vm).mmapAnonymous(u64(s.length));
      ctx.name(s.as, { kind: 'map', map: m });
      return 0;
    }
    case 'munmap':
      ctx.map(s.map).unmap();
      return 0;
    case 'madvise':
      ctx.map(s.map).madvise(u64(s.offset ?? 0), u64(s.length), MADV[s.advice]);
      return 0;
    case 'mbind':
      ctx.map(s.map).mbind(
        u64(s.offset ?? 0),
        u64(s.length),
        mpolMode(s.mode),
        (s.nodes ?? []).reduce((m, n) => m | (1n << BigInt(n)), 0n),
      );
      return 0;
    case 'get_mempolicy':
      return { mempolicy: ctx.map(s.map).getMempolicy(u64(s.offset ?? 0)) };
    case 'move_pages':
      return { nodes: ctx.map(s.map).pageNodes(u64(s.offset ?? 0), s.count) };
    case 'host_write':
      ctx.map(s.map).write(u64(s.offset ?? 0), data(s, s.op));
      return 0;
    case 'host_read':
      return ctx.map(s.map).read(u64(s.offset ?? 0), Number(int(s.length)));
    case 'memfd_create': {
      const fd =
        s.flags === undefined ? f.memfdCreate(s.name ?? s.as) : designKvm(ctx, 'memfdCreateFlags', s.op).memfdCreateFlags(s.name ?? s.as, mfdFlags(s.flags));
      ctx.name(s.as, { kind: 'fd', fd });
      return { fd };
    }
    case 'read':
      return f.read(ctx.fd(s.fd), Number(int(s.length)));
    case 'write':
      return f.write(ctx.fd(s.fd), data(s, s.op));
    case 'pread':
      return f.pread(ctx.fd(s.fd), Number(int(s.length)), s64(s.offset));
    case 'pwrite':
      return f.pwrite(ctx.fd(s.fd), data(s, s.op), s64(s.offset));
    case 'lseek': {
      const w = s.whence;
      const whence = w === undefined ? SEEK_SET : typeof w === 'string' && w in WHENCE ? WHENCE[w as keyof typeof WHENCE] : Number(int(w));
      return f.lseek(ctx.fd(s.fd), s64(s.offset), whence);
    }
    case 'ftruncate':
      f.ftruncate(ctx.fd(s.fd), s64(s.size));
      return 0;
    case 'fstat':
      return f.fstat(ctx.fd(s.fd));
    case 'dup': {
      const fd = f.dup(ctx.fd(s.fd));
      if (s.as) ctx.name(s.as, { kind: 'fd', fd });
      return { fd };
    }
    case 'close': {
      // Close through the owning object the first time, so the backend's ownership stays true;
      // later closes of the same name are the raw syscall (EBADF, as a second close(2) is).
      const o = typeof s.fd === 'string' && !ctx.closed.has(s.fd) ? ctx.objs.get(s.fd) : undefined;
      if (o?.kind === 'vm') o.vm.close();
      else if (o?.kind === 'fd' && o.close) o.close();
      else f.close(ctx.fd(s.fd));
      if (typeof s.fd === 'string') ctx.closed.add(s.fd);
      return 0;
    }
    case 'run': {
      const vcpu = ctx.vcpu(ctx.vm(s.vm), s.vcpu);
      if (s.program) {
        const p = program(s.program);
        for (const op of p) {
          if ((op.op === 'read' || op.op === 'write' || op.op === 'map_gpa_range') && op.gpa >= CODE_GPA && op.gpa < CODE_GPA + CODE_SIZE) {
            throw new ScenarioError('program: GPA 0xffe00000-0xfff00000 is reserved for the guest code');
          }
        }
        vcpu.load(p);
      }
      return vcpu.run(s.hypercall_ret === undefined ? {} : { hypercallRet: u64(s.hypercall_ret) });
    }
    case 'pre_fault_memory':
      // The ioctl returns 0 on success; what it copied back is checked with expect.pre_fault.
      return { ret: 0, ...ctx.vcpu(ctx.vm(s.vm), s.vcpu).preFaultMemory({ gpa: u64(s.gpa), size: u64(s.size), flags: u64(s.flags ?? 0) }) };
    case 'fcntl':
    case 'set_user_memory_region_ext':
    case 'memory_encrypt_reg_region':
    case 'memory_encrypt_unreg_region':
    case 'tdx_init_mem_region':
    case 'tdx_measurement_covers':
    case 'mm_migrate':
    case 'mm_reclaim':
    case 'backing_pages':
      return executeDesign(ctx, s);
    case 'memory_encrypt_op':
    case 'direct_map_read':
    case 'direct_map_write':
      return executeCoco(ctx, s);
  }
}

function describe(o: Outcome): string {
  if (o.kind === 'errno') return o.errno;
  if (o.kind === 'fault') return `${o.fault.signal} at offset ${hex(o.fault.offset)}`;
  const v = o.value;
  if (typeof v === 'object' && v !== null && 'reclaim' in v) return `reclaim: ${(v as { reclaim: string }).reclaim}`;
  if (typeof v === 'object' && v !== null && 'encrypt' in v) return describeEncrypt((v as { encrypt: MemoryEncryptResult }).encrypt);
  if (v instanceof Uint8Array) return v.length <= 16 ? `data ${bytesToHex(v)}` : `${v.length} bytes`;
  if (typeof v === 'object' && v !== null && 'reason' in v) {
    const e = v as VcpuExit;
    const extra = e.memoryFault
      ? ` gpa ${hex(e.memoryFault.gpa)} flags ${hex(e.memoryFault.flags)}`
      : e.hypercall
        ? ` nr ${e.hypercall.nr} args [${e.hypercall.args.slice(0, 3).map(hex).join(', ')}]`
        : e.io
          ? ` port ${hex(BigInt(e.io.port))} value ${hex(e.io.value)}`
          : e.mmio
            ? ` ${e.mmio.isWrite ? 'write' : 'read'} ${hex(e.mmio.physAddr)}`
            : '';
    return `exit ${e.reason}${e.errno ? ` (${e.errno})` : ''}${extra}${e.reads.length ? ` reads [${e.reads.map(hex).join(', ')}]` : ''}`;
  }
  if (typeof v === 'object' && v !== null && 'blksize' in v) {
    const st = v as unknown as { size: bigint; blocks: bigint };
    return `fstat size ${st.size} blocks ${st.blocks}`;
  }
  if (typeof v === 'object' && v !== null && 'fd' in v) return `ok fd ${(v as { fd: number }).fd}`;
  if (typeof v === 'object' && v !== null && 'mempolicy' in v) {
    const p = (v as { mempolicy: { mode: number; nodemask: bigint } }).mempolicy;
    return `policy mode ${p.mode} nodes ${hex(p.nodemask)}`;
  }
  if (typeof v === 'object' && v !== null && 'nodes' in v) return `page nodes [${(v as { nodes: number[] }).nodes.join(', ')}]`;
  if (typeof v === 'object' && v !== null && 'gpa' in v) {
    const p = v as { gpa: bigint; size: bigint };
    return `ok gpa ${hex(p.gpa)} size ${hex(p.size)}`;
  }
  return v === undefined || v === 0 ? 'ok' : `ok ${String(v)}`;
}

const eq = (a: bigint | number, b: string | number): boolean => BigInt(a) === int(b);

/** Compare an outcome with the step's expectation; returns why it does not match. */
function judge(s: Step, o: Outcome): string | undefined {
  const e: Expect = s.expect ?? {};
  const exit = o.kind === 'ok' && typeof o.value === 'object' && o.value !== null && 'reason' in o.value ? (o.value as VcpuExit) : undefined;
  const errno = o.kind === 'errno' ? o.errno : exit?.errno;
  if (o.kind === 'fault') {
    if (e.fault === undefined) return `unexpected ${o.fault.message}`;
    if (e.fault !== o.fault.signal) return `expected ${e.fault}, got ${o.fault.signal}`;
    return undefined;
  }
  if (e.fault !== undefined) return `expected ${e.fault}, got ${o.kind === 'errno' ? o.errno : 'success'}`;
  if (e.errno !== undefined && errno !== e.errno) return `expected ${e.errno}, got ${errno ?? 'success'}`;
  if (e.errno === undefined && errno !== undefined) return `unexpected ${o.kind === 'errno' ? o.message : errno}`;
  if (e.pre_fault) {
    const p = (o.kind === 'errno' ? o.data : (o.value as { gpa: bigint; size: bigint })) ?? {};
    for (const k of ['gpa', 'size'] as const) {
      const want = e.pre_fault[k];
      const got = (p as Record<string, bigint | undefined>)[k];
      if (want !== undefined && (got === undefined || !eq(got, want)))
        return `pre_fault.${k}: expected ${hex(int(want))}, got ${got === undefined ? 'nothing' : hex(got)}`;
    }
  }
  if (e.memory_encrypt) {
    const why = judgeEncrypt(e.memory_encrypt, o);
    if (why) return why;
  }
  if (o.kind !== 'ok') return undefined;
  const v = o.value;
  if (e.mempolicy) {
    const got = (v as { mempolicy?: { mode: number; nodemask: bigint } }).mempolicy;
    if (!got) return 'this op returns no memory policy';
    const wantMask = e.mempolicy.nodes.reduce((m, n) => m | (1n << BigInt(n)), 0n);
    if (got.mode !== mpolMode(e.mempolicy.mode) || got.nodemask !== wantMask) {
      return `expected policy ${String(e.mempolicy.mode)} nodes 0x${wantMask.toString(16)}, got mode ${got.mode} nodes 0x${got.nodemask.toString(16)}`;
    }
  }
  if (e.nodes) {
    const got = (v as { nodes?: number[] }).nodes;
    if (!got) return 'this op returns no page nodes';
    if (got.join() !== e.nodes.join()) return `expected page nodes [${e.nodes.join(', ')}], got [${got.join(', ')}]`;
  }
  if (e.result !== undefined) {
    const r =
      typeof v === 'object' && v !== null && 'ret' in v
        ? (v as { ret: number }).ret
        : typeof v === 'object' && v !== null && 'fd' in v
          ? (v as { fd: number }).fd
          : v;
    if (typeof r !== 'number' && typeof r !== 'bigint') return 'this op returns no value to compare with "result"';
    if (!eq(r, e.result)) return `expected result ${String(e.result)}, got ${r}`;
  }
  if (e.hex !== undefined || e.fill !== undefined) {
    if (!(v instanceof Uint8Array)) return 'this op returns no data to compare';
    if (e.hex !== undefined && bytesToHex(v) !== e.hex.toLowerCase()) return `expected data ${e.hex.slice(0, 64)}, got ${bytesToHex(v).slice(0, 64)}`;
    if (e.fill !== undefined) {
      const bad = v.findIndex((x) => x !== e.fill);
      if (bad >= 0) return `expected every byte 0x${e.fill.toString(16)}, byte ${bad} is 0x${(v[bad] as number).toString(16)}`;
    }
  }
  if (e.fstat) {
    const st = v as { size: bigint; blksize: bigint; blocks: bigint; mode: number };
    for (const k of ['size', 'blksize', 'blocks', 'mode'] as const) {
      const want = e.fstat[k];
      if (want !== undefined && !eq(st[k], want)) return `fstat.${k}: expected ${String(want)}, got ${st[k]}`;
    }
  }
  if (exit) {
    if (e.exit !== undefined && exit.reason !== e.exit) return `expected exit ${e.exit}, got ${describe(o)}`;
    if (e.memory_fault) {
      const mf = exit.memoryFault;
      if (!mf) return `expected a memory_fault exit, got ${exit.reason}`;
      if (e.memory_fault.gpa !== undefined && !eq(mf.gpa, e.memory_fault.gpa))
        return `memory_fault.gpa: expected ${hex(int(e.memory_fault.gpa))}, got ${hex(mf.gpa)}`;
      if (e.memory_fault.size !== undefined && !eq(mf.size, e.memory_fault.size))
        return `memory_fault.size: expected ${String(e.memory_fault.size)}, got ${mf.size}`;
      if (e.memory_fault.flags !== undefined && mf.flags !== attrFlags(e.memory_fault.flags))
        return `memory_fault.flags: expected ${hex(attrFlags(e.memory_fault.flags))}, got ${hex(mf.flags)}`;
    }
    if (e.hypercall) {
      const hc = exit.hypercall;
      if (!hc) return `expected a hypercall exit, got ${exit.reason}`;
      if (e.hypercall.nr !== undefined && !eq(hc.nr, e.hypercall.nr)) return `hypercall.nr: expected ${String(e.hypercall.nr)}, got ${hc.nr}`;
      const args = e.hypercall.args ?? [];
      for (let i = 0; i < args.length; i++) {
        if (!eq(hc.args[i] ?? -1n, args[i] as string | number))
          return `hypercall.args[${i}]: expected ${hex(int(args[i] as string | number))}, got ${hex(hc.args[i] ?? 0n)}`;
      }
    }
    if (e.io) {
      const io = exit.io;
      if (!io) return `expected an io exit, got ${exit.reason}`;
      if (e.io.port !== undefined && !eq(io.port, e.io.port)) return `io.port: expected ${String(e.io.port)}, got ${io.port}`;
      if (e.io.value !== undefined && !eq(io.value, e.io.value)) return `io.value: expected ${String(e.io.value)}, got ${hex(io.value)}`;
      if (e.io.size !== undefined && !eq(io.size, e.io.size)) return `io.size: expected ${String(e.io.size)}, got ${io.size}`;
    }
    if (e.mmio) {
      const m = exit.mmio;
      if (!m) return `expected an mmio exit, got ${exit.reason}`;
      if (e.mmio.phys_addr !== undefined && !eq(m.physAddr, e.mmio.phys_addr))
        return `mmio.phys_addr: expected ${String(e.mmio.phys_addr)}, got ${hex(m.physAddr)}`;
      if (e.mmio.len !== undefined && !eq(m.len, e.mmio.len)) return `mmio.len: expected ${String(e.mmio.len)}, got ${m.len}`;
      if (e.mmio.is_write !== undefined && m.isWrite !== e.mmio.is_write) return `mmio.is_write: expected ${e.mmio.is_write}`;
      if (e.mmio.data !== undefined && !eq(m.data, e.mmio.data)) return `mmio.data: expected ${String(e.mmio.data)}, got ${hex(m.data)}`;
    }
    if (e.reads) {
      const got = exit.reads;
      if (got.length !== e.reads.length || got.some((r, i) => !eq(r, e.reads?.[i] as string | number))) {
        return `expected reads [${e.reads.map((r) => hex(int(r))).join(', ')}], got [${got.map(hex).join(', ')}]`;
      }
    }
  } else if (e.exit || e.reads || e.memory_fault || e.hypercall || e.io || e.mmio) {
    return 'exit expectations apply only to "run"';
  }
  return undefined;
}

/** Run one scenario from start to end (or to its first failed step) on a fresh KVM of `backend`. */
/**
 * One backend's side of a scenario: a KVM, the first VM (named `vm`), and every object the steps
 * named. The differential tester drives two sessions with the same steps.
 */
export class Session {
  readonly ctx: Context;
  constructor(
    readonly kvm: Kvm,
    vmType: VmType = 'default',
  ) {
    this.ctx = new Context(kvm);
    this.ctx.name('vm', { kind: 'vm', vm: kvm.createVm(vmType) });
  }

  /** Execute a step; the kernel's answer is the outcome. A ScenarioError (a bad step) propagates. */
  step(s: Step): { outcome: Outcome; got: string } {
    let outcome: Outcome;
    try {
      outcome = { kind: 'ok', value: execute(this.ctx, s) };
    } catch (err) {
      if (err instanceof KvmError) outcome = { kind: 'errno', errno: err.errno, message: err.message, data: err.data };
      else if (err instanceof HostFault) outcome = { kind: 'fault', fault: err };
      else throw err;
    }
    return { outcome, got: describe(outcome) };
  }

  /** The live mappings the steps named, for state comparisons. */
  mappings(): [string, HostMapping][] {
    return [...this.ctx.objs].flatMap(([n, o]) => (o.kind === 'map' ? [[n, o.map] as [string, HostMapping]] : []));
  }

  /**
   * Release everything the steps made (mappings, vCPUs, named fds, VMs), then /dev/kvm, so that a
   * long campaign on the real kernel ends with the fd and mapping counts it started with.
   */
  close(): void {
    const quietly = (f: () => void) => {
      try {
        f();
      } catch (e) {
        if (!(e instanceof KvmError)) throw e;
      }
    };
    for (const o of this.ctx.objs.values()) if (o.kind === 'map') o.map.unmap();
    for (const m of this.ctx.vcpus.values()) for (const v of m.values()) quietly(() => v.close());
    for (const [name, o] of this.ctx.objs) {
      if (this.ctx.closed.has(name)) continue;
      if (o.kind === 'fd') quietly(() => (o.close ? o.close() : this.kvm.files.close(o.fd)));
      else if (o.kind === 'vm') quietly(() => o.vm.close());
    }
    quietly(() => this.kvm.close());
  }

  /** The fds the steps named (guest_memfds, memfds, dups). */
  fds(): [string, number][] {
    return [...this.ctx.objs].flatMap(([n, o]) => (o.kind === 'fd' ? [[n, o.fd] as [string, number]] : []));
  }
}

export type { Outcome };
export { judge };

/** Called as a scenario runs: a watcher outside the process learns which step was running if it dies. */
export interface RunHooks {
  beforeStep?(index: number, step: Step): void;
}

/** Run one scenario from start to end (or to its first failed step) on a fresh KVM of `backend`. */
export function runScenario(sc: Scenario, file: string, backend: Backend, kernelOverride?: string, hooks?: RunHooks): ScenarioResult {
  const kernel = kernelOverride ?? sc.kernel;
  const base = { name: sc.name, file, backend: backend.name, kernel: kernel ?? 'default', steps: [] as StepResult[] };
  const why = backend.incompatible?.(sc, kernel);
  if (why) return { ...base, status: 'skipped', reason: why };
  const opened = openFor(backend, sc.design, kernel);
  if ('skip' in opened) return { ...base, status: 'skipped', reason: opened.skip };
  const { kvm } = opened;
  base.kernel = opened.profile;
  for (const req of sc.requires ?? []) {
    const why = unmetRequirement(kvm, req, backend.numaNodes, backend.guest?.bind(backend));
    if (why) {
      kvm.close();
      return { ...base, status: 'skipped', reason: `requires ${req}: ${why}` };
    }
  }
  let session: Session;
  try {
    session = new Session(kvm, sc.vm?.type ?? 'default');
  } catch (e) {
    kvm.close();
    if (e instanceof KvmError) return { ...base, status: 'failed', reason: `creating the scenario's VM: ${e.message}` };
    throw e;
  }
  try {
    for (let i = 0; i < sc.steps.length; i++) {
      const s = sc.steps[i] as Step;
      hooks?.beforeStep?.(i, s);
      let r: { outcome: Outcome; got: string };
      try {
        r = session.step(s);
      } catch (err) {
        if (err instanceof ScenarioError) {
          base.steps.push({ index: i, op: s.op, status: 'failed', got: 'bad step', reason: err.message });
          return { ...base, status: 'failed', reason: `steps[${i}].${err.message}` };
        }
        // A backend that cannot do what the step asks (a program too large for the x86 code
        // generator, a guest that never exits) fails this scenario, not the whole run.
        const msg = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
        base.steps.push({ index: i, op: s.op, status: 'failed', got: 'backend error', reason: msg });
        return { ...base, status: 'failed', reason: `steps[${i}] (${s.op}): the ${backend.name} backend failed: ${msg}` };
      }
      let reason = judge(s, r.outcome);
      const broken = backend.check?.(kvm) ?? [];
      if (!reason && broken.length) reason = `invariant broken: ${broken.join('; ')}`;
      base.steps.push({ index: i, op: s.op, status: reason ? 'failed' : 'passed', got: r.got, ...(reason && { reason }) });
      if (reason) return { ...base, status: 'failed', reason: `steps[${i}] (${s.op}): ${reason}` };
    }
    return { ...base, status: 'passed' };
  } finally {
    session.close();
  }
}

// ---- Design extensions (src/designs/). Calls that only some model designs have: the v7 uAPI
// (memfd_create flags, memfd seals, the _ext memslot struct, KVM_MEMORY_ENCRYPT_{REG,UNREG}_REGION,
// the TDX launch path) and host events (page migration and reclaim, the pages behind a GPA). A
// backend whose objects lack one answers with a ScenarioError naming it; the runner never invents
// what a kernel would say. ----

/** kvm_userspace_memory_region_ext (v7 09/14): the v1 struct plus the private fd and offset. */
export interface UserspaceMemoryRegionExt extends UserspaceMemoryRegion {
  privateOffset: bigint;
  privateFd: number;
}
/** struct kvm_enc_region */
export interface EncRegion {
  addr: bigint;
  size: bigint;
}
export interface TdxInitMemRegion {
  source: HostMapping;
  sourceOffset: bigint;
  gpa: bigint;
  npages: bigint;
  measure: boolean;
}
/** What a design's Kvm may add. */
export interface DesignKvmOps {
  /** memfd_create(2) with flags (MFD_*) */
  memfdCreateFlags?(name: string, flags: number): number;
  /** fcntl(2): F_ADD_SEALS, F_GET_SEALS */
  fcntl?(fd: number, cmd: number, arg?: number): number;
  /** the kernel tries to migrate the page at `offset` of the file behind fd */
  mmMigrate?(fd: number, offset: bigint): void;
  /** the kernel tries to reclaim it: 'swapped', or why it stayed */
  mmReclaim?(fd: number, offset: bigint): string;
}
/** What a design's Vm may add. */
export interface DesignVmOps {
  setUserMemoryRegionExt?(r: UserspaceMemoryRegionExt): void;
  memoryEncryptRegRegion?(r: EncRegion): void;
  memoryEncryptUnregRegion?(r: EncRegion): void;
  tdxInitMemRegion?(r: TdxInitMemRegion): void;
  tdxMeasurementCovers?(gpa: bigint, data: Uint8Array): boolean;
  /** pages allocated for one GPA: shared side plus private side */
  backingPages?(gpa: bigint): number;
}

/** Scenario names of the v7 flags (the designs' kernel constants are checked against these in tests). */
export const DESIGN_FLAGS = {
  mfd: { cloexec: 0x1, allow_sealing: 0x2, hugetlb: 0x4, inaccessible: 0x8 },
  seals: { seal: 0x1, shrink: 0x2, grow: 0x4, write: 0x8, future_write: 0x10, auto_allocate: 0x20 },
  mem: { log_dirty_pages: 1 << 0, readonly: 1 << 1, private: 1 << 2 },
  fcntl: { add_seals: 1033, get_seals: 1034 },
} as const;

function designFlags(table: Readonly<Record<string, number>>, v: IntInput | readonly string[] | undefined): number {
  if (v === undefined) return 0;
  if (Array.isArray(v)) return v.reduce((m: number, n: string) => m | (table[n] ?? 0), 0);
  return u32(v as IntInput);
}
const mfdFlags = (v: IntInput | readonly string[] | undefined) => designFlags(DESIGN_FLAGS.mfd, v);

function designKvm<K extends keyof DesignKvmOps>(ctx: Context, method: K, op: string): Required<Pick<DesignKvmOps, K>> {
  const k = ctx.kvm as Kvm & DesignKvmOps;
  if (typeof k[method] !== 'function') throw new ScenarioError(`${op}: this backend has no ${method} (only the model designs of src/designs/ do)`);
  return k as unknown as Required<Pick<DesignKvmOps, K>>;
}

function designVm<K extends keyof DesignVmOps>(ctx: Context, name: string | undefined, method: K, op: string): Required<Pick<DesignVmOps, K>> {
  const vm = ctx.vm(name) as Vm & DesignVmOps;
  if (typeof vm[method] !== 'function') throw new ScenarioError(`${op}: this backend's VMs have no ${method} (only the model designs of src/designs/ do)`);
  return vm as unknown as Required<Pick<DesignVmOps, K>>;
}

type DesignStep = Extract<
  Step,
  {
    op:
      | 'fcntl'
      | 'set_user_memory_region_ext'
      | 'memory_encrypt_reg_region'
      | 'memory_encrypt_unreg_region'
      | 'tdx_init_mem_region'
      | 'tdx_measurement_covers'
      | 'mm_migrate'
      | 'mm_reclaim'
      | 'backing_pages';
  }
>;

function executeDesign(ctx: Context, s: DesignStep): unknown {
  switch (s.op) {
    case 'fcntl': {
      const k = designKvm(ctx, 'fcntl', s.op);
      return k.fcntl(ctx.fd(s.fd), DESIGN_FLAGS.fcntl[s.cmd], designFlags(DESIGN_FLAGS.seals, s.seals));
    }
    case 'set_user_memory_region_ext': {
      const r = {
        slot: u32(s.slot),
        flags: designFlags(DESIGN_FLAGS.mem, s.flags),
        guestPhysAddr: u64(s.guest_phys_addr),
        memorySize: u64(s.memory_size),
        userspaceAddr: ctx.uaddr(s.userspace_addr),
      };
      const vm = ctx.vm(s.vm) as Vm & DesignVmOps;
      // A kernel without v7 reads only the 32-byte struct of the same ioctl number: the v1 call is what it sees.
      if (!vm.setUserMemoryRegionExt) vm.setUserMemoryRegion(r);
      else
        vm.setUserMemoryRegionExt({
          ...r,
          privateFd: s.private_fd === undefined ? 0 : ctx.fd(s.private_fd, 'private_fd') >>> 0,
          privateOffset: u64(s.private_offset ?? 0),
        });
      return 0;
    }
    case 'memory_encrypt_reg_region':
      designVm(ctx, s.vm, 'memoryEncryptRegRegion', s.op).memoryEncryptRegRegion({ addr: u64(s.addr), size: u64(s.size) });
      return 0;
    case 'memory_encrypt_unreg_region':
      designVm(ctx, s.vm, 'memoryEncryptUnregRegion', s.op).memoryEncryptUnregRegion({ addr: u64(s.addr), size: u64(s.size) });
      return 0;
    case 'tdx_init_mem_region':
      designVm(ctx, s.vm, 'tdxInitMemRegion', s.op).tdxInitMemRegion({
        source: ctx.map(s.source),
        sourceOffset: u64(s.source_offset ?? 0),
        gpa: u64(s.gpa),
        npages: u64(s.npages),
        measure: s.measure ?? true,
      });
      return 0;
    case 'tdx_measurement_covers':
      return designVm(ctx, s.vm, 'tdxMeasurementCovers', s.op).tdxMeasurementCovers(u64(s.gpa), hexToBytes(s.hex)) ? 1 : 0;
    case 'mm_migrate':
      designKvm(ctx, 'mmMigrate', s.op).mmMigrate(ctx.fd(s.fd), s64(s.offset));
      return 0;
    case 'mm_reclaim': {
      const r = designKvm(ctx, 'mmReclaim', s.op).mmReclaim(ctx.fd(s.fd), s64(s.offset));
      return { ret: r === 'swapped' ? 1 : 0, reclaim: r };
    }
    case 'backing_pages':
      return designVm(ctx, s.vm, 'backingPages', s.op).backingPages(u64(s.gpa));
  }
}

/** The backend's KVM for a scenario: a design's model where the scenario names one. */
function openFor(backend: Backend, design: string | undefined, kernel: string | undefined): { kvm: Kvm; profile: string } | { skip: string } {
  if (design === undefined) return backend.open(kernel);
  if (backend.openDesign) return backend.openDesign(design, kernel);
  // guest_memfd is the kernel's own design: any backend runs it
  if (design === 'guest_memfd') return backend.open(kernel);
  return { skip: `requires design:${design}: a model variant (src/designs/), which the ${backend.name} backend does not have` };
}

// ---- Confidential VMs (issue 5): KVM_MEMORY_ENCRYPT_OP and its SEV-SNP / TDX sub-commands, and the
// host kernel's direct-map accesses (api.ts Vm/Vcpu.memoryEncryptOp, Kvm.hostKernel). A backend
// without them answers with a ScenarioError naming the call; coco scenarios also require the VM
// type, so the kvm backend skips them. ----

type CocoStep = Extract<Step, { op: 'memory_encrypt_op' | 'direct_map_read' | 'direct_map_write' }>;
type EncryptStep = Extract<Step, { op: 'memory_encrypt_op' }>;

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

function executeCoco(ctx: Context, s: CocoStep): unknown {
  switch (s.op) {
    case 'memory_encrypt_op': {
      const cmd = encryptCommand(ctx, s);
      const target: { memoryEncryptOp?: (c: MemoryEncryptCommand) => MemoryEncryptResult } =
        s.vcpu === undefined ? ctx.vm(s.vm) : ctx.vcpu(ctx.vm(s.vm), s.vcpu);
      if (!target.memoryEncryptOp) throw new ScenarioError(`${s.op}: this backend has no KVM_MEMORY_ENCRYPT_OP`);
      return { encrypt: target.memoryEncryptOp(cmd) };
    }
    case 'direct_map_read':
    case 'direct_map_write': {
      const hk = ctx.kvm.hostKernel;
      if (!hk) throw new ScenarioError(`${s.op}: only the model has the host kernel's direct-map accesses`);
      const fd = ctx.fd(s.fd);
      if (s.op === 'direct_map_read') return hk.directMapRead(fd, s64(s.offset ?? 0), Number(int(s.length)));
      hk.directMapWrite(fd, s64(s.offset ?? 0), data(s, s.op));
      return 0;
    }
  }
}

function describeEncrypt(r: MemoryEncryptResult): string {
  const parts = [
    ...(r.error ? [`error ${r.error}`] : []),
    ...(r.hwError ? [`hw_error ${hex(r.hwError)}`] : []),
    ...Object.entries(r.data ?? {}).map(([k, v]) => `${k} ${hex(v)}`),
  ];
  return parts.length ? `ok ${parts.join(' ')}` : 'ok';
}

function judgeEncrypt(want: NonNullable<Expect['memory_encrypt']>, o: Outcome): string | undefined {
  if (o.kind === 'fault') return undefined;
  const r: MemoryEncryptResult | undefined = o.kind === 'ok' ? (o.value as { encrypt?: MemoryEncryptResult }).encrypt : undefined;
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
}
