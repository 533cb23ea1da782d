// Group commit: writes that arrive together, or while a commit is in flight, are committed together in
// one transaction, so N concurrent writes cost one durable COMMIT (one fsync) instead of N, and each is
// still answered only after the COMMIT that made it durable (docs/design.md §8, "Group commit").
import { performance } from 'node:perf_hooks';

/** What one write of a batch came to: its result, or the error that rolled back that write alone. */
export type WriteOutcome = { readonly ok: true; readonly result: unknown } | { readonly ok: false; readonly error: unknown };

/**
 * Commits a batch in one transaction and returns one outcome per write, in batch order, once the
 * COMMIT is durable. Throwing fails every write of the batch (nothing of it was committed).
 */
export type CommitBatch<W> = (batch: readonly W[]) => Promise<readonly WriteOutcome[]>;

interface Queued<W> {
  readonly write: W;
  resolve(value: unknown): void;
  reject(err: unknown): void;
}

/**
 * Bounds one transaction: a bulk push of thousands of writes is committed in several transactions,
 * so no single one holds the store's write lock for long.
 */
export const MAX_BATCH = 256;

/** The longest a first write waits for others to join its transaction (PostgreSQL's commit_delay idea). */
const GATHER_MS = 5;

/** Queues writes and commits them in batches, one batch at a time, in arrival order. */
export class GroupCommit<W> {
  readonly #commit: CommitBatch<W>;
  #queue: Queued<W>[] = [];
  #draining: Promise<void> | undefined;
  /** When the last write was submitted: one arriving soon after is part of a burst. */
  #lastSubmit = -Infinity;

  constructor(commit: CommitBatch<W>) {
    this.#commit = commit;
  }

  /** Resolves with the write's result once its batch committed, or rejects with its own error. */
  submit<T>(write: W): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.#queue.push({ write, resolve: resolve as (v: unknown) => void, reject });
      const now = performance.now();
      const burst = now - this.#lastSubmit < GATHER_MS;
      this.#lastSubmit = now;
      this.#draining ??= this.#gather(burst).then(() => this.#drain());
    });
  }

  /**
   * A lone write waits for the end of this turn of the event loop only (requests read in the same
   * turn share its transaction). Within a burst, the next transaction waits a millisecond at a time
   * while writes keep arriving, for at most GATHER_MS: a burst of new connections reaches the server
   * one per turn of the event loop (libuv accepts one connection per turn), so waiting for the end of
   * one turn would commit such a burst one request at a time, and SQLite's fsync, which blocks the
   * loop, would let only one more in per commit.
   */
  async #gather(burst: boolean): Promise<void> {
    if (!burst) {
      await new Promise((r) => setImmediate(r));
      return;
    }
    const until = performance.now() + GATHER_MS;
    let seen = 0;
    while (this.#queue.length > seen && performance.now() < until) {
      seen = this.#queue.length;
      await new Promise((r) => setTimeout(r, 1));
    }
  }

  /** Resolves when every write submitted so far has settled. */
  async idle(): Promise<void> {
    while (this.#draining !== undefined) await this.#draining;
  }

  async #drain(): Promise<void> {
    try {
      while (this.#queue.length > 0) {
        const batch = this.#queue.splice(0, MAX_BATCH);
        let outcomes: readonly WriteOutcome[];
        try {
          outcomes = await this.#commit(batch.map((q) => q.write));
        } catch (err) {
          for (const q of batch) q.reject(err);
          continue;
        }
        batch.forEach((q, i) => {
          const o = outcomes[i];
          if (o === undefined) q.reject(new Error('group commit returned no outcome for a write'));
          else if (o.ok) q.resolve(o.result);
          else q.reject(o.error);
        });
      }
    } finally {
      this.#draining = undefined;
    }
  }
}
