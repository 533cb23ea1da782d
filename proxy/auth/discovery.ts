// OIDC discovery: fetches and validates <issuer>/.well-known/openid-configuration, and the rule for
// which issuer-side URLs we are willing to talk to (https, or plain http on loopback only).
import { isIP } from 'node:net';
import { TokenError, TokenErrorCode } from './errors.js';

/** What the verifier needs from the discovery document. */
export interface IssuerMetadata {
  /** Equal to the configured issuer, character for character. */
  readonly issuer: string;
  readonly jwksUri: URL;
  readonly introspectionEndpoint: URL | undefined;
  /** The whole document, for openid-client's `Configuration`. */
  readonly document: Readonly<Record<string, unknown>>;
}

/** True for 127.0.0.0/8, ::1 and `localhost`. */
export function isLoopbackHost(hostname: string): boolean {
  const host = hostname.startsWith('[') && hostname.endsWith(']') ? hostname.slice(1, -1) : hostname;
  if (host === 'localhost') return true;
  const family = isIP(host);
  if (family === 4) return host.startsWith('127.');
  if (family === 6) return host === '::1' || host === '0:0:0:0:0:0:0:1';
  return false;
}

/**
 * Parses `value` and accepts it only if it is https, or http to a loopback address (development).
 * Credentials and fragments are refused: neither belongs in an issuer-side URL.
 */
export function parseIssuerSideUrl(value: string, what: string): URL {
  let url: URL;
  try {
    url = new URL(value);
  } catch (cause) {
    throw new TypeError(`${what} is not a valid URL`, { cause });
  }
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && isLoopbackHost(url.hostname))) {
    throw new TypeError(`${what} must use https (plain http is allowed only on a loopback address): ${value}`);
  }
  if (url.username !== '' || url.password !== '') throw new TypeError(`${what} must not contain credentials`);
  if (url.hash !== '') throw new TypeError(`${what} must not contain a fragment`);
  return url;
}

/** The discovery URL, per OpenID Connect Discovery 1.0 §4: strip one trailing "/", append the path. */
export function discoveryUrl(issuer: string): string {
  return `${issuer.endsWith('/') ? issuer.slice(0, -1) : issuer}/.well-known/openid-configuration`;
}

/**
 * Fetches and checks the issuer's discovery document. `fetchFn` is expected to raise
 * `issuer_unreachable` TokenErrors for transport failures (see the verifier's wrapper).
 */
export async function discover(
  issuer: string,
  fetchFn: typeof fetch,
  opts: { needIntrospection: boolean; timeoutMs: number },
): Promise<IssuerMetadata> {
  const url = discoveryUrl(issuer);
  const res = await fetchFn(url, {
    method: 'GET',
    headers: { accept: 'application/json' },
    redirect: 'manual',
    signal: AbortSignal.timeout(opts.timeoutMs),
  });
  if (res.status !== 200) {
    throw new TokenError(TokenErrorCode.issuerUnreachable, `discovery at ${url} answered HTTP ${res.status}`);
  }
  let doc: unknown;
  try {
    doc = await res.json();
  } catch (cause) {
    throw new TokenError(TokenErrorCode.issuerUnreachable, `discovery at ${url} did not return JSON`, { cause });
  }
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) {
    throw new TokenError(TokenErrorCode.issuerInvalid, `discovery at ${url} did not return a JSON object`);
  }
  const document = doc as Record<string, unknown>;
  // OIDC Discovery §4.3: the document's issuer MUST be identical to the one used to find it. A mismatch
  // (even a trailing "/") means every token's `iss` would differ from the configured issuer too.
  if (document['issuer'] !== issuer) {
    throw new TokenError(
      TokenErrorCode.issuerMismatch,
      `discovery document names issuer ${JSON.stringify(document['issuer'])}, configured issuer is ${JSON.stringify(issuer)}`,
    );
  }
  const jwksUri = issuerSideUrl(document['jwks_uri'], 'jwks_uri');
  if (jwksUri === undefined) throw new TokenError(TokenErrorCode.issuerInvalid, 'discovery document has no jwks_uri');
  const introspectionEndpoint = issuerSideUrl(document['introspection_endpoint'], 'introspection_endpoint');
  if (opts.needIntrospection && introspectionEndpoint === undefined) {
    throw new TokenError(TokenErrorCode.issuerInvalid, 'introspection is configured but the issuer has no introspection_endpoint');
  }
  return Object.freeze({ issuer, jwksUri, introspectionEndpoint, document: Object.freeze(document) });
}

function issuerSideUrl(value: unknown, what: string): URL | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'string') throw new TokenError(TokenErrorCode.issuerInvalid, `discovery ${what} is not a string`);
  try {
    return parseIssuerSideUrl(value, `discovery ${what}`);
  } catch (cause) {
    throw new TokenError(TokenErrorCode.issuerInvalid, (cause as Error).message, { cause });
  }
}
