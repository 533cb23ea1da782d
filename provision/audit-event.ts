// The `provisioning` audit event (docs/design.md §6 and §7 step 5): one per action on a person's role,
// with its outcome. Repairs found by a full reconciliation carry `drift_repaired` and the step.

import type { ProvisioningAction, ProvisioningEvent, ProvisioningOutcome } from '../audit/events.js';

export type { ProvisioningAction, ProvisioningEvent, ProvisioningOutcome };

export type ProvisioningAudit = (event: ProvisioningEvent) => void;

/** One action taken (or refused) on a person's role, before the engine adds who and why. */
export interface StepEvent {
  readonly role: string;
  readonly action: Exclude<ProvisioningAction, 'drift_repaired'>;
  readonly outcome: ProvisioningOutcome;
  readonly detail: string;
}
