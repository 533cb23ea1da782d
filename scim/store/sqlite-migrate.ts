// Opening a SQLite directory file with the durability pragmas, and applying pending migrations.
import { setTimeout as sleep } from 'node:timers/promises';
import Database from 'better-sqlite3';
import { MIGRATIONS, MIGRATIONS_TABLE, pendingMigrations } from './migrations.js';
import { keepForProcessLife as keep } from './sqlite-lifetime.js';

/** How long a writer waits for another process's lock (migrations at start, a second instance). */
const BUSY_TIMEOUT_MS = 10_000;

/**
 * Opens `path` (or `:memory:`) in WAL mode with synchronous=FULL: a write is fsynced to the WAL
 * before COMMIT returns, so an acknowledged write survives kill -9 (and, on honest disks, power loss).
 * Several processes may open a fresh file at once: see the retry below.
 */
export async function openSqliteDatabase(path: string): Promise<Database.Database> {
  const deadline = Date.now() + BUSY_TIMEOUT_MS;
  for (;;) {
    try {
      return openOnce(path);
    } catch (err) {
      // Switching a file to WAL needs an exclusive lock and SQLite answers SQLITE_BUSY at once,
      // without calling the busy handler, when another process holds any lock at that moment.
      if (!isBusy(err) || Date.now() > deadline) throw err;
      await sleep(10 + Math.floor(Math.random() * 40));
    }
  }
}

function openOnce(path: string): Database.Database {
  const db = keep(new Database(path));
  try {
    pragma(db, `busy_timeout = ${BUSY_TIMEOUT_MS}`);
    if (path !== ':memory:') {
      const mode = pragma(db, 'journal_mode = WAL');
      if (String(mode).toLowerCase() !== 'wal') throw new Error(`could not switch the directory file to WAL (journal_mode is ${String(mode)})`);
    }
    pragma(db, 'synchronous = FULL');
    pragma(db, 'foreign_keys = ON');
    migrateSqlite(db);
    return db;
  } catch (err) {
    db.close();
    throw err;
  }
}

/** Runs `PRAGMA <setting>` and returns its value, if any; not db.pragma(), whose statement would be left to the GC. */
function pragma(db: Database.Database, setting: string): unknown {
  const stmt = keep(db.prepare(`PRAGMA ${setting}`));
  return stmt.reader ? stmt.pluck().get() : stmt.run();
}

function isBusy(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && (code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED'));
}

/**
 * Applies pending migrations in one BEGIN IMMEDIATE transaction: a second process doing the same at
 * the same time waits for the write lock, then sees the versions already applied and does nothing.
 */
export function migrateSqlite(db: Database.Database): number[] {
  const apply = db.transaction((): number[] => {
    db.exec(MIGRATIONS_TABLE.sqlite);
    const applied = keep(db.prepare('SELECT version FROM rg_schema_migrations')).pluck().all() as number[];
    const done: number[] = [];
    for (const m of pendingMigrations(applied, MIGRATIONS)) {
      for (const sql of m.sqlite) db.exec(sql);
      keep(db.prepare('INSERT INTO rg_schema_migrations (version, name, applied_at) VALUES (?, ?, ?)')).run(
        m.version,
        m.name,
        new Date().toISOString(),
      );
      done.push(m.version);
    }
    return done;
  });
  return apply.immediate();
}
