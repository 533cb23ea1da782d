// The shared change log as its followers and its janitor see it (docs/design.md §8): the writes
// committed after a position, in commit (seq) order, and the pruning of what no live instance needs.
import { msInterval, type Sql } from './sql.js';

/** One committed write as the store journalled it; the payload is read by the directory's own codec. */
export interface LoggedWrite {
  readonly seq: string;
  readonly payload: unknown;
}

export interface LogRead {
  /** Every row up to this seq may be gone: a reader whose position is below it must reload. */
  readonly horizon: string;
  /** The next writes after the position asked for, in seq order. */
  readonly writes: readonly LoggedWrite[];
  /** The read was cut at its limit: more writes follow. */
  readonly more: boolean;
}

/** Rows per read: a follower far behind catches up in bounded steps (a 10,000-member PATCH is one row). */
export const READ_BATCH = 1000;

/**
 * The writes after `position` and the pruning horizon, read in one statement and so from one snapshot:
 * a prune that deleted rows this read would have returned also moved the horizon this read returns.
 */
export async function readLog(sql: Sql, position: string, limit = READ_BATCH): Promise<LogRead> {
  const { rows } = await sql.query<{ horizon: string; seq: string | null; payload: unknown }>(
    `SELECT h.pruned_through::text AS horizon, c.seq::text AS seq, c.payload
     FROM rg_log_horizon h
     LEFT JOIN LATERAL (SELECT seq, payload FROM rg_changes WHERE seq > $1::bigint ORDER BY seq LIMIT $2) c ON true
     ORDER BY c.seq`,
    [position, limit],
  );
  const horizon = rows[0]?.horizon ?? '0';
  const writes: LoggedWrite[] = [];
  for (const r of rows) if (r.seq !== null) writes.push({ seq: r.seq, payload: r.payload });
  return { horizon, writes, more: writes.length === limit };
}

/**
 * Deletes what no live instance still needs: every row up to the lowest position a live instance
 * reported, and every row older than `retentionMs` even if a live instance has not applied it (that
 * instance reloads the whole directory instead). The horizon moves in the same statement, so a reader
 * never sees the rows gone without the horizon that says so. Concurrent prunes serialize on the
 * horizon's one row. Returns the new horizon and how many rows went.
 */
export async function pruneLog(sql: Sql, opts: { expiryMs: number; retentionMs: number }): Promise<{ horizon: string; pruned: number }> {
  const { rows } = await sql.query<{ horizon: string; pruned: number }>(
    `WITH upto AS (
       SELECT greatest(
         (SELECT coalesce(min(position), 0) FROM rg_instances WHERE last_seen >= now() - ${msInterval(1)}),
         (SELECT coalesce(max(seq), 0) FROM rg_changes WHERE at < now() - ${msInterval(2)})) AS seq
     ), gone AS (
       DELETE FROM rg_changes WHERE seq <= (SELECT seq FROM upto) RETURNING 1
     )
     UPDATE rg_log_horizon SET pruned_through = greatest(pruned_through, (SELECT seq FROM upto))
     RETURNING pruned_through::text AS horizon, (SELECT count(*)::int FROM gone) AS pruned`,
    [opts.expiryMs, opts.retentionMs],
  );
  return { horizon: rows[0]?.horizon ?? '0', pruned: rows[0]?.pruned ?? 0 };
}
