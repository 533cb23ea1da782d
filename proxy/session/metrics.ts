// The data path's Prometheus series (docs/design.md §5): created once on the registry the composition
// root owns, and recorded by sessions, the pool and revocation.
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

export interface Metrics {
  readonly sessionsActive: Gauge;
  readonly sessionsTotal: Counter<'outcome'>;
  readonly authFailures: Counter<'reason'>;
  readonly statements: Counter;
  readonly bytes: Counter<'direction'>;
  readonly revocations: Counter;
  readonly revocationSeconds: Histogram;
  readonly upstreamConnectSeconds: Histogram;
}

/** Registers the proxy's series on `registry`. */
export function createProxyMetrics(registry: Registry): Metrics {
  const registers = [registry];
  return {
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
    upstreamConnectSeconds: new Histogram({
      name: 'rolegate_upstream_connect_seconds',
      help: 'Time to log in to the upstream database',
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
      registers,
    }),
  };
}
