// The directory store port: what the SCIM service and the directory index need from durable
// storage. Two adapters implement it: SQLite (embedded default) and PostgreSQL (several instances).
import type { GroupMembership, GroupRecord, MemberRef, ScimAttributes, UserRecord } from '../model.js';

/** An equality lookup the store can answer from an index. Values are compared as the attribute's caseExact says. */
export type UserKey =
  | { attr: 'id'; value: string }
  | { attr: 'userName'; value: string } // case-insensitive
  | { attr: 'externalId'; value: string } // case-exact
  | { attr: 'emails.value'; value: string }; // case-insensitive

export type GroupKey =
  | { attr: 'id'; value: string }
  | { attr: 'displayName'; value: string } // case-insensitive
  | { attr: 'externalId'; value: string } // case-exact
  | { attr: 'members.value'; value: string }; // case-exact

export interface Page<T> {
  total: number;
  items: T[];
}

/** What a committed write changed; emitted after COMMIT, in commit order. */
export type DirectoryChange =
  | { type: 'user.upserted'; user: { id: string; userName: string; active: boolean; emails: string[] } }
  | { type: 'user.deleted'; id: string }
  | { type: 'group.upserted'; group: { id: string; displayName: string; externalId?: string } }
  | { type: 'group.deleted'; id: string }
  | { type: 'members.added'; groupId: string; userIds: string[] }
  | { type: 'members.removed'; groupId: string; userIds: string[] };

/** The compact rows the in-memory directory index is built from at start. */
export interface DirectorySnapshot {
  users: { id: string; userName: string; active: boolean; emails: string[] }[];
  groups: { id: string; displayName: string; externalId?: string }[];
  memberships: { groupId: string; userId: string }[];
  /**
   * PostgreSQL: the position in the shared change log (rg_changes seq) the rows reflect: every write
   * up to it is in them, none after (docs/design.md §8). SQLite has no log.
   */
  position?: string;
}

/**
 * A pure, synchronous mutation run inside the write transaction with the current state.
 * Returns the new state, or `undefined` when nothing changes (then nothing is written and
 * `lastModified` stays, D11). Throws ScimError to abort the whole write (atomic).
 */
export type UserMutation = (current: UserRecord) => ScimAttributes | undefined;
export type GroupMutation = (current: GroupRecord) => { attributes: ScimAttributes; members: MemberRef[] } | undefined;

/**
 * A person's own database role under per-user provisioning (docs/design.md §7 step 2): its name and
 * its login secret, sealed by the provisioner before it gets here. Kept apart from the user, because
 * it outlives them until the role is dropped.
 */
export interface PersonalRoleRow {
  readonly personId: string;
  readonly userName: string;
  readonly roleName: string;
  readonly sealedSecret: string;
}

export type PersonalRoleClaim =
  | { readonly kind: 'stored' | 'existing'; readonly record: PersonalRoleRow }
  | { readonly kind: 'name_taken'; readonly holder: string };

/** The personal-role records; role names are unique (case-sensitive, as PostgreSQL compares them). */
export interface PersonalRoleStore {
  list(): Promise<PersonalRoleRow[]>;
  get(personId: string): Promise<PersonalRoleRow | undefined>;
  /** Inserts unless the person has a record (returns that one): concurrent claims agree on one secret. */
  claim(row: PersonalRoleRow): Promise<PersonalRoleClaim>;
  /** Replaces the person's record; false when the role name is another person's. */
  update(row: PersonalRoleRow): Promise<boolean>;
  remove(personId: string): Promise<void>;
}

export interface DirectoryStore {
  readonly kind: 'sqlite' | 'postgres';
  /** Per-user provisioning's records of the roles it made. */
  readonly personalRoles: PersonalRoleStore;
  /** Readiness probe: resolves when the store answers a trivial query. */
  ping(): Promise<void>;
  close(): Promise<void>;

  getUser(id: string): Promise<UserRecord | undefined>;
  /** Users in stable creation order (then id); `key` narrows to an index lookup. */
  listUsers(opts: { key?: UserKey; offset: number; limit: number }): Promise<Page<UserRecord>>;
  /** Every user (or those matching `key`) in stable order, in batches; for filters evaluated in JS. */
  scanUsers(key?: UserKey): AsyncIterable<UserRecord>;
  /** Direct group memberships of each user id (for the readOnly `groups` attribute, D24). */
  groupsOfUsers(userIds: string[]): Promise<Map<string, GroupMembership[]>>;

  getGroup(id: string, opts: { members: boolean }): Promise<GroupRecord | undefined>;
  listGroups(opts: { key?: GroupKey; offset: number; limit: number; members: boolean }): Promise<Page<GroupRecord>>;
  scanGroups(opts: { key?: GroupKey; members: boolean }): AsyncIterable<GroupRecord>;

  /** 409 uniqueness on a userName taken case-insensitively (D14). */
  createUser(attributes: ScimAttributes): Promise<UserRecord>;
  /** 404 when missing, 409 on uniqueness; atomic. */
  updateUser(id: string, mutate: UserMutation): Promise<UserRecord>;
  /** Removes the user and its memberships (D26). false when missing. */
  deleteUser(id: string): Promise<boolean>;

  /** 409 on displayName taken case-insensitively (D13); 400 invalidValue on an unknown member (D12). */
  createGroup(attributes: ScimAttributes, members: MemberRef[]): Promise<GroupRecord>;
  updateGroup(id: string, mutate: GroupMutation): Promise<GroupRecord>;
  deleteGroup(id: string): Promise<boolean>;

  snapshot(): Promise<DirectorySnapshot>;
  /**
   * Called synchronously after each commit of this process's own writes, in commit order, before the
   * write's promise resolves. Concurrent writes may share one transaction (group commit); each write
   * is still its own batch. Other instances' writes reach an instance through the change log instead
   * (docs/design.md §8).
   */
  subscribe(listener: (changes: DirectoryChange[]) => void): () => void;
}
