// The hash chain of one instance's audit lines (docs/design.md §6): how a line is sealed with `prev`
// and `hash`, and how a line read back is checked. The hashed content is the line's own bytes, so a
// verifier never re-serialises anything and an edit of any byte (whitespace included) shows.
import { hash as digest } from 'node:crypto';
import { AUDIT_SCHEMA_VERSION, type AuditEvent } from './events.js';
import { statementJson } from './statement-json.js';

/** `prev` of an instance's first line. */
export const GENESIS = '0'.repeat(64);

/** The tail every sealed line ends with: `,"hash":"<64 hex>"}`. */
const HASH_TAIL = /,"hash":"([0-9a-f]{64})"\}$/;
const HASH_TAIL_LENGTH = ',"hash":"'.length + 64 + '"}'.length;

/** Where the chain of one instance stands: the last line's seq and hash. */
export interface ChainHead {
  readonly seq: number;
  readonly hash: string;
}

export const EMPTY_HEAD: ChainHead = { seq: 0, hash: GENESIS };

/**
 * An event as JSON with `type` as its first member, which is how the line splices it in. Events are
 * built that way; one that is not gets the cost of a copy.
 */
export function eventJson(event: AuditEvent): string {
  if (event.type === 'statement') return statementJson(event);
  const json = JSON.stringify(event);
  if (json.startsWith('{"type":')) return json;
  const { type, ...rest } = event;
  return JSON.stringify({ type, ...rest });
}

/**
 * Seals an event (`eventJson` output) as the line after `head`. The line is
 * `{"v":1,"ts":...,"type":...,"instance":...,"seq":N, <event fields>, "prev":...,"hash":...}`, and
 * `hash` = hex SHA-256 of that same text without its `,"hash":"..."` member (prev included).
 * `instanceJson` is `JSON.stringify(instance)`.
 */
export function sealJson(json: string, ts: string, instanceJson: string, head: ChainHead): { line: string; head: ChainHead } {
  const body = lineBody(json, ts, instanceJson, head);
  const h = digest('sha256', body, 'hex');
  return { line: `${body.slice(0, -1)},"hash":"${h}"}`, head: { seq: head.seq + 1, hash: h } };
}

/** A sealed line's text up to and including `"prev":"..."}`: what its hash is taken over. */
function lineBody(json: string, ts: string, instanceJson: string, head: ChainHead): string {
  // json is {"type":"<type>"<,more members>}; types are plain words, so the type ends at the next quote.
  const typeEnd = json.indexOf('"', 9);
  return `{"v":${AUDIT_SCHEMA_VERSION},"ts":"${ts}","type":"${json.slice(9, typeEnd)}","instance":${instanceJson},"seq":${head.seq + 1}${json.slice(typeEnd + 1, -1)},"prev":"${head.hash}"}`;
}

/** What a sealed line adds after its body: `,"hash":"<64 hex>"}` and a newline, less the brace they replace. */
const SEALED_TAIL_BYTES = HASH_TAIL_LENGTH;

/**
 * Seals like sealJson, but writes `<line>\n` as UTF-8 straight into `out` at `at` and hashes those
 * bytes: the writer's thread then converts each line to UTF-8 once, where strings cost a conversion
 * for the hash, another to measure the line and a third to write it (audit/appender.ts). Returns
 * where the line ends, or undefined (nothing written) when `out` may not have room after `at`.
 */
export function sealJsonInto(out: Buffer, at: number, json: string, ts: string, instanceJson: string, head: ChainHead): { end: number; head: ChainHead } | undefined {
  const body = lineBody(json, ts, instanceJson, head);
  // A UTF-16 code unit is at most three bytes of UTF-8 (a pair of them, four).
  if (out.length - at < 3 * body.length + SEALED_TAIL_BYTES) return undefined;
  const n = out.write(body, at, 'utf8');
  const h = digest('sha256', out.subarray(at, at + n), 'hex');
  const tailAt = at + n - 1;
  return { end: tailAt + out.write(`,"hash":"${h}"}\n`, tailAt, 'latin1'), head: { seq: head.seq + 1, hash: h } };
}

/** Seals `event` as the line after `head` (see sealJson). */
export function sealLine(event: AuditEvent, ts: string, instance: string, head: ChainHead): { line: string; head: ChainHead } {
  return sealJson(eventJson(event), ts, JSON.stringify(instance), head);
}

/** What one raw line says about itself; `problem` when it cannot be part of any chain. */
export type CheckedLine =
  | { readonly ok: true; readonly seq: number; readonly prev: string; readonly hash: string; readonly instance: string; readonly record: Record<string, unknown> }
  | { readonly ok: false; readonly problem: string };

/** Parses a line and recomputes its hash from its own bytes. */
export function checkLine(raw: string): CheckedLine {
  const m = HASH_TAIL.exec(raw);
  if (m === null) return { ok: false, problem: 'no hash at the end of the line (edited, or not an audit line)' };
  let record: unknown;
  try {
    record = JSON.parse(raw);
  } catch {
    return { ok: false, problem: 'not valid JSON (edited or cut off)' };
  }
  if (record === null || typeof record !== 'object' || Array.isArray(record)) return { ok: false, problem: 'not a JSON object' };
  const r = record as Record<string, unknown>;
  const { seq, prev, instance } = r;
  if (typeof seq !== 'number' || !Number.isSafeInteger(seq) || seq < 1) return { ok: false, problem: 'no valid seq' };
  if (typeof prev !== 'string' || !/^[0-9a-f]{64}$/.test(prev)) return { ok: false, problem: 'no valid prev' };
  if (typeof instance !== 'string') return { ok: false, problem: 'no instance' };
  const body = `${raw.slice(0, raw.length - HASH_TAIL_LENGTH)}}`;
  const h = m[1] as string;
  if (digest('sha256', body, 'hex') !== h) return { ok: false, problem: 'hash does not match the line (the line was edited)' };
  return { ok: true, seq, prev, hash: h, instance, record: r };
}
