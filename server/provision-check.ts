// `rolegate provision check` (docs/design.md §7 step 4): the directory against the database, exactly as
// the reconciler compares them, printed and never changed; plus any privilege the login lacks.
import { compareAll } from '../provision/compare.js';
import { checkPrivileges } from '../provision/privileges.js';
import { TargetDatabase } from '../provision/target.js';
import { openStore } from '../scim/store/open.js';
import type { Config } from './config/schema.js';
import { perUser, roleGrants, storeDirectory } from './provisioning.js';

export interface ProvisionCheckResult {
  /** Lines for stdout. */
  readonly lines: readonly string[];
  /** Differences and missing privileges; the command exits 1 when there is any. */
  readonly problems: number;
}

export class NotPerUserError extends Error {
  override readonly name = 'NotPerUserError';
}

/** Reads the store and the database once; rejects with NotPerUserError when provisioning is off. */
export async function provisionCheck(config: Readonly<Config>): Promise<ProvisionCheckResult> {
  const p = perUser(config);
  if (p === undefined) throw new NotPerUserError('provisioning.mode is not per-user: there is nothing to compare');
  const store = await openStore(config.directory.store);
  const target = new TargetDatabase(p.adminUrl, { onBackgroundError: () => undefined });
  try {
    const roles = () => config.roles;
    const privileges = await checkPrivileges(target, { roles: config.roles.map((r) => r.role), ...(p.ownedBy === undefined ? {} : { ownedBy: p.ownedBy }), databases: p.databases });
    // A one-shot read: no changes are followed, so the directory needs no index.
    const directory = storeDirectory(store, { onPersonsChanged: () => () => undefined });
    const c = await compareAll({ target, directory, records: store.personalRoles, grants: roleGrants(roles), rolePrefix: p.rolePrefix });
    const lines: string[] = [];
    for (const m of privileges.missing) lines.push(`privilege: ${m}`);
    for (const w of privileges.warnings) lines.push(`warning: ${w}`);
    for (const d of c.differences) {
      const who = d.userName === '' ? `(deleted person ${d.personId})` : d.userName;
      for (const l of d.lines) lines.push(`${who}: ${l}`);
    }
    for (const m of c.mapped) lines.push(`name: userName "${m.userName}" has role "${m.roleName}" (${m.why})`);
    const problems = privileges.missing.length + c.differences.length;
    lines.push(
      problems === 0
        ? `in step: ${c.people} people, ${c.mapped.length} mapped names, no differences`
        : `${c.differences.length} ${c.differences.length === 1 ? 'person differs' : 'people differ'} of ${c.people}, ${privileges.missing.length} missing privileges`,
    );
    return { lines, problems };
  } finally {
    await target.close().catch(() => undefined);
    await store.close();
  }
}
