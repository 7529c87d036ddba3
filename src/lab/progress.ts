/**
 * Progress for long lab stages. On a TTY: one status line, redrawn in place, with the stage, the
 * elapsed time and what is happening now. Elsewhere (CI logs): one line when a stage starts, one
 * when it ends, and at most one update every 15 s, so logs stay short.
 */

export interface Progress {
  stage(name: string, what: string): void;
  update(what: string, fraction?: number): void;
  done(summary: string): void;
  warn(message: string): void;
  /** Clear the status line before other output. */
  clear(): void;
}

const SPIN = ['|', '/', '-', '\\'];

export function createProgress(stream: NodeJS.WriteStream = process.stderr, opts: { quiet?: boolean } = {}): Progress {
  const tty = !!stream.isTTY && !opts.quiet;
  let name = '';
  let what = '';
  let frac: number | undefined;
  let stageStart = Date.now();
  let lastPlain = 0;
  let timer: NodeJS.Timeout | undefined;
  let tick = 0;
  const secs = (ms: number) => `${(ms / 1000).toFixed(ms < 10_000 ? 1 : 0)} s`;

  const draw = () => {
    const width = Math.max(40, (stream.columns || 100) - 1);
    const pct = frac === undefined ? '' : ` ${Math.floor(frac * 100)}%`;
    const line = `${SPIN[tick++ % SPIN.length]} lab ${name}${pct} [${secs(Date.now() - stageStart)}] ${what}`;
    stream.write(`\r\x1b[K${line.length > width ? `${line.slice(0, width - 1)}…` : line}`);
  };
  const clear = () => {
    if (tty) stream.write('\r\x1b[K');
  };
  const startTimer = () => {
    if (!tty || timer) return;
    timer = setInterval(draw, 250);
    timer.unref();
  };
  const stopTimer = () => {
    if (timer) clearInterval(timer);
    timer = undefined;
  };

  return {
    stage(n, w) {
      name = n;
      what = w;
      frac = undefined;
      stageStart = Date.now();
      if (tty) {
        startTimer();
        draw();
      } else if (!opts.quiet) {
        stream.write(`lab ${n}: ${w}\n`);
        lastPlain = Date.now();
      }
    },
    update(w, f) {
      what = w;
      frac = f;
      if (tty) return;
      if (!opts.quiet && Date.now() - lastPlain > 15_000) {
        stream.write(`lab ${name}: ${w} [${secs(Date.now() - stageStart)}]\n`);
        lastPlain = Date.now();
      }
    },
    done(summary) {
      stopTimer();
      clear();
      if (!opts.quiet) stream.write(`lab ${summary} [${secs(Date.now() - stageStart)}]\n`);
    },
    warn(message) {
      clear();
      stream.write(`lab: warning: ${message}\n`);
      if (tty && timer) draw();
    },
    clear() {
      stopTimer();
      clear();
    },
  };
}
