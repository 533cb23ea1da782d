// Live sessions of this instance: the session list of the admin API, rolegate-issued cancel keys,
// and the lookup by person that revocation needs. Sessions register once they relay and leave once.
import { randomBytes, randomInt, timingSafeEqual } from 'node:crypto';
import type { EndByProxy } from './reasons.js';

/**
 * The BackendKeyData process id names the instance that issued it (docs/design.md §8), as pgbouncer's
 * peering puts its peer_id into its cancel keys: bit 31 stays 0 (clients keep the field as a signed
 * int32), bits 30-21 hold the instance's slot (1-1023 on a shared store, 0 on a single instance) and
 * bits 20-0 a random number no other live session of the instance uses. The key stays unguessable
 * because the 4-byte secret stays random and is compared in constant time by the issuing instance.
 */
const SLOT_SHIFT = 21;
const LOCAL_IDS = 1 << SLOT_SHIFT;

/** The slot of the instance that issued a cancel key's process id. */
export function slotOfProcessId(pid: number): number {
  return pid >>> SLOT_SHIFT;
}

export interface RegistryOptions {
  /** This instance's slot (it may change when an expired instance registers again); default 0. */
  slot?: () => number;
  /** Called after a session was added or removed (the shared session list follows). */
  onChange?: () => void;
}

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
  readonly #slot: () => number;
  readonly #onChange: () => void;

  constructor(opts: RegistryOptions = {}) {
    this.#slot = opts.slot ?? (() => 0);
    this.#onChange = opts.onChange ?? (() => {});
  }

  get size(): number {
    return this.#byId.size;
  }

  /** A cancel key no live session uses: pid naming this instance (see SLOT_SHIFT), secret 4 random bytes (protocol 3.0). */
  newCancelKey(): { pid: number; secret: Buffer } {
    const base = this.#slot() * LOCAL_IDS;
    for (;;) {
      const pid = base + randomInt(1, LOCAL_IDS);
      if (!this.#byPid.has(pid)) return { pid, secret: randomBytes(4) };
    }
  }

  /** The slot of the other instance that issued `pid`, or undefined when it names this one. */
  issuerElsewhere(pid: number): number | undefined {
    const slot = slotOfProcessId(pid);
    return slot === this.#slot() ? undefined : slot;
  }

  add(session: LiveSession): void {
    this.#byId.set(session.id, session);
    this.#byPid.set(session.cancelKey.pid, session);
    let mine = this.#byPerson.get(session.personId);
    if (mine === undefined) this.#byPerson.set(session.personId, (mine = new Set()));
    mine.add(session);
    this.#onChange();
  }

  remove(session: LiveSession): void {
    if (this.#byId.get(session.id) === session) this.#byId.delete(session.id);
    if (this.#byPid.get(session.cancelKey.pid) === session) this.#byPid.delete(session.cancelKey.pid);
    const mine = this.#byPerson.get(session.personId);
    if (mine !== undefined && mine.delete(session) && mine.size === 0) this.#byPerson.delete(session.personId);
    this.#onChange();
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
