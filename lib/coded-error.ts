// The one base of rolegate's errors that carry a stable `code` (STYLE: two kinds of error). The code
// is for scripts, tests, metrics and audit reasons; `message` and `cause` are detail for the log;
// `publicMessage` is the only text that may reach the peer (a client, a SCIM caller, a terminal).
export class CodedError<C extends string = string> extends Error {
  readonly code: C;
  /** Safe to show to the peer: names the fault, never echoes internal detail or the peer's bytes. */
  readonly publicMessage: string;

  constructor(code: C, message: string, opts: { cause?: unknown; publicMessage?: string } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.code = code;
    this.publicMessage = opts.publicMessage ?? message;
  }
}
