/** The VMM's vCPU loop: KVM_RUN, hand the exit to the handlers, re-enter until one says stop. */
import type { Vcpu, VcpuExit } from '../api.js';

export interface ExitHandler {
  /** Return the hypercall return value (or 0n) if handled; undefined to stop the loop at this exit. */
  handle(exit: VcpuExit): bigint | undefined;
}

export interface RunLoopOptions {
  /** called after every exit, handled or not */
  onExit?: (exit: VcpuExit, handled: boolean) => void;
  /** give up after this many exits (a guest stuck converting back and forth) */
  maxExits?: number;
}

/** Returns the first exit no handler took (hlt, io, ...), with every read the guest made on the way. */
export function runLoop(vcpu: Vcpu, handlers: readonly ExitHandler[], opts: RunLoopOptions = {}): VcpuExit {
  const reads: bigint[] = [];
  let ret: bigint | undefined;
  for (let n = 0; n < (opts.maxExits ?? 10_000); n++) {
    const exit = vcpu.run(ret === undefined ? {} : { hypercallRet: ret });
    reads.push(...exit.reads);
    ret = undefined;
    for (const h of handlers) {
      ret = h.handle(exit);
      if (ret !== undefined) break;
    }
    opts.onExit?.(exit, ret !== undefined);
    if (ret === undefined) return { ...exit, reads };
  }
  throw new Error(`runLoop: more than ${opts.maxExits ?? 10_000} exits without stopping`);
}
