/** Parse and validate scenario text (JSON or YAML). File reading is the caller's (CLI or browser). */
import { parseDocument } from 'yaml';
import { bigNumberAdvice, jsonProblem } from './json-check.js';
import { nameProblems } from './names.js';
import { OP_LIST } from './ops/index.js';
import { printable } from './printable.js';
import { ExpectSchema, type Scenario, ScenarioSchema } from './schema.js';
import { nearest, unknownName } from './suggest.js';
import { ScenarioError } from './values.js';
import { widthProblems } from './widths.js';

export { printable } from './printable.js';

function path(p: readonly PropertyKey[]): string {
  let s = '';
  for (const k of p) s += typeof k === 'number' ? `[${k}]` : s ? `.${String(k)}` : String(k);
  return s || '(top level)';
}

/** Keys each object of the format takes, for "did you mean" on an unknown key. */
const STEP_KEYS = new Map<string, string[]>(OP_LIST.map((o) => [o.op, Object.keys(o.schema.shape)]));
const OPS = [...STEP_KEYS.keys()];

function at(data: unknown, p: readonly PropertyKey[]): unknown {
  let v = data;
  for (const k of p) v = v !== null && typeof v === 'object' ? (v as Record<PropertyKey, unknown>)[k] : undefined;
  return v;
}

function keysAt(data: unknown, p: readonly PropertyKey[]): string[] {
  if (p.length === 0) return Object.keys(ScenarioSchema.shape);
  if (p.length === 2 && p[0] === 'steps') return STEP_KEYS.get(String((at(data, p) as { op?: unknown })?.op)) ?? [];
  if (p.length === 3 && p[0] === 'steps' && p[2] === 'expect') return Object.keys(ExpectSchema.shape);
  return [];
}

type Issue = { code: string; path: PropertyKey[]; message: string; errors?: Issue[][]; keys?: string[]; discriminator?: string };

/**
 * A union's own message ("expected "hlt" or one of ...") hides the real problem when the input
 * clearly meant one member ({"write":..,"width":3}): go into the member that failed only below its
 * top level (it took the input's shape), the one with the fewest issues.
 */
function refine(i: Issue): Issue[] {
  if (i.code !== 'invalid_union' || !i.errors?.length) return [i];
  const fits = i.errors.filter((branch) => branch.length > 0 && branch.every((x) => x.path.length > 0));
  if (fits.length === 0) return [i];
  const best = fits.reduce((a, b) => (b.length < a.length ? b : a));
  return best.flatMap((x) => refine({ ...x, path: [...i.path, ...x.path] }));
}

function describe(i: Issue, data: unknown): string {
  const where = path(i.path);
  if (i.code === 'invalid_union' && i.discriminator === 'op') {
    const p = i.path.at(-1) === 'op' ? i.path : [...i.path, 'op'];
    const op = at(data, p);
    if (typeof op === 'string') return `${path(p)}: ${unknownName('op', op, OPS)}`;
    return `${path(p)}: expected an op name like "create_guest_memfd"`;
  }
  if (i.code === 'unrecognized_keys' && i.keys) {
    const known = keysAt(data, i.path);
    return `${where}: ${i.keys
      .map((k) => {
        const n = nearest(k, known);
        return `unknown key "${k}"${n ? ` (did you mean "${n}"?)` : ''}`;
      })
      .join(', ')}`;
  }
  return `${where}: ${i.message}`;
}

/** Integers the YAML parser kept exact (intAsBigInt): small ones become numbers, big ones an error. */
function numbers(v: unknown, p: string): unknown {
  if (typeof v === 'bigint') {
    if (v > BigInt(Number.MAX_SAFE_INTEGER) || v < -BigInt(Number.MAX_SAFE_INTEGER))
      throw new ScenarioError(`${p || '(top level)'}: ${bigNumberAdvice(String(v))}`);
    return Number(v);
  }
  if (typeof v === 'number' && Number.isInteger(v) && !Number.isSafeInteger(v)) throw new ScenarioError(`${p || '(top level)'}: ${bigNumberAdvice(String(v))}`);
  if (Array.isArray(v)) return v.map((x, i) => numbers(x, `${p}[${i}]`));
  if (v !== null && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, numbers(x, p ? `${p}.${k}` : k)]));
  return v;
}

function parseText(text: string, file: string): unknown {
  // A UTF-8 byte order mark (some Windows editors write one) is not part of the text.
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  const nul = text.indexOf('\0');
  if (nul >= 0) throw new ScenarioError(`${file}: not a scenario file: binary data (a NUL byte at offset ${nul})`);
  if (!/\.ya?ml$/i.test(file)) {
    let data: unknown;
    try {
      data = JSON.parse(text);
    } catch (e) {
      throw new ScenarioError(`${file}: not valid JSON: ${printable((e as Error).message.split('\n')[0] ?? '')}`);
    }
    const problem = jsonProblem(text);
    if (problem) throw new ScenarioError(`${file}: ${printable(problem)}`);
    return data;
  }
  const doc = parseDocument(text, { uniqueKeys: true, intAsBigInt: true });
  const err = doc.errors[0];
  if (err) throw new ScenarioError(`${file}: not valid YAML: ${printable(err.message.split('\n')[0] ?? '')}`);
  try {
    return numbers(doc.toJS({ maxAliasCount: 100 }), '');
  } catch (e) {
    if (e instanceof ScenarioError) throw new ScenarioError(`${file}: ${printable(e.message)}`);
    throw new ScenarioError(`${file}: not valid YAML: ${printable((e as Error).message.split('\n')[0] ?? '')}`);
  }
}

/**
 * Parse `text` as the scenario in `file`. Errors are one line each, naming the file and the place:
 * `file: steps[3].size: expected an integer ...`. Beyond the schema, the load checks what needs no
 * backend (widths.ts: numbers that fit their fields; names.ts: names, errnos, capabilities).
 */
export function parseScenario(text: string, file: string): Scenario {
  const data = parseText(text, file);
  const r = ScenarioSchema.safeParse(data);
  let problems: string[];
  if (!r.success) problems = (r.error.issues as unknown as Issue[]).flatMap(refine).map((i) => describe(i, data));
  else problems = [...widthProblems(r.data), ...nameProblems(r.data)];
  if (problems.length === 0 && r.success) return r.data;
  const more = problems.length > 3 ? ` (+${problems.length - 3} more)` : '';
  throw new ScenarioError(`${file}: ${printable(problems.slice(0, 3).join('; '), 400)}${more}`);
}
