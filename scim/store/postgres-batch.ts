// What the writes of one PostgreSQL group-commit batch share: the user rows read for all of them up
// front, and their user updates sent as one statement (docs/design.md §8, "Group commit").
import pg from 'pg';
import type { ScimAttributes } from '../model.js';
import type { UserColumns } from './derive.js';

const { escapeLiteral } = pg;

/** A user row as a write reads it under lock; `version` is its xmin, which any later update of the row changes. */
export interface LockedUserRow {
  seq: string;
  id: string;
  created: string;
  last_modified: string;
  /** `json` columns arrive parsed. */
  attributes: ScimAttributes;
  user_name_lc: string;
  version: string;
}

/** What a write reads of a user row before changing it. */
export const LOCKED_USER_COLUMNS = 'xmin::text AS version, seq, id, created, last_modified, attributes, user_name_lc';

/** Reads and locks one user row (for a write that was not handed its row by the batch). */
export async function lockUser(c: pg.PoolClient, id: string): Promise<LockedUserRow | undefined> {
  const { rows } = await c.query<LockedUserRow>(`SELECT ${LOCKED_USER_COLUMNS} FROM rg_users WHERE id = $1 FOR UPDATE`, [id]);
  return rows[0];
}

/**
 * The user rows a batch read and locked before its writes ran. A row is handed out only to the first
 * write of the batch that declared it: a later one must read it again, since the batch's earlier
 * writes may have changed it (nothing else can, under the write lock).
 */
export class LockedUsers {
  readonly #rows: Map<string, LockedUserRow>;

  constructor(rows: readonly LockedUserRow[]) {
    this.#rows = new Map(rows.map((r) => [r.id, r]));
  }

  /** The row as read at the batch's start, once; undefined when it was not read or was taken already. */
  take(id: string): LockedUserRow | undefined {
    const row = this.#rows.get(id);
    this.#rows.delete(id);
    return row;
  }
}

/** A user row's new values, and the version of the row they were computed from. */
export interface UserUpdate {
  id: string;
  version: string;
  cols: UserColumns;
  lastModified: string;
  /** The attributes as JSON text, kept as sent (the column is json, not jsonb). */
  json: string;
}

/**
 * The user updates of a batch. In a batch's first run (no savepoints) they are held back and sent
 * together, in one statement, before the batch's next other statement, or with its journal and
 * COMMIT when they are the batch's last: a bulk deprovisioning is hundreds of updates, and one round
 * trip each was most of a batch's time when the machine was busy; a lone deactivation's own round
 * trip was a third of its write. In a run with a savepoint per write each is written at once, inside
 * its savepoint, so a failing one is rolled back alone.
 */
export class UserUpdates {
  readonly #holdBack: boolean;
  #pending: UserUpdate[] = [];

  constructor(holdBack: boolean) {
    this.#holdBack = holdBack;
  }

  async write(c: pg.PoolClient, update: UserUpdate): Promise<void> {
    if (this.#holdBack) this.#pending.push(update);
    else await c.query(writeUsersSql([update]));
  }

  /** Sends the held-back updates; called before any other statement of the batch. */
  async flush(c: pg.PoolClient): Promise<void> {
    const sql = this.take();
    if (sql !== undefined) await c.query(sql);
  }

  /** The held-back updates as one statement (writeUsersSql), for the caller to send; undefined when none. */
  take(): string | undefined {
    if (this.#pending.length === 0) return undefined;
    const updates = this.#pending;
    this.#pending = [];
    return writeUsersSql(updates);
  }
}

/** SQLSTATE of the error writeUsersSql's statement raises when a row changed under its update. */
export const CHANGED_UNDER_WRITE = '22012';

/** The error to report for CHANGED_UNDER_WRITE. */
export function changedUnderWrite(): Error {
  return new Error('a user row changed under its write within one batch (a write did not declare its user)');
}

/**
 * One statement that writes user rows and brings their emails in line (those no longer listed
 * removed, the rest inserted or re-cased; emailKeys de-duplicated them, and no user appears twice,
 * since a second write of a user reads it first and so flushes the first). Each row must still be the
 * version its update was computed from: a write that changed it earlier in the batch without declaring
 * it would otherwise be overwritten, so then the statement fails (division by zero, CHANGED_UNDER_WRITE,
 * on a value only known once the rows are updated, so never folded at planning) and with it the
 * transaction. Values are quoted literals, not parameters: the text can then share a simple query
 * with the batch's journal and COMMIT.
 */
export function writeUsersSql(updates: readonly UserUpdate[]): string {
  const emails = updates.flatMap((u) => u.cols.emails.map((e) => ({ id: u.id, lc: e.lc, value: e.value })));
  return `WITH input AS (
       SELECT * FROM unnest(${textArray(updates.map((u) => u.id))}, ${textArray(updates.map((u) => u.version))}, ${textArray(updates.map((u) => u.cols.userName))},
                            ${textArray(updates.map((u) => u.cols.userNameLc))}, ${textArray(updates.map((u) => u.cols.externalId))},
                            ${booleans(updates.map((u) => u.cols.active))}, ${textArray(updates.map((u) => u.lastModified))}, ${textArray(updates.map((u) => u.json))})
         AS i(id, version, user_name, user_name_lc, external_id, active, last_modified, attributes)),
     updated AS (
       UPDATE rg_users u SET user_name = i.user_name, user_name_lc = i.user_name_lc, external_id = i.external_id,
         active = i.active, last_modified = i.last_modified, attributes = i.attributes::json
       FROM input i WHERE u.id = i.id AND u.xmin = i.version::xid RETURNING u.id),
     listed AS (SELECT * FROM unnest(${textArray(emails.map((e) => e.id))}, ${textArray(emails.map((e) => e.lc))}, ${textArray(emails.map((e) => e.value))}) AS e(user_id, lc, v)),
     dropped AS (
       DELETE FROM rg_user_emails d WHERE d.user_id IN (SELECT id FROM updated)
         AND NOT EXISTS (SELECT 1 FROM listed l WHERE l.user_id = d.user_id AND l.lc = d.email_lc)),
     kept AS (
       INSERT INTO rg_user_emails (user_id, email_lc, email)
       SELECT l.user_id, l.lc, l.v FROM listed l WHERE l.user_id IN (SELECT id FROM updated)
       ON CONFLICT (user_id, email_lc) DO UPDATE SET email = EXCLUDED.email)
     SELECT 1 / (count(*) = ${updates.length})::int AS all_written FROM updated`;
}

/** A text[] literal of quoted values (NULL for null), for a statement that cannot take parameters. */
export function textArray(values: readonly (string | null | undefined)[]): string {
  return `ARRAY[${values.map((v) => (v === null || v === undefined ? 'NULL' : escapeLiteral(v))).join(', ')}]::text[]`;
}

function booleans(values: readonly boolean[]): string {
  return `ARRAY[${values.map((v) => (v ? 'true' : 'false')).join(', ')}]::boolean[]`;
}
