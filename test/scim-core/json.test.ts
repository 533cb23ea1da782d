import { describe, expect, it } from 'vitest';
import { isForbiddenKey, jsonEqual, ownGet } from '../../scim/json.js';

describe('isForbiddenKey (D30)', () => {
  it.each([
    ['__proto__', true],
    ['__PROTO__', true],
    ['constructor', true],
    ['Constructor', true],
    ['prototype', true],
    ['PROTOTYPE', true],
    ['toString', true],
    ['tostring', true],
    ['hasOwnProperty', true],
    ['valueOf', true],
    ['__defineGetter__', true],
    ['isPrototypeOf', true],
    ['userName', false],
    ['value', false],
    ['display', false],
    ['proto', false],
    ['', false],
  ])('%s -> %s', (key, expected) => {
    expect(isForbiddenKey(key)).toBe(expected);
  });
});

describe('ownGet', () => {
  it('reads own properties only', () => {
    expect(ownGet({ a: 1 }, 'a')).toBe(1);
    expect(ownGet({}, 'toString')).toBeUndefined();
    expect(ownGet({}, '__proto__')).toBeUndefined();
    expect(ownGet(JSON.parse('{"__proto__":5}'), '__proto__')).toBe(5);
    expect(ownGet([1], '0')).toBeUndefined();
    expect(ownGet(null, 'a')).toBeUndefined();
    expect(ownGet('abc', 'length')).toBeUndefined();
  });
});

describe('jsonEqual', () => {
  it.each([
    [1, 1, true],
    ['a', 'A', false],
    [{ a: 1, b: [1, { c: 2 }] }, { b: [1, { c: 2 }], a: 1 }, true],
    [{ a: 1 }, { a: 1, b: 2 }, false],
    [{ a: 1, b: undefined }, { a: 1 }, true],
    [{ a: 1 }, { a: 1, b: undefined }, true],
    [[1, 2], [2, 1], false],
    [[], {}, false],
    [null, undefined, false],
    [{ a: null }, {}, false],
  ])('%j vs %j -> %s', (a, b, expected) => {
    expect(jsonEqual(a, b)).toBe(expected);
    expect(jsonEqual(b, a)).toBe(expected);
  });
});
