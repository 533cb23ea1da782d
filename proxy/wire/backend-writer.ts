// Serializers for the server-to-client messages rolegate itself writes (pg-protocol only writes the
// client-to-server direction). Each call returns one freshly allocated, complete message.
import { CANCEL_KEY_LENGTH_3_0, MAX_CANCEL_KEY_LENGTH, PROTOCOL_MAJOR } from './constants.js';
import { AuthCode, BackendType } from './message-types.js';

/** ReadyForQuery transaction status: idle, in a transaction block, in a failed transaction block. */
export type TransactionStatus = 'I' | 'T' | 'E';

/** Severities of an ErrorResponse (FATAL ends the session; ERROR does not). */
export type ErrorSeverity = 'ERROR' | 'FATAL';
/** Severities of a NoticeResponse. */
export type NoticeSeverity = 'WARNING' | 'NOTICE' | 'INFO' | 'LOG' | 'DEBUG';

/** The public fields rolegate sends; file/line/routine are never sent (internal detail). */
export interface ErrorFields<S extends string = ErrorSeverity> {
  readonly severity: S;
  /** Five-character SQLSTATE. */
  readonly code: string;
  readonly message: string;
  readonly detail?: string;
  readonly hint?: string;
}

// A NUL inside a cstring would end it early and desynchronise the client's framing. Human text may
// carry peer-supplied names (a token claim can hold "\u0000"), so it is repaired, not refused.
function text(value: string): string {
  return value.includes('\0') ? value.replaceAll('\0', '\uFFFD') : value;
}

// Identifiers (parameter and option names, values from the upstream) cannot legitimately hold NUL.
function identifier(value: string, what: string): string {
  if (value.includes('\0')) throw new RangeError(`${what} contains NUL`);
  return value;
}

/** Allocates a message of `bodyLength` bytes after type + length and writes the header. */
function message(type: number, bodyLength: number): Buffer {
  const buf = Buffer.allocUnsafe(5 + bodyLength);
  buf[0] = type;
  buf.writeUInt32BE(4 + bodyLength, 1);
  return buf;
}

function authentication(code: number): Buffer {
  const buf = message(BackendType.authentication, 4);
  buf.writeUInt32BE(code, 5);
  return buf;
}

/** AuthenticationOk: 'R', length 8, 0. */
export function authenticationOk(): Buffer {
  return authentication(AuthCode.ok);
}

/** AuthenticationCleartextPassword: 'R', length 8, 3. The token arrives in a PasswordMessage. */
export function authenticationCleartextPassword(): Buffer {
  return authentication(AuthCode.cleartextPassword);
}

/** ParameterStatus: 'S', name, value. */
export function parameterStatus(name: string, value: string): Buffer {
  const n = Buffer.byteLength(identifier(name, 'parameter name'));
  const v = Buffer.byteLength(identifier(value, 'parameter value'));
  const buf = message(BackendType.parameterStatus, n + v + 2);
  buf.write(name, 5, 'utf8');
  buf[5 + n] = 0;
  buf.write(value, 6 + n, 'utf8');
  buf[6 + n + v] = 0;
  return buf;
}

/**
 * BackendKeyData: 'K', process id, secret. `pid` is an unsigned 32-bit integer; a numeric secret is
 * the 4-byte key of protocol 3.0, a Buffer may be 4..256 bytes (protocol 3.2).
 */
export function backendKeyData(pid: number, secret: number | Uint8Array): Buffer {
  if (!Number.isInteger(pid) || pid < 0 || pid > 0xffffffff) throw new RangeError('pid must be a uint32');
  if (typeof secret === 'number') {
    if (!Number.isInteger(secret) || secret < -0x80000000 || secret > 0xffffffff) {
      throw new RangeError('secret must be a 32-bit integer');
    }
    const buf = message(BackendType.backendKeyData, 8);
    buf.writeUInt32BE(pid, 5);
    buf.writeUInt32BE(secret >>> 0, 9);
    return buf;
  }
  if (secret.length < CANCEL_KEY_LENGTH_3_0 || secret.length > MAX_CANCEL_KEY_LENGTH) {
    throw new RangeError('secret must be 4 to 256 bytes');
  }
  const buf = message(BackendType.backendKeyData, 4 + secret.length);
  buf.writeUInt32BE(pid, 5);
  buf.set(secret, 9);
  return buf;
}

/** ReadyForQuery: 'Z', transaction status. */
export function readyForQuery(status: TransactionStatus): Buffer {
  const buf = message(BackendType.readyForQuery, 1);
  buf[5] = status.charCodeAt(0);
  return buf;
}

// Field type bytes (protocol.sgml "Error and Notice Message Fields"). 'V' is the non-localized
// severity (PostgreSQL 9.6+), which clients prefer over 'S' when present.
const FIELD_SEVERITY = 0x53; // 'S'
const FIELD_SEVERITY_V = 0x56; // 'V'
const FIELD_CODE = 0x43; // 'C'
const FIELD_MESSAGE = 0x4d; // 'M'
const FIELD_DETAIL = 0x44; // 'D'
const FIELD_HINT = 0x48; // 'H'

function fieldsMessage(type: number, fields: ErrorFields<string>): Buffer {
  if (!/^[0-9A-Z]{5}$/.test(fields.code)) throw new RangeError('code must be a five-character SQLSTATE');
  const list: [number, string][] = [
    [FIELD_SEVERITY, identifier(fields.severity, 'severity')],
    [FIELD_SEVERITY_V, fields.severity],
    [FIELD_CODE, fields.code],
    [FIELD_MESSAGE, text(fields.message)],
  ];
  if (fields.detail !== undefined) list.push([FIELD_DETAIL, text(fields.detail)]);
  if (fields.hint !== undefined) list.push([FIELD_HINT, text(fields.hint)]);
  let bodyLength = 1; // the terminating zero byte
  for (const [, value] of list) bodyLength += 2 + Buffer.byteLength(value);
  const buf = message(type, bodyLength);
  let off = 5;
  for (const [field, value] of list) {
    buf[off++] = field;
    off += buf.write(value, off, 'utf8');
    buf[off++] = 0;
  }
  buf[off] = 0;
  return buf;
}

/** ErrorResponse with S, V, C, M and optional D, H fields. */
export function errorResponse(fields: ErrorFields): Buffer {
  return fieldsMessage(BackendType.errorResponse, fields);
}

/** NoticeResponse: same layout as ErrorResponse with a notice severity. */
export function noticeResponse(fields: ErrorFields<NoticeSeverity>): Buffer {
  return fieldsMessage(BackendType.noticeResponse, fields);
}

/** NegotiateProtocolVersion: 'v', newest minor version supported, unrecognised `_pq_.` options. */
export function negotiateProtocolVersion(newestMinor: number, unsupportedOptions: readonly string[]): Buffer {
  if (!Number.isInteger(newestMinor) || newestMinor < 0 || newestMinor > 0xffff) {
    throw new RangeError('newestMinor must be a uint16');
  }
  let bodyLength = 8;
  for (const option of unsupportedOptions) bodyLength += Buffer.byteLength(identifier(option, 'option')) + 1;
  const buf = message(BackendType.negotiateProtocolVersion, bodyLength);
  // The whole version word, (major << 16) | minor, as PostgreSQL sends PG_PROTOCOL_LATEST.
  buf.writeUInt32BE(((PROTOCOL_MAJOR << 16) | newestMinor) >>> 0, 5);
  buf.writeUInt32BE(unsupportedOptions.length, 9);
  let off = 13;
  for (const option of unsupportedOptions) {
    off += buf.write(option, off, 'utf8');
    buf[off++] = 0;
  }
  return buf;
}

/** The single byte 'S' answering an SSLRequest: the TLS handshake follows. */
export function sslAccepted(): Buffer {
  return Buffer.from([0x53]);
}

/** The single byte 'N' answering an SSLRequest or GSSENCRequest: the client continues in plaintext. */
export function encryptionRefused(): Buffer {
  return Buffer.from([0x4e]);
}
