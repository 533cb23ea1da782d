// pgbouncer for the login benchmark (session mode, TLS on both sides, SCRAM to PostgreSQL), started as the
// postgres user under root. The same setup as bench/proxy.ts's, with the pool size given by the caller.
import { execFile, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { chmod, chown, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';

const run = promisify(execFile);
const isRoot = (): boolean => process.getuid?.() === 0;

/** Starts pgbouncer (installed with apt when missing) as the postgres user under root. */
export async function startPgbouncer(dir: string, o: { bouncerPort: number; pgPort: number; rolePassword: string; certPath: string; keyPath: string; caPath: string; poolSize: number }): Promise<{ pid: () => number | undefined; stop: () => Promise<void> }> {
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
default_pool_size = ${o.poolSize}
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

