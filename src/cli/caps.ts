/** `guestmem caps`: the model's capabilities beside the live kernel's. */

import { loadKvmModule, probe } from '../backends/kvm.js';
import { createModelKvm, getProfile, hostProfile, type ProbedCaps } from '../model/index.js';
import { CAP, GUEST_MEMFD_FLAGS, VM_TYPE } from '../uapi/constants.js';
import { UserError } from './errors.js';

function vmTypes(mask: number): string {
  return (
    Object.entries(VM_TYPE)
      .filter(([, v]) => mask & (1 << v))
      .map(([k]) => k)
      .join(',') || '-'
  );
}
function gmemFlags(v: number): string {
  return (
    Object.entries(GUEST_MEMFD_FLAGS)
      .filter(([, f]) => BigInt(v) & f)
      .map(([k]) => k)
      .join('|') || '0'
  );
}

export async function capsReport(kernel: string, json: boolean): Promise<string> {
  let probed: ProbedCaps | undefined;
  let liveWhy = '';
  try {
    const mod = await loadKvmModule();
    const avail = mod.kvmAvailable();
    if (avail.ok) {
      const kvm = mod.openKvm();
      try {
        probed = probe(kvm, mod);
      } finally {
        kvm.close();
      }
    } else liveWhy = avail.reason;
  } catch (e) {
    liveWhy = (e as Error).message;
  }
  if (kernel === 'host' && !probed) throw new UserError(`--kernel host needs /dev/kvm: ${liveWhy}`);
  const profile = kernel === 'host' && probed ? hostProfile(probed) : getProfile(kernel);
  const model = createModelKvm({ kernel: profile });
  const modelCaps: Record<string, number> = {};
  for (const [name, cap] of Object.entries(CAP)) modelCaps[name] = model.checkExtension(cap);
  model.close();
  const live = probed ? Object.fromEntries(Object.entries(CAP).map(([name, cap]) => [name, probed.system[cap] ?? 0])) : undefined;
  const guest = probed?.guest;

  if (json) {
    return JSON.stringify(
      { model: { profile: profile.name, caps: modelCaps }, kvm: probed ? { release: probed.release, caps: live, guest } : { unavailable: liveWhy } },
      null,
      2,
    );
  }
  const rows = [['capability', `model (${profile.name})`, probed ? `/dev/kvm (${probed.release})` : '/dev/kvm']];
  for (const name of Object.keys(CAP)) {
    const fmt = (v: number | undefined) =>
      v === undefined
        ? 'n/a'
        : name === 'KVM_CAP_VM_TYPES'
          ? `${v} (${vmTypes(v)})`
          : name === 'KVM_CAP_GUEST_MEMFD_FLAGS'
            ? `${v} (${gmemFlags(v)})`
            : String(v);
    rows.push([name, fmt(modelCaps[name]), fmt(live?.[name])]);
  }
  const w = [0, 1, 2].map((i) => Math.max(...rows.map((r) => (r[i] as string).length)));
  const lines = rows.map((r) =>
    r
      .map((c, i) => c.padEnd(w[i] as number))
      .join('  ')
      .trimEnd(),
  );
  if (!probed) lines.push(`(/dev/kvm not probed: ${liveWhy})`);
  if (guest) {
    lines.push('');
    lines.push(
      `guest programs on /dev/kvm: guest_memfd-only slots ${gmemOnlyText(guest.gmemFaultsWithoutHva)}; KVM_HC_MAP_GPA_RANGE ${guest.hypercallExit ? 'exits to userspace' : 'never exits to userspace'}`,
    );
    if (guest.emulatedAccess !== undefined) {
      lines.push(
        `guest accesses through an unmapped userspace_addr ${guest.emulatedAccess ? 'exit as MMIO (guest code is emulated)' : 'fail KVM_RUN with EFAULT (hardware-assisted paging)'}`,
      );
    }
    lines.push('--kernel host makes the model follow these answers (guestmem run --kernel host ...)');
  }
  return lines.join('\n');
}

/** What the guest probe found about guest_memfd-only slots; undefined: it had no guest_memfd to try. */
function gmemOnlyText(served: boolean | undefined): string {
  if (served === undefined) return 'not tried (this kernel has no MMAP|INIT_SHARED guest_memfd)';
  return served ? 'are served from guest_memfd' : 'are NOT served from guest_memfd (guest code is emulated through userspace_addr)';
}
