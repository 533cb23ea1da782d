// The shared session list (docs/design.md §8): this instance's live sessions mirrored into rg_sessions,
// so that the admin API of every instance lists all of them; and the other instances' part read back.
import type { Logger } from '../lib/log.js';
import { msInterval, type Sql } from './sql.js';

/** A session as the admin API lists it; here only `id` and `statements` mean anything. */
export interface SessionEntry {
  readonly id: string;
  readonly statements: number;
}

/** Changes wait this long to be written together: a burst of logins costs one statement. */
const DEBOUNCE_MS = 50;

/**
 * Keeps this instance's rows of rg_sessions equal to its live sessions: sessions that started or whose
 * statement count moved are upserted, those that ended are deleted, in one statement per flush.
 * A failed flush is retried by the next one (the next change or heartbeat).
 */
export class SessionMirror {
  readonly #sql: Sql;
  readonly #instanceId: string;
  readonly #list: () => readonly SessionEntry[];
  readonly #logger: Logger;
  /** What the table holds for this instance: session id -> statement count written. */
  #mirrored = new Map<string, number>();
  #timer: NodeJS.Timeout | undefined;
  #flushing: Promise<void> | undefined;
  #again = false;

  constructor(opts: { sql: Sql; instanceId: string; list: () => readonly SessionEntry[]; logger: Logger }) {
    this.#sql = opts.sql;
    this.#instanceId = opts.instanceId;
    this.#list = opts.list;
    this.#logger = opts.logger;
  }

  /** A session started or ended: written within DEBOUNCE_MS. */
  changed(): void {
    if (this.#timer !== undefined) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      void this.flush();
    }, DEBOUNCE_MS);
    this.#timer.unref();
  }

  /** This instance's rows are gone (it registered again): write every session anew. */
  forget(): void {
    this.#mirrored = new Map();
  }

  /** Writes the difference now; concurrent calls share one flush and one more after it. */
  flush(): Promise<void> {
    if (this.#flushing !== undefined) {
      this.#again = true;
      return this.#flushing;
    }
    this.#flushing = this.#write()
      .catch((err: unknown) => this.#logger.debug({ err }, 'session list not written; retrying with the next change'))
      .finally(() => {
        this.#flushing = undefined;
        if (this.#again) {
          this.#again = false;
          void this.flush();
        }
      });
    return this.#flushing;
  }

  stop(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  async #write(): Promise<void> {
    const live = this.#list();
    const seen = new Set<string>();
    const upserts: SessionEntry[] = [];
    for (const s of live) {
      seen.add(s.id);
      if (this.#mirrored.get(s.id) !== s.statements) upserts.push(s);
    }
    const gone = [...this.#mirrored.keys()].filter((id) => !seen.has(id));
    if (upserts.length === 0 && gone.length === 0) return;
    await this.#sql.query(
      `WITH gone AS (DELETE FROM rg_sessions WHERE instance_id = $1 AND id = ANY($2::text[]))
       INSERT INTO rg_sessions (id, instance_id, entry)
       SELECT e->>'id', $1, e FROM jsonb_array_elements($3::jsonb) AS e
       ON CONFLICT (id) DO UPDATE SET entry = EXCLUDED.entry`,
      [this.#instanceId, gone, JSON.stringify(upserts)],
    );
    for (const id of gone) this.#mirrored.delete(id);
    for (const s of upserts) this.#mirrored.set(s.id, s.statements);
  }
}

/** The sessions of every live instance but `exceptInstance`, as their instances last wrote them. */
export async function otherInstancesSessions(sql: Sql, opts: { exceptInstance: string; expiryMs: number }): Promise<object[]> {
  const { rows } = await sql.query<{ entry: object }>(
    `SELECT s.entry FROM rg_sessions s JOIN rg_instances i ON i.id = s.instance_id
     WHERE i.id <> $1 AND i.last_seen >= now() - ${msInterval(2)}
     ORDER BY s.entry->>'started', s.id`,
    [opts.exceptInstance, opts.expiryMs],
  );
  return rows.map((r) => r.entry);
}

/** The live instance holding session `id`, if any. */
export async function instanceOfSession(sql: Sql, opts: { session: string; expiryMs: number }): Promise<string | undefined> {
  const { rows } = await sql.query<{ instance_id: string }>(
    `SELECT s.instance_id FROM rg_sessions s JOIN rg_instances i ON i.id = s.instance_id
     WHERE s.id = $1 AND i.last_seen >= now() - ${msInterval(2)}`,
    [opts.session, opts.expiryMs],
  );
  return rows[0]?.instance_id;
}
