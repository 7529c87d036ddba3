/**
 * One opened /dev/kvm and everything made through it. Objects are owned by their creator
 * (mappings by whoever unmaps them, vCPUs by their VM, ...), but the session also keeps a list of
 * what is still open, so that Kvm.close() can release whatever its user forgot and a test can ask
 * what is still open. The session never closes a guest_memfd because a VM closed: they are
 * separate files in the kernel too.
 */

export interface Closable {
  close(): void;
}

export interface SessionOptions {
  /** KVM_RUN deadline in ms (the watchdog); a guest that does not exit by then gives EINTR */
  readonly runTimeoutMs?: number;
  /**
   * KVM_PRE_FAULT_MEMORY deadline in ms (the watchdog); a call that has not returned by then gives
   * EINTR with the range as the kernel left it
   */
  readonly preFaultTimeoutMs?: number;
  /**
   * How host loads and stores on guest_memfd mappings learn whether a page faults: 'predict'
   * follows kvm_gmem_fault_user_mapping (fast, direct access); 'kernel-checked' copies through
   * process_vm_readv/writev, where the kernel reports a refused fault as a short copy. The
   * scenario and differential runs use 'kernel-checked' (GUESTMEM_KVM_HOST_ACCESS).
   */
  readonly hostAccess?: 'predict' | 'kernel-checked';
}

export const DEFAULT_RUN_TIMEOUT_MS = 2000;
export const DEFAULT_PRE_FAULT_TIMEOUT_MS = 2000;

export class Session {
  readonly runTimeoutMs: number;
  readonly preFaultTimeoutMs: number;
  readonly hostAccess: 'predict' | 'kernel-checked';
  private readonly live = new Set<Closable>();
  private closed = false;

  constructor(options: SessionOptions = {}) {
    // GUESTMEM_KVM_RUN_TIMEOUT_MS raises the deadline where guest code is slow (the lab's TCG)
    this.runTimeoutMs = options.runTimeoutMs ?? (Number(process.env.GUESTMEM_KVM_RUN_TIMEOUT_MS) || DEFAULT_RUN_TIMEOUT_MS);
    // GUESTMEM_KVM_PRE_FAULT_TIMEOUT_MS likewise for KVM_PRE_FAULT_MEMORY
    this.preFaultTimeoutMs = options.preFaultTimeoutMs ?? (Number(process.env.GUESTMEM_KVM_PRE_FAULT_TIMEOUT_MS) || DEFAULT_PRE_FAULT_TIMEOUT_MS);
    this.hostAccess = options.hostAccess ?? (process.env.GUESTMEM_KVM_HOST_ACCESS === 'kernel-checked' ? 'kernel-checked' : 'predict');
  }

  track<T extends Closable>(obj: T): T {
    this.live.add(obj);
    return obj;
  }

  untrack(obj: Closable): void {
    this.live.delete(obj);
  }

  get isClosed(): boolean {
    return this.closed;
  }

  get liveObjects(): number {
    return this.live.size;
  }

  /** Close everything still open, newest first (vCPUs before VMs, mappings before files). */
  closeAll(): Error[] {
    this.closed = true;
    const errors: Error[] = [];
    for (const obj of [...this.live].reverse()) {
      try {
        obj.close();
      } catch (e) {
        errors.push(e instanceof Error ? e : new Error(String(e)));
      }
      this.live.delete(obj);
    }
    return errors;
  }
}
