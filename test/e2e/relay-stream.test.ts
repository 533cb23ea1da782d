// Large results stream through the relay with backpressure and bounded memory (docs/design.md §2 step 8,
// docs/style.md 5), the byte counters follow them, and a client that vanishes mid-result takes its
// upstream backend with it while other sessions carry on.
import { spawn } from 'node:child_process';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { liveRss, liveRssSampler } from '../helpers/live-memory.js';
import { superuserQuery } from '../helpers/postgres.js';
import { startStack, type Stack } from '../helpers/stack.js';
import { waitFor } from '../helpers/wait.js';

let stack: Stack;
const MB = 1024 * 1024;

beforeAll(async () => {
  stack = await startStack({ config: { log: { level: 'info' } } });
  await stack.provision('alice@corp.com', ['analysts']);
  await stack.provision('bob@corp.com', ['engineering']);
});
afterAll(async () => {
  await stack?.close();
});

function conninfo(user: string, app: string): string {
  return `host=localhost port=${stack.proxyPort} dbname=${stack.db.name} user=${user} sslmode=verify-full sslrootcert=${stack.caCertPath} application_name=${app}`;
}

/** Runs psql; `onStdout` sees the child's stdout stream (to read it slowly), else it goes to /dev/null. */
async function psql(user: string, token: string, args: string[], app: string, onStdout?: (out: NodeJS.ReadableStream) => void): Promise<{ code: number | null; stderr: string }> {
  const child = spawn('psql', [conninfo(user, app), '-X', '-q', ...args], {
    env: { ...process.env, PGPASSWORD: token },
    stdio: ['ignore', onStdout ? 'pipe' : 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  if (onStdout) onStdout(child.stdout!);
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  return { code, stderr };
}

async function bytesTotal(direction: 'in' | 'out'): Promise<number> {
  const m = await stack.server.metrics.proxy.bytes.get();
  return m.values.find((v) => v.labels.direction === direction)?.value ?? 0;
}

function sessionEnd(app: string): Record<string, unknown> | undefined {
  const start = stack.auditEvents().find((e) => e.type === 'session.start' && e.application === app);
  return stack.auditEvents().find((e) => e.type === 'session.end' && e.session === start?.session);
}


const BIG_QUERY = `select repeat('x', 1000) from generate_series(1, 200000)`;

describe('a 200 MB result', () => {
  it('streams to psql with the proxy RSS growing less than 32 MB; byte counters and session.end agree', async () => {
    const token = await stack.tokenFor('alice@corp.com');
    // Warm-up: TLS contexts, allocator pools and JIT settle before the baseline is taken.
    const warm = await psql('alice@corp.com', token, ['-c', `select repeat('x', 1000) from generate_series(1, 20000)`], 'warmup');
    expect(warm.code).toBe(0);
    await waitFor(() => sessionEnd('warmup') !== undefined, 2_000);

    const outBefore = await bytesTotal('out');
    const inBefore = await bytesTotal('in');
    const baseline = liveRss();
    const sampler = liveRssSampler();
    const t0 = performance.now();
    const r = await psql('alice@corp.com', token, ['-At', '-o', '/dev/null', '-c', BIG_QUERY], 'big-select');
    const seconds = (performance.now() - t0) / 1000;
    const peak = sampler.stop();
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const growth = (peak - baseline) / MB;
    console.info(`200 MB select: ${seconds.toFixed(1)} s, proxy RSS baseline ${(baseline / MB).toFixed(0)} MB, peak growth ${growth.toFixed(1)} MB`);
    expect(growth).toBeLessThan(32);

    await waitFor(() => sessionEnd('big-select') !== undefined, 2_000);
    const end = sessionEnd('big-select')!;
    // 200,000 DataRows of 1000 bytes plus their headers; nothing is re-encoded on the way.
    expect(end.bytesOut as number).toBeGreaterThan(200_000 * 1000);
    expect(end.bytesOut as number).toBeLessThan(200_000 * 1000 * 1.05);
    expect(end.bytesIn as number).toBeGreaterThan(0);
    expect(end.reason).toBe('client_exit');
    // rolegate_bytes_total counts the same bytes (added when the session ends).
    expect((await bytesTotal('out')) - outBefore).toBe(end.bytesOut);
    expect((await bytesTotal('in')) - inBefore).toBe(end.bytesIn);
  });

  it('a reader that stops makes PostgreSQL wait (ClientWrite) instead of the proxy buffering', async () => {
    const token = await stack.tokenFor('alice@corp.com');
    const app = 'slow-copy';
    let received = 0;
    let out: NodeJS.ReadableStream | undefined;
    const baseline = liveRss();
    const sampler = liveRssSampler();
    const done = psql('alice@corp.com', token, ['-c', `COPY (${BIG_QUERY}) TO STDOUT`], app, (s) => {
      out = s;
      s.on('data', (d: Buffer) => (received += d.length));
    });
    await waitFor(() => received > 5 * MB, 20_000);
    out!.pause();
    // Backpressure all the way: psql stops reading, the proxy stops reading, the backend blocks.
    const waitEvent = async (): Promise<string | null | undefined> =>
      (await superuserQuery<{ w: string | null }>(`select wait_event as w from pg_stat_activity where application_name = $1`, [app])).rows[0]?.w;
    await waitFor(async () => (await waitEvent()) === 'ClientWrite', 10_000);
    // Still blocked a second later: had the proxy kept reading into memory, the backend would have
    // produced the whole result by now.
    await new Promise((r) => setTimeout(r, 1_000));
    expect(await waitEvent()).toBe('ClientWrite');
    expect(received).toBeLessThan(100 * MB);
    out!.resume();
    const r = await done;
    const growth = (sampler.stop() - baseline) / MB;
    console.info(`200 MB COPY with a paused reader: proxy RSS peak growth ${growth.toFixed(1)} MB`);
    expect(r.code).toBe(0);
    expect(received).toBe(200_000 * 1001);
    expect(growth).toBeLessThan(32);
  });
});

describe('a client that disconnects mid-result', () => {
  /** A pg session of alice with `app` as application_name, in the middle of a 5M-row result. */
  async function midResult(app: string): Promise<import('node:net').Socket> {
    const client = new pg.Client(stack.pgConfig('alice@corp.com', await stack.tokenFor('alice@corp.com'), { application_name: app }));
    client.on('error', () => undefined);
    await client.connect();
    // A Query with a row listener and no callback does not keep rows: memory stays flat here too.
    const query = new pg.Query('select generate_series(1, 5e6)');
    let rows = 0;
    query.on('error', () => undefined);
    const firstRows = new Promise<void>((resolve) => query.on('row', () => ++rows === 1000 && resolve()));
    void client.query(query);
    await firstRows;
    return (client as unknown as { connection: { stream: import('node:net').Socket } }).connection.stream;
  }

  async function backendGone(app: string): Promise<number> {
    const t0 = performance.now();
    await waitFor(async () => {
      const { rows } = await superuserQuery<{ n: number }>(`select count(*)::int as n from pg_stat_activity where application_name = $1`, [app]);
      return rows[0]!.n === 0;
    }, 10_000);
    return performance.now() - t0;
  }

  it.each([
    ['destroys its socket (reset)', (s: import('node:net').Socket) => s.destroy()],
    // Regression: after a FIN the relay left the upstream socket paused and the backend blocked in
    // ClientWrite for ever.
    ['half-closes its socket (FIN, still reading)', (s: import('node:net').Socket) => s.end()],
  ])('that %s: its upstream backend ends; other sessions are served throughout', async (_name, leave) => {
    const app = `vanish-${Date.now()}`;
    const other = new pg.Client(stack.pgConfig('bob@corp.com', await stack.tokenFor('bob@corp.com')));
    other.on('error', () => undefined);
    await other.connect();

    leave(await midResult(app));
    expect((await other.query('select 1 as one')).rows).toEqual([{ one: 1 }]);
    const ms = await backendGone(app);
    console.info(`backend of the vanished client gone after ${ms.toFixed(0)} ms`);
    await waitFor(() => sessionEnd(app) !== undefined, 2_000);
    expect(sessionEnd(app)?.reason).toBe('client_exit');
    expect((await other.query('select 2 as two')).rows).toEqual([{ two: 2 }]);
    await other.end();
  });
});
