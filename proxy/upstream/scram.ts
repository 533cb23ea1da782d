// SCRAM-SHA-256 client (RFC 5802, RFC 7677) as PostgreSQL speaks it, without channel binding.

import { createHash, createHmac, pbkdf2, randomBytes, timingSafeEqual } from 'node:crypto';
import { UpstreamError, UpstreamErrorCode } from './errors.js';

export const SCRAM_SHA_256 = 'SCRAM-SHA-256';

// PostgreSQL's default is 4096 (scram_iterations, PG 16+ configurable). The server picks the count
// and PBKDF2 runs on our side, so an unbounded count lets a hostile upstream burn our CPU.
// node-postgres caps at 100,000 by default; we allow ten times that for operators who raised it.
export const MAX_SCRAM_ITERATIONS = 1_000_000;
// libpq's SCRAM_RAW_NONCE_LEN.
const NONCE_BYTES = 18;
// SHA-256 output size; also the decoded size of a valid server signature.
const KEY_BYTES = 32;
// gs2-header "n,," = this client does not support channel binding (RFC 5802 §7); its base64 is "biws".
const GS2_HEADER = 'n,,';
const CHANNEL_BINDING = Buffer.from(GS2_HEADER).toString('base64');

/** A single SCRAM exchange. Call `clientFirst`, then `clientFinal(serverFirst)`, then `verifyServerFinal`. */
export type ScramClient = {
  readonly mechanism: typeof SCRAM_SHA_256;
  /** client-first-message, sent in SASLInitialResponse. */
  readonly clientFirst: string;
  /** Builds client-final-message from server-first-message (RFC 5802 §5.1). */
  clientFinal(serverFirst: string): Promise<string>;
  /** Checks server-final-message; throws unless the server proved it knows the password. */
  verifyServerFinal(serverFinal: string): void;
};

export type ScramOptions = {
  password: string;
  /** PostgreSQL ignores the SCRAM user name and uses the startup packet's; libpq sends an empty one. */
  username?: string;
  /** For test vectors only: the client nonce (printable ASCII without ','). */
  nonce?: string;
};

/** Starts a SCRAM-SHA-256 exchange. */
export function createScramClient(opts: ScramOptions): ScramClient {
  const nonce = opts.nonce ?? randomBytes(NONCE_BYTES).toString('base64');
  const clientFirstBare = `n=${escapeSaslName(opts.username ?? '')},r=${nonce}`;
  let state: 'first' | 'final' | 'done' = 'first';
  let expectedServerSignature: Buffer | undefined;

  return {
    mechanism: SCRAM_SHA_256,
    clientFirst: GS2_HEADER + clientFirstBare,

    async clientFinal(serverFirst) {
      if (state !== 'first') throw scramError('SASLContinue out of order');
      state = 'final';
      const { serverNonce, salt, iterations } = parseServerFirst(serverFirst, nonce);
      const { clientKey, serverKey } = await deriveKeys(opts.password, salt, iterations);
      const withoutProof = `c=${CHANNEL_BINDING},r=${serverNonce}`;
      const authMessage = `${clientFirstBare},${serverFirst},${withoutProof}`;
      const storedKey = createHash('sha256').update(clientKey).digest();
      const signature = hmac(storedKey, authMessage);
      const proof = Buffer.alloc(KEY_BYTES);
      for (let i = 0; i < KEY_BYTES; i++) proof[i] = (clientKey[i] as number) ^ (signature[i] as number);
      expectedServerSignature = hmac(serverKey, authMessage);
      return `${withoutProof},p=${proof.toString('base64')}`;
    },

    verifyServerFinal(serverFinal) {
      if (state !== 'final' || expectedServerSignature === undefined) {
        throw scramError('SASLFinal out of order');
      }
      state = 'done';
      const attrs = parseAttributes(serverFinal);
      const error = attrs.get('e');
      if (error !== undefined) throw scramError(`server-error ${error}`);
      const verifier = attrs.get('v');
      const signature = verifier === undefined ? undefined : decodeBase64(verifier);
      // Length first: timingSafeEqual throws on unequal lengths, and the length is not secret.
      if (
        signature === undefined ||
        signature.length !== KEY_BYTES ||
        !timingSafeEqual(signature, expectedServerSignature)
      ) {
        throw scramError('server signature does not match: the server does not know the password');
      }
    },
  };
}

type ServerFirst = { serverNonce: string; salt: Buffer; iterations: number };

// RFC 5802 §7: server-first-message = [reserved-mext ","] nonce "," salt "," iteration-count ["," extensions]
function parseServerFirst(message: string, clientNonce: string): ServerFirst {
  if (message.startsWith('m=')) throw scramError('server requires an unsupported SCRAM extension');
  const attrs = parseAttributes(message);
  const serverNonce = attrs.get('r');
  const saltText = attrs.get('s');
  const iterationText = attrs.get('i');
  if (serverNonce === undefined || saltText === undefined || iterationText === undefined) {
    throw scramError('server-first-message lacks r, s or i');
  }
  // The server appends its own part to our nonce (RFC 5802 §5.1); an equal or foreign nonce means
  // the server did not contribute fresh randomness or is answering someone else's exchange.
  if (!serverNonce.startsWith(clientNonce) || serverNonce.length === clientNonce.length) {
    throw scramError('server nonce does not extend the client nonce');
  }
  if (!/^[\x21-\x2b\x2d-\x7e]+$/.test(serverNonce)) throw scramError('server nonce is not printable');
  const salt = decodeBase64(saltText);
  if (salt === undefined || salt.length === 0) throw scramError('invalid salt');
  if (!/^[1-9][0-9]{0,9}$/.test(iterationText)) throw scramError('invalid iteration count');
  const iterations = Number(iterationText);
  if (iterations > MAX_SCRAM_ITERATIONS) {
    throw scramError(`iteration count ${iterations} exceeds ${MAX_SCRAM_ITERATIONS}`);
  }
  return { serverNonce, salt, iterations };
}

// Attributes are "<letter>=<value>" joined by ','; values never contain ',' (RFC 5802 §5.1).
function parseAttributes(message: string): Map<string, string> {
  const attrs = new Map<string, string>();
  for (const part of message.split(',')) {
    if (part.length < 2 || part[1] !== '=' || !/^[a-zA-Z]$/.test(part[0] as string)) {
      throw scramError('malformed SCRAM attribute');
    }
    const name = part[0] as string;
    if (!attrs.has(name)) attrs.set(name, part.slice(2));
  }
  return attrs;
}

// RFC 5802 §5.1: ',' and '=' in a saslname are sent as "=2C" and "=3D".
function escapeSaslName(name: string): string {
  return name.replace(/=/g, '=3D').replace(/,/g, '=2C');
}

function decodeBase64(text: string): Buffer | undefined {
  // Buffer.from(…, 'base64') silently skips junk; insist on the canonical alphabet and padding.
  if (text.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(text)) return undefined;
  return Buffer.from(text, 'base64');
}

function hmac(key: Buffer, data: string): Buffer {
  return createHmac('sha256', key).update(data).digest();
}

type DerivedKeys = { clientKey: Buffer; serverKey: Buffer };

// Role credentials are fixed and PostgreSQL keeps one salt per role, so SaltedPassword repeats on
// every login of a role; caching ClientKey/ServerKey (as pgbouncer does) takes PBKDF2 off the
// per-connection path. Keyed by a digest of the password so the map never holds it in clear.
const KEY_CACHE_LIMIT = 256;
const keyCache = new Map<string, DerivedKeys>();

async function deriveKeys(password: string, salt: Buffer, iterations: number): Promise<DerivedKeys> {
  const normalized = saslPrep(password);
  const cacheKey = createHash('sha256')
    .update(`${iterations}\0${salt.toString('base64')}\0`)
    .update(normalized)
    .digest('base64');
  const cached = keyCache.get(cacheKey);
  if (cached !== undefined) return cached;
  // Async PBKDF2 runs on the libuv pool so a login never blocks the event loop.
  const salted = await new Promise<Buffer>((resolve, reject) => {
    pbkdf2(normalized, salt, iterations, KEY_BYTES, 'sha256', (err, key) => (err ? reject(err) : resolve(key)));
  });
  const keys = { clientKey: hmac(salted, 'Client Key'), serverKey: hmac(salted, 'Server Key') };
  if (keyCache.size >= KEY_CACHE_LIMIT) {
    const oldest = keyCache.keys().next();
    if (oldest.done !== true) keyCache.delete(oldest.value);
  }
  keyCache.set(cacheKey, keys);
  return keys;
}

// RFC 3454 table C.1.2 (non-ASCII spaces): mapped to U+0020 (RFC 4013 §2.1).
const NON_ASCII_SPACE = /[\u00A0\u1680\u2000-\u200B\u202F\u205F\u3000]/g;
// RFC 3454 table B.1 (commonly mapped to nothing).
const MAPPED_TO_NOTHING = /[\u00AD\u034F\u1806\u180B-\u180D\u200C\u200D\u2060\uFE00-\uFE0F\uFEFF]/gu;
// RFC 4013 §2.3 prohibited output: RFC 3454 C.2.1-C.9 (C.1.2 is already mapped away).
const PROHIBITED =
  /[\u0000-\u001F\u007F-\u009F\u0340\u0341\u06DD\u070F\u180E\u200E\u200F\u2028-\u202E\u2060-\u2063\u206A-\u206F\u2FF0-\u2FFB\uD800-\uDFFF\uE000-\uF8FF\uFDD0-\uFDEF\uFEFF\uFFF9-\uFFFF\u{1D173}-\u{1D17A}\u{1FFFE}\u{1FFFF}\u{2FFFE}\u{2FFFF}\u{3FFFE}\u{3FFFF}\u{4FFFE}\u{4FFFF}\u{5FFFE}\u{5FFFF}\u{6FFFE}\u{6FFFF}\u{7FFFE}\u{7FFFF}\u{8FFFE}\u{8FFFF}\u{9FFFE}\u{9FFFF}\u{AFFFE}\u{AFFFF}\u{BFFFE}\u{BFFFF}\u{CFFFE}\u{CFFFF}\u{DFFFE}\u{DFFFF}\u{E0001}\u{E0020}-\u{E007F}\u{EFFFE}-\u{10FFFF}]/u;

/**
 * SASLprep (RFC 4013) the way PostgreSQL's pg_saslprep applies it to SCRAM passwords: ASCII is
 * used as is; otherwise map, NFKC-normalize, and if the result holds prohibited characters use
 * the raw password, because PostgreSQL does the same when it builds the verifier (it tolerates
 * passwords that are not valid SASLprep input instead of rejecting them).
 * Not replicated: PostgreSQL's Unicode 3.2 "unassigned code point" and bidi checks, which also
 * fall back to the raw password; a non-ASCII role password that trips only those would not match.
 * Role passwords that rolegate generates are ASCII.
 */
export function saslPrep(password: string): string {
  if (/^[\x00-\x7f]*$/.test(password)) return password;
  const mapped = password.replace(NON_ASCII_SPACE, ' ').replace(MAPPED_TO_NOTHING, '');
  // pg_saslprep (src/common/saslprep.c) tests the prohibited tables on the mapped string, before
  // normalization, and treats an empty mapped string as prohibited; we match it, not the RFC.
  if (mapped === '' || PROHIBITED.test(mapped)) return password;
  return mapped.normalize('NFKC');
}

function scramError(detail: string): UpstreamError {
  return new UpstreamError(UpstreamErrorCode.auth, `SCRAM: ${detail}`);
}
