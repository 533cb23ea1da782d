// Options shared by both store adapters: the injectable clock and id source (docs/style.md 7).
import { randomUUID } from 'node:crypto';

export interface StoreOptions {
  /** Source of `created` / `lastModified`; default `() => new Date()`. */
  clock?: () => Date;
  /** Source of resource ids; default crypto.randomUUID(). */
  newId?: () => string;
  /** Receives what a change listener threw; the write itself still succeeds. */
  onListenerError?: (err: unknown) => void;
  /** Receives background driver errors (e.g. an idle PostgreSQL connection dropped). */
  onBackgroundError?: (err: unknown) => void;
}

export interface ResolvedStoreOptions {
  /** RFC 3339 with milliseconds, from the clock. */
  now(): string;
  newId(): string;
  onListenerError: (err: unknown) => void;
  onBackgroundError: (err: unknown) => void;
}

export function resolveStoreOptions(opts: StoreOptions = {}): ResolvedStoreOptions {
  const clock = opts.clock ?? (() => new Date());
  return {
    now: () => clock().toISOString(),
    newId: opts.newId ?? (() => randomUUID()),
    onListenerError: opts.onListenerError ?? (() => {}),
    onBackgroundError: opts.onBackgroundError ?? (() => {}),
  };
}
