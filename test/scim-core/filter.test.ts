import { describe, expect, it } from 'vitest';
import { ScimError } from '../../scim/errors.js';
import { matchesFilter } from '../../scim/filter/evaluate.js';
import { MAX_FILTER_DEPTH, MAX_FILTER_LENGTH, parseFilter } from '../../scim/filter/parse.js';
import { filterNeeds, indexKeyOf } from '../../scim/filter/plan.js';
import { group, user } from './fixtures.js';

const ENT = 'urn:ietf:params:scim:schemas:extension:enterprise:2.0:User';
const CORE = 'urn:ietf:params:scim:schemas:core:2.0:User';

// [filter, matches the fixture user]
const userCases: [string, boolean][] = [
  // eq / ne on case-insensitive strings (userName, displayName, emails.value) and exact ones (id, externalId)
  ['userName eq "bob.smith@example.com"', true],
  ['userName eq "BOB.SMITH@EXAMPLE.COM"', true],
  ['userName eq "bob"', false],
  ['userName ne "bob"', true],
  ['userName ne "BOB.smith@example.com"', false],
  ['externalId eq "Ext-1"', true],
  ['externalId eq "ext-1"', false],
  ['externalId ne "ext-1"', true],
  ['id eq "u-1"', true],
  ['id eq "U-1"', false],
  ['displayName eq "bob smith"', true],
  // co / sw / ew
  ['userName co "SMITH@"', true],
  ['userName co "jones"', false],
  ['userName sw "bob."', true],
  ['userName sw "smith"', false],
  ['userName ew ".COM"', true],
  ['userName ew ".org"', false],
  ['externalId co "xt"', true],
  ['externalId co "XT"', false],
  ['externalId sw "Ext"', true],
  ['externalId ew "-1"', true],
  // gt / ge / lt / le on strings (lexicographic, after case folding when case-insensitive)
  ['title gt "Doctor"', true],
  ['title gt "engineer"', false],
  ['title ge "ENGINEER"', true],
  ['title lt "Fireman"', true],
  ['title le "engineer"', true],
  ['title lt "Engineer"', false],
  ['externalId gt "Ext-0"', true],
  ['externalId lt "ext-0"', true],
  // pr: present and non-empty
  ['title pr', true],
  ['nickName pr', false],
  ['emails pr', true],
  ['phoneNumbers pr', false],
  ['name pr', true],
  ['name.middleName pr', false],
  ['groups pr', true],
  // booleans
  ['active eq true', true],
  ['active eq false', false],
  ['active ne false', true],
  ['active ne true', false],
  ['emails.primary eq true', true],
  // dateTime: instants, not strings
  ['meta.created eq "2024-01-01T00:00:00Z"', true],
  ['meta.created eq "2024-01-01T01:00:00+01:00"', true],
  ['meta.lastModified gt "2024-05-31T23:59:59Z"', true],
  ['meta.lastModified gt "2024-06-01T12:00:00Z"', false],
  ['meta.lastModified ge "2024-06-01T12:00:00.000Z"', true],
  ['meta.lastModified lt "2025-01-01T00:00:00Z"', true],
  ['meta.lastModified le "2024-01-01T00:00:00Z"', false],
  ['meta.created sw "2024-01"', true],
  ['meta.resourceType eq "User"', true],
  ['meta.resourceType eq "user"', false],
  // references and binary
  ['profileUrl eq "https://profiles.example/BOB"', true],
  ['meta.location co "/Users/u-1"', true],
  ['x509Certificates.value eq "MIIBase64=="', true],
  ['x509Certificates.value co "Base"', true],
  // sub-attributes, multi-valued any-match
  ['name.givenName eq "BOB"', true],
  ['emails.value eq "bob@home.example"', true],
  ['emails.value eq "BOB@WORK.EXAMPLE"', true],
  ['emails.type eq "other"', false],
  ['emails.value ne "bob@home.example"', false],
  // D16: complex attribute without sub-attribute compares its value
  ['emails co "home.example"', true],
  ['emails eq "nobody@example.com"', false],
  ['groups eq "g-1"', true],
  ['groups.display eq "ANALYSTS"', true],
  // value paths
  ['emails[type eq "work"]', true],
  ['emails[type eq "other"]', false],
  ['emails[type eq "work" and value co "@work"]', true],
  ['emails[type eq "home" and value co "@work"]', false],
  ['emails[not (type eq "work")]', true],
  ['emails[type eq "work" or type eq "home"]', true],
  ['emails[primary eq true and value ew "WORK.example"]', true],
  // D16: Entra's value path with a trailing sub-attribute comparison (one element must match both)
  ['emails[type eq "work"].value eq "bob@work.example"', true],
  ['emails[type eq "work"].value eq "bob@home.example"', false],
  ['emails[type eq "home"].value pr', true],
  // logic and precedence: not > and > or
  ['userName eq "x" or active eq true', true],
  ['userName eq "x" and active eq true', false],
  ['userName eq "x" and active eq true or title pr', true],
  ['userName eq "x" and (active eq true or title pr)', false],
  ['title pr or userName eq "x" and active eq false', true],
  ['not (userName eq "x")', true],
  ['not userName eq "x" and active eq false', false],
  ['not (userName eq "x" or active eq true)', false],
  ['not not (active eq true)', true],
  ['((((active eq true))))', true],
  // case-insensitive attribute names and operators, URN-qualified paths
  ['USERNAME EQ "bob.smith@example.com"', true],
  ['UserName Sw "BOB" AND Active Eq true', true],
  ['NOT (active EQ false)', true],
  [`${CORE}:userName eq "bob.smith@example.com"`, true],
  [`${CORE}:name.givenName eq "bob"`, true],
  [`${ENT}:employeeNumber eq "42"`, true],
  [`${ENT}:department eq "r&d"`, true],
  [`${ENT}:manager.value eq "m-1"`, true],
  [`${ENT}:manager eq "m-1"`, true],
  [`${ENT.toUpperCase()}:EMPLOYEENUMBER eq "42"`, true],
  [`${ENT}:costCenter pr`, false],
  // null
  ['nickName eq null', true],
  ['title eq null', false],
  ['title ne null', true],
  // escapes in string literals
  ['displayName eq "Bob\\u0020Smith"', true],
  ['displayName eq "Bob \\"Smith\\""', false],
  // whitespace between tokens is free
  ['  userName   eq\t"bob.smith@example.com"  ', true],
  ['emails[ type eq "work" ]', true],
];

const groupCases: [string, boolean][] = [
  ['displayName eq "analysts"', true],
  ['displayName eq "Analyst"', false],
  ['externalId eq "AAD-Group-1"', true],
  ['externalId eq "aad-group-1"', false],
  ['members eq "u-1"', true],
  ['members eq "U-1"', false],
  ['members.value eq "u-2"', true],
  ['members eq "u-3"', false],
  ['members[value eq "u-1"]', true],
  ['members[display co "smith"]', true],
  ['members.type eq "User"', true],
  ['members pr', true],
  ['displayName eq "Analysts" and members eq "u-2"', true],
  ['meta.resourceType eq "Group"', true],
];

describe('parseFilter + matchesFilter (User)', () => {
  it.each(userCases)('%s -> %s', (text, expected) => {
    expect(matchesFilter(parseFilter(text, 'User'), user)).toBe(expected);
  });
});

describe('parseFilter + matchesFilter (Group)', () => {
  it.each(groupCases)('%s -> %s', (text, expected) => {
    expect(matchesFilter(parseFilter(text, 'Group'), group)).toBe(expected);
  });

  it('an empty group has no members', () => {
    const { members: _m, ...empty } = group;
    expect(matchesFilter(parseFilter('members pr', 'Group'), empty)).toBe(false);
    expect(matchesFilter(parseFilter('members eq "u-1"', 'Group'), empty)).toBe(false);
    expect(matchesFilter(parseFilter('members ne "u-1"', 'Group'), empty)).toBe(true);
  });
});

describe('parse tree shape', () => {
  it('binds not > and > or', () => {
    const node = parseFilter('a1 eq "x" or not a2 eq "y" and a3 pr'.replace(/a1/, 'title').replace(/a2/, 'nickName').replace(/a3/, 'locale'), 'User');
    expect(node.kind).toBe('or');
    if (node.kind !== 'or') return;
    expect(node.operands.map((n) => n.kind)).toEqual(['compare', 'and']);
    const and = node.operands[1];
    if (and?.kind !== 'and') throw new Error('expected and');
    expect(and.operands.map((n) => n.kind)).toEqual(['not', 'present']);
  });

  it('returns canonical attribute spelling', () => {
    const node = parseFilter(`${ENT.toLowerCase()}:MANAGER.VALUE eq "m"`, 'User');
    if (node.kind !== 'compare') throw new Error('expected compare');
    expect(node.path).toMatchObject({ schema: ENT, attribute: 'manager', subAttribute: 'value' });
  });
});

// [filter, resource type, fragment of the error detail]
const errorCases: [string, 'User' | 'Group', string][] = [
  ['', 'User', 'empty'],
  ['   ', 'User', 'empty'],
  ['(userName eq "x"', 'User', 'missing ")"'],
  ['userName eq "x")', 'User', 'unexpected ")"'],
  ['((userName eq "x")', 'User', 'missing'],
  ['emails[type eq "work"', 'User', 'missing "]"'],
  ['emails type eq "work"]', 'User', 'operator'],
  ['userName eq "x" and', 'User', 'unexpected end'],
  ['and userName eq "x"', 'User', 'expected an attribute'],
  ['userName eq "x" userName eq "y"', 'User', 'expected "and", "or"'],
  ['userName', 'User', 'unexpected end'],
  ['userName eq', 'User', 'unexpected end'],
  ['userName equals "x"', 'User', 'unknown operator'],
  ['userName eq "unterminated', 'User', 'unterminated'],
  ['userName eq "bad \\q escape"', 'User', 'malformed string'],
  // D15: unknown attributes, password
  ['nosuch eq "x"', 'User', 'Unknown attribute'],
  ['name.nosuch eq "x"', 'User', 'Unknown sub-attribute'],
  ['userName.value eq "x"', 'User', 'no sub-attributes'],
  ['urn:example:custom:2.0:User:thing eq "x"', 'User', 'Unknown schema'],
  ['members eq "x"', 'User', 'Unknown attribute'],
  ['userName eq "x"', 'Group', 'Unknown attribute'],
  ['password eq "secret"', 'User', 'cannot be used in a filter'],
  [`${CORE}:password pr`, 'User', 'cannot be used in a filter'],
  // D30 names
  ['__proto__ eq "x"', 'User', 'not allowed'],
  ['constructor pr', 'User', 'not allowed'],
  ['name.toString eq "x"', 'User', 'not allowed'],
  // unquoted strings are rejected consistently
  ['userName eq bob', 'User', 'must be a quoted string'],
  ['userName eq bob@example.com', 'User', 'must be a quoted string'],
  ['emails[type eq work]', 'User', 'must be a quoted string'],
  // type checks
  ['active gt true', 'User', 'only supports eq and ne'],
  ['active co "tr"', 'User', 'only supports eq and ne'],
  ['active eq "true"', 'User', 'expected true or false'],
  ['userName eq 5', 'User', 'expected a quoted string'],
  ['userName eq true', 'User', 'expected a quoted string'],
  ['userName gt null', 'User', 'null can only be compared'],
  ['meta.created gt "yesterday"', 'User', 'dateTime'],
  ['x509Certificates.value gt "A"', 'User', 'cannot be ordered'],
  ['name eq "Bob"', 'User', 'name a sub-attribute'],
  ['addresses co "x"', 'User', 'name a sub-attribute'],
  ['name gt "x"', 'User', 'name a sub-attribute'],
  // value path misuse
  ['userName[value eq "x"]', 'User', 'needs a complex attribute'],
  ['emails[emails[type eq "x"]]', 'User', 'Unknown sub-attribute'],
  ['emails[type eq "x"].nosuch eq "y"', 'User', 'Unknown sub-attribute'],
  ['emails[nosuch eq "x"]', 'User', 'Unknown sub-attribute'],
];

describe('parseFilter errors are 400 invalidFilter', () => {
  it.each(errorCases)('%s (%s)', (text, rt, fragment) => {
    let caught: unknown;
    try {
      parseFilter(text, rt);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(ScimError);
    const err = caught as ScimError;
    expect(err.status).toBe(400);
    expect(err.scimType).toBe('invalidFilter');
    expect(err.detail).toContain(fragment);
  });

  it('bounds the input length', () => {
    const long = `userName eq "${'x'.repeat(MAX_FILTER_LENGTH)}"`;
    expect(() => parseFilter(long, 'User')).toThrow(/longer than/);
  });

  it('bounds nesting of parentheses and not', () => {
    const depth = MAX_FILTER_DEPTH + 1;
    expect(() => parseFilter(`${'('.repeat(depth)}active eq true${')'.repeat(depth)}`, 'User')).toThrow(/nested deeper/);
    expect(() => parseFilter(`${'not '.repeat(depth)}active eq true`, 'User')).toThrow(/nested deeper/);
    const ok = MAX_FILTER_DEPTH - 1;
    expect(matchesFilter(parseFilter(`${'('.repeat(ok)}active eq true${')'.repeat(ok)}`, 'User'), user)).toBe(true);
  });

  it('deep nesting within the length limit never overflows the stack', () => {
    const text = '('.repeat(MAX_FILTER_LENGTH - 20);
    expect(() => parseFilter(text, 'User')).toThrow(ScimError);
  });

  it('rejects a non-string filter (repeated query parameter)', () => {
    expect(() => parseFilter(['a', 'b'] as unknown as string, 'User')).toThrow(ScimError);
  });

  it('does not echo a long hostile token in full', () => {
    const token = `x${'A'.repeat(500)}`;
    try {
      parseFilter(`${token} eq "1"`, 'User');
      expect.unreachable();
    } catch (err) {
      expect((err as ScimError).detail.length).toBeLessThan(200);
    }
  });
});

// [filter, resource type, expected key]
const keyCases: [string, 'User' | 'Group', unknown][] = [
  ['userName eq "Bob"', 'User', { attr: 'userName', value: 'Bob' }],
  ['id eq "u-1"', 'User', { attr: 'id', value: 'u-1' }],
  ['externalId eq "E"', 'User', { attr: 'externalId', value: 'E' }],
  ['emails.value eq "a@b"', 'User', { attr: 'emails.value', value: 'a@b' }],
  ['emails eq "a@b"', 'User', { attr: 'emails.value', value: 'a@b' }],
  ['emails[value eq "a@b"]', 'User', { attr: 'emails.value', value: 'a@b' }],
  ['emails[type eq "work"].value eq "a@b"', 'User', { attr: 'emails.value', value: 'a@b' }],
  ['emails[type eq "work" and value eq "a@b"]', 'User', { attr: 'emails.value', value: 'a@b' }],
  ['USERNAME EQ "x" and active eq true', 'User', { attr: 'userName', value: 'x' }],
  ['active eq true and (externalId eq "E" and title pr)', 'User', { attr: 'externalId', value: 'E' }],
  ['emails.value eq "a@b" and userName eq "u"', 'User', { attr: 'userName', value: 'u' }],
  ['userName eq "u" and id eq "i"', 'User', { attr: 'id', value: 'i' }],
  ['userName eq "a" or userName eq "b"', 'User', undefined],
  ['not (userName eq "a")', 'User', undefined],
  ['userName ne "a"', 'User', undefined],
  ['userName co "a"', 'User', undefined],
  ['userName eq null', 'User', undefined],
  ['emails[type eq "work"]', 'User', undefined],
  ['emails[value eq "a" or type eq "work"]', 'User', undefined],
  ['displayName eq "x"', 'User', undefined],
  [`${ENT}:employeeNumber eq "1"`, 'User', undefined],
  ['displayName eq "Admins"', 'Group', { attr: 'displayName', value: 'Admins' }],
  ['members eq "u-1"', 'Group', { attr: 'members.value', value: 'u-1' }],
  ['members[value eq "u-1"]', 'Group', { attr: 'members.value', value: 'u-1' }],
  ['externalId eq "x" and displayName eq "y"', 'Group', { attr: 'displayName', value: 'y' }],
  ['id eq "g" and members eq "u"', 'Group', { attr: 'id', value: 'g' }],
  ['members.display eq "x"', 'Group', undefined],
];

describe('indexKeyOf', () => {
  it.each(keyCases)('%s (%s)', (text, rt, expected) => {
    expect(indexKeyOf(parseFilter(text, rt), rt)).toEqual(expected);
  });

  it('never excludes a match: the key holds for every resource the filter matches', () => {
    // The key's case rule is the attribute's: userName and emails.value fold case, ids do not.
    for (const text of ['userName eq "BOB.SMITH@example.COM"', 'emails[type eq "work"].value eq "bob@WORK.example"']) {
      const node = parseFilter(text, 'User');
      expect(matchesFilter(node, user)).toBe(true);
      const key = indexKeyOf(node, 'User');
      expect(key).toBeDefined();
    }
  });
});

describe('filterNeeds', () => {
  it.each([
    ['userName eq "x"', 'User', { members: false, groups: false }],
    ['groups eq "g"', 'User', { members: false, groups: true }],
    ['not (groups[display eq "x"])', 'User', { members: false, groups: true }],
    ['displayName eq "x"', 'Group', { members: false, groups: false }],
    ['displayName eq "x" or members eq "u"', 'Group', { members: true, groups: false }],
    ['members[value eq "u"]', 'Group', { members: true, groups: false }],
  ] as const)('%s (%s)', (text, rt, expected) => {
    expect(filterNeeds(parseFilter(text, rt), rt)).toEqual(expected);
  });
});
