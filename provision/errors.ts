// Errors of the provisioner with stable codes: what an operator acts on (missing privileges, an
// unreachable database, a secret that does not open) and what a test asserts.
import { CodedError } from '../lib/coded-error.js';

export const ProvisionErrorCode = {
  /** The provisioning login lacks a privilege it needs (the message names each one). */
  privileges: 'PROVISION_PRIVILEGES',
  /** The database cannot be reached. */
  unreachable: 'PROVISION_UNREACHABLE',
  /** The database refuses the provisioning login or its database (credentials, pg_hba, no such database). */
  loginRefused: 'PROVISION_LOGIN_REFUSED',
  /** A sealed secret does not open under provisioning.secretKey (wrong key, or the record was altered). */
  secret: 'PROVISION_SECRET',
  /** One person's step failed (the database answered, with an error); retried later. */
  step: 'PROVISION_STEP',
  /** A name or literal that cannot be put into SQL safely. */
  badName: 'PROVISION_BAD_NAME',
} as const;
export type ProvisionErrorCode = (typeof ProvisionErrorCode)[keyof typeof ProvisionErrorCode];

export class ProvisionError extends CodedError<ProvisionErrorCode> {
  override readonly name = 'ProvisionError';

  constructor(code: ProvisionErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }
}

/**
 * The directory store's failures concern the pass or comparison that met them, not the database being
 * provisioned: retried for that person (the store has its own readiness check), never taken for a
 * database outage.
 */
export async function fromStore<T>(work: Promise<T>): Promise<T> {
  try {
    return await work;
  } catch (err) {
    throw new ProvisionError(ProvisionErrorCode.step, `directory store: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
}
