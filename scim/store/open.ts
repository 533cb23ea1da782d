// Chooses the store adapter from `directory.store`: sqlite:PATH (embedded default) or a PostgreSQL URL.
import type { DirectoryStore } from './port.js';
import type { StoreOptions } from './options.js';
import { openPostgresStore } from './postgres.js';
import { openSqliteStore } from './sqlite.js';
import { StoreError, StoreErrorCode } from './store-error.js';

export type { StoreOptions } from './options.js';

/**
 * Opens the directory store named by `url` and applies pending migrations before resolving.
 * `sqlite:PATH` is relative to the working directory (its folder is created); `sqlite::memory:` is
 * an in-memory store for tests; `postgres://` and `postgresql://` URLs may carry sslmode/sslrootcert.
 * Throws StoreError `STORE_URL_INVALID` for anything else (the message never repeats the URL,
 * which may contain a password).
 */
export async function openStore(url: string, opts?: StoreOptions): Promise<DirectoryStore> {
  if (url.startsWith('sqlite:')) {
    const path = url.slice('sqlite:'.length);
    if (path.length === 0) throw invalidUrl();
    return openSqliteStore(path, opts);
  }
  if (url.startsWith('postgres://') || url.startsWith('postgresql://')) {
    return openPostgresStore(url, opts);
  }
  throw invalidUrl();
}

function invalidUrl(): StoreError {
  return new StoreError(
    StoreErrorCode.urlInvalid,
    'directory.store must be sqlite:PATH, sqlite::memory: or a postgres:// / postgresql:// URL',
  );
}
