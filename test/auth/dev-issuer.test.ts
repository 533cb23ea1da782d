// The development issuer is a real oidc-provider: discovery, minted tokens, key rotation, the device flow,
// and the dev-only minting parameters being ignored for every other client.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeJwt, decodeProtectedHeader } from 'jose';
import { createBoundedFetch } from '../../proxy/auth/http-fetch.js';
import type { BoundedFetch } from '../../proxy/auth/http-fetch.js';
import { createTokenVerifier } from '../../proxy/auth/verifier.js';
import { AUDIENCE, startTestIssuer } from './issuer-fixture.js';
import type { TestIssuer } from './issuer-fixture.js';

const APP = { client_id: 'test-app', client_secret: 'test-app-secret-0123456789', grant_types: ['client_credentials'], response_types: [], redirect_uris: [] };

let t: TestIssuer;
let f: BoundedFetch;

beforeAll(async () => {
  t = await startTestIssuer({ clients: [APP] });
  f = createBoundedFetch({ ca: t.ca });
});
afterAll(async () => {
  f?.close();
  await t?.close();
});

const getJson = async (path: string): Promise<Record<string, unknown>> => (await f(`${t.issuer.issuer}${path}`)).json() as Promise<Record<string, unknown>>;

describe('development issuer', () => {
  it('serves discovery over HTTPS on loopback with the endpoints rolegate uses', async () => {
    expect(t.issuer.issuer).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    const doc = await getJson('/.well-known/openid-configuration');
    expect(doc).toMatchObject({
      issuer: t.issuer.issuer,
      jwks_uri: `${t.issuer.issuer}/jwks`,
      token_endpoint: `${t.issuer.issuer}/token`,
      introspection_endpoint: `${t.issuer.issuer}/token/introspection`,
      revocation_endpoint: `${t.issuer.issuer}/token/revocation`,
      device_authorization_endpoint: `${t.issuer.issuer}/device/auth`,
    });
    expect(doc['grant_types_supported']).toEqual(expect.arrayContaining(['client_credentials', 'urn:ietf:params:oauth:grant-type:device_code']));
  });

  it('mints real at+jwt access tokens with the requested algorithm, audience and lifetime', async () => {
    const token = await t.issuer.tokenFor('ada@corp.com', { alg: 'RS256', audience: 'warehouse', expiresInSec: 90 });
    const header = decodeProtectedHeader(token);
    const payload = decodeJwt(token);
    expect(header).toMatchObject({ alg: 'RS256', typ: 'at+jwt' });
    expect(t.issuer.privateJwks().keys.map((k) => k.kid)).toContain(header.kid);
    expect(payload).toMatchObject({ iss: t.issuer.issuer, sub: 'ada@corp.com', email: 'ada@corp.com', aud: 'warehouse' });
    expect((payload.exp as number) - (payload.iat as number)).toBe(90);
    const dflt = decodeJwt(await t.issuer.tokenFor('ada@corp.com'));
    expect(dflt.aud).toBe(AUDIENCE);
    expect(decodeProtectedHeader(await t.issuer.tokenFor('ada@corp.com')).alg).toBe('ES256');
  });

  it('ignores the minting parameters for any client other than the minter', async () => {
    const res = await f(`${t.issuer.issuer}/token`, {
      method: 'POST',
      headers: { authorization: `Basic ${Buffer.from(`${APP.client_id}:${APP.client_secret}`).toString('base64')}` },
      body: new URLSearchParams({ grant_type: 'client_credentials', dev_email: 'ceo@corp.com', dev_expires_in: '999999' }),
    });
    expect(res.status).toBe(200);
    const payload = decodeJwt(((await res.json()) as { access_token: string }).access_token);
    expect(payload.email).toBeUndefined();
    expect(payload.sub).toBe(APP.client_id);
    expect((payload.exp as number) - (payload.iat as number)).toBe(3600);
  });

  it('rotateKeys() serves only new kids and privateJwks() matches the served public keys', async () => {
    const kids = async (): Promise<string[]> => ((await getJson('/jwks'))['keys'] as { kid: string }[]).map((k) => k.kid).sort();
    const before = await kids();
    expect(before).toEqual(t.issuer.privateJwks().keys.map((k) => k.kid).sort());
    expect(t.issuer.privateJwks().keys.every((k) => typeof k.d === 'string')).toBe(true);
    await t.issuer.rotateKeys();
    const after = await kids();
    expect(after).toHaveLength(2);
    expect(after.filter((k) => before.includes(k))).toEqual([]);
    expect(after).toEqual(t.issuer.privateJwks().keys.map((k) => k.kid).sort());
    const served = (await getJson('/jwks'))['keys'] as Record<string, unknown>[];
    expect(served.every((k) => k['d'] === undefined)).toBe(true);
  });

  it('runs the device authorization flow for the cli client, giving a token rolegate accepts', async () => {
    const start = await f(`${t.issuer.issuer}/device/auth`, {
      method: 'POST',
      body: new URLSearchParams({ client_id: t.issuer.clients.cli.clientId, scope: 'openid email' }),
    });
    expect(start.status).toBe(200);
    const { device_code, user_code } = (await start.json()) as { device_code: string; user_code: string };
    const poll = (): Promise<Response> =>
      f(`${t.issuer.issuer}/token`, {
        method: 'POST',
        body: new URLSearchParams({ client_id: t.issuer.clients.cli.clientId, grant_type: 'urn:ietf:params:oauth:grant-type:device_code', device_code }),
      });
    expect(await (await poll()).json()).toMatchObject({ error: 'authorization_pending' });

    await t.issuer.approveDevice(user_code, 'grace@corp.com');
    const done = (await (await poll()).json()) as { access_token: string };
    const v = createTokenVerifier({ issuer: t.issuer.issuer, audience: AUDIENCE, algorithms: ['ES256'], clockToleranceSec: 5, identityClaim: 'email', ca: t.ca });
    try {
      const verified = await v.verify(done.access_token);
      expect(verified.identity).toBe('grace@corp.com');
      expect(verified.claims.sub).toBe('grace@corp.com');
    } finally {
      v.close();
    }
  });

  it('refuses to approve an unknown user code', async () => {
    await expect(t.issuer.approveDevice('BCDF-GHJK', 'x@corp.com')).rejects.toThrow(/device approval/);
  });
});
