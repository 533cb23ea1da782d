// The openid-client side of `rolegate login`: discovery through our fetch, the grants that need no person
// (client credentials, refresh token), and how an audience is asked for.
import { decodeJwt } from 'jose';
import * as oidc from 'openid-client';
import { LoginError, LoginErrorCode } from './errors.js';

/** A token endpoint answer reduced to what the CLI keeps. `expiresAt` is in seconds since the epoch. */
export interface TokenResult {
  accessToken: string;
  expiresAt: number | undefined;
  refreshToken: string | undefined;
}

/**
 * Discovers `issuer` and returns an openid-client configuration for `clientId`: a public client
 * (token_endpoint_auth_method none) without a secret, else client_secret_basic, which RFC 6749 §2.3.1
 * requires every server to support. Plain http is allowed only where the caller already checked it
 * is loopback.
 */
export function connectIssuer(issuer: URL, clientId: string, clientSecret: string | undefined, fetchFn: oidc.CustomFetch): Promise<oidc.Configuration> {
  const auth = clientSecret === undefined ? oidc.None() : oidc.ClientSecretBasic(clientSecret);
  return oidc.discovery(issuer, clientId, clientSecret, auth, {
    [oidc.customFetch]: fetchFn,
    ...(issuer.protocol === 'http:' ? { execute: [oidc.allowInsecureRequests] } : {}),
  });
}

// RFC 3986 §3.1 scheme, and RFC 8707 §2: a resource indicator is absolute and has no fragment.
const ABSOLUTE_URI = /^[a-z][a-z0-9+.-]*:[^#\s]+$/i;

/**
 * Request parameters that ask for a token whose `aud` is `audience`. Identity providers disagree:
 * RFC 8707 `resource` (oidc-provider, Keycloak, Entra ID v1) must be an absolute URI, so it is sent
 * only when the audience is one; `audience` (Auth0, Okta custom servers, Ping) is sent always and is
 * ignored by servers that do not know it.
 */
export function audienceParams(audience: string | undefined): Record<string, string> {
  if (audience === undefined) return {};
  return ABSOLUTE_URI.test(audience) ? { resource: audience, audience } : { audience };
}

/** Parameters for a grant: the audience, and `scope` when there is one. */
export function grantParams(audience: string | undefined, scope: string | undefined): Record<string, string> {
  return { ...audienceParams(audience), ...(scope === undefined ? {} : { scope }) };
}

/**
 * Reduces a token endpoint response. The expiry is the earlier of the JWT's own `exp` and
 * now + `expires_in`: the issuer's clock started `expires_in` before ours read `nowSec`, so the sum can
 * run a second past the token's real end, and a cache must never think a token lives longer than it does.
 */
export function toTokenResult(res: oidc.TokenEndpointResponse, nowSec: number): TokenResult {
  if (typeof res.access_token !== 'string' || res.access_token === '') {
    throw new LoginError(LoginErrorCode.badIssuer, 'the token endpoint answered without an access_token');
  }
  let expiresAt: number | undefined;
  if (typeof res.expires_in === 'number' && Number.isFinite(res.expires_in)) expiresAt = nowSec + res.expires_in;
  try {
    const exp = decodeJwt(res.access_token).exp;
    if (typeof exp === 'number' && Number.isFinite(exp)) expiresAt = expiresAt === undefined ? exp : Math.min(expiresAt, exp);
  } catch {
    // An opaque token: only expires_in tells its lifetime; without it the token is not reused from the cache.
  }
  const refreshToken = typeof res.refresh_token === 'string' && res.refresh_token !== '' ? res.refresh_token : undefined;
  return { accessToken: res.access_token, expiresAt, refreshToken };
}

/** RFC 6749 §4.4: a token for the client itself, authenticated with its secret. */
export async function clientCredentials(config: oidc.Configuration, params: Record<string, string>, nowSec: () => number): Promise<TokenResult> {
  return toTokenResult(await oidc.clientCredentialsGrant(config, params), nowSec());
}

/**
 * RFC 6749 §6: a new access token from a refresh token. The server may keep the refresh token the same
 * (it then sends none back), so the old one is kept in that case.
 */
export async function refresh(config: oidc.Configuration, refreshToken: string, params: Record<string, string>, nowSec: () => number): Promise<TokenResult> {
  // RFC 6749 §6: scope on refresh may only narrow the grant; leaving it out keeps the original.
  const { scope: _scope, ...rest } = params;
  const result = toTokenResult(await oidc.refreshTokenGrant(config, refreshToken, rest), nowSec());
  return { ...result, refreshToken: result.refreshToken ?? refreshToken };
}
