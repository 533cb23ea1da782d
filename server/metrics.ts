// The process's one Prometheus registry (docs/design.md §5): Node's process metrics, the data path's
// series and the SCIM request counter, rendered by the admin listener's /metrics.
import { Counter, Registry, collectDefaultMetrics } from 'prom-client';
import { createProxyMetrics, type Metrics as ProxyMetrics } from '../proxy/session/metrics.js';

export interface ServerMetrics {
  readonly registry: Registry;
  readonly proxy: ProxyMetrics;
  readonly scimRequests: Counter<'method' | 'status'>;
}

export function createServerMetrics(): ServerMetrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  return {
    registry,
    proxy: createProxyMetrics(registry),
    scimRequests: new Counter({ name: 'rolegate_scim_requests_total', help: 'SCIM requests by method and status', labelNames: ['method', 'status'], registers: [registry] }),
  };
}
