import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startStack, type Stack } from '../helpers/stack.js';

const run = promisify(execFile);
let stack: Stack;
beforeAll(async () => {
  stack = await startStack();
  await stack.provision('alice@corp.com', ['analysts']);
  await stack.provision('bob@corp.com', ['engineering']);
});
afterAll(async () => {
  await stack?.close();
});

describe('smoke', () => {
  it('pg logs in with a token and lands in the least privileged role', async () => {
    const token = await stack.tokenFor('alice@corp.com');
    const client = new pg.Client(stack.pgConfig('alice@corp.com', token));
    await client.connect();
    const { rows } = await client.query('select current_user as u, session_user as s');
    expect(rows[0]).toEqual({ u: stack.roles.reader, s: stack.roles.reader });
    await client.end();
    // session.start names the token by its claims, never the token itself.
    const start = stack.auditEvents().find((e) => e.type === 'session.start');
    expect(start).toMatchObject({ person: { userName: 'alice@corp.com' }, role: stack.roles.reader, token: { iss: stack.issuer.issuer.issuer, sub: 'alice@corp.com' } });
    expect(typeof (start?.token as { exp?: unknown }).exp).toBe('number');
    expect(stack.logLines().some((l) => l.includes(token.split('.')[2]!))).toBe(false);
  });

  it('psql with PGPASSWORD and sslmode=verify-full', async () => {
    const token = await stack.tokenFor('bob@corp.com');
    const { stdout } = await run('psql', [
      `host=localhost port=${stack.proxyPort} dbname=${stack.db.name} user=${stack.roles.writer} sslmode=verify-full sslrootcert=${stack.caCertPath}`,
      '-XAtc', 'select current_user',
    ], { env: { ...process.env, PGPASSWORD: token } });
    expect(stdout.trim()).toBe(stack.roles.writer);
  });
});
