/**
 * `guestmem ui [--port N] [--open]`: serve the visualizer on 127.0.0.1 until interrupted. A thin
 * shell over src/ui/server.ts; the page itself runs the model, so nothing else is served.
 */
import { spawn } from 'node:child_process';
import { type Command, InvalidArgumentError } from 'commander';
import { NoPage, startUiServer } from '../ui/server.js';
import { UserError } from './errors.js';

function portArg(v: string): number {
  const n = /^\d{1,5}$/.test(v.trim()) ? Number(v.trim()) : Number.NaN;
  if (!(n >= 0 && n <= 65535)) throw new InvalidArgumentError('expected a TCP port, 0 to 65535 (0 picks a free one)');
  return n;
}

/** Ask the desktop to open url; where there is none, the printed URL is the way in. */
function openBrowser(url: string): void {
  try {
    const child = spawn('xdg-open', [url], { stdio: 'ignore', detached: true });
    child.on('error', () => process.stderr.write(`guestmem ui: could not start a browser (xdg-open): open ${url} yourself\n`));
    child.unref();
  } catch {
    process.stderr.write(`guestmem ui: could not start a browser: open ${url} yourself\n`);
  }
}

export function registerUi(program: Command): void {
  program
    .command('ui')
    .description('serve the visualizer (page map, timeline, scenario editor, designs, measurement) on 127.0.0.1')
    .option('--port <n>', 'port on 127.0.0.1 (default 8417; 0 picks a free one)', portArg, 8417)
    .option('--open', 'open the page in the desktop browser')
    .action(async (o: { port: number; open?: boolean }) => {
      let s: Awaited<ReturnType<typeof startUiServer>>;
      try {
        s = await startUiServer({ port: o.port });
      } catch (e) {
        if (e instanceof NoPage) throw new UserError(e.message);
        const code = (e as NodeJS.ErrnoException).code;
        if (code === 'EADDRINUSE') throw new UserError(`--port ${o.port}: 127.0.0.1:${o.port} is in use (--port 0 picks a free port)`);
        if (code === 'EACCES') throw new UserError(`--port ${o.port}: not allowed to listen there (EACCES)`);
        throw e;
      }
      process.stdout.write(`guestmem ui: serving the visualizer at ${s.url} (127.0.0.1 only; Ctrl-C stops)\n`);
      if (o.open) openBrowser(s.url);
      await new Promise<void>((resolve) => {
        const stop = () => {
          void s.close().then(resolve);
        };
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
      });
    });
}
