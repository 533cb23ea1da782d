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
