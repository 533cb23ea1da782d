// A deleted person's role (docs/design.md §7 step 3, delete): disabled and stripped of its grants
// first, its backends ended, then what it owns handed to provisioning.ownedBy (REASSIGN OWNED and DROP
// OWNED in each of provisioning.databases) and the role dropped. Without ownedBy a role that owns
// anything stays disabled and the audit says where its objects are.
import pg from 'pg';
import { ownedObjects } from './catalog.js';
import type { StepEvent } from './audit-event.js';
import { ProvisionError, ProvisionErrorCode } from './errors.js';
import { StepFailed, applySteps } from './apply.js';
import type { ActualRole, Step } from './plan.js';
import type { SecretBox } from './secret-box.js';
import {
  borrowRole,
  dropOwned,
  dropRole,
  reassignOwned,
  returnRole,
} from './statements.js';
import type { ServerInfo, TargetDatabase } from './target.js';

export type RetireResult = { readonly kind: 'dropped' } | { readonly kind: 'retained'; readonly detail: string };

export interface RetireInput {
  readonly role: ActualRole;
  readonly info: ServerInfo;
  readonly ownedBy: string | undefined;
  readonly databases: readonly string[];
  readonly target: TargetDatabase;
  readonly personId: string;
  readonly box: SecretBox;
  /** Receives an event for each step as it is done. */
  readonly events: StepEvent[];
}

/** Runs on the connection that holds the person's lock. */
export async function retireRole(c: pg.PoolClient, input: RetireInput): Promise<RetireResult> {
  const { role, info, events } = input;
  const name = role.name;
  // 1. Nobody logs in as it any more, it holds no grant, nothing of it runs.
  const steps: Step[] = [
    ...(role.login ? [{ kind: 'disable', role: name } as const] : []),
    ...[...role.memberOf].map(([of, m]) => ({ kind: 'revoke', role: name, of, grantors: m.grantors }) as const),
    ...(role.backends > 0 ? [{ kind: 'terminate', role: name, backends: role.backends } as const] : []),
  ];
  const first = await applySteps(c, steps, { personId: input.personId, record: undefined, oid: role.oid, info, box: input.box });
  events.push(...first);
  const failure = first.find((e) => e.outcome === 'failed');
  if (failure !== undefined) throw new StepFailed(failure, undefined);

  // 2. What it owns. Without ownedBy nothing may be given away, so it is dropped only if it owns nothing.
  if (input.ownedBy === undefined) {
    const owned = await ownedObjects(c, role.oid);
    if (owned.length > 0) {
      const where = owned.map((o) => `${o.objects} in ${o.database === '(shared)' ? 'shared catalogs' : `database "${o.database}"`}`).join(', ');
      return retained(events, name, `"${name}" owns objects (${where}) and provisioning.ownedBy is not set: the role stays disabled`);
    }
  }
  // REASSIGN/DROP OWNED act with the privileges of the role they name: the login lends itself the role.
  const borrowed = input.databases.length > 0;
  if (borrowed) await c.query(borrowRole(name, info.membershipOptions));
  let dropError: pg.DatabaseError | undefined;
  try {
    for (const database of input.databases) {
      const handOver = async (db: Pick<pg.ClientBase, 'query'>): Promise<void> => {
        if (input.ownedBy !== undefined) await db.query(reassignOwned(name, input.ownedBy));
        // Also revokes what others granted to the role here, which would block DROP ROLE.
        await db.query(dropOwned(name));
      };
      try {
        // The login's own database is the connection already at hand.
        if (database === input.target.database) await handOver(c);
        else await input.target.inDatabase(database, handOver);
      } catch (err) {
        throw new ProvisionError(ProvisionErrorCode.step, `in database "${database}": ${message(err)}`, { cause: err });
      }
      if (input.ownedBy !== undefined) {
        events.push({ role: name, action: 'reassign', outcome: 'ok', detail: `objects of "${name}" in database "${database}" handed to "${input.ownedBy}"` });
      }
    }
    // 3. The role itself. What still depends on it (in a database not listed, or a grant this login
    // cannot revoke because someone else made it) keeps it, disabled.
    try {
      await c.query(dropRole(name));
    } catch (err) {
      if (!(err instanceof pg.DatabaseError && err.code === '2BP01')) throw err;
      dropError = err;
    }
  } catch (err) {
    if (borrowed) await c.query(returnRole(name)).catch(() => undefined);
    throw err;
  }
  if (dropError !== undefined) {
    if (borrowed) await c.query(returnRole(name)).catch(() => undefined);
    const why = dropError.detail === undefined ? dropError.message : `${dropError.message}: ${dropError.detail.replace(/\n/g, '; ')}`;
    const listed = input.databases.length === 0 ? 'none' : input.databases.join(', ');
    return retained(events, name, `${why} (provisioning.databases: ${listed}): the role stays disabled`);
  }
  events.push({ role: name, action: 'drop', outcome: 'ok', detail: `dropped "${name}": the person was deleted` });
  return { kind: 'dropped' };
}

function retained(events: StepEvent[], role: string, detail: string): RetireResult {
  events.push({ role, action: 'drop', outcome: 'retained', detail });
  return { kind: 'retained', detail };
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
