import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ScimError } from '../../scim/errors.js';
import { matchesFilter } from '../../scim/filter/evaluate.js';
import { parseFilter } from '../../scim/filter/parse.js';
import { filterNeeds, indexKeyOf } from '../../scim/filter/plan.js';
import type { ScimAttributes } from '../../scim/model.js';
import { applyPatch, PATCH_OP_URN } from '../../scim/patch.js';
import { parseGroupBody, parseProjection, parseUserBody, project, renderGroup, renderUser } from '../../scim/resource.js';
import { ENTERPRISE_USER_URN as ENT } from '../../scim/schema.js';
import { BASE_URL, deepFreeze, group, user } from './fixtures.js';

/** Runs `fn`; a ScimError is an accepted outcome, anything else thrown fails the property. */
function scimOnly<T>(fn: () => T): T | ScimError {
  try {
    return fn();
  } catch (err) {
    if (err instanceof ScimError) {
      expect(err.status).toBe(400);
      expect(err.detail.length).toBeGreaterThan(0);
      return err;
    }
    throw err;
  }
}

/** No JSON null and no empty string anywhere (D28), and only plain objects. */
function assertClean(value: unknown): void {
  expect(value).not.toBeNull();
  expect(value).not.toBe('');
  if (Array.isArray(value)) value.forEach(assertClean);
  else if (typeof value === 'object' && value !== null) {
    expect(Object.getPrototypeOf(value)).toBe(Object.prototype);
    Object.values(value).forEach(assertClean);
  }
}

function assertUnpolluted(): void {
  expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  expect(Object.keys(Object.prototype)).toEqual([]);
}

const FILTER_WORDS = [
  'userName', 'USERNAME', 'emails', 'emails.value', 'emails.type', 'name.givenName', 'active', 'meta.lastModified',
  'members', 'displayName', 'id', 'externalId', 'password', 'groups', `${ENT}:employeeNumber`, `${ENT}:manager.value`,
  'nosuch', '__proto__', 'eq', 'ne', 'co', 'sw', 'ew', 'gt', 'ge', 'lt', 'le', 'pr', 'and', 'or', 'not', '(', ')', '[', ']',
  '].value', '"x"', '"Bob.Smith@Example.com"', '"2024-01-01T00:00:00Z"', 'true', 'false', 'null', '42', '-1.5e3', 'bob',
  '"unterminated', '"\\u0041"', '"\\q"',
];

const tokenFilter = fc.array(fc.constantFrom(...FILTER_WORDS), { maxLength: 14 }).map((ws) => ws.join(' '));
const gluedFilter = fc.array(fc.constantFrom(...FILTER_WORDS), { maxLength: 14 }).map((ws) => ws.join(''));

const ATTRS = {
  User: ['userName', 'USERNAME', 'displayName', 'title', 'externalId', 'id', 'active', 'emails', 'emails.value', 'emails.type', 'emails.primary', 'name.givenName', 'name', 'meta.lastModified', 'meta.created', 'groups', 'groups.display', 'x509Certificates.value', `${ENT}:employeeNumber`, `${ENT}:manager`, `${ENT}:manager.value`],
  Group: ['displayName', 'externalId', 'id', 'members', 'members.value', 'members.display', 'members.type', 'meta.lastModified'],
} as const;

const literalArb = fc.oneof(
  fc.string({ maxLength: 8 }).map((s) => JSON.stringify(s)),
  fc.constantFrom('"Bob.Smith@Example.com"', '"u-1"', '"work"', '"2024-01-01T00:00:00Z"', '"Analysts"', 'true', 'false', 'null', '42', '"bob@home.example"'),
);

/** Mostly well-formed filters: random paths, operators and literals, nested with and/or/not/()/value paths. */
function grammarFilter(rt: 'User' | 'Group'): fc.Arbitrary<string> {
  const attr = fc.constantFrom(...ATTRS[rt]);
  const sub = fc.constantFrom('value', 'type', 'display', 'primary');
  const op = fc.constantFrom('eq', 'NE', 'co', 'sw', 'ew', 'gt', 'ge', 'lt', 'Le');
  const leaf = fc.oneof(
    fc.tuple(attr, op, literalArb).map(([a, o, v]) => `${a} ${o} ${v}`),
    attr.map((a) => `${a} pr`),
    fc.tuple(fc.constantFrom(rt === 'User' ? 'emails' : 'members'), sub, op, literalArb).map(([a, s, o, v]) => `${a}[${s} ${o} ${v}]`),
    fc.tuple(sub, op, literalArb, sub, literalArb).map(([s, o, v, s2, v2]) => `${rt === 'User' ? 'emails' : 'members'}[${s} ${o} ${v}].${s2} eq ${v2}`),
  );
  return fc.letrec<{ f: string }>((tie) => ({
    f: fc.oneof(
      { depthSize: 'small', withCrossShrink: true },
      leaf,
      fc.tuple(tie('f'), fc.constantFrom('and', 'or', 'AND', 'Or'), tie('f')).map(([a, k, b]) => `${a} ${k} ${b}`),
      tie('f').map((a) => `(${a})`),
      tie('f').map((a) => `not (${a})`),
    ),
  })).f;
}

function checkFilter(text: string, rt: 'User' | 'Group'): boolean {
  const node = scimOnly(() => parseFilter(text, rt));
  if (node instanceof ScimError) {
    expect(node.scimType).toBe('invalidFilter');
    return false;
  }
  // Evaluation never throws, whatever the resource looks like.
  matchesFilter(node, rt === 'User' ? user : group);
  matchesFilter(node, {});
  matchesFilter(node, { emails: 'x', name: [1], meta: null, members: [null, 3], groups: {}, [ENT]: 5, userName: 7, active: 'true' });
  indexKeyOf(node, rt);
  filterNeeds(node, rt);
  return true;
}

describe('filters: arbitrary input only ever yields a filter or a 400', () => {
  for (const [name, arb] of [
    ['random strings', fc.string({ maxLength: 200 })],
    ['random unicode', fc.string({ unit: 'grapheme', maxLength: 100 })],
    ['token soup', tokenFilter],
    ['glued token soup', gluedFilter],
  ] as const) {
    it(name, () => {
      fc.assert(
        fc.property(arb, fc.constantFrom('User' as const, 'Group' as const), (text, rt) => {
          checkFilter(text, rt);
        }),
        { numRuns: 300 },
      );
    });
  }

  it.each(['User', 'Group'] as const)('grammar-generated %s filters (mostly valid)', (rt) => {
    let valid = 0;
    fc.assert(
      fc.property(grammarFilter(rt), (text) => {
        if (checkFilter(text, rt)) valid++;
      }),
      { numRuns: 800 },
    );
    // The generator must reach the evaluator, not just the error paths.
    expect(valid).toBeGreaterThan(100);
  });
});

// Small alphabets so that generated filters actually hit generated users.
const nameArb = fc.constantFrom('ann', 'ANN', 'Ann', 'bob', 'Bob', 'cy');
const emailArb = fc.constantFrom('a@x', 'A@X', 'b@x', 'c@y');

const userArb = fc.record({
  id: fc.constantFrom('u-1', 'U-1', 'u-2'),
  userName: nameArb,
  externalId: fc.option(fc.constantFrom('e1', 'E1', 'e2'), { nil: undefined }),
  active: fc.boolean(),
  emails: fc.array(fc.record({ value: emailArb, type: fc.constantFrom('work', 'home') }), { maxLength: 3 }),
});

const leafArb = fc.oneof(
  nameArb.map((v) => `userName eq "${v}"`),
  fc.constantFrom('u-1', 'U-1', 'u-2').map((v) => `id eq "${v}"`),
  fc.constantFrom('e1', 'E1', 'e2').map((v) => `externalId eq "${v}"`),
  emailArb.map((v) => `emails.value eq "${v}"`),
  emailArb.map((v) => `emails eq "${v}"`),
  emailArb.map((v) => `emails[value eq "${v}"]`),
  fc.tuple(fc.constantFrom('work', 'home'), emailArb).map(([t, v]) => `emails[type eq "${t}"].value eq "${v}"`),
  fc.constantFrom('active eq true', 'active eq false', 'emails pr', 'externalId pr', 'userName sw "a"'),
);

const filterTextArb: fc.Arbitrary<string> = fc.letrec<{ f: string }>((tie) => ({
  f: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    leafArb,
    fc.tuple(tie('f'), tie('f')).map(([a, b]) => `${a} and ${b}`),
    fc.tuple(tie('f'), tie('f')).map(([a, b]) => `(${a} or ${b})`),
    tie('f').map((a) => `not (${a})`),
  ),
})).f;

describe('indexKeyOf never excludes a true match', () => {
  it('for every generated filter and user: a match satisfies the key (with the store\'s case rules)', () => {
    fc.assert(
      fc.property(filterTextArb, userArb, (text, u) => {
        const node = parseFilter(text, 'User');
        const { id, ...attributes } = u;
        const rendered = renderUser({ id, created: 'c', lastModified: 'm', attributes }, [], BASE_URL);
        if (!matchesFilter(node, rendered)) return;
        const key = indexKeyOf(node, 'User');
        if (key === undefined) return;
        const lower = key.value.toLowerCase();
        switch (key.attr) {
          case 'id':
            expect(u.id).toBe(key.value);
            break;
          case 'userName':
            expect(u.userName.toLowerCase()).toBe(lower);
            break;
          case 'externalId':
            expect(u.externalId).toBe(key.value);
            break;
          case 'emails.value':
            expect(u.emails.some((e) => e.value.toLowerCase() === lower)).toBe(true);
            break;
          default:
            throw new Error(`unexpected key ${key.attr}`);
        }
      }),
      { numRuns: 1000 },
    );
  });

  it('for groups: members keys are exact', () => {
    fc.assert(
      fc.property(
        fc.array(fc.constantFrom('u-1', 'U-1', 'u-2'), { maxLength: 3 }),
        fc.constantFrom('u-1', 'U-1', 'u-2'),
        (members, probe) => {
          const rendered = renderGroup({ id: 'g', created: 'c', lastModified: 'm', attributes: { displayName: 'G' }, members: [...new Set(members)].map((value) => ({ value })) }, BASE_URL);
          const node = parseFilter(`members eq "${probe}" and displayName pr`, 'Group');
          const key = indexKeyOf(node, 'Group');
          expect(key).toEqual({ attr: 'members.value', value: probe });
          expect(matchesFilter(node, rendered)).toBe(members.includes(probe));
        },
      ),
    );
  });
});

const PATHS = [
  'userName', 'active', 'displayName', 'title', 'name', 'name.givenName', 'emails', 'emails.value', 'emails[type eq "work"]',
  'emails[type eq "work"].value', 'emails[value co "x"].primary', 'members', 'members[value eq "u-1"]', 'members[value eq "u-1"].display',
  'externalId', 'id', 'meta', 'groups', 'password', ENT, `${ENT}:manager`, `${ENT}:manager.value`, `${ENT}:employeeNumber`,
  '__proto__', 'constructor.prototype', 'name.__proto__', 'nosuch', 'emails[', 'emails[type eq work]', '',
];

const jsonish = fc.oneof(
  fc.jsonValue({ maxDepth: 3 }),
  fc.constantFrom('True', 'false', '', null, 'u-1', { value: 'u-9' }, [{ value: 'u-1' }, { value: 'u-3', type: 'Group' }]),
  fc.dictionary(fc.constantFrom('value', 'type', 'display', 'primary', 'givenName', '__proto__', 'constructor', 'name.givenName', 'active', 'displayName', ENT, `${ENT}:department`, 'id', 'members', 'schemas'), fc.jsonValue({ maxDepth: 2 })),
);

const opArb = fc.record(
  {
    op: fc.constantFrom('add', 'Add', 'remove', 'Remove', 'replace', 'REPLACE', 'move', 5),
    path: fc.oneof(fc.constantFrom(...PATHS), fc.string({ maxLength: 30 })),
    value: jsonish,
  },
  { requiredKeys: ['op'] },
);

const VALID_PATHS = {
  User: ['userName', 'active', 'displayName', 'title', 'name', 'name.givenName', 'emails', 'emails[type eq "work"]', 'emails[type eq "work"].value', 'emails[value co "x"].primary', 'emails.primary', 'externalId', 'password', ENT, `${ENT}:manager`, `${ENT}:manager.value`, `${ENT}:employeeNumber`],
  Group: ['displayName', 'externalId', 'members', 'members[value eq "u-1"]', 'members[value eq "u-1"].display', 'members.display', 'members[display co "O"]'],
} as const;

const shapedValue = fc.oneof(
  fc.string({ maxLength: 6 }),
  fc.boolean(),
  fc.constantFrom('True', 'FALSE', '', null, 'u-1'),
  fc.array(fc.record({ value: fc.constantFrom('u-1', 'u-2', 'u-3', 'x@y', 'Z@y'), type: fc.constantFrom('work', 'home', 'User'), primary: fc.boolean() }, { requiredKeys: ['value'] }), { maxLength: 4 }),
  fc.record({ givenName: fc.string({ maxLength: 4 }), value: fc.constantFrom('u-1', 'q'), display: fc.string({ maxLength: 4 }), primary: fc.boolean() }, { requiredKeys: [] }),
  fc.record({ displayName: fc.string({ maxLength: 4 }), active: fc.constantFrom(true, 'False'), 'name.givenName': fc.string({ maxLength: 4 }), [`${ENT}:department`]: fc.string({ maxLength: 4 }), members: fc.constant([{ value: 'u-4' }]) }, { requiredKeys: [] }),
);

function validOpArb(rt: 'User' | 'Group'): fc.Arbitrary<Record<string, unknown>> {
  return fc.oneof(
    fc.record({ op: fc.constantFrom('add', 'Add', 'replace', 'Replace'), path: fc.constantFrom(...VALID_PATHS[rt]), value: shapedValue }),
    fc.record({ op: fc.constantFrom('remove', 'Remove'), path: fc.constantFrom(...VALID_PATHS[rt]), value: fc.option(shapedValue, { nil: undefined }) }, { requiredKeys: ['op', 'path'] }),
    fc.record({ op: fc.constantFrom('add', 'replace'), value: shapedValue.filter((v) => typeof v === 'object' && v !== null && !Array.isArray(v)) }),
  );
}

const patchBodyArb = (rt: 'User' | 'Group'): fc.Arbitrary<unknown> => fc.oneof(
  fc.jsonValue({ maxDepth: 4 }),
  fc.array(validOpArb(rt), { minLength: 1, maxLength: 3 }).map((Operations) => ({ schemas: [PATCH_OP_URN], Operations })),
  fc.array(validOpArb(rt), { minLength: 1, maxLength: 2 }).map((Operations) => ({ Operations })),
  validOpArb(rt).map((op) => ({ schemas: [PATCH_OP_URN], Operations: [op] })),
  fc.array(opArb, { minLength: 1, maxLength: 5 }).map((Operations) => ({ schemas: [PATCH_OP_URN], Operations })),
  fc.array(opArb, { maxLength: 3 }).map((Operations) => ({ Operations })),
);

function currentUser(): ScimAttributes {
  return deepFreeze({
    userName: 'bob',
    active: true,
    name: { givenName: 'B' },
    emails: [{ value: 'x@y', type: 'work', primary: true }],
    [ENT]: { manager: { value: 'm' } },
  });
}

function currentGroup(): ScimAttributes {
  return deepFreeze({ displayName: 'G', members: [{ value: 'u-1', display: 'One' }, { value: 'u-2' }] });
}

describe('PATCH: arbitrary bodies only ever yield a result or a 400', () => {
  it.each(['User', 'Group'] as const)('%s', (rt) => {
    let applied = 0;
    fc.assert(
      fc.property(patchBodyArb(rt), (body) => {
        const current = rt === 'User' ? currentUser() : currentGroup();
        const before = JSON.stringify(current);
        const out = scimOnly(() => applyPatch(rt, current, body));
        expect(JSON.stringify(current)).toBe(before);
        assertUnpolluted();
        if (out instanceof ScimError) return;
        applied++;
        assertClean(out.next);
        if (!out.changed) expect(out.next).toEqual(current);
        if (rt === 'User') {
          expect(typeof out.next.userName).toBe('string');
          expect(typeof out.next.active).toBe('boolean');
          expect(out.next).not.toHaveProperty('password');
        } else {
          expect(typeof out.next.displayName).toBe('string');
          const members = out.next.members as unknown[];
          expect(Array.isArray(members)).toBe(true);
          const values = members.map((m) => (m as { value: unknown }).value);
          expect(values.every((v) => typeof v === 'string' && v !== '')).toBe(true);
          expect(new Set(values).size).toBe(values.length);
        }
      }),
      { numRuns: 1500 },
    );
    // The generator must reach the engine, not just the validation errors.
    expect(applied).toBeGreaterThan(250);
  });
});

const BODY_KEYS = [
  'userName', 'USERNAME', 'active', 'name', 'name.givenName', 'emails', 'displayName', 'externalId', 'password', 'groups',
  'id', 'meta', 'schemas', 'members', ENT, `${ENT}:employeeNumber`, `${ENT}:manager`, '__proto__', 'constructor', 'toString', 'nosuch',
];

const bodyArb = fc.oneof(
  fc.jsonValue({ maxDepth: 4 }),
  fc.dictionary(fc.oneof(fc.constantFrom(...BODY_KEYS), fc.string({ maxLength: 12 })), jsonish, { maxKeys: 8 }),
  fc.dictionary(fc.constantFrom(...BODY_KEYS), jsonish, { maxKeys: 8 }).map((o) => ({ ...o, userName: 'u', displayName: 'G' })),
);

describe('POST/PUT bodies: arbitrary input only ever yields attributes or a 400', () => {
  it('users', () => {
    fc.assert(
      fc.property(bodyArb, (body) => {
        const out = scimOnly(() => parseUserBody(body, 'create'));
        assertUnpolluted();
        if (out instanceof ScimError) return;
        assertClean(out);
        expect(typeof out.userName).toBe('string');
        expect(typeof out.active).toBe('boolean');
        for (const key of ['password', 'groups', 'id', 'meta', 'schemas', 'members']) expect(out).not.toHaveProperty(key);
        const rendered = renderUser({ id: 'x', created: 'c', lastModified: 'm', attributes: out }, [], BASE_URL);
        assertClean(rendered);
      }),
      { numRuns: 1500 },
    );
  });

  it('groups', () => {
    fc.assert(
      fc.property(bodyArb, (body) => {
        const out = scimOnly(() => parseGroupBody(body));
        assertUnpolluted();
        if (out instanceof ScimError) return;
        assertClean(out.attributes);
        expect(typeof out.attributes.displayName).toBe('string');
        const values = out.members.map((m) => m.value);
        expect(new Set(values).size).toBe(values.length);
        assertClean(renderGroup({ id: 'g', created: 'c', lastModified: 'm', ...out }, BASE_URL));
      }),
      { numRuns: 1500 },
    );
  });
});

describe('projection: arbitrary lists never throw and always keep id and schemas', () => {
  it('random attribute lists', () => {
    const nameList = fc.array(fc.oneof(fc.constantFrom('userName', 'name.givenName', 'emails.value', 'members', ENT, `${ENT}:manager.value`, 'meta', 'id', '__proto__', 'x.y.z'), fc.string({ maxLength: 10 })), { maxLength: 6 }).map((xs) => xs.join(','));
    fc.assert(
      fc.property(fc.option(nameList, { nil: undefined }), fc.option(nameList, { nil: undefined }), fc.constantFrom('User' as const, 'Group' as const), (attributes, excludedAttributes, rt) => {
        const resource = rt === 'User' ? user : group;
        const out = project(resource, parseProjection({ ...(attributes === undefined ? {} : { attributes }), ...(excludedAttributes === undefined ? {} : { excludedAttributes }) }, rt), rt);
        expect(out.id).toBe(resource.id);
        expect(Array.isArray(out.schemas)).toBe(true);
        assertClean(out);
      }),
      { numRuns: 500 },
    );
  });
});
