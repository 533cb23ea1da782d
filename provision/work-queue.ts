// Who is provisioned next (docs/design.md §7 step 3): one task per person at a time, so one person's
// SQL never interleaves; a person asked for again while queued is merged, while running is run once
// more afterwards; urgent work (SCIM changes, logins) goes before bulk repairs; a few people at once.

export interface WorkQueueOptions<C> {
  readonly concurrency: number;
  readonly run: (key: string, cause: C) => Promise<void>;
  /** Two requests for one key become one. */
  readonly merge: (a: C, b: C) => C;
  /** 0 runs before 1. */
  readonly priority: (cause: C) => 0 | 1;
  /** Receives what a task threw; the queue goes on. */
  readonly onError: (err: unknown, key: string) => void;
}

export class WorkQueue<C> {
  readonly #opts: WorkQueueOptions<C>;
  /** Waiting keys and their (merged) cause, in arrival order per priority. */
  readonly #waiting = new Map<string, C>();
  readonly #lanes: [string[], string[]] = [[], []];
  /** Running keys, with the cause of a request that came in meanwhile. */
  readonly #running = new Map<string, C | undefined>();
  readonly #settled = new Map<string, (() => void)[]>();
  #idle: (() => void)[] = [];
  #paused = false;

  constructor(opts: WorkQueueOptions<C>) {
    this.#opts = opts;
  }

  get size(): number {
    return this.#waiting.size + this.#running.size;
  }

  /** Queued or running. */
  has(key: string): boolean {
    return this.#waiting.has(key) || this.#running.has(key);
  }

  push(key: string, cause: C): void {
    if (this.#running.has(key)) {
      const again = this.#running.get(key);
      this.#running.set(key, again === undefined ? cause : this.#opts.merge(again, cause));
      return;
    }
    const before = this.#waiting.get(key);
    const next = before === undefined ? cause : this.#opts.merge(before, cause);
    this.#waiting.set(key, next);
    // A merge that made the request urgent moves it to the urgent lane (the old entry is skipped).
    if (before === undefined || this.#opts.priority(next) < this.#opts.priority(before)) this.#lanes[this.#opts.priority(next)].push(key);
    this.#pump();
  }

  /** Resolves when `key` is neither waiting nor running. */
  settled(key: string): Promise<void> {
    if (!this.has(key)) return Promise.resolve();
    return new Promise((resolve) => {
      const list = this.#settled.get(key);
      if (list === undefined) this.#settled.set(key, [resolve]);
      else list.push(resolve);
    });
  }

  /** Resolves when nothing is waiting or running (a paused queue with waiting work is not idle). */
  idle(): Promise<void> {
    if (this.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idle.push(resolve));
  }

  /** Starts nothing new until resume(); running tasks finish. */
  pause(): void {
    this.#paused = true;
  }

  resume(): void {
    this.#paused = false;
    this.#pump();
  }

  #next(): [string, C] | undefined {
    for (const lane of this.#lanes) {
      while (lane.length > 0) {
        const key = lane.shift()!;
        const cause = this.#waiting.get(key);
        // A key moved to the urgent lane also sits in the other one: whichever comes first takes it.
        if (cause === undefined) continue;
        this.#waiting.delete(key);
        return [key, cause];
      }
    }
    return undefined;
  }

  #pump(): void {
    while (!this.#paused && this.#running.size < this.#opts.concurrency) {
      const next = this.#next();
      if (next === undefined) return;
      const [key, cause] = next;
      this.#running.set(key, undefined);
      void this.#opts
        .run(key, cause)
        .catch((err: unknown) => this.#opts.onError(err, key))
        .finally(() => this.#done(key));
    }
  }

  #done(key: string): void {
    const again = this.#running.get(key);
    this.#running.delete(key);
    if (again !== undefined) this.push(key, again);
    if (!this.has(key)) {
      const waiters = this.#settled.get(key) ?? [];
      this.#settled.delete(key);
      for (const w of waiters) w();
    }
    this.#pump();
    if (this.size === 0) {
      const idle = this.#idle;
      this.#idle = [];
      for (const w of idle) w();
    }
  }
}
