// The type bytes of typed protocol messages (protocol.sgml, "Message Formats"), as char codes.

/** Client-to-server message types. */
export const FrontendType = {
  bind: 0x42, // 'B'
  close: 0x43, // 'C'
  describe: 0x44, // 'D'
  execute: 0x45, // 'E'
  functionCall: 0x46, // 'F'
  flush: 0x48, // 'H'
  parse: 0x50, // 'P'
  query: 0x51, // 'Q'
  sync: 0x53, // 'S'
  terminate: 0x58, // 'X'
  copyDone: 0x63, // 'c'
  copyData: 0x64, // 'd'
  copyFail: 0x66, // 'f'
  /** PasswordMessage, and also SASLInitialResponse/SASLResponse/GSSResponse. */
  password: 0x70, // 'p'
} as const;
export type FrontendType = (typeof FrontendType)[keyof typeof FrontendType];

/** Server-to-client message types. */
export const BackendType = {
  parseComplete: 0x31, // '1'
  bindComplete: 0x32, // '2'
  closeComplete: 0x33, // '3'
  notificationResponse: 0x41, // 'A'
  commandComplete: 0x43, // 'C'
  dataRow: 0x44, // 'D'
  errorResponse: 0x45, // 'E'
  copyInResponse: 0x47, // 'G'
  copyOutResponse: 0x48, // 'H'
  emptyQueryResponse: 0x49, // 'I'
  backendKeyData: 0x4b, // 'K'
  noticeResponse: 0x4e, // 'N'
  authentication: 0x52, // 'R'
  parameterStatus: 0x53, // 'S'
  rowDescription: 0x54, // 'T'
  functionCallResponse: 0x56, // 'V'
  copyBothResponse: 0x57, // 'W'
  readyForQuery: 0x5a, // 'Z'
  copyDone: 0x63, // 'c'
  copyData: 0x64, // 'd'
  noData: 0x6e, // 'n'
  portalSuspended: 0x73, // 's'
  parameterDescription: 0x74, // 't'
  negotiateProtocolVersion: 0x76, // 'v'
} as const;
export type BackendType = (typeof BackendType)[keyof typeof BackendType];

/** AuthenticationRequest subtypes ('R' messages) rolegate sends. */
export const AuthCode = {
  ok: 0,
  cleartextPassword: 3,
} as const;
export type AuthCode = (typeof AuthCode)[keyof typeof AuthCode];

/**
 * One typed message as the relay tap reports it: type byte, length field (which counts itself but not
 * the type byte), and the first bytes of the body, possibly fewer than `length - 4`. From the tap,
 * `prefix` is valid only during the call that receives it (proxy/relay/message-tap.ts onMessage).
 */
export interface RawMessage {
  readonly type: number;
  readonly length: number;
  readonly prefix: Buffer;
}
