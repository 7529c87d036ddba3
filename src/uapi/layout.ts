/**
 * Struct layouts declared as data. One table per struct drives both encoding (for the ioctl
 * argument buffer) and decoding (for what the kernel copied back), and the ioctl numbers are
 * computed from the table's size, so a wrong offset cannot hide in two places.
 */

export type FieldType = 'u8' | 'u16' | 'u32' | 'u64';
const WIDTH: Record<FieldType, number> = { u8: 1, u16: 2, u32: 4, u64: 8 };

export interface FieldSpec {
  readonly type: FieldType;
  readonly offset: number;
  /** An array of `count` elements (`__u64 reserved[6]`). */
  readonly count?: number;
}

export interface Layout<F extends string = string> {
  readonly name: string;
  readonly size: number;
  readonly align: number;
  readonly fields: Readonly<Record<F, FieldSpec>>;
}

/** Every field decodes to bigint (or an array of bigint): u64 values do not fit a JS number. */
export type Decoded<F extends string> = Record<F, bigint | bigint[]>;
export type Encodable<F extends string> = Partial<Record<F, bigint | number | readonly (bigint | number)[]>>;

export function defineLayout<F extends string>(name: string, size: number, fields: Record<F, FieldSpec>): Layout<F> {
  let align = 1;
  const spans: [number, number, string][] = [];
  for (const [field, spec] of Object.entries(fields) as [F, FieldSpec][]) {
    const w = WIDTH[spec.type];
    align = Math.max(align, w);
    // Natural alignment, as the uAPI headers guarantee: a misaligned entry is a typo in the table.
    if (spec.offset % w !== 0) throw new Error(`${name}.${field}: offset ${spec.offset} not ${w}-aligned`);
    const end = spec.offset + w * (spec.count ?? 1);
    if (end > size) throw new Error(`${name}.${field}: ends at ${end}, past the struct size ${size}`);
    spans.push([spec.offset, end, field]);
  }
  spans.sort((a, b) => a[0] - b[0]);
  for (let i = 1; i < spans.length; i++) {
    const prev = spans[i - 1] as [number, number, string];
    const cur = spans[i] as [number, number, string];
    if (cur[0] < prev[1]) throw new Error(`${name}: ${cur[2]} overlaps ${prev[2]}`);
  }
  return { name, size, align, fields };
}

function put(view: DataView, type: FieldType, off: number, v: bigint): void {
  switch (type) {
    case 'u8':
      view.setUint8(off, Number(BigInt.asUintN(8, v)));
      return;
    case 'u16':
      view.setUint16(off, Number(BigInt.asUintN(16, v)), true);
      return;
    case 'u32':
      view.setUint32(off, Number(BigInt.asUintN(32, v)), true);
      return;
    case 'u64':
      view.setBigUint64(off, BigInt.asUintN(64, v), true);
  }
}

function get(view: DataView, type: FieldType, off: number): bigint {
  switch (type) {
    case 'u8':
      return BigInt(view.getUint8(off));
    case 'u16':
      return BigInt(view.getUint16(off, true));
    case 'u32':
      return BigInt(view.getUint32(off, true));
    case 'u64':
      return view.getBigUint64(off, true);
  }
}

/**
 * Encode into `out` (reused across calls on hot paths) or a fresh zeroed buffer. Fields left out
 * are zero; values are truncated to the field width exactly as a C assignment would.
 */
export function encode<F extends string>(layout: Layout<F>, value: Encodable<F>, out?: Uint8Array): Uint8Array {
  const buf = out ?? new Uint8Array(layout.size);
  if (buf.byteLength < layout.size) throw new Error(`${layout.name}: buffer of ${buf.byteLength} < ${layout.size}`);
  if (out) buf.fill(0, 0, layout.size);
  const view = new DataView(buf.buffer, buf.byteOffset, layout.size);
  for (const [field, spec] of Object.entries(layout.fields) as [F, FieldSpec][]) {
    const v = value[field];
    if (v === undefined) continue;
    if (typeof v === 'object') {
      const n = spec.count ?? 1;
      for (let i = 0; i < Math.min(n, v.length); i++) {
        put(view, spec.type, spec.offset + i * WIDTH[spec.type], BigInt(v[i] as bigint | number));
      }
    } else {
      put(view, spec.type, spec.offset, BigInt(v));
    }
  }
  return buf;
}

export function decode<F extends string>(layout: Layout<F>, buf: Uint8Array, base = 0): Decoded<F> {
  const view = new DataView(buf.buffer, buf.byteOffset + base, layout.size);
  const out = {} as Decoded<F>;
  for (const [field, spec] of Object.entries(layout.fields) as [F, FieldSpec][]) {
    if (spec.count === undefined) {
      out[field] = get(view, spec.type, spec.offset);
    } else {
      const arr: bigint[] = [];
      for (let i = 0; i < spec.count; i++) arr.push(get(view, spec.type, spec.offset + i * WIDTH[spec.type]));
      out[field] = arr;
    }
  }
  return out;
}

/** Read one scalar field of a decoded struct (layouts never mix the two shapes for one field). */
export function scalar(v: bigint | bigint[] | undefined): bigint {
  if (typeof v !== 'bigint') throw new Error('not a scalar field');
  return v;
}
