/** `npm run bench`: run every benchmark in this process group and write BENCHMARKS.md. */
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const here = (f: string) => fileURLToPath(new URL(f, import.meta.url));
const sections = ['attributes.js', 'measure.js'].map((f) => execFileSync(process.execPath, ['--expose-gc', here(f)], { encoding: 'utf8' }));
const out = `# Benchmarks\n\nMeasured by \`npm run bench\` on ${new Date().toISOString().slice(0, 10)}, Node ${process.versions.node}.\n\n${sections.join('\n')}`;
writeFileSync(here('../../BENCHMARKS.md'), out);
process.stdout.write(out);
