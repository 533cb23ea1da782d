// Decoders of client-to-server messages for the audit: what a statement is (simple Query, extended
// Parse/Bind/Execute, FunctionCall, COPY), read from a possibly cut prefix of the body. Never throws.
import { openBody, type BodyReader } from './body-reader.js';
import { FrontendType } from './message-types.js';
import type { RawMessage } from './message-types.js';

/** Close and Describe name a prepared statement ('S') or a portal ('P'). */
export type DescribeTarget = 'statement' | 'portal';

/**
 * A decoded client message. `truncated` means the body was longer than the prefix kept, so the last
 * string is cut (at a character boundary) and fields after it are undefined.
 */
export type FrontendMessage =
  | { readonly kind: 'query'; readonly text: string; readonly truncated: boolean }
  | {
      readonly kind: 'parse';
      readonly statement: string | undefined;
      readonly text: string | undefined;
      readonly paramTypes: number | undefined;
      readonly truncated: boolean;
    }
  | {
      readonly kind: 'bind';
      readonly portal: string | undefined;
      readonly statement: string | undefined;
      /** Format codes: none = all text, one = applies to all, else one per parameter. */
      readonly paramFormats: readonly number[] | undefined;
      readonly paramCount: number | undefined;
      /** Only when asked for; the values that fit in the prefix, null for SQL NULL. Views, not copies. */
      readonly values?: readonly (Buffer | null)[];
      readonly truncated: boolean;
    }
  | { readonly kind: 'execute'; readonly portal: string; readonly maxRows: number }
  | { readonly kind: 'functionCall'; readonly oid: number; readonly argCount: number | undefined; readonly truncated: boolean }
  | { readonly kind: 'copyData'; readonly bytes: number }
  | { readonly kind: 'copyDone' }
  | { readonly kind: 'copyFail'; readonly message: string; readonly truncated: boolean }
  | { readonly kind: 'close' | 'describe'; readonly target: DescribeTarget; readonly name: string }
  | { readonly kind: 'sync' | 'flush' | 'terminate' }
  | { readonly kind: 'unknown'; readonly type: number }
  /** The prefix kept is too short to say anything about this message. */
  | { readonly kind: 'truncated'; readonly type: number }
  /** The complete body (or the prefix) contradicts the message's layout. */
  | { readonly kind: 'malformed'; readonly type: number };

export interface FrontendDecodeOptions {
  /** Return Bind parameter values (docs/design.md §6 `audit.parameters`); off by default. */
  readonly bindValues?: boolean;
}

const TARGET_STATEMENT = 0x53; // 'S'
const TARGET_PORTAL = 0x50; // 'P'

/** A string field: complete, cut by the prefix (then `cut`), or missing from a complete body (undefined). */
function field(r: BodyReader, truncated: boolean): { value: string; cut: boolean } | undefined {
  const v = r.cstring();
  if (v !== undefined) return { value: v, cut: false };
  return truncated ? { value: r.tail(), cut: true } : undefined;
}

/** Decodes one client message from its type, length field and (possibly partial) body. */
export function decodeFrontendMessage(msg: RawMessage, options: FrontendDecodeOptions = {}): FrontendMessage {
  const { type } = msg;
  const { truncated, r, malformed, unreadable } = openBody(msg);

  switch (type) {
    case FrontendType.query: {
      const text = field(r, truncated);
      return text === undefined ? malformed : { kind: 'query', text: text.value, truncated };
    }
    case FrontendType.parse: {
      const statement = field(r, truncated);
      if (statement === undefined) return malformed;
      if (statement.cut) return { kind: 'parse', statement: undefined, text: undefined, paramTypes: undefined, truncated };
      const text = field(r, truncated);
      if (text === undefined) return malformed;
      const paramTypes = text.cut ? undefined : r.uint16();
      if (paramTypes === undefined && !truncated) return malformed;
      return { kind: 'parse', statement: statement.value, text: text.value, paramTypes, truncated };
    }
    case FrontendType.bind:
      return decodeBind(r, type, truncated, options.bindValues === true);
    case FrontendType.execute: {
      const portal = r.cstring();
      const maxRows = r.int32();
      if (portal === undefined || maxRows === undefined) return unreadable;
      return { kind: 'execute', portal, maxRows };
    }
    case FrontendType.functionCall: {
      const oid = r.uint32();
      if (oid === undefined) return unreadable;
      const formats = r.uint16();
      const argCount = formats !== undefined && r.bytes(formats * 2) !== undefined ? r.uint16() : undefined;
      if (argCount === undefined && !truncated) return malformed;
      return { kind: 'functionCall', oid, argCount, truncated };
    }
    case FrontendType.copyData:
      return { kind: 'copyData', bytes: msg.length - 4 };
    case FrontendType.copyDone:
      return { kind: 'copyDone' };
    case FrontendType.copyFail: {
      const message = field(r, truncated);
      return message === undefined ? malformed : { kind: 'copyFail', message: message.value, truncated };
    }
    case FrontendType.close:
    case FrontendType.describe: {
      const t = r.byte();
      const name = r.cstring();
      if (t !== undefined && t !== TARGET_STATEMENT && t !== TARGET_PORTAL) return malformed;
      if (t === undefined || name === undefined) return unreadable;
      return {
        kind: type === FrontendType.close ? 'close' : 'describe',
        target: t === TARGET_STATEMENT ? 'statement' : 'portal',
        name,
      };
    }
    case FrontendType.sync:
      return { kind: 'sync' };
    case FrontendType.flush:
      return { kind: 'flush' };
    case FrontendType.terminate:
      return { kind: 'terminate' };
    default:
      return { kind: 'unknown', type };
  }
}

// Bind layout (protocol.sgml): portal, statement, int16 n + n format codes, int16 n + n values
// (int32 length, -1 for NULL, then bytes), int16 n + n result format codes.
function decodeBind(r: BodyReader, type: number, truncated: boolean, withValues: boolean): FrontendMessage {
  const malformed = { kind: 'malformed', type } as const;
  const partial = (fields: Partial<Extract<FrontendMessage, { kind: 'bind' }>>): FrontendMessage =>
    truncated
      ? {
          kind: 'bind',
          portal: fields.portal,
          statement: fields.statement,
          paramFormats: fields.paramFormats,
          paramCount: fields.paramCount,
          ...(withValues && fields.values !== undefined ? { values: fields.values } : {}),
          truncated: true,
        }
      : malformed;

  const portal = r.cstring();
  if (portal === undefined) return partial({});
  const statement = r.cstring();
  if (statement === undefined) return partial({ portal });
  const formatCount = r.uint16();
  if (formatCount === undefined) return partial({ portal, statement });
  const paramFormats: number[] = [];
  for (let i = 0; i < formatCount; i++) {
    const f = r.int16();
    if (f === undefined) return partial({ portal, statement });
    paramFormats.push(f);
  }
  const paramCount = r.uint16();
  if (paramCount === undefined) return partial({ portal, statement, paramFormats });
  if (!withValues) return { kind: 'bind', portal, statement, paramFormats, paramCount, truncated };
  const base = { kind: 'bind', portal, statement, paramFormats, paramCount } as const;
  const values: (Buffer | null)[] = [];
  for (let i = 0; i < paramCount; i++) {
    const len = r.int32();
    if (len === undefined) return partial({ ...base, values });
    if (len === -1) {
      values.push(null);
      continue;
    }
    if (len < -1) return malformed;
    const v = r.bytes(len);
    if (v === undefined) return partial({ ...base, values });
    values.push(v);
  }
  return { ...base, values, truncated };
}
