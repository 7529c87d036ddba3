/**
 * What a scenario file's load refuses (issue 13): each is one line naming the file and the place,
 * raised before any step runs, with the nearest valid name for a misspelt one.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type Kvm, KvmError } from '../src/api.js';
import { modelBackend, parseScenario, runScenario, ScenarioError, unmetRequirement } from '../src/scenario/index.js';
import { REQUIREMENTS } from '../src/scenario/requirements.js';
import { editDistance, nearest } from '../src/scenario/suggest.js';

const sc = (steps: unknown[], extra: Record<string, unknown> = {}) => JSON.stringify({ name: 't', steps, ...extra });

function loadError(text: string, file = 'f.json'): string {
  try {
    parseScenario(text, file);
  } catch (e) {
    assert.ok(e instanceof ScenarioError, `expected a ScenarioError, got ${e}`);
    assert.ok(!e.message.includes('\n'), 'one line');
    // biome-ignore lint/suspicious/noControlCharactersInRegex: asserting their absence
    assert.doesNotMatch(e.message, /[\u0000-\u001f\u007f]/, 'no raw control bytes');
    return e.message;
  }
  assert.fail('loaded without error');
}

test('an expect key the op cannot produce is a load error naming the ops that do', () => {
  assert.match(loadError(sc([{ op: 'fstat', fd: 0, expect: { reads: [1] } }])), /steps\[0\]\.expect\.reads: fstat has no "reads" result \(only run has one\)/);
  assert.match(
    loadError(sc([{ op: 'run', vcpu: 0, program: ['hlt'], expect: { fstat: { size: 0 } } }])),
    /steps\[0\]\.expect\.fstat: run has no "fstat" result \(only fstat has one\)/,
  );
  assert.match(
    loadError(sc([{ op: 'fallocate', fd: 0, mode: 0, offset: 0, length: 1, expect: { fault: 'SIGBUS' } }])),
    /expect\.fault: fallocate is not a host access/,
  );
});

test('edit distance and the nearest name', () => {
  assert.equal(editDistance('EINVALL', 'EINVAL'), 1);
  assert.equal(editDistance('', 'abc'), 3);
  assert.equal(nearest('EINVALL', ['EPERM', 'EINVAL', 'ENOENT']), 'EINVAL');
  assert.equal(nearest('zzzzzz', ['EPERM', 'EINVAL']), undefined);
});

test('a number wider than its field is a load error naming the field and its range (bug 4)', () => {
  assert.match(
    loadError(sc([{ op: 'create_guest_memfd', size: '0x10000000000001000' }])),
    /^f\.json: steps\[0\]\.size: 0x10000000000001000 is out of range for a u64 \(-0x8000000000000000 to 0xffffffffffffffff\)$/,
  );
  const slot = { op: 'set_user_memory_region2', slot: '0x100000000', guest_phys_addr: 0, memory_size: 0 };
  assert.match(loadError(sc([slot])), /steps\[0\]\.slot: 0x100000000 is out of range for a u32 \(-0x80000000 to 0xffffffff\)/);
  assert.match(loadError(sc([{ op: 'fstat', fd: '0x100000000' }])), /steps\[0\]\.fd: .* out of range for a int/);
  assert.match(loadError(sc([{ op: 'run', vcpu: 0, program: [{ out: '0x10000', value: 0 }] }])), /steps\[0\]\.program\[0\]\.out: .*u16/);
  assert.match(loadError(sc([{ op: 'enable_cap', cap: 1, args: [0, '0x10000000000000000'] }])), /steps\[0\]\.args\[1\]: .*u64/);
  assert.match(loadError(sc([{ op: 'read', fd: 0, length: '0x100000000000' }])), /steps\[0\]\.length: .* a byte count the runner allocates/);
});

test('what C and the kernel reinterpret stays: -1 in a u64, 2^63 in a loff_t', () => {
  const s = parseScenario(
    sc([
      { op: 'create_guest_memfd', size: -1, expect: { errno: 'EINVAL' } },
      { op: 'create_guest_memfd', size: 4096, as: 'g' },
      { op: 'fallocate', fd: 'g', mode: ['keep_size', 'punch_hole'], offset: '0x8000000000000000', length: 4096, expect: { errno: 'EINVAL' } },
      { op: 'set_user_memory_region2', slot: '0xffffffff', guest_phys_addr: 0, memory_size: 0, expect: { errno: 'EINVAL' } },
    ]),
    'w.json',
  );
  const r = runScenario(s, 'w.json', modelBackend());
  assert.equal(r.status, 'passed', r.reason);
});

test('names are checked at load: unknown, duplicate, wrong kind, with the nearest name (bug 6)', () => {
  const g = { op: 'create_guest_memfd', size: 4096, as: 'gmem' };
  assert.match(loadError(sc([g, { op: 'fstat', fd: 'gmme' }])), /^f\.json: steps\[1\]\.fd: no object named 'gmme' .*\(did you mean 'gmem'\?\)$/);
  assert.match(loadError(sc([g, g])), /steps\[1\]\.as: the name 'gmem' is already taken \(steps\[0\]\)/);
  assert.match(loadError(sc([{ ...g, as: 'vm' }])), /steps\[0\]\.as: the name 'vm' is already taken/);
  assert.match(loadError(sc([g, { op: 'host_read', map: 'gmem', length: 1 }])), /steps\[1\]\.map: 'gmem' is a file descriptor \(steps\[0\]\), not a mapping/);
  assert.match(loadError(sc([{ op: 'fstat', fd: '9abc' }])), /steps\[0\]\.fd: no object named '9abc'/);
  assert.match(loadError(sc([{ op: 'check_extension', cap: 1, scope: 'vm2' }])), /steps\[0\]\.scope: no object named 'vm2'/);
});

test('errno and capability names are checked at load, with a suggestion (bug 6)', () => {
  assert.match(
    loadError(sc([{ op: 'create_guest_memfd', size: 1, expect: { errno: 'EINVALL' } }])),
    /steps\[0\]\.expect\.errno: unknown errno 'EINVALL' \(did you mean 'EINVAL'\?\)/,
  );
  assert.match(
    loadError(sc([{ op: 'check_extension', cap: 'KVM_CAP_GUEST_MEMFD_FLAG' }])),
    /steps\[0\]\.cap: unknown capability 'KVM_CAP_GUEST_MEMFD_FLAG' \(did you mean 'KVM_CAP_GUEST_MEMFD_FLAGS'\?\)/,
  );
  // an errno guestmem has no name for is written E<number>, as errnoName prints it
  parseScenario(sc([{ op: 'fstat', fd: 0, expect: { errno: 'E123' } }]), 'e.json');
});

test('requires entries are checked at load, naming the file (bug 5)', () => {
  assert.match(
    loadError(sc([{ op: 'fstat', fd: 0 }], { requires: ['guest_memfd_flag:mmap'] }), 'r.json'),
    /^r\.json: requires\[0\]: unknown requirement 'guest_memfd_flag:mmap' \(did you mean 'guest_memfd_flags:mmap'\?\)$/,
  );
  parseScenario(sc([{ op: 'fstat', fd: 0 }], { requires: ['numa_nodes:2', 'address_spaces:2'] }), 'r.json');
});

test('every requirement the load accepts is one the runner knows', () => {
  const kvm = { checkExtension: () => 0 } as unknown as Kvm;
  for (const r of REQUIREMENTS) {
    try {
      unmetRequirement(kvm, r.replace(':N', ':1'), 1);
    } catch (e) {
      if (!(e instanceof KvmError)) assert.fail(`${r}: ${e}`);
    }
  }
});

test('a write needs hex, or fill with length (bug 7)', () => {
  assert.match(loadError(sc([{ op: 'write', fd: 0, length: 4 }])), /steps\[0\]: write needs "hex", or "fill" with "length"/);
  assert.match(loadError(sc([{ op: 'pwrite', fd: 0, offset: 0, fill: 1 }])), /steps\[0\]: pwrite needs/);
});

test('friction: flag names alone, widths, big JSON numbers, unknown kernels, ops and keys', () => {
  assert.match(loadError(sc([{ op: 'create_guest_memfd', size: 4096, flags: 'mmap' }])), /steps\[0\]\.flags: flags are a list: \["mmap"\]/);
  assert.match(
    loadError(sc([{ op: 'run', vcpu: 0, program: [{ write: 0, width: 3, value: 1 }] }])),
    /steps\[0\]\.program\[0\]\.width: expected width 1, 2, 4 or 8/,
  );
  assert.match(
    loadError('{"name":"t","steps":[{"op":"create_guest_memfd","size":18446744073709551615}]}'),
    /steps\[0\]\.size: 18446744073709551615 is above 2\^53.*write it as a string, "0xffffffffffffffff"/,
  );
  assert.match(loadError('name: t\nsteps:\n  - op: create_guest_memfd\n    size: 18446744073709551615\n', 'y.yaml'), /steps\[0\]\.size: .*above 2\^53/);
  assert.match(loadError(sc([{ op: 'fstat', fd: 0 }], { kernel: '6.17' })), /kernel: .*"6\.18"/);
  assert.match(
    loadError(sc([{ op: 'create_guest_memfdd', size: 1 }])),
    /steps\[0\]\.op: unknown op 'create_guest_memfdd' \(did you mean 'create_guest_memfd'\?\)/,
  );
  assert.match(loadError(sc([{ op: 'create_guest_memfd', sise: 1 }])), /unknown key "sise" \(did you mean "size"\?\)/);
});

test('friction: a BOM is accepted, a duplicate JSON key is not, binary is not echoed', () => {
  const s = parseScenario(`\ufeff${sc([{ op: 'fstat', fd: 0, expect: { errno: 'EBADF' } }])}`, 'bom.json');
  assert.equal(s.steps.length, 1);
  assert.match(loadError('{"name":"a","name":"b","steps":[]}'), /^f\.json: \(top level\): the key "name" appears twice$/);
  assert.match(loadError('{"name":"a","steps":[{"op":"fstat","fd":0,"fd":1}]}'), /steps\[0\]: the key "fd" appears twice/);
  assert.match(loadError('\x7fELF\x02\x01\x01\x00\x00\x00'), /not a scenario file: binary data/);
  assert.match(loadError('\x1b[31m{'), /not valid JSON: .*\\x1b/);
  assert.match(loadError('name: "\x1b[2J"\nsteps: [', 'g.yaml'), /^g\.yaml: not valid YAML/);
});
