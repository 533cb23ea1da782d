// The audit file writer (docs/design.md §6): events are sealed into the hash chain in the order they
// were emitted and appended in batches, off the relay's path: every event emitted while a batch is
// being written goes into the next one, and each batch is one append plus one fdatasync before the
// next starts. A batch that fails is kept and retried as it is (same lines, same hashes), so nothing
// is reordered, lost or written twice; meanwhile the writer reports itself unavailable.
import { mkdir, open, readFile, stat, unlink, writeFile, type FileHandle } from 'node:fs/promises';
import { hostname } from 'node:os';
import { CodedError } from '../lib/coded-error.js';
import type { Logger } from '../lib/log.js';
import { sealLine, type ChainHead } from './chain.js';
import type { AuditEvent } from './events.js';
import { seriesFile, seriesLock, seriesOf, type Series } from './files.js';
import { resumePoint } from './resume.js';
import type { CheckpointSigner } from './signing.js';

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
  /** `audit.signingKey`: signed checkpoints every `checkpointEveryMs` when anything was written. */
  readonly signer?: CheckpointSigner;
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

interface Batch {
  /** Sealed lines, newline included. */
  readonly lines: readonly Buffer[];
  /** The chain head after the last line, and its ts. */
  readonly head: ChainHead;
  readonly ts: string;
  /** Events of the caller in this batch (checkpoints are the writer's own). */
  readonly events: number;
  /** Lines already durable. */
  done: number;
  /** The lines being appended to the current file, and how many bytes of them made it. */
  segment?: { readonly buf: Buffer; readonly lines: number; readonly ino: number; off: number };
}

interface Waiter {
  readonly upto: number;
  resolve(): void;
  reject(err: Error): void;
}

/** One instance's audit writer; `open` takes the series' lock and finds where its chain stands. */
export class AuditWriter {
  readonly #o: AuditWriterOptions;
  readonly #series: Series;
  readonly #instance: string;
  #pending: { event: AuditEvent; ts: string }[] = [];
  #batch: Batch | undefined;
  /** Events appended / durable since start. */
  #appended = 0;
  #durable = 0;
  #waiters: Waiter[] = [];
  /** Head after the last sealed line, and after the last durable one. */
  #sealedHead: ChainHead;
  #durableHead: ChainHead;
  #durableTs: string | null = null;
  #lastWasCheckpoint = false;
  #checkpointWanted = false;
  #n: number;
  #size: number;
  #fh: FileHandle | undefined;
  #ino = 0;
  #running = false;
  #available = true;
  #overflowed = false;
  #failure: unknown;
  #retry: NodeJS.Timeout | undefined;
  #checkpoints: NodeJS.Timeout | undefined;
  #closed = false;
  #idle: (() => void)[] = [];

  private constructor(o: AuditWriterOptions, series: Series, resume: { head: ChainHead; n: number; size: number }) {
    this.#o = o;
    this.#series = series;
    this.#instance = o.instance;
    this.#sealedHead = resume.head;
    this.#durableHead = resume.head;
    this.#n = resume.n;
    this.#size = resume.size;
  }

  /**
   * Opens the instance's series: creates the folder, takes the lock (a second process with the same
   * instance name is refused: two writers on one chain would fork it), resumes the chain from the
   * newest file. A file that cannot be opened yet is not fatal: the writer starts unavailable and
   * keeps trying.
   */
  static async open(o: AuditWriterOptions): Promise<AuditWriter> {
    const series = seriesOf(o.base, o.instance);
    await mkdir(series.dir, { recursive: true, mode: 0o750 });
    await takeLock(series, o.instance);
    try {
      const resume = await resumePoint(series);
      // A torn last line (a crash mid-write) is left as it is; the chain goes on in the next file.
      const start = resume.torn ? { ...resume, n: resume.n + 1, size: 0 } : resume;
      const w = new AuditWriter(o, series, start);
      if (o.signer !== undefined && (o.checkpointEveryMs ?? 0) > 0) {
        w.#checkpoints = setInterval(() => w.requestCheckpoint(), o.checkpointEveryMs);
        w.#checkpoints.unref();
      }
      if (resume.torn) o.logger.warn({ file: seriesFile(series, resume.n) }, 'audit file ends in a partial line; continuing in the next file');
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
    return {
      instance: this.#instance,
      seq: this.#durableHead.seq,
      hash: this.#durableHead.hash,
      ts: this.#durableTs,
      file: this.#n > 0 ? seriesFile(this.#series, this.#n) : null,
      available: this.#available,
    };
  }

  /** Queues an event; it is sealed and written with the next batch. */
  append(event: AuditEvent): void {
    if (this.#closed) {
      this.#o.logger.error({ type: event.type }, 'audit event after the audit log was closed');
      return;
    }
    this.#pending.push({ event, ts: new Date(this.#o.now()).toISOString() });
    this.#appended++;
    this.#lastWasCheckpoint = false;
    if (!this.#available && !this.#overflowed && this.#pending.length > (this.#o.maxPending ?? 100_000)) {
      this.#overflowed = true;
      this.#o.logger.error({ pending: this.#pending.length }, 'audit log unavailable and its memory buffer is full: ending live sessions');
      this.#o.onOverflow?.();
    }
    this.#kick();
  }

  /** Resolves once every event appended so far is on disk; rejects at once while the file cannot be written. */
  flushed(): Promise<void> {
    if (this.#durable >= this.#appended) return Promise.resolve();
    if (!this.#available) return Promise.reject(new AuditUnavailableError(this.#failure));
    return new Promise((resolve, reject) => this.#waiters.push({ upto: this.#appended, resolve, reject }));
  }

  /** Asks for a signed checkpoint after the newest line, when there is anything new to vouch for. */
  requestCheckpoint(): void {
    if (this.#o.signer === undefined || this.#lastWasCheckpoint) return;
    if (this.#sealedHead.seq === 0 && this.#pending.length === 0) return;
    this.#checkpointWanted = true;
    this.#kick();
  }

  /** Writes what is queued (with a last checkpoint), waits up to `timeoutMs` for it, releases the lock. */
  async close(timeoutMs = 5_000): Promise<void> {
    if (this.#closed) return;
    this.requestCheckpoint();
    this.#closed = true;
    if (this.#checkpoints) clearInterval(this.#checkpoints);
    const drained = new Promise<boolean>((resolve) => {
      if (!this.#busy()) return resolve(true);
      this.#idle.push(() => resolve(true));
    });
    const timer = new Promise<boolean>((resolve) => setTimeout(() => resolve(false), timeoutMs).unref());
    if (!(await Promise.race([drained, timer]))) {
      this.#o.logger.error({ unwritten: this.#appended - this.#durable }, 'audit log closed with events it could not write');
    }
    if (this.#retry) clearTimeout(this.#retry);
    await this.#fh?.close().catch(() => undefined);
    this.#fh = undefined;
    for (const w of this.#waiters.splice(0)) w.reject(new AuditUnavailableError(this.#failure));
    await unlink(seriesLock(this.#series)).catch(() => undefined);
  }

  #busy(): boolean {
    return this.#running || this.#batch !== undefined || this.#pending.length > 0 || this.#checkpointWanted;
  }

  #kick(): void {
    if (this.#running || this.#retry !== undefined) return;
    this.#running = true;
    // setImmediate: everything emitted in this turn of the event loop goes into one batch.
    setImmediate(() => void this.#drain());
  }

  async #drain(): Promise<void> {
    try {
      for (;;) {
        if (this.#batch === undefined) {
          if (this.#pending.length === 0 && !this.#checkpointWanted) break;
          this.#batch = this.#seal();
        }
        await this.#write(this.#batch);
        this.#completed(this.#batch);
        this.#batch = undefined;
      }
      this.#running = false;
      for (const f of this.#idle.splice(0)) f();
    } catch (err) {
      this.#running = false;
      this.#failed(err);
    }
  }

  /** Seals every pending event (and a wanted checkpoint) into the next batch. */
  #seal(): Batch {
    const lines: Buffer[] = [];
    let head = this.#sealedHead;
    let ts = '';
    const events = this.#pending.length;
    for (const p of this.#pending) {
      const sealed = sealLine(p.event, p.ts, this.#instance, head);
      lines.push(Buffer.from(`${sealed.line}\n`, 'utf8'));
      head = sealed.head;
      ts = p.ts;
    }
    this.#pending = [];
    const signer = this.#o.signer;
    if (this.#checkpointWanted && signer !== undefined && head.seq > 0) {
      ts = new Date(this.#o.now()).toISOString();
      const checkpoint: AuditEvent = { type: 'checkpoint', upto: head.seq, head: head.hash, sig: signer.sign(this.#instance, head.seq, head.hash), keyId: signer.keyId };
      const sealed = sealLine(checkpoint, ts, this.#instance, head);
      lines.push(Buffer.from(`${sealed.line}\n`, 'utf8'));
      head = sealed.head;
      this.#lastWasCheckpoint = true;
    }
    this.#checkpointWanted = false;
    this.#sealedHead = head;
    return { lines, head, ts, events, done: 0 };
  }

  /** Appends the batch's remaining lines, rotating at `rotateBytes`, each file's part made durable. */
  async #write(batch: Batch): Promise<void> {
    while (batch.done < batch.lines.length) {
      await this.#ensureFile();
      if (batch.segment !== undefined && batch.segment.ino !== this.#ino) batch.segment = undefined;
      if (batch.segment === undefined) {
        const first = batch.lines[batch.done] as Buffer;
        if (this.#size > 0 && this.#size + first.length > this.#o.rotateBytes) await this.#rotate();
        let bytes = 0;
        let count = 0;
        for (let i = batch.done; i < batch.lines.length; i++) {
          const len = (batch.lines[i] as Buffer).length;
          if (count > 0 && this.#size + bytes + len > this.#o.rotateBytes) break;
          bytes += len;
          count++;
        }
        const buf = count === 1 ? first : Buffer.concat(batch.lines.slice(batch.done, batch.done + count), bytes);
        batch.segment = { buf, lines: count, ino: this.#ino, off: 0 };
      }
      const seg = batch.segment;
      const fh = this.#fh as FileHandle;
      while (seg.off < seg.buf.length) {
        const { bytesWritten } = await fh.write(seg.buf, seg.off, seg.buf.length - seg.off);
        seg.off += bytesWritten;
        this.#size += bytesWritten;
      }
      await fh.datasync();
      batch.done += seg.lines;
      batch.segment = undefined;
    }
  }

  /** Opens the current file, or a new one when the one held was removed or replaced. */
  async #ensureFile(): Promise<void> {
    if (this.#fh !== undefined) {
      const path = seriesFile(this.#series, this.#n);
      const onDisk = await stat(path).catch(() => undefined);
      if (onDisk !== undefined && onDisk.ino === this.#ino) return;
      // Lines written to an unlinked file would be lost: the chain goes on in a new file, and
      // `audit verify` shows the missing lines as a gap before it.
      this.#o.logger.error({ file: path }, 'audit file was removed or replaced; continuing in a new file');
      await this.#fh.close().catch(() => undefined);
      this.#fh = undefined;
      this.#n++;
      this.#size = 0;
    }
    if (this.#n === 0) this.#n = 1;
    await this.#openCurrent();
  }

  async #rotate(): Promise<void> {
    await this.#fh?.close().catch(() => undefined);
    this.#fh = undefined;
    this.#n++;
    this.#size = 0;
    await this.#openCurrent();
  }

  async #openCurrent(): Promise<void> {
    const path = seriesFile(this.#series, this.#n);
    // 'a' appends to the file a restart resumes; a new number is created exclusively.
    const fh = await open(path, this.#size > 0 ? 'a' : 'ax', 0o640).catch(async (err: NodeJS.ErrnoException) => {
      if (err.code === 'EEXIST') return open(path, 'a', 0o640);
      throw err;
    });
    const st = await fh.stat();
    this.#fh = fh;
    this.#ino = st.ino;
    this.#size = st.size;
    // The new directory entry must survive a crash as much as the lines in it.
    const dir = await open(this.#series.dir, 'r');
    await dir.sync().finally(() => dir.close());
  }

  #completed(batch: Batch): void {
    this.#durable += batch.events;
    this.#durableHead = batch.head;
    this.#durableTs = batch.ts;
    if (!this.#available) {
      this.#available = true;
      this.#overflowed = false;
      this.#o.logger.warn({ file: seriesFile(this.#series, this.#n) }, 'audit log writable again');
    }
    const still: Waiter[] = [];
    for (const w of this.#waiters) (w.upto <= this.#durable ? w.resolve() : still.push(w));
    this.#waiters = still;
  }

  #failed(err: unknown): void {
    if (this.#available) this.#o.logger.error({ err, file: seriesFile(this.#series, this.#n) }, 'audit log write failed: refusing new sessions until it works again');
    this.#available = false;
    this.#failure = err;
    for (const w of this.#waiters.splice(0)) w.reject(new AuditUnavailableError(err));
    if (this.#closed) {
      for (const f of this.#idle.splice(0)) f();
      return;
    }
    this.#retry = setTimeout(() => {
      this.#retry = undefined;
      this.#kick();
    }, this.#o.retryMs ?? 500);
    this.#retry.unref();
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
