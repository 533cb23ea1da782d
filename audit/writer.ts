// The audit log's writer as the rest of the process sees it (docs/design.md §6): events are turned
// into JSON here, in the order they are emitted, written as UTF-8 into a batch of bytes, and handed
// over every 10 ms (or at once when someone waits) to the appender (audit/appender.ts), which seals,
// hashes and appends them with asynchronous file operations. What is on disk comes back as counts, so
// a caller can wait for its event (`flushed`) and everyone can see whether the log can be written.
import { mkdir, readFile, unlink, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { CodedError } from '../lib/coded-error.js';
import type { Logger } from '../lib/log.js';
import { Appender, type AppenderReport, type AppenderState } from './appender.js';
import { withRoom } from './bytes.js';
import { eventJson, type ChainHead } from './chain.js';
import type { AuditEvent } from './events.js';
import { seriesFile, seriesLock, seriesOf, type Series } from './files.js';
import { resumePoint } from './resume.js';
import { signerFromPem } from './signing.js';

/** Raised to whoever waits for an event to be on disk while the audit file cannot be written. */
export class AuditUnavailableError extends CodedError<'audit_unavailable'> {
  constructor(cause?: unknown) {
    super('audit_unavailable', 'audit log unavailable', { cause });
  }
}

export interface AuditWriterOptions {
  /** `audit.file`, absolute: the base the instance's series is named after. */
  readonly base: string;
  readonly instance: string;
  /** `audit.rotateBytes`: a file is not grown past this (a single longer line gets a file of its own). */
  readonly rotateBytes: number;
  /** `audit.signingKey` (PEM): signed checkpoints every `checkpointEveryMs` when anything was written. */
  readonly signingKeyPem?: string;
  readonly checkpointEveryMs?: number;
  readonly now: () => number;
  readonly logger: Logger;
  /** How long after a failed write the writer tries again (default 500 ms). */
  readonly retryMs?: number;
  /**
   * Events kept in memory while the file cannot be written (default 100,000). Past it `onOverflow`
   * is called once per outage: the live sessions that produce them must end, not run unaudited.
   */
  readonly maxPending?: number;
  onOverflow?(): void;
}

/** The chain's durable head, for GET /admin/audit/head. */
export interface AuditHead {
  readonly instance: string;
  readonly seq: number;
  readonly hash: string;
  /** When that line was written (null before the first). */
  readonly ts: string | null;
  readonly file: string | null;
  readonly available: boolean;
}

/**
 * How long events wait before they are handed to the appender as one batch (the appender's work per
 * batch, a stat, a write and their hand-offs to libuv's pool, would cost more than a statement);
 * `flushed()` hands them at once.
 */
const POST_EVERY_MS = 10;

/** A batch's first buffer; one that fills is replaced by one twice its size. */
const BATCH_START_BYTES = 16 * 1024;

interface Waiter {
  readonly upto: number;
  resolve(): void;
  reject(err: Error): void;
}

/** One instance's audit writer; `open` takes the series' lock and finds where its chain stands. */
export class AuditWriter {
  readonly #o: AuditWriterOptions;
  readonly #series: Series;
  readonly #appender: Appender;
  /**
   * Events not yet handed to the appender: `<ts>\t<json>\n` each, as UTF-8 (Appender.enqueue),
   * in `#bytes` up to `#used`, and their number. Bytes, not a string: a string held until the next
   * post survives the young generation's collections, and copying it there cost more CPU than the
   * statement's own audit work (docs/design.md §6).
   */
  #bytes = Buffer.allocUnsafeSlow(BATCH_START_BYTES);
  #used = 0;
  #batchCount = 0;
  #postTimer: NodeJS.Timeout | undefined;
  /** Events appended / durable since start. */
  #appended = 0;
  /**
   * #appended when a sync was last asked for: every event up to there reached the appender before that
   * request, so a waiter for no more needs no new one (50 logins in one turn cost one sync, not 50).
   */
  #syncAskedUpto = 0;
  #durable = 0;
  #waiters: Waiter[] = [];
  #head: ChainHead;
  #headTs: string | null = null;
  #file: string | null;
  #available = true;
  #overflowed = false;
  #failure: unknown;
  #checkpoints: NodeJS.Timeout | undefined;
  #closed = false;
  /** The last ts string and the millisecond it is for: most events of a busy second share one. */
  #tsMs = -1;
  #ts = '';

  private constructor(o: AuditWriterOptions, series: Series, state: AppenderState) {
    this.#o = o;
    this.#series = series;
    this.#head = state.head;
    this.#file = state.n > 0 ? seriesFile(series, state.n) : null;
    this.#appender = new Appender(state, this.#report());
  }

  /**
   * Opens the instance's series: creates the folder, takes the lock (a second process with the same
   * instance name is refused: two writers on one chain would fork it), resumes the chain from the
   * newest file, checks the signing key. A file that cannot be opened yet is not fatal: the writer
   * starts and reports itself unavailable at its first write, and keeps trying.
   */
  static async open(o: AuditWriterOptions): Promise<AuditWriter> {
    if (o.signingKeyPem !== undefined) signerFromPem(o.signingKeyPem);
    const series = seriesOf(o.base, o.instance);
    await mkdir(series.dir, { recursive: true, mode: 0o750 });
    await takeLock(series, o.instance);
    try {
      const resume = await resumePoint(series);
      // A torn last line (a crash mid-write) is left as it is; the chain goes on in the next file.
      if (resume.torn) o.logger.warn({ file: seriesFile(series, resume.n) }, 'audit file ends in a partial line; continuing in the next file');
      const state: AppenderState = {
        series,
        instance: o.instance,
        rotateBytes: o.rotateBytes,
        n: resume.torn ? resume.n + 1 : resume.n,
        size: resume.torn ? 0 : resume.size,
        head: resume.head,
        retryMs: o.retryMs ?? 500,
        ...(o.signingKeyPem !== undefined ? { signingKeyPem: o.signingKeyPem } : {}),
      };
      const w = new AuditWriter(o, series, state);
      if (o.signingKeyPem !== undefined && (o.checkpointEveryMs ?? 0) > 0) {
        w.#checkpoints = setInterval(() => w.requestCheckpoint(), o.checkpointEveryMs);
        w.#checkpoints.unref();
      }
      return w;
    } catch (err) {
      await unlink(seriesLock(series)).catch(() => undefined);
      throw err;
    }
  }

  /** False from a failed write until a write succeeds again. */
  get available(): boolean {
    return this.#available;
  }

  head(): AuditHead {
    return { instance: this.#o.instance, seq: this.#head.seq, hash: this.#head.hash, ts: this.#headTs, file: this.#file, available: this.#available };
  }

  /** Queues an event; it goes to the appender with everything else emitted in this turn of the event loop. */
  append(event: AuditEvent): void {
    if (this.#closed) {
      this.#o.logger.error({ type: event.type }, 'audit event after the audit log was closed');
      return;
    }
    const ms = this.#o.now();
    if (ms !== this.#tsMs) {
      this.#tsMs = ms;
      this.#ts = new Date(ms).toISOString();
    }
    const line = `${this.#ts}\t${eventJson(event)}\n`;
    // A UTF-16 code unit is at most three bytes of UTF-8.
    this.#bytes = withRoom(this.#bytes, this.#used, 3 * line.length);
    this.#used += this.#bytes.write(line, this.#used, 'utf8');
    this.#batchCount++;
    this.#appended++;
    if (!this.#available && !this.#overflowed && this.#appended - this.#durable > (this.#o.maxPending ?? 100_000)) {
      this.#overflowed = true;
      this.#o.logger.error({ waiting: this.#appended - this.#durable }, 'audit log unavailable and its memory buffer is full: ending live sessions');
      this.#o.onOverflow?.();
    }
    if (this.#postTimer === undefined) {
      this.#postTimer = setTimeout(() => this.#post(), POST_EVERY_MS);
      this.#postTimer.unref();
    }
  }

  /** Resolves once every event appended so far is on disk; rejects at once while the file cannot be written. */
  flushed(): Promise<void> {
    if (this.#durable >= this.#appended) return Promise.resolve();
    if (!this.#available) return Promise.reject(new AuditUnavailableError(this.#failure));
    // Someone waits (a login, a refusal): the events go now, and are synced as soon as written.
    this.#post(true);
    return new Promise((resolve, reject) => this.#waiters.push({ upto: this.#appended, resolve, reject }));
  }

  /** Asks for a signed checkpoint after the newest line, when there is anything new to vouch for. */
  requestCheckpoint(): void {
    if (this.#o.signingKeyPem === undefined || this.#closed) return;
    this.#post();
    this.#appender.requestCheckpoint();
  }

  /** Writes what is queued (with a last checkpoint), waits up to `timeoutMs` for it, releases the lock. */
  async close(timeoutMs = 5_000): Promise<void> {
    if (this.#closed) return;
    this.requestCheckpoint();
    this.#post();
    this.#closed = true;
    if (this.#checkpoints) clearInterval(this.#checkpoints);
    // The appender gives up after timeoutMs; a file close that hangs on a stalled disk is not waited for.
    const unwritten = await Promise.race([
      this.#appender.close(timeoutMs).then((r) => r.unwritten),
      new Promise<number>((resolve) => setTimeout(() => resolve(this.#appended - this.#durable), timeoutMs + 1_000).unref()),
    ]);
    if (unwritten > 0) this.#o.logger.error({ unwritten }, 'audit log closed with events it could not write');
    for (const w of this.#waiters.splice(0)) w.reject(new AuditUnavailableError(this.#failure));
    await unlink(seriesLock(this.#series)).catch(() => undefined);
  }

  /** Hands over what is queued; with `sync`, asks for an fdatasync once it is written. */
  #post(sync = false): void {
    if (this.#postTimer !== undefined) clearTimeout(this.#postTimer);
    this.#postTimer = undefined;
    const askSync = sync && this.#syncAskedUpto < this.#appended;
    if (askSync) this.#syncAskedUpto = this.#appended;
    if (this.#batchCount === 0) {
      if (askSync) this.#appender.requestSync();
      return;
    }
    // The batch's bytes are the appender's until it has sealed them; the next batch starts in a new
    // buffer about the size this one needed.
    this.#appender.enqueue(this.#bytes.subarray(0, this.#used), this.#batchCount);
    if (askSync) this.#appender.requestSync();
    this.#bytes = Buffer.allocUnsafeSlow(Math.max(BATCH_START_BYTES, Math.min(this.#used, 1 << 20)));
    this.#used = 0;
    this.#batchCount = 0;
  }

  /** What the appender's reports do here. */
  #report(): AppenderReport {
    return {
      durable: (r) => {
        this.#durable += r.events;
        this.#head = r.head;
        this.#headTs = r.ts;
        this.#file = r.file;
        const still: Waiter[] = [];
        for (const w of this.#waiters) (w.upto <= this.#durable ? w.resolve() : still.push(w));
        this.#waiters = still;
      },
      failed: (failure, file) => {
        const err = Object.assign(new Error(failure.message), { code: failure.code });
        this.#o.logger.error({ err, file }, 'audit log write failed: refusing new sessions until it works again');
        this.#setFailed(err);
      },
      recovered: (file) => {
        this.#available = true;
        // What was asked before the failure may have been dropped with it: the next waiter asks again.
        this.#syncAskedUpto = 0;
        this.#overflowed = false;
        this.#o.logger.warn({ file }, 'audit log writable again');
      },
      replaced: (file) => this.#o.logger.error({ file }, 'audit file was removed or replaced; continuing in a new file'),
    };
  }

  #setFailed(err: unknown): void {
    this.#available = false;
    this.#failure = err;
    for (const w of this.#waiters.splice(0)) w.reject(new AuditUnavailableError(err));
  }
}

/**
 * Takes `<stem>.<instance>.lock` (O_EXCL). A lock left by a process of this host that no longer
 * runs is taken over; one held by a live process, or from another host, refuses the start.
 */
async function takeLock(series: Series, instance: string): Promise<void> {
  const path = seriesLock(series);
  const mine = `${process.pid} ${hostname()}\n`;
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      await writeFile(path, mine, { flag: 'wx', mode: 0o640 });
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const [pidText, host] = (await readFile(path, 'utf8').catch(() => '')).trim().split(' ');
    const pid = Number(pidText);
    if (host === hostname() && Number.isInteger(pid) && pid > 0 && pid !== process.pid && !alive(pid)) {
      await unlink(path).catch(() => undefined);
      continue;
    }
    throw new CodedError(
      'audit_in_use',
      `the audit files of instance "${instance}" are in use by process ${pidText ?? '?'} on ${host ?? '?'} (${path}); give each instance its own ROLEGATE_INSTANCE`,
    );
  }
  throw new CodedError('audit_in_use', `cannot take the audit lock ${path}`);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
