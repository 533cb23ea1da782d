// The shared directory store on PostgreSQL: several rolegate instances, one database (rg_* tables).
import pg from 'pg';
import { loadAnnouncementKeys, sealWrites, type AnnouncementKeys } from '../../lib/announcement-seal.js';
import { checkout } from '../../lib/pg-checkout.js';
import { ScimError } from '../errors.js';
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
import { resolveStoreOptions, type JournalledWrite, type ResolvedStoreOptions, type StoreOptions } from './options.js';
import { PageCursors } from './page-cursors.js';
import { migratePostgres } from './postgres-migrate.js';
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
import { PostgresPersonalRoles } from './personal-roles-postgres.js';
import { CHANGED_UNDER_WRITE, changedUnderWrite, LOCKED_USER_COLUMNS, LockedUsers, lockUser, textArray, UserUpdates, type LockedUserRow } from './postgres-batch.js';

/**
 * Transaction-scoped advisory lock taken first by every write transaction (MIGRATION_LOCK_KEY + 1).
 * Writes from all instances are serialized, so: read-modify-write (PATCH) never loses an update,
 * uniqueness pre-checks cannot race, and `seq` follows commit order (docs/design.md §8, "Why seq is
 * commit order"): PostgreSQL releases a transaction's locks only after its commit is visible to new
 * snapshots, so the next writer takes the lock, and draws its seq, only after every earlier write is
 * visible. Concurrent writes share one transaction (group commit), so the lock costs one round trip
 * per batch, not per write.
 */
const WRITE_LOCK_KEY = '8246126309927617638';
const SCAN_BATCH = 500;
/**
 * The NOTIFY channel instances LISTEN on. The payload is `<HMAC hex> {"seq","origin","seqs","sealed"}`,
 * a batch's change lists sealed and signed with their seqs (cluster/announcement.ts reads it), or
 * `{"seq","origin"}` of its last row alone.
 */
export const CHANGE_CHANNEL = 'rolegate_directory';
/**
 * The longest announcement text that is sent signed: a NOTIFY payload must be shorter than 8,000
 * bytes, and the HMAC in hex and a space come before the text. About 30 deactivations fit.
 */
const ANNOUNCEMENT_MAX_BYTES = 7_900;

// WHERE fragments per key with the key value as $1: constants chosen by `attr`, never built from input.
const USER_WHERE: Record<UserKey['attr'], string> = {
  id: 'id = $1',
  userName: 'user_name_lc = $1',
  externalId: 'external_id = $1',
  'emails.value': 'id IN (SELECT user_id FROM rg_user_emails WHERE email_lc = $1)',
};
const GROUP_WHERE: Record<GroupKey['attr'], string> = {
  id: 'id = $1',
  displayName: 'display_name_lc = $1',
  externalId: 'external_id = $1',
  'members.value': 'id IN (SELECT group_id FROM rg_members WHERE user_id = $1)',
};

/** A key lookup as SQL: a constant WHERE fragment with the (folded) key value as $1. */
interface Filter {
  where: string;
  value: string;
}

function userFilter(key: UserKey | undefined): Filter | undefined {
  return key === undefined ? undefined : { where: USER_WHERE[key.attr], value: userKeyValue(key) };
}

function groupFilter(key: GroupKey | undefined): Filter | undefined {
  return key === undefined ? undefined : { where: GROUP_WHERE[key.attr], value: groupKeyValue(key) };
}

interface ResourceRow {
  seq: string;
  id: string;
  created: string;
  last_modified: string;
  /** `json` columns arrive parsed. */
  attributes: ScimAttributes;
}
interface MemberRow {
  group_id: string;
  user_id: string;
  display: string | null;
  pos: string;
}

/**
 * One write of a batch. `user` names the existing rg_users row it writes (update and delete), so the
 * batch reads and locks all of them in one statement before the writes run (see #begin). An update
 * of a user sends its UPDATE through `updates`, which may hold it back and send it with the batch's
 * other user updates; every other write is preceded by sending those (it may read what they wrote).
 */
interface Write<T> {
  readonly user?: string;
  readonly kind: 'user update' | 'other';
  run(c: pg.PoolClient, batch: BatchWrites): Promise<{ result: T; changes: DirectoryChange[] }>;
}
interface BatchWrites {
  readonly locked: LockedUsers;
  readonly updates: UserUpdates;
}
/** One write of a batch run: committed with its rg_changes row (none for a no-op), or failed. */
type Done = { ok: true; result: unknown; changes: DirectoryChange[]; journalled: JournalledWrite | undefined } | { ok: false; error: unknown };

/** Connects a pool (the URL may carry sslmode/sslrootcert), runs migrations, and returns the store. */
export async function openPostgresStore(url: string, opts?: StoreOptions): Promise<DirectoryStore> {
  const resolved = resolveStoreOptions(opts);
  // Connections stay a minute after a burst: a PostgreSQL login (a backend forked, SCRAM's PBKDF2 on
  // both sides) costs more than the write it serves, and identity providers push in waves.
  const pool = new pg.Pool({ connectionString: url, application_name: 'rolegate-directory', idleTimeoutMillis: 60_000, connectionTimeoutMillis: 10_000 });
  // Without a listener, an idle connection that the server drops would crash the process.
  pool.on('error', (err) => resolved.onBackgroundError(err));
  let keys: AnnouncementKeys | undefined;
  try {
    await migratePostgres(pool);
    keys = await loadAnnouncementKeys(pool);
  } catch (err) {
    await pool.end().catch(() => undefined);
    throw err;
  }
  return new PostgresStore(pool, resolved, keys);
}

class PostgresStore implements DirectoryStore {
  readonly kind = 'postgres' as const;
  readonly personalRoles: PostgresPersonalRoles;
  readonly #pool: pg.Pool;
  readonly #opts: ResolvedStoreOptions;
  readonly #feed: ChangeFeed;
  /** Concurrent writes share a transaction; batches run one at a time, so subscribers hear them in commit order. */
  readonly #group = new GroupCommit<Write<unknown>>((batch) => this.#commitBatch(batch));
  /** Tags this process's rg_changes rows and their NOTIFY: its cluster node skips its own (StoreOptions.origin). */
  readonly #origin: string;
  /** Seal the writes an announcement carries (undefined: the store has no key; announcements say "look"). */
  readonly #announcementKeys: AnnouncementKeys | undefined;
  // Keyset paging of the unfiltered lists (see PageCursors). The version is max(seq) of rg_changes,
  // which every committed write of every instance moves, read in the same snapshot as the page.
  readonly #pages = { rg_users: new PageCursors(), rg_groups: new PageCursors() };
  // The row count each table had at a version, so that paging does not count every row every page.
  readonly #totals = { rg_users: { version: '', total: 0 }, rg_groups: { version: '', total: 0 } };
  /** The groupsOfUsers query being gathered in this turn of the event loop, if any. */
  #groupLookups: { ids: Set<string>; result: Promise<Map<string, GroupMembership[]>> } | undefined;

  constructor(pool: pg.Pool, opts: ResolvedStoreOptions, announcementKeys: AnnouncementKeys | undefined) {
    this.#pool = pool;
    this.#opts = opts;
    this.#origin = opts.origin;
    this.#announcementKeys = announcementKeys;
    this.#feed = new ChangeFeed(opts.onListenerError);
    this.personalRoles = new PostgresPersonalRoles(pool);
  }

  /** A read on the pool; a store that cannot be reached is a 503 for the SCIM client (storeUnavailable). */
  async #query<R extends pg.QueryResultRow>(text: string, params?: unknown[]): Promise<pg.QueryResult<R>> {
    try {
      return await this.#pool.query<R>(text, params);
    } catch (err) {
      throw storeUnavailable(err) ?? err;
    }
  }

  /** Queues a write for the next group commit; resolves once its transaction committed durably. */
  #write<T>(run: Write<T>['run'], declared?: Pick<Write<T>, 'user' | 'kind'>): Promise<T> {
    return this.#group.submit<T>({ run, kind: declared?.kind ?? 'other', user: declared?.user } as Write<unknown>);
  }

  /**
   * One transaction under the global write lock for a batch of writes; each committed write is
   * journalled in rg_changes (the log every instance follows, docs/design.md §8) in the same
   * transaction. After COMMIT local subscribers hear each write in order, and `afterCommit` (an
   * instance's follower applying the log) is awaited before any write of the batch is answered.
   *
   * Optimistic: the batch first runs without savepoints (two round trips less per write). If a write
   * fails (a 409, a 404), nothing is committed and the batch runs again with a savepoint per write,
   * so the failed one is rolled back alone; mutations are pure and may run again (port.ts).
   */
  async #commitBatch(batch: readonly Write<unknown>[]): Promise<WriteOutcome[]> {
    let done: Done[] | undefined;
    try {
      done = (await this.#runBatch(batch, false)) ?? (await this.#runBatch(batch, true));
    } catch (err) {
      throw storeUnavailable(err) ?? err;
    }
    // Unreachable: a run with savepoints returns every write's outcome or throws.
    if (done === undefined) throw new Error('a batch run with savepoints returned no outcomes');
    const written: JournalledWrite[] = [];
    for (const d of done) {
      if (!d.ok) continue;
      this.#feed.publish(d.changes);
      if (d.journalled !== undefined) written.push(d.journalled);
    }
    const position = written.at(-1)?.seq;
    if (position !== undefined) {
      // Committed is committed: a follower that cannot apply the log now still answers the write
      // (and refuses logins until it caught up, docs/design.md §8).
      await this.#opts.afterCommit(position, written).catch((err: unknown) => this.#opts.onBackgroundError(err));
    }
    return done.map((d) => (d.ok ? { ok: true, result: d.result } : d));
  }

  /**
   * Runs and commits `batch`. Without `isolate`, the first failing write rolls the whole transaction
   * back and the result is undefined (run it again isolated), unless the batch is that write alone,
   * whose failure is then its outcome. Throws when the transaction itself fails (nothing committed).
   */
  async #runBatch(batch: readonly Write<unknown>[], isolate: boolean): Promise<Done[] | undefined> {
    const client = await checkout(this.#pool);
    let broken = false;
    const done: Done[] = [];
    try {
      try {
        const shared: BatchWrites = { locked: await this.#begin(client, batch), updates: new UserUpdates(!isolate) };
        for (const write of batch) {
          if (isolate) await client.query('SAVEPOINT rg_write');
          try {
            if (write.kind !== 'user update') await shared.updates.flush(client);
            const out = await write.run(client, shared);
            if (isolate) await client.query('RELEASE SAVEPOINT rg_write');
            done.push({ ok: true, result: out.result, changes: out.changes, journalled: undefined });
          } catch (err) {
            if (!isolate) {
              await client.query('ROLLBACK');
              return batch.length === 1 ? [{ ok: false, error: mapPgError(err) }] : undefined;
            }
            await client.query('ROLLBACK TO SAVEPOINT rg_write');
            done.push({ ok: false, error: mapPgError(err) });
          }
        }
        // The held-back updates go in the journal's round trip; when they fail, nothing is
        // committed and the batch runs again isolated (or the lone write fails), as for any write.
        const updates = shared.updates.take();
        try {
          await this.#journalAndCommit(client, done, updates);
        } catch (err) {
          if (isolate || updates === undefined || !isStatementError(err)) throw err;
          await client.query('ROLLBACK');
          return batch.length === 1 ? [{ ok: false, error: mapPgError(err) }] : undefined;
        }
        return done;
      } catch (err) {
        await client.query('ROLLBACK').catch(() => {
          broken = true;
        });
        throw mapPgError(err);
      }
    } finally {
      client.done(broken);
    }
  }

  /**
   * Opens the batch's transaction, takes the write lock and reads, locked, every user row the batch's
   * writes declared: one round trip, where reading each row in its own write cost one round trip per
   * write. Under a bulk deprovisioning push (hundreds of PATCHes in one batch) those round trips were
   * the batch's time, and with the machine busy ending the sessions of the batch before, they came to
   * over a second (docs/design.md §8, "Group commit").
   */
  async #begin(client: pg.PoolClient, batch: readonly Write<unknown>[]): Promise<LockedUsers> {
    // A simple-protocol query may hold several statements, so its values are quoted literals.
    const begin = `BEGIN; SELECT pg_advisory_xact_lock(${WRITE_LOCK_KEY})`;
    const ids = [...new Set(batch.flatMap((w) => (w.user === undefined ? [] : [w.user])))];
    if (ids.length === 0) {
      await client.query(begin);
      return new LockedUsers([]);
    }
    const results = (await client.query(
      `${begin}; SELECT ${LOCKED_USER_COLUMNS} FROM rg_users WHERE id = ANY(${textArray(ids)}) FOR UPDATE`,
    )) as unknown as pg.QueryResult<LockedUserRow>[];
    return new LockedUsers(results[2]?.rows ?? []);
  }

  /**
   * Appends the batch's committed writes to rg_changes (one row each, in batch order, so seq order is
   * the order they were applied), announces them and commits: one round trip for the whole batch, as a
   * simple query of several statements (so the payloads are quoted literals). Sets each write's row as
   * a follower reads it (its seq, and its payload parsed from the JSON sent). NOTIFY inside the
   * transaction is delivered at COMMIT and never for a rolled-back write; one per batch. The
   * announcement carries the batch's change lists, sealed and signed (ANNOUNCEMENT_MAX_BYTES,
   * docs/design.md §8, "Signed announcements"), so the other instances apply them without reading
   * the log; a batch too large for a NOTIFY, or a store without the key, announces only its last seq
   * and is read.
   */
  async #journalAndCommit(client: pg.PoolClient, done: Done[], updates: string | undefined): Promise<void> {
    const logged = done.filter((d): d is Extract<Done, { ok: true }> => d.ok && d.changes.length > 0);
    const before = updates === undefined ? '' : `${updates}; `;
    if (logged.length === 0) {
      await client.query(`${before}COMMIT`);
      return;
    }
    const origin = pg.escapeLiteral(this.#origin);
    const texts = logged.map((d) => JSON.stringify(d.changes));
    const payloads = texts.map((t) => pg.escapeLiteral(t)).join(', ');
    const sealed = this.#sealed(texts);
    // "Look" only: the batch's last seq. Signed: the HMAC, SHA-256(opad || SHA-256(ipad || text)) from
    // the pads the key table holds (migration 4), over the text that binds the sealed writes to their
    // seqs; "look" when the key row is gone or the text came out longer than estimated.
    const look = `json_build_object('seq', b.last, 'origin', ${origin})::text`;
    const notice =
      sealed === undefined
        ? look
        : `CASE WHEN k.ipad IS NOT NULL AND octet_length(b.text) <= ${ANNOUNCEMENT_MAX_BYTES}
             THEN encode(sha256(k.opad || sha256(k.ipad || convert_to(b.text, 'UTF8'))), 'hex') || ' ' || b.text
             ELSE ${look} END`;
    // nextval runs as the ordered rows reach the INSERT, so ascending seq is batch order.
    const results = (await client.query(
      `${before}WITH logged AS (
         INSERT INTO rg_changes (origin, payload)
         SELECT ${origin}, p.payload FROM unnest(ARRAY[${payloads}]::jsonb[]) WITH ORDINALITY AS p(payload, ord)
         ORDER BY p.ord
         RETURNING seq),
       positions AS (SELECT array_agg(seq::text ORDER BY seq) AS seqs, max(seq)::text AS last FROM logged),
       batch AS (
         SELECT seqs, last, json_build_object('seq', last, 'origin', ${origin}, 'seqs', to_json(seqs), 'sealed', ${sealed === undefined ? 'NULL' : pg.escapeLiteral(sealed)}::text)::text AS text
         FROM positions)
       SELECT b.seqs, pg_notify('${CHANGE_CHANNEL}', ${notice})
       FROM batch b LEFT JOIN rg_notify_key k ON true; COMMIT`,
    )) as unknown as pg.QueryResult<{ seqs: string[] }>[];
    const seqs = results[before === '' ? 0 : 1]?.rows[0]?.seqs ?? [];
    if (seqs.length !== logged.length) throw new Error(`the change log returned ${seqs.length} positions for ${logged.length} writes`);
    logged.forEach((d, i) => (d.journalled = { seq: seqs[i]!, payload: JSON.parse(texts[i]!) as unknown }));
  }

  /**
   * The batch's change lists sealed for its announcement, or undefined when the store has no key or
   * they would not fit in one NOTIFY beside their seqs (then the announcement says only "look").
   */
  #sealed(texts: readonly string[]): string | undefined {
    if (this.#announcementKeys === undefined) return undefined;
    const sealed = sealWrites(this.#announcementKeys, texts);
    // Each seq is at most 19 digits, quoted, with a comma; the origin and the keys stay under 200 bytes.
    return sealed.length + 22 * texts.length + 200 + this.#origin.length <= ANNOUNCEMENT_MAX_BYTES ? sealed : undefined;
  }

  async ping(): Promise<void> {
    // Not #query: the raw error is the readiness reason.
    await this.#pool.query('SELECT 1');
  }

  async close(): Promise<void> {
    // Let queued writes settle before the pool goes away.
    await this.#group.idle();
    await this.#pool.end();
  }

  // ---- users ------------------------------------------------------------------------------------

  async getUser(id: string): Promise<UserRecord | undefined> {
    const { rows } = await this.#query<ResourceRow>(
      'SELECT seq, id, created, last_modified, attributes FROM rg_users WHERE id = $1',
      [id],
    );
    const row = rows[0];
    return row === undefined ? undefined : toUser(row);
  }

  async listUsers(opts: { key?: UserKey; offset: number; limit: number }): Promise<Page<UserRecord>> {
    const page = await this.#page<ResourceRow>('rg_users', userFilter(opts.key), opts);
    return { total: page.total, items: page.items.map(toUser) };
  }

  /** One page and the total; `table` and the filter's SQL are constants of this file. */
  async #page<R extends pg.QueryResultRow>(
    table: 'rg_users' | 'rg_groups',
    filter: Filter | undefined,
    opts: { offset: number; limit: number },
  ): Promise<Page<R>> {
    const { offset, limit } = pageBounds(opts.offset, opts.limit);
    if (filter === undefined) return this.#pageAll<R>(table, offset, limit);
    if (limit === 0) return { total: await this.#count(table, filter), items: [] };
    // A key matches few rows (`userName eq`, Okta's and Entra's most frequent request): one statement
    // returns the page and, as a window count over every match, the total, in one round trip.
    const res = await this.#query<R & { total: number }>(
      `SELECT seq, id, created, last_modified, attributes, count(*) OVER ()::int AS total FROM ${table}
       WHERE ${filter.where} ORDER BY seq LIMIT $2 OFFSET $3`,
      [filter.value, limit, offset],
    );
    const first = res.rows[0];
    // No row: either nothing matches (offset 0) or the page starts past the last match.
    if (first === undefined) return { total: offset === 0 ? 0 : await this.#count(table, filter), items: [] };
    const total = first.total;
    for (const row of res.rows) delete (row as Partial<typeof row>).total;
    return { total, items: res.rows };
  }

  async #count(table: 'rg_users' | 'rg_groups', filter: Filter): Promise<number> {
    const res = await this.#query<{ n: number }>(`SELECT count(*)::int AS n FROM ${table} WHERE ${filter.where}`, [filter.value]);
    return res.rows[0]?.n ?? 0;
  }

  /**
   * A page of a whole table in seq order and the table's row count, in one statement (one snapshot):
   * a keyset seek from the cursor an earlier page left at `offset`, and the count an earlier page
   * saw, when no write has committed since; otherwise OFFSET and count(*), both O(table).
   */
  async #pageAll<R extends pg.QueryResultRow>(table: 'rg_users' | 'rg_groups', offset: number, limit: number): Promise<Page<R>> {
    const cursors = this.#pages[table];
    const counted = this.#totals[table];
    // Whether the cursor and the count still hold is only known inside the statement, so it carries
    // both choices; PostgreSQL evaluates only the CASE branch taken (the unused count never runs).
    const known = offset === 0 ? undefined : cursors.peek(offset);
    const version = '(SELECT coalesce(max(seq), 0)::text FROM rg_changes)';
    const res = await this.#query<{ version: string; total: number; seq: string | null }>(
      `WITH page AS (
         SELECT seq, id, created, last_modified, attributes FROM ${table}
         WHERE seq > (CASE WHEN ${version} = $1 THEN $2::bigint ELSE 0 END)
         ORDER BY seq LIMIT $3 OFFSET (CASE WHEN ${version} = $1 THEN 0 ELSE $4::bigint END)
       )
       SELECT ${version} AS version,
              CASE WHEN ${version} = $5 THEN $6::int ELSE (SELECT count(*)::int FROM ${table}) END AS total,
              page.*
       FROM (SELECT 1) AS one LEFT JOIN page ON true ORDER BY page.seq`,
      [known?.version ?? '', known?.seq ?? 0, limit, offset, counted.version, counted.total],
    );
    // One row even for an empty page (the LEFT JOIN), its page columns null.
    const { version: now, total, seq } = res.rows[0]!;
    this.#totals[table] = { version: now, total };
    const rows = seq === null ? [] : res.rows;
    const last = rows.at(-1);
    if (last !== undefined && rows.length === limit) cursors.remember(offset + limit, Number(last.seq), now);
    for (const row of rows) {
      delete (row as Partial<typeof row>).version;
      delete (row as Partial<typeof row>).total;
    }
    return { total, items: rows as unknown as R[] };
  }

  async *scanUsers(key?: UserKey): AsyncIterable<UserRecord> {
    for await (const rows of this.#scan<ResourceRow>('rg_users', userFilter(key))) {
      for (const row of rows) yield toUser(row);
    }
  }

  /** Keyset pagination on seq: each batch is one short query, no cursor or connection held between. */
  async *#scan<R extends ResourceRow>(table: 'rg_users' | 'rg_groups', filter: Filter | undefined): AsyncIterable<R[]> {
    const params = filter === undefined ? [] : [filter.value];
    const n = params.length;
    const sql = `SELECT seq, id, created, last_modified, attributes FROM ${table} WHERE ${filter?.where ?? 'TRUE'}
                 AND seq > $${n + 1}::bigint ORDER BY seq LIMIT ${SCAN_BATCH}`;
    let after = '0';
    for (;;) {
      const { rows } = await this.#query<R>(sql, [...params, after]);
      if (rows.length > 0) yield rows;
      const last = rows.at(-1);
      if (last === undefined || rows.length < SCAN_BATCH) return;
      after = last.seq;
    }
  }

  /**
   * Lookups asked for in the same turn of the event loop share one query: every answer of a bulk push
   * (hundreds of concurrent PATCHes) asks for one user's groups (D24), and one round trip for all of
   * them beats hundreds competing for the pool's connections.
   */
  async groupsOfUsers(userIds: string[]): Promise<Map<string, GroupMembership[]>> {
    const out = new Map<string, GroupMembership[]>();
    if (userIds.length === 0) return out;
    let pending = this.#groupLookups;
    if (pending === undefined) {
      const ids = new Set<string>();
      const result = new Promise<void>((r) => setImmediate(r)).then(() => {
        // Later lookups start the next query.
        this.#groupLookups = undefined;
        return this.#queryGroupsOfUsers([...ids]);
      });
      pending = this.#groupLookups = { ids, result };
    }
    for (const id of userIds) pending.ids.add(id);
    const all = await pending.result;
    // Copies: callers sharing one query must not share arrays.
    for (const id of userIds) out.set(id, [...(all.get(id) ?? [])]);
    return out;
  }

  async #queryGroupsOfUsers(userIds: string[]): Promise<Map<string, GroupMembership[]>> {
    const out = new Map<string, GroupMembership[]>();
    const { rows } = await this.#query<{ user_id: string; group_id: string; display_name: string }>(
      `SELECT m.user_id, g.id AS group_id, g.display_name FROM rg_members m JOIN rg_groups g ON g.id = m.group_id
       WHERE m.user_id = ANY($1::text[]) ORDER BY g.seq`,
      [userIds],
    );
    for (const r of rows) {
      const list = out.get(r.user_id);
      const g = { groupId: r.group_id, displayName: r.display_name };
      if (list === undefined) out.set(r.user_id, [g]);
      else list.push(g);
    }
    return out;
  }

  async createUser(attributes: ScimAttributes): Promise<UserRecord> {
    const cols = userColumns(attributes);
    const json = JSON.stringify(attributes);
    const id = this.#opts.newId();
    const now = this.#opts.now();
    return this.#write(async (c) => {
      // One round trip for the uniqueness check, the user and its email keys (initial provisioning
      // pushes every user of the company one by one).
      const { rows } = await c.query<{ n: number }>(
        `WITH u AS (
           INSERT INTO rg_users (id, user_name, user_name_lc, external_id, active, created, last_modified, attributes)
           VALUES ($1, $2, $3, $4, $5, $6, $6, $7::json)
           ON CONFLICT (user_name_lc) DO NOTHING
           RETURNING id
         ), e AS (
           INSERT INTO rg_user_emails (user_id, email_lc, email)
           SELECT u.id, e.lc, e.v FROM u, unnest($8::text[], $9::text[]) AS e(lc, v)
         )
         SELECT count(*)::int AS n FROM u`,
        [
          id,
          cols.userName,
          cols.userNameLc,
          cols.externalId,
          cols.active,
          now,
          json,
          cols.emails.map((e) => e.lc),
          cols.emails.map((e) => e.value),
        ],
      );
      if (rows[0]?.n !== 1) throw userNameTaken(cols.userName);
      return {
        result: { id, created: now, lastModified: now, attributes: JSON.parse(json) as ScimAttributes },
        changes: [userChange(id, cols)],
      };
    });
  }

  async updateUser(id: string, mutate: UserMutation): Promise<UserRecord> {
    return this.#write(
      async (c, { locked, updates }) => {
        let row = locked.take(id);
        if (row === undefined) {
          // Another write of this user earlier in the batch: its held-back update goes first.
          await updates.flush(c);
          row = await lockUser(c, id);
        }
        if (row === undefined) throw userNotFound(id);
        const json0 = JSON.stringify(row.attributes);
        const next = mutate(toUser(row));
        // D11: a no-op writes nothing; re-parsed in case the mutation touched its argument.
        if (next === undefined) {
          return { result: toUser({ ...row, attributes: JSON.parse(json0) as ScimAttributes }), changes: [] };
        }
        const cols = userColumns(next);
        if (cols.userNameLc !== row.user_name_lc) {
          await updates.flush(c);
          await requireFreeUserName(c, cols);
        }
        const json = JSON.stringify(next);
        const now = this.#opts.now();
        await updates.write(c, { id, version: row.version, cols, lastModified: now, json });
        return {
          result: { id, created: row.created, lastModified: now, attributes: JSON.parse(json) as ScimAttributes },
          changes: [userChange(id, cols)],
        };
      },
      { kind: 'user update', user: id },
    );
  }

  async deleteUser(id: string): Promise<boolean> {
    return this.#write(async (c, { locked }) => {
      // Declared (below) only so that a later write of this user in the batch reads the row again.
      locked.take(id);
      const removed = await c.query<{ group_id: string }>(
        'DELETE FROM rg_members WHERE user_id = $1 RETURNING group_id',
        [id],
      );
      const deleted = await c.query('DELETE FROM rg_users WHERE id = $1', [id]);
      if (deleted.rowCount === 0) return { result: false, changes: [] };
      const groupIds = removed.rows.map((r) => r.group_id);
      const changes: DirectoryChange[] = [];
      if (groupIds.length > 0) {
        // The groups' members changed (D26), so their lastModified moves too.
        await c.query('UPDATE rg_groups SET last_modified = $1 WHERE id = ANY($2::text[])', [
          this.#opts.now(),
          groupIds,
        ]);
        for (const groupId of groupIds) changes.push({ type: 'members.removed', groupId, userIds: [id] });
      }
      changes.push({ type: 'user.deleted', id });
      return { result: true, changes };
    }, { kind: 'other', user: id });
  }

  // ---- groups -----------------------------------------------------------------------------------

  async getGroup(id: string, opts: { members: boolean }): Promise<GroupRecord | undefined> {
    const { rows } = await this.#query<ResourceRow>(
      'SELECT seq, id, created, last_modified, attributes FROM rg_groups WHERE id = $1',
      [id],
    );
    const row = rows[0];
    if (row === undefined) return undefined;
    return toGroup(row, opts.members ? (await membersOf(this.#pool, id)).map(toMember) : []);
  }

  async #withMembers(rows: ResourceRow[], members: boolean): Promise<GroupRecord[]> {
    if (!members || rows.length === 0) return rows.map((r) => toGroup(r, []));
    const byGroup = new Map<string, MemberRef[]>();
    for (const r of rows) byGroup.set(r.id, []);
    const { rows: memberRows } = await this.#query<MemberRow>(
      'SELECT group_id, user_id, display, pos FROM rg_members WHERE group_id = ANY($1::text[]) ORDER BY pos',
      [rows.map((r) => r.id)],
    );
    for (const m of memberRows) byGroup.get(m.group_id)?.push(toMember(m));
    return rows.map((r) => toGroup(r, byGroup.get(r.id) ?? []));
  }

  async listGroups(opts: {
    key?: GroupKey;
    offset: number;
    limit: number;
    members: boolean;
  }): Promise<Page<GroupRecord>> {
    const page = await this.#page<ResourceRow>('rg_groups', groupFilter(opts.key), opts);
    return { total: page.total, items: await this.#withMembers(page.items, opts.members) };
  }

  async *scanGroups(opts: { key?: GroupKey; members: boolean }): AsyncIterable<GroupRecord> {
    for await (const rows of this.#scan<ResourceRow>('rg_groups', groupFilter(opts.key))) {
      for (const g of await this.#withMembers(rows, opts.members)) yield g;
    }
  }

  async createGroup(attributes: ScimAttributes, members: MemberRef[]): Promise<GroupRecord> {
    const cols = groupColumns(attributes);
    const wanted = normalizeMembers(members);
    const json = JSON.stringify(attributes);
    const id = this.#opts.newId();
    const now = this.#opts.now();
    return this.#write(async (c) => {
      await requireFreeDisplayName(c, cols.displayNameLc, cols.displayName);
      await requireUsers(c, wanted);
      await c.query(
        `INSERT INTO rg_groups (id, display_name, display_name_lc, external_id, created, last_modified, attributes)
         VALUES ($1, $2, $3, $4, $5, $5, $6::json)`,
        [id, cols.displayName, cols.displayNameLc, cols.externalId, now, json],
      );
      await insertMembers(c, id, wanted, 0);
      const changes: DirectoryChange[] = [groupChange(id, cols)];
      if (wanted.length > 0) changes.push({ type: 'members.added', groupId: id, userIds: wanted.map((m) => m.value) });
      const attrs = JSON.parse(json) as ScimAttributes;
      return { result: { id, created: now, lastModified: now, attributes: attrs, members: wanted }, changes };
    });
  }

  async updateGroup(id: string, mutate: GroupMutation): Promise<GroupRecord> {
    return this.#write(async (c) => {
      const { rows } = await c.query<ResourceRow & { display_name_lc: string }>(
        'SELECT seq, id, created, last_modified, attributes, display_name_lc FROM rg_groups WHERE id = $1 FOR UPDATE',
        [id],
      );
      const row = rows[0];
      if (row === undefined) throw groupNotFound(id);
      const json0 = JSON.stringify(row.attributes);
      const memberRows = await membersOf(c, id);
      const next = mutate(toGroup(row, memberRows.map(toMember)));
      if (next === undefined) {
        return {
          result: toGroup({ ...row, attributes: JSON.parse(json0) as ScimAttributes }, memberRows.map(toMember)),
          changes: [],
        };
      }
      const cols = groupColumns(next.attributes);
      if (cols.displayNameLc !== row.display_name_lc) {
        await requireFreeDisplayName(c, cols.displayNameLc, cols.displayName);
      }
      const diff = diffMembers(memberRows.map(toMember), normalizeMembers(next.members));
      await requireUsers(c, diff.added);
      if (diff.removed.length > 0) {
        await c.query('DELETE FROM rg_members WHERE group_id = $1 AND user_id = ANY($2::text[])', [id, diff.removed]);
      }
      if (diff.relabeled.length > 0) {
        await c.query(
          `UPDATE rg_members AS m SET display = r.display
           FROM unnest($2::text[], $3::text[]) AS r(user_id, display)
           WHERE m.group_id = $1 AND m.user_id = r.user_id`,
          [id, diff.relabeled.map((m) => m.value), diff.relabeled.map((m) => m.display ?? null)],
        );
      }
      await insertMembers(c, id, diff.added, Number(memberRows.at(-1)?.pos ?? 0));
      const json = JSON.stringify(next.attributes);
      const now = this.#opts.now();
      await c.query(
        `UPDATE rg_groups SET display_name = $2, display_name_lc = $3, external_id = $4, last_modified = $5,
         attributes = $6::json WHERE id = $1`,
        [id, cols.displayName, cols.displayNameLc, cols.externalId, now, json],
      );
      const changes: DirectoryChange[] = [groupChange(id, cols)];
      if (diff.removed.length > 0) changes.push({ type: 'members.removed', groupId: id, userIds: diff.removed });
      if (diff.added.length > 0) {
        changes.push({ type: 'members.added', groupId: id, userIds: diff.added.map((m) => m.value) });
      }
      const attrs = JSON.parse(json) as ScimAttributes;
      const result = { id, created: row.created, lastModified: now, attributes: attrs, members: diff.next };
      return { result, changes };
    });
  }

  async deleteGroup(id: string): Promise<boolean> {
    return this.#write(async (c) => {
      const { rowCount } = await c.query('DELETE FROM rg_groups WHERE id = $1', [id]);
      if (rowCount === 0) return { result: false, changes: [] };
      return { result: true, changes: [{ type: 'group.deleted', id }] };
    });
  }

  // ---- index feed -------------------------------------------------------------------------------

  async snapshot(): Promise<DirectorySnapshot> {
    const c = await checkout(this.#pool);
    let broken = false;
    try {
      // REPEATABLE READ: the four reads see one committed state.
      await c.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
      try {
        const emailRows = await c.query<{ user_id: string; email: string }>(
          'SELECT user_id, email FROM rg_user_emails',
        );
        const userRows = await c.query<{ id: string; user_name: string; active: boolean }>(
          'SELECT id, user_name, active FROM rg_users ORDER BY seq',
        );
        const groupRows = await c.query<{ id: string; display_name: string; external_id: string | null }>(
          'SELECT id, display_name, external_id FROM rg_groups ORDER BY seq',
        );
        const memberRows = await c.query<{ group_id: string; user_id: string }>(
          'SELECT group_id, user_id FROM rg_members',
        );
        // The log position the four reads reflect: every write up to it is in them and none after,
        // because writes become visible in seq order (see WRITE_LOCK_KEY). Pruned rows count too.
        const at = await c.query<{ position: string }>(
          `SELECT greatest((SELECT coalesce(max(seq), 0) FROM rg_changes),
                           (SELECT coalesce(max(pruned_through), 0) FROM rg_log_horizon))::text AS position`,
        );
        await c.query('COMMIT');
        const emails = new Map<string, string[]>();
        for (const r of emailRows.rows) {
          const list = emails.get(r.user_id);
          if (list === undefined) emails.set(r.user_id, [r.email]);
          else list.push(r.email);
        }
        return {
          users: userRows.rows.map((r) => ({
            id: r.id,
            userName: r.user_name,
            active: r.active,
            emails: emails.get(r.id) ?? [],
          })),
          groups: groupRows.rows.map((r) =>
            r.external_id === null
              ? { id: r.id, displayName: r.display_name }
              : { id: r.id, displayName: r.display_name, externalId: r.external_id },
          ),
          memberships: memberRows.rows.map((r) => ({ groupId: r.group_id, userId: r.user_id })),
          position: at.rows[0]?.position ?? '0',
        };
      } catch (err) {
        await c.query('ROLLBACK').catch(() => {
          broken = true;
        });
        throw err;
      }
    } finally {
      c.done(broken);
    }
  }

  subscribe(listener: (changes: DirectoryChange[]) => void): () => void {
    return this.#feed.subscribe(listener);
  }
}

async function requireFreeUserName(c: pg.PoolClient, cols: UserColumns): Promise<void> {
  const { rowCount } = await c.query('SELECT 1 FROM rg_users WHERE user_name_lc = $1', [cols.userNameLc]);
  if (rowCount !== 0) throw userNameTaken(cols.userName);
}

async function requireFreeDisplayName(c: pg.PoolClient, lc: string, displayName: string): Promise<void> {
  const { rowCount } = await c.query('SELECT 1 FROM rg_groups WHERE display_name_lc = $1', [lc]);
  if (rowCount !== 0) throw displayNameTaken(displayName);
}

/** D12: one query for any number of members; names the first (in request order) that is not a User. */
async function requireUsers(c: pg.PoolClient, members: readonly MemberRef[]): Promise<void> {
  if (members.length === 0) return;
  const { rows } = await c.query<{ id: string }>(
    `SELECT a.id FROM unnest($1::text[]) WITH ORDINALITY AS a(id, ord)
     WHERE NOT EXISTS (SELECT 1 FROM rg_users u WHERE u.id = a.id) ORDER BY a.ord LIMIT 1`,
    [members.map((m) => m.value)],
  );
  const missing = rows[0];
  if (missing !== undefined) throw notAUser(missing.id);
}

async function insertEmails(c: pg.PoolClient, id: string, cols: UserColumns): Promise<void> {
  if (cols.emails.length === 0) return;
  await c.query(
    `INSERT INTO rg_user_emails (user_id, email_lc, email)
     SELECT $1, e.lc, e.v FROM unnest($2::text[], $3::text[]) AS e(lc, v)`,
    [id, cols.emails.map((e) => e.lc), cols.emails.map((e) => e.value)],
  );
}

/** One INSERT for the whole batch (10,000 members in one statement); positions continue after `lastPos`. */
async function insertMembers(
  c: pg.PoolClient,
  groupId: string,
  members: readonly MemberRef[],
  lastPos: number,
): Promise<void> {
  if (members.length === 0) return;
  await c.query(
    `INSERT INTO rg_members (group_id, user_id, pos, display)
     SELECT $1, m.user_id, $2::bigint + m.ord, m.display
     FROM unnest($3::text[], $4::text[]) WITH ORDINALITY AS m(user_id, display, ord)`,
    [groupId, lastPos, members.map((m) => m.value), members.map((m) => m.display ?? null)],
  );
}

async function membersOf(q: pg.Pool | pg.PoolClient, groupId: string): Promise<MemberRow[]> {
  const { rows } = await q.query<MemberRow>(
    'SELECT group_id, user_id, display, pos FROM rg_members WHERE group_id = $1 ORDER BY pos',
    [groupId],
  );
  return rows;
}

/**
 * Constraint violations that slip past the pre-checks (a writer that did not take the lock) become the
 * same peer errors; the SQL text never reaches the peer. Anything else stays internal (500).
 */
function mapPgError(err: unknown): unknown {
  if (err instanceof ScimError || !(err instanceof pg.DatabaseError)) return err;
  if (err.code === CHANGED_UNDER_WRITE) return Object.assign(changedUnderWrite(), { cause: err });
  if (err.code === '23505' && err.constraint === 'rg_users_user_name_lc_key') {
    return new ScimError(409, 'uniqueness', 'userName is already taken', { cause: err });
  }
  if (err.code === '23505' && err.constraint === 'rg_groups_display_name_lc_key') {
    return new ScimError(409, 'uniqueness', 'displayName is already taken', { cause: err });
  }
  if (err.code === '23503' && err.constraint === 'rg_members_user_id_fkey') {
    return new ScimError(400, 'invalidValue', 'member is not a User', { cause: err });
  }
  return err;
}

/** A statement PostgreSQL refused, on a connection that is still there (not a lost store). */
function isStatementError(err: unknown): boolean {
  return err instanceof pg.DatabaseError && storeUnavailable(err) === undefined;
}

/**
 * A store that cannot be reached or went away mid-transaction (a restart, a failover, a terminated
 * backend): nothing of the batch was committed, so the write is answered 503 and the identity provider
 * retries it. The cause stays in the log, never in the body.
 */
function storeUnavailable(err: unknown): ScimError | undefined {
  const lost =
    err instanceof pg.DatabaseError
      ? /^(08|57P)/.test(err.code ?? '')
      : err instanceof Error &&
        (/^(ECONNREFUSED|ECONNRESET|ETIMEDOUT|EPIPE|EHOSTUNREACH|ENOTFOUND)$/.test((err as NodeJS.ErrnoException).code ?? '') ||
          /Connection terminated|not queryable|timeout exceeded when trying to connect/.test(err.message));
  return lost ? new ScimError(503, undefined, 'The directory store is unavailable; retry the request', { cause: err }) : undefined;
}

function toUser(row: ResourceRow): UserRecord {
  return { id: row.id, created: row.created, lastModified: row.last_modified, attributes: row.attributes };
}

function toGroup(row: ResourceRow, members: MemberRef[]): GroupRecord {
  return { id: row.id, created: row.created, lastModified: row.last_modified, attributes: row.attributes, members };
}

function toMember(row: MemberRow): MemberRef {
  return row.display === null ? { value: row.user_id } : { value: row.user_id, display: row.display };
}
