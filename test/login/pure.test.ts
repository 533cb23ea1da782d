// Pure parts of `rolegate login`: how an audience is asked for, issuer text made printable, and errors
// turned into one line without secrets.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { LoginError, LoginErrorCode, peerText, toLoginError } from '../../cli/login/errors.js';
import { audienceParams, grantParams, toTokenResult } from '../../cli/login/grants.js';

describe('audienceParams', () => {
  it.each([
    [undefined, {}],
    ['rolegate', { audience: 'rolegate' }],
    ['https://db.example/app', { resource: 'https://db.example/app', audience: 'https://db.example/app' }],
    ['api://2f1c-guid', { resource: 'api://2f1c-guid', audience: 'api://2f1c-guid' }],
    ['urn:rolegate:dev:ES256:warehouse', { resource: 'urn:rolegate:dev:ES256:warehouse', audience: 'urn:rolegate:dev:ES256:warehouse' }],
    // RFC 8707 §2: a resource indicator must not have a fragment; such an audience goes as `audience` only.
    ['https://db.example/#x', { audience: 'https://db.example/#x' }],
    ['1http://not-a-scheme', { audience: '1http://not-a-scheme' }],
  ])('%s -> %o', (audience, expected) => {
    expect(audienceParams(audience)).toEqual(expected);
  });

  it('adds scope only when there is one', () => {
    expect(grantParams(undefined, undefined)).toEqual({});
    expect(grantParams('a', 'openid')).toEqual({ audience: 'a', scope: 'openid' });
  });
});

/** An unsigned JWT-shaped string with the given claims: toTokenResult only reads, never verifies. */
function jwtWith(claims: Record<string, unknown>): string {
  const part = (o: unknown): string => Buffer.from(JSON.stringify(o)).toString('base64url');
  return `${part({ alg: 'ES256', typ: 'at+jwt' })}.${part(claims)}.c2ln`;
}

describe('toTokenResult', () => {
  // The CI failure of 53e19d3: the cache held now + expires_in, one second past the JWT's exp, because
  // the issuer's second had turned before the CLI read its clock.
  it('a cached expiry never runs past the JWT exp when expires_in was counted from an earlier second', () => {
    const res = { access_token: jwtWith({ exp: 1_000_600 }), token_type: 'bearer', expires_in: 600 } as never;
    expect(toTokenResult(res, 1_000_001).expiresAt).toBe(1_000_600);
  });

  it('takes expires_in when it ends first, the JWT exp without expires_in, and nothing for an opaque token', () => {
    expect(toTokenResult({ access_token: jwtWith({ exp: 2_000 }), token_type: 'bearer', expires_in: 60 } as never, 1_000).expiresAt).toBe(1_060);
    expect(toTokenResult({ access_token: jwtWith({ exp: 2_000 }), token_type: 'bearer' } as never, 1_000).expiresAt).toBe(2_000);
    expect(toTokenResult({ access_token: 'opaque', token_type: 'bearer' } as never, 1_000).expiresAt).toBeUndefined();
    expect(toTokenResult({ access_token: 'opaque', token_type: 'bearer', expires_in: 30 } as never, 1_000).expiresAt).toBe(1_030);
  });
});

describe('peerText', () => {
  it('is one printable line of bounded length, and stable', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 600 }), (s) => {
        const out = peerText(s);
        expect(out).not.toMatch(/[\u0000-\u001f\u007f-\u009f]/);
        expect(out.length).toBeLessThanOrEqual(203);
        if (out.length <= 200) expect(peerText(out)).toBe(out);
      }),
    );
  });

  it('is empty for anything that is not a string', () => {
    expect([undefined, null, 7, {}].map(peerText)).toEqual(['', '', '', '']);
  });
});

describe('toLoginError', () => {
  const ISSUER = 'https://idp.example';

  it('names the step and the socket error found down the cause chain', () => {
    const sock = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED' });
    const e = toLoginError(new Error('something went wrong', { cause: sock }), 'discovery', ISSUER);
    expect(e).toMatchObject({ code: LoginErrorCode.unreachable, message: `cannot reach the issuer at ${ISSUER} during discovery (connect ECONNREFUSED 127.0.0.1:1)` });
  });

  it('suggests --ca for an unknown certificate authority', () => {
    const tls = Object.assign(new Error('self-signed certificate in certificate chain'), { code: 'SELF_SIGNED_CERT_IN_CHAIN' });
    expect(toLoginError(tls, 'discovery', ISSUER).message).toMatch(/; pass the issuer CA with --ca FILE$/);
  });

  it('reports a timeout as one', () => {
    const timeout = new DOMException('request to https://idp.example timed out after 15000 ms', 'TimeoutError');
    expect(toLoginError(new Error('x', { cause: timeout }), 'refresh', ISSUER).code).toBe(LoginErrorCode.unreachable);
  });

  it('keeps a LoginError\'s code and message', () => {
    const e = toLoginError(new LoginError(LoginErrorCode.cancelled, 'login cancelled'), 'device authorization', ISSUER);
    expect(e).toMatchObject({ code: LoginErrorCode.cancelled, message: 'login cancelled' });
  });

  it('never lets a secret through, whatever the error says, and stays on one line', () => {
    // Long prefixes push the secret across the 200-character cut. Excluded: secrets that are part of
    // the fixed wording, or that peerText could form by itself (it only adds spaces and "...").
    const fixed = `[redacted] client credentials grant with ${ISSUER} failed: unexpected error`;
    const secrets = fc.string({ minLength: 4, unit: 'binary' }).filter((s) => !/[\s.]/.test(s) && !fixed.includes(s));
    fc.assert(
      fc.property(fc.string({ maxLength: 400 }), secrets, fc.string(), (pre, secret, post) => {
        const e = toLoginError(new Error(`${pre}${secret}${post}`), 'client credentials grant', ISSUER, [secret]);
        expect(e.message).not.toContain(secret);
        expect(e.message).not.toContain('\n');
      }),
    );
  });

  it('redacts before shortening, so no piece of a secret cut at the 200-character limit is left', () => {
    // Digits appear nowhere else in the message, so any run of four is a piece of the secret.
    fc.assert(
      fc.property(fc.integer({ min: 150, max: 250 }), fc.stringMatching(/^[0-9]{8,40}$/), (n, secret) => {
        const e = toLoginError(new Error(`${'x'.repeat(n)}${secret} tail`), 'client credentials grant', ISSUER, [secret]);
        expect(e.message).not.toMatch(/[0-9]{4}/);
      }),
    );
  });
});
