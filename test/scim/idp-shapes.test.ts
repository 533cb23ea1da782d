// Okta and Microsoft Entra ID request shapes, verbatim as those IdPs send them (docs/scim.md), over real
// HTTP against both stores.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ENTERPRISE_URN, GROUP_URN, PATCH_OP, STORE_KINDS, USER_URN, assertScimError, scimClient, startScimServer } from '../helpers/scim-server.js';
import type { ScimTestServer } from '../helpers/scim-server.js';

describe.each(STORE_KINDS)('IdP request shapes (%s store)', (kind) => {
  let srv: ScimTestServer;
  let call: ReturnType<typeof scimClient>;
  beforeAll(async () => {
    srv = await startScimServer({ kind });
    call = scimClient(srv);
  });
  afterAll(async () => {
    await srv?.close();
  });

  describe('Okta', () => {
    let userId: string;
    let groupId: string;

    it('existence check, then create with password and groups:[]', async () => {
      const check = await call('GET', '/Users?filter=userName%20eq%20%22isaac.brock%40example.com%22&startIndex=1&count=100');
      expect(check.status).toBe(200);
      expect(check.json).toMatchObject({ totalResults: 0, startIndex: 1 });
      const r = await call('POST', '/Users', {
        raw: JSON.stringify({
          schemas: ['urn:ietf:params:scim:schemas:core:2.0:User'],
          userName: 'isaac.brock@example.com',
          name: { givenName: 'Isaac', familyName: 'Brock' },
          emails: [{ primary: true, value: 'isaac.brock@example.com', type: 'work' }],
          displayName: 'Isaac Brock',
          locale: 'en-US',
          externalId: '00ujl29u0le5T6Aj10h7',
          groups: [],
          password: '1mz050nq',
          active: true,
        }),
        contentType: 'application/scim+json; charset=utf-8',
      });
      expect(r.status).toBe(201);
      expect(r.text).not.toContain('1mz050nq');
      expect(r.json).toMatchObject({ userName: 'isaac.brock@example.com', active: true, externalId: '00ujl29u0le5T6Aj10h7', locale: 'en-US' });
      userId = r.json.id;
      const again = await call('GET', '/Users?filter=userName%20eq%20%22isaac.brock%40example.com%22&startIndex=1&count=100');
      expect(again.json.totalResults).toBe(1);
      expect(again.json.Resources[0].id).toBe(userId);
      expect(again.json.itemsPerPage).toBe(1);
    });

    it('full PUT of the user with id, meta and groups', async () => {
      const current = (await call('GET', `/Users/${userId}`)).json;
      const body = { ...current, name: { givenName: 'Isaac', familyName: 'Brock-Smith' }, groups: [], password: 'newpass1' };
      const r = await call('PUT', `/Users/${userId}`, { body });
      expect(r.status).toBe(200);
      expect(r.json.name.familyName).toBe('Brock-Smith');
      expect(r.json.meta.created).toBe(current.meta.created);
      expect(r.text).not.toContain('newpass1');
    });

    it('deactivates with a path-less replace of active', async () => {
      const r = await call('PATCH', `/Users/${userId}`, { body: { schemas: [PATCH_OP], Operations: [{ op: 'replace', value: { active: false } }] } });
      expect(r.status).toBe(200);
      expect(r.json.active).toBe(false);
    });

    it('creates a group, renames it with its own id in the value, manages members', async () => {
      const c = await call('POST', '/Groups', { body: { schemas: ['urn:ietf:params:scim:schemas:core:2.0:Group'], displayName: 'Test SCIMv2', members: [] } });
      expect(c.status).toBe(201);
      groupId = c.json.id;
      const rename = await call('PATCH', `/Groups/${groupId}`, {
        body: { schemas: [PATCH_OP], Operations: [{ op: 'replace', value: { id: groupId, displayName: 'Test SCIMv2 Renamed' } }] },
      });
      expect(rename.status).toBe(200);
      expect(rename.json.displayName).toBe('Test SCIMv2 Renamed');
      const add = await call('PATCH', `/Groups/${groupId}`, {
        body: { schemas: [PATCH_OP], Operations: [{ op: 'add', path: 'members', value: [{ value: userId, display: 'isaac.brock@example.com' }] }] },
      });
      expect(add.status).toBe(200);
      expect(add.json.members.map((m: { value: string }) => m.value)).toEqual([userId]);
      const found = await call('GET', `/Groups?filter=${encodeURIComponent('displayName eq "Test SCIMv2 Renamed"')}&startIndex=1&count=100`);
      expect(found.json.totalResults).toBe(1);
      const rm = await call('PATCH', `/Groups/${groupId}`, { body: { schemas: [PATCH_OP], Operations: [{ op: 'remove', path: `members[value eq "${userId}"]` }] } });
      expect(rm.status).toBe(200);
      expect(rm.json.members ?? []).toEqual([]);
    });
  });

  describe('Microsoft Entra ID', () => {
    let userId: string;
    let groupId: string;
    const userName = 'Test_User_ab6490ee-1e48-479e-a20b-2d77186b5dd1@testuser.com';

    it('test connection: a filter that matches nothing is 200 with totalResults 0', async () => {
      const r = await call('GET', '/Users?filter=userName+eq+%22non-existent-user-1d6a9b58-e2b6-4bd7-8d6c-40f7a7a1e6f5%22');
      expect(r.status).toBe(200);
      expect(r.json.totalResults).toBe(0);
      const g = await call('GET', '/Groups?excludedAttributes=members&filter=displayName+eq+%22nonexistent%22');
      expect(g.status).toBe(200);
      expect(g.json.totalResults).toBe(0);
    });

    it('creates a user with extra schemas and meta', async () => {
      const r = await call('POST', '/Users', {
        body: {
          schemas: ['urn:ietf:params:scim:schemas:core:2.0:User', 'urn:ietf:params:scim:schemas:extension:enterprise:2.0:User'],
          externalId: '0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef',
          userName,
          active: true,
          emails: [{ primary: true, type: 'work', value: 'Test_User_fd0ea19b-0777-472c-9f96-4f70d2226f2e@testuser.com' }],
          meta: { resourceType: 'User' },
          name: { formatted: 'givenName familyName', familyName: 'familyName', givenName: 'givenName' },
          roles: [],
        },
        contentType: 'application/scim+json',
      });
      expect(r.status).toBe(201);
      userId = r.json.id;
      expect(r.json.userName).toBe(userName);
    });

    it('finds the user by the work email value path filter', async () => {
      const filter = 'emails[type eq "work"].value eq "Test_User_fd0ea19b-0777-472c-9f96-4f70d2226f2e@testuser.com"';
      const r = await call('GET', `/Users?filter=${encodeURIComponent(filter)}`);
      expect(r.status).toBe(200);
      expect(r.json.Resources.map((u: { id: string }) => u.id)).toEqual([userId]);
    });

    it('updates with capitalised ops, a value-path replace and dotted keys', async () => {
      const r = await call('PATCH', `/Users/${userId}`, {
        body: {
          schemas: ['urn:ietf:params:scim:api:messages:2.0:PatchOp'],
          Operations: [
            { op: 'Replace', path: 'emails[type eq "work"].value', value: 'updatedEmail@microsoft.com' },
            { op: 'Replace', path: 'name.familyName', value: 'updatedFamilyName' },
            { op: 'Add', value: { 'name.givenName': 'A', 'urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber': '7' } },
            { op: 'Add', path: 'phoneNumbers[type eq "mobile"].value', value: '+1 555 0100' },
          ],
        },
      });
      expect(r.status).toBe(200);
      expect(r.json.emails.find((e: { type: string }) => e.type === 'work').value).toBe('updatedEmail@microsoft.com');
      expect(r.json.name).toMatchObject({ familyName: 'updatedFamilyName', givenName: 'A' });
      expect(r.json[ENTERPRISE_URN]).toMatchObject({ employeeNumber: '7' });
      expect(r.json.schemas).toContain(ENTERPRISE_URN);
    });

    it('replaces path-less with dotted and URN-qualified keys', async () => {
      const r = await call('PATCH', `/Users/${userId}`, {
        body: {
          schemas: [PATCH_OP],
          Operations: [{ op: 'Replace', value: { 'name.familyName': 'Dotted', 'urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department': 'R&D', displayName: 'Shown' } }],
        },
      });
      expect(r.status).toBe(200);
      expect(r.json.name).toMatchObject({ familyName: 'Dotted', givenName: 'A' });
      expect(r.json[ENTERPRISE_URN]).toMatchObject({ employeeNumber: '7', department: 'R&D' });
      expect(r.json.displayName).toBe('Shown');
    });

    it('disables with active "False" (a string) and returns a boolean', async () => {
      const r = await call('PATCH', `/Users/${userId}`, { body: { Operations: [{ op: 'Replace', path: 'active', value: 'False' }], schemas: [PATCH_OP] } });
      expect(r.status).toBe(200);
      expect(r.json.active).toBe(false);
      expect((await call('GET', `/Users/${userId}`)).json.active).toBe(false);
    });

    it('unassigns with an empty string (null update test, D28)', async () => {
      await call('PATCH', `/Users/${userId}`, { body: { schemas: [PATCH_OP], Operations: [{ op: 'Add', path: 'title', value: 'Dev' }] } });
      const r = await call('PATCH', `/Users/${userId}`, { body: { schemas: [PATCH_OP], Operations: [{ op: 'Replace', path: 'title', value: '' }] } });
      expect(r.status).toBe(200);
      expect(r.json.title).toBeUndefined();
    });

    it('creates a group with the ADSCIM schema, manages members with $ref:null and value arrays', async () => {
      const c = await call('POST', '/Groups', {
        body: {
          schemas: ['urn:ietf:params:scim:schemas:core:2.0:Group', 'http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group'],
          externalId: '8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159',
          displayName: 'displayName',
          meta: { resourceType: 'Group' },
        },
      });
      expect(c.status).toBe(201);
      groupId = c.json.id;
      expect(c.json.schemas).toEqual([GROUP_URN]);
      const found = await call('GET', '/Groups?excludedAttributes=members&filter=displayName+eq+%22displayName%22');
      expect(found.json.totalResults).toBe(1);
      expect(found.json.Resources[0].members).toBeUndefined();
      const add = await call('PATCH', `/Groups/${groupId}`, { body: { schemas: [PATCH_OP], Operations: [{ op: 'Add', path: 'members', value: [{ $ref: null, value: userId }] }] } });
      expect(add.status).toBe(200);
      expect((await call('GET', `/Groups/${groupId}`)).json.members.map((m: { value: string }) => m.value)).toEqual([userId]);
      const rm = await call('PATCH', `/Groups/${groupId}`, { body: { schemas: [PATCH_OP], Operations: [{ op: 'Remove', path: 'members', value: [{ $ref: null, value: userId }] }] } });
      expect(rm.status).toBe(200);
      expect((await call('GET', `/Groups/${groupId}`)).json.members ?? []).toEqual([]);
      const rename = await call('PATCH', `/Groups/${groupId}`, { body: { schemas: [PATCH_OP], Operations: [{ op: 'Replace', path: 'displayName', value: 'renamed' }] } });
      expect(rename.json.displayName).toBe('renamed');
    });

    it('recreates a deleted user with the same userName and externalId', async () => {
      expect((await call('DELETE', `/Users/${userId}`)).status).toBe(204);
      assertScimError(await call('GET', `/Users/${userId}`), 404);
      const r = await call('POST', '/Users', { body: { schemas: [USER_URN], userName, externalId: '0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef', active: true } });
      expect(r.status).toBe(201);
      expect(r.json.id).not.toBe(userId);
    });
  });
});
