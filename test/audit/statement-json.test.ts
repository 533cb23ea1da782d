// audit/statement-json.ts writes statement events by hand: it must give exactly what JSON.stringify
// gives for the same event, for every shape a statement takes (and text that needs escaping).
import { describe, expect, it } from 'vitest';
import type { StatementEvent } from '../../audit/events.js';
import { statementJson } from '../../audit/statement-json.js';

/** Built in the order proxy/session/live.ts builds it, absent members undefined. */
function statement(over: Partial<StatementEvent>): StatementEvent {
  const base: StatementEvent = {
    type: 'statement', session: 's-1', n: 1, protocol: 'simple', text: 'SELECT 1', truncated: undefined, statement: undefined, portal: undefined,
    function: undefined, params: { count: 0 }, copy: undefined, outcome: 'ok', tag: 'SELECT 1', rows: 1, sqlstate: null, ms: 0.125,
  };
  return { ...base, ...over };
}

const SHAPES: Record<string, Partial<StatementEvent>> = {
  'simple query': {},
  'text with quotes, backslashes, newlines, tabs, control characters and non-ASCII': { text: 'SELECT \'a"b\\c\'\n\t\u0001 -- é 日本 \u2028 \ud83d\ude00 \ud800' },
  'no text (unknown prepared statement), no tag, no rows': { text: null, tag: null, rows: null, outcome: 'unfinished' },
  'extended with names and parameter values (one NULL)': { protocol: 'extended', statement: 'P_1', portal: '', params: { count: 3, values: ['1', null, '\\x00ff'] } },
  'truncated text': { text: 'SELECT '.padEnd(4096, 'x'), truncated: true },
  'function call': { protocol: 'function', text: null, function: 1598, params: { count: 2 } },
  'copy in': { protocol: 'copy', copy: { direction: 'in', bytes: 1234567 }, tag: 'COPY 10', rows: 10 },
  'an error with its SQLSTATE': { outcome: 'error', sqlstate: '42P01', tag: null, rows: null, ms: 3 },
  'skipped, zero ms, unknown parameter count': { outcome: 'skipped', ms: 0, params: { count: null } },
  'a duration that is not finite (written as null, as JSON.stringify does)': { ms: Number.NaN },
  'several tags': { tag: 'INSERT 0 1; SELECT 2', rows: 3, n: 123456789 },
};

describe('statementJson', () => {
  for (const [name, over] of Object.entries(SHAPES)) {
    it(`is JSON.stringify's text: ${name}`, () => {
      const e = statement(over);
      expect(statementJson(e)).toBe(JSON.stringify(e));
    });
  }
});

describe('statementJson without JSON.stringify on its fast paths', () => {
  it('writes every duration as JSON.stringify does: whole microseconds, and any other number', () => {
    const durations = [0, -0, 0.001, 0.01, 0.1, 0.5, 1, 1.5, 0.213, 0.12, 999.999, 1000, 86_400_000.001, 999_999_999.999, 1e9, 1e9 + 0.001, 0.1234, 1e-7, 2.5e21, -1, -0.001];
    for (let k = 0; k < 200_000; k += 7) durations.push(k / 1000, Math.round(k * 13.37) / 1000);
    for (let i = 0; i < 20_000; i++) durations.push(Math.round(Math.random() * 1e12) / 1000, Math.random() * 1000);
    const wrong = durations.filter((ms) => statementJson(statement({ ms })) !== JSON.stringify(statement({ ms })));
    expect(wrong).toEqual([]);
  });

  it('quotes every UTF-16 code unit in a text, a session, a tag and a SQLSTATE as JSON.stringify does', () => {
    const wrong: number[] = [];
    for (let c = 0; c <= 0xffff; c++) {
      const ch = String.fromCharCode(c);
      const e = statement({ text: `SELECT '${ch}'`, session: `s-${ch}`, tag: `TAG ${ch}`, sqlstate: `4${ch}`, outcome: 'error' });
      if (statementJson(e) !== JSON.stringify(e)) wrong.push(c);
    }
    expect(wrong).toEqual([]);
  });
});
