// Client-side helpers shared by the login e2e tests: a failing pg login as {code, message}, psql as
// a subprocess (asynchronous: rolegate runs in this process and must keep serving meanwhile), and
// the audit events a refusal leaves.
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import pg from 'pg';
import type { Stack } from '../helpers/stack.js';

export interface PgFailure {
  code: string | undefined;
  message: string;
}

/** Connects with node-postgres and expects the login to fail; returns the error's SQLSTATE and text. */
export async function pgLoginError(config: pg.ClientConfig): Promise<PgFailure> {
  const client = new pg.Client(config);
  client.on('error', () => {});
  try {
    await client.connect();
  } catch (err) {
    const e = err as { code?: string; message: string };
    return { code: e.code, message: e.message };
  }
  await client.end();
  throw new Error('login succeeded but was expected to fail');
}

/** Logs in with node-postgres, runs `fn`, always ends the client. */
export async function withPg<T>(config: pg.ClientConfig, fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client(config);
  client.on('error', () => {});
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end().catch(() => undefined);
  }
}

export interface PsqlResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

/** Runs psql with `conninfo` and the token in PGPASSWORD; never rejects on a non-zero exit. */
export function psql(conninfo: string, token: string, args: string[]): Promise<PsqlResult> {
  // Only what psql needs: a PG* variable from the developer's shell must not change the test.
  const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/tmp', PGPASSWORD: token, PGCONNECT_TIMEOUT: '10' };
  return new Promise((resolve) => {
    execFile('psql', [conninfo, '-X', ...args], { env, timeout: 20_000 }, (err, stdout, stderr) => {
      const exitCode = err === null ? 0 : typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : 1;
      resolve({ exitCode, stdout, stderr });
    });
  });
}

/** The libpq connection string for the stack's proxy (verify-full against the run's CA), plus `extra`. */
export function conninfo(stack: Stack, user: string, extra = ''): string {
  return `host=localhost port=${stack.proxyPort} dbname=${stack.db.name} user=${user} sslmode=verify-full sslrootcert=${stack.caCertPath} ${extra}`.trim();
}

/** `session.denied` audit events written so far. */
export function deniedEvents(stack: Stack): Record<string, unknown>[] {
  return stack.auditEvents().filter((e) => e['type'] === 'session.denied');
}

/** The newest `session.denied` event. */
export function lastDenied(stack: Stack): Record<string, unknown> | undefined {
  return deniedEvents(stack).at(-1);
}

/** The run's CA certificate (PEM), which signed the proxy's certificate. */
export function caPem(stack: Stack): string {
  return readFileSync(stack.caCertPath, 'utf8');
}
