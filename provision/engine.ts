// The reconciler (docs/design.md §7): follows the directory's changes person by person, compares the
// whole directory with the database at start and every provisioning.reconcileEvery, retries what
// failed, waits out a database that is down, and tells the login path whether a person's own role is
// in step (the port proxy/authz/personal-roles.ts describes).
import type { Logger } from '../lib/log.js';
import type { ProvisioningAudit, ProvisioningOutcome } from './audit-event.js';
import { compareAll, type Comparison } from './compare.js';
import { ProvisionError, ProvisionErrorCode } from './errors.js';
import { runPass, type PassResult, type PassSettings, type PassStatus } from './person-pass.js';
import type { PersonalRoleRecords, ProvisioningDirectory, RoleGrants } from './ports.js';
import { checkPrivileges } from './privileges.js';
import type { SecretBox } from './secret-box.js';
import { isConnectionFailure, isLoginRefused, type TargetDatabase } from './target.js';
import { WorkQueue } from './work-queue.js';

export interface EngineSettings extends PassSettings {
  /** Full reconciliation period (provisioning.reconcileEvery). */
  readonly reconcileEveryMs: number;
}

export interface EngineDeps {
  readonly target: TargetDatabase;
  readonly directory: ProvisioningDirectory;
  readonly records: PersonalRoleRecords;
  readonly grants: RoleGrants;
  readonly box: SecretBox;
  readonly settings: EngineSettings;
  readonly audit: ProvisioningAudit;
  readonly logger: Logger;
}

/** What the login path gets for a person (proxy/authz/personal-roles.ts). */
export type PersonalLogin =
  | { readonly kind: 'ready'; readonly role: string; readonly password: string }
  | { readonly kind: 'unavailable'; readonly reason: 'pending' | 'conflict' | 'failed' | 'retained' | 'inactive' | 'unreachable' | 'stopped' };

/** Why a pass runs: a SCIM change or a login (urgent), or a difference a full reconciliation found. */
interface Cause {
  readonly drift: boolean;
  readonly resetSecret: boolean;
}
const URGENT: Cause = Object.freeze({ drift: false, resetSecret: false });
const DRIFT: Cause = Object.freeze({ drift: true, resetSecret: false });

/** What started a full reconciliation; only `reload` is not drift (the config, not the database, changed). */
export type ReconcileCause = 'start' | 'schedule' | 'reload' | 'reconnect';

/** A person's standing, as of their change counter when the pass that set it began. */
type Standing = PassStatus & { readonly version: number };

const RETRY_FIRST_MS = 1_000;
const RETRY_MAX_MS = 300_000;
const PROBE_FIRST_MS = 500;
const PROBE_MAX_MS = 5_000;

export class ProvisioningEngine {
  readonly #deps: EngineDeps;
  readonly #queue: WorkQueue<Cause>;
  /** Bumped for each change the directory reports; a standing from an older count is stale. */
  readonly #versions = new Map<string, number>();
  readonly #standing = new Map<string, Standing>();
  readonly #failures = new Map<string, number>();
  readonly #retries = new Map<string, NodeJS.Timeout>();
  /** The last conflict/retained detail audited per person: said once, not at every reconciliation. */
  readonly #said = new Map<string, string>();
  #unsubscribe: (() => void) | undefined;
  #timer: NodeJS.Timeout | undefined;
  #probe: NodeJS.Timeout | undefined;
  #probeDelay = PROBE_FIRST_MS;
  #unreachable: unknown;
  #missing: readonly string[] = [];
  #caughtUp = false;
  #reconciling: Promise<Comparison | undefined> | undefined;
  #again: ReconcileCause | undefined;
  #closed = false;

  constructor(deps: EngineDeps) {
    this.#deps = deps;
    this.#queue = new WorkQueue<Cause>({
      concurrency: 4,
      run: (id, cause) => this.#pass(id, cause),
      merge: (a, b) => ({ drift: a.drift && b.drift, resetSecret: a.resetSecret || b.resetSecret }),
      priority: (c) => (c.drift ? 1 : 0),
      onError: (err, id) => deps.logger.error({ err, person: id }, 'provisioning pass failed unexpectedly'),
    });
  }

  /**
   * Follows the directory, checks the login's privileges (rejects with PROVISION_PRIVILEGES naming
   * each missing one) and starts the first full reconciliation in the background. A database that
   * cannot be reached now is waited for instead: the checks run when it answers.
   */
  async start(): Promise<void> {
    this.#unsubscribe = this.#deps.directory.onChanged((ids) => {
      for (const id of ids) {
        this.#versions.set(id, this.#version(id) + 1);
        this.#queue.push(id, URGENT);
      }
    });
    try {
      await this.#checkPrivileges();
    } catch (err) {
      // Wrong credentials or database are a configuration error: say so now rather than wait.
      if (isLoginRefused(err)) {
        throw new ProvisionError(ProvisionErrorCode.loginRefused, `the database refused the provisioning login: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
      }
      if (!isConnectionFailure(err)) throw err;
      this.#lost(err);
      return;
    }
    if (this.#missing.length > 0) {
      throw new ProvisionError(ProvisionErrorCode.privileges, this.#missing.join('; '));
    }
    this.#schedule();
    void this.reconcile('start');
  }

  /**
   * Compares everything and queues a pass for each person that differs; people in step are marked
   * ready without one. Concurrent calls share one run (and one more after it, if asked meanwhile).
   */
  reconcile(cause: ReconcileCause): Promise<Comparison | undefined> {
    if (this.#reconciling !== undefined) {
      this.#again = cause;
      return this.#reconciling;
    }
    const run = this.#reconcileOnce(cause).finally(() => {
      this.#reconciling = undefined;
      const again = this.#again;
      this.#again = undefined;
      if (again !== undefined && !this.#closed) void this.reconcile(again);
    });
    this.#reconciling = run;
    return run;
  }

  /** The configured roles changed (SIGHUP): everyone's grants are compared again. */
  rolesChanged(): void {
    void this.reconcile('reload');
  }

  /** Resolves when no pass is queued or running (tests and the benchmark wait on it). */
  async idle(): Promise<void> {
    while (this.#reconciling !== undefined || this.#queue.size > 0) {
      await this.#reconciling;
      await this.#queue.idle();
    }
  }

  /** Rejects with the reason provisioning cannot vouch for the database now (for /readyz). */
  async ready(): Promise<void> {
    if (this.#unreachable !== undefined) throw new Error('provisioning database unreachable');
    if (this.#missing.length > 0) throw new Error(this.#missing.join('; '));
    if (!this.#caughtUp) throw new Error('provisioning has not compared the directory with the database yet');
  }

  /**
   * The person's own role and secret once it is in step with the directory as this process knows it,
   * waiting for the pass that is due (never past `signal`).
   */
  async loginFor(personId: string, signal: AbortSignal): Promise<PersonalLogin> {
    for (;;) {
      if (this.#closed) return { kind: 'unavailable', reason: 'stopped' };
      const st = this.#standing.get(personId);
      if (st !== undefined && st.version === this.#version(personId) && !this.#queue.has(personId)) {
        if (st.kind === 'blocked') return { kind: 'unavailable', reason: st.reason };
        if (st.kind === 'none' || !st.login) return { kind: 'unavailable', reason: st.kind === 'none' ? 'pending' : 'inactive' };
        try {
          return { kind: 'ready', role: st.roleName, password: this.#deps.box.open(personId, st.sealedSecret) };
        } catch (err) {
          // The next pass gives the person a new secret (runPass); this login is not kept waiting.
          this.#deps.logger.error({ err, person: personId }, 'personal login secret does not open; a new one will be set');
          this.upstreamRefused(personId, 'secret');
          return { kind: 'unavailable', reason: 'failed' };
        }
      }
      if (this.#unreachable !== undefined) return { kind: 'unavailable', reason: 'unreachable' };
      // Not seen by this process yet (e.g. provisioned by another instance), or changed: one pass.
      if (!this.#queue.has(personId)) this.#queue.push(personId, URGENT);
      await Promise.race([this.#queue.settled(personId), aborted(signal)]);
      if (signal.aborted) return { kind: 'unavailable', reason: 'pending' };
    }
  }

  /**
   * The database refused a login as the person's role: its secret (someone changed it by hand: set
   * it again) or its starting role (memberships behind the directory: compare again).
   */
  upstreamRefused(personId: string, what: 'secret' | 'role'): void {
    if (this.#closed) return;
    this.#standing.delete(personId);
    this.#queue.push(personId, { drift: true, resetSecret: what === 'secret' });
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#unsubscribe?.();
    clearInterval(this.#timer);
    clearTimeout(this.#probe);
    for (const t of this.#retries.values()) clearTimeout(t);
    this.#queue.pause();
    await this.#reconciling?.catch(() => undefined);
    await this.#deps.target.close().catch(() => undefined);
  }

  // ---- passes -----------------------------------------------------------------------------------

  #version(id: string): number {
    return this.#versions.get(id) ?? 0;
  }

  async #pass(id: string, cause: Cause): Promise<void> {
    if (this.#closed) return;
    const version = this.#version(id);
    let result: PassResult;
    try {
      result = await runPass(this.#passContext(), id, { resetSecret: cause.resetSecret });
    } catch (err) {
      if (!isConnectionFailure(err)) throw err;
      // Nobody can be provisioned now: the person waits in the queue, and the reconciliation after
      // the database returns catches up on everyone (the directory is the truth).
      this.#queue.push(id, cause);
      this.#lost(err);
      return;
    }
    this.#standing.set(id, { ...result.status, version });
    this.#report(result, cause);
    if (result.status.kind === 'blocked' && result.status.reason === 'failed') this.#retryLater(id, cause, result.error);
    else this.#failures.delete(id);
  }

  #passContext() {
    return { ...this.#deps, settings: () => this.#deps.settings };
  }

  #report(result: PassResult, cause: Cause): void {
    for (const ev of result.events) {
      // A conflict or a retained role is said once; it is re-checked at every reconciliation.
      if (ev.outcome === 'conflict' || ev.outcome === 'retained') {
        if (this.#said.get(result.person.id) === ev.detail) continue;
        this.#said.set(result.person.id, ev.detail);
      } else if (ev.outcome === 'ok') {
        this.#said.delete(result.person.id);
      }
      const drift = cause.drift && ev.outcome !== 'conflict';
      this.#deps.audit({
        type: 'provisioning',
        role: ev.role,
        person: result.person,
        action: drift ? 'drift_repaired' : ev.action,
        ...(drift ? { step: ev.action } : {}),
        outcome: ev.outcome,
        detail: ev.detail,
      });
      this.#log(ev.outcome, { person: result.person.userName, role: ev.role, action: ev.action, detail: ev.detail });
    }
  }

  #log(outcome: ProvisioningOutcome, fields: Record<string, unknown>): void {
    if (outcome === 'ok') this.#deps.logger.info(fields, 'provisioned');
    else this.#deps.logger.warn({ ...fields, outcome }, 'provisioning did not complete');
  }

  #retryLater(id: string, cause: Cause, err: unknown): void {
    const n = (this.#failures.get(id) ?? 0) + 1;
    this.#failures.set(id, n);
    const delay = Math.min(RETRY_FIRST_MS * 2 ** (n - 1), RETRY_MAX_MS);
    this.#deps.logger.debug({ err, person: id, retryInMs: delay }, 'provisioning step failed; will retry');
    clearTimeout(this.#retries.get(id));
    const t = setTimeout(() => {
      this.#retries.delete(id);
      if (!this.#closed) this.#queue.push(id, cause);
    }, delay);
    t.unref();
    this.#retries.set(id, t);
  }

  // ---- full reconciliation ------------------------------------------------------------------------

  async #reconcileOnce(cause: ReconcileCause): Promise<Comparison | undefined> {
    if (this.#closed || this.#unreachable !== undefined) return undefined;
    const seen = new Map(this.#versions);
    let comparison: Comparison;
    try {
      if (cause !== 'start' && cause !== 'reconnect') await this.#checkPrivileges();
      comparison = await compareAll({ ...this.#deps, rolePrefix: this.#deps.settings.rolePrefix });
    } catch (err) {
      if (isConnectionFailure(err)) this.#lost(err);
      else this.#deps.logger.error({ err }, 'provisioning reconciliation failed');
      return undefined;
    }
    for (const s of comparison.inStep) {
      // Only if no change came in since the read began and no pass is due: then the read is current.
      if ((seen.get(s.personId) ?? 0) !== this.#version(s.personId) || this.#queue.has(s.personId)) continue;
      this.#standing.set(s.personId, { kind: 'ready', roleName: s.roleName, login: s.login, sealedSecret: s.sealedSecret, version: this.#version(s.personId) });
    }
    for (const d of comparison.differences) {
      // Nothing is done for a marked role nobody is on record for: it is only reported.
      if (d.plan.kind !== 'unrecorded') this.#queue.push(d.personId, cause === 'reload' ? URGENT : DRIFT);
    }
    this.#caughtUp = true;
    this.#deps.logger.info({ cause, people: comparison.people, differences: comparison.differences.length }, 'provisioning compared the directory with the database');
    return comparison;
  }

  async #checkPrivileges(): Promise<void> {
    const report = await checkPrivileges(this.#deps.target, {
      roles: this.#deps.grants.roles(),
      ...(this.#deps.settings.ownedBy === undefined ? {} : { ownedBy: this.#deps.settings.ownedBy }),
      databases: this.#deps.settings.databases,
    });
    for (const w of report.warnings) this.#deps.logger.warn(w);
    if (report.missing.length > 0 && report.missing.join() !== this.#missing.join()) {
      this.#deps.logger.error({ missing: report.missing }, 'provisioning login lacks privileges');
    }
    this.#missing = report.missing;
  }

  #schedule(): void {
    if (this.#timer !== undefined || this.#deps.settings.reconcileEveryMs <= 0) return;
    this.#timer = setInterval(() => void this.reconcile('schedule'), this.#deps.settings.reconcileEveryMs);
    this.#timer.unref();
  }

  // ---- a database that is down --------------------------------------------------------------------

  #lost(err: unknown): void {
    if (this.#closed) return;
    if (this.#unreachable === undefined) this.#deps.logger.warn({ err }, 'provisioning database unreachable; waiting for it');
    this.#unreachable = err;
    this.#queue.pause();
    if (this.#probe === undefined) this.#probeLater();
  }

  #probeLater(): void {
    this.#probe = setTimeout(() => void this.#tryAgain(), this.#probeDelay);
    this.#probe.unref();
    this.#probeDelay = Math.min(this.#probeDelay * 2, PROBE_MAX_MS);
  }

  async #tryAgain(): Promise<void> {
    this.#probe = undefined;
    if (this.#closed) return;
    try {
      await this.#checkPrivileges();
    } catch (err) {
      if (isConnectionFailure(err)) {
        this.#unreachable = err;
        this.#probeLater();
        return;
      }
      this.#deps.logger.error({ err }, 'provisioning privilege check failed');
    }
    this.#deps.logger.info('provisioning database reachable again');
    this.#unreachable = undefined;
    this.#probeDelay = PROBE_FIRST_MS;
    this.#schedule();
    this.#queue.resume();
    void this.reconcile('reconnect');
  }
}

function aborted(signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
}
