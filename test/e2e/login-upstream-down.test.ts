// Login path, the upstream (docs/design.md §2 step 7): when the database refuses the TCP connection, or
// accepts it and never answers, a client with a valid token gets FATAL 08006 with one line that names
// no host, port or socket error; the detail goes to the log and the audit reason only.
import { createServer, type Server, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../helpers/ports.js';
import { startStack, type Stack } from '../helpers/stack.js';
import { conninfo, lastDenied, pgLoginError, psql } from './login-helpers.js';

let stack: Stack;
let closedPort: number;
/** A second stack whose upstream accepts TCP and then never says a word. */
let silent: Stack;
let blackhole: Server;
const held: Socket[] = [];

beforeAll(async () => {
  // A port that was free a moment ago and that nothing listens on: connect() is refused.
  closedPort = await freePort();
  stack = await startStack({ config: { upstream: { port: closedPort } } });
  await stack.provision('uma@corp.com', ['analysts']);

  blackhole = createServer((s) => {
    s.on('error', () => {});
    held.push(s);
  });
  await new Promise<void>((r) => blackhole.listen(0, '127.0.0.1', r));
  const port = (blackhole.address() as { port: number }).port;
  silent = await startStack({ config: { upstream: { port, connectTimeout: '1s' } } });
  await silent.provision('uma@corp.com', ['analysts']);
});
afterAll(async () => {
  await stack?.close();
  await silent?.close();
  for (const s of held) s.destroy();
  await new Promise((r) => blackhole?.close(r));
});

describe('upstream down at connect', () => {
  it('pg gets 08006 "upstream database unavailable"; the audit log says why', async () => {
    const token = await stack.tokenFor('uma@corp.com');
    expect(await pgLoginError(stack.pgConfig('uma@corp.com', token))).toEqual({ code: '08006', message: 'upstream database unavailable' });
    expect(lastDenied(stack)).toMatchObject({ reason: 'upstream:UPSTREAM_UNREACHABLE', sqlstate: '08006', requestedUser: 'uma@corp.com' });
    // The operator's log has the cause.
    expect(stack.logLines().some((l) => l.includes('upstream login failed') && l.includes('ECONNREFUSED'))).toBe(true);
  });

  it('psql shows one line with no upstream internals', async () => {
    const token = await stack.tokenFor('uma@corp.com');
    const r = await psql(conninfo(stack, 'uma@corp.com'), token, ['-Atc', 'select 1']);
    expect(r.exitCode).toBe(2);
    const fatal = r.stderr.split('\n').filter((l) => l.includes('FATAL'));
    expect(fatal).toHaveLength(1);
    expect(fatal[0]).toMatch(/FATAL: {2}upstream database unavailable$/);
    expect(r.stderr).not.toContain(String(closedPort));
    expect(r.stderr).not.toMatch(/ECONNREFUSED|127\.0\.0\.1:\d|socket|UPSTREAM_/);
  });

  it('an invalid token is still refused as such (the token is checked before the upstream)', async () => {
    expect(await pgLoginError(stack.pgConfig('uma@corp.com', 'garbage'))).toEqual({ code: '28P01', message: 'token authentication failed for user "uma@corp.com"' });
  });
});

describe('upstream that accepts and never answers', () => {
  it('08006 "upstream database did not answer in time" after upstream.connectTimeout', async () => {
    const token = await silent.tokenFor('uma@corp.com');
    const t0 = Date.now();
    expect(await pgLoginError(silent.pgConfig('uma@corp.com', token))).toEqual({ code: '08006', message: 'upstream database did not answer in time' });
    expect(Date.now() - t0).toBeGreaterThanOrEqual(900);
    expect(lastDenied(silent)).toMatchObject({ reason: 'upstream:UPSTREAM_TIMEOUT', sqlstate: '08006' });
  });
});
