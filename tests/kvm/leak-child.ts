/**
 * The 200-cycle leak workload, run in its own process by ownership.test.ts: alone, with a fixed
 * young generation and full GCs at the two measurement points, so that the /proc/self/maps line
 * count reflects what the backend holds rather than how the V8 heap of a test runner grew.
 * Prints one JSON object on stdout.
 */

import { knownGmemCount, listMappings, listOpenFds, openKvm, ownedCounts, traceMappings } from '../../src/kvm/index.js';
import { CAP } from '../../src/uapi/constants.js';

const MiB = 1n << 20n;
const cycles = Number(process.argv[2] ?? 200);

/**
 * Guest memory the way QEMU maps it: an MMAP|INIT_SHARED guest_memfd where the kernel has one, a
 * memfd otherwise (KVM_CAP_GUEST_MEMFD_FLAGS says which), so the ownership check runs on any kernel.
 */
const probe = openKvm();
const GMEM = (BigInt(probe.checkExtension(CAP.KVM_CAP_GUEST_MEMFD_FLAGS)) & 3n) === 3n;
probe.close();

function cycle(): void {
  const kvm = openKvm();
  const vm = kvm.createVm();
  const size = 2n * MiB;
  let fd: number;
  let close: () => void;
  if (GMEM) {
    const g = vm.createGuestMemfd({ size, flags: 3n });
    fd = g.fd;
    close = () => g.close();
  } else {
    const f = kvm.files.memfdCreate('leak');
    kvm.files.ftruncate(f, size);
    fd = f;
    close = () => kvm.files.close(f);
  }
  const m = kvm.files.mmap(fd, 0n, size, 3, 1);
  vm.setUserMemoryRegion2({
    slot: 0,
    flags: GMEM ? 4 : 0,
    guestPhysAddr: 1n << 32n,
    memorySize: size,
    userspaceAddr: m.addr,
    guestMemfd: GMEM ? fd : 0,
    guestMemfdOffset: 0n,
  });
  m.write(0x1000n, Uint8Array.of(0x41, 0x42, 0x43, 0x44));
  const v = vm.createVcpu(0);
  v.load([{ op: 'read', gpa: (1n << 32n) + 0x1000n, width: 4 }, { op: 'hlt' }]);
  const e = v.run();
  if (e.reason !== 'hlt' || e.reads[0] !== 0x44434241n) throw new Error(`guest saw ${String(e.reads[0])} (${e.reason})`);
  m.unmap();
  close();
  vm.close();
  kvm.close();
}

const gc = (globalThis as { gc?: () => void }).gc;
// Objects the fd table holds by WeakRef stay alive until the current job ends: yield after each
// cycle, and settle (yield + full GC) before measuring.
const tick = () => new Promise((r) => setImmediate(r));
const settle = async () => {
  for (let i = 0; i < 3; i++) {
    await tick();
    gc?.();
  }
};
const backendLines = () => listMappings().filter((l) => /kvm/.test(l)).length;

for (let i = 0; i < 20; i++) {
  cycle(); // warm up: koffi, the watchdog timer, V8's code and heap for this workload
  await tick();
}
await settle();
const fdList = () => listOpenFds().map(([fd, link]) => `${fd}:${link}`);
const before = { fds: fdList(), maps: listMappings(), named: backendLines(), owned: ownedCounts(), known: knownGmemCount() };
const ranges: [bigint, bigint][] = [];
traceMappings((addr, len) => ranges.push([addr, addr + len]));
for (let i = 0; i < cycles; i++) {
  cycle();
  await tick();
}
traceMappings(undefined);
await settle();
const maps = listMappings();
const fdsAfter = fdList();
const live = new Set(
  maps.map((l) => {
    const [a, b] = (l.split(' ')[0] ?? '').split('-');
    return `${BigInt(`0x${a}`)}-${BigInt(`0x${b}`)}`;
  }),
);
const left = ranges.filter(([a, b]) => live.has(`${a}-${b}`)).map(([a, b]) => `0x${a.toString(16)}-0x${b.toString(16)}`);
process.stdout.write(
  JSON.stringify({
    cycles,
    memory: GMEM ? 'guest_memfd' : 'memfd',
    gc: gc !== undefined,
    fds: [before.fds.length, fdsAfter.length],
    fdsAdded: fdsAfter.filter((f) => !before.fds.includes(f)),
    maps: [before.maps.length, maps.length],
    added: maps.filter((l) => !before.maps.includes(l)),
    named: [before.named, backendLines()],
    owned: [before.owned, ownedCounts()],
    known: [before.known, knownGmemCount()],
    traced: ranges.length,
    left,
  }),
);
