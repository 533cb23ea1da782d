// What the cluster room asks of a PostgreSQL connection: a pool, a pooled client or the listening
// client all answer queries alike.
import type pg from 'pg';

/** Anything that runs one statement: pg.Pool, pg.PoolClient, pg.Client. */
export interface Sql {
  query<R extends pg.QueryResultRow = pg.QueryResultRow>(text: string, values?: unknown[]): Promise<pg.QueryResult<R>>;
}

/** `ms` as a PostgreSQL interval expression over parameter `$n` (a number of milliseconds). */
export function msInterval(n: number): string {
  return `($${n}::double precision * interval '1 millisecond')`;
}
