// Login path, the listener's limits (docs/design.md §2 step 1): proxy.maxConnections answers the next
// login with FATAL 53300 once TLS is up, and proxy.loginTimeout ends a client that stalls anywhere
// before the login completes.
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startStack, type Stack } from '../helpers/stack.js';
import { caPem, lastDenied, pgLoginError } from './login-helpers.js';
import { authCode, errorFields, loginAndQuery, RawClient, SSL_REQUEST, startupFrame, tlsStartup } from './login-wire.js';

const LOGIN_TIMEOUT_MS = 2_000;
let stack: Stack;
let ca: string;

beforeAll(async () => {
  stack = await startStack({ config: { proxy: { maxConnections: 2, loginTimeout: `${LOGIN_TIMEOUT_MS}ms` } } });
  ca = caPem(stack);
  await stack.provision('lou@corp.com', ['analysts']);
});
afterAll(async () => {
  await stack?.close();
});

async function connected(token: string): Promise<pg.Client> {
  const c = new pg.Client(stack.pgConfig('lou@corp.com', token));
  c.on('error', () => {});
  await c.connect();
  return c;
}

describe('proxy.maxConnections', () => {
  it('the connection over the limit gets 53300 after the TLS handshake; a freed slot is usable again', async () => {
    const token = await stack.tokenFor('lou@corp.com');
    const a = await connected(token);
    const b = await connected(token);
    try {
      // pg asked for TLS: reading this FATAL at all proves it came after the handshake.
      expect(await pgLoginError(stack.pgConfig('lou@corp.com', token))).toEqual({ code: '53300', message: 'sorry, too many clients already' });
      expect(lastDenied(stack)).toMatchObject({ reason: 'too_many_connections', sqlstate: '53300' });
      // Byte level: 'S', TLS, StartupMessage, then the FATAL instead of a password request.
      const { client, first } = await tlsStartup(stack.proxyPort, ca, { user: 'lou@corp.com', database: stack.db.name });
      expect(first).toHaveLength(1);
      expect(errorFields(first[0]!.body)).toMatchObject({ S: 'FATAL', C: '53300' });
      expect(await client.closedWithin(3_000)).toBe(true);
      expect((await a.query('select 1 as x')).rows).toEqual([{ x: 1 }]);
    } finally {
      await b.end();
    }
    // The slot is released when the proxy sees the close; give it a moment.
    let c: pg.Client | undefined;
    for (let i = 0; i < 20 && c === undefined; i++) {
      c = await connected(token).catch(async (err: { code?: string }) => {
        if (err.code !== '53300') throw err;
        await new Promise((r) => setTimeout(r, 50));
        return undefined;
      });
    }
    expect(c).toBeDefined();
    expect((await c!.query('select current_user as u')).rows).toEqual([{ u: stack.roles.reader }]);
    await c!.end();
    await a.end();
  });

  it('connections still in login count too', async () => {
    const token = await stack.tokenFor('lou@corp.com');
    const idle1 = await RawClient.tcp(stack.proxyPort);
    const idle2 = await RawClient.tcp(stack.proxyPort);
    try {
      expect(await pgLoginError(stack.pgConfig('lou@corp.com', token))).toMatchObject({ code: '53300' });
    } finally {
      idle1.destroy();
      idle2.destroy();
    }
  });
});

describe('proxy.loginTimeout', () => {
  /** Waits for the proxy to close; returns how long that took. */
  async function closesAfter(raw: RawClient, since: number): Promise<number> {
    expect(await raw.closedWithin(LOGIN_TIMEOUT_MS + 3_000)).toBe(true);
    return Date.now() - since;
  }

  it('a client that sends nothing is closed', async () => {
    const t0 = Date.now();
    const raw = await RawClient.tcp(stack.proxyPort);
    expect(await closesAfter(raw, t0)).toBeGreaterThanOrEqual(LOGIN_TIMEOUT_MS - 100);
    expect(raw.pending).toBe(0);
  });

  it('a client that stops after SSLRequest (no TLS handshake) is closed', async () => {
    const t0 = Date.now();
    const raw = await RawClient.tcp(stack.proxyPort);
    raw.write(SSL_REQUEST);
    expect(await raw.byte()).toBe('S');
    expect(await closesAfter(raw, t0)).toBeGreaterThanOrEqual(LOGIN_TIMEOUT_MS - 100);
  });

  it('a client that stops after the TLS handshake is closed', async () => {
    const t0 = Date.now();
    const raw = await RawClient.tcp(stack.proxyPort);
    raw.write(SSL_REQUEST);
    expect(await raw.byte()).toBe('S');
    await raw.startTls({ ca, servername: 'localhost' });
    expect(await closesAfter(raw, t0)).toBeGreaterThanOrEqual(LOGIN_TIMEOUT_MS - 100);
  });

  it('a client that never answers the password request gets FATAL 08P01 "login timed out"', async () => {
    const t0 = Date.now();
    const { client, first } = await tlsStartup(stack.proxyPort, ca, { user: 'lou@corp.com', database: stack.db.name });
    expect(authCode(first.at(-1)!)).toBe(3);
    const m = await client.message(LOGIN_TIMEOUT_MS + 3_000);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(LOGIN_TIMEOUT_MS - 100);
    expect(m.type).toBe('E');
    expect(errorFields(m.body)).toMatchObject({ S: 'FATAL', C: '08P01', M: 'login timed out' });
    expect(await client.closedWithin(3_000)).toBe(true);
    expect(lastDenied(stack)).toMatchObject({ reason: 'login_timeout', sqlstate: '08P01', requestedUser: 'lou@corp.com' });
  });

  it('a StartupMessage sent one byte at a time still logs in well within the timeout', async () => {
    const token = await stack.tokenFor('lou@corp.com');
    const raw = await RawClient.tcp(stack.proxyPort);
    raw.write(SSL_REQUEST);
    expect(await raw.byte()).toBe('S');
    await raw.startTls({ ca, servername: 'localhost' });
    for (const byte of startupFrame({ user: 'lou@corp.com', database: stack.db.name })) {
      raw.write(Buffer.from([byte]));
      await new Promise((r) => setImmediate(r));
    }
    const auth = await raw.message();
    expect(authCode(auth)).toBe(3);
    expect(await loginAndQuery(raw, token, 'select current_user')).toBe(stack.roles.reader);
    raw.destroy();
  });
});
