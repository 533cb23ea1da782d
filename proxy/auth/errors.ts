// Why a token was refused: stable codes for the audit log (`token_invalid:<code>`) and metrics.
// The client only ever sees the generic 28P01 message; `message` and `cause` are for operators.
import { CodedError } from '../../lib/coded-error.js';

/** Every reason a token can be refused. Values are stable: dashboards and audit searches use them. */
export const TokenErrorCode = {
  /** Not a JWS compact JWT nor an RFC 6750 token, or a JWT that does not parse. */
  malformed: 'token_malformed',
  /** Longer than the 65,530 bytes a password message may carry (docs/design.md §2 step 4). */
  tooLong: 'token_too_long',
  /** `alg` outside the configured allow-list (covers `none` and HMAC). */
  algNotAllowed: 'alg_not_allowed',
  /** `typ` header names another kind of JWT (logout token, DPoP proof, ...). */
  typNotAllowed: 'typ_not_allowed',
  signatureInvalid: 'signature_invalid',
  /** No key in the issuer's JWKS matches the header's `kid`/`alg`, even after a refetch. */
  kidUnknown: 'kid_unknown',
  issuerMismatch: 'issuer_mismatch',
  audienceMismatch: 'audience_mismatch',
  expired: 'expired',
  notYetValid: 'not_yet_valid',
  /** A required claim is absent: the identity claim, `exp`, `sub`, ... (`cause` names it). */
  claimMissing: 'claim_missing',
  /** A claim is present but has the wrong type or value. */
  claimInvalid: 'claim_invalid',
  /**
   * With identityClaim `email`: the token says `email_verified` is not true, or (with
   * `oidc.requireVerifiedEmail`) does not say it at all. An unverified address names nobody.
   */
  emailUnverified: 'email_unverified',
  /** RFC 7662 introspection answered `active: false`. */
  inactive: 'inactive',
  /** The introspection endpoint refused our request (bad client credentials, server error). */
  introspectionFailed: 'introspection_failed',
  /** Discovery, JWKS or introspection could not be fetched (network, timeout, non-200, not JSON, too big). */
  issuerUnreachable: 'issuer_unreachable',
  /** The discovery document or JWKS was fetched but is unusable (missing jwks_uri, insecure URL, bad keys). */
  issuerInvalid: 'issuer_invalid',
} as const;

export type TokenErrorCode = (typeof TokenErrorCode)[keyof typeof TokenErrorCode];

/**
 * A refused token. `code` is the stable reason (audited as `token_invalid:<code>`); detail lives in
 * `message` and `cause`, never sent to the client, who only learns that authentication failed.
 */
export class TokenError extends CodedError<TokenErrorCode> {
  override readonly name = 'TokenError';

  constructor(code: TokenErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, { ...options, publicMessage: 'token authentication failed' });
  }
}

/** True for errors that say the issuer could not be used, as opposed to a bad token. */
export function isIssuerProblem(err: unknown): boolean {
  return (
    err instanceof TokenError &&
    (err.code === TokenErrorCode.issuerUnreachable ||
      err.code === TokenErrorCode.issuerInvalid ||
      err.code === TokenErrorCode.introspectionFailed)
  );
}
