/**
 * A deadline for blocking vCPU ioctls. KVM_RUN blocks the calling thread until the guest exits, and
 * a guest can fail to exit at all: on this machine's PVM kvm, VMCALL/VMMCALL make the emulator
 * re-execute the instruction forever. KVM_PRE_FAULT_MEMORY can block forever too: on 6.12 after a
 * memslot delete, kvm_tdp_map_page() retries a fault on an obsolete MMU root until a signal is
 * pending (src/model/vcpu.ts preFaultMemory). Node cannot interrupt its own thread from JS, so the
 * deadline is a kernel timer that sends a signal to this thread, which makes the ioctl return
 * -1/EINTR, the way QEMU kicks its vCPU threads.
 *
 * The signal (a real-time one, so nothing else in Node uses it) stays blocked in the thread. For
 * KVM_RUN, each vCPU gets KVM_SET_SIGNAL_MASK with the thread's mask minus that signal, so KVM
 * unblocks it only while the thread is inside KVM_RUN and it is never delivered to userspace.
 * Whether the deadline passed is read from the timer itself (the time left when it is disarmed), so
 * a run costs two timer_settime calls and no clock reads; a signal that fired after KVM_RUN had
 * already returned stays pending and is consumed with sigtimedwait right away.
 *
 * Any other ioctl only notices a signal that is *unblocked* in the thread: a blocked signal never
 * sets TIF_SIGPENDING, so signal_pending() stays false, and SIG_IGN discards the signal when it is
 * generated. So `callWithDeadline` unblocks it (pthread_sigmask) around the one call, and the signal
 * needs a handler that does nothing: an RT signal's default action kills the process. See
 * installNoopHandler for how koffi, which cannot compile C, gets one.
 */

import { ERRNO } from '../uapi/errno.js';
import { kvm_signal_mask } from '../uapi/x86.js';
import { check } from './check.js';
import { SIGACTION, SIGACTION_SIZE, sys } from './sys.js';

/** SIGRTMAX-2 with glibc (SIGRTMAX is 64): unused by Node, libuv and V8. */
export const WATCHDOG_SIGNAL = 62;
const SIG_BLOCK = 0;
const SIG_UNBLOCK = 1;
/** SIG_DFL as the kernel stores it in sa_handler */
const SIG_DFL = 0n;
const SIGEV_THREAD_ID = 4;
const CLOCK_MONOTONIC = 1;
/** glibc's sigset_t is 128 bytes; the kernel's (and KVM's) is 8. */
const GLIBC_SIGSET = 128;
const KERNEL_SIGSET = 8;

function sigset(sig: number): Uint8Array {
  const s = new Uint8Array(GLIBC_SIGSET);
  const bit = sig - 1;
  s[bit >> 3] = 1 << (bit & 7);
  return s;
}

/**
 * While a call runs under callWithDeadline the timer re-fires at this interval once the deadline has
 * passed: a signal that arrived after the unblock but before the syscall started was taken by the
 * handler without interrupting anything, and the next one interrupts the call.
 */
const REFIRE_NS = 50_000_000n;

/** One syscall's result: its return value and errno (read right after it, before any other call). */
export interface SyscallResult {
  readonly r: number;
  readonly errno: number;
}

/**
 * Install a handler for the watchdog signal that does nothing, once per process.
 *
 * The handler is glibc's getpid(): an existing function, async-signal-safe, with no effect, that the
 * kernel can call as `void handler(int sig)`. In the SysV x86-64 ABI the caller passes `sig` in %rdi
 * and getpid(void) never reads it, returning its value in %rax, which a signal return ignores; glibc's
 * sigaction() sets SA_RESTORER itself, so returning from getpid lands in __restore_rt ->
 * rt_sigreturn as for any C handler. (koffi can only turn a JS function into a C callback, and JS
 * must not run inside a signal handler.) sa_flags is 0: no SA_RESTART, so a syscall the signal
 * interrupts returns EINTR instead of being restarted, and no SA_SIGINFO. Refuses to replace a
 * handler someone else installed.
 */
function installNoopHandler(): void {
  const s = sys();
  const handler = s.dlsym('getpid');
  if (handler === 0n) throw new Error('watchdog: dlsym(RTLD_DEFAULT, "getpid") found nothing');
  const old = new Uint8Array(SIGACTION_SIZE);
  check('sigaction', s.sigaction(WATCHDOG_SIGNAL, null, old));
  const current = new DataView(old.buffer).getBigUint64(SIGACTION.handler, true);
  if (current === handler) return;
  if (current !== SIG_DFL) throw new Error(`watchdog: signal ${WATCHDOG_SIGNAL} already has a handler (0x${current.toString(16)})`);
  const act = new Uint8Array(SIGACTION_SIZE);
  new DataView(act.buffer).setBigUint64(SIGACTION.handler, handler, true);
  check('sigaction', s.sigaction(WATCHDOG_SIGNAL, act, null));
}

let instance: RunWatchdog | undefined;

export class RunWatchdog {
  readonly tid: number;
  private readonly timerId: bigint;
  /** struct itimerspec { it_interval; it_value } */
  private readonly spec = new Uint8Array(32);
  private readonly specView = new DataView(this.spec.buffer);
  private readonly disarmSpec = new Uint8Array(32);
  private readonly oldSpec = new Uint8Array(32);
  private readonly oldView = new DataView(this.oldSpec.buffer);
  private readonly waitSet = sigset(WATCHDOG_SIGNAL);
  private readonly noWait = new Uint8Array(16);
  /** the KVM_SET_SIGNAL_MASK argument for vCPUs run on this thread */
  readonly vcpuSignalMask: Uint8Array;

  /** The watchdog of the calling thread (module state is per isolate, i.e. per thread in Node). */
  static get(): RunWatchdog {
    instance ??= new RunWatchdog();
    return instance;
  }

  private constructor() {
    const s = sys();
    this.tid = s.gettid();
    installNoopHandler();
    const old = new Uint8Array(GLIBC_SIGSET);
    const err = s.pthreadSigmask(SIG_BLOCK, sigset(WATCHDOG_SIGNAL), old);
    if (err !== 0) throw new Error(`pthread_sigmask: errno ${err}`);
    // struct sigevent: sigev_value @0, sigev_signo @8, sigev_notify @12, _tid @16 (64 bytes)
    const sev = new Uint8Array(64);
    const v = new DataView(sev.buffer);
    v.setInt32(8, WATCHDOG_SIGNAL, true);
    v.setInt32(12, SIGEV_THREAD_ID, true);
    v.setInt32(16, this.tid, true);
    const id = new Uint8Array(8);
    check('timer_create', s.timerCreate(CLOCK_MONOTONIC, sev, id));
    this.timerId = new DataView(id.buffer).getBigInt64(0, true);
    const mask = new Uint8Array(kvm_signal_mask.size + KERNEL_SIGSET);
    new DataView(mask.buffer).setUint32(kvm_signal_mask.fields.len.offset, KERNEL_SIGSET, true);
    mask.set(old.subarray(0, KERNEL_SIGSET), kvm_signal_mask.size);
    const bit = WATCHDOG_SIGNAL - 1;
    mask[kvm_signal_mask.size + (bit >> 3)] = (mask[kvm_signal_mask.size + (bit >> 3)] ?? 0) & ~(1 << (bit & 7));
    this.vcpuSignalMask = mask;
  }

  /** Fire `ns` nanoseconds from now (it_value), then every `intervalNs` if that is not 0 (it_interval). */
  arm(ns: bigint, intervalNs = 0n): void {
    const n = ns > 0n ? ns : 1n;
    this.specView.setBigInt64(0, intervalNs / 1_000_000_000n, true);
    this.specView.setBigInt64(8, intervalNs % 1_000_000_000n, true);
    this.specView.setBigInt64(16, n / 1_000_000_000n, true);
    this.specView.setBigInt64(24, n % 1_000_000_000n, true);
    sys().timerSettime(this.timerId, 0, this.spec, null);
  }

  /**
   * Stop the timer. Returns the nanoseconds it had left, 0n if it fired; a signal it fired is
   * consumed here if KVM_RUN did not already take it, so none is ever left for a later run.
   */
  disarm(): bigint {
    sys().timerSettime(this.timerId, 0, this.disarmSpec, this.oldSpec);
    const left = this.oldView.getBigInt64(16, true) * 1_000_000_000n + this.oldView.getBigInt64(24, true);
    if (left === 0n) this.drain();
    return left;
  }

  /** Consume a pending watchdog signal, if any. Returns whether there was one. */
  drain(): boolean {
    return sys().sigtimedwait(this.waitSet, this.noWait) === WATCHDOG_SIGNAL;
  }

  /**
   * Run `call`, one blocking syscall through koffi on this thread, so that the deadline interrupts
   * it: arm the timer, unblock the signal, call, block it again, stop the timer and consume a signal
   * left pending. A call that returns EINTR before the deadline was interrupted by another signal and
   * is made again for the time left (the caller's `call` must be safe to repeat after an EINTR that
   * changed nothing). Returns the last result and whether the deadline passed; the signal is blocked
   * and not pending afterwards in every case, exceptions included.
   *
   * The deadline is measured on CLOCK_MONOTONIC (process.hrtime), because the timer re-fires
   * (REFIRE_NS) and so cannot report on its own whether it ever fired.
   */
  callWithDeadline(timeoutMs: number, call: () => SyscallResult): SyscallResult & { expired: boolean } {
    const s = sys();
    const deadline = process.hrtime.bigint() + BigInt(Math.max(1, Math.round(timeoutMs * 1e6)));
    for (;;) {
      this.arm(deadline - process.hrtime.bigint(), REFIRE_NS);
      let res: SyscallResult;
      s.pthreadSigmask(SIG_UNBLOCK, this.waitSet, null);
      try {
        res = call();
      } finally {
        s.pthreadSigmask(SIG_BLOCK, this.waitSet, null);
        sys().timerSettime(this.timerId, 0, this.disarmSpec, null);
        while (this.drain()) {
          // a timer queues at most one signal (further expiries count as overruns); loop anyway
        }
      }
      if (res.r >= 0 || res.errno !== ERRNO.EINTR) return { ...res, expired: false };
      if (process.hrtime.bigint() >= deadline) return { ...res, expired: true };
    }
  }

  /** Whether the watchdog signal is blocked in this thread now (tests). */
  isBlocked(): boolean {
    const cur = new Uint8Array(GLIBC_SIGSET);
    sys().pthreadSigmask(SIG_BLOCK, null, cur);
    const bit = WATCHDOG_SIGNAL - 1;
    return ((cur[bit >> 3] ?? 0) & (1 << (bit & 7))) !== 0;
  }

  /** Whether a watchdog signal is pending for this thread or the process (tests). */
  isPending(): boolean {
    const set = new Uint8Array(GLIBC_SIGSET);
    sys().sigpending(set);
    const bit = WATCHDOG_SIGNAL - 1;
    return ((set[bit >> 3] ?? 0) & (1 << (bit & 7))) !== 0;
  }

  /** Whether this thread is the one the timer signals (a vCPU must run on it to be interruptible). */
  isCurrentThread(): boolean {
    return sys().gettid() === this.tid;
  }
}
