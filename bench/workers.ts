// Workers benchmark (issue 12, docs/design.md §8 Workers): pgbench -S, 8 clients, simple and extended,
// and -C (a login per transaction), TLS on both legs, through rolegate with 1 and 2 workers on a
// PostgreSQL store (2 workers handed connections round-robin by the supervisor, and with
// NODE_CLUSTER_SCHED_POLICY=none, where the workers accept on the shared socket themselves), with
// pgbouncer (session mode) alongside. Targets alternate round by round; every raw run is printed.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { mkdir, readFile } from 'node:fs/promises';
import { availableParallelism, cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { createCertificateAuthority, issueCert } from '../demo/certs.js';
import { startDevIssuer } from '../demo/dev-issuer.js';
import { startLocalPostgres } from '../demo/local-postgres.js';
import { cpuSeconds, pgbench, provisionBenchPerson } from './proxy.js';
import { startPgbouncer } from './targets.js';
import type { BenchRow } from './scim.js';
import { startServeProcess, type ServeProcess } from './serve-process.js';
import { median } from './stats.js';

const run = promisify(execFile);

export interface WorkersBenchOptions {
  dir: string;
  freePort: () => Promise<number>;
  seconds: number;
  rounds: number;
}

const WORKLOADS = [
  { name: '-S simple, 8 clients', args: ['-S', '-M', 'simple', '-c', '8', '-j', '2'] },
  { name: '-S extended, 8 clients', args: ['-S', '-M', 'extended', '-c', '8', '-j', '2'] },
  { name: '-S -C (a login per transaction), 8 clients', args: ['-S', '-C', '-c', '8', '-j', '2'] },
] as const;

const TARGETS = ['pgbouncer', 'rolegate 1 worker', 'rolegate 2 workers', 'rolegate 2 workers, SCHED_NONE'] as const;
type Target = (typeof TARGETS)[number];

/** The pool both proxies keep per process (pgbouncer's default_pool_size, rolegate's upstream.pool.idle). */
const POOL = 20;

export async function runWorkersBench(opts: WorkersBenchOptions): Promise<BenchRow[]> {
  const stops: (() => Promise<void>)[] = [];
  try {
    const pgDir = join(opts.dir, 'pg');
    await mkdir(pgDir);
    const ca = await createCertificateAuthority(opts.dir);
    const server = await issueCert({ cn: 'localhost', ...ca, dir: opts.dir, fileName: 'server' });
    const superPassword = randomBytes(12).toString('hex');
    const pgPort = await opts.freePort();
    const cluster = await startLocalPostgres({
      dir: pgDir,
      port: pgPort,
      superuserPassword: superPassword,
      tls: { certPath: server.certPath, keyPath: server.keyPath },
      hba: ['host all all 127.0.0.1/32 scram-sha-256'],
      settings: { max_connections: '400' },
    });
    stops.push(() => cluster.stop());
    const rolePassword = randomBytes(12).toString('hex');
    const admin = new pg.Client({ host: '127.0.0.1', port: pgPort, user: 'postgres', password: superPassword, database: 'postgres', ssl: { rejectUnauthorized: false } });
    await admin.connect();
    await admin.query(`CREATE ROLE bench_user LOGIN PASSWORD '${rolePassword}'`);
    await admin.query('CREATE DATABASE bench OWNER bench_user');
    // The directory store every rolegate instance and worker shares (here on the same cluster).
    await admin.query('CREATE DATABASE rolegate_store');
    const { rows: versionRows } = await admin.query<{ v: string }>('select version() as v');
    await admin.end();
    await run(join(cluster.binDir, 'pgbench'), ['-i', '-q', '-s', '1', '-h', '127.0.0.1', '-p', String(pgPort), '-U', 'bench_user', 'bench'], {
      env: { ...process.env, PGPASSWORD: rolePassword, PGSSLMODE: 'require' },
    });
    const storeUrl = `postgres://postgres:${superPassword}@127.0.0.1:${pgPort}/rolegate_store?sslmode=verify-full&sslrootcert=${encodeURIComponent(ca.caCertPath)}`;

    const bouncerPort = await opts.freePort();
    const bouncer = await startPgbouncer(join(opts.dir, 'pgbouncer'), { transport: 'tls', poolSize: POOL, bouncerPort, pgPort, rolePassword, certPath: server.certPath, keyPath: server.keyPath, caPath: ca.caCertPath });
    stops.push(bouncer.stop);

    const issuerCert = await issueCert({ cn: '127.0.0.1', ...ca, dir: opts.dir, fileName: 'issuer', sans: ['IP:127.0.0.1', 'DNS:localhost'] });
    const caPem = await readFile(ca.caCertPath, 'utf8');
    const issuer = await startDevIssuer({
      audience: 'rolegate',
      tls: { cert: await readFile(issuerCert.certPath, 'utf8'), key: await readFile(issuerCert.keyPath, 'utf8'), ca: caPem },
    });
    stops.push(() => issuer.close());
    const scimToken = randomBytes(24).toString('base64url');

    /** One `rolegate serve` with `workers` workers on the shared store, ready on every worker. */
    const startRolegate = async (name: string, workers: number, env: Record<string, string> = {}) => {
      const dir = join(opts.dir, name);
      await mkdir(dir);
      const [proxyPort, adminPort] = [await opts.freePort(), await opts.freePort()];
      const serve = await startServeProcess(dir, `
proxy: { listen: "127.0.0.1:${proxyPort}", tls: { cert: "${server.certPath}", key: "${server.keyPath}" }, workers: ${workers} }
upstream: { host: 127.0.0.1, port: ${pgPort}, tls: { mode: verify-full, ca: "${ca.caCertPath}" }, pool: { idle: ${POOL} } }
oidc: { issuer: "${issuer.issuer}", audience: rolegate, ca: "${ca.caCertPath}" }
roles: [{ role: bench_user, groups: [bench], databases: [bench], credentials: { password: "\${BENCH_ROLE_PASSWORD}" } }]
directory: { store: "\${BENCH_STORE_URL}" }
scim: { tokens: ["\${BENCH_SCIM_TOKEN}"] }
admin: { listen: "127.0.0.1:${adminPort}" }
audit: { file: "${join(dir, 'audit', 'rolegate.jsonl')}" }
log: { level: warn }
`, adminPort, { BENCH_ROLE_PASSWORD: rolePassword, BENCH_SCIM_TOKEN: scimToken, BENCH_STORE_URL: storeUrl, ROLEGATE_INSTANCE: name, ...env });
      stops.push(() => serve.stop());
      await untilReady(serve);
      return { serve, proxyPort };
    };
    const one = await startRolegate('rg1', 1);
    await provisionBenchPerson(one.serve.adminUrl, scimToken);
    const two = await startRolegate('rg2', 2);
    const twoNone = await startRolegate('rg2none', 2, { NODE_CLUSTER_SCHED_POLICY: 'none' });
    const token = await issuer.tokenFor('bench@corp.example', { expiresInSec: 3600 });

    const targets: Record<Target, { port: number; user: string; password: string; pids: () => number[]; workerPids: () => number[] }> = {
      pgbouncer: { port: bouncerPort, user: 'bench_user', password: rolePassword, pids: () => [bouncer.pid()].filter((p): p is number => p !== undefined), workerPids: () => [] },
      'rolegate 1 worker': { port: one.proxyPort, user: 'bench@corp.example', password: token, pids: () => tree(one.serve), workerPids: () => [] },
      'rolegate 2 workers': { port: two.proxyPort, user: 'bench@corp.example', password: token, pids: () => tree(two.serve), workerPids: () => childrenOf(two.serve.child.pid) },
      'rolegate 2 workers, SCHED_NONE': { port: twoNone.proxyPort, user: 'bench@corp.example', password: token, pids: () => tree(twoNone.serve), workerPids: () => childrenOf(twoNone.serve.child.pid) },
    };
    console.log(`\nmachine: ${availableParallelism()} CPUs (${cpus()[0]?.model ?? '?'}), load average ${loadavg().map((l) => l.toFixed(1)).join(' ')} before the runs; node ${process.version}; ${versionRows[0]?.v.split(',')[0] ?? ''}; ${await version('/usr/sbin/pgbouncer')}; rolegate ${await commit()}`);
    console.log(`pools: pgbouncer session mode default_pool_size ${POOL}; rolegate upstream.pool.idle ${POOL} per worker; TLS 1.3 on both legs of every target; PostgreSQL store (on the upstream's cluster)`);
    console.log('\n| round | workload | target | tps | CPU s (all processes of the target) | CPU per tx | context switches per tx | busiest worker\'s share |');
    console.log('|---|---|---|---:|---:|---:|---:|---:|');

    // A fresh worker fetches the issuer's keys and fills its upstream pool at its first logins, and
    // under a busy machine that can outlast a short run: every target is warmed up first, unmeasured.
    for (const t of TARGETS) await pgbench(cluster.binDir, targets[t], ['-S', '-c', '8', '-j', '2'], 2).catch(() => 0);

    const tps = new Map<string, number[]>();
    const cpuPerTx = new Map<string, number[]>();
    const switchesPerTx = new Map<string, number[]>();
    const busiest = new Map<string, number[]>();
    const supervisorShare = new Map<string, number[]>();
    for (let round = 0; round < opts.rounds; round++) {
      for (const w of WORKLOADS) {
        const order = round % 2 === 0 ? [...TARGETS] : [...TARGETS].reverse();
        for (const t of order) {
          const target = targets[t];
          const pids = target.pids();
          const workerPids = target.workerPids();
          const before = pids.map(cpuSeconds);
          const switchesBefore = contextSwitches(pids);
          const workersBefore = workerPids.map(cpuSeconds);
          // A run without a single transaction (logins that outlast the run on a starved machine: each
          // waits for its session.start line's fdatasync) is printed and left out of the medians.
          const value = await pgbench(cluster.binDir, target, [...w.args], opts.seconds).catch((err: unknown) => {
            console.log(`| ${round + 1} | ${w.name} | ${t} | no result: ${String(err).split('\n')[0]} | | | | |`);
            return undefined;
          });
          if (value === undefined) continue;
          const used = pids.map((p, i) => cpuSeconds(p) - (before[i] ?? NaN));
          const total = used.reduce((a, b) => a + b, 0);
          const switches = (contextSwitches(pids) - switchesBefore) / (value * opts.seconds);
          const key = `${w.name}|${t}`;
          push(tps, key, value);
          push(cpuPerTx, key, (total * 1e6) / (value * opts.seconds));
          push(switchesPerTx, key, switches);
          let share = '';
          if (workerPids.length > 0) {
            const perWorker = workerPids.map((p, i) => cpuSeconds(p) - (workersBefore[i] ?? NaN));
            const sum = perWorker.reduce((a, b) => a + b, 0);
            const top = Math.max(...perWorker) / sum;
            push(busiest, key, top);
            push(supervisorShare, key, (used[0] ?? 0) / total);
            share = top.toFixed(2);
          }
          console.log(`| ${round + 1} | ${w.name} | ${t} | ${value.toFixed(0)} | ${total.toFixed(2)} | ${((total * 1e6) / (value * opts.seconds)).toFixed(0)} µs | ${switches.toFixed(2)} | ${share} |`);
        }
      }
    }

    const rows: BenchRow[] = [];
    for (const w of WORKLOADS) {
      const bouncerTps = median(tps.get(`${w.name}|pgbouncer`));
      for (const t of TARGETS) {
        const key = `${w.name}|${t}`;
        rows.push({ name: `${w.name}: ${t} tps`, value: median(tps.get(key)), unit: 'tps' });
        rows.push({ name: `${w.name}: ${t} CPU per transaction`, value: median(cpuPerTx.get(key)), unit: 'µs' });
        rows.push({ name: `${w.name}: ${t} context switches per transaction`, value: median(switchesPerTx.get(key)), unit: '' });
        if (t !== 'pgbouncer') rows.push({ name: `${w.name}: ${t} / pgbouncer`, value: median(tps.get(key)) / bouncerTps, unit: 'x' });
      }
      rows.push({
        name: `${w.name}: 2 workers / 1 worker`,
        value: median(tps.get(`${w.name}|rolegate 2 workers`)) / median(tps.get(`${w.name}|rolegate 1 worker`)),
        unit: 'x',
      });
      // Round-robin hand-off must give both workers work (the promise of using more cores); the
      // supervisor's own share is what that hand-off costs.
      rows.push({ name: `${w.name}: 2 workers, busiest worker's share of the workers' CPU`, value: median(busiest.get(`${w.name}|rolegate 2 workers`)), unit: '', target: { op: '<=', limit: 0.75 } });
      rows.push({ name: `${w.name}: 2 workers, the supervisor's share of all CPU`, value: median(supervisorShare.get(`${w.name}|rolegate 2 workers`)), unit: '' });
      rows.push({ name: `${w.name}: 2 workers SCHED_NONE, busiest worker's share of the workers' CPU`, value: median(busiest.get(`${w.name}|rolegate 2 workers, SCHED_NONE`)), unit: '' });
    }
    rows.push({ name: 'rolegate 1 worker: RSS', value: rssMiB(tree(one.serve)), unit: 'MiB' });
    rows.push({ name: 'rolegate 2 workers: RSS of supervisor + workers', value: rssMiB(tree(two.serve)), unit: 'MiB' });
    rows.push({ name: 'rolegate 2 workers: RSS of the supervisor alone', value: rssMiB([two.serve.child.pid ?? -1]), unit: 'MiB' });
    return rows;
  } finally {
    for (const stop of stops.reverse()) await stop().catch(() => undefined);
  }
}

function push(m: Map<string, number[]>, key: string, value: number): void {
  m.set(key, [...(m.get(key) ?? []), value]);
}

/** Waits for /readyz: with workers, 200 means every worker serves (/healthz answers from any one). */
async function untilReady(serve: ServeProcess): Promise<void> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const res = await fetch(`${serve.adminUrl}/readyz`).catch(() => undefined);
    if (res?.status === 200) return;
    if (Date.now() > deadline) throw new Error(`rolegate did not become ready: ${res?.status} ${await res?.text()}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** The serve process and its workers. */
function tree(serve: ServeProcess): number[] {
  const pid = serve.child.pid;
  return pid === undefined ? [] : [pid, ...childrenOf(pid)];
}

function childrenOf(pid: number | undefined): number[] {
  if (pid === undefined) return [];
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter((x) => x !== '').map(Number);
  } catch {
    return [];
  }
}

/**
 * Voluntary and involuntary context switches of every thread of `pids` so far: how often the
 * proxy went to sleep and woke up, which on a busy machine costs more than the work done per wake-up.
 */
function contextSwitches(pids: number[]): number {
  let n = 0;
  for (const pid of pids) {
    let tasks: string[] = [];
    try {
      tasks = readdirSync(`/proc/${pid}/task`);
    } catch {
      continue;
    }
    for (const tid of tasks) {
      try {
        const status = readFileSync(`/proc/${pid}/task/${tid}/status`, 'utf8');
        n += Number(/^voluntary_ctxt_switches:\s+(\d+)/m.exec(status)?.[1] ?? 0) + Number(/^nonvoluntary_ctxt_switches:\s+(\d+)/m.exec(status)?.[1] ?? 0);
      } catch {
        // the thread ended
      }
    }
  }
  return n;
}

function rssMiB(pids: number[]): number {
  let kb = 0;
  for (const pid of pids) {
    try {
      kb += Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? NaN);
    } catch {
      kb = NaN;
    }
  }
  return kb / 1024;
}

async function version(bin: string): Promise<string> {
  return (await run(bin, ['--version']).then((r) => r.stdout.split('\n')[0] ?? '', () => `${bin}: ?`)).trim();
}

async function commit(): Promise<string> {
  return (await run('git', ['rev-parse', '--short', 'HEAD']).then((r) => r.stdout, () => '?')).trim();
}
