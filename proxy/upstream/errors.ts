// Upstream login/cancel failures: stable codes, client-safe one-line messages, detail only in `cause`.
import { CodedError } from '../../lib/coded-error.js';

/** Stable failure codes of the upstream side. */
export const UpstreamErrorCode = {
  unreachable: 'UPSTREAM_UNREACHABLE',
  tls: 'UPSTREAM_TLS',
  auth: 'UPSTREAM_AUTH',
  refused: 'UPSTREAM_REFUSED',
  protocol: 'UPSTREAM_PROTOCOL',
  timeout: 'UPSTREAM_TIMEOUT',
  aborted: 'UPSTREAM_ABORTED',
} as const;
export type UpstreamErrorCode = (typeof UpstreamErrorCode)[keyof typeof UpstreamErrorCode];

// What the client may read (docs/design.md §2 step 7: FATAL 08006, one line, no upstream internals).
// Server text, host names and certificate details stay in `cause`, which only the log sees.
const PUBLIC_MESSAGES: Readonly<Record<UpstreamErrorCode, string>> = {
  UPSTREAM_UNREACHABLE: 'upstream database unavailable',
  UPSTREAM_TLS: 'upstream TLS negotiation failed',
  UPSTREAM_AUTH: 'upstream refused the login',
  UPSTREAM_REFUSED: 'upstream refused the connection',
  UPSTREAM_PROTOCOL: 'upstream protocol error',
  UPSTREAM_TIMEOUT: 'upstream database did not answer in time',
  UPSTREAM_ABORTED: 'upstream login cancelled',
};

/** A failure to reach, secure, or log in to the upstream database; `publicMessage` is one line for the client. */
export class UpstreamError extends CodedError<UpstreamErrorCode> {
  override readonly name = 'UpstreamError';
  /** The server's SQLSTATE when it answered with an ErrorResponse. */
  readonly sqlstate: string | undefined;

  constructor(code: UpstreamErrorCode, detail: string, opts: { cause?: unknown; sqlstate?: string } = {}) {
    super(code, `${code}: ${detail}`, { cause: opts.cause, publicMessage: PUBLIC_MESSAGES[code] });
    this.sqlstate = opts.sqlstate;
  }
}

/** The server's ErrorResponse fields, kept as the `cause` of an UpstreamError for the log. */
export class UpstreamServerError extends Error {
  override readonly name = 'UpstreamServerError';
  readonly severity: string | undefined;
  readonly sqlstate: string | undefined;
  readonly detail: string | undefined;
  readonly hint: string | undefined;

  constructor(fields: ReadonlyMap<string, string>) {
    super(fields.get('M') ?? 'error without message');
    this.severity = fields.get('V') ?? fields.get('S');
    this.sqlstate = fields.get('C');
    this.detail = fields.get('D');
    this.hint = fields.get('H');
  }
}

// SQLSTATE classes that mean "these credentials were not accepted" (PostgreSQL errcodes.txt:
// 28000 invalid_authorization_specification, 28P01 invalid_password). Everything else the server
// refuses with (53300 too many connections, 57P03 cannot connect now, 3D000 no such database,
// 42501 no CONNECT privilege) is a refusal of the connection, not of the credentials.
const AUTH_SQLSTATE_CLASS = '28';

/** Maps a login-time ErrorResponse to an UpstreamError. */
export function fromServerError(fields: ReadonlyMap<string, string>): UpstreamError {
  const cause = new UpstreamServerError(fields);
  const sqlstate = cause.sqlstate;
  const code = sqlstate?.startsWith(AUTH_SQLSTATE_CLASS) ? UpstreamErrorCode.auth : UpstreamErrorCode.refused;
  return new UpstreamError(code, `server error ${sqlstate ?? '?'}: ${cause.message}`, {
    cause,
    ...(sqlstate === undefined ? {} : { sqlstate }),
  });
}

// Node's socket error codes that mean "nothing to talk to", as opposed to a TLS or protocol failure.
const UNREACHABLE_ERRNO = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
  'ETIMEDOUT',
  'EPIPE',
  'EADDRNOTAVAIL',
]);

/** Classifies a socket-level error raised while talking to the upstream. */
export function fromSocketError(err: unknown, phase: 'tcp' | 'tls' | 'login'): UpstreamError {
  if (err instanceof UpstreamError) return err;
  const errno = (err as { code?: unknown } | null)?.code;
  const message = err instanceof Error ? err.message : String(err);
  // OpenSSL errors (ERR_SSL_*, e.g. the server's "unknown ca" alert for our client certificate,
  // which TLS 1.3 delivers after the handshake) and Node's ERR_TLS_* are TLS failures in any phase.
  const tlsErrno = typeof errno === 'string' && (errno.startsWith('ERR_SSL_') || errno.startsWith('ERR_TLS_'));
  if (tlsErrno || (phase === 'tls' && !(typeof errno === 'string' && UNREACHABLE_ERRNO.has(errno)))) {
    return new UpstreamError(UpstreamErrorCode.tls, `TLS failure: ${message}`, { cause: err });
  }
  return new UpstreamError(UpstreamErrorCode.unreachable, `socket failure during ${phase}: ${message}`, {
    cause: err,
  });
}
