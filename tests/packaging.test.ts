/**
 * The package's entry points, as a user imports them (self-reference through package.json
 * "exports"): each exists, and each exports the same KvmError and HostFault classes, so an error
 * thrown under one entry point is caught by `instanceof` with the class from any other.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { HostFault, KvmError } from '../src/api.js';

const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { exports: Record<string, unknown>; files: string[] };
const ENTRIES = ['guestmem', 'guestmem/model', 'guestmem/kvm', 'guestmem/scenario', 'guestmem/measure', 'guestmem/vmm', 'guestmem/designs'];

test('package.json exports every entry point, with types, and ships the page', () => {
  for (const e of ENTRIES) {
    const key = e === 'guestmem' ? '.' : `.${e.slice('guestmem'.length)}`;
    const v = pkg.exports[key] as { types?: string; default?: string } | undefined;
    assert.ok(v?.types && v.default, `exports["${key}"] needs types and default`);
  }
  assert.equal((pkg.exports['./kvm'] as { browser?: string }).browser, './dist/src/kvm/unavailable.js', 'a browser bundle gets the kvm stub');
  assert.ok(pkg.files.includes('dist/web'), 'the built page ships, for guestmem ui');
});

for (const e of ENTRIES) {
  test(`${e} exports KvmError and HostFault (the same classes)`, async () => {
    const m = (await import(e)) as { KvmError?: unknown; HostFault?: unknown };
    assert.equal(m.KvmError, KvmError);
    assert.equal(m.HostFault, HostFault);
  });
}

test('the browser stub of guestmem/kvm says why, and exports the errors too', async () => {
  const m = (await import('../src/kvm/unavailable.js')) as typeof import('../src/kvm/unavailable.js');
  assert.equal(m.KvmError, KvmError);
  assert.equal(m.kvmAvailable().ok, false);
  assert.throws(() => m.openKvm(), /runs only in Node on Linux/);
});

test('KvmError.errno is an errno name', () => {
  const e = new KvmError('KVM_CREATE_GUEST_MEMFD', 'EINVAL');
  assert.equal(e.errno, 'EINVAL');
  // @ts-expect-error a misspelt errno name is a type error (the build fails if this line compiles)
  assert.ok(e.errno !== 'EINVALL');
  assert.equal(new KvmError('x', 999).errno, 'E999');
});
