// Test support for the upstream side: roles on the run's PostgreSQL, queries over a handed-over socket, scripted servers.
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import { serialize } from 'pg-protocol';
import { Parser } from 'pg-protocol/dist/parser.js';
import type { BackendMessage } from 'pg-protocol/dist/messages.js';
import { pgInfo, superuserQuery } from '../helpers/postgres.js';
import type { UpstreamConnection, UpstreamLoginOptions } from '../../proxy/upstream/connect.js';

export type AuthMethod = 'scram' | 'md5' | 'cert';

/** Creates a LOGIN role whose pg_hba line selects `method`; returns its name and password. */
export async function createRole(method: AuthMethod): Promise<{ role: string; password: string; drop(): Promise<void> }> {
  const role = `rg_up_${method}_${randomBytes(4).toString('hex')}`;
  const password = `pw-${randomBytes(12).toString('hex')}`;
  const group = method === 'md5' ? ' IN ROLE rg_md5_login' : method === 'cert' ? ' IN ROLE rg_cert_login' : '';
  const encryption = method === 'md5' ? 'md5' : 'scram-sha-256';
  await superuserQuery(
    `SET password_encryption = '${encryption}'; CREATE ROLE "${role}" LOGIN PASSWORD '${password}'${group}`,
  );
  return { role, password, drop: async () => void (await superuserQuery(`DROP ROLE IF EXISTS "${role}"`)) };
}

/** Login options for the run's cluster over TLS verify-full; override what a test varies. */
export function baseOptions(over: Partial<UpstreamLoginOptions> & Pick<UpstreamLoginOptions, 'role' | 'credentials'>): UpstreamLoginOptions {
  const info = pgInfo();
  return {
    host: info.host,
    port: info.port,
    tls: { mode: 'verify-full', ca: readFileSync(info.caCertPath) },
    database: 'postgres',
    params: {},
    connectTimeoutMs: 10_000,
    ...over,
  };
}

export type QueryResult = { rows: (string | null)[][]; error?: { code: string; message: string }; status: string };

/**
 * Runs one simple Query on a handed-over connection and reads the reply with node-postgres'
 * Parser, starting with `pending` (bytes the login read past ReadyForQuery).
 */
export function simpleQuery(conn: UpstreamConnection, sql: string): Promise<QueryResult> {
  const parser = new Parser();
  const result: QueryResult = { rows: [], status: '' };
  return new Promise((resolve, reject) => {
    const onMessage = (msg: BackendMessage): void => {
      if (msg.name === 'dataRow') result.rows.push((msg as unknown as { fields: (string | null)[] }).fields);
      if (msg.name === 'error') {
        const e = msg as unknown as { code: string; message: string };
        result.error = { code: e.code, message: e.message };
      }
      if (msg.name === 'readyForQuery') {
        result.status = (msg as unknown as { status: string }).status;
        conn.socket.off('data', onData);
        conn.socket.off('error', reject);
        conn.socket.pause();
        resolve(result);
      }
    };
    const onData = (chunk: Buffer): void => parser.parse(chunk, onMessage);
    conn.socket.on('error', reject);
    conn.socket.on('data', onData);
    if (conn.pending.length > 0) {
      parser.parse(conn.pending, onMessage);
      conn.pending = Buffer.alloc(0);
    }
    conn.socket.write(serialize.query(sql));
    conn.socket.resume();
  });
}

/** Sends Terminate and waits for the server to close. */
export async function closeConnection(conn: UpstreamConnection): Promise<void> {
  await new Promise<void>((resolve) => {
    conn.socket.once('close', () => resolve());
    conn.socket.on('error', () => undefined);
    conn.socket.resume();
    conn.socket.end(serialize.end());
  });
}

/** A TCP server on 127.0.0.1 that runs `onSocket` for each connection; `sockets` records them. */
export async function scriptedServer(
  onSocket: (socket: net.Socket) => void,
): Promise<{ port: number; sockets: net.Socket[]; close(): Promise<void> }> {
  const sockets: net.Socket[] = [];
  const server = net.createServer((socket) => {
    sockets.push(socket);
    socket.on('error', () => undefined);
    onSocket(socket);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address() as net.AddressInfo;
  return {
    port: address.port,
    sockets,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** Reads what a client sends: first the untyped startup packets, then typed messages. */
export function clientReader(socket: net.Socket): {
  startup(): Promise<Buffer>;
  message(): Promise<{ type: string; body: Buffer }>;
} {
  let buf = Buffer.alloc(0);
  let waiter: (() => void) | undefined;
  socket.on('data', (chunk: Buffer) => {
    buf = Buffer.concat([buf, chunk]);
    waiter?.();
  });
  const take = async (header: number, lengthAt: number, lengthAdjust: number): Promise<Buffer> => {
    for (;;) {
      if (buf.length >= header) {
        const total = buf.readUInt32BE(lengthAt) + lengthAdjust;
        if (buf.length >= total) {
          const out = buf.subarray(0, total);
          buf = buf.subarray(total);
          return out;
        }
      }
      await new Promise<void>((resolve) => (waiter = resolve));
    }
  };
  return {
    startup: () => take(4, 0, 0),
    message: async () => {
      const raw = await take(5, 1, 1);
      return { type: String.fromCharCode(raw[0] as number), body: raw.subarray(5) };
    },
  };
}

/** Encodes a server message. */
export function serverMessage(type: string, ...parts: (Buffer | string | number)[]): Buffer {
  const body = Buffer.concat(
    parts.map((p) => {
      if (typeof p === 'number') {
        const b = Buffer.alloc(4);
        b.writeInt32BE(p);
        return b;
      }
      return typeof p === 'string' ? Buffer.from(p) : p;
    }),
  );
  const header = Buffer.alloc(5);
  header.write(type, 0, 'latin1');
  header.writeUInt32BE(body.length + 4, 1);
  return Buffer.concat([header, body]);
}

/**
 * A TLS-terminating forwarder: answers SSLRequest with 'S', completes TLS with `cert`/`key`, then
 * pipes the plaintext to the run's PostgreSQL (whose pg_hba accepts SCRAM over plaintext).
 * Lets a test present a server certificate other than the cluster's to a real login.
 */
export async function tlsForwarder(cert: Buffer, key: Buffer): ReturnType<typeof scriptedServer> {
  const info = pgInfo();
  return scriptedServer((socket) => {
    socket.once('data', (request: Buffer) => {
      if (request.readInt32BE(4) !== 80877103) return void socket.destroy();
      socket.write('S');
      const secure = new tls.TLSSocket(socket, { isServer: true, cert, key });
      secure.on('error', () => socket.destroy());
      const upstream = net.connect({ host: info.host, port: info.port });
      upstream.on('error', () => secure.destroy());
      secure.pipe(upstream).pipe(secure);
    });
  });
}
