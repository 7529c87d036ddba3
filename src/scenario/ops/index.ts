/**
 * Every scenario op, registered once. The step schema, the loader's checks, the runner, the report,
 * the differential generator's coverage test and the README's op table all read this list; an op
 * missing from it does not exist, and an op in it must say everything op.ts asks for.
 */
import type { z } from 'zod';
import type { OpDef } from '../op.js';
import { directMapRead, directMapWrite, memoryEncryptOp } from './coco.js';
import {
  backingPages,
  fcntl,
  memoryEncryptRegRegion,
  memoryEncryptUnregRegion,
  mmMigrate,
  mmReclaim,
  setUserMemoryRegionExt,
  tdxInitMemRegion,
  tdxMeasurementCovers,
} from './design.js';
import { close, dup, fallocate, fstat, ftruncate, lseek, memfdCreate, mmap, pread, pwrite, read, write } from './file.js';
import { fork, pinUserPages, setMemoryAttributes2 } from './inplace.js';
import { checkExtension, createVm, enableCap, getApiVersion } from './kvm.js';
import { getMempolicy, hostRead, hostWrite, madvise, mbind, movePages, munmap } from './mapping.js';
import { preFaultMemory, run } from './vcpu.js';
import { createGuestMemfd, mmapAnonymous, setMemoryAttributes, setUserMemoryRegion, setUserMemoryRegion2 } from './vm.js';

/** In README order: the kernel's uAPI, the host's syscalls, then the designs' and coco's own. */
export const OP_LIST = [
  createVm,
  getApiVersion,
  checkExtension,
  enableCap,
  createGuestMemfd,
  setUserMemoryRegion2,
  setUserMemoryRegion,
  setMemoryAttributes,
  fallocate,
  mmap,
  mmapAnonymous,
  munmap,
  hostWrite,
  hostRead,
  madvise,
  mbind,
  getMempolicy,
  movePages,
  memfdCreate,
  read,
  write,
  pread,
  pwrite,
  lseek,
  ftruncate,
  fstat,
  dup,
  close,
  run,
  preFaultMemory,
  fcntl,
  setUserMemoryRegionExt,
  memoryEncryptRegRegion,
  memoryEncryptUnregRegion,
  tdxInitMemRegion,
  tdxMeasurementCovers,
  mmMigrate,
  mmReclaim,
  backingPages,
  setMemoryAttributes2,
  pinUserPages,
  fork,
  memoryEncryptOp,
  directMapRead,
  directMapWrite,
] as const;

type AnyOp = (typeof OP_LIST)[number];
export type OpName = AnyOp['op'];
/** A scenario step: the union of every op's schema. */
export type Step = z.infer<AnyOp['schema']>;
export type StepFor<O extends OpName> = Extract<Step, { op: O }>;

const BY_NAME: ReadonlyMap<string, OpDef<string, z.ZodRawShape, unknown>> = new Map(
  OP_LIST.map((o) => [o.op, o as unknown as OpDef<string, z.ZodRawShape, unknown>]),
);

/** The op's definition; the schema has already rejected names not in the list. */
export function opDef(name: string): OpDef<string, z.ZodRawShape, unknown> {
  const d = BY_NAME.get(name);
  if (!d) throw new Error(`no op named ${name}`);
  return d;
}

export const OP_NAMES: readonly OpName[] = OP_LIST.map((o) => o.op);
