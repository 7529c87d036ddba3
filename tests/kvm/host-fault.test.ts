/**
 * Host accesses the kernel answers with SIGBUS come back as HostFault, and the process lives on
 * (KERNEL-SPEC D5, GM-8, GM-9). Three independent views are compared:
 * - the mapping's prediction (gmem of known size and flags),
 * - the kernel-checked path (process_vm_readv/writev), which never raises a signal,
 * - a child process that touches the same pages directly and must die of SIGBUS exactly there.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HostFault } from '../../src/api.js';
import { type KvmMapping, type KvmSystem, openKvm } from '../../src/kvm/index.js';
import { sys } from '../../src/kvm/sys.js';
import { IOCTL } from '../../src/uapi/ioctls.js';
import { kvmTest, kvmTestIf, SHARED_GMEM } from '../support/kvm-gate.js';
import { GMEM_MMAP, GMEM_SHARED, hostFault, MAP_SHARED, outcome, PS, RW, withKvm } from './helpers.js';

/** The same file range mapped again, but accessed kernel-checked (as for a file of unknown flags). */
function checkedTwin(kvm: KvmSystem, fd: number, offset: bigint, length: bigint): KvmMapping {
  return kvm.files.map(fd, offset, length, RW, MAP_SHARED, { kind: 'unknown' });
}

kvmTestIf('the prediction and the kernel-checked path agree on every gmem case', [...SHARED_GMEM], () =>
  withKvm((kvm) => {
    const vm = kvm.createVm();
    for (const flags of [GMEM_MMAP, GMEM_SHARED]) {
      const g = vm.createGuestMemfd({ size: 3n * PS, flags });
      for (const mapOff of [0n, PS, 3n * PS]) {
        const p = g.mmap(mapOff, 4n * PS, RW, MAP_SHARED);
        const k = checkedTwin(kvm, g.fd, mapOff, 4n * PS);
        assert.equal((p as KvmMapping).accessMode, 'predicted', 'a gmem of known size and flags');
        assert.equal(k.accessMode, 'kernel-checked');
        for (const [off, len] of [
          [0n, 1],
          [PS - 2n, 4],
          [PS, Number(PS)],
          [0n, Number(4n * PS)],
          [2n * PS + 100n, 10],
          [3n * PS + 1n, 1],
        ] as [bigint, number][]) {
          const what = `flags ${flags} map offset ${mapOff} access (${off}, ${len})`;
          const a = attempt(() => p.read(off, len));
          const b = attempt(() => k.read(off, len));
          assert.deepEqual(a, b, `read ${what}`);
          const data = new Uint8Array(len).fill(Number(off % 251n));
          assert.deepEqual(
            attempt(() => p.write(off, data)),
            attempt(() => k.write(off, data)),
            `write ${what}`,
          );
        }
      }
    }
  }),
);

function attempt(fn: () => unknown): string {
  try {
    const r = fn();
    return r instanceof Uint8Array ? `ok ${Buffer.from(r).toString('hex').slice(0, 64)}` : 'ok';
  } catch (e) {
    if (e instanceof HostFault) return `${e.signal}@${e.offset}`;
    throw e;
  }
}

kvmTestIf('a gmem whose flags this process does not know is accessed kernel-checked', [...SHARED_GMEM], () =>
  withKvm((kvm) => {
    const vm = kvm.createVm();
    // Created behind the backend's back with a raw ioctl, so the known-files table has no entry.
    const arg = new Uint8Array(64);
    new DataView(arg.buffer).setBigUint64(0, 2n * PS, true);
    new DataView(arg.buffer).setBigUint64(8, GMEM_MMAP, true);
    const fd = sys().ioctlPtr(vm.fd, IOCTL.KVM_CREATE_GUEST_MEMFD, arg);
    assert.ok(fd >= 0);
    try {
      const m = kvm.files.mmap(fd, 0n, 2n * PS, RW, MAP_SHARED) as KvmMapping;
      assert.equal(m.accessMode, 'kernel-checked');
      assert.equal(hostFault(() => m.read(PS, 1)).offset, PS);
      m.unmap();
    } finally {
      kvm.files.close(fd);
    }
  }),
);

kvmTest('a memfd mapping past EOF faults (kernel-checked, size may change under it)', () =>
  withKvm((kvm) => {
    const f = kvm.files;
    const fd = f.memfdCreate('guestmem-sigbus');
    f.ftruncate(fd, PS + PS / 2n);
    const m = f.mmap(fd, 0n, 4n * PS, RW, MAP_SHARED) as KvmMapping;
    assert.equal(m.accessMode, 'kernel-checked');
    const w = hostFault(() => m.write(0n, new Uint8Array(Number(3n * PS)).fill(7)));
    assert.equal(w.offset, 2n * PS, 'the partial last page is inside the file; the next one is not');
    assert.ok(m.read(0n, Number(2n * PS)).every((b) => b === 7));
    f.ftruncate(fd, 0n);
    assert.equal(hostFault(() => m.read(0n, 1)).offset, 0n, 'after truncation the same page faults');
    f.close(fd);
    m.unmap();
  }),
);

/**
 * The child touches memory directly, without any of the backend's checks: it must die of SIGBUS
 * exactly where the parent predicted HostFault, after the accesses before that point succeeded.
 */
const CHILD = `
import { createRequire } from 'node:module';
const require = createRequire(process.env.KOFFI_FROM);
const koffi = require('koffi');
const libc = koffi.load('libc.so.6');
const open = libc.func('int open(const char *p, int f)');
const ioctlN = libc.func('ioctl', 'int', ['int', 'unsigned long', 'unsigned long']);
const ioctlP = libc.func('ioctl', 'int', ['int', 'unsigned long', 'void *']);
const mmap = libc.func('void *mmap(void *a, size_t l, int p, int f, int fd, int64_t o)');
const memfd = libc.func('int memfd_create(const char *n, unsigned int f)');
const ftruncate = libc.func('int ftruncate(int fd, int64_t l)');
const [kind, size, flags, mapLen, ok, bad, op] = process.argv.slice(2);
let fd;
if (kind === 'gmem') {
  const kvm = open('/dev/kvm', 2);
  const vm = ioctlN(kvm, 0xae01, 0);
  fd = ioctlP(vm, 0xc040aed4, new BigUint64Array([BigInt(size), BigInt(flags), 0n, 0n, 0n, 0n, 0n, 0n]));
} else {
  fd = memfd('child', 0);
  ftruncate(fd, BigInt(size));
}
const p = mmap(null, Number(mapLen), 3, 1, fd, 0n);
const u8 = new Uint8Array(koffi.view(p, Number(mapLen)));
const touch = (i) => (op === 'write' ? (u8[i] = 1) : u8[i]);
if (ok !== '-') { touch(Number(ok)); process.stdout.write('ok-before;'); }
touch(Number(bad));
process.stdout.write('survived;');
`;

kvmTestIf('a child that touches the predicted pages directly dies of SIGBUS exactly there', [...SHARED_GMEM], () =>
  withKvm((kvm) => {
    const script = join(tmpdir(), `guestmem-sigbus-child-${process.pid}.mjs`);
    writeFileSync(script, CHILD);
    try {
      const koffiFrom = createRequire(import.meta.url).resolve('koffi');
      const vm = kvm.createVm();
      const cases: { name: string; kind: 'gmem' | 'memfd'; size: bigint; flags: bigint; mapLen: bigint; op: 'read' | 'write' }[] = [
        { name: 'gmem INIT_SHARED, read past i_size', kind: 'gmem', size: 2n * PS, flags: GMEM_SHARED, mapLen: 4n * PS, op: 'read' },
        { name: 'gmem INIT_SHARED, write past i_size', kind: 'gmem', size: 2n * PS, flags: GMEM_SHARED, mapLen: 4n * PS, op: 'write' },
        { name: 'gmem without INIT_SHARED, read', kind: 'gmem', size: 2n * PS, flags: GMEM_MMAP, mapLen: 2n * PS, op: 'read' },
        { name: 'gmem without INIT_SHARED, write', kind: 'gmem', size: 2n * PS, flags: GMEM_MMAP, mapLen: 2n * PS, op: 'write' },
        { name: 'memfd, read past EOF', kind: 'memfd', size: PS + 1n, flags: 0n, mapLen: 4n * PS, op: 'read' },
      ];
      for (const c of cases) {
        // The parent's view: where is the first faulting byte of a whole-mapping access?
        let m: KvmMapping;
        if (c.kind === 'gmem') m = vm.createGuestMemfd({ size: c.size, flags: c.flags }).mmap(0n, c.mapLen, RW, MAP_SHARED);
        else {
          const fd = kvm.files.memfdCreate('parent');
          kvm.files.ftruncate(fd, c.size);
          m = kvm.files.mmap(fd, 0n, c.mapLen, RW, MAP_SHARED) as KvmMapping;
        }
        const f = hostFault(() => (c.op === 'read' ? m.read(0n, Number(c.mapLen)) : m.write(0n, new Uint8Array(Number(c.mapLen)))));
        const bad = f.offset;
        const ok = bad > 0n ? String(bad - 1n) : '-';
        const r = spawnSync(process.execPath, [script, c.kind, String(c.size), String(c.flags), String(c.mapLen), ok, String(bad), c.op], {
          env: { ...process.env, KOFFI_FROM: koffiFrom },
          encoding: 'utf8',
          timeout: 20000,
        });
        assert.equal(r.signal, 'SIGBUS', `${c.name}: the child should die of SIGBUS at offset ${bad} (stdout ${r.stdout}, stderr ${r.stderr})`);
        assert.equal(r.stdout, bad > 0n ? 'ok-before;' : '', `${c.name}: the byte before the fault is accessible`);
        assert.equal(
          outcome(() => m.read(0n, 1)),
          bad > 0n ? 'ok' : 'SIGBUS',
          'and the parent is alive and still answering',
        );
      }
    } finally {
      rmSync(script, { force: true });
    }
  }),
);

kvmTestIf("a session with hostAccess 'kernel-checked' lets the kernel say where gmem faults (what scenario and diff runs use)", [...SHARED_GMEM], () => {
  const kvm = openKvm('/dev/kvm', { hostAccess: 'kernel-checked' });
  try {
    for (const flags of [GMEM_MMAP, GMEM_SHARED]) {
      const g = kvm.createVm().createGuestMemfd({ size: 2n * PS, flags });
      const m = g.mmap(0n, 4n * PS, RW, MAP_SHARED) as KvmMapping;
      assert.equal(m.accessMode, 'kernel-checked');
      // without INIT_SHARED the first byte faults; with it, the first page past i_size does
      const f = hostFault(() => m.read(0n, Number(4n * PS)));
      assert.equal(f.offset, flags === GMEM_SHARED ? 2n * PS : 0n);
      m.unmap();
      g.close();
    }
  } finally {
    kvm.close();
  }
});
