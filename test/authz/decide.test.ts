import { describe, expect, it } from 'vitest';
import type { GroupInfo, Person, PersonMatch } from '../../scim/directory-index.js';
import { decideRole, type RoleRule } from '../../proxy/authz/decide.js';

const analysts: GroupInfo = { id: 'g-1', displayName: 'Analysts', externalId: 'okta-00g1' };
const engineering: GroupInfo = { id: 'g-2', displayName: 'engineering' };
const ops: GroupInfo = { id: 'g-3', displayName: 'ops', externalId: 'entra-ops' };

const RULES: RoleRule[] = [
  { role: 'app_reader', groups: ['analysts', 'engineering'], databases: ['app'] },
  { role: 'app_writer', groups: ['ENGINEERING'], databases: ['app'] },
  { role: 'ops_admin', groups: ['externalId:entra-ops'], databases: ['*'] },
  { role: 'billing_reader', groups: ['id:g-1'], databases: ['billing'] },
];

const person = (userName: string, groups: GroupInfo[], active = true): Person => ({ id: `u-${userName}`, userName, active, groups });
const active = (p: Person): PersonMatch => ({ status: 'active', person: p, via: 'userName' });

const alice = person('alice@corp.com', [analysts]);
const bob = person('Bob@Corp.com', [engineering]);
const carol = person('carol@corp.com', [ops, engineering]);
const nobody = person('dave@corp.com', []);

type Row = [string, { identity?: string; match: PersonMatch; user: string; db: string }, string];

// Expected: the role, or "deny:<reason>:<message>".
const TABLE: Row[] = [
  ['own name -> least privileged role', { match: active(alice), user: 'alice@corp.com', db: 'app' }, 'app_reader'],
  ['own name, case-insensitive', { match: active(alice), user: 'ALICE@corp.COM', db: 'app' }, 'app_reader'],
  ['identity claim differs in case from userName', { identity: 'bob@corp.com', match: active(bob), user: 'bob@corp.com', db: 'app' }, 'app_reader'],
  ['two grants: first in config order wins', { identity: 'Bob@Corp.com', match: active(bob), user: 'Bob@Corp.com', db: 'app' }, 'app_reader'],
  ['explicit role the person is entitled to', { identity: 'Bob@Corp.com', match: active(bob), user: 'app_writer', db: 'app' }, 'app_writer'],
  ['explicit role not entitled', { match: active(alice), user: 'app_writer', db: 'app' }, 'deny:role_not_entitled:"alice@corp.com" may not use role "app_writer"'],
  ['explicit role entitled for another database only', { identity: 'Bob@Corp.com', match: active(bob), user: 'app_writer', db: 'billing' }, 'deny:role_not_entitled:"Bob@Corp.com" may not use role "app_writer"'],
  ['role names are exact', { identity: 'Bob@Corp.com', match: active(bob), user: 'APP_WRITER', db: 'app' }, 'deny:wrong_person:token does not belong to "APP_WRITER"'],
  ['another person\'s name', { match: active(alice), user: 'bob@corp.com', db: 'app' }, 'deny:wrong_person:token does not belong to "bob@corp.com"'],
  ['wildcard database via externalId', { match: active(carol), user: 'carol@corp.com', db: 'anything' }, 'ops_admin'],
  ['externalId reference is exact', { match: active(person('e@corp.com', [{ ...ops, externalId: 'ENTRA-OPS' }])), user: 'e@corp.com', db: 'x' }, 'deny:no_entitlement:no role grants "e@corp.com" access to database "x"'],
  ['id: reference', { match: active(alice), user: 'alice@corp.com', db: 'billing' }, 'billing_reader'],
  ['database names are exact', { match: active(alice), user: 'alice@corp.com', db: 'App' }, 'deny:no_entitlement:no role grants "alice@corp.com" access to database "App"'],
  ['no groups at all', { match: active(nobody), user: 'dave@corp.com', db: 'app' }, 'deny:no_entitlement:no role grants "dave@corp.com" access to database "app"'],
  ['unknown person', { identity: 'eve@corp.com', match: { status: 'unknown' }, user: 'eve@corp.com', db: 'app' }, 'deny:not_provisioned:user "eve@corp.com" is not provisioned'],
  ['ambiguous email fails closed', { identity: 'shared@corp.com', match: { status: 'ambiguous' }, user: 'shared@corp.com', db: 'app' }, 'deny:ambiguous_identity:user "shared@corp.com" is not provisioned'],
  ['deactivated keeps groups but gets nothing', { match: { status: 'inactive', person: person('alice@corp.com', [analysts], false), via: 'userName' }, user: 'app_reader', db: 'app' }, 'deny:deactivated:user "alice@corp.com" is deactivated'],
  ['an address only deactivated users list: same message, the audit says by email', { identity: 'al@corp.com', match: { status: 'inactive', person: person('alice@corp.com', [analysts], false), via: 'email' }, user: 'al@corp.com', db: 'app' }, 'deny:deactivated:email:user "al@corp.com" is deactivated'],
  ['found by email and active: admitted like by userName', { identity: 'g@corp.com', match: { status: 'active', person: person('grace', [analysts]), via: 'email' }, user: 'g@corp.com', db: 'app' }, 'app_reader'],
  ['a person named like a role is the person', { identity: 'app_writer', match: active(person('app_writer', [analysts])), user: 'app_writer', db: 'app' }, 'app_reader'],
];

describe('decideRole', () => {
  it.each(TABLE)('%s', (_name, row, expected) => {
    const identity = row.identity ?? (row.match.status === 'active' || row.match.status === 'inactive' ? row.match.person.userName : 'x');
    const d = decideRole({ identity, match: row.match, requestedUser: row.user, database: row.db, rules: RULES });
    const got = d.kind === 'allow' ? d.rule.role : `deny:${d.reason}:${d.message}`;
    expect(got).toBe(expected);
    if (d.kind === 'deny') expect(d.sqlstate).toBe('28000');
  });
});
