// The on-disk token cache of `rolegate login`: one JSON file per (issuer, client, audience, scope) in a
// directory created 0700, each file 0600 and replaced atomically. Files another user could have written
// or read are ignored, never trusted.
import { createHash, randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { lstat, mkdir, open, rename, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { LoginError, LoginErrorCode } from './errors.js';

/** What identifies a cached token: a token for one of these is useless for another. */
export interface CacheKey {
  issuer: string;
  clientId: string;
  audience: string | undefined;
  scope: string | undefined;
}

/** A cached token. `expiresAt` is in seconds since the epoch; 0 when unknown (the entry then only carries a refresh token). */
export interface CachedToken {
  accessToken: string;
  expiresAt: number;
  refreshToken?: string;
}

/** A cached token is reused only while it has more than this left: psql may take a while to connect. */
export const FRESHNESS_MARGIN_SEC = 60;

// A cache file holds two tokens; anything near this size was not written by us.
const MAX_FILE_BYTES = 64 * 1024;
const FORMAT_VERSION = 1;

const EntrySchema = z.object({
  v: z.literal(FORMAT_VERSION),
  issuer: z.string(),
  client_id: z.string(),
  audience: z.string().nullable(),
  scope: z.string().nullable(),
  access_token: z.string().min(1),
  expires_at: z.number().finite(),
  refresh_token: z.string().min(1).optional(),
});

/** The cache file name for `key`: a SHA-256 over an unambiguous encoding, so no key part reaches the file system. */
export function cacheFileName(key: CacheKey): string {
  const encoded = JSON.stringify([key.issuer, key.clientId, key.audience ?? null, key.scope ?? null]);
  return `token-${createHash('sha256').update(encoded).digest('hex')}.json`;
}

/** True while `token` can still be handed to a client without refreshing. */
export function isFresh(token: CachedToken, nowSec: number): boolean {
  return token.expiresAt - nowSec > FRESHNESS_MARGIN_SEC;
}

// getuid is POSIX-only; where it is missing, ownership and mode checks cannot be made.
const currentUid = (): number | undefined => (typeof process.getuid === 'function' ? process.getuid() : undefined);

/** The token cache for one key. Problems reading are reported to `warn` and treated as a miss. */
export class TokenCache {
  readonly #dir: string;
  readonly #key: CacheKey;
  readonly #warn: (line: string) => void;
  /** Absolute path of this key's cache file. */
  readonly path: string;

  constructor(dir: string, key: CacheKey, warn: (line: string) => void) {
    this.#dir = dir;
    this.#key = key;
    this.#warn = warn;
    this.path = join(dir, cacheFileName(key));
  }

  /** The cached token, or undefined when there is none or it cannot be trusted. */
  async read(): Promise<CachedToken | undefined> {
    let text: string;
    try {
      // O_NOFOLLOW: a symlink planted in the cache directory must not redirect the read.
      const fh = await open(this.path, constants.O_RDONLY | (constants.O_NOFOLLOW ?? 0));
      try {
        const st = await fh.stat();
        const uid = currentUid();
        if (!st.isFile() || st.size > MAX_FILE_BYTES) return this.#ignore('it is not a token cache file');
        if (uid !== undefined && st.uid !== uid) return this.#ignore('it belongs to another user');
        if (uid !== undefined && (st.mode & 0o077) !== 0) return this.#ignore('other users can access it (expected mode 0600)');
        text = await fh.readFile('utf8');
      } finally {
        await fh.close();
      }
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      return this.#ignore(`it cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
    }
    let raw: unknown;
    try {
      raw = JSON.parse(text);
    } catch {
      return this.#ignore('it is not valid JSON');
    }
    const parsed = EntrySchema.safeParse(raw);
    if (!parsed.success) return this.#ignore('it is not in the expected format');
    const e = parsed.data;
    const k = this.#key;
    // The name is a hash of the key; a mismatch means a file copied or edited by hand.
    if (e.issuer !== k.issuer || e.client_id !== k.clientId || e.audience !== (k.audience ?? null) || e.scope !== (k.scope ?? null)) {
      return this.#ignore('it was written for another issuer or client');
    }
    return { accessToken: e.access_token, expiresAt: e.expires_at, ...(e.refresh_token === undefined ? {} : { refreshToken: e.refresh_token }) };
  }

  /** Stores `token`, replacing any previous entry atomically (temp file created 0600, then renamed). */
  async write(token: CachedToken): Promise<void> {
    await this.#ensureDir();
    const entry: z.infer<typeof EntrySchema> = {
      v: FORMAT_VERSION,
      issuer: this.#key.issuer,
      client_id: this.#key.clientId,
      audience: this.#key.audience ?? null,
      scope: this.#key.scope ?? null,
      access_token: token.accessToken,
      expires_at: token.expiresAt,
      ...(token.refreshToken === undefined ? {} : { refresh_token: token.refreshToken }),
    };
    const tmp = join(this.#dir, `.${cacheFileName(this.#key)}.${randomBytes(8).toString('hex')}.tmp`);
    // 'wx' (O_EXCL): never open a file someone else put there; the mode applies from creation on.
    const fh = await open(tmp, 'wx', 0o600);
    try {
      try {
        await fh.writeFile(JSON.stringify(entry) + '\n');
        await fh.sync();
      } finally {
        await fh.close();
      }
      await rename(tmp, this.path);
    } catch (err) {
      await unlink(tmp).catch(() => undefined);
      throw err;
    }
  }

  async #ensureDir(): Promise<void> {
    await mkdir(this.#dir, { recursive: true, mode: 0o700 });
    const st = await lstat(this.#dir);
    if (!st.isDirectory()) throw new LoginError(LoginErrorCode.badInput, `token cache ${this.#dir} is not a directory`);
    const uid = currentUid();
    if (uid === undefined) return;
    if (st.uid !== uid) throw new LoginError(LoginErrorCode.badInput, `token cache directory ${this.#dir} belongs to another user`);
    // Others able to write could swap a cache file under us; a directory we did not create is not
    // ours to chmod (ROLEGATE_CACHE_DIR may point anywhere), so it is refused instead.
    if ((st.mode & 0o022) !== 0) {
      throw new LoginError(LoginErrorCode.badInput, `token cache directory ${this.#dir} is writable by other users (chmod 700 it)`);
    }
  }

  #ignore(why: string): undefined {
    this.#warn(`ignoring the cached token in ${this.path}: ${why}`);
    return undefined;
  }
}
