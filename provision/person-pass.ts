// One provisioning pass for one person (docs/design.md §7 step 3): read them fresh from the store,
// take their advisory lock in the database, read their role, plan, and apply the plan in one
// transaction (then end the backends of someone deactivated). The directory is the truth: every
// pass starts from it, so a pass repeated by another instance or after a failure finds nothing to do.
import type pg from 'pg';
import type { StepEvent } from './audit-event.js';
import { markerPattern, readRoles } from './catalog.js';
import { ProvisionError, ProvisionErrorCode } from './errors.js';
import { desiredRole, describeStep, planPerson, stepAction, type ActualRole, type DesiredRole, type Step } from './plan.js';
import type { PersonalRoleRecord, PersonalRoleRecords, ProvisioningDirectory, RoleGrants } from './ports.js';
import { retireRole } from './retire.js';
import { scramVerifier } from './scram-verifier.js';
import { newLoginSecret, type SecretBox } from './secret-box.js';
import {
  TERMINATE_BACKENDS,
  createRole,
  grantRole,
  normalizeRole,
  renameRole,
  revokeAdmin,
  revokeRole,
  setLogin,
  setPassword,
} from './statements.js';
import { isConnectionFailure, type ServerInfo, type TargetDatabase } from './target.js';

export interface PassSettings {
  readonly rolePrefix: string;
  readonly ownedBy: string | undefined;
  readonly databases: readonly string[];
}

export interface PassContext {
  readonly target: TargetDatabase;
  readonly directory: ProvisioningDirectory;
  readonly records: PersonalRoleRecords;
  readonly grants: RoleGrants;
  readonly box: SecretBox;
  settings(): PassSettings;
}

/** Where the person stands after the pass. */
export type PassStatus =
  | { readonly kind: 'ready'; readonly roleName: string; readonly login: boolean; readonly sealedSecret: string }
  /** No role, and none needed: deleted and gone, or inactive and never provisioned. */
  | { readonly kind: 'none' }
  | { readonly kind: 'blocked'; readonly reason: 'conflict' | 'retained' | 'failed'; readonly detail: string };

export interface PassResult {
  readonly person: { readonly id: string; readonly userName: string };
  readonly events: readonly StepEvent[];
  readonly status: PassStatus;
  /** The error of a failed pass, for the log (its message is also the event's detail). */
  readonly error?: unknown;
}

/**
 * Runs one pass. A statement that fails makes a `blocked/failed` result (the engine retries it); a
 * lost connection throws, because then nobody can be provisioned until the database is back.
 */
export async function runPass(ctx: PassContext, personId: string, opts: { resetSecret: boolean }): Promise<PassResult> {
  const settings = ctx.settings();
  const subject = await ctx.directory.person(personId);
  let record = await ctx.records.get(personId);
  const desired = subject === undefined ? undefined : desiredRole(subject, ctx.grants, settings.rolePrefix);
  const person = { id: personId, userName: subject?.userName ?? record?.userName ?? '' };
  const events: StepEvent[] = [];
  let resetSecret = opts.resetSecret;

  if (desired !== undefined && desired.login && record === undefined) {
    // The secret is stored (sealed) before the role exists, so no role is ever made whose secret is lost.
    const sealedSecret = ctx.box.seal(personId, newLoginSecret());
    const claim = await ctx.records.claim({ personId, userName: desired.userName, roleName: desired.roleName, sealedSecret });
    if (claim.kind === 'name_taken') {
      const detail = `role name "${desired.roleName}" is on record for another person`;
      return { person, events: [{ role: desired.roleName, action: 'create', outcome: 'conflict', detail }], status: { kind: 'blocked', reason: 'conflict', detail } };
    }
    record = claim.record;
    // A fresh record next to a role that survived (a store restored from an old backup): its
    // secret is not the one on record, so it is set again if the role turns out to exist.
    resetSecret ||= claim.kind === 'stored';
  }
  if (record === undefined) return { person, events, status: { kind: 'none' } };
  const rec = record;

  let current: Step | undefined;
  try {
    return await ctx.target.withPersonLock(personId, async (c) => {
      const info = await ctx.target.info();
      const names = [...new Set([rec.roleName, ...(desired === undefined ? [] : [desired.roleName])])];
      const roles = await readRoles(c, { names, patterns: [markerPattern(personId)], membershipOptions: info.membershipOptions });
      const own = roles.find((r) => r.name === rec.roleName) ?? roles.find((r) => r.markedFor === personId);
      const holder = desired === undefined ? undefined : roles.find((r) => r.name === desired.roleName && r !== own);
      const plan = planPerson({
        personId,
        desired,
        recordName: rec.roleName,
        own,
        holder,
        membershipOptions: info.membershipOptions,
        resetSecret: resetSecret && own !== undefined,
      });
      switch (plan.kind) {
        case 'conflict':
          events.push({ role: plan.role, action: 'create', outcome: 'conflict', detail: plan.detail });
          return { person, events, status: { kind: 'blocked', reason: 'conflict', detail: plan.detail } };
        case 'forget':
          await ctx.records.remove(personId);
          events.push({ role: rec.roleName, action: 'forget', outcome: 'ok', detail: plan.detail });
          return { person, events, status: { kind: 'none' } };
        case 'retire': {
          const retired = await retireRole(c, { role: plan.role, info, ownedBy: settings.ownedBy, databases: settings.databases, target: ctx.target, events });
          if (retired.kind === 'retained') return { person, events, status: { kind: 'blocked', reason: 'retained', detail: retired.detail } };
          await ctx.records.remove(personId);
          return { person, events, status: { kind: 'none' } };
        }
        case 'steps': {
          const d = desired as DesiredRole;
          await apply(c, plan.steps, { personId, record: rec, own, info, box: ctx.box }, {
            starting: (s) => (current = s),
            done: (s) => events.push({ role: s.role, action: stepAction(s), outcome: 'ok', detail: doneText(s) }),
          });
          let final = rec;
          const renamed = plan.steps.find((s) => s.kind === 'rename');
          if (renamed !== undefined || rec.userName !== d.userName) {
            final = { ...rec, roleName: d.roleName, userName: d.userName };
            await ctx.records.update(final);
          }
          const exists = own !== undefined || plan.steps.some((s) => s.kind === 'create');
          return {
            person,
            events,
            status: exists ? { kind: 'ready', roleName: final.roleName, login: d.login, sealedSecret: final.sealedSecret } : { kind: 'none' },
          };
        }
      }
    });
  } catch (err) {
    if (isConnectionFailure(err)) throw err;
    const detail = err instanceof Error ? err.message : String(err);
    const step = current;
    events.push({
      role: step?.role ?? desired?.roleName ?? rec.roleName,
      action: step === undefined ? (desired === undefined ? 'drop' : 'create') : stepAction(step),
      outcome: 'failed',
      detail: step === undefined ? detail : `${describeStep(step)}: ${detail}`,
    });
    return { person, events, status: { kind: 'blocked', reason: 'failed', detail }, error: err };
  }
}

/** The steps in one transaction; backends of a disabled role are ended after COMMIT, so none can come back. */
async function apply(
  c: pg.PoolClient,
  steps: readonly Step[],
  ctx: { personId: string; record: PersonalRoleRecord; own: ActualRole | undefined; info: ServerInfo; box: SecretBox },
  on: { starting: (s: Step) => void; done: (s: Step) => void },
): Promise<void> {
  const inTransaction = steps.filter((s) => s.kind !== 'terminate');
  if (inTransaction.length > 0) {
    await c.query('BEGIN');
    for (const step of inTransaction) {
      on.starting(step);
      for (const text of await statementsFor(step, ctx)) await c.query(text);
    }
    await c.query('COMMIT');
    for (const step of inTransaction) on.done(step);
  }
  for (const step of steps) {
    if (step.kind !== 'terminate' || ctx.own === undefined) continue;
    on.starting(step);
    await c.query(TERMINATE_BACKENDS, [ctx.own.oid]);
    on.done(step);
  }
}

async function statementsFor(step: Step, ctx: { personId: string; record: PersonalRoleRecord; info: ServerInfo; box: SecretBox }): Promise<string[]> {
  switch (step.kind) {
    case 'create':
      return createRole(step.role, step.login, await scramVerifier(openSecret(ctx)), ctx.personId);
    case 'password':
      return [setPassword(step.role, await scramVerifier(openSecret(ctx)))];
    case 'rename':
      return [renameRole(step.role, step.to)];
    case 'enable':
    case 'disable':
      return [setLogin(step.role, step.kind === 'enable')];
    case 'normalize':
      return [normalizeRole(step.role, step.attributes)];
    case 'grant':
      return [grantRole(step.of, step.role, ctx.info.membershipOptions)];
    case 'revoke':
      return [revokeRole(step.of, step.role)];
    case 'revoke_admin':
      return [revokeAdmin(step.of, step.role)];
    case 'terminate':
      return [];
  }
}

function openSecret(ctx: { personId: string; record: PersonalRoleRecord; box: SecretBox }): string {
  try {
    return ctx.box.open(ctx.personId, ctx.record.sealedSecret);
  } catch (err) {
    // Not the database's fault: a step error for this person, never a reason to stop everyone.
    throw new ProvisionError(ProvisionErrorCode.step, err instanceof Error ? err.message : String(err), { cause: err });
  }
}

/** What the audit says a step did. */
function doneText(step: Step): string {
  switch (step.kind) {
    case 'create':
      return `created "${step.role}" (${step.login ? 'LOGIN' : 'NOLOGIN'}), marked as rolegate's, with a SCRAM verifier`;
    case 'rename':
      return `renamed "${step.role}" to "${step.to}" after the userName changed`;
    case 'enable':
      return `LOGIN for "${step.role}"`;
    case 'disable':
      return `NOLOGIN for "${step.role}"`;
    case 'normalize':
      return `set ${step.attributes.join(', ')} on "${step.role}"`;
    case 'password':
      return `set a new SCRAM verifier for "${step.role}"`;
    case 'grant':
      return `granted "${step.of}" to "${step.role}"`;
    case 'revoke':
      return `revoked "${step.of}" from "${step.role}"`;
    case 'revoke_admin':
      return `revoked ADMIN OPTION on "${step.of}" from "${step.role}"`;
    case 'terminate':
      return `ended ${step.backends} backend${step.backends === 1 ? '' : 's'} of "${step.role}"`;
  }
}
