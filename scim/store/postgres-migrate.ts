// Applying pending migrations to a PostgreSQL directory database, safely from several instances at once.
import type pg from 'pg';
import { checkout } from '../../lib/pg-checkout.js';
import { MIGRATIONS, MIGRATIONS_TABLE, pendingMigrations } from './migrations.js';

/**
 * Session-level advisory lock held while migrating ('rolegate' in ASCII read as a bigint). Advisory
 * locks are per database, so two directories in two databases of one cluster do not contend.
 */
export const MIGRATION_LOCK_KEY = '8246126309927617637';

/**
 * Takes pg_advisory_lock, creates the bookkeeping table, applies each pending migration in its own
 * transaction and records it. A second instance starting at the same moment blocks on the lock, then
 * finds nothing to do. Returns the versions this call applied.
 */
export async function migratePostgres(pool: pg.Pool): Promise<number[]> {
  const client = await checkout(pool);
  try {
    await client.query('SELECT pg_advisory_lock($1::bigint)', [MIGRATION_LOCK_KEY]);
    await client.query(MIGRATIONS_TABLE.postgres);
    const applied = await client.query<{ version: number }>('SELECT version FROM rg_schema_migrations');
    const done: number[] = [];
    for (const m of pendingMigrations(
      applied.rows.map((r) => r.version),
      MIGRATIONS,
    )) {
      await client.query('BEGIN');
      try {
        for (const sql of m.postgres) await client.query(sql);
        await client.query('INSERT INTO rg_schema_migrations (version, name) VALUES ($1, $2)', [m.version, m.name]);
        await client.query('COMMIT');
      } catch (err) {
        await client.query('ROLLBACK').catch(() => undefined);
        throw err;
      }
      done.push(m.version);
    }
    return done;
  } finally {
    // Closing the connection instead of returning it to the pool ends the session, which releases
    // the advisory lock on every path, including a failed unlock or a broken connection.
    client.done(true);
  }
}
