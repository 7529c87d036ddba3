/**
 * The repo's own scenario files, mutated (bytes and structure): every mutant either loads (and then
 * runs to a verdict on the model) or is refused with one line naming the file. No stack trace, no
 * hang, no raw control byte on the terminal (issue 13). Seeded and bounded: a few seconds.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { test } from 'node:test';
import fc from 'fast-check';
import { modelBackend, parseScenario, runScenario, ScenarioError } from '../src/scenario/index.js';
import { CLI, ROOT, SCENARIOS, scenarioFiles } from './support/files.js';

const FILES = scenarioFiles(SCENARIOS).map((p) => ({ name: basename(p), text: readFileSync(p, 'utf8'), yaml: /\.ya?ml$/.test(p) }));
const SEED = 1313;

/** Values a hand-edited file gets wrong: too wide, wrong type, misspelt, a flag without its list. */
const ODD_VALUES: unknown[] = [
  '0x10000000000001000',
  '0x100000000',
  2 ** 64, // a JSON number above 2^53
  -1,
  3,
  1.5,
  '',
  'mmap',
  'EINVALL',
  'KVM_CAP_GUEST_MEMFD_FLAG',
  'nope',
  [],
  {},
  null,
  true,
  '\u001b[2J',
];

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

/** Every path to a value in a JSON document. */
function paths(v: Json, at: (string | number)[] = []): (string | number)[][] {
  const out: (string | number)[][] = [at];
  if (Array.isArray(v))
    v.forEach((x, i) => {
      out.push(...paths(x, [...at, i]));
    });
  else if (v !== null && typeof v === 'object') for (const [k, x] of Object.entries(v)) out.push(...paths(x, [...at, k]));
  return out;
}

function parent(doc: Json, p: (string | number)[]): Record<string | number, Json> | undefined {
  let v: Json = doc;
  for (const k of p.slice(0, -1)) v = (v as Record<string | number, Json>)[k] as Json;
  return v !== null && typeof v === 'object' ? (v as Record<string | number, Json>) : undefined;
}

const structural = fc.record({ pick: fc.nat(), kind: fc.constantFrom('value', 'delete', 'rename', 'duplicate'), value: fc.constantFrom(...ODD_VALUES) });
const bytes = fc.record({
  at: fc.nat(),
  kind: fc.constantFrom('delete', 'insert', 'replace', 'truncate'),
  len: fc.integer({ min: 1, max: 8 }),
  junk: fc.string({ unit: 'binary', minLength: 1, maxLength: 8 }),
});

function structuralMutant(text: string, m: { pick: number; kind: string; value: unknown }): string {
  const doc = JSON.parse(text) as Json;
  const ps = paths(doc).filter((p) => p.length > 0);
  const p = ps[m.pick % ps.length] as (string | number)[];
  const obj = parent(doc, p);
  const key = p[p.length - 1] as string | number;
  if (obj) {
    if (m.kind === 'value') obj[key] = m.value as Json;
    else if (m.kind === 'delete') delete obj[key];
    else if (m.kind === 'rename' && typeof key === 'string') {
      obj[`${key.slice(0, -1)}${key.slice(-1) === 'e' ? 'a' : 'e'}`] = obj[key] as Json;
      delete obj[key];
    } else if (Array.isArray(obj)) obj.splice(Number(key), 0, obj[key] as Json);
  }
  return JSON.stringify(doc, null, 1);
}

function byteMutant(text: string, m: { at: number; kind: string; len: number; junk: string }): string {
  const at = m.at % (text.length + 1);
  if (m.kind === 'delete') return text.slice(0, at) + text.slice(at + m.len);
  if (m.kind === 'insert') return text.slice(0, at) + m.junk + text.slice(at);
  if (m.kind === 'replace') return text.slice(0, at) + m.junk + text.slice(at + m.junk.length);
  return text.slice(0, at);
}

/** Load, and run what loads; a refusal must be one printable line naming the file. */
function check(file: string, text: string): 'loaded' | 'refused' {
  let sc: ReturnType<typeof parseScenario>;
  try {
    sc = parseScenario(text, file);
  } catch (e) {
    assert.ok(e instanceof ScenarioError, `${file}: not a ScenarioError: ${e instanceof Error ? e.stack : e}\n${text}`);
    assert.ok(e.message.startsWith(`${file}: `), e.message);
    // biome-ignore lint/suspicious/noControlCharactersInRegex: asserting their absence
    assert.doesNotMatch(e.message, /[\u0000-\u001f\u007f-\u009f]/, 'one printable line');
    return 'refused';
  }
  const started = Date.now();
  const r = runScenario(sc, file, modelBackend());
  assert.ok(['passed', 'failed', 'skipped'].includes(r.status));
  assert.ok(Date.now() - started < 5000, `${file}: took ${Date.now() - started} ms`);
  return 'loaded';
}

const JSON_FILES = FILES.filter((f) => !f.yaml);

test('mutated scenario files load or are refused in one line, in process (bounded, seeded)', { timeout: 50_000 }, () => {
  const seen = { loaded: 0, refused: 0 };
  fc.assert(
    fc.property(fc.nat(), structural, (i, m) => {
      const f = JSON_FILES[i % JSON_FILES.length] as (typeof FILES)[number];
      seen[check(`s-${f.name}`, structuralMutant(f.text, m))]++;
    }),
    { seed: SEED, numRuns: 400 },
  );
  fc.assert(
    fc.property(fc.nat(), bytes, (i, m) => {
      const f = FILES[i % FILES.length] as (typeof FILES)[number];
      seen[check(`b-${f.name}`, byteMutant(f.text, m))]++;
    }),
    { seed: SEED, numRuns: 400 },
  );
  // both outcomes occur: the mutations reach past the parser
  assert.ok(seen.loaded > 50 && seen.refused > 200, JSON.stringify(seen));
});

test('mutated scenario files through the command: one line per bad file, the rest run, no stack', { timeout: 50_000 }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'guestmem-mutants-'));
  const mutants = fc.sample(fc.tuple(fc.nat(), fc.boolean(), structural, bytes), { seed: SEED, numRuns: 40 });
  const written = mutants.map(([i, byByte, s, b], n) => {
    const f = JSON_FILES[i % JSON_FILES.length] as (typeof FILES)[number];
    const p = join(dir, `m${n}-${f.name}`);
    writeFileSync(p, byByte ? byteMutant(f.text, b) : structuralMutant(f.text, s));
    return p;
  });
  const r = spawnSync(process.execPath, [CLI, 'run', ...written], { cwd: ROOT, encoding: 'utf8', timeout: 45_000 });
  assert.equal(r.signal, null, 'no hang');
  assert.ok([0, 1, 2].includes(r.status as number), `exit ${r.status}: ${r.stderr}`);
  assert.doesNotMatch(r.stderr, /\n\s+at |internal error/);
  const lines = r.stderr.trimEnd().split('\n').filter(Boolean);
  for (const l of lines)
    assert.ok(
      written.some((p) => l.startsWith(`guestmem: ${p}: `)),
      `names its file: ${l}`,
    );
  assert.match(r.stdout, /^\d+ passed, \d+ failed, \d+ skipped$/m);
  assert.equal(r.status === 2, lines.length > 0);
});
