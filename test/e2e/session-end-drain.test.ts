// Shutdown drain (docs/design.md §3 `serve`: SIGTERM drains): `close()` stops accepting at once, lets
// sessions finish for proxy.drainTimeout (1 s in the test stack), then ends the rest with FATAL 57P01
// "server shutting down". Runs last in its own stack, since it closes the server.
import { connect as tcpConnect } from 'node:net';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { superuserQuery } from '../helpers/postgres.js';
import { startStack, type Stack } from '../helpers/stack.js';
import { waitFor } from '../helpers/wait.js';

let stack: Stack;

beforeAll(async () => {
  stack = await startStack();
  await stack.provision('alice@corp.com', ['analysts']);
  await stack.provision('bob@corp.com', ['engineering']);
});
afterAll(async () => {
  await stack?.close();
});

type Fatal = Promise<{ err: Error & { code?: string }; at: number }>;

async function open(email: string, app: string): Promise<{ client: pg.Client; sessionId: string; fatal: Fatal }> {
  const client = new pg.Client(stack.pgConfig(email, await stack.tokenFor(email), { application_name: app }));
  let resolveFatal!: (v: { err: Error & { code?: string }; at: number }) => void;
  const fatal: Fatal = new Promise((resolve) => (resolveFatal = resolve));
  client.on('error', (err) => resolveFatal({ err, at: Date.now() }));
  await client.connect();
  await client.query('select 1');
  const port = (client as unknown as { connection: { stream: { localPort: number } } }).connection.stream.localPort;
  const session = stack.server.registry.list().find((s) => s.client.port === port);
  if (session === undefined) throw new Error('no registry entry');
  return { client, sessionId: session.id, fatal };
}

/** Resolves with the socket error of a plain TCP connect to the proxy port, or 'connected'. */
function tryConnect(): Promise<string> {
  return new Promise((resolve) => {
    const s = tcpConnect({ host: '127.0.0.1', port: stack.proxyPort });
    s.once('connect', () => {
      s.destroy();
      resolve('connected');
    });
    s.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? 'error'));
  });
}

function endReason(sessionId: string): unknown {
  return stack.auditEvents().find((e) => e.type === 'session.end' && e.session === sessionId)?.reason;
}

describe('drain on close()', () => {
  it('refuses new connections at once, lets a leaving session go, then ends the rest with 57P01', async () => {
    const idle = await open('alice@corp.com', 'drain-idle');
    const busy = await open('bob@corp.com', 'drain-busy');
    const leaving = await open('alice@corp.com', 'drain-leaving');
    const sleeping = busy.client.query('select pg_sleep(30)').then(() => undefined, (err: unknown) => err);
    await waitFor(async () => (await superuserQuery(`select 1 from pg_stat_activity where application_name = 'drain-busy' and query like '%pg_sleep%'`)).rowCount === 1);

    const t0 = Date.now();
    const closed = stack.server.close();
    expect(await tryConnect()).toBe('ECONNREFUSED');
    // A session that finishes on its own during the drain ends normally, without a FATAL.
    await new Promise((r) => setTimeout(r, 200));
    expect((await leaving.client.query('select 1 as ok')).rows).toEqual([{ ok: 1 }]);
    await leaving.client.end();

    const { err, at } = await idle.fatal;
    expect(err).toMatchObject({ code: '57P01', severity: 'FATAL', message: 'server shutting down' });
    // Not before the drain timeout (1 s): sessions get their chance to finish.
    expect(at - t0).toBeGreaterThanOrEqual(950);
    expect(await sleeping).toMatchObject({ code: '57P01', message: 'server shutting down' });
    await closed;
    expect(Date.now() - t0).toBeLessThan(5_000);

    expect(endReason(idle.sessionId)).toBe('shutdown');
    expect(endReason(busy.sessionId)).toBe('shutdown');
    expect(endReason(leaving.sessionId)).toBe('client_exit');
    expect(stack.server.registry.size).toBe(0);
    expect((await stack.server.metrics.proxy.sessionsActive.get()).values[0]?.value).toBe(0);
    // The running statement was cancelled and the backends left with the sessions.
    await waitFor(async () => (await superuserQuery(`select 1 from pg_stat_activity where application_name like 'drain-%'`)).rowCount === 0);
    // close() is idempotent and the listener stays closed.
    await stack.server.close();
    expect(await tryConnect()).toBe('ECONNREFUSED');
  });
});

