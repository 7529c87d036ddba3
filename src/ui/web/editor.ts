/** Where each step of a scenario's text starts, so an error can be shown at its step and line. */

/** For JSON text: the offset of each element of the top-level "steps" array (empty if not found). */
export function stepOffsets(text: string): number[] {
  const out: number[] = [];
  let depth = 0;
  let inSteps = -1;
  let lastKey = '';
  let expectElement = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i] as string;
    if (c === '"') {
      let j = i + 1;
      while (j < text.length && text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
      const s = text.slice(i + 1, j);
      if (inSteps === depth && expectElement) {
        out.push(i);
        expectElement = false;
      }
      lastKey = s;
      i = j;
      continue;
    }
    if (/\s/.test(c)) continue;
    if (inSteps === depth && expectElement && c !== ']' && c !== ',') {
      out.push(i);
      expectElement = false;
    }
    if (c === '{' || c === '[') {
      depth++;
      if (c === '[' && depth === 2 && lastKey === 'steps' && inSteps < 0) {
        inSteps = depth;
        expectElement = true;
      }
    } else if (c === '}' || c === ']') {
      if (depth === inSteps && c === ']') inSteps = -2;
      depth--;
    } else if (c === ',' && depth === inSteps) {
      expectElement = true;
    }
  }
  return out;
}

/** 1-based line of an offset. */
export function lineOf(text: string, offset: number): number {
  let n = 1;
  for (let i = 0; i < offset && i < text.length; i++) if (text.charCodeAt(i) === 10) n++;
  return n;
}

/** The step index a loader message starts with ("steps[3].size: ..."), if any. */
export function stepOfError(message: string): number | undefined {
  const m = /(?:^|\s)steps\[(\d+)\]/.exec(message);
  return m ? Number(m[1]) : undefined;
}

/** The ops of the steps, best effort, for the step list when the file does not validate. */
export function roughSteps(text: string): string[] {
  try {
    const j = JSON.parse(text) as { steps?: unknown };
    return Array.isArray(j.steps)
      ? j.steps.map((s) => (s && typeof s === 'object' && typeof (s as { op?: unknown }).op === 'string' ? (s as { op: string }).op : '?'))
      : [];
  } catch {
    return [];
  }
}
