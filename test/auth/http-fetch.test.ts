// The bounded HTTPS fetch against a real local HTTPS server: extra CA, size cap, timeout, no redirects.
import { readFile } from 'node:fs/promises';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createBoundedFetch, ResponseTooLargeError } from '../../proxy/auth/http-fetch.js';
import { createCertificateAuthority, issueCert } from '../helpers/certs.js';
import { tempDir } from '../helpers/tmp.js';
import type { TempDir } from '../helpers/tmp.js';

let dir: TempDir;
let server: https.Server;
let base: string;
let ca: string;

beforeAll(async () => {
  dir = await tempDir('rolegate-fetch-');
  const authority = await createCertificateAuthority(dir.path, 'fetch test CA');
  const leaf = await issueCert({ cn: '127.0.0.1', ...authority, dir: dir.path, fileName: 'srv', sans: ['IP:127.0.0.1'] });
  ca = await readFile(authority.caCertPath, 'utf8');
  server = https.createServer({ cert: await readFile(leaf.certPath), key: await readFile(leaf.keyPath) }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      switch (req.url) {
        case '/json':
          res.setHeader('content-type', 'application/json');
          res.end(JSON.stringify({ hello: 'world' }));
          return;
        case '/echo':
          res.setHeader('content-type', 'application/json');
          res.end(JSON.stringify({
            method: req.method,
            contentType: req.headers['content-type'],
            contentLength: req.headers['content-length'],
            auth: req.headers['authorization'],
            body: Buffer.concat(chunks).toString(),
          }));
          return;
        case '/big-declared':
          res.setHeader('content-length', String(2 << 20));
          res.write(Buffer.alloc(1024));
          return; // never finishes; the client must give up on the header alone
        case '/big-streamed': {
          const piece = Buffer.alloc(64 * 1024, 0x61);
          let sent = 0;
          const push = (): void => {
            while (sent < 40) {
              sent++;
              if (!res.write(piece)) {
                res.once('drain', push);
                return;
              }
            }
            res.end();
          };
          push();
          return;
        }
        case '/redirect':
          res.statusCode = 302;
          res.setHeader('location', '/json');
          res.end();
          return;
        case '/empty':
          res.statusCode = 204;
          res.end();
          return;
        case '/hang':
          return;
        default:
          res.statusCode = 404;
          res.end('not found');
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  await dir.cleanup();
});

async function rejection(p: Promise<unknown>): Promise<unknown> {
  return p.then(
    () => {
      throw new Error('expected a rejection');
    },
    (err: unknown) => err,
  );
}

describe('createBoundedFetch', () => {
  it('trusts the extra CA and behaves like fetch for a JSON GET', async () => {
    const f = createBoundedFetch({ ca });
    try {
      const res = await f(`${base}/json`);
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toBe('application/json');
      expect(await res.json()).toEqual({ hello: 'world' });
      expect((await f(new URL('/nope', base))).status).toBe(404);
    } finally {
      f.close();
    }
  });

  it('refuses a server certificate from an unknown CA', async () => {
    const f = createBoundedFetch();
    try {
      const err = await rejection(f(`${base}/json`));
      expect(String((err as Error & { code?: string }).code)).toMatch(/CERT|VERIFY|SIGNATURE/);
    } finally {
      f.close();
    }
  });

  it('sends form bodies with content type and length, and headers', async () => {
    const f = createBoundedFetch({ ca });
    try {
      const res = await f(`${base}/echo`, {
        method: 'post',
        headers: { authorization: 'Basic abc' },
        body: new URLSearchParams({ token: 'a b&c', hint: 'access_token' }),
      });
      expect(await res.json()).toEqual({
        method: 'POST',
        contentType: 'application/x-www-form-urlencoded;charset=UTF-8',
        contentLength: String('token=a+b%26c&hint=access_token'.length),
        auth: 'Basic abc',
        body: 'token=a+b%26c&hint=access_token',
      });
      const viaRequest = await f(new Request(`${base}/echo`, { method: 'POST', body: 'raw' }));
      expect(await viaRequest.json()).toMatchObject({ method: 'POST', body: 'raw', contentLength: '3' });
    } finally {
      f.close();
    }
  });

  it('caps the response size, whether declared or streamed', async () => {
    const f = createBoundedFetch({ ca, maxResponseBytes: 1 << 20 });
    try {
      expect(await rejection(f(`${base}/big-declared`))).toBeInstanceOf(ResponseTooLargeError);
      expect(await rejection(f(`${base}/big-streamed`))).toBeInstanceOf(ResponseTooLargeError);
      const roomy = createBoundedFetch({ ca, maxResponseBytes: 4 << 20 });
      try {
        expect((await (await roomy(`${base}/big-streamed`)).arrayBuffer()).byteLength).toBe(40 * 64 * 1024);
      } finally {
        roomy.close();
      }
    } finally {
      f.close();
    }
  });

  it('times out, and honours an abort signal', async () => {
    const f = createBoundedFetch({ ca, timeoutMs: 200 });
    try {
      const err = await rejection(f(`${base}/hang`));
      expect((err as Error).name).toBe('TimeoutError');
      const ctl = new AbortController();
      const pending = f(`${base}/hang`, { signal: ctl.signal });
      ctl.abort(new Error('caller gave up'));
      expect(((await rejection(pending)) as Error).message).toBe('caller gave up');
      expect(((await rejection(f(`${base}/json`, { signal: AbortSignal.abort() }))) as Error).name).toBe('AbortError');
    } finally {
      f.close();
    }
  });

  it('never follows redirects, and gives 204 an empty body', async () => {
    const f = createBoundedFetch({ ca });
    try {
      const res = await f(`${base}/redirect`);
      expect(res.status).toBe(302);
      expect(res.headers.get('location')).toBe('/json');
      const empty = await f(`${base}/empty`);
      expect(empty.status).toBe(204);
      expect(empty.body).toBeNull();
    } finally {
      f.close();
    }
  });

  it('refuses schemes other than http and https', async () => {
    const f = createBoundedFetch();
    try {
      expect(await rejection(f('file:///etc/passwd'))).toBeInstanceOf(TypeError);
    } finally {
      f.close();
    }
  });
});
