// The proxy's TCP listener: accepts clients, enforces proxy.maxConnections, starts a session per
// socket, and drains on shutdown (stop accepting, let sessions finish, then end the rest).
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import type { SessionDeps } from './session/deps.js';
import { startSession } from './session/session.js';

export class ProxyListener {
  readonly #deps: SessionDeps;
  readonly #maxConnections: number;
  readonly #server: Server;
  readonly #sockets = new Set<Socket>();
  #draining = false;

  constructor(deps: SessionDeps, opts: { maxConnections: number }) {
    this.#deps = deps;
    this.#maxConnections = opts.maxConnections;
    this.#server = createServer({ noDelay: true }, (socket) => this.#accept(socket));
    this.#server.on('error', (err) => deps.logger.error({ err }, 'proxy listener error'));
  }

  /** Connections open right now, in login or relaying. */
  get connections(): number {
    return this.#sockets.size;
  }

  listen(host: string, port: number): Promise<AddressInfo> {
    return new Promise((resolve, reject) => {
      this.#server.once('error', reject);
      this.#server.listen(port, host, () => {
        this.#server.off('error', reject);
        resolve(this.#server.address() as AddressInfo);
      });
    });
  }

  #accept(socket: Socket): void {
    // Each socket needs an 'error' listener from the first moment: a reset before the session
    // attaches its own would otherwise crash the process.
    socket.on('error', () => {});
    if (this.#draining) {
      socket.destroy();
      return;
    }
    // Far over the limit even the FATAL costs too much (a TLS handshake each): drop at once.
    if (this.#sockets.size >= this.#maxConnections * 2 + 100) {
      socket.destroy();
      return;
    }
    const overLimit = this.#sockets.size >= this.#maxConnections;
    this.#sockets.add(socket);
    startSession(socket, this.#deps, {
      overLimit,
      onClose: () => this.#sockets.delete(socket),
    });
  }

  /**
   * Stops accepting; waits up to `drainTimeoutMs` for live sessions to end on their own, then ends
   * the rest with FATAL 57P01 "server shutting down".
   */
  async drain(drainTimeoutMs: number): Promise<void> {
    this.#draining = true;
    const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
    const deadline = Date.now() + drainTimeoutMs;
    while (this.#sockets.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    const remaining = [...this.#sockets];
    for (const s of this.#deps.registry.all()) s.end('shutdown');
    // Give each client a moment to read its FATAL before the socket goes.
    await Promise.all(remaining.map((socket) => new Promise<void>((resolve) => {
      if (socket.destroyed) return resolve();
      const t = setTimeout(() => {
        socket.destroy();
        resolve();
      }, 1_000);
      socket.once('close', () => {
        clearTimeout(t);
        resolve();
      });
    })));
    await closed;
  }
}
