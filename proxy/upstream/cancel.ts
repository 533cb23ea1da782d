// Forwards a CancelRequest to the upstream backend, over TLS unless the mode is disable.

import { UpstreamError, UpstreamErrorCode, fromSocketError } from './errors.js';
import { cancelRequest } from '../wire/frontend-writer.js';
import { checkTlsConfig, openTransport } from './transport.js';
import type { UpstreamTls } from './transport.js';
import type { BackendKey } from './connect.js';
import type net from 'node:net';

export type CancelOptions = {
  host: string;
  port: number;
  /** The same settings as the session's login: `disable` sends the request in plaintext (libpq < 17 always did). */
  tls: UpstreamTls;
  backendKey: BackendKey;
  /** Deadline for connect, TLS and the server's close; default 10 s. */
  timeoutMs?: number;
};

const DEFAULT_CANCEL_TIMEOUT_MS = 10_000;

/**
 * Sends a CancelRequest and resolves when the server closes the connection, which it does after
 * acting on it (the protocol has no reply). A wrong key is silently ignored by the server, so
 * success says the request was delivered, not that a query was cancelled.
 * No client certificate is presented: pg_hba.conf is not consulted for cancel requests.
 */
export async function sendCancel(opts: CancelOptions): Promise<void> {
  checkTlsConfig(opts.tls, undefined);
  const packet = cancelRequest(opts.backendKey.processId, opts.backendKey.secretKey);
  const sockets: net.Socket[] = [];
  const timeoutMs = opts.timeoutMs ?? DEFAULT_CANCEL_TIMEOUT_MS;
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new UpstreamError(UpstreamErrorCode.timeout, `cancel not acknowledged within ${timeoutMs} ms`)),
      timeoutMs,
    );
  });
  const deliver = async (): Promise<void> => {
    const socket = await openTransport(opts.host, opts.port, opts.tls, undefined, (s) => sockets.push(s));
    await new Promise<void>((resolve, reject) => {
      socket.once('error', (err) => reject(fromSocketError(err, 'login')));
      socket.once('close', () => resolve());
      // The server sends nothing; drain anyway so 'end' and then 'close' are emitted.
      socket.on('data', () => undefined);
      socket.resume();
      socket.end(packet);
    });
  };
  try {
    await Promise.race([deliver(), deadline]);
  } finally {
    clearTimeout(timer);
    for (const s of sockets) s.destroy();
  }
}
