// connectUpstream against scripted servers that misbehave in ways a real PostgreSQL never does (or an impostor would).
import { once } from 'node:events';
import type net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { connectUpstream } from '../../proxy/upstream/connect.js';
import type { UpstreamLoginOptions } from '../../proxy/upstream/connect.js';
import { UpstreamError } from '../../proxy/upstream/errors.js';
import type { UpstreamErrorCode } from '../../proxy/upstream/errors.js';
import { clientReader, scriptedServer, serverMessage } from './support.js';

type Server = Awaited<ReturnType<typeof scriptedServer>>;
let server: Server | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

const PASSWORD = 'correct horse battery staple';

function options(port: number, over: Partial<UpstreamLoginOptions> = {}): UpstreamLoginOptions {
  return {
    host: '127.0.0.1',
    port,
    tls: { mode: 'disable' },
    role: 'app_reader',
    database: 'app',
    params: {},
    credentials: { password: PASSWORD },
    connectTimeoutMs: 5_000,
    ...over,
  };
}

async function failure(opts: UpstreamLoginOptions, code: UpstreamErrorCode): Promise<UpstreamError> {
  const err = await connectUpstream(opts).then(
    (conn) => {
      conn.socket.destroy();
      throw new Error(`expected ${code}, but the login succeeded`);
    },
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(UpstreamError);
  expect((err as UpstreamError).code, (err as Error).message).toBe(code);
  return err as UpstreamError;
}

/** A plaintext server that reads the startup packet and then runs `script`. */
async function afterStartup(script: (socket: net.Socket, read: ReturnType<typeof clientReader>) => Promise<void>): Promise<Server> {
  server = await scriptedServer((socket) => {
    const read = clientReader(socket);
    void read.startup().then(() => script(socket, read)).catch(() => socket.destroy());
  });
  return server;
}

const OK_TAIL = Buffer.concat([
  serverMessage('R', 0),
  serverMessage('S', 'server_version\0', '15.8\0'),
  serverMessage('K', 77, Buffer.from([9, 9, 9, 9])),
  serverMessage('Z', 'I'),
]);

describe('deadlines', () => {
  it('times out on a server that accepts and never answers, and closes the socket', async () => {
    server = await scriptedServer(() => undefined);
    const started = Date.now();
    const err = await failure(options(server.port, { connectTimeoutMs: 300 }), 'UPSTREAM_TIMEOUT');
    expect(Date.now() - started).toBeGreaterThanOrEqual(290);
    expect(err.publicMessage).toBe('upstream database did not answer in time');
    // The peer sees our FIN once it reads; a leaked socket would keep it open until the test times out.
    const peer = server.sockets[0];
    expect(peer).toBeDefined();
    if (peer !== undefined && !peer.closed) await Promise.all([once(peer, 'close'), peer.resume()]);
  });

  it('times out while waiting for the SSLRequest answer', async () => {
    server = await scriptedServer(() => undefined);
    await failure(options(server.port, { connectTimeoutMs: 200, tls: { mode: 'require' } }), 'UPSTREAM_TIMEOUT');
  });

  it('stops when the caller aborts', async () => {
    server = await scriptedServer(() => undefined);
    const controller = new AbortController();
    setTimeout(() => controller.abort(new Error('client went away')), 50);
    const err = await failure(options(server.port, { signal: controller.signal }), 'UPSTREAM_ABORTED');
    expect((err.cause as Error).message).toBe('client went away');
    await failure(options(server.port, { signal: AbortSignal.abort() }), 'UPSTREAM_ABORTED');
  });
});

describe('SSLRequest answers', () => {
  it("refuses 'N' when the mode requires TLS", async () => {
    server = await scriptedServer((socket) => socket.once('data', () => socket.write('N')));
    const err = await failure(options(server.port, { tls: { mode: 'require' } }), 'UPSTREAM_TLS');
    expect(err.message).toMatch(/does not accept TLS/);
  });

  it("refuses bytes after 'S' that precede the handshake (CVE-2021-23222)", async () => {
    server = await scriptedServer((socket) => socket.once('data', () => socket.write(Buffer.concat([Buffer.from('S'), serverMessage('R', 0)]))));
    await failure(options(server.port, { tls: { mode: 'require' } }), 'UPSTREAM_PROTOCOL');
  });

  it("treats an 'E' answer as a TLS failure", async () => {
    server = await scriptedServer((socket) => socket.once('data', () => socket.end('E')));
    await failure(options(server.port, { tls: { mode: 'require' } }), 'UPSTREAM_TLS');
  });
});

describe('authentication impostors', () => {
  /** Runs SCRAM up to client-final like a server that does not know the password, then `finish`. */
  const scramImpostor = (finish: (socket: net.Socket) => void) =>
    afterStartup(async (socket, read) => {
      socket.write(serverMessage('R', 10, 'SCRAM-SHA-256\0\0'));
      const initial = await read.message();
      const clientNonce = /r=([^,]+)/.exec(initial.body.toString('latin1'))?.[1] ?? '';
      socket.write(serverMessage('R', 11, `r=${clientNonce}IMPOSTOR,s=${Buffer.from('salt').toString('base64')},i=4096`));
      await read.message();
      finish(socket);
    });

  it('refuses a SCRAM server whose signature does not prove the password', async () => {
    await scramImpostor((socket) =>
      socket.write(Buffer.concat([serverMessage('R', 12, `v=${Buffer.alloc(32).toString('base64')}`), OK_TAIL])),
    );
    const err = await failure(options(server!.port), 'UPSTREAM_AUTH');
    expect(err.message).toMatch(/does not know the password/);
  });

  it('refuses AuthenticationOk that skips SASLFinal', async () => {
    await scramImpostor((socket) => socket.write(OK_TAIL));
    const err = await failure(options(server!.port), 'UPSTREAM_AUTH');
    expect(err.message).toMatch(/before the server proved/);
  });

  it('refuses AuthenticationOk straight after the SASL initial response', async () => {
    await afterStartup(async (socket, read) => {
      socket.write(serverMessage('R', 10, 'SCRAM-SHA-256\0\0'));
      await read.message();
      socket.write(OK_TAIL);
    });
    await failure(options(server!.port), 'UPSTREAM_AUTH');
  });

  it('refuses SASL without a mechanism it supports', async () => {
    await afterStartup(async (socket) => void socket.write(serverMessage('R', 10, 'SCRAM-SHA-256-PLUS\0\0')));
    await failure(options(server!.port), 'UPSTREAM_AUTH');
  });

  it('refuses an unsupported method (GSSAPI)', async () => {
    await afterStartup(async (socket) => void socket.write(serverMessage('R', 7)));
    const err = await failure(options(server!.port), 'UPSTREAM_AUTH');
    expect(err.message).toMatch(/unsupported authentication request 7/);
  });

  it('does not send a cleartext password to an unverified server, and says why', async () => {
    const received: string[] = [];
    await afterStartup(async (socket, read) => {
      socket.write(serverMessage('R', 3));
      for (;;) received.push((await read.message()).type);
    });
    const err = await failure(options(server!.port), 'UPSTREAM_AUTH');
    expect(err.message).toMatch(/cleartext password/);
    expect(received).toEqual([]);
  });

  it('sends a cleartext password when explicitly allowed', async () => {
    let password = '';
    await afterStartup(async (socket, read) => {
      socket.write(serverMessage('R', 3));
      password = (await read.message()).body.toString('utf8');
      socket.write(OK_TAIL);
    });
    const conn = await connectUpstream(options(server!.port, { allowUnverifiedCleartextPassword: true }));
    conn.socket.destroy();
    expect(password).toBe(PASSWORD + '\0');
  });
});

describe('protocol violations', () => {
  it.each([
    ['an oversized message', serverMessage('N', Buffer.alloc(30_001, 0x41))],
    ['ParameterStatus before AuthenticationOk', serverMessage('S', 'a\0b\0')],
    ['ReadyForQuery without BackendKeyData', Buffer.concat([serverMessage('R', 0), serverMessage('Z', 'I')])],
    ['NegotiateProtocolVersion we did not ask for', serverMessage('v', 0, 0)],
    ['an unknown message type', serverMessage('D', Buffer.alloc(2))],
    ['a second AuthenticationOk', Buffer.concat([serverMessage('R', 0), serverMessage('R', 0)])],
    ['a malformed authentication request', serverMessage('R', 5, Buffer.from([1, 2]))],
  ])('refuses %s as UPSTREAM_PROTOCOL', async (_name, bytes) => {
    await afterStartup(async (socket) => void socket.write(bytes));
    await failure(options(server!.port), 'UPSTREAM_PROTOCOL');
  });

  it('reports a server that closes mid-login as UPSTREAM_UNREACHABLE', async () => {
    await afterStartup(async (socket) => void socket.end(serverMessage('R', 10, 'SCRAM-SHA-256\0\0').subarray(0, 7)));
    await failure(options(server!.port), 'UPSTREAM_UNREACHABLE');
  });

  it('maps a FATAL 53300 to UPSTREAM_REFUSED with the SQLSTATE', async () => {
    await afterStartup(async (socket) =>
      void socket.end(serverMessage('E', 'SFATAL\0', 'VFATAL\0', 'C53300\0', 'Msorry, too many clients already\0', Buffer.from([0]))),
    );
    const err = await failure(options(server!.port), 'UPSTREAM_REFUSED');
    expect(err.sqlstate).toBe('53300');
    expect(err.publicMessage).not.toContain('too many');
  });
});

describe('hand-over', () => {
  it('returns bytes read past ReadyForQuery as pending and leaves the rest in the paused socket', async () => {
    const notice = serverMessage('N', 'SNOTICE\0', 'Mafter login\0', Buffer.from([0]));
    const later = serverMessage('S', 'TimeZone\0', 'UTC\0');
    let peer: net.Socket | undefined;
    await afterStartup(async (socket) => {
      peer = socket;
      socket.write(Buffer.concat([serverMessage('N', 'SNOTICE\0', 'Mduring\0', Buffer.from([0])), OK_TAIL, notice]));
    });
    const conn = await connectUpstream(options(server!.port, { credentials: { password: 'unused' } }));
    try {
      expect(conn.pending.equals(notice)).toBe(true);
      expect([...conn.parameters]).toEqual([['server_version', '15.8']]);
      expect(conn.backendKey).toEqual({ processId: 77, secretKey: Buffer.from([9, 9, 9, 9]) });
      expect(conn.socket.isPaused()).toBe(true);
      expect(conn.socket.listenerCount('data')).toBe(0);
      peer?.write(later);
      const [chunk] = (await Promise.all([once(conn.socket, 'data'), conn.socket.resume()]))[0] as [Buffer];
      expect(chunk.equals(later)).toBe(true);
    } finally {
      conn.socket.destroy();
    }
  });
});
