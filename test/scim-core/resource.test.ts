import { describe, expect, it } from 'vitest';
import { ScimError } from '../../scim/errors.js';
import { parseGroupBody, parseProjection, parseUserBody, project, renderGroup, renderUser } from '../../scim/resource.js';
import { ENTERPRISE_USER_URN as ENT, GROUP_SCHEMA_URN, USER_SCHEMA_URN } from '../../scim/schema.js';
import { BASE_URL, group, user } from './fixtures.js';

function scimError(fn: () => unknown): ScimError {
  try {
    fn();
  } catch (err) {
    if (err instanceof ScimError) return err;
    throw err;
  }
  throw new Error('expected a ScimError');
}

describe('parseUserBody', () => {
  it('Okta create body, verbatim (password and groups:[] dropped)', () => {
    const body = JSON.parse(
      '{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"isaac.brock@example.com","name":{"givenName":"Isaac","familyName":"Brock"},"emails":[{"primary":true,"value":"isaac.brock@example.com","type":"work"}],"displayName":"Isaac Brock","locale":"en-US","externalId":"00ujl29u0le5T6Aj10h7","groups":[],"password":"1mz050nq","active":true}',
    ) as unknown;
    expect(parseUserBody(body, 'create')).toEqual({
      userName: 'isaac.brock@example.com',
      name: { givenName: 'Isaac', familyName: 'Brock' },
      emails: [{ primary: true, value: 'isaac.brock@example.com', type: 'work' }],
      displayName: 'Isaac Brock',
      locale: 'en-US',
      externalId: '00ujl29u0le5T6Aj10h7',
      active: true,
    });
  });

  it('Entra create body, verbatim (enterprise extension, meta, empty roles)', () => {
    const body = JSON.parse(`{
      "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
      "externalId": "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef",
      "userName": "Test_User_ab6490ee-1e48-479e-a20b-2d77186b5dd1",
      "active": "False",
      "emails": [{"primary": true, "type": "work", "value": "Test_User_fd0ea19b@testuser.com"}],
      "meta": {"resourceType": "User"},
      "name": {"formatted": "givenName familyName", "familyName": "familyName", "givenName": "givenName"},
      "roles": [],
      "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": "some department", "manager": {"value": "m-1", "displayName": "Boss"}}
    }`) as unknown;
    expect(parseUserBody(body, 'create')).toEqual({
      externalId: '0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef',
      userName: 'Test_User_ab6490ee-1e48-479e-a20b-2d77186b5dd1',
      active: false,
      emails: [{ primary: true, type: 'work', value: 'Test_User_fd0ea19b@testuser.com' }],
      name: { formatted: 'givenName familyName', familyName: 'familyName', givenName: 'givenName' },
      [ENT]: { department: 'some department', manager: { value: 'm-1' } },
    });
  });

  it('Okta full PUT with id, meta and groups: readOnly attributes are ignored (D5, D27)', () => {
    const attrs = parseUserBody({
      schemas: [USER_SCHEMA_URN],
      id: 'other-id',
      userName: 'u',
      meta: { created: '2020-01-01T00:00:00Z' },
      groups: [{ value: 'g-1', display: 'G' }],
    }, 'replace');
    expect(attrs).toEqual({ userName: 'u' });
  });

  it('D5: unknown attributes and schema URIs are ignored', () => {
    expect(
      parseUserBody({
        schemas: [USER_SCHEMA_URN, 'http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/User'],
        userName: 'u',
        displayNme: 'misspelled',
        'urn:example:custom:2.0:User:thing': 'x',
        'urn:example:custom:2.0:User': { thing: 'x' },
        name: { givenName: 'G', nosuch: 'x' },
        emails: [{ value: 'a@b', weird: true }],
      }, 'create'),
    ).toEqual({ userName: 'u', active: true, name: { givenName: 'G' }, emails: [{ value: 'a@b' }] });
  });

  it('names are case-insensitive and come out canonical; URN-qualified keys land where they belong', () => {
    expect(
      parseUserBody({
        USERNAME: 'u',
        Name: { GIVENNAME: 'G' },
        'urn:ietf:params:scim:schemas:core:2.0:User:displayName': 'D',
        [`${ENT}:employeeNumber`]: '7',
        [ENT.toUpperCase()]: { COSTCENTER: 'CC' },
        'name.familyName': 'F',
      }, 'create'),
    ).toEqual({ userName: 'u', active: true, name: { givenName: 'G', familyName: 'F' }, displayName: 'D', [ENT]: { employeeNumber: '7', costCenter: 'CC' } });
  });

  it.each([
    [true, true],
    [false, false],
    ['TRUE', true],
    ['false', false],
    ['False', false],
    [undefined, true],
    [null, true],
  ])('D6: active %j -> %s', (active, expected) => {
    expect(parseUserBody({ userName: 'u', active }, 'create').active).toBe(expected);
  });

  it.each([
    [true, true],
    ['False', false],
    [undefined, undefined],
    [null, undefined],
  ])('D32: on replace, active %j -> %s (omitted: the service keeps the stored value)', (active, expected) => {
    const attrs = parseUserBody({ userName: 'u', active }, 'replace');
    expect(attrs.active).toBe(expected);
    expect(Object.hasOwn(attrs, 'active')).toBe(expected !== undefined);
  });

  it.each([['yes'], [1], [0], [{}]])('D6: active %j -> 400 invalidValue', (active) => {
    expect(scimError(() => parseUserBody({ userName: 'u', active }, 'create')).scimType).toBe('invalidValue');
  });

  it.each([[{}], [{ userName: '' }], [{ userName: null }], [{ userName: '   ' }], [{ userName: 5 }], [{ userName: ['a'] }]])('userName required: %j', (body) => {
    const err = scimError(() => parseUserBody(body, 'create'));
    expect(err.status).toBe(400);
    expect(err.scimType).toBe('invalidValue');
  });

  it.each([[null], ['x'], [[{ userName: 'u' }]], [5]])('body %j -> 400 invalidSyntax', (body) => {
    expect(scimError(() => parseUserBody(body, 'create')).scimType).toBe('invalidSyntax');
  });

  it.each([
    [{ name: 5 }],
    [{ name: { givenName: 5 } }],
    [{ emails: [{ value: 5 }] }],
    [{ emails: [3] }],
    [{ emails: [{ value: 'x', primary: 'sometimes' }] }],
    [{ displayName: {} }],
    [{ [ENT]: 'x' }],
    [{ [ENT]: { manager: 5 } }],
  ])('wrong types -> 400 invalidValue: %j', (extra) => {
    expect(scimError(() => parseUserBody({ userName: 'u', ...extra }, 'create')).scimType).toBe('invalidValue');
  });

  it('D28: nulls and empty strings are dropped, never stored', () => {
    const attrs = parseUserBody({
      userName: 'u',
      displayName: '',
      nickName: null,
      name: { givenName: '', familyName: null },
      emails: [{ value: '' }, null, { value: 'a@b', type: null }],
      phoneNumbers: [],
      [ENT]: { department: '' },
    }, 'create');
    expect(attrs).toEqual({ userName: 'u', active: true, emails: [{ value: 'a@b' }] });
  });

  it('D31: strings are stored exactly as received', () => {
    const attrs = parseUserBody({ userName: '  Mixed.Case@Example.COM ', displayName: 'Ünïcödé  ✓', name: { givenName: '\tTab' } }, 'create');
    expect(attrs.userName).toBe('  Mixed.Case@Example.COM ');
    expect(attrs.displayName).toBe('Ünïcödé  ✓');
    expect(attrs.name).toEqual({ givenName: '\tTab' });
  });

  it('D30: prototype-reaching keys are ignored and never reach Object.prototype', () => {
    const body = JSON.parse(
      `{"userName":"u","__proto__":{"polluted":"yes"},"constructor":{"prototype":{"polluted":"yes"}},"name":{"__proto__":{"polluted":"yes"},"givenName":"G"},"emails":[{"value":"a","__proto__":{"polluted":"yes"}}],"${ENT}":{"__proto__":{"polluted":"yes"}},"toString":"x"}`,
    ) as unknown;
    const attrs = parseUserBody(body, 'create');
    expect(attrs).toEqual({ userName: 'u', active: true, name: { givenName: 'G' }, emails: [{ value: 'a' }] });
    expect(Object.getPrototypeOf(attrs)).toBe(Object.prototype);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(Object.hasOwn(attrs, '__proto__')).toBe(false);
  });

  it('multiple primaries: the last one wins', () => {
    const attrs = parseUserBody({ userName: 'u', emails: [{ value: 'a', primary: true }, { value: 'b', primary: 'True' }] }, 'create');
    expect(attrs.emails).toEqual([{ value: 'a', primary: false }, { value: 'b', primary: true }]);
  });

  it('a lone object for a multi-valued attribute is a one-element list', () => {
    expect(parseUserBody({ userName: 'u', emails: { value: 'a@b' } }, 'create').emails).toEqual([{ value: 'a@b' }]);
  });

  it('bounds the elements of a multi-valued attribute', () => {
    const emails = Array.from({ length: 1001 }, (_, i) => ({ value: `e${i}@x` }));
    expect(scimError(() => parseUserBody({ userName: 'u', emails }, 'create')).scimType).toBe('invalidValue');
  });
});

describe('parseGroupBody', () => {
  it('Entra create body with its extra schema URI', () => {
    const parsed = parseGroupBody({
      schemas: [GROUP_SCHEMA_URN, 'http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group'],
      externalId: '8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159',
      displayName: 'Group1DisplayName',
      meta: { resourceType: 'Group' },
    });
    expect(parsed).toEqual({ attributes: { externalId: '8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159', displayName: 'Group1DisplayName' }, members: [] });
  });

  it('members: de-duplicated by value, display kept, $ref and type dropped', () => {
    const parsed = parseGroupBody({
      displayName: 'G',
      members: [
        { value: 'u-1', display: 'One', type: 'User', $ref: 'https://x/Users/u-1' },
        { value: 'u-2' },
        { value: 'u-1', display: 'Again' },
      ],
    });
    expect(parsed.members).toEqual([{ value: 'u-1', display: 'One' }, { value: 'u-2' }]);
  });

  it('D12: a Group member -> 400 invalidValue', () => {
    expect(scimError(() => parseGroupBody({ displayName: 'G', members: [{ value: 'g-2', type: 'Group' }] })).scimType).toBe('invalidValue');
  });

  it.each([[{}], [{ displayName: '' }], [{ displayName: null }], [{ displayName: 7 }]])('displayName required: %j', (body) => {
    expect(scimError(() => parseGroupBody(body)).scimType).toBe('invalidValue');
  });

  it.each([[{ members: [{ display: 'x' }] }], [{ members: [{ value: 3 }] }], [{ members: [{ value: 'u', display: 4 }] }]])('bad members %j -> 400', (extra) => {
    expect(scimError(() => parseGroupBody({ displayName: 'G', ...extra })).scimType).toBe('invalidValue');
  });

  it('ignores readOnly and unknown attributes; D30 keys never reach Object.prototype', () => {
    const body = JSON.parse('{"displayName":"G","id":"x","members":null,"__proto__":{"polluted":"yes"},"nosuch":1}') as unknown;
    expect(parseGroupBody(body)).toEqual({ attributes: { displayName: 'G' }, members: [] });
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });
});

describe('renderUser / renderGroup', () => {
  it('renders schemas, id, attributes, groups and meta', () => {
    expect(user.schemas).toEqual([USER_SCHEMA_URN, ENT]);
    expect(user.id).toBe('u-1');
    expect(user.groups).toEqual([{ value: 'g-1', display: 'Analysts', $ref: `${BASE_URL}/Groups/g-1`, type: 'direct' }]);
    expect(user.meta).toEqual({
      resourceType: 'User',
      created: '2024-01-01T00:00:00.000Z',
      lastModified: '2024-06-01T12:00:00.000Z',
      location: `${BASE_URL}/Users/u-1`,
    });
    expect((user[ENT] as Record<string, unknown>).manager).toEqual({ value: 'm-1', $ref: `${BASE_URL}/Users/m-1` });
    expect(Object.keys(user)[0]).toBe('schemas');
    expect(Object.keys(user).at(-1)).toBe('meta');
  });

  it('omits groups when empty (D24), the extension URN when it has no data, and never renders nulls or a password', () => {
    const out = renderUser(
      {
        id: 'u-2',
        created: 'c',
        lastModified: 'm',
        attributes: { userName: 'u', active: false, password: 'secret', nickName: null, title: '', emails: [], name: {}, [ENT]: { department: null }, bogus: 'x' },
      },
      [],
      `${BASE_URL}/`,
    );
    expect(out).toEqual({
      schemas: [USER_SCHEMA_URN],
      id: 'u-2',
      userName: 'u',
      active: false,
      meta: { resourceType: 'User', created: 'c', lastModified: 'm', location: `${BASE_URL}/Users/u-2` },
    });
    expect(JSON.stringify(out)).not.toMatch(/null|secret/);
  });

  it('renders group members as {value, display?, $ref, type: "User"} (D23)', () => {
    expect(group.members).toEqual([
      { value: 'u-1', display: 'Bob Smith', $ref: `${BASE_URL}/Users/u-1`, type: 'User' },
      { value: 'u-2', $ref: `${BASE_URL}/Users/u-2`, type: 'User' },
    ]);
    expect(group).toMatchObject({ schemas: [GROUP_SCHEMA_URN], id: 'g-1', displayName: 'Analysts', externalId: 'AAD-Group-1' });
    expect(group.meta).toMatchObject({ resourceType: 'Group', location: `${BASE_URL}/Groups/g-1` });
  });

  it('an empty group renders without members', () => {
    const out = renderGroup({ id: 'g', created: 'c', lastModified: 'm', attributes: { displayName: 'G' }, members: [] }, BASE_URL);
    expect(out).not.toHaveProperty('members');
  });
});

describe('parseProjection + project', () => {
  const cases: [{ attributes?: string; excludedAttributes?: string }, 'User' | 'Group', Record<string, unknown>][] = [
    [{ attributes: 'userName' }, 'User', { schemas: [USER_SCHEMA_URN], id: 'u-1', userName: user.userName }],
    [{ attributes: 'USERNAME , displayName' }, 'User', { schemas: [USER_SCHEMA_URN], id: 'u-1', userName: user.userName, displayName: 'Bob Smith' }],
    [{ attributes: 'name.givenName' }, 'User', { schemas: [USER_SCHEMA_URN], id: 'u-1', name: { givenName: 'Bob' } }],
    [{ attributes: 'name.givenName,name' }, 'User', { schemas: [USER_SCHEMA_URN], id: 'u-1', name: { givenName: 'Bob', familyName: 'Smith' } }],
    [{ attributes: 'emails.value' }, 'User', { schemas: [USER_SCHEMA_URN], id: 'u-1', emails: [{ value: 'Bob@Work.example' }, { value: 'bob@home.example' }] }],
    [{ attributes: `${ENT}:employeeNumber` }, 'User', { schemas: [USER_SCHEMA_URN, ENT], id: 'u-1', [ENT]: { employeeNumber: '42' } }],
    [{ attributes: `${ENT}:manager.value` }, 'User', { schemas: [USER_SCHEMA_URN, ENT], id: 'u-1', [ENT]: { manager: { value: 'm-1' } } }],
    [{ attributes: ENT }, 'User', { schemas: [USER_SCHEMA_URN, ENT], id: 'u-1', [ENT]: user[ENT] }],
    [{ attributes: 'meta.lastModified' }, 'User', { schemas: [USER_SCHEMA_URN], id: 'u-1', meta: { lastModified: '2024-06-01T12:00:00.000Z' } }],
    [{ attributes: 'nosuch,__proto__' }, 'User', { schemas: [USER_SCHEMA_URN], id: 'u-1' }],
    [{ attributes: 'id' }, 'User', { schemas: [USER_SCHEMA_URN], id: 'u-1' }],
    [{ attributes: 'displayName' }, 'Group', { schemas: [GROUP_SCHEMA_URN], id: 'g-1', displayName: 'Analysts' }],
    [{ attributes: 'members.value' }, 'Group', { schemas: [GROUP_SCHEMA_URN], id: 'g-1', members: [{ value: 'u-1' }, { value: 'u-2' }] }],
  ];

  it.each(cases)('%j (%s)', (q, rt, expected) => {
    const resource = rt === 'User' ? user : group;
    expect(project(resource, parseProjection(q, rt), rt)).toEqual(expected);
  });

  it('excludedAttributes=members omits members (D23)', () => {
    const out = project(group, parseProjection({ excludedAttributes: 'members' }, 'Group'), 'Group');
    expect(out).not.toHaveProperty('members');
    expect(out).toMatchObject({ id: 'g-1', displayName: 'Analysts' });
  });

  it('excludedAttributes never removes id or schemas, ignores unknown names', () => {
    const out = project(user, parseProjection({ excludedAttributes: 'id,schemas,nosuch,constructor' }, 'User'), 'User');
    expect(out).toEqual(user);
  });

  it('excluding sub-attributes and the extension', () => {
    const out = project(user, parseProjection({ excludedAttributes: `name.givenName,emails.type,${ENT},meta,groups` }, 'User'), 'User');
    expect(out.name).toEqual({ familyName: 'Smith' });
    expect(out.emails).toEqual([{ value: 'Bob@Work.example', primary: true }, { value: 'bob@home.example' }]);
    expect(out).not.toHaveProperty(ENT);
    expect(out).not.toHaveProperty('meta');
    expect(out).not.toHaveProperty('groups');
    expect(out.schemas).toEqual([USER_SCHEMA_URN]);
  });

  it('empty parameters mean no projection; the input is never modified', () => {
    const before = JSON.stringify(user);
    expect(project(user, parseProjection({ attributes: '', excludedAttributes: ' , ' }, 'User'), 'User')).toEqual(user);
    project(user, parseProjection({ attributes: 'userName', excludedAttributes: 'userName' }, 'User'), 'User');
    expect(JSON.stringify(user)).toBe(before);
  });
});
