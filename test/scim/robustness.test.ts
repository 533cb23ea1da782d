// Hostile and random input over real HTTP against both stores: prototype pollution (D30), internal
// errors that must not leak, and a bounded fuzz run that checks every reply's shape and that the
// directory stays consistent.
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ENTERPRISE_URN,
  GROUP_URN,
  LIST_URN,
  PATCH_OP,
  SCIM_CT,
  STORE_KINDS,
  USER_URN,
  assertScimError,
  scimClient,
  startScimServer,
} from '../helpers/scim-server.js';
import type { ScimReply, ScimTestServer } from '../helpers/scim-server.js';
import type { DirectoryStore } from '../../scim/store/port.js';

const q = (filter: string): string => `filter=${encodeURIComponent(filter)}`;
const prototypeKeys = (): string[] => Object.getOwnPropertyNames(Object.prototype).sort();
const polluted = (): unknown => (({}) as Record<string, unknown>).polluted;

/** A store that fails like a broken database would, for one poisoned id, with text that must not leak. */
function failingStore(store: DirectoryStore): DirectoryStore {
  return new Proxy(store, {
    get(target, prop) {
      if (prop === 'getUser') {
        return async (id: string) => {
          if (id === 'explode') throw new Error('SECRET-INTERNAL relation "scim_users" at /srv/rolegate/db.ts:42');
          return target.getUser(id);
        };
      }
      const v: unknown = Reflect.get(target, prop, target);
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
}

describe.each(STORE_KINDS)('robustness (%s store)', (kind) => {
  let srv: ScimTestServer;
  let call: ReturnType<typeof scimClient>;
  const protoBefore = prototypeKeys();
  beforeAll(async () => {
    srv = await startScimServer({ kind, wrapStore: failingStore });
    call = scimClient(srv);
  });
  afterAll(async () => {
    await srv?.close();
  });

  describe('prototype pollution (D30)', () => {
    it('POST and PUT bodies with __proto__ / constructor keys never reach Object.prototype', async () => {
      const raw = `{"schemas":["${USER_URN}"],"userName":"proto1@example.com","__proto__":{"polluted":"yes"},"constructor":{"prototype":{"polluted":"yes"}},"name":{"__proto__":{"polluted":"yes"},"givenName":"P"},"emails":[{"__proto__":{"polluted":"yes"},"value":"p@example.com"}],"${ENTERPRISE_URN}":{"__proto__":{"polluted":"yes"},"employeeNumber":"1"}}`;
      const r = await call('POST', '/Users', { raw });
      expect([201, 400]).toContain(r.status);
      expect(r.text).not.toContain('polluted');
      expect(polluted()).toBeUndefined();
      if (r.status === 201) {
        const put = await call('PUT', `/Users/${r.json.id}`, { raw });
        expect([200, 400]).toContain(put.status);
        expect(put.text).not.toContain('polluted');
      }
      const g = await call('POST', '/Groups', { raw: `{"schemas":["${GROUP_URN}"],"displayName":"proto group","__proto__":{"polluted":"yes"},"members":[{"__proto__":{"polluted":"yes"}}]}` });
      expect([201, 400]).toContain(g.status);
      expect(polluted()).toBeUndefined();
    });

    it('PATCH paths and value keys naming prototype properties are 400 invalidPath', async () => {
      const u = (await call('POST', '/Users', { body: { schemas: [USER_URN], userName: 'proto2@example.com', name: { givenName: 'G' } } })).json;
      const before = (await call('GET', `/Users/${u.id}`)).json;
      for (const path of ['__proto__', '__proto__.polluted', 'constructor', 'constructor.prototype.polluted', 'prototype', 'name.__proto__', 'toString', 'hasOwnProperty', '__PROTO__', `${ENTERPRISE_URN}:__proto__`]) {
        for (const op of ['add', 'replace', 'remove']) {
          const r = await call('PATCH', `/Users/${u.id}`, { body: { schemas: [PATCH_OP], Operations: [{ op, path, value: { polluted: 'yes' } }] } });
          assertScimError(r, 400, 'invalidPath');
        }
      }
      for (const value of ['{"__proto__":{"polluted":"yes"}}', '{"constructor":{"prototype":{"polluted":"yes"}}}', '{"toString":"x"}', '{"name.__proto__":"x"}']) {
        const raw = `{"schemas":["${PATCH_OP}"],"Operations":[{"op":"replace","value":${value}}]}`;
        assertScimError(await call('PATCH', `/Users/${u.id}`, { raw }), 400, 'invalidPath');
      }
      for (const value of ['{"name":{"__proto__":{"polluted":"yes"}}}', `{"${ENTERPRISE_URN}":{"constructor":{"prototype":{"polluted":"yes"}}}}`]) {
        const raw = `{"schemas":["${PATCH_OP}"],"Operations":[{"op":"add","value":${value}}]}`;
        const r = await call('PATCH', `/Users/${u.id}`, { raw });
        expect([200, 400]).toContain(r.status);
        expect(r.text).not.toContain('polluted');
      }
      expect((await call('GET', `/Users/${u.id}`)).json).toEqual(before);
      expect(polluted()).toBeUndefined();
    });

    it('filters and projections naming prototype properties are refused or ignored, never 500', async () => {
      for (const filter of ['__proto__ eq "x"', 'constructor pr', 'toString eq "x"', 'name.__proto__ eq "x"', 'emails[__proto__ eq "x"]', 'hasOwnProperty pr']) {
        assertScimError(await call('GET', `/Users?${q(filter)}`), 400, 'invalidFilter');
      }
      for (const p of ['attributes=__proto__', 'excludedAttributes=constructor', 'attributes=name.__proto__,toString', '__proto__[polluted]=1', 'constructor[prototype][polluted]=1']) {
        const r = await call('GET', `/Users?${p}`);
        expect([200, 400]).toContain(r.status);
        expect(r.headers.get('content-type')).toBe(SCIM_CT);
      }
      for (const path of ['/Users/__proto__', '/Groups/constructor', '/Schemas/__proto__', '/ResourceTypes/constructor', '/ResourceTypes/toString']) {
        assertScimError(await call('GET', path), 404);
      }
      expect(polluted()).toBeUndefined();
    });
  });

  it('an internal failure is a generic 500 that leaks nothing, logged for the operator', async () => {
    const before = srv.logged.length;
    const r = await call('GET', '/Users/explode');
    assertScimError(r, 500);
    expect(r.json.detail).toBe('Internal server error');
    expect(r.text).not.toMatch(/SECRET|scim_users|\/srv|db\.ts/);
    expect(srv.logged.length).toBe(before + 1);
    expect(String(srv.logged.at(-1))).toContain('SECRET-INTERNAL');
  });

  it('fuzz: random requests never get a 500 or HTML and leave the directory consistent', async () => {
    const seedUsers: string[] = [];
    for (let i = 0; i < 10; i++) seedUsers.push((await call('POST', '/Users', { body: { schemas: [USER_URN], userName: `seed-${i}@example.com`, emails: [{ value: `seed-${i}@work.example`, type: 'work' }] } })).json.id);
    const seedGroup = (await call('POST', '/Groups', { body: { schemas: [GROUP_URN], displayName: 'seed group', members: [{ value: seedUsers[0] }] } })).json.id as string;
    const seedGroup2 = (await call('POST', '/Groups', { body: { schemas: [GROUP_URN], displayName: 'seed group 2', members: [{ value: seedUsers[1] }, { value: seedUsers[2] }] } })).json.id as string;
    const loggedBefore = srv.logged.length;

    const id = fc.oneof(fc.constantFrom(...seedUsers, seedGroup, seedGroup2), fc.string({ maxLength: 40 }));
    const userAttr = fc.constantFrom(
      'userName', 'displayName', 'emails', 'emails.value', 'emails[type eq "work"].value', 'active', 'meta.lastModified', 'externalId', 'id',
      'name.givenName', 'title', 'groups.value', `${USER_URN}:userName`, `${ENTERPRISE_URN}:employeeNumber`, 'emails[value sw "seed"]',
    );
    const groupAttr = fc.constantFrom('displayName', 'members', 'members.value', 'externalId', 'id', 'meta.created');
    const hostileAttr = fc.constantFrom('__proto__', 'constructor', 'toString', 'password', 'x', 'name', `${ENTERPRISE_URN}:manager.value`, 'members[value eq "x"]');
    const attrName = fc.oneof({ weight: 6, arbitrary: userAttr }, { weight: 3, arbitrary: groupAttr }, { weight: 1, arbitrary: hostileAttr });
    const text = fc.oneof(fc.constantFrom('seed-1@example.com', 'seed', 'example', 'work', '2020-01-01T00:00:00Z', 'SEED-2@EXAMPLE.COM', ''), fc.string({ maxLength: 8 }));
    const filterValue = fc.oneof(
      { weight: 8, arbitrary: text.map((v) => JSON.stringify(v)) },
      { weight: 2, arbitrary: fc.constantFrom('true', 'false', 'null', '1', '-2.5e3') },
      { weight: 1, arbitrary: fc.string({ maxLength: 6 }) },
    );
    const compareOp = fc.oneof({ weight: 9, arbitrary: fc.constantFrom('eq', 'ne', 'co', 'sw', 'ew', 'gt', 'ge', 'lt', 'le', 'EQ', 'Sw', 'pr') }, { weight: 1, arbitrary: fc.constant('zz') });
    const atom = fc.tuple(attrName, compareOp, filterValue).map(([a, o, v]) => (o === 'pr' ? `${a} pr` : `${a} ${o} ${v}`));
    const { filter } = fc.letrec<{ filter: string }>((tie) => ({
      filter: fc.oneof(
        { depthSize: 'small', withCrossShrink: true },
        { weight: 5, arbitrary: atom },
        { weight: 2, arbitrary: fc.tuple(tie('filter'), fc.constantFrom('and', 'or', 'AND'), tie('filter')).map(([a, o, b]) => `${a} ${o} ${b}`) },
        { weight: 1, arbitrary: tie('filter').map((x) => `not (${x})`) },
        { weight: 1, arbitrary: tie('filter').map((x) => `(${x})`) },
        { weight: 1, arbitrary: fc.string({ maxLength: 30 }) },
      ),
    }));
    const memberId = fc.oneof({ weight: 5, arbitrary: fc.constantFrom(...seedUsers) }, { weight: 1, arbitrary: id });
    const memberValue = fc.array(fc.record({ value: memberId, type: fc.constantFrom('User', 'Group', undefined, 7) }, { requiredKeys: ['value'] }), { maxLength: 3 });
    const anyValue = fc.oneof(fc.jsonValue({ maxDepth: 3 }), memberValue, fc.constantFrom('False', 'true', '', { active: false }, { 'name.givenName': 'Z' }));
    const setOp = fc.constantFrom('add', 'replace', 'Add', 'Replace');
    const removeOp = fc.constantFrom('remove', 'Remove');
    const userOp = fc.oneof(
      fc.record({ op: setOp, path: fc.constantFrom('title', 'displayName', 'nickName', 'externalId', 'name.givenName', `${ENTERPRISE_URN}:department`), value: fc.oneof(text, fc.constant(null)) }),
      fc.record({ op: setOp, path: fc.constant('active'), value: fc.constantFrom(true, false, 'False', 'TRUE', 'nope') }),
      fc.record({ op: setOp, path: fc.constantFrom('emails', 'phoneNumbers'), value: fc.array(fc.record({ value: text, type: fc.constantFrom('work', 'home') }), { maxLength: 2 }) }),
      fc.record({ op: setOp, path: fc.constant('emails[type eq "work"].value'), value: text }),
      fc.record({ op: removeOp, path: fc.constantFrom('title', 'emails', 'name.givenName', 'emails[type eq "home"]') }),
      fc.record({ op: setOp, value: fc.oneof(fc.constant({ active: false }), text.map((v) => ({ 'name.givenName': v, title: v }))) }),
    );
    const groupOp = fc.oneof(
      fc.record({ op: setOp, path: fc.constantFrom('displayName', 'externalId'), value: fc.oneof(text, fc.constant(null)) }),
      fc.record({ op: setOp, path: fc.constant('members'), value: memberValue }),
      fc.record({ op: removeOp, path: memberId.map((u) => `members[value eq "${u}"]`) }),
      fc.record({ op: removeOp, path: fc.constant('members'), value: memberValue }),
      fc.record({ op: removeOp, path: fc.constantFrom('members', 'externalId') }),
      fc.record({ op: setOp, value: text.map((v) => ({ displayName: v })) }),
    );
    const randomOp = fc.record(
      {
        op: fc.constantFrom('add', 'replace', 'remove', 'Add', 'Replace', 'Remove', 'copy', 7),
        path: fc.oneof(attrName, fc.string({ maxLength: 20 })),
        value: anyValue,
      },
      { requiredKeys: ['op'] },
    );
    const patchOf = (plausible: fc.Arbitrary<unknown>) =>
      fc.record({ schemas: fc.constant([PATCH_OP]), Operations: fc.array(fc.oneof({ weight: 6, arbitrary: plausible }, { weight: 1, arbitrary: randomOp }), { minLength: 1, maxLength: 3 }) });
    const patchBody = fc.oneof(patchOf(userOp), patchOf(groupOp));
    const scimBody = fc.oneof(
      patchBody,
      fc.dictionary(fc.oneof(attrName, fc.string({ maxLength: 10 })), anyValue, { maxKeys: 4 }).map((d) => ({ schemas: [USER_URN], ...d, userName: `fuzz-${Math.random()}@example.com` })),
      fc.dictionary(fc.oneof(attrName, fc.string({ maxLength: 10 })), anyValue, { maxKeys: 4 }).map((d) => ({ schemas: [USER_URN], userName: `fuzz-${Math.random()}@example.com`, ...d })),
      fc.record({ schemas: fc.constant([GROUP_URN]), displayName: text, members: memberValue }),
      fc.jsonValue({ maxDepth: 4 }),
    );
    const body = fc.oneof(scimBody.map((b) => JSON.stringify(b)), fc.string({ maxLength: 60 }), fc.constant(undefined));
    const segment = fc.string({ maxLength: 12 }).map((s) => encodeURIComponent(s).replace(/^\.{1,2}$/, 'dot'));
    const path = fc.oneof(
      fc.constantFrom('/Users', '/Groups', '/ServiceProviderConfig', '/Schemas', '/ResourceTypes', '/ResourceTypes/User', `/Schemas/${USER_URN}`, '/Bulk', '/Me', '/.search', '/'),
      id.map((x) => `/Users/${encodeURIComponent(x)}`),
      id.map((x) => `/Groups/${encodeURIComponent(x)}`),
      fc.array(segment, { minLength: 1, maxLength: 3 }).map((s) => `/${s.join('/')}`),
    );
    const qs = (r: Record<string, string>): string => new URLSearchParams(r).toString();
    const projection = fc.record({ attributes: attrName, excludedAttributes: attrName }, { requiredKeys: [] }).map(qs);
    const paging = fc.record({ startIndex: fc.integer({ min: -2, max: 12 }).map(String), count: fc.integer({ min: -1, max: 12 }).map(String) }, { requiredKeys: [] }).map(qs);
    const query = fc
      .record(
        {
          filter,
          attributes: fc.oneof(attrName, fc.string({ maxLength: 10 })),
          excludedAttributes: fc.oneof(attrName, fc.string({ maxLength: 10 })),
          startIndex: fc.oneof(fc.integer({ min: -5, max: 20 }).map(String), fc.string({ maxLength: 4 })),
          count: fc.oneof(fc.integer({ min: -5, max: 20 }).map(String), fc.string({ maxLength: 4 })),
        },
        { requiredKeys: [] },
      )
      .map(qs);
    const method = fc.constantFrom('GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'HEAD', 'OPTIONS', 'PROPFIND');
    const contentType = fc.constantFrom(null, 'application/scim+json', 'application/json; charset=utf-8', 'text/plain', 'application/xml', 'application/x-www-form-urlencoded');

    const check = (r: ScimReply, label: string): void => {
      expect(r.status < 500 || r.status === 501, `${label} -> ${r.status} ${r.text}`).toBe(true);
      expect(r.text, label).not.toMatch(/<html|<!doctype|<pre>/i);
      if (r.status === 204 || label.startsWith('HEAD')) return;
      expect(r.headers.get('content-type'), label).toBe(SCIM_CT);
      expect(Array.isArray(r.json?.schemas), `${label} -> ${r.text}`).toBe(true);
      if (r.status >= 400) assertScimError(r, r.status);
      else if (r.json.schemas[0] === LIST_URN) expect(typeof r.json.totalResults).toBe('number');
    };

    // Most requests are well-formed enough to reach the service (lists with filters, PATCH and PUT of
    // existing resources, creates); the rest are random method/path/type/body combinations.
    const jsonType = fc.constantFrom<string | null>('application/scim+json', 'application/json; charset=utf-8', null);
    const userPath = fc.constantFrom(...seedUsers.slice(3).map((u) => `/Users/${u}`));
    const groupPath = fc.constantFrom(`/Groups/${seedGroup}`, `/Groups/${seedGroup2}`);
    const seedPath = fc.oneof(userPath, groupPath);
    type Req = { m: string; p: string; qs: string; ct: string | null; b: string | undefined };
    const listReq = fc.record({
      m: fc.constant('GET'),
      p: fc.constantFrom('/Users', '/Groups'),
      qs: fc.tuple(filter, paging, projection).map(([f, pg, pr]) => [qs({ filter: f }), pg, pr].filter((x) => x !== '').join('&')),
      ct: fc.constant(null),
      b: fc.constant(undefined),
    });
    const patchReq = fc.oneof(
      fc.record({ m: fc.constant('PATCH'), p: userPath, qs: projection, ct: jsonType, b: patchOf(userOp).map((x) => JSON.stringify(x)) }),
      fc.record({ m: fc.constant('PATCH'), p: groupPath, qs: projection, ct: jsonType, b: patchOf(groupOp).map((x) => JSON.stringify(x)) }),
    );
    const postReq = fc.record({ m: fc.constant('POST'), p: fc.constantFrom('/Users', '/Groups'), qs: projection, ct: jsonType, b: scimBody.map((x) => JSON.stringify(x)) });
    const putReq = fc.record({ m: fc.constant('PUT'), p: seedPath, qs: projection, ct: jsonType, b: scimBody.map((x) => JSON.stringify(x)) });
    const randomReq = fc.record({ m: method, p: path, qs: query, ct: contentType, b: body });
    const anyReq: fc.Arbitrary<Req> = fc.oneof(
      { arbitrary: listReq, weight: 4 },
      { arbitrary: patchReq, weight: 4 },
      { arbitrary: postReq, weight: 2 },
      { arbitrary: putReq, weight: 1 },
      { arbitrary: randomReq, weight: 3 },
    );

    await fc.assert(
      fc.asyncProperty(anyReq, async ({ m, p, qs, ct, b }) => {
        const hasBody = m !== 'GET' && m !== 'HEAD' && b !== undefined;
        const r = await call(m, `${p}${qs ? `?${qs}` : ''}`, hasBody ? { raw: b, contentType: ct } : {});
        check(r, `${m} ${p}?${qs} [${ct}] ${hasBody ? b : ''}`);
      }),
      { numRuns: 300, seed: kind === 'sqlite' ? 424242 : 171717 },
    );

    expect(srv.logged.slice(loggedBefore)).toEqual([]);
    expect(polluted()).toBeUndefined();
    expect(prototypeKeys()).toEqual(protoBefore);
    // The directory is consistent: memberships only between existing users and groups, and the
    // SCIM views agree with the store.
    const snap = await srv.store.snapshot();
    const users = new Set(snap.users.map((u) => u.id));
    const groups = new Set(snap.groups.map((g) => g.id));
    for (const m of snap.memberships) {
      expect(users.has(m.userId)).toBe(true);
      expect(groups.has(m.groupId)).toBe(true);
    }
    const allUsers = await call('GET', '/Users?count=1000');
    expect(allUsers.json.totalResults).toBe(snap.users.length);
    const allGroups = await call('GET', '/Groups?count=1000');
    expect(allGroups.json.totalResults).toBe(snap.groups.length);
    const viaGroups = new Set<string>();
    for (const g of allGroups.json.Resources) for (const mem of g.members ?? []) viaGroups.add(`${g.id}/${mem.value}`);
    const viaUsers = new Set<string>();
    for (const u of allUsers.json.Resources) for (const grp of u.groups ?? []) viaUsers.add(`${grp.value}/${u.id}`);
    expect([...viaUsers].sort()).toEqual([...viaGroups].sort());
    expect(viaGroups.size).toBe(snap.memberships.length);
  }, 120_000);
});
