// Session limits (docs/design.md §2 step 9, §4 session.*): `session.idleTimeout` ends a session that sat
// idle, `session.maxDuration` one that lived too long, each with FATAL 57P01 and its own audit reason.
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startStack, type Stack } from '../helpers/stack.js';

const IDLE_MS = 1_500;
const MAX_MS = 6_000;
let stack: Stack;

beforeAll(async () => {
  stack = await startStack({ config: { session: { idleTimeout: `${IDLE_MS}ms`, maxDuration: `${MAX_MS}ms` } } });
  await stack.provision('alice@corp.com', ['analysts']);
});
afterAll(async () => {
  await stack?.close();
});

interface Watched {
  client: pg.Client;
  connectedAt: number;
  sessionId: string;
  fatal: Promise<{ err: Error & { code?: string }; at: number }>;
}

async function watched(): Promise<Watched> {
  const client = new pg.Client(stack.pgConfig('alice@corp.com', await stack.tokenFor('alice@corp.com')));
  let resolveFatal!: (v: { err: Error & { code?: string }; at: number }) => void;
  const fatal = new Promise<{ err: Error & { code?: string }; at: number }>((resolve) => (resolveFatal = resolve));
  client.on('error', (err) => resolveFatal({ err, at: Date.now() }));
  await client.connect();
  const connectedAt = Date.now();
  const port = (client as unknown as { connection: { stream: { localPort: number } } }).connection.stream.localPort;
  const session = stack.server.registry.list().find((s) => s.client.port === port);
  if (session === undefined) throw new Error('no registry entry');
  return { client, connectedAt, sessionId: session.id, fatal };
}

/** The session's audited end reason, once what was emitted is on disk (the audit file is written in batches). */
async function endReason(sessionId: string): Promise<unknown> {
  await stack.server.audit.flushed();
  return stack.auditEvents().find((e) => e.type === 'session.end' && e.session === sessionId)?.reason;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('session.idleTimeout', () => {
  it('ends a session that sent nothing for the timeout with 57P01', async () => {
    const w = await watched();
    const { err, at } = await w.fatal;
    expect(err).toMatchObject({ code: '57P01', severity: 'FATAL', message: 'session idle for too long' });
    const after = at - w.connectedAt;
    expect(after).toBeGreaterThanOrEqual(IDLE_MS - 100);
    expect(after).toBeLessThan(IDLE_MS + 1_500);
    await expect(w.client.query('select 1')).rejects.toThrow();
    expect(await endReason(w.sessionId)).toBe('idle_timeout');
  });

  it('activity keeps the session; idle starts again after the last statement', async () => {
    const w = await watched();
    let ended = false;
    void w.fatal.then(() => (ended = true));
    for (let i = 0; i < 4; i++) {
      await sleep(IDLE_MS / 3);
      await w.client.query('select 1');
    }
    expect(ended).toBe(false);
    const lastAt = Date.now();
    const { err, at } = await w.fatal;
    expect(err).toMatchObject({ code: '57P01', message: 'session idle for too long' });
    // The idle check runs at most once a second, so the end comes up to a second after the timeout.
    expect(at - lastAt).toBeGreaterThanOrEqual(IDLE_MS - 100);
    expect(at - lastAt).toBeLessThan(IDLE_MS + 1_500);
    expect(await endReason(w.sessionId)).toBe('idle_timeout');
  });

  it('a statement running longer than the timeout is not idleness, and idle counts from its result', async () => {
    // Regression: idle time was counted from the client's last bytes, so a session that had just
    // received the result of a long statement was ended as idle within a second.
    const w = await watched();
    let ended = false;
    void w.fatal.then(() => (ended = true));
    const { rows } = await w.client.query<{ done: boolean }>(`select true as done from pg_sleep(${(IDLE_MS + 600) / 1000})`);
    expect(rows).toEqual([{ done: true }]);
    await sleep(IDLE_MS - 500);
    expect(ended).toBe(false);
    expect((await w.client.query('select 2 as two')).rows).toEqual([{ two: 2 }]);
    await w.client.end();
    expect((await endReason(w.sessionId)) ?? 'client_exit').toBe('client_exit');
  });
});

describe('session.maxDuration', () => {
  it('ends a busy session at the maximum duration with 57P01, however active it is', async () => {
    const w = await watched();
    let ended = false;
    void w.fatal.then(() => (ended = true));
    while (!ended && Date.now() - w.connectedAt < MAX_MS + 2_000) {
      await w.client.query('select 1').catch(() => undefined);
      await sleep(200);
    }
    const { err, at } = await w.fatal;
    expect(err).toMatchObject({ code: '57P01', severity: 'FATAL', message: 'session exceeded its maximum duration' });
    const after = at - w.connectedAt;
    expect(after).toBeGreaterThanOrEqual(MAX_MS - 100);
    expect(after).toBeLessThan(MAX_MS + 1_000);
    expect(await endReason(w.sessionId)).toBe('max_duration');
    expect(stack.server.registry.get(w.sessionId)).toBeUndefined();
  });
});
