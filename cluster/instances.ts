// Which instances are alive (docs/design.md §8): registration with a slot for the cancel keys, the
// heartbeat that keeps an instance alive and reports how far it applied the change log, and the expiry
// of instances that stopped beating (their rows and sessions go with them).
import type pg from 'pg';
import { checkout } from '../lib/pg-checkout.js';
import { msInterval, type Sql } from './sql.js';

/** The slots an instance can hold; 10 bits of the BackendKeyData process id (proxy/session/registry.ts). */
export const MAX_SLOT = 1023;

/** Serializes registrations, so two instances starting together never pick the same free slot. */
const REGISTER_LOCK_KEY = '8246126309927617639';

export interface LiveInstance {
  readonly id: string;
  readonly name: string;
  readonly slot: number;
}

/**
 * Registers this instance with the lowest free slot (`preferredSlot` first, when it is free again after
 * an expiry); instances silent for longer than `expiryMs` are removed first, freeing theirs. Position
 * 0 holds back pruning until the first heartbeat reports a real one.
 */
export async function registerInstance(
  pool: pg.Pool,
  me: { id: string; name: string; expiryMs: number; preferredSlot?: number },
): Promise<number> {
  const c = await checkout(pool);
  let broken = false;
  try {
    await c.query(`BEGIN; SELECT pg_advisory_xact_lock(${REGISTER_LOCK_KEY})`);
    try {
      await c.query(`DELETE FROM rg_instances WHERE last_seen < now() - ${msInterval(1)}`, [me.expiryMs]);
      const { rows } = await c.query<{ slot: number }>(
        `INSERT INTO rg_instances (id, name, slot)
         SELECT $1, $2, s FROM generate_series(1, ${MAX_SLOT}) AS s
         WHERE NOT EXISTS (SELECT 1 FROM rg_instances WHERE slot = s)
         ORDER BY (s = $3) DESC, s LIMIT 1
         RETURNING slot`,
        [me.id, me.name, me.preferredSlot ?? 0],
      );
      await c.query('COMMIT');
      const slot = rows[0]?.slot;
      if (slot === undefined) throw new Error(`every instance slot (1-${MAX_SLOT}) is taken by a live instance`);
      return slot;
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

/**
 * One beat: this instance is alive and has applied the log up to `position`; instances silent for
 * longer than `expiryMs` are removed on the way (any live instance does it, whoever beats first).
 * Returns false when this instance's own row is gone (it was silent too long and counted as dead):
 * it must register again.
 */
export async function heartbeat(sql: Sql, me: { id: string; position: string; expiryMs: number }): Promise<boolean> {
  const { rowCount } = await sql.query(
    `WITH expired AS (DELETE FROM rg_instances WHERE last_seen < now() - ${msInterval(3)} AND id <> $1)
     UPDATE rg_instances SET last_seen = now(), position = greatest(position, $2::bigint) WHERE id = $1`,
    [me.id, me.position, me.expiryMs],
  );
  return rowCount === 1;
}

/** The instances that beat within `expiryMs`. */
export async function liveInstances(sql: Sql, expiryMs: number): Promise<LiveInstance[]> {
  const { rows } = await sql.query<LiveInstance>(
    `SELECT id, name, slot FROM rg_instances WHERE last_seen >= now() - ${msInterval(1)} ORDER BY slot`,
    [expiryMs],
  );
  return rows;
}

/** Leaves the cluster (an orderly shutdown): the row goes, and with it this instance's sessions. */
export async function deregister(sql: Sql, id: string): Promise<void> {
  await sql.query('DELETE FROM rg_instances WHERE id = $1', [id]);
}
