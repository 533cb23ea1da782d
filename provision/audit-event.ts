// The `provisioning` audit event (docs/design.md §6 and §7 step 5): one per action on a person's role,
// with its outcome. Repairs found by a full reconciliation carry `drift_repaired` and the step.

export type ProvisioningAction =
  | 'create'
  | 'grant'
  | 'revoke'
  | 'disable'
  | 'enable'
  | 'reassign'
  | 'drop'
  | 'drift_repaired'
  | 'rename'
  | 'normalize'
  | 'password'
  | 'terminate'
  | 'forget';

/**
 * - `ok`: done.
 * - `failed`: the database refused or broke off; retried with backoff until it works.
 * - `conflict`: a role rolegate did not create (or another person's) has the name; left alone.
 * - `retained`: a deleted person's role owns objects it cannot hand over; it stays disabled.
 */
export type ProvisioningOutcome = 'ok' | 'failed' | 'conflict' | 'retained';

// A type, not an interface: the audit emitter takes events as records of fields.
export type ProvisioningEvent = {
  readonly type: 'provisioning';
  /** The person's role (its name at the time of the action). */
  readonly role: string;
  readonly person: { readonly id: string; readonly userName: string };
  readonly action: ProvisioningAction;
  /** For `drift_repaired`: which step repaired it. */
  readonly step?: Exclude<ProvisioningAction, 'drift_repaired'>;
  readonly outcome: ProvisioningOutcome;
  readonly detail: string;
};

export type ProvisioningAudit = (event: ProvisioningEvent) => void;

/** One action taken (or refused) on a person's role, before the engine adds who and why. */
export interface StepEvent {
  readonly role: string;
  readonly action: Exclude<ProvisioningAction, 'drift_repaired'>;
  readonly outcome: ProvisioningOutcome;
  readonly detail: string;
}
