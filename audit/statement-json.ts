// A statement event as JSON text, written out field by field (docs/design.md §6): statements are
// nearly every line of the audit log, and this is several times cheaper than JSON.stringify over
// the event object. The text is exactly what JSON.stringify gives for an event built in this field
// order (proxy/session/live.ts builds it so); test/audit/statement-json.test.ts compares the two.
import type { StatementEvent } from './events.js';

// Printable ASCII without `"` and `\`: JSON.stringify would only put quotes around it. Checking
// for that costs a fifth of what JSON.stringify costs on a pgbench statement's text.
const PLAIN = /^[^"\\\x00-\x1f\x7f-\uffff]*$/;

function quote(s: string): string {
  return PLAIN.test(s) ? `"${s}"` : JSON.stringify(s);
}

function num(n: number | null): string {
  // JSON has no NaN or Infinity: JSON.stringify writes null for them.
  return n !== null && Number.isFinite(n) ? String(n) : 'null';
}

// ".001" ... ".999" with trailing zeros dropped, and "" for 0: the fraction of a duration in whole microseconds.
const THOUSANDTHS = Array.from({ length: 1000 }, (_, f) => (f === 0 ? '' : `.${String(f).padStart(3, '0').replace(/0+$/, '')}`));

/**
 * A duration as JSON.stringify writes it. Durations are rounded to the microsecond
 * (proxy/relay/statements.ts), and String() of such a double (the shortest decimal that reads back
 * as it) is its whole milliseconds and at most three decimals: built from a small integer and a
 * table, that costs a third of String()'s conversion of a double. Anything else goes to num().
 */
function msJson(ms: number): string {
  const micros = Math.round(ms * 1000);
  if (!(ms >= 0 && ms < 1e9) || micros / 1000 !== ms) return num(ms);
  const whole = Math.floor(micros / 1000);
  return `${whole}${THOUSANDTHS[micros - whole * 1000] as string}`;
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
  return `${out},"outcome":"${e.outcome}","tag":${str(e.tag)},"rows":${num(e.rows)},"sqlstate":${str(e.sqlstate)},"ms":${msJson(e.ms)}}`;
}

// Every member of StatementEvent is written above: a member added to the event without a line here
// fails to compile instead of going missing from the log.
const WRITTEN = ['type', 'session', 'n', 'protocol', 'text', 'truncated', 'statement', 'portal', 'function', 'params', 'copy', 'outcome', 'tag', 'rows', 'sqlstate', 'ms'] as const;
type Unwritten = Exclude<keyof StatementEvent, (typeof WRITTEN)[number]>;
export const ALL_STATEMENT_MEMBERS_WRITTEN: [Unwritten] extends [never] ? readonly (keyof StatementEvent)[] : never = WRITTEN;
