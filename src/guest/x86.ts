/**
 * Guest programs as x86-64 machine code for the real kernel (DESIGN.md "guest/"). A GuestProgram
 * becomes straight-line 64-bit code plus the page tables it needs, all inside the reserved code
 * slot (CODE_GPA, CODE_SIZE), so that the only memory a program touches outside that slot is the
 * memory its ops name. Pure: no Node API, it bundles for the browser.
 *
 * Why 64-bit long mode: it addresses every GPA below 2^52 with one encoding (mov r64, imm64), and
 * it ran on this machine's PVM kvm as well as 32-bit and real mode did (PERFORMANCE.md §3.6).
 * Paging is an identity map built from 2 MiB pages, added per 2 MiB region a program touches (so a
 * program touching 0x1000 and 1 TiB needs three small tables, not a 1 TiB map). GPAs at or above
 * 2^47 cannot be identity-mapped (a virtual address must be canonical); each such 2 MiB region is
 * reached through a window at WINDOW_VA instead. Accessed/dirty bits are preset so the CPU (or
 * KVM's emulator) never writes to the tables.
 *
 * How the kvm backend observes a program:
 * - `read` loads the value, then stores it in the region's read log (value k at LOG+8+8k) and sets
 *   LOG[0] = k+1. The host reads the log after every exit, which gives the same `reads` list the
 *   model reports without an exit per read. A read re-executed after an exit rewrites the same slot.
 * - `out` is `out dx, eax` with the value's low 32 bits -> KVM_EXIT_IO of size 4 (the model
 *   reports the same size and truncation).
 * - `map_gpa_range` is the KVM_HC_MAP_GPA_RANGE hypercall: rax=12, rbx=gpa, rcx=npages, rdx=attrs,
 *   then VMCALL (Intel) or VMMCALL (AMD) -> KVM_EXIT_HYPERCALL when userspace enabled
 *   KVM_CAP_EXIT_HYPERCALL; KVM writes kvm_run.hypercall.ret to rax on re-entry.
 * - `hlt` -> KVM_EXIT_HLT. The program ends in `hlt; jmp back`, so running past its end keeps
 *   exiting with hlt.
 * Registers: rdi (address), rax (value), rbx/rcx/rdx (hypercall, port) are scratch; rbp holds the
 * read log address for the whole program.
 *
 * `shared` on an access is not encoded: it stands for the SNP C-bit / TDX shared bit, which only
 * exist in SNP/TDX guests' page tables; on default and software-protected VMs the memory
 * attributes decide, as in KVM.
 */
import { CODE_GPA, CODE_SIZE, type GuestOp, type GuestProgram, type Width } from '../api.js';

const PAGE = 4096;
const LARGE = 0x200000n; // 2 MiB
const LARGE_SHIFT = 21n;

/** Page-table entry bits: present, writable, accessed, dirty, page size (2 MiB leaf). */
const PTE_P = 0x1n;
const PTE_RW = 0x2n;
const PTE_A = 0x20n;
const PTE_D = 0x40n;
const PTE_PS = 0x80n;
const TABLE_FLAGS = PTE_P | PTE_RW | PTE_A;
const LEAF_FLAGS = PTE_P | PTE_RW | PTE_A | PTE_D | PTE_PS;
const ADDR_MASK = 0x000ffffffffff000n;

/** Canonical lower half: identity-mapped GPAs must end below this. */
export const IDENTITY_LIMIT = 1n << 47n;
/** x86 page-table entries hold physical addresses below 2^52. */
export const GPA_LIMIT = 1n << 52n;
/** Virtual base of the windows for GPAs >= 2^47 (PML4 slot 255, well above any identity use here). */
export const WINDOW_VA = 0x7fc000000000n;

/** Where things live inside the code slot (page numbers relative to its start). */
export const SLOT = {
  /** PML4 */
  pml4Page: 0,
  /** PDPT and PD pages, handed out on demand */
  tablePages: { first: 1, end: 64 },
  /** program regions: one per vCPU that loads programs */
  regionFirstPage: 64,
  regionPages: 16,
  /** page 0 of a region is the read log; the code follows */
  logPages: 1,
} as const;
export const REGION_COUNT = Math.floor((Number(CODE_SIZE) / PAGE - SLOT.regionFirstPage) / SLOT.regionPages);
/** LOG[0] is the count; one page holds this many values. */
export const MAX_READS = PAGE / 8 - 1;
export const MAX_CODE_BYTES = (SLOT.regionPages - SLOT.logPages) * PAGE;

export type HypercallInsn = 'vmcall' | 'vmmcall';

export interface X86Options {
  /** VMCALL on Intel, VMMCALL on AMD; KVM patches the other one on first use (FIX_HYPERCALL quirk). */
  readonly hypercall?: HypercallInsn;
}

/** What the host needs to start a loaded program. */
export interface LoadedProgram {
  readonly region: number;
  /** guest RIP of the first instruction */
  readonly entry: bigint;
  /** guest CR3 (the PML4, at the start of the code slot) */
  readonly cr3: bigint;
  /** guest-physical address of the read log (count at +0, values from +8) */
  readonly logGpa: bigint;
  /** number of read ops */
  readonly reads: number;
  /** guest RIP at which each op's code starts, in op order */
  readonly opStarts: readonly bigint[];
  /** code size in bytes */
  readonly codeBytes: number;
}

/** A little-endian byte emitter. */
class Code {
  readonly bytes: number[] = [];
  get length(): number {
    return this.bytes.length;
  }
  b(...xs: number[]): this {
    this.bytes.push(...xs);
    return this;
  }
  imm(v: bigint, n: number): this {
    const u = BigInt.asUintN(n * 8, v);
    for (let i = 0; i < n; i++) this.bytes.push(Number((u >> BigInt(8 * i)) & 0xffn));
    return this;
  }
  /** mov r64, imm64 (REX.W B8+r); r = 0 rax, 1 rcx, 2 rdx, 3 rbx, 5 rbp, 6 rsi, 7 rdi */
  movImm64(r: number, v: bigint): this {
    return this.b(0x48, 0xb8 + r).imm(v, 8);
  }
  /** mov r32, imm32 (zero-extends into the 64-bit register) */
  movImm32(r: number, v: bigint): this {
    return this.b(0xb8 + r).imm(v, 4);
  }
}

const RAX = 0;
const RCX = 1;
const RDX = 2;
const RBX = 3;
const RBP = 5;
const RDI = 7;

/**
 * The code slot's contents: page tables shared by every program in the slot (an identity map only
 * grows, so one vCPU's load never breaks another's), plus one region per vCPU.
 * `mem` is the slot's memory (CODE_SIZE bytes) as the host sees it; `base` its guest-physical address.
 */
export class CodeSlotImage {
  private readonly view: DataView;
  private nextTable: number = SLOT.tablePages.first;
  /** 2 MiB virtual region index -> guest-physical region index it maps */
  private readonly mapped = new Map<bigint, bigint>();
  /** guest-physical region index (>= 2^47) -> its window's virtual region index */
  private readonly windows = new Map<bigint, bigint>();

  private readonly mem: Uint8Array;
  private readonly base: bigint;

  constructor(mem: Uint8Array, base: bigint = CODE_GPA) {
    this.mem = mem;
    this.base = base;
    if (mem.length < Number(CODE_SIZE)) throw new RangeError(`code slot memory of ${mem.length} bytes < ${CODE_SIZE}`);
    if (base % LARGE !== 0n) throw new RangeError('the code slot must be 2 MiB aligned');
    this.view = new DataView(mem.buffer, mem.byteOffset, Number(CODE_SIZE));
    this.mem.fill(0, 0, SLOT.tablePages.end * PAGE);
    this.mapRegion(base >> LARGE_SHIFT, base >> LARGE_SHIFT);
  }

  get cr3(): bigint {
    return this.base + BigInt(SLOT.pml4Page * PAGE);
  }

  regionGpa(region: number): bigint {
    if (!Number.isInteger(region) || region < 0 || region >= REGION_COUNT) {
      throw new RangeError(`program region ${region} out of range 0..${REGION_COUNT - 1}`);
    }
    return this.base + BigInt((SLOT.regionFirstPage + region * SLOT.regionPages) * PAGE);
  }

  /** Assemble `program` into `region` and map every GPA it touches. */
  load(region: number, program: GuestProgram, options: X86Options = {}): LoadedProgram {
    const logGpa = this.regionGpa(region);
    const codeGpa = logGpa + BigInt(SLOT.logPages * PAGE);
    // Validate and map first, so a bad program leaves the region as it was.
    const vas = program.map((op) => this.vaFor(op));
    const { code, opStarts, reads } = assemble(program, vas, codeGpa, logGpa, options);
    const off = Number(codeGpa - this.base);
    this.mem.set(code, off);
    this.view.setBigUint64(Number(logGpa - this.base), 0n, true);
    return { region, entry: codeGpa, cr3: this.cr3, logGpa, reads, opStarts, codeBytes: code.length };
  }

  /** How many reads the program in `region` has completed since it was loaded. */
  readCount(region: number): number {
    return Number(this.view.getBigUint64(Number(this.regionGpa(region) - this.base), true));
  }

  /** The value of read number `k` (0-based) of the program in `region`. */
  readValue(region: number, k: number): bigint {
    return this.view.getBigUint64(Number(this.regionGpa(region) - this.base) + 8 + 8 * k, true);
  }

  /** The virtual address the program uses for an op's memory access (undefined: no access). */
  private vaFor(op: GuestOp): bigint | undefined {
    if (op.op !== 'read' && op.op !== 'write') return undefined;
    checkWidth(op.width);
    const first = op.gpa;
    const last = op.gpa + BigInt(op.width) - 1n;
    if (first < 0n || last >= GPA_LIMIT) {
      throw new RangeError(`${op.op} at gpa 0x${op.gpa.toString(16)}: x86 guests address GPAs below 2^52`);
    }
    if (last < IDENTITY_LIMIT) {
      for (let r = first >> LARGE_SHIFT; r <= last >> LARGE_SHIFT; r++) this.mapRegion(r, r);
      return first;
    }
    const region = first >> LARGE_SHIFT;
    if (last >> LARGE_SHIFT !== region) {
      throw new RangeError(`${op.op} at gpa 0x${op.gpa.toString(16)} crosses a 2 MiB boundary above 2^47`);
    }
    let win = this.windows.get(region);
    if (win === undefined) {
      win = (WINDOW_VA >> LARGE_SHIFT) + BigInt(this.windows.size);
      if (win << LARGE_SHIFT >= IDENTITY_LIMIT) throw new RangeError('too many distinct 2 MiB regions above 2^47');
      this.mapRegion(win, region);
      this.windows.set(region, win);
    }
    return (win << LARGE_SHIFT) | (first & (LARGE - 1n));
  }

  /** Map virtual 2 MiB region `va` to guest-physical region `pa` (both as 2 MiB indices). */
  private mapRegion(va: bigint, pa: bigint): void {
    const have = this.mapped.get(va);
    if (have !== undefined) {
      if (have !== pa) throw new RangeError(`virtual 2 MiB region 0x${(va << LARGE_SHIFT).toString(16)} is already in use`);
      return;
    }
    const v = va << LARGE_SHIFT;
    const pdpt = this.table(this.cr3, Number((v >> 39n) & 511n));
    const pd = this.table(pdpt, Number((v >> 30n) & 511n));
    this.setEntry(pd, Number((v >> 21n) & 511n), (pa << LARGE_SHIFT) | LEAF_FLAGS);
    this.mapped.set(va, pa);
  }

  /** The next-level table behind entry `index` of table `tableGpa`, created if absent. */
  private table(tableGpa: bigint, index: number): bigint {
    const e = this.entry(tableGpa, index);
    if (e & PTE_P) return e & ADDR_MASK;
    if (this.nextTable >= SLOT.tablePages.end) throw new RangeError('guest page-table pool exhausted: the programs touch too many distinct 1 GiB regions');
    const page = this.base + BigInt(this.nextTable++ * PAGE);
    this.mem.fill(0, Number(page - this.base), Number(page - this.base) + PAGE);
    this.setEntry(tableGpa, index, page | TABLE_FLAGS);
    return page;
  }

  private entry(tableGpa: bigint, index: number): bigint {
    return this.view.getBigUint64(Number(tableGpa - this.base) + index * 8, true);
  }

  private setEntry(tableGpa: bigint, index: number, value: bigint): void {
    this.view.setBigUint64(Number(tableGpa - this.base) + index * 8, value, true);
  }
}

function checkWidth(w: number): asserts w is Width {
  if (w !== 1 && w !== 2 && w !== 4 && w !== 8) throw new RangeError(`width ${w} is not 1, 2, 4 or 8`);
}

/**
 * Encode a program placed at `codeGpa` (identity-mapped) whose accesses use the virtual addresses
 * `vas` (one per op; undefined for ops without a memory access).
 */
export function assemble(
  program: GuestProgram,
  vas: readonly (bigint | undefined)[],
  codeGpa: bigint,
  logGpa: bigint,
  options: X86Options = {},
): { code: Uint8Array; opStarts: bigint[]; reads: number } {
  const c = new Code();
  const opStarts: bigint[] = [];
  let reads = 0;
  c.movImm64(RBP, logGpa);
  program.forEach((op, i) => {
    opStarts.push(codeGpa + BigInt(c.length));
    switch (op.op) {
      case 'write': {
        const va = vas[i] as bigint;
        c.movImm64(RDI, va);
        const v = BigInt.asUintN(op.width * 8, op.value);
        if (op.width === 8) c.movImm64(RAX, v);
        else c.movImm32(RAX, v);
        if (op.width === 1)
          c.b(0x88, 0x07); // mov [rdi], al
        else if (op.width === 2)
          c.b(0x66, 0x89, 0x07); // mov [rdi], ax
        else if (op.width === 4)
          c.b(0x89, 0x07); // mov [rdi], eax
        else c.b(0x48, 0x89, 0x07); // mov [rdi], rax
        return;
      }
      case 'read': {
        if (reads >= MAX_READS) throw new RangeError(`more than ${MAX_READS} reads in one program`);
        c.movImm64(RDI, vas[i] as bigint);
        if (op.width === 1)
          c.b(0x0f, 0xb6, 0x07); // movzx eax, byte [rdi]
        else if (op.width === 2)
          c.b(0x0f, 0xb7, 0x07); // movzx eax, word [rdi]
        else if (op.width === 4)
          c.b(0x8b, 0x07); // mov eax, [rdi]
        else c.b(0x48, 0x8b, 0x07); // mov rax, [rdi]
        const disp = 8 + 8 * reads;
        if (disp <= 0x7f)
          c.b(0x48, 0x89, 0x45, disp); // mov [rbp+disp8], rax
        else c.b(0x48, 0x89, 0x85).imm(BigInt(disp), 4); // mov [rbp+disp32], rax
        reads++;
        c.b(0x48, 0xc7, 0x45, 0x00).imm(BigInt(reads), 4); // mov qword [rbp], reads
        return;
      }
      case 'out': {
        if (!Number.isInteger(op.port) || op.port < 0 || op.port > 0xffff) throw new RangeError(`port ${op.port} out of range`);
        c.movImm32(RDX, BigInt(op.port));
        c.movImm32(RAX, BigInt.asUintN(32, op.value));
        c.b(0xef); // out dx, eax
        return;
      }
      case 'map_gpa_range':
        c.movImm32(RAX, 12n); // KVM_HC_MAP_GPA_RANGE
        c.movImm64(RBX, op.gpa);
        c.movImm64(RCX, op.npages);
        c.movImm64(RDX, op.attrs);
        if (options.hypercall === 'vmmcall') c.b(0x0f, 0x01, 0xd9);
        else c.b(0x0f, 0x01, 0xc1);
        return;
      case 'hlt':
        c.b(0xf4);
        return;
      default:
        throw new RangeError(`unknown guest op ${JSON.stringify(op)}`);
    }
  });
  opStarts.push(codeGpa + BigInt(c.length));
  c.b(0xf4, 0xeb, 0xfd); // hlt; jmp back to the hlt
  if (c.length > MAX_CODE_BYTES) throw new RangeError(`program needs ${c.length} bytes of code, more than ${MAX_CODE_BYTES}`);
  return { code: Uint8Array.from(c.bytes), opStarts, reads };
}

/** The op whose code contains guest RIP `rip` (index into the program; program.length = past the end). */
export function opIndexAt(loaded: LoadedProgram, rip: bigint): number | undefined {
  const s = loaded.opStarts;
  if (s.length === 0 || rip < (s[0] as bigint)) return undefined;
  for (let i = s.length - 1; i >= 0; i--) if (rip >= (s[i] as bigint)) return i;
  return undefined;
}

/**
 * The 64-bit long-mode register state a loaded program starts from: flat code/data segments,
 * CR0 = PG|AM|WP|NE|ET|MP|PE, CR4 = PAE, EFER = LME|LMA, CR3 = the slot's PML4, RIP = entry,
 * RFLAGS = 2 (interrupts off).
 */
export const LONG_MODE = {
  cr0: 0x80050033n,
  cr4: 0x20n,
  efer: 0x500n,
  codeSegment: { selector: 8n, type: 11n, present: 1n, dpl: 0n, db: 0n, s: 1n, l: 1n, g: 1n, limit: 0xffffffffn, base: 0n },
  dataSegment: { selector: 16n, type: 3n, present: 1n, dpl: 0n, db: 0n, s: 1n, l: 0n, g: 1n, limit: 0xffffffffn, base: 0n },
  rflags: 2n,
} as const;
