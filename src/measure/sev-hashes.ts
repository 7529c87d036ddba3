/**
 * The kernel/initrd/cmdline hashes table for measured direct boot (QEMU `kernel-hashes=on`;
 * MEASUREMENT.md §1.7; QEMU target/i386/sev.c SevHashTable). QEMU writes it into guest memory at the
 * GPA from the OVMF SEV hash-table entry; OVMF checks the kernel it loads against it. SEV/SEV-ES
 * append the 176-byte padded table to the launch digest's input, SNP measures the whole 4 KiB page
 * that holds it.
 *
 * Layout (little-endian): header GUID, u16 length 168, then three entries `GUID, u16 50, sha256[32]`
 * for cmdline, initrd, kernel in that order, zero-padded to a 16-byte multiple (176).
 */
import { guidBytes, PAGE } from './bytes.js';
import { check } from './errors.js';
import { checkLen, hashOnce, SHA256_LEN, type Sha256Factory } from './hash.js';

const GUID = {
  TABLE: '9438d606-4f22-4cc9-b479-a793d411fd21',
  CMDLINE: '97d02dd8-bd20-4c94-aa78-e7714d36ab2a',
  INITRD: '44baf731-3a2f-4bd7-9af1-41e29169781d',
  KERNEL: '4de79437-abd2-427f-b835-d5b172d2045b',
} as const;

const ENTRY = 16 + 2 + SHA256_LEN; // 50
export const SEV_HASH_TABLE_LEN = 16 + 2 + 3 * ENTRY; // 168
export const SEV_HASH_TABLE_PADDED = (SEV_HASH_TABLE_LEN + 15) & ~15; // 176

/** SHA-256 digests of what QEMU hashes for measured direct boot. */
export interface SevKernelHashes {
  readonly kernel: Uint8Array;
  readonly initrd: Uint8Array;
  readonly cmdline: Uint8Array;
}

/**
 * The command line bytes QEMU hashes: the -append string in UTF-8 plus its NUL terminator; with no
 * -append, just the NUL.
 */
export function cmdlineBytes(append?: string): Uint8Array {
  const s = new TextEncoder().encode(append ?? '');
  const out = new Uint8Array(s.length + 1);
  out.set(s);
  return out;
}

/**
 * Hash kernel, initrd (the empty string when absent) and command line as QEMU does.
 * For large files, hash them yourself (streaming) and build SevKernelHashes directly.
 * @example sevKernelHashes({ kernel, initrd, append: 'console=ttyS0' }, sha256)
 */
export function sevKernelHashes(input: { kernel: Uint8Array; initrd?: Uint8Array; append?: string }, sha256: Sha256Factory): SevKernelHashes {
  return {
    kernel: hashOnce(sha256, input.kernel, SHA256_LEN),
    initrd: hashOnce(sha256, input.initrd ?? new Uint8Array(0), SHA256_LEN),
    cmdline: hashOnce(sha256, cmdlineBytes(input.append), SHA256_LEN),
  };
}

/** The 176-byte padded table (what SEV and SEV-ES append to the launch digest input). */
export function sevHashTable(h: SevKernelHashes): Uint8Array {
  checkLen(h.kernel, SHA256_LEN);
  checkLen(h.initrd, SHA256_LEN);
  checkLen(h.cmdline, SHA256_LEN);
  const out = new Uint8Array(SEV_HASH_TABLE_PADDED);
  const v = new DataView(out.buffer);
  out.set(guidBytes(GUID.TABLE), 0);
  v.setUint16(16, SEV_HASH_TABLE_LEN, true);
  const entries: [string, Uint8Array][] = [
    [GUID.CMDLINE, h.cmdline],
    [GUID.INITRD, h.initrd],
    [GUID.KERNEL, h.kernel],
  ];
  entries.forEach(([guid, digest], i) => {
    const at = 18 + i * ENTRY;
    out.set(guidBytes(guid), at);
    v.setUint16(at + 16, ENTRY, true);
    out.set(digest, at + 18);
  });
  return out;
}

/** The 4 KiB page SNP measures: zeros with the padded table at `offsetInPage` (hash-table GPA & 0xfff). */
export function sevHashPage(h: SevKernelHashes, offsetInPage: number): Uint8Array {
  check(
    Number.isInteger(offsetInPage) && offsetInPage >= 0 && offsetInPage + SEV_HASH_TABLE_PADDED <= PAGE,
    'OUT_OF_RANGE',
    `the SEV hash table at page offset 0x${offsetInPage.toString(16)} does not fit in its page`,
  );
  const page = new Uint8Array(PAGE);
  page.set(sevHashTable(h), offsetInPage);
  return page;
}
