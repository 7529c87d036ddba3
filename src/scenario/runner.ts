/**
 * Runs a scenario on a backend and judges every step against its `expect`. The runner only speaks
 * the interface of api.ts, so the same file runs on the model and on the real kernel.
 */
import { CODE_GPA, CODE_SIZE, type GuestOp, HostFault, type HostMapping, type Kvm, KvmError, type Vcpu, type VcpuExit, type Vm } from '../api.js';
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
import type { Expect, Scenario, Step } from './schema.js';
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
  /**
   * What guest code can do here, found by running it (requires "gmem_only_faults", "hypercall_exits");
   * absent means everything the kernel's capabilities promise works.
   */
  guest?(): { gmemOnlyFaults: boolean; hypercallExits: boolean };
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
export function unmetRequirement(
  kvm: Kvm,
  req: string,
  numaNodes: number,
  guest?: () => { gmemOnlyFaults: boolean; hypercallExits: boolean },
): string | undefined {
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
      return !guest || guest().gmemOnlyFaults ? undefined : 'guest accesses reach memory only through userspace_addr here (guest code is emulated)';
    case 'hypercall_exits':
      return !guest || guest().hypercallExits ? undefined : 'KVM_HC_MAP_GPA_RANGE never exits to userspace here';
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
      const fd = f.memfdCreate(s.name ?? s.as);
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
  }
}

function describe(o: Outcome): string {
  if (o.kind === 'errno') return o.errno;
  if (o.kind === 'fault') return `${o.fault.signal} at offset ${hex(o.fault.offset)}`;
  const v = o.value;
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

/** Run one scenario from start to end (or to its first failed step) on a fresh KVM of `backend`. */
export function runScenario(sc: Scenario, file: string, backend: Backend, kernelOverride?: string): ScenarioResult {
  const kernel = kernelOverride ?? sc.kernel;
  const base = { name: sc.name, file, backend: backend.name, kernel: kernel ?? 'default', steps: [] as StepResult[] };
  const why = backend.incompatible?.(sc, kernel);
  if (why) return { ...base, status: 'skipped', reason: why };
  const opened = backend.open(kernel);
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
      let r: { outcome: Outcome; got: string };
      try {
        r = session.step(s);
      } catch (err) {
        if (!(err instanceof ScenarioError)) throw err;
        base.steps.push({ index: i, op: s.op, status: 'failed', got: 'bad step', reason: err.message });
        return { ...base, status: 'failed', reason: `steps[${i}].${err.message}` };
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
