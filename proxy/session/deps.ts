// What a client session needs from the rest of the process; built once by the composition root.
import type { TokenVerifier } from '../auth/index.js';
import type { AuditLog } from '../../audit/emitter.js';
import type { RoleRule } from '../authz/decide.js';
import type { Logger } from '../../lib/log.js';
import type { Metrics } from './metrics.js';
import type { SessionRegistry } from './registry.js';
import type { ServerTls } from '../tls/server-tls.js';
import type { UpstreamCredentials, UpstreamTls } from '../upstream/index.js';
import type { UpstreamPool } from '../upstream/pool.js';
import type { Directory } from '../authz/directory.js';
import type { PersonalRoles } from '../authz/personal-roles.js';

/**
 * A `roles` entry with its credentials loaded (certificate files read into memory). With per-user
 * provisioning there are none: sessions log in as the person's own role.
 */
export interface RoleWithCredentials extends RoleRule {
  readonly credentials?: UpstreamCredentials;
}

export interface SessionSettings {
  readonly allowPlaintext: boolean;
  readonly loginTimeoutMs: number;
  readonly allowedOptions: readonly string[];
  readonly endAtTokenExpiry: boolean;
  /** 0 = no limit. */
  readonly maxDurationMs: number;
  /** 0 = no limit. */
  readonly idleTimeoutMs: number;
  /** `audit.statements`: a `statement` event for each statement, with its outcome. */
  readonly auditStatements: boolean;
  /** `audit.parameters`: with statements, Bind parameter values too (redacted). */
  readonly auditParameters: boolean;
}

export interface UpstreamTarget {
  readonly host: string;
  readonly port: number;
  readonly tls: UpstreamTls;
  readonly connectTimeoutMs: number;
}

export interface SessionDeps {
  readonly settings: SessionSettings;
  /** Undefined only with allowPlaintext (no certificate configured). */
  readonly tls: ServerTls | undefined;
  readonly verifier: Pick<TokenVerifier, 'verify'>;
  readonly directory: Pick<Directory, 'findPerson' | 'isCurrent'>;
  /** The current roles (replaced on SIGHUP). */
  roles(): readonly RoleWithCredentials[];
  readonly upstream: () => UpstreamTarget;
  /** Per-user provisioning (docs/design.md §7): each person logs in as their own role; undefined when off. */
  readonly personalRoles?: PersonalRoles;
  /** Idle authenticated upstream connections (`upstream.pool`); undefined when pooling is off. */
  readonly pool?: UpstreamPool;
  readonly registry: SessionRegistry;
  /** The audit log: events, and whether it can be written (fail closed when not). */
  readonly audit: AuditLog;
  /**
   * Several instances on one store (docs/design.md §8): hands a CancelRequest whose key instance `slot`
   * issued to that instance, which checks the secret. Absent on a single instance.
   */
  readonly forwardCancel?: (slot: number, pid: number, secret: Buffer) => void;
  readonly metrics: Metrics;
  readonly logger: Logger;
  readonly instance: string;
  /** Milliseconds since the epoch; injectable for tests. */
  readonly now: () => number;
}
