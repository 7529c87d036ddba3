/**
 * NUMA memory policy (mm/mempolicy.c): what mbind(2) may set, where a policy lives (a VMA's, or a
 * file's shared policy by page index through vm_ops->set_policy), and which node a page allocated
 * under it lands on. The model host has a fixed number of nodes (2 by default) so that the
 * guest_memfd NUMA selftests can run.
 */
import { MPOL, MPOL_MAX, MPOL_MODE_FLAGS } from '../uapi/constants.js';
import { fail } from './fail.js';
import { RangeMap } from './range-map.js';

export interface Policy {
  readonly mode: number;
  readonly nodemask: bigint;
}

export const DEFAULT_POLICY: Policy = { mode: MPOL.default, nodemask: 0n };

/** Policies by page index; a RangeMap of indices into a small table of distinct policies. */
export class PolicyMap {
  private readonly table: Policy[] = [DEFAULT_POLICY];
  private readonly map = new RangeMap(0);

  set(start: number, end: number, p: Policy): void {
    let id = this.table.findIndex((q) => q.mode === p.mode && q.nodemask === p.nodemask);
    if (id < 0) id = this.table.push(p) - 1;
    this.map.set(start, end, id);
  }

  get(index: number): Policy {
    return this.table[this.map.get(index)] ?? DEFAULT_POLICY;
  }
}

function nodesOf(mask: bigint): number[] {
  const out: number[] = [];
  for (let n = 0; mask >> BigInt(n); n++) if ((mask >> BigInt(n)) & 1n) out.push(n);
  return out;
}

/** The node a page at `index` is allocated on under `p` (local node 0 for default/local). */
export function nodeFor(p: Policy, index: number): number {
  const nodes = nodesOf(p.nodemask);
  switch (p.mode) {
    case MPOL.bind:
    case MPOL.preferred:
    case MPOL.preferred_many:
      return nodes[0] ?? 0;
    case MPOL.interleave:
    case MPOL.weighted_interleave:
      return nodes.length ? (nodes[index % nodes.length] as number) : 0;
    default:
      return 0;
  }
}

/**
 * kernel_mbind -> sanitize_mpol_flags, mpol_new, mpol_set_nodemask: the policy mbind would
 * install, or EINVAL. Nodes that are not online are dropped; an empty result is EINVAL.
 */
export function mbindPolicy(mode: number, nodemask: bigint, onlineNodes: number): Policy {
  const op = 'mbind';
  const m = mode & ~MPOL_MODE_FLAGS;
  if (m < 0 || m >= MPOL_MAX) fail(op, 'EINVAL', `mode ${mode} is not a memory policy`);
  if (m === MPOL.default) {
    if (nodemask !== 0n) fail(op, 'EINVAL', 'MPOL_DEFAULT takes no nodes');
    return DEFAULT_POLICY;
  }
  if (m === MPOL.local) {
    if (nodemask !== 0n) fail(op, 'EINVAL', 'MPOL_LOCAL takes no nodes');
    return { mode: m, nodemask: 0n };
  }
  if (nodemask === 0n) fail(op, 'EINVAL', 'empty nodemask');
  const online = nodemask & ((1n << BigInt(onlineNodes)) - 1n);
  if (online === 0n) fail(op, 'EINVAL', 'no online node in the nodemask');
  return { mode: m, nodemask: online };
}
