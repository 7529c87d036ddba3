/**
 * Describing and judging a step's outcome. The op that made the outcome does the op-specific part
 * (ops/: `describe`, `result`, `data`, `errno`, `checks`); what every op shares is here: an
 * expected errno or fault, a returned value, data read.
 */
import type { Expect } from './expect.js';
import { COMMON_EXPECTS, type OpExpectKey, type Outcome, type Tagged } from './op.js';
import { OP_LIST, opDef } from './ops/index.js';
import { bytesToHex, hex, int } from './values.js';

export function describe(t: Tagged): string {
  const o = t.outcome;
  if (o.kind === 'errno') return o.errno;
  if (o.kind === 'fault') return `${o.fault.signal} at offset ${hex(o.fault.offset)}`;
  const d = opDef(t.op);
  if (d.describe) return d.describe(o.value);
  const v = o.value;
  return v === undefined || v === 0 ? 'ok' : `ok ${String(v)}`;
}

const defaultResult = (v: unknown): number | bigint | undefined => (typeof v === 'number' || typeof v === 'bigint' ? v : undefined);

/** Compare an outcome with the step's expectation; returns why it does not match. */
export function judge(s: { op: string; expect?: Expect | undefined }, t: Tagged): string | undefined {
  const d = opDef(t.op);
  const o: Outcome = t.outcome;
  const e: Expect = s.expect ?? {};
  const errno = o.kind === 'errno' ? o.errno : o.kind === 'ok' ? d.errno?.(o.value) : undefined;
  if (o.kind === 'fault') {
    if (e.fault === undefined) return `unexpected ${o.fault.message}`;
    if (e.fault !== o.fault.signal) return `expected ${e.fault}, got ${o.fault.signal}`;
    return undefined;
  }
  if (e.fault !== undefined) return `expected ${e.fault}, got ${o.kind === 'errno' ? o.errno : 'success'}`;
  if (e.errno !== undefined && errno !== e.errno) return `expected ${e.errno}, got ${errno ?? 'success'}`;
  if (e.errno === undefined && errno !== undefined) return `unexpected ${o.kind === 'errno' ? o.message : errno}`;
  // the op's own expectations; some (pre_fault, memory_encrypt) look at what a failing call copied back
  for (const key of Object.keys(e) as (keyof Expect)[]) {
    if ((COMMON_EXPECTS as readonly string[]).includes(key)) continue;
    const check = d.checks?.[key as OpExpectKey] as ((want: unknown, o: Outcome) => string | undefined) | undefined;
    if (!check) return `${key}: ${t.op} has no "${key}" result`;
    const why = check(e[key], o);
    if (why) return why;
  }
  if (o.kind !== 'ok') return undefined;
  const v = o.value;
  if (e.result !== undefined) {
    const r = (d.result ?? defaultResult)(v);
    if (r === undefined) return 'this op returns no value to compare with "result"';
    if (BigInt(r) !== int(e.result)) return `expected result ${String(e.result)}, got ${r}`;
  }
  if (e.hex !== undefined || e.fill !== undefined) {
    const data = d.data?.(v);
    if (!data) return 'this op returns no data to compare';
    if (e.hex !== undefined && bytesToHex(data) !== e.hex.toLowerCase()) return `expected data ${e.hex.slice(0, 64)}, got ${bytesToHex(data).slice(0, 64)}`;
    if (e.fill !== undefined) {
      const bad = data.findIndex((x) => x !== e.fill);
      if (bad >= 0) return `expected every byte 0x${e.fill.toString(16)}, byte ${bad} is 0x${(data[bad] as number).toString(16)}`;
    }
  }
  return undefined;
}

/** Expect keys that make no sense for the op: a load error, before anything runs. */
export function expectProblems(s: { op: string; expect?: Expect | undefined }): string[] {
  const d = opDef(s.op);
  const problems: string[] = [];
  for (const key of Object.keys(s.expect ?? {}) as (keyof Expect)[]) {
    if (key === 'errno' || key === 'result') continue;
    if (key === 'fault') {
      if (!d.faults) problems.push(`expect.fault: ${s.op} is not a host access; only ${faultingOps().join(', ')} fault`);
      continue;
    }
    if (key === 'hex' || key === 'fill') {
      if (!d.data) problems.push(`expect.${key}: ${s.op} reads no data`);
      continue;
    }
    if (!d.checks?.[key]) {
      const owners = ownersOf(key);
      problems.push(`expect.${key}: ${s.op} has no "${key}" result (only ${owners.join(', ')} ${owners.length === 1 ? 'has' : 'have'} one)`);
    }
  }
  return problems;
}

const faultingOps = () => OP_LIST.filter((o) => 'faults' in o && o.faults).map((o) => o.op);
const ownersOf = (key: OpExpectKey) => OP_LIST.filter((o) => 'checks' in o && o.checks && key in o.checks).map((o) => o.op);
