// Protocol errors found while reading client bytes: a stable code, the SQLSTATE and a message that is
// safe to send back in a FATAL ErrorResponse (it names the fault, never echoes the peer's bytes).
import { CodedError } from '../../lib/coded-error.js';
import { SqlState } from './sqlstate.js';

export const WireErrorCode = {
  invalidStartupLength: 'invalid_startup_length',
  invalidCancelLength: 'invalid_cancel_length',
  invalidStartupLayout: 'invalid_startup_layout',
  duplicateStartupParameter: 'duplicate_startup_parameter',
  invalidStartupEncoding: 'invalid_startup_encoding',
  unsupportedProtocol: 'unsupported_protocol',
  dataAfterEncryptionRequest: 'data_after_encryption_request',
  duplicateEncryptionRequest: 'duplicate_encryption_request',
  unexpectedMessage: 'unexpected_message',
  invalidMessageLength: 'invalid_message_length',
  invalidPasswordPacket: 'invalid_password_packet',
  tooMuchEarlyData: 'too_much_early_data',
} as const;
export type WireErrorCode = (typeof WireErrorCode)[keyof typeof WireErrorCode];

/** A protocol error whose `code`, `sqlstate` and `message` may be sent to the client. */
export class WireError extends CodedError<WireErrorCode> {
  override readonly name = 'WireError';
  readonly sqlstate: SqlState;

  constructor(code: WireErrorCode, message: string, sqlstate: SqlState = SqlState.protocolViolation) {
    super(code, message);
    this.sqlstate = sqlstate;
  }
}
