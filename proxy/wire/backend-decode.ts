// Decoders of server-to-client messages for the audit: statement outcomes (CommandComplete tag and row
// count, ErrorResponse SQLSTATE, ReadyForQuery status, COPY start), from a possibly cut prefix. Never throws.
import { openBody } from './body-reader.js';
import { BackendType } from './message-types.js';
import type { RawMessage } from './message-types.js';
import type { TransactionStatus } from './backend-writer.js';

export type BackendMessage =
  | {
      readonly kind: 'commandComplete';
      readonly tag: string;
      /** The tag's command word ("SELECT", "INSERT", "CREATE TABLE" gives "CREATE"). */
      readonly command: string;
      /** Rows affected or returned, for the tags that carry a count. */
      readonly rows: number | undefined;
    }
  | {
      readonly kind: 'errorResponse' | 'noticeResponse';
      /** Non-localized severity ('V') when sent, else the localized one ('S'). */
      readonly severity: string | undefined;
      readonly code: string | undefined;
      readonly message: string | undefined;
    }
  | { readonly kind: 'readyForQuery'; readonly status: TransactionStatus }
  | {
      readonly kind: 'copyInResponse' | 'copyOutResponse' | 'copyBothResponse';
      readonly binary: boolean;
      readonly columns: number;
    }
  | { readonly kind: 'copyData'; readonly bytes: number }
  | { readonly kind: 'copyDone' }
  | { readonly kind: 'rowDescription'; readonly columns: number }
  | { readonly kind: 'emptyQueryResponse' }
  | { readonly kind: 'unknown'; readonly type: number }
  /** The prefix kept is too short to say anything about this message. */
  | { readonly kind: 'truncated'; readonly type: number }
  /** The complete body contradicts the message's layout. */
  | { readonly kind: 'malformed'; readonly type: number };

// Tags whose last word is a row count (protocol.sgml CommandComplete); "INSERT oid rows" too.
const COUNTED = new Set(['INSERT', 'DELETE', 'UPDATE', 'MERGE', 'SELECT', 'MOVE', 'FETCH', 'COPY']);

/** Splits a CommandComplete tag into its command word and row count. */
export function parseCommandTag(tag: string): { command: string; rows: number | undefined } {
  const space = tag.indexOf(' ');
  const command = space === -1 ? tag : tag.slice(0, space);
  if (!COUNTED.has(command)) return { command, rows: undefined };
  const last = tag.slice(tag.lastIndexOf(' ') + 1);
  return { command, rows: /^\d{1,15}$/.test(last) ? Number(last) : undefined };
}

const FIELD_SEVERITY = 0x53; // 'S'
const FIELD_SEVERITY_V = 0x56; // 'V'
const FIELD_CODE = 0x43; // 'C'
const FIELD_MESSAGE = 0x4d; // 'M'

/** Decodes one server message from its type, length field and (possibly partial) body. */
export function decodeBackendMessage(msg: RawMessage): BackendMessage {
  const { type } = msg;
  const { truncated, r, malformed, unreadable } = openBody(msg);

  switch (type) {
    case BackendType.commandComplete: {
      const tag = r.cstring() ?? (truncated ? r.tail() : undefined);
      if (tag === undefined) return malformed;
      return { kind: 'commandComplete', tag, ...parseCommandTag(tag) };
    }
    case BackendType.errorResponse:
    case BackendType.noticeResponse: {
      let severity: string | undefined;
      let localized: string | undefined;
      let code: string | undefined;
      let message: string | undefined;
      for (;;) {
        const field = r.byte();
        if (field === 0) break;
        const value = field === undefined ? undefined : r.cstring();
        if (value === undefined) {
          if (!truncated) return malformed;
          // A cut message text is still worth keeping; other cut fields are dropped.
          if (field === FIELD_MESSAGE) message = r.tail();
          break;
        }
        if (field === FIELD_SEVERITY_V) severity = value;
        else if (field === FIELD_SEVERITY) localized = value;
        else if (field === FIELD_CODE) code = value;
        else if (field === FIELD_MESSAGE) message = value;
      }
      return {
        kind: type === BackendType.errorResponse ? 'errorResponse' : 'noticeResponse',
        severity: severity ?? localized,
        code,
        message,
      };
    }
    case BackendType.readyForQuery: {
      const s = r.byte();
      if (s === undefined) return unreadable;
      if (s !== 0x49 && s !== 0x54 && s !== 0x45) return malformed; // 'I' 'T' 'E'
      return { kind: 'readyForQuery', status: String.fromCharCode(s) as TransactionStatus };
    }
    case BackendType.copyInResponse:
    case BackendType.copyOutResponse:
    case BackendType.copyBothResponse: {
      const format = r.byte();
      const columns = r.uint16();
      if (format === undefined || columns === undefined) return unreadable;
      const kind =
        type === BackendType.copyInResponse
          ? 'copyInResponse'
          : type === BackendType.copyOutResponse
            ? 'copyOutResponse'
            : 'copyBothResponse';
      return { kind, binary: format !== 0, columns };
    }
    case BackendType.copyData:
      return { kind: 'copyData', bytes: msg.length - 4 };
    case BackendType.copyDone:
      return { kind: 'copyDone' };
    case BackendType.rowDescription: {
      const columns = r.uint16();
      return columns === undefined ? unreadable : { kind: 'rowDescription', columns };
    }
    case BackendType.emptyQueryResponse:
      return { kind: 'emptyQueryResponse' };
    default:
      return { kind: 'unknown', type };
  }
}
