import { describe, expect, it } from 'vitest';
import { ScimError } from '../../scim/errors.js';
import type { MemberRef, ScimAttributes } from '../../scim/model.js';
import { applyPatch, PATCH_OP_URN } from '../../scim/patch.js';
import { deepFreeze } from './fixtures.js';

const ENT = 'urn:ietf:params:scim:schemas:extension:enterprise:2.0:User';

function patchBody(...ops: unknown[]): unknown {
  return { schemas: [PATCH_OP_URN], Operations: ops };
}

function baseUser(): ScimAttributes {
  return deepFreeze({
    userName: 'alice@example.com',
    active: true,
    externalId: 'ext-a',
    displayName: 'Alice',
    name: { givenName: 'Alice', familyName: 'Liddell' },
    emails: [{ value: 'alice@example.com', type: 'work', primary: true }],
    [ENT]: { department: 'Wonder' },
  });
}

function baseGroup(members: MemberRef[] = [{ value: 'u-1', display: 'One' }, { value: 'u-2' }]): ScimAttributes {
  return deepFreeze({ displayName: 'Admins', externalId: 'g-ext', members });
}

function patchUser(...ops: unknown[]): { next: ScimAttributes; changed: boolean } {
  return applyPatch('User', baseUser(), patchBody(...ops));
}

function patchGroup(...ops: unknown[]): { next: ScimAttributes; changed: boolean } {
  return applyPatch('Group', baseGroup(), patchBody(...ops));
}

function scimError(fn: () => unknown): ScimError {
  try {
    fn();
  } catch (err) {
    if (err instanceof ScimError) return err;
    throw err;
  }
  throw new Error('expected a ScimError');
}

function memberValues(next: ScimAttributes): string[] {
  return (next.members as MemberRef[]).map((m) => m.value);
}

describe('Okta and Entra request shapes, verbatim', () => {
  it('Entra: {"op":"Replace","path":"active","value":"False"}', () => {
    const { next, changed } = patchUser({ op: 'Replace', path: 'active', value: 'False' });
    expect(next.active).toBe(false);
    expect(changed).toBe(true);
  });

  it('Okta: path-less {"op":"replace","value":{"active":false}}', () => {
    const { next, changed } = patchUser({ op: 'replace', value: { active: false } });
    expect(next.active).toBe(false);
    expect(changed).toBe(true);
  });

  it('Entra: path-less Add with dotted and URN-qualified keys', () => {
    const { next } = patchUser({ op: 'Add', value: { 'name.givenName': 'A', [`${ENT}:employeeNumber`]: '7' } });
    expect(next.name).toEqual({ givenName: 'A', familyName: 'Liddell' });
    expect(next[ENT]).toEqual({ department: 'Wonder', employeeNumber: '7' });
  });

  it('Entra: {"op":"Remove","path":"members","value":[{"value":"<id>"}]}', () => {
    const { next, changed } = patchGroup({ op: 'Remove', path: 'members', value: [{ value: 'u-1' }] });
    expect(memberValues(next)).toEqual(['u-2']);
    expect(changed).toBe(true);
  });

  it('Okta: {"op":"remove","path":"members[value eq \\"<id>\\"]"}', () => {
    const { next, changed } = patchGroup({ op: 'remove', path: 'members[value eq "u-2"]' });
    expect(next.members).toEqual([{ value: 'u-1', display: 'One' }]);
    expect(changed).toBe(true);
  });

  it('Okta: group rename whose value carries the group id', () => {
    const { next, changed } = patchGroup({ op: 'replace', value: { id: 'g-1', displayName: 'New' } });
    expect(next.displayName).toBe('New');
    expect(changed).toBe(true);
    expect(next).not.toHaveProperty('id');
    // With the id known, the same id is ignored and another one refused.
    expect(applyPatch('Group', baseGroup(), patchBody({ op: 'replace', value: { id: 'g-1', displayName: 'X' } }), { id: 'g-1' }).next.displayName).toBe('X');
    expect(scimError(() => applyPatch('Group', baseGroup(), patchBody({ op: 'replace', value: { id: 'g-2' } }), { id: 'g-1' })).scimType).toBe('mutability');
  });

  it('Entra: replace emails[type eq "work"].value creates the element when missing (D10)', () => {
    const current = deepFreeze({ userName: 'bob', active: true });
    const { next } = applyPatch('User', current, patchBody({ op: 'replace', path: 'emails[type eq "work"].value', value: 'bob@work.example' }));
    expect(next.emails).toEqual([{ type: 'work', value: 'bob@work.example' }]);
  });

  it('Entra: the same path with Add, and updating an existing element', () => {
    const { next } = patchUser({ op: 'Add', path: 'emails[type eq "work"].value', value: 'new@example.com' });
    expect(next.emails).toEqual([{ value: 'new@example.com', type: 'work', primary: true }]);
  });

  it('Okta: membership add with a list of values', () => {
    const { next } = patchGroup({ op: 'add', path: 'members', value: [{ value: 'u-3', display: 'Three' }, { value: 'u-4' }] });
    expect(memberValues(next)).toEqual(['u-1', 'u-2', 'u-3', 'u-4']);
  });

  it('Entra: null update of an optional attribute (D28)', () => {
    const { next } = patchUser({ op: 'Replace', path: 'displayName', value: null });
    expect(next).not.toHaveProperty('displayName');
  });

  it('Entra: address and phone value paths create their elements', () => {
    const current = deepFreeze({ userName: 'bob', active: true });
    const { next } = applyPatch(
      'User',
      current,
      patchBody(
        { op: 'Add', path: 'addresses[type eq "work"].streetAddress', value: '1 Main St' },
        { op: 'Add', path: 'addresses[type eq "work"].locality', value: 'Springfield' },
        { op: 'Add', path: 'phoneNumbers[type eq "mobile"].value', value: '+1 555 0100' },
      ),
    );
    expect(next.addresses).toEqual([{ type: 'work', streetAddress: '1 Main St', locality: 'Springfield' }]);
    expect(next.phoneNumbers).toEqual([{ type: 'mobile', value: '+1 555 0100' }]);
  });

  it('Entra: manager given as a bare id string', () => {
    const { next } = patchUser({ op: 'Add', path: `${ENT}:manager`, value: 'boss-1' });
    expect(next[ENT]).toEqual({ department: 'Wonder', manager: { value: 'boss-1' } });
  });
});

describe('D6: active', () => {
  it.each([
    ['True', true],
    ['true', true],
    ['TRUE', true],
    ['False', false],
    ['fAlSe', false],
    [true, true],
    [false, false],
  ])('%s -> %s', (value, expected) => {
    expect(patchUser({ op: 'replace', path: 'active', value }).next.active).toBe(expected);
  });

  it.each([['yes'], [1], [0], ['1'], [' true'], [{}], [[true]]])('%j -> 400 invalidValue', (value) => {
    const err = scimError(() => patchUser({ op: 'replace', path: 'active', value }));
    expect(err.status).toBe(400);
    expect(err.scimType).toBe('invalidValue');
  });

  it('active can be changed but never removed or nulled (fails closed)', () => {
    expect(scimError(() => patchUser({ op: 'remove', path: 'active' })).scimType).toBe('invalidValue');
    expect(scimError(() => patchUser({ op: 'replace', path: 'active', value: null })).scimType).toBe('invalidValue');
    expect(scimError(() => patchUser({ op: 'replace', path: 'active', value: '' })).scimType).toBe('invalidValue');
  });
});

describe('D7: ops, names and value shapes', () => {
  it.each(['add', 'ADD', 'Add', 'replace', 'REPLACE', 'rePlace'])('op %s', (op) => {
    expect(patchUser({ op, path: 'title', value: 'Queen' }).next.title).toBe('Queen');
  });

  it('add and replace are the same on single-valued attributes', () => {
    const a = patchUser({ op: 'add', path: 'displayName', value: 'A2' });
    const r = patchUser({ op: 'replace', path: 'displayName', value: 'A2' });
    expect(a.next).toEqual(r.next);
  });

  it('attribute names in paths and keys are case-insensitive and come out canonical', () => {
    const { next } = patchUser(
      { op: 'replace', path: 'NAME.GIVENNAME', value: 'Al' },
      { op: 'replace', value: { DisplayName: 'Ally', 'urn:ietf:params:scim:schemas:extension:enterprise:2.0:user:DEPARTMENT': 'Hearts' } },
    );
    expect(next.name).toEqual({ givenName: 'Al', familyName: 'Liddell' });
    expect(next.displayName).toBe('Ally');
    expect(next[ENT]).toEqual({ department: 'Hearts' });
  });

  it('nested objects in a path-less value merge into complex attributes', () => {
    const { next } = patchUser({ op: 'replace', value: { name: { familyName: 'L.' }, [ENT]: { costCenter: 'CC', manager: { value: 'm' } } } });
    expect(next.name).toEqual({ givenName: 'Alice', familyName: 'L.' });
    expect(next[ENT]).toEqual({ department: 'Wonder', costCenter: 'CC', manager: { value: 'm' } });
  });

  it('URN-qualified core paths work', () => {
    const { next } = patchUser({ op: 'replace', path: 'urn:ietf:params:scim:schemas:core:2.0:User:name.familyName', value: 'X' });
    expect(next.name).toEqual({ givenName: 'Alice', familyName: 'X' });
  });

  it('path-less values skip schemas, meta, password and unknown keys', () => {
    const { next, changed } = patchUser({
      op: 'replace',
      value: { schemas: ['x'], meta: { created: 'x' }, password: 'hunter2', favouriteColour: 'red', 'urn:example:ext:User:x': 1 },
    });
    expect(changed).toBe(false);
    expect(next).toEqual(baseUser());
  });

  it('the path itself may name an extension', () => {
    expect(patchUser({ op: 'remove', path: ENT }).next).not.toHaveProperty(ENT);
    expect(patchUser({ op: 'replace', path: ENT, value: { division: 'D' } }).next[ENT]).toEqual({ department: 'Wonder', division: 'D' });
    expect(patchUser({ op: 'replace', path: ENT, value: null }).next).not.toHaveProperty(ENT);
  });

  it('password in a path is accepted and never stored', () => {
    const { next, changed } = patchUser({ op: 'replace', path: 'password', value: 'hunter2' });
    expect(changed).toBe(false);
    expect(JSON.stringify(next)).not.toContain('hunter2');
  });
});

describe('D8 / D9: removing members', () => {
  it('a value list removes only the listed members, matched on value alone', () => {
    const { next } = patchGroup({
      op: 'remove',
      path: 'members',
      value: [{ value: 'u-1', display: 'Someone Else', $ref: 'https://x/Users/u-1', type: 'User' }],
    });
    expect(next.members).toEqual([{ value: 'u-2' }]);
  });

  it('no value removes every member (RFC 7644 §3.5.2.2)', () => {
    expect(patchGroup({ op: 'remove', path: 'members' }).next.members).toEqual([]);
  });

  it('an empty value list removes nothing', () => {
    expect(patchGroup({ op: 'remove', path: 'members', value: [] }).changed).toBe(false);
  });

  it('removing a non-member succeeds with no change (D9)', () => {
    for (const op of [
      { op: 'remove', path: 'members[value eq "nobody"]' },
      { op: 'remove', path: 'members', value: [{ value: 'nobody' }] },
    ]) {
      const { next, changed } = patchGroup(op);
      expect(changed).toBe(false);
      expect(next).toEqual(baseGroup());
    }
  });

  it('member values compare exactly (ids are case-exact)', () => {
    expect(patchGroup({ op: 'remove', path: 'members[value eq "U-1"]' }).changed).toBe(false);
  });

  it('removal by a non-key filter', () => {
    expect(memberValues(patchGroup({ op: 'remove', path: 'members[display eq "one"]' }).next)).toEqual(['u-2']);
  });

  it('a removal item without a value is refused', () => {
    expect(scimError(() => patchGroup({ op: 'remove', path: 'members', value: [{ display: 'x' }] })).scimType).toBe('invalidValue');
  });

  it('remove of a multi-valued User attribute with a value list', () => {
    const current = deepFreeze({ userName: 'u', active: true, emails: [{ value: 'A@x', type: 'work' }, { value: 'b@x' }] });
    const { next } = applyPatch('User', current, patchBody({ op: 'remove', path: 'emails', value: [{ value: 'a@X', type: 'home' }] }));
    expect(next.emails).toEqual([{ value: 'b@x' }]);
  });
});

describe('D10: filtered replace that matches nothing', () => {
  it('creates the element for a simple eq filter, without a sub-attribute too', () => {
    const { next } = patchUser({ op: 'replace', path: 'emails[type eq "home"]', value: { value: 'h@example.com' } });
    expect(next.emails).toEqual([
      { value: 'alice@example.com', type: 'work', primary: true },
      { type: 'home', value: 'h@example.com' },
    ]);
  });

  it('any other filter matching nothing is 400 noTarget', () => {
    for (const path of ['emails[type eq "home" and value co "x"].value', 'emails[value co "zzz"].type', 'emails[not (type eq "work")].value']) {
      const err = scimError(() => patchUser({ op: 'replace', path, value: 'x' }));
      expect(err.scimType).toBe('noTarget');
      expect(err.status).toBe(400);
    }
  });

  it('a matching filter replaces the sub-attribute of every match', () => {
    const current = deepFreeze({ userName: 'u', active: true, emails: [{ value: 'a', type: 'work' }, { value: 'b', type: 'work' }, { value: 'c', type: 'home' }] });
    const { next } = applyPatch('User', current, patchBody({ op: 'replace', path: 'emails[type eq "WORK"].display', value: 'W' }));
    expect(next.emails).toEqual([
      { value: 'a', type: 'work', display: 'W' },
      { value: 'b', type: 'work', display: 'W' },
      { value: 'c', type: 'home' },
    ]);
  });

  it('replace without a sub-attribute swaps the matched element; add merges into it', () => {
    const r = patchUser({ op: 'replace', path: 'emails[type eq "work"]', value: { value: 'x@y', type: 'other' } });
    expect(r.next.emails).toEqual([{ value: 'x@y', type: 'other' }]);
    const a = patchUser({ op: 'add', path: 'emails[type eq "work"]', value: { display: 'Work' } });
    expect(a.next.emails).toEqual([{ value: 'alice@example.com', type: 'work', primary: true, display: 'Work' }]);
  });

  it('remove with a filter and sub-attribute removes just that sub-attribute', () => {
    const { next } = patchUser({ op: 'remove', path: 'emails[type eq "work"].primary' });
    expect(next.emails).toEqual([{ value: 'alice@example.com', type: 'work' }]);
  });
});

describe('D11: de-duplication and no-op detection', () => {
  it('adding an existing member is a no-op', () => {
    const { next, changed } = patchGroup({ op: 'add', path: 'members', value: [{ value: 'u-1' }, { value: 'u-2', display: 'Two' }] });
    expect(changed).toBe(false);
    expect(next.members).toEqual(baseGroup().members);
  });

  it('duplicates within one add are collapsed', () => {
    expect(memberValues(patchGroup({ op: 'add', path: 'members', value: [{ value: 'u-9' }, { value: 'u-9' }] }).next)).toEqual(['u-1', 'u-2', 'u-9']);
  });

  it('adding an email equal on every given sub-attribute is a no-op', () => {
    expect(patchUser({ op: 'add', path: 'emails', value: [{ value: 'ALICE@example.com', type: 'work' }] }).changed).toBe(false);
    expect(patchUser({ op: 'add', path: 'emails', value: [{ value: 'alice@example.com', type: 'home' }] }).changed).toBe(true);
  });

  it.each([
    [{ op: 'replace', path: 'userName', value: 'alice@example.com' }],
    [{ op: 'replace', path: 'active', value: 'true' }],
    [{ op: 'replace', value: { displayName: 'Alice', 'name.givenName': 'Alice' } }],
    [{ op: 'add', path: 'name', value: { familyName: 'Liddell' } }],
    [{ op: 'remove', path: 'nickName' }],
    [{ op: 'remove', path: 'phoneNumbers' }],
    [{ op: 'remove', path: 'emails[type eq "home"]' }],
    [{ op: 'replace', path: 'emails', value: [{ value: 'alice@example.com', type: 'work', primary: true }] }],
  ])('no-op %j', (op) => {
    const { next, changed } = patchUser(op);
    expect(changed).toBe(false);
    expect(next).toEqual(baseUser());
  });

  it('an explicitly undefined display in stored members is the same as none', () => {
    const current = deepFreeze({ displayName: 'G', members: [{ value: 'u-1', display: undefined }] });
    expect(applyPatch('Group', current, patchBody({ op: 'add', path: 'members', value: [{ value: 'u-1' }] })).changed).toBe(false);
  });

  it('a change followed by its undo is no change', () => {
    expect(patchUser({ op: 'replace', path: 'title', value: 'T' }, { op: 'remove', path: 'title' }).changed).toBe(false);
  });
});

describe('D12: members are Users', () => {
  it.each([['Group'], ['group'], ['Team'], [5]])('type %j -> 400 invalidValue', (type) => {
    const err = scimError(() => patchGroup({ op: 'add', path: 'members', value: [{ value: 'g-2', type }] }));
    expect(err.scimType).toBe('invalidValue');
  });

  it('type "User" (any case) and no type are accepted; $ref and type are not stored', () => {
    const { next } = patchGroup({ op: 'add', path: 'members', value: [{ value: 'u-3', type: 'User', $ref: 'https://x/Users/u-3' }, { value: 'u-4', type: 'user' }] });
    expect(next.members).toEqual([{ value: 'u-1', display: 'One' }, { value: 'u-2' }, { value: 'u-3' }, { value: 'u-4' }]);
  });

  it('a member needs a non-empty string value', () => {
    for (const value of [[{ display: 'x' }], [{ value: '' }], [{ value: 5 }], [7]]) {
      expect(scimError(() => patchGroup({ op: 'add', path: 'members', value })).scimType).toBe('invalidValue');
    }
  });

  it('replace sets the whole member list', () => {
    expect(patchGroup({ op: 'replace', path: 'members', value: [{ value: 'u-7' }] }).next.members).toEqual([{ value: 'u-7' }]);
    expect(patchGroup({ op: 'replace', value: { members: [] } }).next.members).toEqual([]);
  });

  it('a member display can be changed through a filter', () => {
    expect(patchGroup({ op: 'replace', path: 'members[value eq "u-2"].display', value: 'Two' }).next.members).toEqual([
      { value: 'u-1', display: 'One' },
      { value: 'u-2', display: 'Two' },
    ]);
  });
});

describe('D28: empty values unassign', () => {
  it.each([[''], [null]])('replace with %j', (value) => {
    const { next } = patchUser(
      { op: 'replace', path: 'displayName', value },
      { op: 'replace', path: 'name.givenName', value },
      { op: 'replace', value: { externalId: value, [`${ENT}:department`]: value } },
    );
    expect(next).not.toHaveProperty('displayName');
    expect(next).not.toHaveProperty('externalId');
    expect(next).not.toHaveProperty(ENT);
    expect(next.name).toEqual({ familyName: 'Liddell' });
    expect(JSON.stringify(next)).not.toContain('null');
  });

  it('emptying the last sub-attribute removes the complex attribute', () => {
    const { next } = patchUser({ op: 'remove', path: 'name.givenName' }, { op: 'remove', path: 'name.familyName' });
    expect(next).not.toHaveProperty('name');
  });

  it('replacing a multi-valued attribute with [] or null unassigns it', () => {
    expect(patchUser({ op: 'replace', path: 'emails', value: [] }).next).not.toHaveProperty('emails');
    expect(patchUser({ op: 'replace', path: 'emails', value: null }).next).not.toHaveProperty('emails');
  });

  it('required attributes cannot be emptied: userName, Group displayName', () => {
    for (const op of [
      { op: 'remove', path: 'userName' },
      { op: 'replace', path: 'userName', value: '' },
      { op: 'replace', value: { userName: null } },
    ]) {
      expect(scimError(() => patchUser(op)).scimType).toBe('invalidValue');
    }
    for (const op of [{ op: 'remove', path: 'displayName' }, { op: 'replace', path: 'displayName', value: '' }]) {
      expect(scimError(() => patchGroup(op)).scimType).toBe('invalidValue');
    }
  });
});

describe('D30: prototype pollution', () => {
  const hostilePaths = [
    '__proto__',
    '__proto__.polluted',
    'constructor',
    'constructor.prototype',
    'prototype',
    'name.__proto__',
    'name.constructor',
    'toString',
    'hasOwnProperty',
    `${ENT}:__proto__`,
    'emails[type eq "work"].__proto__',
    '__proto__[value eq "x"]',
  ];

  it.each(hostilePaths)('path %s -> 400 invalidPath', (path) => {
    for (const op of ['add', 'replace', 'remove']) {
      const err = scimError(() => patchUser({ op, path, value: { polluted: 'yes' } }));
      expect(err.scimType).toBe('invalidPath');
    }
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  const hostileBodies = [
    '{"op":"add","value":{"__proto__":{"polluted":"yes"}}}',
    '{"op":"replace","value":{"constructor":{"prototype":{"polluted":"yes"}}}}',
    '{"op":"replace","value":{"name.__proto__.polluted":"yes"}}',
    '{"op":"replace","value":{"name":{"__proto__":{"polluted":"yes"}}}}',
    '{"op":"add","path":"name","value":{"constructor":{"prototype":{"polluted":"yes"}}}}',
    '{"op":"add","path":"emails","value":[{"value":"x","__proto__":{"polluted":"yes"}}]}',
    `{"op":"add","value":{"${ENT}":{"__proto__":{"polluted":"yes"}}}}`,
    `{"op":"add","value":{"${ENT}:manager":{"__proto__":{"polluted":"yes"}}}}`,
    '{"op":"add","value":{"ValueOf":"x"}}',
  ];

  it.each(hostileBodies)('value %s -> 400 invalidPath', (json) => {
    // JSON.parse makes "__proto__" an own key, exactly as a request body parser does.
    const op = JSON.parse(json) as unknown;
    expect(scimError(() => patchUser(op)).scimType).toBe('invalidPath');
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(Object.prototype).not.toHaveProperty('polluted');
  });

  it('member objects with hostile keys are refused', () => {
    const op = JSON.parse('{"op":"add","path":"members","value":[{"value":"u-5","__proto__":{"polluted":"yes"}}]}') as unknown;
    expect(scimError(() => patchGroup(op)).scimType).toBe('invalidPath');
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });
});

describe('mutability, targets and value types', () => {
  it.each(['id', 'meta', 'meta.created', 'meta.lastModified', 'groups', 'groups[value eq "g"]', 'groups[value eq "g"].display', `${ENT}:manager.displayName`])(
    'path %s -> 400 mutability',
    (path) => {
      for (const op of ['add', 'replace', 'remove']) expect(scimError(() => patchUser({ op, path, value: 'x' })).scimType).toBe('mutability');
    },
  );

  it('group: id, meta and immutable member sub-attributes', () => {
    for (const path of ['id', 'meta.lastModified', 'members[value eq "u-1"].value', 'members[value eq "u-1"].type', 'members[value eq "u-1"].$ref', 'members.$ref']) {
      expect(scimError(() => patchGroup({ op: 'replace', path, value: 'x' })).scimType).toBe('mutability');
    }
  });

  it('path-less groups -> 400 mutability', () => {
    expect(scimError(() => patchUser({ op: 'add', value: { groups: [{ value: 'g' }] } })).scimType).toBe('mutability');
  });

  it('remove without a path -> 400 noTarget', () => {
    const err = scimError(() => patchUser({ op: 'remove' }));
    expect(err.scimType).toBe('noTarget');
  });

  it.each(['nosuch', 'name.nosuch', 'userName.x', 'emails[nosuch eq "x"]', 'emails[type eq "x"].nosuch', 'emails[type eq ', 'emails]', 'userName[value eq "x"]', 'urn:example:x:User:y', 'members', 'a.b.c'])(
    'unknown or malformed path %s -> 400 invalidPath',
    (path) => {
      expect(scimError(() => patchUser({ op: 'replace', path, value: 'x' })).scimType).toBe('invalidPath');
    },
  );

  it('a sub-attribute of a multi-valued attribute needs a filter for add/replace, not for remove', () => {
    expect(scimError(() => patchUser({ op: 'replace', path: 'emails.value', value: 'x' })).scimType).toBe('invalidPath');
    expect(patchUser({ op: 'remove', path: 'emails.primary' }).next.emails).toEqual([{ value: 'alice@example.com', type: 'work' }]);
  });

  it.each([
    ['userName', 5],
    ['userName', true],
    ['userName', ['a']],
    ['displayName', { x: 1 }],
    ['name', 5],
    ['name', ['x']],
    ['name.givenName', { x: 1 }],
    ['emails', [5]],
    ['emails', [{ value: 5 }]],
    ['emails', [{ value: 'x', primary: 'maybe' }]],
    ['title', 1.5],
  ])('%s = %j -> 400 invalidValue', (path, value) => {
    expect(scimError(() => patchUser({ op: 'replace', path, value })).scimType).toBe('invalidValue');
  });

  it('a path-less operation needs an object value', () => {
    for (const value of ['x', 5, null, [1]]) expect(scimError(() => patchUser({ op: 'replace', value })).scimType).toBe('invalidValue');
  });
});

describe('primary', () => {
  it('adding a primary element unsets the others', () => {
    const { next } = patchUser({ op: 'add', path: 'emails', value: [{ value: 'new@example.com', type: 'home', primary: true }] });
    expect(next.emails).toEqual([
      { value: 'alice@example.com', type: 'work', primary: false },
      { value: 'new@example.com', type: 'home', primary: true },
    ]);
  });

  it('setting primary through a filter unsets the others', () => {
    const current = deepFreeze({ userName: 'u', active: true, emails: [{ value: 'a', primary: true }, { value: 'b' }] });
    const { next } = applyPatch('User', current, patchBody({ op: 'replace', path: 'emails[value eq "b"].primary', value: 'True' }));
    expect(next.emails).toEqual([{ value: 'a', primary: false }, { value: 'b', primary: true }]);
  });
});

describe('message validation', () => {
  it('schemas may be absent; when present it must name PatchOp', () => {
    expect(applyPatch('User', baseUser(), { Operations: [{ op: 'replace', path: 'title', value: 'T' }] }).next.title).toBe('T');
    const err = scimError(() => applyPatch('User', baseUser(), { schemas: ['urn:x'], Operations: [{ op: 'replace', path: 'title', value: 'T' }] }));
    expect(err.scimType).toBe('invalidSyntax');
    expect(scimError(() => applyPatch('User', baseUser(), { schemas: 'x', Operations: [] })).scimType).toBe('invalidSyntax');
  });

  it('the Operations key is case-insensitive', () => {
    expect(applyPatch('User', baseUser(), { schemas: [PATCH_OP_URN], operations: [{ OP: 'Replace', Path: 'title', Value: 'T' }] }).next.title).toBe('T');
  });

  it.each([null, 'x', [], {}, { Operations: [] }, { Operations: {} }, { Operations: 'add' }])('body %j -> 400 invalidSyntax', (body) => {
    expect(scimError(() => applyPatch('User', baseUser(), body)).scimType).toBe('invalidSyntax');
  });

  it.each([[null], ['x'], [{ op: 'move', path: 'title' }], [{ path: 'title', value: 'x' }], [{ op: 5 }]])('operation %j -> 400 invalidSyntax', (op) => {
    expect(scimError(() => patchUser(op)).scimType).toBe('invalidSyntax');
  });

  it('add and replace need a value', () => {
    expect(scimError(() => patchUser({ op: 'add', path: 'title' })).scimType).toBe('invalidValue');
    expect(scimError(() => patchUser({ op: 'replace', path: 'title' })).scimType).toBe('invalidValue');
  });

  it('a non-string path is invalidPath', () => {
    expect(scimError(() => patchUser({ op: 'replace', path: 5, value: 'x' })).scimType).toBe('invalidPath');
  });

  it('the error names the failing operation', () => {
    const err = scimError(() => patchUser({ op: 'replace', path: 'title', value: 'T' }, { op: 'replace', path: 'nosuch', value: 1 }));
    expect(err.detail).toMatch(/^Operations\[1\]: /);
  });
});

describe('atomicity', () => {
  it('a failing operation leaves current untouched and returns nothing', () => {
    const current = baseUser();
    const before = JSON.stringify(current);
    const err = scimError(() =>
      applyPatch(
        'User',
        current,
        patchBody(
          { op: 'replace', path: 'title', value: 'T' },
          { op: 'add', path: 'emails', value: [{ value: 'x@y', primary: true }] },
          { op: 'remove', path: `${ENT}` },
          { op: 'replace', path: 'active', value: 'nope' },
        ),
      ),
    );
    expect(err.scimType).toBe('invalidValue');
    expect(JSON.stringify(current)).toBe(before);
  });

  it('current is never mutated, even on success (deep-frozen input)', () => {
    const current = baseUser();
    const before = JSON.stringify(current);
    applyPatch(
      'User',
      current,
      patchBody(
        { op: 'replace', path: 'name.givenName', value: 'X' },
        { op: 'replace', path: 'emails[type eq "work"].value', value: 'x@y' },
        { op: 'add', path: 'emails', value: { value: 'z@y', primary: true } },
        { op: 'replace', value: { [`${ENT}:department`]: 'D' } },
      ),
    );
    const group = baseGroup();
    applyPatch('Group', group, patchBody({ op: 'remove', path: 'members[value eq "u-1"]' }, { op: 'replace', path: 'members[value eq "u-2"].display', value: 'd' }));
    expect(JSON.stringify(current)).toBe(before);
  });
});

describe('large membership changes', () => {
  it('adds 10,000 members to a group of 10,000 (Sets, not O(n^2))', () => {
    const existing = Array.from({ length: 10_000 }, (_, i) => ({ value: `user-${i}` }));
    const added = Array.from({ length: 10_000 }, (_, i) => ({ value: `user-${i + 5_000}`, display: `U ${i}` }));
    const { next, changed } = applyPatch('Group', baseGroup(existing), patchBody({ op: 'add', path: 'members', value: added }));
    expect(changed).toBe(true);
    const values = memberValues(next);
    expect(values).toHaveLength(15_000);
    expect(new Set(values).size).toBe(15_000);
    expect(values[0]).toBe('user-0');
    expect(values[14_999]).toBe('user-14999');
  });

  it('removes thousands of members by individual filter operations', () => {
    const existing = Array.from({ length: 10_000 }, (_, i) => ({ value: `user-${i}` }));
    const ops = Array.from({ length: 5_000 }, (_, i) => ({ op: 'remove', path: `members[value eq "user-${i * 2}"]` }));
    const { next } = applyPatch('Group', baseGroup(existing), patchBody(...ops));
    expect(memberValues(next)).toHaveLength(5_000);
    expect(memberValues(next).every((v) => Number(v.slice(5)) % 2 === 1)).toBe(true);
  });
});
