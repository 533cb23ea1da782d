// The whole directory against the whole database in a few reads (docs/design.md §7 step 4): every
// person, every record and every role carrying rolegate's marker, planned person by person. The
// reconciler repairs what differs; `rolegate provision check` prints it and changes nothing.
import { ALL_MARKED, readRoles } from './catalog.js';
import { fromStore } from './errors.js';
import { unusableBecause } from './naming.js';
import { describeStep, desiredRole, planPerson, type ActualRole, type DesiredRole, type Plan } from './plan.js';
import type { PersonalRoleRecord, PersonalRoleRecords, ProvisioningDirectory, RoleGrants } from './ports.js';
import type { TargetDatabase } from './target.js';

export interface Difference {
  readonly personId: string;
  readonly userName: string;
  /** The role concerned (the desired name, or the one on record for a deleted person). */
  readonly role: string;
  /** What differs, one line each, as `provision check` prints it. */
  readonly lines: readonly string[];
  readonly plan: Exclude<Plan, { kind: 'steps'; steps: readonly [] }>;
}

/** A person whose role is in step with the directory: the reconciler marks them ready without a pass. */
export interface InStep {
  readonly personId: string;
  readonly roleName: string;
  readonly login: boolean;
  readonly sealedSecret: string;
}

/** A userName that cannot be a role name as it is, and the name it maps to. */
export interface MappedName {
  readonly userName: string;
  readonly roleName: string;
  readonly why: string;
}

export interface Comparison {
  readonly differences: readonly Difference[];
  readonly inStep: readonly InStep[];
  readonly mapped: readonly MappedName[];
  readonly people: number;
}

export interface CompareDeps {
  readonly target: TargetDatabase;
  readonly directory: Pick<ProvisioningDirectory, 'everyone'>;
  readonly records: Pick<PersonalRoleRecords, 'list'>;
  readonly grants: Pick<RoleGrants, 'grantedBy'>;
  readonly rolePrefix: string;
}

/** Reads directory, records and catalogs once and plans everyone; changes nothing. */
export async function compareAll(deps: CompareDeps): Promise<Comparison> {
  const [everyone, records, info] = await Promise.all([fromStore(deps.directory.everyone()), fromStore(deps.records.list()), deps.target.info()]);
  const desired = new Map<string, DesiredRole>();
  const mapped: MappedName[] = [];
  for (const s of everyone) {
    const d = desiredRole(s, deps.grants, deps.rolePrefix);
    desired.set(s.id, d);
    const why = unusableBecause(s.userName);
    if (why !== undefined) mapped.push({ userName: s.userName, roleName: d.roleName, why });
  }
  const byPerson = new Map<string, PersonalRoleRecord>(records.map((r) => [r.personId, r]));
  const names = new Set<string>();
  for (const d of desired.values()) names.add(d.roleName);
  for (const r of records) names.add(r.roleName);

  const roles = await deps.target.withClient((c) =>
    readRoles(c, { names: [...names], patterns: [ALL_MARKED], membershipOptions: info.membershipOptions }),
  );
  const byName = new Map<string, ActualRole>(roles.map((r) => [r.name, r]));
  const byMarker = new Map<string, ActualRole>();
  for (const r of roles) if (r.markedFor !== undefined && !byMarker.has(r.markedFor)) byMarker.set(r.markedFor, r);

  // Everyone the directory knows and everyone on record. A marked role of anyone else is left out:
  // it may be another deployment's on the same cluster, and rolegate never acts without a record.
  const ids = new Set<string>([...desired.keys(), ...byPerson.keys()]);
  const differences: Difference[] = [];
  const inStep: InStep[] = [];
  for (const id of ids) {
    const d = desired.get(id);
    const rec = byPerson.get(id);
    const own = (rec === undefined ? undefined : byName.get(rec.roleName)) ?? byMarker.get(id);
    const holderRole = d === undefined ? undefined : byName.get(d.roleName);
    const holder = holderRole !== undefined && holderRole !== own ? holderRole : undefined;
    const plan = planPerson({ personId: id, desired: d, recordName: rec?.roleName, own, holder, membershipOptions: info.membershipOptions });
    const userName = d?.userName ?? rec?.userName ?? '';
    if (plan.kind === 'steps' && plan.steps.length === 0) {
      if (rec !== undefined && own !== undefined && d !== undefined) {
        inStep.push({ personId: id, roleName: own.name, login: d.login, sealedSecret: rec.sealedSecret });
      }
      continue;
    }
    differences.push({
      personId: id,
      userName,
      role: d?.roleName ?? rec?.roleName ?? own?.name ?? '',
      lines: linesOf(plan, rec),
      plan: plan as Difference['plan'],
    });
  }
  differences.sort((a, b) => (a.role < b.role ? -1 : a.role > b.role ? 1 : 0));
  return { differences, inStep, mapped, people: desired.size };
}

function linesOf(plan: Plan, rec: PersonalRoleRecord | undefined): string[] {
  switch (plan.kind) {
    case 'steps':
      return plan.steps.map(describeStep);
    case 'conflict':
      return [`conflict: ${plan.detail}`];
    case 'retire':
      return [`person deleted, role "${plan.role.name}" still exists${plan.role.login ? ' and can log in' : ''}`];
    case 'forget':
      return [`record of "${rec?.roleName ?? ''}" without its role: ${plan.detail}`];
    case 'unrecorded':
      return [plan.detail];
  }
}
