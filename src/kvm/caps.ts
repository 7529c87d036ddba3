/**
 * What a kernel supports, read through the Kvm interface only (so the model can be probed the same
 * way): KVM_CHECK_EXTENSION for every capability src/uapi names, on /dev/kvm and on a fresh default
 * VM, decoded into the VM types, guest_memfd flags and memory attributes it allows. Read-only: the
 * probe VM is closed before returning.
 *
 * With `guest: true` it also runs a few tiny guest programs on a throwaway VM to find out what the
 * guest side can do here (long mode, port I/O, MMIO exits, whether KVM_HC_MAP_GPA_RANGE reaches
 * userspace, whether a guest_memfd-only slot works without a host mapping) and how fast guest code
 * runs. On this machine's PVM kvm the hypercall never exits and guest memory is reached only through
 * userspace_addr.
 */
import { type Kvm, KvmError, type Vcpu, type VcpuExit } from '../api.js';
import {
  CAP,
  type CapName,
  GUEST_MEMFD_FLAGS,
  KVM_HC_MAP_GPA_RANGE,
  KVM_MEM_GUEST_MEMFD,
  MAP_SHARED,
  MEMORY_ATTRIBUTES,
  PROT_READ,
  PROT_WRITE,
  VM_TYPE,
  type VmType,
} from '../uapi/constants.js';

export interface FlagSet {
  readonly mask: number;
  readonly names: string[];
}

export interface GuestCaps {
  /** a 64-bit long-mode program ran (out + hlt exits) */
  readonly longMode: boolean;
  /** guest reads and writes of an anonymous memslot round-tripped */
  readonly memory: boolean;
  /** an access with no memslot exited with KVM_EXIT_MMIO */
  readonly mmioExit: boolean;
  /**
   * a guest access to a guest_memfd-only slot (MMAP|INIT_SHARED, userspace_addr 0) is served from
   * the guest_memfd (6.18 KVM_MEMSLOT_GMEM_ONLY with TDP); false where KVM reaches guest memory only
   * through userspace_addr (this machine's PVM kvm emulates guest code), and the access exits as MMIO.
   * undefined where the kernel has no MMAP|INIT_SHARED guest_memfd to try it with.
   */
  readonly gmemFaultsWithoutHva?: boolean;
  /**
   * a guest read through a memslot whose userspace_addr has nothing mapped exits as MMIO: guest
   * code is emulated and the emulator falls back to vcpu_mmio_read (PVM); with TDP the fault fails
   * in hva_to_pfn and KVM_RUN returns EFAULT (kvm_handle_error_pfn). Needs no guest_memfd.
   */
  readonly emulatedAccess?: boolean;
  /** KVM_HC_MAP_GPA_RANGE came back as KVM_EXIT_HYPERCALL (with KVM_CAP_EXIT_HYPERCALL enabled) */
  readonly hypercallExit: boolean;
  /** why hypercallExit is false, when it is */
  readonly hypercallNote?: string;
  /** guest instructions per second, from the run time of a long straight-line program */
  readonly instructionsPerSecond?: number;
  /** KVM_RUN round trip with one port-I/O exit, in microseconds */
  readonly exitRoundTripUs?: number;
}

export interface CapsReport {
  readonly backend: 'model' | 'kvm';
  readonly profile: string;
  readonly apiVersion: number;
  /** KVM_CHECK_EXTENSION on the system fd */
  readonly system: Record<CapName, number>;
  /** KVM_CHECK_EXTENSION on a default VM (error text if the VM could not be created) */
  readonly vm: Record<CapName, number> | { readonly error: string };
  readonly vmTypes: FlagSet;
  readonly guestMemfdFlags: { readonly system: FlagSet; readonly defaultVm: FlagSet | null };
  readonly memoryAttributes: { readonly system: FlagSet; readonly defaultVm: FlagSet | null };
  /** bit n set: hypercall n may be forwarded to userspace (KVM_CAP_EXIT_HYPERCALL) */
  readonly exitHypercallMask: number;
  /**
   * The GPA width memslots may reach: the kernel's kvm_mmu_max_gfn() + 1 is 2^(maxGpaBits - 12)
   * (the host MAXPHYADDR with TDP, 52 with shadow paging), found by asking KVM for one-page slots
   * ending at 2^b for b from 52 down. Undefined if no default VM could be made.
   */
  readonly maxGpaBits?: number;
  readonly guest?: GuestCaps;
}

export interface ProbeOptions {
  /** also run tiny guest programs (kvm backend: a few ms, plus `hypercallTimeoutMs` on PVM) */
  readonly guest?: boolean;
  readonly hypercallTimeoutMs?: number;
}

function flagSet(mask: number, names: Readonly<Record<string, number | bigint>>): FlagSet {
  const out: string[] = [];
  for (const [name, bit] of Object.entries(names)) if (BigInt(mask) & BigInt(bit)) out.push(name);
  return { mask, names: out };
}

function capsOf(check: (cap: number) => number): Record<CapName, number> {
  const out = {} as Record<CapName, number>;
  for (const [name, cap] of Object.entries(CAP) as [CapName, number][]) out[name] = check(cap);
  return out;
}

export function probeCaps(kvm: Kvm, options: ProbeOptions = {}): CapsReport {
  const system = capsOf((c) => kvm.checkExtension(c));
  let vm: CapsReport['vm'];
  try {
    const v = kvm.createVm('default');
    try {
      vm = capsOf((c) => v.checkExtension(c));
    } finally {
      v.close();
    }
  } catch (e) {
    vm = { error: e instanceof Error ? e.message : String(e) };
  }
  const vmCaps = 'error' in vm ? null : vm;
  const vmTypeBits: Record<string, number> = {};
  for (const [name, n] of Object.entries(VM_TYPE) as [VmType, number][]) vmTypeBits[name] = 1 << n;
  const attrs = Object.fromEntries(Object.entries(MEMORY_ATTRIBUTES).map(([k, v]) => [k, Number(v)]));
  const report: CapsReport = {
    backend: kvm.backend,
    profile: kvm.profile,
    apiVersion: kvm.apiVersion(),
    system,
    vm,
    // KVM_CAP_VM_TYPES is 0 on kernels without it: only the default type exists there.
    vmTypes: flagSet(system.KVM_CAP_VM_TYPES || 1, vmTypeBits),
    guestMemfdFlags: {
      system: flagSet(system.KVM_CAP_GUEST_MEMFD_FLAGS, GUEST_MEMFD_FLAGS),
      defaultVm: vmCaps ? flagSet(vmCaps.KVM_CAP_GUEST_MEMFD_FLAGS, GUEST_MEMFD_FLAGS) : null,
    },
    memoryAttributes: {
      system: flagSet(system.KVM_CAP_MEMORY_ATTRIBUTES, attrs),
      defaultVm: vmCaps ? flagSet(vmCaps.KVM_CAP_MEMORY_ATTRIBUTES, attrs) : null,
    },
    exitHypercallMask: system.KVM_CAP_EXIT_HYPERCALL,
  };
  const maxGpaBits = probeMaxGpaBits(kvm);
  if (maxGpaBits !== undefined) Object.assign(report, { maxGpaBits });
  if (!options.guest) return report;
  return { ...report, guest: probeGuest(kvm, system, options.hypercallTimeoutMs ?? 200) };
}

/**
 * kvm_arch_prepare_memory_region (x86) refuses a slot whose last gfn is above kvm_mmu_max_gfn() with
 * EINVAL: the widest b for which a one-page slot ending at 2^b is accepted is that limit.
 */
function probeMaxGpaBits(kvm: Kvm): number | undefined {
  let vm: ReturnType<Kvm['createVm']>;
  try {
    vm = kvm.createVm('default');
  } catch {
    return undefined;
  }
  const page = kvm.mmapAnonymous(0x1000n);
  try {
    for (let b = 52; b >= 32; b--) {
      const region = { slot: 0, flags: 0, guestPhysAddr: (1n << BigInt(b)) - 0x1000n, memorySize: 0x1000n, userspaceAddr: page.addr };
      try {
        vm.setUserMemoryRegion(region);
      } catch (e) {
        if (e instanceof KvmError && e.errno === 'EINVAL') continue;
        throw e;
      }
      vm.setUserMemoryRegion({ ...region, memorySize: 0n });
      return b;
    }
    return undefined;
  } finally {
    vm.close();
    page.unmap();
  }
}

/** A vCPU that can run with a short deadline (the kvm backend's) or the backend's default one. */
function runShort(vcpu: Vcpu, ms: number): VcpuExit {
  const v = vcpu as Vcpu & { runWithDeadline?: (ms: number) => VcpuExit };
  return v.runWithDeadline ? v.runWithDeadline(ms) : vcpu.run();
}

function probeGuest(kvm: Kvm, system: Record<CapName, number>, hypercallTimeoutMs: number): GuestCaps {
  const vm = kvm.createVm('default');
  const mem = kvm.mmapAnonymous(0x200000n);
  let vcpu: Vcpu | undefined;
  try {
    vm.setUserMemoryRegion({ slot: 0, flags: 0, guestPhysAddr: 0x200000n, memorySize: 0x200000n, userspaceAddr: mem.addr });
    const cpu = vm.createVcpu(0);
    vcpu = cpu;
    // long mode + port I/O
    cpu.load([{ op: 'out', port: 0x10, value: 0x5an }, { op: 'hlt' }]);
    const e1 = cpu.run();
    const e2 = cpu.run();
    const longMode = e1.reason === 'io' && e1.io?.value === 0x5an && e2.reason === 'hlt';
    // memory round trip
    mem.write(0x1000n, Uint8Array.of(0x41, 0x42, 0x43, 0x44));
    cpu.load([{ op: 'read', gpa: 0x201000n, width: 4 }, { op: 'write', gpa: 0x201004n, width: 2, value: 0x4545n }, { op: 'hlt' }]);
    const e3 = cpu.run();
    const back = mem.read(0x1004n, 2);
    const memory = e3.reason === 'hlt' && e3.reads[0] === 0x44434241n && back[0] === 0x45 && back[1] === 0x45;
    // no memslot -> MMIO
    cpu.load([{ op: 'read', gpa: 0x40000000n, width: 4 }, { op: 'hlt' }]);
    const e4 = cpu.run();
    const mmioExit = e4.reason === 'mmio' && e4.mmio?.physAddr === 0x40000000n;
    // a slot whose host range was unmapped after it was bound
    let emulatedAccess: boolean | undefined;
    const gone = kvm.mmapAnonymous(0x200000n);
    const goneAddr = gone.addr;
    gone.unmap();
    const goneGpa = 0x80000000n;
    vm.setUserMemoryRegion({ slot: 2, flags: 0, guestPhysAddr: goneGpa, memorySize: 0x200000n, userspaceAddr: goneAddr });
    cpu.load([{ op: 'read', gpa: goneGpa, width: 4 }, { op: 'hlt' }]);
    try {
      emulatedAccess = cpu.run().reason === 'mmio';
    } catch (err) {
      if (!(err instanceof KvmError)) throw err;
      if (err.errno === 'EFAULT') emulatedAccess = false;
    }
    vm.setUserMemoryRegion({ slot: 2, flags: 0, guestPhysAddr: goneGpa, memorySize: 0n, userspaceAddr: goneAddr });
    // guest_memfd-only slot without a host mapping
    let gmemFaultsWithoutHva: boolean | undefined;
    const shared = GUEST_MEMFD_FLAGS.mmap | GUEST_MEMFD_FLAGS.init_shared;
    if ((BigInt(system.KVM_CAP_GUEST_MEMFD_FLAGS) & shared) === shared) {
      const g = vm.createGuestMemfd({ size: 0x200000n, flags: shared });
      try {
        const hm = g.mmap(0n, 0x1000n, PROT_READ | PROT_WRITE, MAP_SHARED);
        hm.write(0n, Uint8Array.of(0xaa));
        hm.unmap();
        const gpa = 1n << 32n;
        vm.setUserMemoryRegion2({
          slot: 1,
          flags: KVM_MEM_GUEST_MEMFD,
          guestPhysAddr: gpa,
          memorySize: 0x200000n,
          userspaceAddr: 0n,
          guestMemfd: g.fd,
          guestMemfdOffset: 0n,
        });
        cpu.load([{ op: 'read', gpa, width: 1 }, { op: 'hlt' }]);
        const e = cpu.run();
        gmemFaultsWithoutHva = e.reason === 'hlt' && e.reads[0] === 0xaan;
      } finally {
        g.close();
      }
    }
    // speed: a long straight-line program (3 instructions per write op) against an empty one
    const writes = Array.from({ length: 300 }, (_, i) => ({ op: 'write' as const, gpa: 0x202000n + BigInt(8 * i), width: 8 as const, value: BigInt(i) }));
    const time = (prog: Parameters<Vcpu['load']>[0]) => {
      cpu.load(prog);
      const t = performance.now();
      cpu.run();
      return performance.now() - t;
    };
    time([{ op: 'hlt' }]);
    const empty = Math.min(time([{ op: 'hlt' }]), time([{ op: 'hlt' }]), time([{ op: 'hlt' }]));
    const full = Math.min(time([...writes, { op: 'hlt' }]), time([...writes, { op: 'hlt' }]));
    const instructionsPerSecond = full > empty ? Math.round((writes.length * 3) / ((full - empty) / 1000)) : undefined;
    // hypercall forwarding
    let hypercallExit = false;
    let hypercallNote: string | undefined;
    const mask = 1 << KVM_HC_MAP_GPA_RANGE;
    if (!(system.KVM_CAP_EXIT_HYPERCALL & mask)) {
      hypercallNote = 'KVM_CAP_EXIT_HYPERCALL does not offer KVM_HC_MAP_GPA_RANGE';
    } else {
      vm.enableCap(CAP.KVM_CAP_EXIT_HYPERCALL, [BigInt(mask)]);
      cpu.load([{ op: 'map_gpa_range', gpa: 0x200000n, npages: 1n, attrs: 0n }, { op: 'hlt' }]);
      try {
        const e = runShort(cpu, hypercallTimeoutMs);
        hypercallExit = e.reason === 'hypercall' && e.hypercall?.nr === BigInt(KVM_HC_MAP_GPA_RANGE);
        if (!hypercallExit) hypercallNote = `the hypercall gave exit '${e.reason}'`;
      } catch (err) {
        if (!(err instanceof KvmError)) throw err;
        hypercallNote = `no KVM_EXIT_HYPERCALL within ${hypercallTimeoutMs} ms (${err.message})`;
      }
    }
    // exit round trip
    cpu.load([...Array.from({ length: 50 }, () => ({ op: 'out' as const, port: 0x10, value: 1n })), { op: 'hlt' }]);
    cpu.run();
    const t = performance.now();
    for (let i = 0; i < 48; i++) cpu.run();
    const exitRoundTripUs = Math.round(((performance.now() - t) / 48) * 1000 * 10) / 10;
    const out: GuestCaps = { longMode, memory, mmioExit, hypercallExit, exitRoundTripUs };
    return {
      ...out,
      ...(gmemFaultsWithoutHva === undefined ? {} : { gmemFaultsWithoutHva }),
      ...(emulatedAccess === undefined ? {} : { emulatedAccess }),
      ...(hypercallNote === undefined ? {} : { hypercallNote }),
      ...(instructionsPerSecond === undefined ? {} : { instructionsPerSecond }),
    };
  } finally {
    // the vCPU holds the VM (KERNEL-SPEC I1): close it first
    vcpu?.close();
    vm.close();
    mem.unmap();
  }
}
