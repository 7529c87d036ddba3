/**
 * What JSON.parse lets through silently: a key given twice (the last one wins) and an integer too
 * large for a JavaScript number (it is rounded: 2^64-1 becomes 2^64). This walks text JSON.parse has
 * already accepted, so it only needs to follow the grammar, not to check it.
 */

const NUMBER = /-?\d+(\.\d+)?([eE][+-]?\d+)?/y;

/** The advice for a number a JSON number cannot carry exactly. */
export function bigNumberAdvice(literal: string): string {
  let hex = '';
  try {
    const n = BigInt(literal);
    hex = n < 0n ? `-0x${(-n).toString(16)}` : `0x${n.toString(16)}`;
  } catch {
    // 1e20 and the like: no exact hex to offer
  }
  return `${literal} is above 2^53, where a JSON number loses precision: write it as a string${hex ? `, "${hex}"` : ''}`;
}

const join = (path: string, key: string) => (path ? `${path}.${key}` : key);

/** The first duplicate key or over-large integer in `text` (valid JSON), as `path: problem`. */
export function jsonProblem(text: string): string | undefined {
  let i = 0;
  const ws = () => {
    while (i < text.length && ' \t\r\n'.includes(text[i] as string)) i++;
  };
  const str = (): string => {
    const start = i++;
    while (text[i] !== '"') i += text[i] === '\\' ? 2 : 1;
    i++;
    return JSON.parse(text.slice(start, i)) as string;
  };
  const value = (path: string): string | undefined => {
    ws();
    const c = text[i];
    if (c === '{') {
      i++;
      const keys = new Set<string>();
      ws();
      if (text[i] === '}') return void i++;
      for (;;) {
        ws();
        const key = str();
        if (keys.has(key)) return `${path || '(top level)'}: the key "${key}" appears twice`;
        keys.add(key);
        ws();
        i++; // ':'
        const p = value(join(path, key));
        if (p) return p;
        ws();
        if (text[i++] === '}') return undefined;
      }
    }
    if (c === '[') {
      i++;
      ws();
      if (text[i] === ']') return void i++;
      for (let n = 0; ; n++) {
        const p = value(`${path}[${n}]`);
        if (p) return p;
        ws();
        if (text[i++] === ']') return undefined;
      }
    }
    if (c === '"') return void str();
    NUMBER.lastIndex = i;
    const m = NUMBER.exec(text);
    if (m) {
      i = NUMBER.lastIndex;
      const n = Number(m[0]);
      if (Number.isInteger(n) && !Number.isSafeInteger(n)) return `${path || '(top level)'}: ${bigNumberAdvice(m[0])}`;
      return undefined;
    }
    while (/[a-z]/.test(text[i] ?? '')) i++; // true, false, null
    return undefined;
  };
  try {
    return value('');
  } catch (e) {
    if (e instanceof RangeError) return '(top level): nested too deeply';
    throw e;
  }
}
