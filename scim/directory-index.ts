// The in-memory directory index the proxy asks at login: which person an identity names (PRODUCT.md
// §2 step 5) and which groups they are in, in O(1) without I/O, kept in step with every committed write.
import { foldCase } from './store/derive.js';
import type { DirectoryChange, DirectorySnapshot, DirectoryStore } from './store/port.js';

export interface GroupInfo {
  readonly id: string;
  readonly displayName: string;
  readonly externalId?: string;
}

/** A frozen view of one user; a write produces a new object, so a holder keeps a consistent view. */
export interface Person {
  readonly id: string;
  readonly userName: string;
  readonly active: boolean;
  /** Direct memberships (D25: an inactive person keeps them); no particular order. */
  readonly groups: readonly GroupInfo[];
}

export type PersonMatch =
  | { readonly status: 'active'; readonly person: Person }
  | { readonly status: 'inactive'; readonly person: Person }
  | { readonly status: 'unknown' }
  | { readonly status: 'ambiguous' };

/**
 * What may end live sessions, emitted after the index applied the write that caused it:
 * - `person.deactivated` / `person.deleted`: the person can no longer log in.
 * - `membership.removed`: a group no longer includes the person (not sent for a deleted person).
 * - `group.deleted`: every listed person lost that group.
 * - `person.changed`: an identity that named this active person now names someone else, nobody, an
 *   inactive user or an ambiguous pair (userName or emails changed, another user took the email).
 *   Sessions opened under the old identity must be re-checked with findPerson.
 * - `group.changed`: the group's displayName or externalId changed; role mappings name groups by
 *   those, so the members' sessions must be re-checked.
 */
export type RevocationEvent =
  | { type: 'person.deactivated' | 'person.deleted' | 'person.changed'; personId: string }
  | { type: 'membership.removed'; personId: string; groupId: string }
  | { type: 'group.deleted' | 'group.changed'; groupId: string; personIds: string[] };

export interface DirectoryIndexOptions {
  /** Receives what a revocation listener threw; the other listeners still run. */
  onListenerError?: (err: unknown) => void;
}

interface UserState {
  readonly id: string;
  readonly userName: string;
  readonly active: boolean;
  readonly nameKey: string;
  readonly emailKeys: readonly string[];
  person: Person;
  /** The answer for identities that resolve to this user, built with `person`. */
  match: PersonMatch;
}

/** Scratch state of one applied batch. */
interface Batch {
  readonly dirtyUsers: Set<string>;
  readonly dirtyKeys: Set<string>;
  readonly events: RevocationEvent[];
  readonly deleted: Set<string>;
  readonly deactivated: Set<string>;
}

const UNKNOWN: PersonMatch = Object.freeze({ status: 'unknown' });
const AMBIGUOUS: PersonMatch = Object.freeze({ status: 'ambiguous' });
const NO_GROUPS: readonly GroupInfo[] = Object.freeze([]);

/** The directory as the proxy sees it; build with `DirectoryIndex.load(store)`. */
export class DirectoryIndex {
  readonly #users = new Map<string, UserState>();
  readonly #groups = new Map<string, GroupInfo>();
  readonly #members = new Map<string, Set<string>>();
  readonly #groupsOf = new Map<string, string[]>();
  // Folded key -> user ids. userName is unique in the store, but a replay after load may pass
  // through states where it is not, and emails are not unique at all: lists, usually of one.
  readonly #byName = new Map<string, string[]>();
  readonly #byEmail = new Map<string, string[]>();
  /** Folded identity -> precomputed answer; absent means unknown. The only map findPerson reads. */
  readonly #resolved = new Map<string, PersonMatch>();
  readonly #listeners = new Set<(ev: RevocationEvent) => void>();
  readonly #onListenerError: (err: unknown) => void;
  #memberships = 0;
  #unsubscribe: (() => void) | undefined;

  private constructor(opts: DirectoryIndexOptions) {
    this.#onListenerError = opts.onListenerError ?? (() => {});
  }

  /**
   * Loads the index from a snapshot and follows the store's change feed. It subscribes first and
   * buffers, so a write committed while the snapshot is read is applied on top of it; every change
   * is idempotent (full state or set add/remove), so one the snapshot already holds does no harm.
   */
  static async load(store: DirectoryStore, opts: DirectoryIndexOptions = {}): Promise<DirectoryIndex> {
    const index = new DirectoryIndex(opts);
    let buffer: DirectoryChange[][] | undefined = [];
    const unsubscribe = store.subscribe((changes) => {
      if (buffer !== undefined) buffer.push(changes);
      else index.#apply(changes, true);
    });
    try {
      index.#loadSnapshot(await store.snapshot());
    } catch (err) {
      unsubscribe();
      throw err;
    }
    for (const changes of buffer) index.#apply(changes, false);
    buffer = undefined;
    index.#unsubscribe = unsubscribe;
    return index;
  }

  /**
   * PRODUCT.md §2 step 5, case-insensitively: an active user's userName; else an active user's
   * emails[].value (two different active users -> ambiguous, fail closed); else an inactive user
   * with that userName or email; else unknown. One case fold and one Map lookup.
   */
  findPerson(identity: string): PersonMatch {
    return this.#resolved.get(foldCase(identity)) ?? UNKNOWN;
  }

  /** The person with this SCIM id, whatever their state. */
  getPerson(id: string): Person | undefined {
    return this.#users.get(id)?.person;
  }

  /** Subscribes to revocation events; returns the unsubscribe function. */
  onRevocation(listener: (ev: RevocationEvent) => void): () => void {
    const entry = (ev: RevocationEvent): void => listener(ev);
    this.#listeners.add(entry);
    return () => {
      this.#listeners.delete(entry);
    };
  }

  stats(): { persons: number; groups: number; memberships: number } {
    return { persons: this.#users.size, groups: this.#groups.size, memberships: this.#memberships };
  }

  /** Stops following the store. */
  close(): void {
    this.#unsubscribe?.();
    this.#unsubscribe = undefined;
  }

  // ---- building ---------------------------------------------------------------------------------

  #loadSnapshot(snap: DirectorySnapshot): void {
    const batch = newBatch();
    for (const g of snap.groups) this.#setGroup(g.id, g.displayName, g.externalId, batch);
    for (const u of snap.users) this.#upsertUser(u.id, u.userName, u.active, u.emails, batch);
    for (const m of snap.memberships) this.#addMember(m.groupId, m.userId, batch);
    this.#finish(batch, false);
  }

  #apply(changes: DirectoryChange[], emit: boolean): void {
    const batch = newBatch();
    for (const ch of changes) {
      switch (ch.type) {
        case 'user.upserted':
          this.#upsertUser(ch.user.id, ch.user.userName, ch.user.active, ch.user.emails, batch);
          break;
        case 'user.deleted':
          this.#deleteUser(ch.id, batch);
          break;
        case 'group.upserted':
          this.#setGroup(ch.group.id, ch.group.displayName, ch.group.externalId, batch);
          break;
        case 'group.deleted':
          this.#deleteGroup(ch.id, batch);
          break;
        case 'members.added':
          for (const userId of ch.userIds) this.#addMember(ch.groupId, userId, batch);
          break;
        case 'members.removed':
          for (const userId of ch.userIds) {
            if (this.#removeMember(ch.groupId, userId, batch)) {
              batch.events.push({ type: 'membership.removed', personId: userId, groupId: ch.groupId });
            }
          }
          break;
      }
    }
    this.#finish(batch, emit);
  }

  #upsertUser(id: string, userName: string, active: boolean, emails: readonly string[], batch: Batch): void {
    const prev = this.#users.get(id);
    if (prev !== undefined) {
      this.#unindexUser(prev, batch);
      if (prev.active && !active) {
        batch.events.push({ type: 'person.deactivated', personId: id });
        batch.deactivated.add(id);
      }
    }
    const emailKeys = [...new Set(emails.map(foldCase))];
    const state: UserState = {
      id,
      userName,
      active,
      nameKey: foldCase(userName),
      emailKeys,
      person: prev?.person ?? EMPTY_PERSON,
      match: UNKNOWN,
    };
    this.#users.set(id, state);
    addTo(this.#byName, state.nameKey, id);
    batch.dirtyKeys.add(state.nameKey);
    for (const k of emailKeys) {
      addTo(this.#byEmail, k, id);
      batch.dirtyKeys.add(k);
    }
    batch.dirtyUsers.add(id);
  }

  #unindexUser(u: UserState, batch: Batch): void {
    removeFrom(this.#byName, u.nameKey, u.id);
    batch.dirtyKeys.add(u.nameKey);
    for (const k of u.emailKeys) {
      removeFrom(this.#byEmail, k, u.id);
      batch.dirtyKeys.add(k);
    }
  }

  #deleteUser(id: string, batch: Batch): void {
    // D26: memberships go with the user, also ones that arrived for an id not (yet) known.
    for (const groupId of [...(this.#groupsOf.get(id) ?? [])]) this.#removeMember(groupId, id, batch);
    const prev = this.#users.get(id);
    if (prev === undefined) return;
    this.#unindexUser(prev, batch);
    this.#users.delete(id);
    batch.dirtyUsers.delete(id);
    batch.events.push({ type: 'person.deleted', personId: id });
    batch.deleted.add(id);
  }

  #setGroup(id: string, displayName: string, externalId: string | undefined, batch: Batch): void {
    const prev = this.#groups.get(id);
    if (prev !== undefined && prev.displayName === displayName && prev.externalId === externalId) return;
    const info: GroupInfo = Object.freeze(
      externalId === undefined ? { id, displayName } : { id, displayName, externalId },
    );
    this.#groups.set(id, info);
    const members = this.#members.get(id);
    if (members !== undefined) for (const userId of members) batch.dirtyUsers.add(userId);
    if (prev !== undefined) {
      batch.events.push({ type: 'group.changed', groupId: id, personIds: members === undefined ? [] : [...members] });
    }
  }

  #deleteGroup(id: string, batch: Batch): void {
    const members = this.#members.get(id);
    const personIds = members === undefined ? [] : [...members];
    for (const userId of personIds) this.#removeMember(id, userId, batch);
    this.#members.delete(id);
    if (this.#groups.delete(id)) batch.events.push({ type: 'group.deleted', groupId: id, personIds });
  }

  #addMember(groupId: string, userId: string, batch: Batch): void {
    let members = this.#members.get(groupId);
    if (members === undefined) {
      members = new Set();
      this.#members.set(groupId, members);
    }
    if (members.has(userId)) return;
    members.add(userId);
    addTo(this.#groupsOf, userId, groupId);
    this.#memberships += 1;
    batch.dirtyUsers.add(userId);
  }

  /** True when the membership existed. */
  #removeMember(groupId: string, userId: string, batch: Batch): boolean {
    const members = this.#members.get(groupId);
    if (members === undefined || !members.delete(userId)) return false;
    removeFrom(this.#groupsOf, userId, groupId);
    this.#memberships -= 1;
    batch.dirtyUsers.add(userId);
    return true;
  }

  /** Rebuilds touched persons, re-resolves touched identities, then tells listeners. */
  #finish(batch: Batch, emit: boolean): void {
    for (const id of batch.dirtyUsers) {
      const u = this.#users.get(id);
      if (u === undefined) continue;
      const groupIds = this.#groupsOf.get(id);
      const groups: GroupInfo[] = [];
      if (groupIds !== undefined) {
        for (const g of groupIds) {
          const info = this.#groups.get(g);
          if (info !== undefined) groups.push(info);
        }
      }
      u.person = Object.freeze({
        id,
        userName: u.userName,
        active: u.active,
        groups: groups.length === 0 ? NO_GROUPS : Object.freeze(groups),
      });
      u.match = Object.freeze(u.active ? { status: 'active', person: u.person } : { status: 'inactive', person: u.person });
      batch.dirtyKeys.add(u.nameKey);
      for (const k of u.emailKeys) batch.dirtyKeys.add(k);
    }
    const changed = new Set<string>();
    for (const key of batch.dirtyKeys) {
      const before = this.#resolved.get(key);
      const after = this.#resolve(key);
      if (after === undefined) this.#resolved.delete(key);
      else this.#resolved.set(key, after);
      if (
        before?.status === 'active' &&
        !(after?.status === 'active' && after.person.id === before.person.id)
      ) {
        changed.add(before.person.id);
      }
    }
    if (!emit || this.#listeners.size === 0) return;
    const events = batch.events.filter((ev) => ev.type !== 'membership.removed' || !batch.deleted.has(ev.personId));
    for (const personId of changed) {
      if (!batch.deleted.has(personId) && !batch.deactivated.has(personId)) {
        events.push({ type: 'person.changed', personId });
      }
    }
    for (const ev of events) this.#emit(ev);
  }

  #resolve(key: string): PersonMatch | undefined {
    const names = this.#byName.get(key);
    const emails = this.#byEmail.get(key);
    let active: UserState | undefined;
    let inactive: UserState | undefined;
    if (names !== undefined) {
      for (const id of names) {
        const u = this.#users.get(id);
        if (u === undefined) continue;
        if (!u.active) inactive ??= u;
        else if (active === undefined) active = u;
        else return AMBIGUOUS; // two active userNames equal after folding: only mid-replay, fail closed
      }
      if (active !== undefined) return active.match;
    }
    if (emails !== undefined) {
      for (const id of emails) {
        const u = this.#users.get(id);
        if (u === undefined) continue;
        if (!u.active) inactive ??= u;
        else if (active === undefined) active = u;
        else if (active !== u) return AMBIGUOUS;
      }
      if (active !== undefined) return active.match;
    }
    return inactive?.match;
  }

  #emit(ev: RevocationEvent): void {
    for (const listener of [...this.#listeners]) {
      try {
        listener(ev);
      } catch (err) {
        try {
          this.#onListenerError(err);
        } catch {
          // A failing reporter must not stop the other listeners.
        }
      }
    }
  }
}

const EMPTY_PERSON: Person = Object.freeze({ id: '', userName: '', active: false, groups: NO_GROUPS });

function newBatch(): Batch {
  return { dirtyUsers: new Set(), dirtyKeys: new Set(), events: [], deleted: new Set(), deactivated: new Set() };
}

function addTo(map: Map<string, string[]>, key: string, value: string): void {
  const list = map.get(key);
  if (list === undefined) map.set(key, [value]);
  else if (!list.includes(value)) list.push(value);
}

function removeFrom(map: Map<string, string[]>, key: string, value: string): void {
  const list = map.get(key);
  if (list === undefined) return;
  const i = list.indexOf(value);
  if (i === -1) return;
  if (list.length === 1) map.delete(key);
  else list.splice(i, 1);
}
