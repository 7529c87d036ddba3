/**
 * Checks a scenario needs no backend for, made when the file loads so that a typo is a load error
 * (exit status 2, before any step ran) and not a failure half-way through: names given by `as` and
 * the references to them, errno and capability names, `requires` entries, and the data of writes.
 * Each problem names its path (`steps[3].fd: ...`) and, for a misspelt name, the nearest valid one.
 */
import { CAP } from '../uapi/constants.js';
import { ERRNO } from '../uapi/errno.js';
import type { Kind } from './context.js';
import { expectProblems } from './judge.js';
import { OP_LIST } from './ops/index.js';
import { isRequirement, REQUIREMENTS } from './requirements.js';
import type { Scenario, Step } from './schema.js';
import { nearest, unknownName } from './suggest.js';

const KIND_TEXT: Record<Kind, string> = { kvm: '/dev/kvm', vm: 'a VM', fd: 'a file descriptor', map: 'a mapping' };

/** Integer strings are raw numbers (fd 9999 gives EBADF); anything else is a name. */
const NUMBER_RE = /^-?(0x[0-9a-f_]+|0b[01_]+|[0-9_]+)$/i;

function requirementProblem(req: string): string | undefined {
  if (isRequirement(req)) return undefined;
  return unknownName('requirement', req, REQUIREMENTS);
}

/** Which fields of a step refer to objects, and of which kinds. */
const FD_KINDS: readonly Kind[] = ['kvm', 'vm', 'fd'];
const REFS: Readonly<Record<string, readonly Kind[]>> = {
  fd: FD_KINDS,
  guest_memfd: FD_KINDS,
  private_fd: FD_KINDS,
  map: ['map'],
  source: ['map'],
  userspace_addr: ['map'],
  uaddr: ['map'],
  source_addr: ['map'],
};

/** What a step's `as` makes, and which ops take data (`hex`, or `fill` with `length`): the ops say. */
const MAKES: ReadonlyMap<string, Kind> = new Map(OP_LIST.flatMap((o) => ('makes' in o && o.makes ? [[o.op, o.makes] as const] : [])));
const DATA_OPS = new Set(OP_LIST.filter((o) => 'fill' in o.schema.shape).map((o) => o.op));

class Names {
  readonly made = new Map<string, { kind: Kind; at: string }>([
    ['kvm', { kind: 'kvm', at: 'built in' }],
    ['vm', { kind: 'vm', at: "the scenario's first VM" }],
  ]);
  readonly problems: string[] = [];

  ref(v: unknown, kinds: readonly Kind[], at: string): void {
    if (typeof v === 'object' && v !== null && 'map' in v) {
      this.ref((v as { map: unknown }).map, ['map'], `${at}.map`);
      return;
    }
    if (typeof v !== 'string' || NUMBER_RE.test(v)) return;
    const o = this.made.get(v);
    if (!o) {
      const near = nearest(
        v,
        [...this.made].filter(([, x]) => kinds.includes(x.kind)).map(([n]) => n),
      );
      this.problems.push(
        `${at}: no object named '${v}' (names come from "as" in an earlier step, plus "kvm" and "vm")${near ? ` (did you mean '${near}'?)` : ''}`,
      );
    } else if (!kinds.includes(o.kind)) {
      this.problems.push(`${at}: '${v}' is ${KIND_TEXT[o.kind]} (${o.at}), not ${kinds.map((k) => KIND_TEXT[k]).join(' or ')}`);
    }
  }

  define(name: string, kind: Kind, at: string): void {
    const o = this.made.get(name);
    if (o) this.problems.push(`${at}.as: the name '${name}' is already taken (${o.at})`);
    else this.made.set(name, { kind, at });
  }
}

function capProblem(cap: unknown, at: string): string | undefined {
  if (typeof cap !== 'string' || !cap.startsWith('KVM_CAP_') || cap in CAP) return undefined;
  return `${at}.cap: ${unknownName('capability', cap, Object.keys(CAP))}`;
}

function stepProblems(s: Step, at: string, names: Names): void {
  const rec = s as unknown as Record<string, unknown>;
  if (s.vm !== undefined) names.ref(s.vm, ['vm'], `${at}.vm`);
  for (const [field, kinds] of Object.entries(REFS)) if (rec[field] !== undefined) names.ref(rec[field], kinds, `${at}.${field}`);
  if (s.op === 'check_extension' && s.scope !== undefined && s.scope !== 'system') names.ref(s.scope, ['vm'], `${at}.scope`);
  if (s.op === 'check_extension' || s.op === 'enable_cap') {
    const p = capProblem(s.cap, at);
    if (p) names.problems.push(p);
  }
  const errno = s.expect?.errno;
  if (errno !== undefined && !(errno in ERRNO) && !/^E\d+$/.test(errno))
    names.problems.push(`${at}.expect.errno: ${unknownName('errno', errno, Object.keys(ERRNO))}`);
  names.problems.push(...expectProblems(s).map((p) => `${at}.${p}`));
  if (DATA_OPS.has(s.op)) {
    const d = s as { hex?: string; fill?: number; length?: unknown };
    if (d.hex === undefined && (d.fill === undefined || d.length === undefined)) names.problems.push(`${at}: ${s.op} needs "hex", or "fill" with "length"`);
    else if (d.hex !== undefined && (d.fill !== undefined || d.length !== undefined))
      names.problems.push(`${at}: give "hex" or "fill" with "length", not both`);
  }
  // a step's own references come before the name it makes (dup's fd, mmap's fd)
  const as = rec.as;
  const kind = MAKES.get(s.op);
  if (typeof as === 'string' && kind) names.define(as, kind, at);
}

/** Every problem of this kind in the scenario, in file order. */
export function nameProblems(sc: Scenario): string[] {
  const names = new Names();
  (sc.requires ?? []).forEach((r, i) => {
    const p = requirementProblem(r);
    if (p) names.problems.push(`requires[${i}]: ${p}`);
  });
  sc.steps.forEach((s, i) => {
    stepProblems(s, `steps[${i}]`, names);
  });
  return names.problems;
}
