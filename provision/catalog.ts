// Reads the database's side of provisioning from the system catalogs: roles (pg_roles), rolegate's
// marker comments (pg_shdescription), memberships (pg_auth_members) and live backends
// (pg_stat_activity), for one person's role or every managed role at once.
import type pg from 'pg';
import type { ActualRole, Membership } from './plan.js';
import { markedFor } from './statements.js';

type Queryable = Pick<pg.ClientBase, 'query'>;

interface RoleRow {
  oid: string;
  rolname: string;
  rolcanlogin: boolean;
  rolinherit: boolean;
  rolsuper: boolean;
  rolcreatedb: boolean;
  rolcreaterole: boolean;
  rolreplication: boolean;
  rolbypassrls: boolean;
  rolconnlimit: number;
  expires: boolean;
  comment: string | null;
  backends: number;
}

interface MemberRow {
  member: string;
  role: string;
  admin_option: boolean;
  inherit_option: boolean;
  set_option: boolean;
  grantor: string;
}

// $1: names looked up by name; $2: the marker comments looked up (or a LIKE pattern for all).
const ROLES = `
  SELECT r.oid::text AS oid, r.rolname, r.rolcanlogin, r.rolinherit, r.rolsuper, r.rolcreatedb, r.rolcreaterole,
         r.rolreplication, r.rolbypassrls, r.rolconnlimit,
         (r.rolvaliduntil IS NOT NULL AND r.rolvaliduntil <> 'infinity') AS expires,
         d.description AS comment, coalesce(a.n, 0)::int AS backends
  FROM pg_roles r
  LEFT JOIN pg_shdescription d ON d.objoid = r.oid AND d.classoid = 'pg_authid'::regclass
  LEFT JOIN (SELECT usesysid, count(*) AS n FROM pg_stat_activity WHERE usesysid IS NOT NULL GROUP BY usesysid) a
         ON a.usesysid = r.oid
  WHERE r.rolname = ANY($1::text[]) OR d.description LIKE ANY($2::text[])`;

/** Memberships of the given roles; the 16+ options are read only where they exist. */
function membersSql(membershipOptions: boolean): string {
  const options = membershipOptions ? 'm.inherit_option, m.set_option' : 'true AS inherit_option, true AS set_option';
  return `
  SELECT m.member::text AS member, g.rolname AS role, m.admin_option, ${options}, coalesce(gr.rolname, '') AS grantor
  FROM pg_auth_members m
  JOIN pg_roles g ON g.oid = m.roleid
  LEFT JOIN pg_roles gr ON gr.oid = m.grantor
  WHERE m.member = ANY($1::oid[])`;
}

/** The marker LIKE pattern of one person (no wildcard can come from an id: % and _ are escaped). */
export function markerPattern(personId: string): string {
  return `rolegate-managed person=${personId.replace(/[\\%_]/g, (c) => `\\${c}`)}`;
}

/** Every marked role (all people). */
export const ALL_MARKED = 'rolegate-managed person=%';

/** Roles named `names` or carrying one of the marker `patterns`, with memberships and backend counts. */
export async function readRoles(
  db: Queryable,
  opts: { names: readonly string[]; patterns: readonly string[]; membershipOptions: boolean },
): Promise<ActualRole[]> {
  const roles = await db.query<RoleRow>(ROLES, [opts.names, opts.patterns]);
  if (roles.rows.length === 0) return [];
  const members = await db.query<MemberRow>(membersSql(opts.membershipOptions), [roles.rows.map((r) => r.oid)]);
  const byMember = new Map<string, Map<string, Membership>>();
  for (const m of members.rows) {
    let map = byMember.get(m.member);
    if (map === undefined) byMember.set(m.member, (map = new Map()));
    const prev = map.get(m.role);
    // 16+ may hold one membership from several grantors: the person has what any of them gives.
    map.set(m.role, {
      admin: m.admin_option || (prev?.admin ?? false),
      inherit: m.inherit_option || (prev?.inherit ?? false),
      set: m.set_option || (prev?.set ?? false),
      grantors: m.grantor === '' ? prev?.grantors ?? [] : [...(prev?.grantors ?? []), m.grantor],
    });
  }
  return roles.rows.map((r) => ({
    oid: r.oid,
    name: r.rolname,
    markedFor: markedFor(r.comment),
    login: r.rolcanlogin,
    inherit: r.rolinherit,
    superuser: r.rolsuper,
    createdb: r.rolcreatedb,
    createrole: r.rolcreaterole,
    replication: r.rolreplication,
    bypassrls: r.rolbypassrls,
    connLimit: r.rolconnlimit,
    expires: r.expires,
    memberOf: byMember.get(r.oid) ?? new Map(),
    backends: r.backends,
  }));
}

/** Objects the role owns, per database (pg_shdepend sees every database of the cluster). */
export async function ownedObjects(db: Queryable, roleOid: string): Promise<{ database: string; objects: number }[]> {
  const { rows } = await db.query<{ database: string; objects: number }>(
    `SELECT coalesce(d.datname, '(shared)') AS database, count(*)::int AS objects
     FROM pg_shdepend s LEFT JOIN pg_database d ON d.oid = s.dbid
     WHERE s.refclassid = 'pg_authid'::regclass AND s.refobjid = $1::oid AND s.deptype = 'o'
     GROUP BY 1 ORDER BY 1`,
    [roleOid],
  );
  return rows;
}
