// Follows the message boundaries of a typed-message stream (type byte + int32 length that counts
// itself) as chunks flow past, keeping at most `maxPrefix` body bytes of the types the audit reads.
// The caller forwards the chunks unchanged; the tap never buffers a whole message, so a 1 GB DataRow
// costs a counter, not memory.
import type { RawMessage } from '../wire/message-types.js';
import { WireError, WireErrorCode } from '../wire/wire-error.js';

export interface MessageTapOptions {
  /** Body bytes kept per interesting message (e.g. the start of a query text). */
  readonly maxPrefix: number;
  /** Types whose prefix is copied; every other message is reported with an empty prefix. */
  readonly interesting: ReadonlySet<number> | ((type: number) => boolean);
  /**
   * Body bytes kept per type, when types need different amounts (the statement audit keeps 4 KiB
   * of a Query but one byte of ReadyForQuery); overrides `maxPrefix` and `interesting`. Its table is
   * built once per function: pass the same function (not a new closure) to every tap.
   */
  readonly prefixFor?: (type: number) => number;
  /**
   * Called when a message's last byte has passed. `prefix` is valid only until this returns: when
   * the kept bytes lie in one chunk it is a view of that chunk, whose memory the relay reuses for
   * its next read (proxy/relay/pipe.ts `serverReads`), so whatever must outlive the call is copied
   * (the statement matcher keeps strings). Only a prefix spread over chunks is the tap's own copy.
   */
  onMessage(msg: RawMessage): void;
  /** Called once when the stream stops making sense; the tap ignores everything after it. */
  onViolation?(error: WireError): void;
}

export interface MessageTap {
  /** Feeds the next chunk of the stream. Never throws for any bytes (only if a callback throws). */
  push(chunk: Buffer): void;
  /** The violation that stopped the tap, if any. */
  readonly violation: WireError | undefined;
  /**
   * True when every byte pushed so far ends a whole message: a message of our own (a FATAL) can be
   * written to the same stream without splitting one that is in flight.
   */
  readonly atBoundary: boolean;
}

const HEADER = 5;
const EMPTY = Buffer.alloc(0);

// A 256-entry table of prefix lengths: one indexed load per message instead of a Set lookup or a call.
// Tables built from a `prefixFor` are shared by every tap given the same function (they are only
// read), so a session does not carry two kilobytes of copies of the same numbers.
const tables = new WeakMap<(type: number) => number, Uint32Array>();

function sharedTable(prefixFor: (type: number) => number): Uint32Array {
  let table = tables.get(prefixFor);
  if (table === undefined) {
    table = new Uint32Array(256);
    for (let t = 0; t < 256; t++) {
      const n = prefixFor(t);
      if (!Number.isInteger(n) || n < 0) throw new RangeError('prefixFor must return non-negative integers');
      table[t] = n;
    }
    tables.set(prefixFor, table);
  }
  return table;
}

function ownTable(maxPrefix: number, interesting: MessageTapOptions['interesting']): Uint32Array {
  const table = new Uint32Array(256);
  for (let t = 0; t < 256; t++) {
    const yes = typeof interesting === 'function' ? interesting(t) : interesting.has(t);
    table[t] = yes ? maxPrefix : 0;
  }
  return table;
}

/** Creates a tap for one direction of one session. */
export function createMessageTap(options: MessageTapOptions): MessageTap {
  const { maxPrefix, onMessage, onViolation } = options;
  if (!Number.isInteger(maxPrefix) || maxPrefix < 0) throw new RangeError('maxPrefix must be a non-negative integer');
  const keep = options.prefixFor !== undefined ? sharedTable(options.prefixFor) : ownTable(maxPrefix, options.interesting);
  const header = Buffer.alloc(HEADER);
  let headerFill = 0;
  let type = 0;
  let length = 0;
  let remaining = 0;
  let prefix: Buffer | undefined;
  let prefixFill = 0;
  let violation: WireError | undefined;

  function emit(): void {
    const p = prefix ?? EMPTY;
    prefix = undefined;
    onMessage({ type, length, prefix: p });
  }

  function push(chunk: Buffer): void {
    if (violation !== undefined) return;
    const n = chunk.length;
    let off = 0;
    while (off < n) {
      if (remaining > 0) {
        const take = remaining < n - off ? remaining : n - off;
        if (prefix !== undefined && prefixFill < prefix.length) {
          const c = Math.min(take, prefix.length - prefixFill);
          chunk.copy(prefix, prefixFill, off, off + c);
          prefixFill += c;
        }
        off += take;
        remaining -= take;
        if (remaining === 0) emit();
        continue;
      }
      if (headerFill === 0 && n - off >= HEADER) {
        type = chunk[off] as number;
        length = chunk.readInt32BE(off + 1);
        off += HEADER;
      } else {
        const c = Math.min(HEADER - headerFill, n - off);
        chunk.copy(header, headerFill, off, off + c);
        headerFill += c;
        off += c;
        if (headerFill < HEADER) return;
        headerFill = 0;
        type = header[0] as number;
        length = header.readInt32BE(1);
      }
      // Signed read: lengths of 2^31 and more come out negative and are refused here too.
      if (length < 4) {
        violation = new WireError(WireErrorCode.invalidMessageLength, 'invalid message length');
        onViolation?.(violation);
        return;
      }
      remaining = length - 4;
      const want = Math.min(keep[type] as number, remaining);
      if (want === 0) {
        prefix = undefined;
      } else if (n - off >= want) {
        // The kept bytes are all in this chunk: a view, no allocation and no copy (see onMessage).
        prefix = chunk.subarray(off, off + want);
        prefixFill = want;
      } else {
        // allocUnsafe is safe: the prefix is filled completely before it is emitted.
        prefix = Buffer.allocUnsafe(want);
        prefixFill = 0;
      }
      if (remaining === 0) emit();
    }
  }

  return {
    push,
    get violation(): WireError | undefined {
      return violation;
    },
    get atBoundary(): boolean {
      return violation === undefined && remaining === 0 && headerFill === 0;
    },
  };
}
