// Prometheus metrics (PRODUCT.md §5): one registry per process, metric objects created once.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export interface Metrics {
  readonly registry: Registry;
  readonly sessionsActive: Gauge;
  readonly sessionsTotal: Counter<'outcome'>;
  readonly authFailures: Counter<'reason'>;
  readonly statements: Counter;
  readonly bytes: Counter<'direction'>;
  readonly revocations: Counter;
  readonly revocationSeconds: Histogram;
  readonly scimRequests: Counter<'method' | 'status'>;
  readonly upstreamConnectSeconds: Histogram;
}

/** Creates the registry with every rolegate metric plus Node's process metrics. */
export function createMetrics(): Metrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const registers = [registry];
  return {
    registry,
    sessionsActive: new Gauge({ name: 'rolegate_sessions_active', help: 'Client sessions currently relayed', registers }),
    sessionsTotal: new Counter({ name: 'rolegate_sessions_total', help: 'Client sessions by outcome', labelNames: ['outcome'], registers }),
    authFailures: new Counter({ name: 'rolegate_auth_failures_total', help: 'Refused logins by reason', labelNames: ['reason'], registers }),
    statements: new Counter({ name: 'rolegate_statements_total', help: 'Statements relayed', registers }),
    bytes: new Counter({ name: 'rolegate_bytes_total', help: 'Bytes relayed by direction', labelNames: ['direction'], registers }),
    revocations: new Counter({ name: 'rolegate_revocations_total', help: 'Sessions ended because access was revoked', registers }),
    revocationSeconds: new Histogram({
      name: 'rolegate_revocation_seconds',
      help: 'Time from a directory change to the end of the affected sessions',
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers,
    }),
    scimRequests: new Counter({ name: 'rolegate_scim_requests_total', help: 'SCIM requests by method and status', labelNames: ['method', 'status'], registers }),
    upstreamConnectSeconds: new Histogram({
      name: 'rolegate_upstream_connect_seconds',
      help: 'Time to log in to the upstream database',
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
      registers,
    }),
  };
}
