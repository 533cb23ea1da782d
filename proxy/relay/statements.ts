// Matches every statement a client sends (simple Query, Parse/Bind/Execute, FunctionCall, COPY) to
// its outcome from the server (docs/design.md §2 step 8), from the message boundaries the relay taps
// report. The server answers in the order it was asked, so the requests wait in one queue and each
// server message belongs to the request at its head, however many the client pipelined. After an
// error inside an extended-protocol batch the server discards everything until Sync (protocol.sgml,
// "Extended Query"): those statements are reported as skipped.
import { decodeBackendMessage, parseCommandTag } from '../wire/backend-decode.js';
import { decodeFrontendMessage } from '../wire/frontend-decode.js';
import { BackendType, FrontendType, type RawMessage } from '../wire/message-types.js';

export type StatementProtocol = 'simple' | 'extended' | 'function' | 'copy';
export type StatementOutcome = 'ok' | 'error' | 'skipped' | 'suspended' | 'unfinished';

/** One statement and what became of it. `text` is raw (the audit log redacts it). */
export interface StatementRecord {
  readonly protocol: StatementProtocol;
  readonly text: string | null;
  readonly truncated: boolean;
  readonly statement?: string;
  readonly portal?: string;
  readonly function?: number;
  readonly paramCount: number | null;
  /** Only with `parameters`: text values as text, binary ones as \x hex, SQL NULL as null. */
  readonly values?: readonly (string | null)[];
  readonly copy?: { readonly direction: 'in' | 'out'; readonly bytes: number };
  readonly outcome: StatementOutcome;
  readonly tag: string | null;
  readonly rows: number | null;
  readonly sqlstate: string | null;
  readonly ms: number;
}

/**
 * Body bytes each tap keeps per message type, so no buffer grows with the message (a 1 GB query
 * costs 4 KiB). Query and Parse keep the start of the SQL; Bind its names and counts (and values
 * with `parameters`); CommandComplete its tag; ErrorResponse its leading fields, where the server
 * puts severity and SQLSTATE (ereport's send_message_to_frontend writes S, V, C before M).
 */
export const STATEMENT_TEXT_BYTES = 4096;
const BIND_BYTES = 512;
const VALUE_CHARS = 256;
const BINARY_VALUE_BYTES = 64;

export function clientPrefixLimit(type: number, parameters: boolean): number {
  switch (type) {
    case FrontendType.query:
    case FrontendType.parse:
      return STATEMENT_TEXT_BYTES;
    case FrontendType.bind:
      return parameters ? STATEMENT_TEXT_BYTES : BIND_BYTES;
    case FrontendType.execute:
    case FrontendType.close:
    case FrontendType.describe:
      return 256;
    case FrontendType.functionCall:
      return 64;
    default:
      return 0;
  }
}

export function serverPrefixLimit(type: number): number {
  switch (type) {
    case BackendType.readyForQuery:
      return 1;
    case BackendType.commandComplete:
      return 128;
    case BackendType.errorResponse:
      return 512;
    case BackendType.copyInResponse:
    case BackendType.copyOutResponse:
    case BackendType.copyBothResponse:
      return 3;
    default:
      return 0;
  }
}

// Bounds on what one session keeps between messages (docs/style.md 5): named prepared statements and
// portals (the client decides how many; the oldest are forgotten), and the text of queued simple
// queries (a client that pipelines without reading gets its later texts recorded as null).
const MAX_PREPARED = 2048;
const MAX_PORTALS = 256;
const MAX_QUEUED_TEXT = 8 * 1024 * 1024;
/** Past this many unanswered requests the stream is not a client waiting for answers: give up. */
const MAX_QUEUE = 1_000_000;

/** A statement while it waits for its outcome; once finished it is handed out as its own StatementRecord. */
interface Draft extends StatementRecord {
  protocol: StatementProtocol;
  text: string | null;
  truncated: boolean;
  statement?: string;
  portal?: string;
  function?: number;
  paramCount: number | null;
  values?: (string | null)[];
  copy?: { direction: 'in' | 'out'; bytes: number };
  /** The first CommandComplete tag, and any further ones (a Query with several statements). */
  tag: string | null;
  moreTags?: string[];
  rows: number | null;
  dataRows: number;
  sqlstate: string | null;
  outcome: StatementOutcome;
  ms: number;
  started: number;
  /** Bytes of `text` counted against MAX_QUEUED_TEXT while queued. */
  held: number;
}

/**
 * What the server owes for one client message, in the order the client sent them. Parse and Bind
 * keep their statement's text: when one of them fails and no Execute of that batch is queued, the
 * failure is recorded as a statement of its own.
 */
type Pending =
  | { readonly kind: 'query' | 'function' | 'execute'; readonly draft: Draft }
  | { readonly kind: 'parse' | 'bind'; readonly statement: string; readonly text: string | null; readonly truncated: boolean }
  | { readonly kind: 'close' | 'describe' }
  | { readonly kind: 'sync' };

interface Prepared {
  readonly text: string | null;
  readonly truncated: boolean;
}

interface Portal extends Prepared {
  readonly statement: string;
  readonly paramCount: number | null;
  readonly values: (string | null)[] | undefined;
}

export interface StatementTrackerOptions {
  /** Monotonic milliseconds (performance.now). */
  readonly now: () => number;
  /** `audit.parameters`: keep Bind values. */
  readonly parameters: boolean;
  readonly onStatement: (r: StatementRecord) => void;
}

/** One session's statement matcher; feed it every whole message of both directions, in order. */
export class StatementTracker {
  readonly #o: StatementTrackerOptions;
  readonly #queue: Pending[] = [];
  #head = 0;
  // The unnamed statement and portal (what most drivers use, replaced at every query) have a slot
  // each; named ones live in bounded maps, oldest forgotten first.
  #unnamedStatement: Prepared | undefined;
  #unnamedPortal: Portal | undefined;
  #prepared = new Map<string, Prepared>();
  #portals = new Map<string, Portal>();
  #queuedText = 0;
  /** The server is discarding everything until the client's next Sync. */
  #skipping = false;
  /**
   * A Parse or Bind that failed before the client sent its Execute: the next Execute is that
   * statement (recorded once, as the error), or at Sync the failure is recorded on its own.
   */
  #failedEarly: Draft | undefined;

  constructor(o: StatementTrackerOptions) {
    this.#o = o;
  }

  /** A whole client message passed toward the server. Throws only when the queue bound is exceeded. */
  fromClient(msg: RawMessage): void {
    switch (msg.type) {
      case FrontendType.query: {
        // The common case read directly (the text ends at its NUL inside the kept prefix); a text
        // cut by the prefix goes through the decoder, which cuts it at a character boundary.
        const nul = msg.prefix.indexOf(0);
        if (nul >= 0) {
          this.#request({ kind: 'query', draft: this.#draft('simple', msg.prefix.toString('utf8', 0, nul), false, 0, true) });
          return;
        }
        const d = decodeFrontendMessage(msg);
        const text = d.kind === 'query' ? d.text : null;
        this.#request({ kind: 'query', draft: this.#draft('simple', text, d.kind === 'query' && d.truncated, 0, true) });
        return;
      }
      case FrontendType.parse: {
        const d = decodeFrontendMessage(msg);
        const statement = d.kind === 'parse' ? d.statement ?? '' : '';
        const prepared = { text: d.kind === 'parse' ? d.text ?? null : null, truncated: d.kind === 'parse' && d.truncated };
        if (statement === '') this.#unnamedStatement = prepared;
        else remember(this.#prepared, statement, prepared, MAX_PREPARED);
        this.#request({ kind: 'parse', statement, text: prepared.text, truncated: prepared.truncated });
        return;
      }
      case FrontendType.bind: {
        const d = decodeFrontendMessage(msg, { bindValues: this.#o.parameters });
        const statement = d.kind === 'bind' ? d.statement ?? '' : '';
        const prepared = statement === '' ? this.#unnamedStatement : this.#prepared.get(statement);
        if (d.kind === 'bind') {
          const portal: Portal = {
            statement,
            text: prepared?.text ?? null,
            truncated: prepared?.truncated ?? false,
            paramCount: d.paramCount ?? null,
            values: d.values !== undefined ? auditValues(d.values, d.paramFormats ?? []) : undefined,
          };
          const name = d.portal ?? '';
          if (name === '') this.#unnamedPortal = portal;
          else remember(this.#portals, name, portal, MAX_PORTALS);
        }
        this.#request({ kind: 'bind', statement, text: prepared?.text ?? null, truncated: prepared?.truncated ?? false });
        return;
      }
      case FrontendType.execute: {
        const d = decodeFrontendMessage(msg);
        const name = d.kind === 'execute' ? d.portal : '';
        const portal = name === '' ? this.#unnamedPortal : this.#portals.get(name);
        const draft = this.#draft('extended', portal?.text ?? null, portal?.truncated ?? false, portal?.paramCount ?? null, false);
        draft.statement = portal?.statement ?? '';
        draft.portal = name;
        if (portal?.values !== undefined) draft.values = portal.values;
        this.#request({ kind: 'execute', draft });
        return;
      }
      case FrontendType.functionCall: {
        const d = decodeFrontendMessage(msg);
        const draft = this.#draft('function', null, false, d.kind === 'functionCall' ? d.argCount ?? null : null, false);
        if (d.kind === 'functionCall') draft.function = d.oid;
        this.#request({ kind: 'function', draft });
        return;
      }
      case FrontendType.close: {
        const d = decodeFrontendMessage(msg);
        if (d.kind === 'close') {
          const statement = d.target === 'statement';
          if (d.name !== '') (statement ? this.#prepared : this.#portals).delete(d.name);
          else if (statement) this.#unnamedStatement = undefined;
          else this.#unnamedPortal = undefined;
        }
        this.#request({ kind: 'close' });
        return;
      }
      case FrontendType.describe:
        this.#request({ kind: 'describe' });
        return;
      case FrontendType.sync:
        this.#skipping = false;
        this.#flushFailedEarly();
        this.#push({ kind: 'sync' });
        return;
      case FrontendType.copyData: {
        const copy = this.#current()?.copy;
        if (copy?.direction === 'in') copy.bytes += msg.length - 4;
        return;
      }
      default:
        return;
    }
  }

  /** A whole server message passed toward the client. */
  fromServer(msg: RawMessage): void {
    const head = this.#queue[this.#head];
    switch (msg.type) {
      case BackendType.parseComplete:
      case BackendType.bindComplete:
      case BackendType.closeComplete:
        if (head !== undefined && (head.kind === 'parse' || head.kind === 'bind' || head.kind === 'close')) this.#shift();
        return;
      case BackendType.rowDescription:
      case BackendType.noData:
        // Describe of a statement answers ParameterDescription then one of these; of a portal just one.
        if (head?.kind === 'describe') this.#shift();
        return;
      case BackendType.dataRow: {
        const d = this.#current();
        if (d !== undefined) d.dataRows++;
        return;
      }
      case BackendType.copyInResponse:
      case BackendType.copyOutResponse: {
        const d = this.#current();
        if (d !== undefined) {
          d.protocol = 'copy';
          d.copy = { direction: msg.type === BackendType.copyInResponse ? 'in' : 'out', bytes: 0 };
        }
        return;
      }
      case BackendType.copyData: {
        const copy = this.#current()?.copy;
        if (copy?.direction === 'out') copy.bytes += msg.length - 4;
        return;
      }
      case BackendType.commandComplete: {
        if (head === undefined || !('draft' in head)) return;
        // A tag is short ASCII ("SELECT 1", "INSERT 0 5"); the kept prefix holds it with its NUL.
        const nul = msg.prefix.indexOf(0);
        const tag = msg.prefix.toString('latin1', 0, nul < 0 ? msg.prefix.length : nul);
        const rows = parseCommandTag(tag).rows;
        const d = head.draft;
        if (d.tag === null) d.tag = tag;
        else (d.moreTags ??= []).push(tag);
        if (rows !== undefined) d.rows = (d.rows ?? 0) + rows;
        if (head.kind === 'execute') {
          this.#shift();
          this.#finish(head, 'ok');
        }
        return;
      }
      case BackendType.emptyQueryResponse:
        if (head?.kind === 'execute') {
          this.#shift();
          this.#finish(head, 'ok');
        }
        return;
      case BackendType.portalSuspended:
        if (head?.kind === 'execute') {
          head.draft.rows = head.draft.dataRows;
          this.#shift();
          this.#finish(head, 'suspended');
        }
        return;
      case BackendType.errorResponse:
        this.#error(decodeBackendMessage(msg));
        return;
      case BackendType.readyForQuery:
        this.#ready();
        return;
      default:
        return;
    }
  }

  /** The session ended: every statement still waiting for an answer is reported unfinished. */
  end(): void {
    this.#flushFailedEarly();
    while (this.#head < this.#queue.length) {
      const p = this.#shift();
      if (p !== undefined && 'draft' in p) this.#finish(p, 'unfinished');
    }
  }

  #draft(protocol: StatementProtocol, text: string | null, truncated: boolean, paramCount: number | null, own: boolean): Draft {
    // Texts of queued simple queries are the client's to bound: past the budget they are dropped.
    let held = 0;
    if (own && text !== null) {
      if (this.#queuedText + text.length > MAX_QUEUED_TEXT) {
        text = null;
        truncated = true;
      } else {
        held = text.length;
        this.#queuedText += held;
      }
    }
    // Every member is set here, the optional ones undefined, so that all drafts share one shape.
    return {
      protocol, text, truncated, statement: undefined, portal: undefined, function: undefined, paramCount, values: undefined, copy: undefined,
      tag: null, moreTags: undefined, rows: null, dataRows: 0, sqlstate: null, outcome: 'unfinished', ms: 0, started: this.#o.now(), held,
    };
  }

  /** A request the server answers, or (while it discards until Sync) one it will never see. */
  #request(p: Pending): void {
    if (!this.#skipping) return this.#push(p);
    if (!('draft' in p)) return;
    const early = this.#failedEarly;
    if (early !== undefined && p.kind === 'execute') {
      // The Execute of the statement whose Parse or Bind failed: one event, the error.
      this.#failedEarly = undefined;
      p.draft.sqlstate = early.sqlstate;
      p.draft.started = early.started;
      this.#finish(p, 'error');
      return;
    }
    this.#finish(p, 'skipped');
  }

  #flushFailedEarly(): void {
    const early = this.#failedEarly;
    this.#failedEarly = undefined;
    if (early !== undefined) this.#finish({ draft: early }, 'error');
  }

  #push(p: Pending): void {
    if (this.#queue.length - this.#head >= MAX_QUEUE) throw new Error('too many unanswered requests to audit');
    this.#queue.push(p);
  }

  #shift(): Pending | undefined {
    const p = this.#queue[this.#head];
    if (p === undefined) return undefined;
    this.#queue[this.#head] = undefined as unknown as Pending;
    this.#head++;
    // Compact now and then so a long pipeline does not keep a long array of holes.
    if (this.#head >= 1024 && this.#head * 2 >= this.#queue.length) {
      this.#queue.splice(0, this.#head);
      this.#head = 0;
    }
    return p;
  }

  /** The statement the server is working on. */
  #current(): Draft | undefined {
    const head = this.#queue[this.#head];
    return head !== undefined && 'draft' in head ? head.draft : undefined;
  }

  #error(e: ReturnType<typeof decodeBackendMessage>): void {
    const code = e.kind === 'errorResponse' ? e.code ?? null : null;
    const head = this.#queue[this.#head];
    if (head === undefined || head.kind === 'sync') return;
    if (head.kind === 'query' || head.kind === 'function') {
      // Not extended: the error ends the request, whose ReadyForQuery follows.
      head.draft.sqlstate ??= code;
      return;
    }
    // An extended-protocol message failed, and the server discards everything after it up to the
    // next Sync. The statement that failed is the Execute itself, or, for a failed Parse or Bind,
    // the first Execute queued after it; without one, the Parse or Bind is recorded on its own.
    const failed = this.#shift();
    if (failed !== undefined && 'draft' in failed) {
      failed.draft.sqlstate = code;
      this.#finish(failed, 'error');
    } else {
      const owner = this.#firstExecuteBeforeSync();
      if (owner !== undefined) {
        owner.draft.sqlstate = code;
        while (this.#queue[this.#head] !== owner) this.#shift();
        this.#shift();
        this.#finish(owner, 'error');
      } else if (failed !== undefined && (failed.kind === 'parse' || failed.kind === 'bind')) {
        const draft = this.#draft('extended', failed.text, failed.truncated, null, false);
        draft.statement = failed.statement;
        draft.sqlstate = code;
        this.#flushFailedEarly();
        this.#failedEarly = draft;
      }
    }
    for (;;) {
      const next = this.#queue[this.#head];
      if (next === undefined) {
        this.#skipping = true;
        return;
      }
      if (next.kind === 'sync') {
        // The batch's Sync is already on its way: no Execute of the failed statement will follow.
        this.#flushFailedEarly();
        return;
      }
      const p = this.#shift();
      if (p !== undefined && 'draft' in p) this.#finish(p, 'skipped');
    }
  }

  #firstExecuteBeforeSync(): { readonly kind: 'query' | 'function' | 'execute'; readonly draft: Draft } | undefined {
    for (let i = this.#head; i < this.#queue.length; i++) {
      const p = this.#queue[i] as Pending;
      if (p.kind === 'sync') return undefined;
      if (p.kind === 'execute') return p;
    }
    return undefined;
  }

  #ready(): void {
    // ReadyForQuery answers the oldest Query, FunctionCall or Sync; anything before it was not
    // answered in a way this matcher understood and is reported unfinished rather than dropped.
    for (;;) {
      const p = this.#shift();
      if (p === undefined) return;
      if (p.kind === 'sync') return;
      if (p.kind === 'query' || p.kind === 'function') {
        this.#finish(p, p.draft.sqlstate === null ? 'ok' : 'error');
        return;
      }
      if ('draft' in p) this.#finish(p, 'unfinished');
    }
  }

  #finish(p: { readonly draft: Draft }, outcome: StatementOutcome): void {
    const d = p.draft;
    this.#queuedText -= d.held;
    d.held = 0;
    // The draft itself becomes the record: no second object per statement. It has left the queue,
    // so nothing here touches it again.
    // A simple Query may hold several statements: their tags in order.
    if (d.moreTags !== undefined) d.tag = [d.tag, ...d.moreTags].join('; ');
    d.moreTags = undefined;
    d.outcome = outcome;
    if (outcome === 'skipped') {
      d.rows = null;
      d.ms = 0;
    } else {
      d.ms = Math.round((this.#o.now() - d.started) * 1000) / 1000;
    }
    this.#o.onStatement(d);
  }
}

/** Keeps `value` as the newest entry of `map`, forgetting the oldest past `max`. */
function remember<V>(map: Map<string, V>, name: string, value: V, max: number): void {
  map.delete(name);
  map.set(name, value);
  if (map.size > max) map.delete(map.keys().next().value as string);
}

/** Bind values as the audit shows them: bounded text, binary as \x hex, NULL as null. */
function auditValues(values: readonly (Buffer | null)[], formats: readonly number[]): (string | null)[] {
  return values.map((v, i) => {
    if (v === null) return null;
    const binary = (formats.length === 1 ? formats[0] : formats[i]) === 1;
    if (binary) {
      const hex = v.subarray(0, BINARY_VALUE_BYTES).toString('hex');
      return `\\x${hex}${v.length > BINARY_VALUE_BYTES ? '…' : ''}`;
    }
    const s = v.toString('utf8');
    return s.length > VALUE_CHARS ? `${s.slice(0, VALUE_CHARS)}…` : s;
  });
}
