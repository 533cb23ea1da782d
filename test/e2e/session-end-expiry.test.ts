// Token expiry (docs/design.md §2 step 9, §4 session.endAtTokenExpiry): by default a session ends with
// FATAL 57P01 "token expired" when the token it logged in with expires; with the switch off it lives on.
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startStack, type Stack } from '../helpers/stack.js';

const TTL_SEC = 3;

function expOf(token: string): number {
  const payload = JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString('utf8')) as { exp: number };
  return payload.exp;
}

async function open(stack: Stack, token: string): Promise<{ client: pg.Client; sessionId: string; fatal: Promise<{ err: Error & { code?: string }; at: number }> }> {
  const client = new pg.Client(stack.pgConfig('alice@corp.com', token));
  let resolveFatal!: (v: { err: Error & { code?: string }; at: number }) => void;
  const fatal = new Promise<{ err: Error & { code?: string }; at: number }>((resolve) => (resolveFatal = resolve));
  client.on('error', (err) => resolveFatal({ err, at: Date.now() }));
  await client.connect();
  const port = (client as unknown as { connection: { stream: { localPort: number } } }).connection.stream.localPort;
  const session = stack.server.registry.list().find((s) => s.client.port === port);
  if (session === undefined) throw new Error('no registry entry');
  return { client, sessionId: session.id, fatal };
}

describe('session.endAtTokenExpiry: true (the default)', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack();
    await stack.provision('alice@corp.com', ['analysts']);
  });
  afterAll(async () => {
    await stack?.close();
  });

  it('ends the session with 57P01 "token expired" when the token expires, not before', async () => {
    const token = await stack.tokenFor('alice@corp.com', { expiresInSec: TTL_SEC });
    const expMs = expOf(token) * 1000;
    expect(expMs - Date.now()).toBeLessThanOrEqual(TTL_SEC * 1000);
    const s = await open(stack, token);
    // Working right up to expiry.
    while (Date.now() < expMs - 400) {
      expect((await s.client.query('select 1 as ok')).rows).toEqual([{ ok: 1 }]);
      await new Promise((r) => setTimeout(r, 200));
    }
    const { err, at } = await s.fatal;
    console.info(`token expiry: session ended ${at - expMs} ms after exp`);
    expect(err).toMatchObject({ code: '57P01', severity: 'FATAL', message: 'token expired' });
    expect(at).toBeGreaterThanOrEqual(expMs - 50);
    expect(at).toBeLessThan(expMs + 1_000);
    await expect(s.client.query('select 1')).rejects.toThrow();
    await stack.server.audit.flushed();
    const end = stack.auditEvents().find((e) => e.type === 'session.end' && e.session === s.sessionId);
    expect(end).toMatchObject({ reason: 'token_expired' });
  });

  it('a session with a long-lived token next to it is unaffected', async () => {
    const short = await open(stack, await stack.tokenFor('alice@corp.com', { expiresInSec: 2 }));
    const long = await open(stack, await stack.tokenFor('alice@corp.com'));
    await short.fatal;
    expect((await long.client.query('select 1 as ok')).rows).toEqual([{ ok: 1 }]);
    await long.client.end();
  });
});

describe('session.endAtTokenExpiry: false', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({ config: { session: { endAtTokenExpiry: false } } });
    await stack.provision('alice@corp.com', ['analysts']);
  });
  afterAll(async () => {
    await stack?.close();
  });

  it('the session outlives its token (the token is checked at login only)', async () => {
    const token = await stack.tokenFor('alice@corp.com', { expiresInSec: 2 });
    const s = await open(stack, token);
    const wait = expOf(token) * 1000 + 700 - Date.now();
    await new Promise((r) => setTimeout(r, Math.max(0, wait)));
    expect((await s.client.query('select 1 as ok')).rows).toEqual([{ ok: 1 }]);
    await s.client.end();
  });
});
