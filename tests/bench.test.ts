/**
 * `npm run bench -- --quick` runs every section (tiny counts) and writes each heading: run into a
 * temporary file, never over BENCHMARKS.md. Sections needing /dev/kvm or gcc say "not run" where
 * those are missing, so the headings are there on any machine.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const HEADINGS = [
  '# Benchmarks',
  '## Model vs kernel, per operation',
  '## Model scale: attributes, random conversions, memory',
  '## A guest program of 10^6 accesses: model vs /dev/kvm',
  '## FFI vs C: the typed kvm layer against the same ioctls in C',
  '## Measure: SNP launch digest vs the SHA-384 limit',
  '## The differential tester: steps per second',
  '## The browser',
];

test('bench --quick writes every section', { timeout: 90_000 }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'guestmem-bench-test-'));
  try {
    const out = join(dir, 'BENCHMARKS.md');
    const run = fileURLToPath(new URL('../bench/run.js', import.meta.url));
    execFileSync(process.execPath, [run, '--quick', '--out', out], { stdio: ['ignore', 'ignore', 'pipe'], timeout: 80_000 });
    const text = readFileSync(out, 'utf8');
    for (const h of HEADINGS) assert.ok(text.includes(`${h}\n`), `missing section heading: ${h}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
