// Pure parts of the SCIM HTTP layer: paging parameters, bearer parsing and matching, JSON depth,
// audit summaries. Table-driven, plus properties.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { summarizeChange } from '../../scim/audit-summary.js';
import { bearerCredentials, tokenMatcher } from '../../lib/bearer-tokens.js';
import { jsonDepthExceeds } from '../../scim/http/body.js';
import { ScimError } from '../../scim/errors.js';
import { DEFAULT_COUNT, parsePaging } from '../../scim/http/paging.js';

describe('parsePaging (RFC 7644 §3.4.2.4, D17)', () => {
  const ok: [string | undefined, string | undefined, number, number][] = [
    [undefined, undefined, 1, DEFAULT_COUNT],
    ['1', '100', 1, 100],
    ['0', '10', 1, 10],
    ['-5', '10', 1, 10],
    ['+3', '+7', 3, 7],
    ['7', '0', 7, 0],
    ['7', '-1', 7, 0],
    ['1', '5000', 1, 1000],
    ['99999999999999999999', '1', 2_147_483_647, 1],
    ['0010', '010', 10, 10],
  ];
  it.each(ok)('startIndex=%s count=%s -> %i, %i', (startIndex, count, s, c) => {
    expect(parsePaging({ startIndex, count }, 1000)).toEqual({ startIndex: s, count: c });
  });

  const bad = ['', ' 1', '1.0', '1e3', 'abc', '0x10', '1,2', 'NaN', 'Infinity', '--1', '١'];
  it.each(bad)('non-integer %j -> 400 invalidValue', (v) => {
    for (const q of [{ startIndex: v }, { count: v }]) {
      try {
        parsePaging(q, 1000);
        expect.unreachable();
      } catch (err) {
        expect(err).toBeInstanceOf(ScimError);
        expect((err as ScimError).status).toBe(400);
        expect((err as ScimError).scimType).toBe('invalidValue');
      }
    }
  });

  it('property: any integers give 1 <= startIndex and 0 <= count <= maxResults', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: -(10n ** 25n), max: 10n ** 25n }), fc.bigInt({ min: -(10n ** 25n), max: 10n ** 25n }), fc.integer({ min: 100, max: 5000 }), (s, c, max) => {
        const p = parsePaging({ startIndex: s.toString(), count: c.toString() }, max);
        expect(p.startIndex).toBeGreaterThanOrEqual(1);
        expect(Number.isSafeInteger(p.startIndex)).toBe(true);
        expect(p.count).toBeGreaterThanOrEqual(0);
        expect(p.count).toBeLessThanOrEqual(max);
      }),
    );
  });
});

describe('bearerCredentials (RFC 6750 §2.1)', () => {
  const table: [string | undefined, string | undefined][] = [
    [undefined, undefined],
    ['', undefined],
    ['Bearer abc', 'abc'],
    ['bearer abc', 'abc'],
    ['BEARER abc', 'abc'],
    ['Bearer   abc  ', 'abc'],
    ['Bearer a-b.c_d~e+f/g==', 'a-b.c_d~e+f/g=='],
    ['Bearer', undefined],
    ['Bearer ', undefined],
    ['Basic YWxpY2U6c2VjcmV0', undefined],
    ['Bearer abc def', undefined],
    ['Bearer a=b', 'a=b'],
    ['Bearer p@ss!w0rd$', 'p@ss!w0rd$'],
    ['Bearer tab\tinside', undefined],
    ['Bearerabc', undefined],
    ['Token abc', undefined],
  ];
  it.each(table)('%j -> %j', (header, token) => {
    expect(bearerCredentials(header)).toBe(token);
  });
});

describe('tokenMatcher', () => {
  it('returns the 1-based position of the matching token and 0 otherwise', () => {
    const match = tokenMatcher(['first-token', 'second-token']);
    expect(match('first-token')).toBe(1);
    expect(match('second-token')).toBe(2);
    expect(match('second-toke')).toBe(0);
    expect(match('second-token ')).toBe(0);
    expect(match('')).toBe(0);
    expect(match('FIRST-TOKEN')).toBe(0);
  });
  it('admits nobody when no tokens are configured, and refuses an empty token', () => {
    expect(tokenMatcher([])('anything')).toBe(0);
    expect(() => tokenMatcher(['ok', ''])).toThrow(/empty/);
  });
  it('property: only the configured strings match', () => {
    fc.assert(
      fc.property(fc.uniqueArray(fc.string({ minLength: 1 }), { minLength: 1, maxLength: 4 }), fc.string(), (tokens, other) => {
        const match = tokenMatcher(tokens);
        tokens.forEach((t, i) => expect(match(t)).toBe(i + 1));
        expect(match(other)).toBe(tokens.indexOf(other) + 1);
      }),
    );
  });
});

describe('jsonDepthExceeds', () => {
  it('counts nesting of arrays and objects, not scalars', () => {
    expect(jsonDepthExceeds(1, 0)).toBe(false);
    expect(jsonDepthExceeds({}, 0)).toBe(true);
    expect(jsonDepthExceeds({ a: [1] }, 2)).toBe(false);
    expect(jsonDepthExceeds({ a: [[1]] }, 2)).toBe(true);
  });
  it('handles very deep input without recursion', () => {
    const deep = JSON.parse('['.repeat(200_000) + ']'.repeat(200_000));
    expect(jsonDepthExceeds(deep, 64)).toBe(true);
  });
});

describe('summarizeChange', () => {
  it('names changed attributes, the new active state and member deltas, never values', () => {
    expect(summarizeChange(undefined, { attributes: { userName: 'a@x', active: true } })).toEqual({
      changed: ['active', 'userName'],
      active: true,
      summary: 'set active, userName; active: true',
    });
    expect(
      summarizeChange({ attributes: { userName: 'a@x', active: true, title: 'x' } }, { attributes: { userName: 'a@x', active: false } }),
    ).toEqual({ changed: ['active', 'title'], active: false, summary: 'changed active, title; active: false' });
    expect(
      summarizeChange(
        { attributes: { displayName: 'g' }, members: [{ value: '1' }, { value: '2' }] },
        { attributes: { displayName: 'g' }, members: [{ value: '2' }, { value: '3' }, { value: '4' }, { value: '5' }] },
      ),
    ).toEqual({ changed: [], members: { added: ['3', '4', '5'], removed: ['1'] }, summary: 'members +3 -1' });
    const secretish = summarizeChange({ attributes: { userName: 'old-secret-value' } }, { attributes: { userName: 'new-secret-value' } });
    expect(JSON.stringify(secretish)).not.toMatch(/secret/);
    expect(
      summarizeChange(undefined, { attributes: { 'urn:ietf:params:scim:schemas:extension:enterprise:2.0:User': { employeeNumber: '7' } } }).summary,
    ).toBe('set enterprise');
  });
});
