// The per-person plan (docs/design.md §7 step 3) as a table: directory wish and database state in,
// steps (or a conflict, a retirement, a forgotten record) out.
import { describe, expect, it } from 'vitest';
import { planPerson, wrongAttributes, type ActualRole, type DesiredRole, type Membership, type PlanInput } from '../../provision/plan.js';

const ID = 'person-1';
const want = (over: Partial<DesiredRole> = {}): DesiredRole => ({ personId: ID, userName: 'ana', roleName: 'ana', login: true, memberOf: ['reader'], ...over });
const m = (over: Partial<Membership> = {}): Membership => ({ admin: false, inherit: true, set: true, grantors: ['prov'], ...over });
const role = (over: Partial<ActualRole> = {}): ActualRole => ({
  oid: '100',
  name: 'ana',
  markedFor: ID,
  login: true,
  inherit: true,
  superuser: false,
  createdb: false,
  createrole: false,
  replication: false,
  bypassrls: false,
  connLimit: -1,
  expires: false,
  memberOf: new Map([['reader', m()]]),
  backends: 0,
  ...over,
});
const input = (over: Partial<PlanInput>): PlanInput => ({ personId: ID, desired: want(), recordName: 'ana', own: role(), holder: undefined, membershipOptions: false, ...over });

describe('planPerson', () => {
  it.each<[string, Partial<PlanInput>, unknown]>([
    ['in step', {}, { kind: 'steps', steps: [] }],
    ['new person: create, then grant', { recordName: undefined, own: undefined }, {
      kind: 'steps',
      steps: [{ kind: 'create', role: 'ana', login: true }, { kind: 'grant', role: 'ana', of: 'reader', why: 'missing' }],
    }],
    ['dropped by hand: created again', { own: undefined }, { kind: 'steps', steps: [{ kind: 'create', role: 'ana', login: true }, { kind: 'grant', role: 'ana', of: 'reader', why: 'missing' }] }],
    ['inactive and never provisioned: nothing', { desired: want({ login: false, memberOf: [] }), recordName: undefined, own: undefined }, { kind: 'steps', steps: [] }],
    ['group added', { desired: want({ memberOf: ['reader', 'writer'] }) }, { kind: 'steps', steps: [{ kind: 'grant', role: 'ana', of: 'writer', why: 'missing' }] }],
    ['grant made by hand', { own: role({ memberOf: new Map([['reader', m()], ['admin', m({ grantors: ['postgres'] })]]) }) }, {
      kind: 'steps',
      steps: [{ kind: 'revoke', role: 'ana', of: 'admin', grantors: ['postgres'] }],
    }],
    ['ADMIN OPTION on a granted role', { own: role({ memberOf: new Map([['reader', m({ admin: true })]]) }) }, {
      kind: 'steps',
      steps: [{ kind: 'revoke_admin', role: 'ana', of: 'reader', grantors: ['prov'] }],
    }],
    ['16+: SET taken away is granted again', { membershipOptions: true, own: role({ memberOf: new Map([['reader', m({ set: false })]]) }) }, {
      kind: 'steps',
      steps: [{ kind: 'grant', role: 'ana', of: 'reader', why: 'options' }],
    }],
    ['before 16 options are not looked at', { membershipOptions: false, own: role({ memberOf: new Map([['reader', m({ set: false, inherit: false })]]) }) }, { kind: 'steps', steps: [] }],
    ['deactivated with backends open', { desired: want({ login: false, memberOf: [] }), own: role({ backends: 2 }) }, {
      kind: 'steps',
      steps: [
        { kind: 'disable', role: 'ana' },
        { kind: 'revoke', role: 'ana', of: 'reader', grantors: ['prov'] },
        { kind: 'terminate', role: 'ana', backends: 2 },
      ],
    }],
    ['reactivated', { own: role({ login: false, memberOf: new Map() }) }, {
      kind: 'steps',
      steps: [{ kind: 'enable', role: 'ana' }, { kind: 'grant', role: 'ana', of: 'reader', why: 'missing' }],
    }],
    ['attributes changed by hand', { own: role({ createdb: true, connLimit: 5, inherit: false }) }, {
      kind: 'steps',
      steps: [{ kind: 'normalize', role: 'ana', attributes: ['INHERIT', 'NOCREATEDB', 'CONNECTION LIMIT -1'] }],
    }],
    ['userName changed: renamed first', { desired: want({ roleName: 'ana.new', userName: 'ana.new' }) }, {
      kind: 'steps',
      steps: [{ kind: 'rename', role: 'ana', to: 'ana.new' }],
    }],
    ['secret refused at login', { resetSecret: true }, { kind: 'steps', steps: [{ kind: 'password', role: 'ana' }] }],
    ['a role rolegate did not create has the name', { recordName: undefined, own: undefined, holder: role({ markedFor: undefined }) }, {
      kind: 'conflict',
      role: 'ana',
      detail: 'role "ana" exists and was not created by rolegate; it is left as it is',
    }],
    ['another person\'s role has the name', { recordName: undefined, own: undefined, holder: role({ markedFor: 'person-2' }) }, {
      kind: 'conflict',
      role: 'ana',
      detail: 'role "ana" belongs to another person managed by rolegate',
    }],
    ['the role on record lost its marker (replaced by hand)', { own: role({ markedFor: undefined }) }, {
      kind: 'conflict',
      role: 'ana',
      detail: 'role "ana" exists and was not created by rolegate; it is left as it is',
    }],
    ['rename onto a name someone else holds', { desired: want({ roleName: 'bob' }), holder: role({ name: 'bob', markedFor: undefined }) }, {
      kind: 'conflict',
      role: 'bob',
      detail: 'role "bob" exists and was not created by rolegate; it is left as it is',
    }],
    ['deleted: retire', { desired: undefined }, { kind: 'retire', role: role() }],
    ['deleted and gone: forget the record', { desired: undefined, own: undefined }, { kind: 'forget', detail: 'role "ana" no longer exists' }],
    ['deleted, and the role is no longer rolegate\'s: left alone', { desired: undefined, own: role({ markedFor: 'person-2' }) }, {
      kind: 'forget',
      detail: 'role "ana" no longer carries rolegate\'s marker for this person and is left alone',
    }],
    ['deleted, never provisioned', { desired: undefined, recordName: undefined, own: undefined }, { kind: 'steps', steps: [] }],
    ['marked but on no record and not in the directory (a store that lost its records): left alone', { desired: undefined, recordName: undefined }, {
      kind: 'unrecorded',
      role: 'ana',
      detail: 'role "ana" carries rolegate\'s marker for a person who is neither in the directory nor on record: left alone (drop it by hand if it is not needed)',
    }],
  ])('%s', (_name, over, expected) => {
    expect(planPerson(input(over))).toEqual(expected);
  });

  it('lists the attributes a managed role must not have', () => {
    expect(wrongAttributes({ inherit: false, superuser: true, createdb: true, createrole: true, replication: true, bypassrls: true, connLimit: 0, expires: true })).toEqual([
      'INHERIT', 'NOSUPERUSER', 'NOCREATEDB', 'NOCREATEROLE', 'NOREPLICATION', 'NOBYPASSRLS', 'CONNECTION LIMIT -1', `VALID UNTIL 'infinity'`,
    ]);
  });
});
