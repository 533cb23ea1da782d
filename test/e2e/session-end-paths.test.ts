// Every way a connection ends before it is live goes through one path with a typed reason and one
// log line (pgbouncer's disconnect_client), and an unexpected failure inside one login refuses that
// login alone (FATAL XX000, detail only in the log) while every other session goes on.
import { connect as tlsConnect } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startStack, type Stack } from '../helpers/stack.js';
import { waitFor } from '../helpers/wait.js';
import { caPem, lastDenied, pgLoginError } from './login-helpers.js';
import { RawClient, SSL_REQUEST, TERMINATE, tlsStartup } from './login-wire.js';

let stack: Stack;
beforeAll(async () => {
  stack = await startStack();
  await stack.provision('alice@corp.com', ['analysts']);
  await stack.provision('boom@corp.com', ['analysts']);
});
afterAll(async () => {
  await stack?.close();
});

const int32 = (n: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeInt32BE(n);
  return b;
};

/** The log lines of ends before login that carry `reason`. */
function endLines(reason: string): Record<string, unknown>[] {
  return stack
    .logLines()
    .map((l) => JSON.parse(l) as Record<string, unknown>)
    .filter((l) => l['msg'] === 'connection closed before login' && l['reason'] === reason);
}

async function loggedOnce(reason: string, before: number): Promise<void> {
  await waitFor(() => endLines(reason).length === before + 1, 5_000, `no log line for ${reason}`);
}

describe('ends before login: one path, one log line each', () => {
  it('session ends without a reason: a client that leaves during the login is logged as client_left', async () => {
    const before = endLines('client_left').length;
    const { client } = await tlsStartup(stack.proxyPort, caPem(stack), { user: 'alice@corp.com', database: stack.db.name });
    client.destroy();
    await loggedOnce('client_left', before);
  });

  it('session ends without a reason: a failed TLS handshake is logged as tls_failed', async () => {
    const before = endLines('tls_failed').length;
    const client = await RawClient.tcp(stack.proxyPort);
    client.write(SSL_REQUEST);
    expect(await client.byte()).toBe('S');
    // Not a ClientHello: the handshake fails.
    client.write(Buffer.from('this is not TLS at all, just text\r\n'));
    expect(await client.closedWithin(5_000)).toBe(true);
    await loggedOnce('tls_failed', before);
  });

  it('session ends without a reason: a CancelRequest is logged as cancel_request', async () => {
    const before = endLines('cancel_request').length;
    const client = await RawClient.tcp(stack.proxyPort);
    client.write(Buffer.concat([int32(16), int32(80877102), int32(12345), int32(678)]));
    expect(await client.closedWithin(5_000)).toBe(true);
    await loggedOnce('cancel_request', before);
  });

  it('session ends without a reason: Terminate before the password is logged as client_terminate', async () => {
    const before = endLines('client_terminate').length;
    const { client } = await tlsStartup(stack.proxyPort, caPem(stack), { user: 'alice@corp.com', database: stack.db.name });
    client.write(TERMINATE);
    expect(await client.closedWithin(5_000)).toBe(true);
    await loggedOnce('client_terminate', before);
  });

  it('session ends without a reason: a direct-TLS client that leaves after the handshake is logged as client_left', async () => {
    const before = endLines('client_left').length;
    const socket = tlsConnect({ host: '127.0.0.1', port: stack.proxyPort, ALPNProtocols: ['postgresql'], ca: caPem(stack), servername: 'localhost' });
    socket.on('error', () => {});
    await new Promise<void>((resolve) => socket.once('secureConnect', () => resolve()));
    // Long enough for the proxy to finish its side of the handshake (else it is a tls_failed).
    await new Promise((r) => setTimeout(r, 200));
    socket.destroy();
    await loggedOnce('client_left', before);
  });
});

describe('an unexpected failure inside one login', () => {
  it('unhandled login rejection: refuses that login with XX000 and keeps every other session', async () => {
    const alice = await stack.connect('alice@corp.com');
    // A fault injected into the directory the proxy asks: an exception no login path expects.
    const directory = stack.server.directory;
    const original = directory.findPerson.bind(directory);
    directory.findPerson = (identity: string) => {
      if (identity === 'boom@corp.com') throw new Error('index exploded with internal detail 0xdeadbeef');
      return original(identity);
    };
    try {
      const failure = await pgLoginError(stack.pgConfig('boom@corp.com', await stack.tokenFor('boom@corp.com')));
      expect(failure).toEqual({ code: 'XX000', message: 'internal error during login' });
      expect(lastDenied(stack)).toMatchObject({ reason: 'internal', sqlstate: 'XX000', requestedUser: 'boom@corp.com' });
      // The detail is in the process log only.
      expect(stack.logLines().some((l) => l.includes('0xdeadbeef') && l.includes('login failed unexpectedly'))).toBe(true);
    } finally {
      directory.findPerson = original;
    }
    // Everyone else is unaffected: the live session answers, and a new login works.
    expect((await alice.query('select 1 as one')).rows).toEqual([{ one: 1 }]);
    await alice.end();
    const again = await stack.connect('boom@corp.com');
    expect((await again.query('select current_user as u')).rows[0].u).toBe(stack.roles.reader);
    await again.end();
  });
});
