/** Paths of the repository from inside dist/tests. */
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
export const SCENARIOS = join(ROOT, 'scenarios');
export const CLI = join(ROOT, 'dist/src/cli/main.js');

/** Every scenario file (.json, .yaml, .yml) under dir, sorted. */
export function scenarioFiles(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...scenarioFiles(p));
    else if (/\.(json|ya?ml)$/.test(name)) out.push(p);
  }
  return out;
}
