// Reuse of authenticated upstream connections (`upstream.pool`): when a client says goodbye on an
// idle session, its upstream connection is reset with DISCARD ALL and kept for the next login with
// the same role, database and startup parameters, which then skips TCP, TLS and SCRAM entirely.
// A connection comes here only when its session proved that nothing was outstanding (see
// relay/outstanding.ts), and stays only when the server confirms the reset with exactly the expected
// bytes; only rolegate ever sees a pooled connection's key.
import { simpleQuery } from '../wire/frontend-writer.js';
import { sayGoodbye } from './farewell.js';
import { BackendType } from '../wire/message-types.js';
import type { UpstreamConnection } from './connect.js';

/** PostgreSQL docs: resets every session state, incl. prepared statements, temp tables, LISTEN, advisory locks. */
const DISCARD_ALL = simpleQuery('DISCARD ALL');
const RESET_TIMEOUT_MS = 5_000;

interface Idle {
  readonly key: string;
  readonly conn: UpstreamConnection;
  readonly timer: NodeJS.Timeout;
  readonly onGone: () => void;
}

/** Whom a pooled connection is logged in for: a configured role anyone it is decided for shares, or one person's own role. */
export type PoolLogin =
  | { readonly kind: 'shared'; readonly role: string }
  | { readonly kind: 'personal'; readonly role: string; readonly personId: string };

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

  /**
   * The pool key: connections are only shared between logins that would have produced the same one.
   * A personal login (per-user provisioning, docs/design.md §7) also carries the person's id: the
   * role name alone comes from the userName, which a later person may reuse after a delete, so the
   * id makes one person's connection unreachable from anyone else's login by construction.
   */
  static key(login: PoolLogin, database: string, params: Readonly<Record<string, string>>): string {
    const sorted = Object.keys(params).sort().map((k) => [k, params[k]]);
    const owner = login.kind === 'personal' ? ['personal', login.role, login.personId] : ['shared', login.role];
    return JSON.stringify([owner, database, sorted]);
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
   * the reset is not confirmed exactly. The caller must have proved that the previous client has
   * nothing outstanding; the socket must be paused with no relay attached.
   */
  async give(key: string, conn: UpstreamConnection): Promise<void> {
    if (this.#closed || this.#maxIdle === 0 || this.#count >= this.#maxIdle) return sayGoodbye(conn.socket);
    const ok = await reset(conn);
    if (!ok || this.#closed || this.#count >= this.#maxIdle) return sayGoodbye(conn.socket);
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
      sayGoodbye(e.conn.socket);
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
    sayGoodbye(e.conn.socket);
  }
}

/**
 * The only reply that proves a reset: CommandComplete "DISCARD ALL" then ReadyForQuery 'I', and not
 * one other byte. An error, a notice, a ParameterStatus (a reported setting the session changed), a
 * notification, a result still owed to the previous client, or silence (a server in ignore-till-Sync
 * drops the query without a word) all mean the connection is not known to be clean.
 */
export const RESET_CONFIRMATION = Buffer.concat([
  Buffer.from([BackendType.commandComplete, 0, 0, 0, 16]),
  Buffer.from('DISCARD ALL\0', 'latin1'),
  Buffer.from([BackendType.readyForQuery, 0, 0, 0, 5, 0x49 /* 'I' */]),
]);

/** Feeds reset reply bytes as they arrive: 'more' until the whole confirmation, 'bad' at the first byte that differs or exceeds it. */
export function resetReplyReader(): (chunk: Buffer) => 'more' | 'confirmed' | 'bad' {
  let seen = 0;
  return (chunk) => {
    if (seen + chunk.length > RESET_CONFIRMATION.length) return 'bad';
    if (!chunk.equals(RESET_CONFIRMATION.subarray(seen, seen + chunk.length))) return 'bad';
    seen += chunk.length;
    return seen === RESET_CONFIRMATION.length ? 'confirmed' : 'more';
  };
}

/** Sends DISCARD ALL and resolves true only when the server answers with exactly its confirmation. */
function reset(conn: UpstreamConnection): Promise<boolean> {
  const socket = conn.socket;
  return new Promise((resolve) => {
    let done = false;
    const read = resetReplyReader();
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
    const onData = (chunk: Buffer) => {
      const state = read(chunk);
      if (state !== 'more') finish(state === 'confirmed');
    };
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
