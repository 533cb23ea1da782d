// `rolegate login --exec CMD ARGS...`: runs CMD with the token in PGPASSWORD (libpq reads it as the
// password), the terminal handed over, and its exit status passed back as ours.
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { constants } from 'node:os';

// Forwarded so that `kill <rolegate pid>` reaches psql too. A Ctrl+C at the terminal already reaches
// both (same process group); psql then sees it twice, which only repeats a cancel request.
const FORWARDED = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;

/** Exit statuses for a command that could not be started, as shells and env(1) use them. */
export const EXEC_EXIT = { notFound: 127, notExecutable: 126 } as const;

/**
 * Runs `command` with `env` plus PGPASSWORD=`token`, stdio inherited. Resolves with its exit code, or
 * 128 + the signal number when a signal ended it (the shell convention). `say` gets one line when the
 * command cannot be started.
 */
export function execWithToken(command: readonly string[], token: string, env: NodeJS.ProcessEnv, say: (line: string) => void): Promise<number> {
  const [file, ...args] = command;
  if (file === undefined || file === '') {
    say('--exec needs a command');
    return Promise.resolve(EXEC_EXIT.notFound);
  }
  // The handlers go in before the child exists: a signal between fork and their installation would
  // otherwise kill us by default and leave the command running, token and all, with nobody waiting.
  // Node calls them from the event loop, so by then the child exists (or spawn threw and they are gone).
  let child: ChildProcess | undefined;
  const forward = (signal: NodeJS.Signals): void => {
    child?.kill(signal);
  };
  for (const s of FORWARDED) process.on(s, forward);
  const stopForwarding = (): void => {
    for (const s of FORWARDED) process.off(s, forward);
  };
  try {
    child = spawn(file, args, { stdio: 'inherit', env: { ...env, PGPASSWORD: token } });
  } catch (err) {
    stopForwarding();
    // Thrown synchronously for arguments no exec(2) could take (a NUL byte, for one).
    say(`cannot run ${JSON.stringify(file)}: ${(err as NodeJS.ErrnoException).code ?? 'invalid command'}`);
    return Promise.resolve(EXEC_EXIT.notExecutable);
  }
  const started = child;
  return new Promise<number>((resolve) => {
    let settled = false;
    const done = (code: number): void => {
      if (settled) return;
      settled = true;
      stopForwarding();
      resolve(code);
    };
    started.once('error', (err: NodeJS.ErrnoException) => {
      const notFound = err.code === 'ENOENT';
      say(`cannot run ${JSON.stringify(file)}: ${notFound ? 'command not found' : (err.code ?? 'error')}`);
      done(notFound ? EXEC_EXIT.notFound : EXEC_EXIT.notExecutable);
    });
    started.once('exit', (code, signal) => {
      if (code !== null) done(code);
      else done(128 + (signal === null ? 0 : (constants.signals[signal] ?? 0)));
    });
  });
}
