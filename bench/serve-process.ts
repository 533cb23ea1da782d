// Starts `rolegate serve` as a child process for benchmarks and reads its resident memory.
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const BIN = fileURLToPath(new URL('../../bin/rolegate.js', import.meta.url));

export interface ServeProcess {
  readonly child: ChildProcess;
  readonly adminUrl: string;
  /** Current and peak resident set size in MiB (Linux /proc). */
  memory(): { rssMiB: number; peakMiB: number };
  stop(): Promise<void>;
}

/**
 * Writes `configYaml` into `dir` and runs the server until it answers /healthz. `bin` is the CLI to
 * run (default: this checkout's); another checkout's, to compare two builds in one run.
 */
export async function startServeProcess(dir: string, configYaml: string, adminPort: number, env: Record<string, string> = {}, bin = BIN): Promise<ServeProcess> {
  const configPath = join(dir, 'rolegate.yaml');
  await writeFile(configPath, configYaml);
  // BENCH_SERVE_NODE_ARGS (e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof") profiles the server under load.
  const nodeArgs = (process.env['BENCH_SERVE_NODE_ARGS'] ?? '').split(' ').filter((a) => a !== '');
  const child = spawn(process.execPath, [...nodeArgs, bin, 'serve', '--config', configPath], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr?.on('data', (c: Buffer) => (stderr += c.toString()));
  const adminUrl = `http://127.0.0.1:${adminPort}`;
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`rolegate serve exited ${child.exitCode}: ${stderr.trim()}`);
    try {
      const res = await fetch(`${adminUrl}/healthz`);
      if (res.ok) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`rolegate serve did not become healthy: ${stderr.trim()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    child,
    adminUrl,
    memory() {
      const status = readFileSync(`/proc/${child.pid}/status`, 'utf8');
      const kb = (key: string) => Number(new RegExp(`${key}:\\s+(\\d+)`).exec(status)?.[1] ?? NaN);
      return { rssMiB: kb('VmRSS') / 1024, peakMiB: kb('VmHWM') / 1024 };
    },
    stop: () => stopChild(child),
  };
}

/** SIGTERM to a child process; resolves once it has exited (at once if it already has). */
export function stopChild(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    child.once('exit', () => resolve());
    child.kill('SIGTERM');
  });
}
