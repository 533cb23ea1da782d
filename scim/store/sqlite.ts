// The embedded directory store: one SQLite file (WAL, synchronous=FULL), written by one process.
import { closeSync, mkdirSync, openSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import type Database from 'better-sqlite3';
import type { GroupMembership, GroupRecord, MemberRef, ScimAttributes, UserRecord } from '../model.js';
import { ChangeFeed } from './change-feed.js';
import {
  displayNameTaken,
  groupChange,
  groupColumns,
  groupKeyValue,
  groupNotFound,
  normalizeMembers,
  notAUser,
  pageBounds,
  userChange,
  userColumns,
  userKeyValue,
  userNameTaken,
  userNotFound,
  type UserColumns,
} from './derive.js';
import { GroupCommit, type WriteOutcome } from './group-commit.js';
import { diffMembers } from './member-diff.js';
import { PageCursors } from './page-cursors.js';
import { resolveStoreOptions, type ResolvedStoreOptions, type StoreOptions } from './options.js';
import type {
  DirectoryChange,
  DirectorySnapshot,
  DirectoryStore,
  GroupKey,
  GroupMutation,
  Page,
  UserKey,
  UserMutation,
} from './port.js';
import { claimSqliteDirectory, type SqliteClaim } from './sqlite-claim.js';
import { keepForProcessLife } from './sqlite-lifetime.js';
import { openSqliteDatabase } from './sqlite-migrate.js';
import { SqlitePersonalRoles } from './personal-roles-sqlite.js';

/** Rows per batch of scanUsers/scanGroups: bounded memory with 100,000 users. */
const SCAN_BATCH = 500;

// WHERE fragments per key: constants chosen by `attr`, the value is always a bound parameter.
const USER_WHERE: Record<UserKey['attr'] | 'all', string> = {
  all: '1 = 1',
  id: 'id = ?',
  userName: 'user_name_lc = ?',
  externalId: 'external_id = ?',
  'emails.value': 'id IN (SELECT user_id FROM rg_user_emails WHERE email_lc = ?)',
};
const GROUP_WHERE: Record<GroupKey['attr'] | 'all', string> = {
  all: '1 = 1',
  id: 'id = ?',
  displayName: 'display_name_lc = ?',
  externalId: 'external_id = ?',
  'members.value': 'id IN (SELECT group_id FROM rg_members WHERE user_id = ?)',
};

interface ResourceRow {
  seq: number;
  id: string;
  created: string;
  last_modified: string;
  attributes: string;
}
interface MemberRow {
  group_id: string;
  user_id: string;
  display: string | null;
  pos: number;
}
type SqliteWrite = () => { result: unknown; changes: DirectoryChange[] };
type Done = { ok: true; result: unknown; changes: DirectoryChange[] } | { ok: false; error: unknown };

/** Opens (creating the parent folder) and migrates a SQLite store; `:memory:` for tests. */
export async function openSqliteStore(path: string, opts?: StoreOptions): Promise<DirectoryStore> {
  const file = path === ':memory:' ? path : resolve(path);
  let claim: SqliteClaim | undefined;
  if (file !== ':memory:') {
    // The directory holds personal data: folders we create and a new file are private to the
    // service user (SQLite gives the -wal and -shm files the database file's permissions).
    mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
    closeSync(openSync(file, 'a', 0o600));
    if (opts?.soleInstance === true) claim = claimSqliteDirectory(file);
  }
  try {
    return new SqliteStore(await openSqliteDatabase(file), resolveStoreOptions(opts), claim);
  } catch (err) {
    claim?.release();
    throw err;
  }
}

class SqliteStore implements DirectoryStore {
  readonly kind = 'sqlite' as const;
  readonly personalRoles: SqlitePersonalRoles;
  readonly #db: Database.Database;
  readonly #opts: ResolvedStoreOptions;
  readonly #claim: SqliteClaim | undefined;
  readonly #feed: ChangeFeed;
  readonly #statements = new Map<string, Database.Statement>();
  readonly #plucked = new Map<string, Database.Statement>();
  readonly #tx: Database.Transaction<(fn: () => unknown) => unknown>;
  /** Called inside #tx, better-sqlite3 runs it in a SAVEPOINT: one write of a batch rolls back alone. */
  readonly #isolated: Database.Transaction<(fn: () => unknown) => unknown>;
  /** Concurrent writes share one BEGIN IMMEDIATE ... COMMIT, and so one fsync. */
  readonly #group = new GroupCommit<SqliteWrite>((batch) => Promise.resolve(this.#commitBatch(batch)));
  // Keyset paging of the unfiltered lists; forgotten on our deletes, versioned by other connections' commits.
  readonly #pages = { rg_users: new PageCursors(), rg_groups: new PageCursors() };

  constructor(db: Database.Database, opts: ResolvedStoreOptions, claim: SqliteClaim | undefined) {
    this.#db = db;
    this.#opts = opts;
    this.#claim = claim;
    this.#feed = new ChangeFeed(opts.onListenerError);
    this.#tx = db.transaction((fn: () => unknown) => fn());
    this.personalRoles = new SqlitePersonalRoles(db, opts.now);
    this.#isolated = db.transaction((fn: () => unknown) => fn());
  }

  /** A cached prepared statement; `sql` is always built from constants in this file. */
  #stmt(sql: string): Database.Statement {
    let s = this.#statements.get(sql);
    if (s === undefined) {
      s = keepForProcessLife(this.#db.prepare(sql));
      this.#statements.set(sql, s);
    }
    return s;
  }

  /** The first column of the first row, or undefined. */
  #value(sql: string, ...params: unknown[]): unknown {
    let s = this.#plucked.get(sql);
    if (s === undefined) {
      s = keepForProcessLife(this.#db.prepare(sql).pluck());
      this.#plucked.set(sql, s);
    }
    return s.get(...params);
  }

  #rows<T>(sql: string, ...params: unknown[]): T[] {
    return this.#stmt(sql).all(...params) as T[];
  }

  /** Queues a write for the next group commit; resolves once its transaction committed durably. */
  #write<T>(fn: () => { result: T; changes: DirectoryChange[] }): Promise<T> {
    return this.#group.submit<T>(fn);
  }

  /**
   * Runs a batch in one BEGIN IMMEDIATE transaction (the write lock is taken up front, so a
   * read-modify-write cannot be overtaken), each write in its own savepoint, then tells subscribers
   * after COMMIT, write by write, in order.
   */
  #commitBatch(batch: readonly SqliteWrite[]): WriteOutcome[] {
    const done = this.#tx.immediate(() =>
      batch.map((fn): Done => {
        try {
          const out = this.#isolated(fn) as { result: unknown; changes: DirectoryChange[] };
          return { ok: true, result: out.result, changes: out.changes };
        } catch (error) {
          return { ok: false, error };
        }
      }),
    ) as Done[];
    for (const d of done) if (d.ok) this.#feed.publish(d.changes);
    return done.map((d) => (d.ok ? { ok: true, result: d.result } : d));
  }

  async ping(): Promise<void> {
    this.#value('SELECT 1');
  }

  async close(): Promise<void> {
    await this.#group.idle();
    if (this.#db.open) this.#db.close();
    this.#claim?.release();
  }

  // ---- users ------------------------------------------------------------------------------------

  async getUser(id: string): Promise<UserRecord | undefined> {
    const row = this.#stmt('SELECT seq, id, created, last_modified, attributes FROM rg_users WHERE id = ?').get(id) as
      | ResourceRow
      | undefined;
    return row === undefined ? undefined : toUser(row);
  }

  async listUsers(opts: { key?: UserKey; offset: number; limit: number }): Promise<Page<UserRecord>> {
    const { offset, limit } = pageBounds(opts.offset, opts.limit);
    // One read transaction: the total and the page come from the same snapshot.
    return this.#tx.deferred(() => {
      if (opts.key === undefined) {
        const page = this.#pageAll('rg_users', offset, limit);
        return { total: page.total, items: page.rows.map(toUser) };
      }
      const where = USER_WHERE[opts.key.attr];
      const value = userKeyValue(opts.key);
      const total = this.#value(`SELECT count(*) FROM rg_users WHERE ${where}`, value) as number;
      const items =
        limit === 0 || offset >= total
          ? []
          : this.#rows<ResourceRow>(
              `SELECT seq, id, created, last_modified, attributes FROM rg_users WHERE ${where}
               ORDER BY seq LIMIT ? OFFSET ?`,
              value,
              limit,
              offset,
            ).map(toUser);
      return { total, items };
    }) as Page<UserRecord>;
  }

  /**
   * A page of a whole table in seq order: a keyset seek when an earlier page ended at `offset` and
   * nothing was deleted since (see PageCursors), otherwise OFFSET. Call inside a read transaction.
   */
  #pageAll(table: 'rg_users' | 'rg_groups', offset: number, limit: number): { total: number; rows: ResourceRow[] } {
    const cursors = this.#pages[table];
    const total = this.#value(`SELECT count(*) FROM ${table}`) as number;
    if (limit === 0 || offset >= total) return { total, rows: [] };
    // data_version changes when another connection commits; our own deletes call forget().
    const version = String(this.#value('PRAGMA data_version'));
    const after = offset === 0 ? 0 : cursors.seek(offset, version);
    const rows =
      after === undefined
        ? this.#rows<ResourceRow>(`SELECT seq, id, created, last_modified, attributes FROM ${table} ORDER BY seq LIMIT ? OFFSET ?`, limit, offset)
        : this.#rows<ResourceRow>(`SELECT seq, id, created, last_modified, attributes FROM ${table} WHERE seq > ? ORDER BY seq LIMIT ?`, after, limit);
    const last = rows.at(-1);
    if (last !== undefined && offset + rows.length < total) cursors.remember(offset + rows.length, last.seq, version);
    return { total, rows };
  }

  async *scanUsers(key?: UserKey): AsyncIterable<UserRecord> {
    const sql = `SELECT seq, id, created, last_modified, attributes FROM rg_users
                 WHERE ${USER_WHERE[key?.attr ?? 'all']} AND seq > ? ORDER BY seq LIMIT ${SCAN_BATCH}`;
    const params = key === undefined ? [] : [userKeyValue(key)];
    let after = 0;
    for (;;) {
      const rows = this.#rows<ResourceRow>(sql, ...params, after);
      for (const row of rows) yield toUser(row);
      const last = rows.at(-1);
      if (last === undefined || rows.length < SCAN_BATCH) return;
      after = last.seq;
    }
  }

  async groupsOfUsers(userIds: string[]): Promise<Map<string, GroupMembership[]>> {
    const out = new Map<string, GroupMembership[]>();
    for (const id of userIds) out.set(id, []);
    if (userIds.length === 0) return out;
    const rows = this.#rows<{ user_id: string; group_id: string; display_name: string }>(
      `SELECT m.user_id, g.id AS group_id, g.display_name FROM rg_members m JOIN rg_groups g ON g.id = m.group_id
       WHERE m.user_id IN (SELECT value FROM json_each(?)) ORDER BY g.seq`,
      JSON.stringify(userIds),
    );
    for (const r of rows) out.get(r.user_id)?.push({ groupId: r.group_id, displayName: r.display_name });
    return out;
  }

  async createUser(attributes: ScimAttributes): Promise<UserRecord> {
    const cols = userColumns(attributes);
    const json = JSON.stringify(attributes);
    const id = this.#opts.newId();
    const now = this.#opts.now();
    return this.#write(() => {
      if (this.#value('SELECT 1 FROM rg_users WHERE user_name_lc = ?', cols.userNameLc) !== undefined) {
        throw userNameTaken(cols.userName);
      }
      this.#stmt(
        `INSERT INTO rg_users (id, user_name, user_name_lc, external_id, active, created, last_modified, attributes)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
      ).run(id, cols.userName, cols.userNameLc, cols.externalId, cols.active ? 1 : 0, now, now, json);
      this.#insertEmails(id, cols);
      return {
        result: { id, created: now, lastModified: now, attributes: JSON.parse(json) as ScimAttributes },
        changes: [userChange(id, cols)],
      };
    });
  }

  #insertEmails(id: string, cols: UserColumns): void {
    const insert = this.#stmt('INSERT INTO rg_user_emails (user_id, email_lc, email) VALUES (?, ?, ?)');
    for (const e of cols.emails) insert.run(id, e.lc, e.value);
  }

  async updateUser(id: string, mutate: UserMutation): Promise<UserRecord> {
    return this.#write(() => {
      const row = this.#stmt(
        'SELECT seq, id, created, last_modified, attributes, user_name_lc FROM rg_users WHERE id = ?',
      ).get(id) as (ResourceRow & { user_name_lc: string }) | undefined;
      if (row === undefined) throw userNotFound(id);
      const next = mutate(toUser(row));
      // D11: a no-op writes nothing; a fresh copy, in case the mutation touched its argument.
      if (next === undefined) return { result: toUser(row), changes: [] };
      const cols = userColumns(next);
      if (
        cols.userNameLc !== row.user_name_lc &&
        this.#value('SELECT 1 FROM rg_users WHERE user_name_lc = ?', cols.userNameLc) !== undefined
      ) {
        throw userNameTaken(cols.userName);
      }
      const json = JSON.stringify(next);
      const now = this.#opts.now();
      this.#stmt(
        `UPDATE rg_users SET user_name = ?, user_name_lc = ?, external_id = ?, active = ?, last_modified = ?,
         attributes = ? WHERE id = ?`,
      ).run(cols.userName, cols.userNameLc, cols.externalId, cols.active ? 1 : 0, now, json, id);
      this.#stmt('DELETE FROM rg_user_emails WHERE user_id = ?').run(id);
      this.#insertEmails(id, cols);
      return {
        result: { id, created: row.created, lastModified: now, attributes: JSON.parse(json) as ScimAttributes },
        changes: [userChange(id, cols)],
      };
    });
  }

  async deleteUser(id: string): Promise<boolean> {
    return this.#write(() => {
      const groupIds = this.#rows<{ group_id: string }>('SELECT group_id FROM rg_members WHERE user_id = ?', id).map(
        (r) => r.group_id,
      );
      // D26: ON DELETE CASCADE removes the memberships and email keys with the user.
      if (this.#stmt('DELETE FROM rg_users WHERE id = ?').run(id).changes === 0) return { result: false, changes: [] };
      this.#pages.rg_users.forget(); // positions after this user move up
      const now = this.#opts.now();
      const touch = this.#stmt('UPDATE rg_groups SET last_modified = ? WHERE id = ?');
      const changes: DirectoryChange[] = [];
      for (const groupId of groupIds) {
        touch.run(now, groupId);
        changes.push({ type: 'members.removed', groupId, userIds: [id] });
      }
      changes.push({ type: 'user.deleted', id });
      return { result: true, changes };
    });
  }

  // ---- groups -----------------------------------------------------------------------------------

  async getGroup(id: string, opts: { members: boolean }): Promise<GroupRecord | undefined> {
    const row = this.#stmt('SELECT seq, id, created, last_modified, attributes FROM rg_groups WHERE id = ?').get(id) as
      | ResourceRow
      | undefined;
    if (row === undefined) return undefined;
    return toGroup(row, opts.members ? this.#membersOf(id).map(toMember) : []);
  }

  #membersOf(groupId: string): MemberRow[] {
    return this.#rows<MemberRow>(
      'SELECT group_id, user_id, display, pos FROM rg_members WHERE group_id = ? ORDER BY pos',
      groupId,
    );
  }

  /** Members of several groups in one query, each list in insertion order. */
  #membersOfMany(groupIds: string[]): Map<string, MemberRef[]> {
    const out = new Map<string, MemberRef[]>();
    for (const id of groupIds) out.set(id, []);
    if (groupIds.length === 0) return out;
    const rows = this.#rows<MemberRow>(
      `SELECT group_id, user_id, display, pos FROM rg_members
       WHERE group_id IN (SELECT value FROM json_each(?)) ORDER BY pos`,
      JSON.stringify(groupIds),
    );
    for (const r of rows) out.get(r.group_id)?.push(toMember(r));
    return out;
  }

  #withMembers(rows: ResourceRow[], members: boolean): GroupRecord[] {
    const byGroup = members ? this.#membersOfMany(rows.map((r) => r.id)) : undefined;
    return rows.map((r) => toGroup(r, byGroup?.get(r.id) ?? []));
  }

  async listGroups(opts: {
    key?: GroupKey;
    offset: number;
    limit: number;
    members: boolean;
  }): Promise<Page<GroupRecord>> {
    const { offset, limit } = pageBounds(opts.offset, opts.limit);
    return this.#tx.deferred(() => {
      if (opts.key === undefined) {
        const page = this.#pageAll('rg_groups', offset, limit);
        return { total: page.total, items: this.#withMembers(page.rows, opts.members) };
      }
      const where = GROUP_WHERE[opts.key.attr];
      const value = groupKeyValue(opts.key);
      const total = this.#value(`SELECT count(*) FROM rg_groups WHERE ${where}`, value) as number;
      if (limit === 0 || offset >= total) return { total, items: [] };
      const rows = this.#rows<ResourceRow>(
        `SELECT seq, id, created, last_modified, attributes FROM rg_groups WHERE ${where} ORDER BY seq LIMIT ? OFFSET ?`,
        value,
        limit,
        offset,
      );
      return { total, items: this.#withMembers(rows, opts.members) };
    }) as Page<GroupRecord>;
  }

  async *scanGroups(opts: { key?: GroupKey; members: boolean }): AsyncIterable<GroupRecord> {
    const sql = `SELECT seq, id, created, last_modified, attributes FROM rg_groups
                 WHERE ${GROUP_WHERE[opts.key?.attr ?? 'all']} AND seq > ? ORDER BY seq LIMIT ${SCAN_BATCH}`;
    const params = opts.key === undefined ? [] : [groupKeyValue(opts.key)];
    let after = 0;
    for (;;) {
      const rows = this.#rows<ResourceRow>(sql, ...params, after);
      for (const g of this.#withMembers(rows, opts.members)) yield g;
      const last = rows.at(-1);
      if (last === undefined || rows.length < SCAN_BATCH) return;
      after = last.seq;
    }
  }

  /** D12: throws 400 invalidValue naming the first member that is not an existing User. */
  #requireUsers(members: readonly MemberRef[]): void {
    for (const m of members) {
      if (this.#value('SELECT 1 FROM rg_users WHERE id = ?', m.value) === undefined) throw notAUser(m.value);
    }
  }

  #insertMembers(groupId: string, members: readonly MemberRef[], firstPos: number): void {
    const insert = this.#stmt('INSERT INTO rg_members (group_id, user_id, pos, display) VALUES (?, ?, ?, ?)');
    let pos = firstPos;
    for (const m of members) insert.run(groupId, m.value, pos++, m.display ?? null);
  }

  async createGroup(attributes: ScimAttributes, members: MemberRef[]): Promise<GroupRecord> {
    const cols = groupColumns(attributes);
    const wanted = normalizeMembers(members);
    const json = JSON.stringify(attributes);
    const id = this.#opts.newId();
    const now = this.#opts.now();
    return this.#write(() => {
      if (this.#value('SELECT 1 FROM rg_groups WHERE display_name_lc = ?', cols.displayNameLc) !== undefined) {
        throw displayNameTaken(cols.displayName);
      }
      this.#requireUsers(wanted);
      this.#stmt(
        `INSERT INTO rg_groups (id, display_name, display_name_lc, external_id, created, last_modified, attributes)
         VALUES (?, ?, ?, ?, ?, ?, ?)`,
      ).run(id, cols.displayName, cols.displayNameLc, cols.externalId, now, now, json);
      this.#insertMembers(id, wanted, 1);
      const changes: DirectoryChange[] = [groupChange(id, cols)];
      if (wanted.length > 0) changes.push({ type: 'members.added', groupId: id, userIds: wanted.map((m) => m.value) });
      const attrs = JSON.parse(json) as ScimAttributes;
      return { result: { id, created: now, lastModified: now, attributes: attrs, members: wanted }, changes };
    });
  }

  async updateGroup(id: string, mutate: GroupMutation): Promise<GroupRecord> {
    return this.#write(() => {
      const row = this.#stmt(
        'SELECT seq, id, created, last_modified, attributes, display_name_lc FROM rg_groups WHERE id = ?',
      ).get(id) as (ResourceRow & { display_name_lc: string }) | undefined;
      if (row === undefined) throw groupNotFound(id);
      const memberRows = this.#membersOf(id);
      const next = mutate(toGroup(row, memberRows.map(toMember)));
      if (next === undefined) return { result: toGroup(row, memberRows.map(toMember)), changes: [] };
      const cols = groupColumns(next.attributes);
      if (
        cols.displayNameLc !== row.display_name_lc &&
        this.#value('SELECT 1 FROM rg_groups WHERE display_name_lc = ?', cols.displayNameLc) !== undefined
      ) {
        throw displayNameTaken(cols.displayName);
      }
      const diff = diffMembers(memberRows.map(toMember), normalizeMembers(next.members));
      this.#requireUsers(diff.added);
      const remove = this.#stmt('DELETE FROM rg_members WHERE group_id = ? AND user_id = ?');
      for (const userId of diff.removed) remove.run(id, userId);
      const relabel = this.#stmt('UPDATE rg_members SET display = ? WHERE group_id = ? AND user_id = ?');
      for (const m of diff.relabeled) relabel.run(m.display ?? null, id, m.value);
      this.#insertMembers(id, diff.added, (memberRows.at(-1)?.pos ?? 0) + 1);
      const json = JSON.stringify(next.attributes);
      const now = this.#opts.now();
      this.#stmt(
        `UPDATE rg_groups SET display_name = ?, display_name_lc = ?, external_id = ?, last_modified = ?, attributes = ?
         WHERE id = ?`,
      ).run(cols.displayName, cols.displayNameLc, cols.externalId, now, json, id);
      const changes: DirectoryChange[] = [groupChange(id, cols)];
      if (diff.removed.length > 0) changes.push({ type: 'members.removed', groupId: id, userIds: diff.removed });
      if (diff.added.length > 0) {
        changes.push({ type: 'members.added', groupId: id, userIds: diff.added.map((m) => m.value) });
      }
      return {
        result: {
          id,
          created: row.created,
          lastModified: now,
          attributes: JSON.parse(json) as ScimAttributes,
          members: diff.next,
        },
        changes,
      };
    });
  }

  async deleteGroup(id: string): Promise<boolean> {
    return this.#write(() => {
      if (this.#stmt('DELETE FROM rg_groups WHERE id = ?').run(id).changes === 0) return { result: false, changes: [] };
      this.#pages.rg_groups.forget(); // positions after this group move up
      return { result: true, changes: [{ type: 'group.deleted', id }] };
    });
  }

  // ---- index feed -------------------------------------------------------------------------------

  async snapshot(): Promise<DirectorySnapshot> {
    // One read transaction: the four reads see the same committed state.
    return this.#tx.deferred(() => {
      const emails = new Map<string, string[]>();
      for (const r of this.#rows<{ user_id: string; email: string }>('SELECT user_id, email FROM rg_user_emails')) {
        const list = emails.get(r.user_id);
        if (list === undefined) emails.set(r.user_id, [r.email]);
        else list.push(r.email);
      }
      const users = this.#rows<{ id: string; user_name: string; active: number }>(
        'SELECT id, user_name, active FROM rg_users ORDER BY seq',
      ).map((r) => ({ id: r.id, userName: r.user_name, active: r.active === 1, emails: emails.get(r.id) ?? [] }));
      const groups = this.#rows<{ id: string; display_name: string; external_id: string | null }>(
        'SELECT id, display_name, external_id FROM rg_groups ORDER BY seq',
      ).map((r) =>
        r.external_id === null
          ? { id: r.id, displayName: r.display_name }
          : { id: r.id, displayName: r.display_name, externalId: r.external_id },
      );
      const memberships = this.#rows<{ group_id: string; user_id: string }>(
        'SELECT group_id, user_id FROM rg_members',
      ).map((r) => ({ groupId: r.group_id, userId: r.user_id }));
      return { users, groups, memberships };
    }) as DirectorySnapshot;
  }

  subscribe(listener: (changes: DirectoryChange[]) => void): () => void {
    return this.#feed.subscribe(listener);
  }
}

function toUser(row: ResourceRow): UserRecord {
  return {
    id: row.id,
    created: row.created,
    lastModified: row.last_modified,
    attributes: JSON.parse(row.attributes) as ScimAttributes,
  };
}

function toGroup(row: ResourceRow, members: MemberRef[]): GroupRecord {
  return {
    id: row.id,
    created: row.created,
    lastModified: row.last_modified,
    attributes: JSON.parse(row.attributes) as ScimAttributes,
    members,
  };
}

function toMember(row: MemberRow): MemberRef {
  return row.display === null ? { value: row.user_id } : { value: row.user_id, display: row.display };
}
