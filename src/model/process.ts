/**
 * The host process the model's KVM objects live in: one fd table, one address space, one inode
 * number counter. fds 0-2 are taken, as in any process, so the first KVM fd is 3.
 */
import { HostMm } from './host.js';
import { FdTable, NullFile, Vfs } from './vfs.js';

export class ModelProcess {
  readonly fdt = new FdTable();
  readonly mm = new HostMm();
  private ino = 1000n;
  readonly vfs: Vfs;
  /** signals generated for the task and not yet delivered: what signal_pending(current) reads */
  private pendingSignals = 0;
  /**
   * An interval timer (setitimer ITIMER_REAL) is armed, so a task that waits in the kernel until a
   * signal arrives gets one. The model has no clock: such a wait ends at once, with the signal
   * pending. Armed by default, as in any process that runs guests under a deadline; unarmed, a wait
   * that only a signal ends would never return, and the model refuses to pretend it does.
   */
  timerArmed = true;

  constructor() {
    this.vfs = new Vfs(this.fdt, this.mm, () => this.nextIno());
    const devnull = new NullFile(this.nextIno());
    for (let i = 0; i < 3; i++) this.fdt.install(devnull);
  }

  nextIno(): bigint {
    return this.ino++;
  }

  /** signal_pending(current) */
  signalPending(): boolean {
    return this.pendingSignals > 0;
  }

  /** A kernel loop that only a signal ends goes round again: the armed timer expires, its signal is pending. */
  waitForSignal(): void {
    if (!this.timerArmed) throw new Error('the task loops in the kernel until a signal arrives, and no timer is armed to send one');
    this.pendingSignals++;
  }

  /** The return to userspace (exit_to_user_mode_loop): pending signals are delivered. */
  deliverSignals(): void {
    this.pendingSignals = 0;
  }
}
