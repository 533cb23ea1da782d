// Login benchmark (issue 12): what a new connection costs through rolegate against direct PostgreSQL and
// pgbouncer, like for like (TLS on every leg with the same ECDSA P-256 certificates, SCRAM to
// PostgreSQL, pool sizes printed); rolegate's CPU per fresh and per resumed login from /proc; login
// latency under 50 concurrent logins; and resident memory with idle authenticated TLS sessions.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { createCertificateAuthority, issueCert } from '../demo/certs.js';
import { startDevIssuer } from '../demo/dev-issuer.js';
import { startLocalPostgres } from '../demo/local-postgres.js';
import { parseConfigText } from '../server/config/load.js';
import { login, type Login, type LoginTarget } from './login-client.js';
import { startPgbouncer } from './targets.js';
import { cpuSeconds, provisionBenchPerson } from './proxy.js';
import type { BenchRow } from './scim.js';
import { startServeProcess, type ServeProcess } from './serve-process.js';
import { median } from './stats.js';

const run = promisify(execFile);

export interface LoginBenchOptions {
  dir: string;
  freePort: () => Promise<number>;
  /** Seconds per pgbench -C run. */
  seconds: number;
  rounds: number;
  /** Logins timed for CPU and latency (2,000). */
  logins: number;
  /** Logins in flight at once (50). */
  concurrency: number;
  /** Idle sessions held for the memory figure (1,000). */
  idleSessions: number;
  /** Which figures to take (all by default): `connect` (pgbench -C), `cpu` (the login storms), `memory`. */
  parts?: ReadonlySet<'connect' | 'cpu' | 'memory'>;
}

/** pgbouncer's default_pool_size, and what rolegate's `upstream.pool.idle` defaults to. */
const POOL_SIZE = 20;

type Target = 'direct' | 'pgbouncer' | 'rolegate';

/** Runs the login benchmark; returns its rows. */
export async function runLoginBench(opts: LoginBenchOptions): Promise<BenchRow[]> {
  const stops: (() => Promise<void>)[] = [];
  try {
    // PostgreSQL with TLS and SCRAM, sized for the idle sessions plus the pools.
    const pgDir = join(opts.dir, 'pg');
    await mkdir(pgDir);
    const ca = await createCertificateAuthority(opts.dir);
    const server = await issueCert({ cn: 'localhost', ...ca, dir: opts.dir, fileName: 'server' });
    const caPem = await readFile(ca.caCertPath, 'utf8');
    const superPassword = randomBytes(12).toString('hex');
    const pgPort = await opts.freePort();
    const cluster = await startLocalPostgres({
      dir: pgDir,
      port: pgPort,
      superuserPassword: superPassword,
      tls: { certPath: server.certPath, keyPath: server.keyPath },
      hba: ['host all all 127.0.0.1/32 scram-sha-256'],
      settings: { max_connections: String(opts.idleSessions + 150) },
    });
    stops.push(() => cluster.stop());
    const rolePassword = randomBytes(12).toString('hex');
    const admin = new pg.Client({ host: '127.0.0.1', port: pgPort, user: 'postgres', password: superPassword, database: 'postgres', ssl: { rejectUnauthorized: false } });
    await admin.connect();
    await admin.query(`CREATE ROLE bench_user LOGIN PASSWORD '${rolePassword}'`);
    await admin.query('CREATE DATABASE bench OWNER bench_user');
    await admin.end();
    await run(join(cluster.binDir, 'pgbench'), ['-i', '-q', '-s', '1', '-h', '127.0.0.1', '-p', String(pgPort), '-U', 'bench_user', 'bench'], {
      env: { ...process.env, PGPASSWORD: rolePassword, PGSSLMODE: 'require' },
    });

    const bouncerPort = await opts.freePort();
    const bouncer = await startPgbouncer(join(opts.dir, 'pgbouncer'), { transport: 'tls', bouncerPort, pgPort, rolePassword, certPath: server.certPath, keyPath: server.keyPath, caPath: ca.caCertPath, poolSize: POOL_SIZE });
    stops.push(bouncer.stop);

    const issuerCert = await issueCert({ cn: '127.0.0.1', ...ca, dir: opts.dir, fileName: 'issuer', sans: ['IP:127.0.0.1', 'DNS:localhost'] });
    const issuer = await startDevIssuer({
      audience: 'rolegate',
      tls: { cert: await readFile(issuerCert.certPath, 'utf8'), key: await readFile(issuerCert.keyPath, 'utf8'), ca: caPem },
    });
    stops.push(() => issuer.close());
    const scimToken = randomBytes(24).toString('base64url');
    const [proxyPort, adminPort] = [await opts.freePort(), await opts.freePort()];
    // No `upstream.pool` key: the benchmark runs rolegate's default pool.
    const config = (upstreamTls: 'verify-full' | 'disable', clientTls: boolean, poolIdle?: number) => `
proxy: { listen: "127.0.0.1:${proxyPort}", ${clientTls ? `tls: { cert: "${server.certPath}", key: "${server.keyPath}" }` : 'allowPlaintext: true'}, maxConnections: ${opts.idleSessions + 100} }
upstream: { host: 127.0.0.1, port: ${pgPort}, tls: { mode: ${upstreamTls}, ca: "${ca.caCertPath}" }${poolIdle === undefined ? '' : `, pool: { idle: ${poolIdle} }`} }
oidc: { issuer: "${issuer.issuer}", audience: rolegate, ca: "${ca.caCertPath}" }
roles: [{ role: bench_user, groups: [bench], databases: [bench], credentials: { password: "\${BENCH_ROLE_PASSWORD}" } }]
directory: { store: "sqlite:${join(opts.dir, 'login-directory.db')}" }
scim: { tokens: ["\${BENCH_SCIM_TOKEN}"] }
admin: { listen: "127.0.0.1:${adminPort}" }
log: { level: warn }
`;
    const serveEnv = { BENCH_ROLE_PASSWORD: rolePassword, BENCH_SCIM_TOKEN: scimToken };
    const startRolegate = async (upstreamTls: 'verify-full' | 'disable' = 'verify-full', clientTls = true, poolIdle?: number): Promise<ServeProcess> => {
      const p = await startServeProcess(opts.dir, config(upstreamTls, clientTls, poolIdle), adminPort, serveEnv);
      stops.push(() => p.stop());
      return p;
    };
    let rolegate = await startRolegate();
    await provisionBenchPerson(rolegate.adminUrl, scimToken);
    const token = await issuer.tokenFor('bench@corp.example', { expiresInSec: 3600 });
    const rows: BenchRow[] = [
      { name: 'pool size: pgbouncer default_pool_size', value: POOL_SIZE, unit: 'connections' },
      { name: 'pool size: rolegate upstream.pool.idle (its default)', value: poolSetting(config('verify-full', true), serveEnv, opts.dir), unit: 'connections' },
    ];

    const parts = opts.parts ?? new Set(['connect', 'cpu', 'memory'] as const);
    // pgbench -S -C: a new connection per transaction, 4 clients, alternating targets per round.
    const targets: Record<Target, { port: number; user: string; password: string }> = {
      direct: { port: pgPort, user: 'bench_user', password: rolePassword },
      pgbouncer: { port: bouncerPort, user: 'bench_user', password: rolePassword },
      rolegate: { port: proxyPort, user: 'bench@corp.example', password: token },
    };
    const pids: Record<Target, () => number | undefined> = { direct: () => undefined, pgbouncer: bouncer.pid, rolegate: () => rolegate.child.pid };
    const connMs = new Map<Target, number[]>();
    const cpuPerConn = new Map<Target, number[]>();
    for (let round = 0; round < (parts.has('connect') ? opts.rounds : 0); round++) {
      const order: Target[] = round % 2 === 0 ? ['direct', 'pgbouncer', 'rolegate'] : ['rolegate', 'pgbouncer', 'direct'];
      for (const t of order) {
        const cpu0 = cpuSeconds(pids[t]());
        const r = await pgbenchConnect(cluster.binDir, targets[t], opts.seconds);
        const cpu = cpuSeconds(pids[t]()) - cpu0;
        console.error(`pgbench -S -C -c 4, ${t}: average connection time ${r.connectionMs.toFixed(3)} ms, ${r.transactions} connections, proxy CPU ${Number.isNaN(cpu) ? '-' : `${cpu.toFixed(2)} s`}`);
        connMs.set(t, [...(connMs.get(t) ?? []), r.connectionMs]);
        if (!Number.isNaN(cpu)) cpuPerConn.set(t, [...(cpuPerConn.get(t) ?? []), (cpu * 1000) / r.transactions]);
      }
    }
    const [d, b, g] = (['direct', 'pgbouncer', 'rolegate'] as const).map((t) => median(connMs.get(t) ?? []));
    if (parts.has('connect')) rows.push(
      { name: 'pgbench -S -C, 4 clients: direct average connection time', value: d!, unit: 'ms' },
      { name: 'pgbench -S -C, 4 clients: pgbouncer average connection time', value: b!, unit: 'ms' },
      { name: 'pgbench -S -C, 4 clients: rolegate average connection time', value: g!, unit: 'ms' },
      { name: 'pgbench -S -C, 4 clients: rolegate/direct connection time', value: g! / d!, unit: 'x', target: { op: '<=', limit: 0.2 } },
      { name: 'pgbench -S -C, 4 clients: pgbouncer CPU per connection', value: median(cpuPerConn.get('pgbouncer') ?? []), unit: 'ms' },
      { name: 'pgbench -S -C, 4 clients: rolegate CPU per connection', value: median(cpuPerConn.get('rolegate') ?? []), unit: 'ms' },
    );

    // Fresh logins (full TLS handshake each), then resumed ones (TLS 1.3 tickets), `concurrency` at a
    // time. A login's upstream comes from the pool (what the target measures) only when the pool can
    // hold as many idle connections as there are sessions at once: with the default 20 and 50
    // concurrent, sessions beyond 20 close their upstream at goodbye and the next login pays a new
    // upstream TLS + SCRAM login; that case has its own rows.
    const target: LoginTarget = { port: proxyPort, user: 'bench@corp.example', password: token, database: 'bench', ca: caPem };
    if (parts.has('cpu')) await loginStorms();
    if (parts.has('memory')) await memory();
    return rows;

    async function loginStorms(): Promise<void> {
      const warmUp = Math.min(200, opts.logins);
      await loginStorm(target, rolegate, warmUp, opts.concurrency, 'fresh'); // JIT, pool
      const small = await loginStorm(target, rolegate, opts.logins, opts.concurrency, 'fresh');
      await rolegate.stop();
      rolegate = await startRolegate('verify-full', true, opts.concurrency);
      await loginStorm(target, rolegate, warmUp, opts.concurrency, 'fresh');
      const fresh = await loginStorm(target, rolegate, opts.logins, opts.concurrency, 'fresh');
      const resumed = await loginStorm(target, rolegate, opts.logins, opts.concurrency, 'resumed');
      const at = `${opts.logins} logins, ${opts.concurrency} concurrent`;
      rows.push(
        { name: `rolegate CPU per fresh login, upstream from the pool (${at}, pool.idle ${opts.concurrency})`, value: fresh.cpuMsPerLogin, unit: 'ms', target: { op: '<=', limit: 1.5 } },
        { name: 'fresh login latency p50', value: fresh.p50, unit: 'ms' },
        { name: 'fresh login latency p99', value: fresh.p99, unit: 'ms' },
        { name: 'fresh logins that needed a new upstream login', value: fresh.upstreamLogins, unit: 'logins' },
        { name: `rolegate CPU per resumed login (TLS session ticket, ${at})`, value: resumed.cpuMsPerLogin, unit: 'ms' },
        { name: 'resumed login latency p50', value: resumed.p50, unit: 'ms' },
        { name: 'resumed login latency p99', value: resumed.p99, unit: 'ms' },
        { name: 'logins that resumed their TLS session', value: resumed.resumedShare * 100, unit: '%' },
        { name: `rolegate CPU per fresh login with the default pool (${at}, pool.idle ${POOL_SIZE})`, value: small.cpuMsPerLogin, unit: 'ms' },
        { name: 'with the default pool: latency p50', value: small.p50, unit: 'ms' },
        { name: 'with the default pool: latency p99', value: small.p99, unit: 'ms' },
        { name: 'with the default pool: logins that needed a new upstream login', value: small.upstreamLogins, unit: 'logins' },
      );
    }

    async function memory(): Promise<void> {
      // Idle authenticated sessions, each on a fresh `rolegate serve`: TLS on both legs (the target),
      // then without the upstream TLS and without any TLS, which splits the cost per session.
      const variants = [
        { name: 'TLS both legs', upstreamTls: 'verify-full', clientTls: true },
        { name: 'client TLS, plain upstream', upstreamTls: 'disable', clientTls: true },
        { name: 'plain TCP both legs', upstreamTls: 'disable', clientTls: false },
      ] as const;
      for (const v of variants) {
        await rolegate.stop();
        rolegate = await startRolegate(v.upstreamTls, v.clientTls);
        const m = await idleSessions({ ...target, tls: v.clientTls }, rolegate, opts.idleSessions);
        console.error(`${opts.idleSessions} idle sessions, ${v.name}: RSS ${m.beforeMiB.toFixed(1)} -> ${m.afterMiB.toFixed(1)} MiB; JS heap used ${m.heapBeforeMiB.toFixed(1)} -> ${m.heapAfterMiB.toFixed(1)} MiB`);
        const perSession = ((m.afterMiB - m.beforeMiB) * 1024) / opts.idleSessions;
        if (v.clientTls && v.upstreamTls === 'verify-full') {
          rows.push({ name: `rolegate RSS with ${opts.idleSessions} idle TLS sessions`, value: m.afterMiB, unit: 'MiB', target: { op: '<=', limit: 150 } });
        }
        rows.push(
          { name: `RSS per idle session, ${v.name}`, value: perSession, unit: 'KiB' },
          { name: `JS heap per idle session, ${v.name}`, value: ((m.heapAfterMiB - m.heapBeforeMiB) * 1024) / opts.idleSessions, unit: 'KiB' },
        );
      }
    }
  } finally {
    for (const stop of stops.reverse()) await stop().catch(() => undefined);
  }
}

const percentile = (sorted: number[], p: number): number => sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] ?? NaN;

/** `upstream.pool.idle` of a config text, as `rolegate serve` reads it (defaults applied). */
function poolSetting(configText: string, env: Record<string, string>, dir: string): number {
  const parsed = parseConfigText(configText, env, dir);
  if (!parsed.ok) throw new Error(`bench config invalid: ${JSON.stringify(parsed.problems)}`);
  return parsed.config.upstream.pool.idle;
}

/** One `pgbench -S -C -c 4` run: pgbench's average connection time and the connections made. */
async function pgbenchConnect(binDir: string, target: { port: number; user: string; password: string }, seconds: number): Promise<{ connectionMs: number; transactions: number }> {
  const { stdout } = await run(join(binDir, 'pgbench'), ['-S', '-C', '-c', '4', '-j', '2', '-n', '-T', String(seconds), '-h', 'localhost', '-p', String(target.port), '-U', target.user, 'bench'], {
    env: { ...process.env, PGPASSWORD: target.password, PGSSLMODE: 'require' },
    maxBuffer: 16 * 1024 * 1024,
    timeout: (seconds + 60) * 1000,
  });
  const conn = /average connection time = ([\d.]+) ms/.exec(stdout);
  const tx = /number of transactions actually processed: (\d+)/.exec(stdout);
  if (conn === null || tx === null) throw new Error(`pgbench output not understood: ${stdout}`);
  return { connectionMs: Number(conn[1]), transactions: Number(tx[1]) };
}

/**
 * `n` logins, `concurrency` at a time, each closed (Terminate) once logged in: rolegate's CPU per login
 * from /proc over the whole storm and each login's latency. `resumed`: every login offers the TLS
 * session its client slot got from its previous login.
 */
async function loginStorm(target: LoginTarget, rolegate: ServeProcess, n: number, concurrency: number, mode: 'fresh' | 'resumed'): Promise<{ cpuMsPerLogin: number; p50: number; p99: number; resumedShare: number; upstreamLogins: number }> {
  const latencies: number[] = [];
  let resumed = 0;
  let next = 0;
  const slot = async () => {
    let session: Buffer | undefined;
    if (mode === 'resumed') {
      const first = await login(target); // not timed: it only fetches a ticket
      await first.close();
      session = first.session();
    }
    return session;
  };
  const sessions = await Promise.all(Array.from({ length: concurrency }, slot));
  const upstream0 = await upstreamLogins(rolegate.adminUrl);
  const cpu0 = cpuSeconds(rolegate.child.pid);
  await Promise.all(sessions.map(async (initial) => {
    let session = initial;
    while (next < n) {
      next++;
      const l: Login = await login(target, mode === 'resumed' && session !== undefined ? { session } : {});
      latencies.push(l.ms);
      if (l.resumed) resumed++;
      await l.close();
      session = l.session() ?? session;
    }
  }));
  const cpu = cpuSeconds(rolegate.child.pid) - cpu0;
  const upstream = (await upstreamLogins(rolegate.adminUrl)) - upstream0;
  latencies.sort((a, b) => a - b);
  console.error(`${n} ${mode} logins at ${concurrency} concurrent: rolegate CPU ${cpu.toFixed(2)} s, p50 ${percentile(latencies, 0.5).toFixed(2)} ms, p99 ${percentile(latencies, 0.99).toFixed(2)} ms, resumed ${resumed}, new upstream logins ${upstream}`);
  return { cpuMsPerLogin: (cpu * 1000) / n, p50: percentile(latencies, 0.5), p99: percentile(latencies, 0.99), resumedShare: resumed / n, upstreamLogins: upstream };
}

/** Opens `n` authenticated sessions (50 at a time) and leaves them idle; RSS and JS heap before and after. */
async function idleSessions(target: LoginTarget & { tls: boolean }, rolegate: ServeProcess, n: number): Promise<{ beforeMiB: number; afterMiB: number; heapBeforeMiB: number; heapAfterMiB: number }> {
  // A few logins first, so the "before" includes what any first login loads (JIT, the token's cache entry).
  for (let i = 0; i < 5; i++) await (await login(target, { tls: target.tls })).close();
  await settle();
  const beforeMiB = rolegate.memory().rssMiB;
  const heapBeforeMiB = await heapUsedMiB(rolegate.adminUrl);
  const open: Login[] = [];
  for (let i = 0; i < n; i += 50) {
    open.push(...(await Promise.all(Array.from({ length: Math.min(50, n - i) }, () => login(target, { tls: target.tls })))));
  }
  await settle();
  const afterMiB = rolegate.memory().rssMiB;
  const heapAfterMiB = await heapUsedMiB(rolegate.adminUrl);
  await Promise.all(open.map((l) => l.close()));
  return { beforeMiB, afterMiB, heapBeforeMiB, heapAfterMiB };
}

/** Gives the server a moment to finish the logins' leftovers (timers, audit appends, a GC). */
const settle = (): Promise<void> => new Promise((r) => setTimeout(r, 1_500));

/** Upstream logins made so far (not served by the pool): the count of rolegate_upstream_connect_seconds. */
async function upstreamLogins(adminUrl: string): Promise<number> {
  const text = await (await fetch(`${adminUrl}/metrics`)).text();
  const m = /^rolegate_upstream_connect_seconds_count(?:\{[^}]*\})? (\d+)/m.exec(text);
  return m === null ? NaN : Number(m[1]);
}

async function heapUsedMiB(adminUrl: string): Promise<number> {
  const text = await (await fetch(`${adminUrl}/metrics`)).text();
  const m = /^nodejs_heap_size_used_bytes (\d+(?:\.\d+)?(?:e\+\d+)?)/m.exec(text);
  return m === null ? NaN : Number(m[1]) / 1024 / 1024;
}
