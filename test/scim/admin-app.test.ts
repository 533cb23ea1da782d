// The admin express app over real HTTP: health, readiness, metrics, SCIM mount, JSON-only errors.
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';
import { Registry, Counter } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAdminApp } from '../../admin/app.js';
import type { Readiness } from '../../admin/app.js';
import { STORE_KINDS, scimClient, startScimServer } from '../helpers/scim-server.js';
import type { ScimTestServer } from '../helpers/scim-server.js';

async function listen(app: express.Express): Promise<{ url: string; close(): Promise<void> }> {
  const server = createServer(app);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

describe('admin app', () => {
  let state: Readiness = { ok: true };
  let failMetrics = false;
  const logged: unknown[] = [];
  const registry = new Registry();
  const counter = new Counter({ name: 'rolegate_scim_requests_total', help: 'SCIM requests', labelNames: ['method', 'status'], registers: [registry] });
  let srv: { url: string; close(): Promise<void> };

  beforeAll(async () => {
    const scim = express.Router();
    scim.get('/ping', (_req, res) => {
      counter.inc({ method: 'GET', status: '200' });
      res.json({ pong: true });
    });
    scim.get('/boom', () => {
      throw new Error('SECRET-INTERNAL stack detail');
    });
    const app = createAdminApp({
      scim,
      ready: async () => {
        if (state.ok === false && state.reason === 'throw') throw new Error('SECRET-INTERNAL readiness');
        return state;
      },
      metrics: {
        contentType: registry.contentType,
        render: async () => {
          if (failMetrics) throw new Error('SECRET-INTERNAL metrics');
          return registry.metrics();
        },
      },
      extra: (a) => a.get('/admin/hello', (_req, res) => void res.type('text/plain').send('hi')),
      logger: { error: (obj) => void logged.push(obj.err) },
    });
    srv = await listen(app);
  });
  afterAll(async () => {
    await srv?.close();
  });

  it('GET /healthz is 200 ok without auth, with no x-powered-by', async () => {
    const r = await fetch(`${srv.url}/healthz`);
    expect(r.status).toBe(200);
    expect((await r.text()).trim()).toBe('ok');
    expect(r.headers.get('x-powered-by')).toBeNull();
  });

  it('GET /readyz is 200 when ready and 503 with the reason otherwise', async () => {
    state = { ok: true };
    expect((await fetch(`${srv.url}/readyz`)).status).toBe(200);
    state = { ok: false, reason: 'directory store unreachable' };
    const r = await fetch(`${srv.url}/readyz`);
    expect(r.status).toBe(503);
    expect((await r.text()).trim()).toBe('directory store unreachable');
    state = { ok: false, reason: 'throw' };
    const t = await fetch(`${srv.url}/readyz`);
    expect(t.status).toBe(503);
    expect(await t.text()).not.toContain('SECRET');
    state = { ok: true };
  });

  it('GET /metrics serves the registry in Prometheus text format', async () => {
    await fetch(`${srv.url}/scim/v2/ping`);
    const r = await fetch(`${srv.url}/metrics`);
    expect(r.status).toBe(200);
    expect(r.headers.get('content-type')).toBe(registry.contentType);
    expect(await r.text()).toMatch(/rolegate_scim_requests_total\{method="GET",status="200"\} 1/);
  });

  it('mounts the SCIM router at /scim/v2 and extra routes', async () => {
    expect(await (await fetch(`${srv.url}/scim/v2/ping`)).json()).toEqual({ pong: true });
    expect(await (await fetch(`${srv.url}/admin/hello`)).text()).toBe('hi');
  });

  it('unknown paths and methods are a JSON 404', async () => {
    for (const [method, path] of [['GET', '/'], ['GET', '/nope'], ['POST', '/healthz'], ['DELETE', '/metrics']] as const) {
      const r = await fetch(`${srv.url}${path}`, { method });
      expect(r.status).toBe(404);
      expect(r.headers.get('content-type')).toMatch(/^application\/json/);
      expect(await r.json()).toMatchObject({ error: 'not_found' });
    }
  });

  it('errors are JSON without internal text, never HTML', async () => {
    const before = logged.length;
    for (const path of ['/scim/v2/boom', '/metrics']) {
      failMetrics = true;
      const r = await fetch(`${srv.url}${path}`);
      failMetrics = false;
      expect(r.status).toBe(500);
      expect(r.headers.get('content-type')).toMatch(/^application\/json/);
      const text = await r.text();
      expect(text).not.toMatch(/SECRET|<html|<pre>|at /);
    }
    expect(logged.length).toBe(before + 2);
    const bad = await fetch(`${srv.url}/admin/%E0%A4%A`);
    expect(bad.status).toBe(404);
    expect(bad.headers.get('content-type')).toMatch(/^application\/json/);
  });
});

describe.each(STORE_KINDS)('admin app with the SCIM router (%s store)', (kind) => {
  let srv: ScimTestServer;
  beforeAll(async () => {
    srv = await startScimServer({ kind });
  });
  afterAll(async () => {
    await srv?.close();
  });

  it('readyz reflects the store; SCIM answers under /scim/v2 only with a token', async () => {
    expect((await fetch(`${srv.origin}/readyz`)).status).toBe(200);
    expect((await fetch(`${srv.origin}/scim/v2/Users`)).status).toBe(401);
    const r = await scimClient(srv)('GET', '/Users');
    expect(r.status).toBe(200);
    expect(r.json.totalResults).toBe(0);
    expect((await fetch(`${srv.origin}/healthz`)).status).toBe(200);
  });
});
