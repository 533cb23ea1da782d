// The DirectoryStore contract, run against SQLite and a real PostgreSQL 15 alike.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ScimError } from '../../scim/errors.js';
import type { MemberRef, UserRecord } from '../../scim/model.js';
import type { DirectoryStore } from '../../scim/store/port.js';
import {
  groupAttrs,
  recordChanges,
  rejectionOf,
  steppingClock,
  storeKinds,
  userAttrs,
  type OpenedStore,
} from './fixtures.js';

function expectScimError(err: unknown, status: number, scimType?: string): ScimError {
  expect(err).toBeInstanceOf(ScimError);
  const e = err as ScimError;
  expect(e.status).toBe(status);
  expect(e.scimType).toBe(scimType);
  // Internal text never reaches the peer (docs/style.md 3).
  expect(e.detail).not.toMatch(/constraint|rg_|sqlite|SQL|duplicate key/i);
  return e;
}

async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

async function createUsers(store: DirectoryStore, n: number, prefix = 'user'): Promise<UserRecord[]> {
  const out: UserRecord[] = [];
  for (let i = 0; i < n; i++) out.push(await store.createUser(userAttrs(`${prefix}${i}@corp.example`)));
  return out;
}

describe.each(storeKinds)('$name store contract', (kind) => {
  let opened: OpenedStore;
  let store: DirectoryStore;

  beforeEach(async () => {
    opened = await kind.open({ clock: steppingClock() });
    store = opened.store;
  });
  afterEach(async () => {
    await opened.cleanup();
  });

  it('answers ping and reports its kind', async () => {
    await expect(store.ping()).resolves.toBeUndefined();
    expect(store.kind).toBe(kind.name);
  });

  describe('users', () => {
    it('creates and reads a user with its attributes stored exactly (D31)', async () => {
      const attrs = userAttrs('  Alice@Corp.Example ', {
        externalId: 'Ext-1',
        name: { givenName: 'Alice', familyName: 'Ünal' },
        emails: [{ value: 'Alice.Work@Corp.Example', type: 'work', primary: true }],
        'urn:ietf:params:scim:schemas:extension:enterprise:2.0:User': { employeeNumber: '007' },
      });
      const created = await store.createUser(attrs);
      expect(created.id).toMatch(/^[0-9a-f-]{36}$/);
      expect(created.created).toBe('2024-01-01T00:00:01.000Z');
      expect(created.lastModified).toBe(created.created);
      expect(created.attributes).toEqual(attrs);
      expect(await store.getUser(created.id)).toEqual(created);
      expect(await store.getUser('no-such-id')).toBeUndefined();
    });

    it('uses the injected id source', async () => {
      await opened.cleanup();
      let n = 0;
      opened = await kind.open({ newId: () => `id-${++n}` });
      store = opened.store;
      const u = await store.createUser(userAttrs('a'));
      const g = await store.createGroup(groupAttrs('g'), []);
      expect([u.id, g.id]).toEqual(['id-1', 'id-2']);
    });

    it.each([
      ['ASCII case', 'bob@corp.example', 'BOB@corp.example'],
      ['Unicode case', 'ÄBC', 'äbc'],
      ['Greek case', 'ΣΟΦΊΑ', 'σοφία'],
    ])('rejects a userName taken case-insensitively (%s) with 409 uniqueness (D14)', async (_label, first, second) => {
      await store.createUser(userAttrs(first));
      const err = expectScimError(await rejectionOf(store.createUser(userAttrs(second))), 409, 'uniqueness');
      expect(err.detail).toContain(second);
      expect((await store.listUsers({ offset: 0, limit: 10 })).total).toBe(1);
    });

    it('rejects renaming a user onto a taken userName, allows a case change of its own', async () => {
      await store.createUser(userAttrs('Taken'));
      const b = await store.createUser(userAttrs('b'));
      expectScimError(
        await rejectionOf(store.updateUser(b.id, (cur) => ({ ...cur.attributes, userName: 'tAKEN' }))),
        409,
        'uniqueness',
      );
      expect((await store.getUser(b.id))?.attributes.userName).toBe('b');
      const renamed = await store.updateUser(b.id, (cur) => ({ ...cur.attributes, userName: 'B' }));
      expect(renamed.attributes.userName).toBe('B');
    });

    it('lets a deleted user’s userName and externalId be reused at once (D14)', async () => {
      const a = await store.createUser(userAttrs('reuse@corp.example', { externalId: 'X1' }));
      expect(await store.deleteUser(a.id)).toBe(true);
      expect(await store.deleteUser(a.id)).toBe(false);
      const b = await store.createUser(userAttrs('REUSE@corp.example', { externalId: 'X1' }));
      expect(b.id).not.toBe(a.id);
      expect(await store.getUser(a.id)).toBeUndefined();
      const byExt = await store.listUsers({ key: { attr: 'externalId', value: 'X1' }, offset: 0, limit: 10 });
      expect(byExt.items.map((u) => u.id)).toEqual([b.id]);
    });

    it('updates a user and bumps lastModified; created stays', async () => {
      const a = await store.createUser(userAttrs('u', { emails: [{ value: 'old@corp.example' }] }));
      const updated = await store.updateUser(a.id, (cur) => ({
        ...cur.attributes,
        active: false,
        emails: [{ value: 'New@Corp.Example' }],
      }));
      expect(updated.created).toBe(a.created);
      expect(updated.lastModified > a.lastModified).toBe(true);
      expect(updated.attributes).toEqual({ userName: 'u', active: false, emails: [{ value: 'New@Corp.Example' }] });
      expect(await store.getUser(a.id)).toEqual(updated);
      const byOld = await store.listUsers({ key: { attr: 'emails.value', value: 'old@corp.example' }, offset: 0, limit: 5 });
      expect(byOld.total).toBe(0);
      const byNew = await store.listUsers({ key: { attr: 'emails.value', value: 'new@CORP.example' }, offset: 0, limit: 5 });
      expect(byNew.items.map((u) => u.id)).toEqual([a.id]);
    });

    it('pages a keyed list with the total of all matches, also past the last match and with limit 0', async () => {
      const sharing: UserRecord[] = [];
      for (let i = 0; i < 5; i++) sharing.push(await store.createUser(userAttrs(`s${i}@corp.example`, { emails: [{ value: 'team@corp.example' }] })));
      await store.createUser(userAttrs('other@corp.example'));
      const key = { attr: 'emails.value', value: 'TEAM@corp.example' } as const;
      const ids = sharing.map((u) => u.id);
      expect(await store.listUsers({ key, offset: 0, limit: 2 })).toMatchObject({ total: 5, items: sharing.slice(0, 2) });
      expect((await store.listUsers({ key, offset: 3, limit: 10 })).items.map((u) => u.id)).toEqual(ids.slice(3));
      expect((await store.listUsers({ key, offset: 3, limit: 10 })).total).toBe(5);
      expect(await store.listUsers({ key, offset: 5, limit: 10 })).toEqual({ total: 5, items: [] });
      expect(await store.listUsers({ key, offset: 0, limit: 0 })).toEqual({ total: 5, items: [] });
      expect(await store.listUsers({ key: { attr: 'userName', value: 'nobody@corp.example' }, offset: 0, limit: 10 })).toEqual({ total: 0, items: [] });
      // Records carry no storage columns (the window count, a version) into the SCIM layer.
      expect(Object.keys((await store.listUsers({ key, offset: 0, limit: 1 })).items[0]!).sort()).toEqual(Object.keys(sharing[0]!).sort());
      expect(Object.keys((await store.listUsers({ offset: 0, limit: 1 })).items[0]!).sort()).toEqual(Object.keys(sharing[0]!).sort());
    });

    it('a no-op mutation writes nothing and keeps lastModified (D11)', async () => {
      const a = await store.createUser(userAttrs('noop'));
      const rec = recordChanges(store);
      let seen: UserRecord | undefined;
      const result = await store.updateUser(a.id, (cur) => {
        seen = cur;
        return undefined;
      });
      expect(seen).toEqual(a);
      expect(result).toEqual(a);
      expect(await store.getUser(a.id)).toEqual(a);
      expect(rec.batches).toEqual([]);
    });

    it('a mutation that throws aborts the write with its error', async () => {
      const a = await store.createUser(userAttrs('atomic'));
      const rec = recordChanges(store);
      const err = await rejectionOf(
        store.updateUser(a.id, () => {
          throw new ScimError(400, 'mutability', 'id is readOnly');
        }),
      );
      expectScimError(err, 400, 'mutability');
      expect(await store.getUser(a.id)).toEqual(a);
      expect(rec.batches).toEqual([]);
    });

    it('404 for an update of a missing user', async () => {
      const err = expectScimError(await rejectionOf(store.updateUser('missing', (c) => c.attributes)), 404, undefined);
      expect(err.detail).toBe('User missing not found');
    });

    it('400 invalidValue when attributes lack userName or a boolean active', async () => {
      expectScimError(await rejectionOf(store.createUser({ active: true })), 400, 'invalidValue');
      expectScimError(await rejectionOf(store.createUser({ userName: 'x', active: 'true' })), 400, 'invalidValue');
      expect((await store.listUsers({ offset: 0, limit: 1 })).total).toBe(0);
    });

    it('looks users up by each key with the attribute’s case rules', async () => {
      const a = await store.createUser(
        userAttrs('Ann@Corp.Example', { externalId: 'Ext-A', emails: [{ value: 'ann.work@corp.example' }, { value: 'ANN@home.example' }] }),
      );
      const b = await store.createUser(userAttrs('bo', { externalId: 'ext-a', emails: [{ value: 'ann@HOME.example' }] }));
      const ids = async (key: Parameters<DirectoryStore['listUsers']>[0]['key']): Promise<string[]> =>
        (await store.listUsers({ key, offset: 0, limit: 10 })).items.map((u) => u.id);
      expect(await ids({ attr: 'id', value: a.id })).toEqual([a.id]);
      expect(await ids({ attr: 'userName', value: 'ann@corp.EXAMPLE' })).toEqual([a.id]);
      expect(await ids({ attr: 'externalId', value: 'Ext-A' })).toEqual([a.id]);
      expect(await ids({ attr: 'externalId', value: 'EXT-A' })).toEqual([]);
      expect(await ids({ attr: 'emails.value', value: 'Ann@Home.Example' })).toEqual([a.id, b.id]);
      expect(await collect(store.scanUsers({ attr: 'emails.value', value: 'ANN.WORK@corp.example' }))).toEqual([
        await store.getUser(a.id),
      ]);
    });

    it('pages 250 users in stable creation order', async () => {
      const users = await createUsers(store, 250);
      const expected = users.map((u) => u.id);
      const seen: string[] = [];
      for (let offset = 0; offset < 300; offset += 100) {
        const page = await store.listUsers({ offset, limit: 100 });
        expect(page.total).toBe(250);
        seen.push(...page.items.map((u) => u.id));
      }
      expect(seen).toEqual(expected);
      // A write between pages does not reorder what was already paged.
      await store.updateUser(users[0]!.id, (c) => ({ ...c.attributes, active: false }));
      const again = await store.listUsers({ offset: 0, limit: 250 });
      expect(again.items.map((u) => u.id)).toEqual(expected);
      expect((await store.listUsers({ offset: 250, limit: 10 })).items).toEqual([]);
      expect((await store.listUsers({ offset: 10, limit: 0 })).items).toEqual([]);
      expect((await store.listUsers({ offset: -5, limit: 2 })).items.map((u) => u.id)).toEqual(expected.slice(0, 2));
    });

    it('pages exactly like a fresh listing while users are created, changed and deleted between pages', async () => {
      const users = await createUsers(store, 120, 'churn');
      let next = 0;
      const alive = users.map((u) => u.id);
      // The oracle: the whole list now, by a scan that shares no code with paging.
      const listing = async () => (await collect(store.scanUsers())).map((u) => u.id);
      for (let offset = 0, step = 0; ; offset += 10, step++) {
        const page = await store.listUsers({ offset, limit: 10 });
        const now = await listing();
        expect(page.total).toBe(now.length);
        expect(page.items.map((u) => u.id), `page at ${offset}, step ${step}`).toEqual(now.slice(offset, offset + 10));
        // Asking for the same page again gives the same answer.
        expect((await store.listUsers({ offset, limit: 10 })).items.map((u) => u.id)).toEqual(now.slice(offset, offset + 10));
        if (offset >= now.length) break;
        // Between pages: delete before or after the read position, create, update, or nothing.
        const victimAt = step % 2 === 0 ? Math.max(0, offset - 3) : Math.min(alive.length - 1, offset + 15);
        switch (step % 4) {
          case 0:
          case 1:
            expect(await store.deleteUser(alive.splice(victimAt, 1)[0]!)).toBe(true);
            break;
          case 2:
            alive.push((await store.createUser(userAttrs(`late${next++}@corp.example`))).id);
            break;
          default:
            await store.updateUser(alive[offset]!, (c) => ({ ...c.attributes, active: false }));
        }
      }
    }, 120_000);

    it('scans every user in batches, in order, also past a batch boundary', async () => {
      const users = await createUsers(store, 1_050);
      const scanned = await collect(store.scanUsers());
      expect(scanned.map((u) => u.id)).toEqual(users.map((u) => u.id));
      expect(scanned[777]).toEqual(users[777]);
    }, 120_000);
  });

  describe('groups', () => {
    it('creates a group with members in order, reads it with and without members', async () => {
      const [a, b, c] = await createUsers(store, 3);
      const members: MemberRef[] = [{ value: c!.id, display: 'C' }, { value: a!.id }, { value: b!.id, display: 'Bee' }];
      const g = await store.createGroup(groupAttrs('Engineering', { externalId: 'okta-1' }), [...members, { value: a!.id }]);
      expect(g.members).toEqual(members);
      expect(g.attributes).toEqual({ displayName: 'Engineering', externalId: 'okta-1' });
      expect(await store.getGroup(g.id, { members: true })).toEqual(g);
      expect(await store.getGroup(g.id, { members: false })).toEqual({ ...g, members: [] });
      expect(await store.getGroup('nope', { members: true })).toBeUndefined();
    });

    it.each([
      ['ASCII case', 'Admins', 'ADMINS'],
      ['Unicode case', 'ÄBC', 'äbc'],
    ])('rejects a displayName taken case-insensitively (%s) with 409 (D13)', async (_l, first, second) => {
      const g = await store.createGroup(groupAttrs(first), []);
      expectScimError(await rejectionOf(store.createGroup(groupAttrs(second), [])), 409, 'uniqueness');
      const other = await store.createGroup(groupAttrs('other'), []);
      expectScimError(
        await rejectionOf(
          store.updateGroup(other.id, (cur) => ({ attributes: { ...cur.attributes, displayName: second }, members: [] })),
        ),
        409,
        'uniqueness',
      );
      expect((await store.getGroup(other.id, { members: false }))?.attributes.displayName).toBe('other');
      // Its own name in another case is not a conflict.
      const renamed = await store.updateGroup(g.id, (cur) => ({ attributes: { displayName: second }, members: cur.members }));
      expect(renamed.attributes).toEqual({ displayName: second });
    });

    it('rejects an unknown member with 400 invalidValue and changes nothing (D12)', async () => {
      const [a] = await createUsers(store, 1);
      const other = await store.createGroup(groupAttrs('other'), []);
      const rec = recordChanges(store);
      const e1 = expectScimError(
        await rejectionOf(store.createGroup(groupAttrs('g'), [{ value: a!.id }, { value: 'ghost' }])),
        400,
        'invalidValue',
      );
      expect(e1.detail).toBe('member "ghost" is not a User');
      expect((await store.listGroups({ offset: 0, limit: 10, members: false })).total).toBe(1);

      const g = await store.createGroup(groupAttrs('g'), [{ value: a!.id }]);
      rec.batches.length = 0;
      // A group id is not a User either (no nested groups, D12).
      const e2 = expectScimError(
        await rejectionOf(
          store.updateGroup(g.id, (cur) => ({
            attributes: { displayName: 'renamed' },
            members: [...cur.members.filter(() => false), { value: other.id }],
          })),
        ),
        400,
        'invalidValue',
      );
      expect(e2.detail).toBe(`member "${other.id}" is not a User`);
      expect(await store.getGroup(g.id, { members: true })).toEqual(g);
      expect(rec.batches).toEqual([]);
    });

    it('404 for an update of a missing group; delete reports whether it existed', async () => {
      const err = expectScimError(await rejectionOf(store.updateGroup('gone', (c) => c)), 404, undefined);
      expect(err.detail).toBe('Group gone not found');
      const g = await store.createGroup(groupAttrs('g'), []);
      expect(await store.deleteGroup(g.id)).toBe(true);
      expect(await store.deleteGroup(g.id)).toBe(false);
    });

    it('applies a member diff: keeps order, appends new, relabels, removes', async () => {
      const [a, b, c, d] = await createUsers(store, 4);
      const g = await store.createGroup(groupAttrs('g'), [{ value: a!.id }, { value: b!.id }, { value: c!.id }]);
      const rec = recordChanges(store);
      const next = await store.updateGroup(g.id, () => ({
        attributes: { displayName: 'g' },
        members: [{ value: d!.id }, { value: c!.id, display: 'Cee' }, { value: a!.id }],
      }));
      expect(next.members).toEqual([{ value: a!.id }, { value: c!.id, display: 'Cee' }, { value: d!.id }]);
      expect(await store.getGroup(g.id, { members: true })).toEqual(next);
      expect(next.lastModified > g.lastModified).toBe(true);
      expect(rec.batches).toEqual([
        [
          { type: 'group.upserted', group: { id: g.id, displayName: 'g' } },
          { type: 'members.removed', groupId: g.id, userIds: [b!.id] },
          { type: 'members.added', groupId: g.id, userIds: [d!.id] },
        ],
      ]);
      // D11 no-op keeps lastModified and emits nothing.
      rec.batches.length = 0;
      const same = await store.updateGroup(g.id, () => undefined);
      expect(same).toEqual(next);
      expect(rec.batches).toEqual([]);
    });

    it('adds and then removes 10,000 members in one write each', async () => {
      const users = await createUsers(store, 10_000, 'bulk');
      const g = await store.createGroup(groupAttrs('big'), [{ value: users[0]!.id }]);
      const rec = recordChanges(store);
      const added = await store.updateGroup(g.id, (cur) => ({
        attributes: cur.attributes,
        members: [
          ...cur.members,
          ...users.slice(1).map((u) => ({ value: u.id, display: u.attributes.userName as string })),
          { value: users[0]!.id }, // already a member: de-duplicated
        ],
      }));
      expect(added.members).toHaveLength(10_000);
      expect((await store.getGroup(g.id, { members: true }))?.members).toEqual(added.members);
      expect(rec.batches).toHaveLength(1);
      expect(rec.batches[0]?.find((c) => c.type === 'members.added')).toMatchObject({ userIds: users.slice(1).map((u) => u.id) });
      const kept = await store.updateGroup(g.id, (cur) => ({
        attributes: cur.attributes,
        members: cur.members.slice(0, 10),
      }));
      expect(kept.members.map((m) => m.value)).toEqual(users.slice(0, 10).map((u) => u.id));
      expect((await store.getGroup(g.id, { members: true }))?.members).toEqual(kept.members);
      expect(rec.batches).toHaveLength(2);
      expect(rec.batches[1]?.find((c) => c.type === 'members.removed')).toMatchObject({ userIds: users.slice(10).map((u) => u.id) });
      // How fast (target: 1 s over HTTP) is a benchmark figure, `npm run bench`, not a timed test.
    }, 300_000);

    it('pages groups exactly like a fresh listing when a group before the read position is deleted', async () => {
      const groups: string[] = [];
      for (let i = 0; i < 30; i++) groups.push((await store.createGroup(groupAttrs(`Team ${i}`), [])).id);
      expect((await store.listGroups({ offset: 0, limit: 10, members: false })).items.map((g) => g.id)).toEqual(groups.slice(0, 10));
      expect((await store.listGroups({ offset: 10, limit: 10, members: false })).items.map((g) => g.id)).toEqual(groups.slice(10, 20));
      expect(await store.deleteGroup(groups[4]!)).toBe(true);
      groups.splice(4, 1);
      const page = await store.listGroups({ offset: 20, limit: 10, members: false });
      expect(page.total).toBe(29);
      expect(page.items.map((g) => g.id)).toEqual(groups.slice(20, 30));
    });

    it('lists and scans groups by key, with members when asked', async () => {
      const [a, b] = await createUsers(store, 2);
      const g1 = await store.createGroup(groupAttrs('One', { externalId: 'E1' }), [{ value: a!.id }, { value: b!.id }]);
      const g2 = await store.createGroup(groupAttrs('Two'), [{ value: b!.id }]);
      const g3 = await store.createGroup(groupAttrs('Three'), []);
      const ids = async (key: Parameters<DirectoryStore['listGroups']>[0]['key']): Promise<string[]> =>
        (await store.listGroups({ key, offset: 0, limit: 10, members: false })).items.map((g) => g.id);
      expect(await ids(undefined)).toEqual([g1.id, g2.id, g3.id]);
      expect(await ids({ attr: 'displayName', value: 'tWO' })).toEqual([g2.id]);
      expect(await ids({ attr: 'externalId', value: 'E1' })).toEqual([g1.id]);
      expect(await ids({ attr: 'externalId', value: 'e1' })).toEqual([]);
      expect(await ids({ attr: 'id', value: g3.id })).toEqual([g3.id]);
      expect(await ids({ attr: 'members.value', value: b!.id })).toEqual([g1.id, g2.id]);
      const page = await store.listGroups({ offset: 1, limit: 1, members: true });
      expect(page).toEqual({ total: 3, items: [g2] });
      expect(await collect(store.scanGroups({ members: true }))).toEqual([g1, g2, g3]);
      expect(await collect(store.scanGroups({ key: { attr: 'members.value', value: a!.id }, members: false }))).toEqual([
        { ...g1, members: [] },
      ]);
    });

    it('reports each user’s direct groups (D24)', async () => {
      const [a, b, c] = await createUsers(store, 3);
      const g1 = await store.createGroup(groupAttrs('Alpha'), [{ value: a!.id }, { value: b!.id }]);
      const g2 = await store.createGroup(groupAttrs('Beta'), [{ value: a!.id }]);
      const m = await store.groupsOfUsers([a!.id, b!.id, c!.id]);
      expect(m.get(a!.id)).toEqual([
        { groupId: g1.id, displayName: 'Alpha' },
        { groupId: g2.id, displayName: 'Beta' },
      ]);
      expect(m.get(b!.id)).toEqual([{ groupId: g1.id, displayName: 'Alpha' }]);
      expect(m.get(c!.id)).toEqual([]);
      expect((await store.groupsOfUsers([])).size).toBe(0);
    });

    it('answers concurrent group lookups each with exactly its own users (they may share a query)', async () => {
      const [a, b, c] = await createUsers(store, 3);
      const g = await store.createGroup(groupAttrs('Alpha'), [{ value: a!.id }, { value: c!.id }]);
      const [ma, mb, mac] = await Promise.all([store.groupsOfUsers([a!.id]), store.groupsOfUsers([b!.id]), store.groupsOfUsers([a!.id, c!.id])]);
      expect([...ma]).toEqual([[a!.id, [{ groupId: g.id, displayName: 'Alpha' }]]]);
      expect([...mb]).toEqual([[b!.id, []]]);
      expect([...mac]).toEqual([[a!.id, [{ groupId: g.id, displayName: 'Alpha' }]], [c!.id, [{ groupId: g.id, displayName: 'Alpha' }]]]);
      // Not one array shared between callers.
      expect(ma.get(a!.id)).not.toBe(mac.get(a!.id));
    });
  });

  describe('deletes and change events', () => {
    it('deleting a user removes its memberships (D26) and tells subscribers', async () => {
      const [a, b] = await createUsers(store, 2);
      const g1 = await store.createGroup(groupAttrs('g1'), [{ value: a!.id }, { value: b!.id }]);
      const g2 = await store.createGroup(groupAttrs('g2'), [{ value: a!.id }]);
      const rec = recordChanges(store);
      expect(await store.deleteUser(a!.id)).toBe(true);
      expect(rec.batches).toHaveLength(1);
      const batch = rec.batches[0]!;
      // Memberships first (in no particular group order), then the user.
      expect(batch.at(-1)).toEqual({ type: 'user.deleted', id: a!.id });
      expect(batch.slice(0, -1)).toHaveLength(2);
      expect(batch.slice(0, -1)).toEqual(
        expect.arrayContaining([
          { type: 'members.removed', groupId: g1.id, userIds: [a!.id] },
          { type: 'members.removed', groupId: g2.id, userIds: [a!.id] },
        ]),
      );
      const after = await store.getGroup(g1.id, { members: true });
      expect(after?.members).toEqual([{ value: b!.id }]);
      expect(after!.lastModified > g1.lastModified).toBe(true);
      expect((await store.getGroup(g2.id, { members: true }))?.members).toEqual([]);
      expect((await store.groupsOfUsers([a!.id])).get(a!.id)).toEqual([]);
      expect(await store.deleteUser(a!.id)).toBe(false);
      expect(rec.batches).toHaveLength(1);
    });

    it('deleting a group removes its memberships and keeps the users (D26)', async () => {
      const [a] = await createUsers(store, 1);
      const g = await store.createGroup(groupAttrs('g'), [{ value: a!.id }]);
      const rec = recordChanges(store);
      await store.deleteGroup(g.id);
      expect(rec.batches).toEqual([[{ type: 'group.deleted', id: g.id }]]);
      expect((await store.groupsOfUsers([a!.id])).get(a!.id)).toEqual([]);
      expect(await store.getUser(a!.id)).toEqual(a);
      // The displayName is free again.
      await store.createGroup(groupAttrs('G'), []);
    });

    it('publishes each write after commit, before the promise resolves, in order', async () => {
      const events: string[] = [];
      const stop = store.subscribe((changes) => {
        events.push(changes.map((c) => c.type).join('+'));
      });
      const u = await store.createUser(userAttrs('ev', { emails: [{ value: 'Ev@X.example' }, { value: 'ev@x.EXAMPLE' }] }));
      expect(events).toEqual(['user.upserted']);
      const g = await store.createGroup(groupAttrs('G', { externalId: 'x' }), [{ value: u.id }]);
      expect(events).toEqual(['user.upserted', 'group.upserted+members.added']);
      await store.updateUser(u.id, (c) => ({ ...c.attributes, active: false }));
      await store.deleteGroup(g.id);
      stop();
      await store.deleteUser(u.id);
      expect(events).toEqual(['user.upserted', 'group.upserted+members.added', 'user.upserted', 'group.deleted']);
    });

    it('carries the index fields in user.upserted and group.upserted', async () => {
      const rec = recordChanges(store);
      const u = await store.createUser(userAttrs('Ev', { emails: [{ value: 'Ev@X.example' }, { value: 'ev@x.EXAMPLE' }, { value: 'b@x' }] }));
      const g = await store.createGroup(groupAttrs('G', { externalId: 'x' }), []);
      expect(rec.batches).toEqual([
        [{ type: 'user.upserted', user: { id: u.id, userName: 'Ev', active: true, emails: ['Ev@X.example', 'b@x'] } }],
        [{ type: 'group.upserted', group: { id: g.id, displayName: 'G', externalId: 'x' } }],
      ]);
    });

    it('a throwing subscriber does not fail the write and is reported', async () => {
      await opened.cleanup();
      const reported: unknown[] = [];
      opened = await kind.open({ onListenerError: (err) => reported.push(err) });
      store = opened.store;
      const seen: number[] = [];
      store.subscribe(() => {
        throw new Error('listener bug');
      });
      store.subscribe((c) => seen.push(c.length));
      const u = await store.createUser(userAttrs('x'));
      expect(await store.getUser(u.id)).toEqual(u);
      expect(seen).toEqual([1]);
      expect(reported).toHaveLength(1);
      expect((reported[0] as Error).message).toBe('listener bug');
    });

    it('snapshot holds the compact rows the index needs', async () => {
      const [a, b] = await createUsers(store, 2);
      await store.updateUser(b!.id, (c) => ({ ...c.attributes, active: false, emails: [{ value: 'B@x' }] }));
      const g = await store.createGroup(groupAttrs('G', { externalId: 'e' }), [{ value: a!.id }, { value: b!.id }]);
      const h = await store.createGroup(groupAttrs('H'), []);
      const snap = await store.snapshot();
      expect(snap.users).toEqual([
        { id: a!.id, userName: a!.attributes.userName, active: true, emails: [] },
        { id: b!.id, userName: b!.attributes.userName, active: false, emails: ['B@x'] },
      ]);
      expect(snap.groups).toEqual([
        { id: g.id, displayName: 'G', externalId: 'e' },
        { id: h.id, displayName: 'H' },
      ]);
      expect(snap.memberships).toHaveLength(2);
      expect(snap.memberships).toEqual(
        expect.arrayContaining([
          { groupId: g.id, userId: a!.id },
          { groupId: g.id, userId: b!.id },
        ]),
      );
    });
  });
});
