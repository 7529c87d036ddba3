/**
 * What a step may expect. Which of these keys apply to an op is the op's own declaration
 * (ops/, `expects`); a key an op cannot produce is a load error.
 */
import { z } from 'zod';
import { AttrFlags, Int, MpolMode } from './fields.js';

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
    // in-place conversion (issue 16): KVM_SET_MEMORY_ATTRIBUTES2's error_offset, copied back on failure
    error_offset: Int.optional(),
    memory_encrypt: z
      .object({ error: Int.optional(), hw_error: Int.optional(), data: z.record(z.string(), Int).optional() })
      .strict()
      .optional(),
  })
  .strict();

export type Expect = z.infer<typeof ExpectSchema>;
