// Options shared by both store adapters: the injectable clock and id source (docs/style.md 7).
import { randomUUID } from 'node:crypto';

export interface StoreOptions {
  /**
   * SQLite: this process serves the directory, so no other may (docs/design.md §8): a second one on
   * the same file fails with StoreError `STORE_IN_USE`. Tools that only read leave it off.
   */
  soleInstance?: boolean;
  /** Source of `created` / `lastModified`; default `() => new Date()`. */
  clock?: () => Date;
  /** Source of resource ids; default crypto.randomUUID(). */
  newId?: () => string;
  /** Receives what a change listener threw; the write itself still succeeds. */
  onListenerError?: (err: unknown) => void;
  /** Receives background driver errors (e.g. an idle PostgreSQL connection dropped). */
  onBackgroundError?: (err: unknown) => void;
  /**
   * PostgreSQL: awaited after each COMMIT with the log position (rg_changes seq) of the batch's last
   * write, before any write of the batch is answered. An instance's follower applies the log up to
   * there, so a write is in this instance's directory index when its SCIM response goes out
   * (docs/design.md §8). `written` is what the batch journalled, as the log holds it (seq and payload),
   * so a follower with nothing in between can apply it without reading it back. What it throws is
   * reported to onBackgroundError; the write still succeeds.
   */
  afterCommit?: (position: string, written: readonly JournalledWrite[]) => Promise<void>;
  /**
   * PostgreSQL: tags this process's rg_changes rows and the NOTIFY announcing them (default: a random
   * UUID). The process's cluster node skips its own announcements (afterCommit applies those writes).
   */
  origin?: string;
}

export interface ResolvedStoreOptions {
  /** RFC 3339 with milliseconds, from the clock. */
  now(): string;
  newId(): string;
  onListenerError: (err: unknown) => void;
  onBackgroundError: (err: unknown) => void;
  afterCommit: (position: string, written: readonly JournalledWrite[]) => Promise<void>;
  origin: string;
}

/** One write as rg_changes holds it: its seq and its payload (the JSON the log returns). */
export interface JournalledWrite {
  readonly seq: string;
  readonly payload: unknown;
}

export function resolveStoreOptions(opts: StoreOptions = {}): ResolvedStoreOptions {
  const clock = opts.clock ?? (() => new Date());
  return {
    now: () => clock().toISOString(),
    newId: opts.newId ?? (() => randomUUID()),
    onListenerError: opts.onListenerError ?? (() => {}),
    onBackgroundError: opts.onBackgroundError ?? (() => {}),
    afterCommit: opts.afterCommit ?? (async () => {}),
    origin: opts.origin ?? randomUUID(),
  };
}
