// Revocation (docs/design.md §2 step 9): a SCIM change that takes a person's access away ends their live
// sessions with FATAL 57P01 "access revoked" within 1 s; other people's sessions, and a person who
// keeps another granting group, are unaffected; audit and metrics record each end.
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { superuserQuery } from '../helpers/postgres.js';
import { PATCH_URN, startStack, type Stack } from '../helpers/stack.js';
import { waitFor } from '../helpers/wait.js';

let stack: Stack;
let bystander: pg.Client;
const ids = new Map<string, string>();

beforeAll(async () => {
  stack = await startStack();
  for (const [person, groups] of [
    ['bob@corp.com', ['engineering']],
    ['dave@corp.com', ['analysts']],
    ['erin@corp.com', ['analysts']],
    ['frank@corp.com', ['analysts']],
    ['gina@corp.com', ['analysts', 'engineering']],
    ['olga@corp.com', ['ops']],
    ['hank@corp.com', ['analysts']],
    ['ivan@corp.com', ['analysts']],
    ['judy@corp.com', ['analysts']],
  ] as const) {
    ids.set(person, await stack.provision(person, [...groups]));
  }
  bystander = await connect('bob@corp.com');
});
afterAll(async () => {
  await bystander?.end().catch(() => undefined);
  await stack?.close();
});

interface Watched {
  client: pg.Client;
  sessionId: string;
  /** Resolves with the unsolicited error and when it arrived (performance.now()). */
  fatal: Promise<{ err: Error & { code?: string }; at: number }>;
}

async function connect(email: string, user = email, app = 'revocation'): Promise<pg.Client> {
  const client = new pg.Client(stack.pgConfig(user, await stack.tokenFor(email), { application_name: app }));
  client.on('error', () => undefined);
  await client.connect();
  return client;
}

/** An idle session of `email` that records the FATAL it is sent. */
async function watched(email: string, user = email): Promise<Watched> {
  const client = await connect(email, user);
  const fatal = new Promise<{ err: Error & { code?: string }; at: number }>((resolve) => client.once('error', (err) => resolve({ err, at: performance.now() })));
  await client.query('select 1');
  const port = (client as unknown as { connection: { stream: { localPort: number } } }).connection.stream.localPort;
  const session = stack.server.registry.list().find((s) => s.client.port === port);
  if (session === undefined) throw new Error(`no registry entry for ${email}`);
  return { client, sessionId: session.id, fatal };
}

async function revocationsTotal(): Promise<number> {
  const text = await stack.server.metrics.registry.metrics();
  const m = /^rolegate_revocations_total (\d+)$/m.exec(text);
  return m ? Number(m[1]) : NaN;
}

async function scimOk(path: string, method: string, body?: unknown): Promise<void> {
  const res = await stack.scim(path, method, body);
  if (res.status >= 300) throw new Error(`${method} ${path}: ${res.status} ${await res.text()}`);
}

const latencies: number[] = [];

/** Runs the SCIM change and checks the session's end: 57P01 "access revoked" within 1 s, audited, counted. */
async function expectRevoked(w: Watched, change: () => Promise<void>): Promise<void> {
  const before = await revocationsTotal();
  const t0 = performance.now();
  await change();
  const { err, at } = await Promise.race([
    w.fatal,
    new Promise<never>((_, reject) => setTimeout(() => reject(new Error('no FATAL within 2 s')), 2_000)),
  ]);
  const ms = at - t0;
  latencies.push(ms);
  expect(err).toMatchObject({ code: '57P01', message: 'access revoked', severity: 'FATAL' });
  expect(ms).toBeLessThan(1_000);
  // The client's next read fails too.
  await expect(w.client.query('select 1')).rejects.toThrow();
  expect(stack.server.registry.get(w.sessionId)).toBeUndefined();
  await stack.server.audit.flushed();
  const end = stack.auditEvents().filter((e) => e.type === 'session.end' && e.session === w.sessionId);
  expect(end).toHaveLength(1);
  expect(end[0]).toMatchObject({ reason: 'revoked' });
  expect(await revocationsTotal()).toBe(before + 1);
  expect((await bystander.query('select 1 as ok')).rows).toEqual([{ ok: 1 }]);
}

describe('a live session ends when the directory takes access away', () => {
  it('the person is deactivated (PATCH active=false)', async () => {
    const w = await watched('dave@corp.com');
    await expectRevoked(w, () =>
      scimOk(`/Users/${ids.get('dave@corp.com')}`, 'PATCH', { schemas: [PATCH_URN], Operations: [{ op: 'replace', value: { active: false } }] }),
    );
  });

  it('the person is deleted', async () => {
    const w = await watched('erin@corp.com');
    await expectRevoked(w, () => scimOk(`/Users/${ids.get('erin@corp.com')}`, 'DELETE'));
  });

  it('the person is removed from the group that granted the role', async () => {
    const w = await watched('frank@corp.com');
    await expectRevoked(w, () =>
      scimOk(`/Groups/${stack.groupId('analysts')}`, 'PATCH', {
        schemas: [PATCH_URN],
        Operations: [{ op: 'remove', path: `members[value eq "${ids.get('frank@corp.com')}"]` }],
      }),
    );
  });

  it('the granting group is deleted (a role that logs in upstream with a client certificate)', async () => {
    const w = await watched('olga@corp.com');
    expect((await w.client.query('select current_user as u')).rows).toEqual([{ u: stack.roles.certRole }]);
    await expectRevoked(w, () => scimOk(`/Groups/${stack.groupId('ops')}`, 'DELETE'));
  });

  it('ends every session of the person at once, and only theirs', async () => {
    const a = await watched('hank@corp.com');
    const b = await watched('hank@corp.com');
    const other = await watched('ivan@corp.com');
    const before = await revocationsTotal();
    const t0 = performance.now();
    await scimOk(`/Users/${ids.get('hank@corp.com')}`, 'PATCH', { schemas: [PATCH_URN], Operations: [{ op: 'replace', path: 'active', value: false }] });
    for (const w of [a, b]) {
      const { err, at } = await w.fatal;
      expect(err).toMatchObject({ code: '57P01', message: 'access revoked' });
      expect(at - t0).toBeLessThan(1_000);
    }
    expect(await revocationsTotal()).toBe(before + 2);
    expect((await other.client.query('select 1 as ok')).rows).toEqual([{ ok: 1 }]);
    await other.client.end();
  });

  it('a session running a query is ended too, and its upstream backend goes away', async () => {
    const client = await connect('ivan@corp.com', 'ivan@corp.com', 'revoked-busy');
    const sleeping = client.query('select pg_sleep(30)').then(() => undefined, (err: unknown) => err);
    await waitFor(async () => (await superuserQuery(`select 1 from pg_stat_activity where application_name = 'revoked-busy' and query like '%pg_sleep%'`)).rowCount === 1, 5_000);
    const t0 = performance.now();
    await scimOk(`/Users/${ids.get('ivan@corp.com')}`, 'DELETE');
    // No server bytes were in flight during pg_sleep, so the FATAL could be written in between.
    expect(await sleeping).toMatchObject({ code: '57P01', message: 'access revoked' });
    expect(performance.now() - t0).toBeLessThan(1_000);
    await waitFor(async () => (await superuserQuery(`select 1 from pg_stat_activity where application_name = 'revoked-busy'`)).rowCount === 0, 5_000);
  });

  it('a session in the middle of a large result is cut off, and its upstream backend goes away', async () => {
    const client = await connect('judy@corp.com', 'judy@corp.com', 'revoked-streaming');
    const query = new pg.Query('select generate_series(1, 5e6)');
    let rows = 0;
    const outcome = new Promise<unknown>((resolve) => {
      query.on('error', resolve);
      query.on('end', () => resolve(undefined));
    });
    const streaming = new Promise<void>((resolve) => query.on('row', () => ++rows === 1000 && resolve()));
    void client.query(query);
    await streaming;
    // The client stops reading, so the backend blocks writing (ClientWrite) behind the proxy.
    const socket = (client as unknown as { connection: { stream: import('node:net').Socket } }).connection.stream;
    socket.pause();
    await waitFor(async () => (await superuserQuery(`select 1 from pg_stat_activity where application_name = 'revoked-streaming' and wait_event = 'ClientWrite'`)).rowCount === 1, 5_000);
    const t0 = performance.now();
    await scimOk(`/Users/${ids.get('judy@corp.com')}`, 'DELETE');
    socket.resume();
    // Mid-message the FATAL cannot be written (it would corrupt the stream): the client sees either
    // the FATAL between two rows or the connection closing; never the end of the result.
    const err = await outcome;
    expect(err).toBeInstanceOf(Error);
    expect(rows).toBeLessThan(5e6);
    expect(performance.now() - t0).toBeLessThan(1_000);
    await waitFor(async () => (await superuserQuery(`select 1 from pg_stat_activity where application_name = 'revoked-streaming'`)).rowCount === 0, 5_000);
    const gone = performance.now() - t0;
    console.info(`streaming session revoked: backend gone ${gone.toFixed(0)} ms after the SCIM request`);
    // Promptly, not after the proxy's 2 s close timer.
    expect(gone).toBeLessThan(1_500);
  });
});

describe('a directory change that leaves access in place', () => {
  it('a person removed from one granting group but still in another keeps the session', async () => {
    const w = await watched('gina@corp.com');
    const before = await revocationsTotal();
    await scimOk(`/Groups/${stack.groupId('analysts')}`, 'PATCH', {
      schemas: [PATCH_URN],
      Operations: [{ op: 'remove', path: `members[value eq "${ids.get('gina@corp.com')}"]` }],
    });
    // engineering grants the same least privileged role: the session holds.
    await new Promise((r) => setTimeout(r, 300));
    expect((await w.client.query('select current_user as u')).rows).toEqual([{ u: stack.roles.reader }]);
    expect(stack.server.registry.get(w.sessionId)).toBeDefined();
    expect(await revocationsTotal()).toBe(before);
    await w.client.end();
  });

  it('the bystander session lived through every revocation above', async () => {
    expect((await bystander.query('select current_user as u')).rows).toEqual([{ u: stack.roles.reader }]);
    console.info(`revocation latency (SCIM request sent -> client read FATAL), ms: ${latencies.map((l) => l.toFixed(1)).join(', ')}`);
  });
});

