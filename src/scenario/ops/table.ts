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
    const spelled = r.args === undefined ? `\`${r.name}\`` : r.args === 'N' ? `\`${r.name}:N\`` : r.args.map((a) => `\`${r.name}:${a}\``).join(', ');
    const implies = r.implies ? [...new Set([...(r.args === undefined || r.args === 'N' ? [undefined] : r.args)].flatMap((a) => r.implies?.(a) ?? []))] : [];
    return `- ${spelled}: ${r.about}${implies.length ? ` (implies ${implies.map((i) => `\`${i}\``).join(', ')})` : ''}`;
  }).join('\n');
}
