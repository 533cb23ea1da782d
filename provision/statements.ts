// The SQL text of each provisioning step (docs/design.md §7 step 3). Pure: names in, statements out,
// every identifier quoted. Only what PostgreSQL 13 already understands, except the grant options of
// 16+, which are added only when the server has them; CockroachDB lacks INHERIT as a keyword and
// the role default is INHERIT anyway, so CREATE ROLE leaves it out.
import { quoteIdent as q, quoteLiteral as lit } from './sql-text.js';

/** The comment that marks a role as rolegate's, naming the SCIM user it belongs to. */
export function marker(personId: string): string {
  return `rolegate-managed person=${personId}`;
}

/** The SCIM id in a marker comment, or undefined for any other comment. */
export function markedFor(comment: string | null | undefined): string | undefined {
  const prefix = 'rolegate-managed person=';
  return comment?.startsWith(prefix) ? comment.slice(prefix.length) : undefined;
}

/** CREATE ROLE with the verifier and, in the same transaction, the marker comment. */
export function createRole(role: string, login: boolean, verifier: string, personId: string): string[] {
  return [
    `CREATE ROLE ${q(role)} ${login ? 'LOGIN' : 'NOLOGIN'} PASSWORD ${lit(verifier)}`,
    `COMMENT ON ROLE ${q(role)} IS ${lit(marker(personId))}`,
  ];
}

export function renameRole(role: string, to: string): string {
  return `ALTER ROLE ${q(role)} RENAME TO ${q(to)}`;
}

export function setLogin(role: string, login: boolean): string {
  return `ALTER ROLE ${q(role)} ${login ? 'LOGIN' : 'NOLOGIN'}`;
}

/** `attributes` come from plan.ts's fixed list, never from input. */
export function normalizeRole(role: string, attributes: readonly string[]): string {
  return `ALTER ROLE ${q(role)} ${attributes.join(' ')}`;
}

export function setPassword(role: string, verifier: string): string {
  return `ALTER ROLE ${q(role)} PASSWORD ${lit(verifier)}`;
}

/**
 * Membership in a configured role. On 16+ the options are explicit (SET for the login's `role`
 * setting and SET ROLE, INHERIT as the contract's INHERIT role, never ADMIN) and a GRANT of an
 * existing membership updates them; before 16 a member may always SET ROLE and inherits through the
 * role's own INHERIT attribute.
 */
export function grantRole(of: string, role: string, membershipOptions: boolean): string {
  return `GRANT ${q(of)} TO ${q(role)}${membershipOptions ? ' WITH INHERIT TRUE, SET TRUE' : ''}`;
}

/**
 * Ends a membership. On 16+ a membership is kept per grantor and a REVOKE without GRANTED BY only
 * removes the current user's grant (a WARNING for the rest), so each grantor is named; a grant
 * made by a role whose privileges the login lacks (the bootstrap superuser) then fails loudly
 * instead of staying silently. Before 16 one REVOKE removes the membership whoever granted it.
 */
export function revokeRole(of: string, role: string, grantors: readonly string[], membershipOptions: boolean): string[] {
  if (!membershipOptions || grantors.length === 0) return [`REVOKE ${q(of)} FROM ${q(role)}`];
  return grantors.map((g) => `REVOKE ${q(of)} FROM ${q(role)} GRANTED BY ${q(g)}`);
}

export function revokeAdmin(of: string, role: string, grantors: readonly string[], membershipOptions: boolean): string[] {
  if (!membershipOptions || grantors.length === 0) return [`REVOKE ADMIN OPTION FOR ${q(of)} FROM ${q(role)}`];
  return grantors.map((g) => `REVOKE ADMIN OPTION FOR ${q(of)} FROM ${q(role)} GRANTED BY ${q(g)}`);
}

/** Ends the role's backends; $1 is its oid. The count of those signalled comes back. */
export const TERMINATE_BACKENDS = 'SELECT count(*) FILTER (WHERE pg_terminate_backend(pid))::int AS n FROM pg_stat_activity WHERE usesysid = $1::oid';

/**
 * REASSIGN OWNED and DROP OWNED need the privileges of the role (has_privs_of_role): the provisioning
 * login lends itself the person's role for the hand-over. PostgreSQL 16+ lets it because CREATE ROLE
 * gave it ADMIN OPTION on the role; 15 and older because of CREATEROLE.
 */
export function borrowRole(role: string, membershipOptions: boolean): string {
  return `GRANT ${q(role)} TO CURRENT_USER${membershipOptions ? ' WITH INHERIT TRUE' : ''}`;
}

export function returnRole(role: string): string {
  return `REVOKE ${q(role)} FROM CURRENT_USER`;
}

export function reassignOwned(role: string, to: string): string {
  return `REASSIGN OWNED BY ${q(role)} TO ${q(to)}`;
}

export function dropOwned(role: string): string {
  return `DROP OWNED BY ${q(role)}`;
}

export function dropRole(role: string): string {
  return `DROP ROLE ${q(role)}`;
}
