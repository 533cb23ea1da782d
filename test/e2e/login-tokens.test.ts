// Login path, the token (docs/design.md §2 step 4): every way a token fails gives the client the same
// FATAL 28P01 `token authentication failed for user "<user>"`, the audit log alone says why
// (`token_invalid:<code>`), and no log line ever contains the token.
import { createHmac, createPublicKey } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { baseClaims, forge, handmade } from '../auth/forge.js';
import { startStack, type Stack } from '../helpers/stack.js';
import { conninfo, deniedEvents, pgLoginError, psql, withPg } from './login-helpers.js';

let stack: Stack;
/** Every token handed to the proxy in this file, to prove none reaches a log line. */
const used: string[] = [];

beforeAll(async () => {
  stack = await startStack();
  await stack.provision('tina@corp.com', ['analysts']);
});
afterAll(async () => {
  await stack?.close();
});

const nowSec = (): number => Math.floor(Date.now() / 1000);
const claims = () => baseClaims(stack.issuer.issuer, 'tina@corp.com', 'rolegate', nowSec());

/** Logs in as `user` (a name unique to the case) with `token`; expects 28P01 and the audit reason. */
async function expectRefused(user: string, token: string, code: string): Promise<void> {
  used.push(token);
  expect(await pgLoginError(stack.pgConfig(user, token))).toEqual({ code: '28P01', message: `token authentication failed for user "${user}"` });
  const events = deniedEvents(stack).filter((e) => e['requestedUser'] === user);
  expect(events).toHaveLength(1);
  expect(events[0]).toMatchObject({ reason: `token_invalid:${code}`, sqlstate: '28P01', database: stack.db.name });
}

describe('token failures: 28P01 to the client, the reason in the audit log only', () => {
  it('a valid token logs in (the baseline the forged ones differ from)', async () => {
    const token = await forge(stack.issuer.issuer, claims());
    used.push(token);
    const rows = await withPg(stack.pgConfig('tina@corp.com', token), async (c) => (await c.query('select current_user as u')).rows);
    expect(rows).toEqual([{ u: stack.roles.reader }]);
  });

  it('expired', async () => {
    await expectRefused('expired@corp.com', await forge(stack.issuer.issuer, { ...claims(), iat: nowSec() - 7200, exp: nowSec() - 3600 }), 'expired');
  });

  it('not yet valid (nbf beyond the clock tolerance)', async () => {
    await expectRefused('nbf@corp.com', await forge(stack.issuer.issuer, { ...claims(), nbf: nowSec() + 600 }), 'not_yet_valid');
  });

  it('wrong audience', async () => {
    await expectRefused('aud@corp.com', await forge(stack.issuer.issuer, { ...claims(), aud: 'some-other-api' }), 'audience_mismatch');
    // A real token from the issuer, minted for another resource.
    await expectRefused('aud2@corp.com', await stack.tokenFor('tina@corp.com', { audience: 'https://other.example/' }), 'audience_mismatch');
  });

  it('wrong issuer, also by one trailing slash', async () => {
    await expectRefused('iss@corp.com', await forge(stack.issuer.issuer, { ...claims(), iss: 'https://evil.example.com' }), 'issuer_mismatch');
    await expectRefused('iss2@corp.com', await forge(stack.issuer.issuer, { ...claims(), iss: `${stack.issuer.issuer}/` }), 'issuer_mismatch');
  });

  it('alg none', async () => {
    await expectRefused('none@corp.com', handmade({ alg: 'none', typ: 'at+jwt' }, claims()), 'alg_not_allowed');
  });

  it('HS256 signed with the issuer\'s public key (key confusion)', async () => {
    const rsa = stack.issuer.issuer.privateJwks().keys.find((k) => k.alg === 'RS256')!;
    const { d: _d, p: _p, q: _q, dp: _dp, dq: _dq, qi: _qi, ...publicJwk } = rsa;
    const pem = createPublicKey({ key: publicJwk, format: 'jwk' }).export({ type: 'spki', format: 'pem' });
    const unsigned = handmade({ alg: 'HS256', typ: 'at+jwt', kid: rsa.kid }, claims()).slice(0, -1);
    const sig = createHmac('sha256', pem).update(unsigned).digest('base64url');
    await expectRefused('hs256@corp.com', `${unsigned}.${sig}`, 'alg_not_allowed');
  });

  it('tampered payload', async () => {
    const [h, , s] = (await stack.tokenFor('tina@corp.com')).split('.');
    const payload = Buffer.from(JSON.stringify({ ...claims(), email: 'admin@corp.com', sub: 'admin@corp.com' })).toString('base64url');
    await expectRefused('tampered@corp.com', `${h}.${payload}.${s}`, 'signature_invalid');
  });

  it('garbage', async () => {
    await expectRefused('garbage@corp.com', 'not a token at all', 'token_malformed');
    // JWT-shaped, but the header is not JSON ('foo.bar.baz' in base64url).
    await expectRefused('garbage2@corp.com', 'Zm9v.YmFy.YmF6', 'token_malformed');
  });

  it('oversized (more than 65,530 bytes; pg sends it whole, psql would truncate)', async () => {
    const big = `${(await stack.tokenFor('tina@corp.com'))}.${'A'.repeat(66_000)}`;
    await expectRefused('big@corp.com', big, 'token_too_long');
    // The boundary: 65,531 bytes is one too many and is refused unread; 65,530 is read and verified
    // (and refused here only because it is garbage).
    await expectRefused('over@corp.com', 'a'.repeat(65_531), 'token_too_long');
    await expectRefused('max@corp.com', 'a'.repeat(65_530), 'token_malformed');
  });

  it('email_verified: false is refused like an invalid token (email_unverified)', async () => {
    // A real token from the issuer for a provisioned person, whose address the issuer says is unverified.
    await expectRefused('Tina@Corp.com', await stack.tokenFor('tina@corp.com', { emailVerified: false }), 'email_unverified');
    // Silent about it (as Okta and Entra access tokens are), or verified: admitted by default.
    for (const emailVerified of [undefined, true]) {
      const token = await stack.tokenFor('tina@corp.com', emailVerified === undefined ? {} : { emailVerified });
      used.push(token);
      const rows = await withPg(stack.pgConfig('tina@corp.com', token), async (c) => (await c.query('select current_user as u')).rows);
      expect(rows).toEqual([{ u: stack.roles.reader }]);
    }
  });

  it('psql shows the same text', async () => {
    const token = handmade({ alg: 'none' }, claims());
    used.push(token);
    const r = await psql(conninfo(stack, 'tina@corp.com'), token, ['-Atc', 'select 1']);
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toContain('FATAL:  token authentication failed for user "tina@corp.com"');
    expect(r.stderr).not.toContain('alg');
  });

  it('unknown kid after key rotation: refused inside the 30 s refetch cooldown, accepted after it', async () => {
    // The proxy fetched the JWKS for the logins above, moments ago: a new kid is inside the cooldown.
    await stack.issuer.issuer.rotateKeys();
    const rotated = await stack.tokenFor('tina@corp.com');
    await expectRefused('kid@corp.com', rotated, 'kid_unknown');
    // A kid the issuer never had: the same refusal, and no refetch is triggered by it either.
    await expectRefused('kid2@corp.com', await forge(stack.issuer.issuer, claims(), { kid: 'never-published' }), 'kid_unknown');

    // The proxy runs in this process, so moving Date moves its clock (and the issuer's) past the cooldown.
    vi.useFakeTimers({ toFake: ['Date'], shouldAdvanceTime: true });
    try {
      vi.setSystemTime(Date.now() + 31_000);
      const rows = await withPg(stack.pgConfig('tina@corp.com', rotated), async (c) => (await c.query('select current_user as u')).rows);
      expect(rows).toEqual([{ u: stack.roles.reader }]);
    } finally {
      vi.useRealTimers();
    }
  });

  it('no log line contains any of the tokens above (runs last)', () => {
    const lines = stack.logLines();
    expect(lines.length).toBeGreaterThan(20);
    expect(used.length).toBeGreaterThan(15);
    for (const token of used) {
      // The tail of each token (the signature for a JWT) is the part that cannot appear by accident.
      const tail = token.length > 40 ? token.slice(-40) : token;
      expect(lines.filter((l) => l.includes(tail))).toEqual([]);
    }
  });
});

describe('oidc.requireVerifiedEmail: true', () => {
  let strict: Stack;
  beforeAll(async () => {
    strict = await startStack({ config: { oidc: { requireVerifiedEmail: true } } });
    await strict.provision('uma@corp.com', ['analysts']);
  });
  afterAll(async () => {
    await strict?.close();
  });

  it('refuses a token that does not say email_verified: true, admits one that does', async () => {
    for (const [user, emailVerified] of [['uma@corp.com', undefined], ['Uma@Corp.com', false]] as const) {
      const token = await strict.tokenFor('uma@corp.com', emailVerified === undefined ? {} : { emailVerified });
      expect(await pgLoginError(strict.pgConfig(user, token))).toEqual({ code: '28P01', message: `token authentication failed for user "${user}"` });
      expect(deniedEvents(strict).filter((e) => e['requestedUser'] === user)).toMatchObject([{ reason: 'token_invalid:email_unverified', sqlstate: '28P01' }]);
    }
    const token = await strict.tokenFor('uma@corp.com', { emailVerified: true });
    const rows = await withPg(strict.pgConfig('uma@corp.com', token), async (c) => (await c.query('select current_user as u')).rows);
    expect(rows).toEqual([{ u: strict.roles.reader }]);
  });
});
