// One provisioning pass for one person (docs/design.md §7 step 3): read them fresh from the store,
// take their advisory lock in the database, read their role, plan, and apply the plan in one
// transaction (then end the backends of someone deactivated). The directory is the truth: every
// pass starts from it, so a pass repeated by another instance or after a failure finds nothing to do.
import { StepFailed, applySteps, errorText } from './apply.js';
import type { StepEvent } from './audit-event.js';
import { markerPattern, readRoles } from './catalog.js';
import { fromStore } from './errors.js';
import { desiredRole, planPerson } from './plan.js';
import type { PersonalRoleRecords, ProvisioningDirectory, RoleGrants } from './ports.js';
import { retireRole } from './retire.js';
import { newLoginSecret, type SecretBox } from './secret-box.js';
import { isConnectionFailure, type TargetDatabase } from './target.js';

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
 * lost connection to the database throws, because then nobody can be provisioned until it is back.
 */
export async function runPass(ctx: PassContext, personId: string, opts: { resetSecret: boolean }): Promise<PassResult> {
  const settings = ctx.settings();
  const events: StepEvent[] = [];
  let person = { id: personId, userName: '' };
  let blame: { role: string; action: 'create' | 'drop' } = { role: '', action: 'create' };
  try {
    // The person is read under their lock: a view read before it could be older than what another
    // instance applied meanwhile (a deactivation), and applying it would undo that.
    return await ctx.target.withPersonLock(personId, async (c) => {
      const subject = await fromStore(ctx.directory.person(personId));
      let record = await fromStore(ctx.records.get(personId));
      const desired = subject === undefined ? undefined : desiredRole(subject, ctx.grants, settings.rolePrefix);
      person = { id: personId, userName: subject?.userName ?? record?.userName ?? '' };
      blame = { role: desired?.roleName ?? record?.roleName ?? '', action: desired === undefined ? 'drop' : 'create' };
      let resetSecret = opts.resetSecret;
      let claimedNow = false;

      if (desired !== undefined && desired.login && record === undefined) {
        // The secret is stored (sealed) before the role exists, so no role is made whose secret is lost.
        const sealedSecret = ctx.box.seal(personId, newLoginSecret());
        const claim = await fromStore(ctx.records.claim({ personId, userName: desired.userName, roleName: desired.roleName, sealedSecret }));
        if (claim.kind === 'name_taken') {
          const detail = `role name "${desired.roleName}" is on record for another person`;
          events.push({ role: desired.roleName, action: 'create', outcome: 'conflict', detail });
          return { person, events, status: { kind: 'blocked', reason: 'conflict', detail } };
        }
        record = claim.record;
        // A fresh record next to a role that survived (a store restored from an old backup): its
        // secret is not the one on record, so it is set again if the role turns out to exist.
        claimedNow = claim.kind === 'stored';
        resetSecret ||= claimedNow;
      }
      if (record === undefined) return { person, events, status: { kind: 'none' } };
      if (!opens(ctx.box, personId, record.sealedSecret)) {
        // Sealed under another provisioning.secretKey (the key was replaced) or altered: the secret
        // is lost, so the person gets a new one, stored first and then set as the role's verifier.
        record = { ...record, sealedSecret: ctx.box.seal(personId, newLoginSecret()) };
        await fromStore(ctx.records.update(record));
        resetSecret = true;
      }
      const rec = record;

      const info = await ctx.target.info();
      const names = [...new Set([rec.roleName, ...(desired === undefined ? [] : [desired.roleName])])];
      const options = info.membershipOptions;
      let roles = await readRoles(c, { names, patterns: [], membershipOptions: options });
      // A role carrying this person's marker is theirs, under the name on record or not (renamed by
      // a pass whose record update was lost, or a record the store lost and this pass made anew).
      let own = roles.find((r) => r.name === rec.roleName) ?? roles.find((r) => r.markedFor === personId);
      if (own === undefined && !claimedNow) {
        roles = await readRoles(c, { names, patterns: [markerPattern(personId)], membershipOptions: options });
        own = roles.find((r) => r.name === rec.roleName) ?? roles.find((r) => r.markedFor === personId);
      }
      const holder = desired === undefined ? undefined : roles.find((r) => r.name === desired.roleName && r !== own);
      const plan = planPerson({ personId, desired, recordName: rec.roleName, own, holder, membershipOptions: options, resetSecret: resetSecret && own !== undefined });
      switch (plan.kind) {
        case 'conflict':
          events.push({ role: plan.role, action: 'create', outcome: 'conflict', detail: plan.detail });
          return { person, events, status: { kind: 'blocked', reason: 'conflict', detail: plan.detail } };
        case 'unrecorded':
          return { person, events, status: { kind: 'none' } };
        case 'forget':
          await fromStore(ctx.records.remove(personId));
          events.push({ role: rec.roleName, action: 'forget', outcome: 'ok', detail: plan.detail });
          return { person, events, status: { kind: 'none' } };
        case 'retire': {
          const retired = await retireRole(c, { role: plan.role, info, ownedBy: settings.ownedBy, databases: settings.databases, target: ctx.target, box: ctx.box, personId, events });
          if (retired.kind === 'retained') return { person, events, status: { kind: 'blocked', reason: 'retained', detail: retired.detail } };
          await fromStore(ctx.records.remove(personId));
          return { person, events, status: { kind: 'none' } };
        }
        case 'steps': {
          if (desired === undefined) return { person, events, status: { kind: 'none' } };
          events.push(...(await applySteps(c, plan.steps, { personId, record: rec, oid: own?.oid, info, box: ctx.box })));
          let final = rec;
          if (plan.steps.some((s) => s.kind === 'rename') || rec.userName !== desired.userName) {
            final = { ...rec, roleName: desired.roleName, userName: desired.userName };
            await fromStore(ctx.records.update(final));
          }
          const failure = events.find((e) => e.outcome === 'failed');
          // A step the login could not make leaves the role short of the directory: no login until
          // it is repaired (fail closed), and the engine tries again.
          if (failure !== undefined) return { person, events, status: { kind: 'blocked', reason: 'failed', detail: failure.detail } };
          const exists = own !== undefined || plan.steps.some((s) => s.kind === 'create');
          return {
            person,
            events,
            status: exists ? { kind: 'ready', roleName: final.roleName, login: desired.login, sealedSecret: final.sealedSecret } : { kind: 'none' },
          };
        }
      }
    });
  } catch (err) {
    if (isConnectionFailure(err)) throw err;
    const event: StepEvent = err instanceof StepFailed ? err.event : { role: blame.role, action: blame.action, outcome: 'failed', detail: errorText(err) };
    if (!events.includes(event)) events.push(event);
    return { person, events, status: { kind: 'blocked', reason: 'failed', detail: event.detail }, error: err };
  }
}

function opens(box: SecretBox, personId: string, sealed: string): boolean {
  try {
    box.open(personId, sealed);
    return true;
  } catch {
    return false;
  }
}
