// The directory follower of one instance (docs/design.md §8): it applies every committed write of every
// instance to the in-memory directory, in commit order, from the shared change log; it knows whether
// that directory is current, and falls back to a full reload when the log no longer has what it missed.
import type { Logger } from '../lib/log.js';
import type { LogRead, LoggedWrite } from './change-log.js';

/** Why an instance cannot vouch for its directory; /readyz says it, new logins are refused. */
export const NotCurrent = {
  loading: 'loading the directory',
  listenerLost: 'lost the connection that tells it about other instances\' writes',
  catchingUp: 'catching up on the change log',
  readFailed: 'cannot read the change log',
} as const;
export type NotCurrentReason = (typeof NotCurrent)[keyof typeof NotCurrent];

export type FollowerStatus = { readonly current: true } | { readonly current: false; readonly reason: NotCurrentReason };

export interface FollowerOptions<S, C> {
  /** The writes after a position (change-log.ts readLog). */
  read(position: string): Promise<LogRead>;
  /** The whole directory and the log position it reflects. */
  snapshot(): Promise<{ snapshot: S; position: string }>;
  /** A logged payload as the target applies it; throws for one this version cannot apply exactly. */
  decode(payload: unknown): C;
  /** The directory being kept: `resync` makes it equal to a snapshot, `apply` adds one write. */
  target: { resync(snapshot: S): void; apply(changes: C): void };
  logger: Logger;
  /** How long to wait before reading again after a failed read (the listener may still be up). */
  retryMs?: number;
}

/** Follows the change log; `listening`/`lost` are told by the listener, `wake` by its notifications. */
export class DirectoryFollower<S, C> {
  readonly #o: FollowerOptions<S, C>;
  #position = 0n;
  #loaded = false;
  #listening = false;
  /** A catch-up that began after the listener last came up has finished. */
  #caughtUp = false;
  #failed = false;
  /** Bumped whenever the listener comes or goes, so a catch-up knows which connection it vouches for. */
  #epoch = 0;
  #reloads = 0;
  #logReads = 0;
  #requested = false;
  #draining: Promise<void> | undefined;
  #retry: NodeJS.Timeout | undefined;
  #stopped = false;

  constructor(opts: FollowerOptions<S, C>) {
    this.#o = opts;
  }

  /** The last log position applied. */
  get position(): string {
    return this.#position.toString();
  }

  /** Full reloads since start, the first load not counted. */
  get reloads(): number {
    return Math.max(0, this.#reloads - 1);
  }

  /** Reads of the change log since start (a write applied from memory costs none). */
  get logReads(): number {
    return this.#logReads;
  }

  /**
   * Current: loaded, listening, and caught up since the listener last (re)connected, so every write
   * committed before that moment is applied and every later one will be announced. Anything less and
   * the directory may be stale: new logins are refused until it is current again.
   */
  get status(): FollowerStatus {
    if (!this.#loaded) return { current: false, reason: NotCurrent.loading };
    if (!this.#listening) return { current: false, reason: NotCurrent.listenerLost };
    if (this.#failed) return { current: false, reason: NotCurrent.readFailed };
    if (!this.#caughtUp) return { current: false, reason: NotCurrent.catchingUp };
    return { current: true };
  }

  /**
   * The listener is LISTENing on a fresh connection: whatever was committed while it was away is read
   * now (the first time: the whole directory). Rejects when that fails; the follower retries alone.
   */
  async listening(): Promise<void> {
    this.#epoch++;
    this.#listening = true;
    this.#caughtUp = false;
    await this.catchUp();
  }

  /** The listener's connection is gone: notifications may be missed from now on. */
  lost(): void {
    this.#epoch++;
    this.#listening = false;
    this.#caughtUp = false;
  }

  /** A notification said "look". */
  wake(): void {
    this.catchUp().catch(() => undefined);
  }

  /**
   * Another instance's batch, as its verified announcement carried it: applied as it came when it
   * follows on directly from our position (see #applyInOrder), which spares this instance a read of
   * the log before the batch's revocations; anything else (a gap, a read under way) is read.
   */
  announced(writes: readonly LoggedWrite[]): void {
    if (!this.#applyInOrder(writes)) this.wake();
  }

  /**
   * Resolves once the write at `position` (committed by this process) is applied. A failed read does
   * not reject: the write is committed whatever the follower can read now, and a follower that
   * cannot read is not current, so no login is admitted on what it missed. `written` is this
   * process's batch as journalled, ending at `position`: applied from memory when it follows on
   * directly from what is applied (see #applyInOrder), else the log is read.
   */
  async caughtUpTo(position: string, written: readonly LoggedWrite[] = []): Promise<void> {
    if (BigInt(position) <= this.#position) return;
    if (this.#applyInOrder(written)) return;
    await this.catchUp().catch(() => undefined);
  }

  /**
   * A committed batch (this process's own, or another's from its signed announcement), applied
   * without reading the log, when its first seq is the one after our position and its seqs are
   * consecutive, and no read is under way (that read could apply the same rows). Seqs are handed out
   * under the store's write lock in commit order, so every write committed before the batch has a
   * lower seq and is applied already: the log would return exactly these rows. A gap (a write whose
   * announcement was not applied, a rolled-back batch's seqs) goes through the log. Saves a round
   * trip to the store before the batch's revocations (and, for a local write, its answer). An
   * announcement repeated later is ignored: its seqs are no longer the next ones.
   */
  #applyInOrder(written: readonly LoggedWrite[]): boolean {
    if (!this.#loaded || this.#draining !== undefined || written.length === 0) return false;
    let next = this.#position + 1n;
    for (const w of written) {
      if (BigInt(w.seq) !== next) return false;
      next++;
    }
    const decoded: C[] = [];
    try {
      for (const w of written) decoded.push(this.#o.decode(w.payload));
    } catch {
      return false; // the log read reloads on what cannot be decoded
    }
    decoded.forEach((changes, i) => {
      this.#o.target.apply(changes);
      this.#position = BigInt(written[i]!.seq);
    });
    return true;
  }

  /**
   * Reads and applies everything committed so far. Calls coalesce: one that arrives during a read gets
   * one more read after it, which starts after the call and so covers every write committed before it.
   */
  catchUp(): Promise<void> {
    this.#requested = true;
    this.#draining ??= this.#drain().finally(() => {
      this.#draining = undefined;
    });
    return this.#draining;
  }

  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#retry);
  }

  async #drain(): Promise<void> {
    while (this.#requested && !this.#stopped) {
      this.#requested = false;
      const epoch = this.#epoch;
      try {
        await this.#readAll();
        this.#failed = false;
        // This read began while the current connection was listening: it vouches for it.
        if (this.#listening && epoch === this.#epoch) this.#caughtUp = true;
      } catch (err) {
        this.#failed = true;
        this.#o.logger.warn({ err, position: this.position }, 'directory change log unreadable; retrying');
        this.#scheduleRetry();
        throw err;
      }
    }
  }

  async #readAll(): Promise<void> {
    if (!this.#loaded) await this.#reload('first load');
    for (;;) {
      this.#logReads++;
      const read = await this.#o.read(this.position);
      // Rows after our position were pruned (we were dead to the others, or behind the retention
      // window): the log cannot tell what they changed, the whole directory can.
      if (BigInt(read.horizon) > this.#position) {
        await this.#reload('behind the pruned change log');
        continue;
      }
      if (!this.#applyAll(read)) {
        await this.#reload('a logged change this version cannot apply');
        continue;
      }
      if (!read.more) return;
    }
  }

  /** Applies each write in order; false at the first one that cannot be decoded. */
  #applyAll(read: LogRead): boolean {
    for (const w of read.writes) {
      let changes: C;
      try {
        changes = this.#o.decode(w.payload);
      } catch (err) {
        this.#o.logger.warn({ err, seq: w.seq }, 'skipping to a full reload');
        return false;
      }
      this.#o.target.apply(changes);
      this.#position = BigInt(w.seq);
    }
    return true;
  }

  async #reload(why: string): Promise<void> {
    const { snapshot, position } = await this.#o.snapshot();
    this.#o.target.resync(snapshot);
    this.#position = BigInt(position);
    this.#loaded = true;
    this.#reloads++;
    if (this.#reloads === 1) this.#o.logger.info({ position }, 'directory loaded from the store');
    else this.#o.logger.warn({ position, why }, 'directory reloaded from the store');
  }

  #scheduleRetry(): void {
    if (this.#stopped || this.#retry !== undefined) return;
    this.#retry = setTimeout(() => {
      this.#retry = undefined;
      if (this.#listening) this.wake();
    }, this.#o.retryMs ?? 1_000);
    this.#retry.unref();
  }
}
