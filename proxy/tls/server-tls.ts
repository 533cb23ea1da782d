// The proxy listener's TLS: a secure context from the configured certificate (reloadable on SIGHUP)
// and the upgrade of an accepted socket after SSLRequest or for PostgreSQL 17 direct TLS.
import { readFile } from 'node:fs/promises';
import type { Socket } from 'node:net';
import { TLSSocket, createSecureContext, type SecureContext } from 'node:tls';

/** PostgreSQL's ALPN protocol id (PostgreSQL 17 `sslnegotiation=direct`). */
export const POSTGRESQL_ALPN = 'postgresql';

/** Reads a PEM certificate and key pair (the proxy's, the admin listener's). */
export async function readKeyPair(files: { cert: string; key: string }): Promise<{ cert: Buffer; key: Buffer }> {
  const [cert, key] = await Promise.all([readFile(files.cert), readFile(files.key)]);
  return { cert, key };
}

export class ServerTls {
  #context: SecureContext;

  private constructor(context: SecureContext) {
    this.#context = context;
  }

  /** Loads cert and key (PEM files); TLS 1.2 is the floor. */
  static async load(files: { cert: string; key: string }): Promise<ServerTls> {
    return new ServerTls(await ServerTls.#read(files));
  }

  static async #read(files: { cert: string; key: string }): Promise<SecureContext> {
    return createSecureContext({ ...(await readKeyPair(files)), minVersion: 'TLSv1.2' });
  }

  /** Takes over another loaded certificate for new connections; live sessions keep theirs. */
  adopt(other: ServerTls): void {
    this.#context = other.#context;
  }

  /**
   * Starts the server side of TLS on `socket` and resolves when the handshake completes.
   * `direct`: the client opened with a ClientHello (no SSLRequest), so ALPN `postgresql` is required
   * (PostgreSQL refuses direct TLS without it, as protection against cross-protocol attacks).
   */
  upgrade(socket: Socket, opts: { direct: boolean }): Promise<TLSSocket> {
    return new Promise((resolve, reject) => {
      const tls = new TLSSocket(socket, {
        isServer: true,
        secureContext: this.#context,
        ALPNProtocols: [POSTGRESQL_ALPN],
        requestCert: false,
      });
      const fail = (err: Error) => {
        tls.destroy();
        reject(err);
      };
      // The server side of a TLSSocket emits no 'error' when the peer leaves mid-handshake, only
      // 'end' and 'close': without this the upgrade never settles and the session holds its
      // maxConnections slot until the login timeout (a cheap way to exhaust the limit).
      const closed = () => fail(new Error('connection closed during the TLS handshake'));
      tls.once('error', fail);
      tls.once('close', closed);
      tls.once('secure', () => {
        tls.off('error', fail);
        tls.off('close', closed);
        if (opts.direct && tls.alpnProtocol !== POSTGRESQL_ALPN) {
          tls.destroy();
          reject(new Error('direct TLS connection without ALPN "postgresql"'));
          return;
        }
        resolve(tls);
      });
    });
  }
}
