/**
 * Ops of in-place conversion (issue 16; pending in linux-next, so only the model designs have them,
 * through src/design-api.ts) and the host events it is argued about: a long-term GUP pin held across
 * a conversion, and a forked child's mapping of guest memory.
 */
import { z } from 'zod';
import { AttrFlags, Int, Name, Ref } from '../fields.js';
import { defineOp, type Outcome } from '../op.js';
import { attrFlags, int, u64 } from '../values.js';
import { designKvm } from './design.js';

const PENDING = 'pending upstream (linux-next only): no lab kernel has it, and its capability number means something else on mainline';

/** expect.error_offset: what KVM_SET_MEMORY_ATTRIBUTES2 copied back on failure (an absolute file byte offset). */
function errorOffsetCheck(want: string | number, o: Outcome): string | undefined {
  const got = o.kind === 'errno' ? o.data?.error_offset : undefined;
  if (got === undefined) return 'error_offset: the kernel copied nothing back (only -EAGAIN and -ENOMEM write it)';
  return got === int(want) ? undefined : `expected error_offset 0x${int(want).toString(16)}, got 0x${got.toString(16)}`;
}

export const setMemoryAttributes2 = defineOp('set_memory_attributes2', {
  fields: {
    fd: Ref,
    offset: Int,
    size: Int,
    attributes: AttrFlags,
    flags: Int.optional(),
    reserved: z.array(Int).max(11).optional(),
  },
  mirrors: '`KVM_SET_MEMORY_ATTRIBUTES2` on a guest_memfd fd (in-place conversion, linux-next)',
  doc: '`fd` (the guest_memfd), `offset`, `size`, `attributes` (`["private"]` or `[]`), `flags`, `reserved`; `expect.error_offset` on failure',
  requires: ['design'],
  run(ctx, s) {
    designKvm(ctx, 'setMemoryAttributes2', s.op).setMemoryAttributes2(ctx.fd(s.fd), {
      offset: u64(s.offset),
      size: u64(s.size),
      attributes: attrFlags(s.attributes),
      flags: u64(s.flags ?? 0),
      reserved: (s.reserved ?? []).map(u64),
    });
    return 0;
  },
  checks: { error_offset: errorOffsetCheck },
  diff: { none: PENDING },
});

export const pinUserPages = defineOp('pin_user_pages', {
  fields: { map: z.string(), offset: Int.optional(), length: Int, as: Name },
  mirrors: 'a long-term GUP pin (`pin_user_pages(FOLL_LONGTERM|FOLL_WRITE)`: VFIO, io_uring, gup_test `PIN_LONGTERM_TEST_START`)',
  doc: "`map`, `offset`, `length`, `as`: the device's view of the pinned pages (`host_read`/`host_write` on it are DMA, `munmap` unpins)",
  makes: 'map',
  requires: ['design'],
  run(ctx, s) {
    ctx.free(s.as);
    const pin = designKvm(ctx, 'pinUserPages', s.op).pinUserPages(ctx.map(s.map), u64(s.offset ?? 0), u64(s.length));
    ctx.name(s.as, { kind: 'map', map: pin });
    return 0;
  },
  diff: { none: 'a GUP pin needs /sys/kernel/debug/gup_test (CONFIG_GUP_TEST), which the lab kernels do not build' },
});

export const fork = defineOp('fork', {
  fields: { map: z.string(), as: Name },
  mirrors: "fork(2): a child process; `as` names the child's copy of the parent's MAP_SHARED mapping `map`",
  doc: "`map`, `as` (accesses through it are the child's, in the child's page tables)",
  makes: 'map',
  requires: ['design'],
  run(ctx, s) {
    ctx.free(s.as);
    const child = designKvm(ctx, 'fork', s.op).fork(ctx.map(s.map));
    ctx.name(s.as, { kind: 'map', map: child });
    return 0;
  },
  diff: { none: 'the kvm backend runs in one process' },
});
