// Bounded framing and decoding of the server messages seen during login (R, S, K, E, N, Z, v).

import { BackendType } from '../wire/message-types.js';
import { UpstreamError, UpstreamErrorCode } from './errors.js';

/** Server message type bytes the login path understands (R, S, K, E, N, Z, v), named as everywhere else. */
export const ServerMessage = {
  auth: BackendType.authentication,
  parameterStatus: BackendType.parameterStatus,
  backendKeyData: BackendType.backendKeyData,
  errorResponse: BackendType.errorResponse,
  noticeResponse: BackendType.noticeResponse,
  readyForQuery: BackendType.readyForQuery,
  negotiateProtocolVersion: BackendType.negotiateProtocolVersion,
} as const;

// Length limits, taken from libpq's fe-connect.c PQconnectPoll: an authentication request longer
// than 2000 bytes or any other startup-phase message longer than 30000 bytes is treated as bogus
// ("expected authentication request from server"). The length counts itself, so 4 is the minimum.
const MAX_AUTH_MESSAGE = 2000;
const MAX_OTHER_MESSAGE = 30_000;
const MIN_LENGTH = 4;
// A login is a handful of small messages (PostgreSQL 15 sends ~14 ParameterStatus); a server that
// streams more than this before ReadyForQuery is hostile or broken, and we stop buffering it.
const MAX_LOGIN_BYTES = 1 << 20;

/** One complete server message: type byte and body (without type and length). */
export type Frame = { readonly type: number; readonly body: Buffer };

/** Incremental reader: push chunks, pull complete frames; bytes past the last pulled frame stay put. */
export type FrameReader = {
  push(chunk: Buffer): void;
  /** The next complete frame, or undefined until more bytes arrive. */
  next(): Frame | undefined;
  /** Bytes received but not yet consumed as frames (relayed after ReadyForQuery). */
  rest(): Buffer;
};

/** Creates a frame reader that enforces the login-phase length limits. */
export function createFrameReader(): FrameReader {
  let chunks: Buffer[] = [];
  let buffered = 0;
  let total = 0;

  const flatten = (): Buffer => {
    if (chunks.length !== 1) chunks = [Buffer.concat(chunks, buffered)];
    return chunks[0] ?? Buffer.alloc(0);
  };

  return {
    push(chunk) {
      total += chunk.length;
      if (total > MAX_LOGIN_BYTES) {
        throw protocolError(`more than ${MAX_LOGIN_BYTES} bytes before ReadyForQuery`);
      }
      chunks.push(chunk);
      buffered += chunk.length;
    },
    next() {
      if (buffered < 5) return undefined;
      const buf = flatten();
      const type = buf[0] as number;
      const length = buf.readUInt32BE(1);
      const max = type === ServerMessage.auth ? MAX_AUTH_MESSAGE : MAX_OTHER_MESSAGE;
      if (length < MIN_LENGTH || length > max) {
        throw protocolError(`message '${printable(type)}' has invalid length ${length}`);
      }
      if (buffered < length + 1) return undefined;
      const body = buf.subarray(5, length + 1);
      const remaining = buf.subarray(length + 1);
      chunks = remaining.length > 0 ? [remaining] : [];
      buffered = remaining.length;
      return { type, body };
    },
    rest() {
      return buffered === 0 ? Buffer.alloc(0) : flatten();
    },
  };
}

/** Authentication request codes (protocol docs, "AuthenticationXXX" messages). */
export const AuthCode = {
  ok: 0,
  cleartext: 3,
  md5: 5,
  sasl: 10,
  saslContinue: 11,
  saslFinal: 12,
} as const;

export type AuthRequest =
  | { readonly kind: 'ok' }
  | { readonly kind: 'cleartext' }
  | { readonly kind: 'md5'; readonly salt: Buffer }
  | { readonly kind: 'sasl'; readonly mechanisms: readonly string[] }
  | { readonly kind: 'saslContinue'; readonly data: string }
  | { readonly kind: 'saslFinal'; readonly data: string }
  | { readonly kind: 'unsupported'; readonly code: number };

/** Decodes an 'R' body. */
export function decodeAuth(body: Buffer): AuthRequest {
  if (body.length < 4) throw protocolError('short authentication request');
  const code = body.readInt32BE(0);
  const rest = body.subarray(4);
  switch (code) {
    case AuthCode.ok:
      return expectEmpty(rest, { kind: 'ok' });
    case AuthCode.cleartext:
      return expectEmpty(rest, { kind: 'cleartext' });
    case AuthCode.md5:
      if (rest.length !== 4) throw protocolError('MD5 salt is not 4 bytes');
      return { kind: 'md5', salt: Buffer.from(rest) };
    case AuthCode.sasl: {
      // A list of NUL-terminated mechanism names ending with an empty name.
      const mechanisms: string[] = [];
      let offset = 0;
      for (;;) {
        const [name, next] = readCString(rest, offset);
        offset = next;
        if (name === '') break;
        mechanisms.push(name);
      }
      return expectEmpty(rest.subarray(offset), { kind: 'sasl', mechanisms });
    }
    case AuthCode.saslContinue:
      return { kind: 'saslContinue', data: rest.toString('utf8') };
    case AuthCode.saslFinal:
      return { kind: 'saslFinal', data: rest.toString('utf8') };
    default:
      return { kind: 'unsupported', code };
  }
}

/** Decodes an 'E' or 'N' body into its fields (one-letter codes, protocol docs "Error and Notice Message Fields"). */
export function decodeFields(body: Buffer): Map<string, string> {
  const fields = new Map<string, string>();
  let offset = 0;
  for (;;) {
    if (offset >= body.length) throw protocolError('unterminated error fields');
    const code = body[offset] as number;
    if (code === 0) break;
    const [value, next] = readCString(body, offset + 1);
    fields.set(String.fromCharCode(code), value);
    offset = next;
  }
  return fields;
}

/** Decodes an 'S' body. */
export function decodeParameterStatus(body: Buffer): { name: string; value: string } {
  const [name, afterName] = readCString(body, 0);
  const [value, end] = readCString(body, afterName);
  if (end !== body.length || name === '') throw protocolError('malformed ParameterStatus');
  return { name, value };
}

// Protocol 3.0 keys are 4 bytes; protocol 3.2 (PostgreSQL 18) allows up to 256.
const MAX_SECRET_KEY = 256;

/** Decodes a 'K' body. */
export function decodeBackendKeyData(body: Buffer): { processId: number; secretKey: Buffer } {
  if (body.length < 8 || body.length > 4 + MAX_SECRET_KEY) throw protocolError('malformed BackendKeyData');
  return { processId: body.readInt32BE(0), secretKey: Buffer.from(body.subarray(4)) };
}

/** Decodes a 'Z' body into the transaction status byte ('I', 'T' or 'E'). */
export function decodeReadyForQuery(body: Buffer): string {
  const status = body.length === 1 ? String.fromCharCode(body[0] as number) : '';
  if (status !== 'I' && status !== 'T' && status !== 'E') throw protocolError('malformed ReadyForQuery');
  return status;
}

function readCString(buf: Buffer, offset: number): [string, number] {
  const end = buf.indexOf(0, offset);
  if (end < 0) throw protocolError('unterminated string');
  return [buf.toString('utf8', offset, end), end + 1];
}

function expectEmpty<T>(rest: Buffer, value: T): T {
  if (rest.length !== 0) throw protocolError('trailing bytes in authentication request');
  return value;
}

function printable(type: number): string {
  return type >= 0x20 && type < 0x7f ? String.fromCharCode(type) : `0x${type.toString(16)}`;
}

function protocolError(detail: string): UpstreamError {
  return new UpstreamError(UpstreamErrorCode.protocol, detail);
}
