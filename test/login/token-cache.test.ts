// The token cache on a real file system: modes, atomic replacement, and every file it must not trust.
import { chmod, lstat, mkdir, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { LoginError } from '../../cli/login/errors.js';
import { cacheFileName, FRESHNESS_MARGIN_SEC, isFresh, TokenCache } from '../../cli/login/token-cache.js';
import type { CacheKey } from '../../cli/login/token-cache.js';
import { tempDir } from '../helpers/tmp.js';
import type { TempDir } from '../helpers/tmp.js';

const KEY: CacheKey = { issuer: 'https://idp.example', clientId: 'rolegate-cli', audience: 'https://db.example', scope: 'openid offline_access' };
const TOKEN = { accessToken: 'header.payload.signature', expiresAt: 2_000_000_000, refreshToken: 'refresh-1' };

let tmp: TempDir;
let dir: string;
let warnings: string[];
const cacheFor = (key: CacheKey = KEY): TokenCache => new TokenCache(dir, key, (l) => warnings.push(l));

beforeEach(async () => {
  tmp = await tempDir('rolegate-cache-');
  dir = join(tmp.path, 'nested', 'rolegate');
  warnings = [];
});
afterEach(async () => {
  await tmp.cleanup();
});

describe('token cache file', () => {
  it('round-trips a token; creates the directory 0700 and the file 0600 (also under a permissive umask)', async () => {
    const old = process.umask(0o000);
    try {
      await cacheFor().write(TOKEN);
    } finally {
      process.umask(old);
    }
    expect((await lstat(dir)).mode & 0o777).toBe(0o700);
    expect((await lstat(cacheFor().path)).mode & 0o777).toBe(0o600);
    expect(await cacheFor().read()).toEqual(TOKEN);
    expect(warnings).toEqual([]);
  });

  it('is a miss, silently, when there is no file', async () => {
    expect(await cacheFor().read()).toBeUndefined();
    expect(warnings).toEqual([]);
  });

  it('replaces an entry atomically and leaves no temporary files', async () => {
    await cacheFor().write(TOKEN);
    await cacheFor().write({ accessToken: 'second', expiresAt: 5 });
    expect(await cacheFor().read()).toEqual({ accessToken: 'second', expiresAt: 5 });
    expect(await readdir(dir)).toEqual([cacheFileName(KEY)]);
  });

  it('keeps different keys apart', async () => {
    const other = { ...KEY, audience: undefined };
    await cacheFor().write(TOKEN);
    await cacheFor(other).write({ accessToken: 'other', expiresAt: 1 });
    expect((await cacheFor().read())?.accessToken).toBe(TOKEN.accessToken);
    expect((await cacheFor(other).read())?.accessToken).toBe('other');
  });

  it.each([
    ['group-readable', async (p: string) => chmod(p, 0o640), /other users can access it/],
    ['not JSON', async (p: string) => writeFile(p, '{not json', { mode: 0o600 }), /not valid JSON/],
    ['the wrong shape', async (p: string) => writeFile(p, JSON.stringify({ v: 1, access_token: 7 }), { mode: 0o600 }), /expected format/],
    ['a directory', async (p: string) => rm(p).then(() => mkdir(p, { mode: 0o700 })), /not a token cache file/],
  ])('ignores a file that is %s, with one warning', async (_name, spoil, why) => {
    await cacheFor().write(TOKEN);
    const path = cacheFor().path;
    await spoil(path);
    expect(await cacheFor().read()).toBeUndefined();
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(why);
    expect(warnings[0]).not.toContain(TOKEN.accessToken);
  });

  it('does not follow a symlink planted in place of the cache file', async () => {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    // A valid entry for this very key, owned by us and 0600: only the link makes it untrustworthy.
    await new TokenCache(tmp.path, KEY, () => {}).write(TOKEN);
    await symlink(join(tmp.path, cacheFileName(KEY)), cacheFor().path);
    expect(await cacheFor().read()).toBeUndefined();
    expect(warnings[0]).toMatch(/cannot be read \(ELOOP\)/);
  });

  it('ignores an entry written for another key (a file copied by hand)', async () => {
    const other = { ...KEY, clientId: 'someone-else' };
    await cacheFor(other).write(TOKEN);
    await mkdir(dir, { recursive: true });
    await writeFile(cacheFor().path, await readFile(cacheFor(other).path), { mode: 0o600 });
    expect(await cacheFor().read()).toBeUndefined();
    expect(warnings[0]).toMatch(/another issuer or client/);
  });

  it('refuses to write into a directory other users can write to, and does not chmod it', async () => {
    await mkdir(dir, { recursive: true });
    await chmod(dir, 0o777);
    await expect(cacheFor().write(TOKEN)).rejects.toThrow(LoginError);
    await expect(cacheFor().write(TOKEN)).rejects.toThrow(/writable by other users/);
    expect((await lstat(dir)).mode & 0o777).toBe(0o777);
    expect(await readdir(dir)).toEqual([]);
  });

  it('accepts an existing directory that others may only read (the file itself is 0600)', async () => {
    await mkdir(dir, { recursive: true });
    await chmod(dir, 0o755);
    await cacheFor().write(TOKEN);
    expect(await cacheFor().read()).toEqual(TOKEN);
  });

  it('refuses a cache "directory" that is a file', async () => {
    await mkdir(join(tmp.path, 'nested'), { recursive: true });
    await writeFile(dir, 'x');
    await expect(cacheFor().write(TOKEN)).rejects.toThrow();
  });
});

describe('cache keys and freshness', () => {
  const part = fc.option(fc.string(), { nil: undefined });
  const key = fc.record({ issuer: fc.string(), clientId: fc.string(), audience: part, scope: part });

  it('names files by a hash that differs whenever any key part differs', () => {
    fc.assert(
      fc.property(key, key, (a, b) => {
        const same = a.issuer === b.issuer && a.clientId === b.clientId && a.audience === b.audience && a.scope === b.scope;
        expect(cacheFileName(a) === cacheFileName(b)).toBe(same);
        expect(cacheFileName(a)).toMatch(/^token-[0-9a-f]{64}\.json$/);
      }),
    );
  });

  it('does not confuse a missing audience with an empty or a "null" one, nor shifted parts', () => {
    const names = new Set(
      [
        { ...KEY, audience: undefined },
        { ...KEY, audience: '' },
        { ...KEY, audience: 'null' },
        { issuer: 'a', clientId: 'bc', audience: undefined, scope: undefined },
        { issuer: 'ab', clientId: 'c', audience: undefined, scope: undefined },
      ].map(cacheFileName),
    );
    expect(names.size).toBe(5);
  });

  it.each([
    [1000 + FRESHNESS_MARGIN_SEC + 1, true],
    [1000 + FRESHNESS_MARGIN_SEC, false],
    [1000, false],
    [0, false],
  ])('expires_at %i at now=1000 is fresh: %s', (expiresAt, fresh) => {
    expect(isFresh({ accessToken: 't', expiresAt }, 1000)).toBe(fresh);
  });
});
