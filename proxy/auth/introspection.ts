// Opaque access tokens: RFC 7662 introspection with openid-client (client_secret_basic), then the same
// iss/aud/exp/nbf rules a JWT gets.
import * as oidc from 'openid-client';
import { TokenError, TokenErrorCode } from './errors.js';
import type { IssuerMetadata } from './discovery.js';

/** The claims of an active, accepted introspection response. */
export type IntrospectedClaims = Readonly<Record<string, unknown>> & {
  readonly iss: string;
  readonly sub: string;
  readonly aud: string | readonly string[];
  readonly exp?: number;
  readonly jti?: string;
};

export interface IntrospectionCheck {
  audience: string;
  clockToleranceSec: number;
  nowMs: number;
}

export type Introspector = (token: string, check: IntrospectionCheck) => Promise<IntrospectedClaims>;

/**
 * Creates an introspection caller for `meta.introspectionEndpoint`. `fetchFn` must raise TokenErrors
 * for transport failures; they are passed through unwrapped.
 */
export function createIntrospector(
  meta: IssuerMetadata,
  client: { clientId: string; clientSecret: string },
  fetchFn: typeof fetch,
  timeoutSec: number,
): Introspector {
  const config = new oidc.Configuration(
    meta.document as oidc.ServerMetadata,
    client.clientId,
    client.clientSecret,
    oidc.ClientSecretBasic(client.clientSecret),
  );
  config[oidc.customFetch] = fetchFn as oidc.CustomFetch;
  config.timeout = timeoutSec;
  // The discovery rules already allow plain http only on loopback; openid-client needs telling.
  if (meta.introspectionEndpoint?.protocol === 'http:') oidc.allowInsecureRequests(config);

  return async (token, check) => {
    let res: Awaited<ReturnType<typeof oidc.tokenIntrospection>>;
    try {
      res = await oidc.tokenIntrospection(config, token, { token_type_hint: 'access_token' });
    } catch (err) {
      const transport = findTokenError(err);
      if (transport !== undefined) throw transport;
      throw new TokenError(TokenErrorCode.introspectionFailed, 'the introspection endpoint refused the request', { cause: err });
    }
    return checkIntrospection(res, meta.issuer, check);
  };
}

/** Applies our acceptance rules to an introspection response (RFC 7662 §2.2). */
export function checkIntrospection(res: Readonly<Record<string, unknown>>, issuer: string, check: IntrospectionCheck): IntrospectedClaims {
  if (res['active'] !== true) throw new TokenError(TokenErrorCode.inactive, 'introspection says the token is not active');
  const iss = res['iss'];
  // `iss` is optional in RFC 7662; the answer came from the configured issuer's endpoint either way.
  if (iss !== undefined && iss !== issuer) {
    throw new TokenError(TokenErrorCode.issuerMismatch, 'introspected iss is not the configured issuer');
  }
  const aud = res['aud'];
  if (aud === undefined) throw new TokenError(TokenErrorCode.claimMissing, 'introspection response has no aud');
  const audOk = typeof aud === 'string' ? aud === check.audience : Array.isArray(aud) && aud.includes(check.audience);
  if (!audOk) throw new TokenError(TokenErrorCode.audienceMismatch, 'introspected aud does not contain the configured audience');
  const sub = res['sub'];
  if (sub === undefined) throw new TokenError(TokenErrorCode.claimMissing, 'introspection response has no sub');
  if (typeof sub !== 'string' || sub === '') throw new TokenError(TokenErrorCode.claimInvalid, 'introspected sub is not a non-empty string');
  const nowSec = check.nowMs / 1000;
  const exp = res['exp'];
  if (exp !== undefined) {
    if (typeof exp !== 'number' || !Number.isFinite(exp)) throw new TokenError(TokenErrorCode.claimInvalid, 'introspected exp is not a number');
    if (exp <= nowSec - check.clockToleranceSec) throw new TokenError(TokenErrorCode.expired, 'introspected token has expired');
  }
  const nbf = res['nbf'];
  if (nbf !== undefined) {
    if (typeof nbf !== 'number' || !Number.isFinite(nbf)) throw new TokenError(TokenErrorCode.claimInvalid, 'introspected nbf is not a number');
    if (nbf > nowSec + check.clockToleranceSec) throw new TokenError(TokenErrorCode.notYetValid, 'introspected token is not yet valid');
  }
  const tokenType = res['token_type'];
  // A DPoP-bound token (token_type DPoP, or any cnf) needs a proof that a password message cannot carry.
  if ((tokenType !== undefined && String(tokenType).toLowerCase() !== 'bearer') || res['cnf'] !== undefined) {
    throw new TokenError(TokenErrorCode.claimInvalid, 'introspected token is not a plain bearer token');
  }
  const jti = res['jti'];
  return Object.freeze({
    ...res,
    iss: issuer,
    sub,
    aud: aud as string | string[],
    exp: exp as number | undefined,
    jti: typeof jti === 'string' ? jti : undefined,
  });
}

function findTokenError(err: unknown): TokenError | undefined {
  for (let e = err, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) {
    if (e instanceof TokenError) return e;
  }
  return undefined;
}
