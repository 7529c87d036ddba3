/**
 * Runs a scenario on a backend and judges every step against its `expect`. The runner only speaks
 * the interface of api.ts, so the same file runs on the model and on the real kernel; what each op
 * does is its own module's business (ops/).
 */
import { HostFault, type HostMapping, type Kvm, KvmError } from '../api.js';
import type { VmType } from '../uapi/constants.js';
import { Context } from './context.js';
import { describe, judge } from './judge.js';
import type { Outcome, Tagged } from './op.js';
import { opDef, type Step } from './ops/index.js';
import { type GuestFacts, unmetRequirement } from './requirements.js';
import type { Scenario } from './schema.js';
import { ScenarioError } from './values.js';

export { judge } from './judge.js';
export type { Outcome, Tagged } from './op.js';
export { type GuestFacts, unmetRequirement } from './requirements.js';

/** A backend the runner can open a fresh KVM on, once per scenario. */
export interface Backend {
  readonly name: 'model' | 'kvm';
  /** Open for a scenario written for `kernel` (undefined: the backend's default), or say why it cannot. */
  open(kernel: string | undefined): { kvm: Kvm; profile: string } | { skip: string };
  /** Invariants checked after every step (the model's); a non-empty list fails the step. */
  check?(kvm: Kvm): string[];
  /** NUMA nodes the backend's host has (requires "numa_nodes:N"). */
  readonly numaNodes: number;
  /** Open the model of another design (a scenario's "design"; src/designs/ supplies them). */
  openDesign?(design: string, kernel: string | undefined): { kvm: Kvm; profile: string } | { skip: string };
  /**
   * What guest code can do here, found by running it (requires "gmem_only_faults", "hypercall_exits");
   * absent means everything the kernel's capabilities promise works.
   */
  guest?(kvm: Kvm): GuestFacts;
  /** Why this backend cannot judge a scenario written for another kernel's rules, if it cannot. */
  incompatible?(sc: Scenario, kernel: string | undefined): string | undefined;
}

export type Status = 'passed' | 'failed' | 'skipped';

export interface StepResult {
  index: number;
  op: string;
  status: Status;
  /** what happened, e.g. "ok", "EINVAL", "SIGBUS at offset 0x4000", "exit hlt reads [0x1]" */
  got: string;
  /** why the step failed */
  reason?: string;
}

export interface ScenarioResult {
  name: string;
  file: string;
  backend: string;
  kernel: string;
  status: Status;
  reason?: string;
  steps: StepResult[];
}

/**
 * One backend's side of a scenario: a KVM, the first VM (named `vm`), and every object the steps
 * named. The differential tester drives two sessions with the same steps.
 */
export class Session {
  readonly ctx: Context;
  constructor(
    readonly kvm: Kvm,
    vmType: VmType = 'default',
  ) {
    this.ctx = new Context(kvm);
    this.ctx.name('vm', { kind: 'vm', vm: kvm.createVm(vmType) });
  }

  /** Execute a step; the kernel's answer is the outcome. A ScenarioError (a bad step) propagates. */
  step(s: Step): Tagged & { got: string } {
    const def = opDef(s.op);
    let outcome: Outcome;
    try {
      outcome = { kind: 'ok', value: def.run(this.ctx, s as never) };
    } catch (err) {
      if (err instanceof KvmError) outcome = { kind: 'errno', errno: err.errno, message: err.message, data: err.data };
      else if (err instanceof HostFault) outcome = { kind: 'fault', fault: err };
      else throw err;
    }
    const tagged = { op: s.op, outcome };
    return { ...tagged, got: describe(tagged) };
  }

  /** The live mappings the steps named, for state comparisons. */
  mappings(): [string, HostMapping][] {
    return [...this.ctx.objs].flatMap(([n, o]) => (o.kind === 'map' ? [[n, o.map] as [string, HostMapping]] : []));
  }

  /**
   * Release everything the steps made (mappings, vCPUs, named fds, VMs), then /dev/kvm, so that a
   * long campaign on the real kernel ends with the fd and mapping counts it started with.
   */
  close(): void {
    const quietly = (f: () => void) => {
      try {
        f();
      } catch (e) {
        if (!(e instanceof KvmError)) throw e;
      }
    };
    for (const o of this.ctx.objs.values()) if (o.kind === 'map') o.map.unmap();
    for (const m of this.ctx.vcpus.values()) for (const v of m.values()) quietly(() => v.close());
    for (const [name, o] of this.ctx.objs) {
      if (this.ctx.closed.has(name)) continue;
      if (o.kind === 'fd') quietly(() => (o.close ? o.close() : this.kvm.files.close(o.fd)));
      else if (o.kind === 'vm') quietly(() => o.vm.close());
    }
    quietly(() => this.kvm.close());
  }

  /** The fds the steps named (guest_memfds, memfds, dups). */
  fds(): [string, number][] {
    return [...this.ctx.objs].flatMap(([n, o]) => (o.kind === 'fd' ? [[n, o.fd] as [string, number]] : []));
  }
}

/** Called as a scenario runs: a watcher outside the process learns which step was running if it dies. */
export interface RunHooks {
  beforeStep?(index: number, step: Step): void;
}

/** Run one scenario from start to end (or to its first failed step) on a fresh KVM of `backend`. */
export function runScenario(sc: Scenario, file: string, backend: Backend, kernelOverride?: string, hooks?: RunHooks): ScenarioResult {
  const kernel = kernelOverride ?? sc.kernel;
  const base = { name: sc.name, file, backend: backend.name, kernel: kernel ?? 'default', steps: [] as StepResult[] };
  const why = backend.incompatible?.(sc, kernel);
  if (why) return { ...base, status: 'skipped', reason: why };
  const opened = openFor(backend, sc.design, kernel);
  if ('skip' in opened) return { ...base, status: 'skipped', reason: opened.skip };
  const { kvm } = opened;
  base.kernel = opened.profile;
  for (const req of sc.requires ?? []) {
    const why = unmetRequirement(kvm, req, backend.numaNodes, backend.guest?.bind(backend));
    if (why) {
      kvm.close();
      return { ...base, status: 'skipped', reason: `requires ${req}: ${why}` };
    }
  }
  let session: Session;
  try {
    session = new Session(kvm, sc.vm?.type ?? 'default');
  } catch (e) {
    kvm.close();
    if (e instanceof KvmError) return { ...base, status: 'failed', reason: `creating the scenario's VM: ${e.message}` };
    throw e;
  }
  try {
    for (let i = 0; i < sc.steps.length; i++) {
      const s = sc.steps[i] as Step;
      hooks?.beforeStep?.(i, s);
      let r: Tagged & { got: string };
      try {
        r = session.step(s);
      } catch (err) {
        if (err instanceof ScenarioError) {
          base.steps.push({ index: i, op: s.op, status: 'failed', got: 'bad step', reason: err.message });
          return { ...base, status: 'failed', reason: `steps[${i}].${err.message}` };
        }
        // A backend that cannot do what the step asks (a program too large for the x86 code
        // generator, a guest that never exits) fails this scenario, not the whole run.
        const msg = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
        base.steps.push({ index: i, op: s.op, status: 'failed', got: 'backend error', reason: msg });
        return { ...base, status: 'failed', reason: `steps[${i}] (${s.op}): the ${backend.name} backend failed: ${msg}` };
      }
      let reason = judge(s, r);
      const broken = backend.check?.(kvm) ?? [];
      if (!reason && broken.length) reason = `invariant broken: ${broken.join('; ')}`;
      base.steps.push({ index: i, op: s.op, status: reason ? 'failed' : 'passed', got: r.got, ...(reason && { reason }) });
      if (reason) return { ...base, status: 'failed', reason: `steps[${i}] (${s.op}): ${reason}` };
    }
    return { ...base, status: 'passed' };
  } finally {
    session.close();
  }
}

/** The backend's KVM for a scenario: a design's model where the scenario names one. */
function openFor(backend: Backend, design: string | undefined, kernel: string | undefined): { kvm: Kvm; profile: string } | { skip: string } {
  if (design === undefined) return backend.open(kernel);
  if (backend.openDesign) return backend.openDesign(design, kernel);
  // guest_memfd is the kernel's own design: any backend runs it
  if (design === 'guest_memfd') return backend.open(kernel);
  return { skip: `requires design:${design}: a model variant (src/designs/), which the ${backend.name} backend does not have` };
}
