// /readyz (docs/design.md §5): the directory store, the issuer's keys and the upstream database all
// answer; otherwise 503 with the first reason, and the cause in the log only.
import { connect } from 'node:net';
import type { Readiness } from '../admin/app.js';
import type { Logger } from '../lib/log.js';

/** One named check; it rejects when its dependency does not answer. */
export type ReadinessCheck = readonly [reason: string, check: () => Promise<void>];

export async function readiness(checks: readonly ReadinessCheck[], logger: Logger): Promise<Readiness> {
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

/** Resolves when a TCP connection to host:port opens within `timeoutMs`. */
export function tcpReachable(host: string, port: number, timeoutMs: number): Promise<void> {
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
