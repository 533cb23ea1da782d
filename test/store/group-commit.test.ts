// Group commit on both stores (docs/design.md §8): concurrent writes share one transaction, and so one
// durable COMMIT, instead of taking one each; a write that fails inside a shared transaction fails
// alone; each write is answered only once the transaction holding it has committed.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { afterEach, describe, expect, it } from 'vitest';
import { ScimError } from '../../scim/errors.js';
import { openStore } from '../../scim/store/open.js';
import type { DirectoryChange, DirectoryStore } from '../../scim/store/port.js';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.js';
import { tempDir, type TempDir } from '../helpers/tmp.js';
import { userAttrs } from './fixtures.js';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/**
 * SQLite: how many transactions the WAL file holds. A WAL frame whose header carries a database size
 * is the last frame of a committed transaction (sqlite.org/fileformat2.html, "WAL file format"); frames
 * count only while their salts match the header's (older ones belong to a WAL already checkpointed).
 */
function walCommits(file: string): number {
  const wal = readFileSync(`${file}-wal`);
  if (wal.length < 32) return 0;
  const pageSize = wal.readUInt32BE(8);
  const [salt1, salt2] = [wal.readUInt32BE(16), wal.readUInt32BE(20)];
  let commits = 0;
  for (let off = 32; off + 24 + pageSize <= wal.length; off += 24 + pageSize) {
    if (wal.readUInt32BE(off + 8) !== salt1 || wal.readUInt32BE(off + 12) !== salt2) break;
    if (wal.readUInt32BE(off + 4) !== 0) commits++;
  }
  return commits;
}

/**
 * PostgreSQL: how many transactions journalled writes to these users. Each write's rg_changes row
 * takes `at` from now(), the start time of the top-level transaction (savepoints included), so rows
 * of one transaction share it and rows of two transactions do not. (xmin would not do: a write in a
 * savepoint has a subtransaction's xid of its own.)
 */
async function pgTransactions(url: string, ids: string[]): Promise<number> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    const { rows } = await c.query<{ n: number }>(
      `SELECT count(DISTINCT at)::int AS n FROM rg_changes
       WHERE EXISTS (SELECT 1 FROM jsonb_array_elements(payload) e WHERE e->'user'->>'id' = ANY($1::text[]))`,
      [ids],
    );
    return rows[0]!.n;
  } finally {
    await c.end();
  }
}

/** A PostgreSQL store on a database of its own, both gone after the test. */
async function openPostgres(prefix: string): Promise<{ store: DirectoryStore; url: string }> {
  const db: TestDatabase = await createTestDatabase(prefix);
  const store = await openStore(db.url);
  cleanups.push(async () => {
    await store.close();
    await db.drop();
  });
  return { store, url: db.url };
}

interface Opened {
  store: DirectoryStore;
  /** Transactions that wrote these users (PostgreSQL) or committed since the mark (SQLite). */
  transactions(ids: string[]): Promise<number>;
  mark(): void;
  /** Whether a separate connection sees the user: it was committed. */
  visibleElsewhere(id: string): Promise<boolean>;
}

const kinds: { name: string; open(): Promise<Opened> }[] = [
  {
    name: 'sqlite',
    async open() {
      const dir: TempDir = await tempDir('rolegate-group-');
      const file = join(dir.path, 'directory.db');
      const store = await openStore(`sqlite:${file}`);
      cleanups.push(async () => {
        await store.close();
        await dir.cleanup();
      });
      let before = 0;
      return {
        store,
        mark: () => (before = walCommits(file)),
        transactions: async () => walCommits(file) - before,
        async visibleElsewhere(id) {
          const other = await openStore(`sqlite:${file}`);
          try {
            return (await other.getUser(id)) !== undefined;
          } finally {
            await other.close();
          }
        },
      };
    },
  },
  {
    name: 'postgres',
    async open() {
      const { store, url } = await openPostgres('group');
      return {
        store,
        mark: () => undefined,
        transactions: (ids) => pgTransactions(url, ids),
        async visibleElsewhere(id) {
          const c = new pg.Client({ connectionString: url });
          await c.connect();
          try {
            return ((await c.query('SELECT 1 FROM rg_users WHERE id = $1', [id])).rowCount ?? 0) === 1;
          } finally {
            await c.end();
          }
        },
      };
    },
  },
];

describe.each(kinds)('$name store', (kind) => {
  it('forty concurrent writes share one transaction (was: one transaction, and one fsync, per write)', async () => {
    const o = await kind.open();
    o.mark();
    const users = await Promise.all(Array.from({ length: 40 }, (_, i) => o.store.createUser(userAttrs(`burst${i}@corp.example`))));
    const ids = users.map((u) => u.id);
    expect(new Set(ids).size).toBe(40);
    expect(await o.transactions(ids)).toBe(1);
    // Writes that follow one another still commit one by one.
    o.mark();
    const a = await o.store.createUser(userAttrs('after1@corp.example'));
    const b = await o.store.createUser(userAttrs('after2@corp.example'));
    expect(await o.transactions([a.id, b.id])).toBe(2);
  });

  it('a write that fails inside a shared transaction fails alone; the others commit and are published in order', async () => {
    const o = await kind.open();
    const existing = await o.store.createUser(userAttrs('taken@corp.example'));
    const published: DirectoryChange[][] = [];
    o.store.subscribe((changes) => published.push(changes));
    const outcomes = await Promise.allSettled([
      o.store.createUser(userAttrs('first@corp.example')),
      o.store.createUser(userAttrs('TAKEN@corp.example')),
      // Taken by the write just before it, in the same transaction.
      o.store.createUser(userAttrs('First@corp.example')),
      o.store.updateUser('no-such-user', (c) => c.attributes),
      o.store.updateUser(existing.id, (c) => ({ ...c.attributes, active: false })),
      o.store.updateUser(existing.id, () => {
        throw new ScimError(400, 'invalidValue', 'refused by the mutation');
      }),
      o.store.createUser(userAttrs('last@corp.example')),
    ]);
    expect(outcomes.map((x) => x.status)).toEqual(['fulfilled', 'rejected', 'rejected', 'rejected', 'fulfilled', 'rejected', 'fulfilled']);
    const errors = outcomes.filter((x): x is PromiseRejectedResult => x.status === 'rejected').map((x) => x.reason as ScimError);
    expect(errors.map((e) => [e.status, e.scimType])).toEqual([[409, 'uniqueness'], [409, 'uniqueness'], [404, undefined], [400, 'invalidValue']]);
    expect(published.map((b) => b.map((c) => (c.type === 'user.upserted' ? `${c.user.userName}:${c.user.active}` : c.type)))).toEqual([
      ['first@corp.example:true'],
      ['taken@corp.example:false'],
      ['last@corp.example:true'],
    ]);
    expect((await o.store.getUser(existing.id))?.attributes.active).toBe(false);
    expect((await o.store.listUsers({ offset: 0, limit: 10 })).total).toBe(3);
  });

  it('writes of one user in one transaction each see the one before them: update, update, delete, update', async () => {
    const o = await kind.open();
    const user = await o.store.createUser(userAttrs('same@corp.example'));
    const other = await o.store.createUser(userAttrs('other@corp.example'));
    o.mark();
    const outcomes = await Promise.allSettled([
      o.store.updateUser(user.id, (c) => ({ ...c.attributes, displayName: 'first' })),
      o.store.updateUser(other.id, (c) => ({ ...c.attributes, active: false })),
      // Sees the first update: it was written earlier in the same transaction.
      o.store.updateUser(user.id, (c) => ({ ...c.attributes, title: `after ${String(c.attributes.displayName)}` })),
      o.store.deleteUser(user.id),
      o.store.updateUser(user.id, (c) => ({ ...c.attributes, active: false })),
      o.store.updateUser(other.id, (c) => ({ ...c.attributes, title: `still ${String(c.attributes.active)}` })),
      // An id from a URL is quoted into the batch's first statement: any text is just a missing user.
      o.store.updateUser("it's \\ gone'); DROP TABLE rg_users; --", (c) => c.attributes),
    ]);
    expect(outcomes.map((x) => x.status)).toEqual(['fulfilled', 'fulfilled', 'fulfilled', 'fulfilled', 'rejected', 'fulfilled', 'rejected']);
    expect(((outcomes[6] as PromiseRejectedResult).reason as ScimError).status).toBe(404);
    const value = (i: number) => (outcomes[i] as PromiseFulfilledResult<{ attributes: Record<string, unknown> }>).value;
    expect(value(2).attributes.title).toBe('after first');
    expect(value(5).attributes.title).toBe('still false');
    expect(((outcomes[4] as PromiseRejectedResult).reason as ScimError).status).toBe(404);
    expect(await o.store.getUser(user.id)).toBeUndefined();
    expect((await o.store.getUser(other.id))?.attributes).toMatchObject({ active: false, title: 'still false' });
    // All six in one transaction (PostgreSQL counts the two creates as well).
    expect(await o.transactions([user.id, other.id])).toBe(kind.name === 'postgres' ? 3 : 1);
  });

  it('a failed write rolled back alone leaves the next write of the same user its real row', async () => {
    const o = await kind.open();
    const user = await o.store.createUser(userAttrs('again@corp.example'));
    await o.store.createUser(userAttrs('holder@corp.example'));
    const outcomes = await Promise.allSettled([
      o.store.updateUser(user.id, (c) => ({ ...c.attributes, displayName: 'kept' })),
      // 409: the name is taken; rolled back to its savepoint, the batch runs on.
      o.store.updateUser(user.id, (c) => ({ ...c.attributes, userName: 'holder@corp.example', displayName: 'lost' })),
      o.store.updateUser(user.id, (c) => ({ ...c.attributes, title: `after ${String(c.attributes.displayName)}` })),
    ]);
    expect(outcomes.map((x) => x.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    expect((await o.store.getUser(user.id))?.attributes).toMatchObject({ userName: 'again@corp.example', displayName: 'kept', title: 'after kept' });
  });

  it('a write is answered only when another connection can already see it (committed)', async () => {
    const o = await kind.open();
    const seen = await Promise.all(
      Array.from({ length: 10 }, (_, i) => o.store.createUser(userAttrs(`seen${i}@corp.example`)).then((u) => o.visibleElsewhere(u.id))),
    );
    expect(seen).toEqual(Array.from({ length: 10 }, () => true));
  });
});

describe('postgres store, bulk deprovisioning', () => {
  // Regression: 200 concurrent deactivations on PostgreSQL took over 1 s in about a third of the
  // benchmark's runs: each PATCH read its row and wrote it in two round trips of its own inside the
  // batch, and with the machine busy ending sessions each round trip came to about 7 ms.
  it('a batch of 100 deactivations is two statements (was: two per write, then three)', async () => {
    const { store, url } = await openPostgres('prefetch');
    const users = await Promise.all(Array.from({ length: 100 }, (_, i) => store.createUser(userAttrs(`bulk${i}@corp.example`))));
    // Every statement the store's connections send, counted at the driver.
    const query = pg.Client.prototype.query;
    let statements = 0;
    pg.Client.prototype.query = function (this: pg.Client, ...args: unknown[]) {
      statements++;
      return (query as (...a: unknown[]) => unknown).apply(this, args);
    } as typeof query;
    let updated;
    try {
      updated = await Promise.all(users.map((u) => store.updateUser(u.id, (c) => ({ ...c.attributes, active: false }))));
    } finally {
      pg.Client.prototype.query = query;
    }
    expect(updated.map((u) => u.attributes.active)).toEqual(users.map(() => false));
    for (const u of users) expect((await store.getUser(u.id))?.attributes.active).toBe(false);
    expect(await pgTransactions(url, users.map((u) => u.id))).toBe(2); // the creates' and the updates'
    // Open, take the write lock and read the 100 rows; write the 100 rows, journal and commit.
    expect(statements).toBe(2);
  });

  it('held-back updates that PostgreSQL refuses in the commit’s round trip fail alone; the batch’s other writes commit', async () => {
    const { store, url } = await openPostgres('refused');
    const user = await store.createUser(userAttrs('kept.name@corp.example'));
    // A refusal only PostgreSQL knows of, raised when the held-back UPDATE reaches it.
    const c = new pg.Client({ connectionString: url });
    await c.connect();
    await c.query(`CREATE FUNCTION refuse_name() RETURNS trigger LANGUAGE plpgsql AS $$
                   BEGIN IF NEW.user_name = 'refused@corp.example' THEN RAISE EXCEPTION 'refused by a trigger'; END IF; RETURN NEW; END $$`);
    await c.query('CREATE TRIGGER refuse_name BEFORE UPDATE ON rg_users FOR EACH ROW EXECUTE FUNCTION refuse_name()');
    await c.end();
    const published: DirectoryChange[][] = [];
    store.subscribe((changes) => published.push(changes));
    // The update last, so its UPDATE is held back to the batch's last round trip, with the journal.
    const outcomes = await Promise.allSettled([
      store.createUser(userAttrs('first@corp.example')),
      store.createUser(userAttrs('second@corp.example')),
      store.createUser(userAttrs('third@corp.example')),
      store.updateUser(user.id, (cur) => ({ ...cur.attributes, userName: 'refused@corp.example' })),
    ]);
    expect(outcomes.map((o) => o.status)).toEqual(['fulfilled', 'fulfilled', 'fulfilled', 'rejected']);
    expect(String((outcomes[3] as PromiseRejectedResult).reason)).toContain('refused by a trigger');
    expect((await store.getUser(user.id))?.attributes.userName).toBe('kept.name@corp.example');
    expect(published.flat().map((ch) => (ch.type === 'user.upserted' ? ch.user.userName : ch.type))).toEqual(['first@corp.example', 'second@corp.example', 'third@corp.example']);
    // And the refused update alone: its failure is its answer.
    await expect(store.updateUser(user.id, (cur) => ({ ...cur.attributes, userName: 'refused@corp.example' }))).rejects.toThrow('refused by a trigger');
    expect((await store.getUser(user.id))?.attributes.userName).toBe('kept.name@corp.example');
  });

  it('held-back updates reach the statements after them: a user renamed, then a new user given its old name', async () => {
    const { store, url } = await openPostgres('holdback');
    const user = await store.createUser(userAttrs('old@corp.example'));
    const [renamed, created, clash] = await Promise.allSettled([
      store.updateUser(user.id, (c) => ({ ...c.attributes, userName: 'new@corp.example' })),
      store.createUser(userAttrs('old@corp.example')),
      store.createUser(userAttrs('NEW@corp.example')),
    ]);
    expect(renamed.status).toBe('fulfilled');
    expect(created.status).toBe('fulfilled');
    expect(((clash as PromiseRejectedResult).reason as ScimError).status).toBe(409);
    expect((await store.listUsers({ offset: 0, limit: 10 })).items.map((u) => u.attributes.userName)).toEqual(['new@corp.example', 'old@corp.example']);
  });

  it("updates written together keep each user's emails: added, re-cased and dropped per user", async () => {
    const { store, url } = await openPostgres('emails');
    const mail = (...values: string[]) => ({ emails: values.map((value) => ({ value })) });
    const a = await store.createUser(userAttrs('a@corp.example', mail('a@corp.example', 'a.old@corp.example')));
    const b = await store.createUser(userAttrs('b@corp.example', mail('b@corp.example')));
    await Promise.all([
      store.updateUser(a.id, (c) => ({ ...c.attributes, ...mail('A@corp.example', 'a.new@corp.example') })),
      store.updateUser(b.id, (c) => ({ ...c.attributes, active: false, ...mail('b@corp.example', 'shared@corp.example') })),
    ]);
    const byEmail = async (value: string) =>
      (await store.listUsers({ key: { attr: 'emails.value', value }, offset: 0, limit: 10 })).items.map((u) => u.attributes.userName);
    expect(await byEmail('a.old@corp.example')).toEqual([]);
    expect(await byEmail('a.new@corp.example')).toEqual(['a@corp.example']);
    expect(await byEmail('a@corp.example')).toEqual(['a@corp.example']);
    expect(await byEmail('shared@corp.example')).toEqual(['b@corp.example']);
    const c = new pg.Client({ connectionString: url });
    await c.connect();
    try {
      const { rows } = await c.query<{ email: string }>('SELECT email FROM rg_user_emails WHERE user_id = $1 ORDER BY email', [a.id]);
      expect(rows.map((r) => r.email)).toEqual(['A@corp.example', 'a.new@corp.example']);
    } finally {
      await c.end();
    }
  });
});
