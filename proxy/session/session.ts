// One client connection from accept to close (docs/design.md §2): encryption negotiation, startup, the
// token, the decision, the upstream login, then the live session. Until it is live, every way the
// connection ends goes through `disconnect` with a typed reason (pgbouncer's disconnect_client): one
// log line each, and refusals audited; after that, the live session's own end path takes over.
import { randomUUID } from 'node:crypto';
import type { Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import type { TLSSocket } from 'node:tls';
import { TokenError, type VerifiedToken } from '../auth/index.js';
import { decideRole, type Decision } from '../authz/decide.js';
import { UpstreamError, UpstreamErrorCode, connectUpstream, type UpstreamConnection } from '../upstream/index.js';
import { UpstreamPool, type PoolLogin } from '../upstream/pool.js';
import { PROTOCOL_MAJOR } from '../wire/constants.js';
import {
  authenticationCleartextPassword,
  encryptionRefused,
  errorResponse,
  negotiateProtocolVersion,
  sslAccepted,
} from '../wire/backend-writer.js';
import { SqlState } from '../wire/sqlstate.js';
import { createStartupFramer, protocolNegotiation, type StartupEvent, type StartupFramer, type StartupMessage } from '../wire/startup-framer.js';
import type { ClientInfo } from './client.js';
import type { RoleWithCredentials, SessionDeps } from './deps.js';
import { startLiveSession } from './live.js';
import { DIRECTORY_UNAVAILABLE, deniedMetricLabel, deniedText, type DeniedReason, type DropReason } from './reasons.js';
import { upstreamStartupParams } from './startup-params.js';
import { upstreamIdentity } from './upstream-login.js';

/** Where the connection is; each phase carries exactly what it needs. */
type State =
  /** Before a StartupMessage: SSLRequest, GSSENCRequest, CancelRequest or startup, in plaintext or after TLS. */
  | { readonly phase: 'negotiating' }
  /** The TLS handshake is in flight; the socket belongs to the upgrade. */
  | { readonly phase: 'tls' }
  /** AuthenticationCleartextPassword sent; waiting for the token. */
  | { readonly phase: 'password'; readonly startup: StartupMessage }
  /** Verifying the token, deciding, logging in upstream; `abort` stops the upstream login. */
  | { readonly phase: 'login'; readonly startup: StartupMessage; readonly abort: AbortController }
  /** Handed to the live session, which owns both sockets from here. */
  | { readonly phase: 'live' }
  | { readonly phase: 'closed' };

/** How a connection that never went live ends. */
type LoginEnd =
  | { readonly kind: 'refused'; readonly sqlstate: string; readonly message: string; readonly reason: DeniedReason }
  | { readonly kind: 'dropped'; readonly reason: DropReason };

/** Ends that are routine (a health check's TCP probe, a Ctrl+C) are logged at debug, the rest at info. */
const DROP_LEVEL: Readonly<Record<DropReason, 'debug' | 'info'>> = {
  client_left: 'debug',
  cancel_request: 'debug',
  client_terminate: 'debug',
  tls_failed: 'info',
  tls_unavailable: 'info',
  handshake_timeout: 'info',
};

/**
 * The database a StartupMessage asks for. PostgreSQL's default (ProcessStartupPacket): a missing or
 * empty `database` is the one named like the user. The decision and the audit event must agree on
 * it, so both use this (an empty value once reached the audit log as "").
 */
function databaseOf(msg: StartupMessage): string {
  return msg.params.get('database') || (msg.params.get('user') ?? '');
}

/** Time a refused client gets to read its FATAL before the socket is destroyed. */
const CLOSE_GRACE_MS = 2_000;

/**
 * Runs the session for an accepted socket. `overLimit`: the listener is full, so the session answers
 * FATAL 53300 once the client can read it (after TLS). `onClose` runs exactly once.
 */
export function startSession(socket: Socket, deps: SessionDeps, opts: { overLimit: boolean; onClose: () => void }): void {
  const id = randomUUID();
  const client: ClientInfo = { address: socket.remoteAddress ?? '', port: socket.remotePort ?? 0 };
  const log = deps.logger.child({ session: id });
  let stream: Socket | TLSSocket = socket;
  let framer: StartupFramer = createStartupFramer();
  let state: State = { phase: 'negotiating' };
  let onCloseCalled = false;

  socket.setNoDelay(true);
  socket.setKeepAlive(true, 60_000);
  const loginTimer = setTimeout(() => {
    // Before a StartupMessage there is nobody to tell: the connection is simply closed.
    if (state.phase === 'negotiating' || state.phase === 'tls') disconnect({ kind: 'dropped', reason: 'handshake_timeout' });
    else refuse(SqlState.protocolViolation, 'login timed out', { kind: 'login_timeout' });
  }, deps.settings.loginTimeoutMs);
  loginTimer.unref();

  listen(socket);

  function listen(s: Socket | TLSSocket): void {
    s.on('data', onData);
    s.on('error', onSocketError);
    s.on('close', onSocketClose);
  }
  function unlisten(s: Socket | TLSSocket): void {
    s.off('data', onData);
    s.off('close', onSocketClose);
    // The 'error' listener stays for the socket's whole life: an error without one crashes the process.
  }

  function onSocketError(err: Error): void {
    log.debug({ err }, 'client socket error');
  }
  function onSocketClose(): void {
    disconnect({ kind: 'dropped', reason: 'client_left' });
  }

  function onData(chunk: Buffer): void {
    const events = framer.push(chunk);
    for (let i = 0; i < events.length && isOpen(); i++) handle(events[i]!, events[i + 1]);
  }

  function isOpen(): boolean {
    return state.phase !== 'closed' && state.phase !== 'live';
  }

  function handle(ev: StartupEvent, next: StartupEvent | undefined): void {
    switch (ev.kind) {
      case 'sslRequest':
        // Bytes after the request and before our answer: the CVE-2021-23214 class; the framer reports
        // them as the next event and the violation branch answers.
        if (next?.kind === 'violation') return;
        if (deps.tls === undefined) {
          stream.write(encryptionRefused());
          framer.continuePlaintext();
          return;
        }
        stream.write(sslAccepted());
        upgrade(false);
        return;
      case 'directTls':
        if (deps.tls === undefined) return disconnect({ kind: 'dropped', reason: 'tls_unavailable' });
        upgrade(true);
        return;
      case 'gssEncRequest':
        if (next?.kind === 'violation') return;
        stream.write(encryptionRefused());
        framer.continuePlaintext();
        return;
      case 'cancelRequest':
        return cancel(ev.pid, ev.secret);
      case 'startup':
        return onStartup(ev);
      case 'password':
        if (state.phase !== 'password') return;
        login(state.startup, ev.password).catch(internalFailure);
        return;
      case 'passwordTooLong':
        return tokenRefused('token_too_long');
      case 'terminate':
        return disconnect({ kind: 'dropped', reason: 'client_terminate' });
      case 'violation':
        return refuse(ev.error.sqlstate, ev.error.message, { kind: 'protocol_violation', code: ev.error.code });
    }
  }

  function upgrade(direct: boolean): void {
    const tlsServer = deps.tls;
    if (tlsServer === undefined) return;
    const rest = framer.takeRest();
    unlisten(socket);
    socket.pause();
    if (rest.length > 0) socket.unshift(rest);
    state = { phase: 'tls' };
    tlsServer.upgrade(socket, { direct }).then(
      (tls) => {
        if (state.phase !== 'tls') return void tls.destroy();
        stream = tls;
        const cipher = tls.getCipher();
        client.tls = { version: tls.getProtocol() ?? 'unknown', cipher: cipher.standardName ?? cipher.name };
        framer = createStartupFramer({ encrypted: true });
        state = { phase: 'negotiating' };
        listen(tls);
        // A client that left right after the handshake may have closed before this callback ran
        // (close is emitted on nextTick, before promise callbacks): its 'close' is never seen again.
        if (tls.destroyed) disconnect({ kind: 'dropped', reason: 'client_left' });
      },
      (err: unknown) => {
        log.debug({ err }, 'TLS handshake failed');
        disconnect({ kind: 'dropped', reason: 'tls_failed' });
      },
    );
  }

  function onStartup(msg: StartupMessage): void {
    state = { phase: 'password', startup: msg };
    if (client.tls === undefined && !deps.settings.allowPlaintext) {
      return refuse(SqlState.invalidAuthorizationSpecification, 'SSL connection is required', { kind: 'tls_required' });
    }
    if (opts.overLimit) return refuse(SqlState.tooManyConnections, 'sorry, too many clients already', { kind: 'too_many_connections' });
    if (msg.major !== PROTOCOL_MAJOR) {
      return refuse(SqlState.featureNotSupported, `unsupported frontend protocol ${msg.major}.${msg.minor}`, { kind: 'unsupported_protocol' });
    }
    if (!msg.params.get('user')) {
      return refuse(SqlState.invalidAuthorizationSpecification, 'no PostgreSQL user name specified in startup packet', { kind: 'no_user' });
    }
    const negotiation = protocolNegotiation(msg);
    if (negotiation !== undefined) stream.write(negotiateProtocolVersion(negotiation.newestMinor, negotiation.unsupportedOptions));
    stream.write(authenticationCleartextPassword());
  }

  async function login(startup: StartupMessage, token: string): Promise<void> {
    const abort = new AbortController();
    state = { phase: 'login', startup, abort };
    const requestedUser = startup.params.get('user') ?? '';
    const database = databaseOf(startup);
    // Fail closed (docs/design.md §6): while the audit log cannot be written, nobody new gets in.
    if (!deps.audit.available) return refuse(SqlState.ioError, 'audit log unavailable', { kind: 'audit_unavailable' });
    let verified: VerifiedToken;
    try {
      verified = await deps.verifier.verify(token);
    } catch (err) {
      return tokenRefused(err instanceof TokenError ? err.code : 'internal', err);
    }
    if (abort.signal.aborted) return;
    // docs/design.md §8: nothing is admitted on a directory this instance cannot vouch for.
    if (!deps.directory.isCurrent()) return refuse(SqlState.connectionFailure, DIRECTORY_UNAVAILABLE, { kind: 'directory_unavailable' });
    const decide = (): Decision<RoleWithCredentials> =>
      decideRole({ identity: verified.identity, match: deps.directory.findPerson(verified.identity), requestedUser, database, rules: deps.roles() });
    const decision = decide();
    if (decision.kind === 'deny') return refuse(decision.sqlstate, decision.message, { kind: decision.reason });

    const params = upstreamStartupParams(startup.params, deps.settings.allowedOptions);
    if (!params.ok) return refuse(params.sqlstate, params.message, { kind: 'option_not_allowed' });

    const identity = await upstreamIdentity(deps, decision, params.params, abort.signal);
    if (abort.signal.aborted) return;
    if (identity.kind === 'unavailable') {
      return refuse(SqlState.connectionFailure, `database role of "${decision.userName}" is not ready`, { kind: 'personal_role', code: identity.reason });
    }

    // The key names the login role: with per-user provisioning that is the person's own, and the
    // person's id too, so a pooled connection never passes from one person to another (docs/design.md
    // §2 step 7, Pool).
    const poolLogin: PoolLogin = identity.personal
      ? { kind: 'personal', role: identity.user, personId: decision.personId }
      : { kind: 'shared', role: identity.user };
    const poolKey = deps.pool ? UpstreamPool.key(poolLogin, database, identity.params) : undefined;
    // A pooled connection is already logged in as this role with these settings: no TCP, TLS or SCRAM.
    let upstream = poolKey !== undefined ? deps.pool?.take(poolKey) : undefined;
    if (upstream === undefined) {
      const target = deps.upstream();
      const t0 = performance.now();
      try {
        upstream = await connectUpstream({
          host: target.host,
          port: target.port,
          tls: target.tls,
          role: identity.user,
          database,
          params: identity.params,
          credentials: identity.credentials,
          connectTimeoutMs: target.connectTimeoutMs,
          signal: abort.signal,
        });
      } catch (err) {
        if (abort.signal.aborted) return;
        log.warn({ err, role: decision.rule.role, login: identity.user }, 'upstream login failed');
        const code = err instanceof UpstreamError ? err.code : 'error';
        if (identity.personal && err instanceof UpstreamError) {
          // The person's role did not take its secret, or could not start as the decided role:
          // the provisioner looks at it again, so the next attempt finds it repaired.
          if (err.code === UpstreamErrorCode.auth) deps.personalRoles?.upstreamRefused(decision.personId, 'secret');
          else if (err.sqlstate === SqlState.insufficientPrivilege) deps.personalRoles?.upstreamRefused(decision.personId, 'role');
        }
        const message = err instanceof UpstreamError ? err.publicMessage : 'upstream database unavailable';
        return refuse(SqlState.connectionFailure, message, { kind: 'upstream', code });
      }
      deps.metrics.upstreamConnectSeconds.observe((performance.now() - t0) / 1000);
    }
    if (abort.signal.aborted) return discard(upstream);

    // Decided again now that the upstream login is over: a directory change (a deactivation, a
    // group removal) committed while it was in flight is seen here, and from here until the live
    // session is in the registry, where revocations reach it, nothing awaits. A directory that
    // stopped being current meanwhile may have missed such a change.
    if (!deps.directory.isCurrent()) {
      discard(upstream);
      return refuse(SqlState.connectionFailure, DIRECTORY_UNAVAILABLE, { kind: 'directory_unavailable' });
    }
    const now = decide();
    if (now.kind === 'deny') {
      discard(upstream);
      return refuse(now.sqlstate, now.message, { kind: now.reason });
    }
    if (now.personId !== decision.personId || now.rule.role !== decision.rule.role) {
      discard(upstream);
      return refuse(SqlState.adminShutdown, 'access revoked', { kind: 'revoked_during_login' });
    }

    clearTimeout(loginTimer);
    state = { phase: 'live' };
    unlisten(stream);
    stream.pause();
    startLiveSession({
      id,
      deps,
      client,
      stream,
      rest: framer.takeRest(),
      upstream,
      decision: now,
      ...(identity.personal ? { loginRole: identity.user } : {}),
      verified,
      requestedUser,
      database,
      application: startup.params.get('application_name') ?? '',
      log,
      ...(poolKey !== undefined && deps.pool !== undefined ? { pool: { pool: deps.pool, key: poolKey } } : {}),
      onEnd: closed,
    });
  }

  /** An upstream connection the session will not use: nothing was sent on it, so it just goes. */
  function discard(upstream: UpstreamConnection): void {
    upstream.socket.on('error', () => {});
    upstream.socket.destroy();
  }

  /** Something unexpected broke this login: this one client is refused, every other session goes on. */
  function internalFailure(err: unknown): void {
    log.error({ err }, 'login failed unexpectedly');
    refuse(SqlState.internalError, 'internal error during login', { kind: 'internal' });
  }

  function tokenRefused(code: string, cause?: unknown): void {
    if (cause !== undefined && !(cause instanceof TokenError)) log.error({ err: cause }, 'token verification failed unexpectedly');
    const user = startupOf(state)?.params.get('user') ?? '';
    refuse(SqlState.invalidPassword, `token authentication failed for user "${user}"`, { kind: 'token_invalid', code });
  }

  function cancel(pid: number, secret: Buffer): void {
    const target = deps.registry.byCancelKey(pid, secret);
    // PostgreSQL answers a CancelRequest with nothing, valid or not; so does rolegate.
    disconnect({ kind: 'dropped', reason: 'cancel_request' });
    if (target !== undefined) {
      target.cancel().catch((err: unknown) => log.warn({ err }, 'cancel forwarding failed'));
      return;
    }
    // A key another instance issued (its slot is in the process id, docs/design.md §8): that one
    // holds the session and checks the secret.
    const issuer = deps.registry.issuerElsewhere(pid);
    if (issuer !== undefined) deps.forwardCancel?.(issuer, pid, secret);
  }

  function refuse(sqlstate: string, message: string, reason: DeniedReason): void {
    disconnect({ kind: 'refused', sqlstate, message, reason });
  }

  /** The one end of a connection that never went live: stops the login, logs, audits refusals, closes. */
  function disconnect(end: LoginEnd): void {
    if (!isOpen()) return;
    const startup = startupOf(state);
    if (state.phase === 'login') state.abort.abort();
    state = { phase: 'closed' };
    clearTimeout(loginTimer);
    unlisten(stream);
    if (end.kind === 'refused') {
      const label = deniedMetricLabel(end.reason);
      if (label !== undefined) deps.metrics.authFailures.inc({ reason: label });
      const reason = deniedText(end.reason);
      deps.audit.emit({
        type: 'session.denied',
        session: id,
        client: { address: client.address, port: client.port },
        requestedUser: startup?.params.get('user') ?? null,
        database: startup === undefined ? null : databaseOf(startup) || null,
        reason,
        sqlstate: end.sqlstate,
      });
      deps.metrics.sessionsTotal.inc({ outcome: 'denied' });
      log.info({ reason, sqlstate: end.sqlstate }, 'login refused');
      // FATAL, then FIN; a client that never reads it is cut off after the grace period. The
      // refusal is on disk first (docs/design.md §6); an audit log that cannot be written does not
      // keep the client waiting for it.
      const fatal = errorResponse({ severity: 'FATAL', code: end.sqlstate, message: end.message });
      const send = (): void => {
        stream.end(fatal);
        setTimeout(() => stream.destroy(), CLOSE_GRACE_MS).unref();
      };
      deps.audit.flushed().then(send, send);
    } else {
      log[DROP_LEVEL[end.reason]]({ reason: end.reason }, 'connection closed before login');
      stream.destroy();
      if (stream !== socket) socket.destroy();
    }
    closed();
  }

  function closed(): void {
    if (onCloseCalled) return;
    onCloseCalled = true;
    state = { phase: 'closed' };
    clearTimeout(loginTimer);
    opts.onClose();
  }
}

/** The StartupMessage of a state that has one. */
function startupOf(state: State): StartupMessage | undefined {
  return state.phase === 'password' || state.phase === 'login' ? state.startup : undefined;
}
