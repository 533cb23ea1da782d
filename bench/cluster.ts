// Several instances benchmark (issue 9, docs/design.md §8): how fast a SCIM deactivation ends a live
// session on the same instance and on another one sharing the store (p50/p99 over 100 trials), idle
// and while pgbench -S with 8 clients runs through the instance holding the sessions (issue 12), how
// long 200 concurrent deactivations of 200 people with live sessions take until the last 57P01 (on both
// stores), and how long an instance takes to catch up after missing 10,000 changes. TLS on both legs,
// as in the proxy benchmark.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, readFile } from 'node:fs/promises';
import { Agent, request } from 'node:http';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import pg from 'pg';
import { createCertificateAuthority, issueCert } from '../demo/certs.js';
import { startDevIssuer, type DevIssuer } from '../demo/dev-issuer.js';
import { startLocalPostgres } from '../demo/local-postgres.js';
import { percentile } from './http.js';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { cpuSeconds } from './proxy.js';
import type { BenchRow } from './scim.js';
import { startServeProcess, stopChild, type ServeProcess } from './serve-process.js';
import { median } from './stats.js';

export interface ClusterBenchOptions {
  dir: string;
  freePort: () => Promise<number>;
  trials: number;
  concurrent: number;
  missed: number;
}

const USER_URN = 'urn:ietf:params:scim:schemas:core:2.0:User';
const GROUP_URN = 'urn:ietf:params:scim:schemas:core:2.0:Group';
const PATCH_URN = 'urn:ietf:params:scim:api:messages:2.0:PatchOp';
const DEACTIVATE = { schemas: [PATCH_URN], Operations: [{ op: 'replace', value: { active: false } }] };

/** One keep-alive agent with room for every concurrent PATCH (the shared one in http.ts holds 64). */
const agent = new Agent({ keepAlive: true, maxSockets: 512 });

interface Instance {
  readonly serve: ServeProcess;
  readonly proxyPort: number;
  scim(path: string, method: string, body?: unknown): Promise<{ status: number; body: unknown }>;
}

export async function runClusterBench(opts: ClusterBenchOptions): Promise<BenchRow[]> {
  const stops: (() => Promise<void>)[] = [];
  try {
    const pgDir = join(opts.dir, 'pg');
    await mkdir(pgDir);
    const ca = await createCertificateAuthority(opts.dir);
    const server = await issueCert({ cn: 'localhost', ...ca, dir: opts.dir, fileName: 'server', sans: ['IP:127.0.0.1', 'DNS:localhost'] });
    const superPassword = randomBytes(12).toString('hex');
    const pgPort = await opts.freePort();
    const cluster = await startLocalPostgres({
      dir: pgDir,
      port: pgPort,
      superuserPassword: superPassword,
      tls: { certPath: server.certPath, keyPath: server.keyPath },
      hba: ['host all all 127.0.0.1/32 scram-sha-256'],
      // Two instances' worth of sessions, each with its upstream connection, plus the stores' pools.
      settings: { max_connections: String(4 * opts.concurrent + 200) },
    });
    stops.push(() => cluster.stop());
    const rolePassword = randomBytes(12).toString('hex');
    const admin = new pg.Client({ host: '127.0.0.1', port: pgPort, user: 'postgres', password: superPassword, database: 'postgres', ssl: { rejectUnauthorized: false } });
    await admin.connect();
    await admin.query(`CREATE ROLE bench_user LOGIN PASSWORD '${rolePassword}'`);
    await admin.query('CREATE DATABASE bench OWNER bench_user');
    await admin.query('CREATE DATABASE rolegate_store');
    await admin.end();
    // The tables pgbench -S reads for the load figures.
    await promisify(execFile)(join(cluster.binDir, 'pgbench'), ['-i', '-q', '-s', '1', '-h', '127.0.0.1', '-p', String(pgPort), '-U', 'bench_user', 'bench'], {
      env: { ...process.env, PGPASSWORD: rolePassword, PGSSLMODE: 'require' },
    });
    const storeUrl = `postgres://postgres:${superPassword}@127.0.0.1:${pgPort}/rolegate_store`;

    const issuerCert = await issueCert({ cn: '127.0.0.1', ...ca, dir: opts.dir, fileName: 'issuer', sans: ['IP:127.0.0.1', 'DNS:localhost'] });
    const caPem = await readFile(ca.caCertPath, 'utf8');
    const issuer = await startDevIssuer({
      audience: 'rolegate',
      tls: { cert: await readFile(issuerCert.certPath, 'utf8'), key: await readFile(issuerCert.keyPath, 'utf8'), ca: caPem },
    });
    stops.push(() => issuer.close());
    const scimToken = randomBytes(24).toString('base64url');

    const start = async (name: string, store: string, shared: boolean): Promise<Instance> => {
      const dir = join(opts.dir, name);
      await mkdir(dir);
      const [proxyPort, adminPort] = [await opts.freePort(), await opts.freePort()];
      // The heartbeat is long enough that an instance paused for the catch-up figure stays alive.
      const serve = await startServeProcess(dir, `
proxy: { listen: "127.0.0.1:${proxyPort}", tls: { cert: "${server.certPath}", key: "${server.keyPath}" }, maxConnections: ${4 * opts.concurrent} }
upstream: { host: 127.0.0.1, port: ${pgPort}, tls: { mode: verify-full, ca: "${ca.caCertPath}" } }
oidc: { issuer: "${issuer.issuer}", audience: rolegate, ca: "${ca.caCertPath}" }
roles: [{ role: bench_user, groups: [bench], databases: [bench], credentials: { password: "\${BENCH_ROLE_PASSWORD}" } }]
directory: { store: "${store}"${shared ? ', heartbeat: 10s' : ''} }
scim: { tokens: ["\${BENCH_SCIM_TOKEN}"] }
admin: { listen: "127.0.0.1:${adminPort}" }
log: { level: warn }
`, adminPort, { BENCH_ROLE_PASSWORD: rolePassword, BENCH_SCIM_TOKEN: scimToken, ROLEGATE_INSTANCE: name });
      stops.push(() => serve.stop());
      return { serve, proxyPort, scim: (path, method, body) => scimRequest(`${serve.adminUrl}/scim/v2${path}`, method, scimToken, body) };
    };
    const a = await start('a', storeUrl, true);
    const b = await start('b', storeUrl, true);
    const single = await start('sqlite', `sqlite:${join(opts.dir, 'sqlite', 'directory.db')}`, false);

    const rows: BenchRow[] = [];
    const people = new Map<Instance, string>();
    const groupOf = async (via: Instance): Promise<string> => {
      let id = people.get(via);
      if (id === undefined) {
        const res = await via.scim('/Groups', 'POST', { schemas: [GROUP_URN], displayName: 'bench' });
        if (res.status !== 201) throw new Error(`group: HTTP ${res.status}`);
        id = (res.body as { id: string }).id;
        people.set(via, id);
      }
      return id;
    };
    /** Creates `n` people through `via`, all in the group that grants bench_user; returns their emails and ids. */
    const provision = async (via: Instance, prefix: string, n: number): Promise<{ email: string; id: string }[]> => {
      const group = await groupOf(via);
      const out: { email: string; id: string }[] = [];
      for (let i = 0; i < n; i++) {
        const email = `${prefix}${i}@corp.example`;
        const res = await via.scim('/Users', 'POST', { schemas: [USER_URN], userName: email, active: true });
        if (res.status !== 201) throw new Error(`user: HTTP ${res.status}`);
        out.push({ email, id: (res.body as { id: string }).id });
      }
      const patched = await via.scim(`/Groups/${group}`, 'PATCH', { schemas: [PATCH_URN], Operations: [{ op: 'add', path: 'members', value: out.map((p) => ({ value: p.id })) }] });
      if (patched.status !== 200 && patched.status !== 204) throw new Error(`members: HTTP ${patched.status}`);
      return out;
    };

    // 1. Revocation latency: SCIM PATCH sent -> the session's client reads FATAL 57P01; idle, then
    // while pgbench -S with 8 clients runs through the instance holding the sessions.
    console.error('cluster bench: revocation latency ...');
    // The people pgbench logs in as (the SQLite instance has its own directory).
    const loadPeople = new Map<Instance, { email: string }>([[a, (await provision(a, 'load-', 1))[0] as { email: string }]]);
    loadPeople.set(b, loadPeople.get(a) as { email: string });
    loadPeople.set(single, (await provision(single, 'load-s-', 1))[0] as { email: string });
    for (const load of [false, true]) {
      for (const [label, writer, holder] of [
        ['SQLite store, one instance', single, single],
        ['PostgreSQL store, one instance', a, a],
        ['PostgreSQL store, across two instances', a, b],
      ] as const) {
        const tag = `${load ? 'load-' : ''}${holder === b ? 'b' : holder === a ? 'a' : 's'}`;
        const persons = await provision(writer, `rev-${tag}-`, opts.trials);
        const loader = loadPeople.get(holder) as { email: string };
        const pgbenchLoad = load ? await startLoad(cluster.binDir, holder.proxyPort, loader.email, await issuer.tokenFor(loader.email, { expiresInSec: 3600 })) : undefined;
        const ms: number[] = [];
        let tps: number | undefined;
        try {
          for (const p of persons) {
            const session = await openSession(issuer, holder.proxyPort, p.email, caPem);
            const t0 = performance.now();
            const res = await writer.scim(`/Users/${p.id}`, 'PATCH', DEACTIVATE);
            if (res.status !== 200) throw new Error(`deactivate: HTTP ${res.status}`);
            ms.push((await session.revoked) - t0);
          }
        } finally {
          tps = await pgbenchLoad?.stop();
        }
        const under = tps === undefined ? '' : ` under pgbench -S 8 clients (${tps.toFixed(0)} tps)`;
        rows.push({ name: `revocation, ${label}${under}: p50 (${opts.trials} trials)`, value: percentile(ms, 50), unit: 'ms' });
        rows.push({ name: `revocation, ${label}${under}: p99`, value: percentile(ms, 99), unit: 'ms', target: { op: '<=' as const, limit: 100 } });
      }
    }

    // 2. Bulk deprovisioning: N concurrent PATCHes for N people with live sessions.
    console.error('cluster bench: concurrent deactivations ...');
    for (const [label, writer, holder] of [
      ['SQLite store', single, single],
      ['PostgreSQL store, sessions on the other instance', a, b],
    ] as const) {
      const persons = await provision(writer, `bulk-${holder === b ? 'b' : 's'}-`, opts.concurrent);
      const sessions: Session[] = [];
      for (let i = 0; i < persons.length; i += 25) {
        sessions.push(...(await Promise.all(persons.slice(i, i + 25).map((p) => openSession(issuer, holder.proxyPort, p.email, caPem)))));
      }
      // An identity provider pushes over connections it keeps open: open them first, so that the
      // figure is the writes and the revocations, not libuv accepting 200 new connections (one per
      // turn of the event loop).
      await Promise.all(persons.map((p) => writer.scim(`/Users/${p.id}`, 'GET')));
      const cpu0 = [...new Set([writer, holder])].reduce((sum, i) => sum + cpuSeconds(i.serve.child.pid), 0);
      const t0 = performance.now();
      let lastAnswer = 0;
      await Promise.all(persons.map(async (p) => {
        const res = await writer.scim(`/Users/${p.id}`, 'PATCH', DEACTIVATE);
        if (res.status !== 200) throw new Error(`bulk deactivate: HTTP ${res.status}`);
        lastAnswer = Math.max(lastAnswer, performance.now() - t0);
      }));
      const ends = await Promise.all(sessions.map((s) => s.revoked));
      // What the instances spent, apart from waiting: independent of how busy the machine was.
      const cpu = [...new Set([writer, holder])].reduce((sum, i) => sum + cpuSeconds(i.serve.child.pid), 0) - cpu0;
      rows.push({ name: `${opts.concurrent} concurrent deactivations, ${label}: last answer`, value: lastAnswer, unit: 'ms', target: { op: '<=', limit: 1000 } });
      rows.push({ name: `${opts.concurrent} concurrent deactivations, ${label}: median 57P01`, value: percentile(ends.map((e) => e - t0), 50), unit: 'ms' });
      rows.push({ name: `${opts.concurrent} concurrent deactivations, ${label}: last 57P01`, value: Math.max(...ends) - t0, unit: 'ms', target: { op: '<=', limit: 1000 } });
      rows.push({ name: `${opts.concurrent} concurrent deactivations, ${label}: rolegate CPU (all instances)`, value: cpu * 1000, unit: 'ms' });
    }

    // 3. Catch-up: B is paused while A commits `missed` writes, then resumed.
    console.error('cluster bench: catch-up ...');
    const bPid = b.serve.child.pid;
    if (bPid === undefined) throw new Error('instance b has no pid');
    process.kill(bPid, 'SIGSTOP');
    let target: number;
    try {
      let next = 0;
      await Promise.all(Array.from({ length: 32 }, async () => {
        for (let i = next++; i < opts.missed; i = next++) {
          const res = await a.scim('/Users', 'POST', { schemas: [USER_URN], userName: `missed${i}@corp.example`, active: true });
          if (res.status !== 201) throw new Error(`missed write: HTTP ${res.status}`);
        }
      }));
      target = await logPosition(a.serve.adminUrl);
    } finally {
      process.kill(bPid, 'SIGCONT');
    }
    const t0 = performance.now();
    while ((await logPosition(b.serve.adminUrl)) < target) await new Promise((r) => setTimeout(r, 2));
    rows.push({ name: `catch-up after ${opts.missed.toLocaleString('en-US')} missed changes (resumed -> applied)`, value: performance.now() - t0, unit: 'ms' });
    return rows;
  } finally {
    agent.destroy();
    for (const stop of stops.reverse()) await stop().catch(() => undefined);
  }
}

interface Session {
  /** Resolves with performance.now() when the client read FATAL 57P01 "access revoked". */
  readonly revoked: Promise<number>;
}

async function openSession(issuer: DevIssuer, port: number, email: string, ca: string): Promise<Session> {
  const client = new pg.Client({ host: '127.0.0.1', port, user: email, password: await issuer.tokenFor(email), database: 'bench', ssl: { ca, servername: 'localhost' } });
  // The FATAL comes first; the close that follows is a second 'error', to be ignored.
  const revoked = new Promise<number>((resolve, reject) => {
    client.on('error', (err: Error & { code?: string }) => {
      const at = performance.now();
      if (err.code === '57P01' && err.message === 'access revoked') resolve(at);
      else reject(new Error(`the session of ${email} ended with ${err.code ?? ''} ${err.message} instead of 57P01 access revoked`));
    });
  });
  revoked.catch(() => undefined);
  await client.connect();
  await client.query('select 1');
  return { revoked };
}

/**
 * pgbench -S, 8 clients over TLS, through `port` until stopped; resolves once its first progress
 * report shows it running. `stop` ends it and gives the median of its per-second tps reports.
 */
async function startLoad(binDir: string, port: number, user: string, password: string): Promise<{ stop(): Promise<number> }> {
  const child = spawn(join(binDir, 'pgbench'), ['-S', '-M', 'simple', '-c', '8', '-j', '2', '-n', '-T', '3600', '-P', '1', '-h', '127.0.0.1', '-p', String(port), '-U', user, 'bench'], {
    env: { ...process.env, PGPASSWORD: password, PGSSLMODE: 'require' },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const tps: number[] = [];
  let said = '';
  let running: () => void = () => undefined;
  const started = new Promise<void>((resolve, reject) => {
    running = resolve;
    child.once('exit', (code) => reject(new Error(`pgbench load exited ${code}: ${said.trim().split('\n').slice(-3).join(' | ')}`)));
  });
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (text: string) => {
    said = (said + text).slice(-4096);
    for (const m of text.matchAll(/progress: [\d.]+ s, ([\d.]+) tps/g)) {
      tps.push(Number(m[1]));
      running();
    }
  });
  await started;
  return {
    stop: async () => {
      await stopChild(child);
      return median(tps);
    },
  };
}

async function logPosition(adminUrl: string): Promise<number> {
  const text = await (await fetch(`${adminUrl}/metrics`)).text();
  return Number(/^rolegate_directory_log_position (\S+)$/m.exec(text)?.[1] ?? NaN);
}

/**
 * One SCIM request; a reused keep-alive socket that the server closed meanwhile (ECONNRESET before an
 * answer) is retried once on a new one, as an identity provider's client would.
 */
async function scimRequest(url: string, method: string, token: string, body?: unknown): Promise<{ status: number; body: unknown }> {
  try {
    return await scimRequestOnce(url, method, token, body);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ECONNRESET') throw err;
    return scimRequestOnce(url, method, token, body);
  }
}

function scimRequestOnce(url: string, method: string, token: string, body?: unknown): Promise<{ status: number; body: unknown }> {
  const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
  return new Promise((resolve, reject) => {
    const req = request(url, {
      method,
      agent,
      headers: {
        authorization: `Bearer ${token}`,
        ...(payload ? { 'content-type': 'application/scim+json', 'content-length': payload.length } : {}),
      },
    }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        resolve({ status: res.statusCode ?? 0, body: text ? (JSON.parse(text) as unknown) : undefined });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(payload);
  });
}
