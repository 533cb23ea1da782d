// A byte-level PostgreSQL client for the login e2e tests: crafts the frames real clients never send
// (GSSENCRequest, protocol 3.1, `_pq_.` options, bytes before the TLS answer) and reads the proxy's
// answers message by message, so the tests see exactly what went over the wire.
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect, type ConnectionOptions, type TLSSocket } from 'node:tls';

const int32 = (n: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeInt32BE(n);
  return b;
};

/** SSLRequest: length 8, code 80877103 (pqcomm.h NEGOTIATE_SSL_CODE). */
export const SSL_REQUEST = Buffer.concat([int32(8), int32(80877103)]);
/** GSSENCRequest: length 8, code 80877104 (pqcomm.h NEGOTIATE_GSS_CODE). */
export const GSSENC_REQUEST = Buffer.concat([int32(8), int32(80877104)]);

/** An untyped StartupMessage for protocol 3.`minor` with the given parameters (in order). */
export function startupFrame(params: Record<string, string>, minor = 0): Buffer {
  const parts: Buffer[] = [int32((3 << 16) | minor)];
  for (const [k, v] of Object.entries(params)) parts.push(Buffer.from(`${k}\0${v}\0`, 'utf8'));
  parts.push(Buffer.from([0]));
  const body = Buffer.concat(parts);
  return Buffer.concat([int32(body.length + 4), body]);
}

/** A typed frontend message: type byte, length word, body. */
export function typedFrame(type: string, body: Buffer): Buffer {
  return Buffer.concat([Buffer.from(type, 'latin1'), int32(body.length + 4), body]);
}

export const passwordFrame = (password: string): Buffer => typedFrame('p', Buffer.from(`${password}\0`, 'utf8'));
export const queryFrame = (sql: string): Buffer => typedFrame('Q', Buffer.from(`${sql}\0`, 'utf8'));
export const TERMINATE = typedFrame('X', Buffer.alloc(0));

export interface BackendMsg {
  /** The type byte as a character ('R', 'E', 'S', 'K', 'Z', 'v', ...). */
  readonly type: string;
  readonly body: Buffer;
}

/** The fields of an ErrorResponse/NoticeResponse body by their code letter (S, V, C, M, ...). */
export function errorFields(body: Buffer): Record<string, string> {
  const fields: Record<string, string> = {};
  let off = 0;
  while (off < body.length && body[off] !== 0) {
    const code = String.fromCharCode(body[off]!);
    const end = body.indexOf(0, off + 1);
    fields[code] = body.toString('utf8', off + 1, end);
    off = end + 1;
  }
  return fields;
}

/** A client connection whose reads are explicit: `byte()`, `message()`, `closed`. */
export class RawClient {
  #socket: Socket | TLSSocket;
  #buf = Buffer.alloc(0);
  #waiter: (() => void) | undefined;
  #ended = false;
  #error: Error | undefined;
  /** Resolves when the connection is fully closed (by either side). */
  readonly closed: Promise<void>;
  #resolveClosed!: () => void;

  private constructor(socket: Socket | TLSSocket) {
    this.#socket = socket;
    this.closed = new Promise((resolve) => (this.#resolveClosed = resolve));
    this.#attach(socket);
  }

  /** Opens a plain TCP connection to the proxy. */
  static async tcp(port: number): Promise<RawClient> {
    const socket = netConnect({ host: '127.0.0.1', port, noDelay: true });
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    return new RawClient(socket);
  }

  /** Opens a TLS connection straight away (PostgreSQL 17 direct TLS when `ALPNProtocols` names postgresql). */
  static async directTls(port: number, opts: ConnectionOptions): Promise<RawClient> {
    const socket = tlsConnect({ host: '127.0.0.1', port, ...opts });
    const client = new RawClient(socket);
    await new Promise<void>((resolve, reject) => {
      socket.once('secureConnect', resolve);
      socket.once('error', reject);
      socket.once('close', () => reject(new Error('closed during TLS handshake')));
    });
    return client;
  }

  get socket(): Socket | TLSSocket {
    return this.#socket;
  }

  /** True once the peer closed (or the connection failed). */
  get ended(): boolean {
    return this.#ended;
  }

  #attach(s: Socket | TLSSocket): void {
    s.on('data', (chunk: Buffer) => {
      this.#buf = Buffer.concat([this.#buf, chunk]);
      this.#wake();
    });
    s.on('error', (err) => {
      this.#error ??= err;
    });
    s.on('close', () => {
      this.#ended = true;
      this.#wake();
      this.#resolveClosed();
    });
  }

  #wake(): void {
    const w = this.#waiter;
    this.#waiter = undefined;
    w?.();
  }

  async #need(n: number, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.#buf.length < n) {
      if (this.#ended) throw new Error(`connection closed with ${this.#buf.length} of ${n} bytes read${this.#error ? ` (${this.#error.message})` : ''}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${n} bytes (have ${this.#buf.length})`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.#waiter = () => {
          clearTimeout(t);
          resolve();
        };
      });
    }
  }

  write(bytes: Buffer): void {
    this.#socket.write(bytes);
  }

  /** One byte: the answer to SSLRequest/GSSENCRequest ('S', 'N' or 'E'). */
  async byte(timeoutMs = 5_000): Promise<string> {
    await this.#need(1, timeoutMs);
    const b = this.#buf[0]!;
    this.#buf = this.#buf.subarray(1);
    return String.fromCharCode(b);
  }

  /** One backend message. */
  async message(timeoutMs = 5_000): Promise<BackendMsg> {
    await this.#need(5, timeoutMs);
    const length = this.#buf.readInt32BE(1);
    await this.#need(1 + length, timeoutMs);
    const msg = { type: String.fromCharCode(this.#buf[0]!), body: Buffer.from(this.#buf.subarray(5, 1 + length)) };
    this.#buf = this.#buf.subarray(1 + length);
    return msg;
  }

  /** Reads messages up to and including the first of `type`. */
  async until(type: string, timeoutMs = 5_000): Promise<BackendMsg[]> {
    const seen: BackendMsg[] = [];
    for (;;) {
      const m = await this.message(timeoutMs);
      seen.push(m);
      if (m.type === type) return seen;
      if (m.type === 'E' && type !== 'E') throw new Error(`ErrorResponse: ${JSON.stringify(errorFields(m.body))}`);
    }
  }

  /** Bytes received and not yet read. */
  get pending(): number {
    return this.#buf.length;
  }

  /** Starts TLS on the connection (after 'S'); resolves when the handshake completed. */
  async startTls(opts: ConnectionOptions): Promise<void> {
    if (this.#buf.length > 0) throw new Error('unread plaintext bytes before the TLS handshake');
    const raw = this.#socket;
    raw.removeAllListeners('data');
    raw.removeAllListeners('close');
    const tls = tlsConnect({ socket: raw as Socket, ...opts });
    this.#socket = tls;
    this.#attach(tls);
    await new Promise<void>((resolve, reject) => {
      tls.once('secureConnect', resolve);
      tls.once('error', reject);
    });
  }

  /** Waits for the proxy to close the connection; false when it is still open after `timeoutMs`. */
  async closedWithin(timeoutMs: number): Promise<boolean> {
    let t: NodeJS.Timeout | undefined;
    const timedOut = new Promise<false>((resolve) => (t = setTimeout(() => resolve(false), timeoutMs)));
    const r = await Promise.race([this.closed.then(() => true as const), timedOut]);
    clearTimeout(t);
    return r;
  }

  /** Half-closes (FIN, and close_notify inside TLS). */
  end(): void {
    this.#socket.end();
  }

  destroy(): void {
    this.#socket.destroy();
  }
}

/**
 * SSLRequest, 'S', TLS (verify-full against `ca` for `localhost`), StartupMessage; resolves with the
 * client and the messages up to the first AuthenticationRequest or ErrorResponse.
 */
export async function tlsStartup(port: number, ca: string, params: Record<string, string>, minor = 0): Promise<{ client: RawClient; first: BackendMsg[] }> {
  const client = await RawClient.tcp(port);
  client.write(SSL_REQUEST);
  const answer = await client.byte();
  if (answer !== 'S') throw new Error(`SSLRequest answered ${JSON.stringify(answer)}`);
  await client.startTls({ ca, servername: 'localhost' });
  client.write(startupFrame(params, minor));
  const first: BackendMsg[] = [];
  for (;;) {
    const m = await client.message();
    first.push(m);
    if (m.type === 'R' || m.type === 'E') return { client, first };
  }
}

/** AuthenticationRequest code of an 'R' message (3 = cleartext password, 0 = ok). */
export const authCode = (m: BackendMsg): number => m.body.readInt32BE(0);

/** Sends the password and a query; returns the first DataRow's first column as text. */
export async function loginAndQuery(client: RawClient, token: string, sql: string): Promise<string | null> {
  client.write(passwordFrame(token));
  await client.until('Z');
  client.write(queryFrame(sql));
  const msgs = await client.until('Z');
  const row = msgs.find((m) => m.type === 'D');
  if (row === undefined) throw new Error('no DataRow');
  // DataRow: int16 column count, then per column int32 length and bytes.
  const len = row.body.readInt32BE(2);
  return len < 0 ? null : row.body.toString('utf8', 6, 6 + len);
}
