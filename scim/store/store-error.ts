// Operator-facing errors of the directory store: a stable `code` for scripts and a message that never
// carries the store URL (it may hold a password).
import { CodedError } from '../../lib/coded-error.js';

export const StoreErrorCode = {
  /** `directory.store` is neither `sqlite:PATH` nor a `postgres://` / `postgresql://` URL. */
  urlInvalid: 'STORE_URL_INVALID',
  /** The database was migrated by a newer rolegate than this one: refuse rather than guess. */
  schemaTooNew: 'STORE_SCHEMA_TOO_NEW',
  /** Another process already serves this SQLite file (a SQLite directory serves one instance). */
  inUse: 'STORE_IN_USE',
  /** A row of the change log holds something this version cannot apply: the follower reloads instead. */
  logUnreadable: 'STORE_LOG_UNREADABLE',
} as const;
export type StoreErrorCode = (typeof StoreErrorCode)[keyof typeof StoreErrorCode];

/** A store failure an operator can act on; `cause` keeps the driver's error for the log. */
export class StoreError extends CodedError<StoreErrorCode> {
  override readonly name = 'StoreError';

  constructor(code: StoreErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }
}
