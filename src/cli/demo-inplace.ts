/**
 * `guestmem demo --design inplace`: the default demo's guest (fill all pages shared, convert half to
 * private and write there, read, convert one back) run twice on the model: the way upstream
 * guest_memfd makes a VMM do it (a guest_memfd for private memory, anonymous memory for shared,
 * discard on every conversion) and the in-place way (one guest_memfd, MMAP|INIT_SHARED, mapped
 * as the memslot's userspace_addr; conversions are KVM_SET_MEMORY_ATTRIBUTES2, nothing discarded),
 * with the memory footprint of both side by side.
 */
import type { GuestOp, HostMapping, Vm } from '../api.js';
import { InplaceKvm } from '../designs/inplace/index.js';
import type { ModelKvm } from '../model/index.js';
import { createModelKvm } from '../model/index.js';
import {
  CAP,
  GUEST_MEMFD_FLAG_INIT_SHARED,
  GUEST_MEMFD_FLAG_MMAP,
  KVM_HC_MAP_GPA_RANGE,
  KVM_MAP_GPA_RANGE_ENCRYPTED,
  KVM_MEM_GUEST_MEMFD,
  MAP_SHARED,
  PROT_READ,
  PROT_WRITE,
} from '../uapi/constants.js';
import { ConversionHandler, InPlaceConversionHandler, runLoop } from '../vmm/index.js';
import { GPA, hex, PAGES, page, SIZE } from './demo.js';

interface Footprint {
  /** distinct pages the host has allocated for guest RAM */
  allocated: number;
  /** of those, shared copies held outside the guest_memfd */
  hostCopies: number;
  /** pages discarded by conversions so far */
  discarded: number;
}

const PHASES: { title: string; program: GuestOp[] }[] = [
  {
    title: 'the guest fills every page with 0x11 (shared)',
    program: Array.from({ length: PAGES }, (_, i) => ({ op: 'write' as const, gpa: page(i), width: 1 as const, value: 0x11n })),
  },
  {
    title: 'it converts pages 0-3 to private and writes 0x22 there',
    program: [
      { op: 'map_gpa_range', gpa: page(0), npages: 4n, attrs: BigInt(KVM_MAP_GPA_RANGE_ENCRYPTED) },
      ...Array.from({ length: 4 }, (_, i) => ({ op: 'write' as const, gpa: page(i), width: 1 as const, value: 0x22n })),
    ],
  },
  {
    title: 'it reads pages 0 and 4, converts page 1 back to shared and reads it',
    program: [
      { op: 'read', gpa: page(0), width: 1 },
      { op: 'read', gpa: page(4), width: 1 },
      { op: 'map_gpa_range', gpa: page(1), npages: 1n, attrs: 0n },
      { op: 'read', gpa: page(1), width: 1 },
    ],
  },
];

/** Run the phases on one VM, returning per phase the footprint and what the guest read. */
function play(vm: Vm, handler: ConversionHandler, footprint: () => Omit<Footprint, 'discarded'>, discards: () => number) {
  const vcpu = vm.createVcpu(0);
  return PHASES.map((p) => {
    vcpu.load([...p.program, { op: 'hlt' }]);
    const last = runLoop(vcpu, [handler]);
    return { reads: last.reads, ...footprint(), discarded: discards() };
  });
}

export function runInplaceDemo(out: (line: string) => void): number {
  // upstream guest_memfd (profile next): private in a guest_memfd, shared in anonymous memory
  const a = createModelKvm({ kernel: 'next' });
  const avm = a.createVm('sw_protected');
  avm.enableCap(CAP.KVM_CAP_EXIT_HYPERCALL, [1n << BigInt(KVM_HC_MAP_GPA_RANGE)]);
  const agmem = avm.createGuestMemfd({ size: SIZE, flags: 0n });
  const shared = avm.mmapAnonymous(SIZE);
  avm.setUserMemoryRegion2({
    slot: 0,
    flags: KVM_MEM_GUEST_MEMFD,
    guestPhysAddr: GPA,
    memorySize: SIZE,
    userspaceAddr: shared.addr,
    guestMemfd: agmem.fd,
    guestMemfdOffset: 0n,
  });
  const ah = new ConversionHandler(avm, [{ gpa: GPA, size: SIZE, gmem: agmem, gmemOffset: 0n, shared }]);
  const distinct = (kvm: ModelKvm, m: HostMapping) => () => {
    const pages = new Set<Uint8Array>();
    let host = 0;
    for (let i = 0; i < PAGES; i++) {
      const s = kvm.proc.mm.peek(m.addr + BigInt(i) * 4096n);
      const f = kvm.vms[0]?.memslots.find(Number(page(i) / 4096n))?.gmem?.file?.peek(i);
      if (f) pages.add(f);
      if (s && s !== f) {
        pages.add(s);
        host++;
      }
    }
    return { allocated: pages.size, hostCopies: host };
  };
  const aDiscards = () => ah.log.reduce((n, c) => n + Number(c.size / 4096n), 0);
  const A = play(avm, ah, distinct(a, shared), aDiscards);

  // in place: one guest_memfd holds both sides
  const b = new InplaceKvm();
  const bvm = b.createVm('sw_protected');
  bvm.enableCap(CAP.KVM_CAP_EXIT_HYPERCALL, [1n << BigInt(KVM_HC_MAP_GPA_RANGE)]);
  const bgmem = bvm.createGuestMemfd({ size: SIZE, flags: GUEST_MEMFD_FLAG_MMAP | GUEST_MEMFD_FLAG_INIT_SHARED });
  const bmap = bgmem.mmap(0n, SIZE, PROT_READ | PROT_WRITE, MAP_SHARED);
  bvm.setUserMemoryRegion2({
    slot: 0,
    flags: KVM_MEM_GUEST_MEMFD,
    guestPhysAddr: GPA,
    memorySize: SIZE,
    userspaceAddr: bmap.addr,
    guestMemfd: bgmem.fd,
    guestMemfdOffset: 0n,
  });
  const bh = new InPlaceConversionHandler(bvm, [{ gpa: GPA, size: SIZE, gmem: bgmem, gmemOffset: 0n, shared: bmap }], (fd, offset, size, attributes) =>
    b.setMemoryAttributes2(fd, { offset, size, attributes, flags: 0n }),
  );
  const B = play(bvm, bh, distinct(b, bmap), () => 0);

  out(`guestmem demo --design inplace: the default demo's guest, ${PAGES} pages at GPA ${hex(GPA)}, run twice on the model`);
  out(
    `  guest_memfd (profile ${a.profile}): private pages in a guest_memfd, shared pages in anonymous memory; the VMM discards the other side on each conversion`,
  );
  out(`  inplace (profile ${b.profile}):`);
  out('    one guest_memfd (MMAP|INIT_SHARED) mapped as userspace_addr; conversions are KVM_SET_MEMORY_ATTRIBUTES2 on it, nothing discarded');
  out('');
  out(`  ${'phase'.padEnd(72)}  ${'guest_memfd'.padEnd(38)}  inplace`);
  const cell = (f: Footprint) => `${f.allocated} pages, ${f.hostCopies} host copies, ${f.discarded} discarded`;
  PHASES.forEach((p, i) => {
    const x = A[i] as Footprint & { reads: bigint[] };
    const y = B[i] as Footprint & { reads: bigint[] };
    out(`  ${`${i + 1}. ${p.title}`.padEnd(72)}  ${cell(x).padEnd(38)}  ${cell(y)}`);
    if (x.reads.length || y.reads.length) out(`  ${'   guest read'.padEnd(72)}  ${x.reads.map(hex).join(' ').padEnd(38)}  ${y.reads.map(hex).join(' ')}`);
  });
  out('');
  out('  A diligent discarding VMM ends with as many pages, but its shared pages live outside the guest_memfd (host copies it must');
  out('  track, and free on every conversion: each discard is a page of data dropped). In place nothing is copied or discarded:');
  out('  page 1 keeps its 0x22 when it comes back shared (software-protected VM), where the discarding VMM hands the guest zeros.');
  a.close();
  b.close();
  return 0;
}
