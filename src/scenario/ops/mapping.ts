/** Ops on a host mapping: loads and stores, munmap, madvise and the NUMA calls. */
import { z } from 'zod';
import { MADV, MPOL } from '../../uapi/constants.js';
import { stepData } from '../context.js';
import { Data, Int, MpolMode } from '../fields.js';
import { defineOp } from '../op.js';
import { bytesToHex, hex, int, u64 } from '../values.js';

export function mpolMode(m: string | number): number {
  return typeof m === 'string' && m in MPOL ? MPOL[m as keyof typeof MPOL] : Number(int(m));
}
const nodemask = (nodes: readonly number[]) => nodes.reduce((m, n) => m | (1n << BigInt(n)), 0n);
const NUMA_ONLY = 'needs CONFIG_NUMA, which the lab kernels lack (mbind is drawn where the reference has NUMA); placement is a host fact, not a uAPI rule';

export const munmap = defineOp('munmap', {
  fields: { map: z.string() },
  mirrors: 'munmap(2)',
  doc: '`map`',
  run(ctx, s) {
    ctx.map(s.map).unmap();
    return 0;
  },
  diff: 'generated',
});

export const hostWrite = defineOp('host_write', {
  fields: { map: z.string(), offset: Int.optional(), ...Data },
  mirrors: 'a host store through a mapping',
  doc: '`map`, `offset`, `hex` or `fill`+`length` (a faulting store writes the bytes before the first faulting page, like `memset`)',
  faults: true,
  run(ctx, s) {
    ctx.map(s.map).write(u64(s.offset ?? 0), stepData(s, 'host_write'));
    return 0;
  },
  diff: 'generated',
});

export const hostRead = defineOp('host_read', {
  fields: { map: z.string(), offset: Int.optional(), length: Int },
  mirrors: 'a host load through a mapping',
  doc: '`map`, `offset`, `length`',
  faults: true,
  run: (ctx, s) => ctx.map(s.map).read(u64(s.offset ?? 0), Number(int(s.length))),
  data: (v) => v,
  describe: (v) => (v.length <= 16 ? `data ${bytesToHex(v)}` : `${v.length} bytes`),
  diff: 'generated',
});

export const madvise = defineOp('madvise', {
  fields: { map: z.string(), offset: Int.optional(), length: Int, advice: z.enum(['normal', 'dontneed', 'remove', 'hugepage', 'nohugepage', 'collapse']) },
  mirrors: 'madvise(2)',
  doc: '`map`, `offset`, `length`, `advice` (`dontneed`, `remove`, `hugepage`, `collapse`, ...)',
  run(ctx, s) {
    ctx.map(s.map).madvise(u64(s.offset ?? 0), u64(s.length), MADV[s.advice]);
    return 0;
  },
  diff: 'generated',
});

export const mbind = defineOp('mbind', {
  fields: { map: z.string(), offset: Int.optional(), length: Int, mode: MpolMode, nodes: z.array(z.number().int().min(0).max(63)).optional() },
  mirrors: 'mbind(2)',
  doc: '`map`, `offset`, `length`, `mode` (`"bind"`, `"interleave"`, ... or a number), `nodes`',
  run(ctx, s) {
    ctx.map(s.map).mbind(u64(s.offset ?? 0), u64(s.length), mpolMode(s.mode), nodemask(s.nodes ?? []));
    return 0;
  },
  diff: 'generated',
});

export const getMempolicy = defineOp('get_mempolicy', {
  fields: { map: z.string(), offset: Int.optional() },
  mirrors: 'get_mempolicy(2) with `MPOL_F_ADDR`',
  doc: '`map`, `offset`; expect `{"mempolicy":{"mode":"bind","nodes":[0]}}`',
  run: (ctx, s) => ctx.map(s.map).getMempolicy(u64(s.offset ?? 0)),
  describe: (p) => `policy mode ${p.mode} nodes ${hex(p.nodemask)}`,
  checks: {
    mempolicy(want, o) {
      if (o.kind !== 'ok') return undefined;
      const wantMask = nodemask(want.nodes);
      if (o.value.mode !== mpolMode(want.mode) || o.value.nodemask !== wantMask)
        return `expected policy ${String(want.mode)} nodes ${hex(wantMask)}, got mode ${o.value.mode} nodes ${hex(o.value.nodemask)}`;
      return undefined;
    },
  },
  diff: { none: NUMA_ONLY },
});

export const movePages = defineOp('move_pages', {
  fields: { map: z.string(), offset: Int.optional(), count: z.number().int().min(1) },
  mirrors: 'move_pages(2) with no target: the node of each page',
  doc: '`map`, `offset`, `count`; expect `{"nodes":[0,1]}`',
  run: (ctx, s) => ctx.map(s.map).pageNodes(u64(s.offset ?? 0), s.count),
  describe: (nodes) => `page nodes [${nodes.join(', ')}]`,
  checks: {
    nodes(want, o) {
      if (o.kind !== 'ok') return undefined;
      return o.value.join() === want.join() ? undefined : `expected page nodes [${want.join(', ')}], got [${o.value.join(', ')}]`;
    },
  },
  diff: { none: NUMA_ONLY },
});
