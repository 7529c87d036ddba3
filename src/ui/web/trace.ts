/**
 * Traces recorded on a real kernel (`guestmem run --backend kvm --trace out.json`, or by the lab):
 * the runner's JSON report, one object per scenario with what each step got. Parsed as data, never
 * evaluated; anything else is refused with one line.
 */
export interface TraceStep {
  readonly index: number;
  readonly op: string;
  readonly status: string;
  readonly got: string;
  readonly reason?: string;
}

export interface TraceScenario {
  readonly name: string;
  readonly file: string;
  readonly backend: string;
  readonly kernel: string;
  readonly status: string;
  readonly reason?: string;
  readonly steps: readonly TraceStep[];
}

const str = (v: unknown): v is string => typeof v === 'string';

export function parseTrace(text: string): TraceScenario[] {
  let j: unknown;
  try {
    j = JSON.parse(text);
  } catch (e) {
    throw new Error(`not a trace: not valid JSON (${(e as Error).message})`);
  }
  const list = Array.isArray(j) ? j : [j];
  return list.map((x, i) => {
    const o = x as Record<string, unknown>;
    if (!o || typeof o !== 'object' || !str(o.name) || !Array.isArray(o.steps))
      throw new Error(`not a trace: [${i}] needs "name" and "steps" (the JSON of guestmem run --trace)`);
    const steps = (o.steps as unknown[]).map((s, k) => {
      const t = s as Record<string, unknown>;
      if (!t || typeof t !== 'object' || !str(t.op) || !str(t.got)) throw new Error(`not a trace: [${i}].steps[${k}] needs "op" and "got"`);
      return {
        index: typeof t.index === 'number' ? t.index : k,
        op: t.op,
        status: str(t.status) ? t.status : '',
        got: t.got,
        ...(str(t.reason) && { reason: t.reason }),
      };
    });
    return {
      name: o.name,
      file: str(o.file) ? o.file : '',
      backend: str(o.backend) ? o.backend : '?',
      kernel: str(o.kernel) ? o.kernel : '?',
      status: str(o.status) ? o.status : '?',
      ...(str(o.reason) && { reason: o.reason }),
      steps,
    };
  });
}
