// Users over real HTTP against both stores: CRUD status codes and bodies, uniqueness (D14), PUT
// (D27), PATCH atomicity and no-ops (D11, D28), the lifecycle, filters, projection, pagination (D17).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DirectoryIndex } from '../../scim/directory-index.js';
import {
  ENTERPRISE_URN,
  LIST_URN,
  PATCH_OP,
  SCIM_CT,
  STORE_KINDS,
  USER_URN,
  assertScimError,
  containsNull,
  scimClient,
  startScimServer,
} from '../helpers/scim-server.js';
import type { ScimTestServer } from '../helpers/scim-server.js';

const q = (filter: string): string => `filter=${encodeURIComponent(filter)}`;
const patch = (...Operations: unknown[]) => ({ schemas: [PATCH_OP], Operations });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe.each(STORE_KINDS)('Users (%s store)', (kind) => {
  let srv: ScimTestServer;
  let call: ReturnType<typeof scimClient>;
  beforeAll(async () => {
    srv = await startScimServer({ kind });
    call = scimClient(srv);
  });
  afterAll(async () => {
    await srv?.close();
  });

  const create = async (userName: string, extra: Record<string, unknown> = {}) => {
    const r = await call('POST', '/Users', { body: { schemas: [USER_URN], userName, ...extra } });
    expect(r.status, r.text).toBe(201);
    return r.json;
  };

  it('creates a user and renders it per RFC 7643 §4.1 (no password, no null, no empty groups)', async () => {
    const u = await create('Ada.Lovelace@Example.com', {
      name: { givenName: 'Ada', familyName: 'Lovelace' },
      emails: [{ value: 'ada@example.com', type: 'work', primary: true }],
      externalId: 'ExT-1',
      password: 'hunter2hunter2',
      title: ' Countess ',
      [ENTERPRISE_URN]: { employeeNumber: '1815', department: 'Analytical' },
    });
    expect(u.schemas).toEqual(expect.arrayContaining([USER_URN, ENTERPRISE_URN]));
    expect(u).toMatchObject({
      userName: 'Ada.Lovelace@Example.com',
      active: true,
      externalId: 'ExT-1',
      name: { givenName: 'Ada', familyName: 'Lovelace' },
      emails: [{ value: 'ada@example.com', type: 'work', primary: true }],
      // D31: stored exactly as received.
      title: ' Countess ',
      [ENTERPRISE_URN]: { employeeNumber: '1815', department: 'Analytical' },
      meta: { resourceType: 'User', location: `${srv.baseUrl}/Users/${u.id}` },
    });
    expect(typeof u.id).toBe('string');
    expect(Number.isNaN(Date.parse(u.meta.created))).toBe(false);
    expect(u.meta.lastModified).toBe(u.meta.created);
    expect(u.password).toBeUndefined();
    expect(u.groups).toBeUndefined();
    expect(containsNull(u)).toBe(false);
    const got = await call('GET', `/Users/${u.id}`);
    expect(got.status).toBe(200);
    expect(got.headers.get('content-type')).toBe(SCIM_CT);
    expect(got.json).toEqual(u);
  });

  it('rejects a missing or empty userName and a bad active with 400 invalidValue', async () => {
    assertScimError(await call('POST', '/Users', { body: { schemas: [USER_URN] } }), 400);
    assertScimError(await call('POST', '/Users', { body: { schemas: [USER_URN], userName: '' } }), 400);
    assertScimError(await call('POST', '/Users', { body: { schemas: [USER_URN], userName: 'x@example.com', active: 'maybe' } }), 400, 'invalidValue');
  });

  it('coerces active strings to booleans (D6)', async () => {
    const u = await create('d6@example.com', { active: 'False' });
    expect(u.active).toBe(false);
    const v = await create('d6b@example.com', { active: 'TRUE' });
    expect(v.active).toBe(true);
  });

  it('enforces case-insensitive userName uniqueness with 409 uniqueness (D14)', async () => {
    await create('unique.person@example.com');
    for (const userName of ['unique.person@example.com', 'UNIQUE.Person@EXAMPLE.com']) {
      assertScimError(await call('POST', '/Users', { body: { schemas: [USER_URN], userName } }), 409, 'uniqueness');
    }
    const other = await create('other.person@example.com');
    const put = await call('PUT', `/Users/${other.id}`, { body: { schemas: [USER_URN], userName: 'Unique.Person@example.com' } });
    assertScimError(put, 409, 'uniqueness');
    const p = await call('PATCH', `/Users/${other.id}`, { body: patch({ op: 'replace', path: 'userName', value: 'UNIQUE.PERSON@example.com' }) });
    assertScimError(p, 409, 'uniqueness');
  });

  it('GET of an unknown id is 404, whatever the id looks like', async () => {
    for (const id of ['00000000-0000-0000-0000-000000000000', 'not-a-uuid', "x' OR '1'='1", '%00', '1'.repeat(300), '__proto__', 'constructor']) {
      assertScimError(await call('GET', `/Users/${encodeURIComponent(id)}`), 404);
      assertScimError(await call('DELETE', `/Users/${encodeURIComponent(id)}`), 404);
      assertScimError(await call('PATCH', `/Users/${encodeURIComponent(id)}`, { body: patch({ op: 'replace', path: 'title', value: 'x' }) }), 404);
      assertScimError(await call('PUT', `/Users/${encodeURIComponent(id)}`, { body: { schemas: [USER_URN], userName: 'ghost@example.com' } }), 404);
    }
  });

  it('PUT replaces every attribute, ignores a differing id and readOnly attributes (D27)', async () => {
    const u = await create('put.me@example.com', { title: 'Engineer', nickName: 'pm' });
    await sleep(5);
    const r = await call('PUT', `/Users/${u.id}`, {
      body: { schemas: [USER_URN], id: 'another-id', userName: 'put.me@example.com', displayName: 'Put Me', meta: { created: '2000-01-01T00:00:00Z' }, groups: [{ value: 'g' }] },
    });
    expect(r.status).toBe(200);
    expect(r.json.id).toBe(u.id);
    expect(r.json.displayName).toBe('Put Me');
    expect(r.json.title).toBeUndefined();
    expect(r.json.nickName).toBeUndefined();
    expect(r.json.groups).toBeUndefined();
    expect(r.json.active).toBe(true);
    expect(r.json.meta.created).toBe(u.meta.created);
    expect(Date.parse(r.json.meta.lastModified)).toBeGreaterThan(Date.parse(u.meta.lastModified));
    assertScimError(await call('GET', '/Users/another-id'), 404);
  });

  it('a SCIM PUT without active does not re-enable a deactivated user (D32)', async () => {
    // The proxy's view of the directory, kept in step with every committed write.
    const index = await DirectoryIndex.load(srv.store);
    const revoked: string[] = [];
    index.onRevocation((ev) => void revoked.push(ev.type));
    try {
      const u = await create('put.keeps.active@example.com', { title: 'Before' });
      expect(u.active).toBe(true);
      const off = await call('PATCH', `/Users/${u.id}`, { body: patch({ op: 'replace', value: { active: false } }) });
      expect(off.json.active).toBe(false);
      // An Okta-style full replace that does not mention active: every other attribute is replaced.
      const put = await call('PUT', `/Users/${u.id}`, { body: { schemas: [USER_URN], userName: 'put.keeps.active@example.com', title: 'After' } });
      expect(put.status, put.text).toBe(200);
      expect(put.json).toMatchObject({ active: false, title: 'After' });
      expect((await call('GET', `/Users/${u.id}`)).json.active).toBe(false);
      const found = await call('GET', `/Users?${q('active eq false and userName eq "put.keeps.active@example.com"')}`);
      expect(found.json.totalResults).toBe(1);
      // The person still cannot log in: the index holds them inactive.
      expect(index.findPerson('put.keeps.active@example.com')).toMatchObject({ status: 'inactive', person: { id: u.id } });
      // null is "not asserted" too; an explicit active is what changes it, both ways.
      const nulled = await call('PUT', `/Users/${u.id}`, { body: { schemas: [USER_URN], userName: 'put.keeps.active@example.com', active: null } });
      expect(nulled.json.active).toBe(false);
      const on = await call('PUT', `/Users/${u.id}`, { body: { schemas: [USER_URN], userName: 'put.keeps.active@example.com', active: 'True' } });
      expect(on.json.active).toBe(true);
      expect(index.findPerson('put.keeps.active@example.com').status).toBe('active');
      const stillOn = await call('PUT', `/Users/${u.id}`, { body: { schemas: [USER_URN], userName: 'put.keeps.active@example.com' } });
      expect(stillOn.json.active).toBe(true);
      expect(revoked).toEqual(['person.deactivated']);
      // A POST without active still creates an active user (D6).
      expect((await create('post.defaults.active@example.com')).active).toBe(true);
    } finally {
      index.close();
    }
  });

  it('PATCH returns 200 with the full resource; a no-op PATCH keeps lastModified (D11, D20)', async () => {
    const u = await create('patch.me@example.com', { title: 'A' });
    await sleep(5);
    const r = await call('PATCH', `/Users/${u.id}`, { body: patch({ op: 'replace', path: 'title', value: 'B' }) });
    expect(r.status).toBe(200);
    expect(r.json).toMatchObject({ id: u.id, userName: 'patch.me@example.com', title: 'B', active: true });
    expect(r.json.meta.lastModified).not.toBe(u.meta.lastModified);
    const events = srv.audit.length;
    await sleep(5);
    const same = await call('PATCH', `/Users/${u.id}`, { body: patch({ op: 'replace', path: 'title', value: 'B' }) });
    expect(same.status).toBe(200);
    expect(same.json.meta.lastModified).toBe(r.json.meta.lastModified);
    expect(srv.audit.length).toBe(events);
  });

  it('a failed PATCH changes nothing (atomic)', async () => {
    const u = await create('atomic@example.com', { title: 'Before', emails: [{ value: 'a@example.com', type: 'work' }] });
    const before = (await call('GET', `/Users/${u.id}`)).json;
    const bad = await call('PATCH', `/Users/${u.id}`, {
      body: patch(
        { op: 'replace', path: 'title', value: 'After' },
        { op: 'add', path: 'emails', value: [{ value: 'b@example.com', type: 'home' }] },
        { op: 'replace', path: 'active', value: 'perhaps' },
      ),
    });
    assertScimError(bad, 400, 'invalidValue');
    const unknownPath = await call('PATCH', `/Users/${u.id}`, { body: patch({ op: 'replace', path: 'title', value: 'After' }, { op: 'replace', path: 'favouriteColour', value: 'blue' }) });
    assertScimError(unknownPath, 400, 'invalidPath');
    const noTarget = await call('PATCH', `/Users/${u.id}`, { body: patch({ op: 'replace', path: 'title', value: 'After' }, { op: 'remove' }) });
    assertScimError(noTarget, 400, 'noTarget');
    const readOnly = await call('PATCH', `/Users/${u.id}`, { body: patch({ op: 'replace', path: 'title', value: 'After' }, { op: 'replace', path: 'id', value: 'x' }) });
    assertScimError(readOnly, 400, 'mutability');
    expect((await call('GET', `/Users/${u.id}`)).json).toEqual(before);
  });

  it('malformed PatchOp messages are 400', async () => {
    const u = await create('badpatch@example.com');
    for (const body of [{}, { schemas: [PATCH_OP] }, { schemas: [PATCH_OP], Operations: [] }, { schemas: [PATCH_OP], Operations: [{ op: 'frobnicate', path: 'title', value: 'x' }] }, { schemas: [PATCH_OP], Operations: 'replace' }]) {
      assertScimError(await call('PATCH', `/Users/${u.id}`, { body }), 400);
    }
  });

  it('replace with "" or null unassigns an optional attribute (D28)', async () => {
    const u = await create('d28@example.com', { title: 'T', nickName: 'N' });
    const r = await call('PATCH', `/Users/${u.id}`, { body: patch({ op: 'replace', path: 'title', value: '' }, { op: 'replace', path: 'nickName', value: null }) });
    expect(r.status).toBe(200);
    expect(r.json.title).toBeUndefined();
    expect(r.json.nickName).toBeUndefined();
    expect(r.text).not.toContain('null');
    assertScimError(await call('PATCH', `/Users/${u.id}`, { body: patch({ op: 'replace', path: 'userName', value: '' }) }), 400, 'invalidValue');
  });

  it('lifecycle: create, deactivate, reactivate, delete, recreate with the same userName (D14)', async () => {
    const u = await create('cycle@example.com', { externalId: 'cycle-ext' });
    const off = await call('PATCH', `/Users/${u.id}`, { body: patch({ op: 'replace', path: 'active', value: false }) });
    expect(off.json.active).toBe(false);
    expect((await call('GET', `/Users/${u.id}`)).json.active).toBe(false);
    const on = await call('PATCH', `/Users/${u.id}`, { body: patch({ op: 'replace', path: 'active', value: true }) });
    expect(on.json.active).toBe(true);
    expect((await call('DELETE', `/Users/${u.id}`)).status).toBe(204);
    assertScimError(await call('GET', `/Users/${u.id}`), 404);
    const again = await create('cycle@example.com', { externalId: 'cycle-ext' });
    expect(again.id).not.toBe(u.id);
    const found = await call('GET', `/Users?${q('userName eq "cycle@example.com"')}`);
    expect(found.json.totalResults).toBe(1);
    expect(found.json.Resources[0].id).toBe(again.id);
    const ops = srv.audit.filter((e) => e.id === u.id).map((e) => [e.op, e.summary]);
    expect(ops).toEqual([
      ['create', expect.any(String)],
      ['patch', expect.stringContaining('active: false')],
      ['patch', expect.stringContaining('active: true')],
      ['delete', expect.any(String)],
    ]);
    expect(srv.audit.every((e) => e.actor === 'scim-token#1' || e.actor === 'scim-token#2')).toBe(true);
  });

  describe('filters (RFC 7644 §3.4.2.2, D15, D16)', () => {
    let ids: Record<string, string>;
    beforeAll(async () => {
      ids = {};
      const people: [string, Record<string, unknown>][] = [
        ['f.alpha@corp.example', { externalId: 'EXT-A', title: 'Engineer', emails: [{ value: 'alpha@work.example', type: 'work' }, { value: 'alpha@home.example', type: 'home' }] }],
        ['f.beta@corp.example', { externalId: 'ext-b', title: 'Manager', active: false, emails: [{ value: 'beta@work.example', type: 'work' }] }],
        ['f.gamma@other.example', { externalId: 'EXT-C', emails: [{ value: 'gamma@home.example', type: 'home' }] }],
      ];
      for (const [userName, extra] of people) ids[userName] = (await create(userName, extra)).id;
    });
    const matches = async (filter: string): Promise<string[]> => {
      const r = await call('GET', `/Users?${q(filter)}&count=1000`);
      expect(r.status, `${filter}: ${r.text}`).toBe(200);
      expect(r.json.schemas).toEqual([LIST_URN]);
      expect(r.json.totalResults).toBe(r.json.Resources?.length ?? 0);
      return (r.json.Resources ?? []).map((u: { userName: string }) => u.userName).filter((n: string) => n.startsWith('f.')).sort();
    };

    const table: [string, string[]][] = [
      ['userName eq "F.ALPHA@corp.example"', ['f.alpha@corp.example']],
      ['USERNAME EQ "f.beta@corp.example"', ['f.beta@corp.example']],
      ['externalId eq "EXT-A"', ['f.alpha@corp.example']],
      ['externalId eq "ext-a"', []],
      ['userName sw "f." and userName ew "@corp.example"', ['f.alpha@corp.example', 'f.beta@corp.example']],
      ['userName co "GAMMA"', ['f.gamma@other.example']],
      ['emails co "@work.example"', ['f.alpha@corp.example', 'f.beta@corp.example']],
      ['emails[type eq "work"].value eq "ALPHA@work.example"', ['f.alpha@corp.example']],
      ['emails[type eq "home" and value ew "home.example"]', ['f.alpha@corp.example', 'f.gamma@other.example']],
      ['emails.value eq "beta@work.example"', ['f.beta@corp.example']],
      ['userName sw "f." and active eq false', ['f.beta@corp.example']],
      ['userName sw "f." and not (active eq false)', ['f.alpha@corp.example', 'f.gamma@other.example']],
      ['userName sw "f." and title pr', ['f.alpha@corp.example', 'f.beta@corp.example']],
      ['title eq "Engineer" or title eq "Manager"', ['f.alpha@corp.example', 'f.beta@corp.example']],
      ['userName sw "f." and meta.created gt "2000-01-01T00:00:00Z"', ['f.alpha@corp.example', 'f.beta@corp.example', 'f.gamma@other.example']],
      ['urn:ietf:params:scim:schemas:core:2.0:User:userName eq "f.gamma@other.example"', ['f.gamma@other.example']],
      ['userName eq "nobody@nowhere.example"', []],
    ];
    it.each(table)('%s', async (filter, expected) => {
      expect(await matches(filter)).toEqual(expected);
    });

    it('id eq finds exactly that user', async () => {
      const id = ids['f.beta@corp.example']!;
      const r = await call('GET', `/Users?${q(`id eq "${id}"`)}`);
      expect(r.json.Resources.map((u: { id: string }) => u.id)).toEqual([id]);
    });

    it('invalid filters are 400 invalidFilter', async () => {
      for (const filter of ['', 'userName eq', 'userName zz "x"', 'favouriteColour eq "blue"', 'password eq "x"', '(userName eq "x"', 'userName eq "x" and', 'active gt true', '"x" eq userName']) {
        assertScimError(await call('GET', `/Users?${q(filter)}`), 400, 'invalidFilter');
      }
    });
  });

  describe('projection (RFC 7644 §3.4.2.5)', () => {
    let id: string;
    beforeAll(async () => {
      id = (await create('proj@example.com', { title: 'T', emails: [{ value: 'p@example.com', type: 'work' }], name: { givenName: 'P', familyName: 'Q' } })).id;
    });

    it('attributes= returns only those plus id and schemas', async () => {
      const r = await call('GET', `/Users/${id}?attributes=userName,name.givenName`);
      expect(r.status).toBe(200);
      expect(r.json.id).toBe(id);
      expect(r.json.schemas).toBeDefined();
      expect(r.json.userName).toBe('proj@example.com');
      expect(r.json.name).toEqual({ givenName: 'P' });
      expect(r.json.title).toBeUndefined();
      expect(r.json.emails).toBeUndefined();
    });

    it('excludedAttributes= drops those and keeps the rest', async () => {
      const r = await call('GET', `/Users/${id}?excludedAttributes=emails,title`);
      expect(r.json.emails).toBeUndefined();
      expect(r.json.title).toBeUndefined();
      expect(r.json.userName).toBe('proj@example.com');
      expect(r.json.id).toBe(id);
    });

    it('applies to lists and to POST, PUT and PATCH responses', async () => {
      const list = await call('GET', `/Users?${q('userName eq "proj@example.com"')}&attributes=title`);
      expect(Object.keys(list.json.Resources[0]).sort()).not.toContain('userName');
      expect(list.json.Resources[0].title).toBe('T');
      const post = await call('POST', '/Users?attributes=userName', { body: { schemas: [USER_URN], userName: 'proj2@example.com', title: 'x' } });
      expect(post.status).toBe(201);
      expect(post.json.title).toBeUndefined();
      expect(post.json.userName).toBe('proj2@example.com');
      const patched = await call('PATCH', `/Users/${post.json.id}?excludedAttributes=title`, { body: patch({ op: 'replace', path: 'title', value: 'y' }) });
      expect(patched.status).toBe(200);
      expect(patched.json.title).toBeUndefined();
      const put = await call('PUT', `/Users/${post.json.id}?attributes=title`, { body: { schemas: [USER_URN], userName: 'proj2@example.com', title: 'z' } });
      expect(put.json.title).toBe('z');
      expect(put.json.userName).toBeUndefined();
    });
  });

  describe('pagination (D17)', () => {
    it('pages 250 users in a stable order without duplicates or misses', async () => {
      const created: string[] = [];
      for (let i = 0; i < 250; i++) created.push((await create(`page-${String(i).padStart(3, '0')}@example.com`)).id);
      for (const filter of [undefined, 'userName sw "page-"']) {
        const seen: string[] = [];
        let total = -1;
        for (let start = 1; ; start += 100) {
          const r = await call('GET', `/Users?startIndex=${start}&count=100${filter ? `&${q(filter)}` : ''}`);
          expect(r.status).toBe(200);
          expect(r.json.startIndex).toBe(start);
          expect(r.json.itemsPerPage).toBe(r.json.Resources.length);
          total = r.json.totalResults;
          seen.push(...r.json.Resources.map((u: { id: string }) => u.id));
          if (r.json.Resources.length < 100) break;
        }
        expect(seen.length).toBe(total);
        expect(new Set(seen).size).toBe(seen.length);
        const pageIds = seen.filter((id) => created.includes(id));
        // Creation order is the default order.
        expect(pageIds).toEqual(created);
        if (filter) expect(total).toBe(250);
      }
      // Same request twice, same answer.
      const a = await call('GET', '/Users?startIndex=37&count=50');
      const b = await call('GET', '/Users?startIndex=37&count=50');
      expect(a.json.Resources.map((u: { id: string }) => u.id)).toEqual(b.json.Resources.map((u: { id: string }) => u.id));
    }, 120_000);

    it('clamps and validates startIndex and count; sortBy is ignored (D18)', async () => {
      const all = (await call('GET', '/Users?count=0')).json;
      expect(all.totalResults).toBeGreaterThan(250);
      expect(all.itemsPerPage).toBe(0);
      expect(all.Resources ?? []).toEqual([]);
      const def = await call('GET', '/Users');
      expect(def.json.itemsPerPage).toBe(100);
      const big = await call('GET', '/Users?count=100000');
      expect(big.status).toBe(200);
      const spc = (await call('GET', '/ServiceProviderConfig')).json;
      expect(big.json.itemsPerPage).toBe(Math.min(all.totalResults, spc.filter.maxResults));
      const zero = await call('GET', '/Users?startIndex=0&count=2');
      expect(zero.json.startIndex).toBe(1);
      expect(zero.json.itemsPerPage).toBe(2);
      const neg = await call('GET', '/Users?startIndex=-4&count=-2');
      expect(neg.json).toMatchObject({ startIndex: 1, itemsPerPage: 0, totalResults: all.totalResults });
      const past = await call('GET', `/Users?startIndex=${all.totalResults + 1}`);
      expect(past.json).toMatchObject({ totalResults: all.totalResults, itemsPerPage: 0 });
      for (const p of ['startIndex=abc', 'count=1.5', 'count=', 'startIndex=1e2']) {
        assertScimError(await call('GET', `/Users?${p}`), 400, 'invalidValue');
      }
      const sorted = await call('GET', '/Users?sortBy=userName&sortOrder=descending&count=3');
      expect(sorted.status).toBe(200);
      expect(sorted.json.Resources.map((u: { id: string }) => u.id)).toEqual(def.json.Resources.slice(0, 3).map((u: { id: string }) => u.id));
    });
  });
});
