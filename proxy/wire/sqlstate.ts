// The SQLSTATEs rolegate sends to clients (PostgreSQL docs, Appendix A "PostgreSQL Error Codes";
// src/backend/utils/errcodes.txt). Keys are the condition names in camelCase.

export const SqlState = {
  /** too_many_connections: over `proxy.maxConnections` (docs/design.md §2 step 1). */
  tooManyConnections: '53300',
  /** protocol_violation: malformed or out-of-order frontend messages. */
  protocolViolation: '08P01',
  /** invalid_authorization_specification: TLS required, person unknown/inactive, role refused. */
  invalidAuthorizationSpecification: '28000',
  /** invalid_password: the token failed verification, or the password message was too long. */
  invalidPassword: '28P01',
  /** connection_failure: the upstream database is unreachable or refused the login. */
  connectionFailure: '08006',
  /** sqlclient_unable_to_establish_sqlconnection. */
  unableToEstablishConnection: '08001',
  /** sqlserver_rejected_establishment_of_sqlconnection. */
  connectionRejected: '08004',
  /** admin_shutdown: sessions rolegate ends (revoked, token expired, admin kill, shutdown). */
  adminShutdown: '57P01',
  /** cannot_connect_now: draining; new logins are refused while sessions finish. */
  cannotConnectNow: '57P03',
  /** idle_session_timeout (PostgreSQL 14+): `session.idleTimeout`. */
  idleSessionTimeout: '57P05',
  /** query_canceled. */
  queryCanceled: '57014',
  /** feature_not_supported: e.g. a frontend protocol major version other than 3. */
  featureNotSupported: '0A000',
  /** invalid_parameter_value: a startup parameter or `-c` option that is not allowed. */
  invalidParameterValue: '22023',
  /** insufficient_privilege. */
  insufficientPrivilege: '42501',
  /** io_error: the audit log cannot be written, so new sessions are refused (docs/design.md §6). */
  ioError: '58030',
  /** internal_error: anything unexpected; the peer gets a generic message. */
  internalError: 'XX000',
} as const;
export type SqlState = (typeof SqlState)[keyof typeof SqlState];
