// The SCIM HTTP surface over real HTTP: authentication (D2), request bodies (D3, D4), response
// headers, discovery (D22), unsupported endpoints (D21), unknown paths and methods.
import { createServer, request as httpRequest, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import express from 'express';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { scimJsonBody } from '../../scim/http/body.js';
import type { ScimError } from '../../scim/errors.js';
import { waitFor } from '../helpers/wait.js';
import {
  ENTERPRISE_URN,
  GROUP_URN,
  LIST_URN,
  SCIM_CT,
  STORE_KINDS,
  USER_URN,
  assertScimError,
  scimClient,
  startScimServer,
} from '../helpers/scim-server.js';
import type { ScimTestServer } from '../helpers/scim-server.js';

const MiB = 1_048_576;

/** Sends a request with node:http so a test can see a reply that arrives before the body is sent. */
function rawRequest(url: string, opts: { method: string; headers: Record<string, string | number>; body?: Buffer; chunks?: Buffer[] }): Promise<{ status: number; headers: Record<string, unknown>; text: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { method: opts.method, headers: opts.headers }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (c: Buffer) => parts.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text: Buffer.concat(parts).toString('utf8') }));
      res.on('error', reject);
    });
    // The server may close the connection while we still write: the reply is what matters.
    req.on('error', (err) => setTimeout(() => reject(err), 200));
    if (opts.body !== undefined) req.end(opts.body);
    else {
      for (const c of opts.chunks ?? []) req.write(c);
      req.end();
    }
  });
}

interface BigOutcome {
  status?: number;
  text?: string;
  /** A socket error the client saw (ECONNRESET, EPIPE, ...), before or after the reply. */
  error?: string;
}

/**
 * Sends `size` bytes of body on a fresh connection, whole with Content-Length or in 256 KiB chunks
 * without one, the way a client that does not look at the reply before it has sent everything does.
 * Settles once the connection is closed, with the reply (if any) and any socket error.
 */
function sendBig(url: string, token: string, size: number, declared: boolean): Promise<BigOutcome> {
  return new Promise((resolve) => {
    const out: BigOutcome = {};
    const headers: Record<string, string | number> = { authorization: `Bearer ${token}`, 'content-type': 'application/scim+json' };
    if (declared) headers['content-length'] = size;
    else headers['transfer-encoding'] = 'chunked';
    const timer = setTimeout(() => {
      out.error ??= 'timed out';
      req.destroy();
    }, 30_000);
    const req = httpRequest(url, { method: 'POST', headers, agent: false }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (c: Buffer) => parts.push(c));
      res.on('end', () => {
        out.status = res.statusCode;
        out.text = Buffer.concat(parts).toString('utf8');
      });
      res.on('error', (err: NodeJS.ErrnoException) => (out.error ??= err.code ?? err.message));
    });
    req.on('error', (err: NodeJS.ErrnoException) => (out.error ??= err.code ?? err.message));
    req.on('close', () => {
      clearTimeout(timer);
      // The response's last events may follow the request's close by a tick.
      setImmediate(() => resolve(out));
    });
    const chunk = Buffer.alloc(256 * 1024, 0x20);
    if (declared) req.end(Buffer.alloc(size, 0x20));
    else {
      for (let sent = 0; sent < size; sent += chunk.length) req.write(chunk);
      req.end();
    }
  });
}

/** The same through fetch (undici), which reports a reset instead of a reply it has not handed out yet. */
async function fetchBig(url: string, token: string, size: number, declared: boolean): Promise<BigOutcome> {
  const chunk = new Uint8Array(256 * 1024).fill(0x20);
  const body = declared
    ? new Uint8Array(size).fill(0x20)
    : new ReadableStream<Uint8Array>({
        start(controller) {
          for (let sent = 0; sent < size; sent += chunk.length) controller.enqueue(chunk);
          controller.close();
        },
      });
  try {
    const res = await fetch(url, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/scim+json' },
      body,
      ...(declared ? {} : { duplex: 'half' }),
    } as RequestInit);
    return { status: res.status, text: await res.text() };
  } catch (err) {
    const cause = (err as { cause?: { code?: string; message?: string } }).cause;
    return { error: cause?.code ?? cause?.message ?? String(err) };
  }
}

function userBody(userName: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { schemas: [USER_URN], userName, ...extra };
}

describe.each(STORE_KINDS)('SCIM HTTP surface (%s store)', (kind) => {
  let srv: ScimTestServer;
  let call: ReturnType<typeof scimClient>;
  beforeAll(async () => {
    srv = await startScimServer({ kind });
    call = scimClient(srv);
  });
  afterAll(async () => {
    await srv?.close();
  });

  describe('authentication (D2)', () => {
    it('refuses a request without credentials with 401 and a bare Bearer challenge', async () => {
      const r = await call('GET', '/Users', { authorization: null });
      assertScimError(r, 401);
      expect(r.headers.get('www-authenticate')).toBe('Bearer realm="rolegate"');
    });

    it('refuses a wrong token with error="invalid_token"', async () => {
      const r = await call('GET', '/Users', { authorization: `Bearer ${srv.token}x` });
      assertScimError(r, 401);
      expect(r.headers.get('www-authenticate')).toBe('Bearer realm="rolegate", error="invalid_token"');
      expect(r.text).not.toContain(srv.token);
    });

    it('refuses other schemes and malformed headers', async () => {
      for (const authorization of [`Basic ${Buffer.from(`u:${srv.token}`).toString('base64')}`, srv.token, `Bearer`, `Bearer ${srv.token} extra`, `Token ${srv.token}`]) {
        assertScimError(await call('GET', '/Users', { authorization }), 401);
      }
    });

    it('never accepts a token in the query string', async () => {
      for (const q of [`access_token=${srv.token}`, `token=${srv.token}`]) {
        assertScimError(await call('GET', `/Users?${q}`, { authorization: null }), 401);
      }
    });

    it('accepts the scheme in any case, and every configured token', async () => {
      for (const authorization of [`bearer ${srv.token}`, `BEARER ${srv.token}`, `Bearer ${srv.tokens[1]}`]) {
        const r = await call('GET', '/Users?count=1', { authorization });
        expect(r.status).toBe(200);
      }
    });

    it('records the token position, never the token, as the audit actor', async () => {
      const r = await call('POST', '/Users', { body: userBody('actor-check@example.com'), authorization: `Bearer ${srv.tokens[1]}` });
      expect(r.status).toBe(201);
      const ev = srv.audit.find((e) => e.id === r.json.id);
      expect(ev).toMatchObject({ resource: 'User', op: 'create', actor: 'scim-token#2' });
      expect(JSON.stringify(srv.audit)).not.toContain(srv.tokens[1]);
    });

    it('protects discovery, unsupported and unknown endpoints too', async () => {
      for (const [method, path] of [
        ['GET', '/ServiceProviderConfig'],
        ['GET', '/ResourceTypes'],
        ['GET', '/ResourceTypes/User'],
        ['GET', '/Schemas'],
        ['GET', `/Schemas/${USER_URN}`],
        ['POST', '/Bulk'],
        ['GET', '/Me'],
        ['GET', '/NoSuchThing'],
        ['DELETE', '/Users/x'],
      ] as const) {
        const r = await call(method, path, { authorization: null });
        assertScimError(r, 401);
      }
    });

    it('authenticates before reading the body: no 415, 413 or 400 for unauthenticated callers', async () => {
      assertScimError(await call('POST', '/Users', { raw: 'userName=x', contentType: 'text/plain', authorization: null }), 401);
      assertScimError(await call('POST', '/Users', { raw: '{"userName":', authorization: null }), 401);
      const big = await rawRequest(`${srv.baseUrl}/Users`, { method: 'POST', headers: { 'content-type': 'application/json', 'content-length': 2 * MiB }, body: Buffer.alloc(2 * MiB, 0x20) });
      expect(big.status).toBe(401);
    });
  });

  describe('request bodies (D3, D4)', () => {
    it('accepts application/scim+json and application/json with any parameters, and no Content-Type', async () => {
      const types: (string | null)[] = [
        'application/scim+json',
        'application/scim+json; charset=utf-8',
        'application/json',
        'application/json;charset=UTF-8',
        'Application/JSON; foo=bar',
        null,
      ];
      for (const [i, contentType] of types.entries()) {
        const r = await call('POST', '/Users', { body: userBody(`ct-${kind}-${i}@example.com`), contentType });
        expect(r.status, String(contentType)).toBe(201);
        expect(r.json.userName).toBe(`ct-${kind}-${i}@example.com`);
      }
    });

    it('refuses any other media type with 415', async () => {
      for (const contentType of ['text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'application/xml', 'application/jsonx', 'json']) {
        const r = await call('POST', '/Users', { raw: JSON.stringify(userBody('never@example.com')), contentType });
        assertScimError(r, 415);
      }
      const listed = await call('GET', '/Users?filter=userName eq "never@example.com"');
      expect(listed.json.totalResults).toBe(0);
    });

    it('refuses a compressed body with 415', async () => {
      const r = await call('POST', '/Users', { body: userBody('gz@example.com'), headers: { 'content-encoding': 'gzip' } });
      assertScimError(r, 415);
    });

    it('accepts a body of exactly 1 MiB and refuses one byte more with 413', async () => {
      const make = (size: number): string => {
        const base = JSON.stringify({ userName: `big-${kind}-${size}@example.com`, padding: '' });
        return base.replace('"padding":""', `"padding":"${'x'.repeat(size - base.length)}"`);
      };
      const exact = make(MiB);
      expect(Buffer.byteLength(exact)).toBe(MiB);
      const ok = await call('POST', '/Users', { raw: exact });
      expect(ok.status).toBe(201);
      expect(ok.json.padding).toBeUndefined();
      const over = await call('POST', '/Users', { raw: make(MiB + 1) });
      assertScimError(over, 413);
    });

    it('refuses an oversized chunked body with 413 without buffering it', async () => {
      const chunk = Buffer.alloc(64 * 1024, 0x20);
      const r = await rawRequest(`${srv.baseUrl}/Users`, {
        method: 'POST',
        headers: { authorization: `Bearer ${srv.token}`, 'content-type': 'application/scim+json', 'transfer-encoding': 'chunked' },
        chunks: Array.from({ length: 40 }, () => chunk),
      });
      expect(r.status).toBe(413);
      expect(r.headers['content-type']).toBe(SCIM_CT);
      expect(JSON.parse(r.text)).toMatchObject({ status: '413' });
    });

    it('refuses a declared Content-Length over the limit without buffering the body', async () => {
      const r = await rawRequest(`${srv.baseUrl}/Users`, {
        method: 'POST',
        headers: { authorization: `Bearer ${srv.token}`, 'content-type': 'application/json', 'content-length': 5 * MiB },
        body: Buffer.alloc(5 * MiB, 0x20),
      });
      expect(r.status).toBe(413);
    });

    it('a 10–20 MiB body gets its 413, not a connection reset (with and without Content-Length)', async () => {
      const outcomes: string[] = [];
      for (let round = 0; round < 3; round++) {
        for (const size of [10 * MiB, 20 * MiB]) {
          for (const declared of [true, false]) {
            for (const [client, send] of [['node:http', sendBig], ['fetch', fetchBig]] as const) {
              const r = await send(`${srv.baseUrl}/Users`, srv.token, size, declared);
              const label = `${client}, ${size / MiB} MiB ${declared ? 'with' : 'without'} Content-Length`;
              outcomes.push(`${label}: ${r.status ?? 'no reply'}${r.error === undefined ? '' : ` (${r.error})`}`);
              if (r.status === 413) expect(JSON.parse(r.text!), label).toMatchObject({ status: '413' });
            }
          }
        }
      }
      expect(outcomes.filter((o) => !o.endsWith(': 413')), outcomes.join('\n')).toEqual([]);
      // The server keeps serving.
      expect((await call('GET', '/Users?count=1')).status).toBe(200);
      expect((await call('POST', '/Users', { body: userBody(`after-big-${kind}@example.com`) })).status).toBe(201);
    });

    it('answers malformed, empty, non-UTF-8 and absurdly nested JSON with 400 invalidSyntax', async () => {
      for (const raw of ['{"userName":', '', 'not json', '{"userName":"a"}{', new Uint8Array([0x7b, 0x22, 0xff, 0x22, 0x3a, 0x31, 0x7d]), '['.repeat(5000) + ']'.repeat(5000)]) {
        assertScimError(await call('POST', '/Users', { raw }), 400, 'invalidSyntax');
      }
    });

    it('answers JSON that is not an object with 400', async () => {
      for (const raw of ['[]', '"userName"', '42', 'null', 'true']) {
        assertScimError(await call('POST', '/Users', { raw }), 400);
      }
    });
  });

  describe('responses', () => {
    it('POST is 201 with Location = meta.location, SCIM content type, no password, no null', async () => {
      const r = await call('POST', '/Users', { body: userBody('loc@example.com', { password: 'Secr3t!pass', title: null }) });
      expect(r.status).toBe(201);
      expect(r.headers.get('content-type')).toBe(SCIM_CT);
      expect(r.headers.get('location')).toBe(`${srv.baseUrl}/Users/${r.json.id}`);
      expect(r.json.meta.location).toBe(r.headers.get('location'));
      expect(r.text).not.toContain('Secr3t');
      expect(r.text).not.toContain('null');
      expect(r.headers.get('etag')).toBeNull();
      expect(r.json.meta.version).toBeUndefined();
    });

    it('DELETE is 204 with an empty body; a second DELETE is 404', async () => {
      const c = await call('POST', '/Users', { body: userBody('del@example.com') });
      const d = await call('DELETE', `/Users/${c.json.id}`);
      expect(d.status).toBe(204);
      expect(d.text).toBe('');
      assertScimError(await call('DELETE', `/Users/${c.json.id}`), 404);
    });

    it('uses the Host the client addressed for locations, and only a plain host[:port]', async () => {
      const get = async (host: string): Promise<string> => {
        const r = await rawRequest(`${srv.baseUrl}/ServiceProviderConfig`, { method: 'GET', headers: { host, authorization: `Bearer ${srv.token}` } });
        return JSON.parse(r.text).meta.location;
      };
      expect(await get('gw.example.com:8443')).toBe('http://gw.example.com:8443/scim/v2/ServiceProviderConfig');
      expect(await get('evil.example.com/<x>')).toBe('http://localhost/scim/v2/ServiceProviderConfig');
    });

    it('reports each request to the metrics hook', async () => {
      const before = srv.requests.length;
      await call('GET', '/Users?count=1');
      await call('GET', '/Users', { authorization: null });
      expect(srv.requests.slice(before)).toEqual([
        { method: 'GET', status: 200 },
        { method: 'GET', status: 401 },
      ]);
    });

    it('refuses a query parameter given twice', async () => {
      assertScimError(await call('GET', '/Users?count=1&count=2'), 400, 'invalidValue');
    });
  });

  describe('discovery (D22, RFC 7644 §4)', () => {
    it('ServiceProviderConfig advertises what the service does', async () => {
      const r = await call('GET', '/ServiceProviderConfig');
      expect(r.status).toBe(200);
      expect(r.headers.get('content-type')).toBe(SCIM_CT);
      expect(r.json).toMatchObject({
        schemas: ['urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig'],
        patch: { supported: true },
        bulk: { supported: false, maxOperations: 0, maxPayloadSize: 1048576 },
        filter: { supported: true },
        changePassword: { supported: false },
        sort: { supported: false },
        etag: { supported: false },
        meta: { resourceType: 'ServiceProviderConfig', location: `${srv.baseUrl}/ServiceProviderConfig` },
      });
      expect(r.json.filter.maxResults).toBeGreaterThanOrEqual(100);
      expect(r.json.authenticationSchemes).toEqual([expect.objectContaining({ type: 'oauthbearertoken', primary: true })]);
    });

    it('ResourceTypes lists User (with the Enterprise extension) and Group', async () => {
      const r = await call('GET', '/ResourceTypes');
      expect(r.status).toBe(200);
      expect(r.json.schemas).toEqual([LIST_URN]);
      expect(r.json.totalResults).toBe(2);
      const byId = Object.fromEntries(r.json.Resources.map((x: { id: string }) => [x.id, x]));
      expect(byId.User).toMatchObject({ name: 'User', endpoint: '/Users', schema: USER_URN, schemaExtensions: [{ schema: ENTERPRISE_URN, required: false }] });
      expect(byId.Group).toMatchObject({ name: 'Group', endpoint: '/Groups', schema: GROUP_URN });
      for (const name of ['User', 'Group']) {
        const one = await call('GET', `/ResourceTypes/${name}`);
        expect(one.status).toBe(200);
        expect(one.json).toEqual(byId[name]);
        expect(one.json.meta).toEqual({ resourceType: 'ResourceType', location: `${srv.baseUrl}/ResourceTypes/${name}` });
      }
      assertScimError(await call('GET', '/ResourceTypes/Widget'), 404);
    });

    it('Schemas carries full attribute definitions with meta', async () => {
      const r = await call('GET', '/Schemas');
      expect(r.status).toBe(200);
      const ids = r.json.Resources.map((s: { id: string }) => s.id);
      expect(ids).toEqual(expect.arrayContaining([USER_URN, GROUP_URN, ENTERPRISE_URN]));
      expect(r.json.totalResults).toBe(ids.length);
      for (const s of r.json.Resources) {
        expect(s.schemas).toEqual(['urn:ietf:params:scim:schemas:core:2.0:Schema']);
        expect(s.meta).toEqual({ resourceType: 'Schema', location: `${srv.baseUrl}/Schemas/${s.id}` });
        expect(s.attributes.length).toBeGreaterThan(0);
        for (const a of s.attributes) {
          expect(a).toMatchObject({ name: expect.any(String), type: expect.any(String), multiValued: expect.any(Boolean), mutability: expect.any(String), returned: expect.any(String) });
        }
      }
      const user = await call('GET', `/Schemas/${USER_URN}`);
      expect(user.status).toBe(200);
      const attr = (n: string) => user.json.attributes.find((a: { name: string }) => a.name === n);
      expect(attr('userName')).toMatchObject({ type: 'string', required: true, caseExact: false, uniqueness: 'server' });
      expect(attr('password')).toMatchObject({ mutability: 'writeOnly', returned: 'never' });
      expect(attr('groups')).toMatchObject({ mutability: 'readOnly', multiValued: true });
      expect(attr('emails').subAttributes.map((a: { name: string }) => a.name)).toEqual(expect.arrayContaining(['value', 'type', 'primary']));
      const group = await call('GET', `/Schemas/${GROUP_URN}`);
      expect(group.json.attributes.find((a: { name: string }) => a.name === 'members')).toMatchObject({ multiValued: true, type: 'complex' });
      expect((await call('GET', `/Schemas/${ENTERPRISE_URN}`)).status).toBe(200);
      assertScimError(await call('GET', '/Schemas/urn:example:nothing'), 404);
    });

    it('refuses any filter with 403', async () => {
      for (const path of ['/ServiceProviderConfig', '/ResourceTypes', '/ResourceTypes/User', '/Schemas', `/Schemas/${USER_URN}`]) {
        assertScimError(await call('GET', `${path}?filter=${encodeURIComponent('id eq "User"')}`), 403);
        assertScimError(await call('GET', `${path}?filter=`), 403);
      }
    });

    it('refuses writes with 405 and an Allow header', async () => {
      for (const path of ['/ServiceProviderConfig', '/ResourceTypes', '/ResourceTypes/User', '/Schemas', `/Schemas/${USER_URN}`]) {
        for (const method of ['POST', 'PUT', 'PATCH', 'DELETE']) {
          const r = await call(method, path, { body: {} });
          assertScimError(r, 405);
          expect(r.headers.get('allow')).toBe('GET');
        }
      }
    });
  });

  describe('unsupported and unknown endpoints', () => {
    it('Bulk and Me are 501 (D21)', async () => {
      assertScimError(await call('POST', '/Bulk', { body: { schemas: ['urn:ietf:params:scim:api:messages:2.0:BulkRequest'], Operations: [] } }), 501);
      for (const method of ['GET', 'POST', 'PUT', 'PATCH', 'DELETE']) {
        assertScimError(await call(method, '/Me', { body: method === 'GET' || method === 'DELETE' ? undefined : {} }), 501);
      }
      assertScimError(await call('GET', '/Me/anything'), 501);
    });

    it('unknown paths are a SCIM 404, never an HTML page', async () => {
      for (const path of ['/', '/Nope', '/Users/a/b', '/Groups/a/b/c', '/v3/Users', '/users/x/members']) {
        const r = await call('GET', path);
        assertScimError(r, 404);
        expect(r.text).not.toMatch(/<html|<!DOCTYPE/i);
      }
    });

    it('wrong methods on resources are 405 with Allow', async () => {
      const cases: [string, string, string][] = [
        ['PUT', '/Users', 'GET, POST'],
        ['PATCH', '/Users', 'GET, POST'],
        ['DELETE', '/Groups', 'GET, POST'],
        ['POST', '/Users/some-id', 'GET, PUT, PATCH, DELETE'],
        ['POST', '/Groups/some-id', 'GET, PUT, PATCH, DELETE'],
      ];
      for (const [method, path, allow] of cases) {
        const r = await call(method, path, { body: {} });
        assertScimError(r, 405);
        expect(r.headers.get('allow')).toBe(allow);
      }
    });

    it('an undecodable path is a SCIM 400, not an express error page', async () => {
      const r = await call('GET', '/Users/%E0%A4%A');
      assertScimError(r, 400);
    });

    it('paths outside /scim/v2 get the admin JSON 404', async () => {
      const r = await fetch(`${srv.origin}/scim/v1/Users`, { headers: { authorization: `Bearer ${srv.token}` } });
      expect(r.status).toBe(404);
      expect(r.headers.get('content-type')).toMatch(/^application\/json/);
      expect(await r.json()).toMatchObject({ error: 'not_found' });
    });
  });
});

describe('a refused body is drained within bounds (D4)', () => {
  // The middleware alone, with small bounds: 1 KiB limit, drain at most 64 KiB or 300 ms.
  const drain = { bytes: 64 * 1024, ms: 300 };
  let server: Server;
  let url: string;
  const refused: { status: number; at: number }[] = [];
  beforeAll(async () => {
    const app = express();
    app.post('/', scimJsonBody(1024, drain), (_req, res) => void res.status(201).end());
    app.use((err: ScimError, _req: express.Request, res: express.Response, _next: express.NextFunction) => {
      refused.push({ status: err.status, at: performance.now() });
      res.status(err.status).json({ status: String(err.status) });
    });
    server = createServer(app);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
  });
  afterAll(async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  /** Sends `first` bytes of a body and then stalls; resolves with the reply and when it arrived. */
  function stall(headers: Record<string, string | number>, first: number): Promise<{ status: number; at: number; t0: number }> {
    return new Promise((resolve, reject) => {
      const t0 = performance.now();
      const req = httpRequest(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, agent: false }, (res) => {
        res.resume();
        res.on('end', () => resolve({ status: res.statusCode ?? 0, at: performance.now(), t0 }));
      });
      req.on('error', reject);
      req.write(Buffer.alloc(first, 0x20));
    });
  }

  it('a client that stops sending gets its 413 after the time bound', async () => {
    const r = await stall({ 'content-length': 32 * 1024 }, 4096);
    expect(r.status).toBe(413);
    expect(r.at - r.t0).toBeGreaterThanOrEqual(drain.ms - 50);
    expect(r.at - r.t0).toBeLessThan(5_000);
  });

  it('a declared length past the drain bound is refused at once, unread', async () => {
    const r = await stall({ 'content-length': 10 * 1024 * 1024 }, 4096);
    expect(r.status).toBe(413);
    expect(r.at - r.t0).toBeLessThan(drain.ms);
  });

  it('a streamed body past the drain bound is refused as soon as the bound is passed', async () => {
    const t0 = performance.now();
    const before = refused.length;
    const req = httpRequest(url, { method: 'POST', headers: { 'content-type': 'application/json', 'transfer-encoding': 'chunked' }, agent: false });
    req.on('error', () => undefined); // the rest is never read: a reset is expected here
    req.write(Buffer.alloc(256 * 1024, 0x20));
    await waitFor(() => refused.length > before, 5_000, 'no 413');
    expect(refused.at(-1)!.status).toBe(413);
    expect(refused.at(-1)!.at - t0).toBeLessThan(drain.ms);
    req.destroy();
  });
});
