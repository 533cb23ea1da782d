// Fail closed when an instance loses its listening connection (docs/design.md §8): the connection is
// killed (pg_terminate_backend) in the middle of a SCIM write burst on the other instance; while it
// cannot come back, new logins are refused (08006 directory unavailable, audited) and /readyz is 503
// with the reason, live sessions keep running; once back, the instance catches up from the last
// change it applied, every revocation committed meanwhile ends its session, and both directories
// equal a fresh load.
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { superuserQuery } from '../helpers/postgres.js';
import { PATCH_URN, USER_URN, startServeCluster, type Instance, type ServeCluster } from '../helpers/serve-cluster.js';
import { waitFor } from '../helpers/wait.js';

let cluster: ServeCluster;
let a: Instance;
let b: Instance;
let storeDb: string;
const ids = new Map<string, string>();

beforeAll(async () => {
  cluster = await startServeCluster({ instances: 2 });
  [a, b] = cluster.instances as [Instance, Instance];
  storeDb = decodeURIComponent(new URL(cluster.storeUrl).pathname.slice(1));
  const people = [...Array.from({ length: 8 }, (_, i) => `victim${i}@corp.com`), 'bystander@corp.com', 'late@corp.com', 'newcomer@corp.com'];
  for (const p of people) ids.set(p, await cluster.provision(a, p, ['analysts']));
});
afterAll(async () => {
  await superuserQuery(`ALTER DATABASE "${storeDb}" ALLOW_CONNECTIONS true`).catch(() => undefined);
  await cluster?.close();
});

/** Kills B's listening connection in the store database; resolves with how many backends went. */
async function killListener(of: Instance): Promise<number> {
  const { rows } = await superuserQuery<{ ok: boolean }>(
    `SELECT pg_terminate_backend(pid) AS ok FROM pg_stat_activity WHERE datname = $1 AND application_name = $2`,
    [storeDb, `rolegate-listen ${of.name}`],
  );
  return rows.length;
}

interface Watched {
  client: pg.Client;
  fatal: Promise<Error & { code?: string }>;
}

async function watched(via: Instance, email: string): Promise<Watched> {
  const client = await via.connect(email);
  const fatal = new Promise<Error & { code?: string }>((resolve) => client.once('error', resolve));
  await client.query('select 1');
  return { client, fatal };
}


async function patchInactive(via: Instance, email: string): Promise<number> {
  const res = await via.scim(`/Users/${ids.get(email)}`, 'PATCH', { schemas: [PATCH_URN], Operations: [{ op: 'replace', value: { active: false } }] });
  return res.status;
}

describe('the listening connection is killed during a write burst on the other instance', () => {
  it('B notices, comes back, catches up: every revocation of the burst ends its session on B', async () => {
    const victims = [...ids.keys()].filter((p) => p.startsWith('victim'));
    const sessions = new Map<string, Watched>();
    for (const v of victims) sessions.set(v, await watched(b, v));
    const bystander = await watched(b, 'bystander@corp.com');

    // The burst: deactivations and unrelated creations from four writers; the listener dies after the fifth write.
    let written = 0;
    let killed: Promise<number> | undefined;
    const work: (() => Promise<number>)[] = [
      ...victims.map((v) => () => patchInactive(a, v)),
      ...Array.from({ length: 12 }, (_, i) => async () =>
        (await a.scim('/Users', 'POST', { schemas: [USER_URN], userName: `filler${i}@corp.com`, active: true })).status),
    ].sort(() => Math.random() - 0.5);
    const statuses: number[] = [];
    await Promise.all(Array.from({ length: 4 }, async () => {
      for (let job = work.shift(); job !== undefined; job = work.shift()) {
        statuses.push(await job());
        if (++written === 5) killed = killListener(b);
      }
    }));
    expect(await killed).toBe(1);
    expect(statuses.every((s) => s === 200 || s === 201)).toBe(true);

    for (const [v, w] of sessions) {
      const err = await Promise.race([w.fatal, new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`${v}: no FATAL within 5 s`)), 5_000))]);
      expect(err).toMatchObject({ code: '57P01', message: 'access revoked' });
    }
    expect((await bystander.client.query('select 1 as ok')).rows).toEqual([{ ok: 1 }]);
    await waitFor(() => b.serve.output().includes('directory listener lost'), 5_000, 'B did not notice');
    await cluster.expectInStep();
    await bystander.client.end();
  });
});

describe('while the listening connection cannot come back', () => {
  it('B refuses new logins with 08006 "directory unavailable" and says why on /readyz; live sessions run on; a deactivation committed meanwhile ends its session once B is back', async () => {
    const live = await watched(b, 'bystander@corp.com');
    const late = await watched(b, 'late@corp.com');
    // Existing connections stay; B's listener cannot reconnect until connections are allowed again.
    await superuserQuery(`ALTER DATABASE "${storeDb}" ALLOW_CONNECTIONS false`);
    try {
      expect(await killListener(b)).toBe(1);
      await waitFor(async () => {
        const res = await fetch(`${b.adminUrl}/readyz`);
        return res.status === 503 && /^directory unavailable: lost the connection/.test(await res.text());
      }, 5_000, 'B did not report its directory unavailable');
      expect((await fetch(`${a.adminUrl}/readyz`)).status).toBe(200);

      const refused = await b.connect('newcomer@corp.com').then(() => undefined, (err: unknown) => err);
      expect(refused).toMatchObject({ code: '08006', message: 'directory unavailable' });
      await waitFor(() => b.auditEvents().some((e) => e.type === 'session.denied' && e.reason === 'directory_unavailable' && e.requestedUser === 'newcomer@corp.com'), 5_000, 'no audit event for the refusal');
      // A is current and admits the same person.
      const onA = await a.connect('newcomer@corp.com');
      await onA.end();

      // A commits a deactivation that B cannot hear about yet (A's connections are already open).
      expect(await patchInactive(a, 'late@corp.com')).toBe(200);
      expect((await live.client.query('select 1 as ok')).rows).toEqual([{ ok: 1 }]);
      expect((await b.directory()).current).toBe(false);
    } finally {
      await superuserQuery(`ALTER DATABASE "${storeDb}" ALLOW_CONNECTIONS true`);
    }
    const t0 = performance.now();
    const err = await Promise.race([late.fatal, new Promise<never>((_, reject) => setTimeout(() => reject(new Error('no FATAL after B came back')), 10_000))]);
    expect(err).toMatchObject({ code: '57P01', message: 'access revoked' });
    await waitFor(async () => (await fetch(`${b.adminUrl}/readyz`)).status === 200, 10_000, 'B did not become ready again');
    console.info(`listener back and caught up ${(performance.now() - t0).toFixed(0)} ms after connections were allowed again`);
    const again = await b.connect('newcomer@corp.com');
    await again.end();
    expect((await live.client.query('select 1 as ok')).rows).toEqual([{ ok: 1 }]);
    await cluster.expectInStep();
    await live.client.end();
  });
});
