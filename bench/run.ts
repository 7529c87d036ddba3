/**
 * `npm run bench [-- --quick] [-- --out FILE]`: run every section, each in its own Node process (so
 * one section's heap and JIT state do not colour the next), and write BENCHMARKS.md (or FILE).
 * Progress goes to stderr; --quick uses tiny counts and only proves that every section runs.
 */
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { release } from 'node:os';
import { fileURLToPath } from 'node:url';

const args = process.argv.slice(2);
const quick = args.includes('--quick');
const outAt = args.indexOf('--out');
const out = outAt >= 0 ? args[outAt + 1] : fileURLToPath(new URL('../../BENCHMARKS.md', import.meta.url));
if (!out) throw new Error('--out needs a file name');

export const SECTIONS = ['model-kernel.js', 'scale.js', 'guest-program.js', 'ffi.js', 'measure.js', 'measure-process.js', 'diff.js', 'browser.js'];
const here = (f: string) => fileURLToPath(new URL(f, import.meta.url));
const sections = SECTIONS.map((f) => {
  process.stderr.write(`bench: section ${f}\n`);
  return execFileSync(process.execPath, ['--expose-gc', here(f), ...(quick ? ['--quick'] : [])], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
});
const head = `# Benchmarks\n\nMeasured by \`npm run bench${quick ? ' -- --quick' : ''}\` on ${new Date().toISOString().slice(0, 10)}: Node ${process.versions.node}, Linux ${release()}.${
  quick ? ' QUICK RUN: tiny counts, the figures mean nothing.' : ''
} Every ratio is taken in one run; the machine may be shared, so each section prints its load.\n\n`;
writeFileSync(out, head + sections.join('\n'));
process.stderr.write(`bench: wrote ${out}\n`);
