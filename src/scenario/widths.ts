/**
 * How wide each numeric field of a step is, so that a value the field cannot hold is a load error
 * instead of being cut to its low bits (a size of 0x10000000000001000 must not become 4096, a slot
 * of 0x100000000 must not become slot 0). Every width is the C type the value lands in (the uAPI
 * struct field or syscall argument). A value fits if it fits the type signed or unsigned: -1 in a
 * u64 means 2^64-1 and 2^63 in a loff_t means -2^63, as a C assignment would, and as the kernel's
 * own signed reinterpretation of loff_t does; what neither can hold is refused.
 */
import type { Scenario } from './schema.js';
import { int } from './values.js';

/** A C type by its bits, or a byte count the runner allocates (a read's length, a fill's length). */
type Width = 'u64' | 'u32' | 'u16' | 'u8' | 'int' | 'loff_t' | 'buffer' | 'count';

const BITS: Record<Exclude<Width, 'buffer' | 'count'>, number> = { u64: 64, loff_t: 64, u32: 32, int: 32, u16: 16, u8: 8 };
/** The most bytes one step may read or write: more than any scenario needs, little enough to allocate. */
export const MAX_BUFFER = 1n << 30n;
/** The most pages one move_pages step asks about (the runner builds the status array). */
export const MAX_COUNT = 1n << 20n;

/** Numeric fields by op. `[]` marks a list of such values; fd-like references are `int` when numeric. */
const FIELDS: Readonly<Record<string, Readonly<Record<string, Width>>>> = {
  create_vm: { type: 'u64' },
  check_extension: { cap: 'u64' },
  enable_cap: { cap: 'u32', 'args[]': 'u64', flags: 'u32' },
  create_guest_memfd: { size: 'u64', flags: 'u64', 'reserved[]': 'u64' },
  set_user_memory_region2: {
    slot: 'u32',
    flags: 'u32',
    guest_phys_addr: 'u64',
    memory_size: 'u64',
    userspace_addr: 'u64',
    guest_memfd: 'u32',
    guest_memfd_offset: 'u64',
  },
  set_user_memory_region: { slot: 'u32', flags: 'u32', guest_phys_addr: 'u64', memory_size: 'u64', userspace_addr: 'u64' },
  set_memory_attributes: { address: 'u64', size: 'u64', attributes: 'u64', flags: 'u64' },
  fallocate: { fd: 'int', mode: 'int', offset: 'loff_t', length: 'loff_t' },
  mmap: { fd: 'int', offset: 'loff_t', length: 'u64', prot: 'int', flags: 'int' },
  mmap_anonymous: { length: 'u64' },
  madvise: { offset: 'u64', length: 'u64' },
  mbind: { offset: 'u64', length: 'u64', mode: 'int' },
  get_mempolicy: { offset: 'u64' },
  move_pages: { offset: 'u64', count: 'count' },
  host_write: { offset: 'u64', length: 'buffer' },
  host_read: { offset: 'u64', length: 'buffer' },
  memfd_create: { flags: 'u32' },
  read: { fd: 'int', length: 'buffer' },
  write: { fd: 'int', length: 'buffer' },
  pread: { fd: 'int', length: 'buffer', offset: 'loff_t' },
  pwrite: { fd: 'int', offset: 'loff_t', length: 'buffer' },
  lseek: { fd: 'int', offset: 'loff_t', whence: 'int' },
  ftruncate: { fd: 'int', size: 'loff_t' },
  fstat: { fd: 'int' },
  dup: { fd: 'int' },
  close: { fd: 'int' },
  run: { vcpu: 'u32', hypercall_ret: 'u64' },
  pre_fault_memory: { vcpu: 'u32', gpa: 'u64', size: 'u64', flags: 'u64' },
  fcntl: { fd: 'int', seals: 'u32' },
  set_user_memory_region_ext: {
    slot: 'u32',
    flags: 'u32',
    guest_phys_addr: 'u64',
    memory_size: 'u64',
    userspace_addr: 'u64',
    private_fd: 'u32',
    private_offset: 'u64',
  },
  memory_encrypt_reg_region: { addr: 'u64', size: 'u64' },
  memory_encrypt_unreg_region: { addr: 'u64', size: 'u64' },
  tdx_init_mem_region: { source_offset: 'u64', gpa: 'u64', npages: 'u64' },
  tdx_measurement_covers: { gpa: 'u64' },
  mm_migrate: { fd: 'int', offset: 'loff_t' },
  mm_reclaim: { fd: 'int', offset: 'loff_t' },
  backing_pages: { gpa: 'u64' },
  memory_encrypt_op: {
    cmd: 'u32',
    vcpu: 'u32',
    flags: 'u32',
    vmsa_features: 'u64',
    ghcb_version: 'u16',
    policy: 'u64',
    gfn_start: 'u64',
    uaddr: 'u64',
    len: 'u64',
    type: 'u8',
    hw_error: 'u64',
    attributes: 'u64',
    xfam: 'u64',
    'reserved[]': 'u64',
    rcx: 'u64',
    source_addr: 'u64',
    gpa: 'u64',
    nr_pages: 'u64',
    nent: 'u32',
  },
  direct_map_read: { fd: 'int', offset: 'loff_t', length: 'buffer' },
  direct_map_write: { fd: 'int', offset: 'loff_t', length: 'buffer' },
};

/** Guest program ops: addresses are u64 GPAs, `out` is a 16-bit port and a 32-bit value. */
const PROGRAM: Readonly<Record<string, Readonly<Record<string, Width>>>> = {
  write: { write: 'u64', value: 'u64' },
  read: { read: 'u64' },
  map_gpa_range: { map_gpa_range: 'u64', npages: 'u64' },
  out: { out: 'u16', value: 'u32' },
  pvalidate: { pvalidate: 'u64' },
  tdg_mem_page_accept: { tdg_mem_page_accept: 'u64' },
};

const CPUID: Readonly<Record<string, Width>> = { function: 'u32', index: 'u32', flags: 'u32', eax: 'u32', ebx: 'u32', ecx: 'u32', edx: 'u32' };

const hexOf = (n: bigint) => (n < 0n ? `-0x${(-n).toString(16)}` : `0x${n.toString(16)}`);

function range(w: Width): [bigint, bigint] {
  if (w === 'buffer') return [0n, MAX_BUFFER];
  if (w === 'count') return [0n, MAX_COUNT];
  const bits = BigInt(BITS[w]);
  return [-(1n << (bits - 1n)), (1n << bits) - 1n];
}

/** Why `v` does not fit `w`, if it does not. Only integers are checked (names are references). */
function misfit(v: unknown, w: Width): string | undefined {
  if (typeof v !== 'number' && typeof v !== 'string') return undefined;
  let n: bigint;
  try {
    n = int(v);
  } catch {
    return undefined; // a name, not a number: names.ts checks it
  }
  const [lo, hi] = range(w);
  if (n >= lo && n <= hi) return undefined;
  const what = w === 'buffer' ? 'a byte count the runner allocates' : w === 'count' ? 'a page count the runner allocates' : `a ${w}`;
  return `${typeof v === 'string' ? v : hexOf(n)} is out of range for ${what} (${hexOf(lo)} to ${hexOf(hi)})`;
}

function checkFields(obj: Readonly<Record<string, unknown>>, table: Readonly<Record<string, Width>>, at: string, out: string[]): void {
  for (const [key, w] of Object.entries(table)) {
    const list = key.endsWith('[]');
    const field = list ? key.slice(0, -2) : key;
    let v = obj[field];
    // userspace_addr/uaddr/source_addr may be {"map": m, "offset": n}: the offset is the u64
    if (v !== null && typeof v === 'object' && !Array.isArray(v)) v = (v as { offset?: unknown }).offset;
    const vals = list && Array.isArray(v) ? v : [v];
    vals.forEach((x, i) => {
      const why = misfit(x, w);
      if (why) out.push(`${at}.${field}${list ? `[${i}]` : ''}: ${why}`);
    });
  }
}

/** Every numeric field that does not fit its C type, as `steps[3].size: ... out of range ...`. */
export function widthProblems(sc: Scenario): string[] {
  const out: string[] = [];
  sc.steps.forEach((s, i) => {
    const at = `steps[${i}]`;
    const rec = s as unknown as Record<string, unknown>;
    checkFields(rec, FIELDS[s.op] ?? {}, at, out);
    if (s.op === 'run')
      (s.program ?? []).forEach((o, j) => {
        if (typeof o === 'string') return;
        const kind = Object.keys(PROGRAM).find((k) => k in o);
        if (kind) checkFields(o as Record<string, unknown>, PROGRAM[kind] ?? {}, `${at}.program[${j}]`, out);
      });
    if (s.op === 'memory_encrypt_op')
      (s.cpuid ?? []).forEach((e, j) => {
        checkFields(e, CPUID, `${at}.cpuid[${j}]`, out);
      });
  });
  return out;
}
