// A TCP hop in front of a real server that holds back the server's first bytes for a while: a slow
// database (or a slow network) as seen by the proxy's upstream login, without touching either side.
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';

export interface DelayHop {
  readonly port: number;
  /** How long the server's first bytes of each new connection are held back (ms). */
  delayMs: number;
  /** Connections accepted so far. */
  readonly accepted: number;
  close(): Promise<void>;
}

export async function startDelayHop(target: { host: string; port: number }, delayMs: number): Promise<DelayHop> {
  const sockets = new Set<Socket>();
  let accepted = 0;
  const hop: { delayMs: number } = { delayMs };
  const server = createServer((client) => {
    accepted++;
    const upstream = connect({ host: target.host, port: target.port });
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('error', () => {});
      s.on('close', () => {
        sockets.delete(s);
        client.destroy();
        upstream.destroy();
      });
    }
    client.pipe(upstream);
    upstream.pause();
    setTimeout(() => upstream.pipe(client), hop.delayMs).unref();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    get delayMs() {
      return hop.delayMs;
    },
    set delayMs(ms: number) {
      hop.delayMs = ms;
    },
    get accepted() {
      return accepted;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
