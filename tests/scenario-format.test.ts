/** The scenario format: what is accepted, and the one-line errors for what is not. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { modelBackend, parseScenario, runScenario, ScenarioError } from '../src/scenario/index.js';

const ok = (steps: unknown[], extra: Record<string, unknown> = {}) => JSON.stringify({ name: 't', steps, ...extra });

function parseError(text: string, file = 'f.json'): string {
  try {
    parseScenario(text, file);
  } catch (e) {
    assert.ok(e instanceof ScenarioError, `expected a ScenarioError, got ${e}`);
    assert.ok(!e.message.includes('\n'), 'one line');
    return e.message;
  }
  assert.fail('parsed without error');
}

test('a bad field names the file, the step and the field', () => {
  const msg = parseError(
    ok([
      { op: 'fstat', fd: 0 },
      { op: 'fstat', fd: 0 },
      { op: 'fstat', fd: 0 },
      { op: 'create_guest_memfd', size: 'big' },
    ]),
  );
  assert.match(msg, /^f\.json: steps\[3\]\.size: expected an integer/);
});

test('unknown ops, unknown keys and bad flag names are rejected', () => {
  assert.match(parseError(ok([{ op: 'frobnicate' }])), /steps\[0\]\.op: unknown op|steps\[0\]/);
  assert.match(parseError(ok([{ op: 'fstat', fd: 0, extra: 1 }])), /steps\[0\]: unknown key "extra"/);
  assert.match(parseError(ok([{ op: 'create_guest_memfd', size: 4096, flags: ['mmap', 'huge'] }])), /steps\[0\]\.flags/);
  assert.match(parseError(JSON.stringify({ steps: [] })), /name/);
});

test('invalid JSON and YAML get a one-line parse error', () => {
  assert.match(parseError('{"name": ', 'x.json'), /^x\.json: not valid JSON/);
  assert.match(parseError('name: [unclosed', 'x.yaml'), /^x\.yaml: not valid YAML/);
});

test('YAML scenarios run like JSON ones', () => {
  const sc = parseScenario(
    [
      'name: yaml',
      'steps:',
      '  - op: create_guest_memfd',
      '    size: 0x1000',
      '    as: g',
      '  - op: fstat',
      '    fd: g',
      '    expect: { fstat: { size: 4096, blocks: 0 } }',
    ].join('\n'),
    's.yaml',
  );
  assert.equal(runScenario(sc, 's.yaml', modelBackend()).status, 'passed');
});

test('numbers may be strings above 2^53, and negative values wrap like C', () => {
  const sc = parseScenario(
    ok([
      { op: 'create_guest_memfd', size: '0x8000000000000000', expect: { errno: 'EINVAL' } },
      { op: 'create_guest_memfd', size: '0x7ffffffffffff000' },
      { op: 'create_guest_memfd', size: -4096, expect: { errno: 'EINVAL' } },
    ]),
    'n.json',
  );
  assert.equal(runScenario(sc, 'n.json', modelBackend()).status, 'passed');
});

test('an expectation that does not hold fails the step with the reason', () => {
  const sc = parseScenario(ok([{ op: 'create_guest_memfd', size: 4096, expect: { errno: 'EINVAL' } }]), 'e.json');
  const r = runScenario(sc, 'e.json', modelBackend());
  assert.equal(r.status, 'failed');
  assert.match(r.reason ?? '', /steps\[0\] \(create_guest_memfd\): expected EINVAL, got success/);
});

test('an unexpected errno fails the step; later steps do not run', () => {
  const sc = parseScenario(
    ok([
      { op: 'create_guest_memfd', size: 4095 },
      { op: 'fstat', fd: 0 },
    ]),
    'e.json',
  );
  const r = runScenario(sc, 'e.json', modelBackend());
  assert.equal(r.status, 'failed');
  assert.match(r.reason ?? '', /unexpected KVM_CREATE_GUEST_MEMFD: EINVAL/);
  assert.equal(r.steps.length, 1);
});

test('a reference to a name never given is a load error with the field named', () => {
  assert.match(parseError(ok([{ op: 'fstat', fd: 'nope' }]), 'r.json'), /^r\.json: steps\[0\]\.fd: no object named 'nope'/);
});

test('requires a capability the backend lacks: skipped with the capability named', () => {
  const sc = parseScenario(ok([{ op: 'fstat', fd: 0 }], { requires: ['memory_attributes'], kernel: '6.18' }), 'q.json');
  assert.equal(runScenario(sc, 'q.json', modelBackend()).status, 'passed');
  const r = runScenario(parseScenario(ok([{ op: 'fstat', fd: 0 }], { requires: ['numa_nodes:4'] }), 'q.json'), 'q.json', modelBackend());
  assert.equal(r.status, 'skipped');
  assert.match(r.reason ?? '', /numa_nodes:4: the host has 2 NUMA node/);
});

test('the reserved code region cannot be used by a program', () => {
  const sc = parseScenario(ok([{ op: 'run', vcpu: 0, program: [{ read: '0xffe00000', width: 4 }] }]), 'c.json');
  const r = runScenario(sc, 'c.json', modelBackend());
  assert.equal(r.status, 'failed');
  assert.match(r.reason ?? '', /reserved for the guest code/);
});
