// The relay carries every protocol feature unchanged (docs/design.md §2 step 8): extended protocol with
// binary parameters and results, postgres.js pipelining, LISTEN/NOTIFY between two proxied sessions,
// errors inside a transaction, and the registry's view of live sessions.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import pg from 'pg';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { superuserQuery } from '../helpers/postgres.js';
import { startStack, type Stack } from '../helpers/stack.js';
import { waitFor } from '../helpers/wait.js';

let stack: Stack;
let ca: string;
const open: { end(): Promise<unknown> }[] = [];

beforeAll(async () => {
  stack = await startStack();
  ca = readFileSync(stack.caCertPath, 'utf8');
  await stack.provision('alice@corp.com', ['analysts']);
  await stack.provision('bob@corp.com', ['engineering']);
  await stack.provision('carol@corp.com', ['analysts']);
  // A table the writer owns for binary round trips; the reader may read it.
  const bob = await connect('bob@corp.com', stack.roles.writer);
  await bob.query('create table blobs (id int8 primary key, data bytea not null, amounts numeric[] not null)');
  await bob.query(`grant select on blobs to "${stack.roles.reader}"`);
  await bob.end();
});
afterAll(async () => {
  for (const c of open) await c.end().catch(() => undefined);
  await stack?.close();
});

// `binary` (results in binary format) is a pg client option its type definitions leave out.
type ClientExtra = Partial<pg.ClientConfig> & { binary?: boolean };

async function connect(email: string, user = email, extra: ClientExtra = {}): Promise<pg.Client> {
  const client = new pg.Client(stack.pgConfig(user, await stack.tokenFor(email), extra));
  client.on('error', () => undefined);
  await client.connect();
  open.push(client);
  return client;
}

async function sqlFor(email: string, user = email, extra: postgres.Options<Record<string, postgres.PostgresType>> = {}): Promise<postgres.Sql> {
  const sql = postgres({
    host: 'localhost',
    port: stack.proxyPort,
    user,
    pass: await stack.tokenFor(email),
    database: stack.db.name,
    ssl: { ca, servername: 'localhost' },
    max: 1,
    onnotice: () => undefined,
    ...extra,
  });
  open.push({ end: () => sql.end({ timeout: 1 }) });
  return sql;
}

describe('extended protocol', () => {
  it('pg with binary results and binary (Buffer) parameters round-trips bytea, int8, float8 and text exactly', async () => {
    const client = await connect('bob@corp.com', stack.roles.writer, { binary: true });
    // Every byte value, including NUL and 0xff, in a parameter pg sends in binary format.
    const data = Buffer.from(Array.from({ length: 4096 }, (_, i) => i % 256));
    await client.query('insert into blobs (id, data, amounts) values ($1, $2, $3)', ['9007199254740993', data, '{1.5,-2.25,1e20}']);
    // pg-protocol decodes every field as UTF-8 text, so raw bytea is compared by digest on the server
    // and the numbers are ones whose binary forms are ASCII bytes (2.5 = 0x4004000000000000); the
    // columns come back in PostgreSQL's binary format and are decoded by pg-types.
    const { rows, fields } = await client.query<{ id: unknown; digest: string; len: unknown; t: string; f: number; b: boolean }>(
      'select id, md5(data) as digest, length(data) as len, $1::text as t, $2::float8 as f, $3::bool as b from blobs where id = $4',
      ['zażółć ✓', 2.5, true, '9007199254740993'],
    );
    expect(fields.every((f) => f.format === 'binary')).toBe(true);
    expect(rows).toHaveLength(1);
    const row = rows[0]!;
    // Binary int8 comes back as the exact decimal string: 2^53 + 1 is not a float64.
    expect(String(row.id)).toBe('9007199254740993');
    expect(row.digest).toBe(createHash('md5').update(data).digest('hex'));
    expect(Number(row.len)).toBe(4096);
    expect(row.t).toBe('zażółć ✓');
    expect(row.f).toBe(2.5);
    expect(row.b).toBe(true);
    await client.end();
  });

  it('postgres.js: bytea, int8 and numeric arrays through the unnamed and prepared statements', async () => {
    const sql = await sqlFor('bob@corp.com', stack.roles.writer, { prepare: true });
    const data = Buffer.from(Array.from({ length: 70_000 }, (_, i) => (i * 7) % 256));
    await sql`insert into blobs (id, data, amounts) values (${'42'}::int8, ${data}, ${['0.1', '12345678901234567890.5', '-3']}::numeric[])`;
    const [row] = await sql<{ id: bigint; data: Buffer; amounts: string[]; big: string }[]>`
      select id, data, amounts, ${'123456789012345678'}::int8 * 10 as big from blobs where id = ${'42'}::int8`;
    expect(row).toBeDefined();
    expect(BigInt(row!.id)).toBe(42n);
    expect(Buffer.from(row!.data).equals(data)).toBe(true);
    expect(row!.amounts.map(String)).toEqual(['0.1', '12345678901234567890.5', '-3']);
    expect(String(row!.big)).toBe('1234567890123456780');
    await sql.end({ timeout: 1 });
  });

  it('postgres.js pipelines 300 queries in parallel on one connection; each gets its own answer', async () => {
    const sql = await sqlFor('alice@corp.com');
    const n = 300;
    const results = await Promise.all(
      Array.from({ length: n }, (_, i) =>
        sql<{ i: string; b: Buffer; s: number }[]>`select ${String(i)}::int8 as i, ${Buffer.alloc(i % 50, i % 256)}::bytea as b, ${i}::int4 * 2 as s`,
      ),
    );
    results.forEach((rows, i) => {
      const r = rows[0]!;
      expect(String(r.i)).toBe(String(i));
      expect(Buffer.from(r.b).equals(Buffer.alloc(i % 50, i % 256))).toBe(true);
      expect(r.s).toBe(i * 2);
    });
    // One connection (max: 1): every query went through one proxied session and one backend.
    const pids = await Promise.all(Array.from({ length: 20 }, () => sql<{ pid: number }[]>`select pg_backend_pid() as pid`));
    expect(new Set(pids.map((r) => r[0]?.pid)).size).toBe(1);
    await sql.end({ timeout: 1 });
  });

  it('a pipelined error fails only its own query; the rest of the pipeline and the session go on', async () => {
    const sql = await sqlFor('alice@corp.com');
    const settled = await Promise.allSettled([
      sql`select 1 as a`,
      sql`select * from no_such_table`,
      sql`select 3 as c`,
    ]);
    expect(settled[0]).toMatchObject({ status: 'fulfilled', value: [{ a: 1 }] });
    expect(settled[1]).toMatchObject({ status: 'rejected', reason: { code: '42P01' } });
    expect(settled[2]).toMatchObject({ status: 'fulfilled', value: [{ c: 3 }] });
    expect(await sql`select 'still here' as s`).toEqual([{ s: 'still here' }]);
    await sql.end({ timeout: 1 });
  });
});

describe('LISTEN/NOTIFY', () => {
  it('a notification from one proxied session reaches a listener in another (different person and role)', async () => {
    const listener = await connect('alice@corp.com');
    const notifier = await connect('bob@corp.com', stack.roles.writer);
    await listener.query('listen rolegate_channel');
    const received = new Promise<pg.Notification>((resolve) => listener.on('notification', resolve));
    await notifier.query(`select pg_notify('rolegate_channel', $1)`, ['payload ✓ 1']);
    const note = await withTimeout(received, 5_000, 'notification');
    expect(note.channel).toBe('rolegate_channel');
    expect(note.payload).toBe('payload ✓ 1');
    // Asynchronous messages between queries do not confuse the session.
    expect((await listener.query('select 2 as two')).rows).toEqual([{ two: 2 }]);
    await listener.end();
    await notifier.end();
  });

  it('postgres.js listen() gets every notification of a burst, in order', async () => {
    const sql = await sqlFor('alice@corp.com');
    const seen: string[] = [];
    const all = new Promise<void>((resolve) => {
      void sql.listen('burst', (payload) => {
        seen.push(payload);
        if (seen.length === 50) resolve();
      });
    });
    // listen() connects on its own; wait until its LISTEN is registered upstream.
    // listen() opens its own connection; wait until its LISTEN ran upstream (only a superuser sees
    // another role's query text in pg_stat_activity).
    await waitFor(async () => {
      const { rows } = await superuserQuery<{ n: number }>(`select count(*)::int as n from pg_stat_activity where datname = $1 and query ilike 'listen%burst%'`, [stack.db.name]);
      return rows[0]!.n > 0;
    }, 5_000);
    const notifier = await connect('bob@corp.com', stack.roles.writer);
    await notifier.query('begin');
    for (let i = 0; i < 50; i++) await notifier.query(`select pg_notify('burst', $1)`, [String(i)]);
    await notifier.query('commit');
    await withTimeout(all, 5_000, 'burst');
    expect(seen).toEqual(Array.from({ length: 50 }, (_, i) => String(i)));
    await notifier.end();
    await sql.end({ timeout: 1 });
  });
});

describe('errors inside a transaction', () => {
  it('42P01 inside BEGIN, then 25P02 until ROLLBACK, then the session works normally', async () => {
    const client = await connect('alice@corp.com');
    await client.query('begin');
    await expect(client.query('select * from missing_table')).rejects.toMatchObject({ code: '42P01' });
    await expect(client.query('select 1')).rejects.toMatchObject({ code: '25P02' });
    // Extended protocol in the failed transaction too.
    await expect(client.query('select $1::int as x', [1])).rejects.toMatchObject({ code: '25P02' });
    await client.query('rollback');
    expect((await client.query('select name from items order by id')).rows).toEqual([{ name: 'alpha' }, { name: 'beta' }]);
    await client.end();
  });

  it('a permission error (42501) of the least privileged role leaves the session usable', async () => {
    const client = await connect('alice@corp.com');
    await expect(client.query(`insert into items (name) values ('nope')`)).rejects.toMatchObject({ code: '42501' });
    await client.query('begin');
    await client.query('savepoint s');
    await expect(client.query('delete from items')).rejects.toMatchObject({ code: '42501' });
    await client.query('rollback to savepoint s');
    expect((await client.query('select count(*)::int as n from items')).rows).toEqual([{ n: 2 }]);
    await client.query('commit');
    await client.end();
  });
});

describe('the registry', () => {
  it('lists live sessions with person, role, database and a statement count that follows the client', async () => {
    const carol = await connect('carol@corp.com');
    const bob = await connect('bob@corp.com', stack.roles.writer);
    for (let i = 0; i < 3; i++) await carol.query('select 1');
    await carol.query('select $1::int', [1]);
    // A session is found by its client port: other sessions of this file may still be closing.
    const c = stack.server.registry.list().find((s) => s.client.port === localPort(carol));
    const b = stack.server.registry.list().find((s) => s.client.port === localPort(bob));
    expect(c).toMatchObject({ person: 'carol@corp.com', role: stack.roles.reader, database: stack.db.name, statements: 4 });
    expect(b).toMatchObject({ person: 'bob@corp.com', role: stack.roles.writer, database: stack.db.name, statements: 0 });
    expect(c!.client.address).toMatch(/127\.0\.0\.1/);
    expect(Date.parse(c!.started)).toBeLessThanOrEqual(Date.now());
    expect(c!.instance).toMatch(/^test-/);
    expect(stack.server.registry.get(c!.id)).toBeDefined();
    await carol.end();
    await waitFor(() => stack.server.registry.get(c!.id) === undefined, 2_000);
    expect(stack.server.registry.get(b!.id)).toBeDefined();
    await bob.end();
  });
});

function localPort(client: pg.Client): number {
  return (client as unknown as { connection: { stream: { localPort: number } } }).connection.stream.localPort;
}


function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  return Promise.race([p, new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`${what} timed out`)), ms))]);
}
