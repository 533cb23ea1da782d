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

// The constant parts of a line (lineBody), as bytes, for sealing without strings.
const BODY_START = Buffer.from(`{"v":${AUDIT_SCHEMA_VERSION},"ts":"`, 'latin1');
const TS_TO_TYPE = Buffer.from('","type":"', 'latin1');
const TYPE_TO_INSTANCE = Buffer.from('","instance":', 'latin1');
const SEQ = Buffer.from(',"seq":', 'latin1');
const PREV = Buffer.from(',"prev":"', 'latin1');
const HASH = Buffer.from(',"hash":"', 'latin1');
const QUOTE = 0x22;
const CLOSE_BRACE = 0x7d;
const NEWLINE = 0x0a;

/** Copies the few bytes `src[from, to)` to `out` at `p` in JavaScript: cheaper than Buffer.copy's view and native call for a time stamp or a type. */
function copySmall(out: Buffer, p: number, src: Buffer, from: number, to: number): number {
  for (let i = from; i < to; i++) out[p++] = src[i] as number;
  return p;
}

/** Writes the few ASCII characters of `s` (a seq's digits) at `p`; returns where they end. */
function writeDigits(out: Buffer, p: number, s: string): number {
  for (let i = 0; i < s.length; i++) out[p + i] = s.charCodeAt(i);
  return p + s.length;
}

/**
 * Seals like sealJson, from bytes to bytes: `src` holds one queued line `<ts>\t<event JSON>\n` as
 * UTF-8 from `at` (its tab and newline at `tab` and `end`), and `<sealed line>\n` is written into
 * `out` at `outAt`, byte for byte what sealJson gives. The appender seals every line this way:
 * the line's text is copied, never decoded into a string, sliced, joined and encoded again. Only the
 * event's members go through Buffer.copy; the constant parts are whole buffers (TypedArray set), and
 * the time stamp, type and seq are written byte by byte and the digests (ASCII) as latin1: a view
 * and a native copy for each small part, and a template string for each of the last three, cost more
 * than a line's SHA-256 (docs/design.md §6).
 * `instanceJson` is JSON.stringify(instance) as UTF-8. Returns where the sealed line ends, or
 * undefined (nothing written) when `out` may not have room after `outAt`.
 */
export function sealQueuedInto(
  out: Buffer, outAt: number, src: Buffer, at: number, tab: number, end: number, instanceJson: Buffer, head: ChainHead,
): { end: number; head: ChainHead } | undefined {
  // JSON after the tab is {"type":"<type>"<,more members>}; types are plain words, so the type ends at the next quote.
  const typeStart = tab + 1 + '{"type":"'.length;
  const typeEnd = src.indexOf(QUOTE, typeStart);
  // The event's bytes, the line's constant parts, seq (at most 16 digits) and prev and hash (64 hex each).
  if (out.length - outAt < end - at + instanceJson.length + 256) return undefined;
  let p = outAt;
  out.set(BODY_START, p);
  p = copySmall(out, p + BODY_START.length, src, at, tab);
  out.set(TS_TO_TYPE, p);
  p = copySmall(out, p + TS_TO_TYPE.length, src, typeStart, typeEnd);
  out.set(TYPE_TO_INSTANCE, p);
  p += TYPE_TO_INSTANCE.length;
  out.set(instanceJson, p);
  p += instanceJson.length;
  out.set(SEQ, p);
  p = writeDigits(out, p + SEQ.length, String(head.seq + 1));
  // The event's other members, without its closing brace.
  p += src.copy(out, p, typeEnd + 1, end - 1);
  out.set(PREV, p);
  p += PREV.length;
  p += out.write(head.hash, p, 'latin1');
  out[p++] = QUOTE;
  out[p++] = CLOSE_BRACE;
  const h = digest('sha256', out.subarray(outAt, p), 'hex');
  // The hash member goes where the body's closing brace was.
  p--;
  out.set(HASH, p);
  p += HASH.length;
  p += out.write(h, p, 'latin1');
  out[p++] = QUOTE;
  out[p++] = CLOSE_BRACE;
  out[p++] = NEWLINE;
  return { end: p, head: { seq: head.seq + 1, hash: h } };
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
