// The proxy benchmark's floor: the least a Node relay can do between pgbench and PostgreSQL, with
// rolegate's transports and socket settings and nothing else (no login, no taps, no audit, no pool).
// Its CPU per transaction is what Node's streams, TLS and event loop cost on this machine, so the
// distance from it to rolegate is rolegate's own work, and from it to pgbouncer is the platform's.
//
//   node dist/bench/node-relay.js tls|plain LISTEN_PORT UPSTREAM_PORT CERT KEY CA
//
// tls: answers the client's SSLRequest with 'S' and terminates TLS with CERT/KEY, then opens its own
// TLS connection to PostgreSQL (SSLRequest, verify-full against CA for `localhost`). The client's
// password exchange goes through unchanged to PostgreSQL; with CERT being PostgreSQL's own certificate,
// SCRAM channel binding holds too. plain: bytes both ways from the first one.
import { readFileSync } from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import type { Duplex } from 'node:stream';

const SSL_REQUEST = 80877103;
const GSSENC_REQUEST = 80877104;

const [transport, listenPort, upstreamPort, cert, key, ca] = process.argv.slice(2);
if ((transport !== 'tls' && transport !== 'plain') || upstreamPort === undefined || ca === undefined) {
  console.error('usage: node-relay.js tls|plain LISTEN_PORT UPSTREAM_PORT CERT KEY CA');
  process.exit(2);
}
const serverContext = tls.createSecureContext({ cert: readFileSync(cert as string), key: readFileSync(key as string) });
const upstreamContext = tls.createSecureContext({ ca: readFileSync(ca) });

/** Bytes both ways, each direction paused while the other side's write buffer is full. */
function pipeBoth(a: Duplex, b: Duplex): void {
  a.on('data', (chunk: Buffer) => {
    if (!b.write(chunk)) a.pause();
  });
  b.on('data', (chunk: Buffer) => {
    if (!a.write(chunk)) b.pause();
  });
  a.on('drain', () => b.resume());
  b.on('drain', () => a.resume());
  const end = (): void => {
    a.destroy();
    b.destroy();
  };
  a.on('close', end).on('error', end);
  b.on('close', end).on('error', end);
  a.resume();
  b.resume();
}

/** Reads exactly `n` bytes from a paused socket (the start of a connection, before any relaying). */
function readExactly(socket: net.Socket, n: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    let got = Buffer.alloc(0);
    const onData = (chunk: Buffer): void => {
      got = Buffer.concat([got, chunk]);
      if (got.length < n) return;
      socket.off('data', onData).off('error', reject).pause();
      if (got.length > n) socket.unshift(got.subarray(n));
      resolve(got.subarray(0, n));
    };
    socket.on('data', onData).on('error', reject);
  });
}

function request(code: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeInt32BE(8, 0);
  b.writeInt32BE(code, 4);
  return b;
}

async function upstreamTls(): Promise<tls.TLSSocket> {
  const raw = net.connect({ port: Number(upstreamPort), host: '127.0.0.1', noDelay: true });
  await new Promise<void>((resolve, reject) => raw.once('connect', resolve).once('error', reject));
  raw.write(request(SSL_REQUEST));
  const answer = await readExactly(raw, 1);
  if (answer[0] !== 0x53) throw new Error('PostgreSQL refused TLS');
  const socket = tls.connect({ socket: raw, secureContext: upstreamContext, servername: 'localhost' });
  await new Promise<void>((resolve, reject) => socket.once('secureConnect', resolve).once('error', reject));
  return socket;
}

async function onClient(client: net.Socket): Promise<void> {
  if (transport === 'plain') {
    const upstream = net.connect({ port: Number(upstreamPort), host: '127.0.0.1', noDelay: true });
    pipeBoth(client, upstream);
    return;
  }
  // libpq may ask for GSS encryption first; refuse it, then expect the SSLRequest.
  let head = await readExactly(client, 8);
  if (head.readInt32BE(4) === GSSENC_REQUEST) {
    client.write('N');
    head = await readExactly(client, 8);
  }
  if (head.readInt32BE(4) !== SSL_REQUEST) throw new Error('the client did not ask for TLS');
  client.write('S');
  const secureClient = new tls.TLSSocket(client, { isServer: true, secureContext: serverContext });
  pipeBoth(secureClient, await upstreamTls());
}

net
  .createServer({ noDelay: true }, (socket) => {
    socket.on('error', () => socket.destroy());
    onClient(socket).catch(() => socket.destroy());
  })
  .listen(Number(listenPort), '127.0.0.1', () => console.log('listening'));
