// How `rolegate login` fails: a stable code plus one public line, and the translation of openid-client,
// TLS and socket errors into that line without stack traces, secrets or tokens.
import { CodedError } from '../../lib/coded-error.js';
import { ResponseBodyError, WWWAuthenticateChallengeError } from 'openid-client';

/** Every way a login can fail. Values are stable: scripts may match them in the message. */
export const LoginErrorCode = {
  /** --issuer, --ca or the cache directory is unusable before anything is sent. */
  badInput: 'bad_input',
  /** Discovery or an endpoint could not be reached (DNS, refused, TLS, timeout). */
  unreachable: 'issuer_unreachable',
  /** The issuer answered, but not with something usable (no device endpoint, no access_token, ...). */
  badIssuer: 'issuer_invalid',
  /** The issuer refused the client (RFC 6749 §5.2 invalid_client, unauthorized_client). */
  clientRefused: 'client_refused',
  /** The person refused the request at the issuer (RFC 8628 §3.5 access_denied). */
  denied: 'access_denied',
  /** The device code expired before anyone approved it (RFC 8628 §3.5 expired_token). */
  expired: 'expired_token',
  /** Ctrl+C or SIGTERM while waiting. */
  cancelled: 'cancelled',
  /** Any other error answer from the token or device authorization endpoint. */
  refused: 'refused',
} as const;

export type LoginErrorCode = (typeof LoginErrorCode)[keyof typeof LoginErrorCode];

/** A failed login: `message` is the one line shown to the user; `cause` is never printed. */
export class LoginError extends CodedError<LoginErrorCode> {
  override readonly name = 'LoginError';

  constructor(code: LoginErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }
}

// What the issuer sends back is peer text: bound it and keep it on one printable line.
const MAX_PEER_TEXT = 200;

/** `value` as one printable line of at most 200 characters ('' when not a string): for issuer-sent text. */
export function peerText(value: unknown): string {
  if (typeof value !== 'string') return '';
  const clean = value.replace(/[\u0000-\u001f\u007f-\u009f]+/g, ' ').trim();
  return clean.length > MAX_PEER_TEXT ? `${clean.slice(0, MAX_PEER_TEXT)}...` : clean;
}

// Socket and TLS error codes that mean "could not talk to the issuer", with a hint where one helps.
const TLS_HINT = 'pass the issuer CA with --ca FILE';
const TRANSPORT_HINTS: Readonly<Record<string, string>> = {
  SELF_SIGNED_CERT_IN_CHAIN: TLS_HINT,
  DEPTH_ZERO_SELF_SIGNED_CERT: TLS_HINT,
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: TLS_HINT,
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: TLS_HINT,
  ERR_TLS_CERT_ALTNAME_INVALID: 'the certificate does not name this host',
  CERT_HAS_EXPIRED: 'the issuer certificate has expired',
};

/** The deepest error in a `cause` chain that carries a Node.js system or TLS `code`, if any. */
function transportCause(err: unknown): { code: string; message: string } | undefined {
  let found: { code: string; message: string } | undefined;
  let cur: unknown = err;
  for (let depth = 0; depth < 8 && cur instanceof Error; depth++) {
    const code = (cur as { code?: unknown }).code;
    if (typeof code === 'string' && (/^E[A-Z]+$/.test(code) || code in TRANSPORT_HINTS || code.startsWith('ERR_TLS') || code.startsWith('ERR_SSL'))) {
      found = { code, message: cur.message };
    } else if (cur.name === 'TimeoutError') {
      found = { code: 'ETIMEDOUT', message: 'timed out' };
    }
    cur = cur.cause;
  }
  return found;
}

/**
 * Turns whatever a step threw into a LoginError with one readable line. `step` names what was being
 * done ("discovery", "device authorization", ...); `secrets` are removed from the line, belt and braces.
 */
export function toLoginError(err: unknown, step: string, issuer: string, secrets: readonly string[] = []): LoginError {
  // Redacted before peerText shortens or rewrites the text, so no part of a secret survives either.
  const redact = (line: string): string => secrets.reduce((s, secret) => (secret.length >= 4 ? s.split(secret).join('[redacted]') : s), line);
  const text = (value: unknown): string => peerText(typeof value === 'string' ? redact(value) : value);
  const line = (code: LoginErrorCode, message: string): LoginError => new LoginError(code, redact(message), { cause: err });
  if (err instanceof LoginError) return new LoginError(err.code, redact(err.message), { cause: err.cause });
  if (err instanceof ResponseBodyError) {
    const desc = text(err.error_description);
    return line(codeForOAuthError(err.error), `${step} refused by ${issuer} (${text(err.error)}${desc === '' ? '' : `: ${desc}`})`);
  }
  if (err instanceof WWWAuthenticateChallengeError) {
    const challenge = err.cause[0];
    const error = text(challenge?.parameters.error ?? 'unauthorized');
    const desc = text(challenge?.parameters.error_description);
    return line(codeForOAuthError(error), `${step} refused by ${issuer} (HTTP ${err.status} ${error}${desc === '' ? '' : `: ${desc}`})`);
  }
  const transport = transportCause(err);
  if (transport !== undefined) {
    const hint = TRANSPORT_HINTS[transport.code];
    const why = text(transport.message) || transport.code;
    return line(LoginErrorCode.unreachable, `cannot reach the issuer at ${issuer} during ${step} (${why})${hint === undefined ? '' : `; ${hint}`}`);
  }
  // openid-client keeps a non-conforming HTTP answer as the cause; its status says more than the message.
  const response = err instanceof Error && err.cause instanceof Response ? err.cause : undefined;
  if (response !== undefined) {
    const hint = step === 'discovery' ? '; is --issuer the issuer URL?' : '';
    return line(LoginErrorCode.badIssuer, `${step} with ${issuer} failed: HTTP ${response.status}${hint}`);
  }
  const message = err instanceof Error ? text(err.message) : '';
  return line(LoginErrorCode.badIssuer, `${step} with ${issuer} failed: ${message || 'unexpected error'}`);
}

function codeForOAuthError(error: string): LoginErrorCode {
  switch (error) {
    case 'invalid_client':
    case 'unauthorized_client':
      return LoginErrorCode.clientRefused;
    case 'access_denied':
      return LoginErrorCode.denied;
    case 'expired_token':
      return LoginErrorCode.expired;
    default:
      return LoginErrorCode.refused;
  }
}
