// The one function every audit event goes through (docs/design.md §6): `emit` redacts what could
// hold a secret (statement text and parameter values) and hands the event to the hash-chained
// writer. The rest of the interface is what callers need to fail closed: whether the log can be
// written, and a promise that an event is on disk before its effect is acknowledged.
import type { AuditEvent, StatementEvent } from './events.js';
import { redactSql, redactValue, secretParameters } from './redact.js';
import type { AuditHead } from './writer.js';

export interface AuditLog {
  /** Records an event (after redaction); never throws, never waits. */
  emit(event: AuditEvent): void;
  /** Resolves once everything emitted so far is on disk; rejects (AuditUnavailableError) when it cannot be. */
  flushed(): Promise<void>;
  /** False while the audit file cannot be written: new sessions are refused (58030). */
  readonly available: boolean;
  /** The chain's durable head (GET /admin/audit/head). */
  head(): AuditHead;
}

/** What the emitter needs from the writer. */
export interface AuditSink {
  append(event: AuditEvent): void;
  flushed(): Promise<void>;
  readonly available: boolean;
  head(): AuditHead;
}

/** The audit log over `sink`. */
export function createAuditLog(sink: AuditSink): AuditLog {
  const redact = lastTextRedactor();
  return {
    emit: (event) => sink.append(event.type === 'statement' ? redactStatement(event, redact) : event),
    flushed: () => sink.flushed(),
    get available() {
      return sink.available;
    },
    head: () => sink.head(),
  };
}

/**
 * redactSql that remembers its last answer: a prepared statement executed again and again (the
 * extended protocol, pgbench -M extended, every driver's prepared statements) comes with the same
 * text each time, and comparing it costs less than looking for secrets in it again.
 */
function lastTextRedactor(): (text: string) => string {
  let lastText = '';
  let lastRedacted = '';
  return (text) => {
    if (text !== lastText) {
      lastText = text;
      lastRedacted = redactSql(text);
    }
    return lastRedacted;
  };
}

/** A statement with its text and parameter values redacted. */
export function redactStatement(e: StatementEvent, redact: (text: string) => string = redactSql): StatementEvent {
  const text = e.text === null ? null : redact(e.text);
  const values = e.params.values;
  if (values === undefined) return text === e.text ? e : { ...e, text };
  const secret = secretParameters(e.text);
  return { ...e, text, params: { count: e.params.count, values: values.map((v, i) => redactValue(v, secret.has(i + 1))) } };
}
