// The store stopped for a few seconds during a SCIM write burst (docs/design.md §8). The store is a
// private PostgreSQL cluster of this file (the suite's own is shared by every file and must not stop);
// the sessions' upstream stays the suite's. While the store is down, the instances refuse new logins
// (08006) and say so on /readyz, live sessions run on, the writes that cannot commit fail and are
// retried as an identity provider would; once it is back, both directories equal a fresh load and every
// deactivation of the burst has ended its session.
import { randomBytes } from 'node:crypto';
import type pg from 'pg';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startLocalPostgres, type LocalPostgres } from '../../demo/local-postgres.js';
import { freePort } from '../helpers/ports.js';
import { PATCH_URN, USER_URN, startServeCluster, type Instance, type ServeCluster } from '../helpers/serve-cluster.js';
import { tempDir, type TempDir } from '../helpers/tmp.js';
import { waitFor } from '../helpers/wait.js';

let dir: TempDir;
let store: LocalPostgres;
let cluster: ServeCluster;
let a: Instance;
let b: Instance;
const ids = new Map<string, string>();

beforeAll(async () => {
  dir = await tempDir('rolegate-outage-');
  const password = randomBytes(12).toString('hex');
  // Under root the server runs as the postgres OS user, as in the suite's global setup.
  store = await startLocalPostgres({ dir: dir.path, port: await freePort(), superuserPassword: password, hba: ['host all all 127.0.0.1/32 scram-sha-256'] });
  cluster = await startServeCluster({ instances: 2, storeUrl: `postgres://postgres:${password}@127.0.0.1:${store.port}/postgres` });
  [a, b] = cluster.instances as [Instance, Instance];
  for (const p of [...Array.from({ length: 10 }, (_, i) => `victim${i}@corp.com`), 'bystander@corp.com', 'newcomer@corp.com']) {
    ids.set(p, await cluster.provision(a, p, ['analysts']));
  }
}, 120_000);
afterAll(async () => {
  await cluster?.close();
  await store?.stop();
  await dir?.cleanup();
});

it('a store restart during a write burst: logins refused meanwhile, live sessions untouched, every revocation applied after', async () => {
  const victims = [...ids.keys()].filter((p) => p.startsWith('victim'));
  const ended = new Map<string, Promise<Error & { code?: string }>>();
  const clients: pg.Client[] = [];
  for (const v of victims) {
    const client = await b.connect(v);
    ended.set(v, new Promise((resolve) => client.once('error', resolve)));
    clients.push(client);
  }
  const bystander = await b.connect('bystander@corp.com');

  // The burst: each job is retried until it is answered 2xx, as an identity provider retries.
  const jobs: (() => Promise<Response>)[] = [
    ...victims.map((v) => () => a.scim(`/Users/${ids.get(v)}`, 'PATCH', { schemas: [PATCH_URN], Operations: [{ op: 'replace', value: { active: false } }] })),
    ...Array.from({ length: 30 }, (_, i) => () => a.scim('/Users', 'POST', { schemas: [USER_URN], userName: `filler${i}@corp.com`, active: true })),
  ];
  let failures = 0;
  const statuses = new Set<number>();
  const burst = Promise.all(Array.from({ length: 2 }, async () => {
    for (let job = jobs.shift(); job !== undefined; job = jobs.shift()) {
      for (;;) {
        // A connection cut while the store goes away, or a request left unanswered for 10 s, is retried
        // like a 5xx, as identity providers do (they time requests out).
        const res = await Promise.race([
          job().catch(() => undefined),
          new Promise<undefined>((r) => setTimeout(r, 10_000, undefined)),
        ]);
        // A create that committed before the store went away is a 409 on the retry: done too.
        if (res !== undefined && (res.status < 300 || res.status === 409)) break;
        if (res !== undefined) statuses.add(res.status);
        failures++;
        await new Promise((r) => setTimeout(r, 200));
      }
      await new Promise((r) => setTimeout(r, 60));
    }
  }));

  await new Promise((r) => setTimeout(r, 400));
  await store.stopServer();
  try {
    // The directory check comes first once B noticed (its pool's ping may fail a moment earlier).
    await waitFor(async () => {
      const res = await fetch(`${b.adminUrl}/readyz`);
      return res.status === 503 && /^directory unavailable/.test(await res.text());
    }, 5_000, 'B did not report its directory unavailable with its store gone');
    const refused = await b.connect('newcomer@corp.com').then(() => undefined, (err: unknown) => err);
    expect(refused).toMatchObject({ code: '08006', message: 'directory unavailable' });
    expect((await bystander.query('select 1 as ok')).rows).toEqual([{ ok: 1 }]);
    await new Promise((r) => setTimeout(r, 2_000));
  } finally {
    await store.startServer();
  }
  await Promise.race([burst, new Promise<never>((_, reject) => setTimeout(() => reject(new Error('the SCIM burst did not finish within 60 s of the store coming back')), 60_000))]);
  expect(failures).toBeGreaterThan(0);
  // What could not commit was a 503 (retry), never a 500; and A lived through it (it used to die of
  // an unhandled pg 'error' event: test/store/connection-loss.test.ts).
  expect([...statuses].filter((s) => s !== 503)).toEqual([]);
  expect({ a: a.serve.child.exitCode, b: b.serve.child.exitCode }).toEqual({ a: null, b: null });

  for (const [v, fatal] of ended) {
    const err = await Promise.race([fatal, new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`${v}: session not ended after the store came back`)), 10_000))]);
    expect(err).toMatchObject({ code: '57P01', message: 'access revoked' });
  }
  await cluster.expectInStep(15_000);
  for (const via of [a, b]) await waitFor(async () => (await fetch(`${via.adminUrl}/readyz`)).status === 200, 10_000, `${via.name} not ready again`);
  expect((await bystander.query('select 1 as ok')).rows).toEqual([{ ok: 1 }]);
  const back = await b.connect('newcomer@corp.com');
  await back.end();
  await bystander.end();
}, 150_000);
