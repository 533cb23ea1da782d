// A throw-away local PostgreSQL cluster from the system's server binaries (initdb + pg_ctl), for
// `rolegate demo` and the tests. PostgreSQL refuses to run as root, so under root every server
// command runs as the `postgres` OS user and the cluster's folder is handed to it.
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { appendFile, chmod, chown, copyFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface LocalPostgresOptions {
  /** An empty folder; the cluster lives in `<dir>/data`. */
  dir: string;
  port: number;
  superuserPassword: string;
  /** Server TLS; `caPath` also enables client-certificate checks (pg_hba `cert`). */
  tls?: { certPath: string; keyPath: string; caPath?: string };
  /** pg_hba.conf lines, first match wins. */
  hba: string[];
  /** Extra postgresql.conf settings. */
  settings?: Record<string, string>;
}

export interface LocalPostgres {
  readonly host: '127.0.0.1';
  readonly port: number;
  readonly dataDir: string;
  readonly binDir: string;
  /** Stops the server for good (immediate mode; the folder is the caller's to remove). */
  stop(): Promise<void>;
  /** Stops the server but keeps it, so that `startServer` brings it back (a store outage in tests). */
  stopServer(): Promise<void>;
  /** Starts a server stopped by `stopServer`; resolves when it accepts connections. */
  startServer(): Promise<void>;
}

/** Finds the PostgreSQL server binaries: `pg_config --bindir`, else the newest /usr/lib/postgresql/N/bin. */
export async function findPostgresBinDir(): Promise<string | undefined> {
  try {
    const { stdout } = await run('pg_config', ['--bindir']);
    const dir = stdout.trim();
    if (existsSync(join(dir, 'initdb')) && existsSync(join(dir, 'pg_ctl'))) return dir;
  } catch {
    // pg_config missing: fall through to the Debian layout.
  }
  const root = '/usr/lib/postgresql';
  if (!existsSync(root)) return undefined;
  const versions = (await readdir(root)).filter((v) => /^\d+$/.test(v)).sort((a, b) => Number(b) - Number(a));
  for (const v of versions) {
    const dir = join(root, v, 'bin');
    if (existsSync(join(dir, 'initdb'))) return dir;
  }
  return undefined;
}

const isRoot = (): boolean => typeof process.getuid === 'function' && process.getuid() === 0;

/** Under root, hands a path to the `postgres` OS user; otherwise the caller already owns it. */
async function giveToServerUser(path: string): Promise<void> {
  if (!isRoot()) return;
  const [{ stdout: uid }, { stdout: gid }] = await Promise.all([run('id', ['-u', 'postgres']), run('id', ['-g', 'postgres'])]);
  await chown(path, Number(uid.trim()), Number(gid.trim()));
}

async function asServerUser(bin: string, args: string[], timeoutMs = 60_000): Promise<string> {
  const [cmd, argv] = isRoot() ? ['runuser', ['-u', 'postgres', '--', bin, ...args]] : [bin, args];
  try {
    const { stdout } = await run(cmd, argv, { timeout: timeoutMs });
    return stdout;
  } catch (err) {
    const e = err as { stderr?: string; stdout?: string };
    throw new Error(`${bin.split('/').pop()} failed: ${(e.stderr || e.stdout || String(err)).trim().slice(0, 2000)}`, { cause: err });
  }
}

/** Creates, configures and starts a cluster; resolves when it accepts connections. */
export async function startLocalPostgres(opts: LocalPostgresOptions): Promise<LocalPostgres> {
  const binDir = await findPostgresBinDir();
  if (binDir === undefined) throw new Error('PostgreSQL server binaries not found (install postgresql, or put pg_config on PATH)');
  const dataDir = join(opts.dir, 'data');
  const pwFile = join(opts.dir, 'pwfile');
  await writeFile(pwFile, opts.superuserPassword + '\n', { mode: 0o600 });
  await giveToServerUser(opts.dir);
  await giveToServerUser(pwFile);
  await asServerUser(join(binDir, 'initdb'), [
    '-D', dataDir, '-U', 'postgres', `--pwfile=${pwFile}`, '--auth=scram-sha-256', '--encoding=UTF8', '--locale=C', '--no-sync',
  ], 120_000);

  const conf: Record<string, string> = {
    listen_addresses: `'127.0.0.1'`,
    port: String(opts.port),
    unix_socket_directories: `'${opts.dir}'`,
    password_encryption: `'scram-sha-256'`,
    max_connections: '300',
    shared_buffers: `'64MB'`,
    // A test or demo cluster is disposable: durability of PostgreSQL itself is not under test.
    fsync: 'off',
    synchronous_commit: 'off',
    full_page_writes: 'off',
    log_min_messages: `'warning'`,
    ...opts.settings,
  };
  if (opts.tls) {
    for (const [src, name] of [[opts.tls.certPath, 'server.crt'], [opts.tls.keyPath, 'server.key'], ...(opts.tls.caPath ? [[opts.tls.caPath, 'root.crt']] : [])] as const) {
      const dst = join(dataDir, name);
      await copyFile(src, dst);
      await chmod(dst, 0o600);
      await giveToServerUser(dst);
    }
    conf.ssl = 'on';
    conf.ssl_cert_file = `'server.crt'`;
    conf.ssl_key_file = `'server.key'`;
    if (opts.tls.caPath) conf.ssl_ca_file = `'root.crt'`;
  }
  await appendFile(join(dataDir, 'postgresql.conf'), '\n# rolegate\n' + Object.entries(conf).map(([k, v]) => `${k} = ${v}`).join('\n') + '\n');
  await writeFile(join(dataDir, 'pg_hba.conf'), ['local all postgres scram-sha-256', ...opts.hba].join('\n') + '\n');
  await giveToServerUser(join(dataDir, 'pg_hba.conf'));
  const logFile = join(opts.dir, 'postgres.log');
  const start = () => asServerUser(join(binDir, 'pg_ctl'), ['-D', dataDir, '-l', logFile, '-w', '-t', '60', 'start'], 90_000);
  await start();
  let stopped = false;
  return {
    host: '127.0.0.1',
    port: opts.port,
    dataDir,
    binDir,
    async stop() {
      if (stopped) return;
      stopped = true;
      await asServerUser(join(binDir, 'pg_ctl'), ['-D', dataDir, '-m', 'immediate', '-w', 'stop'], 60_000).catch(() => undefined);
    },
    async stopServer() {
      // fast: clients are disconnected at once, as in a failover or an operator's restart.
      await asServerUser(join(binDir, 'pg_ctl'), ['-D', dataDir, '-m', 'fast', '-w', 'stop'], 60_000);
    },
    async startServer() {
      if (stopped) throw new Error('this cluster was stopped for good');
      await start();
    },
  };
}

