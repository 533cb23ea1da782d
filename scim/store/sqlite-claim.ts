// The one-instance rule of a SQLite directory (docs/design.md §8): the serving process holds an
// exclusive SQLite lock on `<file>-serve.lock` for its whole life, so a second `rolegate serve` on the
// same file is refused at start instead of serving a directory whose writes it would never see.
import { closeSync, openSync } from 'node:fs';
import Database from 'better-sqlite3';
import { keepForProcessLife as keep } from './sqlite-lifetime.js';
import { StoreError, StoreErrorCode } from './store-error.js';

export interface SqliteClaim {
  /** Gives the file up (on close); the operating system also drops the lock when the process dies. */
  release(): void;
}

/**
 * Claims `file` for this process. SQLite's own locking does the work: a POSIX advisory lock, held
 * while the connection is open in `locking_mode=EXCLUSIVE`, released by the kernel even on kill -9, so
 * a crashed instance never leaves a stale claim behind. Throws StoreError `STORE_IN_USE` when another
 * process (or another store in this one) holds it.
 */
export function claimSqliteDirectory(file: string): SqliteClaim {
  const path = `${file}-serve.lock`;
  closeSync(openSync(path, 'a', 0o600));
  const lock = keep(new Database(path));
  try {
    // Statements through exec(), not pragma(), so that none is left to the GC (sqlite-lifetime.ts).
    lock.exec('PRAGMA busy_timeout = 0; PRAGMA locking_mode = EXCLUSIVE');
    // The first write in EXCLUSIVE mode takes the exclusive lock and keeps it after COMMIT.
    lock.exec('BEGIN EXCLUSIVE; COMMIT');
  } catch (err) {
    lock.close();
    const code = (err as { code?: unknown } | null)?.code;
    if (typeof code === 'string' && code.startsWith('SQLITE_BUSY')) {
      throw new StoreError(
        StoreErrorCode.inUse,
        'the SQLite directory is already served by another rolegate process: a SQLite store serves one instance; use a postgres:// store for several',
        { cause: err },
      );
    }
    throw err;
  }
  return {
    release: () => {
      if (lock.open) lock.close();
    },
  };
}
