/**
 * The differential tester's commands: each is one scenario step (its toString() is that step, so a
 * shrunk counterexample pastes back as a scenario file), run on both backends and compared.
 * Arguments are drawn to hit the kernel's boundaries: unaligned values, 0, 2^63, 2^64-1, sizes just
 * past the file end, fds of the wrong kind, closed fds, overlapping ranges.
 */
import fc from 'fast-check';
import type { Step } from '../scenario/index.js';
import type { DiffModel } from './diff-model.js';
import type { Pair } from './pair.js';

export { type DiffModel, emptyDiffModel } from './diff-model.js';

/** One command = one scenario step, or a few (a setup macro). */
export class StepCommand implements fc.Command<DiffModel, Pair> {
  private steps: Step[] | undefined;
  constructor(readonly make: (m: Readonly<DiffModel>) => Step | Step[]) {}

  check(): boolean {
    return true;
  }

  run(m: DiffModel, p: Pair): void {
    // The steps are fixed the first time they run, so replays and the printed counterexample agree.
    if (!this.steps) {
      const made = this.make(m);
      this.steps = Array.isArray(made) ? made : [made];
    }
    for (const s of this.steps) p.apply(s, m);
  }

  /** The steps as scenario JSON, comma-separated (a counterexample is `[` + these + `]`). */
  toString(): string {
    return this.steps ? this.steps.map((s) => JSON.stringify(s)).join(',') : '';
  }
}

const PS = 4096;
const pages = (n: number) => n * PS;

/** Numbers at the kernel's edges, as scenario values (strings above 2^53). */
const u64Edge = fc.constantFrom<string | number>(0, 1, PS - 1, PS + 1, '0x8000000000000000', '0xffffffffffffffff', '0xfffffffffffff000', '0x7ffffffffffff000');
const pageCount = (max: number) => fc.integer({ min: 0, max }).map(pages);
// Most values land in a small window (a few pages) so that commands meet each other's objects:
// a punch hits the page a guest mapped, a binding overlaps another. The rest are edge values.
const offset = fc.oneof({ weight: 6, arbitrary: pageCount(4) }, { weight: 1, arbitrary: pageCount(20) }, { weight: 1, arbitrary: u64Edge });
/**
 * Lengths for fallocate: the edges, except a huge one that could succeed. The kernel does work in
 * proportion to a successful range (kvm_gmem_allocate allocates every page), so an allocation of
 * 2^63 bytes on a file created that large would run for hours and end in ENOMEM or the OOM killer;
 * the model answers it in O(1). The edges that fail fast stay.
 */
const lengthEdge = fc.constantFrom<string | number>(0, 1, PS - 1, PS + 1, '0x8000000000000000', '0xffffffffffffffff', '0xfffffffffffff000');
const size = fc.oneof(
  { weight: 6, arbitrary: fc.integer({ min: 1, max: 4 }).map(pages) },
  { weight: 1, arbitrary: fc.integer({ min: 1, max: 16 }).map(pages) },
  { weight: 1, arbitrary: lengthEdge },
);
/**
 * KVM_SET_MEMORY_ATTRIBUTES ranges: kvm_vm_set_mem_attributes reserves and stores one xarray entry
 * per page, so a valid range of 2^51 pages never ends in a real kernel (it hung the lab for minutes
 * before the command timeout). Small ranges near the guest's pages, edges that fail fast (unaligned,
 * zero, wrapping), a far but small range, and one large range that is still bounded (1 GiB).
 */
const attributeRange = fc.oneof(
  { weight: 8, arbitrary: fc.record({ gpa: pageCount(8), size: fc.integer({ min: 1, max: 8 }).map(pages) }) },
  { weight: 2, arbitrary: fc.record({ gpa: offset, size: fc.constantFrom<string | number>(0, 1, PS - 1, PS + 1, PS) }) },
  { weight: 1, arbitrary: fc.record({ gpa: fc.constantFrom<string | number>('0xfffffffffffff000', '0xffffffffffffe000'), size: fc.constant(pages(4)) }) },
  { weight: 1, arbitrary: fc.constant({ gpa: 0 as string | number, size: (1 << 30) as string | number }) },
);
const gmemSize = fc.oneof(
  { weight: 5, arbitrary: fc.constant(pages(4)) },
  { weight: 2, arbitrary: fc.constant(pages(16)) },
  { weight: 1, arbitrary: fc.constant(PS) },
  { weight: 1, arbitrary: u64Edge },
);

function pick<T>(xs: readonly T[], i: number): T | undefined {
  return xs.length ? xs[i % xs.length] : undefined;
}

/** An fd reference: mostly a live object, sometimes the wrong kind, a closed or a made-up number. */
const fdRef = fc.tuple(fc.nat(), fc.nat(9)).map(([i, k]) => (m: Readonly<DiffModel>): string | number => {
  // the newest guest_memfds most of the time: they are the ones bound and mapped
  if (k < 4) return m.gmems[m.gmems.length - 1 - (i % 2)] ?? m.gmems[0] ?? 9999;
  if (k < 6) return pick(m.gmems, i) ?? 9999;
  if (k === 6) return pick(m.fds, i) ?? 'vm';
  if (k === 7) return 'vm';
  if (k === 8) return 'kvm';
  return 9999;
});
const mapRef = fc.tuple(fc.nat(), fc.boolean()).map(
  ([i, newest]) =>
    (m: Readonly<DiffModel>) =>
      newest ? m.maps[m.maps.length - 1] : pick(m.maps, i),
);

type GuestOpIn = NonNullable<Extract<Step, { op: 'run' }>['program']>[number];
/** A small guest program over the first few pages of GPA space: often a write and a read-back. */
const guestProgram: fc.Arbitrary<GuestOpIn[]> = fc.oneof(
  // a sweep that reads every page: whatever KVM still maps, stale or not, shows up here
  fc.constant(Array.from({ length: 8 }, (_, i) => ({ read: pages(i) + 8, width: 8 as const }))),
  fc.record({ page: fc.nat(7), value: fc.integer({ min: 1, max: 255 }) }).map(({ page, value }) => [
    { write: pages(page) + 8, width: 1 as const, value },
    { read: pages(page) + 8, width: 1 as const },
  ]),
  fc.array(
    fc.oneof(
      fc.record({ read: pageCount(7).map((g) => g + 8), width: fc.constantFrom(1 as const, 4 as const, 8 as const) }),
      fc.record({ write: pageCount(7).map((g) => g + 8), width: fc.constantFrom(1 as const, 8 as const), value: fc.integer({ min: 0, max: 255 }) }),
    ),
    { minLength: 1, maxLength: 3 },
  ),
);

/**
 * Command weights by name: how often each command is drawn (fc.commands draws uniformly, so a
 * command of weight w is offered w times). The setup macros build the states where bugs live
 * (bound, mapped, faulted memory); single steps poke at them. These are the commands both memory
 * setups share, in drawing order.
 */
const SHARED_WEIGHTS: Readonly<Record<string, number>> = {
  create_guest_memfd: 1,
  fallocate: 2,
  mmap: 2,
  mmap_anonymous: 2,
  host_write: 2,
  host_read: 1,
  munmap: 1,
  set_user_memory_region2: 3,
  set_user_memory_region: 1,
  file_op: 1,
  dup: 1,
  close: 1,
  check_extension: 1,
  get_api_version: 1,
  run: 4,
};
const HOST_WEIGHTS: Readonly<Record<string, number>> = { host_memory_setup: 1, pre_fault_memory: 1, madvise: 1, mbind: 1 };
export const GUEST_MEMFD_WEIGHTS: Readonly<Record<string, number>> = {
  ...SHARED_WEIGHTS,
  create_guest_memfd: 2,
  fallocate: 4,
  setup: 3,
  punch: 3,
  ...HOST_WEIGHTS,
};
/** Without guest_memfd: memory is a memfd mapped at userspace_addr (memfd_setup), punched as such. */
export const MEMFD_WEIGHTS: Readonly<Record<string, number>> = { ...SHARED_WEIGHTS, memfd_setup: 3, memfd_punch: 3, ...HOST_WEIGHTS };
/** Added where the kernels compared have memory attributes (software-protected VMs). */
export const ATTRIBUTE_WEIGHTS: Readonly<Record<string, number>> = { set_memory_attributes: 1, convert: 2, private_touch: 2 };

/**
 * GPAs around the largest guest frame the lab's kernels accept: kvm_mmu_max_gfn() is
 * 2^(MAXPHYADDR - 12) - 1 (40 bits under QEMU TCG -cpu max, 39-52 on hardware), so a 4-page slot
 * just below 2^40 fits there and one at 2^40 or at the 52-bit edge does not.
 */
const nearMaxFrame = fc.constantFrom<string | number>('0xffffffc000', '0x10000000000', '0xfffffffffc000', '0x10000000000000');

export interface GeneratorOptions {
  /** include KVM_SET_MEMORY_ATTRIBUTES, conversions and private accesses */
  attributes: boolean;
  /**
   * The reference kernel has guest_memfd (KVM_CAP_GUEST_MEMFD). Without it, memory is built the
   * way VMs ran before guest_memfd (a memfd mapped at userspace_addr), and KVM_CREATE_GUEST_MEMFD
   * is still drawn now and then so that its ENOTTY is compared too.
   */
  guestMemfd?: boolean;
  /**
   * The reference kernel has the NUMA syscalls (CONFIG_NUMA; default true). Without it mbind is
   * sys_ni_syscall's ENOSYS, a configuration the model's profiles do not describe: the lab's
   * tinyconfig kernels lack it (seen in the lab: ENOSYS), so no mbind is drawn against them.
   */
  numa?: boolean;
}

export function commandArbitraries(opts: GeneratorOptions): fc.Arbitrary<fc.Command<DiffModel, Pair>>[] {
  const gmem = opts.guestMemfd ?? true;
  const cmd = (arb: fc.Arbitrary<(m: Readonly<DiffModel>) => Step | Step[]>) => arb.map((make) => new StepCommand(make));
  type Arb = fc.Arbitrary<fc.Command<DiffModel, Pair>>;
  const named: Record<string, Arb> = {};
  named.create_guest_memfd = cmd(
    fc
      .record({ size: gmemSize, flags: fc.constantFrom<string | number>(0, 0, 1, 2, 3, 3, 3, 4, '0x8000000000000000') })
      .map((a) => (m) => ({ op: 'create_guest_memfd', size: a.size, flags: a.flags, as: `g${m.counter}` })),
  );
  named.fallocate = cmd(
    fc
      .record({ fd: fdRef, mode: fc.constantFrom(0, 1, 1, 3, 3, 3, 3, 2, 7, 0x11, 0x43), offset, length: size })
      .map((a) => (m) => ({ op: 'fallocate', fd: a.fd(m), mode: a.mode, offset: a.offset, length: a.length })),
  );
  named.mmap = cmd(
    fc
      .record({
        fd: fdRef,
        offset: pageCount(4),
        length: fc.integer({ min: 1, max: 20 }).map(pages),
        prot: fc.constantFrom(3, 1, 7),
        flags: fc.constantFrom(1, 1, 1, 2, 3),
      })
      .map((a) => (m) => ({ op: 'mmap', fd: a.fd(m), offset: a.offset, length: a.length, prot: a.prot, flags: a.flags, as: `m${m.counter}` })),
  );
  named.mmap_anonymous = cmd(fc.integer({ min: 1, max: 16 }).map((n) => (m) => ({ op: 'mmap_anonymous', length: pages(n), as: `m${m.counter}` })));
  named.host_write = cmd(
    fc.record({ map: mapRef, offset: fc.integer({ min: 0, max: 20 * PS - 8 }), byte: fc.nat(255), len: fc.constantFrom(1, 8, PS) }).map((a) => (m) => {
      const map = a.map(m);
      return map ? { op: 'host_write', map, offset: a.offset, fill: a.byte, length: a.len } : { op: 'fstat', fd: 'vm' };
    }),
  );
  named.host_read = cmd(
    fc.record({ map: mapRef, offset: fc.integer({ min: 0, max: 20 * PS - 8 }), len: fc.constantFrom(1, 8) }).map((a) => (m) => {
      const map = a.map(m);
      return map ? { op: 'host_read', map, offset: a.offset, length: a.len } : { op: 'fstat', fd: 'kvm' };
    }),
  );
  named.munmap = cmd(mapRef.map((r) => (m) => (r(m) ? { op: 'munmap', map: r(m) as string } : { op: 'fstat', fd: 'vm' })));
  named.set_user_memory_region2 = cmd(
    fc
      .record({
        slot: fc.constantFrom(0, 0, 1, 2, 0x10000, 32766),
        gmem: fc.boolean(),
        flags: fc.constantFrom(0, 0, 0, 1, 2, 8),
        gpa: fc.oneof(
          { weight: 8, arbitrary: fc.constantFrom<string | number>(0, 0, 0, pages(4), pages(4), pages(8), pages(2), 1, '0xfffffffffffff000') },
          { weight: 1, arbitrary: nearMaxFrame },
        ),
        size: fc.constantFrom<string | number>(pages(4), pages(4), pages(4), pages(2), pages(8), 0, 1),
        uaddr: fc.oneof({ weight: 3, arbitrary: mapRef }, { weight: 1, arbitrary: fc.constant(() => undefined) }),
        fd: fdRef,
        off: fc.oneof({ weight: 3, arbitrary: fc.constant(0) }, { weight: 3, arbitrary: pageCount(4) }, { weight: 1, arbitrary: u64Edge }),
      })
      .map((a) => (m) => ({
        op: 'set_user_memory_region2',
        slot: a.slot,
        flags: a.flags | (a.gmem ? 4 : 0),
        guest_phys_addr: a.gpa,
        memory_size: a.size,
        ...(a.uaddr(m) !== undefined && { userspace_addr: a.uaddr(m) as string }),
        guest_memfd: a.gmem ? a.fd(m) : 0,
        guest_memfd_offset: a.off,
      })),
  );
  named.set_user_memory_region = cmd(
    fc
      .record({
        slot: fc.constantFrom(0, 1, 3),
        flags: fc.constantFrom(0, 1, 4),
        gpa: fc.constantFrom(0, pages(16)),
        size: fc.constantFrom(0, pages(4)),
        uaddr: mapRef,
      })
      .map((a) => (m) => ({
        op: 'set_user_memory_region',
        slot: a.slot,
        flags: a.flags,
        guest_phys_addr: a.gpa,
        memory_size: a.size,
        ...(a.uaddr(m) && { userspace_addr: a.uaddr(m) as string }),
      })),
  );
  named.file_op = cmd(
    fc.record({ fd: fdRef, which: fc.constantFrom('read', 'write', 'pread', 'pwrite', 'lseek', 'ftruncate', 'fstat') }).map((a) => (m) => {
      const fd = a.fd(m);
      switch (a.which) {
        case 'read':
          return { op: 'read', fd, length: 64 };
        case 'write':
          return { op: 'write', fd, fill: 1, length: 64 };
        case 'pread':
          return { op: 'pread', fd, length: 64, offset: 0 };
        case 'pwrite':
          return { op: 'pwrite', fd, fill: 1, length: 64, offset: 0 };
        case 'lseek':
          return { op: 'lseek', fd, offset: 0, whence: 'set' };
        case 'ftruncate':
          return { op: 'ftruncate', fd, size: PS };
        default:
          return { op: 'fstat', fd };
      }
    }),
  );
  named.dup = cmd(fdRef.map((r) => (m) => ({ op: 'dup', fd: r(m), as: `d${m.counter}` })));
  named.close = cmd(
    fdRef.map((r) => (m) => {
      const fd = r(m);
      // Closing the VM or /dev/kvm ends the useful part of a sequence; keep it rare.
      return fd === 'vm' || fd === 'kvm' ? { op: 'fstat', fd } : { op: 'close', fd };
    }),
  );
  named.check_extension = cmd(
    fc
      .constantFrom('KVM_CAP_GUEST_MEMFD', 'KVM_CAP_GUEST_MEMFD_FLAGS', 'KVM_CAP_USER_MEMORY2', 'KVM_CAP_VM_TYPES')
      .map((cap) => () => ({ op: 'check_extension', cap, scope: 'vm' })),
  );
  named.get_api_version = cmd(fc.constant(() => ({ op: 'get_api_version' })));
  named.run = cmd(guestProgram.map((ops) => () => ({ op: 'run', vcpu: 0, program: [...ops, 'hlt'] })));
  // KVM_PRE_FAULT_MEMORY over the guest's first pages, or at the edges (unaligned, 0, wrapping)
  named.pre_fault_memory = cmd(
    fc
      .record({
        gpa: fc.oneof({ weight: 4, arbitrary: pageCount(8) }, { weight: 1, arbitrary: u64Edge }, { weight: 1, arbitrary: nearMaxFrame }),
        size: fc.constantFrom<string | number>(PS, pages(2), pages(4), 0, 1),
        flags: fc.constantFrom(0, 0, 0, 1),
      })
      .map((a) => () => ({ op: 'pre_fault_memory', vcpu: 0, gpa: a.gpa, size: a.size, flags: a.flags })),
  );
  // madvise on a live mapping: zapping (DONTNEED, REMOVE) must reach KVM through the MMU notifiers;
  // COLLAPSE on a guest_memfd mapping is EINVAL (mm: deny THP for files on anonymous inodes)
  named.madvise = cmd(
    fc
      .record({
        map: mapRef,
        first: fc.nat(3),
        n: fc.integer({ min: 1, max: 4 }),
        advice: fc.constantFrom('dontneed', 'dontneed', 'remove', 'hugepage', 'collapse', 'normal'),
      })
      .map((a) => (m) => {
        const map = a.map(m);
        return map ? { op: 'madvise', map, offset: pages(a.first), length: pages(a.n), advice: a.advice } : { op: 'fstat', fd: 'vm' };
      }),
  );
  // mbind with node 0 only: the lab's guests have one NUMA node, the model host two
  named.mbind = cmd(
    fc
      .record({
        map: mapRef,
        first: fc.nat(3),
        n: fc.integer({ min: 1, max: 4 }),
        mode: fc.constantFrom('default', 'bind', 'preferred', 'interleave', 'local'),
      })
      .map((a) => (m) => {
        const map = a.map(m);
        if (!map) return { op: 'fstat', fd: 'vm' };
        const nodes = a.mode === 'default' || a.mode === 'local' ? [] : [0];
        return { op: 'mbind', map, offset: pages(a.first), length: pages(a.n), mode: a.mode, nodes };
      }),
  );
  // Host memory a VMM maps read-only or MAP_PRIVATE (a file it must not change): a memfd with a
  // marker byte, mapped PROT_READ or MAP_PRIVATE, behind a plain slot. Guest writes must fail with
  // EFAULT or land in a private copy (hva_to_pfn, FOLL_WRITE).
  named.host_memory_setup = cmd(
    fc
      .record({
        slot: fc.nat(3),
        gpa: fc.constantFrom(0, 0, pages(4), pages(8)),
        npages: fc.constantFrom(4, 2),
        how: fc.constantFrom('read_only', 'private', 'private'),
      })
      .map((a) => (m): Step[] => {
        const f = `f${m.counter}`;
        const map = `m${m.counter}`;
        const size = pages(a.npages);
        return [
          { op: 'memfd_create', name: 'host', as: f },
          { op: 'ftruncate', fd: f, size },
          { op: 'pwrite', fd: f, offset: 8, hex: '5a' },
          { op: 'mmap', fd: f, offset: 0, length: size, prot: a.how === 'read_only' ? 1 : 3, flags: a.how === 'private' ? 2 : 1, as: map },
          { op: 'set_user_memory_region2', slot: a.slot, flags: 0, guest_phys_addr: a.gpa, memory_size: size, userspace_addr: map },
        ];
      }),
  );
  // A VM's memory the way VMMs set it up: a guest_memfd, host memory at userspace_addr (an mmap of
  // the same guest_memfd, QEMU's way, or anonymous memory), and a slot binding both.
  named.setup = cmd(
    fc
      .record({
        flags: fc.constantFrom(3, 3, 1, 0),
        qemuWay: fc.constantFrom(true, false, false),
        slot: fc.nat(3),
        gpa: fc.constantFrom(0, 0, pages(4), pages(8)),
        npages: fc.constantFrom(4, 4, 2),
        off: fc.constantFrom(0, 0, pages(2)),
      })
      .map((a) => (m): Step[] => {
        const g = `g${m.counter}`;
        const map = `m${m.counter}`;
        const size = pages(a.npages);
        return [
          { op: 'create_guest_memfd', size: pages(4) + a.off, flags: a.flags, as: g },
          a.qemuWay && a.flags & 1
            ? { op: 'mmap', fd: g, offset: 0, length: size + a.off, prot: 3, flags: 1, as: map }
            : { op: 'mmap_anonymous', length: size, as: map },
          {
            op: 'set_user_memory_region2',
            slot: a.slot,
            flags: 4,
            guest_phys_addr: a.gpa,
            memory_size: size,
            userspace_addr: map,
            guest_memfd: g,
            guest_memfd_offset: a.off,
          },
        ];
      }),
  );
  // a punch aimed at the first pages of the newest file behind guest memory: where the guest has just been
  const punchNewest = (file: (m: Readonly<DiffModel>) => string | undefined) =>
    cmd(
      fc.record({ first: fc.nat(3), n: fc.integer({ min: 1, max: 4 }) }).map((a) => (m) => ({
        op: 'fallocate',
        fd: file(m) ?? 9999,
        mode: ['keep_size', 'punch_hole'],
        offset: pages(a.first),
        length: pages(a.n),
      })),
    );
  named.punch = punchNewest((m) => m.gmems[m.gmems.length - 1]);
  // Memory the way VMs ran before guest_memfd: a memfd sized with ftruncate, mapped at
  // userspace_addr (QEMU's memory-backend-memfd), and a plain slot; punches go to the memfd.
  named.memfd_setup = cmd(
    fc.record({ slot: fc.nat(3), gpa: fc.constantFrom(0, 0, pages(4), pages(8)), npages: fc.constantFrom(4, 4, 2) }).map((a) => (m): Step[] => {
      const f = `f${m.counter}`;
      const map = `m${m.counter}`;
      const size = pages(a.npages);
      return [
        { op: 'memfd_create', name: 'diff', as: f },
        { op: 'ftruncate', fd: f, size },
        { op: 'mmap', fd: f, offset: 0, length: size, prot: 3, flags: 1, as: map },
        { op: 'set_user_memory_region2', slot: a.slot, flags: 0, guest_phys_addr: a.gpa, memory_size: size, userspace_addr: map },
      ];
    }),
  );
  named.memfd_punch = punchNewest((m) => m.fds[m.fds.length - 1]);
  if (opts.attributes) {
    named.set_memory_attributes = cmd(
      fc.record({ range: attributeRange, priv: fc.boolean(), flags: fc.constantFrom(0, 0, 0, 1) }).map((a) => () => ({
        op: 'set_memory_attributes',
        address: a.range.gpa,
        size: a.range.size,
        attributes: a.priv ? ['private'] : [],
        flags: a.flags,
      })),
    );
    // A guest-initiated conversion the way a VMM answers it: KVM_HC_MAP_GPA_RANGE exits, the VMM
    // sets the attributes, discards the other side, and resumes the guest with hypercall.ret = 0.
    // Only where the hypercall can exit (software-protected VMs, i.e. the lab kernels).
    named.convert = cmd(
      fc.record({ page: fc.nat(3), n: fc.integer({ min: 1, max: 2 }), toPrivate: fc.boolean(), enable: fc.boolean() }).map((a) => (m): Step[] => {
        const gpa = pages(a.page);
        const size = pages(a.n);
        const g = m.gmems[m.gmems.length - 1];
        return [
          ...(a.enable ? [{ op: 'enable_cap' as const, cap: 'KVM_CAP_EXIT_HYPERCALL', args: [4096] }] : []),
          { op: 'run', vcpu: 0, program: [{ map_gpa_range: gpa, npages: a.n, attrs: a.toPrivate ? ['encrypted'] : [] }, { read: gpa + 8, width: 8 }, 'hlt'] },
          { op: 'set_memory_attributes', address: gpa, size, attributes: a.toPrivate ? ['private'] : [] },
          ...(g && !a.toPrivate ? [{ op: 'fallocate' as const, fd: g, mode: ['keep_size', 'punch_hole'], offset: gpa, length: size }] : []),
          { op: 'run', vcpu: 0, hypercall_ret: 0 },
        ];
      }),
    );
    // Private guest accesses: pages made private, then touched by the guest (served from the
    // slot's guest_memfd, or KVM_EXIT_MEMORY_FAULT where there is none), sometimes punched after,
    // which must zap what the guest had mapped.
    named.private_touch = cmd(
      fc
        .record({ page: fc.nat(3), n: fc.integer({ min: 1, max: 2 }), write: fc.boolean(), value: fc.integer({ min: 1, max: 255 }), punch: fc.boolean() })
        .map((a) => (m): Step[] => {
          const gpa = pages(a.page);
          const g = m.gmems[m.gmems.length - 1];
          const read = { read: gpa + 16, width: 1 as const };
          return [
            { op: 'set_memory_attributes', address: gpa, size: pages(a.n), attributes: ['private'] },
            { op: 'run', vcpu: 0, program: [...(a.write ? [{ write: gpa + 16, width: 1 as const, value: a.value }] : []), read, 'hlt'] },
            ...(a.punch && g
              ? [
                  { op: 'fallocate' as const, fd: g, mode: ['keep_size', 'punch_hole'], offset: gpa, length: pages(a.n) },
                  { op: 'run' as const, vcpu: 0, program: [read, 'hlt' as const] },
                ]
              : []),
          ];
        }),
    );
  }
  const weights: Record<string, number> = { ...(gmem ? GUEST_MEMFD_WEIGHTS : MEMFD_WEIGHTS), ...(opts.attributes ? ATTRIBUTE_WEIGHTS : {}) };
  if (opts.numa === false) weights.mbind = 0;
  // fc.commands picks uniformly among arbitraries: a command of weight w appears w times
  return Object.entries(weights).flatMap(([name, w]) => {
    const arb = named[name];
    if (!arb) throw new Error(`diff generator: no command named ${name}`);
    return Array.from({ length: w }, () => arb);
  });
}
