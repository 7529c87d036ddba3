/**
 * Mutated firmware (fast-check): truncated images, bytes flipped and fields overwritten in the last
 * 4 KiB (where the footer table, SEV metadata and TDVF descriptor of every image here live). Every
 * computation must end in a digest of the right length or a MeasureError: never another exception,
 * never a plan whose data views were silently clamped by an out-of-range read.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import {
  MeasureError,
  type SnpLaunchUpdate,
  sevEsLaunchDigest,
  sevKernelHashes,
  sevLaunchDigest,
  snpLaunchDigest,
  snpLaunchPlan,
  snpOvmfHash,
  type TdxInitMemRegion,
  tdxLaunchPlan,
  tdxMrtd,
  type VmmType,
} from '../../src/measure/index.js';
import { firmware, sha256, sha384, synthImage } from './support.js';

const TAIL = 4096;
const kernel = sevKernelHashes({ kernel: new Uint8Array([1, 2, 3]), append: 'x' }, sha256);

const Flip = fc.record({ pos: fc.nat(), value: fc.integer({ min: 0, max: 255 }), anywhere: fc.boolean() });
const Word = fc.record({
  pos: fc.nat(),
  width: fc.constantFrom(1, 2, 4, 8),
  value: fc.constantFrom(0, 1, 2, 3, 0x10, 0x11, 0x12, 0x13, 0x30, 0x1000, 0xfff, 0xffff, 0x10000, 0x7fffffff, 0x80000000, 0xfffff000, 0xffffffff),
});
const Mutation = fc.oneof(
  fc.record({ kind: fc.constant('truncate' as const), keep: fc.constantFrom('prefix', 'suffix', 'bytes'), n: fc.nat() }),
  fc.record({ kind: fc.constant('flip' as const), flips: fc.array(Flip, { minLength: 1, maxLength: 8 }) }),
  fc.record({ kind: fc.constant('word' as const), words: fc.array(Word, { minLength: 1, maxLength: 4 }) }),
);
const Opts = fc.record({
  vcpus: fc.integer({ min: 1, max: 3 }),
  vmmType: fc.constantFrom<VmmType>('qemu', 'ec2', 'gce'),
  guestFeatures: fc.constantFrom(1n, 0x21n),
  withKernel: fc.boolean(),
});

type M = typeof Mutation extends fc.Arbitrary<infer T> ? T : never;

function mutate(src: Uint8Array, m: M): Uint8Array {
  const S = src.length;
  if (m.kind === 'truncate') {
    const pages = S / 4096;
    if (m.keep === 'prefix') return src.slice(0, (m.n % pages) * 4096);
    if (m.keep === 'suffix') return src.slice((1 + (m.n % (pages - 1))) * 4096);
    return src.slice(0, S - 1 - (m.n % TAIL));
  }
  const b = src.slice();
  const v = new DataView(b.buffer);
  if (m.kind === 'flip') {
    for (const f of m.flips) b[f.anywhere ? f.pos % S : S - 1 - (f.pos % TAIL)] = f.value;
  } else {
    for (const w of m.words) {
      const at = (S - TAIL + (w.pos % (TAIL - 8))) & ~(w.width - 1);
      if (w.width === 1) v.setUint8(at, w.value & 0xff);
      else if (w.width === 2) v.setUint16(at, w.value & 0xffff, true);
      else if (w.width === 4) v.setUint32(at, w.value, true);
      else v.setBigUint64(at, BigInt(w.value) * 0x1_0000_0001n, true);
    }
  }
  return b;
}

/** Run f: a Uint8Array of `len` bytes or a MeasureError pass; anything else fails the property. */
function outcome<T>(what: string, f: () => T, ok: (x: T) => void): void {
  let r: T;
  try {
    r = f();
  } catch (e) {
    if (e instanceof MeasureError) return;
    throw new Error(`${what} threw ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`);
  }
  ok(r);
}
const digestOf = (len: number) => (d: Uint8Array) => assert.equal(d.length, len);

function snpPlanIsWhole(plan: SnpLaunchUpdate[]): void {
  for (const u of plan) {
    assert.ok(u.length > 0 && u.length % 4096 === 0, `${u.what}: length ${u.length}`);
    if (u.data) assert.equal(u.data.length, u.length, `${u.what}: data view clamped`);
  }
}
function tdxPlanIsWhole(plan: TdxInitMemRegion[]): void {
  for (const r of plan) if (r.source) assert.equal(r.source.length, r.pages * 4096, `${r.what}: source view clamped`);
}

function property(src: Uint8Array) {
  return fc.property(Mutation, Opts, (m, o) => {
    const img = mutate(src, m);
    const snpOpts = {
      vcpus: o.vcpus,
      vmmType: o.vmmType,
      vcpuType: 'EPYC-Milan',
      guestFeatures: o.guestFeatures,
      ...(o.withKernel ? { kernelHashes: kernel } : {}),
    };
    outcome('snpLaunchPlan', () => snpLaunchPlan(img, snpOpts), snpPlanIsWhole);
    outcome('snpLaunchDigest', () => snpLaunchDigest(img, snpOpts, sha384), digestOf(48));
    outcome('snpOvmfHash', () => snpOvmfHash(img, sha384), digestOf(48));
    outcome('sevLaunchDigest', () => sevLaunchDigest(img, o.withKernel ? { kernelHashes: kernel } : {}, sha256), digestOf(32));
    outcome('sevEsLaunchDigest', () => sevEsLaunchDigest(img, { vcpus: o.vcpus, vcpuType: 'EPYC-v4', vmmType: o.vmmType }, sha256), digestOf(32));
    outcome('tdxLaunchPlan', () => tdxLaunchPlan(img), tdxPlanIsWhole);
    outcome('tdxMrtd per-page', () => tdxMrtd(img, { order: 'per-page' }, sha384), digestOf(48));
    outcome('tdxMrtd per-section', () => tdxMrtd(img, { order: 'per-section' }, sha384), digestOf(48));
  });
}

test('fuzz: mutated synthetic image -> digest or MeasureError', () => {
  fc.assert(property(synthImage()), { numRuns: 400 });
});

for (const name of ['OVMF.bookworm.fd', 'OVMF.amdsev.fd', 'OVMF.inteltdx.ms.fd'] as const) {
  test(`fuzz: mutated ${name} -> digest or MeasureError`, () => {
    fc.assert(property(firmware(name)), { numRuns: 20 });
  });
}
