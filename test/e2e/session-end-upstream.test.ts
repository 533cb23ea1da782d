// Ends the client or the upstream causes (docs/design.md §2 step 9): the upstream backend terminated
// under a live session (the client reads PostgreSQL's own 57P01), and the ways a client leaves, each
// audited once with the right reason and leaving no backend behind.
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import { promisify } from 'node:util';
import pg from 'pg';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { superuserQuery } from '../helpers/postgres.js';
import { startStack, type Stack } from '../helpers/stack.js';
import { waitFor } from '../helpers/wait.js';

const run = promisify(execFile);
let stack: Stack;

beforeAll(async () => {
  stack = await startStack();
  await stack.provision('alice@corp.com', ['analysts']);
  await stack.provision('bob@corp.com', ['engineering']);
});
afterAll(async () => {
  await stack?.close();
});


function endOf(app: string): Record<string, unknown>[] {
  const sessions = new Set(stack.auditEvents().filter((e) => e.type === 'session.start' && e.application === app).map((e) => e.session));
  return stack.auditEvents().filter((e) => e.type === 'session.end' && sessions.has(e.session));
}

async function backends(app: string): Promise<number> {
  const { rows } = await superuserQuery<{ n: number }>(`select count(*)::int as n from pg_stat_activity where application_name = $1`, [app]);
  return rows[0]!.n;
}

/** Backends of `app` idle after the pool's reset: the connections the pool holds. */
async function resetBackends(app: string): Promise<number[]> {
  const { rows } = await superuserQuery<{ pid: number }>(
    `select pid from pg_stat_activity where application_name = $1 and state = 'idle' and query = 'DISCARD ALL'`,
    [app],
  );
  return rows.map((r) => r.pid);
}

describe('the upstream backend is terminated', () => {
  it('mid-query: the client gets PostgreSQL 57P01, the session ends upstream_closed, others go on', async () => {
    const victim = await stack.connect('alice@corp.com', { app: 'victim-busy' });
    const bystander = await stack.connect('bob@corp.com', { app: 'bystander' });
    const { rows } = await victim.query<{ pid: number }>('select pg_backend_pid() as pid');
    // Caught at once: the rejection may come while the test still awaits the terminate call.
    const sleeping = victim.query('select pg_sleep(30)').then(() => undefined, (err: unknown) => err);
    await waitFor(async () => (await superuserQuery(`select 1 from pg_stat_activity where pid = $1 and query like '%pg_sleep%'`, [rows[0]!.pid])).rowCount === 1, 5_000);
    await superuserQuery('select pg_terminate_backend($1)', [rows[0]!.pid]);
    expect(await sleeping).toMatchObject({ code: '57P01', message: expect.stringMatching(/terminating connection due to administrator command/) });
    await waitFor(() => endOf('victim-busy').length === 1, 2_000);
    expect(endOf('victim-busy')[0]).toMatchObject({ reason: 'upstream_closed' });
    expect((await bystander.query('select 1 as one')).rows).toEqual([{ one: 1 }]);
    // A new session of the same person works.
    const again = await stack.connect('alice@corp.com', { app: 'victim-again' });
    expect((await again.query('select current_user as u')).rows).toEqual([{ u: stack.roles.reader }]);
    await again.end();
    await bystander.end();
  });

  it('while idle: the unsolicited FATAL reaches the client, whose next query fails', async () => {
    const victim = await stack.connect('alice@corp.com', { app: 'victim-idle' });
    const { rows } = await victim.query<{ pid: number }>('select pg_backend_pid() as pid');
    const fatal = new Promise<Error & { code?: string }>((resolve) => victim.once('error', resolve));
    await superuserQuery('select pg_terminate_backend($1)', [rows[0]!.pid]);
    expect(await fatal).toMatchObject({ code: '57P01' });
    await expect(victim.query('select 1')).rejects.toThrow();
    await waitFor(() => endOf('victim-idle').length === 1, 2_000);
    expect(endOf('victim-idle')[0]).toMatchObject({ reason: 'upstream_closed' });
    expect(stack.server.registry.list().some((s) => s.person === 'alice@corp.com')).toBe(false);
  });
});

describe('the client leaves', () => {
  it('Terminate from pg, psql and postgres.js, ten times each: always client_exit, no backend left but the pool\'s', async () => {
    const ca = readFileSync(stack.caCertPath, 'utf8');
    for (let i = 0; i < 10; i++) {
      const c = await stack.connect('alice@corp.com', { app: 'bye-pg' });
      await c.query('select 1');
      await c.end();
      await run('psql', [`host=localhost port=${stack.proxyPort} dbname=${stack.db.name} user=alice@corp.com sslmode=verify-full sslrootcert=${stack.caCertPath} application_name=bye-psql`, '-XAtc', 'select 1'], {
        env: { ...process.env, PGPASSWORD: await stack.tokenFor('alice@corp.com') },
      });
      const sql = postgres({ host: 'localhost', port: stack.proxyPort, user: 'alice@corp.com', pass: await stack.tokenFor('alice@corp.com'), database: stack.db.name, ssl: { ca, servername: 'localhost' }, connection: { application_name: 'bye-js' }, max: 1 });
      await sql`select 1`;
      await sql.end();
    }
    await waitFor(() => ['bye-pg', 'bye-psql', 'bye-js'].every((app) => endOf(app).length === 10), 5_000);
    for (const app of ['bye-pg', 'bye-psql', 'bye-js']) {
      // Regression: the server's close after Terminate could win the race and be audited upstream_closed.
      expect(endOf(app).map((e) => e.reason)).toEqual(Array(10).fill('client_exit'));
      // The pool is on by default: each app's ten sessions ran on one reused backend, which the
      // pool keeps after its confirmed reset (its last statement is the pool's DISCARD ALL); every
      // other backend is gone.
      await waitFor(async () => (await resetBackends(app)).length === (await backends(app)), 5_000);
      expect(await backends(app)).toBeLessThanOrEqual(1);
    }
  });

  it('closing the socket without Terminate, idle: client_exit and the backend goes', async () => {
    const c = await stack.connect('alice@corp.com', { app: 'no-goodbye' });
    await c.query('select 1');
    (c as unknown as { connection: { stream: Socket } }).connection.stream.end();
    await waitFor(() => endOf('no-goodbye').length === 1, 2_000);
    expect(endOf('no-goodbye')[0]).toMatchObject({ reason: 'client_exit', statements: 1 });
    await waitFor(async () => (await backends('no-goodbye')) === 0, 5_000);
  });

  it('every session that ended was audited exactly once', async () => {
    await stack.server.audit.flushed();
    const starts = stack.auditEvents().filter((e) => e.type === 'session.start').map((e) => e.session);
    const ends = stack.auditEvents().filter((e) => e.type === 'session.end').map((e) => e.session);
    expect(new Set(ends).size).toBe(ends.length);
    expect([...ends].sort()).toEqual([...starts].sort());
    expect(stack.server.registry.size).toBe(0);
  });
});
