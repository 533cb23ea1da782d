// JWT access/ID token checks with jose: shape and header pre-checks before any crypto, then signature and
// claims, and the mapping of jose's errors onto our stable TokenError codes.
import { decodeProtectedHeader, errors as jose, jwtVerify } from 'jose';
import type { JWTPayload, JWTVerifyGetKey } from 'jose';
import { TokenError, TokenErrorCode } from './errors.js';

// JWS Compact Serialization (RFC 7515 §7.1): three base64url segments. An empty signature is let
// through the shape check so that `alg: none` is reported as such rather than as garbage.
const COMPACT_JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;
// JWE Compact Serialization (RFC 7516 §7.1): five segments. Encrypted tokens need a decryption key we do not have.
const COMPACT_JWE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;

/** True when `token` has the shape of a signed JWT (it may still be garbage inside). */
export function looksLikeJws(token: string): boolean {
  return COMPACT_JWS.test(token);
}

/** True when `token` has the shape of an encrypted JWT. */
export function looksLikeJwe(token: string): boolean {
  return COMPACT_JWE.test(token);
}

/** The claims every accepted JWT carries, after {@link verifyJwt}. */
export type VerifiedJwtPayload = JWTPayload & { iss: string; sub: string; aud: string | string[]; exp: number };

export interface JwtCheckOptions {
  issuer: string;
  audience: string;
  algorithms: readonly string[];
  clockToleranceSec: number;
  nowMs: number;
}

/**
 * Verifies a compact JWS: `alg` in the allow-list (checked before `keys` is called), `typ` absent,
 * `JWT` (ID tokens) or `at+jwt` (RFC 9068 access tokens), signature by a key from `keys`, `iss` identical, `aud` containing the
 * audience, `exp` present and `nbf` honoured with the tolerance, `sub` present, no `cnf` binding.
 */
export async function verifyJwt(
  token: string,
  keys: () => Promise<JWTVerifyGetKey>,
  opts: JwtCheckOptions,
): Promise<VerifiedJwtPayload> {
  let header: ReturnType<typeof decodeProtectedHeader>;
  try {
    header = decodeProtectedHeader(token);
  } catch (cause) {
    throw new TokenError(TokenErrorCode.malformed, 'JWT header is not base64url JSON', { cause });
  }
  // Checked here, before the key lookup, so that `none` and HMAC never reach the JWKS (key confusion).
  if (typeof header.alg !== 'string' || !opts.algorithms.includes(header.alg)) {
    throw new TokenError(TokenErrorCode.algNotAllowed, `JWT alg ${short(header.alg)} is not in the allow-list`);
  }
  if (header.typ !== undefined && (typeof header.typ !== 'string' || !isAcceptedTyp(header.typ))) {
    throw new TokenError(TokenErrorCode.typNotAllowed, `JWT typ ${short(header.typ)} is not an access or ID token`);
  }
  // Only now the issuer is asked for keys: header garbage and disallowed algorithms cost no network.
  const getKey = await keys();
  let payload: JWTPayload;
  try {
    ({ payload } = await jwtVerify(token, getKey, {
      algorithms: [...opts.algorithms],
      issuer: opts.issuer,
      audience: opts.audience,
      clockTolerance: opts.clockToleranceSec,
      requiredClaims: ['exp', 'sub'],
      currentDate: new Date(opts.nowMs),
    }));
  } catch (err) {
    throw joseToTokenError(err);
  }
  if (typeof payload.sub !== 'string' || payload.sub === '') {
    throw new TokenError(TokenErrorCode.claimInvalid, 'JWT sub is not a non-empty string');
  }
  // RFC 9449 / RFC 8705: a sender-constrained token is only valid with a proof of possession,
  // which a password message cannot carry. Accepting it would turn a stolen bound token into a bearer one.
  if (payload['cnf'] !== undefined) {
    throw new TokenError(TokenErrorCode.claimInvalid, 'JWT is sender-constrained (cnf) and cannot be used as a bearer token');
  }
  return payload as VerifiedJwtPayload;
}

// Header values are attacker-controlled: quote a bounded prefix only.
function short(value: unknown): string {
  return (JSON.stringify(value) ?? String(value)).slice(0, 40);
}

// RFC 7515 §4.1.9: media types are case-insensitive and the "application/" prefix may be omitted.
function isAcceptedTyp(typ: string): boolean {
  const t = typ.toLowerCase();
  const bare = t.startsWith('application/') ? t.slice('application/'.length) : t;
  return bare === 'at+jwt' || bare === 'jwt';
}

/** Maps an error thrown by jose (or by the JWKS fetch) to a TokenError; TokenErrors pass through. */
export function joseToTokenError(err: unknown): TokenError {
  if (err instanceof TokenError) return err;
  if (err instanceof jose.JWTExpired) {
    return new TokenError(TokenErrorCode.expired, 'JWT has expired', { cause: err });
  }
  if (err instanceof jose.JWTClaimValidationFailed) {
    if (err.reason === 'missing') {
      return new TokenError(TokenErrorCode.claimMissing, `JWT has no ${err.claim} claim`, { cause: err });
    }
    if (err.reason === 'check_failed') {
      switch (err.claim) {
        case 'iss':
          return new TokenError(TokenErrorCode.issuerMismatch, 'JWT iss is not the configured issuer', { cause: err });
        case 'aud':
          return new TokenError(TokenErrorCode.audienceMismatch, 'JWT aud does not contain the configured audience', { cause: err });
        case 'nbf':
          return new TokenError(TokenErrorCode.notYetValid, 'JWT is not yet valid (nbf)', { cause: err });
      }
    }
    return new TokenError(TokenErrorCode.claimInvalid, `JWT ${err.claim} claim is invalid`, { cause: err });
  }
  if (err instanceof jose.JOSEAlgNotAllowed) {
    return new TokenError(TokenErrorCode.algNotAllowed, 'JWT alg is not allowed', { cause: err });
  }
  if (err instanceof jose.JWSSignatureVerificationFailed) {
    return new TokenError(TokenErrorCode.signatureInvalid, 'JWT signature does not verify', { cause: err });
  }
  if (err instanceof jose.JWKSNoMatchingKey) {
    return new TokenError(TokenErrorCode.kidUnknown, "no key in the issuer's JWKS matches the JWT header", { cause: err });
  }
  if (err instanceof jose.JWKSMultipleMatchingKeys) {
    return new TokenError(TokenErrorCode.kidUnknown, "several keys in the issuer's JWKS match a JWT header without kid", { cause: err });
  }
  if (err instanceof jose.JWKSTimeout) {
    return new TokenError(TokenErrorCode.issuerUnreachable, 'JWKS fetch timed out', { cause: err });
  }
  if (err instanceof jose.JWKSInvalid || err instanceof jose.JWKInvalid) {
    return new TokenError(TokenErrorCode.issuerInvalid, "the issuer's JWKS is invalid", { cause: err });
  }
  if (err instanceof jose.JWSInvalid || err instanceof jose.JWTInvalid || err instanceof jose.JOSENotSupported) {
    return new TokenError(TokenErrorCode.malformed, 'JWT is malformed or uses an unsupported feature', { cause: err });
  }
  if (err instanceof jose.JOSEError) {
    // The remaining generic JOSEErrors come from the JWKS fetch: non-200 answer or a body that is not JSON.
    return new TokenError(TokenErrorCode.issuerUnreachable, 'JWKS fetch failed', { cause: err });
  }
  return new TokenError(TokenErrorCode.malformed, 'JWT verification failed', { cause: err });
}
