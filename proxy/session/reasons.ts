// Why a session ends or a login is refused, as types: the audit `reason` text, the metric label and
// the client's 57P01 text all derive from these, so no caller builds or parses a reason string.
import type { DenyReason } from '../authz/decide.js';
import { SqlState } from '../wire/sqlstate.js';

/** Why rolegate (not the client or the upstream) ends a live session; each has a client-facing 57P01 text. */
export type EndByProxy = 'revoked' | 'token_expired' | 'admin_kill' | 'shutdown' | 'max_duration' | 'idle_timeout' | 'audit_unavailable';

/** Every `session.end` reason (docs/design.md §6): the relay's own, and rolegate's. */
export type SessionEndReason = 'client_exit' | 'upstream_closed' | 'error' | EndByProxy;

/** The client-facing text of each end rolegate causes (FATAL 57P01, docs/design.md §2 step 9). */
export const END_MESSAGE: Readonly<Record<EndByProxy, string>> = {
  revoked: 'access revoked',
  token_expired: 'token expired',
  admin_kill: 'terminated by administrator',
  shutdown: 'server shutting down',
  max_duration: 'session exceeded its maximum duration',
  idle_timeout: 'session idle for too long',
  audit_unavailable: 'audit log unavailable',
};

/**
 * The SQLSTATE of each end rolegate causes: admin_shutdown, except that a session the audit log
 * could not record ends like the logins it refuses (io_error, docs/design.md §6).
 */
export const END_SQLSTATE: Readonly<Record<EndByProxy, string>> = {
  revoked: SqlState.adminShutdown,
  token_expired: SqlState.adminShutdown,
  admin_kill: SqlState.adminShutdown,
  shutdown: SqlState.adminShutdown,
  max_duration: SqlState.adminShutdown,
  idle_timeout: SqlState.adminShutdown,
  audit_unavailable: SqlState.ioError,
};

/** FATAL 08006 to a login while this instance cannot vouch for its directory (docs/design.md §8). */
export const DIRECTORY_UNAVAILABLE = 'directory unavailable';

/**
 * Why a login was refused (`session.denied`). Reasons with a `code` are families whose detail is
 * audited as `<kind>:<code>` (`token_invalid:expired`, `upstream:auth`, `protocol_violation:...`).
 */
export type DeniedReason =
  | { readonly kind: 'token_invalid' | 'protocol_violation' | 'upstream' | 'personal_role'; readonly code: string }
  | {
      readonly kind:
        | DenyReason
        | 'tls_required'
        | 'too_many_connections'
        | 'unsupported_protocol'
        | 'no_user'
        | 'option_not_allowed'
        | 'login_timeout'
        | 'revoked_during_login'
        | 'audit_unavailable'
        | 'directory_unavailable'
        | 'internal';
    };

/** The audit log's `reason` text. */
export function deniedText(r: DeniedReason): string {
  return 'code' in r ? `${r.kind}:${r.code}` : r.kind;
}

/**
 * The `rolegate_auth_failures_total{reason}` label, or undefined for what is not a failed login
 * (a client that does not speak the protocol). Token failures are counted by their code.
 */
export function deniedMetricLabel(r: DeniedReason): string | undefined {
  // Neither a client that does not speak the protocol nor a refusal because the audit log is down
  // is a failed login of the person.
  if (r.kind === 'protocol_violation' || r.kind === 'audit_unavailable') return undefined;
  if (r.kind === 'token_invalid') return r.code;
  // One series for a deactivated person, however they were found; the audit tells the two apart.
  if (r.kind === 'deactivated:email') return 'deactivated';
  return r.kind;
}

/**
 * Why a connection closed before it was live without a refusal the client could read: it left, its
 * TLS handshake failed, it only came to cancel, or it said goodbye before logging in.
 */
export type DropReason =
  | 'client_left'
  | 'client_terminate'
  | 'cancel_request'
  | 'tls_failed'
  | 'tls_unavailable'
  | 'handshake_timeout';
