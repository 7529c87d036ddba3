/**
 * The server half of the visualizer: serves the built page (dist/web/) on 127.0.0.1 and nothing
 * else. The model runs in the page, so the server has no API: it answers GET and HEAD for the files
 * that were in the folder when it started (a fixed table, so no path from a request ever reaches the
 * file system: no traversal, no directory listing, no file added later), with a restrictive
 * Content-Security-Policy. It never reads a request body and never evaluates anything it is sent.
 * It imports no model code.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { extname, join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Where `npm run build:web` puts the page, relative to this file once compiled (dist/src/ui/). */
export const DEFAULT_WEB_ROOT = fileURLToPath(new URL('../../web/', import.meta.url));

/**
 * The page's own files and nothing else: no inline script, no eval, no connection anywhere (scenario
 * and firmware files are read in the page from the user's disk; nothing is uploaded), not framed.
 */
export const CONTENT_SECURITY_POLICY = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data: blob:",
  "connect-src 'none'",
  "font-src 'none'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.map': 'application/json; charset=utf-8',
  '.txt': 'text/plain; charset=utf-8',
};

/** Limits on what a request may be: the page needs short GETs only. */
export const LIMITS = { urlBytes: 2048, headerBytes: 8192, files: 2000, fileBytes: 32 << 20 } as const;

export interface UiServerOptions {
  /** the built page (default: dist/web/ next to this package's dist/src/) */
  root?: string;
  /** TCP port on 127.0.0.1; 0 picks a free one */
  port?: number;
}

export interface UiServer {
  readonly server: Server;
  readonly url: string;
  readonly port: number;
  close(): Promise<void>;
}

interface Entry {
  readonly body: Buffer;
  readonly type: string;
}

/** Every regular file under root, read once, keyed by its URL path ('/assets/x.js'). */
function table(root: string): Map<string, Entry> {
  const out = new Map<string, Entry>();
  const walk = (dir: string) => {
    for (const d of readdirSync(dir, { withFileTypes: true })) {
      if (d.name.startsWith('.')) continue;
      const p = join(dir, d.name);
      if (d.isDirectory()) walk(p);
      else if (d.isFile()) {
        const type = TYPES[extname(d.name).toLowerCase()];
        if (!type) continue;
        if (out.size >= LIMITS.files) throw new Error(`${root}: more than ${LIMITS.files} files: not a built page`);
        if (statSync(p).size > LIMITS.fileBytes) continue;
        out.set(`/${relative(root, p).split(sep).join('/')}`, { body: readFileSync(p), type });
      }
    }
  };
  walk(root);
  return out;
}

/** Thrown when there is no built page to serve. */
export class NoPage extends Error {
  override readonly name = 'NoPage';
}

function headers(type: string, length: number): Record<string, string | number> {
  return {
    'Content-Type': type,
    'Content-Length': length,
    'Content-Security-Policy': CONTENT_SECURITY_POLICY,
    'X-Content-Type-Options': 'nosniff',
    'Referrer-Policy': 'no-referrer',
    'Cross-Origin-Opener-Policy': 'same-origin',
    'Cross-Origin-Resource-Policy': 'same-origin',
    'Permissions-Policy': 'camera=(), microphone=(), geolocation=(), usb=(), serial=()',
    'Cache-Control': 'no-store',
  };
}

function plain(res: ServerResponse, status: number, text: string, extra: Record<string, string> = {}): void {
  const body = Buffer.from(`${text}\n`);
  res.writeHead(status, { ...headers('text/plain; charset=utf-8', body.length), Connection: 'close', ...extra });
  res.end(body);
}

/**
 * The file a request asks for, or the status to answer with. Only the path of the URL counts (a
 * query string is ignored); it must be a key of the table after one round of percent-decoding.
 */
export function route(files: ReadonlyMap<string, Entry>, req: Pick<IncomingMessage, 'method' | 'url' | 'headers'>, port: number): Entry | number {
  if (req.method !== 'GET' && req.method !== 'HEAD') return 405;
  const url = req.url ?? '';
  if (url.length > LIMITS.urlBytes) return 414;
  // DNS rebinding: a page on another origin that resolves its name to 127.0.0.1 still sends its own Host
  const host = (req.headers.host ?? '').toLowerCase();
  if (host !== `127.0.0.1:${port}` && host !== `localhost:${port}`) return 421;
  // a body on a GET is refused, never read
  if (req.headers['transfer-encoding'] !== undefined || Number(req.headers['content-length'] ?? 0) > 0) return 413;
  if (!url.startsWith('/')) return 400;
  let path = url.split(/[?#]/, 1)[0] as string;
  try {
    path = decodeURIComponent(path);
  } catch {
    return 400;
  }
  // no NUL, backslash or dot segment reaches the table (which has none anyway)
  if (/[\0\\]/.test(path) || path.split('/').some((seg) => seg === '..' || seg === '.')) return 400;
  if (path === '/') path = '/index.html';
  return files.get(path) ?? 404;
}

const REASON: Record<number, string> = {
  400: 'bad request path',
  404: 'not found',
  405: 'only GET and HEAD',
  413: 'requests have no body here',
  414: 'URL too long',
  421: 'wrong Host: this server answers only 127.0.0.1 and localhost',
};

/** Serve the built page on 127.0.0.1 (never another interface). Resolves once listening. */
export async function startUiServer(opts: UiServerOptions = {}): Promise<UiServer> {
  const root = opts.root ?? DEFAULT_WEB_ROOT;
  let files: Map<string, Entry>;
  try {
    files = table(root);
  } catch (e) {
    throw new NoPage(`no built page in ${root} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}): run npm run build:web`);
  }
  if (!files.has('/index.html')) throw new NoPage(`no index.html in ${root}: run npm run build:web`);
  let port = opts.port ?? 0;
  const server = createServer({ maxHeaderSize: LIMITS.headerBytes, requestTimeout: 10_000, headersTimeout: 5_000 }, (req, res) => {
    const r = route(files, req, port);
    if (typeof r === 'number') {
      plain(res, r, REASON[r] ?? 'error', r === 405 ? { Allow: 'GET, HEAD' } : {});
      req.resume();
      return;
    }
    res.writeHead(200, headers(r.type, r.body.length));
    res.end(req.method === 'HEAD' ? undefined : r.body);
  });
  server.maxRequestsPerSocket = 1000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  port = (server.address() as AddressInfo).port;
  return {
    server,
    port,
    url: `http://127.0.0.1:${port}/`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
