// `proxy.workers: 2` (docs/design.md §8, Workers): one real `rolegate serve` on a PostgreSQL store
// runs two workers sharing its ports. Logins land on both; a deactivation, an admin kill and a
// CancelRequest reach a session whichever worker holds it; /admin/sessions, /readyz and /metrics
// answer for both; SIGHUP reaches both; a killed worker is replaced; SIGTERM drains both.
import { connect as tcpConnect } from 'node:net';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { superuserQuery } from '../helpers/postgres.js';
import { PATCH_URN, startServeCluster, type Instance, type ServeCluster, type SessionJson } from '../helpers/serve-cluster.js';
import { waitFor } from '../helpers/wait.js';

let cluster: ServeCluster;
let gw: Instance;
let w1: string;
let w2: string;

beforeAll(async () => {
  // Heartbeat 500ms (expiry 2.5 s): nothing here waits for an expiry, and with the helper's 200 ms a
  // worker starved for a second by a loaded CI machine dropped out of the other's session list.
  cluster = await startServeCluster({ instances: 1, proxyYaml: 'workers: 2', heartbeat: '500ms' });
  gw = cluster.instances[0] as Instance;
  [w1, w2] = [`${gw.name}-w1`, `${gw.name}-w2`];
  for (const person of ['alice@corp.com', 'bob@corp.com', 'carol@corp.com']) await cluster.provision(gw, person, ['analysts']);
  await bothWorkersCaughtUp();
});
afterAll(async () => {
  await cluster?.close();
});

async function sessions(): Promise<SessionJson[]> {
  const res = await gw.admin('/sessions');
  expect(res.status).toBe(200);
  return ((await res.json()) as { sessions: SessionJson[] }).sessions;
}

function clientPort(client: pg.Client): number {
  return (client as unknown as { connection: { stream: { localPort: number } } }).connection.stream.localPort;
}

/** How many of the session `ids` the workers' mirrors have written to the store's shared list. */
async function mirrored(ids: readonly string[]): Promise<number> {
  const store = new pg.Client({ connectionString: cluster.storeUrl });
  await store.connect();
  try {
    return (await store.query('select 1 from rg_sessions where id = any($1::text[])', [ids])).rowCount ?? 0;
  } finally {
    await store.end();
  }
}

/**
 * The session each client holds, as the admin API lists it, once every worker lists them all. A
 * worker lists its own sessions from memory and the other's from rg_sessions, which each worker
 * writes within 50 ms of a change (docs/design.md §8): one worker's full answer does not mean the
 * other's, so this also waits for the store to hold every session.
 */
async function sessionsOf(clients: pg.Client[]): Promise<SessionJson[]> {
  let found: SessionJson[] = [];
  await waitFor(async () => {
    const list = await sessions();
    found = clients.flatMap((c) => list.filter((s) => s.client.port === clientPort(c)));
    return found.length === clients.length;
  }, 5_000, 'not every client is in the session list');
  await waitFor(async () => (await mirrored(found.map((s) => s.id))) === clients.length, 5_000, 'not every session is in the shared list');
  return found;
}

/** Opens `n` sessions for `email`; the primary hands connections round-robin, so both workers get some. */
async function openOnBoth(email: string, n = 4, app?: string): Promise<{ clients: pg.Client[]; listed: SessionJson[] }> {
  const clients: pg.Client[] = [];
  for (let i = 0; i < n; i++) clients.push(await gw.connect(email, app === undefined ? {} : { app: `${app}-${i}` }));
  const listed = await sessionsOf(clients);
  expect(new Set(listed.map((s) => s.instance))).toEqual(new Set([w1, w2]));
  return { clients, listed };
}

/** Resolves with the error that ends `client`'s session. */
function endOf(client: pg.Client): Promise<Error & { code?: string }> {
  return new Promise((resolve) => client.once('error', resolve));
}

function rawCancel(pid: number, secret: number): Promise<void> {
  const packet = Buffer.alloc(16);
  packet.writeInt32BE(16, 0);
  packet.writeInt32BE(80877102, 4);
  packet.writeInt32BE(pid, 8);
  packet.writeUInt32BE(secret >>> 0, 12);
  return new Promise((resolve, reject) => {
    const s = tcpConnect({ host: '127.0.0.1', port: gw.proxyPort }, () => s.end(packet));
    s.on('error', reject);
    s.on('close', () => resolve());
  });
}

function metricValue(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.split(' ')[1]);
}

/**
 * Waits until both workers applied every change in the store's log. A SCIM write is answered once the
 * worker that took it holds it; the other worker follows the log a few milliseconds later.
 */
async function bothWorkersCaughtUp(): Promise<void> {
  const store = new pg.Client({ connectionString: cluster.storeUrl });
  await store.connect();
  try {
    const { rows } = await store.query<{ seq: string }>('select coalesce(max(seq), 0)::text as seq from rg_changes');
    const latest = Number(rows[0]?.seq);
    await waitFor(async () => (metricValue(await (await fetch(`${gw.adminUrl}/metrics`)).text(), 'rolegate_directory_log_position') ?? 0) >= latest, 5_000);
  } finally {
    await store.end();
  }
}

/** The pid of worker `k` as the supervisor last logged it. */
function workerPid(k: number): number | undefined {
  let pid: number | undefined;
  for (const line of gw.serve.output().split('\n')) {
    if (!line.startsWith('{')) continue;
    const e = JSON.parse(line) as { msg?: string; worker?: number; workerPid?: number };
    if (e.msg === 'worker started' && e.worker === k) pid = e.workerPid;
  }
  return pid;
}

describe('two workers on one PostgreSQL store', () => {
  it('logins land on both workers and GET /admin/sessions lists both workers\' sessions', async () => {
    const { clients, listed } = await openOnBoth('alice@corp.com');
    for (const s of listed) expect(s).toMatchObject({ person: 'alice@corp.com', role: cluster.roles.reader, database: cluster.database });
    // Whichever worker answers the admin request, it lists the other worker's sessions too.
    for (let i = 0; i < 4; i++) expect((await sessions()).filter((s) => s.person === 'alice@corp.com')).toHaveLength(4);
    await Promise.all(clients.map((c) => c.end()));
    await waitFor(async () => !(await sessions()).some((s) => s.person === 'alice@corp.com'));
  });

  it('/readyz answers for both workers and /metrics sums both workers\' series', async () => {
    expect((await fetch(`${gw.adminUrl}/readyz`)).status).toBe(200);
    const { clients } = await openOnBoth('bob@corp.com', 4);
    for (let i = 0; i < 4; i++) {
      const text = await (await fetch(`${gw.adminUrl}/metrics`)).text();
      expect(metricValue(text, 'rolegate_sessions_active')).toBe(4);
      expect(metricValue(text, 'rolegate_workers{state="running"}')).toBe(2);
      expect(metricValue(text, 'rolegate_directory_current')).toBe(1);
    }
    await Promise.all(clients.map((c) => c.end()));
  });

  it('GET /admin/audit/head answers with every worker\'s chain head, each one a line on that worker\'s disk', async () => {
    // Each worker writes its own series; an outside system records every head, whichever worker answers
    // (the supervisor hands admin connections to the workers in turn, but a busy one may be skipped).
    const { clients } = await openOnBoth('bob@corp.com', 2);
    for (let i = 0; i < 4; i++) {
      const res = await gw.admin('/audit/head');
      expect(res.status).toBe(200);
      const body = (await res.json()) as { instance: string; seq: number; hash: string; workers: { worker: number; instance: string; seq: number; hash: string; available: boolean }[] };
      expect(body.workers.map((h) => [h.worker, h.instance])).toEqual([[1, w1], [2, w2]]);
      expect(body.workers.find((h) => h.instance === body.instance)).toMatchObject({ seq: body.seq, hash: body.hash });
      const lines = gw.auditEvents();
      for (const h of body.workers) {
        expect(h.available).toBe(true);
        expect(h.seq).toBeGreaterThan(0);
        // The head is a synced line: on disk with exactly that hash in that worker's chain.
        expect(lines.find((e) => e.instance === h.instance && e.seq === h.seq)?.hash).toBe(h.hash);
      }
    }
    await Promise.all(clients.map((c) => c.end()));
  });

  it('GET /admin/directory answers with both workers\' views, equal once both applied the log', async () => {
    await bothWorkersCaughtUp();
    for (let i = 0; i < 4; i++) {
      const res = await gw.admin('/directory');
      expect(res.status).toBe(200);
      const body = (await res.json()) as { instance: string; workers: { worker: number; instance: string; current: boolean; position: string; digest: string }[] };
      expect(body.workers.map((v) => [v.worker, v.instance, v.current])).toEqual([[1, w1, true], [2, w2, true]]);
      const [one, two] = body.workers;
      expect(two).toMatchObject({ position: one?.position, digest: one?.digest });
      expect([w1, w2]).toContain(body.instance);
    }
  });

  it('a deactivation ends the person\'s sessions on both workers', async () => {
    const id = await cluster.provision(gw, 'dora@corp.com', ['analysts']);
    await bothWorkersCaughtUp();
    const { clients } = await openOnBoth('dora@corp.com');
    const ends = clients.map(endOf);
    const res = await gw.scim(`/Users/${id}`, 'PATCH', { schemas: [PATCH_URN], Operations: [{ op: 'replace', path: 'active', value: false }] });
    expect(res.status).toBe(200);
    const errors = await Promise.all(ends);
    for (const e of errors) expect(e.code).toBe('57P01');
  });

  it('DELETE /admin/sessions/:id ends a session whichever worker holds it', async () => {
    const { clients, listed } = await openOnBoth('carol@corp.com');
    const ends = clients.map(endOf);
    // Each request reaches one worker or the other: across four, both local and forwarded kills run.
    for (const s of listed) expect((await gw.admin(`/sessions/${s.id}`, 'DELETE')).status).toBe(204);
    for (const e of await Promise.all(ends)) expect(e.message).toContain('terminated by administrator');
  });

  it('a CancelRequest cancels a query whichever worker holds the session', async () => {
    const { clients } = await openOnBoth('alice@corp.com', 4, 'cancel-w');
    const queries = clients.map((c) => c.query('select pg_sleep(30)').then(() => undefined, (e: Error & { code?: string }) => e));
    for (let i = 0; i < clients.length; i++) {
      await waitFor(async () => (await superuserQuery(`select 1 from pg_stat_activity where application_name = $1 and state = 'active' and query like '%pg_sleep%'`, [`cancel-w-${i}`])).rowCount === 1, 10_000);
    }
    // Cancel connections are handed round-robin too, so some reach the worker without the session.
    for (const c of clients) {
      const k = c as unknown as { processID: number; secretKey: number };
      await rawCancel(k.processID, k.secretKey);
    }
    for (const e of await Promise.all(queries)) expect(e?.code).toBe('57014');
    await Promise.all(clients.map((c) => c.end()));
  });

  it('SIGHUP reaches both workers', async () => {
    const before = gw.serve.output().split('configuration reloaded').length;
    gw.serve.child.kill('SIGHUP');
    await waitFor(() => gw.serve.output().split('configuration reloaded').length - before === 2, 10_000, () => gw.serve.output());
  });

  it('a killed worker is replaced, and the other worker\'s sessions go on', async () => {
    const { clients, listed } = await openOnBoth('bob@corp.com', 2);
    const victim = listed.find((s) => s.instance === w1);
    const survivor = clients[listed.findIndex((s) => s.instance === w2)] as pg.Client;
    const oldPid = workerPid(1);
    expect(victim).toBeDefined();
    expect(oldPid).toBeDefined();
    process.kill(oldPid as number, 'SIGKILL');
    await waitFor(() => workerPid(1) !== oldPid, 10_000, () => gw.serve.output());
    expect(gw.serve.output()).toContain('worker exited unexpectedly; restarting it');
    await waitFor(async () => (await fetch(`${gw.adminUrl}/readyz`)).status === 200, 10_000);
    expect((await survivor.query('select 1 as one')).rows).toEqual([{ one: 1 }]);
    const again = await openOnBoth('bob@corp.com', 2);
    await Promise.all([survivor, ...again.clients].map((c) => c.end()));
  });

  it('SIGTERM drains both workers and the process exits 0', async () => {
    const { clients } = await openOnBoth('alice@corp.com', 2);
    const ends = clients.map(endOf);
    gw.serve.child.kill('SIGTERM');
    for (const e of await Promise.all(ends)) expect(e.message).toContain('server shutting down');
    expect(await gw.serve.exited).toBe(0);
    const ended = gw.auditEvents().filter((e) => e.type === 'session.end' && e.reason === 'shutdown');
    expect(new Set(ended.map((e) => e.instance))).toEqual(new Set([w1, w2]));
  });
});
