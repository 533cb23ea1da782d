// Client-to-server messages pg-protocol's serializer cannot write the way the proxy needs: StartupMessage and CancelRequest.

import { UpstreamError, UpstreamErrorCode } from './errors.js';

// Protocol 3.0 = (3 << 16) | 0; CancelRequest code = (1234 << 16) | 5678 (protocol docs).
const PROTOCOL_3_0 = 196608;
const CANCEL_REQUEST_CODE = 80877102;
// PostgreSQL's MAX_STARTUP_PACKET_LENGTH (src/include/libpq/pqcomm.h): longer packets are refused.
const MAX_STARTUP_PACKET = 10_000;
// Keys the caller never sets: the login identity is ours, "replication" would turn the session
// into a walsender, and "_pq_." names protocol extensions we did not negotiate.
const RESERVED_KEYS = new Set(['user', 'database', 'replication']);

/**
 * Encodes a protocol 3.0 StartupMessage for `role` on `database` with the caller's (already
 * allow-listed) parameters. Unlike pg-protocol's `serialize.startup`, it does not append
 * `client_encoding=UTF8`, which would override the client's own choice.
 */
export function startupMessage(role: string, database: string, params: Readonly<Record<string, string>>): Buffer {
  const pairs: string[] = ['user', role, 'database', database];
  for (const [key, value] of Object.entries(params)) {
    if (RESERVED_KEYS.has(key) || key.startsWith('_pq_.')) continue;
    pairs.push(key, value);
  }
  let length = 4 + 4 + 1;
  for (const text of pairs) {
    // A NUL would end the string early and let the rest be read as another key (parameter
    // injection); an empty key would end the list.
    if (text.includes('\0')) throw invalidStartup('a startup parameter contains NUL');
    length += Buffer.byteLength(text, 'utf8') + 1;
  }
  if (role === '' || length > MAX_STARTUP_PACKET) throw invalidStartup('startup packet is empty or too long');
  const buf = Buffer.allocUnsafe(length);
  buf.writeInt32BE(length, 0);
  buf.writeInt32BE(PROTOCOL_3_0, 4);
  let offset = 8;
  for (let i = 0; i < pairs.length; i += 2) {
    const key = pairs[i] as string;
    if (key === '') throw invalidStartup('empty startup parameter name');
    offset += buf.write(key, offset, 'utf8');
    buf[offset++] = 0;
    offset += buf.write(pairs[i + 1] as string, offset, 'utf8');
    buf[offset++] = 0;
  }
  buf[offset] = 0;
  return buf;
}

/** Encodes a CancelRequest; `secretKey` is the BackendKeyData key as sent (4 bytes in protocol 3.0). */
export function cancelRequest(processId: number, secretKey: Buffer): Buffer {
  const length = 12 + secretKey.length;
  const buf = Buffer.allocUnsafe(length);
  buf.writeInt32BE(length, 0);
  buf.writeInt32BE(CANCEL_REQUEST_CODE, 4);
  buf.writeInt32BE(processId, 8);
  secretKey.copy(buf, 12);
  return buf;
}

function invalidStartup(detail: string): UpstreamError {
  return new UpstreamError(UpstreamErrorCode.protocol, detail);
}
