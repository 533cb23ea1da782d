// upstream.pool: a client's goodbye on an idle session returns its upstream connection, reset with
// DISCARD ALL, for the next login with the same role, database and settings.
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { superuserQuery } from '../helpers/postgres.js';
import { startStack, type Stack } from '../helpers/stack.js';

let stack: Stack;
beforeAll(async () => {
  stack = await startStack({ config: { upstream: { pool: { idle: 4, idleTimeout: '3s' } } } });
  await stack.provision('alice@corp.com', ['analysts']);
  await stack.provision('bob@corp.com', ['engineering']);
});
afterAll(async () => {
  await stack?.close();
});


async function backendPid(c: pg.Client): Promise<number> {
  return (await c.query<{ pid: number }>('select pg_backend_pid() as pid')).rows[0]!.pid;
}

const settle = () => new Promise((r) => setTimeout(r, 300));

describe('upstream connection pool', () => {
  it('reuses the backend for the next login with the same role, with all session state reset', async () => {
    const a = await stack.connect('alice@corp.com');
    const pid = await backendPid(a);
    await a.query('create temp table scratch (x int)');
    await a.query("set statement_timeout = '1234ms'");
    await a.query('prepare leftover as select 1');
    await a.query('listen channel_of_alice');
    await a.query('select pg_advisory_lock(4242)');
    await a.end();
    await settle();

    // bob's default role is the same reader role: he gets alice's former backend, and none of her state.
    const b = await stack.connect('bob@corp.com');
    expect(await backendPid(b)).toBe(pid);
    expect((await b.query('select current_user as u')).rows[0].u).toBe(stack.roles.reader);
    await expect(b.query('select * from scratch')).rejects.toMatchObject({ code: '42P01' });
    expect((await b.query('show statement_timeout')).rows[0].statement_timeout).toBe('0');
    await expect(b.query('execute leftover')).rejects.toMatchObject({ code: '26000' });
    expect((await b.query('select count(*)::int as n from pg_listening_channels()')).rows[0].n).toBe(0);
    const locks = await superuserQuery<{ n: number }>("select count(*)::int as n from pg_locks where locktype = 'advisory' and pid = $1", [pid]);
    expect(locks.rows[0]!.n).toBe(0);
    await b.end();
  });

  it('never shares a backend across roles, nor keeps one left inside a transaction', async () => {
    const reader = await stack.connect('bob@corp.com');
    const readerPid = await backendPid(reader);
    await reader.end();
    await settle();
    const writer = await stack.connect('bob@corp.com', { user: stack.roles.writer });
    expect(await backendPid(writer)).not.toBe(readerPid);
    expect((await writer.query('select current_user as u')).rows[0].u).toBe(stack.roles.writer);
    await writer.query('begin');
    const inTx = await backendPid(writer);
    await writer.end(); // Terminate inside a transaction: relayed, not pooled
    await settle();
    const again = await stack.connect('bob@corp.com', { user: stack.roles.writer });
    expect(await backendPid(again)).not.toBe(inTx);
    await again.end();
    await settle();
    const gone = await superuserQuery<{ n: number }>('select count(*)::int as n from pg_stat_activity where pid = $1', [inTx]);
    expect(gone.rows[0]!.n).toBe(0);
  });

  it('retires a pooled backend that the server ends, and closes idle ones after idleTimeout', async () => {
    const a = await stack.connect('alice@corp.com');
    const pid = await backendPid(a);
    await a.end();
    await settle();
    await superuserQuery('select pg_terminate_backend($1)', [pid]);
    await settle();
    const b = await stack.connect('alice@corp.com');
    expect(await backendPid(b)).not.toBe(pid);
    const second = await backendPid(b);
    await b.end();
    await settle();
    expect((await superuserQuery<{ n: number }>('select count(*)::int as n from pg_stat_activity where pid = $1', [second])).rows[0]!.n).toBe(1);
    await new Promise((r) => setTimeout(r, 3_500));
    expect((await superuserQuery<{ n: number }>('select count(*)::int as n from pg_stat_activity where pid = $1', [second])).rows[0]!.n).toBe(0);
    const ends = stack.auditEvents().filter((e) => e.type === 'session.end');
    expect(ends.every((e) => e.reason === 'client_exit')).toBe(true);
  });
});
