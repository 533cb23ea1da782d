// `rolegate serve` as a real process: listeners, health, metrics, SIGTERM, and no acknowledged SCIM
// write lost to kill -9, on both stores.
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli, startServe } from '../helpers/cli.js';
import { freePort } from '../helpers/ports.js';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.js';
import { tempDir, type TempDir } from '../helpers/tmp.js';
import { waitFor } from '../helpers/wait.js';

const TOKEN = randomBytes(24).toString('base64url');
const USER = 'urn:ietf:params:scim:schemas:core:2.0:User';

let dir: TempDir;
let db: TestDatabase;
beforeAll(async () => {
  dir = await tempDir();
  db = await createTestDatabase('serve');
});
afterAll(async () => {
  await db.drop();
  await dir.cleanup();
});

async function writeConfig(name: string, store: string, adminPort: number, scimToken = '${SCIM_TOKEN}', extra = ''): Promise<string> {
  const file = join(dir.path, `${name}.yaml`);
  await writeFile(file, `
proxy: { listen: "127.0.0.1:0", allowPlaintext: true }
upstream: { host: 127.0.0.1, tls: { mode: disable } }
oidc: { issuer: "https://127.0.0.1:1/", audience: rolegate }
roles: [{ role: app_reader, groups: [analysts], databases: [app], credentials: { password: unused } }]
directory: { store: "${store}" }
scim: { tokens: ["${scimToken}"] }
admin: { listen: "127.0.0.1:${adminPort}" }
log: { level: warn }
${extra}`);
  return file;
}

function scim(base: string, path: string, method = 'GET', body?: unknown, token = TOKEN): Promise<Response> {
  return fetch(`${base}/scim/v2${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body ? { 'content-type': 'application/scim+json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
}

describe('rolegate serve', () => {
  it('serves health, readiness, metrics and SCIM, and exits 0 on SIGTERM', async () => {
    const port = await freePort();
    const base = `http://127.0.0.1:${port}`;
    const file = await writeConfig('basic', `sqlite:${join(dir.path, 'basic.db')}`, port);
    const srv = await startServe(file, `${base}/healthz`, { SCIM_TOKEN: TOKEN });
    try {
      // The config's issuer and upstream are not running: not ready, and /readyz says why.
      const ready = await fetch(`${base}/readyz`);
      expect(ready.status).toBe(503);
      expect(await ready.text()).toMatch(/identity provider keys unreachable|upstream database unreachable/);
      const created = await scim(base, '/Users', 'POST', { schemas: [USER], userName: 'alice@corp.example' });
      expect(created.status).toBe(201);
      expect((await scim(base, '/Users?filter=' + encodeURIComponent('userName eq "ALICE@corp.example"'))).status).toBe(200);
      const metrics = await (await fetch(`${base}/metrics`)).text();
      expect(metrics).toMatch(/rolegate_scim_requests_total\{method="POST",status="201"\} 1/);
      expect(metrics).toContain('rolegate_sessions_active');
      expect(srv.output()).not.toContain(TOKEN);
    } finally {
      srv.child.kill('SIGTERM');
    }
    expect(await srv.exited).toBe(0);
  });

  it('SIGHUP rotates the SCIM token at once; a file that no longer validates is refused and the old configuration kept', async () => {
    const port = await freePort();
    const base = `http://127.0.0.1:${port}`;
    const store = `sqlite:${join(dir.path, 'hup.db')}`;
    const [first, second] = [randomBytes(24).toString('base64url'), randomBytes(24).toString('base64url')];
    const file = await writeConfig('hup', store, port, first);
    const srv = await startServe(file, `${base}/healthz`);
    const status = async (token: string) => (await scim(base, '/Users?count=1', 'GET', undefined, token)).status;
    const until = (ok: () => boolean | Promise<boolean>, what: string) => waitFor(ok, 10_000, () => `${what}; output: ${srv.output()}`);
    try {
      expect([await status(first), await status(second)]).toEqual([200, 401]);
      await writeConfig('hup', store, port, second);
      srv.child.kill('SIGHUP');
      await until(async () => (await status(second)) === 200, 'the new token was not accepted after SIGHUP');
      expect(await status(first)).toBe(401);

      // A file with an unknown key: reported with its key path, nothing changes, the process serves on.
      await writeConfig('hup', store, port, first, 'bogus: 1\n');
      srv.child.kill('SIGHUP');
      await until(() => srv.output().includes('reload refused'), 'no "reload refused" line');
      expect(srv.output()).toMatch(/bogus/);
      expect([await status(first), await status(second)]).toEqual([401, 200]);
      expect(srv.output()).not.toContain(first);
      expect(srv.output()).not.toContain(second);
    } finally {
      srv.child.kill('SIGTERM');
    }
    expect(await srv.exited).toBe(0);
  });

  it('a second instance on the same SQLite file is refused at start (was: both served, blind to each other’s writes)', async () => {
    const [port1, port2] = [await freePort(), await freePort()];
    const store = `sqlite:${join(dir.path, 'single.db')}`;
    const first = await startServe(await writeConfig('single-1', store, port1), `http://127.0.0.1:${port1}/healthz`, { SCIM_TOKEN: TOKEN });
    try {
      const second = await runCli(['serve', '--config', await writeConfig('single-2', store, port2)], { SCIM_TOKEN: TOKEN });
      expect(second.code).toBe(1);
      expect(second.stderr).toMatch(/cannot start: .*already served by another rolegate process.*postgres:\/\//);
      // The first one serves on.
      expect((await scim(`http://127.0.0.1:${port1}`, '/Users', 'POST', { schemas: [USER], userName: 'still@corp.example' })).status).toBe(201);
    } finally {
      first.child.kill('SIGTERM');
    }
    expect(await first.exited).toBe(0);
    // Once it is gone, the file can be served again.
    const again = await startServe(await writeConfig('single-2', store, port2), `http://127.0.0.1:${port2}/healthz`, { SCIM_TOKEN: TOKEN });
    again.child.kill('SIGTERM');
    expect(await again.exited).toBe(0);
  });

  describe.each([
    ['sqlite', () => `sqlite:${join(dir.path, 'durable.db')}`],
    ['postgres', () => db.url],
  ])('%s store: kill -9 during a write burst', (name, storeUrl) => {
    it('loses no acknowledged write', async () => {
      const port = await freePort();
      const base = `http://127.0.0.1:${port}`;
      const file = await writeConfig(`durable-${name}`, storeUrl(), port);
      const srv = await startServe(file, `${base}/healthz`, { SCIM_TOKEN: TOKEN });
      const acked: string[] = [];
      let killed = false;
      // 8 writers post users until the process dies; it is killed after the 150th acknowledgement.
      const writer = async (w: number) => {
        for (let i = 0; ; i++) {
          let res: Response;
          try {
            res = await scim(base, '/Users', 'POST', { schemas: [USER], userName: `burst-${w}-${i}@corp.example` });
          } catch {
            return; // connection refused or reset: the process is gone
          }
          if (res.status !== 201) return;
          acked.push(((await res.json()) as { id: string }).id);
          if (acked.length >= 150 && !killed) {
            killed = true;
            srv.child.kill('SIGKILL');
          }
        }
      };
      await Promise.all(Array.from({ length: 8 }, (_, w) => writer(w)));
      expect(await srv.exited).toBe(null);
      expect(acked.length).toBeGreaterThanOrEqual(150);

      const again = await startServe(file, `${base}/healthz`, { SCIM_TOKEN: TOKEN });
      try {
        const missing: string[] = [];
        for (const id of acked) if ((await scim(base, `/Users/${id}`)).status !== 200) missing.push(id);
        expect(missing).toEqual([]);
      } finally {
        again.child.kill('SIGTERM');
        await again.exited;
      }
    });
  });
});
