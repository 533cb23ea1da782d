// The pool is a security boundary (docs/design.md §2 step 7, Pool): a first person drives raw frontend
// frames and says goodbye while something is still outstanding (pipelined queries, a Parse error
// without Sync, an extended pipeline, a transaction, a COPY); a second person with the same role,
// database and settings then logs in and must see only their own results and a clean session.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { superuserQuery } from '../helpers/postgres.js';
import { startStack, type Stack } from '../helpers/stack.js';
import { waitFor } from '../helpers/wait.js';
import { caPem } from './login-helpers.js';
import { passwordFrame, queryFrame, TERMINATE, tlsStartup, typedFrame, type RawClient } from './login-wire.js';

let stack: Stack;
beforeAll(async () => {
  stack = await startStack({ config: { upstream: { pool: { idle: 4, idleTimeout: '20s' } } } });
  await stack.provision('alice@corp.com', ['analysts']);
  await stack.provision('bob@corp.com', ['analysts']);
});
afterAll(async () => {
  await stack?.close();
});

const cstr = (s: string): Buffer => Buffer.from(`${s}\0`, 'utf8');
const int16 = (n: number): Buffer => Buffer.from([(n >> 8) & 0xff, n & 0xff]);
const int32 = (n: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeInt32BE(n);
  return b;
};
const parse = (sql: string, name = ''): Buffer => typedFrame('P', Buffer.concat([cstr(name), cstr(sql), int16(0)]));
const bind = (stmt = ''): Buffer => typedFrame('B', Buffer.concat([cstr(''), cstr(stmt), int16(0), int16(0), int16(0)]));
const execute = (): Buffer => typedFrame('E', Buffer.concat([cstr(''), int32(0)]));
const SYNC = typedFrame('S', Buffer.alloc(0));
const copyData = (text: string): Buffer => typedFrame('d', Buffer.from(text, 'utf8'));

/** Alice, logged in over raw frames as the reader role; resolves with her client and backend pid. */
async function alice(): Promise<{ client: RawClient; pid: number }> {
  const { client, first } = await tlsStartup(stack.proxyPort, caPem(stack), {
    user: 'alice@corp.com',
    database: stack.db.name,
    // What node-postgres sends too (pg-protocol appends it): the same settings, the same pool key.
    client_encoding: 'UTF8',
  });
  expect(first.at(-1)!.type).toBe('R');
  client.write(passwordFrame(await stack.tokenFor('alice@corp.com')));
  await client.until('Z');
  client.write(queryFrame('select pg_backend_pid()'));
  const msgs = await client.until('Z');
  const row = msgs.find((m) => m.type === 'D')!;
  const pid = Number(row.body.toString('utf8', 6, 6 + row.body.readInt32BE(2)));
  return { client, pid };
}

/**
 * Session state alice leaves behind, so that a leak would show in bob's checks. None of it is a
 * reported (GUC_REPORT) setting, so DISCARD ALL answers with exactly its confirmation.
 */
const UNREPORTED = [
  "set search_path = pg_catalog, alice_was_here",
  "set statement_timeout = '4321ms'",
  'prepare alice_stmt as select 1',
  'create temp table alice_tmp (x int)',
  'select pg_advisory_lock(7007)',
  'listen alice_channel',
].join('; ');
/** The same plus a read-only default (reported since PostgreSQL 14). */
const DIRTY = `${UNREPORTED}; set default_transaction_read_only = on`;

async function backendAlive(pid: number): Promise<boolean> {
  const r = await superuserQuery<{ n: number }>('select count(*)::int as n from pg_stat_activity where pid = $1', [pid]);
  return r.rows[0]!.n === 1;
}

/** A query that fails the test instead of hanging when the server never answers. */
async function answered<T>(q: Promise<T>): Promise<T> {
  let t: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => (t = setTimeout(() => reject(new Error('no answer within 5 s')), 5_000)));
  try {
    return await Promise.race([q, timeout]);
  } finally {
    clearTimeout(t);
  }
}

/** Bob's session: his own answers, none of alice's state. Returns his backend pid. */
async function bobSeesACleanSession(): Promise<number> {
  const bob = await stack.connect('bob@corp.com');
  try {
    expect((await answered(bob.query("select 'bob' as who"))).rows).toEqual([{ who: 'bob' }]);
    const state = await answered(bob.query<Record<string, unknown>>(`
      select current_user as role,
             current_setting('search_path') as search_path,
             current_setting('default_transaction_read_only') as read_only,
             current_setting('statement_timeout') as statement_timeout,
             (select count(*)::int from pg_prepared_statements) as prepared,
             (select count(*)::int from pg_class where relnamespace = pg_my_temp_schema()) as temp_tables,
             (select count(*)::int from pg_locks where locktype = 'advisory' and pid = pg_backend_pid()) as advisory_locks,
             (select count(*)::int from pg_listening_channels()) as listening,
             pg_backend_pid() as pid`));
    const s = state.rows[0]!;
    expect({ ...s, pid: undefined }).toEqual({
      role: stack.roles.reader,
      search_path: '"$user", public',
      read_only: 'off',
      statement_timeout: '0',
      prepared: 0,
      temp_tables: 0,
      advisory_locks: 0,
      listening: 0,
      pid: undefined,
    });
    // A second statement still gets its own answer (nothing of alice's queued ahead of it).
    expect((await answered(bob.query('select 2 + 2 as four'))).rows).toEqual([{ four: 4 }]);
    return s['pid'] as number;
  } finally {
    await answered(bob.end()).catch(() => bob.connection.stream.destroy());
  }
}

/** Waits until alice's backend is gone or pooled (rolegate answered her goodbye one way or the other). */
async function settled(client: RawClient): Promise<void> {
  await client.closedWithin(3_000);
  await new Promise((r) => setTimeout(r, 300));
}

/** Alice says goodbye now; her backend must be closed, never handed to bob. */
async function goodbyeIsNotPooled(client: RawClient, pid: number): Promise<void> {
  client.write(TERMINATE);
  await settled(client);
  expect(await bobSeesACleanSession()).not.toBe(pid);
  await waitFor(async () => !(await backendAlive(pid)), 5_000);
}

describe('pool isolation: a connection goes back only when nothing is outstanding', () => {
  it('a clean goodbye after every answer is pooled, and the next person gets the reset backend', async () => {
    const { client, pid } = await alice();
    client.write(queryFrame(UNREPORTED));
    await client.until('Z');
    client.write(TERMINATE);
    await settled(client);
    expect(await bobSeesACleanSession()).toBe(pid);
  });

  it('pool leaks pipelined results: Terminate after the first of three pipelined queries is not pooled', async () => {
    const { client, pid } = await alice();
    client.write(queryFrame(DIRTY));
    await client.until('Z');
    // Three queries at once; goodbye after the first answer, while the second and third are queued.
    client.write(Buffer.concat([
      queryFrame('select 1'),
      queryFrame('select pg_sleep(0.4)'),
      queryFrame("select pg_sleep(1.5), 'alice-secret' as who"),
    ]));
    await client.until('Z');
    client.write(TERMINATE);
    // Long enough for the second query to finish (where a reset that any ReadyForQuery confirms
    // would call the connection clean), short of the third.
    await new Promise((r) => setTimeout(r, 800));
    expect(await bobSeesACleanSession()).not.toBe(pid);
    await waitFor(async () => !(await backendAlive(pid)), 5_000);
  });

  it('pool skips DISCARD ALL in ignore-till-Sync: a Parse error without Sync is not pooled', async () => {
    const { client, pid } = await alice();
    client.write(queryFrame(DIRTY));
    await client.until('Z');
    // Goodbye after the first answer. The second query's ReadyForQuery would look like a reset's
    // confirmation; the bad Parse behind it leaves the server discarding everything (DISCARD ALL and
    // the next person's queries included) until a Sync that never comes.
    client.write(Buffer.concat([queryFrame('select 1'), queryFrame('select pg_sleep(0.3)'), parse('selec 1')]));
    await client.until('Z');
    client.write(TERMINATE);
    await new Promise((r) => setTimeout(r, 800));
    expect(await bobSeesACleanSession()).not.toBe(pid);
    await waitFor(async () => !(await backendAlive(pid)), 5_000);
  });

  it('Terminate in the middle of an extended-protocol pipeline is not pooled', async () => {
    const { client, pid } = await alice();
    client.write(queryFrame(DIRTY));
    await client.until('Z');
    client.write(Buffer.concat([
      parse('select 1'), bind(), execute(), SYNC,
      parse('select pg_sleep(0.5)'), bind(), execute(), SYNC,
      parse("select 'alice-secret' as who"), bind(), execute(),
    ]));
    await client.until('Z');
    await goodbyeIsNotPooled(client, pid);
  });

  it('Terminate inside a transaction is not pooled', async () => {
    const { client, pid } = await alice();
    client.write(queryFrame(`begin; ${DIRTY}`));
    const msgs = await client.until('Z');
    expect(msgs.at(-1)!.body.toString('latin1')).toBe('T');
    await goodbyeIsNotPooled(client, pid);
  });

  it('Terminate inside COPY FROM STDIN is not pooled', async () => {
    const { client, pid } = await alice();
    client.write(queryFrame(DIRTY));
    await client.until('Z');
    client.write(queryFrame('copy alice_tmp from stdin'));
    expect((await client.message()).type).toBe('G');
    client.write(copyData('1\n2\n'));
    await goodbyeIsNotPooled(client, pid);
  });

  it('a reset that answers with anything besides DISCARD ALL and an idle ReadyForQuery closes the connection', async () => {
    // A reported setting changed in the session makes DISCARD ALL send ParameterStatus: the reply is
    // not the exact confirmation, so the connection is closed rather than trusted.
    const { client, pid } = await alice();
    client.write(queryFrame("set application_name = 'alice-app'"));
    await client.until('Z');
    await goodbyeIsNotPooled(client, pid);
  });

  it('the audit log records each of alice\'s sessions as ended by her', async () => {
    await stack.server.audit.flushed();
    const ends = stack.auditEvents().filter((e) => e['type'] === 'session.end');
    expect(ends.length).toBeGreaterThanOrEqual(14);
    expect(ends.every((e) => e['reason'] === 'client_exit')).toBe(true);
  });
});
