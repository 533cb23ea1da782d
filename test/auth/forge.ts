// Hand-made tokens for negative tests: signed with the dev issuer's own private keys, or not at all.
import { importJWK, SignJWT } from 'jose';
import type { JWTPayload } from 'jose';
import type { DevIssuer } from '../../demo/dev-issuer.js';
import { registerSecrets } from '../helpers/ledger.js';

const b64 = (v: unknown): string => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');

/** Claims of a token the issuer would issue to `email` for `audience`, valid for an hour from `nowSec`. */
export function baseClaims(issuer: DevIssuer, email: string, audience: string, nowSec: number): JWTPayload {
  return { iss: issuer.issuer, sub: email, email, aud: audience, iat: nowSec, exp: nowSec + 3600, jti: `forged-${Math.random()}` };
}

/** Signs `claims` with the issuer's current key for `alg`; header fields can be overridden. */
export async function forge(
  issuer: DevIssuer,
  claims: JWTPayload,
  opts: { alg?: 'ES256' | 'RS256'; kid?: string; typ?: string | null } = {},
): Promise<string> {
  const alg = opts.alg ?? 'ES256';
  const jwk = issuer.privateJwks().keys.find((k) => k.alg === alg);
  if (jwk === undefined) throw new Error(`no ${alg} key`);
  const key = await importJWK(jwk, alg);
  const header: { alg: string; kid: string; typ?: string } = { alg, kid: opts.kid ?? jwk.kid };
  if (opts.typ !== null) header.typ = opts.typ ?? 'at+jwt';
  const token = await new SignJWT(claims).setProtectedHeader(header).sign(key);
  registerSecrets(token);
  return token;
}

/** A compact JWS built by hand: `header` and `payload` JSON, `signature` as given (base64url). */
export function handmade(header: unknown, payload: unknown, signature = ''): string {
  return `${b64(header)}.${b64(payload)}.${signature}`;
}
