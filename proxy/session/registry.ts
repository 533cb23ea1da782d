// Live sessions of this instance: the session list of the admin API, rolegate-issued cancel keys,
// and the lookup by person that revocation needs. Sessions register once they relay and leave once.
import { randomBytes, randomInt, timingSafeEqual } from 'node:crypto';
import type { EndByProxy } from './reasons.js';

/** What the admin API shows of a session: a read-only snapshot. */
export interface SessionSnapshot {
  readonly id: string;
  readonly person: string;
  readonly personId: string;
  readonly role: string;
  readonly database: string;
  readonly client: { readonly address: string; readonly port: number };
  readonly started: string;
  readonly statements: number;
  readonly instance: string;
}

/** The registry's view of a live session. */
export interface LiveSession {
  readonly id: string;
  readonly personId: string;
  /** The key this instance gave the client in BackendKeyData. */
  readonly cancelKey: { readonly pid: number; readonly secret: Buffer };
  snapshot(): SessionSnapshot;
  /** Forwards a CancelRequest to the session's upstream backend. */
  cancel(): Promise<void>;
  /** Decides access again from the current directory and roles; ends the session (`revoked`) and returns true when it no longer holds. */
  recheck(): boolean;
  end(reason: EndByProxy): void;
}

export class SessionRegistry {
  readonly #byId = new Map<string, LiveSession>();
  readonly #byPid = new Map<number, LiveSession>();
  readonly #byPerson = new Map<string, Set<LiveSession>>();

  get size(): number {
    return this.#byId.size;
  }

  /** A cancel key no live session uses: pid in [1, 2^31), secret 4 random bytes (protocol 3.0). */
  newCancelKey(): { pid: number; secret: Buffer } {
    for (;;) {
      const pid = randomInt(1, 0x7fffffff);
      if (!this.#byPid.has(pid)) return { pid, secret: randomBytes(4) };
    }
  }

  add(session: LiveSession): void {
    this.#byId.set(session.id, session);
    this.#byPid.set(session.cancelKey.pid, session);
    let mine = this.#byPerson.get(session.personId);
    if (mine === undefined) this.#byPerson.set(session.personId, (mine = new Set()));
    mine.add(session);
  }

  remove(session: LiveSession): void {
    if (this.#byId.get(session.id) === session) this.#byId.delete(session.id);
    if (this.#byPid.get(session.cancelKey.pid) === session) this.#byPid.delete(session.cancelKey.pid);
    const mine = this.#byPerson.get(session.personId);
    if (mine !== undefined && mine.delete(session) && mine.size === 0) this.#byPerson.delete(session.personId);
  }

  /** The session a CancelRequest names; the secret is compared in constant time. */
  byCancelKey(pid: number, secret: Buffer): LiveSession | undefined {
    const s = this.#byPid.get(pid);
    if (s === undefined || s.cancelKey.secret.length !== secret.length) return undefined;
    return timingSafeEqual(s.cancelKey.secret, secret) ? s : undefined;
  }

  get(id: string): LiveSession | undefined {
    return this.#byId.get(id);
  }

  /** Live sessions of one person (a copy: ending one while iterating is safe). */
  ofPerson(personId: string): LiveSession[] {
    const mine = this.#byPerson.get(personId);
    return mine === undefined ? [] : [...mine];
  }

  all(): LiveSession[] {
    return [...this.#byId.values()];
  }

  list(): SessionSnapshot[] {
    return this.all().map((s) => s.snapshot());
  }
}
