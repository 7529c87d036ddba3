/**
 * Random operation sequences against the model (fast-check): whatever userspace does, the model
 * throws nothing but KvmError (an errno) or HostFault (a signal), and no invariant ever breaks
 * (checked after every call by checkedKvm). Fixed seed, so a failure replays.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { HostFault, type HostMapping, KvmError, type Vcpu, type Vm } from '../src/api.js';
import { GmemFile } from '../src/model/guest-memfd.js';
import type { ModelKvm } from '../src/model/index.js';
import { checkedKvm, InvariantError } from './support/model.js';

const PS = 4096n;
const page = fc.integer({ min: 0, max: 12 }).map((n) => BigInt(n) * PS);
const edgy = fc.oneof(page, fc.constantFrom(0n, 1n, PS - 1n, PS + 1n, 1n << 63n, (1n << 64n) - 1n, (1n << 64n) - PS, 0x200000n));

const Op = fc.oneof(
  fc.record({ k: fc.constant('gmem'), size: fc.oneof(page, edgy), flags: fc.constantFrom(0n, 1n, 2n, 3n, 4n) }),
  fc.record({ k: fc.constant('falloc'), fd: fc.nat(8), mode: fc.constantFrom(0, 1, 3, 2, 7, 0x11), off: edgy, len: edgy }),
  fc.record({ k: fc.constant('mmap'), fd: fc.nat(8), off: page, len: fc.constantFrom(PS, 4n * PS, 16n * PS), flags: fc.constantFrom(1, 2) }),
  fc.record({ k: fc.constant('anon'), len: fc.constantFrom(PS, 16n * PS) }),
  fc.record({ k: fc.constant('host'), map: fc.nat(6), off: page, write: fc.boolean(), byte: fc.nat(255) }),
  fc.record({ k: fc.constant('munmap'), map: fc.nat(6) }),
  fc.record({
    k: fc.constant('slot'),
    slot: fc.constantFrom(0, 1, 2, 0x10001),
    gmem: fc.boolean(),
    flags: fc.constantFrom(0, 1, 2),
    gpa: fc.constantFrom(0n, 4n * PS, 8n * PS, 1n << 32n),
    size: fc.constantFrom(0n, PS, 4n * PS, 8n * PS, 3n),
    fd: fc.nat(8),
    map: fc.nat(6),
    off: fc.oneof(page, edgy),
  }),
  fc.record({ k: fc.constant('attrs'), gpa: fc.oneof(page, edgy), size: fc.oneof(page, edgy), priv: fc.boolean(), flags: fc.constantFrom(0n, 0n, 1n) }),
  fc.record({ k: fc.constant('close'), fd: fc.nat(8) }),
  fc.record({ k: fc.constant('dup'), fd: fc.nat(8) }),
  fc.record({ k: fc.constant('syscall'), fd: fc.nat(8), which: fc.constantFrom('read', 'pread', 'lseek', 'ftruncate', 'fstat') }),
  fc.record({
    k: fc.constant('run'),
    ops: fc.array(
      fc.oneof(
        fc.record({ op: fc.constant('read' as const), gpa: page, width: fc.constantFrom(1 as const, 4 as const, 8 as const) }),
        fc.record({ op: fc.constant('write' as const), gpa: page, width: fc.constantFrom(1 as const, 8 as const), value: fc.bigInt({ min: 0n, max: 255n }) }),
        fc.record({ op: fc.constant('map_gpa_range' as const), gpa: page, npages: fc.bigInt({ min: 0n, max: 4n }), attrs: fc.constantFrom(0n, 16n) }),
      ),
      { maxLength: 4 },
    ),
  }),
  fc.record({ k: fc.constant('prefault'), gpa: page, size: fc.constantFrom(PS, 2n * PS, 0n) }),
  fc.record({ k: fc.constant('punchAll'), fd: fc.nat(8) }),
);
type OpT = typeof Op extends fc.Arbitrary<infer T> ? T : never;

function apply(kvm: ModelKvm, vm: Vm, vcpu: Vcpu, maps: HostMapping[], o: OpT): void {
  const f = kvm.files;
  switch (o.k) {
    case 'gmem':
      vm.createGuestMemfd({ size: o.size, flags: o.flags });
      return;
    case 'falloc':
      f.fallocate(o.fd, o.mode, BigInt.asIntN(64, o.off), BigInt.asIntN(64, o.len));
      return;
    case 'mmap':
      maps.push(f.mmap(o.fd, o.off, o.len, 3, o.flags));
      return;
    case 'anon':
      maps.push(vm.mmapAnonymous(o.len));
      return;
    case 'host': {
      const m = maps[o.map];
      if (!m) return;
      if (o.write) m.write(o.off, new Uint8Array([o.byte]));
      else m.read(o.off, 8);
      return;
    }
    case 'munmap':
      maps[o.map]?.unmap();
      return;
    case 'slot':
      vm.setUserMemoryRegion2({
        slot: o.slot,
        flags: o.flags | (o.gmem ? 4 : 0),
        guestPhysAddr: o.gpa,
        memorySize: o.size,
        userspaceAddr: maps[o.map]?.addr ?? 0n,
        guestMemfd: o.fd,
        guestMemfdOffset: o.off,
      });
      return;
    case 'attrs':
      vm.setMemoryAttributes({ address: o.gpa, size: o.size, attributes: o.priv ? 8n : 0n, flags: o.flags });
      return;
    case 'close':
      if (o.fd !== vm.fd && o.fd !== kvm.fd && o.fd !== vcpu.fd) f.close(o.fd);
      return;
    case 'dup':
      f.dup(o.fd);
      return;
    case 'syscall':
      if (o.which === 'read') f.read(o.fd, 8);
      else if (o.which === 'pread') f.pread(o.fd, 8, 0n);
      else if (o.which === 'lseek') f.lseek(o.fd, 0n, 0);
      else if (o.which === 'ftruncate') f.ftruncate(o.fd, 4096n);
      else f.fstat(o.fd);
      return;
    case 'run':
      vcpu.load([...o.ops, { op: 'hlt' }]);
      vcpu.run();
      return;
    case 'prefault':
      vcpu.preFaultMemory({ gpa: o.gpa, size: o.size, flags: 0n });
      return;
    case 'punchAll':
      f.fallocate(o.fd, 3, 0n, 1n << 40n);
      return;
  }
}

const stats = { ok: 0, err: 0 };
for (const type of ['default', 'sw_protected'] as const) {
  for (const kernel of ['6.8', '6.18', 'next']) {
    test(`random sequences on a ${type} VM (kernel ${kernel}): only errnos and signals, invariants hold`, () => {
      fc.assert(
        fc.property(fc.array(Op, { minLength: 1, maxLength: 60, size: 'large' }), (ops) => {
          const kvm = checkedKvm(kernel);
          const vm = kvm.createVm(type);
          vm.enableCap(201, [1n << 12n]);
          const vcpu = vm.createVcpu(0);
          const maps: HostMapping[] = [];
          for (const o of ops) {
            try {
              apply(kvm, vm, vcpu, maps, o);
              stats.ok++;
            } catch (e) {
              if (e instanceof InvariantError) throw e;
              if (!(e instanceof KvmError || e instanceof HostFault)) throw e;
              stats.err++;
            }
          }
          kvm.close();
        }),
        { seed: 0x6d656d, numRuns: 200 },
      );
      // The sequences must reach both outcomes often, or the property proves little.
      assert.ok(stats.ok > 1000 && stats.err > 1000, `too few calls exercised: ${JSON.stringify(stats)}`);
      stats.ok = stats.err = 0;
    });
  }
}

test('the property test can fail: a planted invariant break is caught', () => {
  const kvm = checkedKvm('6.18');
  const vm = kvm.createVm('default');
  const g = vm.createGuestMemfd({ size: 4n * PS, flags: 3n });
  const m = g.mmap(0n, 4n * PS, 3);
  vm.setUserMemoryRegion2({ slot: 0, flags: 4, guestPhysAddr: 0n, memorySize: 4n * PS, userspaceAddr: m.addr, guestMemfd: g.fd, guestMemfdOffset: 0n });
  const vcpu = vm.createVcpu(0);
  vcpu.load([{ op: 'write', gpa: 0n, width: 1, value: 1n }, { op: 'hlt' }]);
  vcpu.run();
  // Free the page behind KVM's back, as a punch without invalidation would.
  const inner = kvm.vms[0];
  assert.ok(inner);
  const spte = inner.mmu.sptes.get(0);
  assert.ok(spte && spte.source.kind === 'gmem');
  assert.ok(spte.source.file instanceof GmemFile);
  spte.source.file.inode.pages.delete(0);
  assert.throws(() => kvm.files.fstat(g.fd), InvariantError);
});
