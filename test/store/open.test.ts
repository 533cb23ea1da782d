// openStore's URL handling: the two schemes, and a refusal that never repeats the URL.
import { describe, expect, it } from 'vitest';
import { openStore } from '../../scim/store/open.js';
import { StoreError } from '../../scim/store/store-error.js';
import { rejectionOf } from './fixtures.js';

describe('openStore', () => {
  it.each(['', 'sqlite:', 'mysql://u:s3cret@db/x', 'SQLITE:x.db', 'file:x.db', 'postgres:/x', 'http://u:s3cret@h/'])(
    'refuses %j with STORE_URL_INVALID',
    async (url) => {
      const err = await rejectionOf(openStore(url));
      expect(err).toBeInstanceOf(StoreError);
      expect((err as StoreError).code).toBe('STORE_URL_INVALID');
      expect((err as Error).message).not.toContain('s3cret');
    },
  );

  it('opens an in-memory SQLite store', async () => {
    const store = await openStore('sqlite::memory:');
    expect(store.kind).toBe('sqlite');
    await store.ping();
    await store.close();
  });
});
