// The one connection on which an instance LISTENs (docs/design.md §8): it delivers notifications, proves
// itself alive with a heartbeat query every beat, and when it is lost (an error, the server gone, a
// heartbeat that does not answer) it says so at once and reconnects with backoff.
import pg from 'pg';
import type { Logger } from '../lib/log.js';

export interface ListenerOptions {
  /** A new, unconnected client (the store URL, a recognisable application_name). */
  client(): pg.Client;
  /** Channel names; each is LISTENed on, quoted, on every connection. */
  channels: readonly string[];
  onNotification(channel: string, payload: string): void;
  /** After LISTEN on a fresh connection (the follower catches up from here). */
  onConnected(): Promise<void>;
  /** The connection is gone: notifications may be missed until onConnected runs again. */
  onLost(reason: string): void;
  /**
   * Run on the listening connection every `everyMs`: if it does not answer within `timeoutMs` the
   * connection counts as lost. A half-open TCP connection delivers no notifications and no error, so
   * only a query on the connection itself can show that nothing arrives because nothing can.
   */
  heartbeat: { everyMs: number; timeoutMs: number; run(client: pg.Client): Promise<void> };
  logger: Logger;
}

/** Reconnect backoff: from 100 ms, doubling, at most 2 s (a store back after a restart is seen within 2 s). */
const BACKOFF_FIRST_MS = 100;
const BACKOFF_MAX_MS = 2_000;

export class ClusterListener {
  readonly #o: ListenerOptions;
  #client: pg.Client | undefined;
  #beat: NodeJS.Timeout | undefined;
  #reconnect: NodeJS.Timeout | undefined;
  #backoff = BACKOFF_FIRST_MS;
  #stopped = false;

  constructor(opts: ListenerOptions) {
    this.#o = opts;
  }

  /** Connects and LISTENs, then runs onConnected; rejects when either fails (at start, fail fast). */
  async start(): Promise<void> {
    await this.#open();
    await this.#o.onConnected();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#beat);
    clearTimeout(this.#reconnect);
    const client = this.#client;
    this.#client = undefined;
    await client?.end().catch(() => undefined);
  }

  async #open(): Promise<void> {
    const client = this.#o.client();
    client.on('error', (err) => this.#drop(client, `connection error: ${err.message}`));
    client.on('end', () => this.#drop(client, 'connection closed'));
    client.on('notification', (msg) => {
      if (client === this.#client) this.#o.onNotification(msg.channel, msg.payload ?? '');
    });
    try {
      await client.connect();
      this.#client = client;
      await client.query(this.#o.channels.map((c) => `LISTEN ${pg.escapeIdentifier(c)}`).join('; '));
    } catch (err) {
      this.#client = undefined;
      await client.end().catch(() => undefined);
      throw err;
    }
    this.#backoff = BACKOFF_FIRST_MS;
    this.#armHeartbeat(client);
  }

  #armHeartbeat(client: pg.Client): void {
    const { everyMs, timeoutMs, run } = this.#o.heartbeat;
    this.#beat = setTimeout(() => {
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`heartbeat not answered within ${timeoutMs} ms`)), timeoutMs);
      });
      Promise.race([run(client), late]).then(
        () => {
          if (client === this.#client && !this.#stopped) this.#armHeartbeat(client);
        },
        (err: unknown) => this.#drop(client, `heartbeat failed: ${err instanceof Error ? err.message : String(err)}`),
      ).finally(() => clearTimeout(timer));
    }, everyMs);
    this.#beat.unref();
  }

  /** The one way a connection goes: stop using it, say so, end it (forcibly if a query hangs), come back. */
  #drop(client: pg.Client, reason: string): void {
    if (client !== this.#client) return;
    this.#client = undefined;
    clearTimeout(this.#beat);
    // pg's end() destroys the socket when a query is still active (a hung heartbeat).
    client.end().catch(() => undefined);
    if (this.#stopped) return;
    this.#o.logger.warn({ reason }, 'directory listener lost; new logins wait until it is back and caught up');
    this.#o.onLost(reason);
    this.#scheduleReconnect();
  }

  #scheduleReconnect(): void {
    if (this.#stopped || this.#reconnect !== undefined) return;
    this.#reconnect = setTimeout(() => {
      this.#reconnect = undefined;
      this.#open().then(
        () => {
          this.#o.logger.info('directory listener reconnected');
          this.#o.onConnected().catch(() => undefined);
        },
        (err: unknown) => {
          this.#o.logger.debug({ err }, 'directory listener reconnect failed');
          this.#backoff = Math.min(this.#backoff * 2, BACKOFF_MAX_MS);
          this.#scheduleReconnect();
        },
      );
    }, this.#backoff);
    this.#reconnect.unref();
  }
}
