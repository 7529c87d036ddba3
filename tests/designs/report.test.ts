/**
 * `guestmem designs` (registered on a Command here: main.ts wires it), its JSON, the README section
 * built from the same table, the hazard file format's checks, and the v7 uAPI constants.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { Command } from 'commander';
import { designsReport, formatReport } from '../../src/cli/designs.js';
import { registerDesigns } from '../../src/cli/designs-command.js';
import { DESIGN_FLAGS } from '../../src/design-api.js';
import { HazardFileError, parseHazard } from '../../src/designs/hazards/schema.js';
import { DESIGN_NAMES } from '../../src/designs/registry.js';
import * as C from '../../src/designs/v7/constants.js';
import { kvm_userspace_memory_region2 } from '../../src/uapi/structs.js';
import { ROOT } from '../support/files.js';

async function designsCommand(...args: string[]): Promise<{ out: string; err: string; code: number | undefined }> {
  const program = new Command('guestmem').exitOverride();
  registerDesigns(program);
  let out = '';
  let err = '';
  const w = process.stdout.write.bind(process.stdout);
  const e = process.stderr.write.bind(process.stderr);
  const saved = process.exitCode;
  process.exitCode = undefined;
  process.stdout.write = ((s: string) => {
    out += s;
    return true;
  }) as typeof process.stdout.write;
  process.stderr.write = ((s: string) => {
    err += s;
    return true;
  }) as typeof process.stderr.write;
  try {
    await program.parseAsync(['designs', ...args], { from: 'user' });
  } finally {
    process.stdout.write = w;
    process.stderr.write = e;
  }
  const code = process.exitCode as number | undefined;
  process.exitCode = saved;
  return { out, err, code };
}

test('guestmem designs --json: every hazard under v7, negotiated, guest_memfd and inplace, each with the steps that produced it', async () => {
  const r = await designsCommand('--json');
  assert.equal(r.err, '');
  const j = JSON.parse(r.out) as {
    designs: { name: string }[];
    hazards: { hazard: string; outcomes: Record<string, { label: string; kind: string; steps: { op: string; got: string }[] }> }[];
  };
  assert.deepEqual(
    j.designs.map((d) => d.name),
    ['v7', 'negotiated', 'guest_memfd', 'inplace'],
  );
  assert.ok(j.hazards.length >= 8);
  for (const h of j.hazards) {
    for (const d of DESIGN_NAMES) {
      const o = h.outcomes[d];
      assert.ok(o, `${h.hazard} has no ${d} outcome`);
      assert.ok(o.steps.length > 0);
      assert.ok(['prevented', 'refused', 'damage', 'no damage'].includes(o.kind));
    }
  }
});

test('guestmem designs: a text table with hazards as rows and designs as columns', async () => {
  const r = await designsCommand();
  const [head, rule, first] = r.out.split('\n');
  assert.match(head ?? '', /^hazard\s+v7\s+negotiated\s+guest_memfd\s+inplace$/);
  assert.match(rule ?? '', /^-+\s+-+/);
  assert.match(first ?? '', /^mapped-at-bind\s+data exposed to/);
});

test('guestmem designs: an unreadable directory, an empty one, a broken hazard file: exit 2, one line with the full path', async () => {
  const missing = await designsCommand('--hazards', '/nonexistent/dir');
  assert.equal(missing.code, 2);
  assert.equal(missing.err, 'guestmem designs: --hazards /nonexistent/dir: cannot read: ENOENT\n');
  const empty = mkdtempSync(join(tmpdir(), 'guestmem-hazards-'));
  const e = await designsCommand('--hazards', empty);
  assert.equal(e.code, 2);
  assert.equal(e.err, `guestmem designs: ${empty}: no hazard files (*.json) in this directory\n`);
  const dir = mkdtempSync(join(tmpdir(), 'guestmem-hazards-'));
  writeFileSync(
    join(dir, 'bad.json'),
    JSON.stringify({ name: 'bad', concern: 'c', raised_by: 'r', vm: { type: 'sw_protected' }, steps: [{ op: 'no_such_op' }] }),
  );
  const r = await designsCommand('--hazards', dir);
  assert.equal(r.code, 2);
  assert.equal(r.err.split('\n').length, 2, r.err);
  assert.ok(r.err.startsWith(`guestmem designs: ${join(dir, 'bad.json')}: `), r.err);
});

test('guestmem designs: the text table fits the terminal, wrapping cells; --markdown keeps every cell whole', async () => {
  const report = designsReport();
  for (const width of [80, 100, 120]) {
    const text = formatReport(report, 'text', false, width);
    for (const line of text.split('\n')) assert.ok(line.length <= width, `${line.length} > ${width}: ${line}`);
    assert.match(text, /^mapped-at-bind\s+data\b/m);
  }
  // without a terminal (as here) the command fits 100 columns
  const r = await designsCommand();
  assert.ok(Math.max(...r.out.split('\n').map((l) => l.length)) <= 100);
  const md = formatReport(report, 'markdown');
  assert.match(md, /data exposed to the host; guest memory modified by the host/);
});

/** A Markdown table's cells, row by row, whatever its column padding (a formatter may align it). */
function cells(table: string): string[][] {
  return table
    .trim()
    .split('\n')
    .filter((row) => !/^\|[\s|:-]+\|$/.test(row))
    .map((row) =>
      row
        .replace(/^\|/, '')
        .replace(/\|$/, '')
        .split(/(?<!\\)\|/)
        .map((c) => c.trim()),
    );
}

test('the README section "Why guest_memfd looks the way it does" carries the table the runs produce', () => {
  const section = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const m = /<!-- hazard-table:begin -->\n([\s\S]*?)\n<!-- hazard-table:end -->/.exec(section);
  assert.ok(m?.[1], 'the section marks its table');
  assert.deepEqual(cells(m[1]), cells(formatReport(designsReport(), 'markdown')), 'regenerate with: guestmem designs --markdown');
  assert.match(section, /^## Why guest_memfd looks the way it does$/m);
});

test('hazard files: by_design must name every design once, with known names', () => {
  const base = { name: 'x', concern: 'c', raised_by: 'r', vm: { type: 'sw_protected' } };
  const bad = (steps: unknown[]) => () => parseHazard(JSON.stringify({ ...base, steps }), 'x.json');
  assert.throws(bad([{ by_design: { v7: { op: 'fstat', fd: 0 } } }]), HazardFileError);
  assert.throws(bad([{ by_design: { 'v7,negotiated,guest_memfd,inplace,v9': { op: 'fstat', fd: 0 } } }]), /unknown design "v9"/);
  assert.throws(bad([{ by_design: { 'v7,v7': null, 'negotiated,guest_memfd,inplace': null } }]), /given twice/);
  assert.throws(bad([{ op: 'fstat', fd: 0, stage: 'later' }]), HazardFileError);
  assert.doesNotThrow(bad([{ by_design: { 'v7,negotiated': { op: 'fstat', fd: 0 }, 'guest_memfd,inplace': null }, stage: 'hazard' }]));
});

test('v7 uAPI constants: the scenario vocabulary matches the kernel values, and _ext is REGION2 byte for byte', () => {
  assert.deepEqual(DESIGN_FLAGS.mfd, C.MFD_FLAGS);
  assert.deepEqual(DESIGN_FLAGS.seals, C.SEALS);
  assert.deepEqual(DESIGN_FLAGS.mem, C.V7_MEM_FLAGS);
  assert.equal(DESIGN_FLAGS.fcntl.add_seals, C.F_ADD_SEALS);
  assert.equal(DESIGN_FLAGS.fcntl.get_seals, C.F_GET_SEALS);
  assert.equal(C.kvm_userspace_memory_region_ext.size, 160);
  const ext = Object.values(C.kvm_userspace_memory_region_ext.fields).map((f) => [f.type, f.offset, f.count ?? 1]);
  const r2 = Object.values(kvm_userspace_memory_region2.fields).map((f) => [f.type, f.offset, f.count ?? 1]);
  assert.deepEqual(ext, r2);
  assert.equal(C.KVM_SET_USER_MEMORY_REGION, 0x4020ae46);
  assert.equal(C.KVM_MEMORY_ENCRYPT_REG_REGION, 0x8010aebb);
  assert.equal(C.KVM_MEMORY_ENCRYPT_UNREG_REGION, 0x8010aebc);
  assert.equal(C.F_SEAL_AUTO_ALLOCATE, 0x20);
  assert.equal(C.MFD_INACCESSIBLE, 0x8);
  assert.equal(C.KVM_EXIT_MEMORY_FAULT_V7, 37);
});
