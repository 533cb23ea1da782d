// Per-user provisioning's records in the directory store (docs/design.md §7 step 2), on SQLite and
// PostgreSQL alike: one record per person, unique role names, and concurrent claims that agree.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { DirectoryStore, PersonalRoleRow } from '../../scim/store/port.js';
import { storeKinds, type OpenedStore } from './fixtures.js';

const row = (personId: string, roleName: string, sealedSecret = `v1:${personId}`): PersonalRoleRow => ({ personId, userName: roleName, roleName, sealedSecret });

describe.each(storeKinds)('$name personal-role records', (kind) => {
  let opened: OpenedStore;
  let store: DirectoryStore;
  beforeEach(async () => {
    opened = await kind.open();
    store = opened.store;
  });
  afterEach(async () => opened.cleanup());

  it('claims once per person, refuses a role name on record for someone else, updates and removes', async () => {
    const records = store.personalRoles;
    expect(await records.claim(row('p1', 'ana'))).toEqual({ kind: 'stored', record: row('p1', 'ana') });
    // The first claim's secret stays: a second claim gets the stored record back.
    expect(await records.claim(row('p1', 'ana', 'v1:other'))).toEqual({ kind: 'existing', record: row('p1', 'ana') });
    expect(await records.claim(row('p2', 'ana'))).toEqual({ kind: 'name_taken', holder: 'p1' });
    // Role names are compared as PostgreSQL compares identifiers: exactly.
    expect(await records.claim(row('p2', 'Ana'))).toMatchObject({ kind: 'stored' });
    expect(await records.update({ ...row('p1', 'ana.new'), sealedSecret: 'v1:p1' })).toBe(true);
    expect(await records.update({ ...row('p1', 'Ana'), sealedSecret: 'v1:p1' })).toBe(false);
    expect(await records.get('p1')).toEqual({ personId: 'p1', userName: 'ana.new', roleName: 'ana.new', sealedSecret: 'v1:p1' });
    expect((await records.list()).map((r) => r.personId)).toEqual(['p1', 'p2']);
    await records.remove('p1');
    expect(await records.get('p1')).toBeUndefined();
    expect(await records.claim(row('p3', 'ana'))).toMatchObject({ kind: 'stored' });
  });

  it('concurrent claims for one person all get the first record, none is refused as a name clash', async () => {
    // On PostgreSQL the unique role name can be checked before ON CONFLICT (person_id) applies, when
    // the other claim commits in between: a narrow window, so many rounds.
    for (let round = 0; round < 40; round++) {
      const person = `p${round}`;
      const claims = await Promise.all(Array.from({ length: 6 }, (_, i) => store.personalRoles.claim(row(person, `ana${round}`, `v1:secret-${i}`))));
      expect(claims.filter((c) => c.kind === 'name_taken')).toEqual([]);
      const stored = claims.filter((c) => c.kind === 'stored');
      expect(stored).toHaveLength(1);
      for (const c of claims) expect(c).toMatchObject({ record: (stored[0] as { record: PersonalRoleRow }).record });
    }
  });
});
