/**
 * The scenario file format (DESIGN.md "scenario/"): op and field names are the kernel's and are
 * public, so this schema is the format's definition. Each step's schema is its op's (ops/); this
 * file puts them together with the scenario's own keys. Validation is strict (unknown keys are
 * errors) and every message names the path into the file.
 */
import { z } from 'zod';
import { CocoKernel, DesignName, VERSION_KERNELS, VmTypeName } from './fields.js';
import { KernelRangeError, parseKernelRange } from './kernels.js';
import { OP_LIST } from './ops/index.js';

export { type Expect, ExpectSchema } from './expect.js';
export { GuestOpSchema, Int, type IntInput, VmTypeName } from './fields.js';
export type { Step } from './ops/index.js';

type AnyStepSchema = (typeof OP_LIST)[number]['schema'];
export const StepSchema = z.discriminatedUnion('op', OP_LIST.map((o) => o.schema) as unknown as [AnyStepSchema, ...AnyStepSchema[]], {
  error: (iss) => (iss.code === 'invalid_union' ? 'unknown op' : undefined),
});

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
