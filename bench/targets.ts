// The proxy benchmarks' targets, like for like: one PostgreSQL (TLS and SCRAM), and for each transport
// (TLS on both legs, plain TCP on both legs) a pgbouncer in session mode, a `rolegate serve` with the
// same pool size and the bare Node relay that is the floor (bench/node-relay.ts); plus the check that a
// running pgbench's server legs use the transport they claim.
import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync, readdirSync, readlinkSync } from 'node:fs';
import { chmod, chown, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import pg from 'pg';
import { createCertificateAuthority, issueCert } from '../demo/certs.js';
import { startDevIssuer } from '../demo/dev-issuer.js';
import { startLocalPostgres, type LocalPostgres } from '../demo/local-postgres.js';
import { startServeProcess, stopChild, type ServeProcess } from './serve-process.js';

const run = promisify(execFile);

/** Both legs (client -> proxy, proxy -> PostgreSQL) of every target use this. */
export type Transport = 'tls' | 'plain';
/** `node-relay` is the floor: bench/node-relay.ts, a Node relay with nothing of rolegate's in it. */
export type TargetName = 'direct' | 'pgbouncer' | 'rolegate' | 'node-relay';

export interface Target {
  readonly name: TargetName;
  readonly transport: Transport;
  readonly port: number;
  readonly user: string;
  readonly password: string;
  /** libpq sslmode of the client leg: `require` fails rather than fall back to plain TCP. */
  readonly sslmode: 'require' | 'disable';
  /** The proxy process (undefined for direct): its CPU is the proxy's cost. */
  pid(): number | undefined;
}

export interface BenchTargets {
  readonly pg: LocalPostgres;
  readonly pgPort: number;
  readonly caPem: string;
  readonly token: string;
  /** pgbouncer's default_pool_size and rolegate's upstream.pool.idle (the same number). */
  readonly poolSize: number;
  readonly targets: Record<Transport, Record<TargetName, Target>>;
  readonly rolegate: Record<Transport, ServeProcess>;
  /** The issuer's URL (for a verifier of the same tokens). */
  readonly issuer: string;
  /** Backends serving `pid`'s connections to PostgreSQL, with whether each uses TLS. */
  serverLegs(pid: number): Promise<{ port: number; ssl: boolean }[]>;
  stop(): Promise<void>;
}

export interface BenchTargetOptions {
  dir: string;
  freePort: () => Promise<number>;
  /** max_connections and proxy.maxConnections headroom (idle-session figures). */
  maxSessions: number;
  /** pgbouncer default_pool_size = rolegate upstream.pool.idle. */
  poolSize: number;
  /** More top-level YAML for both rolegate configs (e.g. `audit: { statements: false }`). */
  rolegateConfig?: string;
}

const isRoot = (): boolean => process.getuid?.() === 0;

/** Starts PostgreSQL, and for TLS and plain TCP each a pgbouncer, a bare Node relay and a `rolegate serve`; an issuer. */
export async function startBenchTargets(opts: BenchTargetOptions): Promise<BenchTargets> {
  const stops: (() => Promise<void>)[] = [];
  const stop = async (): Promise<void> => {
    for (const s of stops.reverse()) await s().catch(() => undefined);
  };
  try {
    const pgDir = join(opts.dir, 'pg');
    await mkdir(pgDir);
    const ca = await createCertificateAuthority(opts.dir);
    const server = await issueCert({ cn: 'localhost', ...ca, dir: opts.dir, fileName: 'server' });
    const superPassword = randomBytes(12).toString('hex');
    const pgPort = await opts.freePort();
    // `host` (not `hostssl`) admits both transports; which one each leg uses is checked per run.
    const cluster = await startLocalPostgres({
      dir: pgDir,
      port: pgPort,
      superuserPassword: superPassword,
      tls: { certPath: server.certPath, keyPath: server.keyPath },
      hba: ['host all all 127.0.0.1/32 scram-sha-256'],
      settings: { max_connections: String(opts.maxSessions + 4 * opts.poolSize + 100) },
    });
    stops.push(() => cluster.stop());
    const rolePassword = randomBytes(12).toString('hex');
    const admin = new pg.Client({ host: '127.0.0.1', port: pgPort, user: 'postgres', password: superPassword, database: 'postgres', ssl: { rejectUnauthorized: false } });
    await admin.connect();
    admin.on('error', () => {});
    stops.push(() => admin.end());
    await admin.query(`CREATE ROLE bench_user LOGIN PASSWORD '${rolePassword}'`);
    await admin.query('CREATE DATABASE bench OWNER bench_user');
    await run(join(cluster.binDir, 'pgbench'), ['-i', '-q', '-s', '1', '-h', '127.0.0.1', '-p', String(pgPort), '-U', 'bench_user', 'bench'], {
      env: { ...process.env, PGPASSWORD: rolePassword, PGSSLMODE: 'require' },
    });

    const bouncers = {} as Record<Transport, { port: number; pid: () => number | undefined }>;
    for (const transport of ['tls', 'plain'] as const) {
      const port = await opts.freePort();
      const b = await startPgbouncer(join(opts.dir, `pgbouncer-${transport}`), { transport, bouncerPort: port, pgPort, rolePassword, poolSize: opts.poolSize, certPath: server.certPath, keyPath: server.keyPath, caPath: ca.caCertPath });
      stops.push(b.stop);
      bouncers[transport] = { port, pid: b.pid };
    }

    const relays = {} as Record<Transport, { port: number; pid: () => number | undefined }>;
    for (const transport of ['tls', 'plain'] as const) {
      const port = await opts.freePort();
      const r = await startNodeRelay(transport, port, pgPort, { certPath: server.certPath, keyPath: server.keyPath, caPath: ca.caCertPath });
      stops.push(r.stop);
      relays[transport] = { port, pid: r.pid };
    }

    const issuerCert = await issueCert({ cn: '127.0.0.1', ...ca, dir: opts.dir, fileName: 'issuer', sans: ['IP:127.0.0.1', 'DNS:localhost'] });
    const caPem = await readFile(ca.caCertPath, 'utf8');
    const issuer = await startDevIssuer({
      audience: 'rolegate',
      tls: { cert: await readFile(issuerCert.certPath, 'utf8'), key: await readFile(issuerCert.keyPath, 'utf8'), ca: caPem },
    });
    stops.push(() => issuer.close());
    const rolegate = {} as Record<Transport, ServeProcess & { port: number }>;
    for (const transport of ['tls', 'plain'] as const) {
      const rdir = join(opts.dir, `rolegate-${transport}`);
      await mkdir(rdir);
      const scimToken = randomBytes(24).toString('base64url');
      const [proxyPort, adminPort] = [await opts.freePort(), await opts.freePort()];
      const listener = transport === 'tls'
        ? `tls: { cert: "${server.certPath}", key: "${server.keyPath}" }`
        : 'allowPlaintext: true';
      const upstreamTls = transport === 'tls' ? `{ mode: verify-full, ca: "${ca.caCertPath}" }` : '{ mode: disable }';
      const serve = await startServeProcess(rdir, `
proxy: { listen: "127.0.0.1:${proxyPort}", ${listener}, maxConnections: ${opts.maxSessions + 100} }
upstream: { host: 127.0.0.1, port: ${pgPort}, tls: ${upstreamTls}, pool: { idle: ${opts.poolSize} } }
oidc: { issuer: "${issuer.issuer}", audience: rolegate, ca: "${ca.caCertPath}" }
roles: [{ role: bench_user, groups: [bench], databases: [bench], credentials: { password: "\${BENCH_ROLE_PASSWORD}" } }]
directory: { store: "sqlite:${join(rdir, 'directory.db')}" }
scim: { tokens: ["\${BENCH_SCIM_TOKEN}"] }
admin: { listen: "127.0.0.1:${adminPort}" }
log: { level: warn }
${opts.rolegateConfig ?? ''}
`, adminPort, { BENCH_ROLE_PASSWORD: rolePassword, BENCH_SCIM_TOKEN: scimToken });
      stops.push(() => serve.stop());
      await provisionBenchPerson(serve.adminUrl, scimToken);
      rolegate[transport] = Object.assign(serve, { port: proxyPort });
    }
    const token = await issuer.tokenFor('bench@corp.example', { expiresInSec: 3600 });

    const targets = {} as Record<Transport, Record<TargetName, Target>>;
    for (const transport of ['tls', 'plain'] as const) {
      const sslmode = transport === 'tls' ? 'require' : 'disable';
      targets[transport] = {
        direct: { name: 'direct', transport, port: pgPort, user: 'bench_user', password: rolePassword, sslmode, pid: () => undefined },
        pgbouncer: { name: 'pgbouncer', transport, port: bouncers[transport].port, user: 'bench_user', password: rolePassword, sslmode, pid: bouncers[transport].pid },
        rolegate: { name: 'rolegate', transport, port: rolegate[transport].port, user: 'bench@corp.example', password: token, sslmode, pid: () => rolegate[transport].child.pid },
        'node-relay': { name: 'node-relay', transport, port: relays[transport].port, user: 'bench_user', password: rolePassword, sslmode, pid: relays[transport].pid },
      };
    }

    return {
      pg: cluster,
      pgPort,
      caPem,
      token,
      poolSize: opts.poolSize,
      targets,
      rolegate,
      issuer: issuer.issuer,
      async serverLegs(pid) {
        const ports = localPortsTo(pid, pgPort);
        if (ports.length === 0) return [];
        const { rows } = await admin.query<{ client_port: number; ssl: boolean }>(
          'SELECT a.client_port, s.ssl FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) WHERE a.client_port = ANY($1::int[])',
          [ports],
        );
        return rows.map((r) => ({ port: r.client_port, ssl: r.ssl }));
      },
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

/**
 * Local ports of `pid`'s TCP connections to 127.0.0.1:`port` (Linux /proc: the process's socket
 * inodes matched against /proc/net/tcp), i.e. the `client_port` of the backends serving it.
 */
export function localPortsTo(pid: number, port: number): number[] {
  const inodes = new Set<string>();
  try {
    for (const fd of readdirSync(`/proc/${pid}/fd`)) {
      try {
        const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
        if (m) inodes.add(m[1] as string);
      } catch {
        // closed meanwhile
      }
    }
  } catch {
    return [];
  }
  const ports: number[] = [];
  // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
  for (const line of readFileSync('/proc/net/tcp', 'utf8').split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 10 || !inodes.has(f[9] as string)) continue;
    const [, local = '', remote = ''] = f;
    if (parseInt(remote.split(':')[1] ?? '', 16) === port && f[3] === '01' /* ESTABLISHED */) ports.push(parseInt(local.split(':')[1] ?? '', 16));
  }
  return ports;
}

/** Starts bench/node-relay.ts (the floor target) and waits until it listens. */
async function startNodeRelay(
  transport: Transport,
  port: number,
  pgPort: number,
  files: { certPath: string; keyPath: string; caPath: string },
): Promise<{ pid: () => number | undefined; stop: () => Promise<void> }> {
  const script = fileURLToPath(new URL('./node-relay.js', import.meta.url));
  const child = spawn(process.execPath, [script, transport, String(port), String(pgPort), files.certPath, files.keyPath, files.caPath], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((resolve, reject) => {
    child.stdout.once('data', () => resolve());
    child.once('exit', (code) => reject(new Error(`bench node-relay (${transport}) exited ${code}`)));
  });
  return {
    pid: () => child.pid,
    stop: () => stopChild(child),
  };
}

/** One person in the `bench` group (which grants bench_user), over SCIM. */
export async function provisionBenchPerson(adminUrl: string, token: string): Promise<void> {
  const post = async (path: string, body: unknown) => {
    const res = await fetch(`${adminUrl}/scim/v2${path}`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/scim+json' }, body: JSON.stringify(body) });
    if (res.status !== 201) throw new Error(`SCIM ${path}: ${res.status}`);
    return (await res.json()) as { id: string };
  };
  const user = await post('/Users', { schemas: ['urn:ietf:params:scim:schemas:core:2.0:User'], userName: 'bench@corp.example', active: true });
  await post('/Groups', { schemas: ['urn:ietf:params:scim:schemas:core:2.0:Group'], displayName: 'bench', members: [{ value: user.id }] });
}

export interface PgbouncerOptions {
  transport: Transport;
  bouncerPort: number;
  pgPort: number;
  rolePassword: string;
  poolSize: number;
  certPath: string;
  keyPath: string;
  caPath: string;
}

/** Starts pgbouncer in session mode (installed with apt when missing), as the postgres user under root. */
export async function startPgbouncer(bdir: string, o: PgbouncerOptions): Promise<{ pid: () => number | undefined; stop: () => Promise<void> }> {
  const bin = await ensurePgbouncer();
  await mkdir(bdir);
  const files = { cert: join(bdir, 'server.crt'), key: join(bdir, 'server.key'), ca: join(bdir, 'ca.crt') };
  await writeFile(files.cert, await readFile(o.certPath));
  await writeFile(files.key, await readFile(o.keyPath), { mode: 0o600 });
  await writeFile(files.ca, await readFile(o.caPath));
  await writeFile(join(bdir, 'userlist.txt'), `"bench_user" "${o.rolePassword}"\n`, { mode: 0o600 });
  const tls = o.transport === 'tls'
    ? `client_tls_sslmode = require
client_tls_cert_file = ${files.cert}
client_tls_key_file = ${files.key}
server_tls_sslmode = verify-full
server_tls_ca_file = ${files.ca}`
    : `client_tls_sslmode = disable
server_tls_sslmode = disable`;
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
default_pool_size = ${o.poolSize}
${tls}
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
      const c = new pg.Client({ host: 'localhost', port: o.bouncerPort, user: 'bench_user', password: o.rolePassword, database: 'bench', ssl: o.transport === 'tls' ? { rejectUnauthorized: false } : false });
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
    stop: () => stopChild(child),
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

/** pgbouncer's binary, installed with apt-get when missing and running as root. */
export async function ensurePgbouncer(): Promise<string> {
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
