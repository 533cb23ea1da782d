// Serializers for the client-to-server messages rolegate itself writes to a database: the startup
// and cancel packets, Terminate, and a simple Query (the pool's reset). pg-protocol's serializer
// would do for some, but appends `client_encoding=UTF8` to every StartupMessage, overriding the
// client's own choice; one vocabulary here keeps every frontend frame the proxy writes in one place.
import { CANCEL_REQUEST_CODE, MAX_STARTUP_PACKET_LENGTH, PROTOCOL_3_0 } from './constants.js';
import { FrontendType } from './message-types.js';

/** Terminate ('X', length 4): a polite goodbye; the server closes the connection. */
export const TERMINATE: Buffer = Buffer.from([FrontendType.terminate, 0, 0, 0, 4]);

/** A simple-protocol Query message for `sql` (which must not contain NUL). */
export function simpleQuery(sql: string): Buffer {
  if (sql.includes('\0')) throw new RangeError('query text contains NUL');
  const length = 4 + Buffer.byteLength(sql, 'utf8') + 1;
  const buf = Buffer.allocUnsafe(1 + length);
  buf[0] = FrontendType.query;
  buf.writeInt32BE(length, 1);
  buf.write(sql, 5, 'utf8');
  buf[length] = 0;
  return buf;
}

/**
 * A protocol 3.0 StartupMessage with `pairs` in order. Throws RangeError for a NUL in any name or
 * value (it would end the string early and let the rest be read as another parameter: injection),
 * an empty name (it would end the list), or a packet longer than MAX_STARTUP_PACKET_LENGTH.
 */
export function startupMessage(pairs: readonly (readonly [string, string])[]): Buffer {
  let length = 4 + 4 + 1;
  for (const [key, value] of pairs) {
    if (key === '') throw new RangeError('empty startup parameter name');
    if (key.includes('\0') || value.includes('\0')) throw new RangeError('a startup parameter contains NUL');
    length += Buffer.byteLength(key, 'utf8') + 1 + Buffer.byteLength(value, 'utf8') + 1;
  }
  // Counted with the length word, which is stricter by four bytes than the server's own check.
  if (length > MAX_STARTUP_PACKET_LENGTH) throw new RangeError('startup packet too long');
  const buf = Buffer.allocUnsafe(length);
  buf.writeInt32BE(length, 0);
  buf.writeInt32BE(PROTOCOL_3_0, 4);
  let offset = 8;
  for (const [key, value] of pairs) {
    offset += buf.write(key, offset, 'utf8');
    buf[offset++] = 0;
    offset += buf.write(value, offset, 'utf8');
    buf[offset++] = 0;
  }
  buf[offset] = 0;
  return buf;
}

/** A CancelRequest; `secretKey` is the BackendKeyData key as the server sent it (4 bytes in protocol 3.0). */
export function cancelRequest(processId: number, secretKey: Buffer): Buffer {
  const length = 12 + secretKey.length;
  const buf = Buffer.allocUnsafe(length);
  buf.writeInt32BE(length, 0);
  buf.writeInt32BE(CANCEL_REQUEST_CODE, 4);
  buf.writeInt32BE(processId, 8);
  secretKey.copy(buf, 12);
  return buf;
}
