/**
 * Two sessions driven in lockstep: every step runs on the reference (the live kernel, or the model
 * in the self-test) and on the candidate (the model), and must have the same outcome and leave the
 * same observable state: the bytes (or the signal) behind every live mapping, and every named fd's
 * fstat.
 */
import { Buffer } from 'node:buffer';
import { HostFault, type Kvm, KvmError } from '../api.js';
import { normalize } from '../scenario/divergences.js';
import { ScenarioError, type Session, type Step } from '../scenario/index.js';
import type { DiffModel } from './diff-model.js';

export class Divergence extends Error {
  override readonly name = 'Divergence';
  constructor(
    readonly step: Step,
    readonly what: string,
    readonly reference: string,
    readonly candidate: string,
  ) {
    super(`${what}: reference ${reference}, model ${candidate} at ${JSON.stringify(step)}`);
  }
}

/** A cheap digest of a page's bytes (FNV-1a), to compare mappings without shipping them around. */
function digest(b: Uint8Array): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < b.length; i++) h = Math.imul(h ^ (b[i] as number), 0x01000193);
  return (h >>> 0).toString(16);
}

interface SlotView {
  gpa: bigint;
  size: bigint;
  /** userspace_addr as each side resolved it */
  uaddr: [bigint, bigint];
  /** the mapping named as userspace_addr, and how much of the slot it covers */
  map: string | undefined;
  covered: bigint;
}

/** Ops that read state and change none of what compareState looks at. */
const OBSERVE_ONLY: ReadonlySet<string> = new Set(['host_read', 'fstat', 'check_extension', 'get_mempolicy', 'read', 'pread', 'lseek']);

export class Pair {
  steps = 0;
  /**
   * steps left out: guest runs that touched host memory that is not the slot's (UNCOMPARED_ACCESSES),
   * and slot re-sets whose userspace_addr matches the slot's own on one side only (UNCOMPARED_SLOT_ADDRESS)
   */
  uncompared = 0;
  private readonly slots = new Map<string, SlotView>();
  private readonly unmapped = new Set<string>();
  constructor(
    readonly reference: Session,
    readonly candidate: Session,
  ) {}

  private static safely(s: Session, step: Step): string {
    try {
      return s.step(step).got;
    } catch (e) {
      if (e instanceof ScenarioError) return `bad step: ${e.message}`;
      throw e;
    }
  }

  /** GPA ranges whose host side is not the slot's own mapping. */
  private foreignHva(gpa: bigint): boolean {
    for (const s of this.slots.values()) {
      if (gpa < s.gpa || gpa >= s.gpa + s.size) continue;
      if (s.map === undefined) return false; // userspace_addr 0 or a number: never ours, always unmapped
      return this.unmapped.has(s.map) || gpa - s.gpa >= s.covered;
    }
    return false;
  }

  private track(step: Step, got: string): void {
    if ((step.op === 'set_user_memory_region2' || step.op === 'set_user_memory_region') && got === 'ok') {
      const key = `${step.vm ?? 'vm'}:${step.slot}`;
      const size = BigInt(step.memory_size);
      if (size === 0n) {
        this.slots.delete(key);
        return;
      }
      const ua = step.userspace_addr;
      const name = typeof ua === 'string' && !/^-?\d|^-?0x/i.test(ua) ? ua : typeof ua === 'object' ? ua.map : undefined;
      const maps = new Map(this.reference.mappings());
      const offset = typeof ua === 'object' ? BigInt(ua.offset) : 0n;
      const len = name ? (maps.get(name)?.length ?? 0n) : 0n;
      const span = ((len + 4095n) / 4096n) * 4096n - offset;
      const uaddr: [bigint, bigint] = [this.reference.ctx.uaddr(ua), this.candidate.ctx.uaddr(ua)];
      this.slots.set(key, { gpa: BigInt(step.guest_phys_addr), size, uaddr, map: name, covered: name ? (span > 0n ? span : 0n) : size });
    }
    if (step.op === 'munmap') this.unmapped.add(step.map);
  }

  /** A re-set of an existing slot whose userspace_addr is the slot's own on one side only (UNCOMPARED_SLOT_ADDRESS). */
  private addressLayoutOnly(step: Step): boolean {
    if ((step.op !== 'set_user_memory_region2' && step.op !== 'set_user_memory_region') || BigInt(step.memory_size) === 0n) return false;
    const old = this.slots.get(`${step.vm ?? 'vm'}:${step.slot}`);
    if (!old) return false;
    try {
      const same = (side: Session, i: 0 | 1) => side.ctx.uaddr(step.userspace_addr) === old.uaddr[i];
      return same(this.reference, 0) !== same(this.candidate, 1);
    } catch (e) {
      if (e instanceof ScenarioError) return false;
      throw e;
    }
  }

  apply(step: Step, m: DiffModel): void {
    this.steps++;
    m.counter++;
    if (this.addressLayoutOnly(step)) {
      // both sides still run it, so that each keeps the state its own answer leaves; where the
      // answers agree anyway, the step is compared like any other
      const a = normalize(Pair.safely(this.reference, step));
      const b = normalize(Pair.safely(this.candidate, step));
      if (a !== b) {
        // One side moved or kept the slot, the other refused: their memslots now differ, which no
        // later step may be judged on. Delete the slot on both (a delete of an existing slot always
        // succeeds), so both go on from the same state.
        this.uncompared++;
        const del = { ...step, memory_size: 0, guest_phys_addr: 0, flags: 0 } as Step;
        Pair.safely(this.reference, del);
        Pair.safely(this.candidate, del);
        this.slots.delete(`${step.vm ?? 'vm'}:${'slot' in step ? step.slot : ''}`);
        return;
      }
      this.track(step, a);
      this.compareState(step);
      return;
    }
    if (
      step.op === 'run' &&
      step.program?.some((o) => typeof o === 'object' && ('read' in o || 'write' in o) && this.foreignHva(BigInt('read' in o ? o.read : o.write)))
    ) {
      this.uncompared++;
      return;
    }
    const a = normalize(Pair.safely(this.reference, step));
    const b = normalize(Pair.safely(this.candidate, step));
    if (a !== b) throw new Divergence(step, `${step.op} outcome`, a, b);
    this.track(step, a);
    if ('as' in step && step.as && !a.startsWith('bad step') && !/^E[A-Z]/.test(a)) {
      if (step.op === 'create_guest_memfd') m.gmems.push(step.as);
      else if (step.op === 'mmap' || step.op === 'mmap_anonymous') m.maps.push(step.as);
      else m.fds.push(step.as);
    }
    if (step.op === 'munmap') m.maps = m.maps.filter((x) => x !== step.map);
    // A step that only looks cannot change a mapping's bytes or a file's size: its outcome was
    // compared above, and the state after it is the state before it, compared already.
    if (!OBSERVE_ONLY.has(step.op)) this.compareState(step);
  }

  /** Every live mapping page by page, and fstat of every named fd. */
  private compareState(step: Step): void {
    const ref = new Map(this.reference.mappings());
    for (const [name, mb] of this.candidate.mappings()) {
      const ma = ref.get(name);
      if (!ma) continue;
      const pages = Number(mb.length / 4096n);
      // One read of the whole mapping per side first: a page at a time costs a syscall per page on
      // the kvm backend, which under the lab's TCG made a 2 MiB mapping take minutes per sequence.
      // Only where the wholes differ, or a page faults, is it compared page by page.
      const wa = Pair.readRange(ma, pages);
      const wb = wa && Pair.readRange(mb, pages);
      if (wa && wb && Buffer.from(wa.buffer, wa.byteOffset, wa.length).equals(wb)) continue;
      for (let i = 0; i < pages; i++) {
        const a = Pair.readPage(ma, i);
        const b = Pair.readPage(mb, i);
        if (a !== b) throw new Divergence(step, `mapping ${name} page ${i}`, a, b);
      }
    }
    const fdsA = new Map(this.reference.fds());
    for (const [name, fdB] of this.candidate.fds()) {
      const fdA = fdsA.get(name);
      if (fdA === undefined) continue;
      const a = Pair.stat(this.reference, fdA);
      const b = Pair.stat(this.candidate, fdB);
      if (a !== b) throw new Divergence(step, `fstat ${name}`, a, b);
    }
  }

  /** A mapping's first `pages` pages, or undefined if reading them faults. */
  private static readRange(m: { read(off: bigint, len: number): Uint8Array }, pages: number): Uint8Array | undefined {
    try {
      return m.read(0n, pages * 4096);
    } catch (e) {
      if (e instanceof HostFault) return undefined;
      throw e;
    }
  }

  private static readPage(m: { read(off: bigint, len: number): Uint8Array }, i: number): string {
    try {
      return digest(m.read(BigInt(i) * 4096n, 4096));
    } catch (e) {
      if (e instanceof HostFault) return e.signal;
      throw e;
    }
  }

  private static stat(s: Session, fd: number): string {
    try {
      const st = s.kvm.files.fstat(fd);
      return `size ${st.size} blocks ${st.blocks} mode ${st.mode.toString(8)}`;
    } catch (e) {
      if (e instanceof KvmError) return e.errno;
      throw e;
    }
  }
}

/** One side of a differential run: a backend that opens a fresh KVM for each sequence. */
export interface Side {
  readonly name: string;
  /** a fresh KVM for one sequence */
  open(): Kvm;
}
