/**
 * The README's TypeScript examples are examples/*.ts, word for word: the build typechecks them
 * against the package's own exports ('guestmem', 'guestmem/kvm' resolve to this package), and
 * this test runs them, so an API change cannot leave the README behind.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { openKvm } from '../src/kvm/index.js';
import { CAP } from '../src/uapi/constants.js';
import { kvmTest } from './support/kvm-gate.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const readme = readFileSync(`${root}README.md`, 'utf8');

function run(name: string): string {
  const r = spawnSync(process.execPath, [`${root}dist/examples/${name}.js`], { encoding: 'utf8', timeout: 60_000 });
  assert.equal(r.status, 0, `examples/${name}.ts exited ${r.status}: ${r.stderr}`);
  return r.stdout;
}

for (const name of ['model', 'kvm']) {
  test(`README shows examples/${name}.ts verbatim`, () => {
    const src = readFileSync(`${root}examples/${name}.ts`, 'utf8');
    assert.ok(readme.includes(`\`\`\`ts\n${src}\`\`\``), `README.md must contain examples/${name}.ts in a \`\`\`ts block, unchanged`);
  });
}

test('the model example runs and catches EINVAL by name', () => {
  assert.match(run('model'), /refused as the kernel would: KVM_CREATE_GUEST_MEMFD: EINVAL/);
});

/**
 * Where the example stops, from what the kernel reports: without guest_memfd at its creation
 * (ENOTTY); where a default VM cannot bind one (its KVM_CAP_GUEST_MEMFD is 0, before 6.18) at the
 * binding (kvm_set_memslot: EINVAL); else at KVM_SET_MEMORY_ATTRIBUTES, since a default VM has no
 * private attribute (kvm_supported_mem_attributes: EINVAL).
 */
function kvmExampleAnswer(): RegExp {
  const kvm = openKvm();
  try {
    if (!kvm.checkExtension(CAP.KVM_CAP_GUEST_MEMFD)) return /^this kernel said ENOTTY to KVM_CREATE_GUEST_MEMFD$/m;
    const vm = kvm.createVm('default');
    const binds = vm.checkExtension(CAP.KVM_CAP_GUEST_MEMFD) !== 0;
    vm.close();
    return binds ? /^this kernel said EINVAL to KVM_SET_MEMORY_ATTRIBUTES$/m : /^this kernel said EINVAL to KVM_SET_USER_MEMORY_REGION2$/m;
  } finally {
    kvm.close();
  }
}

kvmTest('the kvm example runs on /dev/kvm and stops where the kernel says it must', () => {
  assert.match(run('kvm'), kvmExampleAnswer());
});
