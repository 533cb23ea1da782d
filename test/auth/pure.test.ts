// The pure parts of token verification: URL rules, token shapes, introspection checks, error mapping, cache.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { errors as jose } from 'jose';
import { discoveryUrl, isLoopbackHost, parseIssuerSideUrl } from '../../proxy/auth/discovery.js';
import { TokenError, isIssuerProblem } from '../../proxy/auth/errors.js';
import { checkIntrospection } from '../../proxy/auth/introspection.js';
import { joseToTokenError, looksLikeJwe, looksLikeJws } from '../../proxy/auth/jwt.js';
import { createTokenCache, tokenCacheKey } from '../../proxy/auth/token-cache.js';
import { createTokenVerifier } from '../../proxy/auth/verifier.js';

describe('issuer-side URLs', () => {
  it.each([
    ['localhost', true],
    ['127.0.0.1', true],
    ['127.8.9.10', true],
    ['[::1]', true],
    ['::1', true],
    ['128.0.0.1', false],
    ['10.0.0.1', false],
    ['localhost.example.com', false],
    ['127.0.0.1.nip.io', false],
    ['[::2]', false],
    ['idp.example.com', false],
  ])('isLoopbackHost(%s) = %s', (host, expected) => {
    expect(isLoopbackHost(host)).toBe(expected);
  });

  it.each([
    ['https://idp.example.com', true],
    ['https://idp.example.com/realms/x/', true],
    ['http://127.0.0.1:8080', true],
    ['http://localhost', true],
    ['http://[::1]:1234', true],
    ['http://idp.example.com', false],
    ['http://10.1.2.3', false],
    ['ftp://idp.example.com', false],
    ['https://user:pw@idp.example.com', false],
    ['https://idp.example.com/#frag', false],
    ['not a url', false],
  ])('parseIssuerSideUrl(%s) accepted = %s', (url, ok) => {
    if (ok) expect(parseIssuerSideUrl(url, 'x').href).toBe(new URL(url).href);
    else expect(() => parseIssuerSideUrl(url, 'x')).toThrow(TypeError);
  });

  it.each([
    ['https://idp.example.com', 'https://idp.example.com/.well-known/openid-configuration'],
    ['https://idp.example.com/', 'https://idp.example.com/.well-known/openid-configuration'],
    ['https://idp.example.com/realms/corp', 'https://idp.example.com/realms/corp/.well-known/openid-configuration'],
    ['https://idp.example.com/realms/corp/', 'https://idp.example.com/realms/corp/.well-known/openid-configuration'],
  ])('discoveryUrl(%s)', (issuer, expected) => {
    expect(discoveryUrl(issuer)).toBe(expected);
  });
});

describe('token shapes', () => {
  const b64url = fc.string({ unit: fc.constantFrom(...'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'), minLength: 1, maxLength: 40 });

  it('three base64url segments look like a JWS, five like a JWE', () => {
    fc.assert(
      fc.property(b64url, b64url, b64url, (a, b, c) => {
        expect(looksLikeJws(`${a}.${b}.${c}`)).toBe(true);
        expect(looksLikeJws(`${a}.${b}.`)).toBe(true);
        expect(looksLikeJwe(`${a}.${b}.${c}.${a}.${b}`)).toBe(true);
        expect(looksLikeJws(`${a}.${b}.${c}.${a}.${b}`)).toBe(false);
        expect(looksLikeJwe(`${a}.${b}.${c}`)).toBe(false);
      }),
    );
  });

  it('a character outside base64url anywhere makes it neither', () => {
    const bad = fc.constantFrom(' ', '+', '/', '=', '\n', 'é', '\u0000', '"', '{');
    fc.assert(
      fc.property(b64url, b64url, b64url, bad, fc.nat(), (a, b, c, ch, pos) => {
        const token = `${a}.${b}.${c}`;
        const i = pos % (token.length + 1);
        const spoiled = token.slice(0, i) + ch + token.slice(i);
        expect(looksLikeJws(spoiled)).toBe(false);
      }),
    );
  });
});

describe('introspection response rules', () => {
  const issuer = 'https://idp.example.com';
  const check = { audience: 'rolegate', clockToleranceSec: 30, nowMs: 1_000_000_000_000 };
  const nowSec = check.nowMs / 1000;
  const good = { active: true, iss: issuer, sub: 'u1', aud: 'rolegate', exp: nowSec + 60, token_type: 'Bearer', email: 'a@b.c' };

  it.each([
    ['active', good, undefined],
    ['no iss (optional in RFC 7662)', { ...good, iss: undefined }, undefined],
    ['aud array', { ...good, aud: ['x', 'rolegate'] }, undefined],
    ['no exp', { ...good, exp: undefined }, undefined],
    ['exp within tolerance', { ...good, exp: nowSec - 29 }, undefined],
    ['token_type lower case', { ...good, token_type: 'bearer' }, undefined],
    ['inactive', { active: false }, 'inactive'],
    ['active not boolean', { ...good, active: 'true' }, 'inactive'],
    ['other iss', { ...good, iss: `${issuer}/` }, 'issuer_mismatch'],
    ['no aud', { ...good, aud: undefined }, 'claim_missing'],
    ['other aud', { ...good, aud: 'rolegate2' }, 'audience_mismatch'],
    ['aud array without it', { ...good, aud: ['a', 'b'] }, 'audience_mismatch'],
    ['no sub', { ...good, sub: undefined }, 'claim_missing'],
    ['sub not a string', { ...good, sub: 42 }, 'claim_invalid'],
    ['expired beyond tolerance', { ...good, exp: nowSec - 31 }, 'expired'],
    ['exp not a number', { ...good, exp: '99999999999' }, 'claim_invalid'],
    ['nbf in the future', { ...good, nbf: nowSec + 31 }, 'not_yet_valid'],
    ['DPoP token', { ...good, token_type: 'DPoP' }, 'claim_invalid'],
    ['cnf bound', { ...good, cnf: { 'x5t#S256': 'abc' } }, 'claim_invalid'],
  ])('%s', (_name, res, code) => {
    const clean = Object.fromEntries(Object.entries(res).filter(([, v]) => v !== undefined));
    if (code === undefined) {
      const c = checkIntrospection(clean, issuer, check);
      expect(c.iss).toBe(issuer);
      expect(c.sub).toBe('u1');
      expect(c['email']).toBe('a@b.c');
    } else {
      expect(() => checkIntrospection(clean, issuer, check)).toThrow(expect.objectContaining({ code }));
    }
  });
});

describe('jose errors map to stable codes', () => {
  const payload = {};
  it.each([
    [new jose.JWTExpired('x', payload, 'exp', 'check_failed'), 'expired'],
    [new jose.JWTClaimValidationFailed('x', payload, 'iss', 'check_failed'), 'issuer_mismatch'],
    [new jose.JWTClaimValidationFailed('x', payload, 'aud', 'check_failed'), 'audience_mismatch'],
    [new jose.JWTClaimValidationFailed('x', payload, 'nbf', 'check_failed'), 'not_yet_valid'],
    [new jose.JWTClaimValidationFailed('x', payload, 'exp', 'missing'), 'claim_missing'],
    [new jose.JWTClaimValidationFailed('x', payload, 'iat', 'invalid'), 'claim_invalid'],
    [new jose.JOSEAlgNotAllowed('x'), 'alg_not_allowed'],
    [new jose.JWSSignatureVerificationFailed('x'), 'signature_invalid'],
    [new jose.JWKSNoMatchingKey('x'), 'kid_unknown'],
    [new jose.JWKSMultipleMatchingKeys('x'), 'kid_unknown'],
    [new jose.JWKSTimeout('x'), 'issuer_unreachable'],
    [new jose.JWKSInvalid('x'), 'issuer_invalid'],
    [new jose.JWSInvalid('x'), 'token_malformed'],
    [new jose.JWTInvalid('x'), 'token_malformed'],
    [new jose.JOSEError('Expected 200 OK from the JSON Web Key Set HTTP response'), 'issuer_unreachable'],
    [new TokenError('inactive', 'x'), 'inactive'],
  ] as const)('%o -> %s', (err, code) => {
    const mapped = joseToTokenError(err);
    expect(mapped.code).toBe(code);
    if (!(err instanceof TokenError)) expect(mapped.cause).toBe(err);
  });

  it('issuer problems are told apart from bad tokens', () => {
    expect(isIssuerProblem(new TokenError('issuer_unreachable', 'x'))).toBe(true);
    expect(isIssuerProblem(new TokenError('expired', 'x'))).toBe(false);
    expect(isIssuerProblem(new Error('x'))).toBe(false);
  });
});

describe('token cache', () => {
  it('keys are the hex SHA-256 of the token, never the token', () => {
    fc.assert(
      fc.property(fc.string({ minLength: 1, maxLength: 300 }), (token) => {
        const key = tokenCacheKey(token);
        expect(key).toMatch(/^[0-9a-f]{64}$/);
        if (token.length >= 8) expect(key.includes(token)).toBe(false);
      }),
    );
  });

  it('computes once for concurrent callers, caches until notAfter, never caches failures', async () => {
    let now = 1_000;
    const cache = createTokenCache<{ n: number }>({ max: 10, now: () => now });
    let calls = 0;
    const compute = async () => {
      calls++;
      await new Promise((r) => setTimeout(r, 5));
      return { value: { n: calls }, notAfterMs: 2_000 };
    };
    const results = await Promise.all([cache.get('t', compute), cache.get('t', compute), cache.get('t', compute)]);
    expect(calls).toBe(1);
    expect(new Set(results).size).toBe(1);
    expect(await cache.get('t', compute)).toBe(results[0]);
    now = 2_000;
    expect((await cache.get('t', compute)).n).toBe(2);

    const failing = async (): Promise<never> => {
      calls++;
      throw new Error('no');
    };
    await expect(cache.get('u', failing)).rejects.toThrow('no');
    await expect(cache.get('u', failing)).rejects.toThrow('no');
    expect(calls).toBe(4);
  });

  it('does not cache a value whose notAfter has passed, and is bounded', async () => {
    const cache = createTokenCache<{ id: string }>({ max: 2, now: () => 5_000 });
    await cache.get('late', async () => ({ value: { id: 'late' }, notAfterMs: 5_000 }));
    expect(cache.size).toBe(0);
    for (const id of ['a', 'b', 'c']) await cache.get(id, async () => ({ value: { id }, notAfterMs: 9_000 }));
    expect(cache.size).toBe(2);
    let recomputed = false;
    await cache.get('a', async () => {
      recomputed = true;
      return { value: { id: 'a' }, notAfterMs: 9_000 };
    });
    expect(recomputed).toBe(true);
  });
});

describe('verify() on arbitrary input', () => {
  it('only ever rejects with a TokenError, and never calls the issuer for input that is not token-shaped', async () => {
    const calls: string[] = [];
    const offline = (async (input: string | URL | Request) => {
      calls.push(String(input));
      throw new Error('offline');
    }) as typeof fetch;
    const v = createTokenVerifier(
      { issuer: 'https://idp.example.com', audience: 'rolegate', algorithms: ['ES256'], clockToleranceSec: 0, identityClaim: 'email', introspection: { clientId: 'c', clientSecret: 's' } },
      { fetch: offline },
    );
    const tokenish = fc.oneof(
      fc.string({ maxLength: 200 }),
      fc.tuple(fc.base64String(), fc.base64String(), fc.base64String()).map((p) => p.join('.').replace(/\+/g, '-').replace(/\//g, '_').replace(/=/g, '')),
      fc.string({ unit: 'binary', maxLength: 100 }),
    );
    await fc.assert(
      fc.asyncProperty(tokenish, async (token) => {
        calls.length = 0;
        const err = await v.verify(token).then(
          () => undefined,
          (e: unknown) => e,
        );
        expect(err).toBeInstanceOf(TokenError);
        const code = (err as TokenError).code;
        if (!/^[A-Za-z0-9\-._~+/]+=*$/.test(token)) {
          expect(code).toBe('token_malformed');
          expect(calls).toEqual([]);
        }
      }),
      { numRuns: 300 },
    );
    v.close();
  });
});
