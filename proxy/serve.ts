// `rolegate serve`: builds every long-lived part from a validated config and starts the proxy and
// admin listeners. The composition root (main.ts) owns process concerns (env, signals, exit codes);
// this file owns the wiring and the orderly shutdown.
import { readFile } from 'node:fs/promises';
import { createServer as createHttpServer, type Server } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import { connect, type AddressInfo } from 'node:net';
import { createAdminApp } from '../admin/app.js';
import { createSessionsRouter } from '../admin/sessions.js';
import { DirectoryIndex } from '../scim/directory-index.js';
import { BearerTokens } from '../scim/auth.js';
import { createScimRouter } from '../scim/router.js';
import { ScimService } from '../scim/service.js';
import { openStore } from '../scim/store/open.js';
import type { DirectoryStore } from '../scim/store/port.js';
import { createAuditEmitter } from './audit/emitter.js';
import { createTokenVerifier, type TokenVerifier } from './auth/index.js';
import type { Config } from './config/schema.js';
import { ProxyListener } from './listener.js';
import type { Logger } from './log.js';
import { createMetrics, type Metrics } from './metrics.js';
import { SessionRegistry } from './registry.js';
import type { RoleWithCredentials, SessionDeps, UpstreamTarget } from './session/deps.js';
import { followRevocations, recheckAll } from './session/revocation.js';
import { ServerTls, readKeyPair } from './tls/server-tls.js';
import { UpstreamPool } from './upstream/pool.js';

export interface RunningServer {
  readonly proxy: { host: string; port: number };
  readonly admin: { host: string; port: number; protocol: 'http' | 'https' };
  readonly store: DirectoryStore;
  readonly directory: DirectoryIndex;
  readonly registry: SessionRegistry;
  readonly metrics: Metrics;
  /** SIGHUP: roles and their credentials, certificates; live sessions are re-decided. */
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
  const metrics = createMetrics();
  const audit = createAuditEmitter({ logger, instance: deps.instance });
  const store = await openStore(config.directory.store, {
    onListenerError: (err) => logger.error({ err }, 'directory change listener failed'),
    onBackgroundError: (err) => logger.warn({ err }, 'directory store background error'),
  });
  // Each part registers its cleanup as it starts; shutdown runs them newest first.
  const cleanups: (() => Promise<void>)[] = [() => store.close()];
  try {
    const directory = await DirectoryIndex.load(store, { onListenerError: (err) => logger.error({ err }, 'revocation listener failed') });
    cleanups.push(async () => directory.close());
    logger.info({ store: store.kind, ...directory.stats() }, 'directory loaded');

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
    const registry = new SessionRegistry();
    const pool = config.upstream.pool.idle > 0
      ? new UpstreamPool({ maxIdle: config.upstream.pool.idle, idleTimeoutMs: config.upstream.pool.idleTimeout })
      : undefined;
    if (pool) cleanups.push(async () => pool.close());
    const unfollow = followRevocations(directory, registry, metrics);
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
      audit,
      metrics,
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
      ready: () => readiness(store, verifier, () => upstream, logger),
      metrics: { contentType: metrics.registry.contentType, render: () => metrics.registry.metrics() },
      logger,
      extra: (a) => {
        a.use('/admin', createSessionsRouter({
          tokens: adminTokens,
          sessions: {
            list: () => registry.list(),
            end: (id) => {
              const s = registry.get(id);
              s?.end('admin_kill');
              return s !== undefined;
            },
          },
        }));
      },
    });

    const server: Server = config.admin.tls
      ? createHttpsServer({ ...(await readKeyPair(config.admin.tls)), minVersion: 'TLSv1.2' }, app)
      : createHttpServer(app);
    // Slow-loris bounds for a listener that may face an IdP over the internet.
    server.headersTimeout = 30_000;
    server.requestTimeout = 120_000;
    await listen(server, config.admin.listen.host, config.admin.listen.port);
    cleanups.push(() => closeServer(server));
    const addr = server.address() as AddressInfo;
    const admin = { host: addr.address, port: addr.port, protocol: config.admin.tls ? ('https' as const) : ('http' as const) };
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
      directory,
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
        if (nextAdminTls) (server as HttpsServer).setSecureContext({ ...nextAdminTls, minVersion: 'TLSv1.2' });
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

/** Roles with their credentials in memory: certificate files are read once here, not per login. */
async function loadRoles(config: Readonly<Config>): Promise<RoleWithCredentials[]> {
  return Promise.all(
    config.roles.map(async (r) => ({
      role: r.role,
      groups: r.groups,
      databases: r.databases,
      credentials: 'password' in r.credentials
        ? { password: r.credentials.password }
        : await readKeyPair(r.credentials),
    })),
  );
}

async function upstreamTarget(config: Readonly<Config>): Promise<UpstreamTarget> {
  const { host, port, tls, connectTimeout } = config.upstream;
  return {
    host,
    port,
    tls: { mode: tls.mode, ...(tls.ca ? { ca: await readFile(tls.ca) } : {}) },
    connectTimeoutMs: connectTimeout,
  };
}

/** PRODUCT.md §5 /readyz: the store, the issuer's keys and the upstream all answer. */
async function readiness(store: DirectoryStore, verifier: TokenVerifier, upstream: () => UpstreamTarget, logger: Logger): Promise<{ ok: true } | { ok: false; reason: string }> {
  const checks: [string, () => Promise<void>][] = [
    ['directory store unreachable', () => store.ping()],
    ['identity provider keys unreachable', () => verifier.ready()],
    ['upstream database unreachable', () => tcpReachable(upstream().host, upstream().port, 3_000)],
  ];
  for (const [reason, check] of checks) {
    try {
      await check();
    } catch (err) {
      logger.warn({ err }, `readiness: ${reason}`);
      return { ok: false, reason };
    }
  }
  return { ok: true };
}

function tcpReachable(host: string, port: number, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host, port });
    socket.setTimeout(timeoutMs, () => socket.destroy(new Error('timed out')));
    socket.once('connect', () => {
      socket.destroy();
      resolve();
    });
    socket.once('error', reject);
  });
}

function listen(server: Server, host: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error) => reject(err);
    server.once('error', onError);
    server.listen(port, host, () => {
      server.off('error', onError);
      resolve();
    });
  });
}

function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeIdleConnections();
  });
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
