// A lean PostgreSQL login over TLS for the login benchmark: SSLRequest, the TLS handshake (resuming a
// given session when asked), StartupMessage, the token as the cleartext password, then wait for
// ReadyForQuery. The client spends as little CPU as it can, so the machine's two cores go to the server.
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';

/** SSLRequest: length 8, code 80877103 (pqcomm.h NEGOTIATE_SSL_CODE). */
const SSL_REQUEST = Buffer.from([0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]);
/** Terminate ('X', length 4). */
const TERMINATE = Buffer.from([0x58, 0, 0, 0, 4]);

export interface LoginTarget {
  readonly port: number;
  readonly user: string;
  readonly password: string;
  readonly database: string;
  /** The PEM CA that signed the server's certificate (verified, like `sslmode=verify-full`). */
  readonly ca: string;
}

export interface Login {
  readonly socket: Socket | TLSSocket;
  /** From TCP connect to ReadyForQuery. */
  readonly ms: number;
  readonly resumed: boolean;
  /** The TLS session to resume next time (the server's ticket), once the server sent one. */
  session(): Buffer | undefined;
  /** Sends Terminate and resolves once the server closed. */
  close(): Promise<void>;
}

function startupFrame(params: Record<string, string>): Buffer {
  const body = Buffer.from(Object.entries(params).map(([k, v]) => `${k}\0${v}\0`).join('') + '\0', 'utf8');
  const frame = Buffer.alloc(8 + body.length);
  frame.writeInt32BE(frame.length, 0);
  frame.writeInt32BE(3 << 16, 4);
  body.copy(frame, 8);
  return frame;
}

function passwordFrame(password: string): Buffer {
  const body = Buffer.from(`${password}\0`, 'utf8');
  const frame = Buffer.alloc(5 + body.length);
  frame[0] = 0x70; // 'p'
  frame.writeInt32BE(4 + body.length, 1);
  body.copy(frame, 5);
  return frame;
}

/**
 * Logs in and resolves once the server said ReadyForQuery; rejects on an ErrorResponse or a close.
 * `tls: false` skips the SSLRequest (a server with `allowPlaintext`), for the memory breakdown.
 */
export function login(target: LoginTarget, opts: { session?: Buffer; tls?: boolean } = {}): Promise<Login> {
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const tcp = netConnect({ host: '127.0.0.1', port: target.port, noDelay: true });
    const fail = (err: Error) => {
      tcp.destroy();
      reject(err);
    };
    tcp.once('error', fail);
    let ticket: Buffer | undefined;
    const speak = (stream: Socket | TLSSocket) => {
      stream.write(Buffer.concat([startupFrame({ user: target.user, database: target.database }), passwordFrame(target.password)]));
      let buf: Buffer = Buffer.alloc(0);
      const onData = (chunk: Buffer) => {
        buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
        while (buf.length >= 5) {
          const len = buf.readInt32BE(1);
          if (buf.length < 1 + len) return;
          const type = buf[0];
          const body = buf.subarray(5, 1 + len);
          buf = buf.subarray(1 + len);
          if (type === 0x45 /* 'E' */) return fail(new Error(`login refused: ${body.toString('utf8').replace(/\0/g, ' ').trim()}`));
          if (type === 0x5a /* 'Z' */) {
            stream.off('data', onData);
            stream.on('error', () => {});
            const ms = performance.now() - t0;
            resolve({
              socket: stream,
              ms,
              resumed: 'isSessionReused' in stream ? stream.isSessionReused() : false,
              session: () => ticket,
              close: () => new Promise((done) => {
                if (stream.destroyed) return done();
                stream.once('close', () => done());
                stream.end(TERMINATE);
                setTimeout(() => stream.destroy(), 2_000).unref();
              }),
            });
            return;
          }
        }
      };
      stream.on('data', onData);
      stream.once('close', () => fail(new Error('closed during login')));
    };
    if (opts.tls === false) {
      tcp.once('connect', () => speak(tcp));
      return;
    }
    tcp.once('connect', () => tcp.write(SSL_REQUEST));
    tcp.once('data', (answer: Buffer) => {
      if (answer.length !== 1 || answer[0] !== 0x53 /* 'S' */) return fail(new Error(`server refused TLS (${answer.toString('latin1')})`));
      const tls = tlsConnect({ socket: tcp, servername: 'localhost', ca: target.ca, ...(opts.session ? { session: opts.session } : {}) });
      tls.on('session', (s: Buffer) => (ticket = s));
      tls.once('error', fail);
      tls.once('secureConnect', () => speak(tls));
    });
  });
}
