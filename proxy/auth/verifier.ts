// The token verifier the session calls with the password it read: length and shape checks, the cache,
// then a JWT (signature via the issuer's JWKS) or an opaque token (RFC 7662 introspection).
import { createRemoteJWKSet, customFetch } from 'jose';
import type { JWTVerifyGetKey } from 'jose';
import { discover, parseIssuerSideUrl } from './discovery.js';
import type { IssuerMetadata } from './discovery.js';
import { TokenError, TokenErrorCode } from './errors.js';
import { createBoundedFetch } from './http-fetch.js';
import { createIntrospector } from './introspection.js';
import type { Introspector } from './introspection.js';
import { joseToTokenError, looksLikeJwe, looksLikeJws, verifyJwt } from './jwt.js';
import { MAX_TOKEN_BYTES } from '../wire/constants.js';
import { createTokenCache } from './token-cache.js';

export interface TokenVerifierConfig {
  /** Compared character for character with the discovery document's `issuer` and every token's `iss`. */
  issuer: string;
  /** Must be one of the token's `aud` values. For ID tokens that is the OIDC client_id. */
  audience: string;
  /** JWS algorithms accepted. `none` and HMAC (HS*) are refused at construction. */
  algorithms: readonly string[];
  clockToleranceSec: number;
  /** Top-level claim that names the person (docs/design.md §4: `oidc.identityClaim`, default `email`). */
  identityClaim: string;
  /**
   * With identityClaim `email`, also refuse tokens that do not carry `email_verified: true` (default
   * false: Okta and Entra ID access tokens omit the claim). `email_verified: false` is always refused.
   */
  requireVerifiedEmail?: boolean;
  /** Extra PEM CA trusted for the issuer's HTTPS, in addition to Node's bundled roots. */
  ca?: string;
  /** Enables RFC 7662 introspection of opaque tokens with these client credentials. */
  introspection?: { clientId: string; clientSecret: string };
  /** Maximum cached verified tokens (default 10,000). */
  cacheSize?: number;
}

export interface VerifiedToken {
  /** Value of the configured identity claim. */
  readonly identity: string;
  readonly claims: {
    readonly iss: string;
    readonly sub: string;
    readonly jti?: string;
    /** Epoch seconds; always present for JWTs, optional in introspection answers. */
    readonly exp?: number;
    readonly aud: string | readonly string[];
  };
  readonly kind: 'jwt' | 'introspected';
}

export interface TokenVerifier {
  /** Verifies a token; rejects with a {@link TokenError}. */
  verify(token: string): Promise<VerifiedToken>;
  /** Resolves when discovery and the JWKS are reachable (for /readyz); rejects with a TokenError otherwise. */
  ready(): Promise<void>;
  /** Releases keep-alive sockets and the cache. */
  close(): void;
}

export interface TokenVerifierDeps {
  /** Clock for exp/nbf and cache expiry, epoch ms. */
  now?: () => number;
  /** Transport for discovery, JWKS and introspection; default: node:https with `cfg.ca`. */
  fetch?: typeof fetch;
}

/** Longest token accepted (docs/design.md §2 step 4); the wire vocabulary defines it with its origin. */
export { MAX_TOKEN_BYTES };

// RFC 6750 §2.1 b64token: the characters an opaque bearer token may use.
const B64TOKEN = /^[A-Za-z0-9\-._~+/]+=*$/;
const HMAC = /^HS\d+$/i;
const HTTP_TIMEOUT_MS = 5_000;
// jose refetches the JWKS on an unknown kid at most once per cooldown (docs/design.md §2 step 4: once per 30 s) ...
const JWKS_COOLDOWN_MS = 30_000;
// ... and otherwise every 10 minutes, so that a key the issuer withdrew stops verifying soon after.
const JWKS_MAX_AGE_MS = 10 * 60_000;
// A cached JWT result is re-verified at least this often, for the same reason.
const JWT_CACHE_MAX_MS = JWKS_MAX_AGE_MS;
// Introspection exists to notice revocation, so its answers are trusted only briefly.
const INTROSPECTION_CACHE_MAX_MS = 60_000;

interface IssuerState {
  meta: IssuerMetadata;
  jwks: ReturnType<typeof createRemoteJWKSet>;
  introspect: Introspector | undefined;
}

/**
 * Creates a verifier for one issuer. Nothing is fetched until the first `verify()` or `ready()`;
 * the discovery document is then kept for the verifier's life (a failed discovery is retried on the
 * next call). Accepts JWT access tokens (`typ: at+jwt`, RFC 9068) and ID tokens (`typ: JWT` or none).
 * Throws TypeError for an unusable configuration.
 */
export function createTokenVerifier(cfg: TokenVerifierConfig, deps: TokenVerifierDeps = {}): TokenVerifier {
  validateConfig(cfg);
  const issuer = cfg.issuer;
  const algorithms = Object.freeze([...cfg.algorithms]);
  const now = deps.now ?? (() => Date.now());
  const ownFetch = deps.fetch === undefined ? createBoundedFetch({ ca: cfg.ca, timeoutMs: HTTP_TIMEOUT_MS }) : undefined;
  const transport = deps.fetch ?? (ownFetch as typeof fetch);
  const cache = createTokenCache<VerifiedToken>({ max: cfg.cacheSize ?? 10_000, now });

  // Every transport failure becomes issuer_unreachable here, so jose and openid-client pass it through.
  const issuerFetch = (async (input: string | URL | Request, init?: RequestInit) => {
    try {
      return await transport(input, init);
    } catch (cause) {
      const url = input instanceof Request ? input.url : String(input);
      throw new TokenError(TokenErrorCode.issuerUnreachable, `request to ${url} failed`, { cause });
    }
  }) as typeof fetch;

  let issuerState: Promise<IssuerState> | undefined;
  const getIssuer = (): Promise<IssuerState> => {
    issuerState ??= discover(issuer, issuerFetch, { needIntrospection: cfg.introspection !== undefined, timeoutMs: HTTP_TIMEOUT_MS })
      .then((meta) => ({
        meta,
        jwks: createRemoteJWKSet(meta.jwksUri, {
          cooldownDuration: JWKS_COOLDOWN_MS,
          cacheMaxAge: JWKS_MAX_AGE_MS,
          timeoutDuration: HTTP_TIMEOUT_MS,
          [customFetch]: issuerFetch,
        }),
        introspect:
          cfg.introspection === undefined ? undefined : createIntrospector(meta, cfg.introspection, issuerFetch, HTTP_TIMEOUT_MS / 1000),
      }))
      .catch((err: unknown) => {
        issuerState = undefined;
        throw err instanceof TokenError ? err : new TokenError(TokenErrorCode.issuerInvalid, 'OIDC discovery failed', { cause: err });
      });
    return issuerState;
  };

  const requireVerifiedEmail = cfg.requireVerifiedEmail === true;
  // Both JWTs and introspection answers come through here, so both get the same identity rules.
  const identityOf = (claims: Readonly<Record<string, unknown>>): string => {
    const value = claims[cfg.identityClaim];
    if (typeof value !== 'string' || value === '') {
      throw new TokenError(TokenErrorCode.claimMissing, `token has no ${cfg.identityClaim} claim (identityClaim)`);
    }
    if (cfg.identityClaim === 'email') checkEmailVerified(claims['email_verified'], requireVerifiedEmail);
    return value;
  };

  const verifyJws = async (token: string): Promise<{ value: VerifiedToken; notAfterMs: number }> => {
    const nowMs = now();
    const p = await verifyJwt(token, async () => (await getIssuer()).jwks as JWTVerifyGetKey, {
      issuer,
      audience: cfg.audience,
      algorithms,
      clockToleranceSec: cfg.clockToleranceSec,
      nowMs,
    });
    const value = freezeVerified({
      identity: identityOf(p),
      claims: { iss: p.iss, sub: p.sub, jti: typeof p.jti === 'string' ? p.jti : undefined, exp: p.exp, aud: p.aud },
      kind: 'jwt',
    });
    return { value, notAfterMs: Math.min(p.exp * 1000, nowMs + JWT_CACHE_MAX_MS) };
  };

  const verifyOpaque = async (token: string): Promise<{ value: VerifiedToken; notAfterMs: number }> => {
    const { introspect } = await getIssuer();
    if (introspect === undefined) throw new TokenError(TokenErrorCode.malformed, 'opaque token and introspection is not configured');
    const nowMs = now();
    const c = await introspect(token, { audience: cfg.audience, clockToleranceSec: cfg.clockToleranceSec, nowMs });
    const value = freezeVerified({
      identity: identityOf(c),
      claims: { iss: c.iss, sub: c.sub, jti: c.jti, exp: c.exp, aud: c.aud },
      kind: 'introspected',
    });
    const untilExp = c.exp === undefined ? Infinity : c.exp * 1000;
    return { value, notAfterMs: Math.min(untilExp, nowMs + INTROSPECTION_CACHE_MAX_MS) };
  };

  return {
    verify(token) {
      if (typeof token !== 'string' || token === '') return Promise.reject(new TokenError(TokenErrorCode.malformed, 'empty token'));
      // A JS string's length never exceeds its UTF-8 byte length; non-ASCII is refused by the shape checks below.
      if (token.length > MAX_TOKEN_BYTES) {
        return Promise.reject(new TokenError(TokenErrorCode.tooLong, `token is longer than ${MAX_TOKEN_BYTES} bytes`));
      }
      if (looksLikeJws(token)) return cache.get(token, () => verifyJws(token));
      if (looksLikeJwe(token)) {
        return Promise.reject(new TokenError(TokenErrorCode.malformed, 'encrypted JWTs (JWE) are not supported'));
      }
      if (cfg.introspection !== undefined && B64TOKEN.test(token)) return cache.get(token, () => verifyOpaque(token));
      return Promise.reject(new TokenError(TokenErrorCode.malformed, 'token is neither a signed JWT nor an introspectable bearer token'));
    },

    async ready() {
      const { jwks } = await getIssuer();
      if (jwks.fresh) return;
      try {
        await jwks.reload();
      } catch (err) {
        throw joseToTokenError(err);
      }
    },

    close() {
      ownFetch?.close();
      cache.clear();
    },
  };
}

/**
 * An address the issuer has not verified names nobody (OIDC Core §5.1 `email_verified`): anyone may
 * have typed it at sign-up. Present, the claim must say true; absent, it is refused only when
 * `required`. The strings "true"/"false" count as the booleans (some issuers send strings); any
 * other value is not a verification.
 */
function checkEmailVerified(claim: unknown, required: boolean): void {
  if (claim === true || (typeof claim === 'string' && claim.toLowerCase() === 'true')) return;
  if (claim === undefined) {
    if (!required) return;
    throw new TokenError(TokenErrorCode.emailUnverified, 'token has no email_verified claim (oidc.requireVerifiedEmail)');
  }
  throw new TokenError(TokenErrorCode.emailUnverified, 'token says its email is not verified (email_verified)');
}

function freezeVerified(v: { identity: string; claims: VerifiedToken['claims']; kind: VerifiedToken['kind'] }): VerifiedToken {
  const claims: { -readonly [K in keyof VerifiedToken['claims']]: VerifiedToken['claims'][K] } = {
    iss: v.claims.iss,
    sub: v.claims.sub,
    aud: Array.isArray(v.claims.aud) ? Object.freeze([...v.claims.aud]) : v.claims.aud,
  };
  if (v.claims.jti !== undefined) claims.jti = v.claims.jti;
  if (v.claims.exp !== undefined) claims.exp = v.claims.exp;
  return Object.freeze({ identity: v.identity, claims: Object.freeze(claims), kind: v.kind });
}

function validateConfig(cfg: TokenVerifierConfig): void {
  parseIssuerSideUrl(cfg.issuer, 'oidc.issuer');
  if (typeof cfg.audience !== 'string' || cfg.audience === '') throw new TypeError('oidc.audience must be a non-empty string');
  if (typeof cfg.identityClaim !== 'string' || cfg.identityClaim === '') throw new TypeError('oidc.identityClaim must be a non-empty string');
  if (cfg.requireVerifiedEmail === true && cfg.identityClaim !== 'email') {
    throw new TypeError('oidc.requireVerifiedEmail applies only with oidc.identityClaim: email');
  }
  if (!Number.isFinite(cfg.clockToleranceSec) || cfg.clockToleranceSec < 0) {
    throw new TypeError('oidc.clockTolerance must be a non-negative number of seconds');
  }
  if (cfg.algorithms.length === 0) throw new TypeError('oidc.algorithms must list at least one algorithm');
  for (const alg of cfg.algorithms) {
    // No shared secret is ever configured, so an HMAC "key" could only be public material (key confusion).
    if (alg.toLowerCase() === 'none' || HMAC.test(alg)) throw new TypeError(`oidc.algorithms: ${alg} is not allowed`);
  }
  if (cfg.cacheSize !== undefined && (!Number.isInteger(cfg.cacheSize) || cfg.cacheSize < 1)) {
    throw new TypeError('token cache size must be a positive integer');
  }
}
