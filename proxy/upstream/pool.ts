// Reuse of authenticated upstream connections (`upstream.pool`): when a client says goodbye on an
// idle session, its upstream connection is reset with DISCARD ALL and kept for the next login with
// the same role, database and startup parameters, which then skips TCP, TLS and SCRAM entirely.
// Only rolegate ever sees a pooled connection's key, so nothing of one session reaches the next
// except what DISCARD ALL cannot reset (none of the session state PostgreSQL documents).
import { createMessageTap } from '../relay/message-tap.js';
import { BackendType } from '../wire/message-types.js';
import type { UpstreamConnection } from './connect.js';

/** Simple Query 'DISCARD ALL' (PostgreSQL docs: resets every session state, incl. prepared statements, temp tables, LISTEN, advisory locks). */
const DISCARD_ALL = (() => {
  const sql = Buffer.from('DISCARD ALL\0', 'utf8');
  const buf = Buffer.alloc(5 + sql.length);
  buf[0] = 0x51;
  buf.writeUInt32BE(4 + sql.length, 1);
  sql.copy(buf, 5);
  return buf;
})();
const TERMINATE = Buffer.from([0x58, 0, 0, 0, 4]);
const RESET_TIMEOUT_MS = 5_000;

interface Idle {
  readonly key: string;
  readonly conn: UpstreamConnection;
  readonly timer: NodeJS.Timeout;
  readonly onGone: () => void;
}

export interface PoolStats {
  /** Connections idle in the pool now. */
  idle: number;
  /** Logins served from the pool since start. */
  reused: number;
}

export class UpstreamPool {
  readonly #maxIdle: number;
  readonly #idleTimeoutMs: number;
  readonly #idle = new Map<string, Idle[]>();
  #count = 0;
  #reused = 0;
  #closed = false;

  constructor(opts: { maxIdle: number; idleTimeoutMs: number }) {
    this.#maxIdle = opts.maxIdle;
    this.#idleTimeoutMs = opts.idleTimeoutMs;
  }

  /** The pool key: connections are only shared between logins that would have produced the same one. */
  static key(role: string, database: string, params: Readonly<Record<string, string>>): string {
    const sorted = Object.keys(params).sort().map((k) => [k, params[k]]);
    return JSON.stringify([role, database, sorted]);
  }

  stats(): PoolStats {
    return { idle: this.#count, reused: this.#reused };
  }

  /** An idle connection for `key`, removed from the pool and paused, or undefined. */
  take(key: string): UpstreamConnection | undefined {
    const list = this.#idle.get(key);
    while (list !== undefined && list.length > 0) {
      const entry = list.pop()!;
      if (list.length === 0) this.#idle.delete(key);
      this.#detach(entry);
      if (entry.conn.socket.destroyed) continue;
      this.#reused++;
      return entry.conn;
    }
    return undefined;
  }

  /**
   * Resets `conn` with DISCARD ALL and keeps it; closes it instead when the pool is full, closed, or
   * the reset does not end in an idle ReadyForQuery. The socket must be paused with no relay attached.
   */
  async give(key: string, conn: UpstreamConnection): Promise<void> {
    if (this.#closed || this.#maxIdle === 0 || this.#count >= this.#maxIdle) return goodbye(conn);
    const ok = await reset(conn);
    if (!ok || this.#closed || this.#count >= this.#maxIdle) return goodbye(conn);
    const socket = conn.socket;
    // While idle, anything from the server (a FATAL from pg_terminate_backend) or a close retires it.
    const onGone = () => this.#retire(key, entry);
    const timer = setTimeout(onGone, this.#idleTimeoutMs);
    timer.unref();
    const entry: Idle = { key, conn, timer, onGone };
    socket.on('data', onGone);
    socket.on('close', onGone);
    socket.on('error', onGone);
    socket.resume();
    let list = this.#idle.get(key);
    if (list === undefined) this.#idle.set(key, (list = []));
    list.push(entry);
    this.#count++;
  }

  /** Closes every idle connection (shutdown, or a reload that changed roles or credentials). */
  flush(): void {
    for (const list of this.#idle.values()) for (const e of list) {
      this.#detach(e);
      goodbye(e.conn);
    }
    this.#idle.clear();
  }

  close(): void {
    this.#closed = true;
    this.flush();
  }

  #detach(e: Idle): void {
    clearTimeout(e.timer);
    e.conn.socket.off('data', e.onGone);
    e.conn.socket.off('close', e.onGone);
    e.conn.socket.off('error', e.onGone);
    e.conn.socket.pause();
    this.#count--;
  }

  #retire(key: string, e: Idle): void {
    const list = this.#idle.get(key);
    const i = list?.indexOf(e) ?? -1;
    if (list === undefined || i < 0) return;
    list.splice(i, 1);
    if (list.length === 0) this.#idle.delete(key);
    this.#detach(e);
    goodbye(e.conn);
  }
}

function goodbye(conn: UpstreamConnection): void {
  const s = conn.socket;
  if (s.destroyed) return;
  s.on('error', () => {}); // a reset while saying goodbye is of no interest
  s.end(TERMINATE);
  setTimeout(() => s.destroy(), 1_000).unref();
}

/**
 * Sends DISCARD ALL and reads until ReadyForQuery: true when it completed and the connection is idle.
 * ParameterStatus messages it causes (RESET ALL reports reset settings) update `conn.parameters`,
 * so the next client is told the values it will really have.
 */
function reset(conn: UpstreamConnection): Promise<boolean> {
  const socket = conn.socket;
  return new Promise((resolve) => {
    let failed = false;
    let done = false;
    const finish = (ok: boolean) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('close', onClose);
      socket.off('error', onClose);
      socket.pause();
      resolve(ok);
    };
    const tap = createMessageTap({
      maxPrefix: 1024,
      interesting: (t) => t === BackendType.parameterStatus || t === BackendType.readyForQuery,
      onMessage: (msg) => {
        if (msg.type === BackendType.errorResponse) failed = true;
        else if (msg.type === BackendType.parameterStatus) {
          const nul = msg.prefix.indexOf(0);
          const end = msg.prefix.indexOf(0, nul + 1);
          if (nul > 0 && end > nul) conn.parameters.set(msg.prefix.toString('utf8', 0, nul), msg.prefix.toString('utf8', nul + 1, end));
        } else if (msg.type === BackendType.readyForQuery) {
          finish(!failed && msg.prefix[0] === 0x49 /* 'I' */ && tap.atBoundary);
        }
      },
      onViolation: () => finish(false),
    });
    const onData = (chunk: Buffer) => tap.push(chunk);
    const onClose = () => finish(false);
    const timer = setTimeout(() => finish(false), RESET_TIMEOUT_MS);
    timer.unref();
    socket.on('data', onData);
    socket.on('close', onClose);
    socket.on('error', onClose);
    socket.write(DISCARD_ALL);
    socket.resume();
  });
}
