// Groups over real HTTP against both stores: members (D12), uniqueness (D13), PATCH of members
// (D8, D9, D11), PUT (D27), projection (D23), users' groups (D24), deactivation (D25), cascades (D26).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GROUP_URN, PATCH_OP, STORE_KINDS, USER_URN, assertScimError, containsNull, scimClient, startScimServer } from '../helpers/scim-server.js';
import type { ScimTestServer } from '../helpers/scim-server.js';

const q = (filter: string): string => `filter=${encodeURIComponent(filter)}`;
const patch = (...Operations: unknown[]) => ({ schemas: [PATCH_OP], Operations });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const memberIds = (g: { members?: { value: string }[] }): string[] => (g.members ?? []).map((m) => m.value).sort();

describe.each(STORE_KINDS)('Groups (%s store)', (kind) => {
  let srv: ScimTestServer;
  let call: ReturnType<typeof scimClient>;
  let n = 0;
  beforeAll(async () => {
    srv = await startScimServer({ kind });
    call = scimClient(srv);
  });
  afterAll(async () => {
    await srv?.close();
  });

  const user = async (): Promise<string> => {
    const r = await call('POST', '/Users', { body: { schemas: [USER_URN], userName: `member-${++n}@example.com` } });
    expect(r.status, r.text).toBe(201);
    return r.json.id;
  };
  const group = async (displayName: string, members: string[] = [], extra: Record<string, unknown> = {}) => {
    const r = await call('POST', '/Groups', { body: { schemas: [GROUP_URN], displayName, members: members.map((value) => ({ value })), ...extra } });
    expect(r.status, r.text).toBe(201);
    return r.json;
  };
  const get = async (path: string) => (await call('GET', path)).json;

  it('creates a group with members and renders it per RFC 7643 §4.2 (D23)', async () => {
    const [a, b] = [await user(), await user()];
    const g = await group('Engineering', [a, b], { externalId: 'grp-ext-1' });
    expect(g).toMatchObject({
      schemas: [GROUP_URN],
      displayName: 'Engineering',
      externalId: 'grp-ext-1',
      meta: { resourceType: 'Group', location: `${srv.baseUrl}/Groups/${g.id}` },
    });
    expect(memberIds(g)).toEqual([a, b].sort());
    for (const m of g.members) {
      expect(m.$ref).toBe(`${srv.baseUrl}/Users/${m.value}`);
      expect(m.type ?? 'User').toBe('User');
    }
    expect(containsNull(g)).toBe(false);
    expect(await get(`/Groups/${g.id}`)).toEqual(g);
    const slim = await get(`/Groups/${g.id}?excludedAttributes=members`);
    expect(slim.members).toBeUndefined();
    expect(slim.displayName).toBe('Engineering');
  });

  it('refuses unknown member ids and nested groups with 400 invalidValue, creating nothing (D12)', async () => {
    const a = await user();
    const nested = await group('Nested Target');
    const bad = [
      [{ value: a }, { value: '00000000-0000-0000-0000-000000000000' }],
      [{ value: 'not-a-user-id' }],
      [{ value: nested.id }],
      [{ value: a }, { value: nested.id, type: 'Group' }],
    ];
    for (const members of bad) {
      const r = await call('POST', '/Groups', { body: { schemas: [GROUP_URN], displayName: 'Should Not Exist', members } });
      assertScimError(r, 400, 'invalidValue');
    }
    expect((await get(`/Groups?${q('displayName eq "Should Not Exist"')}`)).totalResults).toBe(0);
  });

  it('enforces case-insensitive displayName uniqueness with 409 (D13)', async () => {
    const g = await group('Finance');
    assertScimError(await call('POST', '/Groups', { body: { schemas: [GROUP_URN], displayName: 'FINANCE' } }), 409, 'uniqueness');
    const other = await group('Legal');
    assertScimError(await call('PUT', `/Groups/${other.id}`, { body: { schemas: [GROUP_URN], displayName: 'finance' } }), 409, 'uniqueness');
    assertScimError(await call('PATCH', `/Groups/${other.id}`, { body: patch({ op: 'replace', path: 'displayName', value: 'Finance' }) }), 409, 'uniqueness');
    // Renaming a group to a different case of its own name is fine.
    const self = await call('PATCH', `/Groups/${g.id}`, { body: patch({ op: 'replace', path: 'displayName', value: 'FINANCE' }) });
    expect(self.status).toBe(200);
    expect(self.json.displayName).toBe('FINANCE');
  });

  it('PATCH adds, de-duplicates and removes members (D8, D9, D11)', async () => {
    const [a, b, c] = [await user(), await user(), await user()];
    const g = await group('Patchers', [a]);
    const added = await call('PATCH', `/Groups/${g.id}`, { body: patch({ op: 'add', path: 'members', value: [{ value: b }, { value: c }] }) });
    expect(added.status).toBe(200);
    expect(memberIds(added.json)).toEqual([a, b, c].sort());
    const lm = added.json.meta.lastModified;
    await sleep(5);
    // D11: adding an existing member changes nothing, not even lastModified.
    const again = await call('PATCH', `/Groups/${g.id}`, { body: patch({ op: 'add', path: 'members', value: [{ value: a }] }) });
    expect(again.status).toBe(200);
    expect(memberIds(again.json)).toEqual([a, b, c].sort());
    expect(again.json.meta.lastModified).toBe(lm);
    // D8: remove with a value array removes only those, matched on value alone.
    const rm = await call('PATCH', `/Groups/${g.id}`, { body: patch({ op: 'remove', path: 'members', value: [{ value: b, display: 'ignored', $ref: 'ignored' }] }) });
    expect(memberIds(rm.json)).toEqual([a, c].sort());
    // D9: removing a non-member succeeds with no change.
    const stranger = await user();
    const none = await call('PATCH', `/Groups/${g.id}`, { body: patch({ op: 'remove', path: `members[value eq "${stranger}"]` }) });
    expect(none.status).toBe(200);
    expect(memberIds(none.json)).toEqual([a, c].sort());
    // RFC 7644 §3.5.2.2: remove without a value empties the attribute.
    const all = await call('PATCH', `/Groups/${g.id}`, { body: patch({ op: 'remove', path: 'members' }) });
    expect(all.json.members ?? []).toEqual([]);
    const summaries = srv.audit.filter((e) => e.id === g.id).map((e) => e.summary);
    expect(summaries).toEqual([expect.stringContaining('members +1 -0'), 'members +2 -0', 'members +0 -1', 'members +0 -2']);
  });

  it('a PATCH naming an unknown member is rejected whole (D12, atomic)', async () => {
    const [a, b] = [await user(), await user()];
    const g = await group('Atomic Members', [a]);
    const before = await get(`/Groups/${g.id}`);
    const r = await call('PATCH', `/Groups/${g.id}`, {
      body: patch({ op: 'replace', path: 'displayName', value: 'Renamed Atomic' }, { op: 'add', path: 'members', value: [{ value: b }, { value: 'ghost-user' }] }),
    });
    assertScimError(r, 400, 'invalidValue');
    const nestedAdd = await call('PATCH', `/Groups/${g.id}`, { body: patch({ op: 'add', path: 'members', value: [{ value: b, type: 'Group' }] }) });
    assertScimError(nestedAdd, 400, 'invalidValue');
    expect(await get(`/Groups/${g.id}`)).toEqual(before);
  });

  it('PUT replaces members entirely and ignores a differing id (D27)', async () => {
    const [a, b, c] = [await user(), await user(), await user()];
    const g = await group('Put Group', [a, b]);
    const r = await call('PUT', `/Groups/${g.id}`, { body: { schemas: [GROUP_URN], id: 'something-else', displayName: 'Put Group', members: [{ value: c }] } });
    expect(r.status).toBe(200);
    expect(r.json.id).toBe(g.id);
    expect(memberIds(r.json)).toEqual([c]);
    const empty = await call('PUT', `/Groups/${g.id}`, { body: { schemas: [GROUP_URN], displayName: 'Put Group' } });
    expect(empty.json.members ?? []).toEqual([]);
    assertScimError(await call('PUT', `/Groups/${g.id}`, { body: { schemas: [GROUP_URN], displayName: 'Put Group', members: [{ value: 'nope' }] } }), 400, 'invalidValue');
    assertScimError(await call('PUT', `/Groups/${g.id}`, { body: { schemas: [GROUP_URN] } }), 400);
  });

  it("users show direct memberships in groups (D24), kept while inactive (D25)", async () => {
    const a = await user();
    expect((await get(`/Users/${a}`)).groups).toBeUndefined();
    const g1 = await group('Readers', [a]);
    const g2 = await group('Writers', [a]);
    const u = await get(`/Users/${a}`);
    expect(u.groups.map((x: { value: string }) => x.value).sort()).toEqual([g1.id, g2.id].sort());
    const reader = u.groups.find((x: { value: string }) => x.value === g1.id);
    expect(reader.display).toBe('Readers');
    const off = await call('PATCH', `/Users/${a}`, { body: patch({ op: 'replace', value: { active: false } }) });
    expect(off.json.active).toBe(false);
    expect(off.json.groups.length).toBe(2);
    expect(memberIds(await get(`/Groups/${g1.id}`))).toContain(a);
    const list = await get(`/Users?${q(`groups.value eq "${g2.id}"`)}`);
    expect(list.Resources.map((x: { id: string }) => x.id)).toEqual([a]);
  });

  it('deleting a user removes its memberships; deleting a group removes its own (D26)', async () => {
    const [a, b] = [await user(), await user()];
    const g = await group('Cascade', [a, b]);
    const h = await group('Cascade Two', [b]);
    expect((await call('DELETE', `/Users/${a}`)).status).toBe(204);
    expect(memberIds(await get(`/Groups/${g.id}`))).toEqual([b]);
    expect((await call('DELETE', `/Groups/${g.id}`)).status).toBe(204);
    assertScimError(await call('GET', `/Groups/${g.id}`), 404);
    expect((await get(`/Users/${b}`)).groups.map((x: { value: string }) => x.value)).toEqual([h.id]);
    assertScimError(await call('DELETE', `/Groups/${g.id}`), 404);
    // The name is free again.
    await group('Cascade');
  });

  it('filters groups by displayName (case-insensitive), externalId and member (D16)', async () => {
    const [a, b] = [await user(), await user()];
    const g = await group('Filter Me', [a], { externalId: 'F-EXT' });
    await group('Filter Me Too', [b]);
    const ids = async (filter: string, extra = '') => {
      const r = await call('GET', `/Groups?${q(filter)}${extra}`);
      expect(r.status, r.text).toBe(200);
      return (r.json.Resources ?? []).map((x: { id: string }) => x.id);
    };
    expect(await ids('displayName eq "FILTER ME"')).toEqual([g.id]);
    expect(await ids('externalId eq "F-EXT"')).toEqual([g.id]);
    expect(await ids('externalId eq "f-ext"')).toEqual([]);
    expect(await ids(`members eq "${a}"`)).toEqual([g.id]);
    expect(await ids(`members.value eq "${a}"`)).toEqual([g.id]);
    expect((await ids('displayName sw "filter me"')).length).toBe(2);
    const slim = await call('GET', `/Groups?${q('displayName sw "Filter Me"')}&excludedAttributes=members`);
    expect(slim.json.Resources.every((x: Record<string, unknown>) => x.members === undefined)).toBe(true);
    const full = await call('GET', `/Groups?${q('displayName eq "Filter Me"')}`);
    expect(memberIds(full.json.Resources[0])).toEqual([a]);
    const list = await call('GET', '/Groups?count=500');
    expect(list.json.totalResults).toBe(list.json.Resources.length);
    assertScimError(await call('GET', `/Groups?${q('userName eq "x"')}`), 400, 'invalidFilter');
  });

  it('handles a large membership change in one PATCH', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 60; i++) ids.push(await user());
    const g = await group('Bulk Members');
    const r = await call('PATCH', `/Groups/${g.id}`, { body: patch({ op: 'Add', path: 'members', value: ids.map((value) => ({ value })) }) });
    expect(r.status).toBe(200);
    expect(r.json.members.length).toBe(60);
    const half = ids.slice(0, 30);
    const rm = await call('PATCH', `/Groups/${g.id}?excludedAttributes=members`, { body: patch({ op: 'Remove', path: 'members', value: half.map((value) => ({ value })) }) });
    expect(rm.json.members).toBeUndefined();
    expect(memberIds(await get(`/Groups/${g.id}`))).toEqual(ids.slice(30).sort());
  });
});
