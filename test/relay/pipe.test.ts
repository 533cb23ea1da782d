// The relay over real TCP sockets: bytes unchanged both ways, backpressure under a slow reader with
// bounded memory, one end per session with a reason, no listeners left behind, and a real PostgreSQL
// session audited through the taps.
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { connect, createServer } from 'node:net';
import type { AddressInfo, Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import pg from 'pg';
import { createMessageTap } from '../../proxy/relay/message-tap.js';
import { relay } from '../../proxy/relay/pipe.js';
import { dial, directReadsOf } from '../../proxy/upstream/transport.js';
import type { Relay, RelayEndInfo, RelayEndReason, Tap } from '../../proxy/relay/pipe.js';
import { decodeBackendMessage } from '../../proxy/wire/backend-decode.js';
import { decodeFrontendMessage } from '../../proxy/wire/frontend-decode.js';
import { BackendType, FrontendType } from '../../proxy/wire/message-types.js';
import { liveRss, liveRssSampler } from '../helpers/live-memory.js';
import { pgInfo } from '../helpers/postgres.js';

const cleanups: (() => void)[] = [];
afterEach(() => {
  while (cleanups.length > 0) cleanups.pop()?.();
});

/** A connected TCP pair on 127.0.0.1: `outer` plays the peer, `inner` is the proxy's socket. */
async function socketPair(): Promise<{ outer: Socket; inner: Socket }> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const accepted = once(server, 'connection') as Promise<[Socket]>;
  const outer = connect((server.address() as AddressInfo).port, '127.0.0.1');
  const [[inner]] = await Promise.all([accepted, once(outer, 'connect')]);
  server.close();
  // The session owns 'error' handling on its sockets for their whole life (see relay()).
  inner.on('error', () => {});
  outer.on('error', () => {});
  cleanups.push(() => {
    outer.destroy();
    inner.destroy();
  });
  return { outer, inner };
}

interface Harness {
  client: Socket; // the application
  server: Socket; // the database
  proxyClient: Socket;
  proxyServer: Socket;
  handle: Relay;
  ended: Promise<[RelayEndReason, RelayEndInfo]>;
  ends: [RelayEndReason, RelayEndInfo][];
}

/** Like socketPair, but `inner` is a plain upstream socket reading without its stream layer. */
async function directPair(): Promise<{ outer: Socket; inner: Socket }> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const accepted = once(server, 'connection') as Promise<[Socket]>;
  const [inner, [outer]] = await Promise.all([dial('127.0.0.1', (server.address() as AddressInfo).port, { direct: true }), accepted]);
  server.close();
  inner.on('error', () => {});
  outer.on('error', () => {});
  cleanups.push(() => {
    outer.destroy();
    inner.destroy();
  });
  return { outer, inner };
}

async function harness(taps: { fromClient?: Tap; fromServer?: Tap } = {}, opts: { directServer?: boolean } = {}): Promise<Harness> {
  const a = await socketPair();
  const b = opts.directServer === true ? await directPair() : await socketPair();
  const ends: [RelayEndReason, RelayEndInfo][] = [];
  let resolve: (v: [RelayEndReason, RelayEndInfo]) => void = () => {};
  const ended = new Promise<[RelayEndReason, RelayEndInfo]>((r) => (resolve = r));
  const serverReads = directReadsOf(b.inner);
  const handle = relay(a.inner, b.inner, taps, (reason, info) => {
    ends.push([reason, info]);
    resolve([reason, info]);
  }, serverReads === undefined ? {} : { serverReads });
  return { client: a.outer, server: b.outer, proxyClient: a.inner, proxyServer: b.inner, handle, ended, ends };
}

const EVENTS = ['data', 'drain', 'end', 'close', 'error'] as const;
const counts = (s: Socket): number[] => EVENTS.map((e) => s.listenerCount(e));

/** Reads `n` bytes from `sock`, hashing them; `slow` pauses after each chunk (up to `slowFor` bytes). */
function readHash(sock: Socket, n: number, slow = false, slowFor = Infinity): Promise<string> {
  const hash = createHash('sha256');
  let got = 0;
  return new Promise((resolve, reject) => {
    sock.on('error', reject);
    sock.on('data', (chunk: Buffer) => {
      hash.update(chunk);
      got += chunk.length;
      if (got >= n) resolve(hash.digest('hex'));
      else if (slow && got < slowFor) {
        sock.pause();
        setTimeout(() => sock.resume(), 1);
      }
    });
  });
}

/** Writes `total` bytes as typed messages of varied sizes (one of them 64 MB), honouring backpressure. */
async function writeMessages(sock: Socket, total: number, type: number, source: Buffer): Promise<string> {
  const hash = createHash('sha256');
  const put = async (buf: Buffer): Promise<void> => {
    hash.update(buf);
    if (!sock.write(buf)) await once(sock, 'drain');
  };
  let sent = 0;
  let i = 0;
  while (sent < total) {
    const big = i === 3;
    let size = Math.min(big ? 64 << 20 : ((i * 7919) % 300_000) + 1, total - sent - 5);
    const left = total - sent - 5 - size;
    if (left > 0 && left < 5) size += left; // never leave room too small for a header
    const header = Buffer.alloc(5);
    header[0] = type;
    header.writeInt32BE(size + 4, 1);
    await put(header);
    for (let off = 0; off < size; off += source.length) await put(source.subarray(0, Math.min(source.length, size - off)));
    sent += size + 5;
    i++;
  }
  return hash.digest('hex');
}

describe('relay', () => {
  it('carries bytes unchanged both ways and counts them', async () => {
    const h = await harness();
    const up = randomBytes(300_000);
    const down = randomBytes(500_000);
    const gotUp = readHash(h.server, up.length);
    const gotDown = readHash(h.client, down.length);
    h.client.write(up);
    h.server.write(down);
    expect(await gotUp).toBe(createHash('sha256').update(up).digest('hex'));
    expect(await gotDown).toBe(createHash('sha256').update(down).digest('hex'));
    expect(h.handle.bytesIn).toBe(up.length);
    expect(h.handle.bytesOut).toBe(down.length);
  });

  it('client end -> client_exit, once; listeners removed; both sockets paused and open', async () => {
    const a = await socketPair();
    const b = await socketPair();
    const before = [counts(a.inner), counts(b.inner)];
    const ends: RelayEndReason[] = [];
    const handle = relay(a.inner, b.inner, {}, (reason) => ends.push(reason));
    expect(counts(a.inner)).not.toEqual(before[0]);
    a.outer.write('hello');
    await once(b.outer, 'data');
    a.outer.end();
    await new Promise((r) => setTimeout(r, 100));
    expect(ends).toEqual(['client_exit']);
    expect(handle.stopped).toBe(true);
    expect([counts(a.inner), counts(b.inner)]).toEqual(before);
    expect(a.inner.isPaused()).toBe(true);
    expect(b.inner.isPaused()).toBe(true);
    expect(b.inner.destroyed).toBe(false);
    expect(handle.bytesIn).toBe(5);
  });

  it('upstream gone -> upstream_closed, with the byte counts', async () => {
    const h = await harness();
    h.server.write('abc');
    await once(h.client, 'data');
    h.server.destroy();
    const [reason, info] = await h.ended;
    expect(reason).toBe('upstream_closed');
    expect(info).toEqual({ bytesIn: 0, bytesOut: 3 });
    await new Promise((r) => setTimeout(r, 50));
    expect(h.ends).toHaveLength(1);
  });

  it('a reset from the client -> error, with the socket error for the log', async () => {
    const h = await harness();
    h.client.resetAndDestroy();
    const [reason, info] = await h.ended;
    expect(['error', 'client_exit']).toContain(reason);
    if (reason === 'error') expect((info.error as NodeJS.ErrnoException).code).toBe('ECONNRESET');
  });

  it('a tap violation ends the relay with error before the bad chunk is forwarded', async () => {
    const tap = createMessageTap({ maxPrefix: 64, interesting: () => true, onMessage: () => {} });
    const h = await harness({ fromServer: tap });
    let received = 0;
    h.client.on('data', (c: Buffer) => (received += c.length));
    h.server.write(Buffer.from([0x5a, 0, 0, 0, 5, 0x49])); // ReadyForQuery
    await new Promise((r) => setTimeout(r, 50));
    h.server.write(Buffer.from([0x44, 0, 0, 0, 2])); // length 2 < 4
    const [reason, info] = await h.ended;
    expect(reason).toBe('error');
    expect(info.error).toMatchObject({ code: 'invalid_message_length' });
    await new Promise((r) => setTimeout(r, 50));
    expect(received).toBe(6);
  });

  it('a tap callback that throws ends the relay with error', async () => {
    const tap = createMessageTap({
      maxPrefix: 8,
      interesting: () => true,
      onMessage: () => {
        throw new Error('audit sink broke');
      },
    });
    const h = await harness({ fromClient: tap });
    h.client.write(Buffer.from([0x53, 0, 0, 0, 4])); // Sync
    const [reason, info] = await h.ended;
    expect(reason).toBe('error');
    expect(info.error?.message).toBe('audit sink broke');
  });

  it('stop() detaches without calling onEnd, and later events are not reported', async () => {
    const a = await socketPair();
    const b = await socketPair();
    const before = [counts(a.inner), counts(b.inner)];
    const ends: RelayEndReason[] = [];
    const handle = relay(a.inner, b.inner, {}, (reason) => ends.push(reason));
    handle.stop();
    handle.stop();
    expect([counts(a.inner), counts(b.inner)]).toEqual(before);
    a.outer.end();
    b.outer.destroy();
    await new Promise((r) => setTimeout(r, 50));
    expect(ends).toEqual([]);
  });

  it('a socket already closed when the relay starts ends it on the next tick', async () => {
    const a = await socketPair();
    const b = await socketPair();
    a.inner.destroy();
    const ends: RelayEndReason[] = [];
    relay(a.inner, b.inner, {}, (reason) => ends.push(reason));
    expect(ends).toEqual([]);
    await new Promise((r) => process.nextTick(r));
    expect(ends).toEqual(['client_exit']);
  });

  it('200 MB each way through taps with slow readers: bytes identical, memory bounded', async () => {
    const audited: number[] = [];
    const fromServer = createMessageTap({ maxPrefix: 256, interesting: new Set([BackendType.commandComplete]), onMessage: (m) => audited.push(m.length) });
    const fromClient = createMessageTap({ maxPrefix: 256, interesting: new Set([FrontendType.query]), onMessage: (m) => audited.push(m.length) });
    const h = await harness({ fromClient, fromServer });
    const total = 200 << 20;
    const source = randomBytes(1 << 20);
    const base = liveRss();
    const sampler = liveRssSampler();
    let peak = 0;
    try {
      const [down, up, wroteDown, wroteUp] = await Promise.all([
        readHash(h.client, total, true),
        readHash(h.server, total, true),
        writeMessages(h.server, total, BackendType.dataRow, source),
        writeMessages(h.client, total, FrontendType.copyData, source),
      ]);
      peak = sampler.stop() - base;
      expect(down).toBe(wroteDown);
      expect(up).toBe(wroteUp);
      expect(h.handle.bytesIn).toBe(total);
      expect(h.handle.bytesOut).toBe(total);
      expect(audited.length).toBeGreaterThan(100);
      expect(peak).toBeLessThan(64 << 20);
    } finally {
      sampler.stop();
    }
  }, 120_000);
});

describe('relay from a plain upstream socket read without its stream layer', () => {
  it('a slow client while the server sends small pieces: no read overwrites a chunk a write still holds', async () => {
    // A client that does not keep up leaves writes unfinished (queued behind another, or partly
    // written) while the relay goes on reading, since the queue is under the high-water mark: the
    // read buffer those writes point into must not take the next read, or the client would get
    // later bytes in place of earlier ones.
    const h = await harness({}, { directServer: true });
    const total = 8_000_000;
    const sent = createHash('sha256');
    const received = createHash('sha256');
    let got = 0;
    const done = new Promise<void>((resolve) => {
      h.client.on('data', (chunk: Buffer) => {
        received.update(chunk);
        got += chunk.length;
        if (got >= total) return resolve();
        if (got < total / 2) {
          h.client.pause();
          setTimeout(() => h.client.resume(), 30);
        }
      });
    });
    const base = process.memoryUsage().rss;
    for (let off = 0; off < total; off += 3000) {
      const piece = randomBytes(Math.min(3000, total - off));
      sent.update(piece);
      if (!h.server.write(piece)) await once(h.server, 'drain');
      await new Promise<void>((r) => setImmediate(r));
    }
    await done;
    expect(received.digest('hex')).toBe(sent.digest('hex'));
    expect(h.handle.bytesOut).toBe(total);
    expect(process.memoryUsage().rss - base).toBeLessThan(64 << 20);
  }, 60_000);

  it('16 MB each way through taps with slow readers: bytes identical', async () => {
    const fromServer = createMessageTap({ maxPrefix: 16, interesting: new Set([BackendType.dataRow]), onMessage: () => {} });
    const h = await harness({ fromServer }, { directServer: true });
    const total = 16 << 20;
    const source = randomBytes(1 << 20);
    const [down, up, wroteDown, wroteUp] = await Promise.all([
      readHash(h.client, total, true, total / 2),
      readHash(h.server, total, true),
      writeMessages(h.server, total, BackendType.dataRow, source),
      writeMessages(h.client, total, FrontendType.copyData, source),
    ]);
    expect(down).toBe(wroteDown);
    expect(up).toBe(wroteUp);
    expect(fromServer.violation).toBeUndefined();
  }, 60_000);

  it('bytes unshifted before the relay come first; stopped, the socket reads as a stream again', async () => {
    const { outer: db, inner: upstream } = await directPair();
    const { outer: app, inner: proxyClient } = await socketPair();
    // Before the relay (the login): reads arrive as 'data' copies, which later reads do not overwrite.
    const first: Buffer[] = [];
    upstream.on('data', (c: Buffer) => first.push(c));
    db.write('login-reply|pending');
    await new Promise<void>((r) => setTimeout(r, 50));
    upstream.removeAllListeners('data');
    upstream.pause();
    const got = Buffer.concat(first).toString();
    expect(got).toBe('login-reply|pending');
    // The login read past its last message: those bytes go back onto the socket, like `upstream.pending`.
    upstream.unshift(Buffer.from(got.slice('login-reply'.length)));
    const received: Buffer[] = [];
    app.on('data', (c: Buffer) => received.push(c));
    const serverReads = directReadsOf(upstream);
    if (serverReads === undefined) throw new Error('dial({ direct: true }) gave a socket without direct reads');
    const handle = relay(proxyClient, upstream, {}, () => {}, { serverReads });
    db.write('|relayed');
    await new Promise<void>((r) => setTimeout(r, 50));
    expect(Buffer.concat(received).toString()).toBe('|pending|relayed');
    // Handed back (the pool's reset reads it): 'data' again, and the relay sees nothing.
    handle.stop();
    const after: Buffer[] = [];
    upstream.on('data', (c: Buffer) => after.push(c));
    upstream.resume();
    db.write('reset-reply');
    await new Promise<void>((r) => setTimeout(r, 50));
    expect(Buffer.concat(after).toString()).toBe('reset-reply');
    expect(Buffer.concat(received).toString()).toBe('|pending|relayed');
    expect(first.map((b) => b.toString()).join('')).toBe('login-reply|pending');
    expect(handle.bytesOut).toBe('|pending|relayed'.length);
  });
});

describe('a real PostgreSQL session through the relay', () => {
  it('relays node-postgres unchanged while the taps read statements and outcomes', async () => {
    const info = pgInfo();
    const statements: string[] = [];
    const outcomes: string[] = [];
    const tapClient = createMessageTap({
      maxPrefix: 1024,
      interesting: new Set([FrontendType.query, FrontendType.parse, FrontendType.bind, FrontendType.execute]),
      onMessage(m) {
        const d = decodeFrontendMessage(m);
        if (d.kind === 'query') statements.push(`Q ${d.text}`);
        else if (d.kind === 'parse') statements.push(`P ${d.text ?? ''}`);
        else if (d.kind === 'bind') statements.push(`B ${d.paramCount ?? '?'}`);
        else if (d.kind === 'execute') statements.push('E');
      },
    });
    // The client's first packet is the untyped StartupMessage; the tap starts after it.
    let skip = -1;
    let head = Buffer.alloc(0);
    const fromClient: Tap = {
      push(chunk) {
        if (skip === -1) {
          head = Buffer.concat([head, chunk]);
          if (head.length < 4) return;
          skip = head.readInt32BE(0);
          chunk = head;
        }
        if (skip > 0) {
          const n = Math.min(skip, chunk.length);
          skip -= n;
          chunk = chunk.subarray(n);
        }
        if (chunk.length > 0) tapClient.push(chunk);
      },
      get violation() {
        return tapClient.violation;
      },
    };
    const fromServer = createMessageTap({
      maxPrefix: 1024,
      interesting: new Set([BackendType.commandComplete, BackendType.errorResponse, BackendType.readyForQuery]),
      onMessage(m) {
        const d = decodeBackendMessage(m);
        if (d.kind === 'commandComplete') outcomes.push(`${d.command} ${d.rows ?? '-'}`);
        else if (d.kind === 'errorResponse') outcomes.push(`E ${d.code ?? '?'}`);
        else if (d.kind === 'readyForQuery') outcomes.push(`Z ${d.status}`);
      },
    });

    const proxy = createServer((sock) => {
      sock.on('error', () => {});
      sock.pause();
      const upstream = connect(info.port, info.host, () => {
        relay(sock, upstream, { fromClient, fromServer }, (reason) => {
          outcomes.push(`end ${reason}`);
          sock.end();
          upstream.end();
        });
      });
      upstream.on('error', () => {});
    });
    proxy.listen(0, '127.0.0.1');
    await once(proxy, 'listening');
    cleanups.push(() => proxy.close());

    const client = new pg.Client({
      host: '127.0.0.1',
      port: (proxy.address() as AddressInfo).port,
      user: info.superuser,
      password: info.password,
      database: 'postgres',
      ssl: false,
    });
    await client.connect();
    const series = await client.query('select generate_series(1, 5) as n');
    expect(series.rows.map((r: { n: number }) => r.n)).toEqual([1, 2, 3, 4, 5]);
    const param = await client.query('select $1::int + 1 as v', [41]);
    expect(param.rows[0]).toEqual({ v: 42 });
    await expect(client.query('select * from no_such_table')).rejects.toMatchObject({ code: '42P01' });
    await client.query('begin');
    await client.query('create temp table t (x int)');
    await client.query('insert into t select generate_series(1, 3)');
    await client.query('commit');
    await client.end();
    await new Promise((r) => setTimeout(r, 100));

    expect(statements).toEqual([
      'Q select generate_series(1, 5) as n',
      'P select $1::int + 1 as v',
      'B 1',
      'E',
      'Q select * from no_such_table',
      'Q begin',
      'Q create temp table t (x int)',
      'Q insert into t select generate_series(1, 3)',
      'Q commit',
    ]);
    expect(outcomes).toEqual([
      'Z I', // login done
      'SELECT 5',
      'Z I',
      'SELECT 1',
      'Z I',
      'E 42P01',
      'Z I',
      'BEGIN -',
      'Z T',
      'CREATE -',
      'Z T',
      'INSERT 3',
      'Z T',
      'COMMIT -',
      'Z I',
      'end client_exit',
    ]);
  });
});
