/** `guestmem caps`: the model's capabilities beside the live kernel's. */
import { createModelKvm, PROFILES } from '../model/index.js';
import { CAP, GUEST_MEMFD_FLAGS, VM_TYPE } from '../uapi/constants.js';
import { kvmBackend, loadKvmModule, probe } from './kvm-backend.js';

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
  const model = createModelKvm({ kernel: kernel === 'host' ? '6.18' : kernel });
  const modelCaps: Record<string, number> = {};
  for (const [name, cap] of Object.entries(CAP)) modelCaps[name] = model.checkExtension(cap);
  model.close();

  let live: Record<string, number> | undefined;
  let liveWhy = '';
  let release = '';
  try {
    const mod = await loadKvmModule();
    const avail = mod.kvmAvailable();
    if (avail.ok) {
      const kvm = mod.openKvm();
      try {
        const p = probe(kvm);
        release = p.release;
        live = {};
        for (const [name, cap] of Object.entries(CAP)) live[name] = p.system[cap] ?? 0;
      } finally {
        kvm.close();
      }
    } else liveWhy = avail.reason;
  } catch (e) {
    liveWhy = (e as Error).message;
  }
  if (kernel === 'host' && live) await kvmBackend();
  if (json)
    return JSON.stringify(
      { model: { profile: PROFILES[kernel]?.name ?? kernel, caps: modelCaps }, kvm: live ? { release, caps: live } : { unavailable: liveWhy } },
      null,
      2,
    );

  const rows = [['capability', `model (${kernel})`, live ? `/dev/kvm (${release})` : '/dev/kvm']];
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
  if (!live) lines.push(`(/dev/kvm not probed: ${liveWhy})`);
  return lines.join('\n');
}
