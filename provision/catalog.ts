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
  members: MemberJson[];
}

interface MemberJson {
  role: string;
  admin: boolean;
  inherit: boolean;
  set: boolean;
  grantor: string;
}

/**
 * Roles by name or marker, each with its memberships (as JSON) and backend count, in one statement.
 * $1: names; $2: marker LIKE patterns, if any. The 16+ grant options are read only where they exist.
 * Names are an index lookup; markers scan pg_shdescription, so a person's pass looks for a marker
 * only when the name on record is not there.
 */
// With thousands of names (a full reconciliation), `IN (SELECT unnest(...))` is a hashed subplan: one
// hash probe per role, where `= ANY(array)` beside an OR compares each role with every name.
const NAMED_OR_MARKED = 'r.rolname IN (SELECT unnest($1::text[])) OR d.description LIKE ANY($2::text[])';

function rolesSql(membershipOptions: boolean, byMarker: boolean): string {
  const options = membershipOptions ? `'inherit', m.inherit_option, 'set', m.set_option` : `'inherit', true, 'set', true`;
  return `
  SELECT r.oid::text AS oid, r.rolname, r.rolcanlogin, r.rolinherit, r.rolsuper, r.rolcreatedb, r.rolcreaterole,
         r.rolreplication, r.rolbypassrls, r.rolconnlimit,
         (r.rolvaliduntil IS NOT NULL AND r.rolvaliduntil <> 'infinity') AS expires,
         d.description AS comment, coalesce(a.n, 0)::int AS backends,
         coalesce((SELECT json_agg(json_build_object('role', g.rolname, 'admin', m.admin_option, ${options}, 'grantor', coalesce(gr.rolname, '')))
                   FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid LEFT JOIN pg_roles gr ON gr.oid = m.grantor
                   WHERE m.member = r.oid), '[]') AS members
  FROM pg_roles r
  LEFT JOIN pg_shdescription d ON d.objoid = r.oid AND d.classoid = 'pg_authid'::regclass
  LEFT JOIN (SELECT usesysid, count(*) AS n FROM pg_stat_activity WHERE usesysid IS NOT NULL GROUP BY usesysid) a
         ON a.usesysid = r.oid
  WHERE ${byMarker ? NAMED_OR_MARKED : 'r.rolname = ANY($1::text[])'}`;
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
  const byMarker = opts.patterns.length > 0;
  const { rows } = await db.query<RoleRow>(rolesSql(opts.membershipOptions, byMarker), byMarker ? [opts.names, opts.patterns] : [opts.names]);
  return rows.map((r) => ({
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
    memberOf: memberships(r.members),
    backends: r.backends,
  }));
}

/** 16+ may hold one membership from several grantors: the person has what any of them gives. */
function memberships(rows: readonly MemberJson[]): Map<string, Membership> {
  const map = new Map<string, Membership>();
  for (const m of rows) {
    const prev = map.get(m.role);
    map.set(m.role, {
      admin: m.admin || (prev?.admin ?? false),
      inherit: m.inherit || (prev?.inherit ?? false),
      set: m.set || (prev?.set ?? false),
      grantors: m.grantor === '' ? prev?.grantors ?? [] : [...(prev?.grantors ?? []), m.grantor],
    });
  }
  return map;
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
