/**
 * Ops that only the model designs of src/designs/ have (their interface is src/design-api.ts): the
 * 2022 v7 uAPI and the host events the review argued about. A backend without the call answers the
 * step with a ScenarioError naming it; the runner never invents what a kernel would say.
 */
import { z } from 'zod';
import type { Kvm, Vm } from '../../api.js';
import { DESIGN_FLAGS, type DesignKvmOps, type DesignVmOps } from '../../design-api.js';
import type { Context } from '../context.js';
import { HexBytes, Int, type IntInput, Ref, SealFlags, Uaddr, V7MemFlags } from '../fields.js';
import { defineOp } from '../op.js';
import { hexToBytes, ScenarioError, s64, u32, u64 } from '../values.js';

const NO_KERNEL = 'only the model designs have it: there is no kernel to compare with';

function designFlags(table: Readonly<Record<string, number>>, v: IntInput | readonly string[] | undefined): number {
  if (v === undefined) return 0;
  if (Array.isArray(v)) return v.reduce((m: number, n: string) => m | (table[n] ?? 0), 0);
  return u32(v as IntInput);
}
export const mfdFlags = (v: IntInput | readonly string[] | undefined) => designFlags(DESIGN_FLAGS.mfd, v);

export function designKvm<K extends keyof DesignKvmOps>(ctx: Context, method: K, op: string): Required<Pick<DesignKvmOps, K>> {
  const k = ctx.kvm as Kvm & DesignKvmOps;
  if (typeof k[method] !== 'function') throw new ScenarioError(`${op}: this backend has no ${method} (only the model designs of src/designs/ do)`);
  return k as unknown as Required<Pick<DesignKvmOps, K>>;
}

function designVm<K extends keyof DesignVmOps>(ctx: Context, name: string | undefined, method: K, op: string): Required<Pick<DesignVmOps, K>> {
  const vm = ctx.vm(name) as Vm & DesignVmOps;
  if (typeof vm[method] !== 'function') throw new ScenarioError(`${op}: this backend's VMs have no ${method} (only the model designs of src/designs/ do)`);
  return vm as unknown as Required<Pick<DesignVmOps, K>>;
}

export const fcntl = defineOp('fcntl', {
  fields: { fd: Ref, cmd: z.enum(['add_seals', 'get_seals']), seals: SealFlags.optional() },
  mirrors: 'fcntl(2) `F_ADD_SEALS` / `F_GET_SEALS` on a memfd (v7)',
  doc: '`fd`, `cmd` (`"add_seals"`, `"get_seals"`), `seals` (`["auto_allocate", ...]`)',
  requires: ['design'],
  run: (ctx, s) => designKvm(ctx, 'fcntl', s.op).fcntl(ctx.fd(s.fd), DESIGN_FLAGS.fcntl[s.cmd], designFlags(DESIGN_FLAGS.seals, s.seals)),
  diff: { none: NO_KERNEL },
});

export const setUserMemoryRegionExt = defineOp('set_user_memory_region_ext', {
  fields: {
    slot: Int,
    flags: V7MemFlags.optional(),
    guest_phys_addr: Int,
    memory_size: Int,
    userspace_addr: Uaddr.optional(),
    private_fd: Ref.optional(),
    private_offset: Int.optional(),
  },
  mirrors: "`KVM_SET_USER_MEMORY_REGION` with v7's `kvm_userspace_memory_region_ext`",
  doc: 'the v1 fields with `flags` (`["private"]`), `private_fd`, `private_offset`',
  requires: ['design'],
  run(ctx, s) {
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
  },
  diff: { none: NO_KERNEL },
});

export const memoryEncryptRegRegion = defineOp('memory_encrypt_reg_region', {
  fields: { addr: Int, size: Int },
  mirrors: '`KVM_MEMORY_ENCRYPT_REG_REGION` (GPA semantics in v7)',
  doc: '`addr`, `size`',
  requires: ['design'],
  run(ctx, s) {
    designVm(ctx, s.vm, 'memoryEncryptRegRegion', s.op).memoryEncryptRegRegion({ addr: u64(s.addr), size: u64(s.size) });
    return 0;
  },
  diff: { none: NO_KERNEL },
});

export const memoryEncryptUnregRegion = defineOp('memory_encrypt_unreg_region', {
  fields: { addr: Int, size: Int },
  mirrors: '`KVM_MEMORY_ENCRYPT_UNREG_REGION` (GPA semantics in v7)',
  doc: '`addr`, `size`',
  requires: ['design'],
  run(ctx, s) {
    designVm(ctx, s.vm, 'memoryEncryptUnregRegion', s.op).memoryEncryptUnregRegion({ addr: u64(s.addr), size: u64(s.size) });
    return 0;
  },
  diff: { none: NO_KERNEL },
});

export const tdxInitMemRegion = defineOp('tdx_init_mem_region', {
  fields: { source: z.string(), source_offset: Int.optional(), gpa: Int, npages: Int, measure: z.boolean().optional() },
  mirrors: 'the TDX launch path: copy (and measure) source pages into private memory',
  doc: '`source` (a map), `source_offset`, `gpa`, `npages`, `measure`',
  requires: ['design'],
  run(ctx, s) {
    designVm(ctx, s.vm, 'tdxInitMemRegion', s.op).tdxInitMemRegion({
      source: ctx.map(s.source),
      sourceOffset: u64(s.source_offset ?? 0),
      gpa: u64(s.gpa),
      npages: u64(s.npages),
      measure: s.measure ?? true,
    });
    return 0;
  },
  diff: { none: NO_KERNEL },
});

export const tdxMeasurementCovers = defineOp('tdx_measurement_covers', {
  fields: { gpa: Int, hex: HexBytes },
  mirrors: "a probe: does the TD's launch measurement include these bytes at `gpa`? (result 1 or 0)",
  doc: '`gpa`, `hex`',
  requires: ['design'],
  run: (ctx, s) => (designVm(ctx, s.vm, 'tdxMeasurementCovers', s.op).tdxMeasurementCovers(u64(s.gpa), hexToBytes(s.hex)) ? 1 : 0),
  diff: { none: NO_KERNEL },
});

export const mmMigrate = defineOp('mm_migrate', {
  fields: { fd: Ref, offset: Int },
  mirrors: 'a host event: the kernel tries to migrate the page at a file offset',
  doc: '`fd`, `offset`',
  requires: ['design'],
  run(ctx, s) {
    designKvm(ctx, 'mmMigrate', s.op).mmMigrate(ctx.fd(s.fd), s64(s.offset));
    return 0;
  },
  diff: { none: NO_KERNEL },
});

export const mmReclaim = defineOp('mm_reclaim', {
  fields: { fd: Ref, offset: Int },
  mirrors: 'a host event: the kernel tries to reclaim the page at a file offset (result 1: swapped)',
  doc: '`fd`, `offset`',
  requires: ['design'],
  run: (ctx, s) => designKvm(ctx, 'mmReclaim', s.op).mmReclaim(ctx.fd(s.fd), s64(s.offset)),
  describe: (r) => `reclaim: ${r}`,
  refused: (r) => (r === 'swapped' ? undefined : r),
  result: (r) => (r === 'swapped' ? 1 : 0),
  diff: { none: NO_KERNEL },
});

export const backingPages = defineOp('backing_pages', {
  fields: { gpa: Int },
  mirrors: 'a probe: pages allocated for one GPA, shared side plus private side (2: double allocation)',
  doc: '`gpa`',
  requires: ['design'],
  run: (ctx, s) => designVm(ctx, s.vm, 'backingPages', s.op).backingPages(u64(s.gpa)),
  diff: { none: NO_KERNEL },
});
