// A logged-in session: the login reply with a rolegate-issued cancel key (sent once `session.start`
// is on disk), the relay with its taps and statement audit, the session timers, and the one `end`
// path for every way a live session stops (pgbouncer's disconnect_client): audit, metrics, registry
// and both sockets are settled exactly once.
import type { Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import type { TLSSocket } from 'node:tls';
import type { VerifiedToken } from '../auth/index.js';
import { decideRole, type Decision } from '../authz/decide.js';
import type { LiveSession, SessionSnapshot } from './registry.js';
import { createMessageTap } from '../relay/message-tap.js';
import { Outstanding } from '../relay/outstanding.js';
import { relay, type Relay, type RelayEndReason } from '../relay/pipe.js';
import { StatementTracker, clientPrefixLimit, serverPrefixLimit, type StatementRecord } from '../relay/statements.js';
import { directReadsOf, sayGoodbye, sendCancel, type UpstreamConnection } from '../upstream/index.js';
import type { UpstreamPool } from '../upstream/pool.js';
import { authenticationOk, backendKeyData, errorResponse, parameterStatus, readyForQuery, type TransactionStatus } from '../wire/backend-writer.js';
import { BackendType, FrontendType } from '../wire/message-types.js';
import { SqlState } from '../wire/sqlstate.js';
import type { Logger } from '../../lib/log.js';
import type { ClientInfo } from './client.js';
import type { RoleWithCredentials, SessionDeps } from './deps.js';
import { END_MESSAGE, END_SQLSTATE, type EndByProxy, type SessionEndReason } from './reasons.js';

// What the taps keep of each message type, as functions made once so that every session's taps
// share one table per function (proxy/relay/message-tap.ts).
const NOTHING = (): boolean => false;
const NO_PREFIX = (): number => 0;
const CLIENT_PREFIX = (type: number): number => clientPrefixLimit(type, false);
const CLIENT_PREFIX_WITH_VALUES = (type: number): number => clientPrefixLimit(type, true);
// Without statement auditing: one body byte of ReadyForQuery (the transaction status), nothing else.
const READY_FOR_QUERY_STATUS = (type: number): number => (type === BackendType.readyForQuery ? 1 : 0);

// setTimeout takes at most 2^31-1 ms (about 24.8 days); longer waits are re-armed.
const MAX_TIMER_MS = 0x7fffffff;

export interface LiveSessionInput {
  id: string;
  deps: SessionDeps;
  client: ClientInfo;
  stream: Socket | TLSSocket;
  /** Client bytes read past the PasswordMessage. */
  rest: Buffer;
  upstream: UpstreamConnection;
  decision: Extract<Decision<RoleWithCredentials>, { kind: 'allow' }>;
  /** With per-user provisioning: the person's own role, which the session logged in as. */
  loginRole?: string;
  verified: VerifiedToken;
  requestedUser: string;
  database: string;
  application: string;
  log: Logger;
  /** Where the upstream connection goes when the client says goodbye on an idle session. */
  pool?: { readonly pool: UpstreamPool; readonly key: string };
  onEnd: () => void;
}

/** Answers the login, registers the session and relays until one side or rolegate ends it. */
export function startLiveSession(input: LiveSessionInput): LiveSession {
  const { deps, stream, upstream, decision, verified, log, id } = input;
  const startedAt = deps.now();
  const role = decision.rule.role;
  const cancelKey = deps.registry.newCancelKey();
  let statements = 0;
  let lastActivity = startedAt;
  // What the client asked that the server has not answered. Decides whether an end by rolegate must
  // also cancel the running query, whether a client that left can be followed by a polite goodbye
  // upstream or only by a reset, and whether a goodbye may hand the connection to the pool.
  const outstanding = new Outstanding(upstream.transactionStatus);
  // The client sent Terminate: its goodbye is on the way upstream and must not be cut off.
  let saidGoodbye = false;
  // The client's Terminate was kept from the server: the connection goes back to the pool.
  let pooledGoodbye = false;
  let ended = false;
  const timers: NodeJS.Timeout[] = [];

  const onUpstreamError = (err: Error): void => log.debug({ err }, 'upstream socket error');
  upstream.socket.on('error', onUpstreamError);

  // With `audit.statements`, every statement is matched to its outcome (docs/design.md §2 step 8);
  // without it the taps keep only what the pool's count needs.
  let n = 0;
  const tracker = deps.settings.auditStatements
    ? new StatementTracker({ now: () => performance.now(), parameters: deps.settings.auditParameters, onStatement: auditStatement })
    : undefined;
  const clientPrefix = tracker ? (deps.settings.auditParameters ? CLIENT_PREFIX_WITH_VALUES : CLIENT_PREFIX) : NO_PREFIX;
  const serverPrefix = tracker ? serverPrefixLimit : READY_FOR_QUERY_STATUS;

  const fromClient = createMessageTap({
    maxPrefix: 0,
    interesting: NOTHING,
    prefixFor: clientPrefix,
    onMessage: (msg) => {
      outstanding.sent(msg.type);
      if (msg.type === FrontendType.terminate) saidGoodbye = true;
      if (msg.type === FrontendType.query || msg.type === FrontendType.execute || msg.type === FrontendType.functionCall) {
        statements++;
        deps.metrics.statements.inc();
      }
      tracker?.fromClient(msg);
    },
  });
  const fromServer = createMessageTap({
    maxPrefix: 0,
    interesting: NOTHING,
    prefixFor: serverPrefix,
    onMessage: (msg) => {
      if (msg.type === BackendType.readyForQuery) {
        outstanding.received(msg.type, msg.prefix[0] ?? 0);
        // Idle time runs from when the session went idle, like PostgreSQL's idle_session_timeout;
        // counted from the client's last bytes, a statement longer than idleTimeout would have its
        // session ended as idle as soon as its result arrived.
        lastActivity = deps.now();
      }
      tracker?.fromServer(msg);
    },
  });
  // The relay starts once the client has its login reply (after session.start is on disk).
  let pipe: Relay | undefined;

  const session: LiveSession = {
    id,
    personId: decision.personId,
    cancelKey,
    snapshot,
    cancel: () => {
      const target = deps.upstream();
      return sendCancel({ host: target.host, port: target.port, tls: target.tls, backendKey: upstream.backendKey });
    },
    end: (reason) => endByProxy(reason),
    recheck,
  };
  deps.registry.add(session);
  deps.metrics.sessionsActive.inc();
  armTimers();

  deps.audit.emit({
    type: 'session.start',
    session: id,
    client: { address: input.client.address, port: input.client.port },
    tls: input.client.tls ?? null,
    person: { userName: decision.userName, id: decision.personId },
    token: { iss: verified.claims.iss, sub: verified.claims.sub, jti: verified.claims.jti ?? null, exp: verified.claims.exp ?? null },
    groups: decision.groups.map((g) => g.displayName),
    requestedUser: input.requestedUser,
    database: input.database,
    role,
    ...(input.loginRole === undefined ? {} : { loginRole: input.loginRole }),
    application: input.application,
  });
  // The client is told it is in only once the audit log holds that it is (docs/design.md §6): a
  // log that cannot be written refuses the session (58030) instead of letting it run unrecorded.
  // An audit log that does not answer within the login timeout counts as unavailable too.
  let auditWait: NodeJS.Timeout | undefined;
  const answered = new Promise<void>((resolve, reject) => {
    auditWait = setTimeout(() => reject(new Error('the audit log did not confirm session.start in time')), deps.settings.loginTimeoutMs);
    auditWait.unref();
    deps.audit.flushed().then(resolve, reject);
  });
  answered.then(
    () => {
      clearTimeout(auditWait);
      begin();
    },
    (err: unknown) => {
      clearTimeout(auditWait);
      log.warn({ err }, 'session.start could not be written to the audit log');
      endByProxy('audit_unavailable');
    },
  );
  return session;

  /** Sends the login reply and starts relaying. */
  function begin(): void {
    if (ended) return;
    // One write for the whole login reply: AuthenticationOk, the upstream's ParameterStatus values,
    // our BackendKeyData (the client never learns the upstream's key), ReadyForQuery.
    const reply: Buffer[] = [authenticationOk()];
    for (const [name, value] of upstream.parameters) reply.push(parameterStatus(name, value));
    reply.push(backendKeyData(cancelKey.pid, cancelKey.secret));
    reply.push(readyForQuery(upstream.transactionStatus as TransactionStatus));
    stream.write(Buffer.concat(reply));
    if (upstream.pending.length > 0) upstream.socket.unshift(upstream.pending);
    if (input.rest.length > 0) stream.unshift(input.rest);
    // A plain upstream socket hands its reads to the relay without a stream layer.
    const serverReads = directReadsOf(upstream.socket);
    pipe = relay(stream, upstream.socket, { fromClient, fromServer }, onRelayEnd, {
      ...(input.pool ? { keepClientChunk } : {}),
      ...(serverReads === undefined ? {} : { serverReads }),
    });
    if (deps.settings.idleTimeoutMs > 0) {
      stream.on('data', () => (lastActivity = deps.now()));
    }
    log.info({ person: decision.userName, role, ...(input.loginRole === undefined ? {} : { loginRole: input.loginRole }), database: input.database }, 'session started');
  }

  function auditStatement(r: StatementRecord): void {
    // Fields that do not apply stay undefined, which JSON leaves out: no spreads per statement.
    deps.audit.emit({
      type: 'statement',
      session: id,
      n: ++n,
      protocol: r.protocol,
      text: r.text,
      truncated: r.truncated ? true : undefined,
      statement: r.statement,
      portal: r.portal,
      function: r.function,
      params: r.values === undefined ? { count: r.paramCount } : { count: r.paramCount, values: r.values },
      copy: r.copy,
      outcome: r.outcome,
      tag: r.tag,
      rows: r.rows,
      sqlstate: r.sqlstate,
      ms: r.ms,
    });
  }

  function snapshot(): SessionSnapshot {
    return {
      id,
      person: decision.userName,
      personId: decision.personId,
      role,
      database: input.database,
      client: { address: input.client.address, port: input.client.port },
      started: new Date(startedAt).toISOString(),
      statements,
      instance: deps.instance,
    };
  }

  function recheck(): boolean {
    if (ended) return false;
    const match = deps.directory.findPerson(verified.identity);
    const now = decideRole({ identity: verified.identity, match, requestedUser: input.requestedUser, database: input.database, rules: deps.roles() });
    // Same person, same role, or the session goes: a role that changed under a live session is
    // a different grant from the one the client logged in with.
    if (now.kind === 'allow' && now.personId === decision.personId && now.rule.role === role) return false;
    log.info({ person: decision.userName, role, because: now.kind === 'deny' ? now.reason : 'role_changed' }, 'access revoked');
    endByProxy('revoked');
    return true;
  }

  function armTimers(): void {
    const { endAtTokenExpiry, maxDurationMs, idleTimeoutMs } = deps.settings;
    const exp = verified.claims.exp;
    if (endAtTokenExpiry && typeof exp === 'number') at(exp * 1000, () => endByProxy('token_expired'));
    if (maxDurationMs > 0) at(startedAt + maxDurationMs, () => endByProxy('max_duration'));
    if (idleTimeoutMs > 0) {
      const check = (): void => {
        const idleUntil = lastActivity + idleTimeoutMs;
        if (deps.now() >= idleUntil && !outstanding.busy) endByProxy('idle_timeout');
        else at(Math.max(idleUntil, deps.now() + 1000), check);
      };
      at(startedAt + idleTimeoutMs, check);
    }
  }

  function at(when: number, fn: () => void): void {
    const wait = when - deps.now();
    const t = setTimeout(wait > MAX_TIMER_MS ? () => at(when, fn) : fn, Math.max(0, Math.min(wait, MAX_TIMER_MS)));
    t.unref();
    timers.push(t);
  }

  /**
   * A chunk that is exactly one Terminate, when every request the client sent was answered, no
   * extended-protocol message follows the last Sync, no transaction is open (so no COPY either), and
   * both directions are between whole messages: the client is done, the backend is not, and after a
   * confirmed DISCARD ALL it can serve the next login. Anything else is relayed as usual.
   */
  function keepClientChunk(chunk: Buffer): boolean {
    if (chunk.length !== 5 || chunk[0] !== FrontendType.terminate || chunk.readInt32BE(1) !== 4) return false;
    if (!outstanding.idle || !fromClient.atBoundary || !fromServer.atBoundary) return false;
    pooledGoodbye = true;
    return true;
  }

  function onRelayEnd(reason: RelayEndReason, info: { error?: Error }): void {
    if (info.error) log.debug({ err: info.error }, 'relay ended with an error');
    if (pooledGoodbye && input.pool) {
      closeSoon(stream);
      upstream.socket.off('error', onUpstreamError);
      upstream.pending = Buffer.alloc(0);
      void input.pool.pool.give(input.pool.key, upstream);
    } else if (reason === 'client_exit') {
      if (info.error) stream.destroy();
      else stream.end();
      // The relay paused the upstream socket. A backend in the middle of a response would block
      // writing to it (wait event ClientWrite) for ever, so a client that vanished mid-statement
      // gets its upstream connection reset, as the backend's own client would have; otherwise
      // the server is told goodbye (the client's Terminate, or ours for a client that just closed)
      // and whatever it still sends is dropped until it closes.
      if (outstanding.busy && !saidGoodbye) upstream.socket.destroy();
      else if (saidGoodbye) closeSoon(upstream.socket);
      else goodbye();
    } else if (reason === 'upstream_closed') {
      // Whatever the server said last (e.g. its own FATAL) has been relayed already.
      if (info.error) stream.destroy();
      else closeSoon(stream);
      upstream.socket.destroy();
    } else {
      stream.destroy();
      upstream.socket.destroy();
    }
    // After a Terminate the server closes at once, often before the client's own close arrives:
    // the session still ended because the client left.
    finish(reason === 'upstream_closed' && saidGoodbye ? 'client_exit' : reason);
  }

  /**
   * Ends our side and reads (and drops) until the peer closes, so that a paused socket neither
   * blocks the peer's writes nor keeps its descriptor open; a peer that never closes is cut off.
   */
  function closeSoon(socket: Socket): void {
    socket.end();
    socket.resume();
    setTimeout(() => socket.destroy(), 2_000).unref();
  }

  function endByProxy(reason: EndByProxy): void {
    if (ended) return;
    pipe?.stop();
    // A FATAL between two server messages is readable; in the middle of one it would corrupt the
    // stream, so then the connection is closed without it.
    if (fromServer.atBoundary) stream.end(errorResponse({ severity: 'FATAL', code: END_SQLSTATE[reason], message: END_MESSAGE[reason] }));
    else stream.destroy();
    setTimeout(() => stream.destroy(), 2_000).unref();
    // The client hears at once; its backend goes a turn of the event loop later. Ending a backend
    // wakes the database server, which then tears a process down: when one revocation ends hundreds
    // of sessions, every client must have its FATAL before the first of those teardowns competes
    // for the CPU. Nothing is relayed meanwhile (the pipe is stopped).
    const busy = outstanding.busy;
    setImmediate(() => endUpstream(busy));
    finish(reason);
  }

  function endUpstream(busy: boolean): void {
    if (busy) {
      // The statement must not outlive the session. A backend blocked writing to the paused socket
      // (ClientWrite) never reads a Terminate, so the connection is reset, which ends it at its
      // next write without waiting for a timer; the cancel stops a statement that is not writing
      // (e.g. pg_sleep) and so would not notice the reset until it finishes.
      session.cancel().catch((err: unknown) => log.debug({ err }, 'cancel on session end failed'));
      upstream.socket.destroy();
    } else {
      goodbye();
    }
  }

  // The socket may wait in the goodbye queue for a while: it must not keep this session reachable
  // through our listener. sayGoodbye listens for its errors from then on (unless it is destroyed
  // already, when it never enters the queue and keeps ours).
  function goodbye(): void {
    sayGoodbye(upstream.socket);
    if (!upstream.socket.destroyed) upstream.socket.off('error', onUpstreamError);
  }

  function finish(reason: SessionEndReason): void {
    if (ended) return;
    ended = true;
    for (const t of timers) clearTimeout(t);
    deps.registry.remove(session);
    deps.metrics.sessionsActive.dec();
    deps.metrics.sessionsTotal.inc({ outcome: reason });
    const bytesIn = pipe?.bytesIn ?? 0;
    const bytesOut = pipe?.bytesOut ?? 0;
    deps.metrics.bytes.inc({ direction: 'in' }, bytesIn);
    deps.metrics.bytes.inc({ direction: 'out' }, bytesOut);
    if (reason === 'revoked') deps.metrics.revocations.inc();
    // Statements still waiting for an answer are recorded before the session's end.
    tracker?.end();
    deps.audit.emit({ type: 'session.end', session: id, reason, ms: deps.now() - startedAt, bytesIn, bytesOut, statements });
    log.info({ reason, statements }, 'session ended');
    input.onEnd();
  }
}
