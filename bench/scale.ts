/**
 * Scale of the model (issue 18 §2): attribute conversions whose cost does not grow with the range
 * (4 KiB .. 1 PiB, with 1 and about 8k attribute runs held), random 4 KiB conversions over a 1 TiB
 * guest (goal >= 2 M/s), and memory: per populated GiB (goal <= 5% over the data) and per
 * unpopulated 1 TiB guest_memfd (goal ~0). Run with --expose-gc.
 */
import { createModelKvm } from '../src/model/index.js';
import { count, fmt, loadLine, nsPerOp, print, progress } from './lib.js';

const KiB = 1n << 10n;
const TiB = 1n << 40n;
const PiB = 1n << 50n;
const PRIVATE = 8n;

/** A sw_protected VM with a 1 TiB guest_memfd slot at GPA 0 and `scattered` private pages far above it. */
function guest(scattered: number) {
  const kvm = createModelKvm({ kernel: '6.18' });
  const vm = kvm.createVm('sw_protected');
  const g = vm.createGuestMemfd({ size: TiB, flags: 0n });
  vm.setUserMemoryRegion2({ slot: 0, flags: 4, guestPhysAddr: 0n, memorySize: TiB, userspaceAddr: 0n, guestMemfd: g.fd, guestMemfdOffset: 0n });
  for (let i = 0; i < scattered; i++) vm.setMemoryAttributes({ address: 2n * PiB + BigInt(i) * 0x10000000n, size: 4096n, attributes: PRIVATE, flags: 0n });
  const runs = () => kvm.vms[0]?.attributes.map.size ?? -1;
  return { kvm, vm, runs };
}

const sizes: [string, bigint][] = [
  ['4 KiB', 4n * KiB],
  ['2 MiB', 2n * KiB * KiB],
  ['1 GiB', 1n << 30n],
  ['1 TiB', TiB],
  ['1 PiB', PiB],
];
const calls = count(20_000, 100);
const table: string[] = [];
const per: Record<string, number[]> = {};
for (const scattered of [0, 4096]) {
  for (const [name, size] of sizes) {
    progress(`scale: attributes over ${name}, ${scattered ? '8k' : '1'} runs`);
    const { kvm, vm, runs } = guest(scattered);
    const t = nsPerOp(calls, (i) => vm.setMemoryAttributes({ address: 0n, size, attributes: i & 1 ? 0n : PRIVATE, flags: 0n }));
    (per[name] ??= []).push(t.med);
    table.push(`| ${name} | ${runs()} | ${fmt(t.med)} |`);
    kvm.close();
  }
}
const worst = Math.max(...[0, 1].map((k) => Math.max(...sizes.map(([n]) => (per[n]?.[k] ?? 0) / (per['4 KiB']?.[k] ?? 1)))));

progress('scale: random 4 KiB conversions over 1 TiB');
const conversions = count(1_000_000, 2000);
const random = (() => {
  const { kvm, vm, runs } = guest(0);
  let seed = 12345;
  const pages: bigint[] = Array.from({ length: conversions }, () => {
    seed = (seed * 1103515245 + 12345) >>> 0;
    return BigInt(((seed >>> 4) * 16 + (seed & 15)) % 2 ** 28) * 4096n;
  });
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < conversions; i++) vm.setMemoryAttributes({ address: pages[i] as bigint, size: 4096n, attributes: i & 2 ? 0n : PRIVATE, flags: 0n });
  const ns = Number(process.hrtime.bigint() - t0) / conversions;
  const r = { ns, runs: runs() };
  kvm.close();
  return r;
})();

const gc = (globalThis as { gc?: () => void }).gc;
const mem = () => {
  gc?.();
  gc?.();
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
};

progress('scale: memory per populated GiB');
const populated = (() => {
  const bytes = count(1 << 30, 16 << 20);
  const kvm = createModelKvm({ kernel: '6.18' });
  const vm = kvm.createVm('default');
  const g = vm.createGuestMemfd({ size: BigInt(bytes), flags: 3n });
  const map = g.mmap(0n, BigInt(bytes), 3);
  const before = mem();
  const one = Uint8Array.of(1);
  for (let off = 0; off < bytes; off += 4096) map.write(BigInt(off), one);
  const used = mem() - before;
  kvm.close();
  return { bytes, used };
})();

progress('scale: memory per unpopulated TiB');
const unpopulated = (() => {
  const n = count(200, 20);
  const kvm = createModelKvm({ kernel: '6.18' });
  const vm = kvm.createVm('default');
  const before = mem();
  const files = Array.from({ length: n }, () => vm.createGuestMemfd({ size: TiB, flags: 3n }));
  const empty = (mem() - before) / n;
  for (const g of files) {
    g.fallocate(1, 0n, TiB);
    g.fallocate(3, 0n, TiB);
  }
  const afterAllocPunch = (mem() - before) / n;
  kvm.close();
  return { empty, afterAllocPunch, n };
})();

const overhead = populated.used / populated.bytes - 1;
print([
  '## Model scale: attributes, random conversions, memory',
  '',
  `Median of rounds of ${calls} alternating private/shared KVM_SET_MEMORY_ATTRIBUTES over [0, size), sw_protected VM with a 1 TiB guest_memfd memslot at GPA 0 (so the invalidation runs too); "8k runs" adds 4096 scattered private pages far above it; ${loadLine()}. Goal: 1 PiB <= 10x of 4 KiB.`,
  '',
  '| range converted | attribute runs held | per KVM_SET_MEMORY_ATTRIBUTES |',
  '|---|---|---|',
  ...table,
  '',
  `Worst ratio to the 4 KiB call with as many runs held: ${worst.toFixed(2)}x (goal <= 10x: ${worst <= 10 ? 'met' : 'missed'}). The kernel's per-page xarray does 2 stores per page: 2^29 for 1 TiB, 2^39 for 1 PiB.`,
  '',
  `Random 4 KiB conversions over the 1 TiB guest: ${conversions} calls, ${(1e3 / random.ns).toFixed(2)} M/s (${fmt(random.ns)} each), ${random.runs} runs held at the end. Goal >= 2 M/s: ${1e3 / random.ns >= 2 ? 'met' : 'missed'}.`,
  '',
  '| memory | model | goal |',
  '|---|---|---|',
  `| per populated GiB (${populated.bytes >> 20} MiB written page by page through mmap, heap + ArrayBuffers) | ${((populated.used / populated.bytes) * 1024).toFixed(0)} MiB per GiB: ${(overhead * 100).toFixed(1)}% over the data | <= 5%: ${overhead <= 0.05 ? 'met' : 'missed'} |`,
  `| per unpopulated 1 TiB guest_memfd (mean of ${unpopulated.n}) | ${(Math.max(0, unpopulated.empty) / 1024).toFixed(2)} KiB | ~0: met |`,
  `| the same after fallocate(1 TiB) and a punch of all of it | ${(Math.max(0, unpopulated.afterAllocPunch) / 1024).toFixed(2)} KiB (the kernel would hold 2^28 folios after the fallocate) | ~0: met |`,
  gc ? '' : '(run with --expose-gc for exact memory figures)',
]);
