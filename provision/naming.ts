// The name of a person's own database role (docs/design.md §7 step 1): the userName as it is when
// PostgreSQL can take it, otherwise a deterministic readable name with a short hash. Pure.
import { createHash } from 'node:crypto';

/** PostgreSQL identifiers are at most NAMEDATALEN - 1 = 63 bytes; longer ones are silently truncated. */
export const MAX_ROLE_NAME_BYTES = 63;

/** Base32 characters of the SHA-256 of the userName in a mapped name: 50 bits. */
const HASH_CHARS = 10;
const BASE32 = 'abcdefghijklmnopqrstuvwxyz234567';

// PostgreSQL reserves "pg_" for its own roles (CREATE ROLE refuses it) and the names "public" and
// "none"; CockroachDB also folds names to lower case, so both checks ignore case.
const RESERVED_PREFIX = /^pg_/i;
const RESERVED_NAMES = new Set(['public', 'none']);
// NUL cannot be in an identifier at all (the protocol's strings end at NUL); other C0/C1 controls
// would reach log lines and pg_stat_activity as they are.
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;

/** Why a userName cannot be the role name as it is; undefined when it can. */
export function unusableBecause(userName: string): string | undefined {
  if (userName.length === 0) return 'it is empty';
  if (Buffer.byteLength(userName, 'utf8') > MAX_ROLE_NAME_BYTES) return `it is longer than ${MAX_ROLE_NAME_BYTES} bytes`;
  if (RESERVED_PREFIX.test(userName)) return 'it starts with pg_ (reserved for PostgreSQL)';
  if (RESERVED_NAMES.has(userName.toLowerCase())) return 'it is a reserved role name';
  if (CONTROL.test(userName)) return 'it contains control characters';
  return undefined;
}

/**
 * The role name for `userName`. Usable names are kept exactly (they are always quoted, so case,
 * quotes, spaces and Unicode survive). Others become `rolePrefix` + a readable ASCII part + `_` +
 * ten base32 characters of SHA-256(userName): the same userName always gives the same name.
 */
export function personalRoleName(userName: string, rolePrefix: string): string {
  return unusableBecause(userName) === undefined ? userName : mappedRoleName(userName, rolePrefix);
}

/** The mapped form, whatever the userName (exported for the table of examples in the tests). */
export function mappedRoleName(userName: string, rolePrefix: string): string {
  const hash = base32(createHash('sha256').update(userName, 'utf8').digest()).slice(0, HASH_CHARS);
  const room = MAX_ROLE_NAME_BYTES - Buffer.byteLength(rolePrefix, 'utf8') - 1 - HASH_CHARS;
  let readable = userName
    .normalize('NFKC')
    .toLowerCase()
    .replace(/[^a-z0-9._@-]+/g, '_')
    .replace(/^_+|_+$/g, '')
    .slice(0, Math.max(0, room));
  if (readable === '') readable = 'user'.slice(0, Math.max(0, room));
  let name = `${rolePrefix}${readable}_${hash}`;
  // A mapped name must never be reserved itself ("pg_admin" with no prefix would stay "pg_...").
  if (RESERVED_PREFIX.test(name)) name = `pg-${name.slice(3)}`;
  return name;
}

function base32(bytes: Buffer): string {
  let out = '';
  let bits = 0;
  let value = 0;
  for (const b of bytes) {
    value = (value << 8) | b;
    bits += 8;
    while (bits >= 5) {
      out += BASE32[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
    value &= (1 << bits) - 1;
  }
  return out;
}
