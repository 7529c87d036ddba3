/**
 * The value types of the scenario format: integers, flag lists, references to named objects. Each op
 * module (ops/) builds its step's schema from these; validation is strict and every message names
 * the path into the file.
 */
import { z } from 'zod';
import { COCO_PROFILE_NAMES, VERSION_PROFILE_NAMES } from './profile-names.js';

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
export const Ref = z.union([z.string().min(1), Int], { error: 'expected a name given by an earlier "as", or a number' });
export const Name = z.string().regex(/^[A-Za-z_][A-Za-z0-9_.-]*$/, 'expected a name: letters, digits, _ . -');

export const Width = z.union([z.literal(1), z.literal(2), z.literal(4), z.literal(8)], { error: 'expected width 1, 2, 4 or 8' });
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

export const MpolMode = z.union([z.enum(['default', 'preferred', 'bind', 'interleave', 'local', 'preferred_many', 'weighted_interleave']), Int], {
  error: 'expected a policy name like "bind" or a number',
});

export const Data = {
  hex: z
    .string()
    .regex(/^([0-9a-fA-F]{2})*$/, 'expected hex bytes like "41424344"')
    .optional(),
  fill: z.number().int().min(0).max(255).optional(),
  length: Int.optional(),
};
export const Uaddr = z.union([Ref, z.object({ map: z.string(), offset: Int }).strict()], {
  error: 'expected a map name, {"map":name,"offset":n}, or a number',
});

// The 2022 v7 uAPI's flag names (src/designs/v7)
export const DesignName = z.enum(['v7', 'negotiated', 'guest_memfd', 'inplace']);
export const MfdFlags = flagsOf(['cloexec', 'allow_sealing', 'hugetlb', 'inaccessible']);
export const SealFlags = flagsOf(['seal', 'shrink', 'grow', 'write', 'future_write', 'auto_allocate']);
export const V7MemFlags = flagsOf(['log_dirty_pages', 'readonly', 'private']);
export const HexBytes = z.string().regex(/^([0-9a-fA-F]{2})+$/, 'expected hex bytes like "41424344"');
// The model's profiles by name (profile-names.ts): the format never spells them a second time.
export const CocoKernel = z.enum(COCO_PROFILE_NAMES);
export const VERSION_KERNELS = [...VERSION_PROFILE_NAMES, 'host'] as const;
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
export const CpuidEntrySchema = z
  .object({ function: Int, index: Int.optional(), flags: Int.optional(), eax: Int.optional(), ebx: Int.optional(), ecx: Int.optional(), edx: Int.optional() })
  .strict();
