/** Ops on a VM's memory: guest_memfd creation, memslots, memory attributes, anonymous host memory. */
import { z } from 'zod';
import { AttrFlags, GmemFlags, Int, MemFlags, Name, Ref, Uaddr } from '../fields.js';
import { defineOp } from '../op.js';
import { attrFlags, gmemFlags, memFlags, u32, u64 } from '../values.js';

export const createGuestMemfd = defineOp('create_guest_memfd', {
  fields: { size: Int, flags: GmemFlags.optional(), reserved: z.array(Int).max(6).optional(), as: Name.optional() },
  mirrors: '`KVM_CREATE_GUEST_MEMFD`',
  doc: '`size`, `flags` (`["mmap","init_shared"]` or a number), `reserved`, `as`',
  makes: 'fd',
  requires: ['guest_memfd'],
  run(ctx, s) {
    ctx.free(s.as);
    const g = ctx.vm(s.vm).createGuestMemfd({ size: u64(s.size), flags: gmemFlags(s.flags), reserved: (s.reserved ?? []).map(u64) });
    if (s.as) ctx.name(s.as, { kind: 'fd', fd: g.fd, close: () => g.close() });
    return { fd: g.fd };
  },
  describe: (v) => `ok fd ${v.fd}`,
  result: (v) => v.fd,
  diff: 'generated',
});

const regionFields = { slot: Int, flags: MemFlags.optional(), guest_phys_addr: Int, memory_size: Int, userspace_addr: Uaddr.optional() };

export const setUserMemoryRegion2 = defineOp('set_user_memory_region2', {
  fields: { ...regionFields, guest_memfd: Ref.optional(), guest_memfd_offset: Int.optional() },
  mirrors: '`KVM_SET_USER_MEMORY_REGION2`',
  doc: '`slot`, `flags` (`["guest_memfd","log_dirty_pages","readonly"]`), `guest_phys_addr`, `memory_size`, `userspace_addr` (a map name, `{"map":m,"offset":o}`, or a number), `guest_memfd`, `guest_memfd_offset`',
  run(ctx, s) {
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
  },
  diff: 'generated',
});

export const setUserMemoryRegion = defineOp('set_user_memory_region', {
  fields: regionFields,
  mirrors: '`KVM_SET_USER_MEMORY_REGION` (v1)',
  doc: 'the first five fields of `set_user_memory_region2`',
  run(ctx, s) {
    ctx.vm(s.vm).setUserMemoryRegion({
      slot: u32(s.slot),
      flags: memFlags(s.flags),
      guestPhysAddr: u64(s.guest_phys_addr),
      memorySize: u64(s.memory_size),
      userspaceAddr: ctx.uaddr(s.userspace_addr),
    });
    return 0;
  },
  diff: 'generated',
});

export const setMemoryAttributes = defineOp('set_memory_attributes', {
  fields: { address: Int, size: Int, attributes: AttrFlags, flags: Int.optional() },
  mirrors: '`KVM_SET_MEMORY_ATTRIBUTES`',
  doc: '`address`, `size`, `attributes` (`["private"]`, `[]` or a number), `flags`',
  requires: ['memory_attributes'],
  run(ctx, s) {
    ctx.vm(s.vm).setMemoryAttributes({ address: u64(s.address), size: u64(s.size), attributes: attrFlags(s.attributes), flags: u64(s.flags ?? 0) });
    return 0;
  },
  diff: 'generated',
});

export const mmapAnonymous = defineOp('mmap_anonymous', {
  fields: { length: Int, as: Name },
  mirrors: '`mmap(MAP_ANONYMOUS \\| MAP_SHARED)`',
  doc: '`length`, `as` (host memory for shared slots)',
  makes: 'map',
  run(ctx, s) {
    ctx.free(s.as);
    ctx.name(s.as, { kind: 'map', map: ctx.vm(s.vm).mmapAnonymous(u64(s.length)) });
    return 0;
  },
  diff: 'generated',
});
