/** Turning scenario values (ints as numbers or strings, flag lists) into uAPI numbers. */
import { CAP, FALLOC_MODES, GUEST_MEMFD_FLAGS, MAP_FLAGS, MAP_GPA_RANGE_ATTRS, MEM_FLAGS, MEMORY_ATTRIBUTES, PROT } from '../uapi/constants.js';
import type { IntInput } from './fields.js';

export function int(v: IntInput): bigint {
  if (typeof v === 'number') return BigInt(v);
  const s = v.replaceAll('_', '');
  const neg = s.startsWith('-');
  const n = BigInt(neg ? s.slice(1) : s);
  return neg ? -n : n;
}

/** A u64 field: negative inputs wrap as a C assignment would (-1 -> 2^64-1). */
export const u64 = (v: IntInput): bigint => BigInt.asUintN(64, int(v));
/** An s64 (loff_t) field: values above 2^63 wrap negative. */
export const s64 = (v: IntInput): bigint => BigInt.asIntN(64, int(v));
export const u32 = (v: IntInput): number => Number(BigInt.asUintN(32, int(v)));
export const i32 = (v: IntInput): number => Number(BigInt.asIntN(32, int(v)));

/** Flag names were validated by the schema against the same tables. */
function flags(table: Readonly<Record<string, number | bigint>>, v: FlagArg): bigint {
  if (v === undefined) return 0n;
  if (Array.isArray(v)) return v.reduce((m: bigint, name: string) => m | BigInt(table[name] ?? 0), 0n);
  return int(v as IntInput);
}

type FlagArg = IntInput | readonly string[] | undefined;
export const gmemFlags = (v: FlagArg) => flags(GUEST_MEMFD_FLAGS, v);
export const memFlags = (v: FlagArg) => Number(BigInt.asUintN(32, flags(MEM_FLAGS, v)));
export const attrFlags = (v: FlagArg) => flags(MEMORY_ATTRIBUTES, v);
export const fallocMode = (v: FlagArg) => Number(flags(FALLOC_MODES, v));
export const prot = (v: FlagArg) => Number(flags(PROT, v));
export const mapFlags = (v: FlagArg) => Number(flags(MAP_FLAGS, v));
export const hcAttrs = (v: FlagArg) => flags(MAP_GPA_RANGE_ATTRS, v);

export function capNumber(v: string | IntInput): number {
  if (typeof v === 'string' && v.startsWith('KVM_CAP_')) {
    const n = (CAP as Record<string, number>)[v];
    if (n === undefined) throw new ScenarioError(`unknown capability ${v}`);
    return n;
  }
  return Number(int(v));
}

export function hexToBytes(hex: string): Uint8Array {
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = Number.parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return out;
}

export function bytesToHex(b: Uint8Array): string {
  let s = '';
  for (const x of b) s += x.toString(16).padStart(2, '0');
  return s;
}

export const hex = (v: bigint): string => `0x${v.toString(16)}`;

/** A problem with a scenario file itself (not with the system under test): reported, never a stack. */
export class ScenarioError extends Error {
  override readonly name = 'ScenarioError';
}
