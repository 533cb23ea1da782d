// Both store kinds for describe.each, a controllable clock, and small builders for test data.
import { openStore, type StoreOptions } from '../../scim/store/open.js';
import type { DirectoryChange, DirectoryStore } from '../../scim/store/port.js';
import type { ScimAttributes } from '../../scim/model.js';
import { createTestDatabase } from '../helpers/postgres.js';

export interface OpenedStore {
  store: DirectoryStore;
  /** Closes the store and removes its database. */
  cleanup(): Promise<void>;
}

export interface StoreKind {
  name: 'sqlite' | 'postgres';
  open(opts?: StoreOptions): Promise<OpenedStore>;
}

export const storeKinds: StoreKind[] = [
  {
    name: 'sqlite',
    open: async (opts) => {
      const store = await openStore('sqlite::memory:', opts);
      return { store, cleanup: () => store.close() };
    },
  },
  {
    name: 'postgres',
    open: async (opts) => {
      const db = await createTestDatabase('store');
      const store = await openStore(db.url, opts);
      return {
        store,
        cleanup: async () => {
          await store.close();
          await db.drop();
        },
      };
    },
  },
];

/** A clock that moves one second per reading, so every write gets a distinct, predictable time. */
export function steppingClock(start = '2024-01-01T00:00:00.000Z'): () => Date {
  let t = Date.parse(start);
  return () => {
    t += 1000;
    return new Date(t);
  };
}

export function userAttrs(userName: string, extra: ScimAttributes = {}): ScimAttributes {
  return { userName, active: true, ...extra };
}

export function groupAttrs(displayName: string, extra: ScimAttributes = {}): ScimAttributes {
  return { displayName, ...extra };
}

/** Records every batch the store publishes. */
export function recordChanges(store: DirectoryStore): { batches: DirectoryChange[][]; stop(): void } {
  const batches: DirectoryChange[][] = [];
  const stop = store.subscribe((changes) => batches.push(changes));
  return { batches, stop };
}

/** Awaits `p` and returns the rejection, failing when it resolves. */
export async function rejectionOf(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (err) {
    return err;
  }
  throw new Error('expected the promise to reject');
}
