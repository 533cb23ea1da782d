// What one person's role needs (docs/design.md §7 step 3): the directory's wish against the
// database's state, as steps. Pure: no I/O, table-tested (test/provision/plan.test.ts).
import { personalRoleName } from './naming.js';
import type { RoleGrants, Subject } from './ports.js';

/** What the directory says the person's role should be. */
export interface DesiredRole {
  readonly personId: string;
  readonly userName: string;
  readonly roleName: string;
  /** Active people log in; inactive ones keep a disabled role. */
  readonly login: boolean;
  /** Configured roles the person's groups grant, sorted, no duplicates (empty when inactive). */
  readonly memberOf: readonly string[];
}

/** The role the directory asks for: named after the userName, LOGIN and the granted roles while active. */
export function desiredRole(subject: Subject, grants: Pick<RoleGrants, 'grantedBy'>, rolePrefix: string): DesiredRole {
  return {
    personId: subject.id,
    userName: subject.userName,
    roleName: personalRoleName(subject.userName, rolePrefix),
    login: subject.active,
    // D25: an inactive person keeps their groups in the directory, but their role keeps no grant.
    memberOf: subject.active ? [...new Set(grants.grantedBy(subject.groups))].sort() : [],
  };
}

/** A membership of the person's role as pg_auth_members shows it. */
export interface Membership {
  readonly admin: boolean;
  /** PostgreSQL 16+ grant options; before 16 both are true (inheritance is the role's INHERIT attribute). */
  readonly inherit: boolean;
  readonly set: boolean;
  /** Who granted it (16+ keeps one membership per grantor; a REVOKE removes only the grant it names). */
  readonly grantors: readonly string[];
}

/** Attributes a managed role must have, beside LOGIN: what normalize repairs. */
export interface RoleAttributes {
  readonly inherit: boolean;
  readonly superuser: boolean;
  readonly createdb: boolean;
  readonly createrole: boolean;
  readonly replication: boolean;
  readonly bypassrls: boolean;
  /** rolconnlimit; -1 is none. */
  readonly connLimit: number;
  /** rolvaliduntil is set to something other than infinity. */
  readonly expires: boolean;
}

/** A role as pg_roles, pg_shdescription, pg_auth_members and pg_stat_activity show it. */
export interface ActualRole extends RoleAttributes {
  readonly oid: string;
  readonly name: string;
  /** The SCIM id in rolegate's marker comment, or undefined when the role carries none. */
  readonly markedFor: string | undefined;
  readonly login: boolean;
  readonly memberOf: ReadonlyMap<string, Membership>;
  /** Backends logged in as this role now. */
  readonly backends: number;
}

export interface PlanInput {
  readonly personId: string;
  /** undefined: the person is deleted from the directory. */
  readonly desired: DesiredRole | undefined;
  /** The role the store's record names, if there is a record. */
  readonly recordName: string | undefined;
  /** The person's role in the database: under the record's name, or carrying their marker. */
  readonly own: ActualRole | undefined;
  /** The role that has the desired name, when that is not `own`. */
  readonly holder: ActualRole | undefined;
  /** PostgreSQL 16+: memberships carry INHERIT and SET options. */
  readonly membershipOptions: boolean;
  /** Set the secret again (the database refused it at login, so it was changed behind our back). */
  readonly resetSecret?: boolean;
}

/** One change to the person's role; `role` is its name when the step runs. */
export type Step =
  | { readonly kind: 'create'; readonly role: string; readonly login: boolean }
  | { readonly kind: 'rename'; readonly role: string; readonly to: string }
  | { readonly kind: 'enable' | 'disable'; readonly role: string }
  | { readonly kind: 'normalize'; readonly role: string; readonly attributes: readonly string[] }
  | { readonly kind: 'password'; readonly role: string }
  | { readonly kind: 'grant'; readonly role: string; readonly of: string; readonly why: 'missing' | 'options' }
  | { readonly kind: 'revoke'; readonly role: string; readonly of: string; readonly grantors: readonly string[] }
  | { readonly kind: 'revoke_admin'; readonly role: string; readonly of: string; readonly grantors: readonly string[] }
  | { readonly kind: 'terminate'; readonly role: string; readonly backends: number };

export type Plan =
  /** Changes to make, in order (empty: in step). */
  | { readonly kind: 'steps'; readonly steps: readonly Step[] }
  /** A role that is not this person's stands where theirs must be: reported, never touched. */
  | { readonly kind: 'conflict'; readonly role: string; readonly detail: string }
  /** The person is deleted and their role is there: disable, hand over what it owns, drop. */
  | { readonly kind: 'retire'; readonly role: ActualRole }
  /** The record names a role that is gone (or no longer rolegate's): forget the record. */
  | { readonly kind: 'forget'; readonly detail: string }
  /** A marked role nobody is on record for: reported, never touched. */
  | { readonly kind: 'unrecorded'; readonly role: string; readonly detail: string };

const IN_STEP: Plan = Object.freeze({ kind: 'steps', steps: Object.freeze([]) });

/** The steps that bring the database to what the directory says, or why it must not be touched. */
export function planPerson(input: PlanInput): Plan {
  const { desired, own, holder, personId } = input;
  if (desired === undefined) {
    if (own === undefined) return input.recordName === undefined ? IN_STEP : { kind: 'forget', detail: `role "${input.recordName}" no longer exists` };
    // Marked, but neither in the directory nor on record: a store that lost its records (or a
    // directory pointed at the wrong store) must not make rolegate drop everyone's roles.
    if (input.recordName === undefined) {
      return { kind: 'unrecorded', role: own.name, detail: `role "${own.name}" carries rolegate's marker for a person who is neither in the directory nor on record: left alone (drop it by hand if it is not needed)` };
    }
    if (own.markedFor !== personId) {
      return { kind: 'forget', detail: `role "${own.name}" no longer carries rolegate's marker for this person and is left alone` };
    }
    return { kind: 'retire', role: own };
  }

  if (own === undefined) {
    if (holder !== undefined) return conflict(holder, personId);
    // An inactive person who never had a role (or whose role was dropped by hand) needs none until
    // they are active again.
    if (!desired.login) return IN_STEP;
    return { kind: 'steps', steps: [{ kind: 'create', role: desired.roleName, login: true }, ...grants(desired, undefined, input.membershipOptions)] };
  }
  // Found under the record's name but without this person's marker: someone replaced the role.
  if (own.markedFor !== personId) return conflict(own, personId);

  const steps: Step[] = [];
  let role = own.name;
  if (own.name !== desired.roleName) {
    if (holder !== undefined) return conflict(holder, personId);
    steps.push({ kind: 'rename', role, to: desired.roleName });
    role = desired.roleName;
  }
  if (own.login !== desired.login) steps.push({ kind: desired.login ? 'enable' : 'disable', role });
  const wrong = wrongAttributes(own);
  if (wrong.length > 0) steps.push({ kind: 'normalize', role, attributes: wrong });
  if (input.resetSecret === true && desired.login) steps.push({ kind: 'password', role });
  steps.push(...grants(desired, own, input.membershipOptions, role));
  if (!desired.login && own.backends > 0) steps.push({ kind: 'terminate', role, backends: own.backends });
  return steps.length === 0 ? IN_STEP : { kind: 'steps', steps };
}

function grants(desired: DesiredRole, own: ActualRole | undefined, membershipOptions: boolean, role = desired.roleName): Step[] {
  const steps: Step[] = [];
  const have = own?.memberOf ?? new Map<string, Membership>();
  for (const of of desired.memberOf) {
    const m = have.get(of);
    if (m === undefined) steps.push({ kind: 'grant', role, of, why: 'missing' });
    else {
      // ADMIN would let the person pass the role on; without SET (16+) the login's `role` setting
      // and SET ROLE fail; without INHERIT the role's INHERIT attribute means nothing.
      if (m.admin) steps.push({ kind: 'revoke_admin', role, of, grantors: m.grantors });
      if (membershipOptions && (!m.inherit || !m.set)) steps.push({ kind: 'grant', role, of, why: 'options' });
    }
  }
  const wanted = new Set(desired.memberOf);
  for (const [of, m] of [...have].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    if (!wanted.has(of)) steps.push({ kind: 'revoke', role, of, grantors: m.grantors });
  }
  return steps;
}

/** ALTER ROLE options that put each drifted attribute back (docs/design.md §7 step 4). */
export function wrongAttributes(a: RoleAttributes): string[] {
  const out: string[] = [];
  if (!a.inherit) out.push('INHERIT');
  if (a.superuser) out.push('NOSUPERUSER');
  if (a.createdb) out.push('NOCREATEDB');
  if (a.createrole) out.push('NOCREATEROLE');
  if (a.replication) out.push('NOREPLICATION');
  if (a.bypassrls) out.push('NOBYPASSRLS');
  if (a.connLimit !== -1) out.push('CONNECTION LIMIT -1');
  if (a.expires) out.push(`VALID UNTIL 'infinity'`);
  return out;
}

function conflict(role: ActualRole, personId: string): Plan {
  return {
    kind: 'conflict',
    role: role.name,
    detail:
      role.markedFor === undefined
        ? `role "${role.name}" exists and was not created by rolegate; it is left as it is`
        : role.markedFor === personId
          ? `role "${role.name}" is marked for this person but is not the one on record`
          : `role "${role.name}" belongs to another person managed by rolegate`,
  };
}

/** A step's `provisioning` audit action (docs/design.md §6). */
export function stepAction(step: Step): 'create' | 'grant' | 'revoke' | 'disable' | 'enable' | 'rename' | 'normalize' | 'password' | 'terminate' {
  switch (step.kind) {
    case 'revoke_admin':
      return 'revoke';
    default:
      return step.kind;
  }
}

/** One line for the audit's `detail` and `provision check`. */
export function describeStep(step: Step): string {
  switch (step.kind) {
    case 'create':
      return `missing role "${step.role}"`;
    case 'rename':
      return `role "${step.role}" is named after an earlier userName: rename to "${step.to}"`;
    case 'enable':
      return `login disabled for an active person: "${step.role}"`;
    case 'disable':
      return `login enabled for an inactive person: "${step.role}"`;
    case 'normalize':
      return `role "${step.role}" has attributes rolegate does not give: set ${step.attributes.join(', ')}`;
    case 'password':
      return `the database refused the login secret of "${step.role}": set it again`;
    case 'grant':
      return step.why === 'missing'
        ? `missing grant: "${step.role}" is not a member of "${step.of}"`
        : `grant options: "${step.role}" in "${step.of}" lacks INHERIT or SET`;
    case 'revoke':
      return `extra grant: "${step.role}" is a member of "${step.of}", which the person's groups do not grant`;
    case 'revoke_admin':
      return `extra grant: "${step.role}" holds ADMIN OPTION on "${step.of}"`;
    case 'terminate':
      return `inactive person has ${step.backends} backend${step.backends === 1 ? '' : 's'} as "${step.role}"`;
  }
}
