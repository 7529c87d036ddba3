/**
 * The visualizer's server: 127.0.0.1 only, the built page's files and nothing else, whatever the
 * request says; a restrictive CSP on every answer; no body read; limits on URL and headers.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { CONTENT_SECURITY_POLICY, startUiServer, type UiServer } from '../../src/ui/server.js';

const dir = mkdtempSync(join(tmpdir(), 'guestmem-ui-'));
const root = join(dir, 'web');
mkdirSync(join(root, 'assets'), { recursive: true });
writeFileSync(join(root, 'index.html'), '<!doctype html><p>page</p>');
writeFileSync(join(root, 'assets', 'a.js'), 'console.log(1)');
writeFileSync(join(root, 'assets', 'notes.secret'), 'not a served type');
writeFileSync(join(dir, 'secret.txt'), 'outside the root');

let s: UiServer;
before(async () => {
  s = await startUiServer({ root, port: 0 });
});
after(() => s.close());

function get(path: string, opts: { method?: string; host?: string; body?: string; headers?: Record<string, string> } = {}) {
  return new Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }>((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port: s.port, path, method: opts.method ?? 'GET', headers: { host: opts.host ?? `127.0.0.1:${s.port}`, ...opts.headers } },
      (res) => {
        let body = '';
        res.on('data', (c) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      },
    );
    req.on('error', reject);
    if (opts.body) req.write(opts.body);
    req.end();
  });
}

test('listens on 127.0.0.1 only', () => {
  const a = s.server.address();
  assert.ok(a && typeof a === 'object' && a.address === '127.0.0.1');
  assert.equal(s.url, `http://127.0.0.1:${s.port}/`);
});

test('serves the page and its assets, with the CSP and nosniff', async () => {
  const r = await get('/');
  assert.equal(r.status, 200);
  assert.match(r.body, /page/);
  assert.equal(r.headers['content-security-policy'], CONTENT_SECURITY_POLICY);
  assert.match(CONTENT_SECURITY_POLICY, /script-src 'self'/);
  assert.doesNotMatch(CONTENT_SECURITY_POLICY, /unsafe-(inline|eval)/);
  assert.equal(r.headers['x-content-type-options'], 'nosniff');
  const js = await get('/assets/a.js?v=1');
  assert.equal(js.status, 200);
  assert.match(String(js.headers['content-type']), /^text\/javascript/);
  const head = await get('/index.html', { method: 'HEAD' });
  assert.equal(head.status, 200);
  assert.equal(head.body, '');
});

test('no traversal, however it is spelled', async () => {
  for (const p of [
    '/../secret.txt',
    '/assets/../../secret.txt',
    '/%2e%2e/secret.txt',
    '/assets/%2E%2E/%2e%2e/secret.txt',
    '/..%2fsecret.txt',
    '/assets\\..\\..\\secret.txt',
    '/%00',
    '/%E0%A4%A',
  ]) {
    const r = await get(p);
    assert.ok(r.status === 400 || r.status === 404, `${p}: ${r.status}`);
    assert.doesNotMatch(r.body, /outside the root/);
    assert.equal(r.headers['content-security-policy'], CONTENT_SECURITY_POLICY);
  }
});

test('no directory listing, no unknown file types, no file added after start', async () => {
  assert.equal((await get('/assets/')).status, 404);
  assert.equal((await get('/assets')).status, 404);
  assert.equal((await get('/assets/notes.secret')).status, 404);
  writeFileSync(join(root, 'late.js'), '1');
  assert.equal((await get('/late.js')).status, 404);
});

test('only GET and HEAD, no body, bounded URL, and only its own Host (DNS rebinding)', async () => {
  const post = await get('/', { method: 'POST', body: 'x' });
  assert.equal(post.status, 405);
  assert.equal(post.headers.allow, 'GET, HEAD');
  assert.equal((await get('/', { method: 'PUT' })).status, 405);
  assert.equal((await get('/', { body: 'abc', headers: { 'content-length': '3' } })).status, 413);
  assert.equal((await get(`/${'a'.repeat(3000)}`)).status, 414);
  assert.equal((await get('/', { host: 'evil.example:80' })).status, 421);
  assert.equal((await get('/', { host: `localhost:${s.port}` })).status, 200);
  // headers beyond the limit: node answers 431 and never calls the handler
  assert.equal((await get('/', { headers: { 'x-big': 'b'.repeat(10_000) } })).status, 431);
});

const main = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));

test('guestmem ui: a bad port is one line and exit status 2', () => {
  const r = spawnSync(process.execPath, [main, 'ui', '--port', '99999'], { encoding: 'utf8' });
  assert.equal(r.status, 2);
  assert.equal(r.stderr.trim().split('\n').length, 1);
  assert.match(r.stderr, /guestmem ui: .*--port/);
});

test('guestmem ui --port 0 serves the built page and says where', async () => {
  const child = spawn(process.execPath, [main, 'ui', '--port', '0'], { stdio: ['ignore', 'pipe', 'pipe'] });
  try {
    const line = await new Promise<string>((resolve, reject) => {
      let out = '';
      let err = '';
      child.stdout.on('data', (c) => {
        out += c;
        if (out.includes('\n')) resolve(out);
      });
      child.stderr.on('data', (c) => (err += c));
      child.on('exit', (code) => reject(new Error(`exited ${code}: ${err}`)));
    });
    const url = /http:\/\/127\.0\.0\.1:(\d+)\//.exec(line);
    assert.ok(url, line);
    const res = await new Promise<number>((resolve, reject) => {
      request({ host: '127.0.0.1', port: Number(url[1]), path: '/' }, (r) => {
        r.resume();
        resolve(r.statusCode ?? 0);
      })
        .on('error', reject)
        .end();
    });
    assert.equal(res, 200, 'the built page (npm run build:web) is served');
  } finally {
    child.kill('SIGTERM');
  }
});
