/**
 * The guestmem page: scenario editor and player, page maps, timeline, kvm trace replay, the designs
 * view and the measurement panel. The model runs here; the page fetches nothing and sends nothing.
 */

import { DESIGNS } from '../../designs/index.js';
import { PROFILE_NAMES, snapshotKvm } from '../../model/index.js';
import { normalize } from '../../scenario/divergences.js';
import { modelBackend, parseScenario, runScenario, type Scenario, ScenarioError } from '../../scenario/index.js';
import { VM_TYPE_NAMES, type VmType } from '../../uapi/constants.js';
import { BUILTIN_HAZARDS, BUILTIN_SCENARIOS, type Builtin } from './builtins.js';
import { DesignsView } from './designs-view.js';
import { lineOf, roughSteps, stepOfError, stepOffsets } from './editor.js';
import { Player, type StepEvent } from './engine.js';
import { type Mode, measure, VCPU_TYPE_NAMES } from './measure-panel.js';
import { COLOURS, PageMap } from './pagemap.js';
import { parseTrace, type TraceScenario } from './trace.js';

const $ = <T extends HTMLElement = HTMLElement>(id: string): T => {
  const e = document.getElementById(id);
  if (!e) throw new Error(`page: no #${id}`);
  return e as T;
};
const el = <K extends keyof HTMLElementTagNameMap>(tag: K, text?: string, cls?: string): HTMLElementTagNameMap[K] => {
  const e = document.createElement(tag);
  if (text !== undefined) e.textContent = text;
  if (cls) e.className = cls;
  return e;
};
const hex = (n: number) => `0x${n.toString(16)}`;

// ---- tabs ----
for (const b of document.querySelectorAll<HTMLButtonElement>('button.tab')) {
  b.addEventListener('click', () => {
    for (const t of document.querySelectorAll<HTMLButtonElement>('button.tab')) t.classList.toggle('active', t === b);
    for (const p of document.querySelectorAll<HTMLElement>('section.pane')) p.hidden = p.id !== `pane-${b.dataset.tab}`;
    if (b.dataset.tab === 'designs' && !designsLoaded) loadHazard();
  });
}

// ---- scenario tab ----
const editor = $<HTMLTextAreaElement>('editor');
const errorBox = $('error');
const stepList = $<HTMLOListElement>('steps');
const statusBox = $('status');
const mapsBox = $('maps');
const timeline = $<HTMLOListElement>('timeline');
const position = $('position');
const kernelSel = $<HTMLSelectElement>('kernel');
const vmTypeSel = $<HTMLSelectElement>('vmtype');
const builtinSel = $<HTMLSelectElement>('builtin');
const traceInfo = $('trace-info');

const option = (sel: HTMLSelectElement, value: string, label = value) => sel.append(Object.assign(el('option', label), { value }));
option(kernelSel, '', "scenario's kernel");
for (const p of PROFILE_NAMES) if (p !== 'host') option(kernelSel, p);
option(vmTypeSel, '', "scenario's VM type");
for (const t of VM_TYPE_NAMES) option(vmTypeSel, t);
let group = '';
let og: HTMLOptGroupElement | undefined;
for (const b of BUILTIN_SCENARIOS) {
  if (b.group !== group || !og) {
    group = b.group;
    og = Object.assign(el('optgroup'), { label: group || 'scenarios' });
    builtinSel.append(og);
  }
  og.append(Object.assign(el('option', b.path), { value: b.path }));
}

const legend = $('legend');
for (const [name, colour] of Object.entries(COLOURS)) {
  const sw = el('span', '', 'swatch');
  sw.style.background = colour;
  legend.append(el('span', undefined, 'key'));
  (legend.lastElementChild as HTMLElement).append(sw, name);
}

let player: Player | undefined;
let pagemaps: PageMap[] = [];
let trace: TraceScenario | undefined;
let runTimer: number | undefined;
let currentName = '';

function showError(message: string, text: string): void {
  const step = stepOfError(message);
  const offsets = stepOffsets(text);
  const at = step !== undefined ? offsets[step] : undefined;
  errorBox.hidden = false;
  errorBox.replaceChildren(el('strong', step !== undefined ? `step ${step}${at !== undefined ? ` (line ${lineOf(text, at)})` : ''}: ` : ''), message);
  errorBox.dataset.step = step === undefined ? '' : String(step);
  stepList.replaceChildren(
    ...roughSteps(text).map((op, i) => {
      const li = el('li', op, i === step ? 'bad' : '');
      if (i === step) li.append(el('div', message, 'why'));
      return li;
    }),
  );
  if (at !== undefined) {
    editor.focus();
    editor.setSelectionRange(at, at + 1);
  }
  statusBox.textContent = 'the scenario does not validate: nothing ran';
  statusBox.className = 'status failed';
  mapsBox.replaceChildren();
  timeline.replaceChildren();
  player = undefined;
}

function load(text: string, name: string): void {
  stopRun();
  // the list shows a built-in only while one is loaded
  if (!BUILTIN_SCENARIOS.some((b) => b.path === name)) builtinSel.selectedIndex = -1;
  currentName = name;
  player?.close();
  let sc: Scenario;
  try {
    sc = parseScenario(text, name);
  } catch (e) {
    showError(e instanceof ScenarioError ? e.message.replace(`${name}: `, '') : `internal error: ${(e as Error).message}`, text);
    return;
  }
  errorBox.hidden = true;
  stepList.replaceChildren(...sc.steps.map((s) => el('li', s.op)));
  player = new Player(sc, { kernel: kernelSel.value || undefined, vmType: (vmTypeSel.value || undefined) as VmType | undefined });
  mapsBox.replaceChildren();
  pagemaps = [];
  render();
}

function describeEvent(ev: StepEvent): HTMLLIElement {
  const li = el('li', undefined, `event ${ev.status}`);
  li.dataset.index = String(ev.index);
  const head = el('div', undefined, 'head');
  head.append(el('span', ev.op, 'op'), ' → ', el('span', ev.got, ev.errno ? 'errno' : 'ok'));
  if (ev.fn) head.append(' ', el('span', `decided by ${ev.fn}()`, 'fn'));
  li.append(head);
  if (ev.message && ev.errno) li.append(el('div', ev.message, 'detail'));
  for (const inv of ev.invalidations)
    li.append(el('div', `VM ${inv.vm}: invalidation gfn [${hex(inv.start)}, ${hex(inv.end)}) → mmu_invalidate_seq ${inv.seq}`, 'detail inv'));
  for (const c of ev.conversions)
    li.append(el('div', `VM ${c.vm}: converted gfn [${hex(c.start)}, ${hex(c.end)}) to ${c.private ? 'private' : 'shared'}`, 'detail conv'));
  if (ev.reason) li.append(el('div', `expectation not met: ${ev.reason}`, 'detail why'));
  const t = trace?.steps[ev.index];
  if (t) {
    // the known, intended differences (fd numbers) are masked, as the differential tester masks them
    const same = normalize(t.got) === normalize(ev.got);
    li.append(el('div', `kvm (${trace?.kernel}): ${t.got}${same ? '' : `   ≠ model: ${ev.got}`}`, `detail trace ${same ? 'same' : 'differs'}`));
    if (!same) li.classList.add('differs');
  }
  li.addEventListener('click', () => {
    player?.seek(ev.index + 1);
    render();
  });
  return li;
}

function render(): void {
  const p = player;
  if (!p) return;
  const t0 = performance.now();
  position.textContent = `step ${p.pos} of ${p.steps.length} · kernel ${p.profile || '?'}`;
  [...stepList.children].forEach((li, i) => {
    li.className = i === p.pos - 1 ? 'current' : i < p.pos ? (p.events[i]?.status === 'failed' ? 'done bad' : 'done') : '';
  });
  const failed = p.events.find((e) => e.status === 'failed');
  if (p.blocked) {
    statusBox.textContent = `cannot run on the model: ${p.blocked}`;
    statusBox.className = 'status failed';
  } else {
    statusBox.textContent =
      (failed ? `step ${failed.index} (${failed.op}) did not meet its expectation: ${failed.reason}` : p.atEnd ? 'every step met its expectation' : '') +
      (p.warnings.length ? ` · note: ${p.warnings.join('; ')}` : '');
    statusBox.className = `status ${failed ? 'failed' : p.atEnd ? 'passed' : ''}`;
  }
  const snaps = p.blocked ? [] : snapshotKvm(p.kvm as Parameters<typeof snapshotKvm>[0]);
  while (pagemaps.length < snaps.length) pagemaps.push(new PageMap(mapsBox, pagemaps.length));
  snaps.forEach((s, i) => {
    const vm = p.vms[i];
    if (vm) pagemaps[i]?.update(vm, s);
  });
  timeline.replaceChildren(...p.events.map(describeEvent));
  timeline.lastElementChild?.classList.add('current');
  if (trace) {
    const diffs = p.events.filter((e) => trace?.steps[e.index] && normalize(trace.steps[e.index]?.got ?? '') !== normalize(e.got)).length;
    traceInfo.textContent = `kvm trace "${trace.name}" (${trace.backend}, kernel ${trace.kernel}, ${trace.status}${trace.reason ? `: ${trace.reason}` : ''}): ${trace.steps.length} steps; ${diffs} of the ${p.events.length} steps so far differ from the model`;
  }
  lastRenderMs = performance.now() - t0;
}
let lastRenderMs = 0;

function stopRun(): void {
  if (runTimer !== undefined) clearInterval(runTimer);
  runTimer = undefined;
}

$('step').addEventListener('click', () => {
  stopRun();
  player?.step();
  render();
});
$('back').addEventListener('click', () => {
  stopRun();
  player?.back();
  render();
});
$('reset').addEventListener('click', () => {
  stopRun();
  player?.seek(0);
  render();
});
$('end').addEventListener('click', () => {
  stopRun();
  player?.toEnd();
  render();
});
$('run').addEventListener('click', () => {
  stopRun();
  runTimer = window.setInterval(() => {
    if (!player?.step()) stopRun();
    render();
  }, 250);
});
$('load').addEventListener('click', () => load(editor.value, currentName || 'pasted.json'));
const reload = () => {
  if (player) load(editor.value, currentName);
};
kernelSel.addEventListener('change', reload);
vmTypeSel.addEventListener('change', reload);
function loadBuiltin(path: string): void {
  const b = BUILTIN_SCENARIOS.find((x) => x.path === path);
  if (!b) return;
  builtinSel.value = path;
  editor.value = b.text;
  load(b.text, b.path);
}
builtinSel.addEventListener('change', () => loadBuiltin(builtinSel.value));

async function readText(input: HTMLInputElement, maxBytes: number): Promise<{ name: string; text: string } | undefined> {
  const f = input.files?.[0];
  if (!f) return undefined;
  if (f.size > maxBytes) throw new Error(`${f.name}: ${f.size} bytes; at most ${maxBytes} are read`);
  return { name: f.name, text: await f.text() };
}
$<HTMLInputElement>('open-file').addEventListener('change', async (e) => {
  const input = e.target as HTMLInputElement;
  try {
    const r = await readText(input, 16 << 20);
    if (!r) return;
    editor.value = r.text;
    load(r.text, r.name);
  } catch (err) {
    showError((err as Error).message, '');
  }
  input.value = '';
});

/** A kvm trace: the entry for the scenario in the editor, or else its first, with its scenario loaded when it is built in. */
function loadTrace(text: string, file: string): void {
  let list: TraceScenario[];
  try {
    list = parseTrace(text);
  } catch (e) {
    trace = undefined;
    traceInfo.textContent = `${file}: ${(e as Error).message}`;
    return;
  }
  const name = player?.sc.name;
  const t = list.find((x) => x.name === name) ?? list[0];
  if (!t) return;
  trace = t;
  if (t.name !== name) {
    const base = t.file.split('/').slice(-2).join('/');
    const b =
      BUILTIN_SCENARIOS.find((x) => x.path === base || x.path.endsWith(`/${t.file.split('/').pop()}`)) ??
      BUILTIN_SCENARIOS.find((x) => x.text.includes(`"name": ${JSON.stringify(t.name)}`));
    if (b) loadBuiltin(b.path);
  }
  player?.toEnd();
  render();
}
$<HTMLInputElement>('trace-file').addEventListener('change', async (e) => {
  const input = e.target as HTMLInputElement;
  try {
    const r = await readText(input, 64 << 20);
    if (r) loadTrace(r.text, r.name);
  } catch (err) {
    traceInfo.textContent = (err as Error).message;
  }
  input.value = '';
});

// ---- designs tab ----
const hazardSel = $<HTMLSelectElement>('hazard');
for (const h of BUILTIN_HAZARDS) option(hazardSel, h.path);
const designs = new DesignsView($('design-columns'), $('hazard-doc'), $('d-position'));
let designsLoaded = false;
function loadHazard(): void {
  const h = BUILTIN_HAZARDS.find((x) => x.path === hazardSel.value) ?? BUILTIN_HAZARDS[0];
  if (!h) return;
  designs.load(h as Builtin);
  designsLoaded = true;
}
hazardSel.addEventListener('change', loadHazard);
$('d-step').addEventListener('click', () => designs.seek(designs.pos + 1));
$('d-back').addEventListener('click', () => designs.seek(designs.pos - 1));
$('d-reset').addEventListener('click', () => designs.seek(0));
$('d-end').addEventListener('click', () => designs.seek(designs.length));

// ---- measure tab ----
const vcpuType = $<HTMLSelectElement>('m-vcpu-type');
for (const t of VCPU_TYPE_NAMES) option(vcpuType, t);
vcpuType.value = VCPU_TYPE_NAMES.includes('EPYC-v4') ? 'EPYC-v4' : (VCPU_TYPE_NAMES[0] ?? '');
let dropped: File | undefined;
const drop = $('drop');
drop.addEventListener('dragover', (e) => e.preventDefault());
drop.addEventListener('drop', (e) => {
  e.preventDefault();
  dropped = e.dataTransfer?.files[0];
  drop.textContent = dropped ? `firmware: ${dropped.name} (${dropped.size} bytes)` : 'drop firmware here';
});
async function bytesOf(id: string, max: number): Promise<Uint8Array | undefined> {
  const f = $<HTMLInputElement>(id).files?.[0] ?? (id === 'm-ovmf' ? dropped : undefined);
  if (!f) return undefined;
  if (f.size > max) throw new Error(`${f.name}: ${f.size} bytes is more than the ${max} read`);
  return new Uint8Array(await f.arrayBuffer());
}
$('m-go').addEventListener('click', async () => {
  const out = $('m-result');
  const table = $<HTMLTableElement>('m-pages');
  out.className = 'result';
  delete out.dataset.digest;
  out.textContent = 'computing…';
  try {
    const firmware = await bytesOf('m-ovmf', 64 << 20);
    if (!firmware) throw new Error('pick or drop a firmware image first');
    const t0 = performance.now();
    const r = measure({
      mode: $<HTMLSelectElement>('m-mode').value as Mode,
      firmware,
      kernel: await bytesOf('m-kernel', 512 << 20),
      initrd: await bytesOf('m-initrd', 1 << 30),
      append: $<HTMLInputElement>('m-append').value,
      vcpus: Number($<HTMLInputElement>('m-vcpus').value),
      vcpuType: vcpuType.value,
      guestFeatures: BigInt($<HTMLInputElement>('m-features').value.trim() || '1'),
      tdxOrder: $<HTMLSelectElement>('m-tdx-order').value as 'per-page' | 'per-section',
    });
    out.replaceChildren(
      el('div', 'launch digest (computed in this page):'),
      el('code', r.digest, 'digest'),
      el('div', `${Math.round(performance.now() - t0)} ms`, 'muted'),
    );
    out.dataset.digest = r.digest;
    table.replaceChildren(el('tr'));
    (table.firstElementChild as HTMLElement).append(el('th', 'measured'), el('th', 'gpa'), el('th', 'bytes'));
    for (const m of r.ranges) {
      const tr = el('tr');
      tr.append(el('td', m.what), el('td', `0x${m.gpa.toString(16)}`), el('td', `0x${m.bytes.toString(16)}`));
      table.append(tr);
    }
  } catch (e) {
    out.className = 'result failed';
    out.textContent = (e as Error).message;
    delete out.dataset.digest;
  }
});

// ---- for the browser tests and the curious: read-only hooks ----
declare global {
  interface Window {
    guestmemUi: unknown;
  }
}
window.guestmemUi = {
  /** the canvas colour at gfn's cell in VM vm's map, as #rrggbb (undefined if not in view) */
  colourAt(vm: number, gfn: number): string | undefined {
    const m = pagemaps[vm];
    const c = m?.cellCentre(gfn);
    if (!m || !c) return undefined;
    const d = m.canvas.getContext('2d')?.getImageData(c.x * devicePixelRatio, c.y * devicePixelRatio, 1, 1).data;
    return d ? `#${[d[0], d[1], d[2]].map((v) => (v ?? 0).toString(16).padStart(2, '0')).join('')}` : undefined;
  },
  /** the SPTE mark under gfn's cell */
  markAt(vm: number, gfn: number, which: 'host' | 'spte'): string | undefined {
    const m = pagemaps[vm];
    const c = m?.cellCentre(gfn);
    if (!m || !c) return undefined;
    const y = which === 'host' ? c.y - 5 : c.y + 4;
    const d = m.canvas.getContext('2d')?.getImageData(c.x * devicePixelRatio, y * devicePixelRatio, 1, 1).data;
    return d ? `#${[d[0], d[1], d[2]].map((v) => (v ?? 0).toString(16).padStart(2, '0')).join('')}` : undefined;
  },
  position: () => player?.pos,
  view: (vm: number) => pagemaps[vm]?.view,
  setView(vm: number, lo: number, hi: number) {
    pagemaps[vm]?.show(lo, hi);
  },
  frameMs: (vm: number) => pagemaps[vm]?.lastFrameMs,
  renderMs: () => lastRenderMs,
  load: (text: string, name: string) => {
    editor.value = text;
    load(text, name);
  },
  colours: COLOURS,
  /**
   * Every built-in scenario run to its end on the model, the way `guestmem run scenarios` runs them
   * in Node (bench/browser.ts times both): the counts, and the milliseconds it took.
   */
  runSuite() {
    const t0 = performance.now();
    const backend = modelBackend({ designs: DESIGNS });
    const counts = { scenarios: 0, passed: 0, failed: 0, skipped: 0 };
    for (const b of BUILTIN_SCENARIOS) {
      const r = runScenario(parseScenario(b.text, b.path), b.path, backend);
      counts.scenarios++;
      counts[r.status]++;
    }
    return { ...counts, ms: performance.now() - t0 };
  },
};

// the README's example opens the page: a guest_memfd mapped, bound, written by the host and by the guest, punched
const OPENING = 'examples/punch-hole-zeroes.json';
loadBuiltin(BUILTIN_SCENARIOS.find((b) => b.path === OPENING)?.path ?? BUILTIN_SCENARIOS[0]?.path ?? '');
