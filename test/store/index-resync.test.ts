// A full reload of a running index (docs/design.md §8, an instance behind the pruned change log):
// `resync` to a later snapshot leaves the index exactly as a fresh load would, and announces every
// access it takes away, as applying each missed write one by one would have.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DirectoryIndex, type RevocationEvent } from '../../scim/directory-index.js';
import { ScimError } from '../../scim/errors.js';
import { openStore } from '../../scim/store/open.js';
import type { DirectoryStore } from '../../scim/store/port.js';
import { groupAttrs, userAttrs } from './fixtures.js';
import { emails, expectInStep, expectRevoked, observe } from './index-checks.js';

const names = ['a', 'A', 'b', 'ä', 'c@x'];
const mails = ['x@e', 'X@E', 'y@e', 'c@x', 'a'];

type Op =
  | { t: 'createUser'; name: number; active: boolean; mails: number[] }
  | { t: 'updateUser'; who: number; name: number; active: boolean; mails: number[] }
  | { t: 'deleteUser'; who: number }
  | { t: 'createGroup'; name: number; members: number[] }
  | { t: 'updateGroup'; which: number; name: number | undefined; members: number[] }
  | { t: 'deleteGroup'; which: number };

const mailList = fc.uniqueArray(fc.nat(mails.length - 1), { maxLength: 2 });
const memberList = fc.uniqueArray(fc.nat(), { maxLength: 3 });
const op: fc.Arbitrary<Op> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ t: fc.constant('createUser' as const), name: fc.nat(names.length - 1), active: fc.boolean(), mails: mailList }) },
  { weight: 2, arbitrary: fc.record({ t: fc.constant('updateUser' as const), who: fc.nat(), name: fc.nat(names.length - 1), active: fc.boolean(), mails: mailList }) },
  fc.record({ t: fc.constant('deleteUser' as const), who: fc.nat() }),
  { weight: 2, arbitrary: fc.record({ t: fc.constant('createGroup' as const), name: fc.nat(3), members: memberList }) },
  { weight: 2, arbitrary: fc.record({ t: fc.constant('updateGroup' as const), which: fc.nat(), name: fc.option(fc.nat(3), { nil: undefined }), members: memberList }) },
  fc.record({ t: fc.constant('deleteGroup' as const), which: fc.nat() }),
);

/** Applies `ops` to the store; 409s and 400s are legitimate outcomes. */
async function apply(s: DirectoryStore, ops: Op[], users: string[], groups: string[]): Promise<void> {
  const pick = (list: string[], n: number): string | undefined => (list.length === 0 ? undefined : list[n % list.length]);
  const membersOf = (picks: number[]): { value: string }[] => (users.length === 0 ? [] : picks.map((n) => ({ value: users[n % users.length]! })));
  for (const o of ops) {
    try {
      switch (o.t) {
        case 'createUser':
          users.push((await s.createUser(userAttrs(names[o.name]!, { active: o.active, ...emails(...o.mails.map((i) => mails[i]!)) }))).id);
          break;
        case 'updateUser': {
          const id = pick(users, o.who);
          if (id !== undefined) await s.updateUser(id, (c) => ({ ...c.attributes, userName: names[o.name], active: o.active, ...emails(...o.mails.map((i) => mails[i]!)) }));
          break;
        }
        case 'deleteUser': {
          const id = pick(users, o.who);
          if (id !== undefined) await s.deleteUser(id);
          break;
        }
        case 'createGroup':
          groups.push((await s.createGroup(groupAttrs(`g${o.name}`), membersOf(o.members))).id);
          break;
        case 'updateGroup': {
          const id = pick(groups, o.which);
          if (id !== undefined) {
            await s.updateGroup(id, (c) => ({ attributes: o.name === undefined ? c.attributes : { displayName: `G${o.name}` }, members: membersOf(o.members) }));
          }
          break;
        }
        case 'deleteGroup': {
          const id = pick(groups, o.which);
          if (id !== undefined) await s.deleteGroup(id);
          break;
        }
      }
    } catch (err) {
      if (!(err instanceof ScimError)) throw err;
    }
  }
}

describe('DirectoryIndex.resync', () => {
  it('an empty index loads the snapshot; a loaded one ends equal to a fresh load and announces every access it took away (property)', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(op, { minLength: 3, maxLength: 15 }), fc.array(op, { minLength: 1, maxLength: 15 }), async (first, missed) => {
        const s = await openStore('sqlite::memory:');
        try {
          const users: string[] = [];
          const groups: string[] = [];
          await apply(s, first, users, groups);
          // Follows nothing: what it holds comes from resync alone, as on a follower.
          const index = DirectoryIndex.empty();
          index.resync(await s.snapshot());
          await expectInStep(index, s);
          // Asked for now, the digest is kept write by write through the resync below.
          await index.digest();
          const universe = [...names, ...mails];
          const before = observe(index, universe, [...users]);
          await apply(s, missed, users, groups);
          const events: RevocationEvent[] = [];
          index.onRevocation((ev) => events.push(ev));
          index.resync(await s.snapshot());
          await expectInStep(index, s, universe);
          expectRevoked(before, observe(index, universe, [...users]), events);
          const fresh = await DirectoryIndex.load(s);
          expect(await index.digest()).toBe(await fresh.digest());
          fresh.close();
        } finally {
          await s.close();
        }
      }),
      { numRuns: 80 },
    );
  }, 120_000);

  it('the digest kept write by write equals the digest of a fresh load, whenever it was first asked for (property)', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(op, { maxLength: 10 }), fc.array(op, { minLength: 1, maxLength: 20 }), async (before, after) => {
        const s = await openStore('sqlite::memory:');
        try {
          const users: string[] = [];
          const groups: string[] = [];
          await apply(s, before, users, groups);
          const index = await DirectoryIndex.load(s);
          // The first digest hashes a few entities per turn of the event loop; writes go on meanwhile.
          const first = index.digest();
          await apply(s, after, users, groups);
          await first;
          const fresh = await DirectoryIndex.load(s);
          expect(await index.digest()).toBe(await fresh.digest());
          fresh.close();
          index.close();
        } finally {
          await s.close();
        }
      }),
      { numRuns: 60 },
    );
  }, 120_000);

  it('writes committed while the first digest is computed (over thousands of people) are counted once', async () => {
    const s = await openStore('sqlite::memory:');
    try {
      const users = await Promise.all(Array.from({ length: 6_000 }, (_, i) => s.createUser(userAttrs(`p${i}@corp.example`, emails(`m${i}@mail.example`)))));
      const group = await s.createGroup(groupAttrs('analysts'), users.slice(0, 3_000).map((u) => ({ value: u.id })));
      const index = await DirectoryIndex.load(s);
      const digest = index.digest();
      // Interleaved with the digest's turns of the event loop.
      await Promise.all([
        ...users.slice(0, 50).map((u) => s.updateUser(u.id, (c) => ({ ...c.attributes, active: false }))),
        ...users.slice(5_950).map((u) => s.deleteUser(u.id)),
        s.updateGroup(group.id, (c) => ({ attributes: { displayName: 'renamed' }, members: c.members.slice(100) })),
        s.createUser(userAttrs('late@corp.example')),
      ]);
      await digest;
      const fresh = await DirectoryIndex.load(s);
      expect(await index.digest()).toBe(await fresh.digest());
    } finally {
      await s.close();
    }
  }, 60_000);

  it('a resync to the same state changes nothing and announces nothing', async () => {
    const s = await openStore('sqlite::memory:');
    try {
      const u = await s.createUser(userAttrs('p@corp.example', emails('P@Mail.example')));
      await s.createGroup(groupAttrs('analysts'), [{ value: u.id }]);
      const index = DirectoryIndex.empty();
      index.resync(await s.snapshot());
      const digest = await index.digest();
      const events: RevocationEvent[] = [];
      index.onRevocation((ev) => events.push(ev));
      index.resync(await s.snapshot());
      expect(events).toEqual([]);
      expect(await index.digest()).toBe(digest);
    } finally {
      await s.close();
    }
  });
});
