/**
 * The scenario file format (DESIGN.md "scenario/"): op and field names are the kernel's and are
 * public, so this schema is the format's definition. Validation is strict (unknown keys are errors)
 * and every message names the path into the file.
 */
import { z } from 'zod';
import { KernelRangeError, parseKernelRange } from './kernels.js';

const INT_RE = /^-?(0x[0-9a-f_]+|0b[01_]+|[0-9_]+)$/i;

/** An integer: a JSON number, or a string (needed above 2^53): "0x200000", "4096", "-1". */
const INT_MSG = 'expected an integer or an integer string like "0x200000"';
export const Int = z.union([z.number().int(INT_MSG), z.string().regex(INT_RE, INT_MSG)], {
  error: 'expected an integer or an integer string like "0x200000"',
});
export type IntInput = z.infer<typeof Int>;

const flagsOf = (names: readonly [string, ...string[]]) => {
  const list = names.map((n) => `"${n}"`).join(', ');
  // A flag name given alone ("mmap") is the usual slip: say that flags are a list.
  const intOrHint = z.union([
    z.number().int(INT_MSG),
    z.string().regex(INT_RE, {
      error: (iss) =>
        typeof iss.input === 'string' && names.includes(iss.input)
          ? `flags are a list: ["${iss.input}"] (or a number)`
          : `expected a list of ${list} or a number`,
    }),
  ]);
  return z.union([intOrHint, z.array(z.enum(names, { error: `expected one of ${list}` }))], {
    error: `expected a number or a list of ${list}`,
  });
};

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
    // confidential guests (issue 5): SNP PVALIDATE and TDX TDG.MEM.PAGE.ACCEPT; the status is a read
    z.object({ pvalidate: Int, validate: z.boolean() }).strict(),
    z.object({ tdg_mem_page_accept: Int }).strict(),
  ],
  {
    error: 'expected "hlt" or one of {write,width,value}, {read,width}, {map_gpa_range,npages,attrs}, {out,value}, {pvalidate,validate}, {tdg_mem_page_accept}',
  },
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
    // confidential VMs (issue 5): what KVM_MEMORY_ENCRYPT_OP left in kvm_sev_cmd.error /
    // kvm_tdx_cmd.hw_error and in the sub-command's struct (copied back on failure too, where it is)
    memory_encrypt: z
      .object({ error: Int.optional(), hw_error: Int.optional(), data: z.record(z.string(), Int).optional() })
      .strict()
      .optional(),
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

// ---- Designs (src/designs/): the 2022 v7 uAPI and the host events the review argued about. A
// scenario picks its model with a top-level "design"; these ops exist only where a design's model
// provides them (runner.ts "Design extensions"); elsewhere they are scenario errors. ----
export const DesignName = z.enum(['v7', 'negotiated', 'guest_memfd']);
export const MfdFlags = flagsOf(['cloexec', 'allow_sealing', 'hugetlb', 'inaccessible']);
export const SealFlags = flagsOf(['seal', 'shrink', 'grow', 'write', 'future_write', 'auto_allocate']);
export const V7MemFlags = flagsOf(['log_dirty_pages', 'readonly', 'private']);
const HexBytes = z.string().regex(/^([0-9a-fA-F]{2})+$/, 'expected hex bytes like "41424344"');
const DesignSteps = [
  // fcntl(2) F_ADD_SEALS / F_GET_SEALS on a memfd
  step('fcntl', { fd: Ref, cmd: z.enum(['add_seals', 'get_seals']), seals: SealFlags.optional() }),
  // KVM_SET_USER_MEMORY_REGION with v7's struct kvm_userspace_memory_region_ext
  step('set_user_memory_region_ext', {
    slot: Int,
    flags: V7MemFlags.optional(),
    guest_phys_addr: Int,
    memory_size: Int,
    userspace_addr: Uaddr.optional(),
    private_fd: Ref.optional(),
    private_offset: Int.optional(),
  }),
  // KVM_MEMORY_ENCRYPT_{REG,UNREG}_REGION with struct kvm_enc_region (GPA semantics in v7)
  step('memory_encrypt_reg_region', { addr: Int, size: Int }),
  step('memory_encrypt_unreg_region', { addr: Int, size: Int }),
  // the TDX launch path: copy (and measure) source pages into private memory before the TD runs
  step('tdx_init_mem_region', { source: z.string(), source_offset: Int.optional(), gpa: Int, npages: Int, measure: z.boolean().optional() }),
  // a probe: does the TD's launch measurement include these bytes at gpa? (result 1 or 0)
  step('tdx_measurement_covers', { gpa: Int, hex: HexBytes }),
  // host events: the kernel tries to migrate / reclaim the page at a file offset
  step('mm_migrate', { fd: Ref, offset: Int }),
  step('mm_reclaim', { fd: Ref, offset: Int }),
  // a probe: pages allocated for one GPA, shared side plus private side (2: double allocation)
  step('backing_pages', { gpa: Int }),
] as const;

// ---- Confidential VMs (issue 5): KVM_MEMORY_ENCRYPT_OP with its SEV-SNP and TDX sub-commands, and
// the host kernel's own accesses to guest memory. The model's SNP and TDX platforms implement them
// (src/model/platforms/); runner.ts "Confidential VMs" runs them. A scenario for them names a
// kernel with the platform, e.g. "6.18+snp" (model/profiles.ts withPlatform). ----
export const CocoKernel = z.enum([
  '6.12+snp',
  '6.18+snp',
  '6.18+tdx',
  '6.19+snp',
  '6.19+tdx',
  '7.0+snp',
  '7.0+tdx',
  '7.1+snp',
  '7.1+tdx',
  '7.2+snp',
  '7.2+tdx',
  '7.3+snp',
  '7.3+tdx',
  'next+snp',
  'next+tdx',
]);
/** The version profiles of src/model/profiles.ts (PROFILES), by name. */
const VERSION_KERNELS = ['6.8', '6.12', '6.18', '6.19', '7.0', '7.1', '7.2', '7.3', 'next', 'host'] as const;
export const EncryptCmdName = z.enum([
  'KVM_SEV_INIT2',
  'KVM_SEV_SNP_LAUNCH_START',
  'KVM_SEV_SNP_LAUNCH_UPDATE',
  'KVM_SEV_SNP_LAUNCH_FINISH',
  'KVM_TDX_CAPABILITIES',
  'KVM_TDX_INIT_VM',
  'KVM_TDX_INIT_VCPU',
  'KVM_TDX_INIT_MEM_REGION',
  'KVM_TDX_FINALIZE_VM',
]);
export const SnpPageTypeName = z.union([z.enum(['normal', 'zero', 'unmeasured', 'secrets', 'cpuid']), Int], {
  error: 'expected a page type: "normal", "zero", "unmeasured", "secrets", "cpuid", or a number',
});
export const TdxFlags = flagsOf(['measure']);
const CpuidEntrySchema = z
  .object({ function: Int, index: Int.optional(), flags: Int.optional(), eax: Int.optional(), ebx: Int.optional(), ecx: Int.optional(), edx: Int.optional() })
  .strict();
const CocoSteps = [
  // KVM_MEMORY_ENCRYPT_OP on the VM fd, or with "vcpu" on that vCPU's fd. Fields are the struct's.
  step('memory_encrypt_op', {
    cmd: z.union([EncryptCmdName, Int], { error: 'expected a command name like "KVM_SEV_SNP_LAUNCH_UPDATE" or a number' }),
    /** whose command numbering a numeric cmd uses */
    vendor: z.enum(['sev', 'tdx']).optional(),
    vcpu: z.number().int().min(0).optional(),
    flags: TdxFlags.optional(),
    // KVM_SEV_INIT2 (struct kvm_sev_init)
    vmsa_features: Int.optional(),
    ghcb_version: Int.optional(),
    // KVM_SEV_SNP_LAUNCH_START
    policy: Int.optional(),
    // KVM_SEV_SNP_LAUNCH_UPDATE
    gfn_start: Int.optional(),
    uaddr: Uaddr.optional(),
    len: Int.optional(),
    type: SnpPageTypeName.optional(),
    // KVM_SEV_SNP_LAUNCH_FINISH
    host_data: z
      .string()
      .regex(/^([0-9a-fA-F]{2}){0,32}$/, 'expected up to 32 hex bytes')
      .optional(),
    // kvm_tdx_cmd.hw_error (userspace must leave it 0)
    hw_error: Int.optional(),
    // KVM_TDX_INIT_VM: attributes, xfam, reserved[], CPUID entries; "gpaw" (48/52) adds CPUID 0x80000008
    attributes: Int.optional(),
    xfam: Int.optional(),
    reserved: z.array(Int).max(12).optional(),
    cpuid: z.array(CpuidEntrySchema).optional(),
    gpaw: z.number().int().min(0).max(255).optional(),
    // KVM_TDX_INIT_VCPU: the value for the vCPU's RCX
    rcx: Int.optional(),
    // KVM_TDX_INIT_MEM_REGION (struct kvm_tdx_init_mem_region)
    source_addr: Uaddr.optional(),
    gpa: Int.optional(),
    nr_pages: Int.optional(),
    // KVM_TDX_CAPABILITIES: cpuid.nent of the buffer
    nent: Int.optional(),
  }),
  // the host kernel reading / writing a guest_memfd page through its direct map (a bug, a device)
  step('direct_map_read', { fd: Ref, offset: Int.optional(), length: Int }),
  step('direct_map_write', { fd: Ref, offset: Int.optional(), ...Data }),
] as const;

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
    step('memfd_create', { name: z.string().optional(), as: Name, flags: MfdFlags.optional() }),
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
    ...DesignSteps,
    ...CocoSteps,
  ],
  { error: (iss) => (iss.code === 'invalid_union' ? 'unknown op' : undefined) },
);
export type Step = z.infer<typeof StepSchema>;

export const ScenarioSchema = z
  .object({
    name: z.string().min(1),
    description: z.string().optional(),
    kernel: z
      .union([z.enum(VERSION_KERNELS), CocoKernel], {
        error: `expected a kernel profile: ${[...VERSION_KERNELS, ...CocoKernel.options].map((k) => `"${k}"`).join(', ')}`,
      })
      .optional(),
    // the real kernel releases whose rules these expectations follow (kernels.ts); absent: every
    // kernel that meets `requires`. The kvm backend runs the scenario only inside this range.
    kernels: z
      .string()
      .refine((r) => kernelRangeError(r) === undefined, { error: (iss) => kernelRangeError(iss.input as string) ?? 'bad range' })
      .optional(),
    // the model this scenario is written for (src/designs/); absent: the kernel's own uAPI
    design: DesignName.optional(),
    requires: z.array(z.string().regex(/^[a-z_]+(:[a-z0-9_]+)?$/, 'expected a requirement like "vm_type:sw_protected"')).optional(),
    vm: z.object({ type: VmTypeName.optional() }).strict().optional(),
    steps: z.array(StepSchema).min(1),
  })
  .strict();
export type Scenario = z.infer<typeof ScenarioSchema>;

function kernelRangeError(r: string): string | undefined {
  try {
    parseKernelRange(r);
    return undefined;
  } catch (e) {
    if (e instanceof KernelRangeError) return `expected a kernel range like ">=6.18" or "6.12 - 6.18": ${e.message}`;
    throw e;
  }
}
