// Versioned migrations: applied at start, a no-op the second time, safe from several processes at once,
// and refused when the database is newer than the code.
import Database from 'better-sqlite3';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { afterEach, describe, expect, it } from 'vitest';
import { MIGRATIONS, pendingMigrations, type Migration } from '../../scim/store/migrations.js';
import { openStore } from '../../scim/store/open.js';
import { migrateSqlite } from '../../scim/store/sqlite-migrate.js';
import { StoreError } from '../../scim/store/store-error.js';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.js';
import { tempDir, type TempDir } from '../helpers/tmp.js';
import { builtOpenStoreUrl, exitOf, onLines, startNode, writeScript } from './child.js';
import { rejectionOf, userAttrs } from './fixtures.js';

const latest = Math.max(...MIGRATIONS.map((m) => m.version));
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function scratch(): Promise<TempDir> {
  const dir = await tempDir('rolegate-store-');
  cleanups.push(() => dir.cleanup());
  return dir;
}

async function database(): Promise<TestDatabase> {
  const db = await createTestDatabase('migr');
  cleanups.push(() => db.drop());
  return db;
}

async function pgQuery<T extends pg.QueryResultRow>(url: string, sql: string, params: unknown[] = []): Promise<T[]> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    return (await c.query<T>(sql, params)).rows;
  } finally {
    await c.end();
  }
}

describe('pendingMigrations', () => {
  const all: Migration[] = [
    { version: 1, name: 'a', sqlite: [], postgres: [] },
    { version: 2, name: 'b', sqlite: [], postgres: [] },
    { version: 3, name: 'c', sqlite: [], postgres: [] },
  ];
  it.each([
    [[], [1, 2, 3]],
    [[1], [2, 3]],
    [[1, 2, 3], []],
    [[2], [1, 3]],
  ])('applied %j -> pending %j', (applied, pending) => {
    expect(pendingMigrations(applied, all).map((m) => m.version)).toEqual(pending);
  });

  it('refuses a schema newer than the code with STORE_SCHEMA_TOO_NEW', () => {
    expect(() => pendingMigrations([1, 4], all)).toThrow(StoreError);
    expect(() => pendingMigrations([1, 4], all)).toThrow(/version 4 is newer/);
  });

  it('the shipped list has unique, increasing versions, each with statements for at least one dialect', () => {
    const versions = MIGRATIONS.map((m) => m.version);
    expect(versions).toEqual([...versions].sort((a, b) => a - b));
    expect(new Set(versions).size).toBe(versions.length);
    // The directory tables exist in both dialects; what only several instances share (the cluster
    // tables) exists only on PostgreSQL.
    expect(MIGRATIONS[0]!.sqlite.length).toBeGreaterThan(0);
    for (const m of MIGRATIONS) expect(m.postgres.length).toBeGreaterThan(0);
  });
});

describe('SQLite migrations', () => {
  it('run once; reopening keeps data and applies nothing', async () => {
    const dir = await scratch();
    const file = join(dir.path, 'nested', 'dir', 'directory.db');
    const s1 = await openStore(`sqlite:${file}`);
    const u = await s1.createUser(userAttrs('keep@corp.example'));
    await s1.close();
    const s2 = await openStore(`sqlite:${file}`);
    expect(await s2.getUser(u.id)).toEqual(u);
    await s2.close();

    // Personal data: a new file and the folders created for it are private to the service user.
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(statSync(join(dir.path, 'nested')).mode & 0o077).toBe(0);
    const db = new Database(file);
    try {
      expect(db.prepare('SELECT version FROM rg_schema_migrations ORDER BY version').pluck().all()).toEqual(
        MIGRATIONS.map((m) => m.version),
      );
      expect(migrateSqlite(db)).toEqual([]);
      expect(db.pragma('journal_mode', { simple: true })).toBe('wal');
    } finally {
      db.close();
    }
  });

  it('refuses a file migrated by a newer rolegate', async () => {
    const dir = await scratch();
    const file = join(dir.path, 'd.db');
    await (await openStore(`sqlite:${file}`)).close();
    const db = new Database(file);
    db.prepare("INSERT INTO rg_schema_migrations (version, name, applied_at) VALUES (?, 'future', 'x')").run(latest + 1);
    db.close();
    const err = await rejectionOf(openStore(`sqlite:${file}`));
    expect(err).toBeInstanceOf(StoreError);
    expect((err as StoreError).code).toBe('STORE_SCHEMA_TOO_NEW');
  });

  it('three processes opening fresh files at once all succeed, migrating once (SQLITE_BUSY on the WAL switch)', async () => {
    const dir = await scratch();
    const rounds = 10;
    const files = Array.from({ length: rounds }, (_, i) => join(dir.path, `shared-${i}.db`));
    // Each process opens file i at startAt + i * 150 ms, spinning through the last milliseconds so
    // the three openings (a few ms of DDL and fsync) overlap; ten rounds make a miss unlikely.
    const script = await writeScript(
      dir.path,
      'open-at.mjs',
      `import { openStore } from ${JSON.stringify(builtOpenStoreUrl())};
const [name, startAt, ...files] = process.argv.slice(2);
for (const [i, file] of files.entries()) {
  const at = Number(startAt) + i * 150;
  await new Promise((r) => setTimeout(r, Math.max(0, at - Date.now() - 20)));
  while (Date.now() < at) {}
  const store = await openStore('sqlite:' + file);
  const u = await store.createUser({ userName: name, active: true });
  process.stdout.write(i + ' ' + u.id + '\\n');
  await store.close();
}
`,
    );
    const startAt = String(Date.now() + 2_000);
    const ids: string[][] = files.map(() => []);
    const runs = ['p1', 'p2', 'p3'].map((name) => {
      const child = startNode(script, [name, startAt, ...files]);
      onLines(child, (line) => {
        const [i, id] = line.split(' ');
        ids[Number(i)]?.push(id ?? '');
      });
      return exitOf(child);
    });
    const exits = await Promise.all(runs);
    for (const e of exits) expect(e, e.stderr).toMatchObject({ code: 0, signal: null });
    for (const [i, file] of files.entries()) {
      expect(ids[i]).toHaveLength(3);
      const store = await openStore(`sqlite:${file}`);
      const users = await store.listUsers({ offset: 0, limit: 10 });
      await store.close();
      expect(users.items.map((u) => u.id).sort()).toEqual([...ids[i]!].sort());
      const db = new Database(file, { readonly: true });
      try {
        expect(db.prepare('SELECT count(*) FROM rg_schema_migrations').pluck().get()).toBe(MIGRATIONS.length);
      } finally {
        db.close();
      }
    }
  }, 60_000);
});

describe('PostgreSQL migrations', () => {
  it('run once; reopening keeps data and applies nothing', async () => {
    const db = await database();
    const s1 = await openStore(db.url);
    const u = await s1.createUser(userAttrs('keep@corp.example'));
    await s1.close();
    const s2 = await openStore(db.url);
    expect(await s2.getUser(u.id)).toEqual(u);
    await s2.close();
    const rows = await pgQuery<{ version: number }>(db.url, 'SELECT version FROM rg_schema_migrations ORDER BY version');
    expect(rows.map((r) => r.version)).toEqual(MIGRATIONS.map((m) => m.version));
  });

  it('four instances opening a fresh database at once all succeed, migrating once', async () => {
    const db = await database();
    const settled = await Promise.allSettled([1, 2, 3, 4].map(() => openStore(db.url)));
    const stores = settled.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
    try {
      expect(settled.filter((r) => r.status === 'rejected')).toEqual([]);
      // Every instance works on the same tables.
      const users = await Promise.all(stores.map((s, i) => s.createUser(userAttrs(`inst${i}`))));
      for (const s of stores) expect((await s.listUsers({ offset: 0, limit: 10 })).total).toBe(4);
      expect(await stores[0]!.getUser(users[3]!.id)).toEqual(users[3]);
    } finally {
      await Promise.all(stores.map((s) => s.close()));
    }
    const rows = await pgQuery<{ n: number }>(db.url, 'SELECT count(*)::int AS n FROM rg_schema_migrations');
    expect(rows[0]?.n).toBe(MIGRATIONS.length);
  });

  it('refuses a database migrated by a newer rolegate', async () => {
    const db = await database();
    await (await openStore(db.url)).close();
    await pgQuery(db.url, "INSERT INTO rg_schema_migrations (version, name) VALUES ($1, 'future')", [latest + 1]);
    const err = await rejectionOf(openStore(db.url));
    expect((err as StoreError).code).toBe('STORE_SCHEMA_TOO_NEW');
  });

  it('keeps every table under the rg_ prefix so it can share a database', async () => {
    const db = await database();
    await (await openStore(db.url)).close();
    const rows = await pgQuery<{ tablename: string }>(
      db.url,
      "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename",
    );
    expect(rows.map((r) => r.tablename).every((t) => t.startsWith('rg_'))).toBe(true);
  });
});
