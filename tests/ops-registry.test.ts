/**
 * One op, one place: every op in the registry says everything an op must say, the README's op
 * table and requirement list are the registry's, the differential generator draws exactly the ops
 * that say it does, and every scenario declares what its ops need.
 */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { test } from 'node:test';
import fc from 'fast-check';
import { commandArbitraries, type DiffModel, type StepCommand } from '../src/diff/commands.js';
import { parseScenario } from '../src/scenario/index.js';
import { OP_LIST } from '../src/scenario/ops/index.js';
import { opTableMarkdown, requirementListMarkdown } from '../src/scenario/ops/table.js';
import { implied, isRequirement } from '../src/scenario/requirements.js';
import { ROOT, SCENARIOS, scenarioFiles } from './support/files.js';

test('every op has its schema, runner, README text, needs and a generator entry or the reason it has none', () => {
  const seen = new Set<string>();
  for (const o of OP_LIST) {
    assert.ok(!seen.has(o.op), `${o.op} is registered twice`);
    seen.add(o.op);
    assert.equal(o.schema.shape.op.value, o.op, `${o.op}: its schema is for another op`);
    assert.equal(typeof o.run, 'function', `${o.op}: no runner`);
    assert.ok(o.mirrors.length > 3, `${o.op}: says not what it mirrors`);
    assert.ok(o.doc.length > 2, `${o.op}: no field text for the README`);
    for (const f of Object.keys(o.fields)) assert.ok(o.doc.includes(`\`${f}\``) || o.doc.startsWith('the '), `${o.op}: README text lacks its field ${f}`);
    if (o.diff !== 'generated') assert.ok(o.diff.none.length > 20, `${o.op}: the generator skips it without a reason`);
    for (const r of ('requires' in o && o.requires) || []) assert.ok(r === 'design' || isRequirement(r), `${o.op}: needs unknown requirement ${r}`);
  }
});

/** Between these markers the README holds what the registries print. */
function section(readme: string, name: string): { start: number; end: number } {
  const begin = `<!-- ${name}:begin -->\n`;
  const start = readme.indexOf(begin);
  const end = readme.indexOf(`<!-- ${name}:end -->`);
  assert.ok(start >= 0 && end > start, `README.md has no ${name} section`);
  return { start: start + begin.length, end };
}

test('the README op table and requirement list are the registries (GUESTMEM_WRITE_DOCS=1 rewrites them)', () => {
  const file = join(ROOT, 'README.md');
  let readme = readFileSync(file, 'utf8');
  for (const [name, text] of [
    ['ops', opTableMarkdown()],
    ['requirements', requirementListMarkdown()],
  ] as const) {
    const { start, end } = section(readme, name);
    if (process.env.GUESTMEM_WRITE_DOCS === '1') readme = `${readme.slice(0, start)}${text}\n${readme.slice(end)}`;
    else assert.equal(readme.slice(start, end), `${text}\n`, `README ${name} section is stale: run the test with GUESTMEM_WRITE_DOCS=1`);
  }
  if (process.env.GUESTMEM_WRITE_DOCS === '1') writeFileSync(file, readme);
});

test('the differential generator draws every op that says "generated" and none that says why not', () => {
  const drawn = new Set<string>();
  const model: DiffModel = { gmems: ['g0', 'g1'], maps: ['m0'], fds: ['f0'], vcpuLoaded: true, counter: 2 };
  for (const guestMemfd of [true, false]) {
    for (const arb of commandArbitraries({ attributes: true, guestMemfd })) {
      for (const c of fc.sample(arb, { numRuns: 40, seed: 7 })) {
        const made = (c as StepCommand).make(model);
        for (const s of Array.isArray(made) ? made : [made]) drawn.add(s.op);
      }
    }
  }
  for (const o of OP_LIST) {
    if (o.diff === 'generated') assert.ok(drawn.has(o.op), `${o.op} says the generator draws it, but it never does`);
    else assert.ok(!drawn.has(o.op), `${o.op} says ${o.diff.none}, but the generator draws it`);
  }
});

test('every scenario declares what its ops need, unless the step expects the errno of not having it', () => {
  const missing: string[] = [];
  const needs = new Map(OP_LIST.map((o) => [o.op as string, ('requires' in o && o.requires) || []]));
  for (const file of scenarioFiles(SCENARIOS)) {
    const sc = parseScenario(readFileSync(file, 'utf8'), file);
    const declared = new Set((sc.requires ?? []).flatMap(implied));
    sc.steps.forEach((s, i) => {
      const any = needs.get(s.op) ?? [];
      if (any.length === 0 || (s.expect && 'errno' in s.expect)) return;
      const met = any.some((r) => (r === 'design' ? sc.design !== undefined : declared.has(r)));
      if (!met) missing.push(`${relative(ROOT, file)} steps[${i}] (${s.op}) needs ${any.join(' or ')}`);
    });
  }
  assert.deepEqual(missing, []);
});
