// `npm run bench`: runs the benchmarks, prints one row per figure with its target, and exits 1 when a
// target is missed. Options: --only scim|proxy|logins|audit|provision|cluster|workers, --users N, --groups N,
// --store sqlite|postgres, --seconds N (per pgbench run), --rounds N, --idle N (idle sessions for the
// memory figure), --audit-bytes N (size of the generated audit file searched, default 1 GB), --people N
// (per-user provisioning's bulk figures), --trials N (revocations timed), --concurrent N (concurrent
// deactivations), --missed N (changes an instance misses before the catch-up figure), --logins N and
// --login-concurrency N (the login figures: 2,000 logins, 50 at a time), --login-parts connect,cpu,memory.
// BENCH_SERVE_NODE_ARGS adds node flags to the `rolegate serve` under test (e.g. --cpu-prof).
// BENCH_AUDIT_AA=1 runs the audit figure's two gateways both with statement auditing off: the noise floor.
// BENCH_AUDIT_VARIANT=<another checkout>/bin/rolegate.js adds a third audit gateway, auditing, run from that
// build, measured round by round against this one's (a change to the audit's path, like for like).
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, mkdtemp, rm } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { createCertificateAuthority, issueCert } from '../demo/certs.js';
import { startLocalPostgres } from '../demo/local-postgres.js';
import { freeLoopbackPort as freePort } from '../demo/ports.js';
import { runProvisionBench } from './provision.js';
import { runAuditBench } from './audit.js';
import { runClusterBench } from './cluster.js';
import { runLoginBench } from './logins.js';
import { runProxyBench } from './proxy.js';
import { runScimBench, type BenchRow } from './scim.js';
import { runWorkersBench } from './workers.js';

const { values } = parseArgs({
  options: {
    only: { type: 'string' },
    users: { type: 'string', default: '100000' },
    groups: { type: 'string', default: '1000' },
    store: { type: 'string', default: 'sqlite' },
    seconds: { type: 'string', default: '10' },
    rounds: { type: 'string', default: '2' },
    idle: { type: 'string', default: '1000' },
    people: { type: 'string', default: '10000' },
    'audit-bytes': { type: 'string', default: '1000000000' },
    trials: { type: 'string', default: '100' },
    concurrent: { type: 'string', default: '200' },
    missed: { type: 'string', default: '10000' },
    logins: { type: 'string', default: '2000' },
    'login-concurrency': { type: 'string', default: '50' },
    'login-parts': { type: 'string', default: 'connect,cpu,memory' },
  },
});

function print(title: string, rows: BenchRow[]): boolean {
  let ok = true;
  console.log(`\n## ${title}\n`);
  console.log('| figure | value | target | |');
  console.log('|---|---:|---:|---|');
  for (const r of rows) {
    const value = r.value >= 100 ? r.value.toFixed(0) : r.value >= 10 ? r.value.toFixed(1) : r.value.toFixed(3);
    let verdict = '';
    if (r.target) {
      const pass = r.target.op === '>=' ? r.value >= r.target.limit : r.value <= r.target.limit;
      ok &&= pass;
      verdict = pass ? 'PASS' : 'FAIL';
    }
    console.log(`| ${r.name} | ${value} ${r.unit} | ${r.target ? `${r.target.op} ${r.target.limit} ${r.unit}` : ''} | ${verdict} |`);
  }
  return ok;
}

async function main(): Promise<number> {
  const dir = await mkdtemp(join(tmpdir(), 'rolegate-bench-'));
  // The PostgreSQL and pgbouncer children run as the postgres user and must traverse this folder.
  await chmod(dir, 0o755);
  let ok = true;
  const stops: (() => Promise<void>)[] = [];
  // The OpenSSL that Node bundles sets much of a TLS session's memory and a handshake's CPU (README,
  // Benchmarks: Node 22.23 and 24 bundle OpenSSL 3.5, Node 20 3.0), so every run says which it is.
  console.log(`runtime: node ${process.version}, OpenSSL ${process.versions.openssl}, V8 ${process.versions.v8}`);
  try {
    if (values.only === undefined || values.only === 'scim') {
      let store = `sqlite:${join(dir, 'directory.db')}`;
      if (values.store === 'postgres') {
        const pgDir = join(dir, 'pg');
        await mkdir(pgDir);
        const ca = await createCertificateAuthority(pgDir);
        const cert = await issueCert({ cn: 'localhost', ...ca, dir: pgDir, fileName: 'server' });
        const password = randomBytes(12).toString('hex');
        const port = await freePort();
        const pg = await startLocalPostgres({
          dir: pgDir, port, superuserPassword: password,
          tls: { certPath: cert.certPath, keyPath: cert.keyPath },
          hba: ['host all all 127.0.0.1/32 scram-sha-256'],
        });
        stops.push(() => pg.stop());
        store = `postgres://postgres:${password}@127.0.0.1:${port}/postgres?sslmode=verify-full&sslrootcert=${encodeURIComponent(ca.caCertPath)}`;
      }
      const rows = await runScimBench({
        dir,
        adminPort: await freePort(),
        store,
        users: Number(values.users),
        groups: Number(values.groups),
      });
      ok = print(`SCIM directory (${values.users} users, ${values.groups} groups, ${values.store} store)`, rows) && ok;
    }
    if (values.only === undefined || values.only === 'proxy') {
      const proxyDir = join(dir, 'proxy');
      await mkdir(proxyDir);
      const rows = await runProxyBench({
        dir: proxyDir,
        freePort,
        seconds: Number(values.seconds),
        rounds: Number(values.rounds),
        idleSessions: Number(values.idle),
      });
      ok = print(`Proxy: pgbench, ${values.seconds}s per run, median of ${values.rounds} alternating rounds, TLS on both legs and plain TCP on both legs`, rows) && ok;
    }
    if (values.only === undefined || values.only === 'logins') {
      const loginsDir = join(dir, 'logins');
      await mkdir(loginsDir);
      const rows = await runLoginBench({
        dir: loginsDir,
        freePort,
        seconds: Number(values.seconds),
        rounds: Number(values.rounds),
        logins: Number(values.logins),
        concurrency: Number(values['login-concurrency']),
        idleSessions: Number(values.idle),
        parts: new Set(values['login-parts'].split(',') as ('connect' | 'cpu' | 'memory')[]),
      });
      const load = loadavg().map((l) => l.toFixed(1)).join(' ');
      ok = print(`Logins: pgbench -S -C (${values.seconds}s per run, median of ${values.rounds} alternating rounds), ${values.logins} logins at ${values['login-concurrency']} concurrent, ${values.idle} idle sessions; TLS on every leg (ECDSA P-256 certificates for every target), load average ${load}`, rows) && ok;
    }
    if (values.only === undefined || values.only === 'provision') {
      const provisionDir = join(dir, 'provision');
      await mkdir(provisionDir);
      const rows = await runProvisionBench({ dir: provisionDir, freePort, people: Number(values.people), creates: 100 });
      ok = print('Per-user provisioning (a PostgreSQL of its own, SQLite directory)', rows) && ok;
    }
    if (values.only === undefined || values.only === 'audit') {
      const auditDir = join(dir, 'audit');
      await mkdir(auditDir);
      const rows = await runAuditBench({
        dir: auditDir,
        freePort,
        seconds: Number(values.seconds),
        rounds: Number(values.rounds),
        searchBytes: Number(values['audit-bytes']),
      });
      ok = print(`Audit: pgbench -S 8 clients with statement auditing on and off (${values.seconds}s per run, median of ${values.rounds} alternating rounds); search over a generated file`, rows) && ok;
    }
    if (values.only === undefined || values.only === 'cluster') {
      const clusterDir = join(dir, 'cluster');
      await mkdir(clusterDir);
      const rows = await runClusterBench({
        dir: clusterDir,
        freePort,
        trials: Number(values.trials),
        concurrent: Number(values.concurrent),
        missed: Number(values.missed),
      });
      const load = loadavg().map((l) => l.toFixed(1)).join(' ');
      ok = print(`Several instances: revocation, bulk deprovisioning, catch-up (two \`rolegate serve\` on one PostgreSQL store, and one on SQLite; load average ${load})`, rows) && ok;
    }
    if (values.only === undefined || values.only === 'workers') {
      const workersDir = join(dir, 'workers');
      await mkdir(workersDir);
      const rows = await runWorkersBench({ dir: workersDir, freePort, seconds: Number(values.seconds), rounds: Number(values.rounds) });
      ok = print(`Workers: pgbench 8 clients through rolegate with 1 and 2 workers (PostgreSQL store) and pgbouncer, TLS both legs (${values.seconds}s per run, median of ${values.rounds} alternating rounds)`, rows) && ok;
    }
  } finally {
    for (const stop of stops) await stop();
    await rm(dir, { recursive: true, force: true });
  }
  console.log(ok ? '\nall targets met' : '\nsome targets missed');
  return ok ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(`bench failed: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  },
);
