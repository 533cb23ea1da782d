// The demo's people and groups, and how they reach rolegate: over its real SCIM endpoint, the way an
// identity provider (Okta, Entra ID) would push them.
import { DemoRole } from './schema.js';

export interface DemoPerson {
  readonly userName: string;
  readonly givenName: string;
  readonly familyName: string;
  readonly group: string;
  /** The startup `user` of the person's printed psql command: their own name, or a role they may use. */
  readonly loginAs: 'self' | DemoRole;
}

export const DEMO_PEOPLE = [
  { userName: 'alice@demo.rolegate.dev', givenName: 'Alice', familyName: 'Analyst', group: 'analysts', loginAs: 'self' },
  { userName: 'bob@demo.rolegate.dev', givenName: 'Bob', familyName: 'Builder', group: 'engineering', loginAs: DemoRole.writer },
] as const satisfies readonly DemoPerson[];

/** Config `roles`, least privileged first: which SCIM groups grant each role. */
export const DEMO_GRANTS = [
  { role: DemoRole.reader, groups: ['analysts', 'engineering'] },
  { role: DemoRole.writer, groups: ['engineering'] },
] as const;

/** The roles a person's group grants, least privileged first. */
export function grantedRoles(p: DemoPerson): DemoRole[] {
  return DEMO_GRANTS.filter((g) => (g.groups as readonly string[]).includes(p.group)).map((g) => g.role);
}

const USER_URN = 'urn:ietf:params:scim:schemas:core:2.0:User';
const GROUP_URN = 'urn:ietf:params:scim:schemas:core:2.0:Group';

/** SCIM `id` of each provisioned person, by userName. */
export type ProvisionedIds = ReadonlyMap<string, string>;

/**
 * Creates every demo person, then every group with its members, through `POST /Users` and
 * `POST /Groups` at `scimBase` (`http://host:port/scim/v2`).
 */
export async function provisionDemoPeople(scimBase: string, token: string): Promise<ProvisionedIds> {
  const post = async (path: string, body: unknown): Promise<string> => {
    const res = await fetch(`${scimBase}${path}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/scim+json', accept: 'application/scim+json' },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(10_000),
    });
    const json = (await res.json().catch(() => ({}))) as { id?: unknown; detail?: unknown };
    if (res.status !== 201 || typeof json.id !== 'string') {
      throw new Error(`SCIM POST ${path} answered ${res.status}${typeof json.detail === 'string' ? `: ${json.detail}` : ''}`);
    }
    return json.id;
  };
  const ids = new Map<string, string>();
  for (const p of DEMO_PEOPLE) {
    ids.set(p.userName, await post('/Users', {
      schemas: [USER_URN],
      userName: p.userName,
      name: { givenName: p.givenName, familyName: p.familyName },
      displayName: `${p.givenName} ${p.familyName}`,
      emails: [{ value: p.userName, type: 'work', primary: true }],
      active: true,
    }));
  }
  const groups = [...new Set(DEMO_PEOPLE.map((p) => p.group))];
  for (const g of groups) {
    const members = DEMO_PEOPLE.filter((p) => p.group === g).map((p) => ({ value: ids.get(p.userName) }));
    await post('/Groups', { schemas: [GROUP_URN], displayName: g, members });
  }
  return ids;
}
