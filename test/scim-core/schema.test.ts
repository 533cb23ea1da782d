import { describe, expect, it } from 'vitest';
import { AttributePathError, parseAttributePath } from '../../scim/attribute-path.js';
import { ScimError } from '../../scim/errors.js';
import {
  COMMON_ATTRIBUTES,
  ENTERPRISE_USER_SCHEMA,
  ENTERPRISE_USER_URN,
  GROUP_SCHEMA,
  GROUP_SCHEMA_URN,
  USER_SCHEMA,
  USER_SCHEMA_URN,
  findAttribute,
  schemasOf,
} from '../../scim/schema.js';
import type { AttributeDef } from '../../scim/schema.js';

function def(defs: readonly AttributeDef[], name: string): AttributeDef {
  const d = findAttribute(defs, name);
  if (d === undefined) throw new Error(`no ${name}`);
  return d;
}

describe('schemas (RFC 7643 §8.7.1)', () => {
  it('has the User attributes in RFC order', () => {
    expect(USER_SCHEMA.attributes.map((a) => a.name)).toEqual([
      'userName', 'name', 'displayName', 'nickName', 'profileUrl', 'title', 'userType', 'preferredLanguage', 'locale',
      'timezone', 'active', 'password', 'emails', 'phoneNumbers', 'ims', 'photos', 'addresses', 'groups', 'entitlements',
      'roles', 'x509Certificates',
    ]);
    expect(GROUP_SCHEMA.attributes.map((a) => a.name)).toEqual(['displayName', 'members']);
    expect(ENTERPRISE_USER_SCHEMA.attributes.map((a) => a.name)).toEqual([
      'employeeNumber', 'costCenter', 'organization', 'division', 'department', 'manager',
    ]);
    expect(def(USER_SCHEMA.attributes, 'name').subAttributes?.map((a) => a.name)).toEqual([
      'formatted', 'familyName', 'givenName', 'middleName', 'honorificPrefix', 'honorificSuffix',
    ]);
    expect(def(GROUP_SCHEMA.attributes, 'members').subAttributes?.map((a) => a.name)).toEqual(['value', '$ref', 'type', 'display']);
    expect(def(ENTERPRISE_USER_SCHEMA.attributes, 'manager').subAttributes?.map((a) => a.name)).toEqual(['value', '$ref', 'displayName']);
  });

  it('pins the case rules of docs/scim.md', () => {
    expect(def(USER_SCHEMA.attributes, 'userName')).toMatchObject({ caseExact: false, required: true, uniqueness: 'server' });
    expect(def(GROUP_SCHEMA.attributes, 'displayName')).toMatchObject({ caseExact: false, required: true });
    expect(def(def(USER_SCHEMA.attributes, 'emails').subAttributes ?? [], 'value').caseExact).toBe(false);
    expect(def(COMMON_ATTRIBUTES, 'id')).toMatchObject({ caseExact: true, mutability: 'readOnly', returned: 'always' });
    expect(def(COMMON_ATTRIBUTES, 'externalId')).toMatchObject({ caseExact: true, mutability: 'readWrite' });
    expect(def(COMMON_ATTRIBUTES, 'meta')).toMatchObject({ type: 'complex', mutability: 'readOnly' });
    expect(def(USER_SCHEMA.attributes, 'password')).toMatchObject({ mutability: 'writeOnly', returned: 'never' });
    expect(def(USER_SCHEMA.attributes, 'groups')).toMatchObject({ mutability: 'readOnly', multiValued: true });
  });

  it('every definition carries every RFC 7643 §7 characteristic', () => {
    const check = (a: AttributeDef): void => {
      for (const key of ['name', 'type', 'multiValued', 'description', 'required', 'caseExact', 'mutability', 'returned', 'uniqueness']) {
        expect(a, `${a.name}.${key}`).toHaveProperty(key);
      }
      expect(a.description.length).toBeGreaterThan(0);
      if (a.type === 'complex') expect(a.subAttributes?.length).toBeGreaterThan(0);
      for (const s of a.subAttributes ?? []) check(s);
    };
    for (const s of [USER_SCHEMA, GROUP_SCHEMA, ENTERPRISE_USER_SCHEMA]) s.attributes.forEach(check);
    COMMON_ATTRIBUTES.forEach(check);
  });

  it('schemasOf lists core and extensions', () => {
    expect(schemasOf('User').core.id).toBe(USER_SCHEMA_URN);
    expect(schemasOf('User').extensions.map((s) => s.id)).toEqual([ENTERPRISE_USER_URN]);
    expect(schemasOf('Group')).toEqual({ core: GROUP_SCHEMA, extensions: [] });
  });

  it('definitions are frozen', () => {
    expect(Object.isFrozen(USER_SCHEMA.attributes[0])).toBe(true);
    // schemasOf hands out a fresh list: a caller cannot add extensions for everyone.
    schemasOf('User').extensions.push(GROUP_SCHEMA);
    expect(schemasOf('User').extensions).toHaveLength(1);
  });

  it('lookups never resolve inherited properties', () => {
    for (const name of ['__proto__', 'constructor', 'toString', 'hasOwnProperty']) {
      expect(findAttribute(USER_SCHEMA.attributes, name)).toBeUndefined();
    }
  });
});

// [text, resource type, expected fields]
const pathCases: [string, 'User' | 'Group', Record<string, unknown>][] = [
  ['userName', 'User', { schema: USER_SCHEMA_URN, attribute: 'userName' }],
  ['USERNAME', 'User', { schema: USER_SCHEMA_URN, attribute: 'userName' }],
  ['name.givenname', 'User', { attribute: 'name', subAttribute: 'givenName' }],
  [`${USER_SCHEMA_URN}:name.givenName`, 'User', { schema: USER_SCHEMA_URN, attribute: 'name', subAttribute: 'givenName' }],
  [`${USER_SCHEMA_URN.toLowerCase()}:USERNAME`, 'User', { schema: USER_SCHEMA_URN, attribute: 'userName' }],
  [`${ENTERPRISE_USER_URN}:manager.value`, 'User', { schema: ENTERPRISE_USER_URN, attribute: 'manager', subAttribute: 'value' }],
  [`${ENTERPRISE_USER_URN}:employeeNumber`, 'User', { schema: ENTERPRISE_USER_URN, attribute: 'employeeNumber' }],
  ['meta.lastModified', 'User', { schema: USER_SCHEMA_URN, attribute: 'meta', subAttribute: 'lastModified' }],
  ['id', 'User', { attribute: 'id' }],
  ['EXTERNALID', 'Group', { schema: GROUP_SCHEMA_URN, attribute: 'externalId' }],
  [`${USER_SCHEMA_URN}:externalId`, 'User', { attribute: 'externalId' }],
  ['members.$ref', 'Group', { attribute: 'members', subAttribute: '$ref' }],
  ['members.VALUE', 'Group', { attribute: 'members', subAttribute: 'value' }],
  [`${GROUP_SCHEMA_URN}:displayName`, 'Group', { schema: GROUP_SCHEMA_URN, attribute: 'displayName' }],
];

describe('parseAttributePath', () => {
  it.each(pathCases)('%s (%s)', (text, rt, expected) => {
    const path = parseAttributePath(text, rt);
    expect(path).toMatchObject(expected);
    expect(path.def.name).toBe(path.attribute);
    if (path.subAttribute !== undefined) expect(path.subDef?.name).toBe(path.subAttribute);
  });

  it.each([
    ['', 'User'],
    ['nosuch', 'User'],
    ['name.nosuch', 'User'],
    ['userName.x', 'User'],
    ['name.givenName.x', 'User'],
    ['members', 'User'],
    ['userName', 'Group'],
    [`${ENTERPRISE_USER_URN}:userName`, 'User'],
    [`${ENTERPRISE_USER_URN}:employeeNumber`, 'Group'],
    [ENTERPRISE_USER_URN, 'User'],
    [USER_SCHEMA_URN, 'User'],
    ['urn:x:y', 'User'],
    ['employeeNumber', 'User'],
    ['__proto__', 'User'],
    ['constructor', 'User'],
    ['prototype', 'User'],
    ['name.__proto__', 'User'],
    ['name.constructor', 'User'],
    ['valueOf', 'User'],
    ['__PROTO__', 'User'],
    ['user name', 'User'],
    ['emails[type eq "x"]', 'User'],
    ['x'.repeat(600), 'User'],
  ] as const)('%s (%s) is refused', (text, rt) => {
    let caught: unknown;
    try {
      parseAttributePath(text, rt);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(AttributePathError);
    expect(caught).toBeInstanceOf(ScimError);
    expect((caught as ScimError).status).toBe(400);
    expect((caught as ScimError).scimType).toBe('invalidPath');
  });

  it('the caller chooses the scimType', () => {
    expect(() => parseAttributePath('nosuch', 'User', { scimType: 'invalidFilter' })).toThrow(
      expect.objectContaining({ scimType: 'invalidFilter' }) as unknown as Error,
    );
  });
});
