// A statement event as JSON text, written out field by field (docs/design.md §6): statements are
// nearly every line of the audit log, and this is several times cheaper than JSON.stringify over
// the event object. The text is exactly what JSON.stringify gives for an event built in this field
// order (proxy/session/live.ts builds it so); test/audit/statement-json.test.ts compares the two.
import type { StatementEvent } from './events.js';

const quote = JSON.stringify as (s: string) => string;

function num(n: number | null): string {
  // JSON has no NaN or Infinity: JSON.stringify writes null for them.
  return n !== null && Number.isFinite(n) ? String(n) : 'null';
}

function str(s: string | null): string {
  return s === null ? 'null' : quote(s);
}

// The text's JSON, remembered for the next statement: a prepared statement executed again and again
// comes with the same (already redacted, audit/emitter.ts) string each time.
let lastText: string | null = null;
let lastTextJson = 'null';

function textJson(s: string | null): string {
  if (s !== lastText) {
    lastText = s;
    lastTextJson = str(s);
  }
  return lastTextJson;
}

/** `{"type":"statement",...}` with the members of `e` in declaration order, undefined ones left out. */
export function statementJson(e: StatementEvent): string {
  // protocol and outcome are plain words (their types list them), written without quote().
  let out = `{"type":"statement","session":${quote(e.session)},"n":${num(e.n)},"protocol":"${e.protocol}","text":${textJson(e.text)}`;
  if (e.truncated !== undefined) out += `,"truncated":${JSON.stringify(e.truncated)}`;
  if (e.statement !== undefined) out += `,"statement":${quote(e.statement)}`;
  if (e.portal !== undefined) out += `,"portal":${quote(e.portal)}`;
  if (e.function !== undefined) out += `,"function":${num(e.function)}`;
  out += `,"params":{"count":${num(e.params.count)}`;
  if (e.params.values !== undefined) out += `,"values":${JSON.stringify(e.params.values)}`;
  out += '}';
  if (e.copy !== undefined) out += `,"copy":${JSON.stringify(e.copy)}`;
  return `${out},"outcome":"${e.outcome}","tag":${str(e.tag)},"rows":${num(e.rows)},"sqlstate":${str(e.sqlstate)},"ms":${num(e.ms)}}`;
}

// Every member of StatementEvent is written above: a member added to the event without a line here
// fails to compile instead of going missing from the log.
const WRITTEN = ['type', 'session', 'n', 'protocol', 'text', 'truncated', 'statement', 'portal', 'function', 'params', 'copy', 'outcome', 'tag', 'rows', 'sqlstate', 'ms'] as const;
type Unwritten = Exclude<keyof StatementEvent, (typeof WRITTEN)[number]>;
export const ALL_STATEMENT_MEMBERS_WRITTEN: [Unwritten] extends [never] ? readonly (keyof StatementEvent)[] : never = WRITTEN;
