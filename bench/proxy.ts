// Proxy benchmark (issue 3): pgbench against direct PostgreSQL, pgbouncer (session mode) and rolegate,
// alternating targets round by round on the same machine, TLS on every client connection; plus
// rolegate's resident memory with 1,000 idle sessions.
import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { chmod, chown, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { createCertificateAuthority, issueCert } from '../demo/certs.js';
import { createTokenVerifier } from '../proxy/auth/index.js';
import { startDevIssuer } from '../demo/dev-issuer.js';
import { startLocalPostgres } from '../demo/local-postgres.js';
import type { BenchRow } from './scim.js';
import { startServeProcess } from './serve-process.js';

const run = promisify(execFile);

export interface ProxyBenchOptions {
  dir: string;
  freePort: () => Promise<number>;
  seconds: number;
  rounds: number;
  idleSessions: number;
}

interface Workload {
  name: string;
  args: string[];
}

const WORKLOADS: Workload[] = [
  { name: 'select-only simple, 1 client', args: ['-S', '-M', 'simple', '-c', '1', '-j', '1'] },
  { name: 'select-only simple, 8 clients', args: ['-S', '-M', 'simple', '-c', '8', '-j', '2'] },
  { name: 'select-only extended, 1 client', args: ['-S', '-M', 'extended', '-c', '1', '-j', '1'] },
  { name: 'select-only extended, 8 clients', args: ['-S', '-M', 'extended', '-c', '8', '-j', '2'] },
  { name: 'new connection per transaction (-C), 4 clients', args: ['-S', '-C', '-c', '4', '-j', '2'] },
];

type Target = 'direct' | 'pgbouncer' | 'rolegate';

const isRoot = (): boolean => process.getuid?.() === 0;

/** Runs the proxy benchmark; returns rows including ratio rows. */
export async function runProxyBench(opts: ProxyBenchOptions): Promise<BenchRow[]> {
  const stops: (() => Promise<void>)[] = [];
  try {
    // PostgreSQL with TLS and SCRAM, sized for 1,000+ idle sessions.
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
      settings: { max_connections: String(opts.idleSessions + 100) },
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

    // pgbouncer, session mode, TLS on both sides like rolegate.
    const bouncerPort = await opts.freePort();
    const bouncer = await startPgbouncer(opts.dir, { bouncerPort, pgPort, rolePassword, certPath: server.certPath, keyPath: server.keyPath, caPath: ca.caCertPath });
    stops.push(bouncer.stop);

    // A development issuer and rolegate with one person in the group that grants bench_user.
    const issuerCert = await issueCert({ cn: '127.0.0.1', ...ca, dir: opts.dir, fileName: 'issuer', sans: ['IP:127.0.0.1', 'DNS:localhost'] });
    const caPem = await readFile(ca.caCertPath, 'utf8');
    const issuer = await startDevIssuer({
      audience: 'rolegate',
      tls: { cert: await readFile(issuerCert.certPath, 'utf8'), key: await readFile(issuerCert.keyPath, 'utf8'), ca: caPem },
    });
    stops.push(() => issuer.close());
    const scimToken = randomBytes(24).toString('base64url');
    const [proxyPort, adminPort] = [await opts.freePort(), await opts.freePort()];
    const rolegate = await startServeProcess(opts.dir, `
proxy: { listen: "127.0.0.1:${proxyPort}", tls: { cert: "${server.certPath}", key: "${server.keyPath}" }, maxConnections: ${opts.idleSessions + 100} }
upstream: { host: 127.0.0.1, port: ${pgPort}, tls: { mode: verify-full, ca: "${ca.caCertPath}" }, pool: { idle: 20 } }
oidc: { issuer: "${issuer.issuer}", audience: rolegate, ca: "${ca.caCertPath}" }
roles: [{ role: bench_user, groups: [bench], databases: [bench], credentials: { password: "\${BENCH_ROLE_PASSWORD}" } }]
directory: { store: "sqlite:${join(opts.dir, 'proxy-directory.db')}" }
scim: { tokens: ["\${BENCH_SCIM_TOKEN}"] }
admin: { listen: "127.0.0.1:${adminPort}" }
log: { level: warn }
`, adminPort, { BENCH_ROLE_PASSWORD: rolePassword, BENCH_SCIM_TOKEN: scimToken });
    stops.push(() => rolegate.stop());
    await provisionBenchPerson(rolegate.adminUrl, scimToken);
    const token = await issuer.tokenFor('bench@corp.example', { expiresInSec: 3600 });
    const cachedVerifyUs = await measureCachedVerify(issuer.issuer, caPem, token);

    const targets: Record<Target, { port: number; user: string; password: string }> = {
      direct: { port: pgPort, user: 'bench_user', password: rolePassword },
      pgbouncer: { port: bouncerPort, user: 'bench_user', password: rolePassword },
      rolegate: { port: proxyPort, user: 'bench@corp.example', password: token },
    };
    const tps = new Map<string, number[]>();
    // CPU the proxy process spent per transaction: how much machine each proxy costs, apart from latency.
    const cpuPerTx = new Map<string, number[]>();
    const proxyPid: Record<Target, () => number | undefined> = { direct: () => undefined, pgbouncer: bouncer.pid, rolegate: () => rolegate.child.pid };
    for (let round = 0; round < opts.rounds; round++) {
      for (const w of WORKLOADS) {
        // Alternate the order each round so no target always runs on a warmer machine.
        const order: Target[] = round % 2 === 0 ? ['direct', 'pgbouncer', 'rolegate'] : ['rolegate', 'pgbouncer', 'direct'];
        for (const t of order) {
          const cpu0 = cpuSeconds(proxyPid[t]());
          const value = await pgbench(cluster.binDir, targets[t], w.args, opts.seconds);
          const cpu = cpuSeconds(proxyPid[t]()) - cpu0;
          const key = `${w.name}|${t}`;
          tps.set(key, [...(tps.get(key) ?? []), value]);
          if (!Number.isNaN(cpu)) cpuPerTx.set(key, [...(cpuPerTx.get(key) ?? []), (cpu * 1e6) / (value * opts.seconds)]);
        }
      }
    }
    const rows: BenchRow[] = [{ name: 'token verification, cached (per login)', value: cachedVerifyUs, unit: 'µs', target: { op: '<=', limit: 50 } }];
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;
    for (const w of WORKLOADS) {
      const [d, b, r] = (['direct', 'pgbouncer', 'rolegate'] as const).map((t) => median(tps.get(`${w.name}|${t}`) ?? []));
      rows.push({ name: `${w.name}: direct tps`, value: d!, unit: 'tps' });
      rows.push({ name: `${w.name}: pgbouncer tps`, value: b!, unit: 'tps' });
      rows.push({ name: `${w.name}: rolegate tps`, value: r!, unit: 'tps' });
      rows.push({ name: `${w.name}: rolegate/direct`, value: r! / d!, unit: 'x' });
      rows.push({ name: `${w.name}: rolegate/pgbouncer`, value: r! / b!, unit: 'x' });
      rows.push({ name: `${w.name}: pgbouncer CPU per transaction`, value: median(cpuPerTx.get(`${w.name}|pgbouncer`) ?? []), unit: 'µs' });
      rows.push({ name: `${w.name}: rolegate CPU per transaction`, value: median(cpuPerTx.get(`${w.name}|rolegate`) ?? []), unit: 'µs' });
    }

    // 1,000 idle sessions through rolegate: its resident memory before and after.
    const before = rolegate.memory().rssMiB;
    const clients: pg.Client[] = [];
    for (let i = 0; i < opts.idleSessions; i += 50) {
      const batch = Array.from({ length: Math.min(50, opts.idleSessions - i) }, async () => {
        const c = new pg.Client({ host: 'localhost', port: proxyPort, user: 'bench@corp.example', password: token, database: 'bench', ssl: { ca: caPem } });
        c.on('error', () => {});
        await c.connect();
        clients.push(c);
      });
      await Promise.all(batch);
    }
    const after = rolegate.memory().rssMiB;
    await Promise.all(clients.map((c) => c.end().catch(() => undefined)));
    rows.push({ name: `rolegate RSS with ${opts.idleSessions} idle sessions`, value: after, unit: 'MiB' });
    rows.push({ name: `rolegate RSS per idle session`, value: ((after - before) * 1024) / opts.idleSessions, unit: 'KiB' });
    return rows;
  } finally {
    for (const stop of stops.reverse()) await stop().catch(() => undefined);
  }
}

async function pgbench(binDir: string, target: { port: number; user: string; password: string }, args: string[], seconds: number): Promise<number> {
  const { stdout } = await run(join(binDir, 'pgbench'), [...args, '-n', '-T', String(seconds), '-h', 'localhost', '-p', String(target.port), '-U', target.user, 'bench'], {
    env: { ...process.env, PGPASSWORD: target.password, PGSSLMODE: 'require' },
    maxBuffer: 16 * 1024 * 1024,
    timeout: (seconds + 60) * 1000,
  });
  const m = /tps = ([\d.]+) \((?:without initial connection time|excluding connections establishing)\)/.exec(stdout) ?? /tps = ([\d.]+)/.exec(stdout);
  if (m === null) throw new Error(`pgbench output not understood: ${stdout}`);
  return Number(m[1]);
}

async function provisionBenchPerson(adminUrl: string, token: string): Promise<void> {
  const post = async (path: string, body: unknown) => {
    const res = await fetch(`${adminUrl}/scim/v2${path}`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/scim+json' }, body: JSON.stringify(body) });
    if (res.status !== 201) throw new Error(`SCIM ${path}: ${res.status}`);
    return (await res.json()) as { id: string };
  };
  const user = await post('/Users', { schemas: ['urn:ietf:params:scim:schemas:core:2.0:User'], userName: 'bench@corp.example', active: true });
  await post('/Groups', { schemas: ['urn:ietf:params:scim:schemas:core:2.0:Group'], displayName: 'bench', members: [{ value: user.id }] });
}

/** Starts pgbouncer (installed with apt when missing) as the postgres user under root. */
async function startPgbouncer(dir: string, o: { bouncerPort: number; pgPort: number; rolePassword: string; certPath: string; keyPath: string; caPath: string }): Promise<{ pid: () => number | undefined; stop: () => Promise<void> }> {
  const bin = await ensurePgbouncer();
  const bdir = join(dir, 'pgbouncer');
  await mkdir(bdir);
  const files = { cert: join(bdir, 'server.crt'), key: join(bdir, 'server.key'), ca: join(bdir, 'ca.crt') };
  await writeFile(files.cert, await readFile(o.certPath));
  await writeFile(files.key, await readFile(o.keyPath), { mode: 0o600 });
  await writeFile(files.ca, await readFile(o.caPath));
  await writeFile(join(bdir, 'userlist.txt'), `"bench_user" "${o.rolePassword}"\n`, { mode: 0o600 });
  await writeFile(join(bdir, 'pgbouncer.ini'), `[databases]
bench = host=127.0.0.1 port=${o.pgPort} dbname=bench

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = ${o.bouncerPort}
unix_socket_dir = ${bdir}
auth_type = scram-sha-256
auth_file = ${join(bdir, 'userlist.txt')}
pool_mode = session
max_client_conn = 2000
default_pool_size = 100
client_tls_sslmode = require
client_tls_cert_file = ${files.cert}
client_tls_key_file = ${files.key}
server_tls_sslmode = verify-full
server_tls_ca_file = ${files.ca}
logfile = ${join(bdir, 'pgbouncer.log')}
`);
  if (isRoot()) {
    const { stdout: uid } = await run('id', ['-u', 'postgres']);
    const { stdout: gid } = await run('id', ['-g', 'postgres']);
    for (const f of [bdir, files.cert, files.key, files.ca, join(bdir, 'userlist.txt'), join(bdir, 'pgbouncer.ini')]) await chown(f, Number(uid), Number(gid));
    await chmod(bdir, 0o700);
  }
  const [cmd, args] = isRoot() ? ['runuser', ['-u', 'postgres', '--', bin, join(bdir, 'pgbouncer.ini')]] : [bin, [join(bdir, 'pgbouncer.ini')]];
  const child = spawn(cmd, args, { stdio: 'ignore' });
  // Wait until it accepts connections.
  const deadline = Date.now() + 15_000;
  for (;;) {
    try {
      const c = new pg.Client({ host: 'localhost', port: o.bouncerPort, user: 'bench_user', password: o.rolePassword, database: 'bench', ssl: { rejectUnauthorized: false } });
      await c.connect();
      await c.end();
      break;
    } catch (err) {
      if (Date.now() > deadline) throw new Error(`pgbouncer did not start: ${String(err)}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  return {
    // Under root the child is runuser; pgbouncer is its only child.
    pid: () => (isRoot() ? childrenOf(child.pid) : child.pid === undefined ? [] : [child.pid])[0],
    stop: () => new Promise((resolve) => {
      if (child.exitCode !== null) return resolve();
      child.once('exit', () => resolve());
      child.kill('SIGTERM');
    }),
  };
}

function childrenOf(pid: number | undefined): number[] {
  if (pid === undefined) return [];
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter((x) => x !== '').map(Number);
  } catch {
    return [];
  }
}

/** User + system CPU seconds a process has used so far (Linux /proc; clock ticks of 1/100 s). */
export function cpuSeconds(pid: number | undefined): number {
  if (pid === undefined) return NaN;
  try {
    // Fields after the parenthesised command name: state is the 3rd field, utime the 14th, stime the 15th.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return NaN;
  }
}

async function ensurePgbouncer(): Promise<string> {
  for (const p of ['/usr/sbin/pgbouncer', '/usr/bin/pgbouncer']) {
    try {
      await run(p, ['--version']);
      return p;
    } catch {
      // not there
    }
  }
  if (!isRoot()) throw new Error('pgbouncer is not installed (apt-get install pgbouncer)');
  console.error('installing pgbouncer with apt-get ...');
  await run('apt-get', ['update', '-q'], { timeout: 300_000 });
  await run('apt-get', ['install', '-y', '-q', 'pgbouncer'], { timeout: 300_000, env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
  return '/usr/sbin/pgbouncer';
}

/**
 * What a login pays for a token it has seen before (a reconnecting pool, `-C`): the verifier's cache
 * lookup, a SHA-256 of the token and the exp check, with no signature check and no network.
 */
async function measureCachedVerify(issuerUrl: string, caPem: string, token: string): Promise<number> {
  const verifier = createTokenVerifier({ issuer: issuerUrl, audience: 'rolegate', algorithms: ['RS256', 'ES256'], clockToleranceSec: 30, identityClaim: 'email', ca: caPem });
  try {
    await verifier.verify(token);
    for (let i = 0; i < 2_000; i++) await verifier.verify(token); // let the JIT settle
    const n = 20_000;
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < n; i++) await verifier.verify(token);
    return Number(process.hrtime.bigint() - t0) / 1_000 / n;
  } finally {
    verifier.close();
  }
}
