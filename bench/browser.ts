/**
 * The browser (issue 18 §6): the whole scenario suite run on the model inside Debian's chromium (the
 * visualizer's page, through playwright-core) against the same files in Node, in one run. Without
 * chromium or the built page the section says so rather than invent a figure.
 */
import { existsSync, readFileSync } from 'node:fs';
import { relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DESIGNS } from '../src/designs/index.js';
import { modelBackend, parseScenario, runScenario } from '../src/scenario/index.js';
import { startUiServer } from '../src/ui/server.js';
import { scenarioFiles } from '../tests/support/files.js';
import { count, loadLine, median, print, progress } from './lib.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const WEB = `${ROOT}dist/web`;
const CHROMIUM = process.env.GUESTMEM_CHROMIUM ?? '/usr/bin/chromium';
const rounds = count(5, 1);

function node(): { scenarios: number; passed: number; ms: number } {
  const files = scenarioFiles(`${ROOT}scenarios`).map((f) => ({ path: relative(`${ROOT}scenarios`, f), text: readFileSync(f, 'utf8') }));
  const t0 = performance.now();
  const backend = modelBackend({ designs: DESIGNS });
  let passed = 0;
  for (const f of files) if (runScenario(parseScenario(f.text, f.path), f.path, backend).status === 'passed') passed++;
  return { scenarios: files.length, passed, ms: performance.now() - t0 };
}

type Page = { goto(u: string): Promise<unknown>; waitForSelector(s: string): Promise<unknown>; evaluate(e: string): Promise<unknown> };
type Browser = { newPage(): Promise<Page>; close(): Promise<void>; version(): string };

const why = !existsSync(CHROMIUM) ? `no chromium at ${CHROMIUM}` : !existsSync(`${WEB}/index.html`) ? `no built page (${WEB}): npm run build` : undefined;
if (why) {
  print(['## The browser', '', `Not measured: ${why}.`]);
} else {
  progress('browser: the scenario suite in chromium and in Node');
  const server = await startUiServer({ root: WEB, port: 0 });
  const pw = 'playwright-core';
  const { chromium } = (await import(pw)) as { chromium: { launch(o: { executablePath: string; args: string[] }): Promise<Browser> } };
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-gpu'] });
  try {
    const page = await browser.newPage();
    await page.goto(server.url);
    await page.waitForSelector('canvas.pagemap');
    const inPage: { scenarios: number; passed: number; ms: number }[] = [];
    const inNode: { scenarios: number; passed: number; ms: number }[] = [];
    // alternate, so that load on a shared machine falls on both alike
    for (let r = 0; r < rounds; r++) {
      inPage.push((await page.evaluate('window.guestmemUi.runSuite()')) as { scenarios: number; passed: number; ms: number });
      inNode.push(node());
    }
    const p = median(inPage.map((x) => x.ms));
    const n = median(inNode.map((x) => x.ms));
    const last = (xs: { scenarios: number; passed: number }[]) => xs[xs.length - 1] ?? { scenarios: 0, passed: 0 };
    print([
      '## The browser',
      '',
      `Every scenario under \`scenarios/\` run to its end on the model (designs included, invariants on), in the visualizer's page in Debian's chromium ${browser.version()} and in Node ${process.versions.node}; median of ${rounds} alternating rounds; ${loadLine()}.`,
      '',
      '| where | scenarios | passed | time | ratio |',
      '|---|---|---|---|---|',
      `| Node | ${last(inNode).scenarios} | ${last(inNode).passed} | ${n.toFixed(0)} ms | |`,
      `| chromium (the page) | ${last(inPage).scenarios} | ${last(inPage).passed} | ${p.toFixed(0)} ms | ${(p / n).toFixed(2)}x Node |`,
    ]);
  } finally {
    await browser.close();
    await server.close();
  }
}
