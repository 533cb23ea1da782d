// Login path under hostile input (docs/style.md 4 "do not trust the wire"): random, truncated, oversized
// and split frames in every state before the relay (before SSLRequest, inside TLS before the
// StartupMessage, after the password request), each over its own real connection. The proxy must
// not crash, must end every connection, must leak no connection slot, and must keep serving a
// healthy session opened before the storm.
import fc from 'fast-check';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startStack, type Stack } from '../helpers/stack.js';
import { caPem } from './login-helpers.js';
import { passwordFrame, RawClient, SSL_REQUEST, startupFrame, tlsStartup, typedFrame } from './login-wire.js';

// Small on purpose: every connection the proxy failed to release keeps its slot until the (long)
// login timeout, so the logins at the end would be refused with 53300.
const MAX_CONNECTIONS = 4;
let stack: Stack;
let ca: string;
let token: string;

beforeAll(async () => {
  stack = await startStack({ config: { proxy: { maxConnections: MAX_CONNECTIONS, loginTimeout: '120s' } } });
  ca = caPem(stack);
  await stack.provision('fuzz@corp.com', ['analysts']);
  token = await stack.tokenFor('fuzz@corp.com');
});
afterAll(async () => {
  await stack?.close();
});

const word = (n: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0);
  return b;
};

/** A frame to send, or the valid token's PasswordMessage (a live session that then gets garbage). */
type Piece = Buffer | 'valid-password';

const length = fc.oneof(
  fc.integer({ min: -8, max: 64 }),
  fc.integer({ min: 0, max: 70_000 }),
  fc.constantFrom(0x7fffffff, -1, 0x80000000, 10_004, 10_005, 65_535, 65_536),
);
const code = fc.oneof(fc.constantFrom(80877103, 80877104, 80877102, 196608, 196609, 196610, 131072, 0x00040000), fc.integer());
const bytes = (max: number) => fc.uint8Array({ maxLength: max }).map((a) => Buffer.from(a));

const piece: fc.Arbitrary<Piece> = fc.oneof(
  { weight: 3, arbitrary: bytes(200) },
  // An untyped packet: SSLRequest/GSSENC/Cancel/StartupMessage codes or anything, any length word.
  { weight: 3, arbitrary: fc.tuple(length, code, bytes(48)).map(([len, c, body]) => Buffer.concat([word(len), word(c), body])) },
  // A StartupMessage with arbitrary (also NUL-bearing, non-UTF-8) parameters, maybe cut short.
  {
    weight: 3,
    arbitrary: fc
      .tuple(fc.dictionary(fc.string({ unit: 'binary', maxLength: 10 }), fc.string({ unit: 'binary', maxLength: 10 }), { maxKeys: 4 }), fc.nat({ max: 3 }), fc.option(fc.nat()))
      .map(([params, minor, cut]) => {
        const f = startupFrame(params, minor);
        return cut === null ? f : f.subarray(0, cut % f.length);
      }),
  },
  // A typed message: PasswordMessage, Terminate, Query, a TLS record byte, or any type byte.
  {
    weight: 3,
    arbitrary: fc
      .tuple(fc.oneof(fc.constantFrom(0x70, 0x58, 0x51, 0x50, 0x16), fc.integer({ min: 0, max: 255 })), length, bytes(48))
      .map(([t, len, body]) => Buffer.concat([Buffer.from([t]), word(len), body])),
  },
  { weight: 2, arbitrary: fc.string({ unit: 'binary', maxLength: 40 }).map((p) => passwordFrame(p)) },
  { weight: 1, arbitrary: fc.constant<Piece>('valid-password') },
  // Oversized: a password message longer than any token, or a flood of bytes.
  { weight: 1, arbitrary: fc.integer({ min: 65_532, max: 70_000 }).map((n) => typedFrame('p', Buffer.alloc(n, 0x61))) },
  { weight: 1, arbitrary: fc.integer({ min: 1_000, max: 300_000 }).map((n) => Buffer.alloc(n, 0x41)) },
);

const scenario = fc.record({
  state: fc.constantFrom('before-ssl', 'in-tls', 'after-password-request'),
  pieces: fc.array(piece, { minLength: 1, maxLength: 4 }),
  cuts: fc.array(fc.nat(), { maxLength: 8 }),
  waitMs: fc.constantFrom(0, 5, 60),
  goodbye: fc.constantFrom('end', 'destroy'),
});

async function open(state: string): Promise<RawClient> {
  if (state === 'after-password-request') {
    const { client, first } = await tlsStartup(stack.proxyPort, ca, { user: 'fuzz@corp.com', database: stack.db.name });
    if (first.at(-1)?.type !== 'R') throw new Error(`no password request: ${first.map((m) => m.type).join('')}`);
    return client;
  }
  const client = await RawClient.tcp(stack.proxyPort);
  if (state === 'in-tls') {
    client.write(SSL_REQUEST);
    const answer = await client.byte();
    if (answer !== 'S') throw new Error(`SSLRequest answered ${answer}`);
    await client.startTls({ ca, servername: 'localhost' });
  }
  return client;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * `n` logins at once all succeed (each runs `select current_user`), then end. A connection the proxy
 * failed to release holds its slot until the 120 s login timeout, so one of them would get 53300;
 * closes still in flight are allowed a moment.
 */
async function expectFreeSlots(n: number): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    const clients = Array.from({ length: n }, () => new pg.Client(stack.pgConfig('fuzz@corp.com', token)));
    for (const c of clients) c.on('error', () => {});
    const results = await Promise.allSettled(clients.map(async (c) => {
      await c.connect();
      return (await c.query('select current_user as u')).rows[0].u as string;
    }));
    await Promise.all(clients.map((c) => c.end().catch(() => undefined)));
    const refused = results.flatMap((r) => (r.status === 'rejected' ? [String(r.reason)] : []));
    if (refused.length === 0) {
      expect(results.map((r) => (r as PromiseFulfilledResult<string>).value)).toEqual(clients.map(() => stack.roles.reader));
      return;
    }
    expect(attempt, `logins still refused: ${refused.join('; ')}`).toBeLessThan(15);
    await sleep(100);
  }
}

async function expectNoLiveSessions(): Promise<void> {
  for (let i = 0; i < 40 && stack.server.registry.all().length > 0; i++) await sleep(50);
  expect(stack.server.registry.all()).toHaveLength(0);
}

describe('random frames in every login state', () => {
  it('never crash the proxy, every connection ends, no slot leaks, a live session keeps working', async () => {
    const healthy = new pg.Client(stack.pgConfig('fuzz@corp.com', token));
    healthy.on('error', () => {});
    await healthy.connect();
    const linesBefore = stack.logLines().length;

    await fc.assert(
      fc.asyncProperty(scenario, async ({ state, pieces, cuts, waitMs, goodbye }) => {
        const client = await open(state);
        try {
          const payload = Buffer.concat(pieces.map((p) => (p === 'valid-password' ? passwordFrame(token) : p)));
          const offsets = [...new Set(cuts.map((c) => c % (payload.length + 1)))].sort((a, b) => a - b);
          let from = 0;
          for (const to of [...offsets, payload.length]) {
            if (client.ended) break;
            if (to > from) client.write(payload.subarray(from, to));
            from = to;
            // A macrotask between writes, so the pieces arrive as separate reads.
            await new Promise((r) => setTimeout(r, 1));
          }
          if (waitMs > 0) await client.closedWithin(waitMs);
          if (goodbye === 'end') client.end();
          else client.destroy();
          // Whoever closes first, the connection must be gone shortly after the client says goodbye.
          return await client.closedWithin(3_000);
        } finally {
          client.destroy();
        }
      }),
      { numRuns: 150, endOnFailure: true },
    );

    // The session opened before the storm still answers.
    expect((await healthy.query('select 1 as one')).rows).toEqual([{ one: 1 }]);
    // Every fuzz connection released its slot: the remaining slots all accept a login at once.
    await expectFreeSlots(MAX_CONNECTIONS - 1);
    await healthy.end();

    // No live session was left behind by the runs that logged in and then sent garbage.
    await expectNoLiveSessions();
    // Nothing the proxy logged at error level or above (pino: error = 50): no internal failure.
    const bad = stack.logLines().slice(linesBefore).filter((l) => (JSON.parse(l) as { level: number }).level >= 50);
    expect(bad).toEqual([]);
  }, 90_000);
});

describe('clients that vanish at each step of the login release their slot at once', () => {
  // Each step leaves the client in a different place of the session's state machine; the proxy must
  // notice the close there and release the slot, not wait for the login timeout. Bug fixed: a close
  // during the TLS handshake (after 'S', or direct TLS) left the upgrade unsettled and the slot
  // taken until proxy.loginTimeout (proxy/tls/server-tls.ts).
  const steps: [string, () => Promise<RawClient>][] = [
    ['right after connect', () => RawClient.tcp(stack.proxyPort)],
    ['after the S answer, before the handshake', async () => {
      const c = await RawClient.tcp(stack.proxyPort);
      c.write(SSL_REQUEST);
      await c.byte();
      return c;
    }],
    ['in the middle of the TLS handshake', async () => {
      const c = await RawClient.tcp(stack.proxyPort);
      c.write(SSL_REQUEST);
      await c.byte();
      // The first bytes of a ClientHello record: handshake, TLS 1.0 record version, a length.
      c.write(Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01]));
      await sleep(5);
      return c;
    }],
    ['in the middle of a direct-TLS handshake', async () => {
      const c = await RawClient.tcp(stack.proxyPort);
      c.write(Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01]));
      await sleep(5);
      return c;
    }],
    ['after the TLS handshake', async () => {
      const c = await RawClient.tcp(stack.proxyPort);
      c.write(SSL_REQUEST);
      await c.byte();
      await c.startTls({ ca, servername: 'localhost' });
      return c;
    }],
    ['after the password request', async () => (await tlsStartup(stack.proxyPort, ca, { user: 'fuzz@corp.com', database: stack.db.name })).client],
    ['while the token is being verified and the upstream logged in to', async () => {
      const { client } = await tlsStartup(stack.proxyPort, ca, { user: 'fuzz@corp.com', database: stack.db.name });
      client.write(passwordFrame(token));
      return client;
    }],
  ];

  it.each(steps)('%s (FIN and RST)', async (_name, step) => {
    for (let i = 0; i < MAX_CONNECTIONS; i++) {
      const c = await step();
      if (i % 2 === 0) c.destroy();
      else c.end();
      expect(await c.closedWithin(3_000)).toBe(true);
    }
    await expectFreeSlots(MAX_CONNECTIONS);
    await expectNoLiveSessions();
  });
});
