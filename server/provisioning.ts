// Per-user provisioning plugged into the server (docs/design.md §7): the provisioner reads people fresh
// from the directory store, hears of changes from the directory index, keeps its records in the store,
// takes the configured roles as grants, and serves the data path's PersonalRoles port.
import { groupMatches, type RoleRule } from '../proxy/authz/decide.js';
import type { AuditLog } from '../audit/emitter.js';
import type { Logger } from '../lib/log.js';
import { ProvisioningEngine } from '../provision/engine.js';
import type { ProvisioningDirectory, RoleGrants, Subject, SubjectGroup } from '../provision/ports.js';
import { SecretBox } from '../provision/secret-box.js';
import { TargetDatabase } from '../provision/target.js';
import type { DirectoryIndex } from '../scim/directory-index.js';
import type { DirectoryStore } from '../scim/store/port.js';
import type { Config } from './config/schema.js';
import type { ReadinessCheck } from './readiness.js';

/** The provisioning block with per-user mode on: the schema guarantees adminUrl and secretKey then. */
export type PerUserProvisioning = Config['provisioning'] & { mode: 'per-user'; adminUrl: string; secretKey: string };

export function perUser(config: Readonly<Config>): PerUserProvisioning | undefined {
  const p = config.provisioning;
  return p.mode === 'per-user' && p.adminUrl !== undefined && p.secretKey !== undefined ? (p as PerUserProvisioning) : undefined;
}

export interface ProvisioningDeps {
  readonly store: DirectoryStore;
  readonly index: DirectoryIndex;
  /** The current roles (replaced on SIGHUP). */
  readonly roles: () => readonly RoleRule[];
  readonly audit: AuditLog;
  readonly logger: Logger;
}

/** Builds the provisioner; `start()` it to check privileges and begin (see ProvisioningEngine.start). */
export function createProvisioning(p: PerUserProvisioning, deps: ProvisioningDeps): ProvisioningEngine {
  const logger = deps.logger.child({ component: 'provisioning' });
  return new ProvisioningEngine({
    target: new TargetDatabase(p.adminUrl, { onBackgroundError: (err) => logger.warn({ err }, 'provisioning connection error') }),
    directory: storeDirectory(deps.store, deps.index),
    records: deps.store.personalRoles,
    grants: roleGrants(deps.roles),
    box: new SecretBox(Buffer.from(p.secretKey.trim(), 'base64')),
    settings: {
      rolePrefix: p.rolePrefix,
      ownedBy: p.ownedBy,
      databases: p.databases,
      reconcileEveryMs: p.reconcileEvery,
    },
    audit: (event) => deps.audit.emit(event),
    logger,
  });
}

/** /readyz entries: new logins depend on people's roles being in step. */
export function provisioningReadiness(engine: ProvisioningEngine): ReadinessCheck[] {
  return [['provisioning not ready', () => engine.ready()]];
}

/** The directory as the provisioner reads it: from the store (the truth), changes from the index. */
export function storeDirectory(store: DirectoryStore, index: Pick<DirectoryIndex, 'onPersonsChanged'>): ProvisioningDirectory {
  return {
    async everyone() {
      const snap = await store.snapshot();
      const groups = new Map<string, SubjectGroup>(snap.groups.map((g) => [g.id, g]));
      const of = new Map<string, SubjectGroup[]>();
      for (const m of snap.memberships) {
        const g = groups.get(m.groupId);
        if (g === undefined) continue;
        const list = of.get(m.userId);
        if (list === undefined) of.set(m.userId, [g]);
        else list.push(g);
      }
      return snap.users.map((u): Subject => ({ id: u.id, userName: u.userName, active: u.active, groups: of.get(u.id) ?? [] }));
    },
    async person(id) {
      const user = await store.getUser(id);
      if (user === undefined) return undefined;
      const groups: SubjectGroup[] = [];
      for await (const g of store.scanGroups({ key: { attr: 'members.value', value: id }, members: false })) {
        const { displayName, externalId } = g.attributes;
        groups.push({ id: g.id, displayName: String(displayName), ...(typeof externalId === 'string' ? { externalId } : {}) });
      }
      return { id, userName: String(user.attributes.userName), active: user.attributes.active === true, groups };
    },
    onChanged: (listener) => index.onPersonsChanged(listener),
  };
}

/** The configured roles as grants: the same group references as the login decision (docs/design.md §2 step 6). */
export function roleGrants(roles: () => readonly RoleRule[]): RoleGrants {
  return {
    roles: () => roles().map((r) => r.role),
    grantedBy: (groups) => roles().filter((r) => r.groups.some((ref) => groups.some((g) => groupMatches(ref, g)))).map((r) => r.role),
  };
}
