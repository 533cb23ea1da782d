// One client connection from accept to close (PRODUCT.md §2): encryption negotiation, startup, the
// token, the decision, the upstream login, then the relay. Every way a session ends goes through
// `refuse` (before the relay) or the live session's `end` (after), so each end is audited once.
import { randomUUID } from 'node:crypto';
import type { Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import type { TLSSocket } from 'node:tls';
import { TokenError } from '../auth/index.js';
import { decideRole } from '../authz/decide.js';
import { UpstreamError, connectUpstream } from '../upstream/index.js';
import { UpstreamPool } from '../upstream/pool.js';
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
import type { SessionDeps } from './deps.js';
import { startLiveSession } from './live.js';
import { upstreamStartupParams } from './startup-params.js';

/** What the audit log records about the client side of a session. */
export interface ClientInfo {
  readonly address: string;
  readonly port: number;
  tls?: { version: string; cipher: string };
}

type Phase = 'negotiating' | 'tls' | 'startup' | 'password' | 'login' | 'live' | 'closed';

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
  let phase: Phase = 'negotiating';
  let startup: StartupMessage | undefined;
  let abortLogin: AbortController | undefined;
  let closed = false;

  socket.setNoDelay(true);
  socket.setKeepAlive(true, 60_000);
  const loginTimer = setTimeout(() => {
    // Before TLS is up a FATAL could not be read; the socket is simply closed.
    if (phase === 'negotiating' || phase === 'tls') closeNow();
    else refuse(SqlState.protocolViolation, 'login timed out', 'login_timeout');
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
    if (phase !== 'live') finishClosed();
  }

  function onData(chunk: Buffer): void {
    const events = framer.push(chunk);
    for (let i = 0; i < events.length && !closed; i++) {
      const next = events[i + 1];
      handle(events[i]!, next);
    }
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
        if (deps.tls === undefined) return closeNow();
        upgrade(true);
        return;
      case 'gssEncRequest':
        if (next?.kind === 'violation') return;
        stream.write(encryptionRefused());
        framer.continuePlaintext();
        return;
      case 'cancelRequest':
        cancel(ev.pid, ev.secret);
        return;
      case 'startup':
        onStartup(ev);
        return;
      case 'password':
        void login(ev.password);
        return;
      case 'passwordTooLong':
        tokenRefused('token_too_long');
        return;
      case 'terminate':
        closeNow();
        return;
      case 'violation':
        refuse(ev.error.sqlstate, ev.error.message, `protocol_violation:${ev.error.code}`);
        return;
    }
  }

  function upgrade(direct: boolean): void {
    const rest = framer.takeRest();
    unlisten(socket);
    socket.pause();
    if (rest.length > 0) socket.unshift(rest);
    phase = 'tls';
    deps.tls!.upgrade(socket, { direct }).then(
      (tls) => {
        if (closed) return void tls.destroy();
        stream = tls;
        const cipher = tls.getCipher();
        client.tls = { version: tls.getProtocol() ?? 'unknown', cipher: cipher.standardName ?? cipher.name };
        framer = createStartupFramer({ encrypted: true });
        phase = 'negotiating';
        listen(tls);
      },
      (err: unknown) => {
        log.debug({ err }, 'TLS handshake failed');
        closeNow();
      },
    );
  }

  function onStartup(msg: StartupMessage): void {
    startup = msg;
    phase = 'startup';
    if (client.tls === undefined && !deps.settings.allowPlaintext) {
      return refuse(SqlState.invalidAuthorizationSpecification, 'SSL connection is required', 'tls_required');
    }
    if (opts.overLimit) return refuse(SqlState.tooManyConnections, 'sorry, too many clients already', 'too_many_connections');
    if (msg.major !== PROTOCOL_MAJOR) {
      return refuse(SqlState.featureNotSupported, `unsupported frontend protocol ${msg.major}.${msg.minor}`, 'unsupported_protocol');
    }
    if (!msg.params.get('user')) {
      return refuse(SqlState.invalidAuthorizationSpecification, 'no PostgreSQL user name specified in startup packet', 'no_user');
    }
    const negotiation = protocolNegotiation(msg);
    if (negotiation !== undefined) stream.write(negotiateProtocolVersion(negotiation.newestMinor, negotiation.unsupportedOptions));
    phase = 'password';
    stream.write(authenticationCleartextPassword());
  }

  async function login(token: string): Promise<void> {
    phase = 'login';
    const requestedUser = startup!.params.get('user')!;
    const database = databaseOf(startup!);
    let verified;
    try {
      verified = await deps.verifier.verify(token);
    } catch (err) {
      return tokenRefused(err instanceof TokenError ? err.code : 'internal', err);
    }
    if (closed) return;
    const match = deps.directory.findPerson(verified.identity);
    const decision = decideRole({ identity: verified.identity, match, requestedUser, database, rules: deps.roles() });
    if (decision.kind === 'deny') return refuse(decision.sqlstate, decision.message, decision.reason);

    const params = upstreamStartupParams(startup!.params, deps.settings.allowedOptions);
    if (!params.ok) return refuse(params.sqlstate, params.message, 'option_not_allowed');

    const target = deps.upstream();
    const poolKey = deps.pool ? UpstreamPool.key(decision.rule.role, database, params.params) : undefined;
    // A pooled connection is already logged in as this role with these settings: no TCP, TLS or SCRAM.
    let upstream = poolKey !== undefined ? deps.pool!.take(poolKey) : undefined;
    if (upstream === undefined) {
      abortLogin = new AbortController();
      const t0 = performance.now();
      try {
        upstream = await connectUpstream({
          host: target.host,
          port: target.port,
          tls: target.tls,
          role: decision.rule.role,
          database,
          params: params.params,
          credentials: decision.rule.credentials,
          connectTimeoutMs: target.connectTimeoutMs,
          signal: abortLogin.signal,
        });
      } catch (err) {
        if (closed) return;
        log.warn({ err, role: decision.rule.role }, 'upstream login failed');
        const reason = err instanceof UpstreamError ? `upstream:${err.code}` : 'upstream:error';
        const message = err instanceof UpstreamError ? err.publicMessage : 'upstream database unavailable';
        return refuse(SqlState.connectionFailure, message, reason);
      }
      deps.metrics.upstreamConnectSeconds.observe((performance.now() - t0) / 1000);
    }
    if (closed) {
      upstream.socket.on('error', () => {});
      upstream.socket.destroy();
      return;
    }
    clearTimeout(loginTimer);
    phase = 'live';
    unlisten(stream);
    stream.pause();
    startLiveSession({
      id,
      deps,
      client,
      stream,
      rest: framer.takeRest(),
      upstream,
      decision,
      verified,
      requestedUser,
      database,
      application: startup!.params.get('application_name') ?? '',
      log,
      ...(poolKey !== undefined ? { pool: { pool: deps.pool!, key: poolKey } } : {}),
      onEnd: () => {
        phase = 'closed';
        finishClosed();
      },
    });
  }

  function tokenRefused(code: string, cause?: unknown): void {
    if (cause !== undefined && !(cause instanceof TokenError)) log.error({ err: cause }, 'token verification failed unexpectedly');
    deps.metrics.authFailures.inc({ reason: code });
    const user = startup?.params.get('user') ?? '';
    refuse(SqlState.invalidPassword, `token authentication failed for user "${user}"`, `token_invalid:${code}`);
  }

  function cancel(pid: number, secret: Buffer): void {
    const target = deps.registry.byCancelKey(pid, secret);
    // PostgreSQL answers a CancelRequest with nothing, valid or not; so does rolegate.
    closeNow();
    if (target === undefined) return;
    target.cancel().catch((err: unknown) => log.warn({ err }, 'cancel forwarding failed'));
  }

  /** Sends FATAL (when the client can read it), audits the refusal, and closes. */
  function refuse(sqlstate: string, message: string, reason: string): void {
    if (closed) return;
    abortLogin?.abort();
    // Token failures are counted with their code by tokenRefused; protocol violations are not logins.
    if (!reason.startsWith('token_invalid') && !reason.startsWith('protocol_violation')) {
      deps.metrics.authFailures.inc({ reason: reason.split(':')[0]! });
    }
    deps.audit({
      type: 'session.denied',
      session: id,
      client: { address: client.address, port: client.port },
      requestedUser: startup?.params.get('user') ?? null,
      database: startup === undefined ? null : databaseOf(startup) || null,
      reason,
      sqlstate,
    });
    deps.metrics.sessionsTotal.inc({ outcome: 'denied' });
    log.info({ reason, sqlstate }, 'login refused');
    closeWith(errorResponse({ severity: 'FATAL', code: sqlstate, message }));
  }

  function closeWith(last: Buffer): void {
    closed = true;
    phase = 'closed';
    clearTimeout(loginTimer);
    unlisten(stream);
    stream.end(last);
    setTimeout(() => stream.destroy(), CLOSE_GRACE_MS).unref();
    finishClosed();
  }

  function closeNow(): void {
    closed = true;
    phase = 'closed';
    clearTimeout(loginTimer);
    abortLogin?.abort();
    stream.destroy();
    if (stream !== socket) socket.destroy();
    finishClosed();
  }

  let finished = false;
  function finishClosed(): void {
    if (finished) return;
    finished = true;
    closed = true;
    clearTimeout(loginTimer);
    abortLogin?.abort();
    opts.onClose();
  }
}
