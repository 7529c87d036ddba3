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

kvmTest('the kvm example runs on /dev/kvm and answers with the kernel (converted, or its errno)', () => {
  assert.match(run('kvm'), /converted 0x1000 to private|this kernel said E[A-Z0-9]+ to KVM_/);
});
