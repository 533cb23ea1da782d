// Per-test databases on the run's PostgreSQL cluster (started once by global-setup.ts).
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { inject } from 'vitest';
import type { PgInfo } from './pg-info.js';

export type { PgInfo } from './pg-info.js';

/** The run's cluster: host, port, superuser URL and the CA that signed its certificate. */
export function pgInfo(): PgInfo {
  return inject('pg');
}

/** A URL for `database` as `user` with TLS verify-full against the run's CA. */
export function pgUrl(opts: { database: string; user?: string; password?: string }): string {
  const info = pgInfo();
  const user = encodeURIComponent(opts.user ?? info.superuser);
  const password = encodeURIComponent(opts.password ?? info.password);
  return `postgres://${user}:${password}@${info.host}:${info.port}/${encodeURIComponent(opts.database)}?sslmode=verify-full&sslrootcert=${encodeURIComponent(info.caCertPath)}`;
}

/** Runs SQL as the superuser on `database` (default `postgres`). */
export async function superuserQuery<T extends pg.QueryResultRow = pg.QueryResultRow>(sql: string, params: unknown[] = [], database = 'postgres'): Promise<pg.QueryResult<T>> {
  const client = new pg.Client({ connectionString: pgUrl({ database }) });
  await client.connect();
  try {
    return await client.query<T>(sql, params);
  } finally {
    await client.end();
  }
}

export interface TestDatabase {
  name: string;
  /** Superuser URL of the new database, ready for `openStore` and `pg`. */
  url: string;
  drop(): Promise<void>;
}

/** A fresh, uniquely named database; `drop()` removes it even with open connections. */
export async function createTestDatabase(prefix = 't'): Promise<TestDatabase> {
  const name = `${prefix.replace(/[^a-z0-9_]/gi, '_').toLowerCase()}_${randomBytes(5).toString('hex')}`;
  await superuserQuery(`CREATE DATABASE "${name}"`);
  return {
    name,
    url: pgUrl({ database: name }),
    drop: async () => {
      await superuserQuery(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
    },
  };
}
