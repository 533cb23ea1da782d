// The access decision of docs/design.md §2 steps 5-6: from a verified identity, the directory's answer,
// the startup `user` and `database`, to one role or a refusal. Pure: no I/O, no clock.
import type { GroupInfo, PersonMatch } from './directory.js';

/** A `roles` entry as far as the decision is concerned (least privileged first in the config). */
export interface RoleRule {
  readonly role: string;
  /** displayName (case-insensitive), `id:<scim id>` or `externalId:<idp id>` (both exact). */
  readonly groups: readonly string[];
  /** Database names (exact, as PostgreSQL compares them) or `*`. */
  readonly databases: readonly string[];
}

export interface DecisionInput {
  /** The token's identity claim value. */
  readonly identity: string;
  readonly match: PersonMatch;
  /** The startup packet's `user`. */
  readonly requestedUser: string;
  readonly database: string;
  readonly rules: readonly RoleRule[];
}

/**
 * Why a login is refused; the audit `reason` of a `session.denied` event. The person reasons tell
 * apart what the client sees as one message (docs/design.md §2 step 5):
 * - `not_provisioned`: no user has the identity as userName or in emails.
 * - `ambiguous_identity`: no userName matches and several active users list the address in emails.
 * - `deactivated`: the user with that userName is inactive (final: emails are not consulted).
 * - `deactivated:email`: no userName matches and only inactive users list the address in emails.
 */
export type DenyReason =
  | 'not_provisioned'
  | 'ambiguous_identity'
  | 'deactivated'
  | 'deactivated:email'
  | 'wrong_person'
  | 'role_not_entitled'
  | 'no_entitlement';

export type Decision<R extends RoleRule = RoleRule> =
  | { readonly kind: 'allow'; readonly rule: R; readonly personId: string; readonly userName: string; readonly groups: readonly GroupInfo[] }
  | { readonly kind: 'deny'; readonly reason: DenyReason; readonly sqlstate: '28000'; readonly message: string };

const deny = (reason: DenyReason, message: string): Decision<never> => ({ kind: 'deny', reason, sqlstate: '28000', message });

/**
 * Decides the role. A startup `user` naming the person (their userName or the token's identity,
 * case-insensitively) asks for the least-privileged entitled role; a `user` naming a configured role
 * asks for that role; anything else is another person. A person's own name wins over a role of the
 * same name, so nobody can be pushed into a role by a name collision.
 */
export function decideRole<R extends RoleRule>(input: DecisionInput & { readonly rules: readonly R[] }): Decision<R> {
  const { match, identity } = input;
  const rules: readonly R[] = input.rules;
  if (match.status === 'unknown') return deny('not_provisioned', `user "${identity}" is not provisioned`);
  // Two active people share the address the token names: refuse rather than guess. The client sees
  // the not-provisioned text (the directory is what needs fixing); the audit reason says why.
  if (match.status === 'ambiguous') return deny('ambiguous_identity', `user "${identity}" is not provisioned`);
  if (match.status === 'inactive') {
    return deny(match.via === 'email' ? 'deactivated:email' : 'deactivated', `user "${identity}" is deactivated`);
  }

  const person = match.person;
  const requested = input.requestedUser.toLowerCase();
  const wantsDefault = requested === person.userName.toLowerCase() || requested === identity.toLowerCase();
  const entitled = (rule: R) => grantsDatabase(rule, input.database) && grantsPerson(rule, person.groups);
  const allow = (rule: R): Decision<R> => ({ kind: 'allow', rule, personId: person.id, userName: person.userName, groups: person.groups });

  if (wantsDefault) {
    const rule = rules.find(entitled);
    return rule ? allow(rule) : deny('no_entitlement', `no role grants "${person.userName}" access to database "${input.database}"`);
  }
  // Role names are PostgreSQL identifiers as the client typed them: compared exactly.
  const named = rules.find((r) => r.role === input.requestedUser);
  if (named === undefined) return deny('wrong_person', `token does not belong to "${input.requestedUser}"`);
  return entitled(named) ? allow(named) : deny('role_not_entitled', `"${person.userName}" may not use role "${named.role}"`);
}

function grantsDatabase(rule: RoleRule, database: string): boolean {
  return rule.databases.includes('*') || rule.databases.includes(database);
}

function grantsPerson(rule: RoleRule, groups: readonly GroupInfo[]): boolean {
  for (const ref of rule.groups) {
    for (const g of groups) if (groupMatches(ref, g)) return true;
  }
  return false;
}

/** `id:` and `externalId:` references are exact; a bare name matches displayName case-insensitively. */
export function groupMatches(ref: string, group: GroupInfo): boolean {
  if (ref.startsWith('id:')) return group.id === ref.slice(3);
  if (ref.startsWith('externalId:')) return group.externalId !== undefined && group.externalId === ref.slice(11);
  return ref.toLowerCase() === group.displayName.toLowerCase();
}
