// Rendered resources the scim-core tests filter, patch and project.
import type { ScimAttributes } from '../../scim/model.js';
import { renderGroup, renderUser } from '../../scim/resource.js';
import { ENTERPRISE_USER_URN } from '../../scim/schema.js';

export const BASE_URL = 'https://gw.example/scim/v2';

export const userAttributes: ScimAttributes = {
  userName: 'Bob.Smith@Example.com',
  externalId: 'Ext-1',
  active: true,
  displayName: 'Bob Smith',
  title: 'Engineer',
  profileUrl: 'https://Profiles.example/bob',
  name: { givenName: 'Bob', familyName: 'Smith' },
  emails: [
    { value: 'Bob@Work.example', type: 'work', primary: true },
    { value: 'bob@home.example', type: 'home' },
  ],
  x509Certificates: [{ value: 'MIIBase64==' }],
  [ENTERPRISE_USER_URN]: { employeeNumber: '42', department: 'R&D', manager: { value: 'm-1' } },
};

export const user = renderUser(
  { id: 'u-1', created: '2024-01-01T00:00:00.000Z', lastModified: '2024-06-01T12:00:00.000Z', attributes: userAttributes },
  [{ groupId: 'g-1', displayName: 'Analysts' }],
  BASE_URL,
);

export const group = renderGroup(
  {
    id: 'g-1',
    created: '2024-01-02T00:00:00.000Z',
    lastModified: '2024-01-03T00:00:00.000Z',
    attributes: { displayName: 'Analysts', externalId: 'AAD-Group-1' },
    members: [{ value: 'u-1', display: 'Bob Smith' }, { value: 'u-2' }],
  },
  BASE_URL,
);

/** Freezes a value deeply so any mutation by code under test throws (ESM is strict mode). */
export function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}
