/**
 * The whole scenario suite on /dev/kvm, N times over, in a process of its own (see leak-child.ts for
 * why: a fixed young generation and full GCs make /proc/self/maps reflect what the backend holds).
 * Prints one JSON object: fd and mapping counts before and after, and the scenario tally.
 */
import { readFileSync } from 'node:fs';
import { kvmBackend } from '../../src/backends/kvm.js';
import { listMappings, listOpenFds, ownedCounts, traceMappings } from '../../src/kvm/index.js';
import { parseScenario, runScenario } from '../../src/scenario/index.js';
import { SCENARIOS, scenarioFiles } from '../support/files.js';

const rounds = Number(process.argv[2] ?? 200);
const backend = await kvmBackend();
const suite = scenarioFiles(SCENARIOS).map((f) => ({ f, sc: parseScenario(readFileSync(f, 'utf8'), f) }));
const gc = (globalThis as { gc?: () => void }).gc;
const settle = async () => {
  for (let i = 0; i < 3; i++) {
    await new Promise((r) => setImmediate(r));
    gc?.();
  }
};
const tally = { passed: 0, failed: 0, skipped: 0 };
const round = async () => {
  for (const { f, sc } of suite) {
    tally[runScenario(sc, f, backend).status]++;
    await new Promise((r) => setImmediate(r));
  }
};
for (let i = 0; i < 3; i++) await round(); // warm up koffi, the watchdog and V8 for this workload
await settle();
const fds0 = listOpenFds().map(([fd, link]) => `${fd}:${link}`);
const mapList0 = listMappings();
const maps0 = mapList0.length;
const owned0 = ownedCounts();
const named0 = mapList0.filter((l) => /kvm|memfd/.test(l)).length;
tally.passed = tally.failed = tally.skipped = 0;
const ranges: [bigint, bigint][] = [];
traceMappings((addr, len) => ranges.push([addr, addr + len]));
for (let i = 0; i < rounds; i++) await round();
traceMappings(undefined);
await settle();
const mapsNow = listMappings();
const live = new Set(
  mapsNow.map((l) => {
    const [a, b] = (l.split(' ')[0] ?? '').split('-');
    return `${BigInt(`0x${a}`)}-${BigInt(`0x${b}`)}`;
  }),
);
const fds1 = listOpenFds().map(([fd, link]) => `${fd}:${link}`);
process.stdout.write(
  JSON.stringify({
    rounds,
    tally,
    fds: [fds0.length, fds1.length],
    fdsAdded: fds1.filter((x) => !fds0.includes(x)),
    maps: [maps0, mapsNow.length],
    mapsAdded: mapsNow.filter((l) => !mapList0.includes(l)).slice(0, 20),
    named: [named0, mapsNow.filter((l) => /kvm|memfd/.test(l)).length],
    traced: ranges.length,
    left: ranges.filter(([a, b]) => live.has(`${a}-${b}`)).map(([a, b]) => `0x${a.toString(16)}-0x${b.toString(16)}`),
    owned: [owned0, ownedCounts()],
  }),
);
