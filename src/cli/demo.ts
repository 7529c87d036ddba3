/**
 * `guestmem demo`: a software-protected guest on the model converts memory private <-> shared
 * through KVM_HC_MAP_GPA_RANGE; the VMM side (vmm/ConversionHandler) sets attributes and discards
 * the other side, and the terminal shows every exit and the page map after each phase.
 */
import { type GuestOp, type HostMapping, type Kvm, KvmError, type VcpuExit, type Vm } from '../api.js';
import { createModelKvm, type KernelProfile, type ModelVm, mappedLine, pageMap, pageMapLine } from '../model/index.js';
import {
  CAP,
  FALLOC_FL_KEEP_SIZE,
  FALLOC_FL_PUNCH_HOLE,
  GUEST_MEMFD_FLAG_INIT_SHARED,
  GUEST_MEMFD_FLAG_MMAP,
  KVM_HC_MAP_GPA_RANGE,
  KVM_MAP_GPA_RANGE_ENCRYPTED,
  KVM_MEM_GUEST_MEMFD,
  MAP_SHARED,
  PROT_READ,
  PROT_WRITE,
} from '../uapi/constants.js';
import { ConversionHandler, runLoop } from '../vmm/index.js';

/** The default demo's guest: 8 pages at GPA 0x100000 (demo-inplace.ts runs the same guest). */
export const GPA = 0x100000n;
export const PAGES = 8;
export const SIZE = BigInt(PAGES) * 4096n;
export const hex = (v: bigint) => `0x${v.toString(16)}`;
export const page = (i: number) => GPA + BigInt(i) * 4096n;

export function runDemo(kernel: string | KernelProfile, out: (line: string) => void): number {
  const kvm = createModelKvm({ kernel });
  const vm = kvm.createVm('sw_protected') as ModelVm;
  out(`guestmem demo: a software-protected VM on the model (kernel profile ${kvm.profile})`);
  out(`  guest RAM: ${PAGES} pages at GPA ${hex(GPA)}, private side a guest_memfd, shared side anonymous host memory`);
  vm.enableCap(CAP.KVM_CAP_EXIT_HYPERCALL, [1n << BigInt(KVM_HC_MAP_GPA_RANGE)]);
  const gmem = vm.createGuestMemfd({ size: SIZE, flags: 0n });
  const shared = vm.mmapAnonymous(SIZE);
  vm.setUserMemoryRegion2({
    slot: 0,
    flags: KVM_MEM_GUEST_MEMFD,
    guestPhysAddr: GPA,
    memorySize: SIZE,
    userspaceAddr: shared.addr,
    guestMemfd: gmem.fd,
    guestMemfdOffset: 0n,
  });
  const vmm = new ConversionHandler(vm, [{ gpa: GPA, size: SIZE, gmem, gmemOffset: 0n, shared }]);
  const vcpu = vm.createVcpu(0);

  const show = () => {
    const pages = pageMap(vm.vm, GPA, PAGES);
    out(`    page map   ${pageMapLine(pages)}    (P private+page, p private, S shared+page, s shared)`);
    out(`    KVM maps   ${mappedLine(pages)}`);
  };
  const onExit = (e: VcpuExit, handled: boolean) => {
    if (e.reason === 'hypercall' && e.hypercall) {
      const [g = 0n, n = 0n, a = 0n] = e.hypercall.args;
      out(
        `    exit: KVM_EXIT_HYPERCALL MAP_GPA_RANGE gpa ${hex(g)} npages ${n} -> ${a & BigInt(KVM_MAP_GPA_RANGE_ENCRYPTED) ? 'private' : 'shared'}${handled ? '; VMM set attributes and discarded the other side' : ''}`,
      );
    } else if (e.reason === 'memory_fault' && e.memoryFault) {
      out(
        `    exit: KVM_EXIT_MEMORY_FAULT (${e.errno}) gpa ${hex(e.memoryFault.gpa)} ${e.memoryFault.flags ? 'private' : 'shared'}${handled ? '; VMM converted the page' : ''}`,
      );
    } else {
      out(`    exit: ${e.reason}${e.reads.length ? `, guest read ${e.reads.map(hex).join(' ')}` : ''}`);
    }
  };
  const phase = (title: string, program: GuestOp[]) => {
    out('');
    out(`  ${title}`);
    vcpu.load([...program, { op: 'hlt' }]);
    const last = runLoop(vcpu, [vmm], { onExit });
    show();
    return last;
  };
  const hostSees = (i: number) => shared.read(BigInt(i) * 4096n, 1)[0] as number;

  show();
  phase(
    '1. the guest boots and fills every page with 0x11 (all memory starts shared)',
    Array.from({ length: PAGES }, (_, i) => ({ op: 'write' as const, gpa: page(i), width: 1 as const, value: 0x11n })),
  );
  phase('2. the guest converts pages 0-3 to private (KVM_HC_MAP_GPA_RANGE, encrypted) and writes 0x22 there', [
    { op: 'map_gpa_range', gpa: page(0), npages: 4n, attrs: BigInt(KVM_MAP_GPA_RANGE_ENCRYPTED) },
    ...Array.from({ length: 4 }, (_, i) => ({ op: 'write' as const, gpa: page(i), width: 1 as const, value: 0x22n })),
  ]);
  out(`    host reads page 0 through its shared mapping: 0x${hostSees(0).toString(16)} (the shared copy was discarded; 0x22 is private)`);
  const r3 = phase('3. the guest reads pages 0 and 4, then converts page 1 back to shared and reads it', [
    { op: 'read', gpa: page(0), width: 1 },
    { op: 'read', gpa: page(4), width: 1 },
    { op: 'map_gpa_range', gpa: page(1), npages: 1n, attrs: 0n },
    { op: 'read', gpa: page(1), width: 1 },
  ]);
  out(
    `    guest read ${r3.reads.map(hex).join(', ')}: private 0x22, shared 0x11, and page 1 zero: its shared copy was discarded when it went private, and its private copy punched when it came back`,
  );
  out('');
  out('  4. the host punches guest_memfd page 2 (fallocate PUNCH_HOLE); KVM drops its mapping, the guest re-faults a zero page');
  gmem.fallocate(3, 2n * 4096n, 4096n);
  show();
  const r4 = phase('   the guest reads page 2', [{ op: 'read', gpa: page(2), width: 1 }]);
  out(`    guest read ${r4.reads.map(hex).join(', ')}`);
  out('');
  out(`  ${vmm.log.length} conversions handled; mmu_invalidate_seq is ${vm.vm.mmu.seq}`);
  kvm.close();
  return 0;
}

/** Guest memory the kvm demo runs on: a file, its host mapping, a slot bound to it, and a punch. */
interface DemoMemory {
  readonly what: string;
  readonly map: HostMapping;
  punch(offset: bigint, len: bigint): void;
  close(): void;
}

const DEMO_SIZE = 4n * 4096n;

/**
 * `guestmem demo --backend kvm`: what this kernel can show. With an MMAP|INIT_SHARED guest_memfd, a
 * guest on it mapped the way QEMU maps it; without one, the kernel's own answer (the errno of
 * KVM_CREATE_GUEST_MEMFD or the flags it lacks) and the same steps on memfd memory, QEMU's
 * memory-backend-memfd. Either way the host writes, the guest reads and writes, the host sees the
 * guest's bytes, and a punched page reads zero on both sides.
 */
export function runKvmDemo(kvm: Kvm, out: (line: string) => void): number {
  try {
    const shared = GUEST_MEMFD_FLAG_MMAP | GUEST_MEMFD_FLAG_INIT_SHARED;
    const flags = BigInt(kvm.checkExtension(CAP.KVM_CAP_GUEST_MEMFD_FLAGS));
    const vm = kvm.createVm('default');
    let memory: DemoMemory;
    if ((flags & shared) === shared) {
      out(`guestmem demo on ${kvm.backend === 'kvm' ? '/dev/kvm' : 'the model'} (${kvm.profile}): a default VM on an MMAP|INIT_SHARED guest_memfd`);
      memory = gmemMemory(vm, shared);
    } else {
      out(`guestmem demo on ${kvm.backend === 'kvm' ? '/dev/kvm' : 'the model'} (${kvm.profile}): this kernel cannot show guest_memfd memory`);
      out(`  ${whyNoGmem(kvm, vm, flags)}`);
      out("  so it shows the same steps on memfd memory (QEMU's memory-backend-memfd), the way VMs ran before guest_memfd");
      out('  (guest_memfd on a real kernel: guestmem lab run; on the model: guestmem demo, or --kernel host to follow this kernel)');
      memory = memfdMemory(kvm, vm);
    }
    showMemory(vm, memory, out);
    vm.close();
    return 0;
  } finally {
    kvm.close();
  }
}

/** What the kernel says when asked for a guest_memfd, in its own words (errno or capability). */
function whyNoGmem(kvm: Kvm, vm: Vm, flags: bigint): string {
  const cap = kvm.checkExtension(CAP.KVM_CAP_GUEST_MEMFD);
  try {
    vm.createGuestMemfd({ size: 4096n, flags: 0n }).close();
  } catch (e) {
    if (!(e instanceof KvmError)) throw e;
    return `KVM_CAP_GUEST_MEMFD is ${cap} and KVM_CREATE_GUEST_MEMFD answers ${e.errno}: there is no guest_memfd in this kernel`;
  }
  return `guest_memfd exists, but KVM_CAP_GUEST_MEMFD_FLAGS is ${flags}: without MMAP|INIT_SHARED the host cannot map it (mmap is ENODEV)`;
}

function gmemMemory(vm: Vm, flags: bigint): DemoMemory {
  const gmem = vm.createGuestMemfd({ size: DEMO_SIZE, flags });
  const map = gmem.mmap(0n, DEMO_SIZE, PROT_READ | PROT_WRITE);
  vm.setUserMemoryRegion2({
    slot: 0,
    flags: KVM_MEM_GUEST_MEMFD,
    guestPhysAddr: GPA,
    memorySize: DEMO_SIZE,
    userspaceAddr: map.addr,
    guestMemfd: gmem.fd,
    guestMemfdOffset: 0n,
  });
  return {
    what: `guest_memfd fd ${gmem.fd}`,
    map,
    punch: (o, l) => gmem.fallocate(FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE, o, l),
    close: () => {
      map.unmap();
      gmem.close();
    },
  };
}

function memfdMemory(kvm: Kvm, vm: Vm): DemoMemory {
  const fd = kvm.files.memfdCreate('guestmem-demo');
  kvm.files.ftruncate(fd, DEMO_SIZE);
  const map = kvm.files.mmap(fd, 0n, DEMO_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED);
  vm.setUserMemoryRegion({ slot: 0, flags: 0, guestPhysAddr: GPA, memorySize: DEMO_SIZE, userspaceAddr: map.addr });
  return {
    what: `memfd fd ${fd}`,
    map,
    punch: (o, l) => kvm.files.fallocate(fd, FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE, o, l),
    close: () => {
      map.unmap();
      kvm.files.close(fd);
    },
  };
}

function showMemory(vm: Vm, m: DemoMemory, out: (line: string) => void): void {
  const { map } = m;
  out(`  ${m.what}, ${DEMO_SIZE / 1024n} KiB, mapped at host 0x${map.addr.toString(16)} and bound at GPA ${hex(GPA)} (slot 0)`);
  const vcpu = vm.createVcpu(0);
  const run = (title: string, program: GuestOp[]) => {
    vcpu.load([...program, { op: 'hlt' }]);
    const e = vcpu.run();
    out(`  ${title}: exit ${e.reason}${e.reads.length ? `, guest read ${e.reads.map(hex).join(' ')}` : ''}`);
    return e;
  };
  map.write(0x10n, new Uint8Array([0x44, 0x43, 0x42, 0x41]));
  out('  host writes 41424344 at page 0 + 0x10 through its mapping');
  run('guest reads it (4 bytes)', [{ op: 'read', gpa: GPA + 0x10n, width: 4 }]);
  run('guest writes 0x5a to page 1 + 0x20', [{ op: 'write', gpa: page(1) + 0x20n, width: 1, value: 0x5an }]);
  out(`  host reads page 1 + 0x20 through its mapping: 0x${(map.read(4096n + 0x20n, 1)[0] as number).toString(16)}`);
  m.punch(0n, 4096n);
  out('  host punches page 0 (fallocate KEEP_SIZE|PUNCH_HOLE)');
  out(`  host reads page 0 + 0x10: ${[...map.read(0x10n, 4)].map((b) => b.toString(16).padStart(2, '0')).join('')}`);
  run('guest reads page 0 + 0x10 again', [{ op: 'read', gpa: GPA + 0x10n, width: 4 }]);
  vcpu.close();
  m.close();
}
