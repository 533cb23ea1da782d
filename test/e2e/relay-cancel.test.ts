// Query cancellation through rolegate (docs/design.md §2 steps 2 and 8): a CancelRequest carrying the
// rolegate-issued key reaches the session's upstream backend, from psql (Ctrl+C) and from pg; a
// wrong key does nothing, like PostgreSQL.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
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


/** Waits until a backend with this application_name runs `pg_sleep` upstream. */
async function sleepingUpstream(app: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const { rows } = await superuserQuery<{ n: number }>(
      `select count(*)::int as n from pg_stat_activity where application_name = $1 and state = 'active' and query like '%pg_sleep%'`,
      [app],
    );
    if (rows[0]!.n > 0) return;
    if (Date.now() > deadline) throw new Error(`no sleeping backend for ${app}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

function psqlConninfo(app: string): string {
  return `host=localhost port=${stack.proxyPort} dbname=${stack.db.name} user=alice@corp.com sslmode=verify-full sslrootcert=${stack.caCertPath} application_name=${app}`;
}

/** Everything a child writes to stdout and stderr, and its exit. */
function collect(child: ChildProcessWithoutNullStreams): { text(): string; exited: Promise<number | null> } {
  let text = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (text += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (text += d));
  return { text: () => text, exited: new Promise((resolve) => child.on('close', resolve)) };
}


/** The error a query fails with (undefined if it succeeds), caught at once so no rejection goes unhandled while the test awaits something else. */
function failure(p: Promise<unknown>): Promise<unknown> {
  return p.then(() => undefined, (err: unknown) => err);
}

/** A raw protocol 3.0 CancelRequest (16 bytes), in plaintext as libpq before 17 sends it. */
function rawCancel(pid: number, secret: number): Promise<void> {
  const packet = Buffer.alloc(16);
  packet.writeInt32BE(16, 0);
  packet.writeInt32BE(80877102, 4);
  packet.writeInt32BE(pid, 8);
  packet.writeUInt32BE(secret >>> 0, 12);
  return new Promise((resolve, reject) => {
    const s = tcpConnect({ host: '127.0.0.1', port: stack.proxyPort }, () => s.end(packet));
    s.on('error', reject);
    // Like PostgreSQL, rolegate answers with nothing and closes.
    s.on('data', () => reject(new Error('a CancelRequest got an answer')));
    s.on('close', () => resolve());
  });
}

function keyOf(client: pg.Client): { pid: number; secret: number } {
  const c = client as unknown as { processID: number; secretKey: number };
  return { pid: c.processID, secret: c.secretKey };
}

describe('cancel', () => {
  it('psql (script): SIGINT during pg_sleep(30) cancels it (57014) at once', async () => {
    const app = 'psql-cancel-script';
    const child = spawn('psql', [psqlConninfo(app), '-X', '-At'], { env: { ...process.env, PGPASSWORD: await stack.tokenFor('alice@corp.com') } });
    const out = collect(child);
    child.stdin.end(`select pg_sleep(30);\n`);
    await sleepingUpstream(app);
    const t0 = performance.now();
    child.kill('SIGINT');
    const code = await out.exited;
    const ms = performance.now() - t0;
    console.info(`psql cancel (script) took ${ms.toFixed(0)} ms`);
    expect(ms).toBeLessThan(5_000);
    expect(out.text()).toMatch(/canceling statement due to user request/);
    // psql stops a script after Ctrl+C (exit 3, "script interrupted"); the interactive case below
    // shows the session surviving.
    expect(code).toBe(3);
  });

  it('psql (interactive, on a terminal): Ctrl+C cancels pg_sleep(30); the same session runs the next statement', async () => {
    const app = 'psql-cancel-tty';
    // script(1) gives psql a pseudo-terminal: Ctrl+C (0x03) typed into it becomes SIGINT from the line
    // discipline, exactly as at a keyboard. script(1) starts the command through $SHELL -c; `exec`
    // takes that shell out of the way, because a non-interactive dash (/bin/sh on Debian, and $SHELL
    // in CI) dies of that SIGINT itself and script then reports its 130 instead of psql's exit code.
    const command = `exec psql '${psqlConninfo(app)}' -X -At -n -P pager=off`;
    const env = { ...process.env, SHELL: '/bin/sh', PGPASSWORD: await stack.tokenFor('alice@corp.com'), TERM: 'dumb' };
    const child = spawn('script', ['-q', '-e', '-c', command, '/dev/null'], { env });
    const out = collect(child);
    child.stdin.write('select pg_sleep(30);\n');
    await sleepingUpstream(app);
    const { rows: before } = await superuserQuery<{ pid: number }>(`select pid from pg_stat_activity where application_name = $1`, [app]);
    const t0 = performance.now();
    child.stdin.write('\x03');
    await waitFor(() => /canceling statement due to user request/.test(out.text()), 5_000);
    const ms = performance.now() - t0;
    console.info(`psql cancel (terminal) took ${ms.toFixed(0)} ms`);
    child.stdin.write(`select 'after cancel: ' || pg_backend_pid();\n`);
    // Same backend before and after: the cancel did not cost the session.
    await waitFor(() => out.text().includes(`after cancel: ${before[0]!.pid}`), 5_000);
    child.stdin.end('\\q\n');
    expect(await out.exited).toBe(0);
  });

  it('pg: Client#cancel sends the rolegate key on a new connection; the query fails 57014; the session goes on', async () => {
    const client = await stack.connect('alice@corp.com', { app: 'pg-cancel' });
    const sleeping = failure(client.query('select pg_sleep(30)'));
    await sleepingUpstream('pg-cancel');
    const t0 = performance.now();
    // node-postgres cancels through a second client object that connects and sends the first one's
    // key (Client#cancel, left out of its type definitions); it needs the running Query object.
    const internals = client as unknown as { _activeQuery: unknown };
    const canceller = new pg.Client(stack.pgConfig('alice@corp.com', 'unused')) as unknown as { cancel(c: pg.Client, q: unknown): void };
    canceller.cancel(client, internals._activeQuery);
    expect(await sleeping).toMatchObject({ code: '57014' });
    expect(performance.now() - t0).toBeLessThan(5_000);
    expect((await client.query('select 42 as answer')).rows).toEqual([{ answer: 42 }]);
    await client.end();
  });

  it('the client sees a rolegate key, not the upstream backend key', async () => {
    const client = await stack.connect('alice@corp.com', { app: 'key-check' });
    const { rows } = await client.query<{ pid: number }>('select pg_backend_pid() as pid');
    expect(keyOf(client).pid).not.toBe(rows[0]!.pid);
    await client.end();
  });

  it('a CancelRequest with a wrong secret, an unknown pid or the upstream pid does nothing', async () => {
    const client = await stack.connect('alice@corp.com', { app: 'wrong-key' });
    const { rows } = await client.query<{ pid: number }>('select pg_backend_pid() as pid');
    const upstreamPid = rows[0]!.pid;
    const key = keyOf(client);
    const sleeping = client.query<{ done: string }>(`select pg_sleep(1.5)::text as done`);
    await sleepingUpstream('wrong-key');
    await rawCancel(key.pid, key.secret ^ 1);
    await rawCancel(key.pid === 1 ? 2 : key.pid - 1, key.secret);
    // The upstream's real pid with the rolegate secret: the two key spaces never mix.
    await rawCancel(upstreamPid, key.secret);
    const done = await sleeping;
    expect(done.rows).toEqual([{ done: '' }]);
    // And the right key, sent the same raw way, does cancel.
    const again = failure(client.query('select pg_sleep(30)'));
    await sleepingUpstream('wrong-key');
    await rawCancel(key.pid, key.secret);
    expect(await again).toMatchObject({ code: '57014' });
    await client.end();
  });

  it('a cancel for one session leaves another session of the same person running', async () => {
    const a = await stack.connect('bob@corp.com', { app: 'cancel-a' });
    const b = await stack.connect('bob@corp.com', { app: 'cancel-b' });
    const sleepA = failure(a.query('select pg_sleep(30)'));
    const sleepB = b.query<{ ok: number }>('select pg_sleep(1), 1 as ok');
    await sleepingUpstream('cancel-a');
    await sleepingUpstream('cancel-b');
    await rawCancel(keyOf(a).pid, keyOf(a).secret);
    expect(await sleepA).toMatchObject({ code: '57014' });
    expect((await sleepB).rows[0]?.ok).toBe(1);
    await a.end();
    await b.end();
  });
});
