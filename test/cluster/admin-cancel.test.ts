// Kill, cancel and the session list across three instances on one store (docs/design.md §5 and §8):
// GET /admin/sessions on any instance lists every instance's sessions; DELETE on any instance ends the
// session where it lives; a CancelRequest reaching the wrong instance is forwarded to the one that
// issued its key, and only a key with the right secret cancels anything; a dead instance's sessions
// leave the list.
import { connect as tcpConnect } from 'node:net';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { superuserQuery } from '../helpers/postgres.js';
import { startServeCluster, type Instance, type ServeCluster, type SessionJson } from '../helpers/serve-cluster.js';
import { waitFor } from '../helpers/wait.js';

let cluster: ServeCluster;
let a: Instance;
let b: Instance;
let c: Instance;

beforeAll(async () => {
  cluster = await startServeCluster({ instances: 3 });
  [a, b, c] = cluster.instances as [Instance, Instance, Instance];
  for (const person of ['alice@corp.com', 'bob@corp.com', 'carol@corp.com', 'dora@corp.com']) await cluster.provision(a, person, ['analysts']);
});
afterAll(async () => {
  await cluster?.close();
});

async function sessions(via: Instance): Promise<SessionJson[]> {
  const res = await via.admin('/sessions');
  expect(res.status).toBe(200);
  return ((await res.json()) as { sessions: SessionJson[] }).sessions;
}

/** The registry id of the session `client` holds on `holder` (found by its client port). */
async function sessionOf(holder: Instance, client: pg.Client): Promise<SessionJson> {
  const port = (client as unknown as { connection: { stream: { localPort: number } } }).connection.stream.localPort;
  let found: SessionJson | undefined;
  await waitFor(async () => (found = (await sessions(holder)).find((s) => s.client.port === port && s.instance === holder.name)) !== undefined);
  return found as SessionJson;
}

/** A protocol 3.0 CancelRequest, sent in plaintext to `instance` as libpq before 17 does. */
function rawCancel(instance: Instance, pid: number, secret: number): Promise<void> {
  const packet = Buffer.alloc(16);
  packet.writeInt32BE(16, 0);
  packet.writeInt32BE(80877102, 4);
  packet.writeInt32BE(pid, 8);
  packet.writeUInt32BE(secret >>> 0, 12);
  return new Promise((resolve, reject) => {
    const s = tcpConnect({ host: '127.0.0.1', port: instance.proxyPort }, () => s.end(packet));
    s.on('error', reject);
    s.on('close', () => resolve());
  });
}

function keyOf(client: pg.Client): { pid: number; secret: number } {
  const k = client as unknown as { processID: number; secretKey: number };
  return { pid: k.processID, secret: k.secretKey };
}

async function sleepingUpstream(app: string): Promise<void> {
  await waitFor(async () => (await superuserQuery(`select 1 from pg_stat_activity where application_name = $1 and state = 'active' and query like '%pg_sleep%'`, [app])).rowCount === 1, 10_000, `no sleeping backend for ${app}`);
}

describe('sessions of every instance, from any instance', () => {
  it('GET /admin/sessions on any instance lists the sessions of all three, each with its instance', async () => {
    const onA = await a.connect('alice@corp.com');
    const onB = await b.connect('bob@corp.com');
    const sA = await sessionOf(a, onA);
    const sB = await sessionOf(b, onB);
    for (const via of [a, b, c]) {
      await waitFor(async () => {
        const list = await sessions(via);
        return list.some((s) => s.id === sA.id && s.instance === a.name) && list.some((s) => s.id === sB.id && s.instance === b.name);
      }, 5_000, `${via.name} does not list both sessions`);
    }
    const onC = (await sessions(c)).find((s) => s.id === sB.id);
    expect(onC).toMatchObject({ person: 'bob@corp.com', role: cluster.roles.reader, database: cluster.database, instance: b.name });
    await onA.end();
    await onB.end();
    // Ended sessions leave every list.
    for (const via of [a, b, c]) {
      await waitFor(async () => !(await sessions(via)).some((s) => s.id === sA.id || s.id === sB.id), 5_000, `${via.name} still lists ended sessions`);
    }
  });

  it('DELETE /admin/sessions/:id on another instance ends the session where it lives (57P01)', async () => {
    const client = await b.connect('carol@corp.com');
    const fatal = new Promise<Error & { code?: string }>((resolve) => client.once('error', resolve));
    await client.query('select 1');
    const s = await sessionOf(b, client);
    await waitFor(async () => (await sessions(c)).some((x) => x.id === s.id), 5_000, 'C does not list the session yet');
    const res = await c.admin(`/sessions/${s.id}`, 'DELETE');
    expect(res.status).toBe(204);
    expect(await fatal).toMatchObject({ code: '57P01', message: 'terminated by administrator' });
    await waitFor(() => b.auditEvents().some((e) => e.type === 'session.end' && e.session === s.id && e.reason === 'admin_kill'), 5_000, 'no admin_kill audit event on B');
    // Gone everywhere: a second DELETE, on any instance, finds nothing.
    await waitFor(async () => (await c.admin(`/sessions/${s.id}`, 'DELETE')).status === 404, 5_000, 'the ended session is still found');
    expect((await a.admin(`/sessions/${s.id}`, 'DELETE')).status).toBe(404);
  });

  it('an unknown session id is 404 on every instance', async () => {
    for (const via of [a, b, c]) expect((await via.admin('/sessions/00000000-0000-4000-8000-000000000000', 'DELETE')).status).toBe(404);
  });
});

describe('cancel across instances', () => {
  it('a CancelRequest sent to another instance cancels the query on the instance that holds the session', async () => {
    const client = await b.connect('dora@corp.com', { app: 'cancel-elsewhere' });
    const sleeping = client.query('select pg_sleep(30)').then(() => undefined, (err: unknown) => err);
    await sleepingUpstream('cancel-elsewhere');
    const { pid, secret } = keyOf(client);
    // A wrong secret, forwarded all the same, cancels nothing (the issuing instance compares it).
    await rawCancel(a, pid, secret ^ 1);
    await rawCancel(c, pid, secret + 7);
    await new Promise((r) => setTimeout(r, 300));
    await sleepingUpstream('cancel-elsewhere');
    const t0 = performance.now();
    await rawCancel(a, pid, secret);
    expect(await sleeping).toMatchObject({ code: '57014' });
    expect(performance.now() - t0).toBeLessThan(5_000);
    // The session itself goes on.
    expect((await client.query('select 2 as n')).rows).toEqual([{ n: 2 }]);
    await client.end();
  });
});

describe('a dead instance', () => {
  it('kill -9: its sessions leave the other instances’ lists after its heartbeats stop', async () => {
    const client = await c.connect('alice@corp.com');
    const s = await sessionOf(c, client);
    await waitFor(async () => (await sessions(a)).some((x) => x.id === s.id), 5_000, 'A does not list C’s session');
    c.serve.child.kill('SIGKILL');
    await c.serve.exited;
    // Heartbeat 200 ms, expiry five beats: well within 5 s.
    await waitFor(async () => !(await sessions(a)).some((x) => x.instance === c.name), 5_000, 'A still lists the dead instance’s sessions');
    expect((await sessions(b)).some((x) => x.instance === c.name)).toBe(false);
    expect((await a.admin(`/sessions/${s.id}`, 'DELETE')).status).toBe(404);
  });
});
