/**
 * The x86-64 code generator (src/guest/x86.ts), without a kernel: machine code checked against
 * bytes GNU as produced for the same instructions, and the page tables it builds.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CODE_GPA, CODE_SIZE, type GuestProgram } from '../../src/api.js';
import { assemble, CodeSlotImage, GPA_LIMIT, IDENTITY_LIMIT, MAX_READS, opIndexAt, REGION_COUNT, SLOT, WINDOW_VA } from '../../src/guest/x86.js';

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

/**
 * `as --64` (GNU binutils 2.40) on, in Intel syntax:
 *   movabs rbp,0xffe40000; movabs rdi,0x1000; mov eax,0x11223344; mov [rdi],eax;
 *   movabs rdi,0x2002; movabs rax,0x8877665544332211; mov [rdi],rax;
 *   movabs rdi,0x1000; movzx eax,byte [rdi]; mov [rbp+8],rax; mov qword [rbp],1;
 *   movabs rdi,0x1ffffe; movzx eax,word [rdi]; mov [rbp+0x10],rax; mov qword [rbp],2;
 *   mov edx,0x10; mov eax,0x5a; out dx,eax;
 *   mov eax,12; movabs rbx,0x200000; movabs rcx,1; movabs rdx,0x10; vmcall; hlt; hlt; jmp .-1
 */
const GOLDEN =
  '48bd0000e4ff0000000048bf0010000000000000b844332211890748bf022000000000000048b8112233445566778848890748bf00100000000000000fb607' +
  '4889450848c745000100000048bffeff1f00000000000fb7074889451048c7450002000000ba10000000b85a000000efb80c00000048bb00002000000000' +
  '0048b9010000000000000048ba10000000000000000f01c1f4f4ebfd';

const PROGRAM: GuestProgram = [
  { op: 'write', gpa: 0x1000n, width: 4, value: 0x11223344n },
  { op: 'write', gpa: 0x2002n, width: 8, value: 0x8877665544332211n },
  { op: 'read', gpa: 0x1000n, width: 1 },
  { op: 'read', gpa: 0x1ffffen, width: 2 },
  { op: 'out', port: 0x10, value: 0x5an },
  { op: 'map_gpa_range', gpa: 0x200000n, npages: 1n, attrs: 0x10n },
  { op: 'hlt' },
];

test('assemble: the bytes GNU as gives for the same instructions', () => {
  const vas = PROGRAM.map((op) => ('gpa' in op && op.op !== 'map_gpa_range' ? op.gpa : undefined));
  const { code, reads, opStarts } = assemble(PROGRAM, vas, 0xffe41000n, 0xffe40000n, { hypercall: 'vmcall' });
  assert.equal(hex(code), GOLDEN);
  assert.equal(reads, 2);
  assert.equal(opStarts.length, PROGRAM.length + 1);
  assert.equal(opStarts[0], 0xffe41000n + 10n, 'the first op follows mov rbp, log');
});

test('assemble: VMMCALL when asked; out truncates to 32 bits; narrow writes', () => {
  const mm = assemble([{ op: 'map_gpa_range', gpa: 0n, npages: 1n, attrs: 0n }], [undefined], 0n, 0n, { hypercall: 'vmmcall' });
  assert.ok(hex(mm.code).includes('0f01d9'));
  const out = assemble([{ op: 'out', port: 0xffff, value: 0x1_2345_6789n }], [undefined], 0n, 0n);
  assert.ok(hex(out.code).includes('baffff0000b889674523ef'), 'mov edx,0xffff; mov eax,0x23456789; out dx,eax');
  const w = assemble(
    [
      { op: 'write', gpa: 0n, width: 1, value: 0x1ffn },
      { op: 'write', gpa: 0n, width: 2, value: 0x1ffffn },
    ],
    [0n, 0n],
    0n,
    0n,
  );
  assert.ok(hex(w.code).includes('b8ff0000008807'), 'value truncated to the width, then mov [rdi],al');
  assert.ok(hex(w.code).includes('b8ffff0000668907'), 'mov [rdi],ax');
});

test('assemble: read log displacements switch from disp8 to disp32', () => {
  const prog: GuestProgram = Array.from({ length: 20 }, () => ({ op: 'read' as const, gpa: 0n, width: 8 as const }));
  const { code } = assemble(
    prog,
    prog.map(() => 0n),
    0n,
    0n,
  );
  const h = hex(code);
  assert.ok(h.includes('48894578'), 'mov [rbp+0x78],rax (disp8)');
  assert.ok(h.includes('48898580000000'), 'mov [rbp+0x80],rax (disp32)');
});

test('CodeSlotImage: identity 2 MiB mappings for every touched region, tables inside the slot', () => {
  const mem = new Uint8Array(Number(CODE_SIZE));
  const img = new CodeSlotImage(mem);
  const loaded = img.load(0, [
    { op: 'read', gpa: 0x1000n, width: 4 },
    { op: 'write', gpa: 0x1_0000_0000n + 0x1ffffcn, width: 8, value: 1n }, // crosses into the next 2 MiB region
    { op: 'hlt' },
  ]);
  assert.equal(loaded.cr3, CODE_GPA);
  assert.equal(loaded.logGpa, CODE_GPA + BigInt(SLOT.regionFirstPage * 4096));
  assert.equal(loaded.entry, loaded.logGpa + 4096n);
  const v = new DataView(mem.buffer);
  const entry = (table: bigint, i: number | bigint) => v.getBigUint64(Number(table - CODE_GPA) + Number(i) * 8, true);
  const walk = (va: bigint) => {
    const pml4e = entry(CODE_GPA, (va >> 39n) & 511n);
    assert.ok(pml4e & 1n);
    const pdpte = entry(pml4e & 0xffffffffff000n, (va >> 30n) & 511n);
    assert.ok(pdpte & 1n);
    const pde = entry(pdpte & 0xffffffffff000n, (va >> 21n) & 511n);
    assert.equal(pde & 0xe3n, 0xe3n, 'present, writable, accessed, dirty, 2 MiB');
    return (pde & 0xfffffffe00000n) | (va & 0x1fffffn);
  };
  for (const gpa of [0x1000n, 0x1_0000_0000n + 0x1ffffcn, 0x1_0020_0000n, CODE_GPA, CODE_GPA + 0x12345n]) assert.equal(walk(gpa), gpa);
  // all tables live inside the slot's table pages
  const pml4e = entry(CODE_GPA, 0);
  assert.ok((pml4e & 0xffffffffff000n) >= CODE_GPA && (pml4e & 0xffffffffff000n) < CODE_GPA + BigInt(SLOT.tablePages.end * 4096));
  // the program's bytes are where the entry points
  assert.equal(mem[Number(loaded.entry - CODE_GPA)], 0x48);
  // reading the log
  v.setBigUint64(Number(loaded.logGpa - CODE_GPA), 1n, true);
  v.setBigUint64(Number(loaded.logGpa - CODE_GPA) + 8, 0xabcdn, true);
  assert.equal(img.readCount(0), 1);
  assert.equal(img.readValue(0, 0), 0xabcdn);
  assert.equal(opIndexAt(loaded, loaded.opStarts[1] as bigint), 1);
  assert.equal(opIndexAt(loaded, (loaded.opStarts[1] as bigint) + 3n), 1);
  assert.equal(opIndexAt(loaded, loaded.entry - 1n), undefined);
});

test('CodeSlotImage: GPAs at or above 2^47 go through windows; limits are errors', () => {
  const mem = new Uint8Array(Number(CODE_SIZE));
  const img = new CodeSlotImage(mem);
  const high = IDENTITY_LIMIT + 0x1234n;
  const loaded = img.load(1, [{ op: 'read', gpa: high, width: 4 }]);
  const { code } = { code: mem.subarray(Number(loaded.entry - CODE_GPA), Number(loaded.entry - CODE_GPA) + loaded.codeBytes) };
  // mov rdi, imm64 right after mov rbp, log: the window address, not the GPA
  const va = new DataView(code.buffer, code.byteOffset + 12, 8).getBigUint64(0, true);
  assert.equal(va, WINDOW_VA + 0x1234n);
  assert.throws(() => img.load(1, [{ op: 'read', gpa: GPA_LIMIT, width: 1 }]), RangeError);
  assert.throws(() => img.load(1, [{ op: 'read', gpa: IDENTITY_LIMIT + 0x1ffffen, width: 4 }]), /crosses a 2 MiB boundary/);
  assert.throws(() => img.load(1, [{ op: 'read', gpa: 0n, width: 3 as 4 }]), /width 3/);
  assert.throws(() => img.load(REGION_COUNT, [{ op: 'hlt' }]), /region/);
  const tooMany: GuestProgram = Array.from({ length: MAX_READS + 1 }, () => ({ op: 'read' as const, gpa: 0n, width: 1 as const }));
  assert.throws(() => img.load(0, tooMany), /reads/);
  assert.throws(() => img.load(0, [{ op: 'out', port: 0x10000, value: 0n }]), /port/);
});
