/**
 * The scenario file format (DESIGN.md "scenario/"): op and field names are the kernel's and are
 * public, so this schema is the format's definition. Validation is strict (unknown keys are errors)
 * and every message names the path into the file.
 */
import { z } from 'zod';

const INT_RE = /^-?(0x[0-9a-f_]+|0b[01_]+|[0-9_]+)$/i;

/** An integer: a JSON number, or a string (needed above 2^53): "0x200000", "4096", "-1". */
const INT_MSG = 'expected an integer or an integer string like "0x200000"';
export const Int = z.union([z.number().int(INT_MSG), z.string().regex(INT_RE, INT_MSG)], {
  error: 'expected an integer or an integer string like "0x200000"',
});
export type IntInput = z.infer<typeof Int>;

const flagsOf = (names: readonly [string, ...string[]]) =>
  z.union([Int, z.array(z.enum(names, { error: `expected one of ${names.map((n) => `"${n}"`).join(', ')}` }))], {
    error: `expected a number or a list of ${names.map((n) => `"${n}"`).join(', ')}`,
  });

export const GmemFlags = flagsOf(['mmap', 'init_shared']);
export const MemFlags = flagsOf(['guest_memfd', 'log_dirty_pages', 'readonly']);
export const AttrFlags = flagsOf(['private']);
export const FallocMode = flagsOf(['keep_size', 'punch_hole', 'no_hide_stale', 'collapse_range', 'zero_range', 'insert_range', 'unshare_range']);
export const Prot = flagsOf(['read', 'write', 'exec']);
export const MapFlags = flagsOf(['shared', 'private', 'shared_validate']);
export const HcAttrs = flagsOf(['encrypted', 'decrypted']);

export const VmTypeName = z.enum(['default', 'sw_protected', 'sev', 'sev_es', 'snp', 'tdx']);

/** A reference to an object made earlier (its `as` name) or a raw number (fd 9999 -> EBADF). */
const Ref = z.union([z.string().min(1), Int], { error: 'expected a name given by an earlier "as", or a number' });
const Name = z.string().regex(/^[A-Za-z_][A-Za-z0-9_.-]*$/, 'expected a name: letters, digits, _ . -');

const Width = z.union([z.literal(1), z.literal(2), z.literal(4), z.literal(8)], { error: 'expected width 1, 2, 4 or 8' });
export const GuestOpSchema = z.union(
  [
    z.literal('hlt'),
    z.object({ write: Int, width: Width, value: Int, shared: z.boolean().optional() }).strict(),
    z.object({ read: Int, width: Width, shared: z.boolean().optional() }).strict(),
    z.object({ map_gpa_range: Int, npages: Int, attrs: HcAttrs }).strict(),
    z.object({ out: Int, value: Int }).strict(),
  ],
  { error: 'expected "hlt" or one of {write,width,value}, {read,width}, {map_gpa_range,npages,attrs}, {out,value}' },
);

const MpolMode = z.union([z.enum(['default', 'preferred', 'bind', 'interleave', 'local', 'preferred_many', 'weighted_interleave']), Int], {
  error: 'expected a policy name like "bind" or a number',
});

const MemoryFaultExpect = z.object({ gpa: Int.optional(), size: Int.optional(), flags: AttrFlags.optional() }).strict();
export const ExpectSchema = z
  .object({
    errno: z
      .string()
      .regex(/^E[A-Z0-9]+$/, 'expected an errno name like "EINVAL"')
      .optional(),
    result: Int.optional(),
    fault: z.enum(['SIGBUS', 'SIGSEGV', 'MCE']).optional(),
    hex: z
      .string()
      .regex(/^([0-9a-fA-F]{2})*$/, 'expected hex bytes like "41424344"')
      .optional(),
    fill: z.number().int().min(0).max(255).optional(),
    fstat: z.object({ size: Int.optional(), blksize: Int.optional(), blocks: Int.optional(), mode: Int.optional() }).strict().optional(),
    exit: z.enum(['hlt', 'io', 'mmio', 'memory_fault', 'hypercall', 'shutdown']).optional(),
    memory_fault: MemoryFaultExpect.optional(),
    hypercall: z
      .object({ nr: Int.optional(), args: z.array(Int).optional() })
      .strict()
      .optional(),
    io: z.object({ port: Int.optional(), value: Int.optional(), size: Int.optional() }).strict().optional(),
    mmio: z.object({ phys_addr: Int.optional(), len: Int.optional(), is_write: z.boolean().optional(), data: Int.optional() }).strict().optional(),
    reads: z.array(Int).optional(),
    pre_fault: z.object({ gpa: Int.optional(), size: Int.optional() }).strict().optional(),
    mempolicy: z
      .object({ mode: MpolMode, nodes: z.array(z.number().int().min(0)) })
      .strict()
      .optional(),
    nodes: z.array(z.number().int()).optional(),
  })
  .strict();
export type Expect = z.infer<typeof ExpectSchema>;

const common = { vm: Name.optional(), expect: ExpectSchema.optional(), comment: z.string().optional() };
const step = <O extends string, T extends z.ZodRawShape>(op: O, shape: T) => z.object({ op: z.literal(op), ...common, ...shape }).strict();
const Data = {
  hex: z
    .string()
    .regex(/^([0-9a-fA-F]{2})*$/, 'expected hex bytes like "41424344"')
    .optional(),
  fill: z.number().int().min(0).max(255).optional(),
  length: Int.optional(),
};
const Uaddr = z.union([Ref, z.object({ map: z.string(), offset: Int }).strict()], {
  error: 'expected a map name, {"map":name,"offset":n}, or a number',
});

export const StepSchema = z.discriminatedUnion(
  'op',
  [
    step('create_vm', { type: VmTypeName.or(Int).optional(), as: Name }),
    step('check_extension', { cap: z.union([z.string().regex(/^KVM_CAP_[A-Z0-9_]+$/), Int]), scope: z.string().optional() }),
    step('enable_cap', { cap: z.union([z.string().regex(/^KVM_CAP_[A-Z0-9_]+$/), Int]), args: z.array(Int).max(4).optional(), flags: Int.optional() }),
    step('create_guest_memfd', { size: Int, flags: GmemFlags.optional(), reserved: z.array(Int).max(6).optional(), as: Name.optional() }),
    step('set_user_memory_region2', {
      slot: Int,
      flags: MemFlags.optional(),
      guest_phys_addr: Int,
      memory_size: Int,
      userspace_addr: Uaddr.optional(),
      guest_memfd: Ref.optional(),
      guest_memfd_offset: Int.optional(),
    }),
    step('set_user_memory_region', { slot: Int, flags: MemFlags.optional(), guest_phys_addr: Int, memory_size: Int, userspace_addr: Uaddr.optional() }),
    step('set_memory_attributes', { address: Int, size: Int, attributes: AttrFlags, flags: Int.optional() }),
    step('fallocate', { fd: Ref, mode: FallocMode, offset: Int, length: Int }),
    step('mmap', { fd: Ref, offset: Int.optional(), length: Int, prot: Prot.optional(), flags: MapFlags.optional(), as: Name.optional() }),
    step('mmap_anonymous', { length: Int, as: Name }),
    step('munmap', { map: z.string() }),
    step('madvise', {
      map: z.string(),
      offset: Int.optional(),
      length: Int,
      advice: z.enum(['normal', 'dontneed', 'remove', 'hugepage', 'nohugepage', 'collapse']),
    }),
    step('mbind', { map: z.string(), offset: Int.optional(), length: Int, mode: MpolMode, nodes: z.array(z.number().int().min(0).max(63)).optional() }),
    step('get_mempolicy', { map: z.string(), offset: Int.optional() }),
    step('move_pages', { map: z.string(), offset: Int.optional(), count: z.number().int().min(1) }),
    step('host_write', { map: z.string(), offset: Int.optional(), ...Data }),
    step('host_read', { map: z.string(), offset: Int.optional(), length: Int }),
    step('memfd_create', { name: z.string().optional(), as: Name }),
    step('read', { fd: Ref, length: Int }),
    step('write', { fd: Ref, ...Data }),
    step('pread', { fd: Ref, length: Int, offset: Int }),
    step('pwrite', { fd: Ref, offset: Int, ...Data }),
    step('lseek', { fd: Ref, offset: Int, whence: z.union([z.enum(['set', 'cur', 'end']), Int]).optional() }),
    step('ftruncate', { fd: Ref, size: Int }),
    step('fstat', { fd: Ref }),
    step('dup', { fd: Ref, as: Name.optional() }),
    step('close', { fd: Ref }),
    step('run', { vcpu: z.number().int().min(0), program: z.array(GuestOpSchema).optional(), hypercall_ret: Int.optional() }),
    step('pre_fault_memory', { vcpu: z.number().int().min(0), gpa: Int, size: Int, flags: Int.optional() }),
  ],
  { error: (iss) => (iss.code === 'invalid_union' ? 'unknown op' : undefined) },
);
export type Step = z.infer<typeof StepSchema>;

export const ScenarioSchema = z
  .object({
    name: z.string().min(1),
    description: z.string().optional(),
    kernel: z.enum(['6.8', '6.12', '6.18', '7.3', 'next', 'host']).optional(),
    requires: z.array(z.string().regex(/^[a-z_]+(:[a-z0-9_]+)?$/, 'expected a requirement like "vm_type:sw_protected"')).optional(),
    vm: z.object({ type: VmTypeName.optional() }).strict().optional(),
    steps: z.array(StepSchema).min(1),
  })
  .strict();
export type Scenario = z.infer<typeof ScenarioSchema>;
