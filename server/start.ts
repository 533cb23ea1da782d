// The composition root of `rolegate serve`: from a validated config it builds the store, the
// directory index, the token verifier, the session registry and pool, the proxy and admin listeners,
// and plugs the directory into the data path's port. It owns the reload (SIGHUP) and the orderly
// shutdown (SIGTERM drain); the process itself (argv, env, signals, exit codes) is cli/serve.ts's.
import { randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { createAdminApp } from '../admin/app.js';
import { createAuditHeadRouter } from '../admin/audit-head.js';
import { createDirectoryRouter } from '../admin/directory.js';
import { createSessionsRouter } from '../admin/sessions.js';
import { createAuditLog, type AuditLog } from '../audit/emitter.js';
import { AuditWriter } from '../audit/writer.js';
import { registerDirectoryMetrics } from '../cluster/metrics.js';
import { BearerTokens } from '../lib/bearer-tokens.js';
import type { Logger } from '../lib/log.js';
import { createTokenVerifier } from '../proxy/auth/index.js';
import { ProxyListener } from '../proxy/listener.js';
import type { SessionDeps } from '../proxy/session/deps.js';
import { SessionRegistry } from '../proxy/session/registry.js';
import { followRevocations, recheckAll } from '../proxy/session/revocation.js';
import { ServerTls, readKeyPair } from '../proxy/tls/server-tls.js';
import { UpstreamPool } from '../proxy/upstream/pool.js';
import { DirectoryIndex } from '../scim/directory-index.js';
import { createScimRouter } from '../scim/http/router.js';
import { ScimService } from '../scim/service.js';
import { openStore } from '../scim/store/open.js';
import type { DirectoryStore } from '../scim/store/port.js';
import { startAdminListener } from './admin-listener.js';
import { directoryPort, directoryReadiness, directoryView, joinCluster, sessionsPort, type Cluster } from './cluster.js';
import type { Config } from './config/schema.js';
import { createServerMetrics, type ServerMetrics } from './metrics.js';
import { readiness, tcpReachable } from './readiness.js';
import { createProvisioning, perUser, provisioningReadiness } from './provisioning.js';
import { loadRoles, upstreamTarget } from './runtime.js';
import type { WorkerPeers } from './workers.js';

export interface RunningServer {
  readonly proxy: { host: string; port: number };
  readonly admin: { host: string; port: number; protocol: 'http' | 'https' };
  readonly store: DirectoryStore;
  readonly directory: DirectoryIndex;
  readonly registry: SessionRegistry;
  readonly metrics: ServerMetrics;
  readonly audit: AuditLog;
  /** SIGHUP: roles and their credentials, certificates, tokens; live sessions are re-decided. */
  reload(config: Readonly<Config>): Promise<void>;
  /**
   * Stops accepting, drains sessions (proxy.drainTimeout, or `drainMs`: 0 ends them at once), closes
   * listeners and the store. Idempotent: a second call joins the first.
   */
  close(opts?: { drainMs?: number }): Promise<void>;
}

export interface ServeDeps {
  logger: Logger;
  /** This instance's name in audit events and the session list. */
  instance: string;
  /** When this process is one of `proxy.workers`: /readyz and /metrics answer for all of them. */
  workers?: Pick<WorkerPeers, 'view' | 'started'>;
  now?: () => number;
}

/** Starts rolegate from `config`; rejects (after cleaning up) when a listener or the store cannot start. */
export async function startServer(config: Readonly<Config>, deps: ServeDeps): Promise<RunningServer> {
  const { logger } = deps;
  const metrics = createServerMetrics();
  const now = deps.now ?? Date.now;
  // The audit log opens first and closes last, so the end of every session is in it.
  const signingKeyPem = config.audit.signingKey ? await readFile(config.audit.signingKey, 'utf8') : undefined;
  let endAllSessions: () => void = () => undefined;
  const writer = await AuditWriter.open({
    base: config.audit.file,
    instance: deps.instance,
    rotateBytes: config.audit.rotateBytes,
    ...(signingKeyPem !== undefined ? { signingKeyPem, checkpointEveryMs: config.audit.checkpointEvery } : {}),
    now,
    logger,
    onOverflow: () => endAllSessions(),
  });
  const audit = createAuditLog(writer);
  // Each part registers its cleanup as it starts; shutdown runs them newest first.
  const cleanups: (() => Promise<void>)[] = [() => writer.close()];
  try {
    // On a shared store, the instances that share it (docs/design.md §8); joined once the store is open.
    let cluster: Cluster | undefined;
    // Tags this process's writes in the change log, so the cluster node knows its own announcements.
    const origin = randomUUID();
    const store = await openStore(config.directory.store, {
      origin,
      onListenerError: (err) => logger.error({ err }, 'directory change listener failed'),
      onBackgroundError: (err) => logger.warn({ err }, 'directory store background error'),
      // A SQLite directory serves this process alone; a second `serve` on the same file is refused.
      soleInstance: true,
      // A SCIM write is answered once this instance's index holds it (docs/design.md §8).
      afterCommit: (position, written) => cluster?.caughtUpTo(position, written) ?? Promise.resolve(),
    });
    cleanups.push(() => store.close());
    const registry = new SessionRegistry({ slot: () => cluster?.slot ?? 0, onChange: () => cluster?.sessionsChanged() });
    const indexOptions = { onListenerError: (err: unknown) => logger.error({ err }, 'revocation listener failed') };
    let index: DirectoryIndex;
    if (store.kind === 'postgres') {
      // Every instance's writes, this one's included, reach the index through the change log, in commit order.
      index = DirectoryIndex.empty(indexOptions);
      const joined = await joinCluster({ config, store, index, registry, instance: deps.instance, origin, logger });
      cluster = joined;
      cleanups.push(() => joined.stop());
    } else {
      index = await DirectoryIndex.load(store, indexOptions);
      cleanups.push(async () => index.close());
    }
    logger.info({ store: store.kind, ...index.stats() }, 'directory loaded');
    registerDirectoryMetrics(metrics.registry, () => ({
      current: cluster?.status.current ?? true,
      position: cluster?.position ?? '0',
      reloads: cluster?.reloads ?? 0,
      logReads: cluster?.logReads ?? 0,
      forgedAnnouncements: cluster?.forgedAnnouncements ?? 0,
    }));
    // The data path sees the index only through its own port.
    const directory = directoryPort(index, cluster);

    const verifier = createTokenVerifier({
      issuer: config.oidc.issuer,
      audience: config.oidc.audience,
      algorithms: config.oidc.algorithms,
      clockToleranceSec: config.oidc.clockTolerance / 1000,
      identityClaim: config.oidc.identityClaim,
      requireVerifiedEmail: config.oidc.requireVerifiedEmail,
      ...(config.oidc.ca ? { ca: await readFile(config.oidc.ca, 'utf8') } : {}),
      ...(config.oidc.introspection ? { introspection: config.oidc.introspection } : {}),
    });
    cleanups.push(async () => verifier.close());

    let roles = await loadRoles(config);
    let upstream = await upstreamTarget(config);
    // Per-user provisioning (docs/design.md §7): started before any listener, so that a login
    // lacking a privilege stops the start with each missing privilege named.
    const provisioningConfig = perUser(config);
    const provisioning = provisioningConfig === undefined
      ? undefined
      : createProvisioning(provisioningConfig, { store, index, roles: () => roles, audit, logger });
    if (provisioning !== undefined) {
      cleanups.push(() => provisioning.close());
      await provisioning.start();
    }
    const tls = config.proxy.tls ? await ServerTls.load(config.proxy.tls) : undefined;
    const pool = config.upstream.pool.idle > 0
      ? new UpstreamPool({ maxIdle: config.upstream.pool.idle, idleTimeoutMs: config.upstream.pool.idleTimeout })
      : undefined;
    if (pool) cleanups.push(async () => pool.close());
    const unfollow = followRevocations(directory, registry, metrics.proxy);
    cleanups.push(async () => unfollow());
    // Sessions cannot run unrecorded: when the audit log has been down long enough to fill its
    // memory buffer, the live sessions end too (57P01 is not used: 58030 `audit log unavailable`).
    endAllSessions = () => {
      for (const s of registry.list()) registry.get(s.id)?.end('audit_unavailable');
    };

    const sessionDeps: SessionDeps = {
      settings: {
        allowPlaintext: config.proxy.allowPlaintext,
        loginTimeoutMs: config.proxy.loginTimeout,
        allowedOptions: config.proxy.allowedOptions,
        endAtTokenExpiry: config.session.endAtTokenExpiry,
        maxDurationMs: config.session.maxDuration,
        idleTimeoutMs: config.session.idleTimeout,
        auditStatements: config.audit.statements,
        auditParameters: config.audit.parameters,
      },
      tls,
      verifier,
      directory,
      roles: () => roles,
      upstream: () => upstream,
      ...(pool ? { pool } : {}),
      ...(provisioning ? { personalRoles: provisioning } : {}),
      registry,
      ...(cluster ? { forwardCancel: cluster.forwardCancel.bind(cluster) } : {}),
      audit,
      metrics: metrics.proxy,
      logger,
      instance: deps.instance,
      now,
    };
    const service = new ScimService({
      store,
      audit: (e) => audit.emit({ type: 'directory.change', ...e }),
      userName: (id) => index.getPerson(id)?.userName,
    });
    // Both token sets are swapped in place on SIGHUP (rotation), so the routers hold the holders.
    const scimTokens = new BearerTokens(config.scim?.tokens ?? []);
    const adminTokens = new BearerTokens(config.admin.tokens);
    if (scimTokens.size === 0) logger.warn('scim.tokens is not set: the SCIM endpoint refuses every request');
    const scim = createScimRouter({
      service,
      tokens: scimTokens,
      metrics: { onRequest: (method, status) => metrics.scimRequests.inc({ method, status: String(status) }) },
      logger,
    });
    const ownReady = () => readiness([
      ['audit log unavailable', async () => {
        if (!writer.available) throw new Error('the audit file cannot be written');
      }],
      ...directoryReadiness(cluster),
      ['directory store unreachable', () => store.ping()],
      ['identity provider keys unreachable', () => verifier.ready()],
      ['upstream database unreachable', () => tcpReachable(upstream.host, upstream.port, 3_000)],
      ...(provisioning ? provisioningReadiness(provisioning) : []),
    ], logger);
    const everyWorker = deps.workers?.view();
    const ownDirectory = directoryView({ instance: deps.instance, store, index, cluster });
    const app = createAdminApp({
      scim,
      ready: everyWorker?.ready ?? ownReady,
      metrics: everyWorker?.metrics ?? { contentType: metrics.registry.contentType, render: () => metrics.registry.metrics() },
      logger,
      extra: (a) => {
        a.use('/admin', createAuditHeadRouter({ tokens: adminTokens, audit: { head: () => audit.head(), ...(everyWorker ? { everyWorker: everyWorker.auditHeads } : {}) } }));
        a.use('/admin/directory', createDirectoryRouter({ tokens: adminTokens, view: ownDirectory, ...(everyWorker ? { everyWorker: everyWorker.directories } : {}) }));
        a.use('/admin', createSessionsRouter({ tokens: adminTokens, sessions: sessionsPort(registry, cluster, logger) }));
      },
    });

    const adminListener = await startAdminListener(app, {
      host: config.admin.listen.host,
      port: config.admin.listen.port,
      ...(config.admin.tls ? { tls: await readKeyPair(config.admin.tls) } : {}),
    });
    cleanups.push(() => adminListener.close());
    const admin = { host: adminListener.host, port: adminListener.port, protocol: adminListener.protocol };
    logger.info({ admin: `${admin.protocol}://${admin.host}:${admin.port}` }, 'admin listener ready');

    // The proxy listener starts last and so drains first: while sessions finish, SCIM still
    // revokes them and the store is still there.
    const listener = new ProxyListener(sessionDeps, { maxConnections: config.proxy.maxConnections });
    const proxyAddr = await listener.listen(config.proxy.listen.host, config.proxy.listen.port);
    let drainMs = config.proxy.drainTimeout;
    cleanups.push(() => listener.drain(drainMs));
    logger.info({ proxy: `${proxyAddr.address}:${proxyAddr.port}`, tls: tls !== undefined }, 'proxy listener ready');

    deps.workers?.started({ ready: ownReady, metrics: () => metrics.registry.getMetricsAsJSON(), auditHead: () => audit.head(), directory: ownDirectory });
    let closing: Promise<void> | undefined;
    return {
      proxy: { host: proxyAddr.address, port: proxyAddr.port },
      admin,
      store,
      directory: index,
      registry,
      metrics,
      audit,
      async reload(next) {
        // Everything is read and checked first, so a missing file or a bad token leaves the running
        // configuration whole; only then is it swapped in, without an await in between.
        // Sessions log in one way or the other for the process's life: roles without credentials
        // (per-user) must never meet a session that logs in as the role.
        if (next.provisioning.mode !== config.provisioning.mode) throw new Error('provisioning.mode changes need a restart');
        const nextRoles = await loadRoles(next);
        const nextUpstream = await upstreamTarget(next);
        const nextProxyTls = tls && next.proxy.tls ? await ServerTls.load(next.proxy.tls) : undefined;
        const nextAdminTls = config.admin.tls && next.admin.tls ? await readKeyPair(next.admin.tls) : undefined;
        const nextScimTokens = new BearerTokens(next.scim?.tokens ?? []);
        const nextAdminTokens = new BearerTokens(next.admin.tokens);
        if ((tls === undefined) !== (next.proxy.tls === undefined) || (config.admin.tls === undefined) !== (next.admin.tls === undefined)) {
          logger.warn('turning TLS on or off for a listener needs a restart; the listeners keep their current mode');
        }

        roles = nextRoles;
        upstream = nextUpstream;
        if (tls && nextProxyTls) tls.adopt(nextProxyTls);
        if (nextAdminTls) adminListener.adoptCertificate(nextAdminTls);
        scimTokens.adopt(nextScimTokens);
        adminTokens.adopt(nextAdminTokens);
        // Pooled connections were logged in with the old credentials and settings.
        pool?.flush();
        const ended = recheckAll(registry);
        // A role or group removed from the config is revoked from people's roles like any other grant.
        provisioning?.rolesChanged();
        if (JSON.stringify(next.provisioning) !== JSON.stringify(config.provisioning)) {
          logger.warn('provisioning settings need a restart; the running ones are kept');
        }
        logger.info({ roles: roles.length, scimTokens: scimTokens.size, adminTokens: adminTokens.size, sessionsEnded: ended }, 'configuration reloaded');
      },
      close: (opts) => {
        if (closing === undefined && opts?.drainMs !== undefined) drainMs = opts.drainMs;
        return (closing ??= runAll(cleanups, logger));
      },
    };
  } catch (err) {
    await runAll(cleanups, logger);
    throw err;
  }
}

async function runAll(steps: (() => Promise<void>)[], logger: Logger): Promise<void> {
  for (const step of [...steps].reverse()) {
    try {
      await step();
    } catch (err) {
      logger.warn({ err }, 'shutdown step failed');
    }
  }
}
