/**
 * One scenario's objects on one backend: the names steps gave with `as`, the vCPUs made on first
 * use, and the fds a close step already closed. Ops resolve their references through it.
 */
import type { HostMapping, Kvm, Vcpu, Vm } from '../api.js';
import { hexToBytes, i32, int, ScenarioError, u64 } from './values.js';

export type Obj = { kind: 'kvm' } | { kind: 'vm'; vm: Vm } | { kind: 'fd'; fd: number; close?: () => void } | { kind: 'map'; map: HostMapping };
/** What a name can stand for; a reference field says which kinds it accepts. */
export type Kind = Obj['kind'];

const NUMBER_RE = /^-?\d|^-?0x/i;

export class Context {
  readonly objs = new Map<string, Obj>();
  readonly vcpus = new Map<Vm, Map<number, Vcpu>>();
  /** names whose fd a close step already closed */
  readonly closed = new Set<string>();
  /** vCPUs a run step gave a program: a run without one resumes it */
  readonly loaded = new Set<Vcpu>();
  constructor(readonly kvm: Kvm) {
    this.objs.set('kvm', { kind: 'kvm' });
  }

  obj(name: string, field: string): Obj {
    const o = this.objs.get(name);
    if (!o) throw new ScenarioError(`${field}: no object named '${name}' (names come from "as", plus "kvm" and "vm")`);
    return o;
  }

  name(as: string, o: Obj): void {
    this.free(as);
    this.objs.set(as, o);
  }

  /** Check a name is free before the call that makes its object, so a bad step leaves nothing behind. */
  free(as: string | undefined): void {
    if (as !== undefined && this.objs.has(as)) throw new ScenarioError(`as: the name '${as}' is already taken`);
  }

  /** The vCPU `id` of `vm` if a step made it already (a bad step must not create one). */
  existingVcpu(vm: Vm, id: number): Vcpu | undefined {
    return this.vcpus.get(vm)?.get(id);
  }

  vm(name: string | undefined): Vm {
    const o = this.obj(name ?? 'vm', 'vm');
    if (o.kind !== 'vm') throw new ScenarioError(`vm: '${name}' is not a VM`);
    return o.vm;
  }

  fd(ref: string | number, field = 'fd'): number {
    if (typeof ref === 'number' || NUMBER_RE.test(ref)) return i32(ref);
    const o = this.obj(ref, field);
    switch (o.kind) {
      case 'kvm':
        return this.kvm.fd;
      case 'vm':
        return o.vm.fd;
      case 'fd':
        return o.fd;
      case 'map':
        throw new ScenarioError(`${field}: '${ref}' is a mapping, not a file descriptor`);
    }
  }

  map(name: string): HostMapping {
    const o = this.obj(name, 'map');
    if (o.kind !== 'map') throw new ScenarioError(`map: '${name}' is not a mapping`);
    return o.map;
  }

  uaddr(v: string | number | { map: string; offset: string | number } | undefined): bigint {
    if (v === undefined) return 0n;
    if (typeof v === 'object') return this.map(v.map).addr + u64(v.offset);
    if (typeof v === 'number' || NUMBER_RE.test(v)) return u64(v);
    return this.map(v).addr;
  }

  vcpu(vm: Vm, id: number): Vcpu {
    let m = this.vcpus.get(vm);
    if (!m) this.vcpus.set(vm, (m = new Map()));
    let v = m.get(id);
    if (!v) m.set(id, (v = vm.createVcpu(id)));
    return v;
  }
}

/** The bytes a data step gives: `hex`, or `fill` repeated `length` times. */
export function stepData(s: { hex?: string | undefined; fill?: number | undefined; length?: string | number | undefined }, op: string): Uint8Array {
  if (s.hex !== undefined) return hexToBytes(s.hex);
  if (s.fill !== undefined && s.length !== undefined) return new Uint8Array(Number(int(s.length))).fill(s.fill);
  throw new ScenarioError(`${op}: give "hex", or "fill" with "length"`);
}
