// Sockets to the upstream: TCP dial, SSLRequest negotiation and the TLS upgrade with libpq's sslmode semantics.

import net from 'node:net';
import tls from 'node:tls';
import { serialize } from 'pg-protocol';
import { UpstreamError, UpstreamErrorCode, fromSocketError } from './errors.js';

/** libpq sslmode values rolegate supports (no `allow`/`prefer`: a downgrade must be explicit). */
export const TlsMode = {
  disable: 'disable',
  require: 'require',
  verifyCa: 'verify-ca',
  verifyFull: 'verify-full',
} as const;
export type TlsMode = (typeof TlsMode)[keyof typeof TlsMode];

export type UpstreamTls = {
  mode: TlsMode;
  /** PEM CA bundle that signs the server certificate. */
  ca?: string | Buffer;
  /** Name to send as SNI and to verify under verify-full; defaults to the host. */
  servername?: string;
};

/** PEM client certificate and key for `cert` authentication. */
export type ClientCertificate = { cert: string | Buffer; key: string | Buffer };

/**
 * A plain upstream socket's reads, delivered without a stream layer. Node reads each chunk into a
 * buffer of its own choosing (`onread`, docs/design.md §2 step 8) instead of allocating a 64 KiB
 * buffer per read and pushing it through the socket's Readable. Until a sink is attached the chunks
 * are copied into the Readable, so the socket behaves like any other ('data', pause, unshift); the
 * relay attaches a sink for the session's lifetime.
 */
export interface DirectReads {
  /**
   * Chunks go to `sink` until `detach`. `sink` returns true when it may still hold the chunk after
   * it returns (a write that did not finish at once): the next read then goes into a new buffer.
   * Pausing the socket stops the reads (readStop), resuming restarts them, as for any socket.
   */
  attach(sink: (chunk: Buffer) => boolean): void;
  detach(): void;
}

/** Bytes one read can take into a connection's own buffer (PostgreSQL sends at most 8 KiB a send). */
const DIRECT_READ_SIZE = 32 * 1024;
/**
 * Every plain upstream socket reads into this one buffer until a relay attaches: those chunks are
 * copied out before the callback returns (so nothing ever holds it), and an idle session costs no
 * buffer of its own.
 */
const SHARED_READ_BUFFER = Buffer.allocUnsafeSlow(DIRECT_READ_SIZE);
const directReads = new WeakMap<net.Socket, DirectReads>();

/** The direct reads of a socket from `dial(…, { direct: true })`, or undefined. */
export function directReadsOf(socket: net.Socket): DirectReads | undefined {
  return directReads.get(socket);
}

function copyOf(buf: Uint8Array, n: number): Buffer {
  const c = Buffer.allocUnsafe(n);
  c.set(buf.subarray(0, n));
  return c;
}

/**
 * Opens a TCP connection; resolves once connected. `direct`: reads land in a reused buffer and can be
 * taken by a sink (see DirectReads); only for sockets that stay plain TCP (a TLS upgrade takes the
 * socket's reads over natively).
 */
export function dial(host: string, port: number, opts: { direct?: boolean } = {}): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    let socket: net.Socket;
    if (opts.direct === true) {
      let sink: ((chunk: Buffer) => boolean) | undefined;
      // The connection's own buffer while a sink is attached; dropped when the sink may still hold it.
      let own: Buffer | undefined;
      socket = net.connect({
        host,
        port,
        onread: {
          // Called once at connect and again after every read: the buffer the next read goes into.
          buffer: () => (sink === undefined ? SHARED_READ_BUFFER : (own ??= Buffer.allocUnsafeSlow(DIRECT_READ_SIZE))),
          callback: (n, buf) => {
            // Without a sink, or for a read that still landed in the shared buffer: a copy, so the
            // buffer is free again when this returns. push() returning false stops reading, as it
            // does for any socket whose reader is behind.
            if (sink === undefined) return socket.push(copyOf(buf, n));
            if (buf === SHARED_READ_BUFFER) {
              sink(copyOf(buf, n));
              return true;
            }
            if (sink((buf as Buffer).subarray(0, n))) own = undefined;
            return true;
          },
        },
      });
      directReads.set(socket, {
        attach: (s) => (sink = s),
        detach: () => (sink = undefined),
      });
    } else {
      socket = net.connect({ host, port });
    }
    // libpq sets TCP_NODELAY and keepalives; login messages are small and latency-bound.
    socket.setNoDelay(true);
    socket.setKeepAlive(true, 60_000);
    const onError = (err: Error): void => {
      socket.destroy();
      reject(fromSocketError(err, 'tcp'));
    };
    socket.once('error', onError);
    socket.once('connect', () => {
      socket.off('error', onError);
      resolve(socket);
    });
  });
}

const SSL_ACCEPTED = 0x53; // 'S'
const SSL_REFUSED = 0x4e; // 'N'

/**
 * Sends SSLRequest and reads the one-byte answer. Bytes after the answer, before our TLS
 * handshake, are refused: they could only have been injected in plaintext by a man in the middle
 * (CVE-2021-23222, libpq's fix for the same).
 */
export function requestTls(socket: net.Socket): Promise<'accepted' | 'refused'> {
  return new Promise((resolve, reject) => {
    const cleanup = (): void => {
      socket.off('data', onData);
      socket.off('error', onError);
      socket.off('close', onClose);
    };
    const onData = (chunk: Buffer): void => {
      cleanup();
      socket.pause();
      const answer = chunk[0];
      if (chunk.length !== 1) {
        reject(new UpstreamError(UpstreamErrorCode.protocol, 'unexpected data after SSLRequest answer'));
      } else if (answer === SSL_ACCEPTED) {
        resolve('accepted');
      } else if (answer === SSL_REFUSED) {
        resolve('refused');
      } else {
        // 'E' comes from servers that predate SSLRequest or reject the connection outright.
        reject(new UpstreamError(UpstreamErrorCode.tls, `SSLRequest answered with byte ${answer}`));
      }
    };
    const onError = (err: Error): void => {
      cleanup();
      reject(fromSocketError(err, 'tls'));
    };
    const onClose = (): void => {
      cleanup();
      reject(new UpstreamError(UpstreamErrorCode.unreachable, 'connection closed after SSLRequest'));
    };
    socket.on('data', onData);
    socket.once('error', onError);
    socket.once('close', onClose);
    socket.write(serialize.requestSsl());
  });
}

/**
 * Checks what a TLS mode needs before any byte is sent: libpq refuses verify-ca without a root
 * certificate, and verify-full without one uses the system roots (libpq's sslrootcert=system).
 */
export function checkTlsConfig(settings: UpstreamTls, clientCert: ClientCertificate | undefined): void {
  if (settings.mode === TlsMode.disable && clientCert !== undefined) {
    throw new UpstreamError(UpstreamErrorCode.tls, 'a client certificate needs TLS, but upstream.tls.mode is disable');
  }
  if (settings.mode === TlsMode.verifyCa && settings.ca === undefined) {
    throw new UpstreamError(UpstreamErrorCode.tls, 'verify-ca needs a CA certificate');
  }
}

/** True when the mode authenticates the server (chain verified). */
export function verifiesServer(settings: UpstreamTls): boolean {
  // libpq: "if a root CA file exists, sslmode=require behaves like verify-ca".
  if (settings.mode === TlsMode.disable) return false;
  return settings.mode !== TlsMode.require || settings.ca !== undefined;
}

/**
 * One client SecureContext per TLS settings and client certificate, shared by every connection made
 * with them: a context holds the parsed CA bundle, certificate and key (an OpenSSL SSL_CTX and its
 * X509_STORE), which made one per connection cost both a CA parse per login and tens of KiB per live
 * upstream connection. Keyed by the objects themselves: a reload builds new ones, so new
 * connections get new contexts and the old ones go with their last connection.
 */
const contexts = new WeakMap<UpstreamTls, WeakMap<ClientCertificate | typeof NO_CERT, tls.SecureContext>>();
const NO_CERT = {};

function clientContext(settings: UpstreamTls, clientCert: ClientCertificate | undefined): tls.SecureContext {
  let byCert = contexts.get(settings);
  if (byCert === undefined) contexts.set(settings, (byCert = new WeakMap()));
  const certKey = clientCert ?? NO_CERT;
  let context = byCert.get(certKey);
  if (context === undefined) {
    context = tls.createSecureContext({
      // PostgreSQL's ssl_min_protocol_version default.
      minVersion: 'TLSv1.2',
      ...(settings.ca === undefined ? {} : { ca: settings.ca }),
      ...(clientCert === undefined ? {} : { cert: clientCert.cert, key: clientCert.key }),
    });
    byCert.set(certKey, context);
  }
  return context;
}

/** Runs the TLS handshake over an SSLRequest-accepted socket; resolves once the server is verified per mode. */
export function upgradeTls(
  socket: net.Socket,
  host: string,
  settings: UpstreamTls,
  clientCert: ClientCertificate | undefined,
): Promise<tls.TLSSocket> {
  const name = settings.servername ?? host;
  const verify = verifiesServer(settings);
  const options: tls.ConnectionOptions = {
    socket,
    // libpq 17 sends ALPN "postgresql"; older servers ignore it, newer ones accept it.
    ALPNProtocols: ['postgresql'],
    rejectUnauthorized: verify,
    // RFC 6066 §3: SNI carries host names only, never IP literals.
    ...(net.isIP(name) === 0 ? { servername: name } : {}),
    // verify-full checks the name (DNS or IP SAN) against the certificate; verify-ca and require
    // with a CA check the chain only, like libpq.
    checkServerIdentity:
      settings.mode === TlsMode.verifyFull ? (_hostname, cert) => tls.checkServerIdentity(name, cert) : () => undefined,
  };
  return new Promise((resolve, reject) => {
    let secure: tls.TLSSocket;
    try {
      secure = tls.connect({ ...options, secureContext: clientContext(settings, clientCert) });
    } catch (err) {
      // Bad PEM in ca/cert/key throws synchronously from createSecureContext.
      reject(new UpstreamError(UpstreamErrorCode.tls, 'invalid TLS material', { cause: err }));
      return;
    }
    const cleanup = (): void => {
      secure.off('error', onError);
      secure.off('close', onClose);
    };
    const onError = (err: Error): void => {
      cleanup();
      secure.destroy();
      reject(fromSocketError(err, 'tls'));
    };
    const onClose = (): void => {
      cleanup();
      reject(new UpstreamError(UpstreamErrorCode.tls, 'connection closed during TLS handshake'));
    };
    secure.once('error', onError);
    secure.once('close', onClose);
    secure.once('secureConnect', () => {
      cleanup();
      resolve(secure);
    });
  });
}

/** Opens the transport a mode asks for: plain TCP, or SSLRequest + TLS (refused 'N' is an error). */
export async function openTransport(
  host: string,
  port: number,
  settings: UpstreamTls,
  clientCert: ClientCertificate | undefined,
  track: (socket: net.Socket) => void,
): Promise<net.Socket | tls.TLSSocket> {
  const raw = await dial(host, port, { direct: settings.mode === TlsMode.disable });
  track(raw);
  if (settings.mode === TlsMode.disable) return raw;
  // The raw socket stays wrapped under TLS; an error on it must not go unhandled once we return.
  raw.on('error', () => raw.destroy());
  if ((await requestTls(raw)) === 'refused') {
    throw new UpstreamError(UpstreamErrorCode.tls, `server does not accept TLS, but upstream.tls.mode is ${settings.mode}`);
  }
  const secure = await upgradeTls(raw, host, settings, clientCert);
  track(secure);
  return secure;
}
