// The composition root of `rolegate serve`: from a validated config it builds the store, the
// directory index, the token verifier, the session registry and pool, the proxy and admin listeners,
// and plugs the directory into the data path's port. It owns the reload (SIGHUP) and the orderly
// shutdown (SIGTERM drain); the process itself (argv, env, signals, exit codes) is cli/serve.ts's.
import { readFile } from 'node:fs/promises';
import { createAdminApp } from '../admin/app.js';
import { createDirectoryRouter } from '../admin/directory.js';
import { createSessionsRouter } from '../admin/sessions.js';
import { createAuditEmitter } from '../audit/emitter.js';
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
import { loadRoles, upstreamTarget } from './runtime.js';

export interface RunningServer {
  readonly proxy: { host: string; port: number };
  readonly admin: { host: string; port: number; protocol: 'http' | 'https' };
  readonly store: DirectoryStore;
  readonly directory: DirectoryIndex;
  readonly registry: SessionRegistry;
  readonly metrics: ServerMetrics;
  /** SIGHUP: roles and their credentials, certificates, tokens; live sessions are re-decided. */
  reload(config: Readonly<Config>): Promise<void>;
  /** Stops accepting, drains sessions (proxy.drainTimeout), closes listeners and the store. Idempotent. */
  close(): Promise<void>;
}

export interface ServeDeps {
  logger: Logger;
  /** This instance's name in audit events and the session list. */
  instance: string;
  now?: () => number;
}

/** Starts rolegate from `config`; rejects (after cleaning up) when a listener or the store cannot start. */
export async function startServer(config: Readonly<Config>, deps: ServeDeps): Promise<RunningServer> {
  const { logger } = deps;
  const metrics = createServerMetrics();
  const audit = createAuditEmitter({ logger, instance: deps.instance });
  // On a shared store, the instances that share it (docs/design.md §8); joined once the store is open.
  let cluster: Cluster | undefined;
  const store = await openStore(config.directory.store, {
    onListenerError: (err) => logger.error({ err }, 'directory change listener failed'),
    onBackgroundError: (err) => logger.warn({ err }, 'directory store background error'),
    // A SQLite directory serves this process alone; a second `serve` on the same file is refused.
    soleInstance: true,
    // A SCIM write is answered once this instance's index holds it (the follower read it back).
    afterCommit: (position) => cluster?.caughtUpTo(position) ?? Promise.resolve(),
  });
  // Each part registers its cleanup as it starts; shutdown runs them newest first.
  const cleanups: (() => Promise<void>)[] = [() => store.close()];
  try {
    const registry = new SessionRegistry({ slot: () => cluster?.slot ?? 0, onChange: () => cluster?.sessionsChanged() });
    const indexOptions = { onListenerError: (err: unknown) => logger.error({ err }, 'revocation listener failed') };
    let index: DirectoryIndex;
    if (store.kind === 'postgres') {
      // Every instance's writes, this one's included, reach the index through the change log, in commit order.
      index = DirectoryIndex.empty(indexOptions);
      const joined = await joinCluster({ config, store, index, registry, instance: deps.instance, logger });
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
    const tls = config.proxy.tls ? await ServerTls.load(config.proxy.tls) : undefined;
    const pool = config.upstream.pool.idle > 0
      ? new UpstreamPool({ maxIdle: config.upstream.pool.idle, idleTimeoutMs: config.upstream.pool.idleTimeout })
      : undefined;
    if (pool) cleanups.push(async () => pool.close());
    const unfollow = followRevocations(directory, registry, metrics.proxy);
    cleanups.push(async () => unfollow());

    const sessionDeps: SessionDeps = {
      settings: {
        allowPlaintext: config.proxy.allowPlaintext,
        loginTimeoutMs: config.proxy.loginTimeout,
        allowedOptions: config.proxy.allowedOptions,
        endAtTokenExpiry: config.session.endAtTokenExpiry,
        maxDurationMs: config.session.maxDuration,
        idleTimeoutMs: config.session.idleTimeout,
      },
      tls,
      verifier,
      directory,
      roles: () => roles,
      upstream: () => upstream,
      ...(pool ? { pool } : {}),
      registry,
      ...(cluster ? { forwardCancel: cluster.forwardCancel.bind(cluster) } : {}),
      audit,
      metrics: metrics.proxy,
      logger,
      instance: deps.instance,
      now: deps.now ?? Date.now,
    };
    const service = new ScimService({ store, audit: (e) => audit({ type: 'directory.change', ...e }) });
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
    const app = createAdminApp({
      scim,
      ready: () => readiness([
        ...directoryReadiness(cluster),
        ['directory store unreachable', () => store.ping()],
        ['identity provider keys unreachable', () => verifier.ready()],
        ['upstream database unreachable', () => tcpReachable(upstream.host, upstream.port, 3_000)],
      ], logger),
      metrics: { contentType: metrics.registry.contentType, render: () => metrics.registry.metrics() },
      logger,
      extra: (a) => {
        a.use('/admin/directory', createDirectoryRouter({ tokens: adminTokens, view: directoryView({ instance: deps.instance, store, index, cluster }) }));
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
    cleanups.push(() => listener.drain(config.proxy.drainTimeout));
    logger.info({ proxy: `${proxyAddr.address}:${proxyAddr.port}`, tls: tls !== undefined }, 'proxy listener ready');

    let closing: Promise<void> | undefined;
    return {
      proxy: { host: proxyAddr.address, port: proxyAddr.port },
      admin,
      store,
      directory: index,
      registry,
      metrics,
      async reload(next) {
        // Everything is read and checked first, so a missing file or a bad token leaves the running
        // configuration whole; only then is it swapped in, without an await in between.
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
        logger.info({ roles: roles.length, scimTokens: scimTokens.size, adminTokens: adminTokens.size, sessionsEnded: ended }, 'configuration reloaded');
      },
      close: () => (closing ??= runAll(cleanups, logger)),
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
