/** The model profile a `--kernel` flag names; `host` is the live kernel's, probed through /dev/kvm. */

import { KvmUnavailable, kvmBackend } from '../backends/kvm.js';
import type { KernelProfile } from '../model/index.js';
import { UserError } from './errors.js';

export async function modelProfile(kernel: string): Promise<string | KernelProfile> {
  if (kernel !== 'host') return kernel;
  try {
    return (await kvmBackend()).hostProfile();
  } catch (e) {
    if (!(e instanceof KvmUnavailable)) throw e;
    throw new UserError(`--kernel host follows the live kernel, which needs /dev/kvm: ${e.message.replace(/^--backend kvm: /, '')}`);
  }
}
