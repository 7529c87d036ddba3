/** Parse and validate scenario text (JSON or YAML). File reading is the caller's (CLI or browser). */
import { parse as parseYaml } from 'yaml';
import { type Scenario, ScenarioSchema } from './schema.js';
import { ScenarioError } from './values.js';

function path(p: readonly PropertyKey[]): string {
  let s = '';
  for (const k of p) s += typeof k === 'number' ? `[${k}]` : s ? `.${String(k)}` : String(k);
  return s || '(top level)';
}

/**
 * Parse `text` as the scenario in `file`. Errors are one line each:
 * `file: steps[3].size: expected an integer ...`.
 */
export function parseScenario(text: string, file: string): Scenario {
  let data: unknown;
  const yaml = /\.ya?ml$/i.test(file);
  try {
    data = yaml ? parseYaml(text) : JSON.parse(text);
  } catch (e) {
    throw new ScenarioError(`${file}: not valid ${yaml ? 'YAML' : 'JSON'}: ${(e as Error).message.split('\n')[0]}`);
  }
  const r = ScenarioSchema.safeParse(data);
  if (!r.success) {
    const issues = r.error.issues.slice(0, 3).map((i) => `${path(i.path)}: ${i.message}`);
    const more = r.error.issues.length > 3 ? ` (+${r.error.issues.length - 3} more)` : '';
    throw new ScenarioError(`${file}: ${issues.join('; ')}${more}`);
  }
  return r.data;
}
