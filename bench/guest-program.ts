/**
 * A guest program of 10^6 memory accesses (issue 18 §2) on the model and on /dev/kvm: alternating
 * 8-byte writes and reads over 16 MiB of anonymous guest memory, in programs of 1000 accesses (the
 * code region and the read log bound one program), each run to its hlt. On this host the kernel
 * emulates guest instructions (about 1.4 M/s), so the kernel figure is an emulator figure.
 */
import type { GuestOp, Kvm } from '../src/api.js';
import { kvmAvailable, openKvm } from '../src/kvm/index.js';
import { createModelKvm } from '../src/model/index.js';
import { count, fmt, loadLine, print, progress, ratio } from './lib.js';

const MiB = 1n << 20n;
const accesses = count(1_000_000, 2000);
const per = 1000;
const programs: GuestOp[][] = Array.from({ length: 16 }, (_, k) => [
  ...Array.from({ length: per }, (_, i): GuestOp => {
    const gpa = 0x200000n + (BigInt((k * per + i) * 4099) % (16n * MiB - 8n));
    return i & 1 ? { op: 'read', gpa, width: 8 } : { op: 'write', gpa, width: 8, value: BigInt(i) };
  }),
  { op: 'hlt' },
]);

function run(k: Kvm): number {
  const vm = k.createVm('default');
  const mem = vm.mmapAnonymous(16n * MiB);
  vm.setUserMemoryRegion({ slot: 0, flags: 0, guestPhysAddr: 0x200000n, memorySize: 16n * MiB, userspaceAddr: mem.addr });
  const v = vm.createVcpu(0);
  const t0 = process.hrtime.bigint();
  for (let done = 0, p = 0; done < accesses; done += per, p++) {
    v.load(programs[p % programs.length] as GuestOp[]);
    if (v.run().reason !== 'hlt') throw new Error('the guest program did not halt');
  }
  const ns = Number(process.hrtime.bigint() - t0);
  vm.close();
  return ns;
}

progress(`guest program: ${accesses} accesses on the model`);
const model = createModelKvm({ kernel: '6.18' });
const m = run(model);
model.close();
const avail = kvmAvailable();
let k: number | undefined;
if (avail.ok) {
  progress(`guest program: ${accesses} accesses on /dev/kvm`);
  const real = openKvm();
  k = run(real);
  real.close();
}
print([
  '## A guest program of 10^6 accesses: model vs /dev/kvm',
  '',
  `${accesses} alternating 8-byte writes and reads over 16 MiB, in programs of ${per} accesses each run to its hlt (load + KVM_RUN); one run each; ${loadLine()}.`,
  '',
  '| where | total | per access | model speed-up |',
  '|---|---|---|---|',
  `| model | ${fmt(m)} | ${fmt(m / accesses)} | |`,
  k !== undefined
    ? `| /dev/kvm (this host emulates guest code) | ${fmt(k)} | ${fmt(k / accesses)} | ${ratio(k, m)} |`
    : `| /dev/kvm | not run: ${(avail as { reason: string }).reason} | | |`,
]);
