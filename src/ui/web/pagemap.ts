/**
 * One VM's page map on a canvas. The VM's GFN range is drawn as a grid of at most CELLS cells; when
 * the range has more pages than cells, each cell stands for a run of pages and takes the colour of
 * the state that covers most of it, with the host-mapped, KVM-mapped and poisoned marks of any page
 * in it. Work per frame is the cells plus the state runs in view (src/model/snapshot.ts), never the
 * pages, so a 1 TiB guest draws as fast as a 2 MiB one. Click a cell to zoom in on it; slot and
 * guest_memfd bands above the grid zoom to a slot.
 */
import { CODE_SLOT } from '../../api.js';
import { type KvmVm, PAGE, type PageRun, pageRuns, type VmView } from '../../model/index.js';

export const COLS = 64;
export const MAX_ROWS = 16;
export const CELLS = COLS * MAX_ROWS;
export const CELL = 12;
const BAND_H = 16;
const BAND_GAP = 4;

/** The page states the map colours, most important last (a tie goes to the later one). */
export const STATES = ['no memslot', 'unpopulated', 'shared', 'private (no page yet)', 'private', 'poisoned'] as const;
export type State = (typeof STATES)[number];

export const COLOURS: Record<State | 'host-mapped' | 'KVM-mapped (SPTE)', string> = {
  'no memslot': '#f4f4f6',
  unpopulated: '#d5d9e0',
  shared: '#2e9e5b',
  'private (no page yet)': '#c7b3ef',
  private: '#6a3fc1',
  poisoned: '#d62828',
  'host-mapped': '#f0a202',
  'KVM-mapped (SPTE)': '#1f6feb',
};

export function stateOf(bits: number): number {
  if (!(bits & PAGE.SLOT)) return 0;
  if (bits & PAGE.POISON) return 5;
  if (bits & PAGE.PRIVATE) return bits & PAGE.GMEM ? 4 : 3;
  return bits & (PAGE.HOST | PAGE.GMEM) ? 2 : 1;
}

export function describeBits(bits: number): string {
  const s = [STATES[stateOf(bits)] as string];
  if (bits & PAGE.HOST) s.push('host-mapped');
  if (bits & PAGE.SPTE) s.push('KVM-mapped (SPTE)');
  if (bits & PAGE.GMEM && !(bits & PAGE.PRIVATE)) s.push('guest_memfd page');
  return s.join(', ');
}

const hex = (n: number | bigint) => `0x${n.toString(16)}`;

export interface View {
  lo: number;
  hi: number;
}

export class PageMap {
  readonly root: HTMLElement;
  readonly canvas: HTMLCanvasElement;
  private readonly header: HTMLElement;
  private readonly info: HTMLElement;
  private vm: KvmVm | undefined;
  private snap: VmView | undefined;
  view: View = { lo: 0, hi: 1 };
  /** pages per cell in the current view */
  ppc = 1;
  private cells = 0;
  private bandRows = 0;
  /** the user zoomed: keep the view; otherwise it follows the VM as slots come and go */
  private zoomed = false;
  /** the last frame's cost, for the frame-time note */
  lastFrameMs = 0;

  constructor(
    parent: HTMLElement,
    readonly index: number,
    /** pixels per cell (the designs view uses smaller cells, to fit three maps side by side) */
    readonly cell = CELL,
  ) {
    this.root = document.createElement('div');
    this.root.className = 'vm';
    this.header = document.createElement('div');
    this.header.className = 'vm-header';
    const nav = document.createElement('div');
    nav.className = 'row';
    const mk = (label: string, fn: () => void) => {
      const b = document.createElement('button');
      b.textContent = label;
      b.addEventListener('click', fn);
      nav.append(b);
      return b;
    };
    mk('whole VM', () => this.fit());
    mk('zoom out', () => this.zoom(this.view.lo + (this.view.hi - this.view.lo) / 2, 8));
    this.canvas = document.createElement('canvas');
    this.canvas.className = 'pagemap';
    this.canvas.dataset.vm = String(index);
    this.info = document.createElement('div');
    this.info.className = 'muted cell-info';
    this.root.append(this.header, nav, this.canvas, this.info);
    parent.append(this.root);
    this.canvas.addEventListener('click', (e) => this.click(e));
    this.canvas.addEventListener('mousemove', (e) => this.hover(e));
  }

  /** Show `vm` as it is now (call after every step). */
  update(vm: KvmVm, snap: VmView): void {
    this.vm = vm;
    this.snap = snap;
    if (!this.zoomed) this.fit(false);
    this.header.textContent = `VM ${snap.index} (${snap.type}${snap.destroyed ? ', destroyed' : ''}): mmu_invalidate_seq ${snap.mmuInvalidateSeq}${
      snap.invalidateInProgress ? `, ${snap.invalidateInProgress} invalidation(s) in progress` : ''
    }, fault retries ${snap.faultRetries}, ${snap.slots.length} memslot(s), ${snap.gmems.length} guest_memfd file(s)`;
    this.draw();
  }

  /** The whole VM: every slot and attribute, at least 512 pages (2 MiB). */
  fit(draw = true): void {
    this.setView(0, this.fitExtent());
    this.zoomed = false;
    if (draw) this.draw();
  }

  /**
   * What "whole VM" shows: every slot but the runner's code slot at 0xffe00000 (which would make a
   * 2 MiB guest a 4 GiB picture), at least 512 pages; the VM's whole extent if it has no other slot.
   */
  private fitExtent(): number {
    const slots = (this.snap?.slots ?? []).filter((s) => s.asId === 0 && s.id !== CODE_SLOT);
    const ends = slots.map((s) => s.baseGfn + s.npages);
    return Math.max(512, ...ends);
  }

  setView(lo: number, hi: number): void {
    lo = Math.max(0, Math.floor(lo));
    hi = Math.max(lo + 1, Math.ceil(hi));
    this.view = { lo, hi };
    this.ppc = Math.max(1, Math.ceil((hi - lo) / CELLS));
    this.cells = Math.ceil((hi - lo) / this.ppc);
  }

  /** Show [lo, hi) and keep it (the user's choice) until "whole VM". */
  show(lo: number, hi: number): void {
    this.zoomed = true;
    this.setView(lo, hi);
    this.draw();
  }

  /** Zoom by `factor` (>1 out, <1 in) around gfn. */
  zoom(center: number, factor: number): void {
    const span = Math.max(1, Math.round((this.view.hi - this.view.lo) * factor));
    const limit = Math.max(this.snap?.extent ?? 0, 512) * 4;
    this.zoomed = true;
    const s = Math.min(span, limit);
    this.setView(Math.max(0, center - s / 2), Math.max(0, center - s / 2) + s);
    this.draw();
  }

  private gridTop(): number {
    return this.bandRows * (BAND_H + BAND_GAP) + BAND_GAP;
  }

  /** Canvas coordinates of the centre of the cell that shows gfn, if it is in view. */
  cellCentre(gfn: number): { x: number; y: number } | undefined {
    if (gfn < this.view.lo || gfn >= this.view.hi) return undefined;
    const c = Math.floor((gfn - this.view.lo) / this.ppc);
    return { x: (c % COLS) * this.cell + this.cell / 2, y: this.gridTop() + Math.floor(c / COLS) * this.cell + this.cell / 2 };
  }

  private cellAt(e: MouseEvent): number | undefined {
    const r = this.canvas.getBoundingClientRect();
    const x = ((e.clientX - r.left) * this.canvas.width) / r.width / devicePixelRatio;
    const y = ((e.clientY - r.top) * this.canvas.height) / r.height / devicePixelRatio - this.gridTop();
    if (y < 0) return undefined;
    const c = Math.floor(y / this.cell) * COLS + Math.floor(x / this.cell);
    return c >= 0 && c < this.cells ? c : undefined;
  }

  private bandAt(e: MouseEvent): number | undefined {
    const r = this.canvas.getBoundingClientRect();
    const y = ((e.clientY - r.top) * this.canvas.height) / r.height / devicePixelRatio;
    if (y >= this.gridTop()) return undefined;
    return Math.floor(y / (BAND_H + BAND_GAP));
  }

  private click(e: MouseEvent): void {
    const band = this.bandAt(e);
    const slot = band === undefined ? undefined : this.snap?.slots.filter((s) => s.asId === 0)[band];
    if (slot) {
      this.zoomed = true;
      this.setView(slot.baseGfn, slot.baseGfn + slot.npages);
      this.draw();
      return;
    }
    const c = this.cellAt(e);
    if (c === undefined || this.ppc === 1) return;
    this.zoom(this.view.lo + c * this.ppc + this.ppc / 2, 1 / 16);
  }

  private hover(e: MouseEvent): void {
    const c = this.cellAt(e);
    if (c === undefined || !this.vm) return;
    const lo = this.view.lo + c * this.ppc;
    const hi = Math.min(this.view.hi, lo + this.ppc);
    const runs = pageRuns(this.vm, lo, hi);
    const what = runs
      .slice(0, 4)
      .map((r) => `${r.end - r.start === 1 ? `gfn ${hex(r.start)}` : `gfn ${hex(r.start)}–${hex(r.end)}`}: ${describeBits(r.bits)}`)
      .join('; ');
    this.info.textContent = `${this.ppc === 1 ? `gpa ${hex(lo * 4096)}` : `${this.ppc} pages per cell`} — ${what}${runs.length > 4 ? ` (+${runs.length - 4} runs)` : ''}`;
  }

  /** Per cell: the dominant state and the OR of the marks, from the runs in view. */
  private cellsOf(runs: readonly PageRun[]): { state: Uint8Array; marks: Uint8Array } {
    const n = this.cells;
    const state = new Uint8Array(n);
    const marks = new Uint8Array(n);
    const weight = new Float64Array(n * STATES.length);
    const { lo } = this.view;
    const ppc = this.ppc;
    for (const r of runs) {
      const st = stateOf(r.bits);
      const mk = (r.bits & PAGE.HOST ? 1 : 0) | (r.bits & PAGE.SPTE ? 2 : 0);
      const c0 = Math.floor((r.start - lo) / ppc);
      const c1 = Math.min(n - 1, Math.floor((r.end - 1 - lo) / ppc));
      for (let c = c0; c <= c1; c++) {
        const a = Math.max(r.start, lo + c * ppc);
        const b = Math.min(r.end, lo + (c + 1) * ppc);
        // a poisoned or private page stands out in a cell of thousands: weigh states by importance
        weight[c * STATES.length + st] = (weight[c * STATES.length + st] ?? 0) + (b - a) * (st >= 2 ? ppc : 1);
        marks[c] = (marks[c] ?? 0) | mk;
      }
    }
    for (let c = 0; c < n; c++) {
      let best = 0;
      for (let s = 1; s < STATES.length; s++)
        if ((weight[c * STATES.length + s] ?? 0) >= (weight[c * STATES.length + best] ?? 0) && (weight[c * STATES.length + s] ?? 0) > 0) best = s;
      state[c] = best;
    }
    return { state, marks };
  }

  draw(): void {
    if (!this.vm || !this.snap) return;
    const t0 = performance.now();
    const slots = this.snap.slots.filter((s) => s.asId === 0);
    this.bandRows = slots.length + this.snap.gmems.length;
    const rows = Math.ceil(this.cells / COLS);
    const w = COLS * this.cell;
    const h = this.gridTop() + rows * this.cell + 14;
    const dpr = devicePixelRatio || 1;
    if (this.canvas.width !== w * dpr || this.canvas.height !== h * dpr) {
      this.canvas.width = w * dpr;
      this.canvas.height = h * dpr;
      this.canvas.style.width = `${w}px`;
      this.canvas.style.height = `${h}px`;
    }
    const g = this.canvas.getContext('2d');
    if (!g) return;
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, w, h);
    g.font = '10px ui-monospace, monospace';
    g.textBaseline = 'middle';
    // bands: each slot over the VM's whole extent, with the view marked; then each guest_memfd file
    const extent = Math.max(this.snap.extent, this.view.hi, 1);
    const x = (gfn: number, total: number) => (gfn / total) * w;
    let y = BAND_GAP;
    for (const s of slots) {
      g.fillStyle = '#eef1f6';
      g.fillRect(0, y, w, BAND_H);
      g.fillStyle = s.gmem ? '#b9a6e8' : '#9fd3b4';
      g.fillRect(x(s.baseGfn, extent), y, Math.max(2, x(s.npages, extent)), BAND_H);
      g.fillStyle = '#111';
      const gm = s.gmem
        ? ` → ${s.gmem.ino === undefined ? "the design's private file" : `guest_memfd ino ${s.gmem.ino}`} @ ${hex(BigInt(s.gmem.pgoff) * 4096n)}`
        : '';
      g.fillText(`slot ${s.id}: gpa ${hex(BigInt(s.baseGfn) * 4096n)}+${hex(BigInt(s.npages) * 4096n)} uaddr ${hex(s.userspaceAddr)}${gm}`, 4, y + BAND_H / 2);
      y += BAND_H + BAND_GAP;
    }
    for (const f of this.snap.gmems) {
      g.fillStyle = '#f3effc';
      g.fillRect(0, y, w, BAND_H);
      g.fillStyle = '#8f74d8';
      for (const b of f.bindings) g.fillRect(x(b.start, Math.max(f.npages, 1)), y, Math.max(2, x(b.end - b.start, Math.max(f.npages, 1))), BAND_H);
      g.fillStyle = '#111';
      const binds = f.bindings.map((b) => `slot ${b.slot} @ ${hex(BigInt(b.start) * 4096n)}`).join(', ') || 'unbound';
      g.fillText(
        `guest_memfd ino ${f.ino}${f.fd === undefined ? ' (closed)' : ` fd ${f.fd}`}: ${hex(BigInt(f.npages) * 4096n)} bytes, ${f.populated} page(s)${f.poisoned ? `, ${f.poisoned} poisoned` : ''}; ${binds}`,
        4,
        y + BAND_H / 2,
      );
      y += BAND_H + BAND_GAP;
    }
    // the view's place on the first slot band's axis
    if (slots.length) {
      g.strokeStyle = '#d00';
      g.strokeRect(
        x(this.view.lo, extent),
        BAND_GAP - 1,
        Math.max(2, x(this.view.hi - this.view.lo, extent)),
        slots.length * (BAND_H + BAND_GAP) - BAND_GAP + 2,
      );
    }
    const top = this.gridTop();
    const runs = pageRuns(this.vm, this.view.lo, this.view.hi);
    const { state, marks } = this.cellsOf(runs);
    for (let c = 0; c < this.cells; c++) {
      const cx = (c % COLS) * this.cell;
      const cy = top + Math.floor(c / COLS) * this.cell;
      g.fillStyle = COLOURS[STATES[state[c] ?? 0] as State];
      g.fillRect(cx, cy, this.cell - 1, this.cell - 1);
      const m = marks[c] ?? 0;
      if (m & 1) {
        g.fillStyle = COLOURS['host-mapped'];
        g.fillRect(cx, cy, this.cell - 1, 3);
      }
      if (m & 2) {
        g.fillStyle = COLOURS['KVM-mapped (SPTE)'];
        g.fillRect(cx, cy + this.cell - 4, this.cell - 1, 3);
      }
    }
    g.fillStyle = '#333';
    g.fillText(
      `gfn ${hex(this.view.lo)}–${hex(this.view.hi)} (${hex(BigInt(this.view.hi - this.view.lo) * 4096n)} bytes), ${this.ppc === 1 ? 'one page' : `${this.ppc} pages`} per cell, ${runs.length} run(s)`,
      2,
      top + rows * this.cell + 7,
    );
    this.lastFrameMs = performance.now() - t0;
  }
}
