// What several instances on one shared PostgreSQL store have in common, wired into this process
// (docs/design.md §8): the cluster room joined with this instance's directory index, session registry
// and store, and the ports the data path and the admin API see. On a SQLite store the same ports
// answer for this instance alone.
import type { DirectoryView } from '../admin/directory.js';
import type { EndOutcome, SessionsPort } from '../admin/sessions.js';
import type { Logger } from '../lib/log.js';
import { ClusterNode } from '../cluster/node.js';
import type { Directory } from '../proxy/authz/directory.js';
import type { SessionRegistry } from '../proxy/session/registry.js';
import type { DirectoryIndex } from '../scim/directory-index.js';
import { decodeLoggedChanges } from '../scim/store/change-codec.js';
import type { DirectoryChange, DirectorySnapshot, DirectoryStore } from '../scim/store/port.js';
import { CHANGE_CHANNEL } from '../scim/store/postgres.js';
import type { Config } from './config/schema.js';
import type { ReadinessCheck } from './readiness.js';

export type Cluster = ClusterNode<DirectorySnapshot, DirectoryChange[]>;

/**
 * Joins the cluster of instances sharing `store`: registers, LISTENs, and loads the whole directory
 * into `index`; resolves once the directory is current.
 */
export function joinCluster(opts: {
  config: Readonly<Config>;
  store: DirectoryStore;
  index: DirectoryIndex;
  registry: SessionRegistry;
  instance: string;
  /** StoreOptions.origin of `store`. */
  origin: string;
  logger: Logger;
}): Promise<Cluster> {
  const { store, index, registry, logger } = opts;
  return ClusterNode.join<DirectorySnapshot, DirectoryChange[]>(
    {
      storeUrl: opts.config.directory.store,
      name: opts.instance,
      changeChannel: CHANGE_CHANNEL,
      origin: opts.origin,
      heartbeatMs: opts.config.directory.heartbeat,
      retentionMs: opts.config.directory.changeRetention,
      logger,
    },
    {
      snapshot: async () => {
        const snapshot = await store.snapshot();
        return { snapshot, position: snapshot.position ?? '0' };
      },
      decode: decodeLoggedChanges,
      resync: (snapshot) => index.resync(snapshot),
      apply: (changes) => index.applyCommitted(changes),
    },
    {
      list: () => registry.list(),
      kill: (id) => endHere(registry, id),
      cancel: (pid, secret) => {
        registry.byCancelKey(pid, secret)?.cancel().catch((err: unknown) => logger.warn({ err }, 'cancel forwarding failed'));
      },
    },
  );
}

/** The data path's directory port: the index, current only while this instance can vouch for it. */
export function directoryPort(index: DirectoryIndex, cluster: Cluster | undefined): Directory {
  return {
    findPerson: (identity) => index.findPerson(identity),
    // Revocations run a moment after the write that caused them (setImmediate), once the SCIM
    // service has recorded that write: the audit log tells the deactivation before the session end it caused.
    onRevocation: (listener) => index.onRevocation((notice) => setImmediate(listener, notice)),
    isCurrent: () => cluster === undefined || cluster.status.current,
  };
}

/** /readyz: 503 with the reason while the directory is not current (a single instance always is). */
export function directoryReadiness(cluster: Cluster | undefined): ReadinessCheck[] {
  if (cluster === undefined) return [];
  const status = cluster.status;
  const reason = status.current ? 'directory unavailable' : `directory unavailable: ${status.reason}`;
  return [[reason, async () => {
    if (!status.current) throw new Error(reason);
  }]];
}

/** The admin sessions API over this instance's registry and, on a shared store, every other instance's sessions. */
export function sessionsPort(registry: SessionRegistry, cluster: Cluster | undefined, logger: Logger): SessionsPort {
  return {
    async list() {
      const local = registry.list();
      if (cluster === undefined) return { sessions: local, complete: true };
      try {
        return { sessions: [...local, ...(await cluster.otherSessions())], complete: true };
      } catch (err) {
        logger.warn({ err }, 'other instances\' sessions cannot be read');
        return { sessions: local, complete: false };
      }
    },
    async end(id): Promise<EndOutcome> {
      if (endHere(registry, id)) return 'ended';
      if (cluster === undefined) return 'not_found';
      try {
        const outcome = await cluster.endElsewhere(id);
        return outcome === 'no_answer' ? 'unreachable' : outcome;
      } catch (err) {
        logger.warn({ err }, 'a session could not be ended on another instance');
        return 'unreachable';
      }
    },
  };
}

/** GET /admin/directory. */
export function directoryView(opts: { instance: string; store: DirectoryStore; index: DirectoryIndex; cluster: Cluster | undefined }): () => Promise<DirectoryView> {
  return async () => {
    const digest = await opts.index.digest();
    // Read after the digest, which may take a few turns of the event loop the first time.
    const status = opts.cluster?.status ?? { current: true as const };
    return {
      instance: opts.instance,
      store: opts.store.kind,
      current: status.current,
      ...(status.current ? {} : { reason: status.reason }),
      position: opts.cluster?.position ?? '0',
      ...opts.index.stats(),
      digest,
    };
  };
}

function endHere(registry: SessionRegistry, id: string): boolean {
  const s = registry.get(id);
  s?.end('admin_kill');
  return s !== undefined;
}
