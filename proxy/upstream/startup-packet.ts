// The StartupMessage rolegate sends to log in upstream: the login identity is rolegate's own, the
// rest are the client's allow-listed settings.
import { PROTOCOL_OPTION_PREFIX } from '../wire/constants.js';
import { startupMessage } from '../wire/frontend-writer.js';
import { UpstreamError, UpstreamErrorCode } from './errors.js';

// Keys the caller never sets: the login identity is ours, "replication" would turn the session
// into a walsender, and "_pq_." names protocol extensions we did not negotiate.
const RESERVED_KEYS = new Set(['user', 'database', 'replication']);

/** Encodes the StartupMessage for `role` on `database` with the (already allow-listed) `params`. */
export function upstreamStartup(role: string, database: string, params: Readonly<Record<string, string>>): Buffer {
  if (role === '') throw invalidStartup('startup packet is empty or too long');
  const pairs: [string, string][] = [['user', role], ['database', database]];
  for (const [key, value] of Object.entries(params)) {
    if (RESERVED_KEYS.has(key) || key.startsWith(PROTOCOL_OPTION_PREFIX)) continue;
    pairs.push([key, value]);
  }
  try {
    return startupMessage(pairs);
  } catch (err) {
    throw invalidStartup(err instanceof Error ? err.message : 'invalid startup packet');
  }
}

function invalidStartup(detail: string): UpstreamError {
  return new UpstreamError(UpstreamErrorCode.protocol, detail);
}
