/** The model profile a `--kernel` flag names; `host` is the live kernel's, probed through /dev/kvm. */
import type { KernelProfile } from '../model/index.js';
import { UserError } from './errors.js';
import { kvmBackend } from './kvm-backend.js';

export async function modelProfile(kernel: string): Promise<string | KernelProfile> {
  if (kernel !== 'host') return kernel;
  try {
    return (await kvmBackend()).hostProfile();
  } catch (e) {
    if (!(e instanceof UserError)) throw e;
    throw new UserError(`--kernel host follows the live kernel, which needs /dev/kvm: ${e.message.replace(/^--backend kvm: /, '')}`);
  }
}
