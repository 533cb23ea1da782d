// `rolegate demo` as a real subprocess for the tests: start, wait for the ready line, and pick the
// printed commands out of its output, exactly as a person would copy them.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { BIN } from '../helpers/cli.js';

const BUILT = fileURLToPath(new URL('../../dist/demo/run.js', import.meta.url));

export interface DemoProcess {
  child: ChildProcess;
  /** Everything printed to stdout so far, as lines. */
  lines(): string[];
  stderr(): string;
  /** Milliseconds from spawn to the ready line, as the test saw it. */
  wallMsToReady: number;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Environment without libpq variables that would change what a printed command does. */
export function cleanEnv(extra: Record<string, string> = {}): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !k.startsWith('PG')) env[k] = v;
  return { ...env, ...extra };
}

/** Spawns `rolegate demo`; resolves at `ready in N s`, rejects if it exits or times out first. */
export async function startDemoProcess(env: Record<string, string> = cleanEnv(), timeoutMs = 60_000): Promise<DemoProcess> {
  if (!existsSync(BUILT)) throw new Error('dist/ is missing: run `npm run build` (npm test does it)');
  const t0 = performance.now();
  const child = spawn(process.execPath, [BIN, 'demo'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  const ready = new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`demo not ready after ${timeoutMs} ms:\n${out}\n${err}`)), timeoutMs);
    child.stdout!.on('data', (c: Buffer) => {
      out += c.toString();
      if (/^rolegate demo: ready in [\d.]+ s$/m.test(out) && /^Ctrl\+C stops everything/m.test(out)) {
        clearTimeout(timer);
        resolve(performance.now() - t0);
      }
    });
    child.stderr!.on('data', (c: Buffer) => (err += c.toString()));
    void exited.then(({ code }) => {
      clearTimeout(timer);
      reject(new Error(`demo exited (${code}) before ready:\n${out}\n${err}`));
    });
  });
  try {
    const wallMsToReady = await ready;
    return { child, lines: () => out.split('\n'), stderr: () => err, wallMsToReady, exited };
  } catch (e) {
    // SIGINT first: the demo then stops whatever it started; SIGKILL would leave PostgreSQL running.
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGINT');
      const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
      await exited;
      clearTimeout(timer);
    }
    throw e;
  }
}

/**
 * Ends a demo the way a person would (SIGINT), so that it stops its PostgreSQL and removes its folder
 * even when a test failed half-way; SIGKILL only if it does not exit in time.
 */
export async function stopDemoProcess(demo: DemoProcess, timeoutMs = 20_000): Promise<void> {
  if (demo.child.exitCode !== null || demo.child.signalCode !== null) return;
  demo.child.kill('SIGINT');
  const timer = setTimeout(() => demo.child.kill('SIGKILL'), timeoutMs);
  await demo.exited;
  clearTimeout(timer);
}

/** Runs `rolegate demo` to its end (for failures); returns its output and exit code. */
export function runDemoToEnd(env: Record<string, string>, timeoutMs = 60_000): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, 'demo'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGINT');
      setTimeout(() => child.kill('SIGKILL'), 20_000).unref();
    }, timeoutMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** The one printed line (indent removed) that satisfies `match`; throws unless exactly one does. */
export function printedLine(lines: readonly string[], match: (line: string) => boolean): string {
  const found = lines.map((l) => l.trim()).filter(match);
  if (found.length !== 1) throw new Error(`expected one matching printed line, found ${found.length}:\n${lines.join('\n')}`);
  return found[0]!;
}
