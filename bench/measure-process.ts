/**
 * The whole `guestmem measure` process against the reference tool (issue 18 §4): sev-snp-measure,
 * when $SEV_SNP_MEASURE names it (its sev-snp-measure.py, run with python3, or an executable), on the
 * same firmware and options, in one run; and each one's start-up cost (`--help`, which loads the
 * program and measures nothing). The digests must agree, or the figures mean nothing.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { count, loadLine, median, print, progress } from './lib.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const CLI = `${ROOT}dist/src/cli/main.js`;
const OVMF = `${ROOT}../shared/firmware/OVMF.amdsev.fd`;
const ref = process.env.SEV_SNP_MEASURE;
const ARGS = ['--mode', 'snp', '--vcpus', '4', '--vcpu-type', 'EPYC-v4', '--ovmf', OVMF];

function timed(cmd: string, args: readonly string[]): { ms: number; out: string } {
  const t0 = performance.now();
  const out = execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  return { ms: performance.now() - t0, out: out.trim() };
}

const why = !ref
  ? 'SEV_SNP_MEASURE is not set (point it to sev-snp-measure.py or the installed sev-snp-measure)'
  : !existsSync(OVMF)
    ? `no firmware at ${OVMF}`
    : undefined;
if (why) {
  print(['## guestmem measure vs sev-snp-measure, whole processes', '', `Not measured: ${why}.`]);
} else {
  progress('measure: the guestmem measure process vs sev-snp-measure');
  const [refCmd, refArgs] = ref?.endsWith('.py') ? ['python3', [ref]] : [ref as string, []];
  const ours = (a: readonly string[]) => timed(process.execPath, [CLI, 'measure', ...a]);
  const theirs = (a: readonly string[]) => timed(refCmd, [...refArgs, ...a]);
  const rounds = count(9, 1);
  const runs = { ours: [] as number[], theirs: [] as number[], oursHelp: [] as number[], theirsHelp: [] as number[] };
  let digests: [string, string] = ['', ''];
  // alternate, so that load on a shared machine falls on both alike
  for (let r = 0; r < rounds; r++) {
    const o = ours(ARGS);
    const t = theirs(ARGS);
    digests = [o.out.split('\n').at(-1) ?? '', t.out.split('\n').at(-1) ?? ''];
    runs.ours.push(o.ms);
    runs.theirs.push(t.ms);
    runs.oursHelp.push(ours(['--help']).ms);
    runs.theirsHelp.push(theirs(['--help']).ms);
  }
  if (digests[0] !== digests[1]) throw new Error(`the digests differ: guestmem ${digests[0]}, sev-snp-measure ${digests[1]}`);
  const m = (xs: number[]) => median(xs);
  print([
    '## guestmem measure vs sev-snp-measure, whole processes',
    '',
    `\`guestmem measure ${ARGS.slice(0, -1).join(' ')} OVMF.amdsev.fd\` against sev-snp-measure with the same arguments (same digest, ${digests[0].slice(0, 16)}...), each a fresh process; median of ${rounds} alternating rounds; ${loadLine()}. Start-up is the same program with \`--help\`.`,
    '',
    '| process | digest | start-up (--help) | digest minus start-up |',
    '|---|---|---|---|',
    `| guestmem measure (Node ${process.versions.node}) | ${m(runs.ours).toFixed(0)} ms | ${m(runs.oursHelp).toFixed(0)} ms | ${(m(runs.ours) - m(runs.oursHelp)).toFixed(0)} ms |`,
    `| sev-snp-measure (${refCmd === 'python3' ? 'Python' : refCmd}) | ${m(runs.theirs).toFixed(0)} ms | ${m(runs.theirsHelp).toFixed(0)} ms | ${(m(runs.theirs) - m(runs.theirsHelp)).toFixed(0)} ms |`,
    '',
    `Whole process: guestmem takes ${(m(runs.ours) / m(runs.theirs)).toFixed(2)}x the reference tool's time.${
      m(runs.oursHelp) > m(runs.theirsHelp)
        ? " The difference is start-up: the guestmem command loads every command's modules (the scenario schema, the model, the lab driver, fast-check for the differential tester) before it runs one, where the digest itself takes a few milliseconds."
        : ''
    }`,
  ]);
}
