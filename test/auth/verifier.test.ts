// Token verification against a real oidc-provider over HTTPS: valid tokens, every refusal code, the cache.
import { createHmac, createPublicKey } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { CompactSign, decodeJwt, importJWK } from 'jose';
import { createTokenVerifier, MAX_TOKEN_BYTES } from '../../proxy/auth/verifier.js';
import type { TokenVerifier, TokenVerifierConfig, TokenVerifierDeps } from '../../proxy/auth/verifier.js';
import { TokenError } from '../../proxy/auth/errors.js';
import type { TokenErrorCode } from '../../proxy/auth/errors.js';
import { AUDIENCE, countingFetch, startTestIssuer } from './issuer-fixture.js';
import type { TestIssuer } from './issuer-fixture.js';
import { baseClaims, forge, handmade } from './forge.js';

let t: TestIssuer;
const open: { close(): void }[] = [];

beforeAll(async () => {
  t = await startTestIssuer();
});
afterAll(async () => {
  for (const o of open) o.close();
  await t?.close();
});

function config(overrides: Partial<TokenVerifierConfig> = {}): TokenVerifierConfig {
  return {
    issuer: t.issuer.issuer,
    audience: AUDIENCE,
    algorithms: ['ES256', 'RS256'],
    clockToleranceSec: 30,
    identityClaim: 'email',
    ca: t.ca,
    ...overrides,
  };
}

/** A verifier whose network traffic is counted. */
function make(overrides: Partial<TokenVerifierConfig> = {}, deps: Omit<TokenVerifierDeps, 'fetch'> = {}) {
  const net = countingFetch(t.ca);
  const v = createTokenVerifier(config(overrides), { ...deps, fetch: net.fetch });
  open.push(net, v);
  return { v, net };
}

async function codeOf(p: Promise<unknown>): Promise<TokenErrorCode> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(TokenError);
    return (err as TokenError).code;
  }
  throw new Error('expected a TokenError, the token was accepted');
}

const nowSec = (): number => Math.floor(Date.now() / 1000);

describe('valid tokens', () => {
  it.each(['ES256', 'RS256'] as const)('accepts a real %s access token and names the person by email', async (alg) => {
    const { v } = make();
    const token = await t.issuer.tokenFor('Alice@Corp.com', { alg });
    const res = await v.verify(token);
    const payload = decodeJwt(token);
    expect(res).toEqual({
      identity: 'Alice@Corp.com',
      kind: 'jwt',
      claims: { iss: t.issuer.issuer, sub: 'Alice@Corp.com', aud: AUDIENCE, exp: payload.exp, jti: payload.jti },
    });
    expect(Object.isFrozen(res) && Object.isFrozen(res.claims)).toBe(true);
  });

  it('accepts an ID-token style JWT (typ JWT, or no typ) and an aud array containing the audience', async () => {
    const { v } = make();
    const claims = { ...baseClaims(t.issuer, 'bob@corp.com', AUDIENCE, nowSec()), aud: ['other', AUDIENCE] };
    expect((await v.verify(await forge(t.issuer, claims, { typ: 'JWT' }))).identity).toBe('bob@corp.com');
    expect((await v.verify(await forge(t.issuer, { ...claims, jti: 'x2' }, { typ: null }))).identity).toBe('bob@corp.com');
  });

  it('uses the configured identity claim', async () => {
    const { v } = make({ identityClaim: 'sub' });
    expect((await v.verify(await t.issuer.tokenFor('carol@corp.com'))).identity).toBe('carol@corp.com');
  });

  it('ready() resolves once discovery and the JWKS are reachable', async () => {
    const { v, net } = make();
    await v.ready();
    expect(net.count('/.well-known/openid-configuration')).toBe(1);
    expect(net.count('/jwks')).toBe(1);
  });
});

describe('time', () => {
  it('refuses an expired token, and honours the clock tolerance around exp', async () => {
    const token = await t.issuer.tokenFor('dave@corp.com', { expiresInSec: 1 });
    const exp = decodeJwt(token).exp as number;
    const justInside = make({}, { now: () => (exp + 29) * 1000 });
    expect((await justInside.v.verify(token)).identity).toBe('dave@corp.com');
    const outside = make({}, { now: () => (exp + 31) * 1000 });
    expect(await codeOf(outside.v.verify(token))).toBe('expired');
    const noTolerance = make({ clockToleranceSec: 0 }, { now: () => exp * 1000 + 1 });
    expect(await codeOf(noTolerance.v.verify(token))).toBe('expired');
  });

  it('refuses a token whose nbf is in the future beyond the tolerance, accepts it within', async () => {
    const { v } = make();
    const now = nowSec();
    const later = await forge(t.issuer, { ...baseClaims(t.issuer, 'erin@corp.com', AUDIENCE, now), nbf: now + 120 });
    expect(await codeOf(v.verify(later))).toBe('not_yet_valid');
    const soon = await forge(t.issuer, { ...baseClaims(t.issuer, 'erin@corp.com', AUDIENCE, now), nbf: now + 20 });
    expect((await v.verify(soon)).identity).toBe('erin@corp.com');
  });

  it('requires exp', async () => {
    const { v } = make();
    const { exp: _exp, ...claims } = baseClaims(t.issuer, 'frank@corp.com', AUDIENCE, nowSec());
    expect(await codeOf(v.verify(await forge(t.issuer, claims)))).toBe('claim_missing');
  });
});

describe('issuer and audience', () => {
  it('refuses a token for another audience', async () => {
    const { v } = make();
    expect(await codeOf(v.verify(await t.issuer.tokenFor('gina@corp.com', { audience: 'someone-else' })))).toBe('audience_mismatch');
  });

  it('refuses an issuer configured with a trailing slash the issuer does not use (discovery and ready)', async () => {
    const { v } = make({ issuer: `${t.issuer.issuer}/` });
    expect(await codeOf(v.ready())).toBe('issuer_mismatch');
    expect(await codeOf(v.verify(await t.issuer.tokenFor('hank@corp.com')))).toBe('issuer_mismatch');
  });

  it('refuses a token whose iss differs by a trailing slash, signed with the right key', async () => {
    const { v } = make();
    const claims = { ...baseClaims(t.issuer, 'ivan@corp.com', AUDIENCE, nowSec()), iss: `${t.issuer.issuer}/` };
    expect(await codeOf(v.verify(await forge(t.issuer, claims)))).toBe('issuer_mismatch');
  });
});

describe('signatures and algorithms', () => {
  it('refuses alg none', async () => {
    const { v } = make();
    const token = handmade({ alg: 'none', typ: 'at+jwt' }, baseClaims(t.issuer, 'judy@corp.com', AUDIENCE, nowSec()));
    expect(await codeOf(v.verify(token))).toBe('alg_not_allowed');
  });

  it('refuses HS256 signed with the public key bytes (RS256/HS256 key confusion)', async () => {
    const { v, net } = make();
    const rsa = t.issuer.privateJwks().keys.find((k) => k.alg === 'RS256');
    const { d: _d, p: _p, q: _q, dp: _dp, dq: _dq, qi: _qi, ...publicJwk } = rsa!;
    const pem = createPublicKey({ key: publicJwk, format: 'jwk' }).export({ type: 'spki', format: 'pem' });
    const claims = baseClaims(t.issuer, 'mallory@corp.com', AUDIENCE, nowSec());
    for (const secret of [pem, JSON.stringify(publicJwk)]) {
      const unsigned = handmade({ alg: 'HS256', typ: 'at+jwt', kid: rsa!.kid }, claims).slice(0, -1);
      const sig = createHmac('sha256', secret).update(unsigned).digest('base64url');
      expect(await codeOf(v.verify(`${unsigned}.${sig}`))).toBe('alg_not_allowed');
    }
    // Refused before any key lookup.
    expect(net.urls).toEqual([]);
  });

  it('refuses HMAC and none in the configuration', () => {
    for (const alg of ['HS256', 'hs512', 'none', 'NONE']) {
      expect(() => createTokenVerifier(config({ algorithms: ['ES256', alg] }))).toThrow(TypeError);
    }
  });

  it('refuses an algorithm outside the allow-list even with a valid signature', async () => {
    const { v } = make({ algorithms: ['ES256'] });
    expect(await codeOf(v.verify(await t.issuer.tokenFor('kim@corp.com', { alg: 'RS256' })))).toBe('alg_not_allowed');
  });

  it('refuses a correctly signed token whose payload is not a JSON object', async () => {
    const { v } = make();
    const jwk = t.issuer.privateJwks().keys.find((k) => k.alg === 'ES256')!;
    const key = await importJWK(jwk, 'ES256');
    for (const payload of ['not json', '[1,2]', '"a string"']) {
      const token = await new CompactSign(new TextEncoder().encode(payload)).setProtectedHeader({ alg: 'ES256', kid: jwk.kid }).sign(key);
      expect(await codeOf(v.verify(token))).toBe('token_malformed');
    }
  });

  it('refuses a tampered payload', async () => {
    const { v } = make();
    const [h, , s] = (await t.issuer.tokenFor('lena@corp.com')).split('.');
    const payload = Buffer.from(JSON.stringify(baseClaims(t.issuer, 'admin@corp.com', AUDIENCE, nowSec()))).toString('base64url');
    expect(await codeOf(v.verify(`${h}.${payload}.${s}`))).toBe('signature_invalid');
  });

  it('refuses other JWT types (typ), sender-constrained tokens (cnf) and tokens without the identity claim', async () => {
    const { v } = make();
    const claims = baseClaims(t.issuer, 'max@corp.com', AUDIENCE, nowSec());
    expect(await codeOf(v.verify(await forge(t.issuer, claims, { typ: 'logout+jwt' })))).toBe('typ_not_allowed');
    expect(await codeOf(v.verify(await forge(t.issuer, { ...claims, cnf: { jkt: 'abc' } })))).toBe('claim_invalid');
    const { email: _e, ...noEmail } = claims;
    expect(await codeOf(v.verify(await forge(t.issuer, noEmail)))).toBe('claim_missing');
    const other = make({ identityClaim: 'preferred_username' });
    expect(await codeOf(other.v.verify(await t.issuer.tokenFor('max@corp.com')))).toBe('claim_missing');
  });
});

describe('input shape', () => {
  it('refuses oversized tokens before anything else', async () => {
    const { v, net } = make();
    expect(await codeOf(v.verify('a'.repeat(MAX_TOKEN_BYTES + 1)))).toBe('token_too_long');
    expect(await codeOf(v.verify(`${'a'.repeat(MAX_TOKEN_BYTES - 4)}.b.c.d`))).toBe('token_too_long');
    expect(net.urls).toEqual([]);
  });

  it.each([
    ['empty', ''],
    ['one word, no introspection configured', 'abcdef'],
    ['two segments', 'abc.def'],
    ['four segments', 'a.b.c.d'],
    ['JWE (five segments)', 'eyJhbGciOiJSU0EtT0FFUCJ9.a.b.c.d'],
    ['spaces', 'abc def ghi'],
    ['non-ASCII', 'tökén.ä.ö'],
    ['header not JSON', `${Buffer.from('nope').toString('base64url')}.e30.sig`],
    ['longest allowed garbage', 'a'.repeat(MAX_TOKEN_BYTES)],
  ])('refuses %s as token_malformed', async (_name, token) => {
    const { v } = make();
    expect(await codeOf(v.verify(token))).toBe('token_malformed');
  });
});

describe('key rotation and the JWKS refetch limit', () => {
  it('refetches once per 30 s at most on unknown kids, and verifies new-kid tokens after one refetch', async () => {
    vi.useFakeTimers({ toFake: ['Date'], shouldAdvanceTime: true });
    try {
      const { v, net } = make();
      const before = await t.issuer.tokenFor('olga@corp.com');
      await v.verify(before);
      expect(net.count('/jwks')).toBe(1);

      await t.issuer.rotateKeys();
      const after = await t.issuer.tokenFor('olga@corp.com');
      // Inside the cooldown that follows the first fetch: no refetch, the new kid is unknown.
      expect(await codeOf(v.verify(after))).toBe('kid_unknown');
      expect(net.count('/jwks')).toBe(1);

      vi.setSystemTime(Date.now() + 31_000);
      const fresh = await Promise.all(Array.from({ length: 10 }, (_, i) => t.issuer.tokenFor(`user${i}@corp.com`)));
      const verified = await Promise.all(fresh.map((tok) => v.verify(tok)));
      expect(verified.map((r) => r.identity)).toEqual(fresh.map((_, i) => `user${i}@corp.com`));
      expect(net.count('/jwks')).toBe(2);

      const claims = baseClaims(t.issuer, 'eve@corp.com', AUDIENCE, Math.floor(Date.now() / 1000));
      const burst = await Promise.all(Array.from({ length: 20 }, (_, i) => forge(t.issuer, { ...claims, jti: `b${i}` }, { kid: `unknown-${i}` })));
      const codes = await Promise.all(burst.map((tok) => codeOf(v.verify(tok))));
      expect(new Set(codes)).toEqual(new Set(['kid_unknown']));
      expect(net.count('/jwks')).toBe(2);

      vi.setSystemTime(Date.now() + 31_000);
      expect(await codeOf(v.verify(await forge(t.issuer, { ...claims, jti: 'late' }, { kid: 'unknown-late' })))).toBe('kid_unknown');
      expect(net.count('/jwks')).toBe(3);

      // A verifier that never saw the old key refuses a token signed with it.
      const { v: other } = make();
      expect(await codeOf(other.verify(before))).toBe('kid_unknown');
    } finally {
      vi.useRealTimers();
    }
  });
});

describe('cache', () => {
  it('serves a second verify without network, and stops serving the token after its exp', async () => {
    let now = Date.now();
    const { v, net } = make({ clockToleranceSec: 0 }, { now: () => now });
    const token = await t.issuer.tokenFor('pat@corp.com', { expiresInSec: 120 });
    const exp = decodeJwt(token).exp as number;
    const first = await v.verify(token);
    const requests = net.urls.length;
    expect(await v.verify(token)).toBe(first);
    expect(net.urls.length).toBe(requests);
    now = exp * 1000;
    expect(await codeOf(v.verify(token))).toBe('expired');
  });

  it('verifies concurrent calls with the same token once', async () => {
    const { v, net } = make({ introspection: t.issuer.clients.introspection });
    const token = await t.issuer.tokenFor('quinn@corp.com', { format: 'opaque' });
    const results = await Promise.all(Array.from({ length: 20 }, () => v.verify(token)));
    expect(new Set(results).size).toBe(1);
    expect(net.count('/token/introspection')).toBe(1);
    expect(net.count('/.well-known/openid-configuration')).toBe(1);
  });

  it('does not cache failures', async () => {
    const { v, net } = make({ introspection: { ...t.issuer.clients.introspection, clientSecret: 'wrong' } });
    const token = await t.issuer.tokenFor('ruth@corp.com', { format: 'opaque' });
    expect(await codeOf(v.verify(token))).toBe('introspection_failed');
    expect(await codeOf(v.verify(token))).toBe('introspection_failed');
    expect(net.count('/token/introspection')).toBe(2);
  });
});

describe('opaque tokens (RFC 7662 introspection)', () => {
  it('accepts an active opaque token and refuses it once revoked', async () => {
    const { v } = make({ introspection: t.issuer.clients.introspection });
    const token = await t.issuer.tokenFor('tina@corp.com', { format: 'opaque' });
    const res = await v.verify(token);
    expect(res.kind).toBe('introspected');
    expect(res.identity).toBe('tina@corp.com');
    expect(res.claims.iss).toBe(t.issuer.issuer);
    expect(res.claims.sub).toBe('tina@corp.com');
    expect(res.claims.aud).toBe(AUDIENCE);
    expect(typeof res.claims.exp).toBe('number');

    await t.issuer.revoke(token);
    const { v: fresh } = make({ introspection: t.issuer.clients.introspection });
    expect(await codeOf(fresh.verify(token))).toBe('inactive');
  });

  it('refuses an opaque token for another audience, and unknown opaque strings', async () => {
    const { v } = make({ introspection: t.issuer.clients.introspection });
    const token = await t.issuer.tokenFor('uma@corp.com', { format: 'opaque', audience: 'someone-else' });
    expect(await codeOf(v.verify(token))).toBe('audience_mismatch');
    expect(await codeOf(v.verify('NotATokenTheIssuerKnows0123456789abcdefghi'))).toBe('inactive');
  });

  it('refuses opaque tokens when introspection is not configured, without network', async () => {
    const { v, net } = make();
    expect(await codeOf(v.verify(await t.issuer.tokenFor('vera@corp.com', { format: 'opaque' })))).toBe('token_malformed');
    expect(net.urls).toEqual([]);
  });
});

describe('email_verified (identityClaim email)', () => {
  it('email_verified: false is refused like an invalid token (email_unverified), JWT and introspected', async () => {
    const { v } = make({ introspection: t.issuer.clients.introspection });
    for (const alg of ['ES256', 'RS256'] as const) {
      const token = await t.issuer.tokenFor('mallory@corp.com', { alg, emailVerified: false });
      expect(decodeJwt(token).email_verified).toBe(false);
      expect(await codeOf(v.verify(token)), alg).toBe('email_unverified');
    }
    expect(await codeOf(v.verify(await t.issuer.tokenFor('mallory@corp.com', { format: 'opaque', emailVerified: false })))).toBe('email_unverified');
    // Issuers that send strings, or something that is not a verification at all.
    for (const email_verified of ['false', 'FALSE', 0, null, 'yes', {}]) {
      const claims = { ...baseClaims(t.issuer, 'mallory@corp.com', AUDIENCE, nowSec()), email_verified };
      expect(await codeOf(v.verify(await forge(t.issuer, claims))), JSON.stringify(email_verified)).toBe('email_unverified');
    }
    // Verified, or silent about it (the default, for Okta and Entra access tokens): the person is named.
    expect((await v.verify(await t.issuer.tokenFor('mallory@corp.com', { emailVerified: true }))).identity).toBe('mallory@corp.com');
    expect((await v.verify(await t.issuer.tokenFor('mallory@corp.com', { format: 'opaque', emailVerified: true }))).identity).toBe('mallory@corp.com');
    expect((await v.verify(await t.issuer.tokenFor('mallory@corp.com'))).identity).toBe('mallory@corp.com');
    const asString = { ...baseClaims(t.issuer, 'mallory@corp.com', AUDIENCE, nowSec()), email_verified: 'True' };
    expect((await v.verify(await forge(t.issuer, asString))).identity).toBe('mallory@corp.com');
  });

  it('does not apply when another claim names the person', async () => {
    const { v } = make({ identityClaim: 'sub' });
    expect((await v.verify(await t.issuer.tokenFor('oscar@corp.com', { emailVerified: false }))).identity).toBe('oscar@corp.com');
  });

  it('oidc.requireVerifiedEmail also refuses tokens that do not carry email_verified: true', async () => {
    const { v } = make({ introspection: t.issuer.clients.introspection, requireVerifiedEmail: true });
    expect(await codeOf(v.verify(await t.issuer.tokenFor('pam@corp.com')))).toBe('email_unverified');
    expect(await codeOf(v.verify(await t.issuer.tokenFor('pam@corp.com', { format: 'opaque' })))).toBe('email_unverified');
    expect(await codeOf(v.verify(await t.issuer.tokenFor('pam@corp.com', { emailVerified: false })))).toBe('email_unverified');
    expect((await v.verify(await t.issuer.tokenFor('pam@corp.com', { emailVerified: true }))).identity).toBe('pam@corp.com');
    expect((await v.verify(await t.issuer.tokenFor('pam@corp.com', { format: 'opaque', emailVerified: true }))).identity).toBe('pam@corp.com');
    // Only meaningful when the email names the person: refused at construction otherwise.
    expect(() => createTokenVerifier(config({ identityClaim: 'sub', requireVerifiedEmail: true }))).toThrow(/requireVerifiedEmail/);
  });
});

describe('issuer problems', () => {
  it('reports an unreachable issuer', async () => {
    const closed = await startTestIssuer();
    const issuer = closed.issuer.issuer;
    await closed.close();
    const v: TokenVerifier = createTokenVerifier(config({ issuer, ca: closed.ca }));
    open.push(v);
    expect(await codeOf(v.ready())).toBe('issuer_unreachable');
    expect(await codeOf(v.verify(await t.issuer.tokenFor('walt@corp.com')))).toBe('issuer_unreachable');
  });

  it('does not trust the issuer certificate without the extra CA', async () => {
    const v = createTokenVerifier(config({ ca: undefined }));
    open.push(v);
    const err = await v.ready().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(TokenError);
    expect((err as TokenError).code).toBe('issuer_unreachable');
    expect(String((err as TokenError).cause)).toMatch(/certificate/i);
  });

  it('refuses plain http issuers except on loopback', () => {
    expect(() => createTokenVerifier(config({ issuer: 'http://idp.example.com' }))).toThrow(TypeError);
    expect(() => createTokenVerifier(config({ issuer: 'http://127.0.0.1:9' })).close()).not.toThrow();
  });
});
