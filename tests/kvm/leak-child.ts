/**
 * The 200-cycle leak workload, run in its own process by ownership.test.ts: alone, with a fixed
 * young generation and full GCs at the two measurement points, so that the /proc/self/maps line
 * count reflects what the backend holds rather than how the V8 heap of a test runner grew.
 * Prints one JSON object on stdout.
 */
import { knownGmemCount, listMappings, listOpenFds, openKvm, ownedCounts, traceMappings } from '../../src/kvm/index.js';

const MiB = 1n << 20n;
const cycles = Number(process.argv[2] ?? 200);

function cycle(): void {
  const kvm = openKvm();
  const vm = kvm.createVm();
  const g = vm.createGuestMemfd({ size: 2n * MiB, flags: 3n });
  const m = g.mmap(0n, 2n * MiB, 3, 1);
  vm.setUserMemoryRegion2({
    slot: 0,
    flags: 4,
    guestPhysAddr: 1n << 32n,
    memorySize: 2n * MiB,
    userspaceAddr: m.addr,
    guestMemfd: g.fd,
    guestMemfdOffset: 0n,
  });
  m.write(0x1000n, Uint8Array.of(0x41, 0x42, 0x43, 0x44));
  const v = vm.createVcpu(0);
  v.load([{ op: 'read', gpa: (1n << 32n) + 0x1000n, width: 4 }, { op: 'hlt' }]);
  const e = v.run();
  if (e.reason !== 'hlt' || e.reads[0] !== 0x44434241n) throw new Error(`guest saw ${String(e.reads[0])} (${e.reason})`);
  m.unmap();
  g.close();
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
