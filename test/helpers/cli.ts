// Runs the built `rolegate` bin as a real process (npm test builds dist/ before vitest runs).
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { keepAuditFolder, keepLog, registerSecrets } from './ledger.js';

export const BIN = fileURLToPath(new URL('../../bin/rolegate.js', import.meta.url));
const BUILT = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));

function assertBuilt(): void {
  if (!existsSync(BUILT)) throw new Error('dist/ is missing: run `npm run build` (npm test does it)');
}

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `rolegate ...args` to completion. */
export function runCli(args: string[], env: Record<string, string | undefined> = {}, timeoutMs = 30_000): Promise<CliResult> {
  assertBuilt();
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

export interface ServeHandle {
  child: ChildProcess;
  /** Everything the process wrote so far. */
  output(): string;
  /** Resolves with the exit code (null when killed by a signal). */
  exited: Promise<number | null>;
}

/** Starts `rolegate serve --config FILE` and resolves once `readyUrl` answers 200. */
export async function startServe(configFile: string, readyUrl: string, env: Record<string, string | undefined> = {}): Promise<ServeHandle> {
  assertBuilt();
  // Secrets handed in by environment go to the suite-wide secret scan, and so does the process log.
  registerSecrets(...Object.entries(env).filter(([k]) => /TOKEN|PASSWORD|SECRET|KEY/i.test(k)).map(([, v]) => v));
  const child = spawn(process.execPath, [BIN, 'serve', '--config', configFile], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout?.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr?.on('data', (c: Buffer) => (out += c.toString()));
  const exited = new Promise<number | null>((resolve) =>
    child.on('exit', (code) => {
      keepLog(`serve-${child.pid ?? 'x'}`, out);
      keepAuditFolder(`serve-${child.pid ?? 'x'}`, dirname(configFile));
      resolve(code);
    }),
  );
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`rolegate serve exited early: ${out}`);
    try {
      const res = await fetch(readyUrl);
      if (res.ok) break;
    } catch {
      // not yet listening
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`rolegate serve did not become ready: ${out}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return { child, output: () => out, exited };
}
