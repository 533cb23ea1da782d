// Keyset paging cursors: the unit, and both stores with a second connection (SQLite: another handle on
// the same file; PostgreSQL: another instance on the same database) writing between pages.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openStore } from '../../scim/store/open.js';
import { PageCursors } from '../../scim/store/page-cursors.js';
import type { DirectoryStore } from '../../scim/store/port.js';
import { createTestDatabase } from '../helpers/postgres.js';
import { groupAttrs, userAttrs } from './fixtures.js';

interface TwoConnections {
  reader: DirectoryStore;
  writer: DirectoryStore;
  cleanup(): Promise<void>;
}

/** A reader and a writer on one database; `dispose` removes the database after both are closed. */
async function twoOn(url: string, dispose: () => Promise<void>): Promise<TwoConnections> {
  const reader = await openStore(url);
  const writer = await openStore(url);
  return {
    reader,
    writer,
    async cleanup() {
      await reader.close();
      await writer.close();
      await dispose();
    },
  };
}

const kinds: { name: string; open(): Promise<TwoConnections> }[] = [
  {
    name: 'SQLite',
    async open() {
      const dir = await mkdtemp(join(tmpdir(), 'rolegate-pages-'));
      return twoOn(`sqlite:${join(dir, 'directory.db')}`, () => rm(dir, { recursive: true, force: true }));
    },
  },
  {
    name: 'PostgreSQL',
    async open() {
      const db = await createTestDatabase('pages');
      return twoOn(db.url, () => db.drop());
    },
  },
];

describe('PageCursors', () => {
  it('answers only for the version a cursor was recorded under', () => {
    const c = new PageCursors();
    c.remember(100, 4711, 'v1');
    expect(c.seek(100, 'v1')).toBe(4711);
    expect(c.seek(200, 'v1')).toBeUndefined();
    expect(c.seek(100, 'v2')).toBeUndefined();
    // Once the version moved on, the old cursors are gone for good.
    expect(c.seek(100, 'v1')).toBeUndefined();
  });

  it('keeps the newest cursors up to its bound', () => {
    const c = new PageCursors(3);
    for (const offset of [10, 20, 30, 40]) c.remember(offset, offset * 2, 'v');
    expect(c.seek(10, 'v')).toBeUndefined();
    expect([20, 30, 40].map((o) => c.seek(o, 'v'))).toEqual([40, 60, 80]);
    c.remember(20, 41, 'v'); // re-recorded: newest again, new value
    c.remember(50, 100, 'v');
    expect([20, 30, 40, 50].map((o) => c.seek(o, 'v'))).toEqual([41, undefined, 80, 100]);
    c.forget();
    expect([20, 40, 50].map((o) => c.seek(o, 'v'))).toEqual([undefined, undefined, undefined]);
  });
});

describe.each(kinds)('$name store paging with another connection writing', (kind) => {
  let two: TwoConnections;
  let reader: DirectoryStore;
  let writer: DirectoryStore;
  beforeEach(async () => {
    two = await kind.open();
    ({ reader, writer } = two);
  });
  afterEach(async () => {
    await two.cleanup();
  });

  it('sees a delete committed by the other connection: the next page neither skips nor repeats a user', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 30; i++) ids.push((await writer.createUser(userAttrs(`p${i}@corp.example`))).id);
    expect((await reader.listUsers({ offset: 0, limit: 10 })).items.map((u) => u.id)).toEqual(ids.slice(0, 10));
    expect((await reader.listUsers({ offset: 10, limit: 10 })).items.map((u) => u.id)).toEqual(ids.slice(10, 20));
    // The reader now holds a cursor "position 20 follows user 19"; the writer deletes user 3.
    expect(await writer.deleteUser(ids[3]!)).toBe(true);
    ids.splice(3, 1);
    const page = await reader.listUsers({ offset: 20, limit: 10 });
    expect(page.total).toBe(29);
    expect(page.items.map((u) => u.id)).toEqual(ids.slice(20, 30));
  });

  it('does the same for groups', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 12; i++) ids.push((await writer.createGroup(groupAttrs(`g${i}`), [])).id);
    expect((await reader.listGroups({ offset: 0, limit: 5, members: false })).items.map((g) => g.id)).toEqual(ids.slice(0, 5));
    expect(await writer.deleteGroup(ids[0]!)).toBe(true);
    ids.shift();
    expect((await reader.listGroups({ offset: 5, limit: 5, members: false })).items.map((g) => g.id)).toEqual(ids.slice(5, 10));
  });
});
