// Appends one instance's audit lines to its files (docs/design.md §6), on the event loop: sealing a
// batch is bounded (SEAL_AT_MOST_BYTES of queued lines at a time) and every file operation is
// asynchronous and one at a time, so a disk that stalls holds up the audit (and then, failing closed,
// the logins) and one of libuv's pool threads, never the relay.
// Events are sealed into the chain in the order they arrive and appended in batches (one write each,
// at most one batch every BATCH_EVERY_MS): everything that arrives meanwhile joins the next batch.
// fdatasync runs when someone waits for an event to be on disk (a login, a refusal: the owner asks),
// and otherwise at most SYNC_AT_LEAST_EVERY_MS after the first line that is not yet synced: an
// fdatasync costs the kernel about as much for one line as for a thousand, and one per statement
// costs more CPU than the statement. A batch that fails is kept and retried as it is (same lines,
// same hashes): nothing is reordered, lost or written twice.
import { open, stat, type FileHandle } from 'node:fs/promises';
import { withRoom } from './bytes.js';
import { eventJson, sealQueuedInto, type ChainHead } from './chain.js';
import { seriesFile, type Series } from './files.js';
import { signerFromPem, type CheckpointSigner } from './signing.js';

/** Where the chain and the files stand when the appender starts (from audit/resume.ts). */
export interface AppenderState {
  readonly series: Series;
  readonly instance: string;
  readonly rotateBytes: number;
  readonly n: number;
  readonly size: number;
  readonly head: ChainHead;
  readonly retryMs: number;
  /** `audit.signingKey` as PEM: checkpoints are signed in the appender, after the line they vouch for. */
  readonly signingKeyPem?: string;
}

/** What the appender tells its owner. */
export interface AppenderReport {
  /** `events` more of the owner's events are on disk; the chain's head is now `head`. */
  durable(r: { events: number; head: ChainHead; ts: string; file: string }): void;
  failed(err: { code: string | undefined; message: string }, file: string): void;
  recovered(file: string): void;
  /** The file at the path was removed or replaced; the chain goes on in the next file. */
  replaced(file: string): void;
}

/** A batch starts at most this long after the previous one started (100 writes a second at most). */
export const BATCH_EVERY_MS = 10;
/** Lines nobody waits for are made durable at most this long after they were written. */
export const SYNC_AT_LEAST_EVERY_MS = 200;

/** The bytes a batch is sealed into to start with; reused from batch to batch, grown when one needs more. */
const SCRATCH_BYTES = 1 << 20;
/** What separates a queued line's ts from its JSON, and ends the line. */
const TAB = 0x09;
const NEWLINE = 0x0a;
/** A scratch buffer grown past this (a long line) is not kept for the next batch. */
const SCRATCH_KEPT_BYTES = 16 << 20;
/**
 * A batch seals the owner's queued batches until it has taken this many of their bytes (at least
 * one): a backlog after an outage (up to `audit.maxPending` events) is sealed a few milliseconds of
 * the event loop at a time, between the writes, instead of in one long stop of every session's relay.
 */
const SEAL_AT_MOST_BYTES = 512 << 10;

/** A batch of the owner's queued lines (see `enqueue`) and how many events it holds. */
interface Queued {
  readonly bytes: Buffer;
  readonly events: number;
}

interface Batch {
  /** The sealed lines as UTF-8, newline included, one after another. */
  readonly bytes: Buffer;
  /** Where each line ends in `bytes`. */
  readonly ends: readonly number[];
  readonly head: ChainHead;
  readonly ts: string;
  /** The owner's events in this batch (checkpoints are the appender's own). */
  readonly events: number;
  /** Lines already durable. */
  done: number;
  /** The lines being appended to the current file, and how many bytes of them made it. */
  segment?: { readonly buf: Buffer; readonly lines: number; readonly ino: number; off: number };
}

export class Appender {
  readonly #s: AppenderState;
  readonly #report: AppenderReport;
  /** JSON.stringify(instance) as UTF-8, copied into every line. */
  readonly #instanceJson: Buffer;
  readonly #signer: CheckpointSigner | undefined;
  /** Batches from the owner, and the events they hold in all. */
  #pending: Queued[] = [];
  #pendingEvents = 0;
  #batch: Batch | undefined;
  #head: ChainHead;
  #lastWasCheckpoint = false;
  /**
   * What batches are sealed into. One batch is sealed only once the one before is written, so the
   * next batch can reuse the bytes: a batch's lines cost no string per line and no copy to join them.
   */
  #scratch = Buffer.allocUnsafeSlow(SCRATCH_BYTES);
  #checkpointWanted = false;
  #n: number;
  #size: number;
  #fh: FileHandle | undefined;
  #ino = 0;
  #running = false;
  #failing = false;
  #retry: NodeJS.Timeout | undefined;
  #closing = false;
  #idle: (() => void)[] = [];
  #lastBatchAt = 0;
  /** Written but not yet fdatasync'ed: the owner's events, and where the chain stands after them. */
  #unsynced: { events: number; head: ChainHead; ts: string } | undefined;
  #syncWanted = false;
  #syncTimer: NodeJS.Timeout | undefined;

  constructor(s: AppenderState, report: AppenderReport) {
    this.#s = s;
    this.#report = report;
    this.#instanceJson = Buffer.from(JSON.stringify(s.instance), 'utf8');
    this.#signer = s.signingKeyPem === undefined ? undefined : signerFromPem(s.signingKeyPem);
    this.#head = s.head;
    this.#n = s.n;
    this.#size = s.size;
  }

  /**
   * Queues a batch of `events` events from the owner, one per line: `<ts>\t<event JSON>\n` as UTF-8
   * (the JSON has `type` first, audit/chain.ts eventJson; JSON text never holds a raw tab or newline).
   * The batch's bytes are the appender's until they are sealed.
   */
  enqueue(batch: Buffer, events: number): void {
    if (events === 0) return;
    this.#pending.push({ bytes: batch, events });
    this.#pendingEvents += events;
    this.#lastWasCheckpoint = false;
    this.#kick();
  }

  /** Someone waits for everything sent so far to be on disk: fdatasync as soon as it is written. */
  requestSync(): void {
    this.#syncWanted = true;
    this.#kick();
  }

  /** A signed checkpoint after the newest line, when there is anything new to vouch for. */
  requestCheckpoint(): void {
    if (this.#signer === undefined || this.#lastWasCheckpoint) return;
    if (this.#head.seq === 0 && this.#pendingEvents === 0) return;
    this.#checkpointWanted = true;
    this.#kick();
  }

  /** Writes what is queued (with a last checkpoint), waiting at most `timeoutMs`; then closes the file. */
  async close(timeoutMs: number): Promise<{ unwritten: number }> {
    this.requestCheckpoint();
    this.#closing = true;
    // Written lines waiting for their timed sync are synced now.
    if (this.#unsynced !== undefined) this.#kick();
    const drained = new Promise<void>((resolve) => (this.#busy() ? this.#idle.push(resolve) : resolve()));
    await Promise.race([drained, new Promise<void>((resolve) => setTimeout(resolve, timeoutMs).unref())]);
    if (this.#retry) clearTimeout(this.#retry);
    if (this.#syncTimer) clearTimeout(this.#syncTimer);
    const unwritten = this.#pendingEvents + (this.#batch ? this.#batch.events : 0) + (this.#unsynced?.events ?? 0);
    await this.#fh?.close().catch(() => undefined);
    this.#fh = undefined;
    return { unwritten };
  }

  #busy(): boolean {
    return this.#running || this.#batch !== undefined || this.#pendingEvents > 0 || this.#checkpointWanted || this.#unsynced !== undefined;
  }

  #kick(): void {
    if (this.#running || this.#retry !== undefined) return;
    this.#running = true;
    // setImmediate: everything that arrives in this turn of the event loop goes into one batch.
    setImmediate(() => void this.#drain());
  }

  async #drain(): Promise<void> {
    try {
      for (;;) {
        if (this.#batch === undefined) {
          if (this.#pendingEvents === 0 && !this.#checkpointWanted) {
            // Nothing more to write: sync now if someone waits (or at close), then look again,
            // since events that arrived during the sync found this loop running and did not wake it.
            if (this.#unsynced !== undefined && (this.#syncWanted || this.#closing)) {
              await this.#sync();
              continue;
            }
            if (this.#unsynced !== undefined) this.#syncLater();
            break;
          }
          // What arrives in the meantime joins this batch, unless someone is waiting for it.
          const wait = this.#lastBatchAt + BATCH_EVERY_MS - Date.now();
          if (wait > 0 && !this.#closing && !this.#syncWanted) await new Promise((resolve) => setTimeout(resolve, wait));
          this.#lastBatchAt = Date.now();
          this.#batch = this.#seal();
        }
        await this.#write(this.#batch);
        this.#written(this.#batch);
        this.#batch = undefined;
      }
      this.#running = false;
      for (const f of this.#idle.splice(0)) f();
    } catch (err) {
      this.#running = false;
      this.#failed(err);
    }
  }

  /** Seals the pending events, up to SEAL_AT_MOST_BYTES of them (and, once none is left, a wanted checkpoint), into the next batch. */
  #seal(): Batch {
    let out = this.#scratch;
    let used = 0;
    const ends: number[] = [];
    let head = this.#head;
    // The last sealed line's ts (the batch's), read as text once at the end.
    let lastSrc: Buffer | undefined;
    let lastAt = 0;
    let lastTab = 0;
    // Seals the queued line of `src` that starts at `at` into `out` after `used`, growing `out` when
    // the line may not fit; returns where the next queued line starts.
    const seal = (src: Buffer, at: number): number => {
      const tab = src.indexOf(TAB, at);
      const end = src.indexOf(NEWLINE, tab);
      let sealed = sealQueuedInto(out, used, src, at, tab, end, this.#instanceJson, head);
      while (sealed === undefined) {
        out = withRoom(out, used, out.length);
        sealed = sealQueuedInto(out, used, src, at, tab, end, this.#instanceJson, head);
      }
      used = sealed.end;
      ends.push(used);
      head = sealed.head;
      lastSrc = src;
      lastAt = at;
      lastTab = tab;
      return end + 1;
    };
    let taken = 0;
    let takenBytes = 0;
    let events = 0;
    while (taken < this.#pending.length && (taken === 0 || takenBytes < SEAL_AT_MOST_BYTES)) {
      const batch = this.#pending[taken++] as Queued;
      for (let at = 0; at < batch.bytes.length; ) at = seal(batch.bytes, at);
      takenBytes += batch.bytes.length;
      events += batch.events;
    }
    this.#pending.splice(0, taken);
    this.#pendingEvents -= events;
    // A checkpoint vouches for everything sent before it was asked for: it waits for the last of it.
    if (this.#checkpointWanted && this.#pending.length === 0) {
      if (this.#signer !== undefined && head.seq > 0) {
        const json = eventJson({ type: 'checkpoint', upto: head.seq, head: head.hash, sig: this.#signer.sign(this.#s.instance, head.seq, head.hash), keyId: this.#signer.keyId });
        seal(Buffer.from(`${new Date().toISOString()}\t${json}\n`, 'utf8'), 0);
        this.#lastWasCheckpoint = true;
      }
      this.#checkpointWanted = false;
    }
    this.#head = head;
    this.#scratch = out.length > SCRATCH_KEPT_BYTES ? Buffer.allocUnsafeSlow(SCRATCH_BYTES) : out;
    const ts = lastSrc === undefined ? '' : lastSrc.toString('latin1', lastAt, lastTab);
    return { bytes: out, ends, head, ts, events, done: 0 };
  }

  /** Appends the batch's remaining lines, rotating at `rotateBytes`, each file's part made durable. */
  async #write(batch: Batch): Promise<void> {
    const { ends } = batch;
    const startOf = (i: number): number => (i === 0 ? 0 : (ends[i - 1] as number));
    while (batch.done < ends.length) {
      await this.#ensureFile();
      if (batch.segment !== undefined && batch.segment.ino !== this.#ino) batch.segment = undefined;
      if (batch.segment === undefined) {
        const from = startOf(batch.done);
        if (this.#size > 0 && this.#size + (ends[batch.done] as number) - from > this.#s.rotateBytes) await this.#rotate();
        let count = 1;
        while (batch.done + count < ends.length && this.#size + (ends[batch.done + count] as number) - from <= this.#s.rotateBytes) count++;
        const to = ends[batch.done + count - 1] as number;
        batch.segment = { buf: batch.bytes.subarray(from, to), lines: count, ino: this.#ino, off: 0 };
      }
      const seg = batch.segment;
      // One operation at a time: a stalled disk holds one of libuv's pool threads, not all of them.
      const fh = this.#fh as FileHandle;
      while (seg.off < seg.buf.length) {
        const { bytesWritten } = await fh.write(seg.buf, seg.off, seg.buf.length - seg.off);
        seg.off += bytesWritten;
        this.#size += bytesWritten;
      }
      batch.done += seg.lines;
      batch.segment = undefined;
    }
  }

  /** Opens the current file, or a new one when the one held was removed or replaced. */
  async #ensureFile(): Promise<void> {
    if (this.#fh !== undefined) {
      const path = seriesFile(this.#s.series, this.#n);
      // One stat per batch; a path that cannot be read counts as replaced.
      if ((await inodeAt(path)) === this.#ino) return;
      // Lines written to an unlinked file would be lost: the chain goes on in a new file, and
      // `audit verify` shows the missing lines as a gap before it.
      this.#report.replaced(path);
      await this.#fh.close().catch(() => undefined);
      this.#fh = undefined;
      this.#n++;
      this.#size = 0;
    }
    if (this.#n === 0) this.#n = 1;
    await this.#openCurrent();
  }

  async #rotate(): Promise<void> {
    // What the old file holds is made durable before it is left behind.
    if (this.#fh !== undefined) await this.#fh.datasync();
    await this.#fh?.close().catch(() => undefined);
    this.#fh = undefined;
    this.#n++;
    this.#size = 0;
    await this.#openCurrent();
  }

  async #openCurrent(): Promise<void> {
    const path = seriesFile(this.#s.series, this.#n);
    // 'a' appends to the file a restart resumes; a new number is created exclusively. The folder is
    // never created here: a missing folder may be an unmounted volume.
    const fh = await open(path, this.#size > 0 ? 'a' : 'ax', 0o640).catch(async (err: NodeJS.ErrnoException) => {
      if (err.code === 'EEXIST') return open(path, 'a', 0o640);
      throw err;
    });
    const st = await fh.stat();
    this.#fh = fh;
    this.#ino = st.ino;
    this.#size = st.size;
    // The new directory entry must survive a crash as much as the lines in it.
    const dir = await open(this.#s.series.dir, 'r');
    await dir.sync().finally(() => dir.close());
  }

  /** The batch is in the file (not yet synced). */
  #written(batch: Batch): void {
    this.#unsynced = { events: (this.#unsynced?.events ?? 0) + batch.events, head: batch.head, ts: batch.ts };
  }

  /** fdatasync, then everything written so far is durable. */
  async #sync(): Promise<void> {
    const done = this.#unsynced;
    if (done === undefined) return;
    this.#syncWanted = false;
    if (this.#syncTimer) clearTimeout(this.#syncTimer);
    this.#syncTimer = undefined;
    await (this.#fh as FileHandle).datasync();
    this.#unsynced = undefined;
    const file = seriesFile(this.#s.series, this.#n);
    if (this.#failing) {
      this.#failing = false;
      this.#report.recovered(file);
    }
    this.#report.durable({ events: done.events, head: done.head, ts: done.ts, file });
  }

  #syncLater(): void {
    if (this.#syncTimer !== undefined) return;
    this.#syncTimer = setTimeout(() => {
      this.#syncTimer = undefined;
      this.#syncWanted = true;
      this.#kick();
    }, SYNC_AT_LEAST_EVERY_MS);
    // Neither this timer nor the retry's keeps the process alive by itself: close() syncs what is left.
    this.#syncTimer.unref();
  }

  #failed(err: unknown): void {
    const e = err as NodeJS.ErrnoException;
    // A sync that failed is tried again with the retry.
    if (this.#unsynced !== undefined) this.#syncWanted = true;
    if (!this.#failing) this.#report.failed({ code: e?.code, message: e?.message ?? String(err) }, seriesFile(this.#s.series, this.#n));
    this.#failing = true;
    if (this.#closing) {
      for (const f of this.#idle.splice(0)) f();
      return;
    }
    this.#retry = setTimeout(() => {
      this.#retry = undefined;
      this.#kick();
    }, this.#s.retryMs);
    this.#retry.unref();
  }
}

/** The inode at `path`, or undefined when there is nothing there (or it cannot be looked at). */
async function inodeAt(path: string): Promise<number | undefined> {
  try {
    return (await stat(path)).ino;
  } catch {
    return undefined;
  }
}
