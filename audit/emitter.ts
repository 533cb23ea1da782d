// The one function every audit event goes through (docs/design.md §6). Today it writes the event to the
// process log under `audit`; the hash-chained audit file replaces this body, not its callers.
import type { Logger } from 'pino';

/** Audit events by `type`; fields beyond the common ones (v, ts, instance, seq, prev, hash). */
export type AuditEvent =
  | { type: 'directory.change'; resource: 'User' | 'Group'; id: string; op: string; actor: string; summary: string }
  | { type: 'session.start' | 'session.denied' | 'statement' | 'session.end' | 'provisioning'; [field: string]: unknown };

export type AuditEmit = (event: AuditEvent) => void;

/** An emitter bound to this instance's name. */
export function createAuditEmitter(opts: { logger: Logger; instance: string }): AuditEmit {
  const log = opts.logger.child({ audit: true, instance: opts.instance });
  return (event) => {
    log.info({ event: { v: 1, ts: new Date().toISOString(), ...event } }, event.type);
  };
}
