// The verified-token cache: bounded LRU keyed by SHA-256 of the token (the token itself is never kept),
// entries live until the token's expiry at the latest, and concurrent verifications of one token share work.
import { createHash } from 'node:crypto';
import { LRUCache } from 'lru-cache';

/** Cache key for a token: hex SHA-256. A heap dump or debug print of the cache reveals no bearer token. */
export function tokenCacheKey(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}

interface Entry<V> {
  value: V;
  /** Epoch ms after which the entry must not be served, whatever the LRU's own TTL says. */
  notAfterMs: number;
}

export interface TokenCache<V> {
  /**
   * Returns the cached value for `token`, or runs `compute` once however many callers ask at the same
   * time. `compute` returns the value and the epoch ms until which it may be served (`<= now` = do not
   * cache). Failures are never cached.
   */
  get(token: string, compute: () => Promise<{ value: V; notAfterMs: number }>): Promise<V>;
  readonly size: number;
  clear(): void;
}

/** Creates a token cache holding at most `max` entries; `now` is the clock the expiry is checked against. */
export function createTokenCache<V extends object>(opts: { max: number; now: () => number }): TokenCache<V> {
  const { now } = opts;
  const lru = new LRUCache<string, Entry<V>>({ max: opts.max });
  const inflight = new Map<string, Promise<V>>();

  return {
    get(token, compute) {
      const key = tokenCacheKey(token);
      const hit = lru.get(key);
      if (hit !== undefined) {
        if (now() < hit.notAfterMs) return Promise.resolve(hit.value);
        lru.delete(key);
      }
      const running = inflight.get(key);
      if (running !== undefined) return running;
      const p = compute()
        .then(({ value, notAfterMs }) => {
          const ttl = notAfterMs - now();
          // The LRU's TTL (on its own monotonic clock) evicts; notAfterMs (on the injected clock) decides.
          if (ttl > 0) lru.set(key, { value, notAfterMs }, { ttl: Math.ceil(ttl) });
          return value;
        })
        .finally(() => inflight.delete(key));
      inflight.set(key, p);
      return p;
    },
    get size() {
      return lru.size;
    },
    clear() {
      lru.clear();
    },
  };
}
