// Reading the change log back (docs/design.md §8): every change a store journals decodes to itself;
// anything else is refused with STORE_LOG_UNREADABLE, so a follower reloads rather than guessing.
import { describe, expect, it } from 'vitest';
import { decodeLoggedChanges } from '../../scim/store/change-codec.js';
import type { DirectoryChange } from '../../scim/store/port.js';
import { StoreError } from '../../scim/store/store-error.js';

const every: DirectoryChange[] = [
  { type: 'user.upserted', user: { id: 'u1', userName: 'Alice', active: true, emails: ['a@x', 'A@y'] } },
  { type: 'user.upserted', user: { id: 'u2', userName: 'b', active: false, emails: [] } },
  { type: 'user.deleted', id: 'u2' },
  { type: 'group.upserted', group: { id: 'g1', displayName: 'analysts' } },
  { type: 'group.upserted', group: { id: 'g2', displayName: 'ops', externalId: 'ext-1' } },
  { type: 'group.deleted', id: 'g2' },
  { type: 'members.added', groupId: 'g1', userIds: ['u1'] },
  { type: 'members.removed', groupId: 'g1', userIds: ['u1', 'u3'] },
];

describe('decodeLoggedChanges', () => {
  it('decodes every change type as the store journals it (through JSON, as jsonb returns it)', () => {
    expect(decodeLoggedChanges(JSON.parse(JSON.stringify(every)))).toEqual(every);
  });

  it.each([
    ['not a list', { type: 'user.deleted', id: 'x' }],
    ['a change type this version does not know', [{ type: 'user.renamed', id: 'x' }]],
    ['a missing field', [{ type: 'user.upserted', user: { id: 'u', active: true, emails: [] } }]],
    ['active as a string', [{ type: 'user.upserted', user: { id: 'u', userName: 'u', active: 'true', emails: [] } }]],
    ['emails not strings', [{ type: 'user.upserted', user: { id: 'u', userName: 'u', active: true, emails: [1] } }]],
    ['externalId null', [{ type: 'group.upserted', group: { id: 'g', displayName: 'g', externalId: null } }]],
    ['userIds not a list', [{ type: 'members.added', groupId: 'g', userIds: 'u' }]],
    ['null', null],
  ])('refuses %s with STORE_LOG_UNREADABLE', (_name, payload) => {
    let err: unknown;
    try {
      decodeLoggedChanges(payload);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(StoreError);
    expect((err as StoreError).code).toBe('STORE_LOG_UNREADABLE');
  });
});
