// The in-memory directory index the proxy asks at login: which person an identity names (docs/design.md
// §2 step 5) and which groups they are in, in O(1) without I/O, kept in step with every committed write.
import { Listeners } from '../lib/listeners.js';
import { DigestSum, contribution, groupLine, userLine, type Contribution } from './index-digest.js';
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

/** Which key named the person: their own userName, or an address in their emails (the fallback). */
export type MatchedBy = 'userName' | 'email';

/**
 * The answer to "who does this identity name". `ambiguous`: several active users list the address in
 * emails (or, only while a replay is half applied, several users share the userName); fail closed.
 */
export type PersonMatch =
  | { readonly status: 'active'; readonly person: Person; readonly via: MatchedBy }
  | { readonly status: 'inactive'; readonly person: Person; readonly via: MatchedBy }
  | { readonly status: 'unknown' }
  | { readonly status: 'ambiguous' };

/**
 * What may end live sessions, emitted after the index applied the write that caused it:
 * - `person.deactivated` / `person.deleted`: the person can no longer log in.
 * - `membership.removed`: a group no longer includes the person (not sent for a deleted person).
 * - `group.deleted`: every listed person lost that group.
 * - `person.changed`: an identity that named this active person now names someone else, nobody, an
 *   inactive user or an ambiguous pair (userName or emails changed, another user took the email, or
 *   a user, active or not, now has the address as userName and so outranks the emails).
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
  /** Copy-on-write, frozen: persons handed out share it. */
  groups: readonly GroupInfo[];
  person: Person;
  /** The answers for identities that resolve to this user by userName / by email, rebuilt with `person`. */
  byName: PersonMatch;
  byEmail: PersonMatch;
  /** This user's share of the digest, once the digest is kept (see `digest`). */
  digested: Contribution | undefined;
}

interface GroupState {
  info: GroupInfo;
  readonly members: Set<string>;
  digested: Contribution | undefined;
}

/** Entities hashed per turn of the event loop while the digest is first computed. */
const DIGEST_CHUNK = 2_000;

/**
 * Folded key -> the user it names, or several: emails are not unique (and a replay may repeat a
 * userName). States, not ids, so that a lookup is one Map access; a user write replaces its entries.
 */
type KeyIndex = Map<string, UserState | UserState[]>;

/** Scratch state of one applied batch. */
interface Batch {
  /** False while loading or replaying the load buffer: nobody listens yet, so skip the bookkeeping. */
  readonly emit: boolean;
  readonly dirtyUsers: Set<string>;
  /** Folded keys touched, with the active person they resolved to before the batch (if any). */
  readonly before: Map<string, string | undefined>;
  readonly events: RevocationEvent[];
  readonly deleted: Set<string>;
  readonly deactivated: Set<string>;
}

const UNKNOWN: PersonMatch = Object.freeze({ status: 'unknown' });
const AMBIGUOUS: PersonMatch = Object.freeze({ status: 'ambiguous' });
const NO_GROUPS: readonly GroupInfo[] = Object.freeze([]);
const NO_KEYS: readonly string[] = Object.freeze([]);

/** The directory as the proxy sees it; build with `DirectoryIndex.load(store)`. */
export class DirectoryIndex {
  // Sized for 100,000 users within the memory budget: one Map entry per user and key, ids shared
  // with the user state, answers (`byName`, `byEmail`) prebuilt so a lookup allocates nothing.
  readonly #users = new Map<string, UserState>();
  readonly #groups = new Map<string, GroupState>();
  readonly #byName: KeyIndex = new Map();
  readonly #byEmail: KeyIndex = new Map();
  readonly #listeners: Listeners<RevocationEvent>;
  /** Who a committed batch touched, for per-user provisioning (docs/design.md §7). */
  readonly #changed: Listeners<readonly string[]>;
  #memberships = 0;
  #unsubscribe: (() => void) | undefined;
  /** Undefined until the digest is first asked for; kept current write by write from then on. */
  #digest: DigestSum | undefined;
  #digestReady: Promise<void> | undefined;

  private constructor(opts: DirectoryIndexOptions) {
    this.#listeners = new Listeners(opts.onListenerError);
    this.#changed = new Listeners(opts.onListenerError);
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
   * An index that holds nothing and follows nothing yet: on a shared (PostgreSQL) store an instance's
   * change-log follower fills it with `resync` and keeps it in step with `applyCommitted`, in commit
   * order, for every instance's writes alike (docs/design.md §8).
   */
  static empty(opts: DirectoryIndexOptions = {}): DirectoryIndex {
    return new DirectoryIndex(opts);
  }

  /** Applies one committed write, as the store's change feed carries it, and emits what it revoked. */
  applyCommitted(changes: readonly DirectoryChange[]): void {
    this.#apply(changes, true);
  }

  /**
   * Makes the index equal to `snapshot`: an empty index simply loads it; otherwise the difference is
   * applied as one batch of changes, so a follower that missed writes (it fell behind the pruned
   * change log) emits every revocation they imply, exactly as if it had applied each of them.
   */
  resync(snapshot: DirectorySnapshot): void {
    if (this.#users.size === 0 && this.#groups.size === 0) this.#loadSnapshot(snapshot);
    else this.#apply(this.#differenceTo(snapshot), true);
  }

  /**
   * A digest of what the index holds, independent of order: two indexes with the same digest answer
   * every lookup alike (instances compare theirs through the admin API, docs/design.md §5). The first
   * call hashes every entity, a few thousand per turn of the event loop so logins are not held up;
   * from then on each write updates it, so later calls cost nothing.
   */
  async digest(): Promise<string> {
    if (this.#digest === undefined) {
      this.#digest = new DigestSum();
      this.#digestReady = this.#digestAll(this.#digest);
    }
    await this.#digestReady;
    return this.#digest.hex();
  }

  /**
   * Hashes every entity that has no contribution yet. Writes meanwhile hash what they touch (the
   * digest is kept from the moment it exists), so an entity is counted once whichever comes first.
   */
  async #digestAll(sum: DigestSum): Promise<void> {
    let n = 0;
    const pause = async (): Promise<void> => {
      if (++n % DIGEST_CHUNK === 0) await new Promise((r) => setImmediate(r));
    };
    for (const id of [...this.#groups.keys()]) {
      const g = this.#groups.get(id);
      if (g !== undefined && g.digested === undefined) this.#digestGroup(g, sum);
      await pause();
    }
    for (const id of [...this.#users.keys()]) {
      const u = this.#users.get(id);
      if (u !== undefined && u.digested === undefined) this.#digestUser(u, sum);
      await pause();
    }
  }

  #digestUser(u: UserState, sum: DigestSum): void {
    if (u.digested !== undefined) sum.remove(u.digested);
    u.digested = contribution(userLine({ id: u.id, userName: u.userName, active: u.active, emailKeys: u.emailKeys, groupIds: u.groups.map((g) => g.id) }));
    sum.add(u.digested);
  }

  #digestGroup(g: GroupState, sum: DigestSum): void {
    if (g.digested !== undefined) sum.remove(g.digested);
    g.digested = contribution(groupLine(g.info));
    sum.add(g.digested);
  }

  /**
   * docs/design.md §2 step 5, case-insensitively: the user with that userName, active or not (final);
   * only when no userName matches, the one active user listing it in emails (several -> ambiguous,
   * none -> an inactive holder, or unknown). A case fold and a few Map lookups, no allocation.
   */
  findPerson(identity: string): PersonMatch {
    return this.#resolve(foldCase(identity));
  }

  /** The person with this SCIM id, whatever their state. */
  getPerson(id: string): Person | undefined {
    return this.#users.get(id)?.person;
  }

  /** Subscribes to revocation events; returns the unsubscribe function. */
  onRevocation(listener: (ev: RevocationEvent) => void): () => void {
    return this.#listeners.add(listener);
  }

  /**
   * Subscribes to the ids of the people each applied batch touched: created, changed or deleted, or
   * whose memberships or groups changed. Called after the revocation events of the same batch.
   */
  onPersonsChanged(listener: (personIds: readonly string[]) => void): () => void {
    return this.#changed.add(listener);
  }

  stats(): { persons: number; groups: number; memberships: number } {
    return { persons: this.#users.size, groups: this.#groups.size, memberships: this.#memberships };
  }

  /** Stops following the store. */
  close(): void {
    this.#unsubscribe?.();
    this.#unsubscribe = undefined;
  }

  // ---- lookup -----------------------------------------------------------------------------------

  #resolve(key: string): PersonMatch {
    const names = this.#byName.get(key);
    // A userName match is final, active or not: were an inactive one passed on to the emails, the
    // deactivated person's token would be admitted as any other account that lists their address.
    // Several holders exist only while a replay is half applied (userName is unique, D14).
    if (names !== undefined) return Array.isArray(names) ? AMBIGUOUS : names.byName;
    const mails = this.#byEmail.get(key);
    if (mails === undefined) return UNKNOWN;
    if (!Array.isArray(mails)) return mails.byEmail;
    // Emails are not unique: exactly one active holder, or no admission (entries are distinct users).
    let active: UserState | undefined;
    for (const u of mails) {
      if (!u.active) continue;
      if (active !== undefined) return AMBIGUOUS;
      active = u;
    }
    return (active ?? mails[0]!).byEmail;
  }

  /** The active person `key` names now, if any: what `person.changed` compares. */
  #activeFor(key: string): string | undefined {
    const m = this.#resolve(key);
    return m.status === 'active' ? m.person.id : undefined;
  }

  /** Records what `key` resolved to before this batch first changed anything it depends on. */
  #touch(key: string, batch: Batch): void {
    if (!batch.before.has(key)) batch.before.set(key, this.#activeFor(key));
  }

  // ---- building ---------------------------------------------------------------------------------

  #loadSnapshot(snap: DirectorySnapshot): void {
    const batch = newBatch(false);
    for (const g of snap.groups) this.#setGroup(g.id, g.displayName, g.externalId, batch);
    for (const u of snap.users) this.#upsertUser(u.id, u.userName, u.active, u.emails, batch);
    for (const m of snap.memberships) this.#addMember(m.groupId, m.userId, batch);
    this.#finish(batch);
  }

  /** The changes that turn this index into `snap`: deletions, then resources, then memberships. */
  #differenceTo(snap: DirectorySnapshot): DirectoryChange[] {
    const changes: DirectoryChange[] = [];
    const groupIds = new Set(snap.groups.map((g) => g.id));
    const userIds = new Set(snap.users.map((u) => u.id));
    for (const id of this.#groups.keys()) if (!groupIds.has(id)) changes.push({ type: 'group.deleted', id });
    for (const id of this.#users.keys()) if (!userIds.has(id)) changes.push({ type: 'user.deleted', id });
    for (const g of snap.groups) {
      const info = this.#groups.get(g.id)?.info;
      if (info === undefined || info.displayName !== g.displayName || info.externalId !== g.externalId) {
        changes.push({ type: 'group.upserted', group: g });
      }
    }
    for (const u of snap.users) {
      const cur = this.#users.get(u.id);
      if (cur === undefined || cur.userName !== u.userName || cur.active !== u.active || !sameKeys(cur.emailKeys, u.emails)) {
        changes.push({ type: 'user.upserted', user: u });
      }
    }
    const wanted = new Map<string, Set<string>>();
    for (const m of snap.memberships) {
      let members = wanted.get(m.groupId);
      if (members === undefined) wanted.set(m.groupId, (members = new Set()));
      members.add(m.userId);
    }
    for (const g of snap.groups) {
      const have = this.#groups.get(g.id)?.members ?? new Set<string>();
      const want = wanted.get(g.id) ?? new Set<string>();
      const removed = [...have].filter((id) => !want.has(id));
      const added = [...want].filter((id) => !have.has(id));
      if (removed.length > 0) changes.push({ type: 'members.removed', groupId: g.id, userIds: removed });
      if (added.length > 0) changes.push({ type: 'members.added', groupId: g.id, userIds: added });
    }
    return changes;
  }

  #apply(changes: readonly DirectoryChange[], emit: boolean): void {
    const batch = newBatch(emit && this.#listeners.size > 0);
    const touched = emit && this.#changed.size > 0;
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
    this.#finish(batch);
    if (touched && (batch.dirtyUsers.size > 0 || batch.deleted.size > 0)) {
      this.#changed.emit([...new Set([...batch.dirtyUsers, ...batch.deleted])]);
    }
  }

  #upsertUser(id: string, userName: string, active: boolean, emails: readonly string[], batch: Batch): void {
    const prev = this.#users.get(id);
    const nameKey = foldCase(userName);
    const emailKeys = emails.length === 0 ? NO_KEYS : [...new Set(emails.map(foldCase))];
    if (batch.emit) {
      this.#touch(nameKey, batch);
      for (const k of emailKeys) this.#touch(k, batch);
    }
    if (prev !== undefined) {
      if (batch.emit) {
        this.#touch(prev.nameKey, batch);
        for (const k of prev.emailKeys) this.#touch(k, batch);
      }
      this.#unindexUser(prev);
      if (prev.active && !active) {
        batch.events.push({ type: 'person.deactivated', personId: id });
        batch.deactivated.add(id);
      }
    }
    const state: UserState = {
      // Keep one copy of the id string: group member sets and persons share it.
      id: prev?.id ?? id,
      userName,
      active,
      nameKey,
      emailKeys,
      groups: prev?.groups ?? NO_GROUPS,
      person: prev?.person ?? EMPTY_PERSON,
      byName: UNKNOWN,
      byEmail: UNKNOWN,
      // Its share so far: #finish replaces it with the new state's.
      digested: prev?.digested,
    };
    this.#users.set(state.id, state);
    addKey(this.#byName, nameKey, state);
    for (const k of emailKeys) addKey(this.#byEmail, k, state);
    batch.dirtyUsers.add(state.id);
  }

  #unindexUser(u: UserState): void {
    removeKey(this.#byName, u.nameKey, u.id);
    for (const k of u.emailKeys) removeKey(this.#byEmail, k, u.id);
  }

  #deleteUser(id: string, batch: Batch): void {
    const prev = this.#users.get(id);
    if (prev === undefined) return;
    // D26: memberships go with the user (the store also sent members.removed for each).
    for (const g of prev.groups) this.#removeMember(g.id, id, batch);
    if (batch.emit) {
      this.#touch(prev.nameKey, batch);
      for (const k of prev.emailKeys) this.#touch(k, batch);
    }
    this.#unindexUser(prev);
    this.#users.delete(id);
    if (prev.digested !== undefined) this.#digest?.remove(prev.digested);
    batch.dirtyUsers.delete(id);
    batch.events.push({ type: 'person.deleted', personId: id });
    batch.deleted.add(id);
  }

  #setGroup(id: string, displayName: string, externalId: string | undefined, batch: Batch): void {
    const prev = this.#groups.get(id);
    if (prev !== undefined && prev.info.displayName === displayName && prev.info.externalId === externalId) return;
    const gid = prev?.info.id ?? id;
    const info: GroupInfo = Object.freeze(
      externalId === undefined ? { id: gid, displayName } : { id: gid, displayName, externalId },
    );
    if (prev === undefined) {
      const created: GroupState = { info, members: new Set(), digested: undefined };
      this.#groups.set(gid, created);
      if (this.#digest !== undefined) this.#digestGroup(created, this.#digest);
      return;
    }
    prev.info = info;
    if (this.#digest !== undefined) this.#digestGroup(prev, this.#digest);
    for (const userId of prev.members) {
      const u = this.#users.get(userId);
      if (u === undefined) continue;
      u.groups = Object.freeze(u.groups.map((g) => (g.id === gid ? info : g)));
      batch.dirtyUsers.add(userId);
    }
    batch.events.push({ type: 'group.changed', groupId: gid, personIds: [...prev.members] });
  }

  #deleteGroup(id: string, batch: Batch): void {
    const group = this.#groups.get(id);
    if (group === undefined) return;
    const personIds = [...group.members];
    for (const userId of personIds) this.#removeMember(id, userId, batch);
    this.#groups.delete(id);
    if (group.digested !== undefined) this.#digest?.remove(group.digested);
    batch.events.push({ type: 'group.deleted', groupId: id, personIds });
  }

  /**
   * Memberships of an unknown user or group are ignored: ids are never reused, so such a change can
   * only come from a replay after load for an entity that a later change in the same replay deletes.
   */
  #addMember(groupId: string, userId: string, batch: Batch): void {
    const group = this.#groups.get(groupId);
    const u = this.#users.get(userId);
    if (group === undefined || u === undefined || group.members.has(u.id)) return;
    group.members.add(u.id);
    u.groups = Object.freeze([...u.groups, group.info]);
    this.#memberships += 1;
    batch.dirtyUsers.add(u.id);
  }

  /** True when the membership existed. */
  #removeMember(groupId: string, userId: string, batch: Batch): boolean {
    const group = this.#groups.get(groupId);
    if (group === undefined || !group.members.delete(userId)) return false;
    this.#memberships -= 1;
    const u = this.#users.get(userId);
    if (u !== undefined) {
      const rest = u.groups.filter((g) => g.id !== groupId);
      u.groups = rest.length === 0 ? NO_GROUPS : Object.freeze(rest);
      batch.dirtyUsers.add(userId);
    }
    return true;
  }

  /** Rebuilds touched persons and their answers, then tells listeners what was revoked. */
  #finish(batch: Batch): void {
    for (const id of batch.dirtyUsers) {
      const u = this.#users.get(id);
      if (u === undefined) continue;
      u.person = Object.freeze({ id: u.id, userName: u.userName, active: u.active, groups: u.groups });
      const status = u.active ? 'active' : 'inactive';
      u.byName = Object.freeze({ status, person: u.person, via: 'userName' } as const);
      u.byEmail = Object.freeze({ status, person: u.person, via: 'email' } as const);
      if (this.#digest !== undefined) this.#digestUser(u, this.#digest);
    }
    if (!batch.emit) return;
    const events = batch.events.filter((ev) => ev.type !== 'membership.removed' || !batch.deleted.has(ev.personId));
    const changed = new Set<string>();
    for (const [key, before] of batch.before) {
      if (before === undefined || batch.deleted.has(before) || batch.deactivated.has(before)) continue;
      if (this.#activeFor(key) !== before) changed.add(before);
    }
    for (const personId of changed) events.push({ type: 'person.changed', personId });
    for (const ev of events) this.#listeners.emit(ev);
  }
}

const EMPTY_PERSON: Person = Object.freeze({ id: '', userName: '', active: false, groups: NO_GROUPS });

function newBatch(emit: boolean): Batch {
  return { emit, dirtyUsers: new Set(), before: new Map(), events: [], deleted: new Set(), deactivated: new Set() };
}

/** Whether folded `keys` hold exactly the addresses of `emails`, in any order and case. */
function sameKeys(keys: readonly string[], emails: readonly string[]): boolean {
  const other = new Set(emails.map(foldCase));
  return other.size === keys.length && keys.every((k) => other.has(k));
}

function addKey(index: KeyIndex, key: string, u: UserState): void {
  const cur = index.get(key);
  if (cur === undefined) index.set(key, u);
  else if (!Array.isArray(cur)) {
    if (cur.id !== u.id) index.set(key, [cur, u]);
  } else if (!cur.some((x) => x.id === u.id)) cur.push(u);
}

function removeKey(index: KeyIndex, key: string, id: string): void {
  const cur = index.get(key);
  if (cur === undefined) return;
  if (!Array.isArray(cur)) {
    if (cur.id === id) index.delete(key);
    return;
  }
  const rest = cur.filter((x) => x.id !== id);
  if (rest.length === 0) index.delete(key);
  else index.set(key, rest.length === 1 ? rest[0]! : rest);
}
