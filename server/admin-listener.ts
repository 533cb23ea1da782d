// The admin/SCIM HTTP(S) listener around the express app: slow-loris bounds, listening, the
// certificate swap of a reload, and a close that does not wait for idle keep-alive connections.
import { createServer as createHttpServer, type Server } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Express } from 'express';

export interface AdminListener {
  readonly host: string;
  readonly port: number;
  readonly protocol: 'http' | 'https';
  /** New certificate for new connections (HTTPS only). */
  adoptCertificate(pair: { cert: Buffer; key: Buffer }): void;
  close(): Promise<void>;
}

export async function startAdminListener(app: Express, opts: { host: string; port: number; tls?: { cert: Buffer; key: Buffer } }): Promise<AdminListener> {
  const server: Server = opts.tls
    ? createHttpsServer({ ...opts.tls, minVersion: 'TLSv1.2' }, app)
    : createHttpServer(app);
  // Slow-loris bounds for a listener that may face an IdP over the internet.
  server.headersTimeout = 30_000;
  server.requestTimeout = 120_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const addr = server.address() as AddressInfo;
  const protocol = opts.tls ? 'https' : 'http';
  return {
    host: addr.address,
    port: addr.port,
    protocol,
    adoptCertificate(pair) {
      if (protocol === 'https') (server as HttpsServer).setSecureContext({ ...pair, minVersion: 'TLSv1.2' });
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeIdleConnections();
      }),
  };
}
