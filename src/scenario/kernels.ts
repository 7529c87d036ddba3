/**
 * A scenario's `kernels`: the kernel releases its expectations hold on, as the scenario's author
 * states them from kernel facts (the release that changed a rule, a stable backport). The kvm
 * backend runs a scenario only on a kernel inside that range and lets the kernel judge it; nothing
 * here asks the model what a kernel would do.
 *
 * Syntax, in the style of semver ranges over kernel releases:
 *   ">=6.18"            6.18 and later
 *   "<6.18"             before 6.18
 *   "6.12 - 6.18"       6.12.0 up to every 6.18.y (both ends inclusive)
 *   ">=6.12.117 <6.13"  comparators separated by spaces must all hold
 *   "6.12 || >=7.3"     either side
 *   "6.12"              any 6.12.y
 * A bound compares only as many components as it names, so "<=6.18" includes 6.18.44.
 */

export type Version = readonly number[];
type Op = '<' | '<=' | '>' | '>=' | '=';
interface Comparator {
  readonly op: Op;
  readonly v: Version;
}
/** Alternatives (||) of conjunctions of comparators. */
export type KernelRange = readonly (readonly Comparator[])[];

export class KernelRangeError extends Error {}

const VERSION = /^(\d+)\.(\d+)(?:\.(\d+))?$/;

function parseVersion(s: string, whole: string): Version {
  const m = VERSION.exec(s);
  if (!m) throw new KernelRangeError(`'${whole}': '${s}' is not a kernel release like 6.18 or 6.12.117`);
  return m
    .slice(1)
    .filter((x) => x !== undefined)
    .map(Number);
}

/** The numeric part of a release string: '6.12.118-1~deb12u1' and '6.18.44-fc-v1300' both work. */
export function releaseVersion(release: string): Version | undefined {
  const m = /^(\d+)\.(\d+)(?:\.(\d+))?/.exec(release);
  return m ? m.slice(1).map((x) => Number(x ?? 0)) : undefined;
}

export function parseKernelRange(text: string): KernelRange {
  const alts = text.split('||').map((a) => a.trim());
  if (alts.some((a) => a === '')) throw new KernelRangeError(`'${text}': an empty alternative around '||'`);
  return alts.map((alt) => {
    const hyphen = /^(\S+)\s+-\s+(\S+)$/.exec(alt);
    if (hyphen)
      return [
        { op: '>=', v: parseVersion(hyphen[1] as string, text) },
        { op: '<=', v: parseVersion(hyphen[2] as string, text) },
      ];
    return alt.split(/\s+/).map((tok) => {
      const m = /^(<=|>=|<|>|=)?(.*)$/.exec(tok) as RegExpExecArray;
      return { op: (m[1] ?? '=') as Op, v: parseVersion(m[2] as string, text) };
    });
  });
}

/** Compare a release with a bound on the bound's components only. */
function cmp(release: Version, bound: Version): number {
  for (let i = 0; i < bound.length; i++) {
    const d = (release[i] ?? 0) - (bound[i] as number);
    if (d !== 0) return Math.sign(d);
  }
  return 0;
}

function holds(release: Version, c: Comparator): boolean {
  const d = cmp(release, c.v);
  switch (c.op) {
    case '<':
      return d < 0;
    case '<=':
      return d <= 0;
    case '>':
      return d > 0;
    case '>=':
      return d >= 0;
    case '=':
      return d === 0;
  }
}

export function inKernelRange(release: Version, range: KernelRange): boolean {
  return range.some((all) => all.every((c) => holds(release, c)));
}
