// What the provisioning login must hold (docs/design.md §7 step 6), checked at start and before every
// full reconciliation, each missing piece named: CREATEROLE, ADMIN OPTION on every configured role,
// membership in pg_signal_backend and in provisioning.ownedBy, a connection to each database in
// provisioning.databases. SUPERUSER is never needed and only earns a warning.
import type { TargetDatabase } from './target.js';

export interface PrivilegeNeeds {
  /** The configured roles, which the login grants to people (16+: needs ADMIN OPTION on each). */
  readonly roles: readonly string[];
  readonly ownedBy?: string;
  readonly databases: readonly string[];
}

export interface PrivilegeReport {
  /** Each line names one missing privilege, e.g. `provisioning login lacks CREATEROLE`. */
  readonly missing: readonly string[];
  readonly warnings: readonly string[];
}

/** Asks the server what the provisioning login holds; rejects only when the server cannot be asked. */
export async function checkPrivileges(target: TargetDatabase, needs: PrivilegeNeeds): Promise<PrivilegeReport> {
  const info = await target.info();
  const missing: string[] = [];
  const warnings: string[] = [];
  const self = await target.query<{ rolsuper: boolean; rolcreaterole: boolean; signal: boolean }>(
    `SELECT rolsuper, rolcreaterole, pg_has_role(current_user, 'pg_signal_backend', 'USAGE') AS signal
     FROM pg_roles WHERE rolname = current_user`,
  );
  const me = self.rows[0];
  if (me?.rolsuper === true) {
    warnings.push(`provisioning login "${info.login}" is a superuser; it needs only CREATEROLE and the grants in docs/design.md §7`);
  } else {
    if (me?.rolcreaterole !== true) missing.push('provisioning login lacks CREATEROLE');
    // Without it a deactivated person's open backends could not be ended.
    if (me?.signal !== true) missing.push('provisioning login lacks membership in pg_signal_backend');
  }

  const wanted = [...new Set([...needs.roles, ...(needs.ownedBy === undefined ? [] : [needs.ownedBy])])];
  const roles = await target.query<{ name: string; found: boolean; admin: boolean | null; usage: boolean | null }>(
    `SELECT n.name, r.oid IS NOT NULL AS found,
            pg_has_role(current_user, r.oid, 'MEMBER WITH ADMIN OPTION') AS admin,
            pg_has_role(current_user, r.oid, 'USAGE') AS usage
     FROM unnest($1::text[]) WITH ORDINALITY AS n(name, i) LEFT JOIN pg_roles r ON r.rolname = n.name ORDER BY n.i`,
    [wanted],
  );
  for (const r of roles.rows) {
    const configured = needs.roles.includes(r.name);
    if (!r.found) {
      missing.push(configured ? `configured role "${r.name}" does not exist in the database` : `provisioning.ownedBy role "${r.name}" does not exist`);
      continue;
    }
    // 16+: granting a role needs ADMIN OPTION on it; 15 would take CREATEROLE alone, but the
    // narrower grant is what rolegate asks for everywhere.
    if (configured && r.admin !== true) missing.push(`provisioning login lacks ADMIN OPTION on role "${r.name}"`);
    // REASSIGN OWNED needs the privileges of the role that receives the objects.
    if (r.name === needs.ownedBy && r.usage !== true) missing.push(`provisioning login lacks membership in "${r.name}" (provisioning.ownedBy)`);
  }

  for (const database of needs.databases) {
    try {
      await target.inDatabase(database, (c) => c.query('SELECT 1'));
    } catch (err) {
      missing.push(`provisioning login cannot connect to database "${database}" (${err instanceof Error ? err.message : String(err)})`);
    }
  }
  return { missing, warnings };
}
