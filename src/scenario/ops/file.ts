/** Ops on file descriptors: fallocate, mmap, memfd_create and the plain file syscalls. */
import { z } from 'zod';
import { SEEK_CUR, SEEK_END, SEEK_SET } from '../../uapi/constants.js';
import { stepData } from '../context.js';
import { Data, FallocMode, Int, MapFlags, MfdFlags, Name, Prot, Ref } from '../fields.js';
import { defineOp } from '../op.js';
import { bytesToHex, fallocMode, int, mapFlags, prot, s64, u64 } from '../values.js';
import { designKvm, mfdFlags } from './design.js';

const bytes = {
  data: (v: Uint8Array) => v,
  describe: (v: Uint8Array) => (v.length <= 16 ? `data ${bytesToHex(v)}` : `${v.length} bytes`),
};
const fdResult = { describe: (v: { fd: number }) => `ok fd ${v.fd}`, result: (v: { fd: number }) => v.fd };

export const fallocate = defineOp('fallocate', {
  fields: { fd: Ref, mode: FallocMode, offset: Int, length: Int },
  mirrors: 'fallocate(2)',
  doc: '`fd`, `mode` (`["keep_size","punch_hole"]` or a number), `offset`, `length`',
  run(ctx, s) {
    ctx.kvm.files.fallocate(ctx.fd(s.fd), fallocMode(s.mode), s64(s.offset), s64(s.length));
    return 0;
  },
  diff: 'generated',
});

export const mmap = defineOp('mmap', {
  fields: { fd: Ref, offset: Int.optional(), length: Int, prot: Prot.optional(), flags: MapFlags.optional(), as: Name.optional() },
  mirrors: 'mmap(2) of a file',
  doc: '`fd`, `offset`, `length`, `prot` (`["read","write","exec"]`), `flags` (`["shared"]`/`["private"]`), `as` (without it the mapping is unmapped at once)',
  makes: 'map',
  run(ctx, s) {
    ctx.free(s.as);
    const m = ctx.kvm.files.mmap(ctx.fd(s.fd), s64(s.offset ?? 0), u64(s.length), prot(s.prot ?? ['read', 'write']), mapFlags(s.flags ?? ['shared']));
    if (s.as) ctx.name(s.as, { kind: 'map', map: m });
    else m.unmap();
    return 0;
  },
  diff: 'generated',
});

export const memfdCreate = defineOp('memfd_create', {
  fields: { name: z.string().optional(), as: Name, flags: MfdFlags.optional() },
  mirrors: 'memfd_create(2)',
  doc: '`name`, `as` (a plain memfd: the "not a guest_memfd" file); `flags` (`["inaccessible", ...]`) only in the v7 design',
  makes: 'fd',
  run(ctx, s) {
    ctx.free(s.as);
    const fd =
      s.flags === undefined
        ? ctx.kvm.files.memfdCreate(s.name ?? s.as)
        : designKvm(ctx, 'memfdCreateFlags', 'memfd_create').memfdCreateFlags(s.name ?? s.as, mfdFlags(s.flags));
    ctx.name(s.as, { kind: 'fd', fd });
    return { fd };
  },
  ...fdResult,
  diff: 'generated',
});

export const read = defineOp('read', {
  fields: { fd: Ref, length: Int },
  mirrors: 'read(2)',
  doc: '`fd`, `length`',
  run: (ctx, s) => ctx.kvm.files.read(ctx.fd(s.fd), Number(int(s.length))),
  ...bytes,
  diff: 'generated',
});

export const write = defineOp('write', {
  fields: { fd: Ref, ...Data },
  mirrors: 'write(2)',
  doc: '`fd`, `hex` or `fill`+`length`',
  run: (ctx, s) => ctx.kvm.files.write(ctx.fd(s.fd), stepData(s, 'write')),
  diff: 'generated',
});

export const pread = defineOp('pread', {
  fields: { fd: Ref, length: Int, offset: Int },
  mirrors: 'pread(2)',
  doc: '`fd`, `length`, `offset`',
  run: (ctx, s) => ctx.kvm.files.pread(ctx.fd(s.fd), Number(int(s.length)), s64(s.offset)),
  ...bytes,
  diff: 'generated',
});

export const pwrite = defineOp('pwrite', {
  fields: { fd: Ref, offset: Int, ...Data },
  mirrors: 'pwrite(2)',
  doc: '`fd`, `offset`, `hex` or `fill`+`length`',
  run: (ctx, s) => ctx.kvm.files.pwrite(ctx.fd(s.fd), stepData(s, 'pwrite'), s64(s.offset)),
  diff: 'generated',
});

const WHENCE = { set: SEEK_SET, cur: SEEK_CUR, end: SEEK_END } as const;
export const lseek = defineOp('lseek', {
  fields: { fd: Ref, offset: Int, whence: z.union([z.enum(['set', 'cur', 'end']), Int]).optional() },
  mirrors: 'lseek(2)',
  doc: '`fd`, `offset`, `whence` (`"set"`, `"cur"`, `"end"` or a number)',
  run(ctx, s) {
    const w = s.whence;
    const whence = w === undefined ? SEEK_SET : typeof w === 'string' && w in WHENCE ? WHENCE[w as keyof typeof WHENCE] : Number(int(w));
    return ctx.kvm.files.lseek(ctx.fd(s.fd), s64(s.offset), whence);
  },
  diff: 'generated',
});

export const ftruncate = defineOp('ftruncate', {
  fields: { fd: Ref, size: Int },
  mirrors: 'ftruncate(2)',
  doc: '`fd`, `size`',
  run(ctx, s) {
    ctx.kvm.files.ftruncate(ctx.fd(s.fd), s64(s.size));
    return 0;
  },
  diff: 'generated',
});

export const fstat = defineOp('fstat', {
  fields: { fd: Ref },
  mirrors: 'fstat(2)',
  doc: '`fd`; expect `{"fstat":{"size":..,"blksize":..,"blocks":..,"mode":..}}`',
  run: (ctx, s) => ctx.kvm.files.fstat(ctx.fd(s.fd)),
  describe: (st) => `fstat size ${st.size} blocks ${st.blocks}`,
  checks: {
    fstat(want, o) {
      if (o.kind !== 'ok') return undefined;
      for (const k of ['size', 'blksize', 'blocks', 'mode'] as const) {
        const w = want[k];
        if (w !== undefined && BigInt(o.value[k]) !== int(w)) return `fstat.${k}: expected ${String(w)}, got ${o.value[k]}`;
      }
      return undefined;
    },
  },
  diff: 'generated',
});

export const dup = defineOp('dup', {
  fields: { fd: Ref, as: Name.optional() },
  mirrors: 'dup(2)',
  doc: '`fd`, `as`',
  makes: 'fd',
  run(ctx, s) {
    ctx.free(s.as);
    const fd = ctx.kvm.files.dup(ctx.fd(s.fd));
    if (s.as) ctx.name(s.as, { kind: 'fd', fd });
    return { fd };
  },
  ...fdResult,
  diff: 'generated',
});

export const close = defineOp('close', {
  fields: { fd: Ref },
  mirrors: 'close(2)',
  doc: '`fd` (a name closes through its owner the first time; again, it is the raw syscall)',
  run(ctx, s) {
    // Close through the owning object the first time, so the backend's ownership stays true;
    // later closes of the same name are the raw syscall (EBADF, as a second close(2) is).
    const o = typeof s.fd === 'string' && !ctx.closed.has(s.fd) ? ctx.objs.get(s.fd) : undefined;
    if (o?.kind === 'vm') o.vm.close();
    else if (o?.kind === 'fd' && o.close) o.close();
    else ctx.kvm.files.close(ctx.fd(s.fd));
    if (typeof s.fd === 'string') ctx.closed.add(s.fd);
    return 0;
  },
  diff: 'generated',
});
