/**
 * The visualizer in a real browser: Debian's chromium driven by playwright-core (never a browser
 * download). Without chromium every test here is skipped with the reason, loudly; with
 * GUESTMEM_REQUIRE_CHROMIUM=1 (CI) a missing browser fails instead. The page must be built
 * (npm test's pretest runs npm run build, which runs vite build).
 * GUESTMEM_UPDATE_SCREENSHOTS=1 writes the README's screenshots to docs/screenshots/.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { after, before, type TestContext, test } from 'node:test';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { DESIGN_NAMES } from '../../src/designs/index.js';
import { startUiServer, type UiServer } from '../../src/ui/server.js';
import { kvmGate } from '../support/kvm-gate.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const WEB = `${root}dist/web`;
const FIRMWARE = `${root}../shared/firmware`;
const CHROMIUM = process.env.GUESTMEM_CHROMIUM ?? '/usr/bin/chromium';
const REQUIRE = process.env.GUESTMEM_REQUIRE_CHROMIUM === '1';
const SHOTS = process.env.GUESTMEM_UPDATE_SCREENSHOTS === '1' ? `${root}docs/screenshots` : `${root}dist/screenshots`;

/**
 * The part of playwright-core this file uses. Its own .d.ts files need the DOM lib, which the Node
 * side of this project does not load (a DOM global in src/ must stay a type error), so it is
 * imported untyped and described here.
 */
interface Page {
  goto(url: string): Promise<unknown>;
  click(selector: string): Promise<void>;
  fill(selector: string, value: string): Promise<void>;
  selectOption(selector: string, value: string): Promise<unknown>;
  inputValue(selector: string): Promise<string>;
  textContent(selector: string): Promise<string | null>;
  getAttribute(selector: string, name: string): Promise<string | null>;
  isVisible(selector: string): Promise<boolean>;
  evaluate(expression: string): Promise<unknown>;
  $$eval<R>(selector: string, fn: (els: unknown[]) => R): Promise<R>;
  waitForSelector(selector: string, opts?: { state?: 'attached' | 'visible' }): Promise<unknown>;
  setInputFiles(selector: string, files: string | { name: string; mimeType: string; buffer: Buffer }): Promise<void>;
  screenshot(opts: { path: string; fullPage?: boolean }): Promise<unknown>;
  on(event: 'console', fn: (m: { type(): string; text(): string }) => void): void;
  on(event: 'pageerror', fn: (e: Error) => void): void;
  close(): Promise<void>;
}
interface Browser {
  newPage(opts?: { viewport: { width: number; height: number } }): Promise<Page>;
  close(): Promise<void>;
}
type Chromium = { launch(o: { executablePath: string; args: string[] }): Promise<Browser> };

const missing = existsSync(CHROMIUM) ? undefined : `no chromium at ${CHROMIUM} (apt-get install chromium; GUESTMEM_CHROMIUM names another)`;
if (missing && !REQUIRE) process.stderr.write(`\n*** browser tests SKIPPED: ${missing} ***\n\n`);

/** A test that needs the browser: skipped loudly without it, failed without it under GUESTMEM_REQUIRE_CHROMIUM=1. */
function browserTest(name: string, fn: (t: TestContext) => Promise<void>): void {
  if (!missing) test(name, { timeout: 120_000 }, fn);
  else if (REQUIRE)
    test(name, () => {
      throw new Error(`GUESTMEM_REQUIRE_CHROMIUM=1 but ${missing}`);
    });
  else test(name, { skip: `browser test skipped: ${missing}` }, () => {});
}

let server: UiServer;
let browser: Browser;
let page: Page;
const errors: string[] = [];

before(async () => {
  if (missing) return;
  assert.ok(existsSync(`${WEB}/index.html`), `${WEB}/index.html is missing: npm run build:web`);
  mkdirSync(SHOTS, { recursive: true });
  server = await startUiServer({ root: WEB, port: 0 });
  const pw = 'playwright-core';
  const { chromium } = (await import(pw)) as { chromium: Chromium };
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
    ],
  });
  page = await browser.newPage({ viewport: { width: 1480, height: 1000 } });
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(`console: ${m.text()}`);
  });
  page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`));
  await page.goto(server.url);
  await page.waitForSelector('canvas.pagemap');
});

after(async () => {
  await browser?.close();
  await server?.close();
});

/** Poll an expression from Node (a string predicate inside the page would be eval, which the page's CSP refuses). */
async function waitFor(expression: string, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await page.evaluate(expression))) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${expression}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
const text = async (sel: string): Promise<string> => (await page.textContent(sel)) ?? '';
const ui = <T>(expr: string): Promise<T> => page.evaluate(expr) as Promise<T>;
const colour = (vm: number, gfn: number) => ui<string | undefined>(`guestmemUi.colourAt(${vm}, ${gfn})`);
const mark = (vm: number, gfn: number, which: 'host' | 'spte') => ui<string | undefined>(`guestmemUi.markAt(${vm}, ${gfn}, '${which}')`);
const C = {
  unpopulated: '#d5d9e0',
  shared: '#2e9e5b',
  privateEmpty: '#c7b3ef',
  private: '#6a3fc1',
  spte: '#1f6feb',
  host: '#f0a202',
};

async function seek(n: number): Promise<void> {
  await page.click('#reset');
  for (let i = 0; i < n; i++) await page.click('#step');
  assert.equal(await ui('guestmemUi.position()'), n);
}

browserTest('the page loads with a built-in scenario and no console error', async () => {
  assert.equal(await page.inputValue('#builtin'), 'examples/punch-hole-zeroes.json');
  assert.match(await page.inputValue('#editor'), /punch hole zeroes guest memory/);
  const groups = await page.$$eval('#builtin optgroup', (g) => g.map((x) => (x as { label: string }).label));
  for (const g of ['examples', 'kernel-selftests']) assert.ok(groups.includes(g), `built-in group ${g} in ${groups}`);
  assert.deepEqual(errors, []);
});

browserTest('stepping a built-in scenario back and forth: page-map colours at known pages', async () => {
  // examples/punch-hole-zeroes.json: the host writes gfn 1 through the guest_memfd mapping, the guest
  // reads it (KVM maps it), the page is punched (both go), the guest reads it again (zero page back)
  await seek(4);
  assert.equal(await colour(0, 1), C.shared, 'gfn 1 after host_write: a shared guest_memfd page');
  assert.equal(await colour(0, 0), C.unpopulated);
  assert.notEqual(await mark(0, 1, 'spte'), C.spte, 'not KVM-mapped before the guest touches it');
  await page.click('#step');
  assert.equal(await mark(0, 1, 'spte'), C.spte, 'run: KVM mapped gfn 1 (SPTE)');
  await page.click('#step');
  assert.equal(await colour(0, 1), C.unpopulated, 'fallocate(PUNCH_HOLE): the page is gone');
  assert.notEqual(await mark(0, 1, 'spte'), C.spte, 'and so is the SPTE');
  assert.match(await text('#timeline li:last-child'), /invalidation gfn \[0x1, 0x2\) → mmu_invalidate_seq \d/);
  await page.click('#back');
  assert.equal(await colour(0, 1), C.shared, 'back: the page is there again');
  assert.equal(await mark(0, 1, 'spte'), C.spte);
  await page.click('#end');
  assert.equal(await ui('guestmemUi.position()'), 8);
  assert.match(await text('#status'), /every step met its expectation/);
  assert.match(await text('#timeline li:last-child'), /EINVAL.*kvm_gmem_create/s);
  await page.screenshot({ path: `${SHOTS}/scenario.png` });
  assert.deepEqual(errors, []);
});

const PRIVATE = JSON.stringify(
  {
    name: 'private and shared',
    vm: { type: 'sw_protected' },
    steps: [
      { op: 'create_guest_memfd', size: '0x200000', as: 'g' },
      { op: 'mmap_anonymous', length: '0x200000', as: 'm' },
      {
        op: 'set_user_memory_region2',
        slot: 0,
        flags: ['guest_memfd'],
        guest_phys_addr: 0,
        memory_size: '0x200000',
        userspace_addr: 'm',
        guest_memfd: 'g',
        guest_memfd_offset: 0,
      },
      { op: 'set_memory_attributes', address: '0x2000', size: '0x2000', attributes: ['private'] },
      { op: 'run', vcpu: 0, program: [{ write: '0x2000', width: 4, value: 1 }, { write: '0x5000', width: 4, value: 2 }, 'hlt'], expect: { exit: 'hlt' } },
    ],
  },
  null,
  2,
);

browserTest('a pasted scenario: private, private without a page, shared and host-mapped pages', async () => {
  await ui(`guestmemUi.load(${JSON.stringify(PRIVATE)}, 'pasted.json')`);
  await page.click('#end');
  assert.match(await text('#status'), /every step met its expectation/);
  assert.equal(await colour(0, 2), C.private, 'gfn 2: written by the guest, private, in the guest_memfd');
  assert.equal(await mark(0, 2, 'spte'), C.spte);
  assert.equal(await colour(0, 3), C.privateEmpty, 'gfn 3: private, no page yet');
  assert.equal(await colour(0, 5), C.shared, 'gfn 5: shared, written by the guest through the host mapping');
  assert.equal(await mark(0, 5, 'host'), C.host);
  assert.match(await text('#timeline'), /converted gfn \[0x2, 0x4\) to private/);
  await page.screenshot({ path: `${SHOTS}/private-shared.png` });
  assert.deepEqual(errors, []);
});

browserTest('a malformed scenario shows its error at its step and runs nothing', async () => {
  const bad = JSON.stringify(
    {
      name: 'bad',
      steps: [
        { op: 'create_guest_memfd', size: '0x200000', as: 'g' },
        { op: 'mmap_anonymous', length: '0x1000', as: 'm' },
        { op: 'create_guest_memfd', sise: 4096 },
      ],
    },
    null,
    2,
  );
  await ui(`guestmemUi.load(${JSON.stringify(bad)}, 'bad.json')`);
  assert.equal(await page.isVisible('#error'), true);
  const msg = await text('#error');
  assert.match(msg, /step 2 \(line \d+\)/);
  assert.match(msg, /unknown key "sise" \(did you mean "size"\?\)/);
  assert.equal(await page.getAttribute('#steps li:nth-child(3)', 'class'), 'bad');
  assert.equal(await page.$$eval('#timeline li', (l) => l.length), 0);
  await page.screenshot({ path: `${SHOTS}/error.png` });
  assert.deepEqual(errors, []);
});

browserTest('a kvm trace loads and replays beside the model, differences marked', async () => {
  await page.selectOption('#builtin', 'examples/punch-hole-zeroes.json');
  const r = spawnSync(process.execPath, [`${root}dist/src/cli/main.js`, 'run', `${root}scenarios/examples/punch-hole-zeroes.json`, '--json'], {
    encoding: 'utf8',
  });
  const trace = JSON.parse(r.stdout) as { backend: string; kernel: string; steps: { got: string }[] }[];
  // as if recorded on a kernel that answered step 6 differently
  const t = trace[0] as (typeof trace)[0];
  t.backend = 'kvm';
  t.kernel = 'host';
  (t.steps[6] as { got: string }).got = 'exit hlt reads [0x44434241]';
  await page.setInputFiles('#trace-file', { name: 'trace.json', mimeType: 'application/json', buffer: Buffer.from(JSON.stringify(trace)) });
  await waitFor("document.querySelector('#trace-info')?.textContent?.includes('kvm trace')");
  assert.match(await text('#trace-info'), /1 of the 8 steps so far differ/);
  assert.equal(await page.$$eval('#timeline li.differs', (l) => l.map((x) => (x as { dataset: { index: string } }).dataset.index)).then((x) => x.join()), '6');
  assert.match(await text('#timeline li.differs'), /kvm \(host\): exit hlt reads \[0x44434241\]\s+≠ model: exit hlt reads \[0x0\]/);
  await page.screenshot({ path: `${SHOTS}/trace.png` });
  assert.deepEqual(errors, []);
});

// A trace recorded on this host's /dev/kvm: a scenario every kvm host runs (guest writes through a
// MAP_PRIVATE mapping), replayed beside the model. The kernel and the model agree on it, fd numbers
// aside (the known divergence both the tester and the page mask), so nothing may be marked.
const KVM_TRACE_SCENARIO = 'regressions/shared-fault-map-private-cow.json';
const gate = kvmGate();
const noKvm = gate.ok ? undefined : gate.reason;
browserTest(`a trace recorded on this host's /dev/kvm (${KVM_TRACE_SCENARIO}) replays beside the model with no difference`, async (t) => {
  if (noKvm) {
    if (process.env.GUESTMEM_REQUIRE_KVM === '1') assert.fail(`GUESTMEM_REQUIRE_KVM=1 but ${noKvm}`);
    t.skip(`KVM TRACE TEST SKIPPED: ${noKvm}`);
    return;
  }
  const out = `${SHOTS}/kvm-trace.json`;
  const r = spawnSync(process.execPath, [`${root}dist/src/cli/main.js`, 'run', '--backend', 'kvm', '--trace', out, `${root}scenarios/${KVM_TRACE_SCENARIO}`], {
    encoding: 'utf8',
  });
  assert.equal(r.status, 0, `guestmem run --backend kvm: ${r.stdout}${r.stderr}`);
  // the kernel ran the scenario (not a skip, not an empty trace)
  const recorded = JSON.parse(readFileSync(out, 'utf8')) as { status: string; backend: string; steps: unknown[] }[];
  assert.equal(recorded[0]?.backend, 'kvm');
  assert.equal(recorded[0]?.status, 'passed');
  assert.ok((recorded[0]?.steps.length ?? 0) >= 10, `steps recorded: ${recorded[0]?.steps.length}`);
  await page.selectOption('#builtin', KVM_TRACE_SCENARIO);
  await page.setInputFiles('#trace-file', out);
  await waitFor("document.querySelector('#trace-info')?.textContent?.includes('kvm trace')");
  await page.click('#end');
  assert.match(await text('#trace-info'), /kvm trace/);
  assert.doesNotMatch(await text('#trace-info'), /[1-9]\d* of the \d+ steps so far differ/);
  assert.equal(await page.$$eval('#timeline li.differs', (l) => l.length), 0);
  assert.deepEqual(errors, []);
});

browserTest('a 1 TiB sparse guest renders and steps without freezing the page', async () => {
  const TIB = {
    name: '1 TiB sparse guest',
    vm: { type: 'sw_protected' },
    steps: [
      { op: 'create_guest_memfd', size: '0x10000000000', as: 'g' },
      { op: 'mmap_anonymous', length: '0x10000000000', as: 'm' },
      // below and above the 4 GiB hole where the runner keeps its code slot (0xffe00000)
      ...[
        { slot: 0, gpa: '0x0', size: '0xc0000000' },
        { slot: 1, gpa: '0x100000000', size: '0xff00000000' },
      ].map((r) => ({
        op: 'set_user_memory_region2',
        slot: r.slot,
        flags: ['guest_memfd'],
        guest_phys_addr: r.gpa,
        memory_size: r.size,
        userspace_addr: { map: 'm', offset: r.gpa },
        guest_memfd: 'g',
        guest_memfd_offset: r.gpa,
      })),
      { op: 'set_memory_attributes', address: '0x8000000000', size: '0x4000000000', attributes: ['private'] },
      { op: 'fallocate', fd: 'g', mode: ['keep_size'], offset: '0x8000000000', length: '0x40000000' },
      { op: 'host_write', map: 'm', offset: '0x1000', hex: '41' },
      { op: 'run', vcpu: 0, program: [{ write: '0x8000001000', width: 8, value: 1 }, { read: '0x1000', width: 1 }, 'hlt'], expect: { exit: 'hlt' } },
      { op: 'set_memory_attributes', address: '0x8000000000', size: '0x2000000000', attributes: [] },
    ],
  };
  const t0 = Date.now();
  await ui(`guestmemUi.load(${JSON.stringify(JSON.stringify(TIB))}, 'tib.json')`);
  await page.click('#end');
  await page.click('#back');
  await page.click('#step');
  const wall = Date.now() - t0;
  assert.match(await text('#status'), /every step met its expectation/);
  const frame = await ui<number>('guestmemUi.frameMs(0)');
  const render = await ui<number>('guestmemUi.renderMs()');
  // zoom to the first pages, then to the private region's first page
  await ui('guestmemUi.setView(0, 0, 512)');
  assert.equal(await colour(0, 1), C.shared, 'written by the host');
  assert.equal(await mark(0, 1, 'spte'), C.spte, 'and read by the guest');
  await ui('guestmemUi.setView(0, 0x8000000, 0x8000200)');
  assert.equal(await colour(0, 0x8000001), C.shared, 'converted back to shared by the last step');
  await ui('guestmemUi.setView(0, 0xa000000, 0xa000200)');
  assert.equal(await colour(0, 0xa000001), C.privateEmpty, 'still private, never populated');
  process.stdout.write(
    `# 1 TiB guest: page-map frame ${frame.toFixed(2)} ms, whole render after a step ${render.toFixed(2)} ms, load+end+back+step ${wall} ms\n`,
  );
  assert.ok(frame < 50, `a frame took ${frame} ms`);
  assert.ok(render < 250, `a render took ${render} ms`);
  assert.deepEqual(errors, []);
});

function firmware(name: string): string | undefined {
  const p = `${FIRMWARE}/${name}`;
  return existsSync(p) ? p : undefined;
}

for (const c of [
  { fw: 'OVMF.amdsev.fd', mode: 'snp', args: ['--vcpus', '2', '--vcpu-type', 'EPYC-v4'], ui: { vcpus: '2', type: 'EPYC-v4' }, shot: 'measure.png' },
  { fw: 'OVMF.inteltdx.ms.fd', mode: 'tdx', args: [], ui: undefined, shot: undefined },
] as const) {
  browserTest(`the measurement panel computes the ${c.mode} digest of ${c.fw} as guestmem measure does`, async () => {
    const fw = firmware(c.fw);
    assert.ok(fw, `${FIRMWARE}/${c.fw} is missing (../shared/firmware/ holds the test images)`);
    const cli = spawnSync(process.execPath, [`${root}dist/src/cli/main.js`, 'measure', '--mode', c.mode, ...c.args, '--ovmf', fw], { encoding: 'utf8' });
    assert.equal(cli.status, 0, cli.stderr);
    await page.click('#tab-measure');
    await page.setInputFiles('#m-ovmf', fw);
    await page.selectOption('#m-mode', c.mode);
    if (c.ui) {
      await page.fill('#m-vcpus', c.ui.vcpus);
      await page.selectOption('#m-vcpu-type', c.ui.type);
    }
    await page.click('#m-go');
    await waitFor("document.querySelector('#m-result')?.getAttribute('data-digest') || document.querySelector('#m-result.failed')");
    assert.equal(await page.getAttribute('#m-result', 'data-digest'), cli.stdout.trim());
    assert.ok((await page.$$eval('#m-pages tr', (r) => r.length)) > 2, 'the measured pages are listed');
    if (c.shot) await page.screenshot({ path: `${SHOTS}/${c.shot}`, fullPage: true });
    await page.click('#tab-scenario');
    assert.deepEqual(errors, []);
  });
}

browserTest('the designs view runs a hazard under every design side by side', async () => {
  await page.click('#tab-designs');
  await page.waitForSelector('.column[data-design="guest_memfd"]');
  const designs = await page.$$eval('.column', (c) => c.map((x) => (x as { dataset: { design: string } }).dataset.design));
  assert.deepEqual(designs, [...DESIGN_NAMES]);
  await page.click('#d-end');
  for (const d of designs) assert.ok(((await page.textContent(`.column[data-design="${d}"] .outcome`)) ?? '').length > 0);
  assert.ok((await page.$$eval('.column canvas.pagemap', (c) => c.length)) >= 3, 'a page map per design');
  await page.screenshot({ path: `${SHOTS}/designs.png` });
  await page.click('#tab-scenario');
  assert.deepEqual(errors, []);
});

browserTest('the built folder works opened from disk (file://), no server', async () => {
  const p = await browser.newPage();
  const errs: string[] = [];
  p.on('pageerror', (e) => errs.push(e.message));
  p.on('console', (m) => {
    if (m.type() === 'error') errs.push(m.text());
  });
  await p.goto(pathToFileURL(`${WEB}/index.html`).href);
  await p.click('#end');
  assert.match((await p.textContent('#status')) ?? '', /every step met its expectation/);
  await p.close();
  assert.deepEqual(errs, []);
});
