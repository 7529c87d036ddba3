/**
 * Kept apart from kvm.ts so that the command can recognise it without loading the backend. The kvm backend cannot be used here (koffi does not load, no /dev/kvm, no permission): the
 * user's environment, not a bug, so the command reports it as a usage error (exit status 2).
 */
export class KvmUnavailable extends Error {
  override readonly name = 'KvmUnavailable';
}
