/** Ops on a vCPU: KVM_RUN with a guest program, KVM_PRE_FAULT_MEMORY. */
import { z } from 'zod';
import { CODE_GPA, CODE_SIZE, type GuestOp, type VcpuExit } from '../../api.js';
import { GuestOpSchema, Int } from '../fields.js';
import type { Outcome } from '../op.js';
import { defineOp } from '../op.js';
import { attrFlags, hcAttrs, hex, int, ScenarioError, u64 } from '../values.js';

const eq = (a: bigint | number, b: string | number): boolean => BigInt(a) === int(b);

function program(ops: readonly z.infer<typeof GuestOpSchema>[]): GuestOp[] {
  return ops.map((o): GuestOp => {
    if (o === 'hlt') return { op: 'hlt' };
    if ('write' in o) return { op: 'write', gpa: u64(o.write), width: o.width, value: u64(o.value), ...(o.shared !== undefined && { shared: o.shared }) };
    if ('read' in o) return { op: 'read', gpa: u64(o.read), width: o.width, ...(o.shared !== undefined && { shared: o.shared }) };
    if ('map_gpa_range' in o) return { op: 'map_gpa_range', gpa: u64(o.map_gpa_range), npages: u64(o.npages), attrs: hcAttrs(o.attrs) };
    if ('pvalidate' in o) return { op: 'pvalidate', gpa: u64(o.pvalidate), validate: o.validate };
    if ('tdg_mem_page_accept' in o) return { op: 'tdg_mem_page_accept', gpa: u64(o.tdg_mem_page_accept) };
    return { op: 'out', port: Number(int(o.out)), value: u64(o.value) };
  });
}

function describeExit(e: VcpuExit): string {
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

/** The exit a run step ended with, when it ended with one (an ioctl errno has none). */
const exitOf = (o: Outcome<VcpuExit>): VcpuExit | undefined => (o.kind === 'ok' ? o.value : undefined);

export const run = defineOp('run', {
  fields: { vcpu: z.number().int().min(0), program: z.array(GuestOpSchema).optional(), hypercall_ret: Int.optional() },
  mirrors: '`KVM_RUN`',
  doc: '`vcpu` (an id; created on first use), `program` (loads it; without it, resumes), `hypercall_ret`',
  run(ctx, s) {
    // the step is checked whole before KVM_CREATE_VCPU, so a bad one leaves no vCPU behind
    const vm = ctx.vm(s.vm);
    const p = s.program && program(s.program);
    for (const op of p ?? []) {
      if ((op.op === 'read' || op.op === 'write' || op.op === 'map_gpa_range') && op.gpa >= CODE_GPA && op.gpa < CODE_GPA + CODE_SIZE) {
        throw new ScenarioError('program: GPA 0xffe00000-0xfff00000 is reserved for the guest code');
      }
    }
    const made = ctx.existingVcpu(vm, s.vcpu);
    // a scenario problem, not a kernel answer: there is nothing to resume (a shrunk sequence can lose the loading step)
    if (!p && !(made && ctx.loaded.has(made))) throw new ScenarioError(`run: vCPU ${s.vcpu} has no program yet: the first run of a vCPU gives "program"`);
    const vcpu = made ?? ctx.vcpu(vm, s.vcpu);
    if (p) {
      vcpu.load(p);
      ctx.loaded.add(vcpu);
    }
    return vcpu.run(s.hypercall_ret === undefined ? {} : { hypercallRet: u64(s.hypercall_ret) });
  },
  describe: describeExit,
  errno: (e) => e.errno,
  checks: {
    exit(want, o) {
      const e = exitOf(o);
      return e && e.reason !== want ? `expected exit ${want}, got ${describeExit(e)}` : undefined;
    },
    memory_fault(want, o) {
      const e = exitOf(o);
      if (!e) return undefined;
      const mf = e.memoryFault;
      if (!mf) return `expected a memory_fault exit, got ${e.reason}`;
      if (want.gpa !== undefined && !eq(mf.gpa, want.gpa)) return `memory_fault.gpa: expected ${hex(int(want.gpa))}, got ${hex(mf.gpa)}`;
      if (want.size !== undefined && !eq(mf.size, want.size)) return `memory_fault.size: expected ${String(want.size)}, got ${mf.size}`;
      if (want.flags !== undefined && mf.flags !== attrFlags(want.flags))
        return `memory_fault.flags: expected ${hex(attrFlags(want.flags))}, got ${hex(mf.flags)}`;
      return undefined;
    },
    hypercall(want, o) {
      const e = exitOf(o);
      if (!e) return undefined;
      const hc = e.hypercall;
      if (!hc) return `expected a hypercall exit, got ${e.reason}`;
      if (want.nr !== undefined && !eq(hc.nr, want.nr)) return `hypercall.nr: expected ${String(want.nr)}, got ${hc.nr}`;
      const args = want.args ?? [];
      for (let i = 0; i < args.length; i++) {
        const w = args[i] as string | number;
        if (!eq(hc.args[i] ?? -1n, w)) return `hypercall.args[${i}]: expected ${hex(int(w))}, got ${hex(hc.args[i] ?? 0n)}`;
      }
      return undefined;
    },
    io(want, o) {
      const e = exitOf(o);
      if (!e) return undefined;
      const io = e.io;
      if (!io) return `expected an io exit, got ${e.reason}`;
      if (want.port !== undefined && !eq(io.port, want.port)) return `io.port: expected ${String(want.port)}, got ${io.port}`;
      if (want.value !== undefined && !eq(io.value, want.value)) return `io.value: expected ${String(want.value)}, got ${hex(io.value)}`;
      if (want.size !== undefined && !eq(io.size, want.size)) return `io.size: expected ${String(want.size)}, got ${io.size}`;
      return undefined;
    },
    mmio(want, o) {
      const e = exitOf(o);
      if (!e) return undefined;
      const m = e.mmio;
      if (!m) return `expected an mmio exit, got ${e.reason}`;
      if (want.phys_addr !== undefined && !eq(m.physAddr, want.phys_addr)) return `mmio.phys_addr: expected ${String(want.phys_addr)}, got ${hex(m.physAddr)}`;
      if (want.len !== undefined && !eq(m.len, want.len)) return `mmio.len: expected ${String(want.len)}, got ${m.len}`;
      if (want.is_write !== undefined && m.isWrite !== want.is_write) return `mmio.is_write: expected ${want.is_write}`;
      if (want.data !== undefined && !eq(m.data, want.data)) return `mmio.data: expected ${String(want.data)}, got ${hex(m.data)}`;
      return undefined;
    },
    reads(want, o) {
      const e = exitOf(o);
      if (!e) return undefined;
      const got = e.reads;
      if (got.length !== want.length || got.some((r, i) => !eq(r, want[i] as string | number)))
        return `expected reads [${want.map((r) => hex(int(r))).join(', ')}], got [${got.map(hex).join(', ')}]`;
      return undefined;
    },
  },
  diff: 'generated',
});

export const preFaultMemory = defineOp('pre_fault_memory', {
  fields: { vcpu: z.number().int().min(0), gpa: Int, size: Int, flags: Int.optional() },
  mirrors: '`KVM_PRE_FAULT_MEMORY`',
  doc: '`vcpu`, `gpa`, `size`, `flags`; expect `{"pre_fault":{"gpa":..,"size":..}}`: what the ioctl copied back, checked even with an errno',
  requires: ['pre_fault_memory'],
  // The ioctl returns 0 on success; what it copied back is checked with expect.pre_fault.
  run: (ctx, s) => ctx.vcpu(ctx.vm(s.vm), s.vcpu).preFaultMemory({ gpa: u64(s.gpa), size: u64(s.size), flags: u64(s.flags ?? 0) }),
  describe: (p) => `ok gpa ${hex(p.gpa)} size ${hex(p.size)}`,
  result: () => 0,
  checks: {
    pre_fault(want, o) {
      if (o.kind === 'fault') return undefined;
      const p: Readonly<Record<string, bigint | undefined>> = (o.kind === 'errno' ? o.data : o.value) ?? {};
      for (const k of ['gpa', 'size'] as const) {
        const w = want[k];
        const got = p[k];
        if (w !== undefined && (got === undefined || !eq(got, w)))
          return `pre_fault.${k}: expected ${hex(int(w))}, got ${got === undefined ? 'nothing' : hex(got)}`;
      }
      return undefined;
    },
  },
  diff: 'generated',
});
