// `rolegate demo`: the whole system on one machine with nothing to configure (docs/design.md §3). This
// file owns the demo's life: its temp folder, progress and error lines, waiting for Ctrl+C, and the
// one teardown that stops everything it started and removes the folder, however the demo ends.
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PostgresChoice } from './demo-postgres.js';
import { divertIssuerNoise } from './issuer-noise.js';
import { renderReady } from './printout.js';
import { Teardown } from './teardown.js';

export interface DemoIo {
  /** One line of terminal output. */
  out: (line: string) => void;
  /** TMPDIR; ROLEGATE_DEMO_POSTGRES = auto (default) | system | embedded picks the PostgreSQL. */
  env: Readonly<Record<string, string | undefined>>;
  /** Aborted on SIGINT/SIGTERM: the demo stops everything and resolves 0. */
  signal: AbortSignal;
}

const PREFIX = 'rolegate demo: ';
// docs/design.md §3: 2 is a usage or configuration error.
const EXIT_CONFIG = 2;

/** Runs the demo until `signal` aborts; resolves with the exit code (0 stopped, 1 could not start, 2 bad setting). */
export async function runDemo(io: DemoIo): Promise<number> {
  const startedAt = performance.now();
  const say = (line: string): void => io.out(PREFIX + line);
  const postgres = postgresChoice(io.env.ROLEGATE_DEMO_POSTGRES);
  if (postgres === undefined) {
    say(`error: ROLEGATE_DEMO_POSTGRES must be one of ${Object.values(PostgresChoice).join(', ')}`);
    return EXIT_CONFIG;
  }
  // Installed before oidc-provider is first imported: it warns at import time on Node 20.
  const noise = divertIssuerNoise();
  const teardown = new Teardown();
  let dir: string | undefined;
  let failure: string | undefined;
  try {
    dir = await mkdtemp(join(io.env.TMPDIR || tmpdir(), 'rolegate-demo-'));
    const folder = dir;
    teardown.add('temp folder', () => rm(folder, { recursive: true, force: true }));
    // Under root PostgreSQL runs as the `postgres` OS user, which must traverse this folder to reach
    // its own subfolder; private keys and the token script in it are 0600/0700 themselves.
    if (process.getuid?.() === 0) await chmod(folder, 0o711);
    say(`starting in ${folder}`);
    // Loaded only now so that oidc-provider's import-time notices meet the diversion above.
    const { startDemo } = await import('./start.js').catch((err: unknown) => {
      // oidc-provider is needed only here; an install without it gets a hint, not a module path.
      if ((err as NodeJS.ErrnoException).code === 'ERR_MODULE_NOT_FOUND' && String(err).includes("'oidc-provider'")) {
        throw new Error('the development OIDC issuer needs the oidc-provider package: npm install oidc-provider@9.13', { cause: err });
      }
      throw err;
    });
    const info = await startDemo({ dir: folder, say, teardown, signal: io.signal, noise, startedAt, postgres });
    for (const line of renderReady(info)) io.out(line);
    await untilAborted(io.signal);
    say('stopping ...');
  } catch (err) {
    // Ctrl+C in a terminal also reaches our children (openssl, initdb); one of them may fail before
    // the signal reaches us, and that failure is the interruption, not an error to report.
    if (!io.signal.aborted) await new Promise((resolve) => setTimeout(resolve, 100));
    if (!io.signal.aborted) failure = oneLine(err);
    else say('interrupted; stopping ...');
  } finally {
    await teardown.run();
    noise.restore();
  }
  for (const f of teardown.failures()) say(`could not stop cleanly: ${f}`);
  if (failure !== undefined) {
    say(`error: ${failure}`);
    return 1;
  }
  say(dir ? `stopped; removed ${dir}` : 'stopped');
  return 0;
}

function postgresChoice(value: string | undefined): PostgresChoice | undefined {
  if (value === undefined || value === '') return PostgresChoice.auto;
  return Object.values(PostgresChoice).find((c) => c === value);
}

function untilAborted(signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) resolve();
    else signal.addEventListener('abort', () => resolve(), { once: true });
  });
}

/** Errors reach the terminal as one line, never a stack trace. */
function oneLine(err: unknown): string {
  const msg = err instanceof Error ? err.message : String(err);
  return msg.split('\n')[0] || 'unknown error';
}
