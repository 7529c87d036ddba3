/**
 * What an op is: everything about one scenario op in one place (DESIGN.md "Ops are defined once").
 * An op module states its step's fields, how it runs on a backend, how its result is described and
 * judged, what a backend must have for it to succeed, whether the differential generator draws it,
 * and its README row; ops/index.ts registers every op in one table that the schema, the loader's
 * checks, the runner, the generator's coverage test and the README read.
 */
import { z } from 'zod';
import type { HostFault } from '../api.js';
import type { Context, Kind } from './context.js';
import { type Expect, ExpectSchema } from './expect.js';
import { Name } from './fields.js';

/** What a step did: a value, the kernel's errno, or a fault on a host access. */
export type Outcome<V = unknown> =
  | { kind: 'ok'; value: V }
  | { kind: 'errno'; errno: string; message: string; data?: Readonly<Record<string, bigint>> | undefined }
  | { kind: 'fault'; fault: HostFault };

/** Expect keys every op shares: an errno, a returned value, a host fault, data read. */
export const COMMON_EXPECTS = ['errno', 'result', 'fault', 'hex', 'fill'] as const;
/** Expect keys whose meaning belongs to the ops that declare them (`checks`). */
export type OpExpectKey = Exclude<keyof Expect, (typeof COMMON_EXPECTS)[number]>;
export type Checks<V> = { [K in OpExpectKey]?: (want: NonNullable<Expect[K]>, o: Outcome<V>) => string | undefined };

const common = { vm: Name.optional(), expect: ExpectSchema.optional(), comment: z.string().optional() };
export function stepSchema<O extends string, Sh extends z.ZodRawShape>(op: O, shape: Sh) {
  return z.object({ op: z.literal(op), ...common, ...shape }).strict();
}
export type StepOf<O extends string, Sh extends z.ZodRawShape> = z.infer<ReturnType<typeof stepSchema<O, Sh>>>;

export interface OpSpec<O extends string, Sh extends z.ZodRawShape, V> {
  /** the step's own fields (besides op, vm, expect, comment) */
  fields: Sh;
  /** README: the uAPI call or host event it mirrors */
  mirrors: string;
  /** README: its fields, with the value forms worth saying */
  doc: string;
  /** Run the step on a backend's objects; a KvmError or HostFault it throws is the outcome. */
  run(ctx: Context, s: StepOf<O, Sh>): V;
  /** The report's text for a success (default: "ok", or "ok N" for a number). */
  describe?(v: V): string;
  /** What `expect.result` compares with (default: a numeric return value). */
  result?(v: V): number | bigint;
  /** What `expect.hex` / `expect.fill` compare with: the data the step read. */
  data?(v: V): Uint8Array;
  /** An errno carried in a successful call's value (KVM_RUN returns its exit with the errno). */
  errno?(v: V): string | undefined;
  /** A success that still refused what was asked (reclaim that kept the page): why, for the hazard table. */
  refused?(v: V): string | undefined;
  /** The op's own expectations; an expect key no op declares is a load error. */
  checks?: Checks<V>;
  /** A host access: it may fault (`expect.fault`). */
  faults?: boolean;
  /** What the step's `as` names. */
  makes?: Kind;
  /**
   * What a backend must have for this op to succeed, any one of these requirements
   * (requirements.ts), or `design`: only a model design has it. A scenario that uses the op
   * declares one of them (or names a design) unless the step expects an errno.
   */
  requires?: readonly string[];
  /** Whether the differential generator (src/diff/commands.ts) draws it, or why not. */
  diff: 'generated' | { none: string };
}

export interface OpDef<O extends string = string, Sh extends z.ZodRawShape = z.ZodRawShape, V = unknown> extends OpSpec<O, Sh, V> {
  readonly op: O;
  readonly schema: ReturnType<typeof stepSchema<O, Sh>>;
}

export function defineOp<O extends string, Sh extends z.ZodRawShape, V>(op: O, spec: OpSpec<O, Sh, V>): OpDef<O, Sh, V> {
  return { ...spec, op, schema: stepSchema(op, spec.fields) };
}

/** A step's result, tagged by the op that made it: the report and the judge never guess from keys. */
export interface Tagged {
  op: string;
  outcome: Outcome;
}
