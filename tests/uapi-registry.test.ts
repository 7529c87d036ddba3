/**
 * The capability registry (src/uapi/registry.ts): every number CAP probes is mainline, and a number
 * that pending series or out-of-tree trees reuse is never in CAP.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CAP, PENDING_CAP } from '../src/uapi/constants.js';
import { CAPS, capNumber, mainlineCaps } from '../src/uapi/registry.js';

test('CAP (what kvm/caps.ts and cli/caps.ts iterate) holds only mainline numbers, each as the registry has it', () => {
  const mainline = mainlineCaps();
  for (const [name, value] of Object.entries(CAP)) assert.equal(mainline[name], value, name);
});

test('a pending or out-of-tree number is refused as mainline, and none of them is probed', () => {
  assert.throws(() => capNumber('KVM_CAP_MEMORY_ATTRIBUTES2'), /pending series/);
  assert.throws(() => capNumber('KVM_CAP_USERFAULT'), /out-of-tree/);
  assert.equal(capNumber('KVM_CAP_MEMORY_ATTRIBUTES2', 'any'), PENDING_CAP.KVM_CAP_MEMORY_ATTRIBUTES2);
  const probed = new Set(Object.values(CAP) as number[]);
  for (const e of CAPS) if (e.origin.kind !== 'mainline') assert.equal(probed.has(e.value), false, `${e.name} (${e.value}) must not be probed`);
});

test('mainline numbers are unique; 245-249 are the mainline ones, shared only with non-mainline entries', () => {
  const seen = new Map<number, string>();
  for (const e of CAPS.filter((c) => c.origin.kind === 'mainline')) {
    assert.equal(seen.has(e.value), false, `${e.name} and ${seen.get(e.value)} share ${e.value}`);
    seen.set(e.value, e.name);
  }
  assert.equal(seen.get(245), 'KVM_CAP_ARM_SEA_TO_USER');
  assert.ok(CAPS.some((c) => c.value === 245 && c.origin.kind === 'out-of-tree'));
});
