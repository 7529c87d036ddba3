/**
 * The designs view: one hazard from the v7 review, run under every design side by side, step by
 * step, each with its own page map. The outcome row is runHazard's (the same verdict as
 * `guestmem designs`); the columns are Sessions stepping the design's own steps.
 */
import { createDesignKvm, DESIGN_NAMES, DESIGN_TITLES, type DesignName, type HazardFile, parseHazard, runHazard, stepsFor } from '../../designs/index.js';
import { snapshotKvm } from '../../model/index.js';
import { Session, type Step } from '../../scenario/index.js';
import type { Builtin } from './builtins.js';
import { PageMap } from './pagemap.js';

interface Column {
  readonly design: DesignName;
  readonly steps: readonly Step[];
  kvm: ReturnType<typeof createDesignKvm>;
  session: Session;
  got: string[];
  readonly list: HTMLOListElement;
  readonly maps: HTMLElement;
  pagemaps: PageMap[];
  readonly outcome: string;
}

export class DesignsView {
  private hazard: HazardFile | undefined;
  private file = '';
  private cols: Column[] = [];
  pos = 0;

  constructor(
    private readonly host: HTMLElement,
    private readonly doc: HTMLElement,
    private readonly position: HTMLElement,
  ) {}

  get length(): number {
    return Math.max(0, ...this.cols.map((c) => c.steps.length));
  }

  load(b: Builtin): void {
    this.file = b.path;
    this.hazard = parseHazard(b.text, b.path);
    this.doc.textContent = `${this.hazard.concern}: ${(this.hazard as { description?: string }).description ?? ''}`;
    this.host.replaceChildren();
    for (const c of this.cols) c.session.close();
    this.cols = DESIGN_NAMES.map((design) => {
      const h = this.hazard as HazardFile;
      const el = document.createElement('div');
      el.className = 'column';
      el.dataset.design = design;
      const title = document.createElement('h3');
      title.textContent = design;
      title.title = DESIGN_TITLES[design];
      let outcome: string;
      try {
        outcome = runHazard(h, design, this.file).label;
      } catch (e) {
        outcome = `cannot run: ${(e as Error).message}`;
      }
      const o = document.createElement('div');
      o.className = 'outcome';
      o.textContent = outcome;
      const list = document.createElement('ol');
      list.className = 'steps';
      list.start = 0;
      const maps = document.createElement('div');
      el.append(title, o, list, maps);
      this.host.append(el);
      const steps = stepsFor(h, design, this.file).map((s) => s.step);
      for (const s of steps) {
        const li = document.createElement('li');
        li.textContent = s.op;
        list.append(li);
      }
      const kvm = createDesignKvm(design);
      return { design, steps, kvm, session: new Session(kvm, h.vm.type), got: [], list, maps, pagemaps: [], outcome };
    });
    this.pos = 0;
    this.render();
  }

  private restart(): void {
    for (const c of this.cols) {
      c.session.close();
      c.kvm = createDesignKvm(c.design);
      c.session = new Session(c.kvm, (this.hazard as HazardFile).vm.type);
      c.got = [];
    }
    this.pos = 0;
  }

  seek(n: number): void {
    const target = Math.max(0, Math.min(n, this.length));
    if (target < this.pos) this.restart();
    while (this.pos < target) {
      for (const c of this.cols) {
        const s = c.steps[this.pos];
        if (!s) continue;
        try {
          c.got.push(c.session.step(s).got);
        } catch (e) {
          c.got.push(`bad step: ${(e as Error).message}`);
        }
      }
      this.pos++;
    }
    this.render();
  }

  private render(): void {
    this.position.textContent = `step ${this.pos} of ${this.length}`;
    for (const c of this.cols) {
      [...c.list.children].forEach((li, i) => {
        const got = c.got[i];
        li.className = i === this.pos - 1 ? 'current' : i < this.pos ? 'done' : '';
        li.textContent = `${c.steps[i]?.op ?? '?'}${got === undefined ? '' : ` → ${got}`}`;
      });
      const snaps = snapshotKvm(c.kvm);
      while (c.pagemaps.length < snaps.length) c.pagemaps.push(new PageMap(c.maps, c.pagemaps.length, 7));
      snaps.forEach((s, i) => {
        const vm = c.kvm.vms[i];
        if (vm) c.pagemaps[i]?.update(vm, s);
      });
    }
  }
}
