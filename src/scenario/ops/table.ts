/**
 * The README's op table and requirement list, made from the registries so that the documentation
 * cannot drift from the code (tests/ops-registry.test.ts holds the README to them).
 */
import { REQUIREMENT_TABLE } from '../requirements.js';
import { OP_LIST } from './index.js';

const cell = (s: string) => s.replaceAll('|', '\\|').replaceAll('\\\\|', '\\|');

export function opTableMarkdown(): string {
  const rows = OP_LIST.map((o) => {
    const req = 'requires' in o && o.requires ? o.requires.map((r) => `\`${r}\``).join(' or ') : '';
    const diff = o.diff === 'generated' ? 'yes' : 'no';
    return `| \`${o.op}\` | ${cell(o.mirrors)} | ${cell(o.doc)} | ${req} | ${diff} |`;
  });
  return ['| op | mirrors | fields | needs | diff |', '|---|---|---|---|---|', ...rows].join('\n');
}

export function requirementListMarkdown(): string {
  return REQUIREMENT_TABLE.map((r) => {
    const args = r.args === undefined || r.args === 'N' ? [undefined] : r.args;
    const spell = (a: string | undefined) => `\`${r.name}${a === undefined ? (r.args === 'N' ? ':N' : '') : `:${a}`}\``;
    const implying = args.filter((a) => (r.implies?.(a) ?? []).length > 0);
    const implied = [...new Set(implying.flatMap((a) => r.implies?.(a) ?? []))].map((i) => `\`${i}\``).join(', ');
    const note = !implying.length ? '' : implying.length === args.length ? ` (implies ${implied})` : ` (${implying.map(spell).join(', ')} imply ${implied})`;
    return `- ${args.map(spell).join(', ')}: ${r.about}${note}`;
  }).join('\n');
}
