// `statement` audit events from real clients through the proxy (docs/design.md §2 step 8, §6): simple
// and extended protocol, postgres.js pipelines (with a failure in the middle), an extended batch that
// fails midway (the rest skipped until Sync, as pgJDBC batches and psycopg pipelines send them),
// FunctionCall, COPY both ways, redaction, and a 1 MB query kept to its bounded prefix.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import pg from 'pg';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startStack, type Stack } from '../helpers/stack.js';
import { waitFor } from '../helpers/wait.js';
import { RawClient, SSL_REQUEST, passwordFrame, queryFrame, startupFrame, typedFrame, TERMINATE } from '../e2e/login-wire.js';

let stack: Stack;
let ca: string;

beforeAll(async () => {
  stack = await startStack({ config: { audit: { parameters: true } } });
  ca = readFileSync(stack.caCertPath, 'utf8');
  await stack.provision('alice@corp.com', ['analysts']);
  await stack.provision('bob@corp.com', ['engineering']);
  const bob = await stack.connect('bob@corp.com', { user: stack.roles.writer });
  await bob.query('create table audited (id int primary key, label text)');
  await bob.end();
});
afterAll(async () => {
  await stack?.close();
});

type Ev = Record<string, any>;

/** The statement events of the session whose session.start has `application_name` = app, once it ended. */
async function statementsOf(app: string): Promise<Ev[]> {
  let session: unknown;
  await waitFor(() => {
    const events = stack.auditEvents();
    session = events.find((e) => e.type === 'session.start' && e.application === app)?.session;
    return session !== undefined && events.some((e) => e.type === 'session.end' && e.session === session);
  }, 5_000, `session ${app} in the audit log`);
  return stack.auditEvents().filter((e) => e.type === 'statement' && e.session === session);
}

async function sqlFor(email: string, app: string, user = email): Promise<postgres.Sql> {
  return postgres({
    host: 'localhost', port: stack.proxyPort, user, pass: await stack.tokenFor(email), database: stack.db.name,
    ssl: { ca, servername: 'localhost' }, max: 1, onnotice: () => undefined, connection: { application_name: app },
  });
}

const int16 = (n: number): Buffer => { const b = Buffer.alloc(2); b.writeInt16BE(n); return b; };
const int32 = (n: number): Buffer => { const b = Buffer.alloc(4); b.writeInt32BE(n); return b; };
const cstr = (s: string): Buffer => Buffer.from(`${s}\0`, 'utf8');
const parse = (name: string, sql: string): Buffer => typedFrame('P', Buffer.concat([cstr(name), cstr(sql), int16(0)]));
const bind = (portal: string, stmt: string, values: string[]): Buffer =>
  typedFrame('B', Buffer.concat([cstr(portal), cstr(stmt), int16(0), int16(values.length), ...values.flatMap((v) => [int32(Buffer.byteLength(v)), Buffer.from(v)]), int16(0)]));
const execute = (portal: string, maxRows = 0): Buffer => typedFrame('E', Buffer.concat([cstr(portal), int32(maxRows)]));
const SYNC = typedFrame('S', Buffer.alloc(0));

/** Messages up to and including ReadyForQuery, errors included. */
async function untilReady(c: RawClient): Promise<{ type: string }[]> {
  const seen: { type: string }[] = [];
  for (;;) {
    const m = await c.message();
    seen.push(m);
    if (m.type === 'Z') return seen;
  }
}

/** A raw client logged in through the proxy (TLS, startup, token), ready for query. */
async function rawLogin(email: string, user: string, app: string): Promise<RawClient> {
  const c = await RawClient.tcp(stack.proxyPort);
  c.write(SSL_REQUEST);
  expect(await c.byte()).toBe('S');
  await c.startTls({ ca, servername: 'localhost' });
  c.write(startupFrame({ user, database: stack.db.name, application_name: app }));
  expect((await c.message()).type).toBe('R');
  c.write(passwordFrame(await stack.tokenFor(email)));
  await c.until('Z');
  return c;
}

describe('simple and extended protocol (node-postgres)', () => {
  it('each statement with its protocol, text, parameters, tag, rows, SQLSTATE and duration, in order', async () => {
    const client = new pg.Client(stack.pgConfig(stack.roles.writer, await stack.tokenFor('bob@corp.com'), { application_name: 'pg-basic' }));
    await client.connect();
    await client.query(`insert into audited values (1, 'one'), (2, 'two')`);
    await client.query('select * from audited where id = $1 and label = $2', [2, 'two']);
    await expect(client.query('select * from no_such_table')).rejects.toMatchObject({ code: '42P01' });
    await client.query('select 1; select 2');
    await client.end();
    const s = await statementsOf('pg-basic');
    expect(s.map((e) => e.n)).toEqual([1, 2, 3, 4]);
    expect(s[0]).toMatchObject({ protocol: 'simple', text: `insert into audited values (1, 'one'), (2, 'two')`, outcome: 'ok', tag: 'INSERT 0 2', rows: 2, sqlstate: null, params: { count: 0 } });
    expect(s[1]).toMatchObject({
      protocol: 'extended', statement: '', portal: '', text: 'select * from audited where id = $1 and label = $2',
      params: { count: 2, values: ['2', 'two'] }, outcome: 'ok', tag: 'SELECT 1', rows: 1,
    });
    expect(s[2]).toMatchObject({ protocol: 'simple', text: 'select * from no_such_table', outcome: 'error', sqlstate: '42P01', tag: null });
    // Several statements in one Query: their tags in order, the rows added up.
    expect(s[3]).toMatchObject({ protocol: 'simple', tag: 'SELECT 1; SELECT 1', rows: 2, outcome: 'ok' });
    for (const e of s) expect(typeof e.ms).toBe('number');
  });
});

describe('pipelining (postgres.js)', () => {
  it('200 pipelined statements with a failure in the middle: each matched to its own outcome, in order', async () => {
    const sql = await sqlFor('alice@corp.com', 'pipeline');
    const settled = await Promise.allSettled(
      Array.from({ length: 200 }, (_, i) => (i === 100 ? sql`select * from missing_${sql.unsafe(String(i))}` : sql`select ${i}::int as i, generate_series(1, ${i % 5}) as g`)),
    );
    expect(settled.filter((r) => r.status === 'rejected')).toHaveLength(1);
    await sql.end({ timeout: 1 });
    const s = (await statementsOf('pipeline')).filter((e) => e.text?.includes('generate_series') || e.text?.includes('missing_'));
    expect(s).toHaveLength(200);
    s.forEach((e, i) => {
      if (i === 100) {
        expect(e).toMatchObject({ outcome: 'error', sqlstate: '42P01', text: 'select * from missing_100' });
        return;
      }
      // Each statement carries its own row count: i % 5 rows for statement i, so a shifted match shows.
      expect(e).toMatchObject({ protocol: 'extended', outcome: 'ok', tag: `SELECT ${i % 5}`, rows: i % 5, params: { count: 2, values: [String(i), String(i % 5)] } });
    });
    const ns = s.map((e) => e.n);
    expect([...ns].sort((a, b) => a - b)).toEqual(ns);
  });
});

describe('an extended batch that fails midway (pgJDBC batches, psycopg pipeline mode)', () => {
  it('statements after the error until Sync are recorded as skipped; after Sync the session goes on', async () => {
    const c = await rawLogin('bob@corp.com', stack.roles.writer, 'batch');
    // Three inserts in one batch with one Sync; the second violates the primary key.
    c.write(Buffer.concat([
      parse('ins', 'insert into audited values ($1, $2)'),
      bind('', 'ins', ['10', 'ten']), execute(''),
      bind('', 'ins', ['1', 'duplicate']), execute(''),
      bind('', 'ins', ['11', 'eleven']), execute(''),
      SYNC,
      bind('', 'ins', ['12', 'twelve']), execute(''), SYNC,
    ]));
    const first = await untilReady(c);
    expect(first.some((m) => m.type === 'E')).toBe(true);
    await untilReady(c);
    c.write(TERMINATE);
    await c.closed;
    const s = await statementsOf('batch');
    expect(s.map((e) => [e.outcome, e.params.values?.[0], e.sqlstate])).toEqual([
      ['ok', '10', null],
      ['error', '1', '23505'],
      ['skipped', '11', null],
      ['ok', '12', null],
    ]);
    expect(s.every((e) => e.statement === 'ins' && e.text === 'insert into audited values ($1, $2)')).toBe(true);
  });

  it('a row limit (Execute with maxRows) is recorded as suspended with the rows sent so far', async () => {
    const c = await rawLogin('alice@corp.com', 'alice@corp.com', 'suspend');
    c.write(Buffer.concat([parse('', 'select generate_series(1, 10)'), bind('p1', '', []), execute('p1', 3), execute('p1', 0), SYNC]));
    await c.until('Z');
    c.write(TERMINATE);
    await c.closed;
    const s = await statementsOf('suspend');
    expect(s.map((e) => [e.portal, e.outcome, e.rows, e.tag])).toEqual([
      ['p1', 'suspended', 3, null],
      ['p1', 'ok', 7, 'SELECT 7'],
    ]);
  });

  it('FunctionCall is recorded with the function OID and argument count', async () => {
    const c = await rawLogin('alice@corp.com', 'alice@corp.com', 'fastpath');
    // int4pl (OID 177) with two text-format arguments.
    const body = Buffer.concat([int32(177), int16(1), int16(0), int16(2), int32(1), Buffer.from('2'), int32(1), Buffer.from('3'), int16(0)]);
    c.write(typedFrame('F', body));
    const answer = await c.until('Z');
    expect(answer.find((m) => m.type === 'V')?.body.subarray(4).toString()).toBe('5');
    c.write(TERMINATE);
    await c.closed;
    const [e] = await statementsOf('fastpath');
    expect(e).toMatchObject({ protocol: 'function', function: 177, text: null, params: { count: 2 }, outcome: 'ok' });
  });
});

describe('COPY', () => {
  it('COPY FROM STDIN and TO STDOUT with psql: direction, bytes and rows', async () => {
    const rows = Array.from({ length: 1000 }, (_, i) => `${1000 + i}\tlabel ${i}\n`).join('');
    const token = await stack.tokenFor('bob@corp.com');
    const conninfo = `host=localhost port=${stack.proxyPort} dbname=${stack.db.name} user=${stack.roles.writer} sslmode=verify-full sslrootcert=${stack.caCertPath} application_name=copy`;
    const child = spawn('psql', [conninfo, '-X', '-q', '-v', 'ON_ERROR_STOP=1'], { env: { ...process.env, PGPASSWORD: token } });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.stdin.end(`COPY audited FROM STDIN;\n${rows}\\.\nCOPY (select * from audited where id >= 1000 order by id) TO STDOUT;\n`);
    expect(await new Promise((resolve) => child.on('close', resolve))).toBe(0);
    expect(out).toBe(rows);
    const s = await statementsOf('copy');
    expect(s).toHaveLength(2);
    expect(s[0]).toMatchObject({ protocol: 'copy', copy: { direction: 'in' }, tag: 'COPY 1000', rows: 1000, outcome: 'ok' });
    // psql also sends its "\.\n" end-of-data line as CopyData.
    expect(s[0]!.copy.bytes - Buffer.byteLength(rows)).toBeGreaterThanOrEqual(0);
    expect(s[0]!.copy.bytes - Buffer.byteLength(rows)).toBeLessThanOrEqual(3);
    expect(s[1]).toMatchObject({ protocol: 'copy', copy: { direction: 'out', bytes: Buffer.byteLength(rows) }, tag: 'COPY 1000', rows: 1000, outcome: 'ok' });
  });
});

describe('redaction and bounds', () => {
  it('PASSWORD literals, connection strings, bearer tokens and password-like settings never reach the audit log', async () => {
    const secret = 'Sup3r-s3cret-value';
    const token = await stack.tokenFor('bob@corp.com');
    const client = new pg.Client(stack.pgConfig(stack.roles.writer, token, { application_name: 'redact' }));
    client.on('error', () => undefined);
    await client.connect();
    // Refused (the role may not create roles) but audited all the same.
    await expect(client.query(`create role x_${Date.now()} login password '${secret}'`)).rejects.toMatchObject({ code: '42501' });
    await client.query(`select set_config('app.password', $1, false)`, [secret]);
    await client.query(`select 'postgres://bob:${secret}@db/app' as url, 'Bearer ${secret}' as auth`);
    await client.query(`select set_config('app.password', '${secret}', false)`);
    await client.query(`set app.api_key = '${secret}'`);
    await client.query(`select $1::text as t`, [token]);
    await client.end();
    const s = await statementsOf('redact');
    const written = JSON.stringify(s);
    expect(written).not.toContain(secret);
    expect(written).not.toContain(token);
    expect(s[0]!.text).toMatch(/password '\[redacted\]'/);
    expect(s[1]).toMatchObject({ params: { count: 1, values: ['[redacted]'] } });
    expect(s[2]!.text).toBe(`select 'postgres://bob:[redacted]@db/app' as url, 'Bearer [redacted]' as auth`);
    // The token was longer than a kept value: what was kept of it is redacted.
    expect(s[5]!.params.values[0]).toMatch(/^\[redacted\]…?$/);
  });

  it('a 1 MB query is recorded by its first 4 KiB, marked truncated', async () => {
    const client = new pg.Client(stack.pgConfig('alice@corp.com', await stack.tokenFor('alice@corp.com'), { application_name: 'huge' }));
    await client.connect();
    const long = `select '${'x'.repeat(1024 * 1024)}' as big`;
    await client.query(long);
    await client.end();
    const [e] = await statementsOf('huge');
    expect(e).toMatchObject({ protocol: 'simple', truncated: true, outcome: 'ok', tag: 'SELECT 1' });
    expect(Buffer.byteLength(e!.text)).toBeLessThanOrEqual(4096);
    expect(long.startsWith(e!.text)).toBe(true);
  });
});
