// `rolegate login` with the device flow against a real oidc-provider, the approval done by the test as a
// person at a browser would: the token, the cache (reuse, modes, expiry, refresh), denial, cancellation.
import { lstat, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { decodeJwt } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createBoundedFetch } from '../../proxy/auth/http-fetch.js';
import type { BoundedFetch } from '../../proxy/auth/http-fetch.js';
import { AUDIENCE } from '../auth/issuer-fixture.js';
import { denyDevice, startLogin, startLoginFixture, URI_AUDIENCE } from './support.js';
import type { LoginFixture } from './support.js';

let fx: LoginFixture;
let f: BoundedFetch;
let cacheDir: string;
let firstToken: string;

beforeAll(async () => {
  fx = await startLoginFixture();
  f = createBoundedFetch({ ca: fx.t.ca });
  cacheDir = join(fx.dir, 'cache', 'rolegate');
});
afterAll(async () => {
  f?.close();
  await fx?.close();
});

const cli = () => ({ issuer: fx.issuer, clientId: fx.t.issuer.clients.cli.clientId, audience: URI_AUDIENCE, ca: fx.caPath });

async function onlyCacheFile(): Promise<string> {
  const files = (await readdir(cacheDir)).filter((n) => !n.startsWith('.'));
  expect(files).toHaveLength(1);
  return join(cacheDir, files[0] as string);
}

async function editCache(path: string, edit: (entry: Record<string, unknown>) => void): Promise<void> {
  const entry = JSON.parse(await readFile(path, 'utf8')) as Record<string, unknown>;
  edit(entry);
  await writeFile(path, JSON.stringify(entry));
}

describe('rolegate login: device authorization flow', () => {
  it('prints the verification URL and code on stderr, and the approved person\'s token on stdout', async () => {
    const run = startLogin(cli(), { cacheDir });
    const code = await run.userCode();
    expect(run.err()).toContain(`Open ${fx.issuer}/device and enter code ${code}`);
    expect(run.err()).toContain(`${fx.issuer}/device?user_code=${code}`);
    await fx.t.issuer.approveDevice(code, 'ada@corp.com');
    expect(await run.result).toBe(0);

    expect(run.out()).toMatch(/^[\w-]+\.[\w-]+\.[\w-]+\n$/);
    firstToken = run.out().trim();
    const claims = decodeJwt(firstToken);
    expect(claims).toMatchObject({ iss: fx.issuer, aud: URI_AUDIENCE, email: 'ada@corp.com' });
    expect(run.err()).not.toContain(firstToken);
  });

  it('caches the token in a 0600 file inside a 0700 directory', async () => {
    const file = await onlyCacheFile();
    expect((await lstat(cacheDir)).mode & 0o777).toBe(0o700);
    expect((await lstat(file)).mode & 0o777).toBe(0o600);
    const entry = JSON.parse(await readFile(file, 'utf8')) as Record<string, unknown>;
    expect(entry).toMatchObject({ issuer: fx.issuer, client_id: 'rolegate-cli', audience: URI_AUDIENCE, access_token: firstToken });
    expect(entry['expires_at']).toBe(decodeJwt(firstToken).exp);
    // The default scope asks for offline_access, so the issuer handed out a refresh token too.
    expect(typeof entry['refresh_token']).toBe('string');
  });

  it('reuses the cached token on the next run without a new prompt', async () => {
    const run = startLogin(cli(), { cacheDir });
    expect(await run.result).toBe(0);
    expect(run.out()).toBe(`${firstToken}\n`);
    expect(run.err()).toBe('');
  });

  it('treats a token with 60 s or less left as expired and uses the refresh token instead of a new prompt', async () => {
    const file = await onlyCacheFile();
    const now = Math.floor(Date.now() / 1000);
    await editCache(file, (e) => (e['expires_at'] = now + 60));
    const run = startLogin(cli(), { cacheDir });
    expect(await run.result).toBe(0);
    expect(run.err()).toBe('');
    const token = run.out().trim();
    expect(token).not.toBe(firstToken);
    expect(decodeJwt(token)).toMatchObject({ aud: URI_AUDIENCE, email: 'ada@corp.com' });
    const entry = JSON.parse(await readFile(file, 'utf8')) as Record<string, unknown>;
    expect(entry['access_token']).toBe(token);
    expect(entry['expires_at']).toBeGreaterThan(now + 3000);
    expect((await lstat(file)).mode & 0o777).toBe(0o600);
  });

  it('starts a new device flow when the refresh token is refused, and caches the new person\'s token', async () => {
    const file = await onlyCacheFile();
    await editCache(file, (e) => {
      e['expires_at'] = 1;
      e['refresh_token'] = 'not-a-refresh-token-the-issuer-knows';
    });
    const run = startLogin(cli(), { cacheDir });
    const code = await run.userCode();
    expect(run.err()).toMatch(/^rolegate: refresh refused by .*invalid_grant.*; signing in again\n/);
    await fx.t.issuer.approveDevice(code, 'grace@corp.com');
    expect(await run.result).toBe(0);
    const token = run.out().trim();
    expect(decodeJwt(token).email).toBe('grace@corp.com');
    const entry = JSON.parse(await readFile(file, 'utf8')) as Record<string, unknown>;
    expect(entry['access_token']).toBe(token);
    expect(entry['refresh_token']).not.toBe('not-a-refresh-token-the-issuer-knows');
  });

  it('--no-cache neither reads nor writes the cache', async () => {
    const file = await onlyCacheFile();
    const before = await readFile(file, 'utf8');
    const run = startLogin({ ...cli(), noCache: true }, { cacheDir });
    await fx.t.issuer.approveDevice(await run.userCode(), 'linus@corp.com');
    expect(await run.result).toBe(0);
    expect(decodeJwt(run.out().trim()).email).toBe('linus@corp.com');
    expect(await readFile(file, 'utf8')).toBe(before);
    expect((await readdir(cacheDir)).length).toBe(1);
  });

  it('an audience that is not a URI leaves the choice to the issuer (oidc-provider: its default resource)', async () => {
    const run = startLogin({ ...cli(), audience: AUDIENCE, noCache: true }, { cacheDir });
    await fx.t.issuer.approveDevice(await run.userCode(), 'ada@corp.com');
    expect(await run.result).toBe(0);
    expect(decodeJwt(run.out().trim())).toMatchObject({ aud: AUDIENCE, email: 'ada@corp.com' });
  });

  it('a person pressing Abort at the issuer ends the login with one line and exit 1', async () => {
    const run = startLogin({ ...cli(), noCache: true }, { cacheDir });
    const code = await run.userCode();
    await denyDevice(f, fx.issuer, code);
    expect(await run.result).toBe(1);
    expect(run.out()).toBe('');
    const lines = run.err().trimEnd().split('\n');
    expect(lines.at(-1)).toBe(`rolegate: the request with code ${code} was denied at the issuer`);
  });

  it('cancelling while waiting for approval ends the login at once with exit 1', async () => {
    const abort = new AbortController();
    const run = startLogin({ ...cli(), noCache: true }, { cacheDir, signal: abort.signal });
    await run.userCode();
    const t0 = Date.now();
    abort.abort();
    expect(await run.result).toBe(1);
    expect(Date.now() - t0).toBeLessThan(4_000); // well before the next 5 s poll would end it
    expect(run.err().trimEnd().split('\n').at(-1)).toBe('rolegate: login cancelled');
    expect(run.out()).toBe('');
  });
});
