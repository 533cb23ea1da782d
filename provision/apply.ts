// Runs planned steps on the connection that holds the person's lock (docs/design.md §7 step 3): one
// transaction, each step in a savepoint so that one the login may not make (a grant someone else
// made, an attribute 16+ reserves) fails alone and the rest, such as NOLOGIN, still commits. Backends
// of a disabled role are ended after COMMIT, so none can log in again in between.
import pg from 'pg';
import type { StepEvent } from './audit-event.js';
import { ProvisionError, ProvisionErrorCode } from './errors.js';
import { describeStep, stepAction, type Step } from './plan.js';
import type { PersonalRoleRecord } from './ports.js';
import { scramVerifier } from './scram-verifier.js';
import type { SecretBox } from './secret-box.js';
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
import type { ServerInfo } from './target.js';

export interface ApplyContext {
  readonly personId: string;
  /** The record whose secret a create or password step sets. */
  readonly record: PersonalRoleRecord | undefined;
  /** The role's oid, for ending its backends. */
  readonly oid: string | undefined;
  readonly info: ServerInfo;
  readonly box: SecretBox;
}

/**
 * Applies `steps`; returns an event per step (ok or failed). A create or rename that fails throws,
 * since every later step names the role they make; so does a broken connection.
 */
export async function applySteps(c: pg.ClientBase, steps: readonly Step[], ctx: ApplyContext): Promise<StepEvent[]> {
  const events: StepEvent[] = [];
  const failed = (step: Step, err: unknown): StepEvent => ({
    role: step.role,
    action: stepAction(step),
    outcome: 'failed',
    detail: `${describeStep(step)}: ${errorText(err)}`,
  });
  const inTransaction = steps.filter((s) => s.kind !== 'terminate');
  if (inTransaction.length > 0) {
    const done: StepEvent[] = [];
    // Statements go as multi-statement simple queries (one round trip per step, the first with
    // BEGIN): a pass is a handful of round trips however many statements it takes.
    let begin = 'BEGIN; ';
    for (const step of inTransaction) {
      const statements = (await statementsFor(step, ctx)).join('; ');
      if (step.kind === 'create' || step.kind === 'rename') {
        try {
          await c.query(begin + statements);
        } catch (err) {
          throw new StepFailed(failed(step, err), err);
        }
        begin = '';
        done.push(ok(step));
        continue;
      }
      try {
        await c.query(`${begin}SAVEPOINT rolegate_step; ${statements}; RELEASE SAVEPOINT rolegate_step`);
        begin = '';
        done.push(ok(step));
      } catch (err) {
        if (!(err instanceof pg.DatabaseError)) throw err;
        // BEGIN and SAVEPOINT cannot fail once the server answers: the step's own statement did.
        begin = '';
        await c.query('ROLLBACK TO SAVEPOINT rolegate_step');
        done.push(failed(step, err));
      }
    }
    await c.query('COMMIT');
    events.push(...done);
  }
  for (const step of steps) {
    if (step.kind !== 'terminate' || ctx.oid === undefined) continue;
    try {
      await c.query(TERMINATE_BACKENDS, [ctx.oid]);
      events.push(ok(step));
    } catch (err) {
      if (!(err instanceof pg.DatabaseError)) throw err;
      events.push(failed(step, err));
    }
  }
  return events;
}

/** A step that every later one depends on failed; the transaction is rolled back. */
export class StepFailed extends ProvisionError {
  readonly event: StepEvent;

  constructor(event: StepEvent, cause: unknown) {
    super(ProvisionErrorCode.step, event.detail, { cause });
    this.event = event;
  }
}

/** A database error's message with its DETAIL (which says, e.g., which attribute 16+ reserves). */
export function errorText(err: unknown): string {
  if (err instanceof pg.DatabaseError) return err.detail === undefined ? err.message : `${err.message} (${err.detail.replace(/\n/g, '; ')})`;
  return err instanceof Error ? err.message : String(err);
}

async function statementsFor(step: Step, ctx: ApplyContext): Promise<string[]> {
  const options = ctx.info.membershipOptions;
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
      return [grantRole(step.of, step.role, options)];
    case 'revoke':
      return revokeRole(step.of, step.role, step.grantors, options);
    case 'revoke_admin':
      return revokeAdmin(step.of, step.role, step.grantors, options);
    case 'terminate':
      return [];
  }
}

function openSecret(ctx: ApplyContext): string {
  if (ctx.record === undefined) throw new ProvisionError(ProvisionErrorCode.step, 'no secret on record for this person');
  try {
    return ctx.box.open(ctx.personId, ctx.record.sealedSecret);
  } catch (err) {
    // Not the database's fault: a step error for this person, never a reason to stop everyone.
    throw new ProvisionError(ProvisionErrorCode.step, err instanceof Error ? err.message : String(err), { cause: err });
  }
}

function ok(step: Step): StepEvent {
  return { role: step.role, action: stepAction(step), outcome: 'ok', detail: doneText(step) };
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
