/**
 * Steps a scenario on the model in the page, forwards and back. Back is a replay from the start
 * (the model is deterministic, and a fresh model process is cheap), so every position shows exactly
 * the state the runner reaches there. Each step records what the timeline shows: the ioctl's result
 * or errno with the kernel function that decided it, exits, the invalidations it caused with their
 * mmu_invalidate_seq, and the conversions (private/shared attribute changes) it made.
 */
import type { Kvm } from '../../api.js';
import { DESIGNS } from '../../designs/index.js';
import { attributeRuns, type KvmVm, ModelKvm, observeInvalidations } from '../../model/index.js';
import { judge, modelBackend, type Scenario, Session, type Step, unmetRequirement } from '../../scenario/index.js';
import type { VmType } from '../../uapi/constants.js';

export interface Invalidation {
  readonly vm: number;
  readonly seq: number;
  readonly start: number;
  readonly end: number;
}

export interface Conversion {
  readonly vm: number;
  readonly start: number;
  readonly end: number;
  readonly private: boolean;
}

export interface StepEvent {
  readonly index: number;
  readonly op: string;
  readonly status: 'passed' | 'failed';
  readonly got: string;
  readonly reason: string | undefined;
  readonly errno: string | undefined;
  /** the kernel function the model names as deciding the errno, when it names one */
  readonly fn: string | undefined;
  readonly message: string | undefined;
  readonly invalidations: readonly Invalidation[];
  readonly conversions: readonly Conversion[];
}

export interface PlayerOptions {
  /** a kernel profile name, or undefined for the scenario's own */
  kernel: string | undefined;
  /** a VM type, or undefined for the scenario's own */
  vmType: VmType | undefined;
}

/** The kernel function a KvmError message names: "OP: EINVAL (kvm_gmem_create: ...)" -> kvm_gmem_create. */
export function kernelFunction(message: string): string | undefined {
  const why = message.slice(message.indexOf('(') + 1);
  return /\b(_{0,2}[a-z][a-z0-9]*(?:_[a-z0-9]+)+)\b/.exec(why)?.[1];
}

function conversions(vm: number, before: ReturnType<typeof attributeRuns>, after: ReturnType<typeof attributeRuns>): Conversion[] {
  const cuts = [...new Set([...before.map((r) => r.start), ...after.map((r) => r.start), Number.MAX_SAFE_INTEGER])].sort((a, b) => a - b);
  const at = (runs: typeof before, g: number) => runs.find((r) => r.start <= g && g < r.end)?.private ?? false;
  const out: Conversion[] = [];
  for (let i = 0; i < cuts.length - 1; i++) {
    const start = cuts[i] as number;
    const p = at(after, start);
    if (at(before, start) === p) continue;
    const prev = out[out.length - 1];
    if (prev && prev.end === start && prev.private === p) out[out.length - 1] = { ...prev, end: cuts[i + 1] as number };
    else out.push({ vm, start, end: cuts[i + 1] as number, private: p });
  }
  return out;
}

export class Player {
  kvm!: Kvm;
  session: Session | undefined;
  /** why the scenario could not start (its VM could not be created), if it could not */
  blocked: string | undefined;
  /** requirements the model's profile does not meet: the steps still run, but may not mean what the file says */
  warnings: string[] = [];
  profile = '';
  pos = 0;
  events: StepEvent[] = [];

  constructor(
    readonly sc: Scenario,
    readonly opts: PlayerOptions,
  ) {
    this.reset();
  }

  get steps(): readonly Step[] {
    return this.sc.steps as readonly Step[];
  }

  get atEnd(): boolean {
    return this.blocked !== undefined || this.pos >= this.steps.length;
  }

  /** The model's VMs (struct kvm), in creation order. */
  get vms(): KvmVm[] {
    return this.kvm instanceof ModelKvm ? this.kvm.vms : [];
  }

  reset(): void {
    this.session?.close();
    this.session = undefined;
    this.blocked = undefined;
    this.warnings = [];
    this.pos = 0;
    this.events = [];
    const backend = modelBackend({ designs: DESIGNS, ...(this.opts.kernel !== undefined && { kernel: this.opts.kernel }) });
    const opened = this.sc.design !== undefined && backend.openDesign ? backend.openDesign(this.sc.design, this.sc.kernel) : backend.open(this.sc.kernel);
    if ('skip' in opened) {
      this.blocked = opened.skip;
      return;
    }
    this.kvm = opened.kvm;
    this.profile = opened.profile;
    for (const req of this.sc.requires ?? []) {
      const why = unmetRequirement(this.kvm, req, backend.numaNodes, backend.guest?.bind(backend));
      if (why) this.warnings.push(`requires ${req}: ${why}`);
    }
    try {
      this.session = new Session(this.kvm, this.opts.vmType ?? this.sc.vm?.type ?? 'default');
    } catch (e) {
      this.blocked = `creating the scenario's VM: ${e instanceof Error ? e.message : String(e)}`;
    }
  }

  /** Run the next step; false at the end. */
  step(): boolean {
    if (this.atEnd || !this.session) return false;
    const index = this.pos;
    const s = this.steps[index] as Step;
    const vms = this.vms;
    const before = vms.map((vm) => attributeRuns(vm, 0, Number.MAX_SAFE_INTEGER));
    const invalidations: Invalidation[] = [];
    const undo = vms.map((vm, i) => observeInvalidations(vm, (seq, start, end) => invalidations.push({ vm: i, seq, start, end })));
    let ev: StepEvent;
    try {
      const r = this.session.step(s);
      const reason = judge(s, r);
      const o = r.outcome;
      const message = o.kind === 'errno' ? o.message : o.kind === 'fault' ? o.fault.message : undefined;
      ev = {
        index,
        op: s.op,
        status: reason ? 'failed' : 'passed',
        got: r.got,
        reason,
        errno: o.kind === 'errno' ? o.errno : o.kind === 'fault' ? o.fault.signal : undefined,
        fn: message ? kernelFunction(message) : undefined,
        message,
        invalidations,
        conversions: vms.flatMap((vm, i) => conversions(i, before[i] ?? [], attributeRuns(vm, 0, Number.MAX_SAFE_INTEGER))),
      };
    } catch (e) {
      // a bad step (a name never defined, a value out of range): the runner fails the scenario here
      const msg = e instanceof Error ? e.message : String(e);
      ev = { index, op: s.op, status: 'failed', got: 'bad step', reason: msg, errno: undefined, fn: undefined, message: msg, invalidations, conversions: [] };
    } finally {
      for (const u of undo) u();
    }
    this.events.push(ev);
    this.pos++;
    return true;
  }

  /** Go to position n (0 = before the first step), replaying from the start when going back. */
  seek(n: number): void {
    const target = Math.max(0, Math.min(n, this.steps.length));
    if (target < this.pos) this.reset();
    while (this.pos < target && this.step()) {}
  }

  back(): void {
    this.seek(this.pos - 1);
  }

  toEnd(): void {
    while (this.step()) {}
  }

  close(): void {
    this.session?.close();
    this.session = undefined;
  }
}
